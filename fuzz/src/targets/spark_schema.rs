//! Spark JSON schemas: any text must convert or fail with an error, and what converts must round-trip
//! through Arrow and back to the same Spark JSON and the same Arrow schema.

/// One execution: panics when the property does not hold.
pub fn run(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else { return };
    let limits = crate::limits();
    let Ok(schema) = weir_convert::arrow_schema_with_limits(text, &limits) else { return };
    let json =
        weir_convert::spark_json(&schema).expect("every schema arrow_schema makes can be written back");
    let again =
        weir_convert::arrow_schema_with_limits(&json, &limits).expect("spark_json's output reads back");
    assert_eq!(again, schema);
    assert_eq!(weir_convert::spark_json(&again).expect("written back twice"), json);
}
