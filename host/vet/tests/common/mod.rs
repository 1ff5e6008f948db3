//! Fixtures shared by the integration tests: components built from the smallest valid
//! component plus a manifest, keys, and snapshots of a weir directory.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use weir_vet::keys::{self, SecretKey};

/// The smallest valid component: magic, component version and layer.
pub const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

/// A manifest for connector `name` at `version` that may reach `origins` (templates).
pub fn manifest(name: &str, version: &str, origins: &[&str]) -> String {
    let allow: Vec<String> = origins.iter().map(|o| format!("{o:?}")).collect();
    format!(
        r#"
name = "{name}"
version = "{version}"
contract = "lakeflow:connect@0.1.0"
[[parameters]]
name = "base_url"
[[parameters]]
name = "token"
secret = true
[network]
allow = [{}]
[[auth]]
origin = "{{base_url}}"
header = "Authorization"
value = "Bearer {{token}}"
[[rate_limits]]
key = "base"
per_second = 5
"#,
        allow.join(", ")
    )
}

/// An unsigned component carrying `manifest`.
pub fn component(manifest: &str) -> Vec<u8> {
    weir_runtime::manifest::embed(EMPTY_COMPONENT, manifest)
}

/// A component for `name@version` reaching `origins`, signed by `key`.
pub fn signed(name: &str, version: &str, origins: &[&str], key: &SecretKey) -> Vec<u8> {
    weir_vet::signature::sign(&component(&manifest(name, version, origins)), key).unwrap()
}

/// A fresh key that `root`'s trust store trusts under `name`.
pub fn trusted_key(root: &Path, name: &str) -> SecretKey {
    let key = keys::generate();
    weir_vet::TrustStore::open(root).unwrap().add(name, &key.public_key()).unwrap();
    key
}

/// A fresh weir home whose trust store trusts a new key as `alice`, and its store.
pub fn home_trusting_alice() -> (tempfile::TempDir, SecretKey, weir_vet::Store) {
    let home = tempfile::tempdir().unwrap();
    let key = trusted_key(home.path(), "alice");
    let store = weir_vet::Store::open(home.path()).unwrap();
    (home, key, store)
}

/// Every file under `root` with its bytes, to show that a refusal changed nothing. The
/// writers' lock file is empty and holds no state, so it is left out.
pub fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n != ".write-lock") {
                let relative = path.strip_prefix(root).unwrap().display().to_string();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Writes `bytes` to `dir/file` and returns the path.
pub fn write(dir: &Path, file: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, bytes).unwrap();
    path
}
