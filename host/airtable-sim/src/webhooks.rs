//! Airtable's webhooks API for a pull client: create, list, refresh and delete webhooks, and list
//! each one's change payloads by cursor.
//!
//! Every write to the base is a transaction: it gets the next `baseTransactionNumber` and appends
//! one payload to each live webhook whose filters cover it. Notifications are never sent to a
//! `notificationUrl`; a client polls the payloads. Webhooks expire `webhook_ttl` after their
//! creation, last refresh or last payload listing, and payloads are dropped `payload_retention`
//! after they were made (both scaled by `clock_scale`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::seed::{SplitMix, ident, user};
use crate::server::{ApiError, BaseState, Shared, invalid, lock, object_body, reply, typed};
use crate::store::{Base, format_time};

/// Webhooks a base holds at most, as Airtable allows.
pub(crate) const MAX_PER_BASE: usize = 10;
/// Payloads one listing returns at most.
const MAX_LIMIT: usize = 50;

/// The clock-scaled lifetimes.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub ttl: Duration,
    pub retention: Duration,
}

/// Who made a change, as `actionMetadata.source` reports it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    /// A request to the Web API.
    PublicApi,
    /// `Sim`'s own writes, standing for a person editing in Airtable's UI.
    Client,
}

/// Cells by field id.
pub(crate) type Cells = Map<String, Value>;

/// What one transaction changed in one table.
#[derive(Debug)]
pub(crate) enum Change {
    /// (record id, created time in ms, cells by field id).
    Created(Vec<(String, i64, Cells)>),
    /// (record id, cells before, cells after).
    Changed(Vec<(String, Cells, Cells)>),
    Destroyed(Vec<String>),
    /// A field's name and/or description, after and before.
    Field {
        id: String,
        current: Map<String, Value>,
        previous: Map<String, Value>,
    },
}

/// Which cells a changed record's `unchanged` part carries.
#[derive(Debug, Clone)]
enum CellsIn {
    None,
    All,
    Ids(Vec<String>),
}

/// A webhook's specification, parsed.
#[derive(Debug, Clone)]
struct Spec {
    data_types: Vec<String>,
    table: Option<String>,
    change_types: Option<Vec<String>>,
    previous_cells: bool,
    cells_in: CellsIn,
    previous_fields: bool,
}

#[derive(Debug)]
struct Stored {
    cursor: u64,
    made: Instant,
    body: Value,
}

#[derive(Debug)]
struct Webhook {
    id: String,
    mac_secret: String,
    notification_url: Option<String>,
    specification: Value,
    spec: Spec,
    expires_at: Instant,
    /// The wall-clock time shown as `expirationTime`, in ms.
    expiration_time: i64,
    /// Payloads still kept, in cursor order with no gaps.
    payloads: VecDeque<Stored>,
    /// The cursor the next payload will get; starts at 1 and never resets.
    next_cursor: u64,
}

/// A base's webhooks.
#[derive(Debug)]
pub(crate) struct Webhooks {
    config: Config,
    hooks: Vec<Webhook>,
    transactions: u64,
    rng: SplitMix,
}

fn not_found(id: &str) -> ApiError {
    typed(404, "NOT_FOUND", format!("Could not find webhook {id}: it expired or was deleted"))
}

/// Standard base64 with padding, for `macSecretBase64`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Refuses keys of `obj` outside `known`, naming where they were.
fn only_keys(obj: &Map<String, Value>, known: &[&str], at: &str) -> Result<(), ApiError> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(invalid(format!("Unknown key \"{k}\" in {at} (the simulator supports {known:?})"))),
        None => Ok(()),
    }
}

fn object<'v>(v: Option<&'v Value>, at: &str) -> Result<Option<&'v Map<String, Value>>, ApiError> {
    match v {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(invalid(format!("{at} must be an object"))),
    }
}

fn strings(v: &Value, at: &str, allowed: &[&str]) -> Result<Vec<String>, ApiError> {
    let items = v.as_array().ok_or_else(|| invalid(format!("{at} must be an array of strings")))?;
    items
        .iter()
        .map(|x| match x.as_str() {
            Some(s) if allowed.is_empty() || allowed.contains(&s) => Ok(s.to_string()),
            _ => Err(invalid(format!("{at} holds {x}; expected one of {allowed:?}"))),
        })
        .collect()
}

fn flag(o: &Map<String, Value>, key: &str) -> Result<bool, ApiError> {
    match o.get(key) {
        None => Ok(false),
        Some(v) => v.as_bool().ok_or_else(|| invalid(format!("{key} must be a boolean"))),
    }
}

/// Parses `specification`, checking that a `recordChangeScope` names a table of `base`.
fn parse_spec(spec: &Value, base: &Base) -> Result<Spec, ApiError> {
    let empty = Map::new();
    let spec = object(Some(spec), "specification")?.ok_or_else(|| invalid("specification is required"))?;
    only_keys(spec, &["options"], "specification")?;
    let options = object(spec.get("options"), "specification.options")?
        .ok_or_else(|| invalid("specification.options is required"))?;
    only_keys(options, &["filters", "includes"], "specification.options")?;
    let filters = object(options.get("filters"), "specification.options.filters")?
        .ok_or_else(|| invalid("specification.options.filters is required"))?;
    only_keys(filters, &["dataTypes", "recordChangeScope", "changeTypes"], "filters")?;
    let data_types = filters
        .get("dataTypes")
        .map(|v| strings(v, "filters.dataTypes", &["tableData", "tableFields", "tableMetadata"]))
        .transpose()?
        .filter(|d| !d.is_empty())
        .ok_or_else(|| invalid("filters.dataTypes must name at least one data type"))?;
    let table = match filters.get("recordChangeScope") {
        None => None,
        Some(Value::String(id)) => {
            if !base.tables.iter().any(|t| t.id == *id) {
                return Err(invalid(format!(
                    "recordChangeScope {id:?} is not a table id of this base (the simulator supports table ids only)"
                )));
            }
            Some(id.clone())
        }
        Some(_) => return Err(invalid("recordChangeScope must be a table id")),
    };
    let change_types = filters
        .get("changeTypes")
        .map(|v| strings(v, "filters.changeTypes", &["add", "remove", "update"]))
        .transpose()?;
    let includes = object(options.get("includes"), "specification.options.includes")?.unwrap_or(&empty);
    only_keys(
        includes,
        &["includePreviousCellValues", "includeCellValuesInFieldIds", "includePreviousFieldDefinitions"],
        "includes",
    )?;
    let cells_in = match includes.get("includeCellValuesInFieldIds") {
        None => CellsIn::None,
        Some(Value::String(s)) if s == "all" => CellsIn::All,
        Some(v) => CellsIn::Ids(strings(v, "includeCellValuesInFieldIds", &[])?),
    };
    Ok(Spec {
        data_types,
        table,
        change_types,
        previous_cells: flag(includes, "includePreviousCellValues")?,
        cells_in,
        previous_fields: flag(includes, "includePreviousFieldDefinitions")?,
    })
}

impl Spec {
    fn wants(&self, table: &str, data_type: &str, change_type: &str) -> bool {
        self.data_types.iter().any(|d| d == data_type)
            && self.table.as_deref().is_none_or(|t| t == table)
            && self.change_types.as_ref().is_none_or(|c| c.iter().any(|c| c == change_type))
    }

    /// This webhook's view of a change to `table`: the `changedTablesById` entry, or `None` when
    /// its filters leave nothing.
    fn render(&self, table: &str, change: &Change) -> Option<Value> {
        let cells = |m: &Map<String, Value>| json!({ "cellValuesByFieldId": m });
        let entry = match change {
            Change::Created(recs) if self.wants(table, "tableData", "add") && !recs.is_empty() => {
                let by_id: Map<String, Value> = recs
                    .iter()
                    .map(|(id, created, fields)| {
                        let mut v = cells(fields);
                        v["createdTime"] = json!(format_time(*created));
                        (id.clone(), v)
                    })
                    .collect();
                json!({ "createdRecordsById": by_id })
            }
            Change::Changed(recs) if self.wants(table, "tableData", "update") => {
                let mut by_id = Map::new();
                for (id, before, after) in recs {
                    let keys = after.keys().chain(before.keys().filter(|k| !after.contains_key(*k)));
                    let changed: Vec<&String> = keys.filter(|k| before.get(*k) != after.get(*k)).collect();
                    if changed.is_empty() {
                        continue;
                    }
                    let pick = |m: &Map<String, Value>| -> Map<String, Value> {
                        changed
                            .iter()
                            .map(|k| ((*k).clone(), m.get(*k).cloned().unwrap_or(Value::Null)))
                            .collect()
                    };
                    let mut v = json!({ "current": cells(&pick(after)) });
                    if self.previous_cells {
                        v["previous"] = cells(&pick(before));
                    }
                    let unchanged: Map<String, Value> = after
                        .iter()
                        .filter(|(k, _)| !changed.contains(k))
                        .filter(|(k, _)| match &self.cells_in {
                            CellsIn::None => false,
                            CellsIn::All => true,
                            CellsIn::Ids(ids) => ids.contains(k),
                        })
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    if !matches!(self.cells_in, CellsIn::None) {
                        v["unchanged"] = cells(&unchanged);
                    }
                    by_id.insert(id.clone(), v);
                }
                if by_id.is_empty() {
                    return None;
                }
                json!({ "changedRecordsById": by_id })
            }
            Change::Destroyed(ids) if self.wants(table, "tableData", "remove") && !ids.is_empty() => {
                json!({ "destroyedRecordIds": ids })
            }
            Change::Field { id, current, previous } if self.wants(table, "tableFields", "update") => {
                let mut v = json!({ "current": current });
                if self.previous_fields {
                    v["previous"] = json!(previous);
                }
                json!({ "changedFieldsById": { id.clone(): v } })
            }
            _ => return None,
        };
        Some(entry)
    }
}

impl Webhook {
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "areNotificationsEnabled": self.notification_url.is_some(),
            "cursorForNextPayload": self.next_cursor,
            "isHookEnabled": true,
            "lastSuccessfulNotificationTime": null,
            "lastNotificationResult": null,
            "notificationUrl": self.notification_url,
            "expirationTime": format_time(self.expiration_time),
            "specification": self.specification,
        })
    }

    /// The cursor of the oldest payload still kept.
    fn oldest_cursor(&self) -> u64 {
        self.payloads.front().map_or(self.next_cursor, |p| p.cursor)
    }
}

impl Webhooks {
    pub fn new(config: Config, rng: SplitMix) -> Webhooks {
        Webhooks { config, hooks: Vec::new(), transactions: 0, rng }
    }

    /// Forgets expired webhooks and payloads past retention.
    fn sweep(&mut self) {
        let now = Instant::now();
        let retention = self.config.retention;
        self.hooks.retain(|h| now < h.expires_at);
        for h in &mut self.hooks {
            while h.payloads.front().is_some_and(|p| now.duration_since(p.made) > retention) {
                h.payloads.pop_front();
            }
        }
    }

    fn live(&mut self, id: &str) -> Result<&mut Webhook, ApiError> {
        self.sweep();
        self.hooks.iter_mut().find(|h| h.id == id).ok_or_else(|| not_found(id))
    }

    /// Extends a webhook's life by the configured lifetime from now.
    fn extend(h: &mut Webhook, ttl: Duration) {
        h.expires_at = Instant::now() + ttl;
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        h.expiration_time = chrono::Utc::now().timestamp_millis().saturating_add(ms);
    }

    /// `POST /v0/bases/{base}/webhooks`.
    pub fn create(&mut self, body: &Map<String, Value>, base: &Base) -> Result<Value, ApiError> {
        only_keys(body, &["notificationUrl", "specification"], "the request body")?;
        let notification_url = match body.get("notificationUrl") {
            None | Some(Value::Null) => None,
            Some(Value::String(u)) if url::Url::parse(u).is_ok() => Some(u.clone()),
            Some(other) => return Err(invalid(format!("notificationUrl {other} is not a URL"))),
        };
        let specification = body.get("specification").ok_or_else(|| invalid("specification is required"))?;
        let spec = parse_spec(specification, base)?;
        self.sweep();
        if self.hooks.len() >= MAX_PER_BASE {
            return Err(typed(
                403,
                "TOO_MANY_WEBHOOKS",
                format!("A base can have at most {MAX_PER_BASE} webhooks; delete one first"),
            ));
        }
        let mut id = ident("ach", &mut self.rng);
        while self.hooks.iter().any(|h| h.id == id) {
            id = ident("ach", &mut self.rng);
        }
        let secret: Vec<u8> = (0..32).map(|_| self.rng.below(256) as u8).collect();
        let mut h = Webhook {
            id,
            mac_secret: base64(&secret),
            notification_url,
            specification: specification.clone(),
            spec,
            expires_at: Instant::now(),
            expiration_time: 0,
            payloads: VecDeque::new(),
            next_cursor: 1,
        };
        Self::extend(&mut h, self.config.ttl);
        let out = json!({"id": h.id, "macSecretBase64": h.mac_secret, "expirationTime": format_time(h.expiration_time)});
        self.hooks.push(h);
        Ok(out)
    }

    /// `GET /v0/bases/{base}/webhooks`.
    pub fn list(&mut self) -> Value {
        self.sweep();
        json!({ "webhooks": self.hooks.iter().map(Webhook::json).collect::<Vec<_>>() })
    }

    /// `POST …/webhooks/{id}/refresh`.
    pub fn refresh(&mut self, id: &str) -> Result<Value, ApiError> {
        let ttl = self.config.ttl;
        let h = self.live(id)?;
        Self::extend(h, ttl);
        Ok(json!({ "expirationTime": format_time(h.expiration_time) }))
    }

    /// `DELETE …/webhooks/{id}`.
    pub fn delete(&mut self, id: &str) -> Result<(), ApiError> {
        self.live(id)?;
        self.hooks.retain(|h| h.id != id);
        Ok(())
    }

    /// `GET …/webhooks/{id}/payloads?cursor=N&limit=M`; listing extends the webhook's life.
    pub fn payloads(
        &mut self,
        id: &str,
        cursor: Option<u64>,
        limit: Option<usize>,
    ) -> Result<Value, ApiError> {
        let limit = limit.unwrap_or(MAX_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(invalid(format!("Invalid limit {limit}: it must be between 1 and {MAX_LIMIT}")));
        }
        let ttl = self.config.ttl;
        let retention = self.config.retention;
        let h = self.live(id)?;
        let cursor = cursor.unwrap_or(1);
        if cursor == 0 || cursor > h.next_cursor {
            return Err(invalid(format!(
                "Invalid cursor {cursor}: cursors start at 1 and the next payload's is {}",
                h.next_cursor
            )));
        }
        let oldest = h.oldest_cursor();
        if cursor < oldest {
            return Err(typed(
                422,
                "WEBHOOK_PAYLOADS_NOT_AVAILABLE",
                format!(
                    "Payloads from cursor {cursor} are no longer available (payloads are kept {} days); the oldest is {oldest}. Create a new webhook and read the table again.",
                    retention.as_secs_f64() / 86_400.0
                ),
            ));
        }
        Self::extend(h, ttl);
        let skip = (cursor - oldest) as usize;
        let page: Vec<Value> = h.payloads.iter().skip(skip).take(limit).map(|p| p.body.clone()).collect();
        let next = cursor + page.len() as u64;
        Ok(json!({ "cursor": next, "mightHaveMore": next < h.next_cursor, "payloads": page }))
    }

    /// Records one transaction: every live webhook whose filters cover it gets one payload.
    pub fn record(&mut self, table: &str, change: Change, at_ms: i64, source: Source) {
        self.transactions += 1;
        if self.hooks.is_empty() {
            return;
        }
        self.sweep();
        let mut by = user(0);
        by["permissionLevel"] = json!("create");
        let source = match source {
            Source::PublicApi => "publicApi",
            Source::Client => "client",
        };
        let now = Instant::now();
        for h in &mut self.hooks {
            let Some(entry) = h.spec.render(table, &change) else { continue };
            let body = json!({
                "timestamp": format_time(at_ms),
                "baseTransactionNumber": self.transactions,
                "actionMetadata": {"source": source, "sourceMetadata": {"user": by}},
                "payloadFormat": "v0",
                "changedTablesById": { table: entry },
            });
            h.payloads.push_back(Stored { cursor: h.next_cursor, made: now, body });
            h.next_cursor += 1;
        }
    }

    /// Ids of the live webhooks, oldest first.
    pub fn ids(&mut self) -> Vec<String> {
        self.sweep();
        self.hooks.iter().map(|h| h.id.clone()).collect()
    }

    /// Makes a webhook expire now, as if nobody refreshed it for its lifetime.
    pub fn expire(&mut self, id: &str) -> Result<(), ApiError> {
        self.live(id)?.expires_at = Instant::now();
        self.sweep();
        Ok(())
    }

    /// Drops every payload the webhook still keeps, as retention would; returns how many.
    pub fn drop_payloads(&mut self, id: &str) -> Result<usize, ApiError> {
        let h = self.live(id)?;
        let n = h.payloads.len();
        h.payloads.clear();
        Ok(n)
    }
}

type St = State<Arc<Shared>>;

/// Admits a webhook request to `base` and draws its fault; returns the base and whether to truncate.
async fn admit<'s>(s: &'s Shared, base: &str) -> Result<(&'s crate::server::BaseSlot, bool), ApiError> {
    let slot = s.base(base)?;
    s.rate_check(Some(slot))?;
    let truncate = s.webhook_faults().await?;
    Ok((slot, truncate))
}

pub(crate) async fn create(
    State(s): St,
    Path(base): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (slot, truncate) = admit(&s, &base).await?;
    let body = object_body(&body)?;
    let mut state = lock(&slot.state);
    let BaseState { base, hooks, .. } = &mut *state;
    let out = hooks.create(&body, base)?;
    Ok(reply(&out, truncate))
}

pub(crate) async fn list(State(s): St, Path(base): Path<String>) -> Result<Response, ApiError> {
    let (slot, truncate) = admit(&s, &base).await?;
    let out = lock(&slot.state).hooks.list();
    Ok(reply(&out, truncate))
}

pub(crate) async fn refresh(
    State(s): St,
    Path((base, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (slot, truncate) = admit(&s, &base).await?;
    let out = lock(&slot.state).hooks.refresh(&id)?;
    Ok(reply(&out, truncate))
}

pub(crate) async fn delete(
    State(s): St,
    Path((base, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (slot, truncate) = admit(&s, &base).await?;
    lock(&slot.state).hooks.delete(&id)?;
    Ok(reply(&json!({}), truncate).into_response())
}

pub(crate) async fn payloads(
    State(s): St,
    Path((base, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let (slot, truncate) = admit(&s, &base).await?;
    let (mut cursor, mut limit) = (None, None);
    for (k, v) in url::form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes()) {
        let number = || v.trim().parse::<u64>().map_err(|_| invalid(format!("Invalid value for {k}: {v:?}")));
        match k.as_ref() {
            "cursor" => cursor = Some(number()?),
            "limit" => limit = Some(number()? as usize),
            other => return Err(invalid(format!("Unknown parameter: {other}"))),
        }
    }
    let out = lock(&slot.state).hooks.payloads(&id, cursor, limit)?;
    Ok(reply(&out, truncate))
}
