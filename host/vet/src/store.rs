//! The connector store: installed connector versions under `<weir home>/connectors`, which
//! one is pinned, and what the user approved.
//!
//! Layout: `connectors/weir.lock` (see [`crate::lock`]) and one file per version,
//! `connectors/NAME/VERSION.wasm`, the component exactly as installed (signature included).
//! Everything is reached through a `cap-std` handle on `connectors/`, and names and versions
//! are checked first, so nothing a command or a manifest says can touch a file outside it.
//!
//! Every change takes the store's exclusive lock, checks everything, and only then writes:
//! first the component file (atomically), then the lock file (atomically). A refusal returns
//! before the first write, so it changes nothing; a crash between the two writes leaves a
//! component file that the lock does not list, which weir ignores and a later install
//! overwrites.
//!
//! Reading the lock file is the cheap way to learn what is pinned: [`Store::resolve`] does
//! nothing else, so a long run can call it between two commits and compare the `sha256` it
//! returns to notice a new pin. [`Store::load`] then reads the component and verifies it
//! (digest against the lock, signature against the trust store as it is now) before the
//! caller compiles anything.

use std::fmt;
use std::io::Read;
use std::path::Path;

use cap_std::fs::Dir;
use serde::Serialize;
use sha2::{Digest, Sha256};
use weir_runtime::manifest::Manifest;

use crate::diff::{self, Capabilities, CapabilityDiff};
use crate::error::{ALLOW_UNSIGNED_HINT, Error, Refusal};
use crate::lock::{LOCK_FILE, LockFile, LockedVersion, Signer};
use crate::names::{self, ConnectorRef};
use crate::trust::TrustStore;
use crate::{atomic, oci, open_home, signature};

/// The folder under the weir home that holds the store.
pub const CONNECTORS_DIR: &str = "connectors";
/// The file that serializes writers.
const WRITE_LOCK: &str = ".write-lock";
/// The largest component file read into memory, from the store or from a path.
pub const MAX_COMPONENT_BYTES: u64 = oci::MAX_COMPONENT_BYTES;

/// What the user allows at install.
#[derive(Debug, Clone, Copy, Default)]
pub struct InstallOptions {
    /// Accept a component that no trusted key signed (never one whose signature is broken).
    pub allow_unsigned: bool,
    /// Approve its capabilities, including an auth rule that sends a secret to a fixed origin.
    pub approve: bool,
}

/// A handle on the connector store and the trust store beside it.
pub struct Store {
    dir: Dir,
    trust: TrustStore,
}

/// A component that passed every check, not yet written.
struct Candidate {
    name: String,
    version: String,
    sha256: String,
    signers: Vec<Signer>,
    capabilities: Capabilities,
}

/// One installed version, as `list`, `info` and `resolve` report it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub source: String,
    pub pinned: bool,
    pub approved: bool,
    /// Empty when it was installed unsigned.
    pub signers: Vec<Signer>,
    pub capabilities: Capabilities,
}

/// The result of `weir connector install`.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    #[serde(flatten)]
    pub connector: VersionInfo,
    /// True when this exact component was installed before (nothing was written).
    pub already_installed: bool,
}

/// The result of `weir connector list`.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorList {
    pub connectors: Vec<VersionInfo>,
}

/// The result of `weir connector info`.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorInfo {
    pub name: String,
    pub pinned: Option<String>,
    /// Earlier pins, oldest first.
    pub previous: Vec<String>,
    pub versions: Vec<VersionInfo>,
}

/// The result of `weir connector remove`.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    pub name: String,
    pub version: String,
    /// True when the removed version was pinned: the name now runs the bundled version.
    pub was_pinned: bool,
}

/// The result of `weir connector pin`, `rollback` and `upgrade`.
#[derive(Debug, Clone, Serialize)]
pub struct Pinned {
    pub name: String,
    pub version: String,
    pub previous: Option<String>,
    /// The capability change from the previous pin, when there was one.
    pub diff: Option<CapabilityDiff>,
}

/// What `connector = "NAME[@VERSION]"` stands for in the store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resolved {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub signers: Vec<Signer>,
    /// True when it was installed unsigned: say so whenever it runs.
    pub unsigned: bool,
    pub capabilities: Capabilities,
}

/// An upgrade's target: a version in the store, or a component file.
enum Target {
    Installed(LockedVersion),
    File { source: String, bytes: Vec<u8> },
}

impl Store {
    /// Opens (creating them if needed) the store and the trust store under the weir home.
    pub fn open(root: &Path) -> Result<Store, Error> {
        let io = |what: &str| {
            let what = format!("{what} the connector store in {}", root.display());
            move |source| Error::Io { what, source }
        };
        let home = open_home(root).map_err(io("open"))?;
        home.create_dir_all(CONNECTORS_DIR).map_err(io("create"))?;
        let dir = home.open_dir(CONNECTORS_DIR).map_err(io("open"))?;
        Ok(Store { dir, trust: TrustStore::open(root)? })
    }

    /// The trust store beside this connector store.
    pub fn trust(&self) -> &TrustStore {
        &self.trust
    }

    /// Installs a component from its bytes; `source` says where they came from, as the lock
    /// records it (`file:PATH` or `oci://REF`), and is what a refusal tells the user to pass
    /// again. The first version of a name is pinned; later ones wait for `upgrade` or `pin`.
    pub fn install(&self, bytes: &[u8], source: &str, options: InstallOptions) -> Result<Installed, Error> {
        let hint = if options.allow_unsigned { "" } else { ALLOW_UNSIGNED_HINT };
        let candidate = self.vet(bytes, source, options.allow_unsigned, hint)?;
        let leaks: Vec<String> = candidate
            .capabilities
            .fixed_origin_secrets()
            .map(|a| format!("+ auth {}", describe_auth(a)))
            .collect();
        if !leaks.is_empty() && !options.approve {
            return Err(Refusal::FixedOriginSecret {
                what: format!("{} {}", candidate.name, candidate.version),
                lines: leaks,
                command: format!("weir connector install {} --approve", source_argument(source)),
            }
            .into());
        }
        let _writer = self.exclusive()?;
        let mut lock = self.read_lock()?;
        if let Some(existing) = lock.connector(&candidate.name).and_then(|c| c.version(&candidate.version)) {
            if existing.sha256 != candidate.sha256 {
                return Err(Refusal::Conflict {
                    name: candidate.name,
                    version: candidate.version,
                    installed: existing.sha256.clone(),
                    offered: candidate.sha256,
                }
                .into());
            }
            let pinned = lock.connector(&candidate.name).and_then(|c| c.pinned.clone());
            return Ok(Installed {
                connector: version_info(&candidate.name, existing, pinned.as_deref()),
                already_installed: true,
            });
        }
        self.write_component(&candidate.name, &candidate.version, bytes)?;
        let entry = lock.connector_mut(&candidate.name);
        let first = entry.pinned.is_none();
        let locked = LockedVersion {
            version: candidate.version.clone(),
            sha256: candidate.sha256,
            source: source.to_string(),
            approved: first || options.approve,
            signers: candidate.signers,
            capabilities: candidate.capabilities,
        };
        entry.versions.push(locked.clone());
        entry.sort();
        if first {
            entry.pin(&candidate.version);
        }
        let pinned = entry.pinned.clone();
        self.write_lock(&lock)?;
        Ok(Installed {
            connector: version_info(&candidate.name, &locked, pinned.as_deref()),
            already_installed: false,
        })
    }

    /// Pulls a Wasm OCI artifact, checks its digests, and installs it like a file; the lock
    /// records the reference pinned by the manifest's digest.
    pub async fn install_oci(&self, reference: &str, options: InstallOptions) -> Result<Installed, Error> {
        let reference = oci::Reference::parse(reference)?;
        let pulled = oci::pull(&reference).await?;
        self.install(&pulled.bytes, &format!("oci://{}", pulled.pinned), options)
    }

    /// Publishes an installed version as a Wasm OCI artifact.
    pub async fn push(&self, connector: &str, reference: &str) -> Result<oci::Pushed, Error> {
        let (name, version) = ConnectorRef::parse_exact(connector)?;
        let reference = oci::Reference::parse(reference)?;
        let resolved = self.resolve_exact(&name, &version)?;
        let bytes = self.load(&resolved)?;
        let annotations = [
            ("org.opencontainers.image.title".to_string(), name),
            ("org.opencontainers.image.version".to_string(), version),
        ]
        .into();
        Ok(oci::push(&reference, &bytes, &annotations).await?)
    }

    /// Every installed version of every connector.
    pub fn list(&self) -> Result<ConnectorList, Error> {
        let lock = self.read_lock()?;
        let connectors = lock
            .connectors
            .iter()
            .flat_map(|c| c.versions.iter().map(|v| version_info(&c.name, v, c.pinned.as_deref())))
            .collect();
        Ok(ConnectorList { connectors })
    }

    /// One connector (`NAME`: all its versions) or one version (`NAME@VERSION`).
    pub fn info(&self, connector: &str) -> Result<ConnectorInfo, Error> {
        let r = ConnectorRef::parse(connector)?;
        let lock = self.read_lock()?;
        let not_installed = || Refusal::NotInstalled {
            name: r.name.clone(),
            version: r.version.clone().unwrap_or_else(|| "(any version)".into()),
            installed: installed_versions(&lock, &r.name),
        };
        let entry = lock.connector(&r.name).ok_or_else(not_installed)?;
        let versions: Vec<VersionInfo> = entry
            .versions
            .iter()
            .filter(|v| r.version.as_ref().is_none_or(|want| *want == v.version))
            .map(|v| version_info(&entry.name, v, entry.pinned.as_deref()))
            .collect();
        if versions.is_empty() {
            return Err(not_installed().into());
        }
        Ok(ConnectorInfo {
            name: entry.name.clone(),
            pinned: entry.pinned.clone(),
            previous: entry.previous.clone(),
            versions,
        })
    }

    /// Removes one version. Removing the pinned version unpins the name, which then runs
    /// the bundled connector (the result says so).
    pub fn remove(&self, connector: &str) -> Result<Removed, Error> {
        let (name, version) = ConnectorRef::parse_exact(connector)?;
        let _writer = self.exclusive()?;
        let mut lock = self.read_lock()?;
        self.require_installed(&lock, &name, &version)?;
        let entry = lock.connector_mut(&name);
        entry.versions.retain(|v| v.version != version);
        entry.previous.retain(|v| *v != version);
        let was_pinned = entry.pinned.as_deref() == Some(version.as_str());
        if was_pinned {
            entry.pinned = None;
        }
        if entry.versions.is_empty() {
            lock.connectors.retain(|c| c.name != name);
        }
        self.write_lock(&lock)?;
        // The lock no longer lists it, so it is gone for weir even if deleting fails.
        if let Ok(dir) = self.dir.open_dir(&name) {
            let _ = dir.remove_file(format!("{version}.wasm"));
            drop(dir);
            let _ = self.dir.remove_dir(&name);
        }
        Ok(Removed { name, version, was_pinned })
    }

    /// The capability change between two versions of `name`; each side is an installed
    /// version or a component file (read, not installed).
    pub fn diff(&self, name: &str, from: &str, to: &str) -> Result<CapabilityDiff, Error> {
        names::check_name("connector name", name)?;
        let lock = self.read_lock()?;
        let side = |text: &str| -> Result<(String, Capabilities), Error> {
            Ok(match self.target(&lock, name, text)? {
                Target::Installed(v) => (v.version.clone(), v.capabilities),
                Target::File { bytes, source } => {
                    let manifest = read_manifest(&bytes, &source)?;
                    check_same_connector(&manifest, name, &source)?;
                    (format!("{} ({source})", manifest.version), Capabilities::of(&manifest))
                }
            })
        };
        let ((from_label, old), (to_label, new)) = (side(from)?, side(to)?);
        let mut d = diff::diff(&old, &new);
        d.from = format!("{name} {from_label}");
        d.to = format!("{name} {to_label}");
        Ok(d)
    }

    /// Moves the pin of `name` to `to` (an installed version, or a component file, which is
    /// verified and installed). An upgrade that asks for more than the current pin was
    /// approved for is refused unless `approve` is given; removals pass.
    pub fn upgrade(&self, name: &str, to: &str, approve: bool) -> Result<Pinned, Error> {
        names::check_name("connector name", name)?;
        let _writer = self.exclusive()?;
        let mut lock = self.read_lock()?;
        let current = lock
            .connector(name)
            .and_then(|c| c.pinned_version())
            .cloned()
            .ok_or_else(|| Refusal::NothingPinned { name: name.to_string() })?;
        let (target, bytes) = match self.target(&lock, name, to)? {
            Target::Installed(v) => (v, None),
            Target::File { source, bytes } => {
                // A file given to upgrade must be signed by a trusted key: there is no
                // `--allow-unsigned` on this path.
                let candidate = self.vet(&bytes, &source, false, "")?;
                if candidate.name != name {
                    return Err(Refusal::WrongConnector {
                        file: source,
                        found: candidate.name,
                        name: name.to_string(),
                    }
                    .into());
                }
                match lock.connector(name).and_then(|c| c.version(&candidate.version)) {
                    Some(existing) if existing.sha256 == candidate.sha256 => (existing.clone(), None),
                    Some(existing) => {
                        return Err(Refusal::Conflict {
                            name: name.to_string(),
                            version: candidate.version,
                            installed: existing.sha256.clone(),
                            offered: candidate.sha256,
                        }
                        .into());
                    }
                    None => {
                        let locked = LockedVersion {
                            version: candidate.version,
                            sha256: candidate.sha256,
                            source,
                            approved: false,
                            signers: candidate.signers,
                            capabilities: candidate.capabilities,
                        };
                        (locked, Some(bytes))
                    }
                }
            }
        };
        let mut d = diff::diff(&current.capabilities, &target.capabilities);
        d.from = format!("{name} {}", current.version);
        d.to = format!("{name} {}", target.version);
        if d.needs_approval && !approve && !target.approved {
            return Err(Refusal::Unapproved {
                name: name.to_string(),
                from: current.version.clone(),
                to: target.version.clone(),
                lines: d.widening_lines(),
                command: format!("weir connector upgrade {name} --to {to} --approve"),
            }
            .into());
        }
        if let Some(bytes) = bytes {
            self.write_component(name, &target.version, &bytes)?;
        }
        let entry = lock.connector_mut(name);
        match entry.versions.iter_mut().find(|v| v.version == target.version) {
            Some(v) => v.approved = true,
            None => entry.versions.push(LockedVersion { approved: true, ..target.clone() }),
        }
        entry.sort();
        entry.pin(&target.version);
        self.write_lock(&lock)?;
        Ok(Pinned {
            name: name.to_string(),
            version: target.version,
            previous: Some(current.version),
            diff: Some(d),
        })
    }

    /// Pins an installed version. A version never approved that asks for more than the
    /// current pin is refused, as an upgrade would be: pinning is no way around review.
    pub fn pin(&self, connector: &str) -> Result<Pinned, Error> {
        let (name, version) = ConnectorRef::parse_exact(connector)?;
        let _writer = self.exclusive()?;
        let mut lock = self.read_lock()?;
        let target = self.require_installed(&lock, &name, &version)?.clone();
        let current = lock.connector(&name).and_then(|c| c.pinned_version()).cloned();
        let d = current.as_ref().map(|current| {
            let mut d = diff::diff(&current.capabilities, &target.capabilities);
            d.from = format!("{name} {}", current.version);
            d.to = format!("{name} {version}");
            d
        });
        if let (Some(d), Some(current)) = (&d, &current)
            && d.needs_approval
            && !target.approved
        {
            return Err(Refusal::Unapproved {
                name: name.clone(),
                from: current.version.clone(),
                to: version.clone(),
                lines: d.widening_lines(),
                command: format!("weir connector upgrade {name} --to {version} --approve"),
            }
            .into());
        }
        let entry = lock.connector_mut(&name);
        entry.pin(&version);
        if let Some(v) = entry.versions.iter_mut().find(|v| v.version == version) {
            v.approved = true;
        }
        self.write_lock(&lock)?;
        Ok(Pinned { name, version, previous: current.map(|c| c.version), diff: d })
    }

    /// Pins the previously pinned version again (skipping any removed since).
    pub fn rollback(&self, name: &str) -> Result<Pinned, Error> {
        names::check_name("connector name", name)?;
        let _writer = self.exclusive()?;
        let mut lock = self.read_lock()?;
        let nothing = || Refusal::NothingToRollBack { name: name.to_string() };
        let entry = lock.connectors.iter_mut().find(|c| c.name == name).ok_or_else(nothing)?;
        let current = entry.pinned_version().cloned();
        let target = loop {
            let candidate = entry.previous.pop().ok_or_else(nothing)?;
            if entry.version(&candidate).is_some() {
                break candidate;
            }
        };
        entry.pinned = Some(target.clone());
        let d = match (&current, entry.version(&target)) {
            (Some(current), Some(target_entry)) => {
                let mut d = diff::diff(&current.capabilities, &target_entry.capabilities);
                d.from = format!("{name} {}", current.version);
                d.to = format!("{name} {target}");
                Some(d)
            }
            _ => None,
        };
        self.write_lock(&lock)?;
        Ok(Pinned { name: name.to_string(), version: target, previous: current.map(|c| c.version), diff: d })
    }

    /// Resolves a connection's `connector` value: `NAME` is its pinned version, or `None`
    /// (the caller then uses the bundled connector); `NAME@VERSION` must be installed. Reads
    /// only the lock file.
    pub fn resolve(&self, connector: &str) -> Result<Option<Resolved>, Error> {
        let r = ConnectorRef::parse(connector)?;
        match r.version {
            Some(version) => self.resolve_exact(&r.name, &version).map(Some),
            None => {
                let lock = self.read_lock()?;
                Ok(lock.connector(&r.name).and_then(|c| c.pinned_version()).map(|v| resolved(&r.name, v)))
            }
        }
    }

    fn resolve_exact(&self, name: &str, version: &str) -> Result<Resolved, Error> {
        let lock = self.read_lock()?;
        Ok(resolved(name, self.require_installed(&lock, name, version)?))
    }

    /// Reads a resolved component and checks it before anything compiles it: its bytes must
    /// match the lock's sha256, and a signed one must still verify with a trusted key (so
    /// `weir trust remove` also stops components already installed).
    pub fn load(&self, resolved: &Resolved) -> Result<Vec<u8>, Error> {
        let path = format!("{}/{}.wasm", resolved.name, resolved.version);
        let bytes = {
            let mut bytes = Vec::new();
            self.dir
                .open(&path)
                .and_then(|f| f.take(MAX_COMPONENT_BYTES + 1).read_to_end(&mut bytes))
                .map_err(|source| Error::Io { what: format!("read {CONNECTORS_DIR}/{path}"), source })?;
            bytes
        };
        let found = sha256_hex(&bytes);
        if found != resolved.sha256 {
            return Err(Refusal::ChangedOnDisk {
                name: resolved.name.clone(),
                version: resolved.version.clone(),
                expected: resolved.sha256.clone(),
                found,
            }
            .into());
        }
        if !resolved.unsigned {
            verify_trusted(&self.trust, &bytes, &format!("{} {}", resolved.name, resolved.version), "")?;
        }
        Ok(bytes)
    }

    /// Checks a component's manifest, names and signature; writes nothing.
    fn vet(
        &self,
        bytes: &[u8],
        source: &str,
        allow_unsigned: bool,
        hint: &'static str,
    ) -> Result<Candidate, Error> {
        let manifest = read_manifest(bytes, source)?;
        names::check_name("connector name", &manifest.name)?;
        names::check_version(&manifest.version)?;
        let what = format!("{} {} from {source}", manifest.name, manifest.version);
        let signers = match verify_trusted(&self.trust, bytes, &what, hint) {
            Ok(signers) => signers,
            Err(Error::Refused(Refusal::Unsigned { .. } | Refusal::UnknownSigner { .. }))
                if allow_unsigned =>
            {
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        Ok(Candidate {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            sha256: sha256_hex(bytes),
            signers,
            capabilities: Capabilities::of(&manifest),
        })
    }

    /// Resolves an upgrade or diff argument: an installed version of `name`, else a file.
    fn target(&self, lock: &LockFile, name: &str, text: &str) -> Result<Target, Error> {
        let is_version = names::check_version(text).is_ok();
        if is_version && let Some(v) = lock.connector(name).and_then(|c| c.version(text)) {
            return Ok(Target::Installed(v.clone()));
        }
        let path = Path::new(text);
        if path.is_file() {
            let source = file_source(path);
            return Ok(Target::File { bytes: read_component_file(path)?, source });
        }
        if is_version {
            return Err(not_installed(lock, name, text));
        }
        Err(Error::Io {
            what: format!("read {text} (neither an installed version of {name} nor a component file)"),
            source: std::io::ErrorKind::NotFound.into(),
        })
    }

    fn require_installed<'l>(
        &self,
        lock: &'l LockFile,
        name: &str,
        version: &str,
    ) -> Result<&'l LockedVersion, Error> {
        names::check_name("connector name", name)?;
        names::check_version(version)?;
        lock.connector(name)
            .and_then(|c| c.version(version))
            .ok_or_else(|| not_installed(lock, name, version))
    }

    fn read_lock(&self) -> Result<LockFile, Error> {
        let mut text = String::new();
        match self.dir.open(LOCK_FILE) {
            Ok(file) => file
                .take(64 << 20)
                .read_to_string(&mut text)
                .map_err(|source| Error::Io { what: format!("read {CONNECTORS_DIR}/{LOCK_FILE}"), source })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LockFile::default()),
            Err(source) => {
                return Err(Error::Io { what: format!("open {CONNECTORS_DIR}/{LOCK_FILE}"), source });
            }
        };
        Ok(LockFile::parse(&text)?)
    }

    fn write_lock(&self, lock: &LockFile) -> Result<(), Error> {
        atomic::write(&self.dir, LOCK_FILE, lock.to_text()?.as_bytes())
            .map_err(|source| Error::Io { what: format!("write {CONNECTORS_DIR}/{LOCK_FILE}"), source })
    }

    fn write_component(&self, name: &str, version: &str, bytes: &[u8]) -> Result<(), Error> {
        let io = |source| Error::Io { what: format!("write {CONNECTORS_DIR}/{name}/{version}.wasm"), source };
        self.dir.create_dir_all(name).map_err(io)?;
        let dir = self.dir.open_dir(name).map_err(io)?;
        atomic::write(&dir, &format!("{version}.wasm"), bytes).map_err(io)
    }

    fn exclusive(&self) -> Result<atomic::Exclusive, Error> {
        atomic::Exclusive::take(&self.dir, WRITE_LOCK).map_err(|source| Error::Io {
            what: format!("lock the connector store ({CONNECTORS_DIR}/{WRITE_LOCK})"),
            source,
        })
    }
}

/// The trusted keys that signed `bytes`, or the refusal naming `what`; `hint` says how to
/// accept an unsigned component where that is allowed.
pub fn verify_trusted(
    trust: &TrustStore,
    bytes: &[u8],
    what: &str,
    hint: &'static str,
) -> Result<Vec<Signer>, Error> {
    let trusted = trust.list()?;
    let keys: Vec<_> = trusted.iter().map(|t| t.key.clone()).collect();
    let signed_by =
        signature::verify(bytes, &keys).map_err(|e| Refusal::from_signature(what.to_string(), e, hint))?;
    Ok(signed_by
        .into_iter()
        .map(|i| Signer { name: trusted[i].name.clone(), key_id: trusted[i].key_id.to_string() })
        .collect())
}

pub(crate) fn read_manifest(bytes: &[u8], source: &str) -> Result<Manifest, Error> {
    Manifest::from_component(bytes)
        .map_err(|source_error| Error::NotAConnector { what: source.to_string(), source: source_error })
}

fn check_same_connector(manifest: &Manifest, name: &str, source: &str) -> Result<(), Error> {
    if manifest.name == name {
        Ok(())
    } else {
        Err(Refusal::WrongConnector {
            file: source.to_string(),
            found: manifest.name.clone(),
            name: name.to_string(),
        }
        .into())
    }
}

/// Reads a component file given on the command line, bounded in size.
pub(crate) fn read_component_file(path: &Path) -> Result<Vec<u8>, Error> {
    let io = |source| Error::Io { what: format!("read {}", path.display()), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_COMPONENT_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_COMPONENT_BYTES {
        return Err(io(std::io::Error::other(format!("larger than {MAX_COMPONENT_BYTES} bytes"))));
    }
    Ok(bytes)
}

/// How the lock records a file: `file:` and its absolute path when it can be had.
pub(crate) fn file_source(path: &Path) -> String {
    let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    format!("file:{}", shown.display())
}

/// The argument a user would type again to name `source`.
fn source_argument(source: &str) -> &str {
    source.strip_prefix("file:").or_else(|| source.strip_prefix("oci://")).unwrap_or(source)
}

fn describe_auth(a: &diff::AuthGrant) -> String {
    format!(
        "{}: {}: {}  !! sends your secret {} to {}",
        diff::escape(&a.origin),
        diff::escape(&a.header),
        diff::escape(&a.value),
        a.secrets.join(", "),
        diff::escape(&a.origin)
    )
}

fn not_installed(lock: &LockFile, name: &str, version: &str) -> Error {
    Refusal::NotInstalled {
        name: name.to_string(),
        version: version.to_string(),
        installed: installed_versions(lock, name),
    }
    .into()
}

fn installed_versions(lock: &LockFile, name: &str) -> String {
    match lock.connector(name) {
        Some(c) if !c.versions.is_empty() => format!("installed: {}", c.version_names().join(", ")),
        _ => format!("no version of {name} is installed"),
    }
}

fn version_info(name: &str, v: &LockedVersion, pinned: Option<&str>) -> VersionInfo {
    VersionInfo {
        name: name.to_string(),
        version: v.version.clone(),
        sha256: v.sha256.clone(),
        source: v.source.clone(),
        pinned: pinned == Some(v.version.as_str()),
        approved: v.approved,
        signers: v.signers.clone(),
        capabilities: v.capabilities.clone(),
    }
}

fn resolved(name: &str, v: &LockedVersion) -> Resolved {
    Resolved {
        name: name.to_string(),
        version: v.version.clone(),
        sha256: v.sha256.clone(),
        signers: v.signers.clone(),
        unsigned: v.signers.is_empty(),
        capabilities: v.capabilities.clone(),
    }
}

/// SHA-256 in hex, as the lock file records it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn signed_by(signers: &[Signer]) -> String {
    if signers.is_empty() {
        "UNSIGNED (installed with --allow-unsigned)".to_string()
    } else {
        let names: Vec<_> = signers.iter().map(|s| format!("{} (key {})", s.name, s.key_id)).collect();
        format!("signed by {}", names.join(", "))
    }
}

impl fmt::Display for VersionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pin = if self.pinned { ", pinned" } else { "" };
        let approval = if self.approved { "" } else { ", not yet approved" };
        writeln!(f, "{} {}{pin}{approval}", self.name, self.version)?;
        writeln!(f, "  sha256  {}", self.sha256)?;
        writeln!(f, "  source  {}", diff::escape(&self.source))?;
        writeln!(f, "  {}", signed_by(&self.signers))?;
        writeln!(f, "  capabilities:")?;
        for line in self.capabilities.lines() {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Installed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.connector;
        if self.already_installed {
            writeln!(f, "{} {} is already installed (same sha256); nothing changed", c.name, c.version)?;
        } else {
            write!(f, "installed {c}")?;
        }
        if c.signers.is_empty() {
            writeln!(f, "warning: {} {} is an UNSIGNED connector", c.name, c.version)?;
        }
        if c.pinned {
            writeln!(f, "connections with connector = \"{}\" now run {}", c.name, c.version)?;
        } else if !self.already_installed {
            writeln!(
                f,
                "to run it, review and approve it: weir connector upgrade {} --to {}",
                c.name, c.version
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for ConnectorList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.connectors.is_empty() {
            return writeln!(
                f,
                "no connector installed; `weir connector install FILE.wasm|OCI-REF` adds one"
            );
        }
        for c in &self.connectors {
            let pin = if c.pinned { "pinned" } else { "" };
            let signer = if c.signers.is_empty() {
                "UNSIGNED".to_string()
            } else {
                c.signers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(",")
            };
            writeln!(f, "{:<24} {:<12} {:<7} {:<16} {}", c.name, c.version, pin, signer, &c.sha256[..12])?;
        }
        Ok(())
    }
}

impl fmt::Display for ConnectorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pinned {
            Some(v) => writeln!(f, "{}: pinned to {v}", self.name)?,
            None => writeln!(f, "{}: not pinned (connections naming it run the bundled version)", self.name)?,
        }
        if !self.previous.is_empty() {
            writeln!(f, "earlier pins: {}", self.previous.join(", "))?;
        }
        for v in &self.versions {
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Removed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "removed {} {}", self.name, self.version)?;
        if self.was_pinned {
            writeln!(
                f,
                "{} is no longer pinned: connections naming it run the bundled version; \
                 `weir connector pin {}@VERSION` chooses another",
                self.name, self.name
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Pinned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.previous {
            Some(p) if *p != self.version => {
                writeln!(f, "{} pinned to {} (was {p})", self.name, self.version)?
            }
            _ => writeln!(f, "{} pinned to {}", self.name, self.version)?,
        }
        if let Some(d) = &self.diff
            && !d.changes.is_empty()
        {
            write!(f, "{d}")?;
        }
        Ok(())
    }
}
