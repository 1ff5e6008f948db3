//! The compile cache: precompiled components on disk, keyed by the component's SHA-256
//! and the engine's configuration.
//!
//! Deserializing precompiled code is `unsafe` in wasmtime because the bytes are trusted
//! to be wasmtime's own output. They are: the cache only ever loads files that this host
//! wrote into its own directory, through a `cap-std` handle that cannot be pointed
//! elsewhere, under names derived from digests, never from a connector or a user.

use std::hash::{Hash, Hasher};
use std::path::Path;

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use wasmtime::component::Component;

pub(crate) struct CompileCache {
    dir: Dir,
    engine_key: String,
}

impl CompileCache {
    pub(crate) fn open(path: &Path, engine: &wasmtime::Engine) -> Result<CompileCache, String> {
        std::fs::create_dir_all(path)
            .map_err(|e| format!("cannot create cache folder {}: {e}", path.display()))?;
        let dir = Dir::open_ambient_dir(path, ambient_authority())
            .map_err(|e| format!("cannot open cache folder {}: {e}", path.display()))?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(CompileCache { dir, engine_key: format!("{:016x}", hasher.finish()) })
    }

    fn name(&self, sha256: &str) -> String {
        format!("{sha256}-{}.cwasm", self.engine_key)
    }

    pub(crate) fn get(&self, engine: &wasmtime::Engine, sha256: &str) -> Option<Component> {
        let bytes = self.dir.read(self.name(sha256)).ok()?;
        // SAFETY: see the module docs; the file is this cache's own output for this engine.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!("compile cache: ignoring unreadable entry for {sha256}: {e}");
                None
            }
        }
    }

    pub(crate) fn put(&self, sha256: &str, component: &Component) -> Result<(), String> {
        let bytes = component.serialize().map_err(|e| e.to_string())?;
        let name = self.name(sha256);
        let tmp = format!("{name}.{}.tmp", std::process::id());
        self.dir.write(&tmp, bytes).map_err(|e| e.to_string())?;
        // A rename is atomic, so a concurrent reader sees the whole file or none.
        self.dir.rename(&tmp, &self.dir, &name).map_err(|e| e.to_string())
    }
}
