//! JSON Lines pages to Arrow: every coercion rule, accepted and rejected.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use weir_convert::{ConvertError, Converter, arrow_schema};

/// A converter for one column `c` of this Spark type.
fn converter(spark_type: &str, nullable: bool) -> Converter {
    let json = format!(
        r#"{{"type":"struct","fields":[{{"name":"c","type":{spark_type},"nullable":{nullable},"metadata":{{}}}}]}}"#
    );
    Converter::new(Arc::new(arrow_schema(&json).unwrap()))
}

/// Converts each value as the `c` of its own record, in one page.
fn convert(spark_type: &str, values: &[&str]) -> Result<ArrayRef, ConvertError> {
    let page: String = values.iter().map(|v| format!("{{\"c\":{v}}}\n")).collect();
    Ok(converter(spark_type, true).json_lines(page.as_bytes())?.column(0).clone())
}

/// Asserts that the value is rejected, naming column `c`, row 1 (after one good row) and the type.
fn rejects(spark_type: &str, good: &str, bad: &str) {
    match convert(spark_type, &[good, bad]) {
        Err(ConvertError::Mismatch { column, row, expected, found }) => {
            assert_eq!((column.as_str(), row), ("c", 1), "{spark_type} {bad}");
            assert_eq!(expected, spark_type.trim_matches('"'), "{bad}");
            assert!(!found.is_empty());
        }
        other => panic!("{spark_type}: {bad} was not rejected: {other:?}"),
    }
}

#[test]
fn missing_and_null_are_null_in_nullable_columns() {
    let batch = converter("\"long\"", true).json_lines(b"{\"c\":null}\n{}\n{\"c\":1}\n").unwrap();
    let c = batch.column(0);
    assert_eq!((c.is_null(0), c.is_null(1), c.is_null(2)), (true, true, false));
}

#[test]
fn non_nullable_columns_reject_null_and_missing() {
    for (page, found) in
        [(&b"{\"c\":\"a\"}\n{\"c\":null}\n"[..], "null"), (b"{\"c\":\"a\"}\n{\"d\":1}\n", "no value")]
    {
        match converter("\"string\"", false).json_lines(page) {
            Err(ConvertError::NullInNonNullable { column, row, found: f, .. }) => {
                assert_eq!((column.as_str(), row, f.as_str()), ("c", 1, found));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn strings_take_scalars_as_text_and_containers_as_compact_json() {
    let c = convert(
        "\"string\"",
        &[r#""plain""#, "12", "1.5", "true", r#"{"b": [1, "x"], "a": null}"#, "[1, 2]"],
    )
    .unwrap();
    let c = c.as_string::<i32>();
    let values: Vec<&str> = (0..c.len()).map(|i| c.value(i)).collect();
    // Key order is the record's, not sorted, and no Python repr (no single quotes, no None).
    assert_eq!(values, ["plain", "12", "1.5", "true", r#"{"b":[1,"x"],"a":null}"#, "[1,2]"]);
}

#[test]
fn integers_accept_whole_numbers_and_integer_strings() {
    let c = convert("\"long\"", &["1", "-9223372036854775808", "3.0", "\"42\"", "1e3"]).unwrap();
    assert_eq!(c.as_primitive::<Int64Type>().values(), &[1, i64::MIN, 3, 42, 1000]);
    let c = convert("\"integer\"", &["2147483647", "\"-2147483648\""]).unwrap();
    assert_eq!(c.as_primitive::<Int32Type>().values(), &[i32::MAX, i32::MIN]);
    let c = convert("\"short\"", &["-32768", "7.0"]).unwrap();
    assert_eq!(c.as_primitive::<Int16Type>().values(), &[i16::MIN, 7]);
    let c = convert("\"byte\"", &["127"]).unwrap();
    assert_eq!(c.as_primitive::<Int8Type>().values(), &[127]);
}

#[test]
fn integers_reject_fractions_out_of_range_and_non_numbers() {
    for bad in ["3.5", "true", "\"4.0\"", "\"x\"", "9223372036854775808", "[1]", "{}"] {
        rejects("\"long\"", "1", bad);
    }
    for bad in ["2147483648", "\"-2147483649\""] {
        rejects("\"integer\"", "1", bad);
    }
    rejects("\"short\"", "1", "32768");
    rejects("\"byte\"", "1", "128");
    rejects("\"byte\"", "1", "-129");
}

#[test]
fn floats_accept_numbers_and_numeric_strings() {
    let c = convert("\"double\"", &["1.5", "2", "\"NaN\"", "\"Infinity\"", "\"-Infinity\"", "\"2.5e3\""])
        .unwrap();
    let v = c.as_primitive::<Float64Type>().values();
    assert_eq!((v[0], v[1], v[3], v[4], v[5]), (1.5, 2.0, f64::INFINITY, f64::NEG_INFINITY, 2500.0));
    assert!(v[2].is_nan());
    let c = convert("\"float\"", &["0.25", "\"-Infinity\""]).unwrap();
    assert_eq!(c.as_primitive::<Float32Type>().values(), &[0.25, f32::NEG_INFINITY]);
}

#[test]
fn floats_reject_non_numbers() {
    for bad in ["true", "\"abc\"", "\"\"", "[1.0]", "{}"] {
        rejects("\"double\"", "1", bad);
    }
    rejects("\"float\"", "1", "1e300");
}

#[test]
fn decimals_scale_exactly_rounding_half_away_from_zero() {
    let c = convert(
        "\"decimal(10,2)\"",
        &["1.005", "-1.005", "2", "0.1", "\"12345678.994\"", "\"-0.004\"", "1e2", "\"99999999.99\""],
    )
    .unwrap();
    let c = c.as_primitive::<Decimal128Type>();
    assert_eq!((c.precision(), c.scale()), (10, 2));
    assert_eq!(c.values(), &[101, -101, 200, 10, 1_234_567_899, 0, 10_000, 9_999_999_999]);
    let c = convert("\"decimal(38,0)\"", &["\"99999999999999999999999999999999999999\""]).unwrap();
    assert_eq!(c.as_primitive::<Decimal128Type>().value(0), 10_i128.pow(38) - 1);
}

#[test]
fn decimals_reject_overflow_and_non_numbers() {
    for bad in ["100000000", "\"99999999.995\"", "1e20", "\"1,5\"", "\"\"", "true", "[1]"] {
        rejects("\"decimal(10,2)\"", "1", bad);
    }
}

#[test]
fn booleans_accept_only_true_and_false() {
    let c = convert("\"boolean\"", &["true", "false", "\"TRUE\"", "\"False\""]).unwrap();
    let c = c.as_boolean();
    assert_eq!((c.value(0), c.value(1), c.value(2), c.value(3)), (true, false, true, false));
    for bad in ["1", "0", "\"yes\"", "\"\"", "\"t\"", "{}", "[]", "\"false \""] {
        rejects("\"boolean\"", "true", bad);
    }
}

#[test]
fn dates_accept_iso_dates_and_the_utc_date_of_timestamps() {
    let c = convert(
        "\"date\"",
        &["\"1970-01-01\"", "\"2024-02-29\"", "\"2024-03-01T01:00:00+02:00\"", "\"1969-12-31\""],
    )
    .unwrap();
    // 2024-03-01T01:00+02:00 is still Feb 29 in UTC.
    assert_eq!(c.as_primitive::<Date32Type>().values(), &[0, 19_782, 19_782, -1]);
    for bad in ["\"2024-02-30\"", "\"2024/01/01\"", "20240101", "\"yesterday\"", "true"] {
        rejects("\"date\"", "\"2024-01-01\"", bad);
    }
}

const T_2024: i64 = 1_704_164_645_000_000; // 2024-01-02T03:04:05Z

#[test]
fn timestamps_are_utc_instants() {
    let c = convert(
        "\"timestamp\"",
        &[
            "\"2024-01-02T03:04:05Z\"",
            "\"2024-01-02T05:04:05+02:00\"",
            "\"2024-01-02T05:04:05+0200\"",
            "\"2024-01-02T03:04:05.123456Z\"",
            "\"2024-01-02T03:04:05\"",
            "\"2024-01-02 03:04:05.5\"",
            "1704164645",
            "1704164645.25",
            "\"2024-01-02\"",
        ],
    )
    .unwrap();
    let c = c.as_primitive::<TimestampMicrosecondType>();
    assert_eq!(c.timezone(), Some("UTC"));
    assert_eq!(
        c.values(),
        &[
            T_2024,
            T_2024,
            T_2024,
            T_2024 + 123_456,
            T_2024,
            T_2024 + 500_000,
            T_2024,
            T_2024 + 250_000,
            T_2024 - (3 * 3600 + 4 * 60 + 5) * 1_000_000,
        ]
    );
    for bad in ["\"not a time\"", "\"2024-13-01T00:00:00Z\"", "true", "\"1704164645\"", "[1]"] {
        rejects("\"timestamp\"", "1", bad);
    }
}

#[test]
fn timestamp_ntz_keeps_the_wall_clock_and_drops_offsets() {
    let c = convert(
        "\"timestamp_ntz\"",
        &[
            "\"2024-01-02T03:04:05\"",
            "\"2024-01-02T03:04:05+02:00\"",
            "\"2024-01-02T03:04:05Z\"",
            "1704164645",
        ],
    )
    .unwrap();
    let c = c.as_primitive::<TimestampMicrosecondType>();
    assert_eq!(c.timezone(), None);
    assert_eq!(c.values(), &[T_2024, T_2024, T_2024, T_2024]);
    rejects("\"timestamp_ntz\"", "1", "\"soon\"");
}

#[test]
fn binary_is_padded_standard_base64() {
    let c = convert("\"binary\"", &["\"aGVsbG8=\"", "\"\"", "\"+/8=\""]).unwrap();
    let c = c.as_binary::<i32>();
    assert_eq!((c.value(0), c.value(1), c.value(2)), (&b"hello"[..], &b""[..], &[0xfb, 0xff][..]));
    for bad in ["\"aGVsbG8\"", "\"-_8=\"", "\"a b=\"", "12", "[104]"] {
        rejects("\"binary\"", "\"aA==\"", bad);
    }
}

#[test]
fn arrays_convert_elements_and_reject_non_arrays() {
    let c = convert(
        r#"{"type":"array","elementType":"long","containsNull":true}"#,
        &["[1, \"2\", null]", "[]", "null"],
    )
    .unwrap();
    let c = c.as_list::<i32>();
    assert_eq!((c.value_length(0), c.value_length(1), c.is_null(2)), (3, 0, true));
    let items = c.values().as_primitive::<Int64Type>();
    assert_eq!((items.value(0), items.value(1), items.is_null(2)), (1, 2, true));

    let page = b"{\"c\":[1]}\n{\"c\":\"1\"}\n";
    let error =
        converter(r#"{"type":"array","elementType":"long","containsNull":true}"#, true).json_lines(page);
    assert!(matches!(error, Err(ConvertError::Mismatch { column, row: 1, .. }) if column == "c"));

    let page = b"{\"c\":[1]}\n{\"c\":[2, \"x\"]}\n";
    let error =
        converter(r#"{"type":"array","elementType":"long","containsNull":true}"#, true).json_lines(page);
    assert!(matches!(error, Err(ConvertError::Mismatch { column, row: 1, .. }) if column == "c[]"));

    let page = b"{\"c\":[1, null]}\n";
    let error =
        converter(r#"{"type":"array","elementType":"long","containsNull":false}"#, true).json_lines(page);
    assert!(matches!(error, Err(ConvertError::NullInNonNullable { column, row: 0, .. }) if column == "c[]"));
}

const OWNER: &str = r#"{"type":"struct","fields":[{"name":"id","type":"string","nullable":false,"metadata":{}},{"name":"name","type":"string","nullable":true,"metadata":{}}]}"#;

#[test]
fn structs_convert_by_field_and_mask_children_of_null_structs() {
    let c = convert(OWNER, &[r#"{"id":"usr1","name":"Ann"}"#, r#"{"id":"usr2"}"#, "null"]).unwrap();
    let c = c.as_struct();
    assert!(c.is_null(2));
    let ids = c.column(0).as_string::<i32>();
    assert_eq!((ids.value(0), ids.value(1)), ("usr1", "usr2"));
    assert!(c.column(1).is_null(1));

    match convert(OWNER, &[r#"{"id":"usr1"}"#, r#"{"name":"no id"}"#]) {
        Err(ConvertError::NullInNonNullable { column, row, .. }) => {
            assert_eq!((column.as_str(), row), ("c.id", 1))
        }
        other => panic!("{other:?}"),
    }
    rejects_path(OWNER, r#"{"id":"usr1"}"#, "\"usr1\"", "c");
    let counted = r#"{"type":"struct","fields":[{"name":"n","type":"long","nullable":true,"metadata":{}}]}"#;
    rejects_path(counted, r#"{"n":1}"#, r#"{"n":true}"#, "c.n");
}

fn rejects_path(spark_type: &str, good: &str, bad: &str, path: &str) {
    match convert(spark_type, &[good, bad]) {
        Err(ConvertError::Mismatch { column, row, .. }) => {
            assert_eq!((column.as_str(), row), (path, 1), "{bad}")
        }
        other => panic!("{bad}: {other:?}"),
    }
}

#[test]
fn maps_keep_record_order_and_convert_keys_and_values() {
    let spark = r#"{"type":"map","keyType":"string","valueType":"long","valueContainsNull":true}"#;
    let c = convert(spark, &[r#"{"b":1,"a":"2","z":null}"#, "{}", "null"]).unwrap();
    let c = c.as_map();
    assert_eq!((c.value_length(0), c.value_length(1), c.is_null(2)), (3, 0, true));
    let keys = c.keys().as_string::<i32>();
    assert_eq!((keys.value(0), keys.value(1), keys.value(2)), ("b", "a", "z"));
    let values = c.values().as_primitive::<Int64Type>();
    assert_eq!((values.value(0), values.value(1), values.is_null(2)), (1, 2, true));
    rejects_path(spark, "{}", "[1]", "c");
    rejects_path(spark, "{}", r#"{"k":"x"}"#, "c.value");

    let int_keys = r#"{"type":"map","keyType":"integer","valueType":"string","valueContainsNull":true}"#;
    let c = convert(int_keys, &[r#"{"7":"seven"}"#]).unwrap();
    assert_eq!(c.as_map().keys().as_primitive::<Int32Type>().value(0), 7);
    rejects_path(int_keys, "{}", r#"{"seven":"7"}"#, "c.key");
}

#[test]
fn null_columns_take_only_nulls() {
    let c = convert("\"void\"", &["null", "null"]).unwrap();
    assert_eq!(c.logical_null_count(), 2);
    rejects("\"void\"", "null", "1");
}

#[test]
fn unknown_fields_are_counted_by_path_across_pages() {
    let schema = format!(
        r#"{{"type":"struct","fields":[{{"name":"id","type":"string","nullable":false,"metadata":{{}}}},{{"name":"owner","type":{OWNER},"nullable":true,"metadata":{{}}}},{{"name":"people","type":{{"type":"array","elementType":{OWNER},"containsNull":true}},"nullable":true,"metadata":{{}}}}]}}"#
    );
    let mut converter = Converter::new(Arc::new(arrow_schema(&schema).unwrap()));
    let page = br#"{"id":"a","extra":1,"owner":{"id":"u","avatar":"x"}}
{"id":"b","extra":null,"people":[{"id":"u","email":"e"},{"id":"v","email":"f"}]}
{"id":"c","owner":{"id":"u"}}
"#;
    let batch = converter.json_lines(page).unwrap();
    assert_eq!(batch.num_rows(), 3);
    converter.json_lines(b"{\"id\":\"d\",\"extra\":2,\"owner\":{\"id\":\"u\",\"avatar\":\"y\"}}").unwrap();
    let counts: Vec<(&str, u64)> = converter.unknown_fields().iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(counts, [("extra", 3), ("owner.avatar", 2), ("people[].email", 2)]);
}

#[test]
fn pages_skip_blank_lines_and_reject_non_objects_by_row() {
    let mut converter = converter("\"long\"", true);
    let batch = converter.json_lines(b"\n{\"c\":1}\r\n   \n{\"c\":2}").unwrap();
    assert_eq!(batch.column(0).as_primitive::<Int64Type>().values(), &[1, 2]);
    assert_eq!(converter.json_lines(b"").unwrap().num_rows(), 0);
    for page in [&b"{\"c\":1}\n[1]\n"[..], b"{\"c\":1}\n{\"c\":\n", b"{\"c\":1}\n\"s\"\n"] {
        assert!(matches!(converter.json_lines(page), Err(ConvertError::NotARecord { row: 1, .. })));
    }
    // A number beyond a double's range is not JSON a record can hold, whatever its column.
    let list_of_doubles = r#"{"type":"array","elementType":"double","containsNull":true}"#;
    for column in ["\"long\"", "\"double\"", "\"string\"", list_of_doubles] {
        let page = if column == list_of_doubles {
            "{\"c\":[1]}\n{\"c\":[1e400]}\n"
        } else {
            "{\"c\":1}\n{\"c\":1e400}\n"
        };
        let result = self::converter(column, true).json_lines(page.as_bytes());
        assert!(matches!(result, Err(ConvertError::NotARecord { row: 1, .. })), "{column}: {result:?}");
    }
}

#[test]
fn text_columns_take_strings_as_written_and_other_values_as_compact_json() {
    let column = convert(
        "\"string\"",
        &[r#""plain""#, r#""esc\"aped\u00e9""#, "1.50", "true", r#"{"a": [1, 2]}"#, "null"],
    )
    .unwrap();
    let text = column.as_string::<i32>();
    let got: Vec<Option<&str>> = text.iter().collect();
    assert_eq!(
        got,
        [Some("plain"), Some("esc\"apedé"), Some("1.5"), Some("true"), Some(r#"{"a":[1,2]}"#), None]
    );
    match converter("\"string\"", false).json_lines(b"{\"c\":\"x\"}\n{}\n") {
        Err(ConvertError::NullInNonNullable { row: 1, found, .. }) => assert_eq!(found, "no value"),
        other => panic!("{other:?}"),
    }
    match converter("\"string\"", false).json_lines(b"{\"c\":null}\n") {
        Err(ConvertError::NullInNonNullable { row: 0, found, .. }) => assert_eq!(found, "null"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn errors_show_a_short_excerpt_not_the_record() {
    let long = format!("\"{}\"", "y".repeat(10_000));
    let error = convert("\"boolean\"", &[&long]).unwrap_err();
    let text = error.to_string();
    assert!(text.starts_with("row 0, column `c`: expected boolean, found \"yyy"), "{text}");
    assert!(text.len() < 200, "{text}");
    assert!(text.ends_with('…'), "{text}");
}

/// A 20-column table shaped like an Airtable export, with every kind of column.
fn twenty_columns() -> String {
    let types = [
        ("id", "\"string\"", false),
        ("created", "\"timestamp\"", false),
        ("name", "\"string\"", true),
        ("notes", "\"string\"", true),
        ("count", "\"long\"", true),
        ("rating", "\"integer\"", true),
        ("small", "\"short\"", true),
        ("tiny", "\"byte\"", true),
        ("score", "\"double\"", true),
        ("ratio", "\"float\"", true),
        ("price", "\"decimal(38,2)\"", true),
        ("done", "\"boolean\"", true),
        ("due", "\"date\"", true),
        ("local", "\"timestamp_ntz\"", true),
        ("blob", "\"binary\"", true),
        ("tags", r#"{"type":"array","elementType":"string","containsNull":true}"#, true),
        ("owner", OWNER, true),
        ("attrs", r#"{"type":"map","keyType":"string","valueType":"double","valueContainsNull":true}"#, true),
        ("formula", "\"string\"", true),
        ("links", r#"{"type":"array","elementType":"string","containsNull":false}"#, true),
    ];
    let fields: Vec<String> = types
        .iter()
        .map(|(n, t, nullable)| {
            format!(r#"{{"name":"{n}","type":{t},"nullable":{nullable},"metadata":{{}}}}"#)
        })
        .collect();
    format!(r#"{{"type":"struct","fields":[{}]}}"#, fields.join(","))
}

fn record(i: usize) -> String {
    format!(
        r#"{{"id":"rec{i}","created":"2024-01-02T03:04:{s:02}.000Z","name":"Row {i}","notes":"line\nbreak","count":{i},"rating":"{r}","small":-{i},"tiny":{t},"score":{i}.5,"ratio":0.5,"price":"{i}.125","done":{done},"due":"2024-02-{d:02}","local":"2024-01-02T03:04:05","blob":"aGk=","tags":["a","b"],"owner":{{"id":"usr{i}","name":"N"}},"attrs":{{"w":1.5}},"formula":{{"specialValue":"NaN"}},"links":["rec1"]}}"#,
        s = i % 60,
        r = i % 5,
        t = i % 100,
        done = i.is_multiple_of(2),
        d = i % 28 + 1,
    )
}

#[test]
fn a_twenty_column_mixed_page_converts() {
    let mut converter = Converter::new(Arc::new(arrow_schema(&twenty_columns()).unwrap()));
    let mut page: String = (0..100).map(|i| record(i) + "\n").collect();
    // A sparse record, as Airtable sends when cells are empty.
    page.push_str("{\"id\":\"recEmpty\",\"created\":\"2024-01-02T03:04:05Z\"}\n");
    let batch: RecordBatch = converter.json_lines(page.as_bytes()).unwrap();
    assert_eq!((batch.num_rows(), batch.num_columns()), (101, 20));
    assert_eq!(batch.schema(), *converter.schema());
    assert_eq!(batch.column(0).as_string::<i32>().value(7), "rec7");
    assert_eq!(batch.column(10).as_primitive::<Decimal128Type>().value(7), 713);
    assert_eq!(batch.column(18).as_string::<i32>().value(0), r#"{"specialValue":"NaN"}"#);
    for column in 2..20 {
        assert!(batch.column(column).is_null(100), "column {column} of the sparse record");
        assert_eq!(batch.column(column).null_count(), 1, "column {column}");
    }
    assert!(converter.unknown_fields().is_empty());
}

#[test]
fn converting_many_pages_is_fast_enough_to_not_notice() {
    // A sanity check that conversion does not degrade badly (e.g. quadratically), not a benchmark:
    // 200 pages of 100 rows must convert, and to the same result each time.
    let mut converter = Converter::new(Arc::new(arrow_schema(&twenty_columns()).unwrap()));
    let page: String = (0..100).map(|i| record(i) + "\n").collect();
    let first = converter.json_lines(page.as_bytes()).unwrap();
    for _ in 0..200 {
        assert_eq!(converter.json_lines(page.as_bytes()).unwrap(), first);
    }
}

#[test]
fn each_unknown_field_is_logged_once_at_warn() {
    use std::io::Write;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);
    impl Write for Log {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let mut converter = converter("\"long\"", true);
        converter.json_lines(b"{\"c\":1,\"x\":1}\n{\"c\":2,\"x\":2,\"y\":3}\n").unwrap();
        converter.json_lines(b"{\"x\":1}\n").unwrap();
    });
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("WARN") && lines[0].contains("column=x"), "{text}");
    assert!(lines[1].contains("column=y"), "{text}");
}

/// Keys are compared unescaped, a repeated key keeps its last value (as serde_json's own maps
/// do), and an unknown key with an escape is counted under its unescaped name, once per record
/// however often the record repeats it.
#[test]
fn escaped_and_repeated_keys_read_as_their_text() {
    let mut c = converter("\"long\"", true);
    let page = "{\"\\u0063\":1}\n{\"c\":2,\"c\":3}\n{\"c\":4,\"n\\u00e9w\":5}\n\
                {\"x\":1,\"c\":5,\"x\":2,\"n\u{e9}w\":0,\"x\":3}\n";
    let batch = c.json_lines(page.as_bytes()).unwrap();
    let values: Vec<_> = batch.column(0).as_primitive::<Int64Type>().iter().collect();
    assert_eq!(values, [Some(1), Some(3), Some(4), Some(5)]);
    let counts: Vec<_> = c.unknown_fields().iter().map(|(k, n)| (k.as_str(), *n)).collect();
    assert_eq!(counts, [("néw", 2), ("x", 1)]);
}

#[test]
fn nested_objects_keep_the_last_of_a_repeated_key_however_wide() {
    let spark = r#"{"type":"struct","fields":[{"name":"a","type":"long","nullable":true,"metadata":{}},{"name":"b","type":"string","nullable":true,"metadata":{}}]}"#;
    // Objects of a few members are searched, wider ones indexed: both keep the last value.
    let wide: String = (0..40).map(|i| format!("\"k{i}\":{i},")).collect();
    let mut c = converter(spark, true);
    let page = format!(
        "{{\"c\":{{\"a\":1,\"a\":2,\"b\":\"x\",\"z\":0,\"z\":1}}}}\n\
         {{\"c\":{{{wide}\"a\":3,\"b\":\"y\",\"a\":4,\"k1\":9}}}}\n\
         {{\"c\":{{\"b\":\"\\u0041\",\"\\u0062\":\"B\"}}}}\n"
    );
    let batch = c.json_lines(page.as_bytes()).unwrap();
    let c_struct = batch.column(0).as_struct();
    let a: Vec<_> = c_struct.column(0).as_primitive::<Int64Type>().iter().collect();
    let b: Vec<_> = c_struct.column(1).as_string::<i32>().iter().collect();
    assert_eq!(a, [Some(2), Some(4), None]);
    assert_eq!(b, [Some("x"), Some("y"), Some("B")]);
    let counts: Vec<_> = c.unknown_fields().iter().map(|(k, n)| (k.as_str(), *n)).collect();
    // Each unknown key once per object that holds it.
    assert_eq!(counts.iter().find(|(k, _)| *k == "c.z"), Some(&("c.z", 1)));
    assert_eq!(counts.iter().find(|(k, _)| *k == "c.k1"), Some(&("c.k1", 1)));
    assert_eq!(counts.len(), 41);

    // A map keeps a repeated key once, in its first place, with its last value.
    let spark = r#"{"type":"map","keyType":"string","valueType":"long","valueContainsNull":true}"#;
    let wide_map = format!("{{{wide}\"k0\":100}}");
    let m = convert(spark, &[r#"{"b":1,"a":2,"b":3}"#, &wide_map]).unwrap();
    let m = m.as_map();
    assert_eq!((m.value_length(0), m.value_length(1)), (2, 40));
    let keys: Vec<_> = m.keys().as_string::<i32>().iter().flatten().collect();
    assert_eq!(&keys[..3], ["b", "a", "k0"]);
    let values: Vec<_> = m.values().as_primitive::<Int64Type>().iter().flatten().collect();
    assert_eq!(&values[..4], [3, 2, 100, 1]);
}
