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
//! A source counts the requests of every process that uses the same key: a run started right
//! after another drew a 429 on its first request when the last one had sent five in its last
//! second, and two runs on one base at the same time would each pace to the full rate. So the
//! budgets of a runtime with a cache folder live in `<cache>/budgets`, one small file per budget
//! (for budgets of the whole rate, of at most [`SHARED_BURST`] requests a window), shared by
//! every process on the machine that paces the same key at the same origin: each reservation,
//! finish, pause and ration reads and rewrites the file under an exclusive lock (`<file>.lock`),
//! so processes running at the same time draw from one budget, and a process starts from what the
//! last one left. A request still on its way when its process died counts as finished once that
//! is seen, so a crash never stalls the others: each process holds a lock on a file of its own in
//! `<cache>/budgets/running` for as long as it runs (the system lets go of it however the process
//! ends), and a request older than any may take counts as finished too. A budget whose file cannot
//! be locked or written goes on alone, with its own state.
//!
//! A manifest's rate limit can also be keyed by the request: see [`Rule`] and [`PathPattern`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// The window a source counts requests in: rates are per second.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Budgets of at most this many requests a window are shared through their file; faster ones (a
/// bench's unlimited budgets) would rewrite it too often to be worth it.
pub const SHARED_BURST: usize = 100;

/// The longest a request may be on its way (the largest `limits.http_timeout_seconds`): a grant
/// older than this that never finished belongs to a process that can no longer finish it.
const LONGEST_FLIGHT: Duration = Duration::from_secs(86_400);

/// How often a budget looks again at a request of another process that holds it back: that
/// process's finish wakes nothing here. (The wait it ends lasts a window after the finish, so
/// looking late by this much costs nothing.)
const POLL: Duration = Duration::from_millis(50);

/// How long a budget waits for another process to let go of its file's lock before it paces on
/// alone (see `Shared::lock`).
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Every budget of the process, by rendered key and rate.
#[derive(Default)]
pub struct RateLimiters {
    budgets: Mutex<HashMap<(String, u64), Arc<Budget>>>,
    /// Where budgets keep their state for every process (see the module docs).
    shared: Option<PathBuf>,
}

impl RateLimiters {
    /// Budgets kept in `dir`, shared with every other process that keeps them there.
    pub fn shared(dir: PathBuf) -> RateLimiters {
        RateLimiters { budgets: Mutex::default(), shared: Some(dir) }
    }

    /// The budget for `key` at `per_second`, created on first use. The rate is part of the
    /// identity: a connection given a share of the budgets (`Connection::rate_share`) paces with
    /// the sessions of the same share, not with full-rate ones. Only a budget of the `whole` rate
    /// is shared with other processes: a share is one of several readers that split the rate
    /// between them (Spark's partitions, in processes of their own), which one shared budget of
    /// the share's rate would slow to that share together.
    pub fn budget(&self, key: &str, per_second: f64, whole: bool) -> Arc<Budget> {
        let mut budgets = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        let id = (key.to_string(), per_second.to_bits());
        let shared = self.shared.as_ref();
        budgets
            .entry(id)
            .or_insert_with(|| {
                let mut budget = Budget::new(per_second);
                if let Some(dir) = shared
                    && whole
                    && budget.burst <= SHARED_BURST
                {
                    // The key holds digests, not secrets (see `Rule::new`); hashed again for a name.
                    let name = crate::http::sha256_hex(format!("{key}@{per_second}").as_bytes());
                    budget.shared = Some(Shared::new(dir.join(name)));
                }
                Arc::new(budget)
            })
            .clone()
    }
}

/// This process among those that share budget files: a random number (process ids are reused,
/// and repeat between containers that share a cache folder).
fn this_process() -> u64 {
    static ID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ID.get_or_init(rand::random)
}

/// Where the processes sharing the budgets of `dir` show that they run.
fn running_dir(dir: &Path) -> PathBuf {
    dir.join("running")
}

/// Shows every process sharing `dir` that this one runs, for as long as it does: it holds a lock
/// on `<dir>/running/<its id>`, which the system lets go of however the process ends. Once per
/// folder; the files of processes that are gone are removed on the way.
fn announce(dir: &Path) {
    static HELD: Mutex<Vec<(PathBuf, std::fs::File)>> = Mutex::new(Vec::new());
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    if held.iter().any(|(d, _)| d == dir) {
        return;
    }
    let running = running_dir(dir);
    let id = this_process();
    for entry in std::fs::read_dir(&running).into_iter().flatten().flatten() {
        if let Some(other) = entry.file_name().to_str().and_then(|n| u64::from_str_radix(n, 16).ok())
            && other != id
        {
            still_running(dir, other);
        }
    }
    // Locked under another name, then named: no process sees the file before it is locked.
    let path = running.join(format!("{id:016x}"));
    let aside = path.with_extension("new");
    let file = std::fs::create_dir_all(&running)
        .and_then(|()| std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&aside))
        .and_then(|file| file.lock().map(|()| file))
        .and_then(|file| std::fs::rename(&aside, &path).map(|()| file));
    match file {
        Ok(file) => held.push((dir.to_path_buf(), file)),
        Err(e) => tracing::debug!("rate-limit budgets {}: {e}", running.display()),
    }
}

/// Whether the process `id` that shares the budgets of `dir` still runs: it holds the lock on its
/// file. A file that is no longer held is removed.
fn still_running(dir: &Path, id: u64) -> bool {
    if id == this_process() {
        return true;
    }
    let path = running_dir(dir).join(format!("{id:016x}"));
    let Ok(file) = std::fs::OpenOptions::new().write(true).open(&path) else { return false };
    match file.try_lock() {
        Ok(()) => {
            let _ = std::fs::remove_file(&path);
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        // Cannot tell: running, until the longest a request may take.
        Err(std::fs::TryLockError::Error(_)) => true,
    }
}

/// One moment on both clocks, taken at each look at a budget's file: the file holds wall-clock
/// times, the budget monotonic ones, and the two drift apart (a suspended machine, a clock set).
struct Clock {
    instant: Instant,
    system: SystemTime,
}

impl Clock {
    fn now() -> Clock {
        Clock { instant: Instant::now(), system: SystemTime::now() }
    }

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
}

/// A budget's file.
#[derive(Debug)]
struct Shared {
    path: PathBuf,
    /// Set when the file could not be locked or written: from then on the budget is this
    /// process's alone, and its state in memory the only one (the file's would lack its part).
    alone: std::sync::atomic::AtomicBool,
}

/// What a budget's file holds: Unix times in nanoseconds.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Stored {
    #[serde(default)]
    recent: Vec<StoredGrant>,
    #[serde(default)]
    next: Option<u128>,
    #[serde(default)]
    paused_until: Option<u128>,
    /// Until when, and the spacing in nanoseconds.
    #[serde(default)]
    rationed: Option<(u128, u64)>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredGrant {
    owner: u64,
    process: u64,
    id: u64,
    granted: u128,
    done: Option<u128>,
}

impl Shared {
    fn new(path: PathBuf) -> Shared {
        if let Some(dir) = path.parent() {
            announce(dir);
        }
        Shared { path, alone: std::sync::atomic::AtomicBool::new(false) }
    }

    /// Takes the budget's lock, waiting up to [`LOCK_WAIT`] for another process to let go of it.
    /// The wait blocks the thread (the session's caller): the lock is held for a read and a write
    /// of a small file, so a longer hold is a process stopped or stuck while holding it, and the
    /// budget then paces on alone rather than freeze this process's requests behind it.
    fn lock(&self) -> std::io::Result<std::fs::File> {
        let path = self.path.with_extension("lock");
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
        let started = std::time::Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("another process has held {} for over {LOCK_WAIT:?}", path.display()),
                    ));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
        }
    }

    /// Replaces the state with the file's, if there is one. The budget's own requests on their
    /// way are its to finish; another's whose process is gone, or that no request could take this
    /// long, count as finished now.
    fn load(&self, clock: &Clock, owner: u64, state: &mut State) {
        let Some(stored) =
            std::fs::read(&self.path).ok().and_then(|bytes| serde_json::from_slice::<Stored>(&bytes).ok())
        else {
            return;
        };
        let now = clock.instant;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut running: Vec<(u64, bool)> = Vec::new();
        let mut still_running = |process: u64| match running.iter().find(|(p, _)| *p == process) {
            Some((_, yes)) => *yes,
            None => {
                let yes = still_running(dir, process);
                running.push((process, yes));
                yes
            }
        };
        state.recent = stored
            .recent
            .iter()
            .filter_map(|g| {
                let granted = clock.instant(g.granted)?;
                let done = match g.done {
                    Some(t) => Some(clock.instant(t)?),
                    None if g.owner == owner => None,
                    None if now.saturating_duration_since(granted) > LONGEST_FLIGHT
                        || !still_running(g.process) =>
                    {
                        Some(now)
                    }
                    None => None,
                };
                Some(Reserved { owner: g.owner, process: g.process, id: g.id, granted, done })
            })
            .collect();
        state.next = stored.next.and_then(|t| clock.instant(t));
        state.paused_until = stored.paused_until.and_then(|t| clock.instant(t)).filter(|t| *t > now);
        state.rationed = stored
            .rationed
            .and_then(|(until, spacing)| Some((clock.instant(until)?, Duration::from_nanos(spacing))));
    }

    /// Rewrites the file whole (written aside, then renamed, under the lock).
    fn save(&self, clock: &Clock, state: &State) -> std::io::Result<()> {
        let stored = Stored {
            recent: state
                .recent
                .iter()
                .map(|g| StoredGrant {
                    owner: g.owner,
                    process: g.process,
                    id: g.id,
                    granted: clock.unix_nanos(g.granted),
                    done: g.done.map(|t| clock.unix_nanos(t)),
                })
                .collect(),
            next: state.next.map(|t| clock.unix_nanos(t)),
            paused_until: state.paused_until.map(|t| clock.unix_nanos(t)),
            rationed: state.rationed.map(|(until, spacing)| {
                (clock.unix_nanos(until), u64::try_from(spacing.as_nanos()).unwrap_or(u64::MAX))
            }),
        };
        let aside = self.path.with_extension("new");
        std::fs::write(&aside, serde_json::to_vec(&stored).unwrap_or_default())?;
        std::fs::rename(&aside, &self.path)
    }

    /// The budget goes on alone (see `alone`), and says so once.
    fn give_up(&self, e: &std::io::Error) {
        if !self.alone.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                "rate-limit budget {}: {e}; this process paces that budget alone from now on",
                self.path.display()
            );
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
    /// One acquirer of this process at a time reserves its slot, so that slots follow the order
    /// of reservation.
    turn: tokio::sync::Mutex<()>,
    finished: tokio::sync::Notify,
    /// The file the state lives in between operations, shared with other processes.
    shared: Option<Shared>,
    /// Who this budget is among those sharing the file (random: process ids are reused).
    owner: u64,
}

#[derive(Debug, Default)]
struct State {
    /// The earliest time the next request may go.
    next: Option<Instant>,
    paused_until: Option<Instant>,
    /// The spacing the source's reported quota allows, and until when (see [`Budget::ration`]).
    rationed: Option<(Instant, Duration)>,
    /// The last `burst` reservations, in order, less those that finished a window ago.
    recent: VecDeque<Reserved>,
    /// This process's reservations so far: the next one's id.
    granted: u64,
}

/// One reservation: whose (the budget and its process), and when its request finished (None
/// while it is on its way).
#[derive(Debug)]
struct Reserved {
    owner: u64,
    process: u64,
    id: u64,
    granted: Instant,
    done: Option<Instant>,
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
            state: Mutex::default(),
            turn: tokio::sync::Mutex::new(()),
            finished: tokio::sync::Notify::new(),
            shared: None,
            owner: rand::random(),
        }
    }

    /// The budget's file, unless the budget has gone on alone.
    fn shared(&self) -> Option<&Shared> {
        self.shared.as_ref().filter(|s| !s.alone.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Runs `f` on the budget's state: for a shared budget, the file's, under its lock, and
    /// written back when `f` may change it.
    fn with_state<R>(&self, changes: bool, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(shared) = self.shared() else { return f(&mut state) };
        let _lock = match shared.lock() {
            Ok(lock) => lock,
            Err(e) => {
                shared.give_up(&e);
                return f(&mut state);
            }
        };
        let clock = Clock::now();
        shared.load(&clock, self.owner, &mut state);
        let result = f(&mut state);
        if changes && let Err(e) = shared.save(&clock, &state) {
            shared.give_up(&e);
        }
        result
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
            let reserved = self.with_state(true, |s| {
                let now = Instant::now();
                // A request that finished a window ago bounds no later one: dropped, so that a
                // budget of a high rate holds (and a shared one reads and writes) its last window
                // only, not its last `burst` requests.
                while s.recent.front().is_some_and(|r| r.done.is_some_and(|done| done + WINDOW <= now)) {
                    s.recent.pop_front();
                }
                let full = s.recent.len() >= self.burst;
                if full && matches!(s.recent.front(), Some(Reserved { done: None, .. })) {
                    return None;
                }
                let mut slot = s.next.map_or(now, |n| n.max(now));
                if let Some(until) = s.paused_until {
                    slot = slot.max(until);
                }
                while s.recent.len() >= self.burst {
                    if let Some(Reserved { done: Some(done), .. }) = s.recent.pop_front() {
                        slot = slot.max(done + WINDOW);
                    }
                }
                let interval = match s.rationed {
                    Some((until, spacing)) if slot < until => spacing.max(self.interval),
                    _ => self.interval,
                };
                let id = s.granted;
                s.granted += 1;
                s.recent.push_back(Reserved {
                    owner: self.owner,
                    process: this_process(),
                    id,
                    granted: now,
                    done: None,
                });
                s.next = Some(slot + interval);
                Some((slot, id))
            });
            if let Some(reserved) = reserved {
                break reserved;
            }
            // The request `burst` places back is still on its way: wait for it to finish.
            if self.shared().is_some() {
                tokio::select! {
                    () = finished => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            } else {
                finished.await;
            }
        };
        drop(turn);
        // Made before the wait, so that an abandoned wait still finishes its place.
        let grant = Grant { budget: self, id };
        tokio::time::sleep_until(slot).await;
        grant
    }

    fn finish(&self, id: u64) {
        self.with_state(true, |s| {
            // The newest are at the back.
            if let Some(entry) = s.recent.iter_mut().rev().find(|r| r.owner == self.owner && r.id == id) {
                entry.done = Some(Instant::now());
            }
        });
        self.finished.notify_waiters();
    }

    /// Pauses the budget: the source refuses requests for `penalty`.
    pub fn pause(&self, penalty: Duration) {
        self.with_state(true, |s| {
            let until = Instant::now() + penalty;
            s.paused_until = Some(s.paused_until.map_or(until, |u| u.max(until)));
        });
    }

    /// The source reports `remaining` requests until its window resets in `reset_in`: spaces
    /// requests so that they last until then (never closer than the budget's own rate), and
    /// pauses until the reset when none are left.
    pub fn ration(&self, remaining: u64, reset_in: Duration) {
        if remaining == 0 {
            return self.pause(reset_in);
        }
        self.with_state(true, |s| {
            s.rationed = Some((Instant::now() + reset_in, reset_in / remaining.min(u32::MAX as u64) as u32));
        });
    }

    /// How the budget stands, for the log line of a 429 that happened anyway.
    pub fn describe(&self) -> String {
        self.with_state(false, |s| {
            let now = Instant::now();
            format!(
                "one request every {:?}{}, at most {} per {:?} of finishes ({} on their way{}); next slot in {:?}; paused for {:?}",
                self.interval,
                match s.rationed {
                    Some((until, spacing)) if until > now && spacing > self.interval => {
                        format!(" (every {spacing:?} for {:?}: the source's quota)", until - now)
                    }
                    _ => String::new(),
                },
                self.burst,
                WINDOW,
                s.recent.iter().filter(|r| r.done.is_none()).count(),
                if self.shared().is_some() { ", shared with other processes" } else { "" },
                s.next.map_or(Duration::ZERO, |n| n.saturating_duration_since(now)),
                s.paused_until.map_or(Duration::ZERO, |u| u.saturating_duration_since(now)),
            )
        })
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
    /// The connection's share of the manifest's rate.
    per_second: f64,
    /// Whether the connection has the whole rate, so that its budgets are the machine's (a
    /// share's are its process's: see [`RateLimiters::budget`]).
    whole: bool,
    /// The connection's values (secrets already hashed) that the key may name.
    values: BTreeMap<String, String>,
    patterns: Vec<PathPattern>,
}

impl Rule {
    /// A rule for one connection, which may use `share` of the limit's rate. `values` are its
    /// parameters, with secrets replaced by a digest.
    pub fn new(
        connector: &str,
        limit: &crate::manifest::RateLimit,
        share: f64,
        values: &BTreeMap<String, String>,
    ) -> Result<Rule, String> {
        let patterns = limit.paths.iter().map(|p| PathPattern::parse(p)).collect::<Result<Vec<_>, _>>()?;
        let rule = Rule {
            key: format!("{connector}/{}", limit.key),
            per_second: limit.per_second * share,
            whole: share >= 1.0,
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

    /// The budget a request to `path` at `origin` draws from, if this rule covers it. The origin
    /// is part of the budget's key: another server (a staging copy, a simulator on another port)
    /// counts its requests apart, whatever the key names.
    pub fn budget(&self, limiters: &RateLimiters, origin: &str, path: &str) -> Option<Arc<Budget>> {
        let key = if self.patterns.is_empty() {
            crate::template::render(&self.key, &self.values).ok()?
        } else {
            let bound = self.patterns.iter().find_map(|p| p.matches(path))?;
            let mut values = self.values.clone();
            values.extend(bound);
            crate::template::render(&self.key, &values).ok()?
        };
        Some(limiters.budget(&format!("{key} at {origin}"), self.per_second, self.whole))
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
    async fn a_budget_holds_the_requests_of_its_last_window_only() {
        // 1,000 a second: up to 1,000 requests a window. 3,000 over six seconds, one every 2 ms,
        // leave those of the last second (500), not the last 1,000: a budget of a high rate
        // searched, and a shared one read and rewrote, its whole `burst` on every request.
        let budget = Budget::new(1000.0);
        for _ in 0..3000 {
            let _grant = budget.acquire().await;
            tokio::time::advance(Duration::from_millis(2)).await;
        }
        let held = budget.with_state(false, |s| s.recent.len());
        assert!(held <= 501, "{held} requests held");
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
        let budget = RateLimiters::shared(dir.path().to_path_buf()).budget("base:app1", 5.0, true);
        let first = budget.acquire().await;
        // Before the finish: the sixth request may go a window after it, not before.
        let first_done = Instant::now();
        drop(first);
        for _ in 0..4 {
            drop(budget.acquire().await);
        }
        // A new process, the same folder: its first request is the sixth in the source's window.
        let next = RateLimiters::shared(dir.path().to_path_buf()).budget("base:app1", 5.0, true);
        drop(next.acquire().await);
        assert!(Instant::now() >= first_done + WINDOW, "the sixth request went within a window of the first");
        // Other keys and rates are other budgets.
        let other = RateLimiters::shared(dir.path().to_path_buf()).budget("base:app2", 5.0, true);
        assert!(other.describe().contains("next slot in 0ns"), "{}", other.describe());

        next.pause(Duration::from_secs(30));
        let after = RateLimiters::shared(dir.path().to_path_buf()).budget("base:app1", 5.0, true);
        let paused = after.describe();
        let left: f64 = paused.rsplit("paused for ").next().unwrap().trim_end_matches('s').parse().unwrap();
        assert!(left > 29.0, "the penalty was not remembered: {paused}");
        // Unlimited budgets (a bench's) are not written down, nor shares of a rate (each of the
        // readers that split it has its own).
        drop(RateLimiters::shared(dir.path().to_path_buf()).budget("bench", 1e5, true).acquire().await);
        drop(RateLimiters::shared(dir.path().to_path_buf()).budget("base:app1", 2.5, false).acquire().await);
        let files = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok());
        let names: Vec<_> = files.map(|e| e.file_name().into_string().unwrap()).collect();
        let budgets = names.iter().filter(|n| !n.ends_with(".lock") && *n != "running");
        assert_eq!(budgets.count(), 1, "one file, for base:app1: {names:?}");
    }

    /// Two runtimes' budgets on one folder stand for two processes: each has its own state, file
    /// handles and lock. Together they keep the window rule: any `burst + 1` requests started over
    /// at least a window, as one budget's do (each alone would go at the full rate, twice that).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn processes_pacing_one_key_draw_from_one_budget() {
        let dir = tempfile::tempdir().unwrap();
        let start = Instant::now();
        let run = |limiters: RateLimiters| async move {
            let budget = limiters.budget("base:app1", 20.0, true);
            let mut starts = Vec::new();
            for _ in 0..15 {
                let grant = budget.acquire().await;
                starts.push(start.elapsed());
                drop(grant);
            }
            starts
        };
        let one = tokio::spawn(run(RateLimiters::shared(dir.path().to_path_buf())));
        let other = tokio::spawn(run(RateLimiters::shared(dir.path().to_path_buf())));
        let mut starts = one.await.unwrap();
        starts.extend(other.await.unwrap());
        starts.sort();
        for (i, later) in starts.iter().enumerate().skip(20) {
            assert!(*later - starts[i - 20] >= WINDOW, "21 requests within a window: {starts:?}");
        }
    }

    /// A budget's file holding five requests on their way (a full window at 5 a second) from
    /// `process`.
    fn five_on_their_way(dir: &Path, key: &str, process: u64) {
        let granted = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let recent = (0..5).map(|id| StoredGrant { owner: 7, process, id, granted, done: None }).collect();
        let stored = Stored { recent, ..Stored::default() };
        let path = dir.join(crate::http::sha256_hex(format!("{key}@5").as_bytes()));
        std::fs::write(path, serde_json::to_vec(&stored).unwrap()).unwrap();
    }

    /// A real process (flock(1)) holding the lock on `file` for `seconds`, once it holds it. `-o`:
    /// flock holds the lock itself, not the command it runs, so killing it lets go.
    async fn another_process_locking(file: &Path, seconds: u32) -> std::process::Child {
        std::fs::write(file, "").unwrap();
        let child = std::process::Command::new("flock")
            .arg("-o")
            .arg(file)
            .args(["sleep", &seconds.to_string()])
            .spawn()
            .unwrap();
        while !matches!(std::fs::File::open(file).unwrap().try_lock(), Err(std::fs::TryLockError::WouldBlock))
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        child
    }

    /// Requests another process left on their way hold the budget while that process runs, and
    /// stop holding it once it is gone, however it ended (the system let go of its lock): a crash
    /// never stalls the budget.
    #[tokio::test]
    async fn requests_left_on_their_way_by_a_process_that_is_gone_do_not_hold_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let patience = Duration::from_secs(5);
        // Another process, shown as `announce` shows one: it holds the lock on its file.
        let other = 0x5eed_u64;
        std::fs::create_dir_all(running_dir(dir.path())).unwrap();
        let file = running_dir(dir.path()).join(format!("{other:016x}"));
        let mut running = another_process_locking(&file, 10).await;
        five_on_their_way(dir.path(), "running", other);
        let held = RateLimiters::shared(dir.path().to_path_buf()).budget("running", 5.0, true);
        let waited = tokio::time::timeout(Duration::from_millis(300), held.acquire()).await;
        assert!(waited.is_err(), "the requests of a running process were ignored");
        running.kill().unwrap();
        running.wait().unwrap();
        let after = tokio::time::timeout(patience, held.acquire()).await;
        assert!(after.is_ok(), "the requests of a process that is gone held the budget");
        assert!(!file.exists(), "the file of a process that is gone was kept");

        // A process that left no file at all.
        five_on_their_way(dir.path(), "vanished", 0xdead);
        let vanished = RateLimiters::shared(dir.path().to_path_buf()).budget("vanished", 5.0, true);
        let granted = tokio::time::timeout(patience, vanished.acquire()).await;
        assert!(granted.is_ok(), "the requests of a process without a file held the budget");
    }

    /// A process that holds a budget's lock and never lets go (stopped, or stuck on a slow disk)
    /// holds this one's requests back only for [`LOCK_WAIT`]: the budget then paces on alone.
    #[tokio::test]
    async fn a_lock_another_process_never_lets_go_of_holds_requests_back_only_briefly() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join(crate::http::sha256_hex(b"base:app1@1")).with_extension("lock");
        let mut holder = another_process_locking(&lock, 60).await;
        let budget = RateLimiters::shared(dir.path().to_path_buf()).budget("base:app1", 1.0, true);
        let granted = tokio::time::timeout(Duration::from_secs(20), budget.acquire()).await;
        holder.kill().unwrap();
        holder.wait().unwrap();
        assert!(granted.is_ok(), "a lock held for ever held the request back for ever");
        assert!(budget.shared().is_none(), "the budget still waits on the file's lock");
    }

    /// A budget whose file cannot be written goes on alone with what it knows: its own finish,
    /// which the file lacks, does not hold it back for ever.
    #[tokio::test]
    async fn a_budget_whose_file_cannot_be_written_paces_on_alone() {
        let dir = tempfile::tempdir().unwrap();
        let budget = RateLimiters::shared(dir.path().to_path_buf()).budget("base:app1", 1.0, true);
        let grant = budget.acquire().await;
        // From here the file cannot be rewritten: a folder takes its aside name.
        let file = dir.path().join(crate::http::sha256_hex(b"base:app1@1"));
        assert!(file.exists(), "the reservation was written");
        std::fs::create_dir(file.with_extension("new")).unwrap();
        drop(grant);
        let next = tokio::time::timeout(Duration::from_secs(5), budget.acquire()).await;
        assert!(next.is_ok(), "the budget waited for its own finish, which its file lacks");
    }

    #[test]
    fn budgets_are_shared_by_key() {
        let limiters = RateLimiters::default();
        let a = limiters.budget("base:app1", 5.0, true);
        let b = limiters.budget("base:app1", 5.0, true);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &limiters.budget("base:app2", 5.0, true)));
        // A share of the budget is a budget of its own, spaced by its own rate.
        let half = limiters.budget("base:app1", 2.5, false);
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
        let rule = Rule::new("airtable", &limit, 1.0, &BTreeMap::new()).unwrap();
        let limiters = RateLimiters::default();
        let at = "https://api.airtable.com";
        let meta = rule.budget(&limiters, at, "/v0/meta/bases/appA/tables").unwrap();
        let records = rule.budget(&limiters, at, "/v0/appA/tblX").unwrap();
        let other = rule.budget(&limiters, at, "/v0/app%42/tblX").unwrap();
        assert!(Arc::ptr_eq(&meta, &records));
        assert!(!Arc::ptr_eq(&meta, &other));
        assert!(Arc::ptr_eq(
            &other,
            &limiters.budget("airtable/base:appB at https://api.airtable.com", 5.0, true)
        ));
        assert!(rule.budget(&limiters, at, "/v1").is_none());
        // Another server's base of the same id is another budget.
        let elsewhere = rule.budget(&limiters, "http://127.0.0.1:8799", "/v0/appA/tblX").unwrap();
        assert!(!Arc::ptr_eq(&records, &elsewhere));
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
