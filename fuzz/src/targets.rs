//! The fuzz targets' properties, one module per target. Each `run` takes one input and panics when
//! the property does not hold. libFuzzer drives them through `fuzz_targets/` (the `libfuzzer`
//! feature, built by `cargo fuzz`); the short run (`tests/short_run.rs`, part of the workspace's
//! tests) drives them through the committed corpora and random mutations of them.

pub mod connections;
pub mod ipc_page;
pub mod json_lines_page;
pub mod manifest;
pub mod offsets;
pub mod pipeline_spec;
pub mod redactor;
pub mod spark_schema;

/// A target's name (its corpus is `fuzz/corpus/<name>/`) and its property.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const ALL: [Target; 8] = [
    ("ipc_page", ipc_page::run),
    ("json_lines_page", json_lines_page::run),
    ("spark_schema", spark_schema::run),
    ("manifest", manifest::run),
    ("connections", connections::run),
    ("pipeline_spec", pipeline_spec::run),
    ("offsets", offsets::run),
    ("redactor", redactor::run),
];
