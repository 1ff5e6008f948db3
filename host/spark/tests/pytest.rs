//! Runs the Spark suite (`host/spark/tests/test_*.py`, pytest) against a real pyspark in local
//! mode (Java 17) and the Airtable simulator on loopback, so that `cargo test --workspace` covers
//! the data source with nothing run first.
//!
//! On first use it creates a virtual environment under the target folder
//! (`target/weir-python/spark`, from `host/spark/tests/requirements.txt`: pyspark, pyarrow, pytest,
//! maturin), then installs the package into it with `maturin develop` (dev profile, this target
//! folder), which later runs only rebuild when the crate changed. `WEIR_TEST_SPARK_PYTHON` names a
//! Python that already has all of it (and the package) to skip both steps.

use std::path::{Path, PathBuf};
use std::process::Command;

use weir_airtable_sim::{DEFAULT_BASE_ID, DEFAULT_TOKEN, Sim, SimConfig};
use weir_tests::delta_reader::{python_with, run, target_dir, workspace};

/// A Python with pyspark, pytest and this package installed.
fn spark_python() -> PathBuf {
    if let Some(python) = std::env::var_os("WEIR_TEST_SPARK_PYTHON") {
        return PathBuf::from(python);
    }
    let python = python_with("spark", "host/spark/tests/requirements.txt")
        .unwrap_or_else(|e| panic!("the Spark test environment cannot be set up: {e}"));
    let venv = python.ancestors().nth(2).map(Path::to_path_buf).unwrap_or_default();
    run(
        Command::new(&python)
            .args(["-m", "maturin", "develop", "--quiet", "--manifest-path"])
            .arg(workspace().join("host/spark/Cargo.toml"))
            .env("VIRTUAL_ENV", &venv)
            .env("CARGO_TARGET_DIR", target_dir()),
        "maturin develop",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    python
}

/// The `weir` binary of this build, for `weir preview` and `weir schema` as the reference.
fn weir_binary() -> PathBuf {
    let profile_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(2).map(Path::to_path_buf))
        .unwrap_or_else(|| target_dir().join("debug"));
    let weir = profile_dir.join("weir");
    if !weir.exists() {
        // `cargo test --workspace` has built it; a narrower run builds it with the workspace's features.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        run(
            Command::new(cargo)
                .current_dir(workspace())
                .args(["build", "--workspace", "--bin", "weir", "--target-dir"])
                .arg(target_dir()),
            "cargo build --bin weir",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    weir
}

#[test]
fn spark_suite_passes_against_the_simulator() {
    let python = spark_python();
    let weir = weir_binary();
    // Launch Milestones grows to 45 records, so that a stream of it takes several micro-batches.
    let config = SimConfig { grow: vec![("Launch Milestones".into(), 45)], ..SimConfig::default() };
    let sim = Sim::start(config).expect("the simulator starts");
    let bin = python.parent().map(Path::to_path_buf).unwrap_or_default();
    let path = std::env::join_paths(
        std::iter::once(bin).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .expect("PATH joins");
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"])
        .arg(workspace().join("host/spark/tests"))
        .current_dir(workspace())
        .env("PATH", path)
        .env("PYSPARK_PYTHON", &python)
        .env("PYSPARK_DRIVER_PYTHON", &python)
        .env("WEIR_SIM_URL", sim.base_url())
        .env("WEIR_SIM_TOKEN", DEFAULT_TOKEN)
        .env("WEIR_SIM_BASE", DEFAULT_BASE_ID)
        .env("WEIR_BIN", &weir)
        .env("WEIR_SHARDS_WASM", weir_artifacts::SHARDS_PATH)
        .env("WEIR_CACHE_DIR", target_dir().join("weir-cache"))
        .output()
        .expect("pytest runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Shown with `--nocapture`: which tests ran, and how long they took.
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the Spark suite failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
