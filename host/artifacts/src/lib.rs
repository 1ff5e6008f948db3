//! Connector components built from this workspace for `wasm32-wasip2`, each packaged with
//! its manifest, embedded as bytes: the `weir` binary bundles [`AIRTABLE`], and the tests
//! load [`HOSTILE`]. `cargo build` builds them; nothing else is needed but the target
//! (`rustup target add wasm32-wasip2`).
//!
//! ```
//! assert!(weir_artifacts::AIRTABLE.starts_with(b"\0asm"));
//! ```

include!(concat!(env!("OUT_DIR"), "/components.rs"));

/// The bundled connectors, by the name a connection's `connector` key uses.
pub const BUNDLED: &[(&str, &[u8])] = &[("airtable", AIRTABLE)];
