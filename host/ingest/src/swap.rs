//! Which connector version a run uses, and how a new one takes over between two commits.
//!
//! A [`Current`] holds the active version. A following run's watcher notices when the
//! connection's connector changes (the store's pin moves, or the `.wasm` file is replaced),
//! and prepares the new version off the hot path: it is verified as any install is, compiled,
//! instantiated and probed (`list-tables`, and the schema and metadata of every table the run
//! ingests). Only then is it [offered](Current::offer). Readers look at
//! [`Current::swap_pending`] after each commit and end their read there, so that no page is read
//! by one version and committed by the other; the run then [swaps](Current::swap) and reads on
//! from the committed offsets with the new version, which stays on probation until it has
//! committed. If it traps, errs or is refused a capability first, the run
//! [rolls back](Current::roll_back) to the version before it, by itself, and never takes that
//! version again.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use weir_runtime::LoadedConnector;

/// One connector version a run can use.
pub struct Active {
    pub connector: LoadedConnector,
    /// Where it came from (bundled, installed, a file), as weir-vet describes it; None when
    /// the caller loaded the bytes itself.
    pub origin: Option<weir_vet::component::Origin>,
    /// The commit metadata that names it: `{"name","version","sha256"}`.
    pub stamp: String,
    /// How long verifying, compiling and probing it took.
    pub prepared_in: Duration,
}

impl Active {
    /// A version, stamped for the commits it makes.
    pub fn new(
        connector: LoadedConnector,
        origin: Option<weir_vet::component::Origin>,
        prepared_in: Duration,
    ) -> Active {
        let m = &connector.manifest;
        let stamp =
            serde_json::json!({"name": m.name, "version": m.version, "sha256": connector.sha256}).to_string();
        Active { connector, origin, stamp, prepared_in }
    }

    /// `name version (sha256 prefix)`, for messages.
    pub fn describe(&self) -> String {
        let m = &self.connector.manifest;
        format!(
            "{} {} ({})",
            m.name,
            m.version,
            &self.connector.sha256[..12.min(self.connector.sha256.len())]
        )
    }
}

struct State {
    active: Arc<Active>,
    /// The version before the active one while the active one is on probation.
    previous: Option<Arc<Active>>,
    /// A prepared version waiting for the next commit.
    pending: Option<Arc<Active>>,
    /// Versions that failed a probe or their probation: never taken again.
    rejected: BTreeSet<String>,
    /// When the last swap happened, until the new version's first page.
    swapped_at: Option<Instant>,
}

/// The connector version a run uses now; shared by all its readers.
pub struct Current {
    state: Mutex<State>,
}

impl Current {
    /// A run on one version.
    pub fn new(active: Active) -> Current {
        Current {
            state: Mutex::new(State {
                active: Arc::new(active),
                previous: None,
                pending: None,
                rejected: BTreeSet::new(),
                swapped_at: None,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The active version.
    pub fn get(&self) -> Arc<Active> {
        self.state().active.clone()
    }

    /// Whether `sha256` is the active, pending or a rejected version: nothing to prepare.
    pub fn knows(&self, sha256: &str) -> bool {
        let s = self.state();
        s.active.connector.sha256 == sha256
            || s.pending.as_ref().is_some_and(|p| p.connector.sha256 == sha256)
            || s.rejected.contains(sha256)
    }

    /// Offers a prepared version; it takes over at the next commit.
    pub fn offer(&self, candidate: Active) {
        self.state().pending = Some(Arc::new(candidate));
    }

    /// Never take this version (it failed its probe).
    pub fn reject(&self, sha256: &str) {
        self.state().rejected.insert(sha256.to_string());
    }

    /// Whether a prepared version waits: readers end their read after their next commit.
    pub fn swap_pending(&self) -> bool {
        self.state().pending.is_some()
    }

    /// Makes the pending version active, the old one its fallback; returns both.
    pub fn swap(&self) -> Option<(Arc<Active>, Arc<Active>)> {
        let mut s = self.state();
        let new = s.pending.take()?;
        let old = std::mem::replace(&mut s.active, new.clone());
        s.previous = Some(old.clone());
        s.swapped_at = Some(Instant::now());
        Some((old, new))
    }

    /// Whether `version` is on probation: it took over and has not committed yet.
    pub fn on_probation(&self, version: &Active) -> bool {
        let s = self.state();
        s.previous.is_some() && std::ptr::eq(Arc::as_ptr(&s.active), version)
    }

    /// The version committed: its probation ends.
    pub fn confirm(&self, version: &Active) {
        let mut s = self.state();
        if std::ptr::eq(Arc::as_ptr(&s.active), version) {
            s.previous = None;
        }
    }

    /// The time since the last swap, the first time it is asked after one (the pause a swap
    /// adds: from the old version's last commit to the new version's first page).
    pub fn take_swap_pause(&self) -> Option<Duration> {
        self.state().swapped_at.take().map(|t| t.elapsed())
    }

    /// The active version failed on probation: back to the one before it, which is returned;
    /// the failed one is never taken again.
    pub fn roll_back(&self) -> Option<(Arc<Active>, Arc<Active>)> {
        let mut s = self.state();
        let previous = s.previous.take()?;
        let failed = std::mem::replace(&mut s.active, previous.clone());
        s.rejected.insert(failed.connector.sha256.clone());
        Some((failed, previous))
    }
}
