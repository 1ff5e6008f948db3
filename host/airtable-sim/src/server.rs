//! The HTTP side: routes, auth, the rate limiter, injected faults, and the request parameters.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::formula::{self, Expr};
use crate::seed::{SplitMix, fill_system_cells, ident, user};
use crate::store::{Base, Iter, Iterators, Order, Record, Table, format_time, ordered_positions, set_cell};
use crate::{Faults, SimConfig, Stats};

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

fn typed(status: u16, kind: &'static str, message: impl Into<String>) -> ApiError {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    ApiError::Typed { status, kind, message: message.into() }
}

fn invalid(message: impl Into<String>) -> ApiError {
    typed(422, "INVALID_REQUEST_UNKNOWN", message)
}

fn forbidden() -> ApiError {
    typed(
        403,
        "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
        "Invalid permissions, or the requested model was not found. Check that both your user and your token have the required permissions, and that the model names and/or ids are correct.",
    )
}

fn iterator_gone() -> ApiError {
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

/// Counters behind `Sim::stats`.
#[derive(Debug, Default)]
struct Counters {
    stats: Stats,
}

/// The sliding one-second window of accepted requests, and the penalty after a 429.
#[derive(Debug, Default)]
struct Rate {
    window: VecDeque<Instant>,
    penalty_until: Option<Instant>,
}

/// What the handlers share.
pub(crate) struct Shared {
    token_header: String,
    base_id: String,
    rate_limit: bool,
    penalty: Duration,
    iterator_ttl: Duration,
    inner: Mutex<Inner>,
    faults: Mutex<(Faults, SplitMix)>,
    counters: Mutex<Counters>,
    rate: Mutex<Rate>,
}

/// The data and the iterators, under one lock so a page is read consistently.
struct Inner {
    base: Base,
    iters: Iterators,
    ids: SplitMix,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(config: SimConfig) -> anyhow::Result<Shared> {
        if !(config.clock_scale.is_finite() && config.clock_scale >= 0.0) {
            anyhow::bail!("clock_scale must be a finite number ≥ 0, got {}", config.clock_scale);
        }
        let mut base = crate::seed::build(config.seed)?;
        for ti in 0..base.tables.len() {
            let wanted = config
                .grow
                .iter()
                .find(|(name, _)| *name == base.tables[ti].name || *name == base.tables[ti].id);
            if let Some(n) = wanted.map(|(_, n)| *n).or(config.rows) {
                crate::grow::grow(&mut base, ti, n, config.seed);
            }
        }
        if let Some((name, _)) = config.grow.iter().find(|(name, _)| base.table_index(name).is_none()) {
            anyhow::bail!("cannot grow unknown table {name:?}; the tables are {:?}", crate::seed::TABLES);
        }
        Ok(Shared {
            token_header: format!("Bearer {}", config.token),
            base_id: config.base_id,
            rate_limit: config.rate_limit,
            penalty: Duration::from_secs(30).mul_f64(config.clock_scale),
            iterator_ttl: config.iterator_ttl.mul_f64(config.clock_scale),
            inner: Mutex::new(Inner {
                base,
                iters: Iterators::default(),
                ids: SplitMix(config.seed ^ 0x1d5),
            }),
            faults: Mutex::new((config.faults, SplitMix(config.seed ^ 0xfa17))),
            counters: Mutex::new(Counters::default()),
            rate: Mutex::new(Rate::default()),
        })
    }

    pub fn stats(&self) -> Stats {
        lock(&self.counters).stats.clone()
    }

    pub fn expire_iterators(&self) {
        lock(&self.inner).iters.live.clear();
    }

    pub fn set_faults(&self, f: Faults) {
        lock(&self.faults).0 = f;
    }

    pub fn table_ids(&self) -> Vec<(String, String)> {
        lock(&self.inner).base.tables.iter().map(|t| (t.id.clone(), t.name.clone())).collect()
    }

    fn check_base(&self, base: &str) -> Result<(), ApiError> {
        if base == self.base_id { Ok(()) } else { Err(forbidden()) }
    }

    /// Admits a request to the base or answers 429. Only admitted requests fill the window.
    fn rate_check(&self) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut r = lock(&self.rate);
        while r.window.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
            r.window.pop_front();
        }
        let limited = if !self.rate_limit {
            false
        } else if r.penalty_until.is_some_and(|p| now < p) {
            true
        } else if r.window.len() >= 5 {
            r.penalty_until = Some(now + self.penalty);
            true
        } else {
            false
        };
        if limited {
            drop(r);
            lock(&self.counters).stats.rate_limited += 1;
            return Err(typed(429, "RATE_LIMIT_REACHED", "Rate limit exceeded. Please try again later"));
        }
        r.window.push_back(now);
        let in_window = r.window.len() as u64;
        drop(r);
        let mut c = lock(&self.counters);
        c.stats.max_requests_in_any_second = c.stats.max_requests_in_any_second.max(in_window);
        Ok(())
    }

    /// Draws this request's injected fault, deterministically from the seed and the request order.
    async fn faults(&self, has_offset: bool) -> Result<bool, ApiError> {
        let (latency, outcome) = {
            let mut guard = lock(&self.faults);
            let (f, rng) = &mut *guard;
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
            lock(&self.counters).stats.faults_injected += 1;
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
        let mut c = lock(&s.counters);
        c.stats.requests += 1;
        if let Some(h) = req.headers().get(header::AUTHORIZATION) {
            c.stats.authorization_headers.insert(String::from_utf8_lossy(h.as_bytes()).into_owned());
        }
    }
    next.run(req).await
}

async fn auth(State(s): St, req: Request, next: Next) -> Response {
    let ok =
        req.headers().get(header::AUTHORIZATION).is_some_and(|h| h.as_bytes() == s.token_header.as_bytes());
    if !ok {
        lock(&s.counters).stats.unauthorized += 1;
        return typed(401, "AUTHENTICATION_REQUIRED", "Authentication required").into_response();
    }
    next.run(req).await
}

/// Serialises a successful answer, cut short when a truncation fault was drawn.
fn reply(v: &Value, truncate: bool) -> Response {
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

async fn meta_bases(State(s): St) -> Result<Response, ApiError> {
    let truncate = s.faults(false).await?;
    let base = json!({"id": s.base_id, "name": crate::seed::BASE_NAME, "permissionLevel": "create"});
    Ok(reply(&json!({ "bases": [base] }), truncate))
}

async fn meta_tables(State(s): St, Path(base): Path<String>) -> Result<Response, ApiError> {
    s.check_base(&base)?;
    s.rate_check()?;
    let truncate = s.faults(false).await?;
    let tables: Vec<Value> = lock(&s.inner).base.tables.iter().map(Table::meta).collect();
    Ok(reply(&json!({ "tables": tables }), truncate))
}

/// Airtable's update-field endpoint: renames a field and/or sets its description. Cells are
/// stored by field id, so records follow the rename.
async fn update_field(
    State(s): St,
    Path((base, table, field)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    s.check_base(&base)?;
    s.rate_check()?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| invalid(format!("The request body is not valid JSON: {e}")))?;
    let body = v.as_object().ok_or_else(|| invalid("The request body must be a JSON object"))?;
    if let Some(key) = body.keys().find(|k| *k != "name" && *k != "description") {
        return Err(invalid(format!(
            "Unknown key \"{key}\": only \"name\" and \"description\" can be updated"
        )));
    }
    let text = |key: &str| match body.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("\"{key}\" must be a string"))),
    };
    let (name, description) = (text("name")?, text("description")?);
    if name.is_none() && description.is_none() {
        return Err(invalid("Send \"name\" or \"description\""));
    }
    let mut guard = lock(&s.inner);
    let ti = guard.base.table_index(&table).ok_or_else(forbidden)?;
    let t = &mut guard.base.tables[ti];
    let id = t.field(&field).map(|f| f.id.clone()).ok_or_else(forbidden)?;
    if let Some(name) = &name {
        if name.trim().is_empty() {
            return Err(invalid("A field name cannot be empty"));
        }
        if t.fields.iter().any(|f| f.id != id && &f.name == name) {
            return Err(typed(
                422,
                "DUPLICATE_OR_EMPTY_FIELD_NAME",
                format!("A field named \"{name}\" exists"),
            ));
        }
    }
    let f = t.fields.iter_mut().find(|f| f.id == id).ok_or_else(forbidden)?;
    if let Some(name) = name {
        f.name = name;
    }
    if let Some(d) = description {
        f.description = Some(d);
    }
    Ok(Json(f.meta()).into_response())
}

/// The list-records parameters, from a query string or a JSON body.
#[derive(Debug, Default)]
struct ListParams {
    page_size: Option<usize>,
    offset: Option<String>,
    view: Option<String>,
    fields: Option<Vec<String>>,
    sort: Vec<(String, String)>,
    filter: Option<String>,
    max_records: Option<usize>,
    by_field_id: bool,
    cell_format: Option<String>,
}

fn parse_count(key: &str, v: &str) -> Result<usize, ApiError> {
    v.trim().parse::<usize>().map_err(|_| invalid(format!("Invalid value for {key}: {v:?}")))
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        _ => Err(invalid(format!("Invalid value for {key}: {v:?}"))),
    }
}

impl ListParams {
    fn from_query(q: &str) -> Result<ListParams, ApiError> {
        let mut p = ListParams::default();
        let mut sort: BTreeMap<usize, (Option<String>, Option<String>)> = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            let v = v.into_owned();
            match k.as_ref() {
                "pageSize" => p.page_size = Some(parse_count("pageSize", &v)?),
                "offset" => p.offset = Some(v),
                "view" => p.view = Some(v),
                "fields[]" | "fields" => p.fields.get_or_insert_with(Vec::new).push(v),
                "filterByFormula" => p.filter = Some(v),
                "maxRecords" => p.max_records = Some(parse_count("maxRecords", &v)?),
                "returnFieldsByFieldId" => p.by_field_id = parse_bool("returnFieldsByFieldId", &v)?,
                "cellFormat" => p.cell_format = Some(v),
                "timeZone" | "userLocale" => {}
                other => {
                    let parsed = other
                        .strip_prefix("sort[")
                        .and_then(|r| r.split_once("]["))
                        .and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest.strip_suffix(']')?)));
                    match parsed {
                        Some((i, "field")) => sort.entry(i).or_default().0 = Some(v),
                        Some((i, "direction")) => sort.entry(i).or_default().1 = Some(v),
                        _ => return Err(invalid(format!("Unknown parameter: {other}"))),
                    }
                }
            }
        }
        for (i, (field, dir)) in sort {
            let field = field.ok_or_else(|| invalid(format!("sort[{i}] has a direction but no field")))?;
            p.sort.push((field, dir.unwrap_or_else(|| "asc".to_string())));
        }
        Ok(p)
    }

    fn from_body(body: &[u8]) -> Result<ListParams, ApiError> {
        let v: Value = if body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| invalid(format!("The request body is not valid JSON: {e}")))?
        };
        let obj = v.as_object().ok_or_else(|| invalid("The request body must be a JSON object"))?;
        let mut p = ListParams::default();
        let text = |k: &str, v: &Value| {
            v.as_str().map(str::to_string).ok_or_else(|| invalid(format!("{k} must be a string")))
        };
        let count = |k: &str, v: &Value| {
            v.as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| invalid(format!("{k} must be a non-negative integer")))
        };
        for (k, v) in obj {
            match k.as_str() {
                "pageSize" => p.page_size = Some(count(k, v)?),
                "maxRecords" => p.max_records = Some(count(k, v)?),
                "offset" => p.offset = Some(text(k, v)?),
                "view" => p.view = Some(text(k, v)?),
                "filterByFormula" => p.filter = Some(text(k, v)?),
                "cellFormat" => p.cell_format = Some(text(k, v)?),
                "timeZone" | "userLocale" => {}
                "returnFieldsByFieldId" => {
                    p.by_field_id =
                        v.as_bool().ok_or_else(|| invalid("returnFieldsByFieldId must be a boolean"))?
                }
                "fields" => {
                    let items = v.as_array().ok_or_else(|| invalid("fields must be an array of strings"))?;
                    p.fields = Some(items.iter().map(|f| text("fields[]", f)).collect::<Result<_, _>>()?);
                }
                "sort" => {
                    let items = v.as_array().ok_or_else(|| invalid("sort must be an array"))?;
                    for s in items {
                        let field = s.get("field").ok_or_else(|| invalid("each sort needs a field"))?;
                        let dir = s.get("direction").map(|d| text("direction", d)).transpose()?;
                        p.sort.push((text("field", field)?, dir.unwrap_or_else(|| "asc".to_string())));
                    }
                }
                other => return Err(invalid(format!("Unknown parameter: {other}"))),
            }
        }
        Ok(p)
    }
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
    s.check_base(&base)?;
    s.rate_check()?;
    let has_offset = params.as_ref().is_ok_and(|p| p.offset.is_some());
    let truncate = s.faults(has_offset).await?;
    let page = list_page(&s, &table, params?)?;
    Ok(reply(&page, truncate))
}

fn unknown_field(name: &str) -> ApiError {
    typed(422, "UNKNOWN_FIELD_NAME", format!("Unknown field name: \"{name}\""))
}

/// Answers one page. O(page) when walking an existing iterator; O(table) to start a filtered or sorted one.
fn list_page(s: &Shared, table: &str, p: ListParams) -> Result<Value, ApiError> {
    let mut guard = lock(&s.inner);
    let Inner { base, iters, ids } = &mut *guard;
    let ti = base.table_index(table).ok_or_else(forbidden)?;
    let t = &base.tables[ti];
    let page_size = p.page_size.unwrap_or(100);
    if !(1..=100).contains(&page_size) {
        return Err(invalid(format!("Invalid pageSize {page_size}: it must be between 1 and 100")));
    }
    match p.cell_format.as_deref() {
        None | Some("json") => {}
        Some(other) => return Err(invalid(format!("cellFormat {other:?} is not supported; use \"json\""))),
    }
    if p.max_records == Some(0) {
        return Err(invalid("maxRecords must be at least 1"));
    }
    let out_fields: Vec<&crate::store::FieldDef> = match &p.fields {
        Some(names) => {
            names.iter().map(|n| t.field(n).ok_or_else(|| unknown_field(n))).collect::<Result<_, _>>()?
        }
        None => t.fields.iter().collect(),
    };
    let resolve = |name: &str| t.fields.iter().find(|f| f.name == name).map(|f| f.id.clone());
    let filter = p
        .filter
        .as_deref()
        .filter(|f| !f.trim().is_empty())
        .map(|f| formula::parse(f, &resolve))
        .transpose()
        .map_err(|e| typed(422, "INVALID_FILTER_BY_FORMULA", e.to_string()))?;
    let mut sort = Vec::new();
    for (field, dir) in &p.sort {
        let f = t.field(field).ok_or_else(|| unknown_field(field))?;
        let desc = match dir.as_str() {
            "asc" => false,
            "desc" => true,
            other => {
                return Err(invalid(format!("Invalid sort direction {other:?}: use \"asc\" or \"desc\"")));
            }
        };
        sort.push((f.id.clone(), desc));
    }
    let view = match &p.view {
        Some(v) => Some(
            t.views
                .iter()
                .find(|w| w.id == *v || w.name == *v)
                .ok_or_else(|| typed(422, "VIEW_NAME_NOT_FOUND", format!("Could not find view {v:?}")))?,
        ),
        None => None,
    };

    let (itr, order, start, emitted, max_records) = match &p.offset {
        Some(token) => {
            let (it, pos, emitted) = iters.resume(token, ti, s.iterator_ttl).ok_or_else(iterator_gone)?;
            let itr = token.split_once('/').map(|(i, _)| i.to_string()).unwrap_or_default();
            (Some(itr), it.order.clone(), pos, emitted, it.max_records)
        }
        None => {
            let filters: Vec<&Expr> =
                view.and_then(|v| v.filter.as_ref()).into_iter().chain(filter.as_ref()).collect();
            let sort = if sort.is_empty() { view.map(|v| v.sort.clone()).unwrap_or_default() } else { sort };
            let order = if filters.is_empty() && sort.is_empty() {
                Order::Natural
            } else {
                Order::Positions(Arc::new(ordered_positions(t, &filters, &sort)))
            };
            (None, order, 0, 0, p.max_records)
        }
    };

    let at = |i: usize| -> Option<usize> {
        match &order {
            Order::Natural => (i < t.records.len()).then_some(i),
            Order::Positions(v) => v.get(i).map(|x| *x as usize),
        }
    };
    let cap = page_size.min(max_records.map_or(usize::MAX, |m| m.saturating_sub(emitted)));
    let mut page: Vec<&Record> = Vec::with_capacity(cap);
    let mut pos = start;
    while page.len() < cap {
        let Some(ri) = at(pos) else { break };
        if let Some(r) = &t.records[ri] {
            page.push(r);
        }
        pos += 1;
    }
    let emitted = emitted + page.len();
    let mut next = None;
    if max_records.is_none_or(|m| emitted < m) {
        while let Some(ri) = at(pos) {
            if let Some(r) = &t.records[ri] {
                next = Some(r.id.clone());
                break;
            }
            pos += 1;
        }
    }

    let records: Vec<Value> = page.iter().map(|r| record_json(r, &out_fields, p.by_field_id)).collect();
    let mut out = Map::new();
    out.insert("records".into(), Value::Array(records));
    if let Some(next) = next {
        let itr = match itr {
            Some(itr) => itr,
            None => {
                if iters.live.len() > 1024 {
                    iters.sweep(s.iterator_ttl);
                }
                let itr = ident("itr", ids);
                let it = Iter {
                    table: ti,
                    order,
                    max_records,
                    last_used: Instant::now(),
                    cursors: Default::default(),
                };
                iters.live.insert(itr.clone(), it);
                itr
            }
        };
        if let Some(it) = iters.live.get_mut(&itr) {
            it.cursors.insert(next.clone(), (pos, emitted));
        }
        out.insert("offset".into(), json!(format!("{itr}/{next}")));
    }
    Ok(Value::Object(out))
}

/// A record as the API returns it, cells in schema order and keyed by name or field id.
fn record_json(r: &Record, fields: &[&crate::store::FieldDef], by_id: bool) -> Value {
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
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("The request body is not valid JSON: {e}")))?;
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

/// Resolves a write's cells to (field id, value), refusing unknown and computed fields.
fn write_cells(t: &Table, rec: &Value) -> Result<Vec<(String, Value)>, ApiError> {
    let Some(fields) = rec.get("fields") else { return Ok(Vec::new()) };
    let fields = fields.as_object().ok_or_else(|| invalid("\"fields\" must be an object"))?;
    fields
        .iter()
        .map(|(k, v)| {
            let f = t.field(k).ok_or_else(|| unknown_field(k))?;
            if f.is_computed() {
                return Err(typed(
                    422,
                    "INVALID_VALUE_FOR_COLUMN",
                    format!("Field \"{}\" cannot accept a value because the field is computed", f.name),
                ));
            }
            Ok((f.id.clone(), v.clone()))
        })
        .collect()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn create(
    State(s): St,
    Path((base, table)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    s.check_base(&base)?;
    s.rate_check()?;
    let mut guard = lock(&s.inner);
    let Inner { base, ids, .. } = &mut *guard;
    let ti = base.table_index(&table).ok_or_else(forbidden)?;
    let (recs, by_id) = write_body(&body)?;
    let cells: Vec<_> = recs.iter().map(|r| write_cells(&base.tables[ti], r)).collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for cells in cells {
        let now = now_ms();
        let mut id = ident("rec", ids);
        while base.tables[ti].index.contains_key(&id) {
            id = ident("rec", ids);
        }
        let mut r = Record { id, created: now, modified: now, fields: Map::new() };
        for (f, v) in cells {
            set_cell(&mut r.fields, &f, v);
        }
        fill_system_cells(&mut base.tables[ti], &mut r, 0);
        base.derive(ti, &mut r);
        let t = &base.tables[ti];
        out.push(record_json(&r, &t.fields.iter().collect::<Vec<_>>(), by_id));
        base.tables[ti].push(r);
    }
    Ok(Json(json!({ "records": out })).into_response())
}

async fn update(
    State(s): St,
    Path((base, table)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    s.check_base(&base)?;
    s.rate_check()?;
    let mut guard = lock(&s.inner);
    let base = &mut guard.base;
    let ti = base.table_index(&table).ok_or_else(forbidden)?;
    let (recs, by_id) = write_body(&body)?;
    let mut edits = Vec::new();
    for rec in &recs {
        let id =
            rec.get("id").and_then(Value::as_str).ok_or_else(|| invalid("Each record needs an \"id\""))?;
        let pos = *base.tables[ti]
            .index
            .get(id)
            .ok_or_else(|| typed(404, "NOT_FOUND", format!("Could not find record {id}")))?;
        edits.push((pos, write_cells(&base.tables[ti], rec)?));
    }
    let mut out = Vec::new();
    for (pos, cells) in edits {
        let Some(mut r) = base.tables[ti].records[pos].take() else { continue };
        let touched: Vec<String> = cells.iter().map(|(f, _)| f.clone()).collect();
        for (f, v) in cells {
            set_cell(&mut r.fields, &f, v);
        }
        // Strictly later than before, so a cursor on the modified time always sees the edit.
        let now = now_ms().max(r.modified + 1);
        let t = &base.tables[ti];
        t.touch(&mut r, &touched, now);
        if let Some(f) = t.fields.iter().find(|f| f.ftype == "lastModifiedBy") {
            r.fields.insert(f.id.clone(), user(0));
        }
        base.derive(ti, &mut r);
        let t = &base.tables[ti];
        out.push(record_json(&r, &t.fields.iter().collect::<Vec<_>>(), by_id));
        base.tables[ti].records[pos] = Some(r);
    }
    Ok(Json(json!({ "records": out })).into_response())
}

async fn destroy(
    State(s): St,
    Path((base, table)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    s.check_base(&base)?;
    s.rate_check()?;
    let ids: Vec<String> = url::form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "records[]" || k == "records")
        .map(|(_, v)| v.into_owned())
        .collect();
    if ids.is_empty() || ids.len() > 10 {
        return Err(typed(422, "INVALID_RECORDS", "Name between 1 and 10 records[] to delete"));
    }
    let mut guard = lock(&s.inner);
    let ti = guard.base.table_index(&table).ok_or_else(forbidden)?;
    let t = &mut guard.base.tables[ti];
    if let Some(missing) = ids.iter().find(|id| !t.index.contains_key(*id)) {
        return Err(typed(404, "NOT_FOUND", format!("Could not find record {missing}")));
    }
    let mut out = Vec::new();
    for id in ids {
        if let Some(pos) = t.index.remove(&id) {
            t.records[pos] = None;
            out.push(json!({"id": id, "deleted": true}));
        }
    }
    Ok(Json(json!({ "records": out })).into_response())
}

/// Runs the server on `listener` until the future is dropped.
pub(crate) async fn run(shared: Arc<Shared>, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    axum::serve(listener, router(shared)).await?;
    Ok(())
}
