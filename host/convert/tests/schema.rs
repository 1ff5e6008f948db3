//! Spark JSON schema <-> Arrow schema.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use weir_convert::{ConvertError, arrow_schema, spark_json};

fn one_column(spark_type: &str) -> Result<DataType, ConvertError> {
    let json = format!(
        r#"{{"type":"struct","fields":[{{"name":"c","type":{spark_type},"nullable":true,"metadata":{{}}}}]}}"#
    );
    Ok(arrow_schema(&json)?.field(0).data_type().clone())
}

#[test]
fn atomic_types_map_to_their_arrow_types() {
    let cases = [
        ("\"string\"", DataType::Utf8),
        ("\"long\"", DataType::Int64),
        ("\"integer\"", DataType::Int32),
        ("\"short\"", DataType::Int16),
        ("\"byte\"", DataType::Int8),
        ("\"float\"", DataType::Float32),
        ("\"double\"", DataType::Float64),
        ("\"boolean\"", DataType::Boolean),
        ("\"date\"", DataType::Date32),
        ("\"timestamp\"", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))),
        ("\"timestamp_ntz\"", DataType::Timestamp(TimeUnit::Microsecond, None)),
        ("\"decimal(38,2)\"", DataType::Decimal128(38, 2)),
        ("\"decimal(5, 0)\"", DataType::Decimal128(5, 0)),
        ("\"decimal\"", DataType::Decimal128(10, 0)),
        ("\"binary\"", DataType::Binary),
        ("\"null\"", DataType::Null),
        ("\"void\"", DataType::Null),
    ];
    for (spark, arrow) in cases {
        assert_eq!(one_column(spark).unwrap(), arrow, "{spark}");
    }
}

#[test]
fn the_documented_example_converts() {
    let schema = arrow_schema(
        r#"{"type":"struct","fields":[{"name":"id","type":"string","nullable":false,"metadata":{"airtable_field_id":"fldA"}},{"name":"tags","type":{"type":"array","elementType":"string","containsNull":true},"nullable":true,"metadata":{}},{"name":"price","type":"decimal(38,2)","nullable":true,"metadata":{}},{"name":"m","type":{"type":"map","keyType":"string","valueType":"long","valueContainsNull":true},"nullable":true,"metadata":{}}]}"#,
    )
    .unwrap();
    let id = schema.field(0);
    assert!(!id.is_nullable());
    assert_eq!(id.metadata().get("airtable_field_id").map(String::as_str), Some("fldA"));
    let DataType::List(item) = schema.field(1).data_type() else { panic!("tags is not a list") };
    assert_eq!(
        (item.name().as_str(), item.data_type(), item.is_nullable()),
        ("element", &DataType::Utf8, true)
    );
    let DataType::Map(entries, sorted) = schema.field(3).data_type() else { panic!("m is not a map") };
    assert!(!sorted);
    assert_eq!(entries.name(), "key_value");
    assert!(!entries.is_nullable());
    let DataType::Struct(kv) = entries.data_type() else { panic!("map entries are not a struct") };
    assert_eq!(
        (kv[0].name().as_str(), kv[0].data_type(), kv[0].is_nullable()),
        ("key", &DataType::Utf8, false)
    );
    assert_eq!(
        (kv[1].name().as_str(), kv[1].data_type(), kv[1].is_nullable()),
        ("value", &DataType::Int64, true)
    );
}

#[test]
fn containers_carry_their_nullability() {
    let list = one_column(r#"{"type":"array","elementType":"long","containsNull":false}"#).unwrap();
    let DataType::List(item) = list else { panic!() };
    assert!(!item.is_nullable());
    let map =
        one_column(r#"{"type":"map","keyType":"string","valueType":"double","valueContainsNull":false}"#)
            .unwrap();
    let DataType::Map(entries, _) = map else { panic!() };
    let DataType::Struct(kv) = entries.data_type() else { panic!() };
    assert!(!kv[1].is_nullable());
    let nested = one_column(
        r#"{"type":"struct","fields":[{"name":"a","type":"integer","nullable":false,"metadata":{"k":"v"}}]}"#,
    )
    .unwrap();
    let DataType::Struct(fields) = nested else { panic!() };
    assert!(!fields[0].is_nullable());
    assert_eq!(fields[0].metadata().get("k").map(String::as_str), Some("v"));
}

#[test]
fn non_string_metadata_is_kept_as_json_text() {
    let schema = arrow_schema(
        r#"{"type":"struct","fields":[{"name":"c","type":"string","nullable":true,"metadata":{"n":3,"o":{"a":[1,true]},"s":"x"}}]}"#,
    )
    .unwrap();
    let metadata = schema.field(0).metadata();
    assert_eq!(metadata.get("n").map(String::as_str), Some("3"));
    assert_eq!(metadata.get("o").map(String::as_str), Some(r#"{"a":[1,true]}"#));
    assert_eq!(metadata.get("s").map(String::as_str), Some("x"));
}

#[test]
fn unsupported_types_are_rejected_naming_type_and_column() {
    for (spark, name) in [
        ("\"char(3)\"", "char(3)"),
        ("\"interval\"", "interval"),
        ("\"variant\"", "variant"),
        ("\"decimal(39,2)\"", "decimal(39,2)"),
        ("\"decimal(2,3)\"", "decimal(2,3)"),
        (r#"{"type":"udt","class":"x"}"#, "udt"),
    ] {
        match one_column(spark) {
            Err(ConvertError::UnsupportedType { column, type_name }) => {
                assert_eq!((column.as_str(), type_name.as_str()), ("c", name));
            }
            other => panic!("{spark}: {other:?}"),
        }
    }
    let nested = one_column(
        r#"{"type":"array","elementType":{"type":"map","keyType":"string","valueType":"interval","valueContainsNull":true},"containsNull":true}"#,
    );
    match nested {
        Err(ConvertError::UnsupportedType { column, .. }) => assert_eq!(column, "c[].value"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_schemas_are_rejected() {
    for bad in [
        "",
        "[]",
        r#"{"type":"array","elementType":"string"}"#,
        r#"{"type":"struct"}"#,
        r#"{"type":"struct","fields":[{"type":"string"}]}"#,
        r#"{"type":"struct","fields":[{"name":"a"}]}"#,
        r#"{"type":"struct","fields":[{"name":"a","type":"string","nullable":"yes"}]}"#,
        r#"{"type":"struct","fields":[{"name":"a","type":"string"},{"name":"a","type":"long"}]}"#,
    ] {
        assert!(matches!(arrow_schema(bad), Err(ConvertError::InvalidSchema { .. })), "{bad}");
    }
}

fn every_type() -> Schema {
    let md = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
    let list = |t: DataType, n: bool| DataType::List(Arc::new(Field::new("element", t, n)));
    let map = |k: DataType, v: DataType, n: bool| {
        let kv = Fields::from(vec![Field::new("key", k, false), Field::new("value", v, n)]);
        DataType::Map(Arc::new(Field::new("key_value", DataType::Struct(kv), false)), false)
    };
    let owner = Fields::from(vec![
        Field::new("id", DataType::Utf8, false).with_metadata(md("airtable_field_id", "fldOwner")),
        Field::new("tags", list(DataType::Utf8, false), true),
    ]);
    Schema::new(vec![
        Field::new("s", DataType::Utf8, false).with_metadata(md("airtable_field_id", "fld1")),
        Field::new("l", DataType::Int64, true).with_metadata(md("comment", "{\"x\":1}")),
        Field::new("i", DataType::Int32, true),
        Field::new("sh", DataType::Int16, true),
        Field::new("b", DataType::Int8, true),
        Field::new("f", DataType::Float32, true),
        Field::new("d", DataType::Float64, true),
        Field::new("bool", DataType::Boolean, false),
        Field::new("date", DataType::Date32, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("ntz", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("dec", DataType::Decimal128(38, 2), true),
        Field::new("bin", DataType::Binary, true),
        Field::new("nothing", DataType::Null, true),
        Field::new("list", list(list(DataType::Int64, true), false), true),
        Field::new("owner", DataType::Struct(owner.clone()), true),
        Field::new("m", map(DataType::Utf8, DataType::Struct(owner), true), true),
        Field::new("m2", map(DataType::Int32, list(DataType::Float64, true), false), false),
        Field::new("empty", DataType::Struct(Fields::empty()), true),
    ])
}

#[test]
fn spark_json_round_trips_every_type_and_metadata() {
    let schema = every_type();
    let text = spark_json(&schema).unwrap();
    assert_eq!(arrow_schema(&text).unwrap(), schema);
    // And the text is stable, so `weir schema --json` output can be diffed.
    assert_eq!(spark_json(&arrow_schema(&text).unwrap()).unwrap(), text);
}

#[test]
fn spark_json_writes_what_spark_writes() {
    let spark = r#"{"type":"struct","fields":[{"name":"id","type":"string","nullable":false,"metadata":{"airtable_field_id":"fldA"}},{"name":"tags","type":{"type":"array","elementType":"string","containsNull":true},"nullable":true,"metadata":{}},{"name":"price","type":"decimal(38,2)","nullable":true,"metadata":{}},{"name":"m","type":{"type":"map","keyType":"string","valueType":"long","valueContainsNull":true},"nullable":true,"metadata":{}},{"name":"t","type":"timestamp","nullable":true,"metadata":{}}]}"#;
    assert_eq!(spark_json(&arrow_schema(spark).unwrap()).unwrap(), spark);
}

#[test]
fn spark_json_rejects_arrow_types_spark_lacks() {
    for data_type in [DataType::UInt32, DataType::LargeUtf8, DataType::Timestamp(TimeUnit::Second, None)] {
        let schema = Schema::new(vec![Field::new(
            "o",
            DataType::Struct(Fields::from(vec![Field::new("x", data_type, true)])),
            true,
        )]);
        match spark_json(&schema) {
            Err(ConvertError::UnsupportedType { column, .. }) => assert_eq!(column, "o.x"),
            other => panic!("{other:?}"),
        }
    }
}
