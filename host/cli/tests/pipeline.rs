//! `weir run` end to end: the real binary against the Airtable simulator, with every table
//! read back by an independent Delta reader (Python's `deltalake`, tests/py/read_delta.py).
//!
//! Needs `python3` with the packages of requirements-test.txt; without them the tests fail
//! and say how to install them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{encode, read_delta, sim_api, text, write_sim_connections};
use serde_json::{Value, json};
use weir_airtable_sim::{DEFAULT_BASE_ID, Sim, SimConfig};

/// A simulator, a connections file pointing at it, and a warehouse, all in one temp folder.
struct Env {
    sim: Sim,
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let sim =
            Sim::start(SimConfig { rate_limit: false, ..SimConfig::default() }).expect("simulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        write_sim_connections(dir.path(), &sim);
        Env { sim, dir }
    }

    fn warehouse(&self) -> PathBuf {
        self.dir.path().join("warehouse")
    }

    /// Writes `yaml` as a spec file and returns its path.
    fn spec(&self, name: &str, yaml: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, yaml).expect("write spec");
        path
    }

    /// `weir run SPEC --json` with `extra` arguments.
    fn run(&self, spec: &Path, extra: &[&str]) -> Output {
        common::weir_command()
            .arg("run")
            .arg(spec)
            .arg("--connections")
            .arg(self.dir.path().join("connections.toml"))
            .arg("--warehouse")
            .arg(self.warehouse())
            .arg("--json")
            .args(extra)
            .output()
            .expect("weir runs")
    }

    /// Runs and requires success; returns the summary by destination.
    fn run_ok(&self, spec: &Path) -> BTreeMap<String, Value> {
        let out = self.run(spec, &[]);
        assert!(out.status.success(), "weir run failed:\n{}", text(&out));
        summary(&out)
    }

    /// Reads a destination table, given as path segments under the warehouse.
    fn delta(&self, segments: &[&str]) -> Value {
        let mut path = self.warehouse();
        path.extend(segments);
        read_delta(&path)
    }

    /// Every record of a source table, straight from the simulator's API.
    fn source(&self, table: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut offset: Option<String> = None;
        loop {
            let mut query = "pageSize=100".to_string();
            if let Some(o) = &offset {
                query.push_str(&format!("&offset={}", encode(o)));
            }
            let (status, body) = self.api("GET", &format!("{}?{query}", table_path(table)), None);
            assert_eq!(status, 200, "{body}");
            out.extend(body["records"].as_array().expect("records").iter().cloned());
            match body.get("offset").and_then(Value::as_str) {
                Some(o) => offset = Some(o.to_string()),
                None => return out,
            }
        }
    }

    /// One request to the simulator's API.
    fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        sim_api(&self.sim, method, path, body)
    }
}

fn table_path(table: &str) -> String {
    format!("/v0/{DEFAULT_BASE_ID}/{}", encode(table))
}

/// The `--json` summary, keyed by destination.
fn summary(out: &Output) -> BTreeMap<String, Value> {
    let reports: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("the summary is not JSON ({e}):\n{}", text(out)));
    reports.into_iter().map(|r| (r["destination"].as_str().expect("destination").to_string(), r)).collect()
}

fn rows(table: &Value) -> &Vec<Value> {
    table["data"].as_array().expect("data")
}

fn ids(table: &Value) -> Vec<String> {
    rows(table).iter().map(|r| r["id"].as_str().expect("id").to_string()).collect()
}

fn assert_unique_ids(table: &Value, what: &str) {
    let all = ids(table);
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "{what}: duplicate ids");
}

fn row<'a>(table: &'a Value, id: &str) -> &'a Value {
    rows(table).iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("no row with id {id}"))
}

/// The Delta type of a column, as the log states it.
fn column_type<'a>(table: &'a Value, column: &str) -> &'a Value {
    let fields = table["schema"]["fields"].as_array().expect("schema fields");
    &fields.iter().find(|f| f["name"] == column).unwrap_or_else(|| panic!("no column {column}"))["type"]
}

fn instant(v: &Value) -> chrono::DateTime<chrono::Utc> {
    let s = v.as_str().unwrap_or_else(|| panic!("{v} is not a time"));
    chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}")).to_utc()
}

/// A table's commits after `version`.
fn commits_after(table: &Value, version: i64) -> Vec<&Value> {
    table["commits"]
        .as_array()
        .expect("commits")
        .iter()
        .filter(|c| c["version"].as_i64() > Some(version))
        .collect()
}

/// Every folder under `dir` that holds a Delta log.
fn delta_tables(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == "_delta_log") {
                found.push(d.clone());
            } else if p.is_dir() {
                stack.push(p);
            }
        }
    }
    found
}

const SIX: [(&str, &[&str], &str); 6] = [
    ("SKU Candidates", &["main", "bronze", "sku_candidates"], "cdc"),
    ("Launch Milestones", &["main", "bronze", "launch_milestones"], "cdc"),
    ("Compliance Records", &["main", "bronze", "compliance_records"], "cdc"),
    ("Packaging Tasks", &["packaging_tasks"], "snapshot"),
    ("Marketing Assets", &["marketing_assets"], "snapshot"),
    ("Vendors", &["vendors"], "snapshot"),
];

fn six_table_spec() -> String {
    let mut spec = String::from("connection_name: airtable\nobjects:\n");
    for (source, dest, _) in SIX {
        spec.push_str(&format!("  - table:\n      source_table: {source}\n"));
        if let [catalog, schema, table] = dest {
            spec.push_str(&format!(
                "      destination_catalog: {catalog}\n      destination_schema: {schema}\n      destination_table: {table}\n"
            ));
        }
    }
    spec
}

#[test]
fn six_tables_land_where_the_spec_says_with_offsets_in_the_log_and_a_rerun_changes_nothing() {
    let env = Env::new();
    let spec = env.spec("six.yaml", &six_table_spec());
    let first = env.run_ok(&spec);

    let mut before = BTreeMap::new();
    for (source, dest, ingestion) in SIX {
        let name = dest.join(".");
        let report = &first[&name];
        assert_eq!(report["ingestion_type"], ingestion, "{name}");
        assert_eq!(report["error"], Value::Null, "{name}");
        let table = env.delta(dest);
        let source_rows = env.source(source);
        assert!(!source_rows.is_empty(), "{source} has rows in the simulator");
        assert_eq!(table["rows"].as_u64(), Some(source_rows.len() as u64), "{name}: row count");
        assert_unique_ids(&table, &name);
        let source_ids: BTreeSet<String> =
            source_rows.iter().map(|r| r["id"].as_str().expect("id").to_string()).collect();
        assert_eq!(ids(&table).into_iter().collect::<BTreeSet<_>>(), source_ids, "{name}: ids");

        // The offset travels in the same commit as the rows: commitInfo and a txn action.
        let last = table["commits"].as_array().and_then(|c| c.last()).expect("a commit");
        let app_id = format!("weir/airtable/{name}");
        assert_eq!(last["txn"][0]["appId"], app_id, "{name}: txn of the last commit");
        assert_eq!(last["info"]["weir.offset"], report["offset"], "{name}: offset in commitInfo");
        assert_eq!(table["txn"][&app_id], last["info"]["weir.version"], "{name}: txn version");
        assert!(last["adds"].as_u64() > Some(0), "{name}: the last commit carries the rows");
        if ingestion == "cdc" {
            let offset: Value =
                serde_json::from_str(report["offset"].as_str().expect("offset")).expect("JSON offset");
            assert!(offset["cursor"].is_string(), "{name}: a cdc offset holds a cursor: {offset}");
        }
        before.insert(name, table);
    }
    assert!(env.warehouse().join("main/bronze/sku_candidates/_delta_log").is_dir());
    assert!(env.warehouse().join("vendors/_delta_log").is_dir());
    assert_eq!(delta_tables(&env.warehouse()).len(), 6, "no other tables");

    // Typed values, checked against the source record.
    let sku = &before["main.bronze.sku_candidates"];
    assert_eq!(column_type(sku, "created_time"), "timestamp", "timestamps carry UTC (not timestamp_ntz)");
    assert_eq!(column_type(sku, "last_modified"), "timestamp");
    assert!(
        column_type(sku, "price").as_str().is_some_and(|t| t.starts_with("decimal(")),
        "price is a decimal"
    );
    assert_eq!(column_type(sku, "created_by")["type"], "struct");
    let record = &env.source("SKU Candidates")[0];
    let id = record["id"].as_str().expect("id");
    let delta_row = row(sku, id);
    assert_eq!(delta_row["name"], record["fields"]["Name"]);
    let price: f64 = delta_row["price"].as_str().and_then(|p| p.parse().ok()).expect("decimal as text");
    assert_eq!(Some(price), record["fields"]["Price"].as_f64());
    assert_eq!(instant(&delta_row["created_time"]), instant(&record["createdTime"]));
    assert_eq!(instant(&delta_row["last_modified"]), instant(&record["fields"]["Last Modified"]));
    assert_eq!(delta_row["created_by"]["email"], record["fields"]["Created By"]["email"]);

    // Rerun with no change in the source.
    let second = env.run_ok(&spec);
    for (_, dest, ingestion) in SIX {
        let name = dest.join(".");
        let old = &before[&name];
        let new = env.delta(dest);
        assert_eq!(new["data"], old["data"], "{name}: same content after a rerun");
        let old_version = old["version"].as_i64().expect("version");
        let added = commits_after(&new, old_version);
        if ingestion == "cdc" {
            // Nothing new to read: any commit may only restate the offset, never touch rows.
            for c in &added {
                assert_eq!((c["adds"].as_u64(), c["removes"].as_u64()), (Some(0), Some(0)), "{name}: {c}");
                assert_eq!(c["info"]["weir.offset"], first[&name]["offset"], "{name}: the offset stays");
            }
            assert_eq!(second[&name]["inserted"], 0, "{name}");
            assert_eq!(second[&name]["updated"], 0, "{name}");
        } else {
            assert_eq!(added.len(), 1, "{name}: a snapshot is replaced in exactly one commit");
            assert!(added[0]["removes"].as_u64() > Some(0), "{name}: the replace removes the old files");
        }
    }
}

#[test]
fn cdc_changes_are_upserted_and_snapshot_deletes_disappear() {
    let env = Env::new();
    let spec = env.spec(
        "two.yaml",
        "connection_name: airtable\nobjects:\n  - table:\n      source_table: SKU Candidates\n  - table:\n      source_table: Vendors\n",
    );
    env.run_ok(&spec);
    let sku_before = env.delta(&["sku_candidates"]);
    let vendors_before = env.delta(&["vendors"]);

    let target = ids(&sku_before)[3].clone();
    let (status, body) = env.api(
        "PATCH",
        &table_path("SKU Candidates"),
        Some(json!({"records": [{"id": target, "fields": {"Name": "Renamed by the test"}}]})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = env.api(
        "POST",
        &table_path("SKU Candidates"),
        Some(json!({"records": [{"fields": {"Name": "Brand new SKU", "Price": 12.5}}]})),
    );
    assert_eq!(status, 200, "{body}");
    let created = body["records"][0]["id"].as_str().expect("new id").to_string();
    let gone = ids(&vendors_before)[0].clone();
    let (status, body) = env.api("DELETE", &format!("{}?records[]={gone}", table_path("Vendors")), None);
    assert_eq!(status, 200, "{body}");

    let report = env.run_ok(&spec);
    assert!(report["sku_candidates"]["updated"].as_u64() >= Some(1), "{}", report["sku_candidates"]);
    assert!(report["sku_candidates"]["inserted"].as_u64() >= Some(1), "{}", report["sku_candidates"]);

    let sku = env.delta(&["sku_candidates"]);
    assert_unique_ids(&sku, "sku_candidates");
    assert_eq!(sku["rows"].as_u64(), sku_before["rows"].as_u64().map(|n| n + 1));
    assert_eq!(row(&sku, &target)["name"], "Renamed by the test");
    assert!(
        instant(&row(&sku, &target)["last_modified"]) > instant(&row(&sku_before, &target)["last_modified"])
    );
    assert_eq!(row(&sku, &created)["name"], "Brand new SKU");
    assert_eq!(row(&sku, &created)["price"], "12.50");
    for r in rows(&sku_before).iter().filter(|r| r["id"] != target.as_str()) {
        assert_eq!(row(&sku, r["id"].as_str().expect("id")), r, "rows that did not change stay as they were");
    }

    let vendors = env.delta(&["vendors"]);
    assert_eq!(vendors["rows"].as_u64(), vendors_before["rows"].as_u64().map(|n| n - 1));
    assert!(!ids(&vendors).contains(&gone), "the deleted vendor is gone from the snapshot table");
    assert_eq!(ids(&vendors).len(), env.source("Vendors").len());
}

#[test]
fn scd2_snapshot_keeps_history() {
    let env = Env::new();
    let spec = env.spec(
        "scd2.yaml",
        "connection_name: airtable\nobjects:\n  - table:\n      source_table: Vendors\n      table_configuration:\n        scd_type: SCD_TYPE_2\n",
    );
    env.run_ok(&spec);
    let before = env.delta(&["vendors"]);
    assert!(rows(&before).iter().all(|r| r["__END_AT"].is_null() && !r["__START_AT"].is_null()));
    let all = ids(&before);
    let (changed, deleted) = (all[1].clone(), all[2].clone());
    let old_name = row(&before, &changed)["vendor"].clone();

    let patch = json!({"records": [{"id": changed, "fields": {"Vendor": "Renamed Vendor GmbH"}}]});
    assert_eq!(env.api("PATCH", &table_path("Vendors"), Some(patch)).0, 200);
    assert_eq!(env.api("DELETE", &format!("{}?records[]={deleted}", table_path("Vendors")), None).0, 200);
    env.run_ok(&spec);

    let after = env.delta(&["vendors"]);
    let history: Vec<&Value> = rows(&after).iter().filter(|r| r["id"] == changed.as_str()).collect();
    assert_eq!(history.len(), 2, "the changed vendor has an old and a new version: {history:?}");
    let (closed, open): (Vec<&Value>, Vec<&Value>) = history.iter().partition(|r| !r["__END_AT"].is_null());
    assert_eq!((closed.len(), open.len()), (1, 1), "{history:?}");
    assert_eq!(closed[0]["vendor"], old_name);
    assert_eq!(open[0]["vendor"], "Renamed Vendor GmbH");
    assert!(instant(&closed[0]["__END_AT"]) <= instant(&open[0]["__START_AT"]));

    let deleted_rows: Vec<&Value> = rows(&after).iter().filter(|r| r["id"] == deleted.as_str()).collect();
    assert_eq!(deleted_rows.len(), 1);
    assert!(!deleted_rows[0]["__END_AT"].is_null(), "a vanished vendor is closed, not kept open");
    let unchanged_open = rows(&after)
        .iter()
        .filter(|r| r["id"] != changed.as_str() && r["id"] != deleted.as_str() && r["__END_AT"].is_null())
        .count();
    assert_eq!(unchanged_open, all.len() - 2, "other vendors keep one open version each");
    assert_eq!(after["rows"].as_u64(), Some(all.len() as u64 + 1));
}

#[test]
fn cluster_by_z_orders_the_table_after_a_run_that_changed_it() {
    let env = Env::new();
    let spec = env.spec(
        "cluster.yaml",
        "connection_name: airtable\nobjects:\n  - table:\n      source_table: SKU Candidates\n      table_configuration:\n        cluster_by: [name]\n",
    );
    let first = env.run_ok(&spec);
    let files = first["sku_candidates"]["clustered_files"].as_u64().unwrap_or(0);
    assert!(files >= 1, "the run z-ordered the table: {}", first["sku_candidates"]);
    let table = env.delta(&["sku_candidates"]);
    let commits = table["commits"].as_array().expect("commits");
    let last = commits.last().expect("a commit");
    assert_eq!(last["operation"], "OPTIMIZE", "{last}");
    assert_eq!(last["info"]["weir.cluster_by"], "name", "the commit names its z-order columns: {last}");
    assert_eq!(table["rows"].as_u64(), Some(env.source("SKU Candidates").len() as u64));
    assert_unique_ids(&table, "sku_candidates");

    let second = env.run_ok(&spec);
    assert_eq!(second["sku_candidates"]["clustered_files"], 0, "nothing changed, so nothing is rewritten");
    let optimizes = |t: &Value| {
        t["commits"].as_array().expect("commits").iter().filter(|c| c["operation"] == "OPTIMIZE").count()
    };
    assert_eq!(optimizes(&env.delta(&["sku_candidates"])), 1);
}

#[test]
fn append_only_appends_the_snapshot_on_every_run() {
    let env = Env::new();
    let spec = env.spec(
        "append.yaml",
        "connection_name: airtable\nobjects:\n  - table:\n      source_table: Vendors\n      table_configuration:\n        scd_type: APPEND_ONLY\n",
    );
    let first = env.run_ok(&spec);
    assert_eq!(first["vendors"]["ingestion_type"], "append");
    let n = env.source("Vendors").len() as u64;
    assert_eq!(env.delta(&["vendors"])["rows"].as_u64(), Some(n));
    env.run_ok(&spec);
    let table = env.delta(&["vendors"]);
    assert_eq!(table["rows"].as_u64(), Some(2 * n), "a second run appends the whole snapshot again");
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for id in ids(&table) {
        *counts.entry(id).or_default() += 1;
    }
    assert!(counts.values().all(|&c| c == 2), "every vendor twice: {counts:?}");
}

#[test]
fn an_append_only_read_of_a_cdc_table_appends_each_record_once_though_ties_straddle_its_chunks() {
    let env = Env::new();
    // Each request creates ten records with one modified time: ties that pages of four split,
    // and that chunks of four records cut through.
    for batch in 0..4 {
        let records: Vec<Value> =
            (0..10).map(|i| json!({"fields": {"Name": format!("tied {batch}-{i}")}})).collect();
        let (status, body) =
            env.api("POST", &table_path("SKU Candidates"), Some(json!({"records": records})));
        assert_eq!(status, 200, "{body}");
    }
    let spec = env.spec(
        "append.yaml",
        "connection_name: airtable\nobjects:\n  - table:\n      source_table: SKU Candidates\n      \
         table_configuration:\n        scd_type: APPEND_ONLY\n        page_size: 4\n        checkpoint_records: 4\n",
    );
    let report = env.run_ok(&spec);
    assert_eq!(report["sku_candidates"]["ingestion_type"], "append");
    let table = env.delta(&["sku_candidates"]);
    assert_unique_ids(&table, "sku_candidates");
    assert_eq!(ids(&table).len(), env.source("SKU Candidates").len(), "every record, once");
    // Read once, too: a Spark DataFrame of the same read holds what the connector returned.
    assert_eq!(report["sku_candidates"]["rows_read"].as_u64(), Some(ids(&table).len() as u64));
}

#[test]
fn the_same_source_twice_with_different_options() {
    let env = Env::new();
    let spec = env.spec(
        "twice.yaml",
        "connection_name: airtable\nobjects:\n  - table:\n      source_table: Vendors\n  - table:\n      source_table: Vendors\n      \
         destination_table: vendors_contacts\n      table_configuration:\n        fields: Vendor,Contact Email\n",
    );
    env.run_ok(&spec);
    let full = env.delta(&["vendors"]);
    let contacts = env.delta(&["vendors_contacts"]);
    let n = env.source("Vendors").len() as u64;
    assert_eq!(full["rows"].as_u64(), Some(n));
    assert_eq!(contacts["rows"].as_u64(), Some(n));
    let columns = |t: &Value| -> BTreeSet<String> {
        t["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| c.as_str().expect("name").to_string())
            .collect()
    };
    let (full_cols, contact_cols) = (columns(&full), columns(&contacts));
    assert!(contact_cols.contains("vendor") && contact_cols.contains("contact_email"), "{contact_cols:?}");
    assert!(!contact_cols.contains("phone") && !contact_cols.contains("country"), "{contact_cols:?}");
    assert!(full_cols.contains("phone") && full_cols.contains("country"), "{full_cols:?}");
    for r in rows(&contacts) {
        assert_eq!(r["contact_email"], row(&full, r["id"].as_str().expect("id"))["contact_email"]);
    }
}

#[test]
fn bad_specs_fail_naming_the_problem_and_write_nothing() {
    let env = Env::new();
    let valid = "  - table:\n      source_table: Vendors\n";
    let cases: [(&str, String, &str); 7] = [
        (
            "unknown key",
            format!(
                "connection_name: airtable\nobjects:\n{valid}  - table:\n      source_table: Vendors\n      primary_key: id\n"
            ),
            "primary_key",
        ),
        ("empty objects", "connection_name: airtable\nobjects: []\n".to_string(), "objects"),
        (
            "unknown scd_type",
            format!(
                "connection_name: airtable\nobjects:\n{valid}  - table:\n      source_table: Packaging Tasks\n      table_configuration:\n        scd_type: SCD_TYPE_3\n"
            ),
            "SCD_TYPE_3",
        ),
        (
            "unknown source table",
            format!(
                "connection_name: airtable\nobjects:\n{valid}  - table:\n      source_table: No Such Table\n"
            ),
            "No Such Table",
        ),
        (
            "destination escaping the warehouse",
            format!(
                "connection_name: airtable\nobjects:\n{valid}  - table:\n      source_table: Packaging Tasks\n      destination_table: ../escaped\n"
            ),
            "destination_table",
        ),
        (
            "unknown connector option",
            format!(
                "connection_name: airtable\nobjects:\n{valid}  - table:\n      source_table: Packaging Tasks\n      table_configuration:\n        colour: red\n"
            ),
            "colour",
        ),
        (
            "cluster_by on a struct column",
            format!(
                "connection_name: airtable\nobjects:\n{valid}  - table:\n      source_table: SKU Candidates\n      table_configuration:\n        cluster_by: [sku_code]\n"
            ),
            "cluster_by column \"sku_code\"",
        ),
    ];
    for (i, (what, yaml, named)) in cases.iter().enumerate() {
        let spec = env.spec(&format!("bad{i}.yaml"), yaml);
        let out = env.run(&spec, &[]);
        assert!(!out.status.success(), "{what}: weir run succeeded:\n{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{what}: the error names {named:?}:\n{}", text(&out));
        let written = delta_tables(env.dir.path());
        assert!(written.is_empty(), "{what}: a bad spec wrote {written:?}");
    }
}

#[test]
fn a_table_that_fails_while_reading_does_not_stop_the_others() {
    let env = Env::new();
    // The formula is only checked by the source when records are listed, after the up-front
    // schema and metadata checks have passed.
    let spec = env.spec(
        "failing.yaml",
        "connection_name: airtable\nobjects:\n  - table:\n      source_table: Packaging Tasks\n      table_configuration:\n        \
         filter_by_formula: NOT_A_FUNCTION()\n  - table:\n      source_table: Vendors\n  - table:\n      source_table: Launch Milestones\n",
    );
    let out = env.run(&spec, &["--parallel", "1"]);
    assert!(!out.status.success(), "a failed table makes the run fail:\n{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("packaging_tasks"), "{}", text(&out));
    let report = summary(&out);
    let error = report["packaging_tasks"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("NOT_A_FUNCTION"), "the failure says why: {error:?}");
    for (name, source) in [("vendors", "Vendors"), ("launch_milestones", "Launch Milestones")] {
        assert_eq!(report[name]["error"], Value::Null, "{name}");
        assert_eq!(env.delta(&[name])["rows"].as_u64(), Some(env.source(source).len() as u64), "{name}");
    }
}

/// Two `weir run`s at once on one base (a scheduled run that overlaps the last, two pipelines on
/// one base) draw from one budget, so the source, enforcing Airtable's 5 requests a second per
/// base, never answers 429. (Each alone paces to 5 a second; two budgets would send 10.)
#[test]
fn two_runs_at_once_on_one_base_share_its_budget() {
    let sim = Sim::start(SimConfig { rate_limit: true, ..SimConfig::default() }).expect("simulator starts");
    let dir = tempfile::tempdir().expect("temp dir");
    write_sim_connections(dir.path(), &sim);
    let runs: Vec<_> = SIX
        .chunks(3)
        .enumerate()
        .map(|(i, tables)| {
            let mut spec = String::from("connection_name: airtable\nobjects:\n");
            for (source, _, _) in tables {
                spec.push_str(&format!("  - table:\n      source_table: {source}\n"));
            }
            let path = dir.path().join(format!("half{i}.yaml"));
            std::fs::write(&path, spec).expect("write spec");
            let log =
                |what: &str| std::fs::File::create(dir.path().join(format!("{what}{i}"))).expect("log file");
            let run = common::weir_command()
                .arg("run")
                .arg(&path)
                .arg("--connections")
                .arg(dir.path().join("connections.toml"))
                .arg("--warehouse")
                .arg(dir.path().join(format!("warehouse{i}")))
                .arg("--json")
                .env("WEIR_CACHE_DIR", dir.path().join("cache"))
                .stdout(log("out"))
                .stderr(log("err"))
                .spawn()
                .expect("weir runs");
            (i, run)
        })
        .collect();
    for (i, mut run) in runs {
        let status = run.wait().expect("weir finishes");
        let err = std::fs::read_to_string(dir.path().join(format!("err{i}"))).unwrap_or_default();
        assert!(status.success(), "weir run {i} failed:\n{err}");
        assert!(!err.contains("429 from"), "weir run {i} drew a 429:\n{err}");
    }
    let stats = sim.stats();
    assert_eq!(stats.rate_limited, 0, "the runs drew 429s together: {stats:?}");
    assert!(stats.max_requests_in_any_second <= 5, "{stats:?}");
}
