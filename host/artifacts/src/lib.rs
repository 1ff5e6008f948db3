//! Connector components built from this workspace for `wasm32-wasip2`, each packaged with
//! its manifest, embedded as bytes: the `weir` binary and the Python package bundle
//! [`AIRTABLE`], and the tests load [`HOSTILE`] (contract 0.1.0) and [`SHARDS`] (a partitioned
//! 0.2.0 table). `cargo build` builds them; nothing else is needed but the target
//! (`rustup target add wasm32-wasip2`).
//!
//! ```
//! assert!(weir_artifacts::AIRTABLE.starts_with(b"\0asm"));
//! ```
//!
//! Which component a connection runs (bundled, installed, or a signed file) is decided by
//! `weir_vet::component::load`.

include!(concat!(env!("OUT_DIR"), "/components.rs"));

/// The bundled connectors, by the name a connection's `connector` key uses.
pub const BUNDLED: &[(&str, &[u8])] = &[("airtable", AIRTABLE)];
