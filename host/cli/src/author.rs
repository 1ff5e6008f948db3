//! `weir new`, `weir build` and `weir package`: printing what weir-author did.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;
use weir_runtime::terminal::escape;

pub fn new_connector(name: &str, dir: &Path, sdk: Option<&Path>, json: bool) -> Result<()> {
    let sdk = sdk.map_or_else(weir_author::default_sdk, Path::to_path_buf);
    let files = weir_author::scaffold::new_connector(dir, name, &sdk)?;
    let root = dir.join(name);
    if json {
        println!("{}", json!({"crate": root, "files": files, "sdk": sdk}));
    } else {
        println!("created {} ({} files):", escape(&root.display().to_string()), files.len());
        for file in &files {
            println!("  {}", escape(&file.strip_prefix(&root).unwrap_or(file).display().to_string()));
        }
        println!(
            "next: cd {} && weir build && weir test --replay fixtures/{name}.cassette",
            escape(&root.display().to_string())
        );
    }
    Ok(())
}

pub fn build(dir: &Path, out: Option<&Path>, json: bool) -> Result<()> {
    let built = weir_author::build(dir, out)?;
    report(&built.path, &built.manifest, json)
}

pub fn package(component: &Path, manifest: &Path, out: &Path, json: bool) -> Result<()> {
    let bytes = std::fs::read(component).with_context(|| format!("cannot read {}", component.display()))?;
    let packaged = weir_author::package(&bytes, component, manifest)?;
    std::fs::write(out, &packaged.bytes).with_context(|| format!("cannot write {}", out.display()))?;
    report(out, &packaged.manifest, json)
}

fn report(path: &Path, manifest: &weir_runtime::Manifest, json: bool) -> Result<()> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if json {
        println!(
            "{}",
            json!({"path": path, "name": manifest.name, "version": manifest.version,
                   "contract": manifest.contract.to_string(), "bytes": size})
        );
    } else {
        println!(
            "packaged {} {} ({}, {size} bytes) into {}",
            escape(&manifest.name),
            escape(&manifest.version),
            manifest.contract,
            escape(&path.display().to_string())
        );
    }
    Ok(())
}
