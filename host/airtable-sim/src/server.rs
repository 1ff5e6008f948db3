//! The HTTP side: the bases served, routes, auth, the rate limits, and injected faults.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::listing::{ListParams, list_page};
use crate::rate::{self, Window};
use crate::seed::{SplitMix, hash};
use crate::store::{Base, FieldDef, Iterators, Record, format_time};
use crate::webhooks::{self, Source, Webhooks};
use crate::{BaseStats, Faults, SimConfig, SimError, Stats, writes};

/// An error as the client sees it.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// `{"error":{"type","message"}}` with a status.
    Typed { status: StatusCode, kind: &'static str, message: String },
    /// The bare-string form Airtable uses for unknown routes.
    NotFound,
    /// The connection is closed with no response at all.
    Reset,
}

pub(crate) fn typed(status: u16, kind: &'static str, message: impl Into<String>) -> ApiError {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    ApiError::Typed { status, kind, message: message.into() }
}

pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
    typed(422, "INVALID_REQUEST_UNKNOWN", message)
}

pub(crate) fn forbidden() -> ApiError {
    typed(
        403,
        "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
        "Invalid permissions, or the requested model was not found. Check that both your user and your token have the required permissions, and that the model names and/or ids are correct.",
    )
}

pub(crate) fn iterator_gone() -> ApiError {
    typed(
        422,
        "LIST_RECORDS_ITERATOR_NOT_AVAILABLE",
        "The list records iterator is not available: it expired or the server restarted. Restart the listing from the beginning.",
    )
}

/// A body that fails: at once (hyper then drops the connection before writing even the head), or
/// after sending `prefix` and letting it flush, so the client gets a 200 and half a JSON document.
fn failing_body(prefix: Option<Bytes>) -> Body {
    use futures_util::StreamExt;
    let err = || std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected fault");
    match prefix {
        None => Body::from_stream(futures_util::stream::once(async move { Err::<Bytes, _>(err()) })),
        Some(p) => {
            let later = futures_util::stream::once(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err::<Bytes, _>(err())
            });
            Body::from_stream(futures_util::stream::once(async move { Ok(p) }).chain(later))
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Typed { status, kind, message } => {
                (status, Json(json!({"error": {"type": kind, "message": message}}))).into_response()
            }
            ApiError::NotFound => {
                (StatusCode::NOT_FOUND, Json(json!({"error": "NOT_FOUND"}))).into_response()
            }
            ApiError::Reset => Response::new(failing_body(None)),
        }
    }
}

impl ApiError {
    /// The error as `Sim`'s Rust API reports it.
    pub(crate) fn into_sim(self) -> SimError {
        match self {
            ApiError::Typed { status, kind, message } => {
                SimError { status: status.as_u16(), kind: kind.to_string(), message }
            }
            ApiError::NotFound => SimError { status: 404, kind: "NOT_FOUND".into(), message: String::new() },
            ApiError::Reset => SimError { status: 0, kind: "RESET".into(), message: String::new() },
        }
    }
}

/// One base: its data, iterators and webhooks under one lock (so a page is read consistently and
/// a write reaches the webhooks in the same transaction), and its own rate-limit window.
pub(crate) struct BaseSlot {
    pub id: String,
    pub name: String,
    pub state: Mutex<BaseState>,
    rate: Mutex<Window>,
}

/// What a base's lock guards.
pub(crate) struct BaseState {
    pub base: Base,
    pub iters: Iterators,
    /// Draws the ids of records created through the API.
    pub ids: SplitMix,
    pub hooks: Webhooks,
}

/// Faults to inject, and the generator that draws them.
struct FaultDraw {
    faults: Faults,
    rng: SplitMix,
}

/// What the handlers share.
pub(crate) struct Shared {
    token_header: String,
    rate_limit: bool,
    penalty: Duration,
    pub iterator_ttl: Duration,
    bases: Vec<BaseSlot>,
    by_id: HashMap<String, usize>,
    token_rate: Mutex<Window>,
    faults: Mutex<FaultDraw>,
    webhook_faults: Mutex<FaultDraw>,
    stats: Mutex<Stats>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The seed of a base: the configured seed for the first, one derived from the id for the others,
/// so no two bases share record ids.
fn base_seed(seed: u64, index: usize, id: &str) -> u64 {
    if index == 0 { seed } else { seed ^ hash(id).rotate_left(29) }
}

/// Builds one base's tables, growing them as configured.
fn build_base(config: &SimConfig, seed: u64) -> anyhow::Result<Base> {
    let mut base = crate::seed::build(seed)?;
    for ti in 0..base.tables.len() {
        let wanted =
            config.grow.iter().find(|(name, _)| *name == base.tables[ti].name || *name == base.tables[ti].id);
        if let Some(n) = wanted.map(|(_, n)| *n).or(config.rows) {
            crate::grow::grow(&mut base, ti, n, seed);
        }
    }
    if let Some((name, _)) = config.grow.iter().find(|(name, _)| base.table_index(name).is_none()) {
        anyhow::bail!("cannot grow unknown table {name:?}; the tables are {:?}", crate::seed::TABLES);
    }
    for t in &mut base.tables {
        t.reorder();
    }
    Ok(base)
}

impl Shared {
    pub fn new(config: SimConfig) -> anyhow::Result<Shared> {
        if !(config.clock_scale.is_finite() && config.clock_scale >= 0.0) {
            anyhow::bail!("clock_scale must be a finite number ≥ 0, got {}", config.clock_scale);
        }
        let ids: Vec<&String> = std::iter::once(&config.base_id).chain(&config.extra_bases).collect();
        let mut by_id = HashMap::new();
        let mut bases = Vec::new();
        let hook_config = webhooks::Config {
            ttl: config.webhook_ttl.mul_f64(config.clock_scale),
            retention: config.payload_retention.mul_f64(config.clock_scale),
        };
        for (i, id) in ids.into_iter().enumerate() {
            if by_id.insert(id.clone(), i).is_some() {
                anyhow::bail!("base id {id:?} is configured twice");
            }
            let seed = base_seed(config.seed, i, id);
            let name = match i {
                0 => crate::seed::BASE_NAME.to_string(),
                _ => format!("{} {}", crate::seed::BASE_NAME, i + 1),
            };
            let base = build_base(&config, seed)?;
            let state = BaseState {
                base,
                iters: Iterators::default(),
                ids: SplitMix(seed ^ 0x1d5),
                hooks: Webhooks::new(hook_config.clone(), SplitMix(seed ^ 0x400c)),
            };
            bases.push(BaseSlot { id: id.clone(), name, state: Mutex::new(state), rate: Mutex::default() });
        }
        let stats = Stats {
            bases: bases.iter().map(|b| (b.id.clone(), BaseStats::default())).collect(),
            ..Stats::default()
        };
        Ok(Shared {
            token_header: format!("Bearer {}", config.token),
            rate_limit: config.rate_limit,
            penalty: Duration::from_secs(30).mul_f64(config.clock_scale),
            iterator_ttl: config.iterator_ttl.mul_f64(config.clock_scale),
            bases,
            by_id,
            token_rate: Mutex::default(),
            faults: Mutex::new(FaultDraw { faults: config.faults, rng: SplitMix(config.seed ^ 0xfa17) }),
            webhook_faults: Mutex::new(FaultDraw {
                faults: config.webhook_faults,
                rng: SplitMix(config.seed ^ 0x400c_fa17),
            }),
            stats: Mutex::new(stats),
        })
    }

    pub fn stats(&self) -> Stats {
        lock(&self.stats).clone()
    }

    pub fn expire_iterators(&self) {
        for b in &self.bases {
            lock(&b.state).iters.live.clear();
        }
    }

    pub fn set_faults(&self, f: Faults) {
        lock(&self.faults).faults = f;
    }

    pub fn set_webhook_faults(&self, f: Faults) {
        lock(&self.webhook_faults).faults = f;
    }

    pub fn base_ids(&self) -> Vec<String> {
        self.bases.iter().map(|b| b.id.clone()).collect()
    }

    /// The base with this id, for `Sim`'s Rust API.
    pub fn base_slot(&self, id: &str) -> Result<&BaseSlot, SimError> {
        self.base(id).map_err(ApiError::into_sim)
    }

    /// The base a request names, or 403 as Airtable answers for a base the token cannot see.
    pub(crate) fn base(&self, id: &str) -> Result<&BaseSlot, ApiError> {
        self.by_id.get(id).map(|&i| &self.bases[i]).ok_or_else(forbidden)
    }

    /// How an API request writes records.
    fn writer(&self, by_id: bool) -> writes::Writer {
        writes::Writer { by_id, ttl: self.iterator_ttl, source: Source::PublicApi }
    }

    /// Admits a request to `base` (all bases for `None`) under both rate limits, or answers 429.
    pub(crate) fn rate_check(&self, base: Option<&BaseSlot>) -> Result<(), ApiError> {
        let mut base_window = base.map(|b| lock(&b.rate));
        let admitted = rate::admit(
            base_window.as_deref_mut(),
            &mut lock(&self.token_rate),
            self.rate_limit,
            self.penalty,
        );
        drop(base_window);
        let mut stats = lock(&self.stats);
        let per_base = base.and_then(|b| stats.bases.get_mut(&b.id));
        let Some(admitted) = admitted else {
            if let Some(b) = per_base {
                b.requests += 1;
                b.rate_limited += 1;
            }
            stats.rate_limited += 1;
            return Err(typed(429, "RATE_LIMIT_REACHED", "Rate limit exceeded. Please try again later"));
        };
        if let (Some(b), Some(n)) = (per_base, admitted.base_window) {
            b.requests += 1;
            b.max_requests_in_any_second = b.max_requests_in_any_second.max(n);
        }
        if let Some(n) = admitted.base_window {
            stats.max_requests_in_any_second = stats.max_requests_in_any_second.max(n);
        }
        stats.max_token_requests_in_any_second =
            stats.max_token_requests_in_any_second.max(admitted.token_window);
        Ok(())
    }

    /// Draws this list/meta request's injected fault; `Ok(true)` asks for a truncated body.
    async fn faults(&self, has_offset: bool) -> Result<bool, ApiError> {
        self.draw(&self.faults, has_offset).await
    }

    /// Draws a webhook request's injected fault, from its own settings and generator.
    pub(crate) async fn webhook_faults(&self) -> Result<bool, ApiError> {
        self.draw(&self.webhook_faults, false).await
    }

    /// Draws a fault deterministically from the seed and the request order.
    async fn draw(&self, from: &Mutex<FaultDraw>, has_offset: bool) -> Result<bool, ApiError> {
        let (latency, outcome) = {
            let mut guard = lock(from);
            let FaultDraw { faults: f, rng } = &mut *guard;
            let outcome = if rng.unit() < f.error_rate {
                let status = [500, 502, 503][rng.below(3) as usize];
                let (kind, msg) = match status {
                    500 => ("SERVER_ERROR", "Try again. If the problem persists, contact support."),
                    502 => ("BAD_GATEWAY", "Bad gateway. Try again."),
                    _ => ("SERVICE_UNAVAILABLE", "The service is temporarily unavailable. Try again."),
                };
                Err(typed(status, kind, msg))
            } else if rng.unit() < f.reset_rate {
                Err(ApiError::Reset)
            } else if has_offset && rng.unit() < f.expire_rate {
                Err(iterator_gone())
            } else {
                Ok(rng.unit() < f.truncate_rate)
            };
            (f.latency, outcome)
        };
        if matches!(outcome, Err(_) | Ok(true)) {
            lock(&self.stats).faults_injected += 1;
        }
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        outcome
    }
}

type St = State<Arc<Shared>>;

/// Builds the router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v0/meta/bases", get(meta_bases))
        .route("/v0/meta/bases/{base}/tables", get(meta_tables))
        .route("/v0/meta/bases/{base}/tables/{table}/fields/{field}", patch(update_field))
        .route("/v0/bases/{base}/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/v0/bases/{base}/webhooks/{id}", axum::routing::delete(webhooks::delete))
        .route("/v0/bases/{base}/webhooks/{id}/refresh", post(webhooks::refresh))
        .route("/v0/bases/{base}/webhooks/{id}/payloads", get(webhooks::payloads))
        .route("/v0/{base}/{table}", get(list_get).post(create).patch(update).delete(destroy))
        .route("/v0/{base}/{table}/listRecords", post(list_post))
        .route_layer(middleware::from_fn_with_state(shared.clone(), auth))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::NotFound })
        .layer(middleware::from_fn_with_state(shared.clone(), count))
        .with_state(shared)
}

async fn count(State(s): St, req: Request, next: Next) -> Response {
    {
        let mut stats = lock(&s.stats);
        stats.requests += 1;
        if let Some(h) = req.headers().get(header::AUTHORIZATION) {
            stats.authorization_headers.insert(String::from_utf8_lossy(h.as_bytes()).into_owned());
        }
    }
    next.run(req).await
}

async fn auth(State(s): St, req: Request, next: Next) -> Response {
    let ok =
        req.headers().get(header::AUTHORIZATION).is_some_and(|h| h.as_bytes() == s.token_header.as_bytes());
    if !ok {
        lock(&s.stats).unauthorized += 1;
        return typed(401, "AUTHENTICATION_REQUIRED", "Authentication required").into_response();
    }
    next.run(req).await
}

/// Serialises a successful answer, cut short when a truncation fault was drawn.
pub(crate) fn reply(v: &Value, truncate: bool) -> Response {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    if !truncate {
        let mut r = Response::new(Body::from(bytes));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        return r;
    }
    let len = bytes.len();
    let cut = Bytes::from(bytes).slice(..len / 2);
    let mut r = Response::new(failing_body(Some(cut)));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// Bases listed per page of `GET /v0/meta/bases`, as Airtable pages them.
const BASES_PER_PAGE: usize = 1000;

/// Lists the bases, 1,000 a page; `offset` is the index of the page's first base.
async fn meta_bases(State(s): St, Query(q): Query<HashMap<String, String>>) -> Result<Response, ApiError> {
    s.rate_check(None)?;
    let truncate = s.faults(false).await?;
    if let Some(key) = q.keys().find(|k| *k != "offset") {
        return Err(invalid(format!("Unknown parameter: {key}")));
    }
    let start = match q.get("offset") {
        None => 0,
        Some(o) => o
            .parse::<usize>()
            .ok()
            .filter(|&i| i > 0 && i < s.bases.len())
            .ok_or_else(|| typed(422, "INVALID_OFFSET_VALUE", format!("Invalid offset {o:?}")))?,
    };
    let bases: Vec<Value> = s.bases[start..]
        .iter()
        .take(BASES_PER_PAGE)
        .map(|b| json!({"id": b.id, "name": b.name, "permissionLevel": "create"}))
        .collect();
    let mut out = json!({ "bases": bases });
    if start + BASES_PER_PAGE < s.bases.len() {
        out["offset"] = json!((start + BASES_PER_PAGE).to_string());
    }
    Ok(reply(&out, truncate))
}

async fn meta_tables(State(s): St, Path(base): Path<String>) -> Result<Response, ApiError> {
    let slot = s.base(&base)?;
    s.rate_check(Some(slot))?;
    let truncate = s.faults(false).await?;
    let tables: Vec<Value> = lock(&slot.state).base.tables.iter().map(|t| t.meta()).collect();
    Ok(reply(&json!({ "tables": tables }), truncate))
}

/// Parses a JSON object body.
pub(crate) fn object_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("The request body is not valid JSON: {e}")))?;
    match v {
        Value::Object(o) => Ok(o),
        _ => Err(invalid("The request body must be a JSON object")),
    }
}

async fn update_field(
    State(s): St,
    Path((base, table, field)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let slot = s.base(&base)?;
    s.rate_check(Some(slot))?;
    let body = object_body(&body)?;
    let meta = writes::update_field(&mut lock(&slot.state), &table, &field, &body, Source::PublicApi)?;
    Ok(Json(meta).into_response())
}

async fn list_get(
    State(s): St,
    Path((base, table)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = ListParams::from_query(q.as_deref().unwrap_or(""));
    list(s, base, table, params).await
}

async fn list_post(
    State(s): St,
    Path((base, table)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = ListParams::from_body(&body);
    list(s, base, table, params).await
}

async fn list(
    s: Arc<Shared>,
    base: String,
    table: String,
    params: Result<ListParams, ApiError>,
) -> Result<Response, ApiError> {
    let slot = s.base(&base)?;
    s.rate_check(Some(slot))?;
    let has_offset = params.as_ref().is_ok_and(|p| p.offset.is_some());
    let truncate = s.faults(has_offset).await?;
    let page = list_page(&mut lock(&slot.state), s.iterator_ttl, &table, params?)?;
    Ok(reply(&page, truncate))
}

/// A record as the API returns it, cells in schema order and keyed by name or field id.
pub(crate) fn record_json(r: &Record, fields: &[&FieldDef], by_id: bool) -> Value {
    let mut cells = Map::new();
    for f in fields {
        if let Some(v) = r.fields.get(&f.id) {
            cells.insert(if by_id { f.id.clone() } else { f.name.clone() }, v.clone());
        }
    }
    json!({"id": r.id, "createdTime": format_time(r.created), "fields": cells})
}

/// A write body: `{"records":[…]}` with at most ten entries, and the key option.
fn write_body(body: &[u8]) -> Result<(Vec<Value>, bool), ApiError> {
    let v = object_body(body)?;
    let records = v
        .get("records")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("The request body needs a \"records\" array"))?;
    if records.is_empty() || records.len() > 10 {
        return Err(typed(422, "INVALID_RECORDS", "Send between 1 and 10 records per request"));
    }
    let by_id = v.get("returnFieldsByFieldId").and_then(Value::as_bool).unwrap_or(false);
    Ok((records.clone(), by_id))
}

async fn create(
    State(s): St,
    Path((base, table)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let slot = s.base(&base)?;
    s.rate_check(Some(slot))?;
    let mut state = lock(&slot.state);
    state.base.table_index(&table).ok_or_else(forbidden)?;
    let (recs, by_id) = write_body(&body)?;
    let out = writes::create(&mut state, &table, &recs, s.writer(by_id))?;
    Ok(Json(json!({ "records": out })).into_response())
}

async fn update(
    State(s): St,
    Path((base, table)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let slot = s.base(&base)?;
    s.rate_check(Some(slot))?;
    let mut state = lock(&slot.state);
    state.base.table_index(&table).ok_or_else(forbidden)?;
    let (recs, by_id) = write_body(&body)?;
    let out = writes::update(&mut state, &table, &recs, s.writer(by_id))?;
    Ok(Json(json!({ "records": out })).into_response())
}

async fn destroy(
    State(s): St,
    Path((base, table)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let slot = s.base(&base)?;
    s.rate_check(Some(slot))?;
    let ids: Vec<String> = url::form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "records[]" || k == "records")
        .map(|(_, v)| v.into_owned())
        .collect();
    if ids.is_empty() || ids.len() > 10 {
        return Err(typed(422, "INVALID_RECORDS", "Name between 1 and 10 records[] to delete"));
    }
    let out = writes::destroy(&mut lock(&slot.state), &table, &ids, s.writer(false))?;
    Ok(Json(json!({ "records": out })).into_response())
}

/// Runs the server on `listener` until the future is dropped.
pub(crate) async fn run(shared: Arc<Shared>, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    axum::serve(listener, router(shared)).await?;
    Ok(())
}
