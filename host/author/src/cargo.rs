//! Building guest crates for `wasm32-wasip2` with cargo.
//!
//! cargo reports what it built as JSON messages on stdout (`--message-format`); the `.wasm`
//! files are read from those, so that wherever the target folder is (`--target-dir`,
//! `CARGO_TARGET_DIR`, a `.cargo/config.toml`), the component is found. Diagnostics go to
//! stderr as cargo renders them.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target every guest is built for.
pub const TARGET: &str = "wasm32-wasip2";

/// A component cargo built: the library target's name and its `.wasm` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The library target's name (the package name with `-` as `_`, unless renamed).
    pub name: String,
    pub wasm: PathBuf,
}

/// Why a build failed.
#[derive(Debug)]
pub enum BuildError {
    /// cargo could not be started.
    Spawn { cargo: OsString, error: std::io::Error },
    /// cargo ran and failed; its diagnostics went to stderr.
    Failed { status: std::process::ExitStatus, target_missing: bool },
    /// cargo succeeded but built no component.
    NoComponent { manifest_path: PathBuf },
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Spawn { cargo, error } => {
                write!(f, "cannot run {}: {error}; is Rust installed (rustup.rs)?", cargo.to_string_lossy())
            }
            BuildError::Failed { status, target_missing: true } => write!(
                f,
                "cargo build failed ({status}): the {TARGET} target is not installed; run \
                 `rustup target add {TARGET}`"
            ),
            BuildError::Failed { status, target_missing: false } => {
                write!(f, "cargo build failed ({status}); its errors are above")
            }
            BuildError::NoComponent { manifest_path } => write!(
                f,
                "cargo built no .wasm for {}; a connector crate needs `[lib] crate-type = [\"cdylib\"]`",
                manifest_path.display()
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// The cargo to run: the one that runs us, if any (`$CARGO`), else `cargo` on the path.
fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Builds the crate of `manifest_path` in release for [`TARGET`] and returns the components
/// cargo wrote.
pub fn build(manifest_path: &Path) -> Result<Vec<Artifact>, BuildError> {
    let cargo = cargo();
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--release", "--target", TARGET, "--message-format=json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(manifest_path);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|error| BuildError::Spawn { cargo: cargo.clone(), error })?;
    // cargo's progress and the compiler's diagnostics pass through as they come, watched for
    // the sign of a missing target.
    let stderr = child.stderr.take().map(|stderr| {
        std::thread::spawn(move || {
            let mut target_missing = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                target_missing |= line.contains("target may not be installed")
                    || line.contains("can't find crate for `core`");
                eprintln!("{line}");
            }
            target_missing
        })
    });
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        // A read error only loses messages; the exit status below still decides.
        let _ = out.read_to_string(&mut stdout);
    }
    let status = child.wait().map_err(|error| BuildError::Spawn { cargo: cargo.clone(), error })?;
    let target_missing = stderr.and_then(|t| t.join().ok()).unwrap_or(false);
    if !status.success() {
        return Err(BuildError::Failed { status, target_missing });
    }
    let artifacts = artifacts(&stdout);
    if artifacts.is_empty() {
        return Err(BuildError::NoComponent { manifest_path: manifest_path.to_path_buf() });
    }
    Ok(artifacts)
}

/// The `.wasm` files among cargo's `compiler-artifact` messages.
fn artifacts(messages: &str) -> Vec<Artifact> {
    let mut out = Vec::new();
    for message in messages.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let name = message["target"]["name"].as_str().unwrap_or_default();
        for file in message["filenames"].as_array().into_iter().flatten().filter_map(|f| f.as_str()) {
            if file.ends_with(".wasm") {
                out.push(Artifact { name: name.to_string(), wasm: PathBuf::from(file) });
            }
        }
    }
    out
}

/// The `Cargo.toml` in `dir`, or `dir` itself when it names one.
pub fn manifest_path(dir: &Path) -> PathBuf {
    if dir.file_name().is_some_and(|n| n == "Cargo.toml") {
        dir.to_path_buf()
    } else {
        dir.join("Cargo.toml")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_found_in_cargos_messages() {
        let messages = [
            r#"{"reason":"compiler-artifact","package_id":"a","target":{"kind":["lib"],"crate_types":["lib"],"name":"serde","src_path":"x"},"filenames":["/t/wasm32-wasip2/release/deps/libserde-1.rlib","/t/x.rmeta"],"fresh":true}"#,
            r#"{"reason":"compiler-artifact","package_id":"b","target":{"kind":["cdylib","rlib"],"crate_types":["cdylib","rlib"],"name":"my_conn","src_path":"y"},"filenames":["/t/wasm32-wasip2/release/my_conn.wasm","/t/wasm32-wasip2/release/libmy_conn.rlib"],"fresh":false}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        assert_eq!(
            artifacts(&messages),
            [Artifact { name: "my_conn".into(), wasm: "/t/wasm32-wasip2/release/my_conn.wasm".into() }]
        );
        let escaped =
            r#"{"reason":"compiler-artifact","target":{"name":"q"},"filenames":["C:\\a \"b\"\\q.wasm"]}"#;
        assert_eq!(artifacts(escaped)[0].wasm, PathBuf::from(r#"C:\a "b"\q.wasm"#));
    }
}
