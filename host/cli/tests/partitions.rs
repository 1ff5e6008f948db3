//! A partitioned table through `weir run`: the `shards` test connector (contract 0.2) serves
//! table `events` in four partitions; the run reads them concurrently, commits each with its own
//! offset and application id, and a rerun reads only what is new. SIGKILLed at many points, a
//! run loses and duplicates nothing. Read back with the independent reader.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{read_delta, text};
use serde_json::Value;
use weir_tests::delta_reader::has_commit;

const PARTITIONS: u64 = 4;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("shards.wasm"), weir_artifacts::SHARDS).expect("write component");
        std::fs::write(
            dir.path().join("connections.toml"),
            "[connections.shards]\nconnector = \"shards.wasm\"\nallow_unsigned = true\n",
        )
        .expect("write connections");
        Env { dir }
    }

    /// A spec for table `events` with `rows` rows in each of the four shards.
    fn spec(&self, rows: u64) -> PathBuf {
        let path = self.dir.path().join("pipeline.yaml");
        std::fs::write(
            &path,
            format!(
                "connection_name: shards\nobjects:\n  - table:\n      source_table: events\n      \
                 table_configuration:\n        partitions: {PARTITIONS}\n        rows: {rows}\n        page_rows: 50\n"
            ),
        )
        .expect("write spec");
        path
    }

    fn command(&self, rows: u64) -> Command {
        let mut cmd = common::weir_command();
        cmd.current_dir(self.dir.path())
            .env("WEIR_CACHE_DIR", self.dir.path().join("cache"))
            .arg("run")
            .arg(self.spec(rows))
            .args(["--connections", "connections.toml", "--warehouse", "warehouse"])
            .args(["--commit-rows", "100", "--parallel", "2", "--json"]);
        cmd
    }

    fn run(&self, rows: u64) -> Value {
        let out: Output = self.command(rows).output().expect("weir runs");
        assert!(out.status.success(), "{}", text(&out));
        let reports: Value = serde_json::from_slice(&out.stdout).expect("--json report");
        reports[0].clone()
    }

    fn table(&self) -> Value {
        read_delta(&self.dir.path().join("warehouse/events"))
    }
}

/// Every `(shard, seq)` the table holds, failing on a duplicate.
fn rows_exactly_once(table: &Value) -> BTreeSet<(u64, u64)> {
    let mut seen = BTreeSet::new();
    for row in table["data"].as_array().expect("rows") {
        let key = (row["shard"].as_u64().expect("shard"), row["seq"].as_u64().expect("seq"));
        assert!(seen.insert(key), "row {key:?} is in the table twice");
        assert_eq!(row["id"], format!("s{}-{}", key.0, key.1));
    }
    seen
}

fn expected(rows: u64) -> BTreeSet<(u64, u64)> {
    (0..PARTITIONS).flat_map(|s| (0..rows).map(move |r| (s, r))).collect()
}

/// The partition application ids of the commits that carry data, in log order.
fn partition_commits(table: &Value) -> Vec<String> {
    table["commits"]
        .as_array()
        .expect("commits")
        .iter()
        .filter_map(|c| c["info"]["weir.app_id"].as_str())
        .filter(|id| id.contains("#partition:"))
        .map(str::to_string)
        .collect()
}

#[test]
fn partitions_are_read_concurrently_each_committed_with_its_own_offset() {
    let env = Env::new();
    let report = env.run(300);
    assert_eq!(report["partitions"], PARTITIONS, "{report}");
    assert_eq!(report["rows_read"], PARTITIONS * 300, "{report}");
    let table = env.table();
    assert_eq!(rows_exactly_once(&table), expected(300));

    // Each partition commits under its own application id, 300 rows at 100 per commit.
    let commits = partition_commits(&table);
    let apps: BTreeSet<&String> = commits.iter().collect();
    assert_eq!(apps.len() as u64, PARTITIONS, "{commits:?}");
    for app in &apps {
        assert_eq!(commits.iter().filter(|c| c == app).count(), 3, "{app}: {commits:?}");
        assert_eq!(table["txn"][app.as_str()], 3, "{app}");
    }
    // Read one after the other, the log would change partition three times; concurrent
    // partitions interleave their commits.
    let switches = commits.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(switches > (PARTITIONS - 1) as usize, "partitions committed one after the other: {commits:?}");
    let offsets: BTreeSet<&str> = table["commits"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["info"]["weir.offset"].as_str())
        .collect();
    assert!(offsets.contains(r#"{"next":300}"#), "{offsets:?}");

    // More rows in every shard: each partition resumes from its own offset.
    let report = env.run(420);
    assert_eq!(report["rows_read"], PARTITIONS * 120, "{report}");
    assert_eq!(rows_exactly_once(&env.table()), expected(420));
    // Nothing new: nothing read, nothing committed.
    let report = env.run(420);
    assert_eq!((report["rows_read"].as_u64(), report["commits"].as_u64()), (Some(0), Some(0)), "{report}");
}

/// A small deterministic generator for the kill delays.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn kill_after(env: &Env, rows: u64, delay: Duration) -> bool {
    let mut child =
        env.command(rows).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("weir starts");
    std::thread::sleep(delay);
    let finished = child.try_wait().expect("wait").is_some();
    // SIGKILL: no cleanup, no flush, exactly what a crash does.
    let _ = child.kill();
    let _ = child.wait();
    finished
}

#[test]
fn a_sigkill_during_a_partitioned_run_loses_and_duplicates_nothing() {
    // Every run gets `STEP` new rows per shard, and is killed at a random point of the time such
    // a run takes on this machine (measured first, warm, on a scratch folder): the kill points
    // fall inside the runs however fast or slow the build is.
    const STEP: u64 = 500;
    let scratch = Env::new();
    scratch.run(STEP);
    let started = Instant::now();
    scratch.run(2 * STEP);
    let run_time = started.elapsed();

    let env = Env::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut killed = 0;
    let mut rows = 0;
    for _ in 0..10 {
        rows += STEP;
        // From 5 % to 95 % of a run: from start-up to well into the commits.
        let fraction = 0.05 + (next(&mut seed) % 900) as f64 / 1000.0;
        if !kill_after(&env, rows, run_time.mul_f64(fraction)) {
            killed += 1;
        }
        let table_path = env.dir.path().join("warehouse/events");
        if has_commit(&table_path) {
            // Whatever a killed run left is consistent: every row at most once.
            let partial = rows_exactly_once(&env.table());
            assert!(partial.is_subset(&expected(rows)));
        }
    }
    assert!(
        killed >= 5,
        "only {killed} of 10 runs were killed mid-way (a run takes {run_time:?}); the kill points missed the runs"
    );
    let report = env.run(rows);
    assert!(report["error"].is_null(), "{report}");
    assert_eq!(rows_exactly_once(&env.table()), expected(rows));
}
