//! One function per command, for the `weir` binary to call with its parsed arguments:
//! plain inputs (paths, strings, flags), and a result that prints as text with `Display` and
//! as JSON with `serde_json`. `root` is the weir directory ([`crate::weir_home`] by default).
//!
//! | command | function |
//! |---|---|
//! | `weir key generate --out DIR` | [`key_generate`] |
//! | `weir sign FILE.wasm --key KEY [--out OUT.wasm]` | [`sign`] |
//! | `weir verify FILE.wasm [--key PUB]` | [`verify`] |
//! | `weir trust add PUB --name NAME` / `list` / `remove NAME` | [`trust_add`], [`trust_list`], [`trust_remove`] |
//! | `weir connector install FILE.wasm\|OCI-REF [--allow-unsigned] [--approve]` | [`connector_install`] (async) |
//! | `weir connector list [--json]` / `info NAME[@VERSION]` | [`connector_list`], [`connector_info`] |
//! | `weir connector remove NAME@VERSION` | [`connector_remove`] |
//! | `weir connector diff NAME A B` | [`connector_diff`] |
//! | `weir connector upgrade NAME --to VERSION\|FILE [--approve]` | [`connector_upgrade`] |
//! | `weir connector pin NAME@VERSION` / `rollback NAME` | [`connector_pin`], [`connector_rollback`] |
//! | `weir connector push NAME@VERSION OCI-REF` | [`connector_push`] (async) |
//!
//! For `weir run` and the hot swap: [`resolve`] (what `connector = "…"` means, reading only
//! the lock file), [`Store::load`] (read and verify before compiling), and
//! [`check_component`] (the same check for a component given by path).

use std::fmt;
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use serde::Serialize;

use crate::error::{ALLOW_UNSIGNED_HINT, Error, Refusal};
use crate::keys::{self, KeyId, PublicKey, SecretKey};
use crate::lock::Signer;
use crate::store::{
    self, ConnectorInfo, ConnectorList, InstallOptions, Installed, Pinned, Removed, Resolved, Store,
};
use crate::trust::{TrustStore, TrustedKey};
use crate::{CapabilityDiff, atomic, oci, signature};

/// The result of `weir key generate`.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratedKey {
    pub secret_key: PathBuf,
    pub public_key: PathBuf,
    pub key_id: KeyId,
}

/// The result of `weir sign`.
#[derive(Debug, Clone, Serialize)]
pub struct Signed {
    pub out: PathBuf,
    pub name: String,
    pub version: String,
    pub key_id: KeyId,
    /// The key ids of every signature the component now carries (co-signatures included).
    pub signed_by: Vec<String>,
}

/// The result of `weir verify`: the component verified, and by whom.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub file: PathBuf,
    pub name: String,
    pub version: String,
    pub signers: Vec<Signer>,
}

/// The result of `weir trust list`.
#[derive(Debug, Clone, Serialize)]
pub struct TrustList {
    pub keys: Vec<TrustedKey>,
}

/// Whether a component given by path may run, and on whose word.
#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    pub name: String,
    pub version: String,
    /// The trusted keys that signed it; empty when it runs unsigned by the user's leave.
    pub signers: Vec<Signer>,
    /// True when it is not signed by a trusted key and runs only because the user allowed
    /// unsigned connectors: every command running it must say so.
    pub unsigned: bool,
}

/// `weir key generate --out DIR`: writes `DIR/weir.key` (secret, owner-only) and `DIR/weir.pub`.
pub fn key_generate(out_dir: &Path) -> Result<GeneratedKey, Error> {
    let key = keys::generate();
    let (secret_key, public_key) = keys::write_new_pair(out_dir, &key)?;
    Ok(GeneratedKey { secret_key, public_key, key_id: key.public_key().key_id() })
}

/// `weir sign FILE.wasm --key KEY [--out OUT.wasm]`: adds a signature by `key` (a co-signature
/// if it is signed already). The component must carry its manifest, so that the signature
/// covers it. Without `out`, the file is replaced atomically.
pub fn sign(file: &Path, key: &Path, out: Option<&Path>) -> Result<Signed, Error> {
    let bytes = store::read_component_file(file)?;
    let what = file.display().to_string();
    let manifest = store::read_manifest(&bytes, &what)?;
    let secret = SecretKey::read(key)?;
    let signed = signature::sign(&bytes, &secret).map_err(|source| Error::Sign { what, source })?;
    let out = out.unwrap_or(file);
    write_file(out, &signed)?;
    Ok(Signed {
        out: out.to_path_buf(),
        name: manifest.name,
        version: manifest.version,
        key_id: secret.public_key().key_id(),
        signed_by: signature::key_ids(&signed).unwrap_or_default(),
    })
}

/// `weir verify FILE.wasm [--key PUB]`: succeeds only for a valid signature of the whole
/// component by the given key, or else by a key in the trust store.
pub fn verify(root: &Path, file: &Path, key: Option<&Path>) -> Result<Verified, Error> {
    let bytes = store::read_component_file(file)?;
    let what = file.display().to_string();
    let manifest = store::read_manifest(&bytes, &what)?;
    let what = format!("{} {} ({what})", manifest.name, manifest.version);
    let signers = match key {
        Some(path) => {
            let key = PublicKey::read(path)?;
            signature::verify(&bytes, std::slice::from_ref(&key))
                .map_err(|e| Refusal::from_signature(what, e, ""))?;
            vec![Signer { name: path.display().to_string(), key_id: key.key_id().to_string() }]
        }
        None => store::verify_trusted(&TrustStore::open(root)?, &bytes, &what, "")?,
    };
    Ok(Verified { file: file.to_path_buf(), name: manifest.name, version: manifest.version, signers })
}

/// `weir trust add PUB --name NAME`.
pub fn trust_add(root: &Path, public_key: &Path, name: &str) -> Result<TrustedKey, Error> {
    let key = PublicKey::read(public_key)?;
    Ok(TrustStore::open(root)?.add(name, &key)?)
}

/// `weir trust list`.
pub fn trust_list(root: &Path) -> Result<TrustList, Error> {
    Ok(TrustList { keys: TrustStore::open(root)?.list()? })
}

/// `weir trust remove NAME`.
pub fn trust_remove(root: &Path, name: &str) -> Result<TrustedKey, Error> {
    Ok(TrustStore::open(root)?.remove(name)?)
}

/// `weir connector install FILE.wasm|OCI-REF`: an existing file is read from disk, anything
/// else is taken for an OCI reference.
pub async fn connector_install(
    root: &Path,
    source: &str,
    options: InstallOptions,
) -> Result<Installed, Error> {
    let store = Store::open(root)?;
    let path = Path::new(source);
    if path.is_file() {
        let bytes = store::read_component_file(path)?;
        store.install(&bytes, &store::file_source(path), options)
    } else {
        store.install_oci(source, options).await
    }
}

/// `weir connector list`.
pub fn connector_list(root: &Path) -> Result<ConnectorList, Error> {
    Store::open(root)?.list()
}

/// `weir connector info NAME[@VERSION]`.
pub fn connector_info(root: &Path, connector: &str) -> Result<ConnectorInfo, Error> {
    Store::open(root)?.info(connector)
}

/// `weir connector remove NAME@VERSION`.
pub fn connector_remove(root: &Path, connector: &str) -> Result<Removed, Error> {
    Store::open(root)?.remove(connector)
}

/// `weir connector diff NAME A B` (each side an installed version or a component file).
pub fn connector_diff(root: &Path, name: &str, from: &str, to: &str) -> Result<CapabilityDiff, Error> {
    Store::open(root)?.diff(name, from, to)
}

/// `weir connector upgrade NAME --to VERSION|FILE [--approve]`.
pub fn connector_upgrade(root: &Path, name: &str, to: &str, approve: bool) -> Result<Pinned, Error> {
    Store::open(root)?.upgrade(name, to, approve)
}

/// `weir connector pin NAME@VERSION`.
pub fn connector_pin(root: &Path, connector: &str) -> Result<Pinned, Error> {
    Store::open(root)?.pin(connector)
}

/// `weir connector rollback NAME`.
pub fn connector_rollback(root: &Path, name: &str) -> Result<Pinned, Error> {
    Store::open(root)?.rollback(name)
}

/// `weir connector push NAME@VERSION OCI-REF`.
pub async fn connector_push(root: &Path, connector: &str, reference: &str) -> Result<oci::Pushed, Error> {
    Store::open(root)?.push(connector, reference).await
}

/// What a connection's `connector = "NAME[@VERSION]"` runs from the store; `None` for a bare
/// name with no pin, meaning the bundled connector.
pub fn resolve(root: &Path, connector: &str) -> Result<Option<Resolved>, Error> {
    Store::open(root)?.resolve(connector)
}

/// Checks a component given by path (not from the store) before it is compiled: it must be
/// signed by a trusted key, unless `allow_unsigned`, and then the result says it is unsigned.
pub fn check_component(
    root: &Path,
    bytes: &[u8],
    what: &str,
    allow_unsigned: bool,
) -> Result<Provenance, Error> {
    let manifest = store::read_manifest(bytes, what)?;
    let hint = if allow_unsigned { "" } else { ALLOW_UNSIGNED_HINT };
    let described = format!("{} {} ({what})", manifest.name, manifest.version);
    let signers = match store::verify_trusted(&TrustStore::open(root)?, bytes, &described, hint) {
        Ok(signers) => signers,
        Err(Error::Refused(Refusal::Unsigned { .. } | Refusal::UnknownSigner { .. })) if allow_unsigned => {
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    let unsigned = signers.is_empty();
    Ok(Provenance { name: manifest.name, version: manifest.version, signers, unsigned })
}

/// Writes a file given on the command line atomically, through a handle on its folder.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io { what: format!("write {}", path.display()), source };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "the output needs a UTF-8 file name"))
    })?;
    let dir = Dir::open_ambient_dir(parent, ambient_authority()).map_err(io)?;
    atomic::write(&dir, name, bytes).map_err(io)
}

impl fmt::Display for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "secret key: {} (keep it private)", self.secret_key.display())?;
        writeln!(f, "public key: {} (key id {})", self.public_key.display(), self.key_id)?;
        writeln!(f, "others trust it with: weir trust add {} --name NAME", self.public_key.display())
    }
}

impl fmt::Display for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "signed {} {} with key {}: {}",
            self.name,
            self.version,
            self.key_id,
            self.out.display()
        )?;
        if self.signed_by.len() > 1 {
            writeln!(
                f,
                "it now carries {} signatures (key ids {})",
                self.signed_by.len(),
                self.signed_by.join(", ")
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let by: Vec<_> = self.signers.iter().map(|s| format!("{} (key {})", s.name, s.key_id)).collect();
        writeln!(f, "{} {}: signature valid, signed by {}", self.name, self.version, by.join(", "))
    }
}

impl fmt::Display for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<24} key id {}", self.name, self.key_id)
    }
}

impl fmt::Display for TrustList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.keys.is_empty() {
            return writeln!(f, "no trusted key; `weir trust add PUB --name NAME` adds one");
        }
        self.keys.iter().try_for_each(|k| write!(f, "{k}"))
    }
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unsigned {
            writeln!(
                f,
                "warning: running {} {}, an UNSIGNED connector (allowed by allow_unsigned)",
                self.name, self.version
            )
        } else {
            let names: Vec<_> = self.signers.iter().map(|s| s.name.as_str()).collect();
            writeln!(f, "{} {} signed by {}", self.name, self.version, names.join(", "))
        }
    }
}
