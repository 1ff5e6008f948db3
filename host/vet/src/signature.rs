//! Signatures embedded in a component, in the WebAssembly tool-conventions format
//! (`Signatures.md`), byte for byte as `wasmsign2` reads and writes them, so that a component
//! signed by weir verifies with wasmsign2 and the other way round.
//!
//! The layout: the first section of the binary is a custom section named `signature`. Its
//! payload lists sets of hashes, each with one or more Ed25519 signatures. A hash is SHA-256
//! over the raw bytes of the sections that follow the signature section, rolling across
//! `signature_delimiter` sections (one hash at each delimiter, and one at the end when the
//! last section is no delimiter). Each signature covers
//! `"wasmsig" ‖ 0x01 (spec) ‖ 0x01 (wasm) ‖ 0x01 (SHA-256) ‖ h1 ‖ … ‖ hn`.
//!
//! What weir checks, and why:
//! - Only a set of hashes equal to the hashes of the *whole* content counts. The spec lets a
//!   signer cover a subset (partial signatures) and tells runtimes to ignore those by
//!   default; a connector must be signed in full, manifest section included.
//! - The manifest is one of the sections after the signature section, so signing after the
//!   manifest is embedded covers it, and any change to it breaks the signature.
//! - A signature that names a trusted key's id but does not verify means the signature
//!   section itself was damaged: that is refused as tampering even when another trusted
//!   key signed too, so no byte of a signed component can change unnoticed.
//! - The 8-byte preamble is not hashed (the spec hashes sections only); weir accepts only
//!   the module and component preambles, and the connector store accepts components only.
//!
//! Everything here works on bytes, before anything is compiled.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};
use weir_runtime::manifest::leb128;

use crate::keys::{KeyId, PublicKey, SecretKey};

/// The name of the custom section holding the signatures.
pub const SECTION: &str = weir_runtime::manifest::SIGNATURE_SECTION;
/// The name of the custom sections that split a binary into separately hashed parts.
pub const DELIMITER: &str = "signature_delimiter";

const DOMAIN: &[u8] = b"wasmsig";
const SPEC_VERSION: u8 = 0x01;
const CONTENT_TYPE_WASM: u8 = 0x01;
const HASH_SHA256: u8 = 0x01;
const ALGORITHM_ED25519: u8 = 0x01;
/// Bounds on what a signature section may declare, the same as wasmsign2's, checked before
/// anything is allocated for them.
const MAX_HASHES: usize = 64;
const MAX_SIGNATURES: usize = 256;

const MODULE_PREAMBLE: [u8; 8] = *b"\0asm\x01\0\0\0";
const COMPONENT_PREAMBLE: [u8; 8] = *b"\0asm\x0d\0\x01\0";

/// Why a binary could not be signed or did not verify.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("not a WebAssembly module or component: {0}")]
    NotWasm(String),
    #[error("it carries no signature (no `signature` section first)")]
    Unsigned,
    #[error("its signature section is malformed: {0}")]
    Malformed(String),
    #[error("it was changed after it was signed: {why}")]
    Tampered { why: String },
    #[error("it is signed, but by no key weir was given to trust (signed by key id {})", list(.key_ids))]
    UnknownSigner {
        /// The key ids the signatures name, in hex; a signature may name none.
        key_ids: Vec<String>,
    },
    #[error("it is already signed by key {0}")]
    AlreadySigned(KeyId),
}

fn list(ids: &[String]) -> String {
    if ids.is_empty() { "none given".to_string() } else { ids.join(", ") }
}

/// One signature: which key (optional), which algorithm, and the signature bytes.
#[derive(Debug, Clone, PartialEq)]
struct Signature {
    key_id: Option<Vec<u8>>,
    algorithm: u8,
    bytes: Vec<u8>,
}

/// A list of hashes and the signatures over it.
#[derive(Debug, Clone, PartialEq)]
struct SignedHashes {
    hashes: Vec<[u8; 32]>,
    signatures: Vec<Signature>,
}

/// Signs a component (or module) with `key`, as `wasmsign2 sign -K` does: the signature
/// section goes first, sections are written in their canonical encoding, and a component
/// already signed by other keys keeps their signatures (a co-signature).
pub fn sign(bytes: &[u8], key: &SecretKey) -> Result<Vec<u8>, SignatureError> {
    let binary = Binary::parse(bytes)?;
    let mut sets = match binary.signature_payload() {
        Some(payload) => parse_signature_data(payload)?,
        None => Vec::new(),
    };
    // A `signature` section anywhere but first is not a signature; wasmsign2 drops it when
    // signing, and so does weir, so that both hash the same bytes.
    let body: Vec<(Vec<u8>, bool)> = binary
        .signed_sections()
        .iter()
        .filter(|s| s.custom_name != Some(SECTION.as_bytes()))
        .map(|s| (s.canonical(), s.is_delimiter()))
        .collect();
    let hashes = rolling_hashes(body.iter().map(|(bytes, delimiter)| (bytes.as_slice(), *delimiter)));
    let public = key.public_key();
    let key_id = public.key_id();
    let message = signed_message(&hashes);
    let signature = Signature {
        key_id: Some(key_id.0.to_vec()),
        algorithm: ALGORITHM_ED25519,
        bytes: key.sign(&message).to_vec(),
    };
    let full = sets.len() >= MAX_HASHES;
    match sets.iter_mut().find(|set| set.hashes == hashes) {
        Some(set) => {
            if set.signatures.iter().any(|s| public.verifies(&message, &s.bytes)) {
                return Err(SignatureError::AlreadySigned(key_id));
            }
            if set.signatures.len() >= MAX_SIGNATURES {
                return Err(SignatureError::Malformed(format!(
                    "it already carries {MAX_SIGNATURES} signatures"
                )));
            }
            set.signatures.push(signature);
        }
        None if full => {
            return Err(SignatureError::Malformed(format!(
                "it already carries {MAX_HASHES} signed hash sets"
            )));
        }
        None => sets.push(SignedHashes { hashes, signatures: vec![signature] }),
    }
    let mut out = Vec::with_capacity(bytes.len() + 128);
    out.extend_from_slice(&binary.preamble);
    out.extend_from_slice(&custom_section(SECTION.as_bytes(), &serialize_signature_data(&sets)));
    for (section, _) in &body {
        out.extend_from_slice(section);
    }
    Ok(out)
}

/// Verifies the embedded signatures against `keys`; returns the indexes of the keys that
/// signed the whole content (at least one), or why none did.
pub fn verify(bytes: &[u8], keys: &[PublicKey]) -> Result<Vec<usize>, SignatureError> {
    let binary = Binary::parse(bytes)?;
    let payload = binary.signature_payload().ok_or(SignatureError::Unsigned)?;
    let sets = parse_signature_data(payload)?;
    let content = rolling_hashes(binary.signed_sections().iter().map(|s| (s.raw, s.is_delimiter())));
    let key_ids: Vec<KeyId> = keys.iter().map(PublicKey::key_id).collect();
    let mut signers = BTreeSet::new();
    let mut unknown = Vec::new();
    let mut covered = false;
    for set in sets.iter().filter(|set| set.hashes == content) {
        covered = true;
        let message = signed_message(&set.hashes);
        for signature in set.signatures.iter().filter(|s| s.algorithm == ALGORITHM_ED25519) {
            let mut known = false;
            for (index, key) in keys.iter().enumerate() {
                // As in wasmsign2: a signature that names a key is only tried with that key.
                if signature.key_id.as_deref().is_some_and(|id| id != key_ids[index].0) {
                    continue;
                }
                if key.verifies(&message, &signature.bytes) {
                    signers.insert(index);
                    known = true;
                } else if signature.key_id.is_some() {
                    return Err(SignatureError::Tampered {
                        why: format!("the signature by key {} does not verify", key_ids[index]),
                    });
                }
            }
            if !known {
                unknown.push(signature.key_id.as_deref().map(hex::encode).unwrap_or_else(|| "(none)".into()));
            }
        }
    }
    if !covered {
        return Err(SignatureError::Tampered { why: "its content does not match what was signed".into() });
    }
    if signers.is_empty() {
        return Err(SignatureError::UnknownSigner { key_ids: unknown });
    }
    Ok(signers.into_iter().collect())
}

/// The key ids named by the signatures embedded in `bytes` (unverified: for messages only).
pub fn key_ids(bytes: &[u8]) -> Result<Vec<String>, SignatureError> {
    let binary = Binary::parse(bytes)?;
    let payload = binary.signature_payload().ok_or(SignatureError::Unsigned)?;
    let mut ids = BTreeSet::new();
    for set in parse_signature_data(payload)? {
        for signature in set.signatures {
            if let Some(id) = signature.key_id {
                ids.insert(hex::encode(id));
            }
        }
    }
    Ok(ids.into_iter().collect())
}

fn signed_message(hashes: &[[u8; 32]]) -> Vec<u8> {
    let mut message = Vec::with_capacity(DOMAIN.len() + 3 + 32 * hashes.len());
    message.extend_from_slice(DOMAIN);
    message.extend_from_slice(&[SPEC_VERSION, CONTENT_TYPE_WASM, HASH_SHA256]);
    for hash in hashes {
        message.extend_from_slice(hash);
    }
    message
}

/// SHA-256 rolling over the sections: one hash after each delimiter, and one at the end
/// unless the last section is a delimiter.
fn rolling_hashes<'a>(sections: impl IntoIterator<Item = (&'a [u8], bool)>) -> Vec<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut hashes = Vec::new();
    let mut last_was_delimiter = false;
    for (bytes, delimiter) in sections {
        hasher.update(bytes);
        if delimiter {
            hashes.push(hasher.clone().finalize().into());
        }
        last_was_delimiter = delimiter;
    }
    if !last_was_delimiter {
        hashes.push(hasher.finalize().into());
    }
    hashes
}

/// A binary split into its preamble and sections, without interpreting them.
struct Binary<'a> {
    preamble: [u8; 8],
    sections: Vec<Section<'a>>,
}

/// One section: its raw bytes (id, size and payload) and, for a custom section, its name
/// and the data after the name.
struct Section<'a> {
    id: u8,
    raw: &'a [u8],
    custom_name: Option<&'a [u8]>,
    data: &'a [u8],
}

impl<'a> Binary<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Binary<'a>, SignatureError> {
        let not_wasm = |why: &str| SignatureError::NotWasm(why.to_string());
        let preamble: [u8; 8] = bytes
            .get(..8)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| not_wasm("shorter than the 8-byte preamble"))?;
        if preamble != MODULE_PREAMBLE && preamble != COMPONENT_PREAMBLE {
            return Err(not_wasm("the preamble is neither a module's nor a component's"));
        }
        let mut reader = Reader { bytes, pos: 8 };
        let mut sections = Vec::new();
        while !reader.done() {
            let start = reader.pos;
            let id = reader.byte().ok_or_else(|| not_wasm("truncated section"))?;
            let payload = reader.var_slice().ok_or_else(|| not_wasm("a section runs past the end"))?;
            let (custom_name, data) = if id == 0 {
                let mut inner = Reader { bytes: payload, pos: 0 };
                let name =
                    inner.var_slice().ok_or_else(|| not_wasm("a custom section's name is truncated"))?;
                (Some(name), &payload[inner.pos..])
            } else {
                (None, payload)
            };
            sections.push(Section { id, raw: &bytes[start..reader.pos], custom_name, data });
        }
        Ok(Binary { preamble, sections })
    }

    /// The payload of the signature section, which must come first.
    fn signature_payload(&self) -> Option<&'a [u8]> {
        self.sections.first().filter(|s| s.custom_name == Some(SECTION.as_bytes())).map(|s| s.data)
    }

    /// The sections a signature covers: all of them after the signature section.
    fn signed_sections(&self) -> &[Section<'a>] {
        let skip = usize::from(self.signature_payload().is_some());
        &self.sections[skip..]
    }
}

impl Section<'_> {
    fn is_delimiter(&self) -> bool {
        self.custom_name == Some(DELIMITER.as_bytes())
    }

    /// The section with minimal LEB128 lengths, the way wasmsign2 writes every section it
    /// signs; both tools then hash and write the same bytes.
    fn canonical(&self) -> Vec<u8> {
        match self.custom_name {
            Some(name) => custom_section(name, self.data),
            None => {
                let mut out = vec![self.id];
                leb128(self.data.len(), &mut out);
                out.extend_from_slice(self.data);
                out
            }
        }
    }
}

fn custom_section(name: &[u8], data: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(name.len() + data.len() + 5);
    leb128(name.len(), &mut payload);
    payload.extend_from_slice(name);
    payload.extend_from_slice(data);
    let mut out = vec![0];
    put_slice(&payload, &mut out);
    out
}

fn parse_signature_data(payload: &[u8]) -> Result<Vec<SignedHashes>, SignatureError> {
    let malformed = |why: String| SignatureError::Malformed(why);
    let truncated = || malformed("truncated".into());
    let mut r = Reader { bytes: payload, pos: 0 };
    let version = r.byte().ok_or_else(truncated)?;
    if version != SPEC_VERSION {
        return Err(malformed(format!("specification version {version} (weir reads version 1)")));
    }
    let content_type = r.byte().ok_or_else(truncated)?;
    if content_type != CONTENT_TYPE_WASM {
        return Err(malformed(format!("content type {content_type} is not WebAssembly")));
    }
    let hash = r.byte().ok_or_else(truncated)?;
    if hash != HASH_SHA256 {
        return Err(malformed(format!("hash function {hash} (weir reads SHA-256)")));
    }
    let count = r.count(MAX_HASHES).ok_or_else(|| malformed(format!("more than {MAX_HASHES} hash sets")))?;
    let mut sets = Vec::with_capacity(count);
    for _ in 0..count {
        let bytes = r.var_slice().ok_or_else(truncated)?;
        sets.push(parse_signed_hashes(bytes)?);
    }
    if !r.done() {
        return Err(malformed("bytes after the last signature".into()));
    }
    Ok(sets)
}

fn parse_signed_hashes(bytes: &[u8]) -> Result<SignedHashes, SignatureError> {
    let malformed = |why: &str| SignatureError::Malformed(why.to_string());
    let mut r = Reader { bytes, pos: 0 };
    let count = r.count(MAX_HASHES).ok_or_else(|| malformed("too many hashes in a set"))?;
    let mut hashes = Vec::with_capacity(count);
    for _ in 0..count {
        let hash = r.slice(32).ok_or_else(|| malformed("a hash is truncated"))?;
        hashes.push(hash.try_into().map_err(|_| malformed("a hash is truncated"))?);
    }
    let count = r.count(MAX_SIGNATURES).ok_or_else(|| malformed("too many signatures in a set"))?;
    let mut signatures = Vec::with_capacity(count);
    for _ in 0..count {
        let entry = r.var_slice().ok_or_else(|| malformed("a signature is truncated"))?;
        let mut e = Reader { bytes: entry, pos: 0 };
        let key_id = e.var_slice().ok_or_else(|| malformed("a key id is truncated"))?;
        let algorithm = e.byte().ok_or_else(|| malformed("a signature has no algorithm"))?;
        let signature = e.var_slice().ok_or_else(|| malformed("a signature is truncated"))?;
        if !e.done() {
            return Err(malformed("bytes after a signature"));
        }
        signatures.push(Signature {
            key_id: (!key_id.is_empty()).then(|| key_id.to_vec()),
            algorithm,
            bytes: signature.to_vec(),
        });
    }
    if !r.done() {
        return Err(malformed("bytes after a set's signatures"));
    }
    Ok(SignedHashes { hashes, signatures })
}

fn serialize_signature_data(sets: &[SignedHashes]) -> Vec<u8> {
    let mut out = vec![SPEC_VERSION, CONTENT_TYPE_WASM, HASH_SHA256];
    leb128(sets.len(), &mut out);
    for set in sets {
        let mut inner = Vec::new();
        leb128(set.hashes.len(), &mut inner);
        for hash in &set.hashes {
            inner.extend_from_slice(hash);
        }
        leb128(set.signatures.len(), &mut inner);
        for signature in &set.signatures {
            let mut entry = Vec::new();
            put_slice(signature.key_id.as_deref().unwrap_or_default(), &mut entry);
            entry.push(signature.algorithm);
            put_slice(&signature.bytes, &mut entry);
            put_slice(&entry, &mut inner);
        }
        put_slice(&inner, &mut out);
    }
    out
}

fn put_slice(bytes: &[u8], out: &mut Vec<u8>) {
    leb128(bytes.len(), out);
    out.extend_from_slice(bytes);
}

/// A cursor over untrusted bytes; every read is bounds-checked and returns `None` past the end.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// An unsigned LEB128 of at most 32 bits.
    fn u32(&mut self) -> Option<u32> {
        let mut value = 0u32;
        for i in 0..5 {
            let b = self.byte()?;
            if i == 4 && b & 0xf0 != 0 {
                return None;
            }
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// A count that may not exceed `max`.
    fn count(&mut self, max: usize) -> Option<usize> {
        let n = usize::try_from(self.u32()?).ok()?;
        (n <= max).then_some(n)
    }

    fn slice(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(len)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// A LEB128 length followed by that many bytes.
    fn var_slice(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.slice(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate;

    fn component() -> Vec<u8> {
        weir_runtime::manifest::embed(&COMPONENT_PREAMBLE, "name = \"x\"\n")
    }

    #[test]
    fn the_signature_section_matches_the_spec_byte_for_byte() {
        let key = generate();
        let unsigned = component();
        let signed = sign(&unsigned, &key).unwrap();
        // preamble, then the custom section `signature`, then the original sections untouched.
        assert_eq!(&signed[..8], &COMPONENT_PREAMBLE);
        let body = &unsigned[8..];
        assert!(signed.ends_with(body));
        let section = &signed[8..signed.len() - body.len()];
        let mut r = Reader { bytes: section, pos: 0 };
        assert_eq!(r.byte(), Some(0), "a custom section");
        let payload = r.var_slice().unwrap();
        assert!(r.done());
        let mut p = Reader { bytes: payload, pos: 0 };
        assert_eq!(p.var_slice(), Some(&b"signature"[..]));
        let data = &payload[p.pos..];
        // spec version, content type, hash function, one set of hashes
        assert_eq!(&data[..4], &[1, 1, 1, 1]);
        let mut d = Reader { bytes: data, pos: 4 };
        let set = d.var_slice().unwrap();
        assert!(d.done());
        // one hash: SHA-256 of everything after the signature section
        assert_eq!(set[0], 1);
        let hash: [u8; 32] = Sha256::digest(body).into();
        assert_eq!(&set[1..33], &hash);
        // one signature: key id (12 bytes), Ed25519 (0x01), 64 signature bytes
        assert_eq!(set[33], 1);
        let mut s = Reader { bytes: set, pos: 34 };
        let entry = s.var_slice().unwrap();
        assert!(s.done());
        assert_eq!(entry[0], 12);
        assert_eq!(&entry[1..13], &key.public_key().key_id().0);
        assert_eq!(entry[13], 0x01);
        assert_eq!(entry[14], 64);
        let signature = &entry[15..];
        assert_eq!(signature.len(), 64);
        let mut message = b"wasmsig\x01\x01\x01".to_vec();
        message.extend_from_slice(&hash);
        assert!(key.public_key().verifies(&message, signature));
    }

    #[test]
    fn non_canonical_lengths_are_rewritten_so_both_tools_hash_the_same_bytes() {
        // A custom section whose size is written with a padded LEB128 (0x85 0x00 = 5).
        let mut padded = COMPONENT_PREAMBLE.to_vec();
        padded.extend_from_slice(&[0, 0x85, 0x00, 4, b'n', b'o', b't', b'e']);
        let key = generate();
        let signed = sign(&padded, &key).unwrap();
        assert!(signed.ends_with(&[0, 5, 4, b'n', b'o', b't', b'e']));
        assert_eq!(verify(&signed, &[key.public_key()]).unwrap(), [0]);
    }

    #[test]
    fn delimiters_give_one_hash_per_part_and_whole_coverage_is_required() {
        let mut bytes = component();
        bytes.extend_from_slice(&custom_section(DELIMITER.as_bytes(), &[7; 16]));
        bytes.extend_from_slice(&custom_section(b"extra", b"data"));
        let key = generate();
        let signed = sign(&bytes, &key).unwrap();
        assert_eq!(verify(&signed, &[key.public_key()]).unwrap(), [0]);
        // A section appended after signing is not covered: refused, though a prefix is signed.
        let mut appended = signed.clone();
        appended.extend_from_slice(&custom_section(b"late", b"x"));
        assert!(matches!(verify(&appended, &[key.public_key()]), Err(SignatureError::Tampered { .. })));
    }

    #[test]
    fn signing_twice_with_one_key_is_refused_and_a_second_key_co_signs() {
        let (a, b) = (generate(), generate());
        let once = sign(&component(), &a).unwrap();
        assert!(matches!(sign(&once, &a), Err(SignatureError::AlreadySigned(_))));
        let twice = sign(&once, &b).unwrap();
        assert_eq!(verify(&twice, &[a.public_key(), b.public_key()]).unwrap(), [0, 1]);
        assert_eq!(verify(&twice, &[b.public_key()]).unwrap(), [0]);
        let mut ids = key_ids(&twice).unwrap();
        ids.sort();
        let mut expected = vec![a.public_key().key_id().to_string(), b.public_key().key_id().to_string()];
        expected.sort();
        assert_eq!(ids, expected);
    }

    #[test]
    fn unsigned_garbage_and_unknown_keys_are_told_apart() {
        let key = generate();
        assert!(matches!(verify(&component(), &[key.public_key()]), Err(SignatureError::Unsigned)));
        assert!(matches!(verify(b"\0asm", &[]), Err(SignatureError::NotWasm(_))));
        let signed = sign(&component(), &key).unwrap();
        match verify(&signed, &[generate().public_key()]) {
            Err(SignatureError::UnknownSigner { key_ids }) => {
                assert_eq!(key_ids, [key.public_key().key_id().to_string()])
            }
            other => panic!("expected an unknown signer, got {other:?}"),
        }
        assert!(matches!(verify(&signed, &[]), Err(SignatureError::UnknownSigner { .. })));
    }

    #[test]
    fn declared_counts_past_the_bounds_are_refused_before_allocating() {
        let mut data = vec![1, 1, 1];
        leb128(u32::MAX as usize, &mut data);
        let err = parse_signature_data(&data).unwrap_err().to_string();
        assert!(err.contains("more than 64"), "{err}");
        let mut bytes = COMPONENT_PREAMBLE.to_vec();
        bytes.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(verify(&bytes, &[]), Err(SignatureError::NotWasm(_))));
    }
}
