//! A page's columns, built as Arrow arrays in the table's schema and sent as an Arrow IPC stream.
//!
//! The connector builds Arrow itself, rather than writing JSON Lines for the host to parse again:
//! each cell goes from the response's JSON text straight into its column, once (issue 12: the row
//! text and the host's second parse were about a third of the read path's CPU). What a cell
//! becomes is [`shape`]'s answer, the reference this agrees with (a test holds the two to it,
//! and holds both to what the host stores for the same value sent as JSON):
//! - the common forms are appended from their text: strings (unescaped only when they hold an
//!   escape), numbers, checkboxes, times (parsed once, to microseconds), lists and objects;
//! - anything else (a number in a text column, a JSON column, a special value) is parsed into a
//!   `serde_json::Value`, shaped, and appended from that.
//!
//! A time cell keeps its milliseconds (what the connector's JSON carried), a record's created time
//! its microseconds (what the host read from Airtable's text); a date-only text must name a day
//! that exists, and a time outside four-digit years is a counted null.

use std::fmt;
use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, ListArray, RecordBatch, StructArray};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_ipc::writer::{
    DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions, write_message,
};
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Number, Value};
use weir_connector_sdk::{ConnectorError, decimal};

use crate::rows::{
    Key, has_backslash, is_error_token, is_special_key, long_literal, plain_string, shape, unescape,
};
use crate::scan::string_end;
use crate::schema::{CREATED_TIME, Column, ID, Kind, Member};
use crate::time;

/// Decimal columns are `decimal(38, scale)`: a value needs fewer than 38 digits.
const DECIMAL_LIMIT: i128 = 10_i128.pow(38);

/// The Arrow type the host reads a kind's Spark type as.
pub(crate) fn data_type(kind: &Kind) -> DataType {
    match kind {
        Kind::String | Kind::Json => DataType::Utf8,
        Kind::Long => DataType::Int64,
        Kind::Double => DataType::Float64,
        Kind::Decimal(scale) => DataType::Decimal128(38, *scale as i8),
        Kind::Boolean => DataType::Boolean,
        Kind::Date => DataType::Date32,
        Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Kind::Array(inner) => DataType::List(Arc::new(Field::new("element", data_type(inner), true))),
        Kind::Struct(members) => DataType::Struct(fields(members)),
    }
}

fn fields(members: &[Member]) -> Fields {
    members.iter().map(|m| Field::new(m.name, data_type(&m.kind), true)).collect()
}

/// The table's Arrow schema: `id`, `created_time`, then the columns (as `schema_json` says).
fn schema(columns: &[Column]) -> SchemaRef {
    let mut fields = vec![
        Field::new(ID, DataType::Utf8, false),
        Field::new(CREATED_TIME, data_type(&Kind::Timestamp), true),
    ];
    fields.extend(columns.iter().map(|c| Field::new(&c.name, data_type(&c.kind), true)));
    Arc::new(Schema::new(fields))
}

fn internal(what: &str) -> impl Fn(ArrowError) -> ConnectorError + '_ {
    move |e| ConnectorError::Internal(format!("{what}: {e}"))
}

/// The end of an IPC stream: a continuation marker and an empty message.
const END_OF_STREAM: [u8; 8] = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];

/// A table's pages' Arrow schema, and its IPC schema message, encoded once per plan rather than
/// once per page.
#[derive(Debug)]
pub(crate) struct PageLayout {
    schema: SchemaRef,
    schema_message: Vec<u8>,
}

impl PageLayout {
    pub(crate) fn new(columns: &[Column]) -> PageLayout {
        let schema = schema(columns);
        let options = IpcWriteOptions::default();
        let encoded = IpcDataGenerator::default().schema_to_bytes_with_dictionary_tracker(
            &schema,
            &mut DictionaryTracker::new(false),
            &options,
        );
        let mut schema_message = Vec::new();
        // Writing to a `Vec` cannot fail.
        let _ = write_message(&mut schema_message, encoded, &options);
        PageLayout { schema, schema_message }
    }

    /// The batch as an Arrow IPC stream: the schema message, the batch, the end marker.
    fn stream(&self, batch: &RecordBatch) -> Result<Vec<u8>, ConnectorError> {
        let options = IpcWriteOptions::default();
        let (_, message) = IpcDataGenerator::default()
            .encode(batch, &mut DictionaryTracker::new(false), &options, &mut IpcWriteContext::default())
            .map_err(internal("writing the page as Arrow"))?;
        let mut stream = Vec::with_capacity(
            self.schema_message.len() + message.ipc_message.len() + message.arrow_data.len() + 64,
        );
        stream.extend_from_slice(&self.schema_message);
        write_message(&mut stream, message, &options).map_err(internal("writing the page as Arrow"))?;
        stream.extend_from_slice(&END_OF_STREAM);
        Ok(stream)
    }
}

/// Milliseconds of a time's text, when it is a time in a four-digit year (the years its text form
/// covers, which the host could read back).
fn instant(text: &str) -> Option<i64> {
    time::parse_ms(text).filter(|ms| time::four_digit_year(*ms))
}

/// Microseconds of a time's text, or `None` when it is not a time (in a four-digit year).
fn micros(text: &str) -> Option<i64> {
    instant(text)?.checked_mul(1000)
}

/// A record's created time, in microseconds as the host read Airtable's text when the connector
/// passed it on: every digit to the microsecond, on a day that exists, in a four-digit year.
fn created_micros(text: &str) -> Option<i64> {
    time::parse_day(text.trim().get(..10)?)?;
    time::parse_us(text).filter(|us| time::four_digit_year(us.div_euclid(1000)))
}

/// Days since the epoch of a time's text: a date-only text's own day (which must exist), else the
/// instant's UTC day.
fn days(text: &str) -> Option<i32> {
    let days = if text.len() == 10 { time::parse_day(text)? } else { instant(text)?.div_euclid(86_400_000) };
    i32::try_from(days).ok()
}

/// One column's values, of a kind's Arrow type.
pub(crate) enum Builder {
    Text(StringBuilder),
    Long(Int64Builder),
    Double(Float64Builder),
    Decimal(Decimal128Builder, i8),
    Boolean(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    List { item: Box<Builder>, field: Arc<Field>, offsets: Vec<i32>, valid: NullBufferBuilder },
    Struct { members: Vec<Builder>, fields: Fields, valid: NullBufferBuilder, len: usize },
}

impl Builder {
    pub(crate) fn new(kind: &Kind) -> Builder {
        match kind {
            Kind::String | Kind::Json => Builder::Text(StringBuilder::new()),
            Kind::Long => Builder::Long(Int64Builder::new()),
            Kind::Double => Builder::Double(Float64Builder::new()),
            Kind::Decimal(scale) => {
                Builder::Decimal(Decimal128Builder::new().with_data_type(data_type(kind)), *scale as i8)
            }
            Kind::Boolean => Builder::Boolean(BooleanBuilder::new()),
            Kind::Date => Builder::Date(Date32Builder::new()),
            Kind::Timestamp => Builder::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
            Kind::Array(inner) => Builder::List {
                item: Box::new(Builder::new(inner)),
                field: Arc::new(Field::new("element", data_type(inner), true)),
                offsets: vec![0],
                valid: NullBufferBuilder::new(0),
            },
            Kind::Struct(members) => Builder::Struct {
                members: members.iter().map(|m| Builder::new(&m.kind)).collect(),
                fields: fields(members),
                valid: NullBufferBuilder::new(0),
                len: 0,
            },
        }
    }

    pub(crate) fn null(&mut self) {
        match self {
            Builder::Text(b) => b.append_null(),
            Builder::Long(b) => b.append_null(),
            Builder::Double(b) => b.append_null(),
            Builder::Decimal(b, _) => b.append_null(),
            Builder::Boolean(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::List { offsets, valid, .. } => {
                offsets.push(offsets.last().copied().unwrap_or(0));
                valid.append_null();
            }
            Builder::Struct { members, valid, len, .. } => {
                members.iter_mut().for_each(Builder::null);
                valid.append_null();
                *len += 1;
            }
        }
    }

    /// An absent checkbox: false (Airtable omits false).
    pub(crate) fn absent_false(&mut self) {
        match self {
            Builder::Boolean(b) => b.append_value(false),
            other => other.null(),
        }
    }

    /// Appends one cell, its JSON text shaped for `kind` as [`shape`] would, or a null, counted in
    /// `nulled` when a value was lost.
    pub(crate) fn cell(&mut self, raw: &str, kind: &Kind, computed: bool, nulled: &mut u64) {
        if raw == "null" {
            return self.null();
        }
        if self.text_form(raw, kind, computed, nulled) {
            return;
        }
        match serde_json::from_str::<Value>(raw) {
            Ok(value) => {
                let shaped = shape(&value, kind, computed, nulled);
                self.value(&shaped, kind, nulled);
            }
            Err(_) => {
                *nulled += 1;
                self.null();
            }
        }
    }

    /// The common forms, appended from their text; false, having appended nothing, for a cell that
    /// takes the `Value` path.
    fn text_form(&mut self, raw: &str, kind: &Kind, computed: bool, nulled: &mut u64) -> bool {
        let Some(&first) = raw.as_bytes().first() else { return false };
        let number = first == b'-' || first.is_ascii_digit();
        match (self, kind) {
            // Only a computed cell's text may be an error token; escaped computed text (`"#N\/A"`)
            // takes the `Value` path, which reads it.
            (Builder::Text(b), Kind::String) if first == b'"' && !computed => {
                let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
                    return false;
                };
                if !has_backslash(inner) {
                    b.append_value(inner);
                } else {
                    // Checked to the end before any piece is written into the column.
                    if !unescape(inner, &mut |_| {}) {
                        return false;
                    }
                    // A text builder's `write_str` adds to the value that `append_value` ends.
                    unescape(inner, &mut |piece| {
                        let _ = b.write_str(piece);
                    });
                    b.append_value("");
                }
            }
            (Builder::Text(b), Kind::String) if first == b'"' => match plain_string(raw) {
                Some(text) if !is_error_token(text) => b.append_value(text),
                _ => return false,
            },
            (Builder::Timestamp(b), Kind::Timestamp) => {
                let Some(text) = plain_string(raw) else { return false };
                match micros(text) {
                    Some(us) => b.append_value(us),
                    None => lost(b, nulled),
                }
            }
            (Builder::Date(b), Kind::Date) => {
                let Some(text) = plain_string(raw) else { return false };
                match days(text) {
                    Some(d) => b.append_value(d),
                    None => lost(b, nulled),
                }
            }
            (Builder::Double(b), Kind::Double) if number => match serde_json::from_str::<f64>(raw) {
                Ok(f) => b.append_value(f),
                Err(_) => return false,
            },
            // A literal short enough that a float reads it back unchanged is its own shortest
            // text; the host read others through the float.
            (Builder::Decimal(b, scale), Kind::Decimal(_))
                if number && (long_literal(raw).is_some() || is_short_literal(raw)) =>
            {
                within_limit(b, decimal::scaled(raw, *scale), nulled);
            }
            (Builder::Decimal(b, scale), Kind::Decimal(_)) if number => {
                let Ok(n) = serde_json::from_str::<Number>(raw) else { return false };
                within_limit(b, decimal::number(&n, *scale), nulled);
            }
            (Builder::Long(b), Kind::Long) if number => match long_literal(raw) {
                Some(n) => b.append_value(n),
                None => return false,
            },
            (Builder::Boolean(b), Kind::Boolean) if raw == "true" || raw == "false" => {
                b.append_value(raw == "true")
            }
            (Builder::Text(b), Kind::Json) if json_as_printed(raw, computed) => b.append_value(raw),
            (Builder::List { item, offsets, valid, .. }, Kind::Array(inner)) if first == b'[' => {
                // The common form read whole before its first item is appended; others by serde.
                if flat_list(raw, &mut |_| {}) {
                    flat_list(raw, &mut |text| item.cell(text, inner, computed, nulled));
                } else if item.items(raw, inner, computed, nulled).is_err() {
                    return false;
                }
                offsets.push(item.len_i32());
                valid.append_non_null();
            }
            (Builder::Struct { members: builders, valid, len, .. }, Kind::Struct(members))
                if first == b'{' && members.len() <= MAX_MEMBERS =>
            {
                let mut object = ObjectCells { cells: [None; MAX_MEMBERS], special: false };
                if !flat_object(raw, &mut |key, value| object.member(members, computed, key, value)) {
                    let Ok(parsed) = parse(raw, Object { members, computed }) else { return false };
                    object = parsed;
                }
                if object.special {
                    return false;
                }
                for ((b, m), raw) in builders.iter_mut().zip(members).zip(object.cells) {
                    match raw {
                        Some(raw) => b.cell(raw, &m.kind, false, nulled),
                        None => b.null(),
                    }
                }
                valid.append_non_null();
                *len += 1;
            }
            _ => return false,
        }
        true
    }

    /// Appends a list cell's items (the JSON text of an array), nested lists flattened (as `shape`
    /// does).
    fn items(&mut self, raw: &str, inner: &Kind, computed: bool, nulled: &mut u64) -> serde_json::Result<()> {
        parse(raw, Items { item: self, inner, computed, nulled })
    }

    /// How many values the column holds, as a list's end offset: a list's offsets follow its item
    /// column, however a cell was read. (A page cannot hold 2^31 values; if one did, the offsets
    /// would be out of order and `finish` would refuse them.)
    fn len_i32(&self) -> i32 {
        let len = match self {
            Builder::Text(b) => b.len(),
            Builder::Long(b) => b.len(),
            Builder::Double(b) => b.len(),
            Builder::Decimal(b, _) => b.len(),
            Builder::Boolean(b) => b.len(),
            Builder::Date(b) => b.len(),
            Builder::Timestamp(b) => b.len(),
            Builder::List { offsets, .. } => offsets.len() - 1,
            Builder::Struct { len, .. } => *len,
        };
        i32::try_from(len).unwrap_or(i32::MAX)
    }

    /// Appends a value [`shape`] returned for `kind`.
    pub(crate) fn value(&mut self, value: &Value, kind: &Kind, nulled: &mut u64) {
        if value.is_null() {
            return self.null();
        }
        match (self, kind, value) {
            (Builder::Text(b), _, Value::String(s)) => b.append_value(s),
            (Builder::Long(b), _, Value::Number(n)) if let Some(i) = n.as_i64() => b.append_value(i),
            // A number `shape` made (from text, say) reaches the column as the host read it back
            // from the JSON the connector wrote: serde_json's float reading is not always exact.
            (Builder::Double(b), _, Value::Number(n)) if let Ok(f) = serde_json::from_str(&n.to_string()) => {
                b.append_value(f)
            }
            (Builder::Decimal(b, scale), _, Value::Number(n)) => {
                let n: Number = serde_json::from_str(&n.to_string()).unwrap_or_else(|_| n.clone());
                within_limit(b, decimal::number(&n, *scale), nulled)
            }
            (Builder::Boolean(b), _, Value::Bool(v)) => b.append_value(*v),
            (Builder::Date(b), _, Value::String(s)) => match days(s) {
                Some(d) => b.append_value(d),
                None => lost(b, nulled),
            },
            (Builder::Timestamp(b), _, Value::String(s)) => match micros(s) {
                Some(us) => b.append_value(us),
                None => lost(b, nulled),
            },
            (Builder::List { item, offsets, valid, .. }, Kind::Array(inner), Value::Array(values)) => {
                values.iter().for_each(|v| item.value(v, inner, nulled));
                offsets.push(item.len_i32());
                valid.append_non_null();
            }
            (
                Builder::Struct { members: builders, valid, len, .. },
                Kind::Struct(members),
                Value::Object(o),
            ) => {
                for (b, m) in builders.iter_mut().zip(members) {
                    match o.get(m.name) {
                        Some(v) => b.value(v, &m.kind, nulled),
                        None => b.null(),
                    }
                }
                valid.append_non_null();
                *len += 1;
            }
            // `shape` returns only the forms above for each kind.
            (b, _, _) => {
                *nulled += 1;
                b.null();
            }
        }
    }

    pub(crate) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Long(b) => Arc::new(b.finish()),
            Builder::Double(b) => Arc::new(b.finish()),
            Builder::Decimal(b, _) => Arc::new(b.finish()),
            Builder::Boolean(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::List { item, field, offsets, valid } => {
                let offsets = OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0])));
                Arc::new(ListArray::try_new(field.clone(), offsets, item.finish()?, valid.finish())?)
            }
            Builder::Struct { members, fields, valid, len } => {
                let children = members.iter_mut().map(Builder::finish).collect::<Result<Vec<_>, _>>()?;
                let len = std::mem::take(len);
                Arc::new(StructArray::try_new_with_length(fields.clone(), children, valid.finish(), len)?)
            }
        })
    }
}

/// A value that was there but cannot be kept: a null, counted.
fn lost<T: arrow_array::ArrowPrimitiveType>(
    b: &mut arrow_array::builder::PrimitiveBuilder<T>,
    nulled: &mut u64,
) {
    *nulled += 1;
    b.append_null();
}

fn within_limit(b: &mut Decimal128Builder, unscaled: Option<i128>, nulled: &mut u64) {
    match unscaled.filter(|v| v.abs() < DECIMAL_LIMIT) {
        Some(v) => b.append_value(v),
        None => lost(b, nulled),
    }
}

/// A number literal of at most 15 digits and no exponent: a float holds each such decimal apart
/// from every other, so its shortest text has the literal's value.
fn is_short_literal(raw: &str) -> bool {
    raw.len() <= 17
        && raw.bytes().all(|b| b.is_ascii_digit() || b == b'-' || b == b'.')
        && raw.bytes().filter(u8::is_ascii_digit).count() <= 15
}

/// Whether a JSON column's cell, valid JSON (the page's parse checked it), is already the text
/// that [`shape`] makes of it, so that its text is the value as is: no whitespace between tokens,
/// no escape, only integers short enough to read back unchanged, no object that repeats a key, and
/// no special value. (A JSON column's cells were the last to go through a `Value` and back to
/// text: 5 % of the read path.)
fn json_as_printed(raw: &str, computed: bool) -> bool {
    let bytes = raw.as_bytes();
    if has_backslash(raw) {
        return false;
    }
    // The keys of each open object, `None` for an open array.
    let mut open: Vec<Option<Vec<&str>>> = Vec::new();
    let mut key_next = false;
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        i += 1;
        match byte {
            b'{' => {
                open.push(Some(Vec::new()));
                key_next = true;
            }
            b'[' => open.push(None),
            b'}' | b']' => {
                open.pop();
            }
            b',' => key_next = matches!(open.last(), Some(Some(_))),
            b':' => {}
            b'"' => {
                // Without escapes, the next quote closes the string.
                let Some(len) = bytes[i..].iter().position(|&b| b == b'"') else { return false };
                let text = &raw[i..i + len];
                i += len + 1;
                let top = open.len() == 1;
                match open.last_mut() {
                    Some(Some(keys)) if key_next => {
                        if keys.contains(&text) || (top && is_special_key(text, computed)) {
                            return false;
                        }
                        keys.push(text);
                        key_next = false;
                    }
                    None if computed && is_error_token(text) => return false,
                    _ => {}
                }
            }
            b't' | b'n' => i += 3,
            b'f' => i += 4,
            b'-' | b'0'..=b'9' => {
                let start = i - 1;
                while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                // `-0` reads as a float, as do fractions and exponents; 18 digits fit a long.
                if i - start > 18
                    || &raw[start..i] == "-0"
                    || matches!(bytes.get(i), Some(b'.' | b'e' | b'E'))
                {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

/// The common forms of a list or object cell, read by a scan of their text rather than by serde:
/// Airtable writes them without whitespace and, but for a record's attachments, without nesting.
/// Each reader answers `false` for any other form (whitespace, a nested value, an escaped key),
/// which serde then reads. The text is a value the page's parse checked, so a string ends at the
/// first quote no backslash escapes, and anything else at the first comma, bracket or brace.
///
/// A list of scalars: hands each item's text to `each`, or answers `false`, having handed over the
/// items before the one it could not read.
fn flat_list<'a>(raw: &'a str, each: &mut impl FnMut(&'a str)) -> bool {
    flat(raw, b'[', b']', |at| {
        let end = scalar_end(raw.as_bytes(), at)?;
        each(&raw[at..end]);
        Some(end)
    })
}

/// An object of scalars: hands each key (unescaped, so without a backslash) and its value's text
/// to `each`, or answers `false`, having handed over the members before the one it could not read.
fn flat_object<'a>(raw: &'a str, each: &mut impl FnMut(&'a str, &'a str)) -> bool {
    let bytes = raw.as_bytes();
    flat(raw, b'{', b'}', |at| {
        let key_end = scalar_end(bytes, at)?;
        let key = raw[at..key_end].strip_prefix('"')?.strip_suffix('"')?;
        if bytes.get(key_end) != Some(&b':') || has_backslash(key) {
            return None;
        }
        let end = scalar_end(bytes, key_end + 1)?;
        each(key, &raw[key_end + 1..end]);
        Some(end)
    })
}

/// The text between `open` and `close`, entries separated by commas: `entry` reads the one that
/// starts where it is given and answers where it ends, or `None`, which ends the scan with `false`.
fn flat(raw: &str, open: u8, close: u8, mut entry: impl FnMut(usize) -> Option<usize>) -> bool {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&open) {
        return false;
    }
    if bytes.get(1) == Some(&close) {
        return bytes.len() == 2;
    }
    let mut at = 1;
    loop {
        let Some(end) = entry(at) else { return false };
        match bytes.get(end) {
            Some(b',') => at = end + 1,
            Some(&b) if b == close => return end + 1 == bytes.len(),
            _ => return false,
        }
    }
}

/// Where the scalar that starts at `at` ends (a string, a number, or `true`, `false`, `null`), or
/// `None` where an object, a list or whitespace starts.
fn scalar_end(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => string_end(bytes, at + 1),
        b'{' | b'[' | b' ' | b'\t' | b'\n' | b'\r' => None,
        _ => {
            let rest = &bytes[at..];
            Some(
                at + rest
                    .iter()
                    .position(|b| matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r'))
                    .unwrap_or(rest.len()),
            )
        }
    }
}

/// Parses JSON text with a seed, to its end.
fn parse<'de, S: DeserializeSeed<'de>>(raw: &'de str, seed: S) -> serde_json::Result<S::Value> {
    let mut deserializer = serde_json::Deserializer::from_str(raw);
    let value = seed.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// A list's items appended to the item column as they are read, nested lists flattened.
struct Items<'b> {
    item: &'b mut Builder,
    inner: &'b Kind,
    computed: bool,
    nulled: &'b mut u64,
}

impl<'de> DeserializeSeed<'de> for Items<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Items<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            let raw = item.get();
            if raw.starts_with('[') && !matches!(self.inner, Kind::Json) {
                self.item.items(raw, self.inner, self.computed, self.nulled).map_err(A::Error::custom)?;
            } else {
                self.item.cell(raw, self.inner, self.computed, self.nulled);
            }
        }
        Ok(())
    }
}

/// The most members a struct column has (an attachment has 8).
const MAX_MEMBERS: usize = 16;

/// An object cell's members, found by key: of a repeated key, the last (as a JSON object keeps).
struct Object<'m> {
    members: &'m [Member],
    computed: bool,
}

struct ObjectCells<'a> {
    cells: [Option<&'a str>; MAX_MEMBERS],
    /// Whether the object is a special value (`rows::is_special_key`) rather than a value.
    special: bool,
}

impl<'a> ObjectCells<'a> {
    /// Takes one of the object's members: its cell, when the struct has a member of its key (of a
    /// repeated key, the last), and whether the key makes the object a special value.
    fn member(&mut self, members: &[Member], computed: bool, key: &str, value: &'a str) {
        self.special |= is_special_key(key, computed);
        if let Some(i) = members.iter().position(|m| m.key == key) {
            self.cells[i] = Some(value);
        }
    }
}

impl<'de> DeserializeSeed<'de> for Object<'_> {
    type Value = ObjectCells<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<ObjectCells<'de>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Object<'_> {
    type Value = ObjectCells<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<ObjectCells<'de>, M::Error> {
        let mut object = ObjectCells { cells: [None; MAX_MEMBERS], special: false };
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            object.member(self.members, self.computed, key.as_str(), value.get());
        }
        Ok(object)
    }
}

/// Builds a page from its rows: `id`, `created_time`, then one column per schema column.
pub(crate) struct Page<'l> {
    layout: &'l PageLayout,
    id: StringBuilder,
    created: TimestampMicrosecondBuilder,
    columns: Vec<Builder>,
}

impl<'l> Page<'l> {
    pub(crate) fn new(columns: &[Column], layout: &'l PageLayout) -> Page<'l> {
        Page {
            layout,
            id: StringBuilder::new(),
            created: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            columns: columns.iter().map(|c| Builder::new(&c.kind)).collect(),
        }
    }

    /// Starts a row: its id and created time; unparsable created times count in `created_nulled`.
    pub(crate) fn start_row(&mut self, id: &str, created: Option<&str>, created_nulled: &mut u64) {
        self.id.append_value(id);
        match created.map(created_micros) {
            Some(Some(us)) => self.created.append_value(us),
            Some(None) => lost(&mut self.created, created_nulled),
            None => self.created.append_null(),
        }
    }

    pub(crate) fn column(&mut self, index: usize) -> &mut Builder {
        &mut self.columns[index]
    }

    /// The page's batch as an Arrow IPC stream.
    pub(crate) fn finish(mut self) -> Result<Vec<u8>, ConnectorError> {
        let building = internal("building the page's columns");
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(self.id.finish()), Arc::new(self.created.finish())];
        for column in &mut self.columns {
            arrays.push(column.finish().map_err(&building)?);
        }
        let batch = RecordBatch::try_new(self.layout.schema.clone(), arrays).map_err(building)?;
        self.layout.stream(&batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Member, spark_type};

    fn collaborator() -> Kind {
        let m = |name, kind| Member { name, key: name, kind };
        Kind::Struct(vec![m("id", Kind::String), m("email", Kind::String), m("name", Kind::String)])
    }

    fn cells() -> Vec<&'static str> {
        vec![
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
            r##""2023-02-29""##,
            r##""2024-02-29""##,
            "19.99",
            "1.005",
            r##""969.0406502940995""##,
            r##""14150.074999999999""##,
            "1e400",
            r##""\ud800""##,
            r##""0000-01-01T00:30:00+01:00""##,
            r##""2024-01-02T00:00:00\u005a""##,
            r##"[[1.5,["2.5"]],null,"x"]"##,
            "1.00499999999999999",
            "0.30000000000000004",
            "0.1000000000000000055511151231257827",
            "0.005",
            "123456789012345678901234567890123456789",
            "-0",
            r##""\u00e9t\u00e9""##,
            r##"{"kind":"generated","n":7,"tags":["two words",true,false,null,-12]}"##,
            r##"{"a":{"specialValue":"x"},"error":1}"##,
            r##"[1,{"k":1,"k":2}]"##,
            r##"{"n":-0}"##,
            r##"{"n":1E2}"##,
            "12345678901234567890",
            "123456789012345678",
            r##"{ "a":1}"##,
        ]
    }

    fn kinds() -> Vec<Kind> {
        vec![
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
        ]
    }

    /// The column of one cell taken from its text, and its losses.
    fn from_text(raw: &str, kind: &Kind, computed: bool) -> (ArrayRef, u64) {
        let (mut builder, mut nulled) = (Builder::new(kind), 0);
        builder.cell(raw, kind, computed, &mut nulled);
        (builder.finish().expect("a column"), nulled)
    }

    /// A cell's `Value`; a cell serde_json cannot read as one (a number out of range, a lone
    /// surrogate) must have become a counted null.
    fn unreadable_is_a_lost_value(raw: &str, kind: &Kind, computed: bool) -> Option<Value> {
        let value = serde_json::from_str(raw).ok();
        if value.is_none() {
            let (got, nulled) = from_text(raw, kind, computed);
            assert!(got.is_null(0) && nulled == 1, "{raw} as {kind:?}: {got:?}, {nulled} lost");
        }
        value
    }

    /// Airtable's special values are counted nulls in every kind of column: `{"specialValue": …}`
    /// in any cell, and in a computed cell an `{"error": …}` object or an error token. In a cell
    /// that is not computed, those two are values like any other. (The next test holds the two
    /// paths to each other; this one holds the rule they share.)
    #[test]
    fn special_values_are_counted_nulls() {
        let specials = [
            (r##"{"specialValue":"NaN"}"##, false),
            (r##"{"error":"#ERROR!"}"##, true),
            (r##"" #N/A""##, true),
        ];
        for kind in &kinds() {
            for (raw, computed) in specials {
                let (got, nulled) = from_text(raw, kind, computed);
                assert!(got.is_null(0) && nulled == 1, "{raw} as {kind:?}, computed {computed}: {got:?}");
            }
        }
        let text = |raw, kind| {
            let (got, nulled) = from_text(raw, kind, false);
            assert_eq!(nulled, 0, "{raw} as {kind:?}");
            got.as_any().downcast_ref::<arrow_array::StringArray>().expect("text").value(0).to_string()
        };
        assert_eq!(text(r##"{"error":"#ERROR!"}"##, &Kind::Json), r##"{"error":"#ERROR!"}"##);
        assert_eq!(text(r##"" #N/A""##, &Kind::String), " #N/A");
    }

    /// The text forms append what the `Value` path appends, and count the same losses, for every
    /// column kind and a spread of cells: plain and escaped text, error tokens, numbers, times,
    /// days that do not exist, nested lists, objects with repeated keys, special values. (A number
    /// the connector kept as Airtable wrote it was stored as the host read Airtable's text, not
    /// the `Value`'s: the next test holds those to the host.)
    #[test]
    fn the_text_forms_agree_with_the_value_path() {
        for kind in &kinds() {
            for computed in [false, true] {
                for raw in cells() {
                    let (mut builder, mut expected_nulled) = (Builder::new(kind), 0);
                    let Some(value) = unreadable_is_a_lost_value(raw, kind, computed) else { continue };
                    let shaped = shape(&value, kind, computed, &mut expected_nulled);
                    if shaped.is_number() && shaped == value {
                        continue;
                    }
                    builder.value(&shaped, kind, &mut expected_nulled);
                    let expected = builder.finish().expect("a column");
                    let (got, nulled) = from_text(raw, kind, computed);
                    assert_eq!(&*got, &*expected, "{raw} as {kind:?}, computed {computed}");
                    assert_eq!(nulled, expected_nulled, "losses of {raw} as {kind:?}, computed {computed}");
                }
            }
        }
    }

    /// Texts of lists and objects: Airtable's forms, and others made at random of items good and
    /// odd (whitespace, escapes, nesting, repeated and special keys) that serde reads as JSON.
    fn lists_and_objects() -> Vec<String> {
        let items = [
            r#""a""#,
            r#""x\"]""#,
            r#""a\",\"b""#,
            r#""\"}""#,
            r#""\\""#,
            r#""é\u00e9""#,
            "1",
            "-0.5e3",
            "true",
            "false",
            "null",
            "[]",
            r#"["b"]"#,
            "{}",
            r#"{"id":"u"}"#,
            r#" "a""#,
            r#""a" "#,
        ];
        let keys =
            [r#""id""#, r#""name""#, r#""n\u0061me""#, r#""specialValue""#, r#""error""#, r#""other""#];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        let mut texts: Vec<String> = [
            "[]",
            r#"["Retail","Wholesale","Subscription"]"#,
            r#"["reczDeh8icMIEiyri"]"#,
            "{}",
            r#"{"id":"usrNB0uR5Po24Qgwp","email":"priya.n@brightlaunch.example","name":"Priya Natarajan"}"#,
            r#"{"text":"084210006685","type":"upce"}"#,
        ]
        .map(String::from)
        .into();
        for _ in 0..4_000 {
            let list: Vec<&str> = (0..next() % 5).map(|_| items[next() % items.len()]).collect();
            texts.push(format!("[{}]", list.join(",")));
            let object: Vec<String> = (0..next() % 5)
                .map(|_| format!("{}:{}", keys[next() % keys.len()], items[next() % items.len()]))
                .collect();
            texts.push(format!("{{{}}}", object.join(",")));
        }
        texts.retain(|text| serde_json::from_str::<&RawValue>(text).is_ok());
        texts
    }

    /// The scans of a list's or an object's text read what serde reads wherever they read a text:
    /// the same items, the same members; and they read Airtable's own forms.
    #[test]
    fn the_scans_of_lists_and_objects_read_what_serde_reads() {
        let m = |name| Member { name, key: name, kind: Kind::String };
        let members = [m("id"), m("name"), m("email"), m("text"), m("type"), m("other")];
        let (mut lists, mut objects) = (0, 0);
        for text in &lists_and_objects() {
            let mut items = Vec::new();
            if flat_list(text, &mut |item| items.push(item)) {
                let read: Vec<&RawValue> = serde_json::from_str(text).expect("a list");
                assert_eq!(items, read.iter().map(|r| r.get()).collect::<Vec<_>>(), "{text}");
                lists += 1;
            }
            for computed in [false, true] {
                let mut object = ObjectCells { cells: [None; MAX_MEMBERS], special: false };
                if flat_object(text, &mut |key, value| object.member(&members, computed, key, value)) {
                    let read = parse(text, Object { members: &members, computed }).expect("an object");
                    assert_eq!((object.cells, object.special), (read.cells, read.special), "{text}");
                    objects += 1;
                }
            }
        }
        assert!(lists > 500 && objects > 500, "{lists} lists and {objects} objects scanned");
        let airtable = [r#"["Retail","Wholesale"]"#, r#"{"id":"usr1","email":"a@b.example","name":"P N"}"#];
        assert!(flat_list(airtable[0], &mut |_| {}) && flat_object(airtable[1], &mut |_, _| {}));
    }

    /// A quote, backslash or control character is found wherever it is, and the bytes next to
    /// theirs in value are not taken for one.
    #[test]
    fn where_a_string_stops_is_found_anywhere() {
        for len in 0..24 {
            let plain: String = "!#[] a\u{7f}".chars().cycle().take(len).collect();
            assert_eq!(crate::rows::string_stop(plain.as_bytes()), None);
            for at in 0..=len {
                for stop in ['"', '\\', '\n', '\u{0}', '\u{1f}'] {
                    let text = format!("{}{stop}{}\"\\", &plain[..at], &plain[at..]);
                    assert_eq!(crate::rows::string_stop(text.as_bytes()), Some(at), "{text:?}");
                }
            }
        }
    }

    /// An escaped text that cannot be read leaves nothing of itself in its column: the cell after
    /// it is whole.
    #[test]
    fn an_unreadable_escaped_text_leaves_nothing_behind() {
        use arrow_array::Array as _;
        use arrow_array::cast::AsArray as _;
        let (mut builder, mut nulled) = (Builder::new(&Kind::String), 0);
        for raw in [r#""ab\n\ud800 cd""#, r#""next\n""#] {
            builder.cell(raw, &Kind::String, false, &mut nulled);
        }
        let column = builder.finish().expect("a column");
        let text = column.as_string::<i32>();
        assert!(text.is_null(0));
        assert_eq!(text.value(1), "next\n");
        assert_eq!(nulled, 1);
    }

    /// Cells whose column the connector's JSON did not make as it does now: the host refused them
    /// (failing the page) or, for a date in year -1, stored it. The connector stores each as a
    /// counted null: a decimal of 39 digits, a day that does not exist, a number out of range, a
    /// lone surrogate, a time whose UTC year is -1.
    const CHANGED: [&str; 5] = [
        "123456789012345678901234567890123456789",
        r##""2023-02-29""##,
        "1e400",
        r##""\ud800""##,
        r##""0000-01-01T00:30:00+01:00""##,
    ];

    /// What the connector stores is what the host stored when the connector sent the shaped value
    /// as JSON Lines (a cell that kept its value, as Airtable's own text): the same cells through
    /// weir-convert, the host's converter, give the same column and the same losses, but for the
    /// cells in [`CHANGED`], which become counted nulls.
    #[test]
    fn columns_hold_what_the_host_makes_of_the_shaped_json() {
        for kind in &kinds() {
            let spark = format!(
                r#"{{"type":"struct","fields":[{{"name":"c","type":{},"nullable":true,"metadata":{{}}}}]}}"#,
                spark_type(kind)
            );
            let host_schema = Arc::new(weir_convert::arrow_schema(&spark).expect("a Spark schema"));
            assert_eq!(host_schema.field(0).data_type(), &data_type(kind), "{kind:?}");
            for computed in [false, true] {
                for raw in cells() {
                    let Some(value) = unreadable_is_a_lost_value(raw, kind, computed) else { continue };
                    let (got, nulled) = from_text(raw, kind, computed);
                    let mut expected_nulled = 0;
                    let shaped = shape(&value, kind, computed, &mut expected_nulled);
                    let line = match shaped {
                        Value::Null => "{}".to_string(),
                        v if v == value => format!(r#"{{"c":{raw}}}"#),
                        v => format!(r#"{{"c":{v}}}"#),
                    };
                    let host = weir_convert::Converter::new(host_schema.clone()).json_lines(line.as_bytes());
                    let same =
                        matches!(&host, Ok(batch) if *got == **batch.column(0) && nulled == expected_nulled);
                    assert!(
                        same || (CHANGED.iter().any(|c| raw.contains(c)) && got.is_null(0) && nulled > 0),
                        "{raw} as {kind:?}, computed {computed}: the host made {host:?} of it ({expected_nulled} \
                         lost), the connector {got:?} ({nulled} lost)"
                    );
                }
            }
        }
    }

    /// A struct wider than the members the text form reads by key takes the `Value` path whole.
    #[test]
    fn a_struct_of_more_members_than_the_text_form_reads_is_still_whole() {
        let names: Vec<&'static str> =
            (0..=MAX_MEMBERS).map(|i| &*Box::leak(format!("m{i}").into_boxed_str())).collect();
        let kind = Kind::Struct(names.iter().map(|n| Member { name: n, key: n, kind: Kind::Long }).collect());
        let raw = format!("{{{}}}", names.iter().map(|n| format!("{n:?}:1")).collect::<Vec<_>>().join(","));
        let (got, nulled) = from_text(&raw, &kind, false);
        let members = got.as_any().downcast_ref::<StructArray>().expect("a struct");
        assert_eq!((members.num_columns(), nulled), (MAX_MEMBERS + 1, 0));
        assert!(members.columns().iter().all(|c| c.null_count() == 0), "{got:?}");
    }
}
