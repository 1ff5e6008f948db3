//! JSON Lines pages to Arrow: each line parsed once, then each column filled from borrowed values.

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
use serde_json::{Map, Value};

use crate::limits::Budget;
use crate::schema::{map_fields, type_name};
use crate::{ConvertError, Limits, UnknownFields, coerce, join};

/// One value of one column: where it came from and whether it may be null.
#[derive(Clone, Copy)]
struct Cell<'a> {
    /// The record's index in the page, for errors.
    row: usize,
    /// `None` when the key is missing.
    value: Option<&'a Value>,
    /// The enclosing struct is null, so this slot is null whatever the field's nullability.
    masked: bool,
}

impl<'a> Cell<'a> {
    fn at(row: usize, value: Option<&'a Value>) -> Self {
        Cell { row, value, masked: false }
    }

    /// The value, or `None` for a missing key and for JSON null alike.
    fn present(&self) -> Option<&'a Value> {
        self.value.filter(|v| !v.is_null())
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

/// A page's records, parsed straight into one slot per top-level column: a key is looked up once,
/// as it is read, and no map is built per record.
struct Records<'a> {
    width: usize,
    /// `width` slots per record; `Some(Value::Null)` for a key present as null, `None` for a
    /// missing key. A repeated key keeps its last value, as a JSON object would.
    slots: Vec<Option<Value>>,
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
                Some(&i) => records.slots[base + i] = Some(map.next_value()?),
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
        cells.extend(slots.enumerate().map(|(row, slot)| Cell::at(row, slot.as_ref())));
        arrays.push(column(field, field.name(), &cells, &mut cx)?);
    }
    for key in &records.unknown {
        cx.unknown.record("", &key.0, 1);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(schema.clone(), arrays, &options).map_err(arrow_error(""))
}

/// Counts the keys of each object that are not among `fields`; `known` holds how many of each
/// object's keys are fields, so that objects without unknown keys are skipped without a lookup.
fn count_unknown(
    fields: &Fields,
    path: &str,
    objects: &[Option<&Map<String, Value>>],
    known: &[usize],
    unknown: &mut UnknownFields,
) {
    // Built only when needed, and then once: a lookup per key stays constant-time on wide schemas.
    let mut names: Option<HashSet<&str>> = None;
    for (object, known) in objects.iter().zip(known) {
        let Some(object) = object.filter(|o| o.len() > *known) else { continue };
        let names = names.get_or_insert_with(|| fields.iter().map(|f| f.name().as_str()).collect());
        for key in object.keys().filter(|k| !names.contains(k.as_str())) {
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

fn mismatch(field: &Field, path: &str, cell: &Cell, value: &Value) -> ConvertError {
    ConvertError::Mismatch {
        column: path.to_string(),
        row: cell.row,
        expected: type_name(field.data_type()),
        found: excerpt(value),
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
            Some(value) => match parse(value) {
                Some(native) => builder.append_value(native),
                None => return Err(mismatch(field, path, cell, value)),
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
    let bytes = cells.iter().map(|c| c.present().and_then(Value::as_str).map_or(0, str::len)).sum();
    let mut builder = StringBuilder::with_capacity(cells.len(), bytes);
    for cell in cells {
        match cell.present() {
            Some(Value::String(s)) => builder.append_value(s),
            // Compact JSON text, so that unknown and nested types pass through readably.
            Some(other) => {
                let _ = write!(builder, "{other}");
                builder.append_value("");
            }
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
            Some(value) => match coerce::boolean(value) {
                Some(b) => builder.append_value(b),
                None => return Err(mismatch(field, path, cell, value)),
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
    let bytes =
        cells.iter().map(|c| c.present().and_then(Value::as_str).map_or(0, |s| s.len() / 4 * 3)).sum();
    let mut builder = BinaryBuilder::with_capacity(cells.len(), bytes);
    let mut scratch = Vec::new();
    for cell in cells {
        match cell.present() {
            Some(value) => match value.as_str().and_then(|s| coerce::base64(s, &mut scratch)) {
                Some(()) => builder.append_value(&scratch),
                None => return Err(mismatch(field, path, cell, value)),
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
            Some(Value::Array(values)) => {
                cx.budget.check_cells(elements.len().saturating_add(values.len()))?;
                elements.extend(values.iter().map(|v| Cell::at(cell.row, Some(v))));
                valid.push(true);
            }
            Some(value) => return Err(mismatch(field, path, cell, value)),
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
            Some(Value::Object(object)) => objects.push(Some(object)),
            Some(value) => return Err(mismatch(field, path, cell, value)),
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
    let mut keys: Vec<(usize, &String)> = Vec::new();
    let mut values = Vec::new();
    for cell in cells {
        match cell.present() {
            Some(Value::Object(object)) => {
                // Keys, values and their entries: three cells per entry.
                cx.budget.check_cells(values.len().saturating_add(object.len()).saturating_mul(3))?;
                for (key, value) in object {
                    keys.push((cell.row, key));
                    values.push(Cell::at(cell.row, Some(value)));
                }
                valid.push(true);
            }
            Some(value) => return Err(mismatch(field, path, cell, value)),
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
        let owned: Vec<(usize, Value)> =
            keys.iter().map(|(row, k)| (*row, Value::String((*k).clone()))).collect();
        let key_cells: Vec<Cell> = owned.iter().map(|(row, k)| Cell::at(*row, Some(k))).collect();
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
