//! Prints what the converter spends a row on Arrow IPC pages shaped like the Airtable connector's
//! (issue 12): 100 rows of `SKU Candidates`' kinds (texts, decimals, times, lists of text, objects
//! of three texts, a checkbox), one page converted over and over by one converter, as the host
//! converts a table's pages. Figures only, never asserted.
//!
//! ```sh
//! cargo run --release -p weir-convert --example ipc_figures
//! ```

use std::sync::Arc;
use std::time::Instant;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, BooleanArray, Decimal128Array, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, SchemaRef};
use weir_convert::{Converter, arrow_schema};

const ROWS: usize = 100;
const PAGES: usize = 20_000;

fn field(name: &str, spark_type: &str) -> String {
    format!(r#"{{"name":"{name}","type":{spark_type},"nullable":true,"metadata":{{}}}}"#)
}

/// The table: an id, a created time and the kinds of `SKU Candidates`' 23 columns.
fn table() -> SchemaRef {
    let person = format!(
        r#"{{"type":"struct","fields":[{},{},{}]}}"#,
        field("id", r#""string""#),
        field("email", r#""string""#),
        field("name", r#""string""#)
    );
    let mut fields = vec![field("id", r#""string""#), field("created_time", r#""timestamp""#)];
    fields.extend((0..11).map(|i| field(&format!("text{i}"), r#""string""#)));
    fields.extend((0..4).map(|i| field(&format!("number{i}"), r#""decimal(38,4)""#)));
    fields.extend((0..2).map(|i| field(&format!("time{i}"), r#""timestamp""#)));
    let list = r#"{"type":"array","elementType":"string","containsNull":true}"#;
    fields.extend((0..3).map(|i| field(&format!("list{i}"), list)));
    fields.extend((0..3).map(|i| field(&format!("person{i}"), &person)));
    fields.push(field("ready", r#""boolean""#));
    let spark = format!(r#"{{"type":"struct","fields":[{}]}}"#, fields.join(","));
    Arc::new(arrow_schema(&spark).expect("the table's schema converts"))
}

fn texts(what: &str) -> ArrayRef {
    Arc::new(StringArray::from_iter_values((0..ROWS).map(|i| format!("{what} {i}, some text"))))
}

fn column(data_type: &DataType) -> ArrayRef {
    match data_type {
        DataType::Utf8 => texts("text"),
        DataType::Timestamp(_, zone) => Arc::new(
            TimestampMicrosecondArray::from_iter_values((0..ROWS as i64).map(|i| i * 60_000_000))
                .with_timezone_opt(zone.clone()),
        ),
        DataType::Decimal128(precision, scale) => Arc::new(
            Decimal128Array::from_iter_values((0..ROWS as i128).map(|i| i * 1999))
                .with_precision_and_scale(*precision, *scale)
                .expect("a decimal type"),
        ),
        DataType::Boolean => Arc::new(BooleanArray::from_iter((0..ROWS).map(|i| Some(i % 3 == 0)))),
        DataType::List(item) => {
            let mut list = ListBuilder::new(StringBuilder::new()).with_field(item.clone());
            for i in 0..ROWS {
                list.values().append_value(format!("rec{i:014}"));
                list.values().append_value("Retail");
                list.append(true);
            }
            Arc::new(list.finish())
        }
        DataType::Struct(members) => Arc::new(StructArray::new(
            members.clone(),
            members.iter().map(|m| texts(m.name())).collect(),
            None,
        )),
        other => unreachable!("the table has no {other} column"),
    }
}

fn main() {
    let table = table();
    let columns = table.fields().iter().map(|f| column(f.data_type())).collect();
    let batch = RecordBatch::try_new(table.clone(), columns).expect("a page");
    let mut page = Vec::new();
    let mut writer = StreamWriter::try_new(&mut page, &table).expect("a stream");
    writer.write(&batch).expect("a page");
    writer.finish().expect("a stream");
    drop(writer);

    let mut converter = Converter::new(table);
    println!("one {ROWS}-row page of {} bytes, {PAGES} times a round:", page.len());
    for round in 1..=3 {
        let start = Instant::now();
        for _ in 0..PAGES {
            std::hint::black_box(converter.arrow_ipc(&page).expect("the page converts"));
        }
        let per_row = start.elapsed().as_secs_f64() * 1e6 / (PAGES * ROWS) as f64;
        println!("round {round}: {per_row:.3} µs a row");
    }
}
