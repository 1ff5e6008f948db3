//! The independent Delta reader: `tests/py/read_delta.py`, run by a Python interpreter that the
//! harness prepares itself, so that `cargo test --workspace` needs nothing run before it.
//!
//! On first use, a virtual environment is created under the target folder
//! (`target/weir-python/reader`) and the packages of `requirements-test.txt` are installed into
//! it (Python's `deltalake` and `pyarrow`: a reader that shares no code with weir-delta). Later
//! runs reuse it. It is built in a temporary folder and renamed into place when complete, so a
//! run interrupted half-way leaves nothing that a later run would mistake for ready. Set
//! `WEIR_TEST_PYTHON` to a Python that already has the packages to skip all of it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap_or_else(|_| PathBuf::from(".."))
}

/// The target folder the running test binary was built into.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    // Test binaries live in <target>/<profile>/deps/.
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| workspace().join("target"))
}

/// A Python with the packages of `requirements` (a file under the workspace root) installed,
/// in its own virtual environment named `name` under the target folder; created on first use.
pub fn python_with(name: &str, requirements: &str) -> Result<PathBuf, String> {
    let env = target_dir().join("weir-python").join(name);
    let python = env.join("bin/python");
    let requirements = workspace().join(requirements);
    let wanted = std::fs::read_to_string(&requirements)
        .map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
    let ready = || {
        python.exists()
            && std::fs::read_to_string(env.join("requirements.txt")).is_ok_and(|have| have == wanted)
    };
    // A venv's scripts name its folder; relocating one is fine for `python -m`, which is all
    // the harness runs.
    install_aside(&env, ready, |building| {
        eprintln!("setting up the test Python environment {} (once)", env.display());
        run(Command::new("python3").args(["-m", "venv"]).arg(building), "python3 -m venv")?;
        run(
            Command::new(building.join("bin/python"))
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(&requirements),
            "pip install -r requirements",
        )?;
        std::fs::write(building.join("requirements.txt"), &wanted).map_err(|e| e.to_string())
    })?;
    Ok(python)
}

/// Makes `dir` (a virtual environment, an npm folder) complete, as `ready` judges it, unless it
/// already is: `build` fills a fresh folder beside it (`NAME.building.PID`), which is then renamed
/// into place, so a run interrupted half-way leaves nothing a later run would take for ready.
pub fn install_aside(
    dir: &Path,
    ready: impl Fn() -> bool,
    build: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), String> {
    if ready() {
        return Ok(());
    }
    let (Some(root), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(format!("{} has no parent folder", dir.display()));
    };
    std::fs::create_dir_all(root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let building = root.join(format!("{}.building.{}", name.to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    let built = build(&building);
    // A concurrent builder may have finished first, and its result be in use: keep it. Or it
    // may win the rename: then its result is used.
    if built.is_ok() && !ready() {
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::rename(&building, dir);
    }
    let _ = std::fs::remove_dir_all(&building);
    built?;
    if ready() { Ok(()) } else { Err(format!("{} did not appear", dir.display())) }
}

/// Runs `cmd` to its end: an error with `what` and its output when it fails.
pub fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: cannot run: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// The Python that runs the Delta reader.
pub fn reader_python() -> &'static Path {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PYTHON.get_or_init(|| match std::env::var_os("WEIR_TEST_PYTHON") {
        Some(p) => Ok(PathBuf::from(p)),
        None => python_with("reader", "requirements-test.txt"),
    });
    match found {
        Ok(p) => p,
        Err(e) => panic!("the independent Delta reader cannot be set up: {e}"),
    }
}

/// The script that reads a table.
pub fn read_delta_script() -> PathBuf {
    workspace().join("tests/py/read_delta.py")
}

/// Whether the table at `path` has a commit to read. A writer creates `_delta_log/` before it
/// writes the first commit into it (through a temporary file it renames), so a run killed, or
/// looked at, in between leaves a log folder that holds no table yet.
pub fn has_commit(path: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(path.join("_delta_log")) else { return false };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.strip_suffix(".json").is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Reads a Delta table with Python's `deltalake`; see `tests/py/read_delta.py` for the shape.
pub fn read_delta(path: &Path) -> Value {
    read_delta_at(&path.to_string_lossy(), &[], &[])
}

/// [`read_delta`] of only these columns (all when empty), for large tables.
pub fn read_delta_columns(path: &Path, columns: &[&str]) -> Value {
    read_delta_at(&path.to_string_lossy(), &[], columns)
}

/// Reads the Delta table at `uri` (a path, `s3://…` or `abfss://…`) with Python's `deltalake`,
/// under `env`: the store's endpoint and credentials (see [`crate::stores`]); only `columns` (all
/// when empty).
pub fn read_delta_at(uri: &str, env: &[(String, String)], columns: &[&str]) -> Value {
    let mut cmd = Command::new(reader_python());
    crate::stores::clear_store_env(&mut cmd);
    cmd.arg(read_delta_script()).arg(uri);
    if !columns.is_empty() {
        cmd.arg(columns.join(","));
    }
    let out = cmd
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap_or_else(|e| panic!("cannot run the Delta reader: {e}"));
    assert!(
        out.status.success(),
        "read_delta.py {uri} failed (exit {:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("read_delta.py prints JSON")
}
