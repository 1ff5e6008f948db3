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

/// The name of the custom section holding a signature (WebAssembly tool conventions, as
/// `wasmsign2` and `weir sign` write it).
pub const SIGNATURE_SECTION: &str = "signature";

/// The packaging step, as `weir package` and the bundled connectors' build run it: the
/// component with `manifest_toml` as its one manifest section. An earlier manifest section is
/// dropped (packaging again replaces the manifest); a signed component (a new manifest would
/// void the signature) or anything but a component is refused, saying what to do.
pub fn package(component: &[u8], manifest_toml: &str) -> Result<Vec<u8>, String> {
    const HEADER_LEN: usize = 8;
    match component.get(..HEADER_LEN) {
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => {}
        Some([0, b'a', b's', b'm', _, _, 0, 0]) => {
            return Err("it is a core module, not a component: build the crate for wasm32-wasip2, \
                        whose linker writes components"
                .into());
        }
        _ => return Err("it is not WebAssembly (no WebAssembly header)".into()),
    }
    let mut out = component[..HEADER_LEN].to_vec();
    let mut at = HEADER_LEN;
    while at < component.len() {
        let start = at;
        let id = component[at];
        at += 1;
        let (len, read) = read_leb128(&component[at..]).ok_or("a section's length is cut off")?;
        at += read;
        let end =
            at.checked_add(len).filter(|end| *end <= component.len()).ok_or("a section runs past the end")?;
        let name = match id {
            0 => {
                let (n, r) = read_leb128(&component[at..end]).ok_or("a custom section's name is cut off")?;
                Some(component.get(at + r..at + r + n).ok_or("a custom section's name is cut off")?)
            }
            _ => None,
        };
        if name == Some(SIGNATURE_SECTION.as_bytes()) {
            return Err("the component is signed, and a new manifest would void the signature: \
                        package the unsigned build, then sign the result (weir sign)"
                .into());
        }
        if name != Some(SECTION.as_bytes()) {
            out.extend_from_slice(&component[start..end]);
        }
        at = end;
    }
    Ok(embed(&out, manifest_toml))
}

/// An unsigned LEB128 of at most 5 bytes (a u32, as WebAssembly sizes are), and its length.
fn read_leb128(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().take(5).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return usize::try_from(value).ok().filter(|v| *v <= u32::MAX as usize).map(|v| (v, i + 1));
        }
    }
    None
}
