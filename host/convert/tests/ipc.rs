//! Arrow IPC pages: round trip, relabelling, and mismatches naming the column.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use weir_convert::{ConvertError, Converter, arrow_schema};

fn table() -> SchemaRef {
    Arc::new(
        arrow_schema(
            r#"{"type":"struct","fields":[
                {"name":"id","type":"string","nullable":false,"metadata":{"airtable_field_id":"fld1"}},
                {"name":"n","type":"long","nullable":true,"metadata":{}},
                {"name":"tags","type":{"type":"array","elementType":"string","containsNull":true},"nullable":true,"metadata":{}}]}"#,
        )
        .unwrap(),
    )
}

fn stream(batches: &[RecordBatch]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, &batches[0].schema()).unwrap();
    for batch in batches {
        writer.write(batch).unwrap();
    }
    writer.finish().unwrap();
    drop(writer);
    out
}

/// A list column as pyarrow and arrow-rs build it by default: item field named "item".
fn tags(values: &[Option<Vec<&str>>]) -> ArrayRef {
    let mut builder = ListBuilder::new(StringBuilder::new());
    for value in values {
        match value {
            Some(items) => {
                items.iter().for_each(|s| builder.values().append_value(s));
                builder.append(true);
            }
            None => builder.append(false),
        }
    }
    Arc::new(builder.finish())
}

fn batch(fields: Vec<(&str, ArrayRef, bool)>) -> RecordBatch {
    let schema = Schema::new(
        fields
            .iter()
            .map(|(name, array, nullable)| Field::new(*name, array.data_type().clone(), *nullable))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), fields.into_iter().map(|(_, a, _)| a).collect()).unwrap()
}

#[test]
fn ipc_round_trips_and_relabels_with_the_table_schema() {
    let first = batch(vec![
        ("id", Arc::new(StringArray::from(vec!["a", "b"])), false),
        ("n", Arc::new(Int64Array::from(vec![Some(1), None])), true),
        ("tags", tags(&[Some(vec!["x", "y"]), None]), true),
    ]);
    let second = batch(vec![
        ("id", Arc::new(StringArray::from(vec!["c"])), false),
        ("n", Arc::new(Int64Array::from(vec![3])), true),
        ("tags", tags(&[Some(vec![])]), true),
    ]);
    let mut converter = Converter::new(table());
    let batches = converter.arrow_ipc(&stream(&[first, second])).unwrap();
    assert_eq!(batches.len(), 2);
    for batch in &batches {
        // Same schema object as the table's: "element" item name and field metadata included.
        assert_eq!(batch.schema(), table());
    }
    assert_eq!(batches[0].column(0).as_string::<i32>().value(1), "b");
    assert_eq!(batches[1].column(1).as_primitive::<Int64Type>().value(0), 3);
    let tags = batches[0].column(2).as_list::<i32>();
    assert_eq!(tags.value(0).as_string::<i32>().value(1), "y");
    assert!(converter.unknown_fields().is_empty());
}

#[test]
fn a_type_mismatch_names_the_column() {
    let wrong = batch(vec![
        ("id", Arc::new(StringArray::from(vec!["a"])), false),
        ("n", Arc::new(Int32Array::from(vec![1])), true),
    ]);
    match Converter::new(table()).arrow_ipc(&stream(&[wrong])) {
        Err(ConvertError::IpcMismatch { column, expected, found }) => {
            assert_eq!((column.as_str(), expected.as_str(), found.as_str()), ("n", "long", "integer"));
        }
        other => panic!("{other:?}"),
    }
    let wrong_item = batch(vec![("tags", Arc::new(StringArray::from(vec!["x"])), true)]);
    let error = Converter::new(table()).arrow_ipc(&stream(&[wrong_item]));
    assert!(matches!(error, Err(ConvertError::IpcMismatch { column, .. }) if column == "tags"));
}

#[test]
fn nulls_in_non_nullable_columns_are_rejected_with_their_row() {
    let first = batch(vec![("id", Arc::new(StringArray::from(vec!["a", "b"])), true)]);
    let second = batch(vec![("id", Arc::new(StringArray::from(vec![Some("c"), None])), true)]);
    match Converter::new(table()).arrow_ipc(&stream(&[first, second])) {
        Err(ConvertError::NullInNonNullable { column, row, .. }) => {
            assert_eq!((column.as_str(), row), ("id", 3))
        }
        other => panic!("{other:?}"),
    }
    let no_id = batch(vec![("n", Arc::new(Int64Array::from(vec![1])), true)]);
    match Converter::new(table()).arrow_ipc(&stream(&[no_id])) {
        Err(ConvertError::NullInNonNullable { column, found, .. }) => {
            assert_eq!((column.as_str(), found.as_str()), ("id", "no such column"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_nullable_columns_are_null_and_extra_columns_are_counted() {
    let page = batch(vec![
        ("extra", Arc::new(Int64Array::from(vec![1, 2])), true),
        ("id", Arc::new(StringArray::from(vec!["a", "b"])), false),
    ]);
    let mut converter = Converter::new(table());
    let batches = converter.arrow_ipc(&stream(&[page])).unwrap();
    assert_eq!(batches[0].schema(), table());
    assert_eq!(batches[0].column(1).null_count(), 2);
    assert_eq!(batches[0].column(2).data_type(), table().field(2).data_type());
    assert_eq!(converter.unknown_fields().get("extra"), Some(&2));
}

/// A table's pages usually repeat one schema, which the converter reads once; a page with another
/// is read with its own, and a page refused for its schema spoils none after it.
#[test]
fn each_page_is_read_with_its_own_schema() {
    let plain = || {
        batch(vec![
            ("id", Arc::new(StringArray::from(vec!["a"])), false),
            ("n", Arc::new(Int64Array::from(vec![1])), true),
        ])
    };
    let reordered = batch(vec![
        ("extra", Arc::new(Int64Array::from(vec![7, 8])), true),
        ("n", Arc::new(Int64Array::from(vec![2, 3])), true),
        ("id", Arc::new(StringArray::from(vec!["b", "c"])), false),
    ]);
    let wrong = batch(vec![
        ("id", Arc::new(StringArray::from(vec!["d"])), false),
        ("n", Arc::new(Int32Array::from(vec![4])), true),
    ]);
    let mut converter = Converter::new(table());
    let ns = |batches: Vec<RecordBatch>| -> Vec<i64> {
        batches.iter().flat_map(|b| b.column(1).as_primitive::<Int64Type>().values().to_vec()).collect()
    };
    assert_eq!(ns(converter.arrow_ipc(&stream(&[plain()])).unwrap()), [1]);
    assert_eq!(ns(converter.arrow_ipc(&stream(&[plain()])).unwrap()), [1]);
    assert_eq!(ns(converter.arrow_ipc(&stream(&[reordered])).unwrap()), [2, 3]);
    assert_eq!(converter.unknown_fields().get("extra"), Some(&2));
    let wrong = stream(&[wrong]);
    let error = converter.arrow_ipc(&wrong);
    assert!(matches!(error, Err(ConvertError::IpcMismatch { ref column, .. }) if column == "n"), "{error:?}");
    assert!(converter.arrow_ipc(&wrong).is_err());
    assert_eq!(ns(converter.arrow_ipc(&stream(&[plain()])).unwrap()), [1]);
    assert_eq!(converter.unknown_fields().get("extra"), Some(&2));
}

#[test]
fn garbage_is_an_ipc_error() {
    let error = Converter::new(table()).arrow_ipc(b"not arrow at all");
    assert!(matches!(error, Err(ConvertError::Ipc { .. })), "{error:?}");
    let error = Converter::new(table()).arrow_ipc(b"");
    assert!(matches!(error, Err(ConvertError::Ipc { .. })), "{error:?}");
}

#[test]
fn struct_fields_must_match_by_name() {
    let schema = Arc::new(
        arrow_schema(
            r#"{"type":"struct","fields":[{"name":"o","type":{"type":"struct","fields":[{"name":"a","type":"long","nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}}]}"#,
        )
        .unwrap(),
    );
    let renamed = arrow_array::StructArray::from(vec![(
        Arc::new(Field::new("b", DataType::Int64, true)),
        Arc::new(Int64Array::from(vec![1])) as ArrayRef,
    )]);
    let page = batch(vec![("o", Arc::new(renamed), true)]);
    let error = Converter::new(schema).arrow_ipc(&stream(&[page]));
    assert!(matches!(&error, Err(ConvertError::IpcMismatch { column, .. }) if column == "o"), "{error:?}");
}

/// A decoded batch weighs what its own columns hold, not the page once per buffer: the host bounds
/// what it holds by this size, and a 100-row page of a wide table once weighed 4 MB.
#[test]
fn a_decoded_batch_weighs_its_columns_not_the_page() {
    let rows = 1000;
    let ids: Vec<String> = (0..rows).map(|i| format!("rec{i:014}")).collect();
    let page = stream(&[batch(vec![
        ("id", Arc::new(StringArray::from(ids)), false),
        ("n", Arc::new(Int64Array::from((0..rows as i64).collect::<Vec<_>>())), true),
        ("tags", tags(&vec![Some(vec!["x", "y"]); rows]), true),
    ])]);
    let batches = Converter::new(table()).arrow_ipc(&page).unwrap();
    let weight: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
    assert!(weight < 2 * page.len(), "{weight} bytes held for a page of {}", page.len());
}

/// The page is read in place, wherever the guest's bytes lie: a page at any offset from an aligned
/// address converts to the same batches, and their columns are aligned for their types.
#[test]
fn a_page_is_read_at_any_alignment() {
    let page = stream(&[batch(vec![
        ("id", Arc::new(StringArray::from(vec!["a", "b", "c"])), false),
        ("n", Arc::new(Int64Array::from(vec![Some(1), None, Some(-3)])), true),
        ("tags", tags(&[Some(vec!["x"]), None, Some(vec!["y", "z"])]), true),
    ])]);
    let expected = Converter::new(table()).arrow_ipc(&page).unwrap();
    // Sixteen offsets from one allocation meet every alignment up to 16, whatever the allocation's.
    let mut bytes = vec![0_u8; page.len() + 16];
    for offset in 0..16 {
        bytes[offset..offset + page.len()].copy_from_slice(&page);
        let batches = Converter::new(table()).arrow_ipc(&bytes[offset..offset + page.len()]).unwrap();
        assert_eq!(batches, expected, "page at offset {offset}");
        let n = batches[0].column(1).as_primitive::<Int64Type>();
        assert_eq!(n.values().as_ptr().align_offset(8), 0, "page at offset {offset}");
        assert_eq!(n.value(2), -3);
    }
}
