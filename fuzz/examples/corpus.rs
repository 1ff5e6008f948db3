//! Writes the seed corpora: small valid inputs for each target, in `fuzz/corpus/<target>/`.
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example corpus              # every target
//! cargo run --manifest-path fuzz/Cargo.toml --example corpus -- manifest  # the targets named
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

/// The repository's own files that are seeds as they are.
const AIRTABLE_MANIFEST: &str = weir_fuzz::AIRTABLE_MANIFEST;
const HOSTILE_MANIFEST: &str = include_str!("../../tests/components/hostile/manifest.toml");
const SHARDS_MANIFEST: &str = include_str!("../../tests/components/shards/manifest.toml");
const CONNECTIONS: &str = include_str!("../../examples/connections.toml");
const PIPELINE: &str = include_str!("../../examples/pipeline.yaml");

/// A manifest of the runtime's tests, and lines that make it invalid in each way they check.
const MINIMAL_MANIFEST: &str = r#"name = "x"
version = "0.1.0"
contract = "lakeflow:connect@0.1.0"
[[parameters]]
name = "base_url"
[[parameters]]
name = "token"
secret = true
[network]
allow = ["{base_url}"]
[[auth]]
origin = "{base_url}"
header = "Authorization"
value = "Bearer {token}"
"#;
const MANIFEST_EXTRAS: &[&str] = &[
    "surprise = 1",
    "[limits]\ncall_seconds = inf",
    "[limits]\nhttp_timeout_seconds = -1.0\nmemory_mib = 0",
    "[retry]\npenalty_seconds = 1e300\nmax_attempts = 0",
    "[[rate_limits]]\nkey = \"k\"\nper_second = 1e-300",
    "[[rate_limits]]\nkey = \"base:{base}\"\nper_second = 5\npaths = [\"/v0/{base}/*\", \"/v0/meta/{base}/x/*\"]",
    "[[rate_limits]]\nkey = \"base:{other}\"\nper_second = 5\npaths = [\"/v0/*/{base}\"]",
    "capabilities = [\"partitions\"]",
];

/// Connections of the runtime's tests, resolved against the Airtable manifest.
const CONNECTION_FILES: &[&str] = &[
    "[connections.a]\nconnector = \"airtable\"\nbase_id = \"app1\"\nbearer_token = \"patSECRET\"\n",
    "[connections.e]\nconnector = \"airtable\"\nbase_id = \"app1\"\nbearer_token = { env = \"WEIR_TEST_SURELY_UNSET\" }\n",
    "[connections.a]\nconnector = \"airtable\"\nbase_id = \"a\"\nbearer_token = \"t\"\nbase = \"x\"\n",
    "[connections.a]\nconnector = \"airtable\"\nbase_id = \"a\"\n",
    "[connections.a]\nconnector = \"x\"\nallow_loopback = \"yes\"\n",
    "[other]\n",
    "[connections.a]\nconnector = \"x\"\nbearer_token = \"t\"\nallow_loopback = true\n[connections.a.limits]\nmemory_mib = 16\ncall_seconds = 2\nread_calls = 4294967295\n[connections.a.retry]\nmax_attempts = 100\npenalty_seconds = 0\n",
    "[connections.a]\nconnector = \"x\"\nbearer_token = \"t\"\n[connections.a.limits]\nmem = 1\ncall_wall_seconds = 1e300\npage_mib = -1\n",
    "[connections.a]\nconnector = \"x\"\nbearer_token = \"t\"\n[connections.a.retry]\ninitial_backoff_ms = 3600001\npenalty_seconds = nan\n",
    "[connections.a]\nconnector = \"x\"\nbearer_token = \"t\"\n[connections.a.limits]\nhttp_timeout_seconds = 0.001\npending_mib = 1048576\nread_empty_pages = 1\n",
];

/// Specs of weir-ingest's and the command line's tests.
const SPECS: &[&str] = &[
    "connection_name: airtable\nobjects:\n  - table:\n      source_table: \"SKU Candidates 🚀\"\n  - table:\n      source_table: Vendors\n      destination_catalog: main\n      destination_schema: bronze\n      destination_table: vendors_active\n      table_configuration:\n        scd_type: SCD_TYPE_2\n        primary_keys: '[\"id\"]'\n        view: Active only\n        page_size: 50\n",
    "connection_name: a\nobjects: []\nextra: 1\n",
    "connection_name: a\nobjects:\n  - table:\n      source_table: T\n      destination_table: ../../etc\n      table_configuration:\n        scd_type: SCD_TYPE_3\n",
    "connection_name: a\nobjects:\n  - table:\n      source_table: T\n  - table:\n      source_table: t\n",
    "connection_name: a\nobjects:\n  - table:\n      source_table: Vendors\n      table_configuration:\n        namespace: [appA]\n  - table:\n      source_table: Vendors\n      destination_table: vendors_b\n      table_configuration:\n        namespace: '[\"appB\"]'\n        cluster_by: id, name\n        sequence_by: 7\n        primary_keys: [id, true]\n",
    "connection_name: shards\nobjects:\n  - table:\n      source_table: events\n      table_configuration:\n        partitions: 4\n        rows: 1000\n        page_rows: 50\n",
    "{\"connection_name\":\"airtable\",\"objects\":[{\"table\":{\"source_table\":\"9 Lives\",\"destination_catalog\":\"main\",\"destination_schema\":\"bronze\",\"table_configuration\":{\"scd_type\":\"APPEND_ONLY\",\"primary_keys\":[]}}}]}",
];

/// Offsets and partition descriptors the bundled connectors write, as pairs split by a NUL byte.
const OFFSETS: &[&str] = &[
    "{\"cursor\":\"2024-01-02T03:04:05.000Z\",\"continue\":true,\"upto\":\"2024-01-02T03:05:00.000Z\"}\0{\"upto\":\"2024-01-02T03:05:00.000Z\",\"cursor\":\"2024-01-02T03:04:05.000Z\",\"continue\":true}",
    "{\"cursor\":null,\"upto\":\"2024-01-02T03:05:00.000Z\",\"max\":null,\"page\":\"itrX/recY\",\"emitted\":100,\"skip\":3}\0{\"page\":null,\"emitted\":0}",
    "{\"page\":\"itrX/recY\",\"emitted\":40,\"last\":[\"recA\",\"recB\"],\"pass\":[\"recB\"],\"before\":3}\0{\"page\":\"itrX\",\"last\":null,\"pass\":[7],\"before\":-1}",
    "{\"shard\":1,\"next\":50}\0{\"next\":50}",
    "{\"shard\":2,\"from\":0,\"to\":1000}\0{ \"to\": 1000, \"shard\": 2, \"from\": 0 }",
    "{\"rows\":[1000,1000,999,0]}\0{\"rows\":[1000,1000,999,0.0]}",
    "{\"0\":\"{\\\"next\\\":5}\",\"1\":\"{\\\"next\\\":7}\"}\0not json",
    "{\"a\":{\"b\":[{\"c\":-1.5e300,\"d\":\"\\u00e9\\n\"}]},\"a\":1}\0[]",
];

/// Secrets and texts for the redactor: the secret, a NUL, the byte that picks a form, the text.
const REDACTIONS: &[&str] = &[
    "patWeirSim.0123456789abcdef\0\x00echo: ",
    "patWeirSim.0123456789abcdef\0\x29{\"h\":\"Bearer \"}",
    "pat/abc+1xyz\0\x0aAuthorization: x",
    "pat/abc+1xyz\0\x13?token=&x=1",
    "pat/abc+1xyz\0\x1cLocation: https://example.com/",
    "pat/abc+1xyz\0\x0bx-",
    "pat/abc+1xyz\0\x05ab",
    "pat/abc+1xyz\0\x06:",
    "short\0\x01SHORT short",
    "[REDACTED]\0\x00[REDACTED]",
    "tok\u{e9}n-\u{1f680}-x\0\x04\u{e9}",
];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let only: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |target: &str| only.is_empty() || only.iter().any(|t| t == target);
    let text_seeds = |texts: &[&str]| texts.iter().map(|t| t.as_bytes().to_vec()).collect::<Vec<_>>();

    if wanted("manifest") {
        let mut texts = vec![AIRTABLE_MANIFEST, HOSTILE_MANIFEST, SHARDS_MANIFEST, MINIMAL_MANIFEST];
        let extras: Vec<String> =
            MANIFEST_EXTRAS.iter().map(|e| format!("{MINIMAL_MANIFEST}{e}\n")).collect();
        texts.extend(extras.iter().map(String::as_str));
        let mut seeds = text_seeds(&texts);
        seeds.extend(components());
        write(&root.join("manifest"), &seeds);
    }
    if wanted("connections") {
        let mut seeds = text_seeds(CONNECTION_FILES);
        seeds.push(CONNECTIONS.as_bytes().to_vec());
        write(&root.join("connections"), &seeds);
    }
    if wanted("pipeline_spec") {
        let mut seeds = text_seeds(SPECS);
        seeds.push(PIPELINE.as_bytes().to_vec());
        write(&root.join("pipeline_spec"), &seeds);
    }
    if wanted("offsets") {
        write(&root.join("offsets"), &text_seeds(OFFSETS));
    }
    if wanted("redactor") {
        write(&root.join("redactor"), &text_seeds(REDACTIONS));
    }
    if !["ipc_page", "json_lines_page", "spark_schema"].iter().any(|t| wanted(t)) {
        return;
    }

    let mut ipc = Vec::new();
    let mut json = Vec::new();
    for (table, pages) in PAGES.iter().enumerate() {
        let selector = table as u8;
        for page in pages.iter() {
            json.push(seed(selector, page.as_bytes()));
            let mut converter = weir_fuzz::converter(&seed(selector, b"")).expect("a selector").0;
            let Ok(batch) = converter.json_lines(page.as_bytes()) else { continue };
            for codec in [None, Some(CompressionType::LZ4_FRAME), Some(CompressionType::ZSTD)] {
                ipc.push(seed(selector, &stream(std::slice::from_ref(&batch), codec)));
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
    for (target, seeds) in [("ipc_page", ipc), ("json_lines_page", json), ("spark_schema", schemas)] {
        if wanted(target) {
            write(&root.join(target), &seeds);
        }
    }
}

/// Components carrying manifests: the smallest component with each real manifest, one with the
/// section twice, a core module with one, and a component whose nested module carries a second
/// manifest (which must not count).
fn components() -> Vec<Vec<u8>> {
    use weir_runtime::manifest::embed;
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";
    const EMPTY_MODULE: &[u8] = b"\0asm\x01\0\0\0";
    let mut seeds: Vec<Vec<u8>> = [AIRTABLE_MANIFEST, SHARDS_MANIFEST, MINIMAL_MANIFEST]
        .iter()
        .map(|m| embed(EMPTY_COMPONENT, m))
        .collect();
    seeds.push(EMPTY_COMPONENT.to_vec());
    seeds.push(embed(&embed(EMPTY_COMPONENT, MINIMAL_MANIFEST), SHARDS_MANIFEST));
    seeds.push(embed(EMPTY_MODULE, MINIMAL_MANIFEST));
    let module = embed(EMPTY_MODULE, SHARDS_MANIFEST);
    let mut nested = EMPTY_COMPONENT.to_vec();
    nested.push(1); // a core module section
    let mut size = module.len();
    while size >= 0x80 {
        nested.push((size & 0x7f) as u8 | 0x80);
        size >>= 7;
    }
    nested.push(size as u8);
    nested.extend_from_slice(&module);
    seeds.push(embed(&nested, MINIMAL_MANIFEST));
    seeds
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
