//! `weir run --follow` with hot swaps: a run keeps ingesting a table that the simulator keeps
//! changing, takes a new connector version between two commits when the connection's `.wasm`
//! file is replaced, rolls back by itself from a version that fails on its first read, and
//! ends cleanly on SIGTERM; the table ends equal to the source, with no row lost or duplicated,
//! and each commit's metadata names the connector version that read its rows. A second test
//! swaps the Airtable connector built for contract 0.1 for its 0.2 build mid-run.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{encode, read_delta, sim_api};
use serde_json::{Value, json};
use weir_airtable_sim::{DEFAULT_BASE_ID, DEFAULT_TOKEN, Sim, SimConfig};
use weir_tests::delta_reader::has_commit;

const TABLE: &str = "SKU Candidates";

/// The bundled Airtable connector as version `version`.
fn airtable(version: &str) -> Vec<u8> {
    airtable_with_limit(version, "")
}

/// The bundled Airtable connector as version `version`, with one more line in its `[limits]`.
fn airtable_with_limit(version: &str, limit: &str) -> Vec<u8> {
    weir_tests::repackage(weir_artifacts::AIRTABLE, "plugins/airtable/manifest.toml", |m| {
        assert!(m.contains("\n[limits]\n"), "the manifest has a [limits] table");
        m.replace("version = \"0.2.0\"", &format!("version = \"{version}\""))
            .replace("\n[limits]\n", &format!("\n[limits]\n{limit}\n"))
    })
}

struct Env {
    sim: Sim,
    dir: tempfile::TempDir,
}

impl Env {
    fn new(rows: usize) -> Env {
        let sim = Sim::start(SimConfig {
            rate_limit: false,
            grow: vec![(TABLE.into(), rows)],
            ..SimConfig::default()
        })
        .expect("simulator starts");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sim-token"), DEFAULT_TOKEN).unwrap();
        std::fs::write(
            dir.path().join("connections.toml"),
            format!(
                "[connections.airtable]\nconnector = \"airtable.wasm\"\nallow_unsigned = true\n\
                 base_id = \"{DEFAULT_BASE_ID}\"\nbase_url = \"{}\"\nbearer_token = {{ file = \"sim-token\" }}\n\
                 allow_loopback = true\n[connections.airtable.rate_limits]\n\"base:{{base}}\" = 500\n",
                sim.base_url()
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("follow.yaml"),
            format!(
                "connection_name: airtable\nobjects:\n  - table:\n      source_table: {TABLE}\n      \
                 destination_table: skus\n      table_configuration:\n        checkpoint_records: 200\n        \
                 lookback_seconds: 0\n"
            ),
        )
        .unwrap();
        Env { sim, dir }
    }

    /// Replaces the connection's component the way a deploy would: a new file renamed over it.
    fn deploy(&self, bytes: &[u8]) {
        let tmp = self.dir.path().join("airtable.wasm.new");
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("airtable.wasm")).unwrap();
    }

    fn start(&self) -> Follower {
        let child = common::weir_command()
            .current_dir(self.dir.path())
            .env("WEIR_HOME", self.dir.path().join("home"))
            .env("WEIR_CACHE_DIR", self.dir.path().join("cache"))
            .args(["run", "follow.yaml", "--warehouse", "warehouse", "--commit-rows", "200"])
            .args(["--follow", "--interval", "0.5", "--json"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("stderr.txt")).unwrap())
            .spawn()
            .expect("weir starts");
        Follower(Some(child))
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.txt")).unwrap_or_default()
    }

    /// Waits until stderr says `what`, failing with the log after `seconds`.
    fn wait_for(&self, what: &str, seconds: u64) {
        let started = Instant::now();
        while !self.stderr().contains(what) {
            assert!(started.elapsed() < Duration::from_secs(seconds), "no {what:?} in:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn table_path(&self) -> PathBuf {
        self.dir.path().join("warehouse/skus")
    }

    /// Every source record: id → its last-modified time.
    fn source(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut offset: Option<String> = None;
        loop {
            let mut path = format!("/v0/{DEFAULT_BASE_ID}/{}?pageSize=100", encode(TABLE));
            if let Some(o) = &offset {
                path.push_str(&format!("&offset={}", encode(o)));
            }
            let (status, page) = sim_api(&self.sim, "GET", &path, None);
            assert_eq!(status, 200, "{page}");
            for r in page["records"].as_array().unwrap() {
                let modified = r["fields"]["Last Modified"].as_str().unwrap_or_default().to_string();
                out.insert(r["id"].as_str().unwrap().to_string(), modified);
            }
            match page["offset"].as_str() {
                Some(o) => offset = Some(o.to_string()),
                None => return out,
            }
        }
    }
}

/// Keeps changing the source: a new record or an edit every few hundred milliseconds.
fn mutate(sim: &Sim, running: &AtomicBool) {
    let ids: Vec<String> = {
        let (_, page) =
            sim_api(sim, "GET", &format!("/v0/{DEFAULT_BASE_ID}/{}?pageSize=50", encode(TABLE)), None);
        page["records"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
    };
    let mut n = 0usize;
    while running.load(Ordering::Relaxed) {
        let path = format!("/v0/{DEFAULT_BASE_ID}/{}", encode(TABLE));
        if n.is_multiple_of(2) {
            sim_api(sim, "POST", &path, Some(json!({"records": [{"fields": {"Name": format!("NEW-{n}")}}]})));
        } else {
            let id = &ids[n % ids.len()];
            sim_api(
                sim,
                "PATCH",
                &path,
                Some(json!({"records": [{"id": id, "fields": {"Name": format!("EDIT-{n}")}}]})),
            );
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A `weir run --follow` process; killed if the test fails before it is terminated.
struct Follower(Option<Child>);

impl Drop for Follower {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Clears a flag when dropped: a failing assertion also ends the thread the flag keeps running.
struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// SIGTERM, then the exit status: a following run ends cleanly after its current commit.
fn terminate(mut follower: Follower) -> std::process::ExitStatus {
    let mut child = follower.0.take().expect("not terminated yet");
    // SAFETY: sends a signal to a child process this test started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("weir run --follow did not end within 60 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The table equals the source: every record once, with its latest modified time.
fn assert_equal_to_source(env: &Env) -> Value {
    let table = read_delta(&env.table_path());
    let mut rows = BTreeMap::new();
    for row in table["data"].as_array().unwrap() {
        let id = row["id"].as_str().unwrap().to_string();
        assert!(rows.insert(id.clone(), row.clone()).is_none(), "{id} is in the table twice");
    }
    let source = env.source();
    assert_eq!(rows.len(), source.len(), "rows in the table vs records in the source");
    let instant = |s: &str| chrono::DateTime::parse_from_rfc3339(s).map(|t| t.to_utc()).ok();
    for (id, modified) in &source {
        let row = rows.get(id).unwrap_or_else(|| panic!("{id} is missing"));
        let have = row["last_modified"].as_str().unwrap_or_default();
        assert_eq!(
            instant(have),
            instant(modified),
            "{id}: the table holds an old version ({have} vs {modified})"
        );
    }
    table
}

/// The connector versions named by the data commits, in log order.
fn versions(table: &Value) -> Vec<String> {
    table["commits"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["info"]["weir.connector"].as_str())
        .map(|s| serde_json::from_str::<Value>(s).unwrap()["version"].as_str().unwrap().to_string())
        .collect()
}

fn wait_for_commit_by(env: &Env, version: &str, seconds: u64) {
    wait_until(env, &format!("a commit by {version}"), seconds, |table| {
        versions(table).iter().any(|v| v == version)
    });
}

/// Polls the table until `done` holds for it.
fn wait_until(env: &Env, what: &str, seconds: u64, done: impl Fn(&Value) -> bool) {
    let started = Instant::now();
    loop {
        if has_commit(&env.table_path()) && done(&read_delta(&env.table_path())) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(seconds), "no {what}:\n{}", env.stderr());
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_following_run_swaps_versions_between_commits_and_rolls_back_a_failing_one() {
    let env = Env::new(1500);
    env.deploy(&airtable("0.2.0"));
    let child = env.start();
    let running = AtomicBool::new(true);
    std::thread::scope(|s| {
        let _stop_mutating = ClearOnDrop(&running);
        s.spawn(|| mutate(&env.sim, &running));
        wait_for_commit_by(&env, "0.2.0", 120);

        // A new version: verified, compiled and probed off the hot path, then swapped in.
        env.deploy(&airtable("0.2.1"));
        env.wait_for("airtable 0.2.1", 60);
        env.wait_for("takes over from airtable 0.2.0", 60);
        wait_for_commit_by(&env, "0.2.1", 120);

        // A version that passes the probe but fails on its first read: rolled back by itself.
        // (read_calls = 1: a read takes at least two calls, the last one confirming the end.)
        env.deploy(&airtable_with_limit("0.2.2", "read_calls = 1"));
        env.wait_for("rolled back to airtable 0.2.1", 120);
    });
    // Let it catch up with the last changes, then stop it.
    std::thread::sleep(Duration::from_secs(3));
    let status = terminate(child);
    assert!(status.success(), "{status:?}\n{}", env.stderr());

    // A last run without --follow (on the good version) reads what changed since; then the table
    // must equal the source.
    env.deploy(&airtable("0.2.1"));
    let out = common::weir_command()
        .current_dir(env.dir.path())
        .env("WEIR_HOME", env.dir.path().join("home"))
        .env("WEIR_CACHE_DIR", env.dir.path().join("cache"))
        .args(["run", "follow.yaml", "--warehouse", "warehouse", "--commit-rows", "200"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    let table = assert_equal_to_source(&env);
    let versions = versions(&table);
    assert!(
        versions.contains(&"0.2.0".to_string()) && versions.contains(&"0.2.1".to_string()),
        "{versions:?}"
    );
    assert!(!versions.contains(&"0.2.2".to_string()), "the failing version committed: {versions:?}");
    // Commits never go back from 0.2.1 to 0.2.0: the swap happened once, between two commits.
    let first_new = versions.iter().position(|v| v == "0.2.1").unwrap();
    assert!(versions[first_new..].iter().all(|v| v == "0.2.1"), "{versions:?}");
}

#[test]
fn a_following_run_swaps_a_0_1_build_for_a_0_2_build() {
    let env = Env::new(600);
    env.deploy(weir_artifacts::AIRTABLE_V0_1);
    let child = env.start();
    wait_for_commit_by(&env, "0.1.9", 120);
    let path = format!("/v0/{DEFAULT_BASE_ID}/{}", encode(TABLE));
    sim_api(&env.sim, "POST", &path, Some(json!({"records": [{"fields": {"Name": "BEFORE-SWAP"}}]})));
    env.deploy(weir_artifacts::AIRTABLE);
    env.wait_for("takes over from airtable 0.1.9", 60);
    sim_api(&env.sim, "POST", &path, Some(json!({"records": [{"fields": {"Name": "AFTER-SWAP"}}]})));
    wait_for_commit_by(&env, "0.2.0", 120);
    // 0.2.0's first pass may have read before that record was made: stop once a pass has it.
    wait_until(&env, "row named AFTER-SWAP", 120, |table| {
        table["data"].as_array().is_some_and(|rows| rows.iter().any(|r| r["name"] == "AFTER-SWAP"))
    });
    let status = terminate(child);
    assert!(status.success(), "{status:?}\n{}", env.stderr());
    assert!(Path::new(&env.table_path()).exists());
    let table = assert_equal_to_source(&env);
    let versions = versions(&table);
    assert!(
        versions.contains(&"0.1.9".to_string()) && versions.contains(&"0.2.0".to_string()),
        "{versions:?}"
    );
}
