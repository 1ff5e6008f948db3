//! Limits: memory per instance, guest CPU time and wall-clock time per call, page size.
//!
//! Memory is enforced by a [`wasmtime::ResourceLimiter`] that turns a growth past the
//! limit into a trap (not a failed `memory.grow`, which a guest could ignore and retry).
//! CPU is enforced with epoch interruption: a ticker thread bumps the engine's epoch
//! every [`TICK`], and when a call's deadline passes, [`CallClock`] decides whether the
//! guest itself used up its budget. Time spent in the host (HTTP, pacing after a 429)
//! is not the guest's and does not count against CPU; it does count against the call's
//! wall-clock limit, which the session enforces around the whole call (a guest blocked in a
//! WASI sleep or poll, or looping on `http.send`, is stopped by it).
//!
//! Which limit ended a call is recorded as a typed [`LimitHit`] when it happens, never
//! recovered from an error's text.

use std::time::{Duration, Instant};

/// How often the epoch advances; the granularity of the CPU limit.
pub const TICK: Duration = Duration::from_millis(10);

/// Which limit ended a call.
#[derive(Debug, Clone, PartialEq)]
pub enum LimitHit {
    /// The instance asked for more linear memory than it may have.
    Memory { limit_bytes: u64, requested_bytes: u64 },
    /// The guest's own CPU time in one call.
    Cpu { limit: Duration },
    /// One call's wall-clock time, host time included.
    WallClock { limit: Duration },
    /// A page larger than the page limit.
    PageBytes { size: u64, limit: u64 },
    /// The source's `Retry-After` asked for a longer pause than the gate honours.
    RetryAfter { requested: f64, limit: Duration },
    /// A bound of the converter on a page or a schema (rows, cells, decompressed bytes,
    /// schema width or depth): `limit` is the name of the `weir_convert::Limits` field.
    Convert { limit: &'static str, max: usize, what: String },
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
            LimitHit::WallClock { limit } => write!(
                f,
                "wall-clock limit of {:.1} s per call exceeded (host time included: HTTP, pacing, sleeping); \
                 raise limits.call_wall_seconds if the connector needs it",
                limit.as_secs_f64()
            ),
            LimitHit::RetryAfter { requested, limit } => write!(
                f,
                "the source asked to wait {requested} s (Retry-After), more than the {} s weir waits; \
                 the source is refusing requests: try again later",
                limit.as_secs()
            ),
            LimitHit::Convert { limit, max, what } => {
                write!(f, "too many {what}: the bound `{limit}` is {max}")
            }
            LimitHit::PageBytes { size, limit } => write!(
                f,
                "page of {} MiB exceeds the page limit of {} MiB; lower the page size or raise limits.page_mib",
                size >> 20,
                limit >> 20
            ),
        }
    }
}

/// Linear memories one instance may create: a Rust component has one or two; a component made
/// of many core modules could otherwise multiply its memory by its module count.
pub const MAX_MEMORIES: usize = 8;
/// Tables one instance may create.
pub const MAX_TABLES: usize = 64;
/// Core instances one component instance may create (its modules and adapters).
pub const MAX_INSTANCES: usize = 64;
/// Elements all of an instance's tables may hold; function references, far beyond any connector.
pub const MAX_TABLE_ELEMENTS: u64 = 1_000_000;

/// Checks, before compiling, what a component's core modules define at any depth: at most
/// [`MAX_MEMORIES`] linear memories, [`MAX_TABLES`] tables and [`MAX_INSTANCES`] core
/// instantiations. A component made of many modules is refused here with the rule it breaks;
/// one that instantiates a module many times is stopped when it is instantiated, by
/// [`MemoryLimit`] (the total of its memories) and wasmtime's counts.
pub fn check_shape(component: &[u8]) -> Result<(), String> {
    let (mut memories, mut tables, mut instances) = (0u64, 0u64, 0u64);
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        match payload.map_err(|e| format!("it is not valid WebAssembly: {e}"))? {
            wasmparser::Payload::MemorySection(r) => memories += u64::from(r.count()),
            wasmparser::Payload::TableSection(r) => tables += u64::from(r.count()),
            wasmparser::Payload::InstanceSection(r) => {
                for instance in r {
                    let instance = instance.map_err(|e| format!("it is not valid WebAssembly: {e}"))?;
                    if matches!(instance, wasmparser::Instance::Instantiate { .. }) {
                        instances += 1;
                    }
                }
            }
            _ => {}
        }
    }
    for (what, count, max) in [
        ("linear memories", memories, MAX_MEMORIES),
        ("tables", tables, MAX_TABLES),
        ("core module instantiations", instances, MAX_INSTANCES),
    ] {
        if count > max as u64 {
            return Err(format!(
                "its core modules define {count} {what}; a connector may have at most {max} \
                 (the sandbox bounds memories, tables and instances per instance, so that many \
                 small modules cannot add up past limits.memory_mib)"
            ));
        }
    }
    Ok(())
}

/// The memory limit of one instance: the total of all its linear memories, not each one.
pub struct MemoryLimit {
    pub limit_bytes: u64,
    /// Bytes of all the instance's memories together.
    pub total_bytes: u64,
    /// Elements of all the instance's tables together.
    pub table_elements: u64,
    pub hit: Option<LimitHit>,
}

impl MemoryLimit {
    /// A limit of `limit_bytes` for one instance.
    pub fn new(limit_bytes: u64) -> MemoryLimit {
        MemoryLimit { limit_bytes, total_bytes: 0, table_elements: 0, hit: None }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = (desired as u64).saturating_sub(current as u64);
        let total = self.total_bytes.saturating_add(growth);
        if total > self.limit_bytes {
            let hit = LimitHit::Memory { limit_bytes: self.limit_bytes, requested_bytes: total };
            self.hit = Some(hit.clone());
            return Err(wasmtime::format_err!("{hit}"));
        }
        self.total_bytes = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.table_elements.saturating_add((desired as u64).saturating_sub(current as u64));
        if total > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.table_elements = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// One call's clocks: guest CPU time (wall time minus time spent in host imports) against
/// `cpu`, and the whole call's wall time against `wall`.
pub struct CallClock {
    pub cpu: Duration,
    pub wall: Duration,
    started: Instant,
    in_host: Duration,
    host_since: Option<Instant>,
    /// Set by the epoch callback when a limit ends the call.
    pub hit: Option<LimitHit>,
}

impl CallClock {
    /// A clock with per-call budgets.
    pub fn new(cpu: Duration, wall: Duration) -> CallClock {
        CallClock { cpu, wall, started: Instant::now(), in_host: Duration::ZERO, host_since: None, hit: None }
    }

    /// Starts a call.
    pub fn start_call(&mut self) {
        self.started = Instant::now();
        self.in_host = Duration::ZERO;
        self.host_since = None;
        self.hit = None;
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

    /// Wall time left in this call.
    pub fn wall_left(&self) -> Duration {
        self.wall.saturating_sub(self.started.elapsed())
    }

    /// Epoch ticks until the next check, or the limit that this call has run past (which is
    /// also recorded in [`CallClock::hit`]).
    pub fn check(&mut self) -> Result<u64, LimitHit> {
        let hit = if self.wall_left().is_zero() {
            Some(LimitHit::WallClock { limit: self.wall })
        } else if self.used() >= self.cpu {
            Some(LimitHit::Cpu { limit: self.cpu })
        } else {
            None
        };
        if let Some(hit) = hit {
            self.hit = Some(hit.clone());
            return Err(hit);
        }
        let left = self.cpu.saturating_sub(self.used()).min(self.wall_left());
        Ok((left.as_millis() / TICK.as_millis()).max(1) as u64)
    }

    /// Ticks for a whole CPU budget.
    pub fn budget_ticks(&self) -> u64 {
        (self.cpu.min(self.wall).as_millis() / TICK.as_millis()).max(1) as u64
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::ResourceLimiter;

    use super::*;

    #[test]
    fn the_memory_limit_counts_every_memory_of_the_instance() {
        let mut limit = MemoryLimit::new(64 << 20);
        assert!(limit.memory_growing(0, 40 << 20, None).is_ok());
        // A second memory of 40 MiB is within 64 MiB on its own, but not with the first.
        let err = limit.memory_growing(0, 40 << 20, None).unwrap_err().to_string();
        assert!(err.contains("64 MiB"), "{err}");
        assert!(
            matches!(limit.hit, Some(LimitHit::Memory { requested_bytes, .. }) if requested_bytes == 80 << 20)
        );
        assert!(limit.memory_growing(40 << 20, 60 << 20, None).is_ok());
    }

    #[test]
    fn host_time_does_not_count_against_the_guest_but_against_the_wall() {
        let mut c = CallClock::new(Duration::from_millis(50), Duration::from_millis(200));
        c.start_call();
        c.enter_host();
        std::thread::sleep(Duration::from_millis(80));
        c.leave_host();
        assert!(c.used() < Duration::from_millis(50), "{:?}", c.used());
        assert!(c.check().is_ok());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.check(), Err(LimitHit::Cpu { limit: Duration::from_millis(50) }));
        assert!(matches!(c.hit, Some(LimitHit::Cpu { .. })));

        let mut c = CallClock::new(Duration::from_secs(10), Duration::from_millis(30));
        c.start_call();
        c.enter_host();
        std::thread::sleep(Duration::from_millis(40));
        c.leave_host();
        assert_eq!(c.check(), Err(LimitHit::WallClock { limit: Duration::from_millis(30) }));
    }
}
