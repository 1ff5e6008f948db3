//! Airtable records → JSON Lines rows already shaped for the table's schema.
//!
//! A record's cells are kept as their raw JSON text, not parsed into trees: most cells (text,
//! numbers, checkboxes) are written to the row exactly as Airtable sent them, and times are
//! reformatted from the text. Only a cell whose value must change shape (lists, objects, a
//! number in a text column) is parsed and shaped as a `serde_json::Value`. The host parses the
//! rows into the same values either way: JSON text the connector passes through holds exactly
//! the value serde would have written for it.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

use crate::schema::{CREATED_TIME, Column, ID, Kind};
use crate::time;

/// One record of a list-records response (`returnFieldsByFieldId=true`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Record {
    pub id: String,
    #[serde(rename = "createdTime", default)]
    pub created_time: Option<String>,
    /// Field id → the cell's JSON text.
    #[serde(default)]
    pub fields: HashMap<String, Box<RawValue>>,
}

impl Record {
    /// A cell's value when it is a JSON string.
    pub(crate) fn text(&self, field_id: &str) -> Option<String> {
        serde_json::from_str(self.fields.get(field_id)?.get()).ok()
    }
}

/// Error values Airtable writes into computed cells instead of a result.
const ERROR_TOKENS: [&str; 8] =
    ["#ERROR!", "#ERROR", "#N/A", "#NUM!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?"];

/// Turns records into rows, counting the cells that became null per column.
#[derive(Debug, Default)]
pub(crate) struct Shaper {
    nulled: BTreeMap<String, u64>,
}

/// What becomes of one cell.
enum Shaped {
    /// Written as this JSON text.
    Raw,
    /// Written as this value.
    Value(Value),
    /// A time, reformatted: written as this string.
    Text(String),
    /// Left out: null.
    Null,
}

impl Shaper {
    /// Appends one row as a JSON object: `id`, `created_time`, then the present cells keyed by
    /// column name.
    pub(crate) fn write_row(&mut self, record: &Record, columns: &[Column], out: &mut Vec<u8>) {
        out.push(b'{');
        write_string(out, ID);
        out.push(b':');
        write_string(out, &record.id);
        if let Some(t) = &record.created_time {
            member(out, CREATED_TIME);
            write_string(out, t);
        }
        for column in columns {
            let raw = record.fields.get(&column.field_id).map(|r| r.get()).filter(|r| *r != "null");
            let Some(raw) = raw else {
                if column.absent_is_false {
                    member(out, &column.name);
                    out.extend_from_slice(b"false");
                }
                continue;
            };
            let mut nulled = 0;
            let shaped = cell(raw, column, &mut nulled);
            if nulled > 0 {
                *self.nulled.entry(column.name.clone()).or_default() += nulled;
            }
            match shaped {
                Shaped::Null => {}
                Shaped::Raw => {
                    member(out, &column.name);
                    out.extend_from_slice(raw.as_bytes());
                }
                Shaped::Text(text) => {
                    member(out, &column.name);
                    write_string(out, &text);
                }
                Shaped::Value(value) => {
                    member(out, &column.name);
                    // Writing a Value to a Vec cannot fail.
                    let _ = serde_json::to_writer(&mut *out, &value);
                }
            }
        }
        out.push(b'}');
    }

    /// The page's counters: `("nulled.<column>", n)` for each column that lost values.
    pub(crate) fn counters(self) -> Vec<(String, u64)> {
        self.nulled.into_iter().map(|(column, n)| (format!("nulled.{column}"), n)).collect()
    }
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    // Writing a string to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn member(out: &mut Vec<u8>, name: &str) {
    out.push(b',');
    write_string(out, name);
    out.push(b':');
}

/// A JSON string's contents, when they hold no escape (all of Airtable's times and error tokens).
fn plain_string(raw: &str) -> Option<&str> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('\\')).then_some(inner)
}

/// An integer literal that fits a long.
fn is_long(raw: &str) -> bool {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && raw.parse::<i64>().is_ok()
}

/// Shapes one non-null cell for its column: the common cases straight from the text, anything
/// else through `shape`.
fn cell(raw: &str, column: &Column, nulled: &mut u64) -> Shaped {
    let first = raw.as_bytes()[0];
    let number = first == b'-' || first.is_ascii_digit();
    let fast = match (&column.kind, plain_string(raw)) {
        (Kind::String, Some(text)) if column.computed && ERROR_TOKENS.contains(&text.trim()) => None,
        (Kind::String, Some(_)) => Some(Shaped::Raw),
        (Kind::Timestamp | Kind::Date, Some(text)) => {
            let shaped = if column.kind == Kind::Date { date(text) } else { timestamp(text) };
            Some(shaped.map_or_else(
                || {
                    *nulled += 1;
                    Shaped::Null
                },
                Shaped::Text,
            ))
        }
        (Kind::Double | Kind::Decimal(_), _) if number => Some(Shaped::Raw),
        (Kind::Long, _) if number && is_long(raw) => Some(Shaped::Raw),
        (Kind::Boolean, _) if raw == "true" || raw == "false" => Some(Shaped::Raw),
        _ => None,
    };
    if let Some(fast) = fast {
        return fast;
    }
    let Ok(value) = serde_json::from_str::<Value>(raw) else {
        *nulled += 1;
        return Shaped::Null;
    };
    match shape(&value, &column.kind, column.computed, nulled) {
        Value::Null => Shaped::Null,
        shaped => Shaped::Value(shaped),
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
        (Kind::Date, Value::String(s)) => date(s).map(Value::String),
        (Kind::Timestamp, Value::String(s)) => timestamp(s).map(Value::String),
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

fn date(s: &str) -> Option<String> {
    let ms = time::parse_ms(s)?;
    // Date-only text is already the calendar day; a full time is cut to its UTC day.
    Some(if s.len() == 10 { s.to_string() } else { time::format_ms(ms)[..10].to_string() })
}

fn timestamp(s: &str) -> Option<String> {
    let ms = time::parse_ms(s)?;
    // One textual form for every instant, whatever zone or precision Airtable wrote.
    Some(time::format_ms(ms))
}
