//! Connector manifests, as TOML text and inside a component: any bytes must parse or fail with a
//! `ManifestError`; a manifest that parses writes back to TOML and parses to an equal value; the
//! same text packaged in a component's `lakeflow-manifest` section reads back the same, or fails
//! the same way.
//!
//! Every input is tried both ways: as manifest text (`Manifest::parse`) and as a component's bytes
//! (`Manifest::from_component`, which walks the binary with wasmparser before anything compiles).
use weir_runtime::Manifest;
use weir_runtime::manifest::{ManifestError, embed};

/// The smallest component: the magic, then the component version and layer.
const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

/// One execution: panics when the property does not hold.
pub fn run(input: &[u8]) {
    let parsed = Manifest::parse(input);
    match &parsed {
        Ok(manifest) => round_trip(manifest),
        Err(error) => {
            assert!(matches!(error, ManifestError::Parse(_) | ManifestError::Invalid(_)), "{error}");
        }
    }
    if let Ok(text) = std::str::from_utf8(input) {
        match (&parsed, Manifest::from_component(&embed(EMPTY_COMPONENT, text))) {
            (Ok(manifest), Ok(packaged)) => assert_eq!(&packaged, manifest),
            (Err(_), Err(_)) => {}
            (parsed, packaged) => panic!("as text: {parsed:?}\npackaged: {packaged:?}"),
        }
    }
    match Manifest::from_component(input) {
        Ok(manifest) => round_trip(&manifest),
        // Errors are shown to the user: writing one must not panic either.
        Err(error) => _ = error.to_string(),
    }
}

/// A manifest written back as TOML parses to the same manifest.
fn round_trip(manifest: &Manifest) {
    let text = toml::to_string(manifest).expect("a manifest serializes to TOML");
    let again = Manifest::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(&again, manifest, "{text}");
}
