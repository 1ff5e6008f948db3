//! The trust store: the public keys whose signatures the user accepts, each under a name.
//!
//! It lives in `<weir home>/trust/`, one file per key, `NAME.pub`, in the wasmsign2 public
//! key format (so `wasmsign2 verify -K ~/.weir/trust/alice.pub` works too). It is reached
//! only through a `cap-std` directory handle and names are checked, so `weir trust add`
//! cannot write outside it. Trust is all or nothing per key: any trusted key may sign any
//! connector; the store records which key signed what.

use std::path::Path;

use cap_std::fs::Dir;
use serde::Serialize;

use crate::keys::{KeyError, KeyId, PublicKey};
use crate::names::{self, NameError};
use crate::{atomic, open_home};

/// The folder under the weir home that holds the trusted keys.
pub const TRUST_DIR: &str = "trust";
const SUFFIX: &str = ".pub";

/// Why the trust store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("a key is already trusted under the name {name:?}; run `weir trust remove {name}` first")]
    NameTaken { name: String },
    #[error("this key (id {key_id}) is already trusted as {name:?}")]
    KeyTaken { name: String, key_id: KeyId },
    #[error("no key is trusted under the name {name:?}; `weir trust list` shows the names")]
    Unknown { name: String },
    #[error("the trust store is damaged: {0}")]
    Damaged(KeyError),
    #[error("cannot {what} the trust store: {source}")]
    Io { what: String, source: std::io::Error },
}

/// One trusted key, as `weir trust list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TrustedKey {
    pub name: String,
    /// The id that signatures by this key carry.
    pub key_id: KeyId,
    #[serde(skip)]
    pub key: PublicKey,
}

/// A handle on `<weir home>/trust`.
pub struct TrustStore {
    dir: Dir,
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> TrustError + '_ {
    move |source| TrustError::Io { what: what.to_string(), source }
}

impl TrustStore {
    /// Opens (creating it if needed) the trust store under the weir home `root`.
    pub fn open(root: &Path) -> Result<TrustStore, TrustError> {
        let home = open_home(root).map_err(io("open"))?;
        home.create_dir_all(TRUST_DIR).map_err(io("create"))?;
        let dir = home.open_dir(TRUST_DIR).map_err(io("open"))?;
        Ok(TrustStore { dir })
    }

    /// Trusts `key` under `name`; a name or a key is trusted once.
    pub fn add(&self, name: &str, key: &PublicKey) -> Result<TrustedKey, TrustError> {
        names::check_name("key name", name)?;
        for trusted in self.list()? {
            if trusted.name == name {
                return Err(TrustError::NameTaken { name: name.to_string() });
            }
            if trusted.key == *key {
                return Err(TrustError::KeyTaken { name: trusted.name, key_id: trusted.key_id });
            }
        }
        atomic::write(&self.dir, &format!("{name}{SUFFIX}"), &key.to_bytes()).map_err(io("write to"))?;
        Ok(TrustedKey { name: name.to_string(), key_id: key.key_id(), key: key.clone() })
    }

    /// Every trusted key, sorted by name.
    pub fn list(&self) -> Result<Vec<TrustedKey>, TrustError> {
        let mut keys = Vec::new();
        for entry in self.dir.entries().map_err(io("list"))? {
            let entry = entry.map_err(io("list"))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else { continue };
            // Temporary files of an interrupted write start with a dot and are skipped.
            if names::check_name("key name", name).is_err() {
                continue;
            }
            let bytes = self.read_small(&format!("{name}{SUFFIX}"))?;
            let key = PublicKey::from_bytes(&bytes, &format!("{TRUST_DIR}/{name}{SUFFIX}"))
                .map_err(TrustError::Damaged)?;
            keys.push(TrustedKey { name: name.to_string(), key_id: key.key_id(), key });
        }
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(keys)
    }

    /// Stops trusting the key named `name`; components it signed are refused from then on,
    /// including those already in the connector store.
    pub fn remove(&self, name: &str) -> Result<TrustedKey, TrustError> {
        names::check_name("key name", name)?;
        let trusted = self
            .list()?
            .into_iter()
            .find(|k| k.name == name)
            .ok_or_else(|| TrustError::Unknown { name: name.to_string() })?;
        self.dir.remove_file(format!("{name}{SUFFIX}")).map_err(io("remove from"))?;
        atomic::sync_dir(&self.dir);
        Ok(trusted)
    }

    fn read_small(&self, file: &str) -> Result<Vec<u8>, TrustError> {
        use std::io::Read;
        let mut bytes = Vec::new();
        self.dir.open(file).and_then(|f| f.take(4096).read_to_end(&mut bytes)).map_err(io("read"))?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate;

    #[test]
    fn add_list_remove() {
        let home = tempfile::tempdir().unwrap();
        let trust = TrustStore::open(home.path()).unwrap();
        let (a, b) = (generate().public_key(), generate().public_key());
        trust.add("bob", &b).unwrap();
        trust.add("alice", &a).unwrap();
        let names: Vec<_> = trust.list().unwrap().into_iter().map(|k| (k.name, k.key_id)).collect();
        assert_eq!(names, [("alice".to_string(), a.key_id()), ("bob".to_string(), b.key_id())]);
        // The file is the wasmsign2 public key, as is.
        assert_eq!(std::fs::read(home.path().join("trust/alice.pub")).unwrap(), a.to_bytes());
        assert!(matches!(trust.add("alice", &generate().public_key()), Err(TrustError::NameTaken { .. })));
        assert!(matches!(trust.add("carol", &a), Err(TrustError::KeyTaken { .. })));
        assert_eq!(trust.remove("alice").unwrap().key_id, a.key_id());
        assert!(matches!(trust.remove("alice"), Err(TrustError::Unknown { .. })));
        assert_eq!(trust.list().unwrap().len(), 1);
    }

    #[test]
    fn names_cannot_leave_the_trust_folder() {
        let home = tempfile::tempdir().unwrap();
        let trust = TrustStore::open(home.path()).unwrap();
        let key = generate().public_key();
        for bad in ["../evil", "/tmp/evil", "a/b", ".."] {
            assert!(matches!(trust.add(bad, &key), Err(TrustError::Name(_))), "{bad}");
        }
        assert!(!home.path().join("evil.pub").exists());
        assert!(trust.list().unwrap().is_empty());
    }
}
