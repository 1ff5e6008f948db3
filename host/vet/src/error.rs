//! The crate's errors. A [`Refusal`] is weir saying no on purpose: each message says what
//! was refused and the command that would allow it, and a refusal changes nothing on disk.
//! Every other [`Error`] is something that failed.

use weir_runtime::manifest::ManifestError;

use crate::keys::KeyError;
use crate::lock::LockError;
use crate::names::NameError;
use crate::oci::OciError;
use crate::signature::SignatureError;
use crate::trust::TrustError;

/// Anything a vetting command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Oci(#[from] OciError),
    #[error("{what} is not a weir connector: {source}")]
    NotAConnector { what: String, source: ManifestError },
    #[error("cannot sign {what}: {source}")]
    Sign { what: String, source: SignatureError },
    #[error("cannot {what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error(
        "connector {reference:?} is neither a bundled connector ({bundled}), an installed one \
         (`weir connector list`), nor a path to a .wasm file"
    )]
    UnknownConnector { reference: String, bundled: String },
}

/// A deliberate refusal. Nothing was written when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "refused {what}: it was changed after it was signed ({why}). \
         Nothing allows this; get the component again from its publisher"
    )]
    Tampered { what: String, why: String },
    #[error(
        "refused {what}: it is signed by key id {key_ids}, a key you do not trust. \
         If you trust its publisher, run `weir trust add KEY --name NAME` with their public key{unsigned_hint}"
    )]
    UnknownSigner { what: String, key_ids: String, unsigned_hint: &'static str },
    #[error("refused {what}: it is not signed. Sign it with `weir sign FILE.wasm --key KEY`{unsigned_hint}")]
    Unsigned { what: String, unsigned_hint: &'static str },
    #[error(
        "refused {name} {to}: it asks for more than {name} {from} was approved for:\n{}\n\
         Review it with `weir connector diff {name} {from} {to}`; to allow it, run `{command}`",
        .lines.join("\n")
    )]
    Unapproved { name: String, from: String, to: String, lines: Vec<String>, command: String },
    #[error(
        "refused {what}: it would send your secret to a server chosen by the connector's author, not by you:\n{}\n\
         If you accept that, run `{command}`",
        .lines.join("\n")
    )]
    FixedOriginSecret { what: String, lines: Vec<String>, command: String },
    #[error(
        "refused: {name} {version} is not installed ({installed}). \
         Run `weir connector install FILE.wasm|OCI-REF` first"
    )]
    NotInstalled { name: String, version: String, installed: String },
    #[error(
        "refused {name} {version}: a different {name} {version} is installed already \
         (sha256 {installed}, this one {offered}); run `weir connector remove {name}@{version}` first"
    )]
    Conflict { name: String, version: String, installed: String, offered: String },
    #[error(
        "refused: {name} has no pinned version to upgrade from; run `weir connector pin {name}@VERSION` first"
    )]
    NothingPinned { name: String },
    #[error(
        "refused: {name} has no earlier pin to roll back to; choose one with `weir connector pin {name}@VERSION`"
    )]
    NothingToRollBack { name: String },
    #[error("refused: {file} holds the connector {found:?}, not {name}")]
    WrongConnector { file: String, found: String, name: String },
    #[error(
        "refused {name} {version}: its file in the store no longer matches the lock \
         (sha256 {found}, locked {expected}); run `weir connector remove {name}@{version}` and install it again"
    )]
    ChangedOnDisk { name: String, version: String, expected: String, found: String },
}

/// Said after an unsigned or unknown-signer refusal where `--allow-unsigned` applies.
pub(crate) const ALLOW_UNSIGNED_HINT: &str = ", or accept it unsigned (`--allow-unsigned`, `allow_unsigned = true` in connections.toml, or the Spark option `allow_unsigned`)";

impl Refusal {
    /// Turns a verification failure into the refusal a user reads. `unsigned_hint` says how to
    /// accept an unsigned component where that is possible (empty where it is not).
    pub(crate) fn from_signature(
        what: String,
        error: SignatureError,
        unsigned_hint: &'static str,
    ) -> Refusal {
        match error {
            SignatureError::Unsigned => Refusal::Unsigned { what, unsigned_hint },
            SignatureError::UnknownSigner { key_ids } => {
                let key_ids =
                    if key_ids.is_empty() { "(none given)".to_string() } else { key_ids.join(", ") };
                Refusal::UnknownSigner { what, key_ids, unsigned_hint }
            }
            SignatureError::Tampered { why } => Refusal::Tampered { what, why },
            // A signature section that does not parse, or bytes that are no WebAssembly, are
            // refused like tampering: a broken signature is never taken for "unsigned".
            other => Refusal::Tampered { what, why: other.to_string() },
        }
    }
}
