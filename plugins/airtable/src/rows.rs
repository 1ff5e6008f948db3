//! Airtable records, borrowed from the response body, and how a cell is shaped for its column.
//!
//! A page's records are borrowed from the response body: ids, field ids and cells stay slices
//! of it, and a record's cells are found by column through one lookup table per page. [`Shaper`]
//! appends each cell to its column's Arrow builder ([`crate::columns`]), which takes the common
//! forms from their text; [`shape`] is the reference for what every cell becomes, and the path for
//! a cell whose value must change form (a number in a text column, a JSON column, a special value).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

use weir_connector_sdk::ConnectorError;

use crate::columns::{Page, PageLayout};
use crate::schema::{CREATED_TIME, Column, Kind};
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
pub(crate) struct Cells<'a>(Vec<(Key<'a>, &'a str)>);

impl<'a> Cells<'a> {
    pub(crate) fn new(cells: Vec<(Key<'a>, &'a str)>) -> Cells<'a> {
        Cells(cells)
    }

    /// The cell of `field_id`; of a repeated key, the last (as a JSON object would keep it).
    pub(crate) fn get(&self, field_id: &str) -> Option<&'a str> {
        self.0.iter().rev().find(|(k, _)| k.0 == field_id).map(|(_, v)| *v)
    }
}

/// An object's key, borrowed unless it holds an escape. (serde's own `Cow<str>` always owns:
/// an allocation per cell.)
#[derive(Debug)]
pub(crate) struct Key<'a>(Cow<'a, str>);

impl<'a> Key<'a> {
    pub(crate) fn borrowed(key: &'a str) -> Key<'a> {
        Key(Cow::Borrowed(key))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

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
                while let Some((key, raw)) = map.next_entry::<Key<'a>, &'de RawValue>()? {
                    cells.push((key, raw.get()));
                }
                Ok(Cells(cells))
            }
        }
        deserializer.deserialize_map(CellsVisitor(std::marker::PhantomData))
    }
}

impl<'a> Record<'a> {
    /// A cell's value when it is a JSON string: borrowed unless it holds an escape.
    pub(crate) fn text(&self, field_id: &str) -> Option<Cow<'a, str>> {
        string_value(self.fields.get(field_id)?)
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

/// Whether a cell's text is one of Airtable's error tokens (which only a computed cell's text
/// means as an error).
pub(crate) fn is_error_token(text: &str) -> bool {
    ERROR_TOKENS.contains(&text.trim())
}

/// Whether an object cell that has this key is a special value rather than a value: Airtable's
/// `{"specialValue": …}` (`NaN`, `Infinity`), and a computed cell's `{"error": …}`. The one rule
/// for the `Value` path ([`shape`]) and for cells read from their text ([`crate::columns`]).
pub(crate) fn is_special_key(key: &str, computed: bool) -> bool {
    key == "specialValue" || (computed && key == "error")
}

/// A page's named counts (`Page::counters`).
pub(crate) type Counters = Vec<(String, u64)>;

/// What every page of a plan shares, built once with the plan: the columns by field id and the
/// pages' Arrow schema.
#[derive(Debug)]
pub(crate) struct Layout {
    /// Field id → the first column of that field.
    by_field: HashMap<String, usize, BuildHasherDefault<FieldHasher>>,
    /// Column index → the next column of the same field, if a schema repeats a field id.
    same_field: Vec<Option<usize>>,
    page: PageLayout,
}

impl Layout {
    pub(crate) fn new(columns: &[Column]) -> Layout {
        let mut by_field: HashMap<String, usize, _> = HashMap::default();
        let mut same_field = vec![None; columns.len()];
        // From the last column back, so each field id ends up at its first column.
        for (i, c) in columns.iter().enumerate().rev() {
            same_field[i] = by_field.insert(c.field_id.clone(), i);
        }
        Layout { by_field, same_field, page: PageLayout::new(columns) }
    }
}

/// How many keys a page's records may list beyond the table's columns (fields the schema does not
/// have) that [`Shaper`] still finds by comparing rather than hashing.
const MORE_KEYS: usize = 32;

/// Turns one page's records (borrowed for `'r`) into its columns, counting the cells that became
/// null per column.
pub(crate) struct Shaper<'c, 'r> {
    columns: &'c [Column],
    layout: &'c Layout,
    page: Page<'c>,
    /// The current record's cells by column index: reused from record to record.
    slots: Vec<Option<&'r str>>,
    /// The keys the page's records listed, in the order they list them, each with its first
    /// column. Airtable lists a record's cells in the table's field order and leaves out the empty
    /// ones, so a key is mostly found a step or two after the record's previous key, by comparing
    /// texts rather than hashing. (Matched by place in the record before, four keys in five missed:
    /// any record that leaves out a cell shifts the ones after it.)
    keys: Vec<(&'r str, Option<usize>)>,
    nulled: BTreeMap<usize, u64>,
    /// Created times that were not times.
    created_nulled: u64,
}

impl<'c, 'r> Shaper<'c, 'r> {
    /// A shaper for `columns`, whose layout is `layout`.
    pub(crate) fn new(columns: &'c [Column], layout: &'c Layout) -> Shaper<'c, 'r> {
        Shaper {
            columns,
            layout,
            page: Page::new(columns, &layout.page),
            slots: vec![None; columns.len()],
            keys: Vec::new(),
            nulled: BTreeMap::new(),
            created_nulled: 0,
        }
    }

    /// Appends one row: `id`, `created_time`, then each column's cell, or null where it has none.
    pub(crate) fn push(&mut self, record: &Record<'r>) {
        self.page.start_row(&record.id, record.created_time.as_deref(), &mut self.created_nulled);
        self.slots.fill(None);
        // A repeated field id keeps its last cell, as a JSON object would.
        // Where the next key is looked for first: after the record's previous key.
        let mut next = 0;
        for (field_id, raw) in &record.fields.0 {
            let key = field_id.as_str();
            let (before, after) = self.keys.split_at(next);
            let found = match after.iter().position(|(k, _)| same_text(k, key)) {
                Some(j) => Some(next + j),
                None => before.iter().position(|(k, _)| same_text(k, key)),
            };
            let mut column = match found {
                Some(j) => {
                    next = j + 1;
                    self.keys[j].1
                }
                None => {
                    let column = self.layout.by_field.get(key).copied();
                    // A key unescaped into its own string is not kept (the record owns it), nor
                    // keys past a bound, so that a page of ever new keys costs hashing, not scans.
                    if let Cow::Borrowed(key) = field_id.0
                        && self.keys.len() < self.columns.len() + MORE_KEYS
                    {
                        self.keys.insert(next, (key, column));
                        next += 1;
                    }
                    column
                }
            };
            while let Some(i) = column {
                self.slots[i] = Some(raw);
                column = self.layout.same_field[i];
            }
        }
        for (i, column) in self.columns.iter().enumerate() {
            let builder = self.page.column(i);
            match self.slots[i].filter(|r| *r != "null") {
                None if column.absent_is_false => builder.absent_false(),
                None => builder.null(),
                Some(raw) => {
                    let mut nulled = 0;
                    builder.cell(raw, &column.kind, column.computed, &mut nulled);
                    if nulled > 0 {
                        *self.nulled.entry(i).or_default() += nulled;
                    }
                }
            }
        }
    }

    /// The page as an Arrow IPC stream, and its counters: `("nulled.<column>", n)` for each column
    /// that lost values.
    pub(crate) fn finish(self) -> Result<(Vec<u8>, Counters), ConnectorError> {
        let mut counters: Vec<(String, u64)> =
            self.nulled.into_iter().map(|(i, n)| (format!("nulled.{}", self.columns[i].name), n)).collect();
        if self.created_nulled > 0 {
            counters.push((format!("nulled.{CREATED_TIME}"), self.created_nulled));
        }
        counters.sort();
        Ok((self.page.finish()?, counters))
    }
}

/// Whether two texts are the same, compared eight bytes at a time (wasi-libc's `memcmp`, which
/// `==` calls in the guest, compares one byte at a time).
fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut wa, mut wb) = (a.chunks_exact(8), b.chunks_exact(8));
    (&mut wa).zip(&mut wb).all(|(x, y)| word(x) == word(y))
        && wa.remainder().iter().zip(wb.remainder()).all(|(x, y)| x == y)
}

/// Eight bytes as one word (an 8-byte chunk; anything else reads as zero).
fn word(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().unwrap_or_default())
}

/// A JSON string's contents, when they hold no escape (all of Airtable's times and error tokens).
pub(crate) fn plain_string(raw: &str) -> Option<&str> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    (!has_backslash(inner)).then_some(inner)
}

/// A JSON string's value: its contents borrowed when they hold no escape, else unescaped.
pub(crate) fn string_value(raw: &str) -> Option<Cow<'_, str>> {
    if let Some(text) = plain_string(raw) {
        return Some(Cow::Borrowed(text));
    }
    let mut text = String::new();
    unescape(raw.strip_prefix('"')?.strip_suffix('"')?, &mut |piece| text.push_str(piece))
        .then_some(Cow::Owned(text))
}

/// Hands a JSON string's contents (the text between its quotes, as a parse of the page checked
/// them: no bare quote or control character), unescaped, to `out` piece by piece; false, having
/// handed over the pieces before it, where serde_json refuses the string too (a surrogate without
/// its pair, a backslash that starts no escape). serde_json's own reading allocated a `String` for
/// every escaped cell: 2.5 % of the guest's samples.
pub(crate) fn unescape(inner: &str, out: &mut impl FnMut(&str)) -> bool {
    let mut rest = inner;
    while let Some(at) = backslash_at(rest) {
        out(&rest[..at]);
        let mut char = [0; 4];
        let (piece, len): (&str, usize) = match rest.as_bytes().get(at + 1) {
            Some(b'"') => ("\"", 2),
            Some(b'\\') => ("\\", 2),
            Some(b'/') => ("/", 2),
            Some(b'b') => ("\u{8}", 2),
            Some(b'f') => ("\u{c}", 2),
            Some(b'n') => ("\n", 2),
            Some(b'r') => ("\r", 2),
            Some(b't') => ("\t", 2),
            Some(b'u') => {
                let Some(first) = hex4(&rest[at + 2..]) else { return false };
                let (code, len) = match first {
                    0xD800..=0xDBFF => match rest[at + 6..].strip_prefix("\\u").and_then(hex4) {
                        Some(low @ 0xDC00..=0xDFFF) => {
                            (0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(low) - 0xDC00), 12)
                        }
                        _ => return false,
                    },
                    _ => (u32::from(first), 6),
                };
                let Some(c) = char::from_u32(code) else { return false };
                (&*c.encode_utf8(&mut char), len)
            }
            _ => return false,
        };
        out(piece);
        rest = &rest[at + len..];
    }
    out(rest);
    true
}

/// The four hex digits that open `text`, as a number.
fn hex4(text: &str) -> Option<u16> {
    let digits = text.get(..4)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(digits, 16).ok()
}

/// A one in each byte of an 8-byte word.
const ONES: u64 = u64::MAX / 255;

/// The high bit of each byte of `bytes` (an 8-byte chunk) that equals `byte`: exact up to the first
/// such byte, which is all that is read of them.
fn equal_bytes(bytes: &[u8], byte: u8) -> u64 {
    let x = word(bytes) ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x & (ONES << 7)
}

/// Where a string's text stops being plain: its first quote, backslash or control character,
/// looked for eight bytes a turn (see [`has_backslash`]).
pub(crate) fn string_stop(bytes: &[u8]) -> Option<usize> {
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for w in &mut words {
        // Bytes below 0x20, found as `equal_bytes` finds a zero byte: exact up to the first.
        let x = word(w);
        let control = x.wrapping_sub(ONES * 0x20) & !x & (ONES << 7);
        let found = equal_bytes(w, b'"') | equal_bytes(w, b'\\') | control;
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    words.remainder().iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).map(|i| at + i)
}

/// Whether text holds a backslash (see [`backslash_at`]).
pub(crate) fn has_backslash(text: &str) -> bool {
    backslash_at(text).is_some()
}

/// Where text's first backslash is, looked for sixteen bytes a turn in two 8-byte words, the last
/// turn's words overlapping those before. (Core's `memchr`, which `find` and `contains` call,
/// reads eight a turn in 32-bit wasm, as two 4-byte words, and its last few bytes one by one; each
/// turn of a guest's loop also pays the sandbox's epoch check. It was 3 % of the guest's samples.)
pub(crate) fn backslash_at(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    // A word is exact up to its first backslash, and reads as zero without one.
    let word_at = |at: usize| {
        let found = equal_bytes(&bytes[at..at + 8], b'\\');
        (found != 0).then(|| at + found.trailing_zeros() as usize / 8)
    };
    let pair_at = |at: usize| word_at(at).or_else(|| word_at(at + 8));
    // Bytes a last, overlapping turn reads again hold no backslash, so its first is the text's first.
    match bytes.len() {
        0..8 => bytes.iter().position(|&b| b == b'\\'),
        8..16 => word_at(0).or_else(|| word_at(bytes.len() - 8)),
        len => (0..len - 16).step_by(16).find_map(pair_at).or_else(|| pair_at(len - 16)),
    }
}

/// An integer literal's value, when it is one and fits a long.
pub(crate) fn long_literal(raw: &str) -> Option<i64> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

fn is_special(value: &Value, computed: bool) -> bool {
    match value {
        Value::Object(o) => o.keys().any(|key| is_special_key(key, computed)),
        Value::String(s) => computed && is_error_token(s),
        _ => false,
    }
}

/// Shapes one cell for `kind`; anything that does not fit becomes null and is counted.
pub(crate) fn shape(value: &Value, kind: &Kind, computed: bool, nulled: &mut u64) -> Value {
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

/// A time cell's text as a date or timestamp column holds it, or `None` when it is not a time.
fn time_text(text: &str, date: bool) -> Option<String> {
    let ms = time::parse_ms(text)?;
    if date && text.len() == 10 {
        // Date-only text is already the calendar day.
        return Some(text.to_string());
    }
    // One textual form for every instant, whatever zone or precision Airtable wrote; a date
    // column keeps its UTC day.
    let mut out = time::format_ms(ms);
    if date {
        out.truncate(10);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use weir_connector_sdk::{Page, Rows};

    use super::*;

    /// A text column of `field_id`.
    fn text_column(name: &str, field_id: &str) -> Column {
        Column {
            name: name.into(),
            field_id: field_id.into(),
            field_name: name.into(),
            airtable_type: "singleLineText".into(),
            kind: Kind::String,
            computed: false,
            absent_is_false: false,
        }
    }

    /// The rows that one page of these records (each a record's JSON) makes for `columns`.
    fn shaped(columns: &[Column], records: &[&str]) -> Vec<Value> {
        let records: Vec<Record> =
            records.iter().map(|r| serde_json::from_str(r).expect("a record")).collect();
        let layout = Layout::new(columns);
        let mut shaper = Shaper::new(columns, &layout);
        records.iter().for_each(|r| shaper.push(r));
        let (stream, counters) = shaper.finish().expect("a page");
        let page =
            Page { rows: Rows::ArrowIpc(stream), end_offset: String::new(), checkpointable: true, counters };
        crate::tests::rows(&page)
    }

    /// Records that list their cells in other orders, leave some out, add fields the schema does
    /// not have or escape a key each get their own cells, however the record before listed its.
    #[test]
    fn cells_in_any_order_reach_their_columns() {
        let columns = [text_column("a", "fldA"), text_column("b", "fldB"), text_column("c", "fldC")];
        let records = [
            r#"{"id":"r1","fields":{"fldA":"1","fldB":"2","fldC":"3"}}"#,
            r#"{"id":"r2","fields":{"fldB":"4","fldA":"5"}}"#,
            r#"{"id":"r3","fields":{"fldX":"x","fldA":"6","fldC":"7"}}"#,
            r#"{"id":"r4","fields":{"fld\u0041":"8","fldB":"9","fldC":"10"}}"#,
            r#"{"id":"r5","fields":{"fldA":"11","fldB":"12","fldCC":"13"}}"#,
            r#"{"id":"r6","fields":{"fldA":"14","fldB":"15","fldC":"16"}}"#,
            r#"{"id":"r7","fields":{"fldC":"17","fldB":"18","fldA":"19"}}"#,
            r#"{"id":"r8","fields":{"fldC":"20","fldA":"21"}}"#,
        ];
        assert_eq!(
            shaped(&columns, &records),
            [
                json!({"id": "r1", "a": "1", "b": "2", "c": "3"}),
                json!({"id": "r2", "a": "5", "b": "4"}),
                json!({"id": "r3", "a": "6", "c": "7"}),
                json!({"id": "r4", "a": "8", "b": "9", "c": "10"}),
                json!({"id": "r5", "a": "11", "b": "12"}),
                json!({"id": "r6", "a": "14", "b": "15", "c": "16"}),
                json!({"id": "r7", "a": "19", "b": "18", "c": "17"}),
                json!({"id": "r8", "a": "21", "c": "20"}),
            ]
        );
    }

    /// Past the bound on keys kept for comparing (fields the schema does not have, listed before
    /// and between the table's), cells still reach their columns, found by hashing.
    #[test]
    fn cells_past_the_kept_keys_reach_their_columns() {
        let columns = [text_column("a", "fldA"), text_column("b", "fldB")];
        let unknown: Vec<String> = (0..2 * MORE_KEYS).map(|i| format!(r#""fldX{i}":"x""#)).collect();
        let record = |id: &str, a: &str, b: &str| {
            format!(
                r#"{{"id":"{id}","fields":{{{},"fldB":"{b}",{},"fldA":"{a}"}}}}"#,
                unknown[..MORE_KEYS].join(","),
                unknown[MORE_KEYS..].join(",")
            )
        };
        let records = [record("r1", "1", "2"), record("r2", "3", "4")];
        let records: Vec<&str> = records.iter().map(String::as_str).collect();
        assert_eq!(
            shaped(&columns, &records),
            [json!({"id": "r1", "a": "1", "b": "2"}), json!({"id": "r2", "a": "3", "b": "4"})]
        );
    }

    /// Strings unescape as serde_json reads them, and the ones it refuses are refused: Airtable's
    /// escapes, every surrogate pairing, and texts made at random of escapes good and bad.
    #[test]
    fn strings_unescape_as_serde_json_reads_them() {
        let pieces = [
            "a",
            "é",
            "€",
            "🚀",
            r#"\""#,
            r"\\",
            r"\/",
            r"\b",
            r"\f",
            r"\n",
            r"\r",
            r"\t",
            r"\u00b7",
            r"\u0041",
            r"\u0000",
            r"\u20AC",
            r"\ud83d",
            r"\ude80",
            r"\uD83D\uDE80",
            r"\uDBFF\uDFFF",
            r"\ud800\u0041",
            r"\u12",
            r"\x",
            r"\",
            "\u{7f}",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        let mut texts: Vec<String> = pieces.iter().map(|p| format!("\"{p}\"")).collect();
        for _ in 0..20_000 {
            let parts: String = (0..next() % 6).map(|_| pieces[next() % pieces.len()]).collect();
            texts.push(format!("\"{parts}\""));
        }
        // A cell's text is what the page's parse took for a JSON value.
        texts.retain(|text| serde_json::from_str::<&RawValue>(text).is_ok());
        let mut read = 0;
        for text in &texts {
            let expected = serde_json::from_str::<String>(text).ok();
            read += usize::from(expected.is_some());
            assert_eq!(string_value(text).map(Cow::into_owned), expected, "{text}");
        }
        // Both kinds were tried.
        assert!(read > 1000 && read < texts.len() - 1000, "{read} of {} read", texts.len());
    }

    /// The first backslash is found wherever it is, in texts of every length around the words'
    /// sizes, with or without a second one after it.
    #[test]
    fn a_backslash_is_found_anywhere() {
        for len in 0..60 {
            let plain = "é".repeat(len / 2) + &"a".repeat(len % 2);
            assert!(!has_backslash(&plain), "{plain}");
            for at in 0..=plain.len() {
                if plain.is_char_boundary(at) {
                    let text = format!("{}\\{}", &plain[..at], &plain[at..]);
                    assert_eq!(backslash_at(&text), Some(at), "{text}");
                    for second in (at + 1..=text.len()).filter(|&i| text.is_char_boundary(i)) {
                        let text = format!("{}\\{}", &text[..second], &text[second..]);
                        assert_eq!(backslash_at(&text), Some(at), "{text}");
                    }
                }
            }
        }
        // Bytes next to a backslash's value do not count.
        assert!(!has_backslash(
            "[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]][[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ÜÜÜÜÜÜÜÜÜÜÜÜÜÜÜ"
        ));
    }

    /// Every column of a field gets its cell, however often a schema repeats the field, and a
    /// record that repeats a field id keeps its last cell.
    #[test]
    fn columns_of_one_field_all_get_its_cell() {
        let columns = [text_column("a", "fldA"), text_column("b", "fldB"), text_column("a2", "fldA")];
        let record = r#"{"id":"rec1","fields":{"fldA":"one","fldB":"x","fldA":"two"}}"#;
        assert_eq!(shaped(&columns, &[record]), [json!({"id": "rec1", "a": "two", "b": "x", "a2": "two"})]);
    }
}
