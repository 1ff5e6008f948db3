//! Hostile Arrow IPC pages: every declared length and count is a lie the converter must catch with a
//! clean error, never a panic, an abort or a huge allocation. Each page here crashed or bloated the
//! host through arrow-ipc's own reader.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, DictionaryArray, Int64Array, RecordBatch, StringArray};
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow_ipc::{
    BodyCompressionBuilder, BodyCompressionMethod, CompressionType, DictionaryBatchBuilder, FieldNode,
    MessageBuilder, MessageHeader, MetadataVersion, RecordBatchBuilder,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use flatbuffers::FlatBufferBuilder;
use weir_convert::{ConvertError, Converter, Limits, arrow_schema};

/// id: string (non-null), n: long, tags: array<string>.
fn table() -> SchemaRef {
    Arc::new(
        arrow_schema(
            r#"{"type":"struct","fields":[
                {"name":"id","type":"string","nullable":false,"metadata":{}},
                {"name":"n","type":"long","nullable":true,"metadata":{}},
                {"name":"tags","type":{"type":"array","elementType":"string","containsNull":true},"nullable":true,"metadata":{}}]}"#,
        )
        .unwrap(),
    )
}

fn valid_batch() -> RecordBatch {
    let mut tags = ListBuilder::new(StringBuilder::new());
    tags.values().append_value("x");
    tags.append(true);
    tags.append(false);
    tags.values().append_value("y");
    tags.values().append_value("z");
    tags.append(true);
    RecordBatch::try_from_iter([
        ("id", Arc::new(StringArray::from(vec!["a", "b", "c"])) as ArrayRef),
        ("n", Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])) as ArrayRef),
        ("tags", Arc::new(tags.finish()) as ArrayRef),
    ])
    .unwrap()
}

fn write(batches: &[RecordBatch], options: IpcWriteOptions) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new_with_options(&mut out, &batches[0].schema(), options).unwrap();
    for batch in batches {
        writer.write(batch).unwrap();
    }
    writer.finish().unwrap();
    drop(writer);
    out
}

/// The schema message of a stream for `schema`, without the end-of-stream marker.
fn schema_message(schema: &Schema) -> Vec<u8> {
    let mut out = Vec::new();
    let writer = StreamWriter::try_new(&mut out, schema).unwrap();
    drop(writer);
    out
}

/// A record batch message as a hostile connector would write it: every count is whatever it says.
#[derive(Clone, Default)]
struct Crafted {
    rows: i64,
    nodes: Vec<(i64, i64)>,
    buffers: Vec<(i64, i64)>,
    compression: Option<CompressionType>,
    /// The declared body length; the body's real length when `None`.
    body_length: Option<i64>,
    body: Vec<u8>,
    /// Makes it a dictionary batch for this id, as a delta when the flag is set.
    dictionary: Option<(i64, bool)>,
}

impl Crafted {
    fn message(&self) -> Vec<u8> {
        let mut fbb = FlatBufferBuilder::new();
        let nodes: Vec<FieldNode> = self.nodes.iter().map(|(l, n)| FieldNode::new(*l, *n)).collect();
        let nodes = fbb.create_vector(&nodes);
        let buffers: Vec<arrow_ipc::Buffer> =
            self.buffers.iter().map(|(o, l)| arrow_ipc::Buffer::new(*o, *l)).collect();
        let buffers = fbb.create_vector(&buffers);
        let compression = self.compression.map(|codec| {
            let mut builder = BodyCompressionBuilder::new(&mut fbb);
            builder.add_codec(codec);
            builder.add_method(BodyCompressionMethod::BUFFER);
            builder.finish()
        });
        let mut batch = RecordBatchBuilder::new(&mut fbb);
        batch.add_length(self.rows);
        batch.add_nodes(nodes);
        batch.add_buffers(buffers);
        if let Some(compression) = compression {
            batch.add_compression(compression);
        }
        let batch = batch.finish();
        let (header_type, header) = match self.dictionary {
            Some((id, delta)) => {
                let mut dictionary = DictionaryBatchBuilder::new(&mut fbb);
                dictionary.add_id(id);
                dictionary.add_data(batch);
                dictionary.add_isDelta(delta);
                (MessageHeader::DictionaryBatch, dictionary.finish().as_union_value())
            }
            None => (MessageHeader::RecordBatch, batch.as_union_value()),
        };
        let mut message = MessageBuilder::new(&mut fbb);
        message.add_version(MetadataVersion::V5);
        message.add_header_type(header_type);
        message.add_header(header);
        message.add_bodyLength(self.body_length.unwrap_or(self.body.len() as i64));
        let message = message.finish();
        fbb.finish(message, None);
        let mut out = framed(fbb.finished_data());
        out.extend_from_slice(&self.body);
        out
    }
}

/// A message's metadata as a stream frames it: continuation marker, length, metadata padded to 8.
fn framed(metadata: &[u8]) -> Vec<u8> {
    let padded = metadata.len().next_multiple_of(8);
    let mut out = vec![0xff; 4];
    out.extend_from_slice(&(padded as i32).to_le_bytes());
    out.extend_from_slice(metadata);
    out.resize(8 + padded, 0);
    out
}

/// A stream of `schema` followed by these messages and the end-of-stream marker.
fn page(schema: &Schema, messages: &[Crafted]) -> Vec<u8> {
    let mut out = schema_message(schema);
    for message in messages {
        out.extend_from_slice(&message.message());
    }
    out.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    out
}

/// A table of `n` nullable long columns, so that a page without them is not refused for that.
fn nullable_longs(n: usize) -> SchemaRef {
    Arc::new(Schema::new(
        (0..n).map(|i| Field::new(format!("c{i}"), DataType::Int64, true)).collect::<Vec<_>>(),
    ))
}

fn long_schema() -> Schema {
    Schema::new(vec![Field::new("n", DataType::Int64, true)])
}

/// One `n: long` column of `rows` values, every count honest.
fn long_column(rows: i64) -> Crafted {
    let body = vec![0; (rows * 8) as usize];
    Crafted { rows, nodes: vec![(rows, 0)], buffers: vec![(0, 0), (0, rows * 8)], body, ..Crafted::default() }
}

/// Converts `page` against the table, asserting that it fails cleanly (not a caught panic); returns
/// the error.
fn refused(page: &[u8]) -> ConvertError {
    refused_with(page, Limits::default())
}

fn refused_with(page: &[u8], limits: Limits) -> ConvertError {
    let mut converter = Converter::with_limits(table(), limits);
    let error = converter.arrow_ipc(page).expect_err("a hostile page was accepted");
    assert!(!error.to_string().contains("panicked"), "{error}");
    assert!(converter.unknown_fields().is_empty(), "a refused page counted fields");
    error
}

fn assert_ipc_error(error: &ConvertError, needle: &str) {
    match error {
        ConvertError::Ipc { message } => assert!(message.contains(needle), "{message}"),
        other => panic!("expected an IPC error about {needle}: {other:?}"),
    }
}

fn assert_limit(error: &ConvertError, name: &str) {
    match error {
        ConvertError::LimitExceeded { limit, .. } => assert_eq!(*limit, name, "{error}"),
        other => panic!("expected the limit {name}: {other:?}"),
    }
    assert!(error.to_string().contains(name), "the message names the limit: {error}");
}

#[test]
fn the_crafted_pages_are_valid_when_honest() {
    let batches = Converter::new(table()).arrow_ipc(&page(&long_schema(), &[long_column(4)]));
    // `id` is non-nullable and missing: the page parses, then fails on the table's rule.
    assert!(matches!(batches, Err(ConvertError::NullInNonNullable { .. })), "{batches:?}");
    let schema = Arc::new(long_schema());
    let batches = Converter::new(schema).arrow_ipc(&page(&long_schema(), &[long_column(4)])).unwrap();
    assert_eq!(batches[0].num_rows(), 4);
}

#[test]
fn negative_and_huge_body_lengths_are_refused() {
    for (length, needle) in
        [(-1, "negative body length"), (i64::MIN, "negative body length"), (1 << 40, "runs past")]
    {
        let message = Crafted { body_length: Some(length), ..long_column(2) };
        assert_ipc_error(&refused(&page(&long_schema(), &[message])), needle);
    }
}

#[test]
fn negative_huge_and_truncated_metadata_lengths_are_refused() {
    let mut stream = schema_message(&long_schema());
    let at = stream.len();
    stream.extend_from_slice(&long_column(2).message());
    for (length, needle) in [(-8_i32, "negative metadata length"), (i32::MAX, "runs past the end")] {
        let mut bad = stream.clone();
        bad[at + 4..at + 8].copy_from_slice(&length.to_le_bytes());
        assert_ipc_error(&refused(&bad), needle);
    }
    let truncated = &stream[..at + 6];
    assert_ipc_error(&refused(truncated), "ends inside a message length");
    let garbage_metadata = [&stream[..at], &[0xff, 0xff, 0xff, 0xff, 16, 0, 0, 0], &[0xab; 16][..]].concat();
    assert_ipc_error(&refused(&garbage_metadata), "invalid metadata");
}

#[test]
fn huge_and_negative_row_counts_are_refused_before_any_allocation() {
    // No column at all, so that nothing but the declared count could stop it; the table's three
    // columns would then be built as nulls.
    let empty = Schema::empty();
    let message = Crafted { rows: 1 << 40, ..Crafted::default() };
    assert_limit(&refused(&page(&empty, &[message])), "max_rows");
    let message = Crafted { rows: -5, ..Crafted::default() };
    assert_ipc_error(&refused(&page(&empty, &[message])), "negative row count");
    // Within the row limit, the missing columns' nulls still count against the cells.
    let mut limits = Limits::default();
    limits.max_cells = 1000;
    let message = Crafted { rows: 400, ..Crafted::default() };
    let error = Converter::with_limits(nullable_longs(3), limits).arrow_ipc(&page(&empty, &[message]));
    assert_limit(&error.unwrap_err(), "max_cells");
}

#[test]
fn row_counts_that_the_buffers_cannot_hold_are_refused() {
    // Declares 1,000 rows with 16 bytes of values.
    let message = Crafted {
        rows: 1000,
        nodes: vec![(1000, 0)],
        buffers: vec![(0, 0), (0, 16)],
        body: vec![0; 16],
        ..Crafted::default()
    };
    let schema = Arc::new(long_schema());
    let error = Converter::new(schema).arrow_ipc(&page(&long_schema(), &[message])).unwrap_err();
    assert_ipc_error(&error, "column `n`");
    // A node longer than its batch, a negative node, more nulls than values, a validity bitmap too
    // short for the nulls it claims.
    let cases = [
        (Crafted { nodes: vec![(5, 0)], ..long_column(2) }, "5 values in a batch of 2 rows"),
        (Crafted { nodes: vec![(-2, 0)], ..long_column(2) }, "node 0 has length -2"),
        (Crafted { nodes: vec![(2, 3)], ..long_column(2) }, "null count 3"),
        (Crafted { nodes: vec![(2, 1)], ..long_column(2) }, "validity bitmap of 0 bytes"),
        (Crafted { nodes: vec![], buffers: vec![], ..long_column(2) }, "no field node left"),
        (Crafted { buffers: vec![(0, 0)], ..long_column(2) }, "no buffer left"),
    ];
    for (message, needle) in cases {
        let error = Converter::new(Arc::new(long_schema())).arrow_ipc(&page(&long_schema(), &[message]));
        assert_ipc_error(&error.unwrap_err(), needle);
    }
}

#[test]
fn buffers_outside_the_body_or_overlapping_are_refused() {
    for (offset, length) in [(1 << 40, 8), (-8, 8), (0, -1), (8, i64::MAX), (i64::MAX, i64::MAX), (0, 17)] {
        let message = Crafted { buffers: vec![(0, 0), (offset, length)], ..long_column(2) };
        assert_ipc_error(&refused(&page(&long_schema(), &[message])), "outside the body");
    }
    // Ten columns that all point at the same bytes would let alignment copies multiply the body.
    let message = Crafted { buffers: vec![(0, 16), (8, 8)], ..long_column(2) };
    assert_ipc_error(&refused(&page(&long_schema(), &[message])), "overlap");
}

/// A zstd frame of `length` zero bytes made of RLE blocks: 4 bytes per 128 KiB, so 1 GiB fits in
/// 32 KiB, the issue's bomb.
fn zstd_bomb(length: usize) -> Vec<u8> {
    const BLOCK: usize = 128 << 10;
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0xe0];
    frame.extend_from_slice(&(length as u64).to_le_bytes());
    let blocks = length.div_ceil(BLOCK);
    for i in 0..blocks {
        let size = if i + 1 == blocks { length - i * BLOCK } else { BLOCK };
        let header = (size << 3) | (1 << 1) | usize::from(i + 1 == blocks);
        frame.extend_from_slice(&header.to_le_bytes()[..3]);
        frame.push(0);
    }
    frame
}

fn compressed_column(codec: CompressionType, declared: i64, frame: &[u8]) -> Crafted {
    let mut body = declared.to_le_bytes().to_vec();
    body.extend_from_slice(frame);
    let length = body.len() as i64;
    body.resize(body.len().next_multiple_of(8), 0);
    Crafted {
        rows: 2,
        nodes: vec![(2, 0)],
        buffers: vec![(0, 0), (0, length)],
        compression: Some(codec),
        body,
        ..Crafted::default()
    }
}

#[test]
fn a_zstd_bomb_is_refused_on_its_declared_length_or_its_real_one() {
    let bomb = zstd_bomb(1 << 30);
    assert!(bomb.len() < 33 << 10, "the bomb is {} bytes", bomb.len());
    // Declared honestly: 1 GiB is over the 64 MiB default, refused before inflating anything.
    let honest = compressed_column(CompressionType::ZSTD, 1 << 30, &bomb);
    let error = refused(&page(&long_schema(), &[honest]));
    assert_limit(&error, "max_decompressed_bytes");
    // Declared as 16 bytes: inflating stops at 16 bytes.
    let liar = compressed_column(CompressionType::ZSTD, 16, &bomb);
    let error =
        Converter::new(Arc::new(long_schema())).arrow_ipc(&page(&long_schema(), &[liar])).unwrap_err();
    assert_ipc_error(&error, "zstd");
    // And many honest buffers add up against the same page limit.
    let mut limits = Limits::default();
    limits.max_decompressed_bytes = 40;
    let small = compressed_column(CompressionType::ZSTD, 16, &zstd_bomb(16));
    let converted = Converter::with_limits(Arc::new(long_schema()), limits)
        .arrow_ipc(&page(&long_schema(), &[small.clone(), small.clone()]))
        .unwrap();
    assert_eq!(converted.len(), 2);
    let error = Converter::with_limits(Arc::new(long_schema()), limits)
        .arrow_ipc(&page(&long_schema(), &[small.clone(), small.clone(), small]))
        .unwrap_err();
    assert_limit(&error, "max_decompressed_bytes");
}

#[test]
fn an_lz4_bomb_is_refused() {
    use std::io::Write;
    let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
    encoder.write_all(&vec![0; 8 << 20]).unwrap();
    let frame = encoder.finish().unwrap();
    assert!(frame.len() < 64 << 10);
    let liar = compressed_column(CompressionType::LZ4_FRAME, 16, &frame);
    let error =
        Converter::new(Arc::new(long_schema())).arrow_ipc(&page(&long_schema(), &[liar])).unwrap_err();
    assert_ipc_error(&error, "inflates to 17 or more");
    let mut limits = Limits::default();
    limits.max_decompressed_bytes = 1 << 20;
    let honest = compressed_column(CompressionType::LZ4_FRAME, 8 << 20, &frame);
    assert_limit(&refused_with(&page(&long_schema(), &[honest]), limits), "max_decompressed_bytes");
    // A negative declared length other than -1 (stored as is), and a buffer too short for its prefix.
    let negative = compressed_column(CompressionType::LZ4_FRAME, -7, &frame);
    assert_ipc_error(&refused(&page(&long_schema(), &[negative])), "negative uncompressed length");
    let mut short = long_column(2);
    short.compression = Some(CompressionType::ZSTD);
    short.buffers = vec![(0, 0), (0, 5)];
    assert_ipc_error(&refused(&page(&long_schema(), &[short])), "8-byte length");
}

#[test]
fn compressed_pages_from_arrow_writers_convert() {
    for codec in [CompressionType::LZ4_FRAME, CompressionType::ZSTD] {
        let options = IpcWriteOptions::default().try_with_compression(Some(codec)).unwrap();
        let stream = write(&[valid_batch(), valid_batch()], options);
        let batches = Converter::new(table()).arrow_ipc(&stream).unwrap();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[1].num_rows(), 3);
        assert_eq!(batches[1].column(1).null_count(), 1);
    }
}

fn dictionary_page() -> (Schema, Vec<u8>) {
    let names: DictionaryArray<Int32Type> = vec!["p", "q", "p"].into_iter().collect();
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(StringArray::from(vec!["a", "b", "c"])) as ArrayRef),
        ("label", Arc::new(names) as ArrayRef),
    ])
    .unwrap();
    let schema = batch.schema().as_ref().clone();
    (schema, write(&[batch], IpcWriteOptions::default()))
}

#[test]
fn dictionary_batches_are_skipped_however_large_they_claim_to_be() {
    let (schema, valid) = dictionary_page();
    let mut converter = Converter::new(table());
    assert_eq!(converter.arrow_ipc(&valid).unwrap()[0].num_rows(), 3);
    assert_eq!(converter.unknown_fields().get("label"), Some(&3));
    // A thousand delta dictionaries each claiming 2^40 values: arrow-ipc would concatenate them.
    let bomb = Crafted {
        rows: 1 << 40,
        nodes: vec![(1 << 40, 0)],
        buffers: vec![(0, 0), (0, 0), (0, 0)],
        dictionary: Some((0, true)),
        ..Crafted::default()
    };
    let mut stream = schema_message(&schema);
    for _ in 0..1000 {
        stream.extend_from_slice(&bomb.message());
    }
    let mut converter = Converter::new(table());
    assert!(converter.arrow_ipc(&stream).unwrap().is_empty());
    // One for a dictionary no column uses is malformed.
    let stray = Crafted { dictionary: Some((99, false)), ..bomb };
    let error = refused(&page(&schema, &[stray]));
    assert_ipc_error(&error, "id 99");
}

#[test]
fn a_dictionary_encoded_table_column_is_a_mismatch() {
    let (_, valid) = dictionary_page();
    let schema = Arc::new(
        arrow_schema(
            r#"{"type":"struct","fields":[{"name":"label","type":"string","nullable":true,"metadata":{}}]}"#,
        )
        .unwrap(),
    );
    match Converter::new(schema).arrow_ipc(&valid) {
        Err(ConvertError::IpcMismatch { column, found, .. }) => {
            assert_eq!((column.as_str(), found.as_str()), ("label", "dictionary"))
        }
        other => panic!("{other:?}"),
    }
}

fn nested_list(depth: usize) -> DataType {
    (0..depth).fold(DataType::Int64, |inner, _| DataType::List(Arc::new(Field::new("item", inner, true))))
}

/// The schema message of one column of `depth` nested lists of longs, built bottom-up without recursion.
fn deep_schema_message(depth: usize) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let mut int = arrow_ipc::IntBuilder::new(&mut fbb);
    int.add_bitWidth(64);
    int.add_is_signed(true);
    let int = int.finish().as_union_value();
    let name = fbb.create_string("item");
    let mut field = arrow_ipc::FieldBuilder::new(&mut fbb);
    field.add_name(name);
    field.add_nullable(true);
    field.add_type_type(arrow_ipc::Type::Int);
    field.add_type_(int);
    let mut field = field.finish();
    for _ in 0..depth {
        let list = arrow_ipc::ListBuilder::new(&mut fbb).finish().as_union_value();
        let children = fbb.create_vector(&[field]);
        let mut outer = arrow_ipc::FieldBuilder::new(&mut fbb);
        outer.add_name(name);
        outer.add_nullable(true);
        outer.add_type_type(arrow_ipc::Type::List);
        outer.add_type_(list);
        outer.add_children(children);
        field = outer.finish();
    }
    let fields = fbb.create_vector(&[field]);
    let mut schema = arrow_ipc::SchemaBuilder::new(&mut fbb);
    schema.add_fields(fields);
    let schema = schema.finish().as_union_value();
    let mut message = MessageBuilder::new(&mut fbb);
    message.add_version(MetadataVersion::V5);
    message.add_header_type(MessageHeader::Schema);
    message.add_header(schema);
    let message = message.finish();
    fbb.finish(message, None);
    framed(fbb.finished_data())
}

fn nested_spark(depth: usize) -> String {
    let inner = (0..depth).fold("\"long\"".to_string(), |inner, _| {
        format!(r#"{{"type":"array","elementType":{inner},"containsNull":true}}"#)
    });
    format!(
        r#"{{"type":"struct","fields":[{{"name":"deep","type":{inner},"nullable":true,"metadata":{{}}}}]}}"#
    )
}

#[test]
fn deep_nesting_is_refused_at_the_depth_limit_and_read_within_it() {
    for depth in [33, 120] {
        let schema = Schema::new(vec![Field::new("deep", nested_list(depth), true)]);
        let error = refused(&page(&schema, &[]));
        match &error {
            ConvertError::LimitExceeded { limit, .. } => assert_eq!(*limit, "max_depth"),
            // Past the flatbuffer verifier's own depth limit, the metadata is refused first.
            ConvertError::Ipc { message } => assert!(message.contains("invalid metadata"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
    // Deeper than arrow's own writer can write without overflowing its stack: built by hand.
    let error = refused(&deep_schema_message(100_000));
    assert_ipc_error(&error, "invalid metadata");
    // 32 levels: the default limit, and a real page of them converts.
    let table = Arc::new(arrow_schema(&nested_spark(32)).unwrap());
    let schema = Schema::new(vec![Field::new("deep", nested_list(32), true)]);
    let column = arrow_array::new_null_array(schema.field(0).data_type(), 2);
    let batch = RecordBatch::try_new(Arc::new(schema), vec![column]).unwrap();
    let batches = Converter::new(table).arrow_ipc(&write(&[batch], IpcWriteOptions::default())).unwrap();
    assert_eq!(batches[0].column(0).null_count(), 2);
}

#[test]
fn a_wide_stream_schema_is_refused_past_the_field_limit() {
    let mut limits = Limits::default();
    limits.max_schema_fields = 100;
    let fields: Vec<Field> = (0..101).map(|i| Field::new(format!("c{i}"), DataType::Int64, true)).collect();
    assert_limit(&refused_with(&page(&Schema::new(fields), &[]), limits), "max_schema_fields");
}

#[test]
fn many_tiny_batches_stay_within_the_cells_limit() {
    // Each batch of one row costs the table's columns, so the page stops at the cells limit.
    let mut limits = Limits::default();
    limits.max_cells = 10_000;
    let wide = nullable_longs(10);
    let messages = vec![Crafted { rows: 1, ..Crafted::default() }; 5_000];
    let error = Converter::with_limits(wide.clone(), limits).arrow_ipc(&page(&Schema::empty(), &messages));
    assert_limit(&error.unwrap_err(), "max_cells");
    // 11 cells a batch (itself and ten null columns): 909 of them fit.
    let batches = Converter::with_limits(wide, limits).arrow_ipc(&page(&Schema::empty(), &messages[..909]));
    assert_eq!(batches.unwrap().len(), 909);
    // Batches without rows cost nothing and are dropped.
    let messages = vec![Crafted::default(); 5_000];
    let schema = Arc::new(long_schema());
    assert!(Converter::new(schema).arrow_ipc(&page(&Schema::empty(), &messages)).unwrap().is_empty());
}

/// xorshift: the mutations below are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn randomly_mutated_pages_never_crash() {
    let compressed = IpcWriteOptions::default().try_with_compression(Some(CompressionType::ZSTD)).unwrap();
    let seeds = [
        write(&[valid_batch(), valid_batch()], IpcWriteOptions::default()),
        write(&[valid_batch()], compressed),
        dictionary_page().1,
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut refused) = (0, 0);
    for seed in &seeds {
        // One converter for the seed and all its mutations, as the host reads a table's pages: a
        // mutated page meets the schema the page before left read, and must not disturb the next.
        let mut converter = Converter::new(table());
        let honest = converter.arrow_ipc(seed).unwrap();
        for _ in 0..2_000 {
            let mut page = seed.clone();
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(page.len());
                match rng.below(4) {
                    0 => page[at] = rng.next() as u8,
                    1 => page[at] ^= 1 << rng.below(8),
                    // Lengths and counts are little-endian words: make one huge or negative.
                    2 => {
                        let end = (at + 4).min(page.len());
                        page[at..end].fill(if rng.below(2) == 0 { 0xff } else { 0x7f });
                    }
                    _ => page.truncate(at),
                }
                if page.is_empty() {
                    break;
                }
            }
            match converter.arrow_ipc(&page) {
                Ok(_) => accepted += 1,
                Err(error) => {
                    assert!(!error.to_string().contains("panicked"), "{error}");
                    refused += 1;
                }
            }
            if rng.below(8) == 0 {
                assert_eq!(converter.arrow_ipc(seed).unwrap(), honest);
            }
        }
    }
    println!("mutated pages: {accepted} accepted, {refused} refused");
    assert!(refused > 0);
}

#[test]
fn the_host_keeps_converting_after_hostile_pages() {
    let mut converter = Converter::new(table());
    for hostile in [
        page(&long_schema(), &[Crafted { body_length: Some(-1), ..long_column(2) }]),
        page(&long_schema(), &[compressed_column(CompressionType::ZSTD, 1 << 30, &zstd_bomb(1 << 30))]),
    ] {
        assert!(converter.arrow_ipc(&hostile).is_err());
    }
    let batches = converter.arrow_ipc(&write(&[valid_batch()], IpcWriteOptions::default())).unwrap();
    assert_eq!(batches[0].num_rows(), 3);
}

#[test]
fn extra_columns_are_counted_once_per_page_over_all_its_batches() {
    let schema =
        Schema::new(vec![Field::new("n", DataType::Int64, true), Field::new("x", DataType::Int64, true)]);
    let two_columns = Crafted {
        rows: 2,
        nodes: vec![(2, 0), (2, 0)],
        buffers: vec![(0, 0), (0, 16), (16, 0), (16, 16)],
        body: vec![0; 32],
        ..Crafted::default()
    };
    let mut converter = Converter::new(Arc::new(long_schema()));
    let batches = converter.arrow_ipc(&page(&schema, &vec![two_columns; 3])).unwrap();
    assert_eq!(batches.len(), 3);
    assert_eq!(converter.unknown_fields().get("x"), Some(&6));
}

#[test]
fn a_buffer_with_a_trailing_partial_value_does_not_panic_arrow() {
    // Found by the mutation test: arrow-data's validation views an offsets buffer as a whole slice of
    // i32 and panicked (`Buffer::typed_data`) on a 13-byte one. The partial value is now cut off.
    let mut body = Vec::new();
    for offset in [0_i32, 1, 2] {
        body.extend_from_slice(&offset.to_le_bytes());
    }
    body.extend_from_slice(&[0xee, 0, 0, 0, b'a', b'b', 0, 0]);
    let message = Crafted {
        rows: 2,
        nodes: vec![(2, 0)],
        buffers: vec![(0, 0), (0, 13), (16, 2)],
        body,
        ..Crafted::default()
    };
    let schema = Schema::new(vec![Field::new("s", DataType::Utf8, true)]);
    let batches = Converter::new(Arc::new(schema.clone())).arrow_ipc(&page(&schema, &[message])).unwrap();
    let strings = batches[0].column(0).as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!((strings.value(0), strings.value(1)), ("a", "b"));
}
