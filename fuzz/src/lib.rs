//! What the fuzz targets share: the table schemas that pages are converted against and the limits
//! they run under, the Airtable manifest that connections resolve against, and weir-ingest's spec
//! parser and partition ids, built here from their own source files.
//!
//! An input to a page target starts with one byte that picks the table (modulo [`TABLES`]'s length);
//! the rest is the page. The limits are smaller than the defaults so that each run stays fast and
//! the limit checks themselves get exercised.

use std::sync::{Arc, OnceLock};

use arrow_schema::SchemaRef;
use weir_convert::{Converter, Limits};
use weir_runtime::Manifest;

pub mod targets;

/// weir-ingest's pipeline spec, compiled from its own file: weir-ingest itself depends on deltalake
/// and DataFusion, which would multiply the fuzz build for two files that need only serde.
#[path = "../../host/ingest/src/spec.rs"]
pub mod spec;

/// weir-ingest's partition application ids, compiled from their own file for the same reason.
#[path = "../../host/ingest/src/app_id.rs"]
pub mod app_id;

/// The bundled Airtable connector's manifest, as its component carries it.
pub const AIRTABLE_MANIFEST: &str = include_str!("../../plugins/airtable/manifest.toml");

/// [`AIRTABLE_MANIFEST`], parsed once.
pub fn airtable() -> &'static Manifest {
    static MANIFEST: OnceLock<Manifest> = OnceLock::new();
    MANIFEST.get_or_init(|| {
        Manifest::parse(AIRTABLE_MANIFEST.as_bytes()).expect("the bundled Airtable manifest is valid")
    })
}

/// Spark JSON schemas of the tables pages are converted against: every scalar type, every nested
/// type, and a deep column.
pub const TABLES: [&str; 3] = [
    r#"{"type":"struct","fields":[
        {"name":"id","type":"string","nullable":false,"metadata":{"airtable_field_id":"fld1"}},
        {"name":"l","type":"long","nullable":true,"metadata":{}},
        {"name":"i","type":"integer","nullable":true,"metadata":{}},
        {"name":"sh","type":"short","nullable":true,"metadata":{}},
        {"name":"b","type":"byte","nullable":true,"metadata":{}},
        {"name":"f","type":"float","nullable":true,"metadata":{}},
        {"name":"d","type":"double","nullable":true,"metadata":{}},
        {"name":"ok","type":"boolean","nullable":true,"metadata":{}},
        {"name":"day","type":"date","nullable":true,"metadata":{}},
        {"name":"ts","type":"timestamp","nullable":true,"metadata":{}},
        {"name":"ntz","type":"timestamp_ntz","nullable":true,"metadata":{}},
        {"name":"dec","type":"decimal(18,2)","nullable":true,"metadata":{}},
        {"name":"bin","type":"binary","nullable":true,"metadata":{}},
        {"name":"v","type":"void","nullable":true,"metadata":{}}]}"#,
    r#"{"type":"struct","fields":[
        {"name":"tags","type":{"type":"array","elementType":"string","containsNull":true},"nullable":true,"metadata":{}},
        {"name":"owner","type":{"type":"struct","fields":[
            {"name":"id","type":"string","nullable":false,"metadata":{}},
            {"name":"scores","type":{"type":"array","elementType":"long","containsNull":false},"nullable":true,"metadata":{}}]},
         "nullable":true,"metadata":{}},
        {"name":"m","type":{"type":"map","keyType":"string","valueType":{"type":"array","elementType":"double","containsNull":true},"valueContainsNull":true},"nullable":true,"metadata":{}},
        {"name":"m2","type":{"type":"map","keyType":"integer","valueType":{"type":"struct","fields":[{"name":"a","type":"boolean","nullable":true,"metadata":{}}]},"valueContainsNull":false},"nullable":true,"metadata":{}},
        {"name":"grid","type":{"type":"array","elementType":{"type":"array","elementType":"decimal(38,10)","containsNull":true},"containsNull":true},"nullable":false,"metadata":{}}]}"#,
    r#"{"type":"struct","fields":[
        {"name":"deep","type":{"type":"array","elementType":{"type":"struct","fields":[
            {"name":"x","type":{"type":"array","elementType":{"type":"struct","fields":[
                {"name":"y","type":{"type":"map","keyType":"string","valueType":{"type":"array","elementType":{"type":"array","elementType":"timestamp","containsNull":true},"containsNull":true},"valueContainsNull":true},"nullable":true,"metadata":{}}]},"containsNull":true},"nullable":true,"metadata":{}}]},"containsNull":true},"nullable":true,"metadata":{}},
        {"name":"n","type":"long","nullable":true,"metadata":{}}]}"#,
];

/// Small limits: a fuzz input is at most a few KiB, so these are reached, and no input can make a
/// run slow or large.
pub fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_rows = 10_000;
    limits.max_cells = 100_000;
    limits.max_decompressed_bytes = 1 << 20;
    limits.max_schema_fields = 1_000;
    limits.max_unknown_fields = 100;
    limits
}

/// The table an input's first byte picks; converted once, not on every run.
pub fn table(selector: u8) -> SchemaRef {
    static SCHEMAS: OnceLock<Vec<SchemaRef>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        let convert =
            |text| Arc::new(weir_convert::arrow_schema(text).expect("the fuzz tables are valid schemas"));
        TABLES.iter().copied().map(convert).collect()
    });
    schemas[usize::from(selector) % schemas.len()].clone()
}

/// A converter for the table an input's first byte picks, and the rest of the input: the page.
pub fn converter(input: &[u8]) -> Option<(Converter, &[u8])> {
    let (selector, page) = input.split_first()?;
    Some((Converter::with_limits(table(*selector), limits()), page))
}
