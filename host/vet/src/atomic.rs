//! Crash-safe writes inside a `cap-std` directory: a file is written whole under a temporary
//! name, flushed to disk, then renamed over its final name. A reader (or a crash) sees the
//! old file or the new one, never half of one; a temporary file left by a crash starts with a
//! dot and is ignored by every listing.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::fs::{Dir, OpenOptions};

/// Writes `bytes` to `name` in `dir` atomically.
pub(crate) fn write(dir: &Dir, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let temp = format!(".{name}.tmp-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let result = (|| {
        let mut file = dir.open_with(&temp, OpenOptions::new().write(true).create_new(true))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        dir.rename(&temp, dir, name)?;
        sync_dir(dir);
        Ok(())
    })();
    if result.is_err() {
        let _ = dir.remove_file(&temp);
    }
    result
}

/// Flushes a directory's entries (the rename) to disk. Best effort: a file system that
/// cannot sync a directory still gets an atomic rename.
pub(crate) fn sync_dir(dir: &Dir) {
    if let Ok(handle) = dir.try_clone() {
        let _ = handle.into_std_file().sync_all();
    }
}

/// An exclusive lock on a store, held while one command reads, changes and writes it, so
/// that two weir processes never interleave their changes. Readers take no lock: the
/// atomic renames already give them a whole file.
pub(crate) struct Exclusive {
    _file: std::fs::File,
}

impl Exclusive {
    /// Waits for, then takes, the lock on `dir/name` (the file is created if missing).
    pub(crate) fn take(dir: &Dir, name: &str) -> std::io::Result<Exclusive> {
        let file = dir.open_with(name, OpenOptions::new().read(true).write(true).create(true))?.into_std();
        file.lock()?;
        Ok(Exclusive { _file: file })
    }
}
