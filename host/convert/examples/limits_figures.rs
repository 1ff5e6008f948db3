//! Prints what the converter spends on two hostile inputs of issue 9, for BENCHMARKS.md: wide
//! schemas (conversion must be linear) and a page of empty records against a wide schema (refused at
//! `max_cells`). Figures only, never asserted.
//!
//! ```sh
//! cargo run --release -p weir-convert --example limits_figures
//! ```

use std::sync::Arc;
use std::time::Instant;

use weir_convert::{Converter, Limits, arrow_schema, arrow_schema_with_limits, spark_json};

fn wide_spark(n: usize) -> String {
    let fields: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"name":"c{i}","type":"long","nullable":true,"metadata":{{}}}}"#))
        .collect();
    format!(r#"{{"type":"struct","fields":[{}]}}"#, fields.join(","))
}

fn main() {
    let mut limits = Limits::default();
    limits.max_schema_fields = 1_000_000;
    for n in [10_000, 60_000, 240_000, 1_000_000] {
        let text = wide_spark(n);
        let start = Instant::now();
        let schema = arrow_schema_with_limits(&text, &limits).expect("a valid schema");
        let to_arrow = start.elapsed();
        let start = Instant::now();
        let back = spark_json(&schema).expect("writable");
        let to_spark = start.elapsed();
        println!(
            "schema of {n} fields ({} MB): arrow_schema {to_arrow:?}, spark_json {to_spark:?} ({} MB)",
            text.len() / 1_000_000,
            back.len() / 1_000_000
        );
    }

    let fields: Vec<String> = (0..300).map(|i| format!(r#"{{"name":"c{i}","type":"long"}}"#)).collect();
    let schema =
        arrow_schema(&format!(r#"{{"type":"struct","fields":[{}]}}"#, fields.join(","))).expect("valid");
    let page = "{}\n".repeat(2_500_000);
    let start = Instant::now();
    let result = Converter::new(Arc::new(schema)).json_lines(page.as_bytes());
    println!(
        "7.5 MB of {{}} lines, 300 columns: {:?} after {:?}",
        result.map(|b| b.num_rows()).map_err(|e| e.to_string()),
        start.elapsed()
    );
}
