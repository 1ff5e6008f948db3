//! Airtable's rate limits: 5 requests/s per base and 50 requests/s per token, each with a penalty
//! after a 429 during which every request to that base (or with that token) is refused.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Requests a base accepts in any one second.
pub(crate) const PER_BASE: usize = 5;
/// Requests a token's traffic, across all bases, may make in any one second.
pub(crate) const PER_TOKEN: usize = 50;

/// The sliding one-second window of accepted requests, and the penalty after a 429.
#[derive(Debug, Default)]
pub(crate) struct Window {
    accepted: VecDeque<Instant>,
    penalty_until: Option<Instant>,
}

impl Window {
    /// Forgets requests older than one second.
    fn slide(&mut self, now: Instant) {
        while self.accepted.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
            self.accepted.pop_front();
        }
    }

    /// Whether a request now must be refused; a full window starts the penalty.
    fn refuses(&mut self, now: Instant, limit: usize, penalty: Duration) -> bool {
        if self.penalty_until.is_some_and(|p| now < p) {
            return true;
        }
        if self.accepted.len() >= limit {
            self.penalty_until = Some(now + penalty);
            return true;
        }
        false
    }

    /// Records an accepted request; returns how many the window now holds.
    fn accept(&mut self, now: Instant) -> u64 {
        self.accepted.push_back(now);
        self.accepted.len() as u64
    }
}

/// What an admitted request filled: the base's window and the token's.
pub(crate) struct Admitted {
    pub base_window: Option<u64>,
    pub token_window: u64,
}

/// Admits a request to `base` (or to no base, for `GET /v0/meta/bases`), or refuses it with `None`.
///
/// Only admitted requests fill the windows, so a client that backs off after a 429 recovers.
/// `enforce` off still measures the windows, for `Stats`. Lock order: the base's window first,
/// then the token's.
pub(crate) fn admit(
    base: Option<&mut Window>,
    token: &mut Window,
    enforce: bool,
    penalty: Duration,
) -> Option<Admitted> {
    let now = Instant::now();
    token.slide(now);
    let mut base = base;
    if let Some(b) = base.as_deref_mut() {
        b.slide(now);
    }
    if enforce {
        // A base in its penalty refuses before the token's budget is looked at, so one busy base
        // cannot put the other bases in the token's penalty.
        if let Some(b) = base.as_deref_mut()
            && b.refuses(now, PER_BASE, penalty)
        {
            return None;
        }
        if token.refuses(now, PER_TOKEN, penalty) {
            return None;
        }
    }
    let base_window = base.map(|b| b.accept(now));
    Some(Admitted { base_window, token_window: token.accept(now) })
}
