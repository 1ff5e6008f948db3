//! The converter's limits on schemas and JSON Lines pages: each breach is an error naming the limit,
//! reached before the host spends what the limit bounds.

use std::sync::Arc;

use arrow_schema::SchemaRef;
use weir_convert::{
    ConvertError, Converter, Limits, OTHER_UNKNOWN_FIELDS, arrow_schema, arrow_schema_with_limits, spark_json,
};

fn assert_limit<T: std::fmt::Debug>(result: Result<T, ConvertError>, name: &str) {
    match result {
        Err(error @ ConvertError::LimitExceeded { .. }) => {
            let ConvertError::LimitExceeded { limit, .. } = &error else { unreachable!() };
            assert_eq!(*limit, name);
            assert!(error.to_string().contains(name), "the message names the limit: {error}");
        }
        other => panic!("expected the limit {name}: {other:?}"),
    }
}

/// A schema of `n` nullable long columns, written the short way (flags left to Spark's defaults).
fn wide_spark(n: usize) -> String {
    let mut out = String::from(r#"{"type":"struct","fields":["#);
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(r#"{{"name":"c{i}","type":"long"}}"#));
    }
    out.push_str("]}");
    out
}

fn wide(n: usize) -> SchemaRef {
    Arc::new(arrow_schema(&wide_spark(n)).unwrap())
}

fn nested_arrays(depth: usize) -> String {
    let inner = format!(
        "{}\"long\"{}",
        r#"{"type":"array","containsNull":true,"elementType":"#.repeat(depth),
        "}".repeat(depth)
    );
    format!(
        r#"{{"type":"struct","fields":[{{"name":"deep","type":{inner},"nullable":true,"metadata":{{}}}}]}}"#
    )
}

#[test]
fn a_schema_of_200_000_fields_converts_when_allowed() {
    // Quadratic duplicate detection made 60,000 fields take seconds and 240,000 never finish.
    let mut limits = Limits::default();
    limits.max_schema_fields = 250_000;
    let text = wide_spark(200_000);
    let schema = arrow_schema_with_limits(&text, &limits).unwrap();
    assert_eq!(schema.fields().len(), 200_000);
    assert_eq!(schema.field(199_999).name(), "c199999");
    // The way back is linear too (kept smaller: serde_json is slow in debug builds).
    let schema = arrow_schema(&wide_spark(10_000)).unwrap();
    assert_eq!(arrow_schema(&spark_json(&schema).unwrap()).unwrap(), schema);
    // A duplicate is still found, however far apart.
    let duplicate = text.replace(r#""name":"c199999""#, r#""name":"c0""#);
    match arrow_schema_with_limits(&duplicate, &limits) {
        Err(ConvertError::InvalidSchema { column, message }) => {
            assert_eq!((column.as_str(), message.as_str()), ("c0", "duplicate field name"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn schemas_wider_than_the_limit_are_refused() {
    assert!(arrow_schema(&wide_spark(10_000)).is_ok());
    assert_limit(arrow_schema(&wide_spark(10_001)), "max_schema_fields");
    // Nested fields count too: 5,001 array columns are 10,002 fields with their elements.
    let arrays =
        wide_spark(5_001).replace(r#""type":"long""#, r#""type":{"type":"array","elementType":"long"}"#);
    assert_limit(arrow_schema(&arrays), "max_schema_fields");
}

#[test]
fn nesting_deeper_than_the_limit_is_refused_without_recursing() {
    assert!(arrow_schema(&nested_arrays(32)).is_ok());
    assert_limit(arrow_schema(&nested_arrays(33)), "max_depth");
    // The 120-level column that overflowed a worker's stack in the Parquet writer.
    assert_limit(arrow_schema(&nested_arrays(120)), "max_depth");
    let mut limits = Limits::default();
    limits.max_depth = 2;
    let map_of_structs = r#"{"type":"struct","fields":[{"name":"m","type":{"type":"map","keyType":"string","valueType":{"type":"struct","fields":[{"name":"a","type":{"type":"array","elementType":"long"}}]}}}]}"#;
    assert_limit(arrow_schema_with_limits(map_of_structs, &limits), "max_depth");
    limits.max_depth = 3;
    assert!(arrow_schema_with_limits(map_of_structs, &limits).is_ok());
    // Deeper than JSON's own recursion limit: refused by the parser, not a stack overflow.
    match arrow_schema(&nested_arrays(100_000)) {
        Err(ConvertError::InvalidSchema { message, .. }) => {
            assert!(message.contains("recursion"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_page_of_empty_records_against_a_wide_schema_stops_at_the_cells_limit() {
    // The issue's page: 7.5 MB of `{}` lines against 300 columns took 2.5 GB.
    let page = "{}\n".repeat(2_500_000);
    let mut converter = Converter::new(wide(300));
    assert_limit(converter.json_lines(page.as_bytes()), "max_cells");
    // Below the limit the same records convert.
    let batch = converter.json_lines("{}\n".repeat(1000).as_bytes()).unwrap();
    assert_eq!((batch.num_rows(), batch.num_columns()), (1000, 300));
}

#[test]
fn rows_are_bounded_even_without_columns() {
    let mut limits = Limits::default();
    limits.max_rows = 1000;
    let mut converter = Converter::with_limits(Arc::new(arrow_schema(&wide_spark(0)).unwrap()), limits);
    assert_eq!(converter.json_lines("{}\n".repeat(1000).as_bytes()).unwrap().num_rows(), 1000);
    assert_limit(converter.json_lines("{}\n".repeat(1001).as_bytes()), "max_rows");
}

#[test]
fn nested_values_count_against_the_cells_limit() {
    let schema = Arc::new(
        arrow_schema(
            r#"{"type":"struct","fields":[{"name":"l","type":{"type":"array","elementType":{"type":"struct","fields":[
                {"name":"a","type":"long"},{"name":"b","type":"long"},{"name":"c","type":"long"}]}}},
                {"name":"m","type":{"type":"map","keyType":"string","valueType":"long"}}]}"#,
        )
        .unwrap(),
    );
    let mut limits = Limits::default();
    limits.max_cells = 10_000;
    // One row whose list holds 5,000 empty structs: 5,000 × 4 arrays' worth of cells.
    let elements = vec!["{}"; 5_000].join(",");
    let page = format!("{{\"l\":[{elements}]}}\n");
    assert_limit(Converter::with_limits(schema.clone(), limits).json_lines(page.as_bytes()), "max_cells");
    // A map of 4,000 entries: keys, values and entries.
    let entries: Vec<String> = (0..4_000).map(|i| format!("\"k{i}\":{i}")).collect();
    let page = format!("{{\"m\":{{{}}}}}\n", entries.join(","));
    assert_limit(Converter::with_limits(schema.clone(), limits).json_lines(page.as_bytes()), "max_cells");
    // Within the limit both convert.
    let page = format!("{{\"l\":[{}],\"m\":{{\"k\":1}}}}\n", vec!["{}"; 100].join(","));
    assert_eq!(Converter::with_limits(schema, limits).json_lines(page.as_bytes()).unwrap().num_rows(), 1);
}

#[test]
fn unknown_field_names_are_bounded() {
    let mut limits = Limits::default();
    limits.max_unknown_fields = 10;
    let mut converter = Converter::with_limits(wide(1), limits);
    // A new key on every row, over two pages.
    for page in 0..2 {
        let lines: String = (0..100).map(|i| format!("{{\"c0\":1,\"x{page}_{i}\":true}}\n")).collect();
        converter.json_lines(lines.as_bytes()).unwrap();
    }
    let counts = converter.unknown_fields();
    assert_eq!(counts.len(), 11);
    assert_eq!(counts.get(OTHER_UNKNOWN_FIELDS), Some(&190));
    assert_eq!(counts.values().sum::<u64>(), 200);
}

#[test]
fn many_unknown_keys_against_a_wide_schema_are_counted_in_linear_time() {
    // Each unknown key used to be looked up by scanning the schema's fields.
    let mut converter = Converter::new(wide(10_000));
    let keys: Vec<String> = (0..20_000).map(|i| format!("\"u{i}\":1")).collect();
    let page = format!("{{{}}}\n", keys.join(","));
    converter.json_lines(page.as_bytes()).unwrap();
    assert_eq!(converter.unknown_fields().values().sum::<u64>(), 20_000);
}

#[test]
fn limits_for_a_page_cap_decompression_at_twice_the_page() {
    let limits = Limits::for_page(32 << 20);
    assert_eq!(limits.max_decompressed_bytes, 64 << 20);
    assert_eq!(Converter::with_limits(wide(1), limits).limits(), &limits);
}
