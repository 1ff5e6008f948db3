//! Exactly once under SIGKILL: `weir run` is killed at many points of a cdc ingestion, then
//! run again to completion; the Delta table must equal the source, with no row lost or
//! duplicated. Read back with the independent reader (tests/py/read_delta.py, Python
//! `deltalake`; `pip install -r requirements-test.txt`).
//!
//! Sizes: the connector's manifest paces Airtable at 5 requests/s, so a run reads about
//! 500 rows a second at best whatever the build profile. The source has [`ROWS`] rows and the
//! connector checkpoints every [`CHECKPOINT`] of them, which gives several commits per run
//! and keeps each run to seconds.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{encode, read_delta, text, write_sim_connections};
use serde_json::Value;
use weir_airtable_sim::{DEFAULT_BASE_ID, DEFAULT_TOKEN, Sim, SimConfig};

const TABLE: &str = "SKU Candidates";
const DESTINATION: &str = "sku_candidates";
const ROWS: usize = 3_000;
const CHECKPOINT: usize = 500;
const KILL_POINTS: usize = 10;

struct Env {
    sim: Sim,
    dir: tempfile::TempDir,
    spec: PathBuf,
}

impl Env {
    fn new() -> Env {
        let sim = Sim::start(SimConfig {
            rate_limit: false,
            grow: vec![(TABLE.into(), ROWS)],
            ..SimConfig::default()
        })
        .expect("simulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        write_sim_connections(dir.path(), &sim);
        let spec = dir.path().join("crash.yaml");
        std::fs::write(
            &spec,
            format!(
                "connection_name: airtable\nobjects:\n  - table:\n      source_table: {TABLE}\n      \
                 table_configuration:\n        checkpoint_records: {CHECKPOINT}\n"
            ),
        )
        .expect("write spec");
        Env { sim, dir, spec }
    }

    fn command(&self, warehouse: &Path) -> Command {
        let mut c = common::weir_command();
        c.arg("run")
            .arg(&self.spec)
            .arg("--connections")
            .arg(self.dir.path().join("connections.toml"))
            .arg("--warehouse")
            .arg(warehouse)
            .args(["--commit-rows", &CHECKPOINT.to_string(), "--json"])
            // Each warehouse's runs pace on their own budget, as if on machines of their own: the
            // kill points are spread over the length of a run alone, and two run at once.
            .env("WEIR_CACHE_DIR", warehouse.with_extension("cache"));
        c
    }

    /// Runs to completion and returns the table's report.
    fn run_to_end(&self, warehouse: &Path) -> Value {
        let out = self.command(warehouse).output().expect("weir runs");
        assert!(out.status.success(), "weir run failed:\n{}", text(&out));
        let reports: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON summary");
        reports.into_iter().next().expect("one table")
    }

    /// Starts a run and SIGKILLs it after `delay`; true when it was still running.
    fn kill_after(&self, warehouse: &Path, delay: Duration) -> bool {
        let child =
            self.command(warehouse).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("weir starts");
        let mut child = KillOnDrop(child);
        std::thread::sleep(delay);
        let running = matches!(child.0.try_wait(), Ok(None));
        // Child::kill sends SIGKILL on Unix: no destructor, no flush, no cleanup runs.
        child.0.kill().expect("kill weir");
        child.0.wait().expect("reap weir");
        running
    }

    /// Every source record as id → (name, price, last modified), from the simulator's API.
    fn source(&self) -> BTreeMap<String, (Value, Value, Value)> {
        let mut out = BTreeMap::new();
        let mut offset: Option<String> = None;
        loop {
            let mut path = format!("/v0/{DEFAULT_BASE_ID}/{}?pageSize=100", encode(TABLE));
            if let Some(o) = &offset {
                path.push_str(&format!("&offset={}", encode(o)));
            }
            let body = self.get(&path);
            for r in body["records"].as_array().expect("records") {
                let f = &r["fields"];
                let key = r["id"].as_str().expect("id").to_string();
                out.insert(key, (f["Name"].clone(), f["Price"].clone(), f["Last Modified"].clone()));
            }
            match body.get("offset").and_then(Value::as_str) {
                Some(o) => offset = Some(o.to_string()),
                None => return out,
            }
        }
    }

    fn get(&self, path: &str) -> Value {
        let addr = self.sim.base_url().trim_start_matches("http://").to_string();
        let mut stream = std::net::TcpStream::connect(&addr).expect("connect to the simulator");
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {DEFAULT_TOKEN}\r\n\r\n"
        )
        .expect("send request");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("read response");
        let response = String::from_utf8_lossy(&response);
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
        serde_json::from_str(body).expect("JSON body")
    }
}

/// Kills the run if an assertion unwinds while it is alive.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How many commits carrying rows and an offset a table's log holds (0 when no table yet).
fn data_commits(table: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(table.join("_delta_log")) else { return 0 };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("\"txn\"")))
        .count()
}

/// id → (name, price, last modified) as Delta holds them, checking ids are unique.
fn table_rows(table: &Value, what: &str) -> BTreeMap<String, (Value, Value, Value)> {
    let data = table["data"].as_array().expect("data");
    let mut out = BTreeMap::new();
    for r in data {
        let id = r["id"].as_str().expect("id").to_string();
        let row = (r["name"].clone(), r["price"].clone(), r["last_modified"].clone());
        assert!(out.insert(id.clone(), row).is_none(), "{what}: id {id} is in the table twice");
    }
    assert_eq!(table["rows"].as_u64(), Some(data.len() as u64), "{what}: row count");
    out
}

/// A checksum over the rows' ids and checked columns, to name a mismatch in one line.
fn checksum(rows: &BTreeMap<String, (Value, Value, Value)>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (id, (name, price, modified)) in rows {
        (id, name.to_string(), price.to_string(), modified.to_string()).hash(&mut h);
    }
    h.finish()
}

/// Checks a finished table against the clean run and the source.
fn check_exactly_once(
    table_path: &Path,
    clean: &BTreeMap<String, (Value, Value, Value)>,
    source_ids: &BTreeSet<String>,
    what: &str,
) {
    let table = read_delta(table_path);
    let rows = table_rows(&table, what);
    let ids: BTreeSet<String> = rows.keys().cloned().collect();
    assert_eq!(ids.len(), source_ids.len(), "{what}: row count against the source");
    assert!(&ids == source_ids, "{what}: the id set differs from the source's");
    assert_eq!(checksum(&rows), checksum(clean), "{what}: row checksum differs from the clean run's");
    assert!(&rows == clean, "{what}: rows differ from the clean run's");
}

#[test]
fn sigkill_at_any_point_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let env = Env::new();
    let source = env.source();
    assert_eq!(source.len(), ROWS, "the simulator grew the table");
    let source_ids: BTreeSet<String> = source.keys().cloned().collect();

    // A clean run: the reference content, and how long a run takes.
    let clean_path = env.dir.path().join("clean");
    let t0 = Instant::now();
    let report = env.run_to_end(&clean_path);
    let run_time = t0.elapsed();
    assert_eq!(report["inserted"].as_u64(), Some(ROWS as u64), "{report}");
    assert_eq!(report["rows_read"].as_u64(), Some(ROWS as u64), "each record read once: {report}");
    let clean_table = read_delta(&clean_path.join(DESTINATION));
    let commits = clean_table["commits"]
        .as_array()
        .expect("commits")
        .iter()
        .filter(|c| c["txn"].as_array().is_some_and(|t| !t.is_empty()))
        .count();
    assert!(
        commits >= 5,
        "a clean run commits every {CHECKPOINT} rows (the connector's checkpoint_records), so a \
         crash loses at most that much work; it made {commits} commit(s)"
    );
    // A first load appends: every commit holds new keys only, so none MERGEs.
    let operations: Vec<&str> = clean_table["commits"]
        .as_array()
        .expect("commits")
        .iter()
        .filter(|c| c["adds"].as_u64() > Some(0))
        .map(|c| c["operation"].as_str().unwrap_or("?"))
        .collect();
    assert!(operations.iter().all(|o| *o == "WRITE"), "a first load MERGEd: {operations:?}");
    let clean = table_rows(&clean_table, "clean run");
    assert_eq!(clean.keys().cloned().collect::<BTreeSet<_>>(), source_ids, "clean run: ids");
    for (id, (name, _, _)) in &clean {
        assert_eq!(name, &source[id].0, "clean run: name of {id}");
    }

    // Kill points spread over the run, from start-up to the last commit. Two at a time: the
    // runs mostly wait on the request pacing, so they barely slow each other.
    let delays: Vec<Duration> =
        (0..KILL_POINTS).map(|i| run_time.mul_f64((i as f64 + 0.5) / KILL_POINTS as f64)).collect();
    let outcomes: Vec<(usize, bool, usize, u64)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let (env, delays, clean, source_ids) = (&env, &delays, &clean, &source_ids);
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for (i, delay) in delays.iter().enumerate().filter(|(i, _)| i % 2 == w) {
                        let warehouse = env.dir.path().join(format!("kill-{i}"));
                        let table = warehouse.join(DESTINATION);
                        let mut running = env.kill_after(&warehouse, *delay);
                        // One iteration is killed a second time, while resuming.
                        if i == KILL_POINTS / 2 {
                            running &= env.kill_after(&warehouse, *delay / 2);
                        }
                        let committed = data_commits(&table);
                        let report = env.run_to_end(&warehouse);
                        let what = format!("killed after {delay:?} with {committed} commit(s) made");
                        check_exactly_once(&table, clean, source_ids, &what);
                        out.push((i, running, committed, report["rows_read"].as_u64().unwrap_or(0)));
                    }
                    out
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("worker")).collect()
    });

    let killed_running = outcomes.iter().filter(|(_, running, _, _)| *running).count();
    assert!(killed_running >= KILL_POINTS - 2, "most kills landed while weir ran: {outcomes:?}");
    let mid_run =
        outcomes.iter().filter(|(_, _, committed, _)| *committed > 0 && *committed < commits).count();
    assert!(
        mid_run >= 2,
        "some kills landed between commits (index, running, commits, rows read): {outcomes:?}"
    );
    for (i, _, committed, rows_read) in &outcomes {
        if *committed > 0 {
            assert!(
                *rows_read < ROWS as u64,
                "kill point {i}: with {committed} commit(s) in the table, the rerun resumes from its offset \
                 instead of reading all {ROWS} rows again (it read {rows_read})"
            );
        }
    }
    eprintln!(
        "clean run {run_time:?} with {commits} commits; kills (index, running, commits, rows read after): \
         {outcomes:?}; total {:?}",
        started.elapsed()
    );
}
