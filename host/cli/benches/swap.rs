//! Issue 11's figures: what taking a new connector version costs a running ingestion, with a
//! hot swap (`weir run --follow`) beside the alternative, stopping the run and starting it again
//! on the new version.
//!
//! ```text
//! cargo bench --workspace --bench swap            # release, as the other benches
//! cargo test --workspace --bench swap             # the dev profile: no release build of deltalake
//! WEIR_BENCH_SWAPS=10 cargo test --workspace --bench swap
//! ```
//!
//! The simulator (rate limit off) holds `SKU Candidates` with 2,000 records, and a thread edits
//! a few of them every 100 ms, so that every pass of the following run has rows to commit. The
//! `weir` binary of this build follows the table (`--interval 0.2`, commits of 200 rows). Each
//! round deploys the bundled Airtable connector under a new version number (a new sha256, so it
//! is compiled afresh, not taken from the cache) by renaming a new `.wasm` over the
//! connection's file, then:
//!
//! - **hot swap**: waits for the run to swap. `prepare` is the time to verify, compile,
//!   instantiate and probe the new version off the hot path, `first page` the time from the swap
//!   to the new version's first page (both as the run reports them), and `commit gap` the time
//!   between the old version's last commit and the new version's first commit (from the Delta
//!   log's commit timestamps: what a reader of the table sees);
//! - **restart**: sends SIGTERM, waits for the process to end after its current commit, deploys
//!   the new version and starts the run again, which compiles it on the hot path; `commit gap`
//!   is measured the same way.
//!
//! Figures are printed, never asserted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use weir_airtable_sim::{DEFAULT_BASE_ID, DEFAULT_TOKEN, Sim, SimConfig};

const TABLE: &str = "SKU Candidates";

fn main() -> Result<()> {
    let rounds: usize = std::env::var("WEIR_BENCH_SWAPS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let sim = Sim::start(SimConfig {
        rate_limit: false,
        grow: vec![(TABLE.into(), 2000)],
        ..SimConfig::default()
    })?;
    let ids: Vec<String> = sim
        .create_records(DEFAULT_BASE_ID, TABLE, vec![json!({"fields": {"Name": "bench"}}); 20])?
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect();
    let running = AtomicBool::new(true);
    std::thread::scope(|s| -> Result<()> {
        s.spawn(|| edit(&sim, &ids, &running));
        let result = bench(&sim, rounds);
        running.store(false, Ordering::Relaxed);
        result
    })
}

fn bench(sim: &Sim, rounds: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let work = Work::new(dir.path(), sim)?;
    println!("hot swap vs restart, {rounds} new versions each (dev or release: as this bench was built)\n");

    // Hot swaps: one following run takes every new version.
    work.deploy(1)?;
    let mut child = work.start("swap")?;
    work.wait_for_commit_by("1.0.1", Duration::from_secs(120))?;
    let mut swap_gaps = Vec::new();
    for round in 2..=rounds + 1 {
        let version = format!("1.0.{round}");
        work.deploy(round)?;
        work.wait_for_commit_by(&version, Duration::from_secs(120))?;
        swap_gaps.push(work.commit_gap(&format!("1.0.{}", round - 1), &version)?);
    }
    terminate(&mut child)?;
    let log = std::fs::read_to_string(work.dir.join("swap.stderr"))?;
    let prepare = figures(&log, "verified, compiled and probed in ", " ms); it takes over");
    let first_page = figures(&log, "came ", " ms after the swap");

    // Restarts: a new process for every new version.
    // (The new version is deployed after the old process ended: a running follower would swap.)
    let mut restart_gaps = Vec::new();
    let first = rounds + 2;
    work.deploy(first)?;
    let mut child = work.start("restart")?;
    work.wait_for_commit_by(&format!("1.0.{first}"), Duration::from_secs(120))?;
    for round in first + 1..=first + rounds {
        let version = format!("1.0.{round}");
        terminate(&mut child)?;
        work.deploy(round)?;
        child = work.start("restart")?;
        work.wait_for_commit_by(&version, Duration::from_secs(120))?;
        restart_gaps.push(work.commit_gap(&format!("1.0.{}", round - 1), &version)?);
    }
    terminate(&mut child)?;

    println!("{:<44} {:>8} {:>8} {:>8}", "ms", "min", "median", "max");
    row("hot swap: prepare (verify, compile, probe)", &prepare);
    row("hot swap: swap to the new version's 1st page", &first_page);
    row("hot swap: commit gap", &swap_gaps);
    row("restart:  commit gap", &restart_gaps);
    Ok(())
}

fn row(what: &str, values: &[u64]) {
    let mut v = values.to_vec();
    v.sort_unstable();
    match (v.first(), v.get(v.len() / 2), v.last()) {
        (Some(min), Some(median), Some(max)) => println!("{what:<44} {min:>8} {median:>8} {max:>8}"),
        _ => println!("{what:<44} (no figures)"),
    }
}

/// The numbers between `before` and `after` on every line that has both.
fn figures(log: &str, before: &str, after: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|line| {
            let start = line.find(before)? + before.len();
            let len = line[start..].find(after)?;
            line[start..start + len].parse().ok()
        })
        .collect()
}

/// Edits the bench's records every 100 ms until `running` is cleared.
fn edit(sim: &Sim, ids: &[String], running: &AtomicBool) {
    let mut n = 0usize;
    while running.load(Ordering::Relaxed) {
        let id = &ids[n % ids.len()];
        let _ = sim.update_records(
            DEFAULT_BASE_ID,
            TABLE,
            vec![json!({"id": id, "fields": {"Name": format!("edit {n}")}})],
        );
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Work {
    dir: PathBuf,
}

impl Work {
    fn new(dir: &Path, sim: &Sim) -> Result<Work> {
        std::fs::write(dir.join("sim-token"), DEFAULT_TOKEN)?;
        std::fs::write(
            dir.join("connections.toml"),
            format!(
                "[connections.airtable]\nconnector = \"airtable.wasm\"\nallow_unsigned = true\n\
                 base_id = \"{DEFAULT_BASE_ID}\"\nbase_url = \"{}\"\nbearer_token = {{ file = \"sim-token\" }}\n\
                 allow_loopback = true\n[connections.airtable.rate_limits]\n\"base:{{base}}\" = 500\n",
                sim.base_url()
            ),
        )?;
        std::fs::write(
            dir.join("follow.yaml"),
            format!(
                "connection_name: airtable\nobjects:\n  - table:\n      source_table: {TABLE}\n      \
                 destination_table: skus\n      table_configuration:\n        checkpoint_records: 200\n        \
                 lookback_seconds: 0\n"
            ),
        )?;
        Ok(Work { dir: dir.to_path_buf() })
    }

    /// Renames the bundled connector, as version `1.0.<n>`, over the connection's file.
    fn deploy(&self, n: usize) -> Result<()> {
        let bytes = weir_tests::repackage(weir_artifacts::AIRTABLE, "plugins/airtable/manifest.toml", |m| {
            m.replace("version = \"0.2.0\"", &format!("version = \"1.0.{n}\""))
        });
        let tmp = self.dir.join("airtable.wasm.new");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, self.dir.join("airtable.wasm"))?;
        Ok(())
    }

    fn start(&self, log: &str) -> Result<Child> {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{log}.stderr")))?;
        Ok(Command::new(env!("CARGO_BIN_EXE_weir"))
            .current_dir(&self.dir)
            .env("WEIR_HOME", self.dir.join("home"))
            .env("WEIR_CACHE_DIR", self.dir.join("cache"))
            .args(["run", "follow.yaml", "--warehouse", "warehouse", "--commit-rows", "200"])
            .args(["--follow", "--interval", "0.2", "--json"])
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()?)
    }

    /// Every data commit of the table: (timestamp in ms, connector version).
    fn commits(&self) -> Result<Vec<(u64, String)>> {
        let log = self.dir.join("warehouse/skus/_delta_log");
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&log) {
            Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => return Ok(Vec::new()),
        };
        files.retain(|p| p.extension().is_some_and(|e| e == "json"));
        files.sort();
        let mut out = Vec::new();
        for file in files {
            for line in std::fs::read_to_string(&file)?.lines() {
                let Ok(action) = serde_json::from_str::<Value>(line) else { continue };
                let info = &action["commitInfo"];
                let (Some(at), Some(stamp)) = (info["timestamp"].as_u64(), info["weir.connector"].as_str())
                else {
                    continue;
                };
                let stamp: Value = serde_json::from_str(stamp)?;
                out.push((at, stamp["version"].as_str().unwrap_or_default().to_string()));
            }
        }
        Ok(out)
    }

    fn wait_for_commit_by(&self, version: &str, limit: Duration) -> Result<()> {
        let started = Instant::now();
        while !self.commits()?.iter().any(|(_, v)| v == version) {
            if started.elapsed() > limit {
                bail!("no commit by {version} within {limit:?}; see {}", self.dir.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Milliseconds from `old`'s last commit to `new`'s first.
    fn commit_gap(&self, old: &str, new: &str) -> Result<u64> {
        let commits = self.commits()?;
        let last = commits.iter().filter(|(_, v)| v == old).map(|(t, _)| *t).max();
        let first = commits.iter().filter(|(_, v)| v == new).map(|(t, _)| *t).min();
        match (last, first) {
            (Some(last), Some(first)) => Ok(first.saturating_sub(last)),
            _ => bail!("the log has no commits by {old} and {new}"),
        }
    }
}

/// SIGTERM: the run ends after its current commit.
fn terminate(child: &mut Child) -> Result<()> {
    // SAFETY: sends a signal to a child process this bench started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = child.wait().context("waiting for weir to end")?;
    if !status.success() {
        bail!("weir ended with {status}");
    }
    Ok(())
}
