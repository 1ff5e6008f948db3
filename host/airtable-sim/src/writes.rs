//! Record and field writes, shared by the HTTP handlers and `Sim`'s own writes API.
//!
//! Each write is one transaction: it changes the table, keeps the history that live cdc listings
//! read, and tells the base's webhooks what changed.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::seed::{fill_system_cells, ident, user};
use crate::server::{ApiError, BaseState, forbidden, invalid, record_json, typed};
use crate::store::{Record, Table, set_cell};
use crate::webhooks::{Change, Source};

pub(crate) fn unknown_field(name: &str) -> ApiError {
    typed(422, "UNKNOWN_FIELD_NAME", format!("Unknown field name: \"{name}\""))
}

fn record_missing(id: &str) -> ApiError {
    typed(404, "NOT_FOUND", format!("Could not find record {id}"))
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

/// Finds the table, and readies its history for the listings still live on it.
fn table_for_write(state: &mut BaseState, table: &str, ttl: Duration) -> Result<usize, ApiError> {
    let ti = state.base.table_index(table).ok_or_else(forbidden)?;
    let floor = state.iters.history_floor(ti, ttl);
    state.base.tables[ti].keep_history_after(floor);
    Ok(ti)
}

fn all_fields(t: &Table) -> Vec<&crate::store::FieldDef> {
    t.fields.iter().collect()
}

/// How a record write was asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Writer {
    /// Answer cells keyed by field id instead of name.
    pub by_id: bool,
    /// The iterator lifetime, to know which cdc listings may still read the table's history.
    pub ttl: Duration,
    pub source: Source,
}

/// A record write: create or update, given the request's records.
pub(crate) type RecordWrite = fn(&mut BaseState, &str, &[Value], Writer) -> Result<Vec<Value>, ApiError>;

/// Creates one record per `{"fields": {…}}` in `recs`; answers them as the API does.
pub(crate) fn create(
    state: &mut BaseState,
    table: &str,
    recs: &[Value],
    w: Writer,
) -> Result<Vec<Value>, ApiError> {
    let ti = table_for_write(state, table, w.ttl)?;
    let BaseState { base, ids, hooks, .. } = state;
    let cells: Vec<_> = recs.iter().map(|r| write_cells(&base.tables[ti], r)).collect::<Result<_, _>>()?;
    let now = now_ms();
    let mut out = Vec::new();
    let mut created = Vec::new();
    for cells in cells {
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
        out.push(record_json(&r, &all_fields(&base.tables[ti]), w.by_id));
        created.push((r.id.clone(), r.created, r.fields.clone()));
        base.tables[ti].push(r);
    }
    hooks.record(&base.tables[ti].id, Change::Created(created), now, w.source);
    Ok(out)
}

/// Merges `{"id", "fields"}` edits into existing records; all ids must exist.
pub(crate) fn update(
    state: &mut BaseState,
    table: &str,
    recs: &[Value],
    w: Writer,
) -> Result<Vec<Value>, ApiError> {
    let ti = table_for_write(state, table, w.ttl)?;
    let BaseState { base, hooks, .. } = state;
    let mut edits = Vec::new();
    for rec in recs {
        let id =
            rec.get("id").and_then(Value::as_str).ok_or_else(|| invalid("Each record needs an \"id\""))?;
        let pos = *base.tables[ti].index.get(id).ok_or_else(|| record_missing(id))?;
        edits.push((pos, write_cells(&base.tables[ti], rec)?));
    }
    let mut out = Vec::new();
    let mut changed = Vec::new();
    let mut at = now_ms();
    for (pos, cells) in edits {
        let Some(before) = base.tables[ti].records[pos].clone() else { continue };
        let mut r = before.clone();
        let touched: Vec<String> = cells.iter().map(|(f, _)| f.clone()).collect();
        for (f, v) in cells {
            set_cell(&mut r.fields, &f, v);
        }
        // Strictly later than before, so a cursor on the modified time always sees the edit.
        let now = now_ms().max(r.modified + 1);
        at = at.max(now);
        let t = &base.tables[ti];
        t.touch(&mut r, &touched, now);
        if let Some(f) = t.fields.iter().find(|f| f.ftype == "lastModifiedBy") {
            r.fields.insert(f.id.clone(), user(0));
        }
        base.derive(ti, &mut r);
        out.push(record_json(&r, &all_fields(&base.tables[ti]), w.by_id));
        changed.push((r.id.clone(), before.fields, r.fields.clone()));
        base.tables[ti].replace(pos, r);
    }
    hooks.record(&base.tables[ti].id, Change::Changed(changed), at, w.source);
    Ok(out)
}

/// Deletes the named records; all must exist.
pub(crate) fn destroy(
    state: &mut BaseState,
    table: &str,
    ids: &[String],
    w: Writer,
) -> Result<Vec<Value>, ApiError> {
    let ti = table_for_write(state, table, w.ttl)?;
    let BaseState { base, hooks, .. } = state;
    let t = &mut base.tables[ti];
    if let Some(missing) = ids.iter().find(|id| !t.index.contains_key(*id)) {
        return Err(record_missing(missing));
    }
    let mut out = Vec::new();
    let mut destroyed = Vec::new();
    for id in ids {
        if let Some(pos) = t.index.get(id).copied()
            && t.remove(pos)
        {
            out.push(json!({"id": id, "deleted": true}));
            destroyed.push(id.clone());
        }
    }
    hooks.record(&t.id, Change::Destroyed(destroyed), now_ms(), w.source);
    Ok(out)
}

/// Airtable's update-field: renames a field and/or sets its description. Cells are stored by
/// field id, so records follow the rename.
pub(crate) fn update_field(
    state: &mut BaseState,
    table: &str,
    field: &str,
    body: &Map<String, Value>,
    source: Source,
) -> Result<Value, ApiError> {
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
    let BaseState { base, hooks, .. } = state;
    let ti = base.table_index(table).ok_or_else(forbidden)?;
    let t = &mut base.tables[ti];
    let id = t.field(field).map(|f| f.id.clone()).ok_or_else(forbidden)?;
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
    let table_id = t.id.clone();
    let f = t.fields.iter_mut().find(|f| f.id == id).ok_or_else(forbidden)?;
    let mut current = Map::new();
    let mut previous = Map::new();
    if let Some(name) = name {
        previous.insert("name".into(), json!(f.name));
        current.insert("name".into(), json!(name));
        f.name = name;
    }
    if let Some(d) = description {
        previous.insert("description".into(), json!(f.description));
        current.insert("description".into(), json!(d));
        f.description = Some(d);
    }
    let meta = f.meta();
    hooks.record(&table_id, Change::Field { id, current, previous }, now_ms(), source);
    Ok(meta)
}
