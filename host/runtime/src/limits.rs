//! Limits: memory per instance, guest CPU time per call, page size.
//!
//! Memory is enforced by a [`wasmtime::ResourceLimiter`] that turns a growth past the
//! limit into a trap (not a failed `memory.grow`, which a guest could ignore and retry).
//! CPU is enforced with epoch interruption: a ticker thread bumps the engine's epoch
//! every [`TICK`], and when a call's deadline passes, [`CpuClock`] decides whether the
//! guest itself used up its budget. Time spent in the host (HTTP, pacing after a 429)
//! is not the guest's and does not count.

use std::time::{Duration, Instant};

/// How often the epoch advances; the granularity of the CPU limit.
pub const TICK: Duration = Duration::from_millis(10);

/// Which limit ended a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitHit {
    Memory { limit_bytes: u64, requested_bytes: u64 },
    Cpu { limit: Duration },
}

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitHit::Memory { limit_bytes, requested_bytes } => write!(
                f,
                "memory limit of {} MiB exceeded (the guest asked for {} MiB); raise limits.memory_mib if the connector needs it",
                limit_bytes >> 20,
                requested_bytes >> 20
            ),
            LimitHit::Cpu { limit } => write!(
                f,
                "CPU limit of {:.1} s per call exceeded; raise limits.call_seconds if the connector needs it",
                limit.as_secs_f64()
            ),
        }
    }
}

/// The memory limit of one instance.
pub struct MemoryLimit {
    pub limit_bytes: u64,
    pub hit: Option<LimitHit>,
}

impl wasmtime::ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit_bytes {
            let hit = LimitHit::Memory { limit_bytes: self.limit_bytes, requested_bytes: desired as u64 };
            self.hit = Some(hit.clone());
            return Err(wasmtime::format_err!("{hit}"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million is far beyond any connector.
        Ok(desired <= 1_000_000)
    }
}

/// Guest CPU time of the current call: wall time minus time spent in host imports.
pub struct CpuClock {
    pub budget: Duration,
    started: Instant,
    in_host: Duration,
    host_since: Option<Instant>,
}

impl CpuClock {
    /// A clock with a per-call budget.
    pub fn new(budget: Duration) -> CpuClock {
        CpuClock { budget, started: Instant::now(), in_host: Duration::ZERO, host_since: None }
    }

    /// Starts a call.
    pub fn start_call(&mut self) {
        self.started = Instant::now();
        self.in_host = Duration::ZERO;
        self.host_since = None;
    }

    /// The guest called into the host.
    pub fn enter_host(&mut self) {
        self.host_since = Some(Instant::now());
    }

    /// The host returned to the guest.
    pub fn leave_host(&mut self) {
        if let Some(t) = self.host_since.take() {
            self.in_host += t.elapsed();
        }
    }

    /// Guest time used so far in this call.
    pub fn used(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.in_host)
    }

    /// Epoch ticks left before the budget runs out, or None when it has.
    pub fn ticks_left(&self) -> Option<u64> {
        let left = self.budget.checked_sub(self.used())?;
        Some((left.as_millis() / TICK.as_millis()).max(1) as u64)
    }

    /// Ticks for a whole budget.
    pub fn budget_ticks(&self) -> u64 {
        (self.budget.as_millis() / TICK.as_millis()).max(1) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_time_does_not_count_against_the_guest() {
        let mut c = CpuClock::new(Duration::from_millis(50));
        c.start_call();
        c.enter_host();
        std::thread::sleep(Duration::from_millis(80));
        c.leave_host();
        assert!(c.used() < Duration::from_millis(50), "{:?}", c.used());
        assert!(c.ticks_left().is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.ticks_left().is_none());
    }
}
