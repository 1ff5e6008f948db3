//! Rate limits: request budgets shared by every session of the process.
//!
//! A budget is a sliding window ("at most N requests in any window"), not a token bucket:
//! Airtable counts requests per rolling second, and a bucket's burst after an idle spell
//! followed by its steady refill can put N+1 requests into one second and earn a 30 s
//! penalty. After a 429 the whole budget pauses for the penalty.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Extra room on each window, so that clock jitter between host and source never adds up
/// to one request too many.
const MARGIN: f64 = 1.03;

/// Every budget of the process, by rendered key.
#[derive(Default)]
pub struct RateLimiters {
    budgets: Mutex<HashMap<String, Arc<Budget>>>,
}

impl RateLimiters {
    /// The budget for `key`, created on first use with `per_second`.
    pub fn budget(&self, key: &str, per_second: f64) -> Arc<Budget> {
        let mut budgets = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        budgets.entry(key.to_string()).or_insert_with(|| Arc::new(Budget::new(per_second))).clone()
    }
}

/// At most `capacity` requests in any `window`.
pub struct Budget {
    capacity: usize,
    window: Duration,
    state: Mutex<State>,
}

struct State {
    grants: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

impl Budget {
    /// A budget of `per_second` requests per second (fractions allowed: 0.5 is one per 2 s).
    pub fn new(per_second: f64) -> Budget {
        let capacity = per_second.floor().max(1.0);
        Budget {
            capacity: capacity as usize,
            window: Duration::from_secs_f64(capacity / per_second * MARGIN),
            state: Mutex::new(State { grants: VecDeque::new(), paused_until: None }),
        }
    }

    /// Waits until a request may go, and counts it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                match s.paused_until {
                    Some(until) if until > now => Some(until - now),
                    _ => {
                        while s.grants.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
                            s.grants.pop_front();
                        }
                        if s.grants.len() < self.capacity {
                            s.grants.push_back(now);
                            None
                        } else {
                            s.grants.front().map(|t| self.window.saturating_sub(now.duration_since(*t)))
                        }
                    }
                }
            };
            match wait {
                None => return,
                Some(d) => tokio::time::sleep(d).await,
            }
        }
    }

    /// Pauses the budget: the source refuses requests for `penalty`.
    pub fn pause(&self, penalty: Duration) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let until = Instant::now() + penalty;
        s.paused_until = Some(s.paused_until.map_or(until, |u| u.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_grants_more_than_capacity_in_any_window() {
        let budget = Budget::new(5.0);
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..23 {
            budget.acquire().await;
            times.push(start.elapsed());
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..].iter().filter(|u| **u - *t < Duration::from_secs(1)).count();
            assert!(in_window <= 5, "{in_window} grants within 1 s of {t:?}");
        }
        // 23 requests at 5/s need at least 4 full windows.
        assert!(times[22] >= Duration::from_secs(4), "{:?}", times[22]);
    }

    #[tokio::test(start_paused = true)]
    async fn pause_holds_every_request_back() {
        let budget = Budget::new(50.0);
        budget.pause(Duration::from_secs(30));
        let start = Instant::now();
        budget.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(30));
    }

    #[test]
    fn budgets_are_shared_by_key() {
        let limiters = RateLimiters::default();
        let a = limiters.budget("base:app1", 5.0);
        let b = limiters.budget("base:app1", 5.0);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &limiters.budget("base:app2", 5.0)));
    }
}
