//! Writes the seed corpora: small valid pages and schemas for each target, in `fuzz/corpus/<target>/`.
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example corpus
//! ```
//!
//! Page seeds start with the byte that picks the table (see `weir_fuzz::TABLES`). Arrow IPC seeds are
//! the JSON seeds converted and written plain, LZ4- and ZSTD-compressed, and for the first table also
//! with an extra dictionary-encoded column and with a column missing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, DictionaryArray, RecordBatch};
use arrow_ipc::CompressionType;
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};

/// JSON Lines pages per table: typical rows, the coercions, nulls, unknown fields, and bad rows.
const PAGES: [&[&str]; 3] = [
    &[
        r#"{"id":"a","l":1,"i":2,"sh":3,"b":4,"f":1.5,"d":2.5,"ok":true,"day":"2024-01-02","ts":"2024-01-02T03:04:05Z","ntz":"2024-01-02 03:04:05","dec":"12.34","bin":"aGk=","v":null}
{"id":"b"}
"#,
        r#"{"id":1,"l":"42","i":3.0,"f":"NaN","d":"-Infinity","ok":"TRUE","day":"2024-01-02T23:00:00-02:00","ts":1700000000.5,"ntz":"2024-01-02T10:00+02:00","dec":1e-3,"bin":"","extra":{"a":[1]}}

{"id":"c","ts":"2024-01-02","dec":-7,"l":-9223372036854775808}
"#,
        "{\"id\":\"x\",\"l\":1.5}\n",
        "{\"id\":null}\n[1,2]\n",
    ],
    &[
        r#"{"tags":["a",null],"owner":{"id":"o","scores":[1,2],"avatar":"x"},"m":{"k":[1.5,null]},"m2":{"7":{"a":true}},"grid":[[1.25,null],[]]}
{"tags":null,"owner":null,"m":{},"m2":null,"grid":[]}
"#,
        r#"{"owner":{"scores":[]},"grid":[]}"#,
    ],
    &[r#"{"deep":[{"x":[{"y":{"k":[["2024-01-01T00:00:00Z",null]]}}]}],"n":1}
{"deep":[],"n":null}
{"deep":null}
"#],
];

/// Schemas besides the tables: the edge cases of the format, and some it refuses.
const SCHEMAS: &[&str] = &[
    r#"{"type":"struct","fields":[]}"#,
    r#"{"type":"struct","fields":[{"name":"a","type":"decimal"}]}"#,
    r#"{"type":"struct","fields":[{"name":"a","type":"decimal(38, 0)","nullable":false,"metadata":{"n":3,"o":{"x":[1,true]},"s":"t"}}]}"#,
    r#"{"type":"struct","fields":[{"name":"e","type":{"type":"struct","fields":[]},"nullable":true,"metadata":null}]}"#,
    r#"{"type":"struct","fields":[{"name":"m","type":{"type":"map","keyType":"date","valueType":"null"}}]}"#,
    r#"{"type":"struct","fields":[{"name":"c","type":"char(3)"},{"name":"u","type":{"type":"udt","class":"x"}}]}"#,
    r#"{"type":"struct","fields":[{"name":"a","type":"long"},{"name":"a","type":"string"}]}"#,
];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut ipc = Vec::new();
    let mut json = Vec::new();
    for (table, pages) in PAGES.iter().enumerate() {
        let selector = table as u8;
        for page in pages.iter() {
            json.push(seed(selector, page.as_bytes()));
            let mut converter = weir_fuzz::converter(&seed(selector, b"")).expect("a selector").0;
            let Ok(batch) = converter.json_lines(page.as_bytes()) else { continue };
            for codec in [None, Some(CompressionType::LZ4_FRAME), Some(CompressionType::ZSTD)] {
                ipc.push(seed(selector, &stream(&[batch.clone()], codec)));
            }
            ipc.push(seed(selector, &stream(&[batch.clone(), batch.clone()], None)));
            if table == 0 {
                let labels: DictionaryArray<Int32Type> =
                    (0..batch.num_rows()).map(|i| if i % 2 == 0 { "even" } else { "odd" }).collect();
                let with_dictionary = append(&batch, "label", Arc::new(labels));
                ipc.push(seed(selector, &stream(&[with_dictionary], None)));
                let mut without_l = batch.clone();
                without_l.remove_column(1);
                ipc.push(seed(selector, &stream(&[without_l], None)));
            }
        }
    }
    let mut schemas: Vec<Vec<u8>> = weir_fuzz::TABLES.iter().map(|t| t.as_bytes().to_vec()).collect();
    schemas.extend(SCHEMAS.iter().map(|s| s.as_bytes().to_vec()));
    write(&root.join("ipc_page"), &ipc);
    write(&root.join("json_lines_page"), &json);
    write(&root.join("spark_schema"), &schemas);
}

fn seed(selector: u8, page: &[u8]) -> Vec<u8> {
    let mut out = vec![selector];
    out.extend_from_slice(page);
    out
}

fn append(batch: &RecordBatch, name: &str, column: ArrayRef) -> RecordBatch {
    let mut columns: Vec<(String, ArrayRef)> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .zip(batch.columns().iter().cloned())
        .collect();
    columns.push((name.to_string(), column));
    RecordBatch::try_from_iter(columns).expect("columns of one length")
}

fn stream(batches: &[RecordBatch], codec: Option<CompressionType>) -> Vec<u8> {
    let options =
        IpcWriteOptions::default().try_with_compression(codec).expect("a codec arrow-ipc was built with");
    let mut out = Vec::new();
    let mut writer =
        StreamWriter::try_new_with_options(&mut out, &batches[0].schema(), options).expect("a writer");
    for batch in batches {
        writer.write(batch).expect("a batch of the stream's schema");
    }
    writer.finish().expect("the end of the stream");
    drop(writer);
    out
}

fn write(folder: &PathBuf, seeds: &[Vec<u8>]) {
    std::fs::create_dir_all(folder).expect("the corpus folder");
    for (index, seed) in seeds.iter().enumerate() {
        std::fs::write(folder.join(format!("seed-{index:03}")), seed).expect("a seed file");
    }
    println!("{}: {} seeds", folder.display(), seeds.len());
}
