//! Vetted connectors: knowing which code runs and who signed it.
//!
//! - [`signature`]: signatures embedded in the component, in the WebAssembly tool-conventions
//!   format that `wasmsign2` reads and writes (Ed25519, several signers, verified on bytes
//!   before anything is compiled); [`keys`]: their key files.
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

pub mod keys;
pub mod signature;
