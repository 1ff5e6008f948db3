//! What a user of `weir key|sign|verify|trust|connector` notices: signatures that hold or
//! break, refused signers, capability review on upgrade, pins and rollbacks, and refusals
//! that name the command to run and leave the weir directory as it was.

mod common;

use common::*;
use weir_vet::keys::{self, PublicKey};
use weir_vet::{Error, InstallOptions, Refusal, Store, signature};

const ALLOW_UNSIGNED: InstallOptions = InstallOptions { allow_unsigned: true, approve: false };

fn refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> Refusal {
    match result {
        Err(Error::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_key_signs_and_the_same_key_verifies_through_the_commands() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let generated = weir_vet::key_generate(&work.path().join("keys")).unwrap();
    let file = write(work.path(), "x.wasm", &component(&manifest("x", "0.1.0", &["{base_url}"])));

    let signed = weir_vet::sign(&file, &generated.secret_key, None).unwrap();
    assert_eq!((signed.name.as_str(), signed.version.as_str()), ("x", "0.1.0"));
    assert_eq!(signed.key_id, generated.key_id);

    let verified = weir_vet::verify(home.path(), &file, Some(&generated.public_key)).unwrap();
    assert_eq!(verified.signers[0].key_id, generated.key_id.to_string());

    // Without --key, the trust store decides: empty, so the signer is unknown.
    let err = weir_vet::verify(home.path(), &file, None).unwrap_err().to_string();
    assert!(err.contains("you do not trust") && err.contains("weir trust add KEY --name NAME"), "{err}");
    weir_vet::trust_add(home.path(), &generated.public_key, "me").unwrap();
    let verified = weir_vet::verify(home.path(), &file, None).unwrap();
    assert_eq!(verified.signers[0].name, "me");
    assert!(verified.to_string().contains("signed by me"), "{verified}");
}

#[test]
fn signing_refuses_a_component_without_its_manifest() {
    let work = tempfile::tempdir().unwrap();
    let generated = weir_vet::key_generate(work.path()).unwrap();
    let bare = write(work.path(), "bare.wasm", EMPTY_COMPONENT);
    let err = weir_vet::sign(&bare, &generated.secret_key, None).unwrap_err();
    assert!(matches!(err, Error::NotAConnector { .. }), "{err}");
    assert_eq!(std::fs::read(&bare).unwrap(), EMPTY_COMPONENT);
}

#[test]
fn one_flipped_byte_anywhere_fails_verification() {
    let key = keys::generate();
    let signed = signed("x", "0.1.0", &["{base_url}"], &key);
    let public = [key.public_key()];
    assert!(signature::verify(&signed, &public).is_ok());
    let manifest_at = find(&signed, b"lakeflow-manifest").expect("the manifest section");
    assert!(manifest_at > find(&signed, b"signature").unwrap(), "the signature must come first");
    for index in 0..signed.len() {
        for bit in [0x01, 0x80] {
            let mut flipped = signed.clone();
            flipped[index] ^= bit;
            assert!(
                signature::verify(&flipped, &public).is_err(),
                "flipping bit {bit:#x} of byte {index} of {} went unnoticed",
                signed.len()
            );
        }
    }
}

#[test]
fn the_real_airtable_component_signs_verifies_and_breaks_on_any_sampled_flip() {
    let key = keys::generate();
    let signed = signature::sign(weir_artifacts::AIRTABLE, &key).unwrap();
    let public = [key.public_key()];
    assert_eq!(signature::verify(&signed, &public).unwrap(), [0]);
    // The manifest section, the signature section, and a spread of code bytes.
    let manifest_at = find(&signed, b"lakeflow-manifest").unwrap();
    let mut positions: Vec<usize> = (0..200).chain(manifest_at..manifest_at + 400).collect();
    positions.extend((0..signed.len()).step_by(signed.len() / 300));
    for index in positions.into_iter().filter(|&i| i < signed.len()) {
        let mut flipped = signed.clone();
        flipped[index] ^= 0x01;
        assert!(signature::verify(&flipped, &public).is_err(), "byte {index} went unnoticed");
    }
    // It stays a loadable connector: the manifest still parses after signing.
    let manifest = weir_runtime::Manifest::from_component(&signed).unwrap();
    assert_eq!(manifest.name, "airtable");
}

#[test]
fn a_co_signature_by_a_second_key_verifies_with_either_key() {
    let home = tempfile::tempdir().unwrap();
    let (alice, bob) = (trusted_key(home.path(), "alice"), trusted_key(home.path(), "bob"));
    let once = signed("x", "0.1.0", &["{base_url}"], &alice);
    let twice = signature::sign(&once, &bob).unwrap();
    assert_eq!(signature::verify(&twice, &[alice.public_key()]).unwrap(), [0]);
    assert_eq!(signature::verify(&twice, &[bob.public_key()]).unwrap(), [0]);
    assert_eq!(signature::verify(&twice, &[bob.public_key(), alice.public_key()]).unwrap(), [0, 1]);

    let store = Store::open(home.path()).unwrap();
    let installed = store.install(&twice, "file:twice.wasm", InstallOptions::default()).unwrap();
    let names: Vec<_> = installed.connector.signers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    // Either signer alone is enough: distrusting one leaves the other.
    weir_vet::trust_remove(home.path(), "alice").unwrap();
    let resolved = store.resolve("x").unwrap().unwrap();
    assert!(store.load(&resolved).is_ok());
}

#[test]
fn an_untrusted_signer_is_refused_and_nothing_changes() {
    let home = tempfile::tempdir().unwrap();
    trusted_key(home.path(), "alice");
    let stranger = keys::generate();
    let store = Store::open(home.path()).unwrap();
    let before = snapshot(home.path());
    let bytes = signed("x", "0.1.0", &["{base_url}"], &stranger);
    let refused = refusal(store.install(&bytes, "file:x.wasm", InstallOptions::default()));
    let message = refused.to_string();
    assert!(matches!(refused, Refusal::UnknownSigner { .. }), "{message}");
    assert!(message.contains(&stranger.public_key().key_id().to_string()), "{message}");
    assert!(message.contains("weir trust add KEY --name NAME"), "{message}");
    assert_eq!(snapshot(home.path()), before);
    assert!(store.resolve("x").unwrap().is_none());
}

#[test]
fn unsigned_needs_leave_and_is_recorded_and_reported_as_unsigned() {
    let home = tempfile::tempdir().unwrap();
    let store = Store::open(home.path()).unwrap();
    let bytes = component(&manifest("x", "0.1.0", &["{base_url}"]));
    let before = snapshot(home.path());
    let refused = refusal(store.install(&bytes, "file:x.wasm", InstallOptions::default()));
    assert!(matches!(refused, Refusal::Unsigned { .. }));
    assert!(refused.to_string().contains("--allow-unsigned"), "{refused}");
    assert_eq!(snapshot(home.path()), before);

    let installed = store.install(&bytes, "file:x.wasm", ALLOW_UNSIGNED).unwrap();
    assert!(installed.to_string().contains("UNSIGNED"), "{installed}");
    let resolved = store.resolve("x").unwrap().unwrap();
    assert!(resolved.unsigned);
    assert_eq!(store.load(&resolved).unwrap(), bytes);
}

#[test]
fn a_tampered_component_is_refused_even_when_unsigned_ones_are_allowed() {
    let (home, key, store) = home_trusting_alice();
    let good = signed("x", "0.1.0", &["{base_url}"], &key);
    // Widen the manifest after signing: same length, another origin.
    let tampered = replace(&good, b"\"{base_url}\"]", b"\"http://e.x\"]");
    let before = snapshot(home.path());
    for options in [InstallOptions::default(), ALLOW_UNSIGNED] {
        let refused = refusal(store.install(&tampered, "file:x.wasm", options));
        assert!(matches!(refused, Refusal::Tampered { .. }), "{refused}");
        assert!(refused.to_string().contains("changed after it was signed"), "{refused}");
    }
    assert_eq!(snapshot(home.path()), before);
}

#[test]
fn an_upgrade_that_adds_an_origin_waits_for_approval_and_diff_shows_it() {
    let (home, key, store) = home_trusting_alice();
    let v1 =
        store.install(&signed("x", "0.1.0", &["{base_url}"], &key), "file:v1", InstallOptions::default());
    assert!(v1.unwrap().connector.pinned, "the first version installed is pinned");
    let wider = signed("x", "0.2.0", &["{base_url}", "https://new.example"], &key);
    let v2 = store.install(&wider, "file:v2", InstallOptions::default()).unwrap();
    assert!(!v2.connector.pinned && !v2.connector.approved);
    assert!(v2.to_string().contains("weir connector upgrade x --to 0.2.0"), "{v2}");

    let diff = store.diff("x", "0.1.0", "0.2.0").unwrap();
    let shown = diff.to_string();
    assert!(shown.contains("+ network origin https://new.example"), "{shown}");
    assert!(diff.needs_approval);

    let before = snapshot(home.path());
    let refused = refusal(store.upgrade("x", "0.2.0", false));
    let message = refused.to_string();
    assert!(matches!(refused, Refusal::Unapproved { .. }), "{message}");
    assert!(message.contains("+ network origin https://new.example"), "{message}");
    assert!(message.contains("weir connector upgrade x --to 0.2.0 --approve"), "{message}");
    assert_eq!(snapshot(home.path()), before);
    assert_eq!(store.resolve("x").unwrap().unwrap().version, "0.1.0");
    // Pinning is no way around the review.
    assert!(matches!(refusal(store.pin("x@0.2.0")), Refusal::Unapproved { .. }));
    assert_eq!(snapshot(home.path()), before);

    let upgraded = store.upgrade("x", "0.2.0", true).unwrap();
    assert_eq!((upgraded.version.as_str(), upgraded.previous.as_deref()), ("0.2.0", Some("0.1.0")));
    assert_eq!(store.resolve("x").unwrap().unwrap().version, "0.2.0");
    let lock = std::fs::read_to_string(home.path().join("connectors/weir.lock")).unwrap();
    assert!(lock.contains("https://new.example") && lock.contains("name = \"alice\""), "{lock}");
}

#[test]
fn an_upgrade_that_only_removes_passes_and_rollback_returns_to_the_previous_pin() {
    let (_home, key, store) = home_trusting_alice();
    let both = ["{base_url}", "https://extra.example"];
    store.install(&signed("x", "0.1.0", &both, &key), "file:v1", InstallOptions::default()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let narrower = write(work.path(), "x-0.2.0.wasm", &signed("x", "0.2.0", &["{base_url}"], &key));

    // From a file: verified, installed and pinned in one step, as it asks for less.
    let upgraded = store.upgrade("x", narrower.to_str().unwrap(), false).unwrap();
    assert_eq!(upgraded.version, "0.2.0");
    let diff = upgraded.diff.unwrap();
    assert!(!diff.needs_approval && diff.to_string().contains("- network origin https://extra.example"));

    let rolled = store.rollback("x").unwrap();
    assert_eq!((rolled.version.as_str(), rolled.previous.as_deref()), ("0.1.0", Some("0.2.0")));
    assert_eq!(store.resolve("x").unwrap().unwrap().version, "0.1.0");
    assert!(matches!(refusal(store.rollback("x")), Refusal::NothingToRollBack { .. }));
    // Back to 0.2.0 by pin: it was approved before.
    assert_eq!(store.pin("x@0.2.0").unwrap().version, "0.2.0");
}

#[test]
fn a_pin_to_a_version_not_installed_is_refused_and_changes_nothing() {
    let (home, key, store) = home_trusting_alice();
    store
        .install(&signed("x", "0.1.0", &["{base_url}"], &key), "file:v1", InstallOptions::default())
        .unwrap();
    let before = snapshot(home.path());
    let refused = refusal(store.pin("x@0.3.0"));
    let message = refused.to_string();
    assert!(matches!(refused, Refusal::NotInstalled { .. }), "{message}");
    assert!(message.contains("installed: 0.1.0") && message.contains("weir connector install"), "{message}");
    assert!(matches!(refusal(store.upgrade("x", "0.3.0", true)), Refusal::NotInstalled { .. }));
    assert!(matches!(refusal(store.resolve("x@0.3.0")), Refusal::NotInstalled { .. }));
    assert_eq!(snapshot(home.path()), before);
}

#[test]
fn names_and_versions_that_would_escape_the_store_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let store = Store::open(home.path()).unwrap();
    for bad in ["../x", "/etc/passwd", "x/y", "..", "x@../../1.0.0", "x@1.0.0/..", "x@/1.0.0"] {
        assert!(matches!(store.info(bad), Err(Error::Name(_))), "info {bad}");
        assert!(matches!(store.resolve(bad), Err(Error::Name(_))), "resolve {bad}");
    }
    for bad in ["../x@1.0.0", "x@../1.0.0", "/abs@1.0.0"] {
        assert!(matches!(store.pin(bad), Err(Error::Name(_))), "pin {bad}");
        assert!(matches!(store.remove(bad), Err(Error::Name(_))), "remove {bad}");
    }
    // The manifest's version becomes a file name: one that is a path is refused at install.
    let escaping = component(&manifest("x", "../../../escaped", &["{base_url}"]));
    let err = store.install(&escaping, "file:e.wasm", ALLOW_UNSIGNED).unwrap_err();
    assert!(matches!(err, Error::Name(_)), "{err}");
    assert!(
        !home.path().join("escaped.wasm").exists()
            && !home.path().parent().unwrap().join("escaped.wasm").exists()
    );
    assert!(store.list().unwrap().connectors.is_empty());
}

#[test]
fn a_secret_sent_to_a_fixed_origin_needs_approval_at_install() {
    let (home, key, store) = home_trusting_alice();
    let leaky = manifest("x", "0.1.0", &["{base_url}", "https://collect.example"])
        .replace("origin = \"{base_url}\"", "origin = \"https://collect.example\"");
    let bytes = signature::sign(&component(&leaky), &key).unwrap();
    let before = snapshot(home.path());
    let refused = refusal(store.install(&bytes, "file:/tmp/leaky.wasm", InstallOptions::default()));
    let message = refused.to_string();
    assert!(matches!(refused, Refusal::FixedOriginSecret { .. }), "{message}");
    assert!(message.contains("https://collect.example") && message.contains("token"), "{message}");
    assert!(message.contains("weir connector install /tmp/leaky.wasm --approve"), "{message}");
    assert_eq!(snapshot(home.path()), before);
    let approved = InstallOptions { allow_unsigned: false, approve: true };
    let installed = store.install(&bytes, "file:/tmp/leaky.wasm", approved).unwrap();
    assert!(
        installed.to_string().contains("!! sends your secret token to https://collect.example"),
        "{installed}"
    );
}

#[test]
fn load_checks_the_stored_bytes_and_the_current_trust() {
    let (home, key, store) = home_trusting_alice();
    let bytes = signed("x", "0.1.0", &["{base_url}"], &key);
    store.install(&bytes, "file:x.wasm", InstallOptions::default()).unwrap();
    let resolved = store.resolve("x").unwrap().unwrap();
    assert_eq!(resolved, store.resolve("x@0.1.0").unwrap().unwrap());
    assert_eq!(resolved.sha256, weir_vet::store::sha256_hex(&bytes));
    assert_eq!(store.load(&resolved).unwrap(), bytes);

    // A file changed behind weir's back is refused before anything compiles it.
    let path = home.path().join("connectors/x/0.1.0.wasm");
    let mut changed = bytes.clone();
    *changed.last_mut().unwrap() ^= 1;
    std::fs::write(&path, &changed).unwrap();
    assert!(matches!(refusal(store.load(&resolved)), Refusal::ChangedOnDisk { .. }));
    std::fs::write(&path, &bytes).unwrap();

    // Distrusting the signer stops what is already installed.
    weir_vet::trust_remove(home.path(), "alice").unwrap();
    assert!(matches!(refusal(store.load(&resolved)), Refusal::UnknownSigner { .. }));
}

#[test]
fn remove_unpins_and_leftovers_of_a_crash_are_ignored() {
    let (home, key, store) = home_trusting_alice();
    // A crash after writing a component file but before the lock: no lock entry for it.
    std::fs::create_dir_all(home.path().join("connectors/x")).unwrap();
    std::fs::write(home.path().join("connectors/x/0.1.0.wasm"), b"half").unwrap();
    std::fs::write(home.path().join("connectors/.weir.lock.tmp-1-0"), b"version = ").unwrap();
    assert!(store.list().unwrap().connectors.is_empty());
    assert!(store.resolve("x").unwrap().is_none());

    let bytes = signed("x", "0.1.0", &["{base_url}"], &key);
    store.install(&bytes, "file:x.wasm", InstallOptions::default()).unwrap();
    assert_eq!(std::fs::read(home.path().join("connectors/x/0.1.0.wasm")).unwrap(), bytes);
    let listed = store.list().unwrap();
    assert_eq!(listed.connectors.len(), 1);
    assert!(listed.to_string().contains("pinned"), "{listed}");
    assert!(serde_json::to_string(&listed).unwrap().contains("\"version\":\"0.1.0\""));

    let removed = store.remove("x@0.1.0").unwrap();
    assert!(removed.was_pinned && removed.to_string().contains("bundled version"), "{removed}");
    assert!(store.resolve("x").unwrap().is_none(), "a bare name falls back to the bundled connector");
    assert!(!home.path().join("connectors/x/0.1.0.wasm").exists());
}

#[test]
fn reinstalling_the_same_bytes_is_a_no_op_and_other_bytes_under_a_taken_version_are_refused() {
    let (home, key, store) = home_trusting_alice();
    let bytes = signed("x", "0.1.0", &["{base_url}"], &key);
    store.install(&bytes, "file:x.wasm", InstallOptions::default()).unwrap();
    let before = snapshot(home.path());
    assert!(store.install(&bytes, "file:x.wasm", InstallOptions::default()).unwrap().already_installed);
    let other = signed("x", "0.1.0", &["{base_url}", "https://other.example"], &key);
    let refused = refusal(store.install(&other, "file:y.wasm", InstallOptions::default()));
    assert!(refused.to_string().contains("weir connector remove x@0.1.0"), "{refused}");
    assert_eq!(snapshot(home.path()), before);
}

#[test]
fn a_component_by_path_runs_only_signed_or_with_leave() {
    let home = tempfile::tempdir().unwrap();
    let key = trusted_key(home.path(), "alice");
    let signed_bytes = signed("x", "0.1.0", &["{base_url}"], &key);
    let ok = weir_vet::check_component(home.path(), &signed_bytes, "x.wasm", false).unwrap();
    assert!(!ok.unsigned && ok.signers[0].name == "alice");
    let unsigned = component(&manifest("x", "0.1.0", &["{base_url}"]));
    let err = weir_vet::check_component(home.path(), &unsigned, "x.wasm", false).unwrap_err().to_string();
    assert!(err.contains("allow-unsigned"), "{err}");
    let allowed = weir_vet::check_component(home.path(), &unsigned, "x.wasm", true).unwrap();
    assert!(allowed.unsigned && allowed.to_string().contains("UNSIGNED"));
}

#[test]
fn trust_commands_read_wasmsign2_key_files() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let generated = weir_vet::key_generate(work.path()).unwrap();
    let added = weir_vet::trust_add(home.path(), &generated.public_key, "ci").unwrap();
    assert_eq!(added.key_id, generated.key_id);
    let listed = weir_vet::trust_list(home.path()).unwrap();
    assert!(listed.to_string().contains(&generated.key_id.to_string()));
    // A secret key given where a public key belongs is refused with the reason.
    let err = weir_vet::trust_add(home.path(), &generated.secret_key, "oops").unwrap_err().to_string();
    assert!(err.contains("give the public key"), "{err}");
    assert_eq!(PublicKey::read(&home.path().join("trust/ci.pub")).unwrap().key_id(), generated.key_id);
    weir_vet::trust_remove(home.path(), "ci").unwrap();
    assert!(weir_vet::trust_list(home.path()).unwrap().keys.is_empty());
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = find(bytes, from).expect("the text to replace");
    let mut out = bytes.to_vec();
    out[at..at + from.len()].copy_from_slice(to);
    out
}
