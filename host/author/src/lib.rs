//! Authoring tools for weir connectors: `weir new` scaffolds a crate ([`scaffold`]), `weir
//! build` builds it for `wasm32-wasip2` ([`cargo`]) and packages it, and `weir package`
//! packages any component with a `manifest.toml` ([`package`]).
//!
//! Packaging embeds the manifest as the component's `lakeflow-manifest` custom section, with
//! the same function that packages the bundled connectors
//! ([`weir_runtime::manifest::package`]), after checking what a run would check: the manifest
//! parses and validates (parameters, origins, auth, limits, contract version), and the
//! component compiles, imports only what the sandbox offers, and exports the contract version
//! the manifest declares.

pub mod cargo;
pub mod scaffold;

use std::path::{Path, PathBuf};

use weir_runtime::{Manifest, Runtime, RuntimeConfig};

/// Why a connector could not be scaffolded, built or packaged.
#[derive(Debug, thiserror::Error)]
pub enum AuthorError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{0}")]
    Invalid(String),
    #[error("manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("{path} cannot be packaged: {message}")]
    Package { path: PathBuf, message: String },
    #[error(transparent)]
    Build(#[from] cargo::BuildError),
}

/// A packaged component and what its manifest says.
#[derive(Debug)]
pub struct Packaged {
    pub bytes: Vec<u8>,
    pub manifest: Manifest,
}

/// Packages `component` with the manifest at `manifest_path`, checked as a run would check it.
/// `component_path` names the component in errors.
pub fn package(
    component: &[u8],
    component_path: &Path,
    manifest_path: &Path,
) -> Result<Packaged, AuthorError> {
    let text = std::fs::read_to_string(manifest_path)
        .map_err(|error| AuthorError::Io { path: manifest_path.to_path_buf(), error })?;
    let manifest = Manifest::parse(text.as_bytes())
        .map_err(|e| AuthorError::Manifest { path: manifest_path.to_path_buf(), message: e.to_string() })?;
    let package_error =
        |message: String| AuthorError::Package { path: component_path.to_path_buf(), message };
    let bytes = weir_runtime::manifest::package(component, &text).map_err(package_error)?;
    // What `weir run` would do first: compile it, link it against the sandbox, find the contract.
    let runtime =
        Runtime::new(RuntimeConfig::with_default_cache()).map_err(|e| package_error(e.to_string()))?;
    runtime.load(&bytes).map_err(|e| package_error(e.to_string()))?;
    Ok(Packaged { bytes, manifest })
}

/// What `weir build` made.
#[derive(Debug)]
pub struct Built {
    pub path: PathBuf,
    pub manifest: Manifest,
}

/// Builds the connector crate in `crate_dir` in release for `wasm32-wasip2`, packages it with
/// the crate's `manifest.toml`, and writes it to `out` (default
/// `<crate_dir>/target/weir/<manifest name>.wasm`).
pub fn build(crate_dir: &Path, out: Option<&Path>) -> Result<Built, AuthorError> {
    let manifest_path = crate_dir.join("manifest.toml");
    if !manifest_path.is_file() {
        return Err(AuthorError::Invalid(format!(
            "{} has no manifest.toml; a connector crate keeps its manifest beside Cargo.toml (see weir new)",
            crate_dir.display()
        )));
    }
    let artifacts = cargo::build(&cargo::manifest_path(crate_dir))?;
    let wasm = match artifacts.as_slice() {
        [one] => one.wasm.clone(),
        many => {
            return Err(AuthorError::Invalid(format!(
                "cargo built {} components ({}); build one connector crate at a time",
                many.len(),
                many.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
    };
    let component = std::fs::read(&wasm).map_err(|error| AuthorError::Io { path: wasm.clone(), error })?;
    let packaged = package(&component, &wasm, &manifest_path)?;
    let path = match out {
        Some(out) => out.to_path_buf(),
        None => crate_dir.join("target/weir").join(format!("{}.wasm", packaged.manifest.name)),
    };
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)
            .map_err(|error| AuthorError::Io { path: folder.to_path_buf(), error })?;
    }
    std::fs::write(&path, &packaged.bytes).map_err(|error| AuthorError::Io { path: path.clone(), error })?;
    Ok(Built { path, manifest: packaged.manifest })
}

/// The guest SDK of the weir this was built from: what `weir new` points new crates at.
pub fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/sdk")
}
