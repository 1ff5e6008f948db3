//! Connector components built from this workspace for `wasm32-wasip2`, each packaged with
//! its manifest, embedded as bytes: the `weir` binary and the Python package bundle
//! [`AIRTABLE`], and the tests load [`HOSTILE`] (contract 0.1.0) and [`SHARDS`] (a partitioned
//! 0.2.0 table). `cargo build` builds them; nothing else is needed but the target
//! (`rustup target add wasm32-wasip2`).
//!
//! ```
//! assert!(weir_artifacts::AIRTABLE.starts_with(b"\0asm"));
//! let bytes = weir_artifacts::resolve("airtable", std::path::Path::new("."))?;
//! assert_eq!(&bytes[..], weir_artifacts::AIRTABLE);
//! # Ok::<(), weir_artifacts::ResolveError>(())
//! ```

use std::borrow::Cow;
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/components.rs"));

/// The bundled connectors, by the name a connection's `connector` key uses.
pub const BUNDLED: &[(&str, &[u8])] = &[("airtable", AIRTABLE)];

/// Why a connector reference names no component.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "connector {reference:?} is neither a bundled connector ({bundled}) nor a path to a .wasm file"
    )]
    Unknown { reference: String, bundled: String },
    #[error("cannot read connector component {}: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
}

/// The component a connection's `connector` names: a bundled connector's name, or a path to a
/// `.wasm` file (relative to `relative_to`, the connections file's folder).
pub fn resolve(reference: &str, relative_to: &Path) -> Result<Cow<'static, [u8]>, ResolveError> {
    if let Some((_, bytes)) = BUNDLED.iter().find(|(name, _)| *name == reference) {
        return Ok(Cow::Borrowed(bytes));
    }
    if !reference.ends_with(".wasm") {
        return Err(ResolveError::Unknown {
            reference: reference.to_string(),
            bundled: BUNDLED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
        });
    }
    let path = relative_to.join(reference);
    std::fs::read(&path).map(Cow::Owned).map_err(|error| ResolveError::Read { path, error })
}
