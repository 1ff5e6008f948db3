//! Rate limits: request budgets shared by every session of the process.
//!
//! A budget spaces requests evenly, one every `1 / per_second` seconds, with no burst (the
//! generic cell rate algorithm with a tolerance of zero), and it never lets more requests start
//! in any window than the source admits in one, wherever in their flight the source counts them.
//! A source such as Airtable counts requests per rolling second and answers a sixth one in any
//! second with a 429 and a 30-second penalty. Even spacing alone is not enough: the source counts
//! arrivals, and a request that lingers on its way (a busy machine, a slow network) can land in
//! the same second as five later ones. So the budget also holds a request back until one window
//! after the request `burst` places before it has *finished*: the source saw that one before it
//! answered, so the two can never be counted in one window, whatever the jitter. With a fast
//! source the second rule costs nothing; with latency `L` it caps the rate at `burst / (1 s + L)`.
//!
//! After a 429 the whole budget pauses for the penalty. A source that reports its quota
//! (`X-RateLimit-Remaining` and `-Reset`, read by the http gate) rations the budget: what is left
//! is spread evenly until the reset, and nothing goes before the reset when nothing is left.
//!
//! A process does not know what the one before it sent, and a source counts both: a run started
//! right after another drew a 429 on its first request when the last one had sent five in its last
//! second. So the budgets of a runtime with a cache folder remember their last window of finished
//! requests, and a penalty, in `<cache>/budgets` (one small file per budget, rewritten as each
//! request finishes, for budgets of at most [`REMEMBERED_BURST`] requests a window), and a budget
//! starts from what the last process left there. Processes running at the same time still have
//! budgets of their own.
//!
//! A manifest's rate limit can also be keyed by the request: see [`Rule`] and [`PathPattern`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// The window a source counts requests in: rates are per second.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Budgets of at most this many requests a window remember them between processes; faster ones
/// (a bench's unlimited budgets) would rewrite their file too often to be worth it.
pub const REMEMBERED_BURST: usize = 100;

/// Every budget of the process, by rendered key and rate.
#[derive(Default)]
pub struct RateLimiters {
    budgets: Mutex<HashMap<(String, u64), Arc<Budget>>>,
    /// Where budgets remember their last requests for the next process (see the module docs).
    memory: Option<PathBuf>,
}

impl RateLimiters {
    /// Budgets that start from, and keep, their last requests in `dir`.
    pub fn remembering(dir: PathBuf) -> RateLimiters {
        RateLimiters { budgets: Mutex::default(), memory: Some(dir) }
    }

    /// The budget for `key` at `per_second`, created on first use. The rate is part of the
    /// identity: a connection given a share of the budgets (`Connection::rate_share`) paces with
    /// the sessions of the same share, not with full-rate ones.
    pub fn budget(&self, key: &str, per_second: f64) -> Arc<Budget> {
        let mut budgets = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        let id = (key.to_string(), per_second.to_bits());
        let memory = self.memory.as_ref();
        budgets
            .entry(id)
            .or_insert_with(|| {
                let budget = Budget::new(per_second);
                Arc::new(match memory {
                    // The key holds digests, not secrets (see `Rule::new`); hashed again for a name.
                    Some(dir) if budget.burst <= REMEMBERED_BURST => budget.remember(
                        dir.join(crate::http::sha256_hex(format!("{key}@{per_second}").as_bytes())),
                    ),
                    _ => budget,
                })
            })
            .clone()
    }
}

/// A budget's file, and one moment on both clocks: the file holds wall-clock times, the budget
/// monotonic ones.
#[derive(Debug)]
struct Memory {
    path: PathBuf,
    instant: Instant,
    system: SystemTime,
}

/// What a budget's file holds: Unix times in nanoseconds.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Remembered {
    finished: Vec<u128>,
    paused_until: Option<u128>,
}

impl Memory {
    fn unix_nanos(&self, t: Instant) -> u128 {
        let at = if t >= self.instant {
            self.system + (t - self.instant)
        } else {
            self.system - (self.instant - t)
        };
        at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
    }

    /// The moment, on the budget's clock; a time ahead of now stays ahead (a penalty's end, or a
    /// finish stamped by a clock set later, which then holds requests back longer, never less).
    fn instant(&self, unix_nanos: u128) -> Option<Instant> {
        let at = UNIX_EPOCH + Duration::from_nanos(u64::try_from(unix_nanos).ok()?);
        match self.system.duration_since(at) {
            Ok(age) => self.instant.checked_sub(age),
            Err(ahead) => Some(self.instant + ahead.duration()),
        }
    }

    fn load(&self) -> Remembered {
        std::fs::read(&self.path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Rewrites the file whole (written aside, then renamed); a failure only costs the next
    /// process this one's history.
    fn save(&self, state: &State) {
        let remembered = Remembered {
            finished: state.recent.iter().filter_map(|(_, done)| done.map(|t| self.unix_nanos(t))).collect(),
            paused_until: state.paused_until.map(|t| self.unix_nanos(t)),
        };
        let aside = self.path.with_extension("new");
        let written = self.path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| {
            std::fs::write(&aside, serde_json::to_vec(&remembered).unwrap_or_default())?;
            std::fs::rename(&aside, &self.path)
        });
        if let Err(e) = written {
            tracing::debug!("rate-limit budget {}: {e}", self.path.display());
        }
    }
}

/// Requests spaced at least `interval` apart, at most `burst` of them per [`WINDOW`] of
/// completions (see the module docs).
#[derive(Debug)]
pub struct Budget {
    interval: Duration,
    /// Requests the source admits in one window.
    burst: usize,
    state: Mutex<State>,
    /// One acquirer at a time reserves its slot, so that slots follow the order of reservation.
    turn: tokio::sync::Mutex<()>,
    finished: tokio::sync::Notify,
    memory: Option<Memory>,
}

#[derive(Debug)]
struct State {
    /// The earliest time the next request may go.
    next: Option<Instant>,
    paused_until: Option<Instant>,
    /// The spacing the source's reported quota allows, and until when (see [`Budget::ration`]).
    rationed: Option<(Instant, Duration)>,
    /// The last `burst` grants in order: their id, and when their request finished (None while
    /// it is on its way).
    recent: VecDeque<(u64, Option<Instant>)>,
    granted: u64,
}

/// Leave to send one request; dropping it records that the request has finished (answered,
/// failed or abandoned).
#[must_use = "the grant marks the request's end when dropped"]
pub struct Grant<'a> {
    budget: &'a Budget,
    id: u64,
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        self.budget.finish(self.id);
    }
}

impl Budget {
    /// A budget of `per_second` requests per second (fractions allowed: 0.5 is one per 2 s).
    /// Values out of range are clamped to what a [`Duration`] holds; manifests are validated
    /// before they get here.
    pub fn new(per_second: f64) -> Budget {
        let valid = per_second.is_finite() && per_second > 0.0;
        let seconds = if valid { 1.0 / per_second } else { 1.0 };
        let burst =
            if valid { (per_second * WINDOW.as_secs_f64()).floor().clamp(1.0, 1e6) as usize } else { 1 };
        Budget {
            interval: Duration::from_secs_f64(seconds.clamp(0.0, 86_400.0)),
            burst,
            state: Mutex::new(State {
                next: None,
                paused_until: None,
                rationed: None,
                recent: VecDeque::new(),
                granted: 0,
            }),
            turn: tokio::sync::Mutex::new(()),
            finished: tokio::sync::Notify::new(),
            memory: None,
        }
    }

    /// The budget, started from what `path` remembers and kept there.
    fn remember(mut self, path: PathBuf) -> Budget {
        let memory = Memory { path, instant: Instant::now(), system: SystemTime::now() };
        let remembered = memory.load();
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        let mut finished: Vec<Instant> =
            remembered.finished.iter().filter_map(|t| memory.instant(*t)).collect();
        finished.sort();
        let keep = finished.len().saturating_sub(self.burst);
        for done in finished.into_iter().skip(keep) {
            state.recent.push_back((state.granted, Some(done)));
            state.granted += 1;
        }
        state.paused_until =
            remembered.paused_until.and_then(|t| memory.instant(t)).filter(|t| *t > memory.instant);
        self.memory = Some(memory);
        self
    }

    /// The spacing between two requests.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits until a request may go, and reserves its place. Keep the grant until the request
    /// has finished.
    pub async fn acquire(&self) -> Grant<'_> {
        let turn = self.turn.lock().await;
        let (slot, id) = loop {
            // Created before looking, so that a finish in between still wakes it.
            let finished = self.finished.notified();
            {
                let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let full = s.recent.len() >= self.burst;
                if !(full && matches!(s.recent.front(), Some((_, None)))) {
                    let now = Instant::now();
                    let mut slot = s.next.map_or(now, |n| n.max(now));
                    if let Some(until) = s.paused_until {
                        slot = slot.max(until);
                    }
                    if full && let Some((_, Some(done))) = s.recent.pop_front() {
                        slot = slot.max(done + WINDOW);
                    }
                    let interval = match s.rationed {
                        Some((until, spacing)) if slot < until => spacing.max(self.interval),
                        _ => self.interval,
                    };
                    let id = s.granted;
                    s.granted += 1;
                    s.recent.push_back((id, None));
                    s.next = Some(slot + interval);
                    break (slot, id);
                }
            }
            // The request `burst` places back is still on its way: wait for it to finish.
            finished.await;
        };
        drop(turn);
        // Made before the wait, so that an abandoned wait still finishes its place.
        let grant = Grant { budget: self, id };
        tokio::time::sleep_until(slot).await;
        grant
    }

    fn finish(&self, id: u64) {
        {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = s.recent.iter_mut().find(|(i, _)| *i == id) {
                entry.1 = Some(Instant::now());
            }
            if let Some(memory) = &self.memory {
                memory.save(&s);
            }
        }
        self.finished.notify_waiters();
    }

    /// Pauses the budget: the source refuses requests for `penalty`.
    pub fn pause(&self, penalty: Duration) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let until = Instant::now() + penalty;
        s.paused_until = Some(s.paused_until.map_or(until, |u| u.max(until)));
        if let Some(memory) = &self.memory {
            memory.save(&s);
        }
    }

    /// The source reports `remaining` requests until its window resets in `reset_in`: spaces
    /// requests so that they last until then (never closer than the budget's own rate), and
    /// pauses until the reset when none are left.
    pub fn ration(&self, remaining: u64, reset_in: Duration) {
        if remaining == 0 {
            return self.pause(reset_in);
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.rationed = Some((Instant::now() + reset_in, reset_in / remaining.min(u32::MAX as u64) as u32));
    }

    /// How the budget stands, for the log line of a 429 that happened anyway.
    pub fn describe(&self) -> String {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        format!(
            "one request every {:?}{}, at most {} per {:?} of finishes ({} on their way); next slot in {:?}; paused for {:?}",
            self.interval,
            match s.rationed {
                Some((until, spacing)) if until > now && spacing > self.interval => {
                    format!(" (every {spacing:?} for {:?}: the source's quota)", until - now)
                }
                _ => String::new(),
            },
            self.burst,
            WINDOW,
            s.recent.iter().filter(|(_, done)| done.is_none()).count(),
            s.next.map_or(Duration::ZERO, |n| n.saturating_duration_since(now)),
            s.paused_until.map_or(Duration::ZERO, |u| u.saturating_duration_since(now)),
        )
    }
}

/// One segment of a [`PathPattern`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Capture(String),
    Rest,
}

/// A URL path pattern: `/`-separated literals, `{name}` captures of one segment, and a final `*`
/// matching any number of segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern(Vec<Segment>);

impl PathPattern {
    /// Parses a pattern such as `/v0/{base}/*`.
    pub fn parse(text: &str) -> Result<PathPattern, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!("path pattern {text:?} must start with /"));
        };
        let pieces: Vec<&str> = rest.split('/').collect();
        let mut segments = Vec::with_capacity(pieces.len());
        for (i, piece) in pieces.iter().enumerate() {
            segments.push(match *piece {
                "*" if i + 1 == pieces.len() => Segment::Rest,
                "*" => return Err(format!("path pattern {text:?}: * may only end a pattern")),
                p if p.starts_with('{') && p.ends_with('}') && p.len() > 2 => {
                    let name = &p[1..p.len() - 1];
                    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        return Err(format!("path pattern {text:?}: bad capture {p}"));
                    }
                    Segment::Capture(name.to_string())
                }
                p if p.contains(['{', '}', '*']) => {
                    return Err(format!("path pattern {text:?}: segment {p:?} mixes text with {{}} or *"));
                }
                p => Segment::Literal(p.to_string()),
            });
        }
        Ok(PathPattern(segments))
    }

    /// The names the pattern captures.
    pub fn captures(&self) -> Vec<String> {
        self.0
            .iter()
            .filter_map(|s| match s {
                Segment::Capture(name) => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// The captured segments (percent-decoded) when `path` matches.
    pub fn matches(&self, path: &str) -> Option<BTreeMap<String, String>> {
        let mut parts = path.strip_prefix('/')?.split('/');
        let mut bound = BTreeMap::new();
        for segment in &self.0 {
            match segment {
                Segment::Rest => return Some(bound),
                Segment::Literal(l) => {
                    if parts.next()? != l {
                        return None;
                    }
                }
                Segment::Capture(name) => {
                    let part = parts.next().filter(|p| !p.is_empty())?;
                    let decoded = url::form_urlencoded::parse(format!("x={part}").as_bytes())
                        .next()
                        .map_or_else(|| part.to_string(), |(_, v)| v.into_owned());
                    bound.insert(name.clone(), decoded);
                }
            }
        }
        parts.next().is_none().then_some(bound)
    }
}

/// One manifest rate limit, rendered for a connection: which budget a request draws from.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The key template, qualified with the connector's name.
    key: String,
    per_second: f64,
    /// The connection's values (secrets already hashed) that the key may name.
    values: BTreeMap<String, String>,
    patterns: Vec<PathPattern>,
}

impl Rule {
    /// A rule for one connection. `values` are its parameters, with secrets replaced by a digest.
    pub fn new(
        connector: &str,
        limit: &crate::manifest::RateLimit,
        values: &BTreeMap<String, String>,
    ) -> Result<Rule, String> {
        let patterns = limit.paths.iter().map(|p| PathPattern::parse(p)).collect::<Result<Vec<_>, _>>()?;
        let rule = Rule {
            key: format!("{connector}/{}", limit.key),
            per_second: limit.per_second,
            values: values.clone(),
            patterns,
        };
        if rule.patterns.is_empty() {
            // Rendered now, so that a key naming a missing parameter fails the connection.
            crate::template::render(&rule.key, &rule.values)
                .map_err(|e| format!("rate limit {:?}: {e}", limit.key))?;
        }
        Ok(rule)
    }

    /// The budget a request to `path` draws from, if this rule covers it.
    pub fn budget(&self, limiters: &RateLimiters, path: &str) -> Option<Arc<Budget>> {
        let key = if self.patterns.is_empty() {
            crate::template::render(&self.key, &self.values).ok()?
        } else {
            let bound = self.patterns.iter().find_map(|p| p.matches(path))?;
            let mut values = self.values.clone();
            values.extend(bound);
            crate::template::render(&self.key, &values).ok()?
        };
        Some(limiters.budget(&key, self.per_second))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_evenly_at_the_full_rate() {
        let budget = Budget::new(5.0);
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..23 {
            let _grant = budget.acquire().await;
            times.push(start.elapsed());
        }
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(200), "{pair:?}");
        }
        // Requests that finish at once lose nothing to the window rule: 22 intervals of 200 ms.
        assert!(times[22] <= Duration::from_millis(22 * 200 + 1), "{:?}", times[22]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_on_its_way_holds_back_the_one_a_burst_later_until_a_window_after_it_ends() {
        let budget = Budget::new(5.0);
        let start = Instant::now();
        let first = budget.acquire().await;
        for i in 1..5 {
            let _quick = budget.acquire().await;
            assert_eq!(start.elapsed(), Duration::from_millis(200 * i));
        }
        // The first request's answer comes at 900 ms; however late the source counted it, the
        // sixth request must not reach it within the same second.
        let finish_first = async {
            tokio::time::sleep_until(start + Duration::from_millis(900)).await;
            drop(first);
        };
        let sixth = async {
            let _grant = budget.acquire().await;
            start.elapsed()
        };
        let ((), sixth) = tokio::join!(finish_first, sixth);
        assert_eq!(sixth, Duration::from_millis(1900));
        assert!(budget.describe().contains("at most 5 per 1s"), "{}", budget.describe());
    }

    #[tokio::test(start_paused = true)]
    async fn pause_holds_every_request_back() {
        let budget = Budget::new(50.0);
        budget.pause(Duration::from_secs(30));
        let start = Instant::now();
        let _grant = budget.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reported_quota_spreads_what_is_left_until_the_reset() {
        let budget = Budget::new(10.0);
        let start = Instant::now();
        // 4 requests left for the next 8 s: one every 2 s instead of every 100 ms.
        budget.ration(4, Duration::from_secs(8));
        let mut times = Vec::new();
        for _ in 0..4 {
            let _grant = budget.acquire().await;
            times.push(start.elapsed());
        }
        assert_eq!(times, [0, 2, 4, 6].map(Duration::from_secs));
        assert!(budget.describe().contains("the source's quota"), "{}", budget.describe());
        // After the reset, the budget's own rate again.
        let _ = budget.acquire().await;
        let eight = start.elapsed();
        let _ = budget.acquire().await;
        assert_eq!(start.elapsed() - eight, Duration::from_millis(100));
        // Nothing left: nothing goes before the reset.
        budget.ration(0, Duration::from_secs(30));
        let before = Instant::now();
        let _ = budget.acquire().await;
        assert!(before.elapsed() >= Duration::from_secs(30));
        // A generous quota changes nothing.
        budget.ration(4000, Duration::from_secs(60));
        let _ = budget.acquire().await;
        let before = Instant::now();
        let _ = budget.acquire().await;
        assert_eq!(before.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test]
    async fn the_next_process_starts_from_the_budgets_last_window_and_penalty() {
        let dir = tempfile::tempdir().unwrap();
        let budget = RateLimiters::remembering(dir.path().to_path_buf()).budget("base:app1", 5.0);
        drop(budget.acquire().await);
        let first_done = Instant::now();
        for _ in 0..4 {
            drop(budget.acquire().await);
        }
        // A new process, the same folder: its first request is the sixth in the source's window.
        let next = RateLimiters::remembering(dir.path().to_path_buf()).budget("base:app1", 5.0);
        drop(next.acquire().await);
        assert!(Instant::now() >= first_done + WINDOW, "the sixth request went within a window of the first");
        // Other keys and rates are other budgets.
        let other = RateLimiters::remembering(dir.path().to_path_buf()).budget("base:app2", 5.0);
        assert!(other.describe().contains("next slot in 0ns"), "{}", other.describe());

        next.pause(Duration::from_secs(30));
        let after = RateLimiters::remembering(dir.path().to_path_buf()).budget("base:app1", 5.0);
        let paused = after.describe();
        let left: f64 = paused.rsplit("paused for ").next().unwrap().trim_end_matches('s').parse().unwrap();
        assert!(left > 29.0, "the penalty was not remembered: {paused}");
        // Unlimited budgets (a bench's) are not written down.
        drop(RateLimiters::remembering(dir.path().to_path_buf()).budget("bench", 1e5).acquire().await);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "one file, for base:app1");
    }

    #[test]
    fn budgets_are_shared_by_key() {
        let limiters = RateLimiters::default();
        let a = limiters.budget("base:app1", 5.0);
        let b = limiters.budget("base:app1", 5.0);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &limiters.budget("base:app2", 5.0)));
        // A share of the budget is a budget of its own, spaced by its own rate.
        let half = limiters.budget("base:app1", 2.5);
        assert!(!Arc::ptr_eq(&a, &half));
        assert!((half.interval().as_secs_f64() - 2.0 * a.interval().as_secs_f64()).abs() < 1e-6);
    }

    #[test]
    fn path_patterns_bind_segments_and_the_first_match_wins() {
        let limit = crate::manifest::RateLimit {
            key: "base:{base}".into(),
            per_second: 5.0,
            paths: vec!["/v0/meta/bases/{base}/*".into(), "/v0/{base}/*".into()],
        };
        let rule = Rule::new("airtable", &limit, &BTreeMap::new()).unwrap();
        let limiters = RateLimiters::default();
        let meta = rule.budget(&limiters, "/v0/meta/bases/appA/tables").unwrap();
        let records = rule.budget(&limiters, "/v0/appA/tblX").unwrap();
        let other = rule.budget(&limiters, "/v0/app%42/tblX").unwrap();
        assert!(Arc::ptr_eq(&meta, &records));
        assert!(!Arc::ptr_eq(&meta, &other));
        assert!(Arc::ptr_eq(&other, &limiters.budget("airtable/base:appB", 5.0)));
        assert!(rule.budget(&limiters, "/v1").is_none());
        assert!(PathPattern::parse("v0/{a}").is_err());
        assert!(PathPattern::parse("/*/x").is_err());
        assert!(PathPattern::parse("/a{b}").is_err());
        assert_eq!(
            PathPattern::parse("/x/{a}/*").unwrap().matches("/x/1"),
            Some([("a".to_string(), "1".to_string())].into())
        );
        assert_eq!(PathPattern::parse("/x/{a}").unwrap().matches("/x/1/2"), None);
    }
}
