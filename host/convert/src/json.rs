//! JSON Lines pages to Arrow: each line checked once and cut into its columns' values, borrowed
//! as text; then each column is built from its values, nested ones cut further the same way. A
//! value is parsed into a `serde_json::Value` only at a leaf that needs one (a number, a time): no
//! string is copied out of the page but into its array, and no map is built per object.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, BooleanBuilder, PrimitiveBuilder, StringBuilder};
use arrow_array::types::{
    ArrowPrimitiveType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimestampMicrosecondType,
};
use arrow_array::{ArrayRef, ListArray, MapArray, NullArray, RecordBatch, RecordBatchOptions, StructArray};
use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Fields, SchemaRef, TimeUnit};
use serde::de::{Deserialize, DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::limits::Budget;
use crate::schema::{map_fields, type_name};
use crate::{ConvertError, Limits, UnknownFields, coerce, join};

/// One value of one column: where it came from and whether it may be null.
#[derive(Clone, Copy)]
struct Cell<'a> {
    /// The record's index in the page, for errors.
    row: usize,
    /// The value's text in the page; `None` when the key is missing.
    value: Option<&'a RawValue>,
    /// The enclosing struct is null, so this slot is null whatever the field's nullability.
    masked: bool,
}

impl<'a> Cell<'a> {
    fn at(row: usize, value: Option<&'a RawValue>) -> Self {
        Cell { row, value, masked: false }
    }

    /// The value's text, or `None` for a missing key and for JSON null alike.
    fn present(&self) -> Option<&'a str> {
        self.value.map(RawValue::get).filter(|text| *text != "null")
    }

    /// The value, parsed: a number out of range is a record that is not JSON.
    fn parse(&self, text: &str) -> Result<Value, ConvertError> {
        serde_json::from_str(text)
            .map_err(|e| ConvertError::NotARecord { row: self.row, message: e.to_string() })
    }
}

/// What converting one page needs besides its values: the unknown-field counts and the page's budget.
struct Context<'a> {
    unknown: &'a mut UnknownFields,
    budget: Budget<'a>,
}

/// A record's key, borrowed from the page unless it holds an escape: a page's records repeat
/// every column name, and owning each would cost an allocation per cell.
#[derive(Debug)]
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(text.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A JSON string's text, borrowed unless it holds an escape; `None` for any other value.
fn string_text(text: &str) -> Option<Cow<'_, str>> {
    if !text.starts_with('"') {
        return None;
    }
    serde_json::from_str::<Key>(text).ok().map(|key| key.0)
}

/// An object's members in order, repeated keys included, each value's text borrowed.
struct Members<'a> {
    list: Vec<(Key<'a>, &'a RawValue)>,
    /// Each key's last member, for objects too large to search.
    index: Option<HashMap<Cow<'a, str>, usize, foldhash::fast::RandomState>>,
}

/// Objects with more members than this are indexed rather than searched.
const SEARCHED_MEMBERS: usize = 16;

struct MemberList<'a>(Vec<(Key<'a>, &'a RawValue)>);

impl<'de> Deserialize<'de> for MemberList<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = MemberList<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<MemberList<'de>, M::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    members.push(entry);
                }
                Ok(MemberList(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

impl<'a> Members<'a> {
    /// An object's members, or `None` when the text is not an object.
    fn of(text: &'a str) -> Option<Members<'a>> {
        if !text.starts_with('{') {
            return None;
        }
        let MemberList(list) = serde_json::from_str(text).ok()?;
        let index = (list.len() > SEARCHED_MEMBERS).then(|| {
            // Inserted in order, so each key keeps its last member.
            list.iter().enumerate().map(|(i, (key, _))| (key.0.clone(), i)).collect()
        });
        Some(Members { list, index })
    }

    /// The last value of a key, as a JSON object keeps it.
    fn get(&self, name: &str) -> Option<&'a RawValue> {
        let i = match &self.index {
            Some(index) => *index.get(name)?,
            None => self.list.iter().rposition(|(key, _)| key.0 == name)?,
        };
        Some(self.list[i].1)
    }

    /// The members with repeated keys merged as a JSON object merges them: the first key's place,
    /// the last key's value.
    fn merged(self) -> Vec<(Key<'a>, &'a RawValue)> {
        if self.list.len() < 2 {
            return self.list;
        }
        let mut first: HashMap<Cow<'a, str>, usize, foldhash::fast::RandomState> = HashMap::default();
        let mut merged: Vec<(Key<'a>, &'a RawValue)> = Vec::with_capacity(self.list.len());
        for (key, value) in self.list {
            match first.get(key.0.as_ref()) {
                Some(&i) => merged[i].1 = value,
                None => {
                    first.insert(key.0.clone(), merged.len());
                    merged.push((key, value));
                }
            }
        }
        merged
    }
}

/// A page's records, parsed straight into one slot per top-level column: a key is looked up once,
/// as it is read, and no map is built per record.
struct Records<'a> {
    width: usize,
    /// `width` slots per record, each the value's text in the page (checked, not yet parsed: a
    /// text column takes its strings from it without an allocation each); `None` for a missing
    /// key. A repeated key keeps its last value, as a JSON object would.
    slots: Vec<Option<&'a RawValue>>,
    /// Keys that are not columns, once per record that has them.
    unknown: Vec<Key<'a>>,
}

/// Reads one line into the next record's slots.
struct RecordSeed<'r, 'a> {
    columns: &'r HashMap<&'r str, usize, foldhash::fast::RandomState>,
    records: &'r mut Records<'a>,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for RecordSeed<'_, 'a> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for RecordSeed<'_, 'a> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a map")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        let records = self.records;
        let base = records.slots.len();
        records.slots.resize(base + records.width, None);
        let first_unknown = records.unknown.len();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match self.columns.get(key.0.as_ref()) {
                Some(&i) => records.slots[base + i] = Some(map.next_value::<&'de RawValue>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                    records.unknown.push(key);
                }
            }
        }
        // A key repeated in one record counts once (sorted, not searched: a record may hold
        // any number of keys).
        if records.unknown.len() > first_unknown + 1 {
            let mut keys = records.unknown.split_off(first_unknown);
            keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            keys.dedup_by(|a, b| a.0 == b.0);
            records.unknown.append(&mut keys);
        }
        Ok(())
    }
}

/// Converts one page of JSON Lines.
pub(crate) fn page(
    schema: &SchemaRef,
    page: &[u8],
    unknown: &mut UnknownFields,
    limits: &Limits,
) -> Result<RecordBatch, ConvertError> {
    let mut cx = Context { unknown, budget: Budget::new(limits) };
    let lines = page.split(|b| *b == b'\n').map(<[u8]>::trim_ascii).filter(|l| !l.is_empty());
    // A row costs one cell for itself and one per column: checked while parsing, before the parsed
    // records pile up.
    let row_cells = schema.fields().len().saturating_add(1);
    let columns: HashMap<&str, usize, _> =
        schema.fields().iter().enumerate().map(|(i, f)| (f.name().as_str(), i)).collect();
    let width = schema.fields().len();
    let mut records = Records { width, slots: Vec::new(), unknown: Vec::new() };
    let mut rows: usize = 0;
    for line in lines {
        cx.budget.rows(1)?;
        cx.budget.check_cells((rows + 1).saturating_mul(row_cells))?;
        // One UTF-8 check per line: a reader over bytes would check every string it borrows.
        let parsed = std::str::from_utf8(line).map_err(serde_json::Error::custom).and_then(|text| {
            let mut de = serde_json::Deserializer::from_str(text);
            RecordSeed { columns: &columns, records: &mut records }.deserialize(&mut de)?;
            de.end()
        });
        if let Err(e) = parsed {
            return Err(ConvertError::NotARecord { row: rows, message: e.to_string() });
        }
        rows += 1;
    }
    cx.budget.cells(rows)?;

    let mut arrays = Vec::with_capacity(width);
    let mut cells = Vec::with_capacity(rows);
    for (i, field) in schema.fields().iter().enumerate() {
        cells.clear();
        let slots = records.slots.iter().skip(i).step_by(width.max(1)).take(rows);
        cells.extend(slots.enumerate().map(|(row, slot)| Cell::at(row, *slot)));
        arrays.push(column(field, field.name(), &cells, &mut cx)?);
    }
    for key in &records.unknown {
        cx.unknown.record("", &key.0, 1);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(schema.clone(), arrays, &options).map_err(arrow_error(""))
}

/// Counts the keys of each object that are not among `fields`, once per object; `known` holds
/// how many of each object's members are fields, so that objects without other members are
/// skipped without a lookup.
fn count_unknown(
    fields: &Fields,
    path: &str,
    objects: &[Option<Members>],
    known: &[usize],
    unknown: &mut UnknownFields,
) {
    // Built only when needed, and then once: a lookup per key stays constant-time on wide schemas.
    let mut names: Option<HashSet<&str>> = None;
    let mut keys = Vec::new();
    for (object, known) in objects.iter().zip(known) {
        // A repeated key also makes more members than fields found: the names then decide.
        let Some(object) = object.as_ref().filter(|o| o.list.len() > *known) else { continue };
        let names = names.get_or_insert_with(|| fields.iter().map(|f| f.name().as_str()).collect());
        keys.clear();
        keys.extend(object.list.iter().map(|(k, _)| k.0.as_ref()).filter(|k| !names.contains(k)));
        keys.sort_unstable();
        keys.dedup();
        for key in &keys {
            unknown.record(path, key, 1);
        }
    }
}

fn arrow_error(column: &str) -> impl FnOnce(ArrowError) -> ConvertError + '_ {
    move |source| ConvertError::Arrow { column: column.to_string(), source }
}

/// Short, bounded text of a value for an error: never a whole record.
pub(crate) fn excerpt(value: &Value) -> String {
    const LIMIT: usize = 60;
    struct Limited(String);
    impl Write for Limited {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let room = LIMIT.saturating_sub(self.0.len());
            if s.len() <= room {
                self.0.push_str(s);
                return Ok(());
            }
            let mut end = room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.0.push_str(&s[..end]);
            self.0.push('…');
            // Stops serde_json from serialising the rest of a large value.
            Err(std::fmt::Error)
        }
    }
    let mut text = Limited(String::new());
    let _ = write!(text, "{value}");
    text.0
}

fn mismatch(field: &Field, path: &str, cell: &Cell, text: &str) -> ConvertError {
    let found = match serde_json::from_str::<Value>(text) {
        Ok(value) => excerpt(&value),
        Err(e) => return ConvertError::NotARecord { row: cell.row, message: e.to_string() },
    };
    ConvertError::Mismatch {
        column: path.to_string(),
        row: cell.row,
        expected: type_name(field.data_type()),
        found,
    }
}

/// A null slot: fine unless the field is non-nullable and no enclosing struct is null.
fn null_slot(field: &Field, path: &str, cell: &Cell) -> Result<(), ConvertError> {
    if field.is_nullable() || cell.masked {
        return Ok(());
    }
    Err(ConvertError::NullInNonNullable {
        column: path.to_string(),
        row: cell.row,
        expected: type_name(field.data_type()),
        found: if cell.value.is_some() { "null" } else { "no value" }.to_string(),
    })
}

fn validity(valid: Vec<bool>) -> Option<NullBuffer> {
    valid.iter().any(|v| !v).then(|| NullBuffer::from(valid))
}

fn column(field: &Field, path: &str, cells: &[Cell], cx: &mut Context) -> Result<ArrayRef, ConvertError> {
    cx.budget.cells(cells.len())?;
    match field.data_type() {
        DataType::Utf8 => strings(field, path, cells),
        DataType::Int64 => primitive::<Int64Type>(field, path, cells, coerce::integer),
        DataType::Int32 => primitive::<Int32Type>(field, path, cells, |v| narrow(coerce::integer(v))),
        DataType::Int16 => primitive::<Int16Type>(field, path, cells, |v| narrow(coerce::integer(v))),
        DataType::Int8 => primitive::<Int8Type>(field, path, cells, |v| narrow(coerce::integer(v))),
        DataType::Float64 => primitive::<Float64Type>(field, path, cells, coerce::float),
        DataType::Float32 => primitive::<Float32Type>(field, path, cells, coerce::float32),
        DataType::Boolean => booleans(field, path, cells),
        DataType::Date32 => primitive::<Date32Type>(field, path, cells, coerce::date),
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => {
            primitive::<TimestampMicrosecondType>(field, path, cells, coerce::timestamp_utc)
        }
        DataType::Timestamp(TimeUnit::Microsecond, None) => {
            primitive::<TimestampMicrosecondType>(field, path, cells, coerce::timestamp_ntz)
        }
        DataType::Decimal128(precision, scale) => {
            let (precision, scale) = (*precision, *scale);
            primitive::<Decimal128Type>(field, path, cells, |v| coerce::decimal(v, precision, scale))
        }
        DataType::Binary => binaries(field, path, cells),
        DataType::Null => match cells.iter().find_map(|c| c.present().map(|v| (c, v))) {
            Some((cell, value)) => Err(mismatch(field, path, cell, value)),
            None => Ok(Arc::new(NullArray::new(cells.len()))),
        },
        DataType::List(item) => lists(item, field, path, cells, cx),
        DataType::Struct(fields) => structs(fields, field, path, cells, cx),
        DataType::Map(entries, _) => maps(entries, field, path, cells, cx),
        other => {
            Err(ConvertError::UnsupportedType { column: path.to_string(), type_name: other.to_string() })
        }
    }
}

fn narrow<T: TryFrom<i64>>(value: Option<i64>) -> Option<T> {
    value.and_then(|v| T::try_from(v).ok())
}

fn primitive<T: ArrowPrimitiveType>(
    field: &Field,
    path: &str,
    cells: &[Cell],
    parse: impl Fn(&Value) -> Option<T::Native>,
) -> Result<ArrayRef, ConvertError> {
    let data_type = field.data_type().clone();
    if !arrow_array::PrimitiveArray::<T>::is_compatible(&data_type) {
        return Err(ConvertError::UnsupportedType {
            column: path.to_string(),
            type_name: data_type.to_string(),
        });
    }
    let mut builder = PrimitiveBuilder::<T>::with_capacity(cells.len()).with_data_type(data_type);
    for cell in cells {
        match cell.present() {
            Some(text) => match parse(&cell.parse(text)?) {
                Some(native) => builder.append_value(native),
                None => return Err(mismatch(field, path, cell, text)),
            },
            None => {
                null_slot(field, path, cell)?;
                builder.append_null();
            }
        }
    }
    Ok(Arc::new(builder.finish()))
}

fn strings(field: &Field, path: &str, cells: &[Cell]) -> Result<ArrayRef, ConvertError> {
    // The text's length bounds its string's.
    let bytes = cells.iter().map(|c| c.present().map_or(0, str::len)).sum();
    let mut builder = StringBuilder::with_capacity(cells.len(), bytes);
    for cell in cells {
        match cell.present() {
            Some(text) => match string_text(text) {
                Some(string) => builder.append_value(string),
                // Compact JSON text, so that unknown and nested types pass through readably.
                None => {
                    let _ = write!(builder, "{}", cell.parse(text)?);
                    builder.append_value("");
                }
            },
            None => {
                null_slot(field, path, cell)?;
                builder.append_null();
            }
        }
    }
    Ok(Arc::new(builder.finish()))
}

fn booleans(field: &Field, path: &str, cells: &[Cell]) -> Result<ArrayRef, ConvertError> {
    let mut builder = BooleanBuilder::with_capacity(cells.len());
    for cell in cells {
        match cell.present() {
            Some(text) => match coerce::boolean(&cell.parse(text)?) {
                Some(b) => builder.append_value(b),
                None => return Err(mismatch(field, path, cell, text)),
            },
            None => {
                null_slot(field, path, cell)?;
                builder.append_null();
            }
        }
    }
    Ok(Arc::new(builder.finish()))
}

fn binaries(field: &Field, path: &str, cells: &[Cell]) -> Result<ArrayRef, ConvertError> {
    let bytes = cells.iter().map(|c| c.present().map_or(0, |s| s.len() / 4 * 3)).sum();
    let mut builder = BinaryBuilder::with_capacity(cells.len(), bytes);
    let mut scratch = Vec::new();
    for cell in cells {
        match cell.present() {
            Some(text) => match string_text(text).and_then(|s| coerce::base64(&s, &mut scratch)) {
                Some(()) => builder.append_value(&scratch),
                None => return Err(mismatch(field, path, cell, text)),
            },
            None => {
                null_slot(field, path, cell)?;
                builder.append_null();
            }
        }
    }
    Ok(Arc::new(builder.finish()))
}

fn offset(len: usize, path: &str) -> Result<i32, ConvertError> {
    i32::try_from(len).map_err(|_| {
        arrow_error(path)(ArrowError::InvalidArgumentError("more than 2^31 nested values in one page".into()))
    })
}

/// An array's items, each value's text borrowed; `None` when the text is not an array.
fn items(text: &str) -> Option<Vec<&RawValue>> {
    if !text.starts_with('[') {
        return None;
    }
    serde_json::from_str(text).ok()
}

fn lists(
    item: &FieldRef,
    field: &Field,
    path: &str,
    cells: &[Cell],
    cx: &mut Context,
) -> Result<ArrayRef, ConvertError> {
    let mut offsets = Vec::with_capacity(cells.len() + 1);
    offsets.push(0_i32);
    let mut valid = Vec::with_capacity(cells.len());
    let mut elements = Vec::new();
    for cell in cells {
        match cell.present() {
            Some(text) => {
                let Some(values) = items(text) else { return Err(mismatch(field, path, cell, text)) };
                cx.budget.check_cells(elements.len().saturating_add(values.len()))?;
                elements.extend(values.into_iter().map(|v| Cell::at(cell.row, Some(v))));
                valid.push(true);
            }
            None => {
                null_slot(field, path, cell)?;
                valid.push(false);
            }
        }
        offsets.push(offset(elements.len(), path)?);
    }
    let values = column(item, &format!("{path}[]"), &elements, cx)?;
    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
    let array =
        ListArray::try_new(item.clone(), offsets, values, validity(valid)).map_err(arrow_error(path))?;
    Ok(Arc::new(array))
}

fn structs(
    fields: &Fields,
    field: &Field,
    path: &str,
    cells: &[Cell],
    cx: &mut Context,
) -> Result<ArrayRef, ConvertError> {
    let mut objects = Vec::with_capacity(cells.len());
    for cell in cells {
        match cell.present() {
            Some(text) => match Members::of(text) {
                Some(members) => objects.push(Some(members)),
                None => return Err(mismatch(field, path, cell, text)),
            },
            None => {
                null_slot(field, path, cell)?;
                objects.push(None);
            }
        }
    }
    let mut known = vec![0_usize; cells.len()];
    let mut children = Vec::with_capacity(fields.len());
    let mut child_cells = Vec::with_capacity(cells.len());
    for child in fields {
        child_cells.clear();
        for ((cell, object), known) in cells.iter().zip(&objects).zip(known.iter_mut()) {
            child_cells.push(match object {
                Some(object) => {
                    let value = object.get(child.name());
                    *known += usize::from(value.is_some());
                    Cell::at(cell.row, value)
                }
                None => Cell { row: cell.row, value: None, masked: true },
            });
        }
        children.push(column(child, &join(path, child.name()), &child_cells, cx)?);
    }
    count_unknown(fields, path, &objects, &known, cx.unknown);
    let nulls = validity(objects.iter().map(Option::is_some).collect());
    let array = StructArray::try_new_with_length(fields.clone(), children, nulls, cells.len())
        .map_err(arrow_error(path))?;
    Ok(Arc::new(array))
}

fn maps(
    entries: &FieldRef,
    field: &Field,
    path: &str,
    cells: &[Cell],
    cx: &mut Context,
) -> Result<ArrayRef, ConvertError> {
    let unsupported = || ConvertError::UnsupportedType {
        column: path.to_string(),
        type_name: field.data_type().to_string(),
    };
    let (key_field, value_field) = map_fields(entries).ok_or_else(unsupported)?;
    let DataType::Struct(entry_fields) = entries.data_type() else {
        return Err(unsupported());
    };
    let mut offsets = Vec::with_capacity(cells.len() + 1);
    offsets.push(0_i32);
    let mut valid = Vec::with_capacity(cells.len());
    let mut keys: Vec<(usize, Cow<str>)> = Vec::new();
    let mut values = Vec::new();
    for cell in cells {
        match cell.present() {
            Some(text) => {
                let Some(object) = Members::of(text) else { return Err(mismatch(field, path, cell, text)) };
                let object = object.merged();
                // Keys, values and their entries: three cells per entry.
                cx.budget.check_cells(values.len().saturating_add(object.len()).saturating_mul(3))?;
                for (key, value) in object {
                    keys.push((cell.row, key.0));
                    values.push(Cell::at(cell.row, Some(value)));
                }
                valid.push(true);
            }
            None => {
                null_slot(field, path, cell)?;
                valid.push(false);
            }
        }
        offsets.push(offset(values.len(), path)?);
    }
    let key_path = format!("{path}.key");
    // The entries struct array.
    cx.budget.cells(values.len())?;
    let keys: ArrayRef = if key_field.data_type() == &DataType::Utf8 {
        cx.budget.cells(keys.len())?;
        let bytes = keys.iter().map(|(_, k)| k.len()).sum();
        let mut builder = StringBuilder::with_capacity(keys.len(), bytes);
        keys.iter().for_each(|(_, k)| builder.append_value(k));
        Arc::new(builder.finish())
    } else {
        // JSON keys are always strings; other key types go through the usual string coercions.
        let texts: Vec<(usize, Box<RawValue>)> = keys
            .iter()
            .map(|(row, k)| serde_json::value::to_raw_value(k).map(|text| (*row, text)))
            .collect::<Result<_, _>>()
            .map_err(|e| arrow_error(path)(ArrowError::JsonError(e.to_string())))?;
        let key_cells: Vec<Cell> = texts.iter().map(|(row, k)| Cell::at(*row, Some(k.as_ref()))).collect();
        column(key_field, &key_path, &key_cells, cx)?
    };
    let values = column(value_field, &format!("{path}.value"), &values, cx)?;
    let len = keys.len();
    let entries_array = StructArray::try_new_with_length(entry_fields.clone(), vec![keys, values], None, len)
        .map_err(arrow_error(path))?;
    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
    let array = MapArray::try_new(entries.clone(), offsets, entries_array, validity(valid), false)
        .map_err(arrow_error(path))?;
    Ok(Arc::new(array))
}
