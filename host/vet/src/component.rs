//! The component a connection's `connector = "…"` names, checked before anything compiles it:
//! every front end (the command line, the Python package, a long-running service) loads
//! connectors through [`load`], so the same rules hold everywhere.
//!
//! | `connector =` | what runs | checked how |
//! |---|---|---|
//! | `"path/x.wasm"` | that file | signed by a trusted key, or the connection allows unsigned connectors |
//! | `"airtable@0.2.0"` | that installed version | the lock's sha256 and today's trust store |
//! | `"airtable"` | the pinned installed version, else the bundled one | as above; bundled connectors are trusted as part of weir |

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Error;
use crate::lock::Signer;

/// Where a component came from, and on whose word it runs.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum Origin {
    /// Built into weir, trusted as part of it.
    Bundled { name: String },
    /// An installed version from the connector store.
    Store { name: String, version: String, sha256: String, signers: Vec<Signer>, unsigned: bool },
    /// A file named by the connection.
    Path { path: PathBuf, name: String, version: String, signers: Vec<Signer>, unsigned: bool },
}

impl Origin {
    /// True when no trusted key signed it and it runs only because the user allowed it:
    /// every command running it must say so.
    pub fn unsigned(&self) -> bool {
        match self {
            Origin::Bundled { .. } => false,
            Origin::Store { unsigned, .. } | Origin::Path { unsigned, .. } => *unsigned,
        }
    }

    /// The warning to show when the component is unsigned.
    pub fn unsigned_warning(&self) -> Option<String> {
        match self {
            Origin::Path { path, name, version, unsigned: true, .. } => Some(format!(
                "running connector {name} {version} from {}, which no trusted key signed \
                 (the connection allows unsigned connectors)",
                path.display()
            )),
            Origin::Store { name, version, unsigned: true, .. } => {
                Some(format!("running connector {name} {version}, installed unsigned"))
            }
            _ => None,
        }
    }
}

/// A component's bytes, ready for the runtime, and where they came from.
#[derive(Debug, Clone)]
pub struct Component {
    pub bytes: Cow<'static, [u8]>,
    pub origin: Origin,
}

/// The sha256 of the component `reference` names now, without verifying or compiling it: a
/// cheap way to notice that a pin moved or a file changed (see [`load`] for what runs).
pub fn fingerprint(root: &Path, reference: &str, relative_to: &Path) -> Result<String, Error> {
    if reference.ends_with(".wasm") {
        let path = relative_to.join(reference);
        let bytes = std::fs::read(&path).map_err(|source| Error::Io {
            what: format!("read connector component {}", path.display()),
            source,
        })?;
        return Ok(weir_runtime::http::sha256_hex(&bytes));
    }
    let resolved = match root.join("connectors").exists() || reference.contains('@') {
        true => crate::store::Store::open(root)?.resolve(reference)?,
        false => None,
    };
    match (resolved, weir_artifacts::BUNDLED.iter().find(|(name, _)| *name == reference)) {
        (Some(resolved), _) => Ok(resolved.sha256),
        (None, Some((_, bytes))) => Ok(weir_runtime::http::sha256_hex(bytes)),
        (None, None) => Err(Error::UnknownConnector {
            reference: reference.to_string(),
            bundled: weir_artifacts::BUNDLED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// The component `reference` names (see the module docs). `relative_to` anchors a relative
/// path (the connections file's folder); `root` is the weir home with the store and trust.
pub fn load(
    root: &Path,
    reference: &str,
    relative_to: &Path,
    allow_unsigned: bool,
) -> Result<Component, Error> {
    if reference.ends_with(".wasm") {
        let path = relative_to.join(reference);
        let bytes = std::fs::read(&path).map_err(|source| Error::Io {
            what: format!("read connector component {}", path.display()),
            source,
        })?;
        let p = crate::commands::check_component(root, &bytes, &path.display().to_string(), allow_unsigned)?;
        let origin =
            Origin::Path { path, name: p.name, version: p.version, signers: p.signers, unsigned: p.unsigned };
        return Ok(Component { bytes: Cow::Owned(bytes), origin });
    }
    let bundled = weir_artifacts::BUNDLED.iter().find(|(name, _)| *name == reference);
    // A bare name is its pinned version when one is installed; only then the bundled one. With
    // nothing installed there is no store to open (and none is created).
    let store = match root.join("connectors").exists() || reference.contains('@') {
        true => Some(crate::store::Store::open(root)?),
        false => None,
    };
    let resolved = match &store {
        Some(store) => store.resolve(reference)?,
        None => None,
    };
    match resolved.zip(store) {
        Some((resolved, store)) => {
            let bytes = store.load(&resolved)?;
            let origin = Origin::Store {
                name: resolved.name,
                version: resolved.version,
                sha256: resolved.sha256,
                signers: resolved.signers,
                unsigned: resolved.unsigned,
            };
            Ok(Component { bytes: Cow::Owned(bytes), origin })
        }
        None => match bundled {
            Some((name, bytes)) => Ok(Component {
                bytes: Cow::Borrowed(bytes),
                origin: Origin::Bundled { name: name.to_string() },
            }),
            None => Err(Error::UnknownConnector {
                reference: reference.to_string(),
                bundled: weir_artifacts::BUNDLED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            }),
        },
    }
}
