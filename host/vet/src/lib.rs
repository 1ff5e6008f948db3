//! Vetted connectors: knowing which code runs, who signed it, what it may reach, and what an
//! upgrade newly asks for.
//!
//! - [`signature`]: signatures embedded in the component, in the WebAssembly tool-conventions
//!   format that `wasmsign2` reads and writes (Ed25519, several signers, verified on bytes
//!   before anything is compiled); [`keys`]: their key files.
//! - [`trust`]: the public keys the user trusts, by name.
//! - [`store`]: installed connector versions, pins and rollback, behind `cap-std` handles;
//!   [`lock`]: its lock file, recording digests, signers and approved capabilities.
//! - [`diff`]: capability review between two versions, and the approval rule for upgrades.
//! - [`oci`]: pulling and pushing components as Wasm OCI artifacts, pinned by digest.
//! - [`commands`]: one function per `weir key|sign|verify|trust|connector` command, each
//!   returning a result that prints as text (`Display`) or JSON (`Serialize`).
//! - [`component`]: the component a connection names (a path, an installed version, or a
//!   bundled connector), checked before anything compiles it; every front end loads through it.
//!
//! Every refusal is a typed [`Refusal`] whose message names the command that would allow it,
//! and changes nothing on disk.
//!
//! ```
//! use weir_vet::{keys, signature};
//!
//! let component = weir_runtime::manifest::embed(b"\0asm\x0d\0\x01\0", "name = \"x\"\n");
//! let key = keys::generate();
//! let signed = signature::sign(&component, &key)?;
//! assert_eq!(signature::verify(&signed, &[key.public_key()])?, [0]);
//!
//! let mut tampered = signed.clone();
//! *tampered.last_mut().unwrap() ^= 1;
//! assert!(signature::verify(&tampered, &[key.public_key()]).is_err());
//! # Ok::<(), weir_vet::signature::SignatureError>(())
//! ```

use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

mod atomic;
pub mod commands;
pub mod component;
pub mod diff;
mod error;
pub mod keys;
pub mod lock;
pub mod names;
pub mod oci;
pub mod signature;
pub mod store;
pub mod trust;

pub use commands::*;
pub use diff::{Capabilities, CapabilityDiff, diff, diff_manifests};
pub use error::{Error, Refusal};
pub use store::{InstallOptions, Resolved, Store};
pub use trust::TrustStore;

/// The user's weir directory: `$WEIR_HOME`, else `~/.weir`. Every function here takes the
/// directory as a parameter instead, so tests and other front ends choose their own.
pub fn weir_home() -> PathBuf {
    if let Some(home) = std::env::var_os("WEIR_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    let user_home = std::env::var_os("HOME").filter(|h| !h.is_empty()).unwrap_or_else(|| ".".into());
    PathBuf::from(user_home).join(".weir")
}

/// Opens the weir directory, creating it if needed. This is the one place that uses ambient
/// authority on a path: everything below it goes through the returned handle.
fn open_home(root: &Path) -> std::io::Result<Dir> {
    std::fs::create_dir_all(root)?;
    Dir::open_ambient_dir(root, ambient_authority())
}
