//! Arrow IPC pages: untrusted bytes, read by a checked decoder of their own, matched against the
//! table's schema and relabelled with it.
//!
//! arrow-ipc's reader trusts what a stream declares: a negative or huge body length, a buffer that
//! points past the body, a huge row count or a decompressed length it has no room for panic or
//! abort it (unchecked slices, `unimplemented!` for some schemas), and it inflates compressed
//! buffers without bound. So this module takes only the flatbuffer layer from arrow-ipc (whose
//! generated `root_as_message` verifies every offset in a message) and does the rest itself:
//!
//! 1. frames each message, checking its metadata and body lengths against what is left of the page;
//! 2. reads the stream's schema into its own description, knowing the Arrow types a table column
//!    can have and only the layout (how many nodes and buffers) of the others, within the schema
//!    limits;
//! 3. for each record batch, checks every buffer lies inside the body and overlaps no other, every
//!    node's length and null count, the row and cell limits, then builds only the columns the table
//!    needs, inflating compressed buffers against the decompression limit, through
//!    `ArrayData::build`, which validates each array in full (buffer sizes, offsets, UTF-8, nulls);
//! 4. skips the columns the table does not have, and dictionary batches (a dictionary-encoded
//!    column can never match a table column, so its values are never needed).
//!
//! A panic that still escaped from arrow would be a bug; [`stream`] turns it into an error as a last
//! line of defence, which does not help against an abort or a failed allocation, hence the checks.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, ListArray, MapArray, RecordBatch, RecordBatchOptions, StructArray, make_array,
    new_null_array,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer};
use arrow_data::{ArrayData, BufferSpec, layout};
use arrow_ipc::{CompressionType, MessageHeader, MetadataVersion};
use arrow_schema::{ArrowError, DataType, Field, Fields, SchemaRef, TimeUnit};

use crate::limits::{Budget, count_field, exceeded};
use crate::schema::type_name;
use crate::{ConvertError, Limits, UnknownFields, join};

/// Reads one IPC stream. Columns are matched by name: a missing nullable column becomes nulls, and a
/// column the schema lacks is counted as an unknown field and dropped, as for JSON records.
pub(crate) fn stream(
    schema: &SchemaRef,
    stream: &[u8],
    unknown: &mut UnknownFields,
    limits: &Limits,
    known: &mut Option<KnownSchema>,
) -> Result<Vec<RecordBatch>, ConvertError> {
    // Unknown fields are counted only once the whole page is read, so a bad page counts nothing.
    let mut extras = Vec::new();
    let batches = catch_unwind(AssertUnwindSafe(|| read(schema, stream, limits, known, &mut extras)))
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(ipc(format!(
                "the Arrow decoder panicked (a bug in weir-convert, please report it): {message}"
            )))
        })?;
    for (name, rows) in extras {
        unknown.record("", &name, rows);
    }
    Ok(batches)
}

fn ipc(message: impl Into<String>) -> ConvertError {
    ConvertError::Ipc { message: message.into() }
}

/// A stream's schema message as the last page sent it, with what was read from it. A connector
/// sends the same schema with every page of a table, and reading it again (its flatbuffer checked,
/// its fields read, the plan made) was almost half of the converter's time on a 100-row page
/// (`examples/ipc_figures.rs`).
#[derive(Debug)]
pub(crate) struct KnownSchema {
    metadata: Vec<u8>,
    found: StreamSchema,
    plan: Plan,
    /// What the message declares for its body (a schema message has none).
    body_length: i64,
}

fn read(
    schema: &SchemaRef,
    stream: &[u8],
    limits: &Limits,
    known: &mut Option<KnownSchema>,
    extras: &mut Vec<(String, u64)>,
) -> Result<Vec<RecordBatch>, ConvertError> {
    let mut budget = Budget::new(limits);
    // Read in place: each buffer a column keeps is copied out of the page, aligned (`Batch::buffer`).
    let mut messages = Messages { page: stream, position: 0, index: 0 };
    let Some(metadata) = messages.metadata()? else {
        return Err(ipc("empty stream: expected a schema message"));
    };
    // The same bytes under the same table schema and limits read as the same schema and plan.
    // Taken out, so that a page whose schema is refused leaves nothing behind.
    let KnownSchema { found, plan, body_length, .. } = match known.take() {
        Some(k) if k.metadata == metadata => known.insert(k),
        _ => {
            let first = Messages::message(metadata, 0)?;
            let found = match first.header_as_schema() {
                Some(header) => StreamSchema::read(header, first.version(), limits)?,
                None => {
                    return Err(ipc(format!(
                        "message 0: expected a schema, found {}",
                        header_name(first.header_type())
                    )));
                }
            };
            let plan = Plan::new(schema, &found)?;
            let body_length = first.bodyLength();
            known.insert(KnownSchema { metadata: metadata.to_vec(), found, plan, body_length })
        }
    };
    messages.body(*body_length)?;

    let mut batches = Vec::new();
    let mut rows_before = 0;
    // Null columns for the table's columns the stream lacks, by (column, rows): a page of many small
    // batches reuses them instead of allocating a fresh set per batch.
    let mut nulls: HashMap<(usize, usize), ArrayRef> = HashMap::new();
    let mut zstd = None;
    while let Some((message, body)) = messages.next()? {
        let index = messages.index - 1;
        match message.header_type() {
            MessageHeader::RecordBatch => {
                let header = message
                    .header_as_record_batch()
                    .ok_or_else(|| ipc(format!("message {index}: a record batch without its header")))?;
                let Some(columns) =
                    Batch::new(header, body, message.version(), index, &mut budget, &mut zstd)?
                        .read(found, plan)?
                else {
                    continue;
                };
                let rows = columns.rows;
                let batch = assemble(schema, plan, columns, rows_before, &mut nulls, &mut budget)?;
                batches.push(batch);
                rows_before += rows;
            }
            MessageHeader::DictionaryBatch => {
                // Never decoded (see the module docs), only checked to belong to the stream.
                let id = message
                    .header_as_dictionary_batch()
                    .ok_or_else(|| ipc(format!("message {index}: a dictionary batch without its header")))?
                    .id();
                if !found.dictionaries.contains(&id) {
                    return Err(ipc(format!(
                        "message {index}: a dictionary batch for id {id}, which no column of the stream uses"
                    )));
                }
            }
            other => {
                return Err(ipc(format!(
                    "message {index}: expected a record batch or a dictionary batch, found {}",
                    header_name(other)
                )));
            }
        }
    }
    // Once per page, not per batch: a page of many small batches with many extra columns would
    // otherwise list every extra column once per batch.
    if rows_before > 0 {
        extras.extend(plan.extra.iter().map(|&extra| (found.fields[extra].name.clone(), rows_before as u64)));
    }
    Ok(batches)
}

fn header_name(header: MessageHeader) -> String {
    match header.variant_name() {
        Some(name) => format!("a {name} message"),
        None => format!("an unknown message type {}", header.0),
    }
}

/// The stream's messages, framed one at a time with every length checked against the page.
struct Messages<'a> {
    page: &'a [u8],
    position: usize,
    /// The index of the next message, for errors.
    index: usize,
}

/// The continuation marker that precedes a message's metadata length since Arrow 0.15.
const CONTINUATION: [u8; 4] = [0xff; 4];

impl<'a> Messages<'a> {
    /// The next message and its body, or `None` at the end-of-stream marker or the end of the page.
    fn next(&mut self) -> Result<Option<(arrow_ipc::Message<'a>, &'a [u8])>, ConvertError> {
        let index = self.index;
        let Some(metadata) = self.metadata()? else { return Ok(None) };
        let message = Messages::message(metadata, index)?;
        let body = self.body(message.bodyLength())?;
        Ok(Some((message, body)))
    }

    /// A message's metadata, its flatbuffer verified: every offset inside it, its depth and size.
    fn message(metadata: &[u8], index: usize) -> Result<arrow_ipc::Message<'_>, ConvertError> {
        arrow_ipc::root_as_message(metadata)
            .map_err(|e| ipc(format!("message {index}: invalid metadata: {e}")))
    }

    /// The next message's metadata, not yet verified, or `None` at the end-of-stream marker or the
    /// end of the page. [`Messages::body`] takes its body.
    fn metadata(&mut self) -> Result<Option<&'a [u8]>, ConvertError> {
        let page = self.page;
        let index = self.index;
        if self.position == page.len() {
            return Ok(None);
        }
        let mut length = self.word(index)?;
        if length == CONTINUATION {
            length = self.word(index)?;
        }
        let length = i32::from_le_bytes(length);
        if length == 0 {
            return Ok(None);
        }
        let length = self.length(i64::from(length), "metadata", index)?;
        let metadata = &page[self.position..self.position + length];
        self.position += length;
        Ok(Some(metadata))
    }

    /// The body its metadata declares for the message just framed.
    fn body(&mut self, declared: i64) -> Result<&'a [u8], ConvertError> {
        let length = self.length(declared, "body", self.index)?;
        let body = &self.page[self.position..self.position + length];
        self.position += length;
        self.index += 1;
        Ok(body)
    }

    /// A declared length, checked to be positive and to fit in what is left of the page.
    fn length(&self, length: i64, what: &str, index: usize) -> Result<usize, ConvertError> {
        let left = self.page.len() - self.position;
        let length = usize::try_from(length)
            .map_err(|_| ipc(format!("message {index}: negative {what} length {length}")))?;
        if length > left {
            return Err(ipc(format!(
                "message {index}: {what} length {length} runs past the end of the page ({left} bytes left)"
            )));
        }
        Ok(length)
    }

    fn word(&mut self, index: usize) -> Result<[u8; 4], ConvertError> {
        let word = self
            .page
            .get(self.position..self.position + 4)
            .ok_or_else(|| ipc(format!("message {index}: the page ends inside a message length")))?;
        self.position += 4;
        let mut out = [0; 4];
        out.copy_from_slice(word);
        Ok(out)
    }
}

/// A field of the stream's schema, as far as this module needs to know it.
#[derive(Debug)]
struct StreamField {
    name: String,
    nullable: bool,
    /// Its Arrow type when a table column could have it (the types of the crate's type table); `None`
    /// for a type that can only be skipped.
    data_type: Option<DataType>,
    /// The type as written in errors.
    type_name: String,
    /// Buffers of the field's own node, not counting its children's.
    buffers: usize,
    /// A view type, which takes one more buffer per variadic count.
    variadic: bool,
    children: Vec<StreamField>,
}

/// The stream's schema.
#[derive(Debug)]
struct StreamSchema {
    fields: Vec<StreamField>,
    /// The ids of dictionary-encoded fields.
    dictionaries: HashSet<i64>,
}

impl StreamSchema {
    fn read(
        schema: arrow_ipc::Schema,
        version: MetadataVersion,
        limits: &Limits,
    ) -> Result<StreamSchema, ConvertError> {
        let mut reader = FieldReader { limits, version, count: 0, dictionaries: HashSet::new() };
        let fields = match schema.fields() {
            Some(fields) => fields.iter().map(|f| reader.field(f, "", 0)).collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        Ok(StreamSchema { fields, dictionaries: reader.dictionaries })
    }
}

/// Reads the stream's fields, within the schema limits.
struct FieldReader<'a> {
    limits: &'a Limits,
    version: MetadataVersion,
    count: usize,
    dictionaries: HashSet<i64>,
}

impl FieldReader<'_> {
    /// `depth` is the number of nested types enclosing this field.
    fn field(
        &mut self,
        field: arrow_ipc::Field,
        parent: &str,
        depth: usize,
    ) -> Result<StreamField, ConvertError> {
        count_field(&mut self.count, self.limits, "fields in the Arrow IPC stream's schema")?;
        let name = field.name().unwrap_or("").to_string();
        let path = if depth == 0 { name.clone() } else { join(parent, &name) };
        let mut out = StreamField {
            name,
            nullable: field.nullable(),
            data_type: None,
            type_name: String::new(),
            buffers: 2,
            variadic: false,
            children: Vec::new(),
        };
        if let Some(dictionary) = field.dictionary() {
            // Only the indices are in record batches: a validity and a values buffer.
            self.dictionaries.insert(dictionary.id());
            out.type_name = "dictionary".into();
            return Ok(out);
        }
        let children = match field.children() {
            Some(children) if !children.is_empty() => {
                if depth >= self.limits.max_depth {
                    return Err(exceeded(
                        "max_depth",
                        self.limits.max_depth,
                        format!("levels of nesting in the Arrow IPC stream's column `{path}`"),
                    ));
                }
                // A map is one level, as in Spark, though Arrow nests its keys and values in an
                // entries struct.
                let depth = if field.type_type() == arrow_ipc::Type::Map { depth } else { depth + 1 };
                children.iter().map(|c| self.field(c, &path, depth)).collect::<Result<Vec<_>, _>>()?
            }
            _ => Vec::new(),
        };
        let malformed = |what: &str| ipc(format!("column `{path}`: {what}"));
        let child_types = || children.iter().map(|c| c.data_type.clone()).collect::<Option<Vec<_>>>();
        let (data_type, name, buffers) = match field.type_type() {
            arrow_ipc::Type::Null => (Some(DataType::Null), "void".to_string(), 0),
            arrow_ipc::Type::Int => {
                let int =
                    field.type_as_int().ok_or_else(|| malformed("an integer type without its width"))?;
                let data_type = match (int.bitWidth(), int.is_signed()) {
                    (8, true) => Some(DataType::Int8),
                    (16, true) => Some(DataType::Int16),
                    (32, true) => Some(DataType::Int32),
                    (64, true) => Some(DataType::Int64),
                    _ => None,
                };
                let sign = if int.is_signed() { "" } else { "u" };
                (data_type, format!("{sign}int{}", int.bitWidth()), 2)
            }
            arrow_ipc::Type::FloatingPoint => {
                let float = field
                    .type_as_floating_point()
                    .ok_or_else(|| malformed("a float type without its precision"))?;
                match float.precision() {
                    arrow_ipc::Precision::SINGLE => (Some(DataType::Float32), String::new(), 2),
                    arrow_ipc::Precision::DOUBLE => (Some(DataType::Float64), String::new(), 2),
                    _ => (None, "float16".into(), 2),
                }
            }
            arrow_ipc::Type::Bool => (Some(DataType::Boolean), String::new(), 2),
            arrow_ipc::Type::Utf8 => (Some(DataType::Utf8), String::new(), 3),
            arrow_ipc::Type::Binary => (Some(DataType::Binary), String::new(), 3),
            arrow_ipc::Type::LargeUtf8 => (None, "large_string".into(), 3),
            arrow_ipc::Type::LargeBinary => (None, "large_binary".into(), 3),
            arrow_ipc::Type::Decimal => {
                let decimal = field
                    .type_as_decimal()
                    .ok_or_else(|| malformed("a decimal type without its precision"))?;
                let (precision, scale) = (decimal.precision(), decimal.scale());
                let data_type = match (u8::try_from(precision), i8::try_from(scale), decimal.bitWidth()) {
                    (Ok(p @ 1..=38), Ok(s), 128) => Some(DataType::Decimal128(p, s)),
                    _ => None,
                };
                (data_type, format!("decimal{}({precision},{scale})", decimal.bitWidth()), 2)
            }
            arrow_ipc::Type::Date => {
                let date = field.type_as_date().ok_or_else(|| malformed("a date type without its unit"))?;
                match date.unit() {
                    arrow_ipc::DateUnit::DAY => (Some(DataType::Date32), String::new(), 2),
                    _ => (None, "date64".into(), 2),
                }
            }
            arrow_ipc::Type::Timestamp => {
                let timestamp = field
                    .type_as_timestamp()
                    .ok_or_else(|| malformed("a timestamp type without its unit"))?;
                let zone = timestamp.timezone().map(Arc::<str>::from);
                match timestamp.unit() {
                    arrow_ipc::TimeUnit::MICROSECOND => {
                        (Some(DataType::Timestamp(TimeUnit::Microsecond, zone)), String::new(), 2)
                    }
                    unit => (None, format!("timestamp({})", unit.variant_name().unwrap_or("?")), 2),
                }
            }
            arrow_ipc::Type::Time => (None, "time".into(), 2),
            arrow_ipc::Type::Duration => (None, "duration".into(), 2),
            arrow_ipc::Type::Interval => (None, "interval".into(), 2),
            arrow_ipc::Type::FixedSizeBinary => (None, "fixed_size_binary".into(), 2),
            arrow_ipc::Type::Utf8View | arrow_ipc::Type::BinaryView => {
                out.variadic = true;
                (None, "view".into(), 2)
            }
            arrow_ipc::Type::List => {
                let [item] = &children[..] else {
                    return Err(malformed("a list needs exactly one child field"));
                };
                let data_type = item
                    .data_type
                    .clone()
                    .map(|t| DataType::List(Arc::new(Field::new(item.name.clone(), t, item.nullable))));
                (data_type, format!("array<{}>", item.type_name), 2)
            }
            arrow_ipc::Type::LargeList => (None, "large_list".into(), 2),
            arrow_ipc::Type::ListView | arrow_ipc::Type::LargeListView => (None, "list_view".into(), 3),
            arrow_ipc::Type::FixedSizeList => (None, "fixed_size_list".into(), 1),
            arrow_ipc::Type::Struct_ => {
                let data_type = child_types().map(|types| {
                    let fields = children
                        .iter()
                        .zip(types)
                        .map(|(c, t)| Field::new(c.name.clone(), t, c.nullable))
                        .collect::<Fields>();
                    DataType::Struct(fields)
                });
                (data_type, "struct".into(), 1)
            }
            arrow_ipc::Type::Map => {
                let map = field.type_as_map().ok_or_else(|| malformed("a map type without its header"))?;
                let [entries] = &children[..] else {
                    return Err(malformed("a map needs exactly one child field"));
                };
                let data_type = match &entries.data_type {
                    Some(t @ DataType::Struct(kv)) if kv.len() == 2 => Some(DataType::Map(
                        Arc::new(Field::new(entries.name.clone(), t.clone(), entries.nullable)),
                        map.keysSorted(),
                    )),
                    _ => None,
                };
                (data_type, "map".into(), 2)
            }
            arrow_ipc::Type::Union => {
                let union =
                    field.type_as_union().ok_or_else(|| malformed("a union type without its mode"))?;
                // Type ids, offsets for a dense union, and a validity buffer before format V5.
                let dense = usize::from(union.mode() == arrow_ipc::UnionMode::Dense);
                let validity = usize::from(self.version < MetadataVersion::V5);
                (None, "union".into(), 1 + dense + validity)
            }
            arrow_ipc::Type::RunEndEncoded => (None, "run_end_encoded".into(), 0),
            other => return Err(malformed(&format!("unknown type {}", other.0))),
        };
        out.type_name = match &data_type {
            Some(t) => type_name(t),
            None => name,
        };
        out.data_type = data_type;
        out.buffers = buffers;
        out.children = children;
        Ok(out)
    }
}

/// Which stream column fills each table column, and which stream columns the table lacks.
#[derive(Debug)]
struct Plan {
    /// Per table column, the index of the stream column that fills it.
    columns: Vec<Option<usize>>,
    /// The stream columns the table lacks, in stream order.
    extra: Vec<usize>,
    /// Per stream column, whether a table column uses it.
    used: Vec<bool>,
}

impl Plan {
    fn new(schema: &SchemaRef, found: &StreamSchema) -> Result<Plan, ConvertError> {
        // The first of equally named stream columns, as arrow's `index_of` would find it; by hash, so
        // that a wide schema matches in linear time.
        let mut by_name: HashMap<&str, usize> = HashMap::with_capacity(found.fields.len());
        for (index, field) in found.fields.iter().enumerate() {
            by_name.entry(field.name.as_str()).or_insert(index);
        }
        let table: HashSet<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let mut used = vec![false; found.fields.len()];
        let mut columns = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let index = by_name.get(field.name().as_str()).copied();
            if let Some(index) = index {
                let stream_field = &found.fields[index];
                let matches =
                    stream_field.data_type.as_ref().is_some_and(|t| compatible(field.data_type(), t));
                if !matches {
                    return Err(ConvertError::IpcMismatch {
                        column: field.name().clone(),
                        expected: type_name(field.data_type()),
                        found: stream_field.type_name.clone(),
                    });
                }
                used[index] = true;
            }
            columns.push(index);
        }
        let extra =
            (0..found.fields.len()).filter(|i| !table.contains(found.fields[*i].name.as_str())).collect();
        Ok(Plan { columns, extra, used })
    }
}

/// One record batch message: its checked header and body.
struct Batch<'a, 'b> {
    index: usize,
    rows: usize,
    nodes: Vec<(usize, usize)>,
    next_node: usize,
    buffers: Vec<&'a [u8]>,
    next_buffer: usize,
    variadic: Vec<usize>,
    next_variadic: usize,
    compression: Option<CompressionType>,
    budget: &'a mut Budget<'b>,
    /// One zstd context for the whole page, made on first use.
    zstd: &'a mut Option<zstd::bulk::Decompressor<'static>>,
}

/// The decoded columns of one batch, by stream column.
struct Columns {
    rows: usize,
    arrays: Vec<Option<ArrayRef>>,
}

impl<'a, 'b> Batch<'a, 'b> {
    /// Checks everything the header declares against the body and the limits, before any decoding.
    fn new(
        header: arrow_ipc::RecordBatch,
        body: &'a [u8],
        version: MetadataVersion,
        index: usize,
        budget: &'a mut Budget<'b>,
        zstd: &'a mut Option<zstd::bulk::Decompressor<'static>>,
    ) -> Result<Batch<'a, 'b>, ConvertError> {
        let error = |what: String| ipc(format!("message {index} (record batch): {what}"));
        if version < MetadataVersion::V4 {
            return Err(error(format!("metadata version {} is older than V4", version.0)));
        }
        let rows = usize::try_from(header.length())
            .map_err(|_| error(format!("negative row count {}", header.length())))?;
        budget.rows(rows)?;
        // The batch itself counts as an array of its rows.
        budget.cells(rows)?;

        let mut nodes = Vec::new();
        for (i, node) in header.nodes().into_iter().flatten().enumerate() {
            let (length, nulls) = (node.length(), node.null_count());
            let checked = usize::try_from(length).ok().zip(usize::try_from(nulls).ok());
            match checked {
                Some((length, nulls)) if nulls <= length => nodes.push((length, nulls)),
                _ => return Err(error(format!("node {i} has length {length} and null count {nulls}"))),
            }
        }

        // Every buffer inside the body, and no two overlapping: so the buffers a batch decodes add up
        // to at most its body, however many columns point at them.
        let mut spans = Vec::new();
        let mut buffers = Vec::new();
        for (i, buffer) in header.buffers().into_iter().flatten().enumerate() {
            let (offset, length) = (buffer.offset(), buffer.length());
            let span = usize::try_from(offset)
                .ok()
                .zip(usize::try_from(length).ok())
                .and_then(|(offset, length)| Some((offset, offset.checked_add(length)?)))
                .filter(|(_, end)| *end <= body.len());
            let Some((start, end)) = span else {
                return Err(error(format!(
                    "buffer {i} (offset {offset}, length {length}) lies outside the body of {} bytes",
                    body.len()
                )));
            };
            if end > start {
                spans.push((start, end, i));
            }
            buffers.push(&body[start..end]);
        }
        spans.sort_unstable();
        for pair in spans.windows(2) {
            if let [(_, end, a), (start, _, b)] = pair
                && start < end
            {
                return Err(error(format!("buffers {a} and {b} overlap")));
            }
        }

        let variadic = header
            .variadicBufferCounts()
            .into_iter()
            .flatten()
            .map(|count| {
                usize::try_from(count).ok().filter(|c| *c <= buffers.len()).ok_or_else(|| {
                    error(format!("variadic buffer count {count} for {} buffers", buffers.len()))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let compression = match header.compression() {
            None => None,
            Some(compression) => {
                if compression.method() != arrow_ipc::BodyCompressionMethod::BUFFER {
                    return Err(error(format!("unknown compression method {}", compression.method().0)));
                }
                match compression.codec() {
                    codec @ (CompressionType::LZ4_FRAME | CompressionType::ZSTD) => Some(codec),
                    other => return Err(error(format!("unknown compression codec {}", other.0))),
                }
            }
        };
        Ok(Batch {
            index,
            rows,
            nodes,
            next_node: 0,
            buffers,
            next_buffer: 0,
            variadic,
            next_variadic: 0,
            compression,
            budget,
            zstd,
        })
    }

    fn error(&self, what: impl std::fmt::Display) -> ConvertError {
        ipc(format!("message {} (record batch): {what}", self.index))
    }

    /// Decodes the columns the table uses and skips the others; `None` for a batch without rows,
    /// which holds nothing to convert.
    fn read(mut self, found: &StreamSchema, plan: &Plan) -> Result<Option<Columns>, ConvertError> {
        if self.rows == 0 {
            return Ok(None);
        }
        let mut arrays = Vec::with_capacity(found.fields.len());
        for (field, used) in found.fields.iter().zip(&plan.used) {
            if *used {
                let data_type =
                    field.data_type.as_ref().ok_or_else(|| self.error("a column without a type"))?;
                let array = self.decode(data_type, &field.name, true)?;
                arrays.push(Some(make_array(array)));
            } else {
                self.skip(field)?;
                arrays.push(None);
            }
        }
        Ok(Some(Columns { rows: self.rows, arrays }))
    }

    fn node(&mut self, path: &str) -> Result<(usize, usize), ConvertError> {
        let node = self.nodes.get(self.next_node).copied();
        self.next_node += 1;
        node.ok_or_else(|| self.error(format!("no field node left for column `{path}`")))
    }

    fn raw_buffer(&mut self, path: &str) -> Result<&'a [u8], ConvertError> {
        let buffer = self.buffers.get(self.next_buffer).copied();
        self.next_buffer += 1;
        buffer.ok_or_else(|| self.error(format!("no buffer left for column `{path}`")))
    }

    /// The next buffer: inflated when the batch is compressed, else copied out of the page. A slice
    /// of the page would keep the whole page alive for as long as any one column lives, and count
    /// it once per buffer in the batch's memory size, by which the host bounds what it holds
    /// (`limits.pending_mib`, reading ahead): a 100-row page of 60 buffers then weighed 4 MB.
    fn buffer(&mut self, path: &str) -> Result<Buffer, ConvertError> {
        let raw = self.raw_buffer(path)?;
        match self.compression {
            Some(codec) if !raw.is_empty() => self.inflate(codec, raw, path),
            _ => Ok(Buffer::from_slice_ref(raw)),
        }
    }

    /// A compressed buffer: its uncompressed length as 8 little-endian bytes (-1: stored as is), then
    /// the codec's frame. Inflated only within the decompression limit, and to exactly that length.
    fn inflate(&mut self, codec: CompressionType, raw: &[u8], path: &str) -> Result<Buffer, ConvertError> {
        let error =
            |what: String| ipc(format!("message {} (record batch), column `{path}`: {what}", self.index));
        let Some((prefix, frame)) = raw.split_first_chunk::<8>() else {
            return Err(error(format!("a compressed buffer of {} bytes lacks its 8-byte length", raw.len())));
        };
        let declared = i64::from_le_bytes(*prefix);
        if declared == -1 {
            // Stored as is: copied out of the page too (see `buffer`).
            return Ok(Buffer::from_slice_ref(frame));
        }
        let length = usize::try_from(declared)
            .map_err(|_| error(format!("negative uncompressed length {declared}")))?;
        if length > self.budget.decompressed_left() {
            // Refused on the declaration alone, before allocating anything.
            return Err(exceeded(
                "max_decompressed_bytes",
                self.budget.limits.max_decompressed_bytes,
                format!(
                    "decompressed bytes in one page (column `{path}` declares a buffer of {length} bytes)"
                ),
            ));
        }
        self.budget.decompressed(length)?;
        let inflated = match codec {
            CompressionType::ZSTD => {
                let decompressor = match self.zstd {
                    Some(decompressor) => decompressor,
                    None => self
                        .zstd
                        .insert(zstd::bulk::Decompressor::new().map_err(|e| error(format!("zstd: {e}")))?),
                };
                // Decodes into a buffer of exactly `length` bytes; a frame that would write more fails.
                let mut out = Vec::with_capacity(length);
                decompressor
                    .decompress_to_buffer(frame, &mut out)
                    .map_err(|e| error(format!("zstd: {e}")))?;
                out
            }
            _ => {
                let mut out = Vec::with_capacity(length);
                lz4_flex::frame::FrameDecoder::new(frame)
                    .take(length as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| error(format!("lz4: {e}")))?;
                out
            }
        };
        if inflated.len() != length {
            return Err(error(format!(
                "a compressed buffer declares {length} bytes but inflates to {}{}",
                inflated.len(),
                if inflated.len() > length { " or more" } else { "" }
            )));
        }
        Ok(Buffer::from_vec(inflated))
    }

    /// The validity bitmap of a node, when it has nulls; checked to cover the node's length.
    fn validity(
        &mut self,
        length: usize,
        nulls: usize,
        path: &str,
    ) -> Result<Option<NullBuffer>, ConvertError> {
        if nulls == 0 {
            // No nulls: the bitmap, if any, is never read.
            self.raw_buffer(path)?;
            return Ok(None);
        }
        let buffer = self.buffer(path)?;
        if buffer.len() < length.div_ceil(8) {
            return Err(self.error(format!(
                "column `{path}`: a validity bitmap of {} bytes for {length} values",
                buffer.len()
            )));
        }
        Ok(Some(NullBuffer::new(BooleanBuffer::new(buffer, 0, length))))
    }

    /// Builds one array of a type the table could hold, spending its cells before reading its buffers.
    fn decode(&mut self, data_type: &DataType, path: &str, top: bool) -> Result<ArrayData, ConvertError> {
        let (length, nulls) = self.node(path)?;
        if top && length != self.rows {
            return Err(
                self.error(format!("column `{path}` has {length} values in a batch of {} rows", self.rows))
            );
        }
        self.budget.cells(length)?;
        let mut buffers = Vec::new();
        let mut children = Vec::new();
        let validity = match data_type {
            DataType::Null => {
                if nulls != length {
                    return Err(
                        self.error(format!("void column `{path}` has {length} values but {nulls} nulls"))
                    );
                }
                None
            }
            DataType::Utf8 | DataType::Binary => {
                let validity = self.validity(length, nulls, path)?;
                buffers.push(self.buffer(path)?);
                buffers.push(self.buffer(path)?);
                validity
            }
            DataType::List(item) => {
                let validity = self.validity(length, nulls, path)?;
                buffers.push(self.buffer(path)?);
                children.push(self.decode(item.data_type(), &format!("{path}[]"), false)?);
                validity
            }
            DataType::Map(entries, _) => {
                let validity = self.validity(length, nulls, path)?;
                buffers.push(self.buffer(path)?);
                children.push(self.decode(entries.data_type(), path, false)?);
                validity
            }
            DataType::Struct(fields) => {
                let validity = self.validity(length, nulls, path)?;
                for field in fields {
                    children.push(self.decode(field.data_type(), &join(path, field.name()), false)?);
                }
                validity
            }
            _ => {
                let validity = self.validity(length, nulls, path)?;
                buffers.push(self.buffer(path)?);
                validity
            }
        };
        // arrow-data's validation views a fixed-width buffer as a whole slice of its type and panics
        // on a trailing partial value (`Buffer::typed_data`), so the partial value is cut off here.
        for (buffer, spec) in buffers.iter_mut().zip(&layout(data_type).buffers) {
            if let BufferSpec::FixedWidth { byte_width, .. } = spec
                && buffer.len() % byte_width != 0
            {
                *buffer = buffer.slice_with_length(0, buffer.len() - buffer.len() % byte_width);
            }
        }
        // Validates the array in full: buffer sizes against the length, offsets, UTF-8, child types.
        ArrayData::builder(data_type.clone())
            .len(length)
            .nulls(validity)
            .buffers(buffers)
            .child_data(children)
            .align_buffers(true)
            .build()
            .map_err(|e| self.error(format!("column `{path}`: {e}")))
    }

    /// Steps over a column the table does not use, reading nothing of its buffers.
    fn skip(&mut self, field: &StreamField) -> Result<(), ConvertError> {
        self.node(&field.name)?;
        let mut buffers = field.buffers;
        if field.variadic {
            let count = self.variadic.get(self.next_variadic).copied();
            self.next_variadic += 1;
            buffers +=
                count.ok_or_else(|| self.error(format!("no variadic count left for `{}`", field.name)))?;
        }
        for _ in 0..buffers {
            self.raw_buffer(&field.name)?;
        }
        for child in &field.children {
            self.skip(child)?;
        }
        Ok(())
    }
}

/// The table's batch from a stream batch's columns: relabelled, with nulls for missing columns.
fn assemble(
    schema: &SchemaRef,
    plan: &Plan,
    mut columns: Columns,
    rows_before: usize,
    nulls: &mut HashMap<(usize, usize), ArrayRef>,
    budget: &mut Budget,
) -> Result<RecordBatch, ConvertError> {
    let rows = columns.rows;
    let mut out = Vec::with_capacity(plan.columns.len());
    for (position, (field, index)) in schema.fields().iter().zip(&plan.columns).enumerate() {
        let column = match index.and_then(|i| columns.arrays.get_mut(i)?.take()) {
            Some(array) => relabel(&array, field.data_type())
                .map_err(|source| ConvertError::Arrow { column: field.name().clone(), source })?,
            None if !field.is_nullable() => {
                return Err(ConvertError::NullInNonNullable {
                    column: field.name().clone(),
                    row: rows_before,
                    expected: type_name(field.data_type()),
                    found: "no such column".to_string(),
                });
            }
            None => {
                // Charged on every batch, cached or not: the batch holds these cells all the same.
                budget.cells(rows.saturating_mul(null_arrays(field.data_type())))?;
                nulls
                    .entry((position, rows))
                    .or_insert_with(|| new_null_array(field.data_type(), rows))
                    .clone()
            }
        };
        if !field.is_nullable() && column.null_count() > 0 {
            let first = (0..rows).find(|i| column.is_null(*i)).unwrap_or(0);
            return Err(ConvertError::NullInNonNullable {
                column: field.name().clone(),
                row: rows_before + first,
                expected: type_name(field.data_type()),
                found: "null".to_string(),
            });
        }
        out.push(column);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(schema.clone(), out, &options)
        .map_err(|source| ConvertError::Arrow { column: String::new(), source })
}

/// How many arrays of the batch's length `new_null_array` builds for this type: a struct's fields
/// are as long as the struct, a list's or map's values are empty.
fn null_arrays(data_type: &DataType) -> usize {
    match data_type {
        DataType::Struct(fields) => 1 + fields.iter().map(|f| null_arrays(f.data_type())).sum::<usize>(),
        _ => 1,
    }
}

/// Same types, with struct field names compared but list item and map entry names ignored: pyarrow
/// and arrow-rs call a list's item "item" where this crate says "element". A nested field the schema
/// declares non-nullable must be non-nullable in the stream too.
fn compatible(expected: &DataType, found: &DataType) -> bool {
    let nested = |e: &Field, f: &Field| {
        (e.is_nullable() || !f.is_nullable()) && compatible(e.data_type(), f.data_type())
    };
    match (expected, found) {
        (DataType::List(e), DataType::List(f)) => nested(e, f),
        (DataType::Struct(e), DataType::Struct(f)) => {
            e.len() == f.len() && e.iter().zip(f).all(|(e, f)| e.name() == f.name() && nested(e, f))
        }
        (DataType::Map(e, _), DataType::Map(f, _)) => match (e.data_type(), f.data_type()) {
            (DataType::Struct(e), DataType::Struct(f)) => {
                e.len() == 2 && f.len() == 2 && e.iter().zip(f).all(|(e, f)| nested(e, f))
            }
            _ => false,
        },
        _ => expected == found,
    }
}

/// Rebuilds nested arrays under the schema's field names, so every batch carries exactly the schema.
fn relabel(array: &ArrayRef, data_type: &DataType) -> Result<ArrayRef, ArrowError> {
    let wrong = || ArrowError::SchemaError(format!("expected {data_type}, found {}", array.data_type()));
    Ok(match data_type {
        DataType::List(item) => {
            let (_, offsets, values, nulls) =
                array.as_list_opt::<i32>().ok_or_else(wrong)?.clone().into_parts();
            let values = relabel(&values, item.data_type())?;
            Arc::new(ListArray::try_new(item.clone(), offsets, values, nulls)?)
        }
        DataType::Struct(fields) => {
            let (_, children, nulls) = array.as_struct_opt().ok_or_else(wrong)?.clone().into_parts();
            let children = children
                .iter()
                .zip(fields)
                .map(|(child, field)| relabel(child, field.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(StructArray::try_new_with_length(fields.clone(), children, nulls, array.len())?)
        }
        DataType::Map(entries, sorted) => {
            let (_, offsets, entry_array, nulls, _) =
                array.as_map_opt().ok_or_else(wrong)?.clone().into_parts();
            let entry_array: ArrayRef = Arc::new(entry_array);
            let entry_array = relabel(&entry_array, entries.data_type())?;
            let entry_array = entry_array.as_struct_opt().ok_or_else(wrong)?.clone();
            Arc::new(MapArray::try_new(entries.clone(), offsets, entry_array, nulls, *sorted)?)
        }
        _ => array.clone(),
    })
}
