//! The lock file, `connectors/weir.lock`: what the connector store holds and what the user
//! approved, in the spirit of `wkg.lock` (TOML, a format version, one entry per package with
//! its versions and digests).
//!
//! It is the store's single source of truth: a component file that the lock does not list
//! (left by a crash between writing the file and writing the lock) does not exist for weir.
//! It is rewritten whole and atomically on every change.
//!
//! ```toml
//! version = 1
//!
//! [[connectors]]
//! name = "airtable"
//! pinned = "0.2.0"
//! previous = ["0.1.0"]
//!
//! [[connectors.versions]]
//! version = "0.2.0"
//! sha256 = "9f2c…"
//! source = "oci://127.0.0.1:5000/weir/airtable@sha256:41d0…"
//! approved = true
//! signers = [{ name = "alice", key_id = "58fb94a6933f01b8b7707a8b" }]
//!
//! [connectors.versions.capabilities]
//! contract = "lakeflow:connect@0.1.0"
//! network = ["{base_url}"]
//! …
//! ```

use serde::{Deserialize, Serialize};

use crate::diff::Capabilities;

/// The lock file's name inside the `connectors` folder.
pub const LOCK_FILE: &str = "weir.lock";
/// The format version this weir writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Why the lock file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the lock file connectors/{LOCK_FILE} is not valid TOML for weir: {0}")]
    Parse(String),
    #[error(
        "the lock file connectors/{LOCK_FILE} has format version {0}; this weir reads version {FORMAT_VERSION}"
    )]
    Version(u32),
    #[error("cannot write the lock file: {0}")]
    Serialize(String),
}

/// The whole lock file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    pub version: u32,
    #[serde(default)]
    pub connectors: Vec<LockedConnector>,
}

/// One connector name: its pin, its pin history, and its installed versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedConnector {
    pub name: String,
    /// The version that `connector = "NAME"` runs; none means the bundled one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<String>,
    /// Earlier pins, oldest first; `weir connector rollback` returns to the last one.
    #[serde(default)]
    pub previous: Vec<String>,
    #[serde(default)]
    pub versions: Vec<LockedVersion>,
}

/// One installed version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedVersion {
    pub version: String,
    /// SHA-256 of the component file as stored (signature included), in hex.
    pub sha256: String,
    /// Where it came from: `file:PATH` or `oci://REGISTRY/REPOSITORY@sha256:DIGEST`.
    pub source: String,
    /// Whether the user approved this version's capabilities (at install, upgrade or pin).
    pub approved: bool,
    /// The trusted keys whose signatures it carried at install; empty when it was installed
    /// unsigned, with the user's explicit permission.
    #[serde(default)]
    pub signers: Vec<Signer>,
    /// The capabilities its manifest asks for (approved when `approved` is true).
    pub capabilities: Capabilities,
}

/// A trusted key that signed a component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signer {
    /// The key's name in the trust store.
    pub name: String,
    /// The key's id, in hex.
    pub key_id: String,
}

impl Default for LockFile {
    fn default() -> Self {
        LockFile { version: FORMAT_VERSION, connectors: Vec::new() }
    }
}

impl LockFile {
    /// Parses the lock file's text.
    pub fn parse(text: &str) -> Result<LockFile, LockError> {
        let lock: LockFile = toml::from_str(text).map_err(|e| LockError::Parse(e.to_string()))?;
        if lock.version != FORMAT_VERSION {
            return Err(LockError::Version(lock.version));
        }
        Ok(lock)
    }

    /// The lock file's text.
    pub fn to_text(&self) -> Result<String, LockError> {
        let body = toml::to_string(self).map_err(|e| LockError::Serialize(e.to_string()))?;
        Ok(format!("# Written by weir: the connectors installed, pinned and approved. Do not edit.\n{body}"))
    }

    /// The entry for `name`, if any version of it is installed.
    pub fn connector(&self, name: &str) -> Option<&LockedConnector> {
        self.connectors.iter().find(|c| c.name == name)
    }

    /// The entry for `name`, created empty if missing.
    pub fn connector_mut(&mut self, name: &str) -> &mut LockedConnector {
        let index = match self.connectors.iter().position(|c| c.name == name) {
            Some(index) => index,
            None => {
                self.connectors.push(LockedConnector {
                    name: name.to_string(),
                    pinned: None,
                    previous: Vec::new(),
                    versions: Vec::new(),
                });
                self.connectors.sort_by(|a, b| a.name.cmp(&b.name));
                self.connectors.iter().position(|c| c.name == name).unwrap_or_default()
            }
        };
        &mut self.connectors[index]
    }
}

impl LockedConnector {
    /// The installed version `version`.
    pub fn version(&self, version: &str) -> Option<&LockedVersion> {
        self.versions.iter().find(|v| v.version == version)
    }

    /// The pinned version's entry.
    pub fn pinned_version(&self) -> Option<&LockedVersion> {
        self.pinned.as_deref().and_then(|v| self.version(v))
    }

    /// Pins `version`, remembering the current pin for rollback.
    pub fn pin(&mut self, version: &str) {
        if let Some(current) = self.pinned.take()
            && current != version
        {
            self.previous.push(current);
        }
        self.pinned = Some(version.to_string());
    }

    /// The installed versions' names, oldest first.
    pub fn version_names(&self) -> Vec<String> {
        self.versions.iter().map(|v| v.version.clone()).collect()
    }

    /// Keeps the versions sorted by semantic version, so listings read in order.
    pub fn sort(&mut self) {
        self.versions.sort_by(|a, b| {
            match (semver::Version::parse(&a.version), semver::Version::parse(&b.version)) {
                (Ok(a), Ok(b)) => a.cmp(&b),
                _ => a.version.cmp(&b.version),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_round_trips_through_toml() {
        let mut lock = LockFile::default();
        let entry = lock.connector_mut("airtable");
        entry.versions.push(LockedVersion {
            version: "0.1.0".into(),
            sha256: "ab".repeat(32),
            source: "file:/tmp/a.wasm".into(),
            approved: true,
            signers: vec![Signer { name: "alice".into(), key_id: "00".repeat(12) }],
            capabilities: Capabilities {
                contract: "lakeflow:connect@0.1.0".into(),
                network: vec!["{base_url}".into()],
                rate_limits: [("base:{base_id}".to_string(), 5.0)].into(),
                bounds: [("limits.memory_mib".to_string(), 128.0)].into(),
                ..Capabilities::default()
            },
        });
        entry.pin("0.1.0");
        let text = lock.to_text().unwrap();
        assert!(text.contains("[[connectors.versions]]"), "{text}");
        assert_eq!(LockFile::parse(&text).unwrap(), lock);
    }

    #[test]
    fn a_newer_format_is_refused_rather_than_misread() {
        let err = LockFile::parse("version = 2\n").unwrap_err().to_string();
        assert!(err.contains("format version 2"), "{err}");
        assert!(LockFile::parse("version = 1\nsurprise = true\n").is_err());
    }

    #[test]
    fn pinning_keeps_the_history_for_rollback() {
        let mut lock = LockFile::default();
        let c = lock.connector_mut("x");
        c.pin("0.1.0");
        c.pin("0.2.0");
        c.pin("0.2.0");
        assert_eq!((c.pinned.as_deref(), c.previous.as_slice()), (Some("0.2.0"), &["0.1.0".to_string()][..]));
    }
}
