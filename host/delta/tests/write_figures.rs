//! Figures, not checks: what a cdc first load costs with and without the append path.
//!
//! ```sh
//! cargo test --workspace --test write_figures -- --ignored --nocapture
//! ```
//!
//! Writes the same rows (an Airtable-like id, five columns, a sequence) in commits of 50,000 three
//! ways: Append; Upsert into an empty table (a first load: appended while every key is new); and
//! Upsert into a table that already holds a row (MERGE on every commit, what every first load
//! did before). Built in the test profile, so the figures compare with each other, not with the
//! release figures in BENCHMARKS.md.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use weir_delta::{Checkpoint, DeltaSink, WriteMode};

const COMMIT: usize = 50_000;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, true),
        Field::new("price", DataType::Float64, true),
        Field::new("units", DataType::Int64, true),
        Field::new("notes", DataType::Utf8, true),
        Field::new("seq", DataType::Int64, true),
    ]))
}

fn batch(schema: &SchemaRef, from: usize, n: usize) -> RecordBatch {
    let ids = (from..from + n).map(|i| format!("rec{:014x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(ids)),
        Arc::new(StringArray::from_iter_values((from..from + n).map(|i| format!("Product {i}")))),
        Arc::new(StringArray::from_iter_values(
            (from..from + n).map(|i| ["Idea", "Approved", "Launched"][i % 3]),
        )),
        Arc::new(Float64Array::from_iter_values((from..from + n).map(|i| i as f64 * 0.25))),
        Arc::new(Int64Array::from_iter_values((from..from + n).map(|i| i as i64 % 1000))),
        Arc::new(StringArray::from_iter_values(
            (from..from + n).map(|i| format!("note {i} about this product")),
        )),
        Arc::new(Int64Array::from_iter_values((from..from + n).map(|i| i as i64))),
    ];
    RecordBatch::try_new(schema.clone(), columns).unwrap()
}

async fn load(uri: &str, mode: &WriteMode, rows: usize, seeded: bool) -> f64 {
    let s = schema();
    let mut sink = DeltaSink::open(uri, s.clone(), mode).await.unwrap();
    let mut version = 0;
    let checkpoint = |version: i64| Checkpoint {
        app_id: "figures".into(),
        version,
        offset: format!("{{\"n\":{version}}}"),
        connector: None,
    };
    if seeded {
        // One row under another key: the table is not empty, so nothing can be appended.
        version += 1;
        sink.commit(vec![batch(&s, usize::MAX / 2, 1)], &WriteMode::Append, &checkpoint(version))
            .await
            .unwrap();
        sink = DeltaSink::open(uri, s.clone(), mode).await.unwrap();
    }
    let started = Instant::now();
    for from in (0..rows).step_by(COMMIT) {
        version += 1;
        sink.commit(vec![batch(&s, from, COMMIT.min(rows - from))], mode, &checkpoint(version))
            .await
            .unwrap();
    }
    started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints figures; run with --ignored --nocapture"]
async fn print_first_load_figures() {
    let upsert = WriteMode::Upsert { keys: vec!["id".into()], sequence_by: Some("seq".into()) };
    for rows in [100_000, 200_000, 400_000] {
        let mut line = format!("{rows:>7} rows in commits of {COMMIT}:");
        for (name, mode, seeded) in [
            ("append", &WriteMode::Append, false),
            ("upsert, first load", &upsert, false),
            ("upsert, MERGE every commit", &upsert, true),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let uri = dir.path().join("t").to_str().unwrap().to_string();
            let seconds = load(&uri, mode, rows, seeded).await;
            line.push_str(&format!("  {name} {seconds:.2} s ({:.0} rows/s);", rows as f64 / seconds));
        }
        println!("{line}");
    }
}
