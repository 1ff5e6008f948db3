//! Interoperability with the `wasmsign2` command line, the reference implementation of the
//! tool-conventions signature format: what weir signs, wasmsign2 verifies, and the other way
//! round, with each tool's own key files. Install it with
//! `cargo install wasmsign2-cli --locked` (or set `WASMSIGN2` to its path); without it these
//! tests print a notice and check nothing. The byte-level layout is tested against the
//! spec in `weir_vet::signature`'s unit tests either way.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use weir_vet::keys::PublicKey;

fn wasmsign2() -> Option<PathBuf> {
    let found = std::env::var_os("WASMSIGN2").map(PathBuf::from).or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths).map(|p| p.join("wasmsign2")).find(|p| p.is_file())
        })
    });
    if found.is_none() {
        eprintln!(
            "\n!!!!!!!!\n!!! SKIPPED: `wasmsign2` is not installed; weir's interoperability with it was NOT checked.\n\
             !!! Install it with `cargo install wasmsign2-cli --locked` (or set WASMSIGN2 to its path).\n!!!!!!!!\n"
        );
    }
    found
}

/// Runs wasmsign2 and returns whether it succeeded, with its output for messages.
fn run(tool: &Path, args: &[&Path]) -> (bool, String) {
    let output = Command::new(tool).args(args).output().unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn p(s: &str) -> &Path {
    Path::new(s)
}

#[test]
fn wasmsign2_verifies_what_weir_signs() {
    let Some(tool) = wasmsign2() else { return };
    let work = tempfile::tempdir().unwrap();
    let keys = weir_vet::key_generate(work.path()).unwrap();
    let file = write(work.path(), "x.wasm", &component(&manifest("x", "0.1.0", &["{base_url}"])));
    weir_vet::sign(&file, &keys.secret_key, None).unwrap();
    let (ok, text) = run(&tool, &[p("verify"), p("-i"), &file, p("-K"), &keys.public_key]);
    assert!(ok && text.contains("Signature is valid"), "wasmsign2 said: {text}");

    // And it refuses the same file with a byte of the manifest changed.
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.windows(6).position(|w| w == b"0.1.0\"").unwrap();
    bytes[at] = b'9';
    let tampered = write(work.path(), "tampered.wasm", &bytes);
    let (ok, text) = run(&tool, &[p("verify"), p("-i"), &tampered, p("-K"), &keys.public_key]);
    assert!(!ok, "wasmsign2 accepted a tampered component: {text}");
}

#[test]
fn weir_verifies_and_installs_what_wasmsign2_signs_with_its_own_keys() {
    let Some(tool) = wasmsign2() else { return };
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (sk, pk) = (work.path().join("ws.key"), work.path().join("ws.pub"));
    let (ok, text) = run(&tool, &[p("keygen"), p("-k"), &sk, p("-K"), &pk]);
    assert!(ok, "{text}");
    let unsigned = write(work.path(), "x.wasm", &component(&manifest("x", "0.1.0", &["{base_url}"])));
    let signed = work.path().join("x.signed.wasm");
    // With -K, wasmsign2 attaches its key id to the signature; weir derives the same id.
    let (ok, text) =
        run(&tool, &[p("sign"), p("-i"), &unsigned, p("-o"), &signed, p("-k"), &sk, p("-K"), &pk]);
    assert!(ok, "{text}");
    let verified = weir_vet::verify(home.path(), &signed, Some(&pk)).unwrap();
    assert_eq!(verified.signers[0].key_id, PublicKey::read(&pk).unwrap().key_id().to_string());

    weir_vet::trust_add(home.path(), &pk, "upstream").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let installed = rt
        .block_on(weir_vet::connector_install(home.path(), signed.to_str().unwrap(), Default::default()))
        .unwrap();
    assert_eq!(installed.connector.signers[0].name, "upstream");

    // Without -K: a signature with no key id, which weir tries against every trusted key.
    let anonymous = work.path().join("x.anon.wasm");
    let (ok, text) = run(&tool, &[p("sign"), p("-i"), &unsigned, p("-o"), &anonymous, p("-k"), &sk]);
    assert!(ok, "{text}");
    assert_eq!(weir_vet::verify(home.path(), &anonymous, None).unwrap().signers[0].name, "upstream");
}

#[test]
fn co_signatures_mix_both_tools_in_either_order() {
    let Some(tool) = wasmsign2() else { return };
    let work = tempfile::tempdir().unwrap();
    let weir_keys = weir_vet::key_generate(&work.path().join("weir")).unwrap();
    let (sk, pk) = (work.path().join("ws.key"), work.path().join("ws.pub"));
    assert!(run(&tool, &[p("keygen"), p("-k"), &sk, p("-K"), &pk]).0);

    // The real connector: weir signs first, wasmsign2 adds its signature.
    let file = write(work.path(), "airtable.wasm", weir_artifacts::AIRTABLE);
    weir_vet::sign(&file, &weir_keys.secret_key, None).unwrap();
    let both = work.path().join("airtable.both.wasm");
    let (ok, text) = run(&tool, &[p("sign"), p("-i"), &file, p("-o"), &both, p("-k"), &sk, p("-K"), &pk]);
    assert!(ok, "{text}");
    let nobody = tempfile::tempdir().unwrap();
    for key in [&weir_keys.public_key, &pk] {
        weir_vet::verify(nobody.path(), &both, Some(key)).unwrap();
        let (ok, text) = run(&tool, &[p("verify"), p("-i"), &both, p("-K"), key]);
        assert!(ok, "wasmsign2 refused the co-signed connector for {}: {text}", key.display());
    }

    // wasmsign2 signs first, weir co-signs.
    let small = write(work.path(), "x.wasm", &component(&manifest("x", "0.1.0", &["{base_url}"])));
    let first = work.path().join("x.ws.wasm");
    assert!(run(&tool, &[p("sign"), p("-i"), &small, p("-o"), &first, p("-k"), &sk, p("-K"), &pk]).0);
    let signed = weir_vet::sign(&first, &weir_keys.secret_key, None).unwrap();
    assert_eq!(signed.signed_by.len(), 2);
    for key in [&weir_keys.public_key, &pk] {
        weir_vet::verify(nobody.path(), &first, Some(key)).unwrap();
        let (ok, text) = run(&tool, &[p("verify"), p("-i"), &first, p("-K"), key]);
        assert!(ok, "{text}");
    }
}
