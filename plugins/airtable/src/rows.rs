//! Airtable records → JSON Lines rows already shaped for the table's schema.
//!
//! A page's records are borrowed from the response body: ids, field ids and cells stay slices
//! of it, and a record's cells are found by column through one lookup table per page. Cells are
//! shaped from their JSON text: most (text, numbers, checkboxes, lists of them, collaborators)
//! are written exactly as Airtable sent them or rebuilt from their parts, and times are
//! reformatted. Only a cell whose value must change form (a number in a text column, a JSON
//! column, a special value) is parsed into a `serde_json::Value` and shaped by [`shape`], the
//! reference the text path agrees with (a test holds them to it). The host parses the rows into
//! the same values either way.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

use crate::schema::{CREATED_TIME, Column, ID, Kind, Member};
use crate::time;

/// One record of a list-records response (`returnFieldsByFieldId=true`), borrowed from it.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Record<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(rename = "createdTime", default, borrow)]
    pub created_time: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub fields: Cells<'a>,
}

/// A record's cells: field id and JSON text, in the response's order.
#[derive(Debug, Default)]
pub(crate) struct Cells<'a>(Vec<(Key<'a>, &'a RawValue)>);

impl<'a> Cells<'a> {
    /// The cell of `field_id`; of a repeated key, the last (as a JSON object would keep it).
    fn get(&self, field_id: &str) -> Option<&'a str> {
        self.0.iter().rev().find(|(k, _)| k.0 == field_id).map(|(_, v)| v.get())
    }
}

/// An object's key, borrowed unless it holds an escape. (serde's own `Cow<str>` always owns:
/// an allocation per cell.)
#[derive(Debug)]
pub(crate) struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for KeyVisitor<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(text.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Cells<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CellsVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for CellsVisitor<'a> {
            type Value = Cells<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of cells")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Cells<'a>, M::Error> {
                let mut cells = Vec::with_capacity(map.size_hint().unwrap_or(32));
                while let Some(pair) = map.next_entry::<Key<'a>, &'de RawValue>()? {
                    cells.push(pair);
                }
                Ok(Cells(cells))
            }
        }
        deserializer.deserialize_map(CellsVisitor(std::marker::PhantomData))
    }
}

impl Record<'_> {
    /// A cell's value when it is a JSON string.
    pub(crate) fn text(&self, field_id: &str) -> Option<String> {
        serde_json::from_str(self.fields.get(field_id)?).ok()
    }
}

/// FxHash (rustc's): a field id costs three multiplications rather than SipHash's rounds, once
/// per cell. Unseeded, so a source could name its fields to collide; the map holds only the
/// schema's columns, so a lookup then walks at most those, as a search of the columns would.
#[derive(Default)]
pub(crate) struct FieldHasher(u64);

impl FieldHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FieldHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Error values Airtable writes into computed cells instead of a result.
const ERROR_TOKENS: [&str; 8] =
    ["#ERROR!", "#ERROR", "#N/A", "#NUM!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?"];

/// Turns one page's records (borrowed for `'r`) into rows, counting the cells that became null
/// per column.
pub(crate) struct Shaper<'c, 'r> {
    columns: &'c [Column],
    /// Each column's `,"name":`, escaped once per page rather than once per cell.
    members: Vec<Vec<u8>>,
    /// Field id → the first column of that field.
    by_field: HashMap<&'c str, usize, BuildHasherDefault<FieldHasher>>,
    /// Column index → the next column of the same field, if a schema repeats a field id.
    same_field: Vec<Option<usize>>,
    /// The current record's cells by column index: reused from record to record.
    slots: Vec<Option<&'r str>>,
    nulled: BTreeMap<usize, u64>,
}

impl<'c, 'r> Shaper<'c, 'r> {
    pub(crate) fn new(columns: &'c [Column]) -> Shaper<'c, 'r> {
        let members = columns
            .iter()
            .map(|c| {
                let mut m = vec![b','];
                write_string(&mut m, &c.name);
                m.push(b':');
                m
            })
            .collect();
        let mut by_field: HashMap<&str, usize, _> = HashMap::default();
        let mut same_field = vec![None; columns.len()];
        // From the last column back, so each field id ends up at its first column.
        for (i, c) in columns.iter().enumerate().rev() {
            same_field[i] = by_field.insert(c.field_id.as_str(), i);
        }
        Shaper {
            columns,
            members,
            by_field,
            same_field,
            slots: vec![None; columns.len()],
            nulled: BTreeMap::new(),
        }
    }

    /// Appends one row as a JSON object: `id`, `created_time`, then the present cells keyed by
    /// column name, in column order.
    pub(crate) fn write_row(&mut self, record: &Record<'r>, out: &mut Vec<u8>) {
        out.push(b'{');
        write_string(out, ID);
        out.push(b':');
        write_string(out, &record.id);
        if let Some(t) = &record.created_time {
            out.push(b',');
            write_string(out, CREATED_TIME);
            out.push(b':');
            write_string(out, t);
        }
        self.slots.fill(None);
        // A repeated field id keeps its last cell, as a JSON object would.
        for (field_id, raw) in &record.fields.0 {
            let mut column = self.by_field.get(field_id.0.as_ref()).copied();
            while let Some(i) = column {
                self.slots[i] = Some(raw.get());
                column = self.same_field[i];
            }
        }
        for (i, column) in self.columns.iter().enumerate() {
            let Some(raw) = self.slots[i].filter(|r| *r != "null") else {
                if column.absent_is_false {
                    out.extend_from_slice(&self.members[i]);
                    out.extend_from_slice(b"false");
                }
                continue;
            };
            let mark = out.len();
            out.extend_from_slice(&self.members[i]);
            let mut nulled = 0;
            if !write_value(raw, &column.kind, column.computed, &mut nulled, out) {
                out.truncate(mark);
            }
            if nulled > 0 {
                *self.nulled.entry(i).or_default() += nulled;
            }
        }
        out.push(b'}');
    }

    /// The page's counters: `("nulled.<column>", n)` for each column that lost values.
    pub(crate) fn counters(self) -> Vec<(String, u64)> {
        let mut counters: Vec<(String, u64)> =
            self.nulled.into_iter().map(|(i, n)| (format!("nulled.{}", self.columns[i].name), n)).collect();
        counters.sort();
        counters
    }
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    // Writing a string to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
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

/// Writes one cell (JSON text, not `null`) shaped for `kind`, or returns false having written
/// nothing when it becomes null (counted in `nulled` when a value was lost). The common forms
/// are shaped from the text; anything else goes through [`shape`], which this agrees with.
fn write_value(raw: &str, kind: &Kind, computed: bool, nulled: &mut u64, out: &mut Vec<u8>) -> bool {
    let first = raw.as_bytes()[0];
    let number = first == b'-' || first.is_ascii_digit();
    // Only the kinds that read a string's contents search it for an escape: text is copied as
    // Airtable sent it, and only a computed cell's text may be an error token.
    let plain = || plain_string(raw);
    match kind {
        Kind::String if first == b'"' && !computed => {
            out.extend_from_slice(raw.as_bytes());
            return true;
        }
        // Escaped computed text (`"#N\/A"`) takes the `Value` path below, which reads it.
        Kind::String if plain().is_some_and(|text| !ERROR_TOKENS.contains(&text.trim())) => {
            out.extend_from_slice(raw.as_bytes());
            return true;
        }
        Kind::Timestamp | Kind::Date if let Some(text) = plain() => {
            // The time's text is ASCII digits and separators: quoting it makes a JSON string.
            let mark = out.len();
            out.push(b'"');
            if !write_time(text, *kind == Kind::Date, out) {
                out.truncate(mark);
                *nulled += 1;
                return false;
            }
            out.push(b'"');
            return true;
        }
        Kind::Double | Kind::Decimal(_) if number => {
            out.extend_from_slice(raw.as_bytes());
            return true;
        }
        Kind::Long if number && is_long(raw) => {
            out.extend_from_slice(raw.as_bytes());
            return true;
        }
        Kind::Boolean if raw == "true" || raw == "false" => {
            out.extend_from_slice(raw.as_bytes());
            return true;
        }
        Kind::Array(inner) if first == b'[' => {
            if let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(raw) {
                out.push(b'[');
                let mut first = true;
                write_items(&items, inner, computed, nulled, out, &mut first);
                out.push(b']');
                return true;
            }
        }
        Kind::Struct(members) if first == b'{' => {
            if let Ok(object) = serde_json::from_str::<Cells>(raw) {
                let special =
                    object.get("specialValue").is_some() || (computed && object.get("error").is_some());
                if !special {
                    write_struct(&object, members, nulled, out);
                    return true;
                }
            }
        }
        _ => {}
    }
    let Ok(value) = serde_json::from_str::<Value>(raw) else {
        *nulled += 1;
        return false;
    };
    match shape(&value, kind, computed, nulled) {
        Value::Null => false,
        shaped => {
            // Writing a Value to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, &shaped);
            true
        }
    }
}

/// The items of a list cell, nested lists flattened (as [`flatten_into`] does); an item that
/// becomes null stays in the list as `null`.
fn write_items(
    items: &[&RawValue],
    inner: &Kind,
    computed: bool,
    nulled: &mut u64,
    out: &mut Vec<u8>,
    first: &mut bool,
) {
    for item in items {
        let raw = item.get();
        if raw.starts_with('[')
            && !matches!(inner, Kind::Json)
            && let Ok(nested) = serde_json::from_str::<Vec<&RawValue>>(raw)
        {
            write_items(&nested, inner, computed, nulled, out, first);
            continue;
        }
        if !std::mem::take(first) {
            out.push(b',');
        }
        if raw == "null" || !write_value(raw, inner, computed, nulled, out) {
            out.extend_from_slice(b"null");
        }
    }
}

/// A struct cell: each member present and not null, under its column-side name.
fn write_struct(object: &Cells, members: &[Member], nulled: &mut u64, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut first = true;
    for m in members {
        let Some(raw) = object.get(m.key).filter(|r| *r != "null") else { continue };
        let mark = out.len();
        if !first {
            out.push(b',');
        }
        write_string(out, m.name);
        out.push(b':');
        if write_value(raw, &m.kind, false, nulled, out) {
            first = false;
        } else {
            out.truncate(mark);
        }
    }
    out.push(b'}');
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
        (Kind::Date, Value::String(s)) => time_text(s, true).map(Value::String),
        (Kind::Timestamp, Value::String(s)) => time_text(s, false).map(Value::String),
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

/// Appends a time cell's text as a date or timestamp column holds it (ASCII, unquoted); false,
/// having written nothing, when the text is not a time.
fn write_time(text: &str, date: bool, out: &mut Vec<u8>) -> bool {
    let Some(ms) = time::parse_ms(text) else { return false };
    if date && text.len() == 10 {
        // Date-only text is already the calendar day.
        out.extend_from_slice(text.as_bytes());
    } else {
        // One textual form for every instant, whatever zone or precision Airtable wrote; a date
        // column keeps its UTC day.
        let start = out.len();
        time::write_ms(ms, out);
        if date {
            out.truncate(start + 10);
        }
    }
    true
}

/// [`write_time`]'s text as a string, for the `Value` path.
fn time_text(text: &str, date: bool) -> Option<String> {
    let mut out = Vec::new();
    write_time(text, date, &mut out).then(|| String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Member;

    fn collaborator() -> Kind {
        let m = |name, kind| Member { name, key: name, kind };
        Kind::Struct(vec![m("id", Kind::String), m("email", Kind::String), m("name", Kind::String)])
    }

    /// Every column of a field gets its cell, however often a schema repeats the field, and a
    /// record that repeats a field id keeps its last cell.
    #[test]
    fn columns_of_one_field_all_get_its_cell() {
        let column = |name: &str, field_id: &str| Column {
            name: name.into(),
            field_id: field_id.into(),
            field_name: name.into(),
            airtable_type: "singleLineText".into(),
            kind: Kind::String,
            computed: false,
            absent_is_false: false,
        };
        let columns = [column("a", "fldA"), column("b", "fldB"), column("a2", "fldA")];
        let body = r#"{"id":"rec1","fields":{"fldA":"one","fldB":"x","fldA":"two"}}"#;
        let record: Record = serde_json::from_str(body).expect("a record");
        let mut out = Vec::new();
        Shaper::new(&columns).write_row(&record, &mut out);
        let row: Value = serde_json::from_slice(&out).expect("a row");
        assert_eq!(row, serde_json::json!({"id": "rec1", "a": "two", "b": "x", "a2": "two"}));
    }

    /// The text path writes what the `Value` path would, and counts the same losses, for every
    /// column kind and a spread of cells: plain and escaped text, error tokens, numbers, times,
    /// nested lists, objects with repeated keys, special values.
    #[test]
    fn the_text_path_agrees_with_the_value_path() {
        let cells = [
            r##""text""##,
            r##""a\nb \"q\"""##,
            r##""#ERROR!""##,
            r##""  #N/A ""##,
            r##""#N\/A""##,
            "12",
            "-3",
            "1.5",
            "1.0",
            "1e3",
            "9223372036854775808",
            "true",
            "false",
            r##""2024-01-02""##,
            r##""2024-03-08T12:00:00.000+02:00""##,
            r##""2024-03-08T12:00:00Z""##,
            r##""not a date""##,
            r##""12""##,
            r##"["a", "b"]"##,
            r##"[["eu"],["us","ca"]]"##,
            r##"[1,"x",null,"#ERROR!"]"##,
            r##"[]"##,
            r##"[{"id":"u1"},{"specialValue":"NaN"},null,[{"id":"u2","name":"N"}]]"##,
            r##"{"id":"usrA","email":"a@b.example","name":"Al"}"##,
            r##"{"id":"usrA","id":"usrB","name":null}"##,
            r##"{"specialValue":"NaN"}"##,
            r##"{"error":"#ERROR!"}"##,
            r##"{"a":[1,2],"b":{"c":"d"}}"##,
            r##"{}"##,
        ];
        let kinds = [
            Kind::String,
            Kind::Long,
            Kind::Double,
            Kind::Decimal(2),
            Kind::Boolean,
            Kind::Date,
            Kind::Timestamp,
            Kind::Json,
            Kind::Array(Box::new(Kind::String)),
            Kind::Array(Box::new(Kind::Long)),
            Kind::Array(Box::new(Kind::Json)),
            Kind::Array(Box::new(collaborator())),
            collaborator(),
        ];
        for kind in &kinds {
            for computed in [false, true] {
                for raw in cells {
                    let mut expected_nulled = 0;
                    let value: Value = serde_json::from_str(raw).expect("test cells are JSON");
                    let expected = match shape(&value, kind, computed, &mut expected_nulled) {
                        Value::Null => None,
                        v => Some(serde_json::from_str::<Value>(&v.to_string()).expect("written JSON")),
                    };
                    let (mut out, mut nulled) = (Vec::new(), 0);
                    let written = write_value(raw, kind, computed, &mut nulled, &mut out);
                    let got = written.then(|| serde_json::from_slice::<Value>(&out).expect("written JSON"));
                    assert!(written || out.is_empty(), "{raw} as {kind:?}: wrote {out:?} for a null");
                    assert_eq!(got, expected, "{raw} as {kind:?}, computed {computed}");
                    assert_eq!(nulled, expected_nulled, "losses of {raw} as {kind:?}, computed {computed}");
                }
            }
        }
    }
}
