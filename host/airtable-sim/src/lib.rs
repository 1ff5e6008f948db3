//! An Airtable-compatible HTTP server on loopback, for demos, tests and benchmarks.
//!
//! It serves the seed's *Product Launch* base (six linked tables that together use every field
//! type in `shared/reference/AIRTABLE.md`), and as many more copies of it as
//! [`SimConfig::extra_bases`] names, with the API's documented behaviour, including its failures:
//! 401/403 auth errors, the 5 requests/s per base and 50 requests/s per token rate limits with
//! their 30 s penalty, page iterators that expire, webhooks and payloads that expire, and injected
//! faults (5xx, reset connections, truncated bodies, latency). Where the real API is vaguer, the
//! simulator is stricter: unknown query parameters and body keys, formulas outside the subset
//! below, and `cellFormat=string` are refused with 422.
//!
//! ```no_run
//! use weir_airtable_sim::{Sim, SimConfig, DEFAULT_BASE_ID, DEFAULT_TOKEN};
//!
//! let sim = Sim::start(SimConfig { clock_scale: 0.01, ..SimConfig::default() })?;
//! let url = format!("{}/v0/{DEFAULT_BASE_ID}/Vendors?pageSize=5", sim.base_url());
//! // GET `url` with `Authorization: Bearer {DEFAULT_TOKEN}` → {"records":[…],"offset":"itr…/rec…"}
//! # let _ = (url, DEFAULT_TOKEN);
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! # Bases
//! The first base is `base_id` ("Product Launch"); each of `extra_bases` is "Product Launch 2",
//! "Product Launch 3", … in order. Every base holds its own copy of the seed's tables, grown
//! alike, with the same schema ids (tbl/fld/viw, derived from names) but record ids drawn from a
//! seed derived from the base id, so no two bases share a record id. An unknown base answers 403.
//!
//! # Endpoints
//! - `GET /v0/meta/bases` (1,000 a page; `offset` is an opaque token), `GET /v0/meta/bases/{base}/tables`,
//!   `PATCH /v0/meta/bases/{base}/tables/{table}/fields/{field}` (`name`, `description`).
//! - `GET /v0/{base}/{tableIdOrName}` and `POST /v0/{base}/{tableIdOrName}/listRecords` with
//!   `pageSize`, `offset`, `view`, `fields[]`, `sort[i][field]`/`sort[i][direction]`,
//!   `filterByFormula`, `maxRecords`, `returnFieldsByFieldId`, `cellFormat=json`, and the ignored
//!   `timeZone`/`userLocale` (in the POST body: `fields` and `sort` are arrays).
//! - Writes: `POST` (create, ≤ 10), `PATCH` (merge fields, ≤ 10), `DELETE ?records[]=…` (≤ 10).
//!   Writes stamp the record's modified time; a `lastModifiedTime` field with empty
//!   `referencedFieldIds` always moves, one that names fields moves only when one of them was
//!   written (as in Airtable). Counts, lookups and rollups of the written record are recomputed;
//!   cells in *other* records (inverse links, their lookups) and formulas are not.
//!   [`Sim::create_records`], [`Sim::update_records`], [`Sim::delete_records`] and
//!   [`Sim::rename_field`] make the same writes from Rust, on any base, unmetered.
//! - Webhooks, below.
//!
//! # `filterByFormula` subset
//! `IS_AFTER(a, b)`, `IS_BEFORE(a, b)` (ISO-8601 dates or date-times, UTC unless an offset is
//! given), `LAST_MODIFIED_TIME()` (no arguments), `{Field} = 'text'`, `{Field} = 12.5`, `!=`,
//! `AND(…)`, `OR(…)`, `NOT(x)`, `TRUE()`, `FALSE()`, parentheses. Function names are
//! case-insensitive; fields are referenced by name in braces. An empty cell equals `''`, `0` and
//! `FALSE()`. Anything else is answered 422 `INVALID_FILTER_BY_FORMULA` naming the formula.
//!
//! # Page iterators
//! An `offset` is `itr…/rec…`: the iterator and the next record. An iterator is a snapshot taken
//! at the first page: which records the listing holds, in which order. Later pages show those
//! records' current content and skip the ones deleted since; records created or moved into the
//! filter since are not added. Paging is O(page). Starting a filtered or sorted listing is
//! O(table), except a cdc listing: one sorted by a `lastModifiedTime` field ascending (the only
//! sort key), whose filter's top-level `AND` conjuncts `IS_AFTER`/`IS_BEFORE`/`NOT(…)` of that
//! field (or of `LAST_MODIFIED_TIME()` while it equals the field in every record) and a time
//! become a range of an index kept in that field's order. It starts in O(log table) and pages in
//! O(page + records written since it started), with exactly the records, order (ties in creation
//! order) and snapshot of the general path; other conjuncts filter as it walks. An iterator
//! expires when idle longer than `iterator_ttl × clock_scale`, or at [`Sim::expire_iterators`].
//!
//! # Webhooks
//! For a pull client (no notification is ever sent to `notificationUrl`):
//! - `POST /v0/bases/{base}/webhooks` `{"notificationUrl"?, "specification": {"options": {"filters":
//!   {"dataTypes": ["tableData" | "tableFields" | "tableMetadata", …], "recordChangeScope"?: "tbl…",
//!   "changeTypes"?: ["add" | "remove" | "update", …]}, "includes"?: {"includePreviousCellValues"?,
//!   "includeCellValuesInFieldIds"?: "all" | ["fld…"], "includePreviousFieldDefinitions"?}}}}` →
//!   `{"id": "ach…", "macSecretBase64", "expirationTime"}`. Other filter keys are refused with 422.
//!   A base holds at most 10 live webhooks: the 11th is 403 `TOO_MANY_WEBHOOKS`.
//! - `GET /v0/bases/{base}/webhooks` → `{"webhooks": [{"id", "specification", "cursorForNextPayload",
//!   "areNotificationsEnabled", "isHookEnabled", "expirationTime", "notificationUrl",
//!   "lastSuccessfulNotificationTime": null, "lastNotificationResult": null}]}`.
//! - `POST …/webhooks/{id}/refresh` → `{"expirationTime"}`; `DELETE …/webhooks/{id}` → `{}`.
//! - `GET …/webhooks/{id}/payloads?cursor=N&limit=M` (cursor ≥ 1, default 1; limit 1–50, default
//!   50) → `{"cursor": next, "mightHaveMore", "payloads": [{"timestamp", "baseTransactionNumber",
//!   "payloadFormat": "v0", "actionMetadata": {"source": "publicApi" | "client", "sourceMetadata":
//!   {"user"}}, "changedTablesById": {"tbl…": {"createdRecordsById": {rec: {"createdTime",
//!   "cellValuesByFieldId"}}, "changedRecordsById": {rec: {"current": {"cellValuesByFieldId"},
//!   "previous"?, "unchanged"?}}, "destroyedRecordIds": […], "changedFieldsById": {fld: {"current",
//!   "previous"?}}}}}]}`. A cleared cell is `null` in `current`/`previous`.
//!
//! Each write (create, update, delete, field update) is one transaction with the base's next
//! `baseTransactionNumber`; it appends one payload to every live webhook whose `dataTypes` (record
//! writes are `tableData`, field updates `tableFields`), `recordChangeScope` and `changeTypes`
//! cover it. An update that changes no cell makes no payload. Cursors start at 1 and never reset.
//! A webhook expires `webhook_ttl × clock_scale` (7 days) after its creation, last refresh or last
//! payload listing, and `expirationTime` says when; an expired or deleted webhook answers 404
//! `{"error": {"type": "NOT_FOUND", …}}` and gets no more payloads. Payloads are dropped
//! `payload_retention × clock_scale` (7 days) after they were made; asking for a cursor older than
//! the oldest kept payload answers **422 `{"error": {"type": "WEBHOOK_PAYLOADS_NOT_AVAILABLE",
//! "message": …}}`**: the client must re-create the webhook and read the table again. A cursor past
//! the next payload's is 422 `INVALID_REQUEST_UNKNOWN`. Test hooks: [`Sim::expire_webhook`],
//! [`Sim::drop_webhook_payloads`], [`Sim::webhook_ids`], [`Sim::set_webhook_faults`].
//!
//! # Rate limits and clock
//! With `rate_limit`, a request that would be the 6th accepted for its base in the last real
//! second gets 429 `RATE_LIMIT_REACHED`, and so does every request to that base for
//! `30 s × clock_scale` afterwards; each base has its own window and penalty. Across all bases,
//! the 51st request in a second (and every request for the penalty after it) gets 429 too. Every
//! authenticated request to a base counts, webhooks included; `GET /v0/meta/bases` counts only
//! for the token. The one-second window is never scaled, so a client pacing itself in real time
//! sees the real limits.
//!
//! # Faults
//! Drawn per request, after auth and the rate limit, from a generator seeded with `seed`: the
//! same seed and request order give the same faults. [`SimConfig::faults`] applies to list and
//! meta requests, [`SimConfig::webhook_faults`] (its own generator) to webhook requests; record
//! writes are never faulted. An error or reset is drawn before the request acts; a truncated body
//! comes after it acted (a truncated webhook create still created the webhook).
//!
//! # The `weir sim airtable` command
//! `weir sim airtable --rows N --seed S --port P` maps to
//! `serve(SimConfig { rows: Some(N), seed: S, ..SimConfig::default() }, TcpListener::bind(("127.0.0.1", P)))`:
//! `rows` grows every table to at least N rows; `grow` entries override it per table.

mod cdc;
mod formula;
mod grow;
mod listing;
mod rate;
mod seed;
mod server;
mod store;
mod webhooks;
mod writes;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

/// The bearer token the simulator accepts by default.
pub const DEFAULT_TOKEN: &str = "patWeirSim.0123456789abcdef0123456789abcdef";

/// The id of the simulated *Product Launch* base.
pub const DEFAULT_BASE_ID: &str = "appProductLaunch";

/// The body of a connection's `[connections.NAME.rate_limits]` table that lifts weir's pacing of
/// the Airtable connector (5 requests a second a base): for tests and benches against a simulator
/// whose own limit is off, which would otherwise wait on pacing they do not test.
pub const UNPACED: &str = "\"base:{base}\" = 100000\n\"token:{bearer_token}\" = 100000\n";

const SEVEN_DAYS: Duration = Duration::from_secs(7 * 86_400);

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The only bearer token accepted.
    pub token: String,
    /// The first base served, with the seed's *Product Launch* tables; any unknown base answers 403.
    pub base_id: String,
    /// More bases, each with its own copy of the seed's tables (grown alike) and record ids drawn
    /// from its own id, named "Product Launch 2", "Product Launch 3", … in this order.
    pub extra_bases: Vec<String>,
    /// Enforce 5 requests/s per base and 50 requests/s per token, with the 30 s penalty after a 429.
    pub rate_limit: bool,
    /// 1.0 is real time; 0.01 turns the 30 s penalty into 0.3 s and shortens iterator lifetimes alike.
    pub clock_scale: f64,
    /// Faults injected into list-records and meta requests.
    pub faults: Faults,
    /// Faults injected into webhook requests (`expire_rate` does not apply to them).
    pub webhook_faults: Faults,
    /// Grow every table to at least this many rows (what `weir sim airtable --rows N` sets).
    pub rows: Option<usize>,
    /// Grow the named table (name or id) to N rows; overrides `rows` for that table.
    pub grow: Vec<(String, usize)>,
    /// Seeds record ids, grown rows and fault draws.
    pub seed: u64,
    /// How long an idle page iterator lives before its offsets answer 422 (scaled by `clock_scale`).
    pub iterator_ttl: Duration,
    /// How long a webhook lives after its creation, refresh or last payload listing (scaled by `clock_scale`).
    pub webhook_ttl: Duration,
    /// How long a webhook's payloads are kept (scaled by `clock_scale`).
    pub payload_retention: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            token: DEFAULT_TOKEN.to_string(),
            base_id: DEFAULT_BASE_ID.to_string(),
            extra_bases: Vec::new(),
            rate_limit: false,
            clock_scale: 1.0,
            faults: Faults::default(),
            webhook_faults: Faults::default(),
            rows: None,
            grow: Vec::new(),
            seed: 0,
            iterator_ttl: Duration::from_secs(300),
            webhook_ttl: SEVEN_DAYS,
            payload_retention: SEVEN_DAYS,
        }
    }
}

/// Faults injected into requests; rates are fractions in `[0, 1]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Fraction answered 500/502/503 with an Airtable-shaped body.
    pub error_rate: f64,
    /// Fraction whose connection is closed with no response.
    pub reset_rate: f64,
    /// Fraction whose body is cut off mid-JSON.
    pub truncate_rate: f64,
    /// Added to every request the faults apply to.
    pub latency: Duration,
    /// Fraction of requests carrying an offset answered 422 `LIST_RECORDS_ITERATOR_NOT_AVAILABLE`.
    pub expire_rate: f64,
}

/// A snapshot of the simulator's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Every HTTP request received.
    pub requests: u64,
    /// Requests answered 401.
    pub unauthorized: u64,
    /// Requests answered 429.
    pub rate_limited: u64,
    /// Requests that got an injected fault (latency alone does not count).
    pub faults_injected: u64,
    /// Every distinct `Authorization` header value seen.
    pub authorization_headers: BTreeSet<String>,
    /// The most requests accepted for one base within any one-second window (the max over bases).
    pub max_requests_in_any_second: u64,
    /// The most requests accepted across all bases (the token's traffic) within any one-second window.
    pub max_token_requests_in_any_second: u64,
    /// Per base id, every base served.
    pub bases: BTreeMap<String, BaseStats>,
}

/// One base's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BaseStats {
    /// Requests to the base that passed authentication, whether answered or refused with 429.
    pub requests: u64,
    /// Of those, the ones answered 429.
    pub rate_limited: u64,
    /// The most requests accepted for this base within any one-second window.
    pub max_requests_in_any_second: u64,
}

/// An error from `Sim`'s Rust API, in the API's own terms.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status} {kind}: {message}")]
pub struct SimError {
    /// The HTTP status the API would answer.
    pub status: u16,
    /// Airtable's error type, such as `NOT_FOUND` or `INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND`.
    pub kind: String,
    /// What went wrong.
    pub message: String,
}

/// A running simulator on its own thread and tokio runtime; dropping it stops the server.
pub struct Sim {
    shared: Arc<server::Shared>,
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Sim {
    /// Builds the base (growing tables as configured) and serves it on `127.0.0.1:0`.
    pub fn start(config: SimConfig) -> anyhow::Result<Sim> {
        let shared = Arc::new(server::Shared::new(config)?);
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding the simulator to loopback")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("airtable-sim".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("airtable-sim")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    tokio::select! {
                        _ = server::run(for_thread, listener) => {}
                        _ = stopped => {}
                    }
                });
            })
            .context("spawning the simulator thread")?;
        ready_rx.recv().context("the simulator thread exited during start-up")??;
        Ok(Sim { shared, addr, stop: Some(stop), thread: Some(thread) })
    }

    /// `http://127.0.0.1:PORT`, with no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Invalidates every outstanding offset token, as a server restart would.
    pub fn expire_iterators(&self) {
        self.shared.expire_iterators()
    }

    /// Replaces the injected faults from the next request on.
    pub fn set_faults(&self, f: Faults) {
        self.shared.set_faults(f)
    }

    /// Replaces the faults injected into webhook requests from the next request on.
    pub fn set_webhook_faults(&self, f: Faults) {
        self.shared.set_webhook_faults(f)
    }

    /// Every base served, the configured `base_id` first.
    pub fn base_ids(&self) -> Vec<String> {
        self.shared.base_ids()
    }

    /// `(table id, table name)` for every table of the first base, in schema order.
    pub fn table_ids(&self) -> Vec<(String, String)> {
        self.shared.base_ids().first().and_then(|b| self.table_ids_of(b).ok()).unwrap_or_default()
    }

    /// `(table id, table name)` for every table of `base`, in schema order.
    pub fn table_ids_of(&self, base: &str) -> Result<Vec<(String, String)>, SimError> {
        let state = server::lock(&self.shared.base_slot(base)?.state);
        Ok(state.base.tables.iter().map(|t| (t.id.clone(), t.name.clone())).collect())
    }

    /// Ids of the live records of `table` (name or id) of `base`, in the table's order.
    pub fn record_ids(&self, base: &str, table: &str) -> Result<Vec<String>, SimError> {
        self.with_base(base, |s| {
            let ti =
                s.base.table_index(table).ok_or_else(|| server::invalid(format!("no table {table:?}")))?;
            Ok(s.base.tables[ti].live().map(|r| r.id.clone()).collect())
        })
    }

    /// Runs `f` on a base's state under its lock, converting API errors.
    fn with_base<T>(
        &self,
        base: &str,
        f: impl FnOnce(&mut server::BaseState) -> Result<T, server::ApiError>,
    ) -> Result<T, SimError> {
        let mut state = server::lock(&self.shared.base_slot(base)?.state);
        f(&mut state).map_err(server::ApiError::into_sim)
    }

    /// How `Sim`'s own writes write: as a person in Airtable's UI.
    fn writer(&self) -> writes::Writer {
        writes::Writer { by_id: false, ttl: self.shared.iterator_ttl, source: webhooks::Source::Client }
    }

    fn write_records(
        &self,
        base: &str,
        table: &str,
        records: &[serde_json::Value],
        write: writes::RecordWrite,
    ) -> Result<Vec<serde_json::Value>, SimError> {
        let w = self.writer();
        self.with_base(base, |s| write(s, table, records, w))
    }

    /// Creates records in `table` (name or id) of `base`, each given as `{"fields": {…}}` with
    /// fields by name or id, as if a person typed them in Airtable (webhook payloads say
    /// `"source": "client"`). Not rate-limited, never faulted, not counted in [`Stats`], and not
    /// limited to 10 records. Returns the records as the API would.
    pub fn create_records(
        &self,
        base: &str,
        table: &str,
        records: Vec<Value>,
    ) -> Result<Vec<Value>, SimError> {
        self.write_records(base, table, &records, writes::create)
    }

    /// Merges `{"id": "rec…", "fields": {…}}` edits into records of `table`, like a PATCH.
    pub fn update_records(
        &self,
        base: &str,
        table: &str,
        records: Vec<Value>,
    ) -> Result<Vec<Value>, SimError> {
        self.write_records(base, table, &records, writes::update)
    }

    /// Deletes records of `table` by id; all must exist.
    pub fn delete_records(&self, base: &str, table: &str, ids: &[&str]) -> Result<(), SimError> {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        let w = self.writer();
        self.with_base(base, |s| writes::destroy(s, table, &ids, w)).map(drop)
    }

    /// Renames a field (by name or id) of `table`, like the update-field endpoint.
    pub fn rename_field(&self, base: &str, table: &str, field: &str, name: &str) -> Result<(), SimError> {
        let body = serde_json::json!({ "name": name });
        let body = body.as_object().cloned().unwrap_or_default();
        self.with_base(base, |s| writes::update_field(s, table, field, &body, webhooks::Source::Client))
            .map(drop)
    }

    /// Ids of the live webhooks of `base`, oldest first.
    pub fn webhook_ids(&self, base: &str) -> Result<Vec<String>, SimError> {
        self.with_base(base, |s| Ok(s.hooks.ids()))
    }

    /// Makes a webhook expire now: from then on its endpoints answer 404 and it gets no payloads.
    pub fn expire_webhook(&self, base: &str, webhook: &str) -> Result<(), SimError> {
        self.with_base(base, |s| s.hooks.expire(webhook))
    }

    /// Drops every payload a webhook still keeps, as retention would after 7 days; listing from a
    /// cursor before the next payload's then answers 422 `WEBHOOK_PAYLOADS_NOT_AVAILABLE`.
    /// Returns how many were dropped.
    pub fn drop_webhook_payloads(&self, base: &str, webhook: &str) -> Result<usize, SimError> {
        self.with_base(base, |s| s.hooks.drop_payloads(webhook))
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves the simulator on `listener` until this future is dropped (for `weir sim airtable`).
pub async fn serve(config: SimConfig, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let shared = Arc::new(server::Shared::new(config)?);
    server::run(shared, listener).await
}
