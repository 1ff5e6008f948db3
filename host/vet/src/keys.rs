//! Ed25519 keys in the serialization of the WebAssembly tool-conventions (`Signatures.md`),
//! which is also the file format of `wasmsign2 keygen`: a public key file holds
//! `0x01 ‖ public key (32 bytes)`, a secret key file holds the key pair,
//! `0x81 ‖ secret key (32 bytes) ‖ public key (32 bytes)`. Keys therefore move between weir
//! and wasmsign2 unchanged, in both directions.
//!
//! A key's id is what wasmsign2 attaches to a signature when it is given the public key:
//! the first 12 bytes of HMAC-SHA-256 keyed with the public key over the text `key_id`.
//! The id only says which key to try; it is not trusted, the signature is checked anyway.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use serde::{Serialize, Serializer};
use sha2::Sha256;

/// The first byte of a serialized Ed25519 public key.
const PUBLIC_KEY_TAG: u8 = 0x01;
/// The first byte of a serialized Ed25519 key pair.
const KEY_PAIR_TAG: u8 = 0x81;

/// The file names that `weir key generate --out DIR` writes.
pub const SECRET_KEY_FILE: &str = "weir.key";
/// The public half, to hand to `weir trust add` (or `wasmsign2 verify -K`).
pub const PUBLIC_KEY_FILE: &str = "weir.pub";

/// Why a key could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the key {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write the key {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} already exists; weir never overwrites a key (move it away or choose another --out)")]
    Exists { path: PathBuf },
    #[error("{origin} is not an Ed25519 {what} in the wasmsign2 format: {why}")]
    Malformed { origin: String, what: &'static str, why: String },
}

/// An Ed25519 public key: what the trust store holds and what verification checks against.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(ed25519_compact::PublicKey);

/// An Ed25519 key pair, used only to sign; its `Debug` shows the key id, never the secret.
#[derive(Clone)]
pub struct SecretKey(ed25519_compact::SecretKey);

/// The 12-byte identifier that a signature may carry to say which key made it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 12]);

impl PublicKey {
    /// Parses `0x01 ‖ 32 bytes`; `origin` names the bytes in the error (a path, or "the key").
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<PublicKey, KeyError> {
        let key = untag(bytes, PUBLIC_KEY_TAG, origin)?;
        ed25519_compact::PublicKey::from_slice(key).map(PublicKey).map_err(|e| {
            malformed(origin, PUBLIC_KEY_TAG, format!("{e} (expected 33 bytes, found {})", bytes.len()))
        })
    }

    /// Reads a public key file.
    pub fn read(path: &Path) -> Result<PublicKey, KeyError> {
        let bytes = read_key_file(path)?;
        PublicKey::from_bytes(&bytes, &path.display().to_string())
    }

    /// The serialized key, `0x01 ‖ 32 bytes`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![PUBLIC_KEY_TAG];
        out.extend_from_slice(self.0.as_ref());
        out
    }

    /// The key id that wasmsign2 derives for this key.
    pub fn key_id(&self) -> KeyId {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.as_ref()).expect("HMAC takes any key length");
        mac.update(b"key_id");
        let tag = mac.finalize().into_bytes();
        let mut id = [0u8; 12];
        id.copy_from_slice(&tag[..12]);
        KeyId(id)
    }

    /// Whether `signature` is this key's Ed25519 signature of `message`.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match ed25519_compact::Signature::from_slice(signature) {
            Ok(signature) => self.0.verify(message, &signature).is_ok(),
            Err(_) => false,
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

impl SecretKey {
    /// Parses `0x81 ‖ secret (32) ‖ public (32)`.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<SecretKey, KeyError> {
        let key = untag(bytes, KEY_PAIR_TAG, origin)?;
        let key = ed25519_compact::SecretKey::from_slice(key).map_err(|e| {
            malformed(origin, KEY_PAIR_TAG, format!("{e} (expected 65 bytes, found {})", bytes.len()))
        })?;
        // The pair carries its public half; a file whose halves disagree would sign with one
        // key and name another.
        key.validate_public_key(&key.public_key()).map_err(|_| {
            malformed(origin, KEY_PAIR_TAG, "its public half does not match its secret".into())
        })?;
        Ok(SecretKey(key))
    }

    /// Reads a secret key file.
    pub fn read(path: &Path) -> Result<SecretKey, KeyError> {
        let bytes = read_key_file(path)?;
        SecretKey::from_bytes(&bytes, &path.display().to_string())
    }

    /// The serialized key pair, `0x81 ‖ 64 bytes`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![KEY_PAIR_TAG];
        out.extend_from_slice(self.0.as_ref());
        out
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.public_key())
    }

    /// Ed25519 signature of `message` (deterministic, as wasmsign2 signs).
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        *self.0.sign(message, None)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(for {})", self.public_key().key_id())
    }
}

/// The key bytes after the type tag, when the tag is `expected`; otherwise an error that
/// says which file the user gave by mistake.
fn untag<'a>(bytes: &'a [u8], expected: u8, origin: &str) -> Result<&'a [u8], KeyError> {
    match bytes.split_first() {
        Some((&tag, key)) if tag == expected => Ok(key),
        Some((&PUBLIC_KEY_TAG, _)) => Err(malformed(
            origin,
            expected,
            "this is a public key; signing needs the secret key (the .key file)".into(),
        )),
        Some((&KEY_PAIR_TAG, _)) => Err(malformed(
            origin,
            expected,
            "this is a secret key; give the public key (the .pub file)".into(),
        )),
        Some((tag, _)) => Err(malformed(origin, expected, format!("unknown key type 0x{tag:02x}"))),
        None => Err(malformed(origin, expected, "the file is empty".into())),
    }
}

fn malformed(origin: &str, expected: u8, why: String) -> KeyError {
    let what = if expected == PUBLIC_KEY_TAG { "public key" } else { "secret key" };
    KeyError::Malformed { origin: origin.to_string(), what, why }
}

/// Generates a fresh key pair from the operating system's random source.
pub fn generate() -> SecretKey {
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::generate());
    SecretKey(pair.sk)
}

/// Writes a new key pair as `DIR/weir.key` (readable by its owner only) and `DIR/weir.pub`;
/// refuses to overwrite either, since a lost secret key cannot be recovered.
pub fn write_new_pair(dir: &Path, key: &SecretKey) -> Result<(PathBuf, PathBuf), KeyError> {
    let secret_path = dir.join(SECRET_KEY_FILE);
    let public_path = dir.join(PUBLIC_KEY_FILE);
    for path in [&secret_path, &public_path] {
        if path.exists() {
            return Err(KeyError::Exists { path: path.clone() });
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| KeyError::Write { path: dir.to_path_buf(), source })?;
    write_new_file(&secret_path, &key.to_bytes(), 0o600)?;
    write_new_file(&public_path, &key.public_key().to_bytes(), 0o644)?;
    Ok((secret_path, public_path))
}

fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let write = |options: &std::fs::OpenOptions| -> std::io::Result<()> {
        let mut file = options.open(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    write(&options).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => KeyError::Exists { path: path.to_path_buf() },
        _ => KeyError::Write { path: path.to_path_buf(), source },
    })
}

/// Key files are tiny; anything larger is not a key, and is not read whole.
fn read_key_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|source| KeyError::Read { path: path.to_path_buf(), source })?;
    let mut bytes = Vec::new();
    file.take(4096)
        .read_to_end(&mut bytes)
        .map_err(|source| KeyError::Read { path: path.to_path_buf(), source })?;
    Ok(bytes)
}

impl KeyId {
    /// Parses the hex form shown by `weir trust list`.
    pub fn from_hex(text: &str) -> Option<KeyId> {
        let bytes = hex::decode(text).ok()?;
        Some(KeyId(bytes.try_into().ok()?))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_in_the_wasmsign2_layout() {
        let secret = generate();
        let bytes = secret.to_bytes();
        assert_eq!((bytes.len(), bytes[0]), (65, 0x81));
        let public = secret.public_key().to_bytes();
        assert_eq!((public.len(), public[0]), (33, 0x01));
        // The pair ends with its public half, as the spec lays it out.
        assert_eq!(&bytes[33..], &public[1..]);
        let again = SecretKey::from_bytes(&bytes, "k").unwrap();
        assert_eq!(again.public_key(), secret.public_key());
        assert_eq!(PublicKey::from_bytes(&public, "p").unwrap(), secret.public_key());
    }

    #[test]
    fn the_wrong_half_or_a_damaged_pair_is_refused_with_the_reason() {
        let secret = generate();
        let err = SecretKey::from_bytes(&secret.public_key().to_bytes(), "x.pub").unwrap_err().to_string();
        assert!(err.contains("x.pub") && err.contains("secret key (the .key file)"), "{err}");
        let err = PublicKey::from_bytes(&secret.to_bytes(), "x.key").unwrap_err().to_string();
        assert!(err.contains("give the public key"), "{err}");
        let mut pair = secret.to_bytes();
        pair[64] ^= 1; // the stored public half no longer matches the secret
        let err = SecretKey::from_bytes(&pair, "x.key").unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
    }

    #[test]
    fn key_id_is_hmac_sha256_of_key_id_under_the_public_key() {
        // RFC 8032's first test key; the expected id was computed with Python's hmac module:
        // hmac.new(pk, b"key_id", hashlib.sha256).hexdigest()[:24].
        let pk = hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a").unwrap();
        let mut bytes = vec![0x01];
        bytes.extend_from_slice(&pk);
        let key = PublicKey::from_bytes(&bytes, "rfc8032").unwrap();
        assert_eq!(key.key_id().to_string(), "58fb94a6933f01b8b7707a8b");
        assert_eq!(KeyId::from_hex(&key.key_id().to_string()), Some(key.key_id()));
    }

    #[test]
    fn generated_files_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let (secret_path, public_path) = write_new_pair(dir.path(), &generate()).unwrap();
        let first = std::fs::read(&secret_path).unwrap();
        let err = write_new_pair(dir.path(), &generate()).unwrap_err();
        assert!(matches!(err, KeyError::Exists { .. }), "{err}");
        assert_eq!(std::fs::read(&secret_path).unwrap(), first);
        assert!(PublicKey::read(&public_path).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&secret_path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the secret key is readable by others: {mode:o}");
        }
    }
}
