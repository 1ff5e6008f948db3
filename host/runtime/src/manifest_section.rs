//! The manifest's custom section, on its own without dependencies, so that
//! `host/artifacts/build.rs` packages components with this very code.

/// The name of the custom section holding the manifest (TOML text).
pub const SECTION: &str = "lakeflow-manifest";

/// Appends `n` as an unsigned LEB128 number, the WebAssembly binary format's encoding of sizes
/// and counts.
pub fn leb128(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends a manifest as a custom section to a component's bytes (the packaging step).
pub fn embed(component: &[u8], manifest_toml: &str) -> Vec<u8> {
    let mut payload = Vec::new();
    leb128(SECTION.len(), &mut payload);
    payload.extend_from_slice(SECTION.as_bytes());
    payload.extend_from_slice(manifest_toml.as_bytes());
    let mut out = component.to_vec();
    out.push(0); // custom section id
    leb128(payload.len(), &mut out);
    out.extend_from_slice(&payload);
    out
}
