//! Airtable records → JSON Lines rows already shaped for the table's schema.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::schema::{CREATED_TIME, Column, ID, Kind};
use crate::time;

/// One record of a list-records response (`returnFieldsByFieldId=true`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Record {
    pub id: String,
    #[serde(rename = "createdTime", default)]
    pub created_time: Option<String>,
    #[serde(default)]
    pub fields: Map<String, Value>,
}

/// Error values Airtable writes into computed cells instead of a result.
const ERROR_TOKENS: [&str; 8] =
    ["#ERROR!", "#ERROR", "#N/A", "#NUM!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?"];

/// Turns records into rows, counting the cells that became null per column.
#[derive(Debug, Default)]
pub(crate) struct Shaper {
    nulled: BTreeMap<String, u64>,
}

impl Shaper {
    /// One row: `id`, `created_time`, then the present cells keyed by column name.
    pub(crate) fn row(&mut self, record: &Record, columns: &[Column]) -> Map<String, Value> {
        let mut row = Map::new();
        row.insert(ID.into(), Value::String(record.id.clone()));
        if let Some(t) = &record.created_time {
            row.insert(CREATED_TIME.into(), Value::String(t.clone()));
        }
        for column in columns {
            let value = match record.fields.get(&column.field_id) {
                None | Some(Value::Null) if column.absent_is_false => Value::Bool(false),
                None | Some(Value::Null) => continue,
                Some(v) => {
                    let mut nulled = 0;
                    let shaped = shape(v, &column.kind, column.computed, &mut nulled);
                    if nulled > 0 {
                        *self.nulled.entry(column.name.clone()).or_default() += nulled;
                    }
                    shaped
                }
            };
            if !value.is_null() {
                row.insert(column.name.clone(), value);
            }
        }
        row
    }

    /// The page's counters: `("nulled.<column>", n)` for each column that lost values.
    pub(crate) fn counters(self) -> Vec<(String, u64)> {
        self.nulled.into_iter().map(|(column, n)| (format!("nulled.{column}"), n)).collect()
    }
}

fn is_special(value: &Value, computed: bool) -> bool {
    match value {
        Value::Object(o) => o.contains_key("specialValue") || (computed && o.contains_key("error")),
        Value::String(s) => computed && ERROR_TOKENS.contains(&s.trim()),
        _ => false,
    }
}

/// Shapes one cell for `kind`; anything that does not fit becomes null and is counted.
fn shape(value: &Value, kind: &Kind, computed: bool, nulled: &mut u64) -> Value {
    if value.is_null() {
        return Value::Null;
    }
    if is_special(value, computed) {
        *nulled += 1;
        return Value::Null;
    }
    let shaped = match (kind, value) {
        (Kind::Json, v) => Some(Value::String(v.to_string())),
        (Kind::String, Value::String(_)) => Some(value.clone()),
        (Kind::String, Value::Number(n)) => Some(Value::String(n.to_string())),
        (Kind::String, Value::Bool(b)) => Some(Value::String(b.to_string())),
        (Kind::String, v) => Some(Value::String(v.to_string())),
        (Kind::Long, v) => long(v),
        (Kind::Double | Kind::Decimal(_), Value::Number(_)) => Some(value.clone()),
        (Kind::Double | Kind::Decimal(_), Value::String(s)) => {
            s.trim().parse::<f64>().ok().and_then(Number::from_f64).map(Value::Number)
        }
        (Kind::Boolean, Value::Bool(_)) => Some(value.clone()),
        (Kind::Date, Value::String(s)) => date(s),
        (Kind::Timestamp, Value::String(s)) => timestamp(s),
        (Kind::Array(inner), Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            flatten_into(items, inner, computed, nulled, &mut out);
            Some(Value::Array(out))
        }
        // A lookup or rollup may hand back one value where an array is declared.
        (Kind::Array(inner), v) => Some(Value::Array(vec![shape(v, inner, computed, nulled)])),
        (Kind::Struct(members), Value::Object(o)) => {
            let mut out = Map::new();
            for m in members {
                if let Some(v) = o.get(m.key) {
                    let v = shape(v, &m.kind, false, nulled);
                    if !v.is_null() {
                        out.insert(m.name.to_string(), v);
                    }
                }
            }
            Some(Value::Object(out))
        }
        _ => None,
    };
    shaped.unwrap_or_else(|| {
        *nulled += 1;
        Value::Null
    })
}

fn flatten_into(items: &[Value], inner: &Kind, computed: bool, nulled: &mut u64, out: &mut Vec<Value>) {
    for item in items {
        match item {
            Value::Array(nested) if !matches!(inner, Kind::Json) => {
                flatten_into(nested, inner, computed, nulled, out)
            }
            _ => out.push(shape(item, inner, computed, nulled)),
        }
    }
}

fn long(value: &Value) -> Option<Value> {
    let whole = |f: f64| (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64);
    let n = match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().and_then(whole))?,
        Value::String(s) => s.trim().parse::<i64>().ok()?,
        _ => return None,
    };
    Some(Value::Number(n.into()))
}

fn date(s: &str) -> Option<Value> {
    let ms = time::parse_ms(s)?;
    // Date-only text is already the calendar day; a full time is cut to its UTC day.
    Some(Value::String(if s.len() == 10 { s.to_string() } else { time::format_ms(ms)[..10].to_string() }))
}

fn timestamp(s: &str) -> Option<Value> {
    let ms = time::parse_ms(s)?;
    // One textual form for every instant, whatever zone or precision Airtable wrote.
    Some(Value::String(time::format_ms(ms)))
}
