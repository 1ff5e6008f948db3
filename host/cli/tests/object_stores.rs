//! `weir` writing to object stores on loopback: moto's S3 and Azurite (Azure Blob / ADLS Gen2),
//! both started by the test harness (`weir_tests::stores`), with every table read back from the
//! bucket by the independent reader (tests/py/read_delta.py, Python `deltalake` with storage
//! options). Also the configurations weir must refuse, and the errors a user sees for bad
//! credentials: one line that names the variable or profile, never the secret.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{sim_api, text, write_sim_connections};
use serde_json::{Value, json};
use weir_airtable_sim::{DEFAULT_BASE_ID, Sim, SimConfig};
use weir_tests::delta_reader::read_delta_at;
use weir_tests::stores::{AZURITE_KEY, Azurite, S3_SECRET, S3Proxy, S3Server, clear_store_env};

fn s3() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(S3Server::start)
}

fn azurite() -> &'static Azurite {
    static SERVER: OnceLock<Azurite> = OnceLock::new();
    SERVER.get_or_init(Azurite::start)
}

/// A warehouse in an object store: its URL and the environment that reaches it.
struct Warehouse {
    url: String,
    env: Vec<(String, String)>,
}

impl Warehouse {
    /// `s3://BUCKET/warehouse` on moto, in a new bucket.
    fn s3(bucket: &str) -> Warehouse {
        s3().create_bucket(bucket);
        Warehouse { url: format!("s3://{bucket}/warehouse"), env: s3().env() }
    }

    /// `abfss://CONTAINER@devstoreaccount1.dfs.core.windows.net/warehouse` on Azurite.
    fn azure(container: &str) -> Warehouse {
        azurite().create_container(container);
        Warehouse { url: Azurite::url(container, "warehouse"), env: azurite().env() }
    }

    fn table(&self, path: &str) -> String {
        format!("{}/{path}", self.url)
    }

    fn read(&self, path: &str) -> Value {
        read_delta_at(&self.table(path), &self.env, &[])
    }

    /// `weir ARGS` under this warehouse's environment (and nothing of the caller's cloud settings).
    fn weir(&self, args: &[&str]) -> Output {
        weir(&self.env, args)
    }
}

/// `weir ARGS` under `env` and nothing of the caller's cloud settings.
fn command(env: &[(String, String)], args: &[&str]) -> Command {
    let mut cmd = common::weir_command();
    clear_store_env(&mut cmd);
    cmd.envs(env.iter().map(|(k, v)| (k, v))).args(args);
    cmd
}

fn weir(env: &[(String, String)], args: &[&str]) -> Output {
    command(env, args).output().expect("weir runs")
}

/// Requires success and no secret in anything weir printed; returns the `--json` reports by destination.
fn reports(out: &Output) -> BTreeMap<String, Value> {
    assert!(out.status.success(), "weir failed:\n{}", text(out));
    assert_no_secret(out);
    by_destination(serde_json::from_slice(&out.stdout).expect("a JSON summary"))
}

fn by_destination(reports: Vec<Value>) -> BTreeMap<String, Value> {
    reports.into_iter().map(|r| (r["destination"].as_str().expect("destination").to_string(), r)).collect()
}

fn assert_no_secret(out: &Output) {
    let all = text(out);
    for secret in [S3_SECRET, AZURITE_KEY] {
        assert!(!all.contains(secret), "weir printed a secret:\n{all}");
    }
}

fn rows(table: &Value) -> &Vec<Value> {
    table["data"].as_array().expect("data")
}

fn ids(table: &Value) -> BTreeSet<String> {
    let all: Vec<String> = rows(table).iter().map(|r| r["id"].as_str().expect("id").to_string()).collect();
    let unique: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(unique.len(), all.len(), "duplicate ids");
    unique
}

fn row<'a>(table: &'a Value, id: &str) -> &'a Value {
    rows(table).iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("no row {id}"))
}

fn columns(table: &Value) -> BTreeSet<String> {
    table["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c.as_str().expect("name").to_string())
        .collect()
}

/// Commits after `version` that added or removed files.
fn data_commits_after(table: &Value, version: &Value) -> usize {
    let version = version.as_i64().expect("a version");
    table["commits"]
        .as_array()
        .expect("commits")
        .iter()
        .filter(|c| c["version"].as_i64() > Some(version))
        .filter(|c| c["adds"].as_u64() > Some(0) || c["removes"].as_u64() > Some(0))
        .count()
}

const SKU: &str = "SKU Candidates";
const SKU_TABLE: &str = "main/bronze/sku_candidates";

fn sku_spec(fields: Option<&str>) -> String {
    let mut spec = format!(
        "connection_name: airtable\nobjects:\n  - table:\n      source_table: {SKU}\n      destination_catalog: main\n      \
         destination_schema: bronze\n      destination_table: sku_candidates\n"
    );
    if let Some(fields) = fields {
        spec.push_str(&format!("      table_configuration:\n        fields: {fields}\n"));
    }
    spec
}

/// What a user does first and next, against one store: `weir demo` into it, then a pipeline
/// of their own that is rerun, gains columns (schema evolution) and upserts changed records.
fn demo_then_rerun_evolve_and_upsert(warehouse: &Warehouse) {
    let dir = tempfile::tempdir().expect("temp dir");

    // 1. The demo's six tables, straight into the bucket.
    let demo_dir = dir.path().join("demo");
    let demo_dir = demo_dir.to_str().expect("UTF-8 path");
    // Its two runs: the second after two Compliance Records were deleted in the simulator.
    let out = warehouse.weir(&["demo", "--dir", demo_dir, "--warehouse", &warehouse.table("demo"), "--json"]);
    assert!(out.status.success(), "weir failed:\n{}", text(&out));
    assert_no_secret(&out);
    let summary: Value = serde_json::from_slice(&out.stdout).expect("a JSON summary");
    let runs: Vec<BTreeMap<String, Value>> = summary["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|run| by_destination(serde_json::from_value(run.clone()).expect("reports")))
        .collect();
    assert_eq!(runs.len(), 2, "{summary}");
    let (demo, again) = (&runs[0], &runs[1]);
    assert_eq!(demo.len(), 6, "{demo:?}");
    assert_eq!(again["bronze_compliance_records"]["deleted"], 2, "{again:?}");
    for (name, report) in demo {
        let later = &again[name];
        assert_eq!((&report["error"], &later["error"]), (&Value::Null, &Value::Null), "{name}");
        let table = warehouse.read(&format!("demo/{name}"));
        assert!(table["rows"].as_u64() > Some(0), "{name} has rows");
        let net = |r: &Value| r["inserted"].as_i64().unwrap_or(0) - r["deleted"].as_i64().unwrap_or(0);
        assert_eq!(
            table["rows"].as_i64(),
            Some(net(report) + net(later)),
            "{name}: the bucket holds what the runs left"
        );
        ids(&table);
        let app_id = format!("weir/airtable/{name}");
        assert!(
            table["txn"][&app_id].as_i64() >= Some(1),
            "{name}: the offset's txn is in the log: {}",
            table["txn"]
        );
        let last = table["commits"].as_array().and_then(|c| c.last()).expect("a commit");
        let offset = if later["commits"].as_u64() > Some(0) { &later["offset"] } else { &report["offset"] };
        assert_eq!(&last["info"]["weir.offset"], offset, "{name}: the offset is in the last commit");
    }

    // 2. A pipeline of one's own, first with three of the source's fields.
    let sim = Sim::start(SimConfig { rate_limit: false, ..SimConfig::default() }).expect("simulator starts");
    write_sim_connections(dir.path(), &sim);
    let conns = dir.path().join("connections.toml");
    let run = |spec_text: &str| {
        let spec = dir.path().join("sku.yaml");
        std::fs::write(&spec, spec_text).expect("write spec");
        let (spec, conns) = (spec.to_str().expect("UTF-8"), conns.to_str().expect("UTF-8"));
        reports(&warehouse.weir(&[
            "run",
            spec,
            "--connections",
            conns,
            "--warehouse",
            &warehouse.url,
            "--json",
        ]))
    };
    let narrow = sku_spec(Some("Name,Price,Last Modified"));
    let first = run(&narrow);
    let before = warehouse.read(SKU_TABLE);
    let source = source_ids(&sim);
    assert_eq!(ids(&before), source, "every source record, once");
    assert_eq!(first["main.bronze.sku_candidates"]["inserted"].as_u64(), Some(source.len() as u64));
    let narrow_columns = columns(&before);
    assert!(narrow_columns.contains("name") && !narrow_columns.contains("status"), "{narrow_columns:?}");

    // 3. A rerun with nothing new changes no row.
    let again = run(&narrow);
    let report = &again["main.bronze.sku_candidates"];
    assert_eq!((report["inserted"].as_u64(), report["updated"].as_u64()), (Some(0), Some(0)), "{report}");
    let rerun = warehouse.read(SKU_TABLE);
    assert_eq!(rerun["data"], before["data"], "a rerun leaves the rows as they were");
    assert_eq!(data_commits_after(&rerun, &before["version"]), 0, "a rerun writes no data files");

    // 4. The source changes a record and gains one; the spec now takes every field.
    let ids_before: Vec<String> = ids(&before).into_iter().collect();
    let (changed, untouched) = (&ids_before[2], &ids_before[5]);
    let path = format!("/v0/{DEFAULT_BASE_ID}/SKU%20Candidates");
    let patch = json!({"records": [{"id": changed, "fields": {"Name": "Renamed in the bucket"}}]});
    assert_eq!(sim_api(&sim, "PATCH", &path, Some(patch)).0, 200);
    let (status, body) = sim_api(
        &sim,
        "POST",
        &path,
        Some(json!({"records": [{"fields": {"Name": "New in the bucket", "Price": 3.5}}]})),
    );
    assert_eq!(status, 200, "{body}");
    let created = body["records"][0]["id"].as_str().expect("new id").to_string();
    let third = run(&sku_spec(None));
    let report = &third["main.bronze.sku_candidates"];
    assert!(report["updated"].as_u64() >= Some(1) && report["inserted"].as_u64() >= Some(1), "{report}");

    let after = warehouse.read(SKU_TABLE);
    let wide_columns = columns(&after);
    assert!(wide_columns.is_superset(&narrow_columns), "no column is lost: {wide_columns:?}");
    assert!(wide_columns.contains("status"), "the new fields became columns: {wide_columns:?}");
    assert_eq!(ids(&after).len(), source.len() + 1, "one row more, none twice");
    assert_eq!(row(&after, changed)["name"], "Renamed in the bucket", "the change was upserted");
    assert!(!row(&after, changed)["status"].is_null(), "the upserted row has its new columns filled");
    assert_eq!(row(&after, &created)["name"], "New in the bucket");
    assert_eq!(row(&after, &created)["price"], "3.50");
    let old = row(&before, untouched);
    for column in &narrow_columns {
        assert_eq!(row(&after, untouched)[column], old[column], "an untouched row keeps its {column}");
    }
    assert!(row(&after, untouched)["status"].is_null(), "an untouched row was not read again");
}

fn source_ids(sim: &Sim) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut offset: Option<String> = None;
    loop {
        let mut path = format!("/v0/{DEFAULT_BASE_ID}/SKU%20Candidates?pageSize=100");
        if let Some(o) = &offset {
            path.push_str(&format!("&offset={}", common::encode(o)));
        }
        let (status, body) = sim_api(sim, "GET", &path, None);
        assert_eq!(status, 200, "{body}");
        out.extend(
            body["records"]
                .as_array()
                .expect("records")
                .iter()
                .map(|r| r["id"].as_str().expect("id").to_string()),
        );
        match body.get("offset").and_then(Value::as_str) {
            Some(o) => offset = Some(o.to_string()),
            None => return out,
        }
    }
}

#[test]
fn s3_demo_reruns_schema_evolution_and_upserts() {
    let warehouse = Warehouse::s3("weir-pipeline");
    demo_then_rerun_evolve_and_upsert(&warehouse);
    let probes: Vec<String> =
        s3().keys("weir-pipeline", "warehouse/").into_iter().filter(|k| k.contains("_weir_probe")).collect();
    assert!(probes.is_empty(), "the commit-safety probes clean up after themselves: {probes:?}");
}

#[test]
fn azure_demo_reruns_schema_evolution_and_upserts() {
    demo_then_rerun_evolve_and_upsert(&Warehouse::azure("weir-pipeline"));
}

/// `weir demo --warehouse URL` under `env`, required to fail; returns stderr.
fn refused(env: &[(String, String)], url: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo_dir = dir.path().join("demo");
    let out = weir(env, &["demo", "--dir", demo_dir.to_str().expect("UTF-8"), "--warehouse", url]);
    assert!(!out.status.success(), "weir demo --warehouse {url} succeeded:\n{}", text(&out));
    assert_no_secret(&out);
    let errors = String::from_utf8_lossy(&out.stderr).lines().filter(|l| l.starts_with("error")).count();
    assert_eq!(errors, 1, "one error:\n{}", text(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn with(env: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = env.to_vec();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

#[test]
fn configurations_that_cannot_commit_safely_are_refused_before_anything_is_written() {
    s3().create_bucket("weir-refused");
    let nothing_written = |prefix: &str| {
        let keys = s3().keys("weir-refused", prefix);
        assert!(keys.is_empty(), "a refused configuration wrote {keys:?}");
    };

    // A store that ignores conditional writes: moto behind a proxy that drops If-None-Match.
    let proxy = S3Proxy::start(s3().port(), true);
    let mut env = s3().env();
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL".into(), proxy.endpoint()));
    let err = refused(&env, "s3://weir-refused/no-conditions");
    assert!(err.contains("ignores conditional writes") && err.contains("AWS_ENDPOINT_URL"), "{err}");
    nothing_written("no-conditions/");

    let err =
        refused(&with(&s3().env(), &[("AWS_CONDITIONAL_PUT", "disabled")]), "s3://weir-refused/disabled");
    assert!(err.contains("unset AWS_CONDITIONAL_PUT"), "{err}");
    nothing_written("disabled/");

    let err =
        refused(&with(&s3().env(), &[("AWS_S3_LOCKING_PROVIDER", "dynamodb")]), "s3://weir-refused/lock");
    assert!(err.contains("Unset AWS_S3_LOCKING_PROVIDER"), "{err}");
    nothing_written("lock/");
}

#[test]
fn credentials_in_the_warehouse_url_are_refused_and_never_echoed() {
    for (url, secret, named) in [
        ("s3://AKIAWEIRTEST:url-secret-s3-Xy7@weir-refused/w", "url-secret-s3-Xy7", "AWS_ACCESS_KEY_ID"),
        (
            "abfss://c@devstoreaccount1.dfs.core.windows.net/w?sv=2024-01-01&sig=dXJsLXNlY3JldC1zYXM%3D",
            "dXJsLXNlY3JldC1zYXM",
            "AZURE_STORAGE_SAS_KEY",
        ),
    ] {
        let err = refused(&[], url);
        assert!(!err.contains(secret), "the refusal shows the secret: {err}");
        assert!(err.contains(named), "the refusal says where credentials go: {err}");
    }
}

#[test]
fn a_wrong_or_missing_credential_is_one_error_naming_where_it_came_from() {
    // Azurite checks Shared Key signatures: a key that is not the account's is refused.
    azurite().create_container("weir-credentials");
    let wrong = "d3JvbmctYWNjb3VudC1rZXktZm9yLXdlaXItdGVzdHMtbm90LWEtcmVhbC1vbmUtMTIzNDU2Nzg5MA==";
    let mut env = azurite().env();
    env.retain(|(k, _)| k != "AZURE_STORAGE_ACCOUNT_KEY");
    env.push(("AZURE_STORAGE_ACCOUNT_KEY".into(), wrong.into()));
    let err = refused(&env, &Azurite::url("weir-credentials", "w"));
    assert!(err.contains("refused the credentials") && err.contains("AZURE_STORAGE_ACCOUNT_KEY"), "{err}");
    assert!(!err.contains(wrong), "{err}");

    // moto accepts any signature, so S3's cases are credentials that cannot be found at all.
    s3().create_bucket("weir-credentials");
    let files = tempfile::tempdir().expect("temp dir");
    let (config, credentials) = (files.path().join("config"), files.path().join("credentials"));
    std::fs::write(&config, "").expect("write config");
    std::fs::write(&credentials, "[someone-else]\naws_access_key_id = x\naws_secret_access_key = y\n")
        .expect("write credentials");
    let mut env = s3().env();
    env.retain(|(k, _)| k != "AWS_ACCESS_KEY_ID" && k != "AWS_SECRET_ACCESS_KEY");
    let profile = with(
        &env,
        &[
            ("AWS_PROFILE", "weir-missing"),
            ("AWS_CONFIG_FILE", path(&config)),
            ("AWS_SHARED_CREDENTIALS_FILE", path(&credentials)),
        ],
    );
    let err = refused(&profile, "s3://weir-credentials/profile");
    assert!(err.contains("profile `weir-missing`") && err.contains(path(&credentials)), "{err}");

    // Neither keys nor a profile: after the files, the instance's role, whose metadata
    // service (pointed at a closed port here) does not answer.
    let nothing =
        with(&env, &[("AWS_METADATA_ENDPOINT", "http://127.0.0.1:9"), ("AWS_CONFIG_FILE", path(&config))]);
    let err = refused(&nothing, "s3://weir-credentials/none");
    assert!(err.contains("no usable credentials") && err.contains("AWS_ACCESS_KEY_ID"), "{err}");
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A source of `rows` SKU candidates and a spec that checkpoints every `checkpoint` records,
/// for the kill and concurrency tests; returns the simulator, the folder, and the paths of the
/// spec and of the connections file.
fn sku_source(rows: usize, checkpoint: usize) -> (Sim, tempfile::TempDir, String, String) {
    let sim =
        Sim::start(SimConfig { rate_limit: false, grow: vec![(SKU.into(), rows)], ..SimConfig::default() })
            .expect("simulator starts");
    let dir = tempfile::tempdir().expect("temp dir");
    write_sim_connections(dir.path(), &sim);
    let spec = dir.path().join("sku.yaml");
    std::fs::write(
        &spec,
        format!("{}      table_configuration:\n        checkpoint_records: {checkpoint}\n", sku_spec(None)),
    )
    .expect("write spec");
    let spec = spec.to_str().expect("UTF-8").to_string();
    let conns = dir.path().join("connections.toml").to_str().expect("UTF-8").to_string();
    (sim, dir, spec, conns)
}

impl Warehouse {
    /// `weir run SPEC` into this warehouse, committing every `commit_rows`, as a child process.
    fn spawn_run(&self, spec: &str, conns: &str, commit_rows: usize) -> std::process::Child {
        let rows = commit_rows.to_string();
        let args =
            ["run", spec, "--connections", conns, "--warehouse", &self.url, "--json", "--commit-rows", &rows];
        command(&self.env, &args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("weir starts")
    }
}

/// Commits of `app_id` in the log: every txn version it wrote, in log order.
fn txn_versions(table: &Value, app_id: &str) -> Vec<i64> {
    table["commits"]
        .as_array()
        .expect("commits")
        .iter()
        .flat_map(|c| c["txn"].as_array().cloned().unwrap_or_default())
        .filter(|t| t["appId"] == app_id)
        .map(|t| t["version"].as_i64().expect("a txn version"))
        .collect()
}

/// The log's versions are 0, 1, 2, … with none missing or twice, and the one application's txn
/// versions rise strictly: no checkpoint was committed twice, none overwrote another.
fn assert_log_is_whole(table: &Value) {
    let apps: Vec<&String> = table["txn"].as_object().expect("txn").keys().collect();
    assert_eq!(apps.len(), 1, "one application writes the table: {apps:?}");
    let app_id = apps[0].as_str();
    let versions: Vec<i64> = table["commits"]
        .as_array()
        .expect("commits")
        .iter()
        .map(|c| c["version"].as_i64().expect("v"))
        .collect();
    let expected: Vec<i64> = (0..versions.len() as i64).collect();
    assert_eq!(versions, expected, "the log's versions are contiguous");
    let txns = txn_versions(table, app_id);
    assert!(txns.windows(2).all(|w| w[0] < w[1]), "{app_id}'s checkpoints rise strictly: {txns:?}");
}

#[test]
fn s3_sigkill_at_several_points_then_a_rerun_leaves_the_table_equal_to_the_source() {
    const ROWS: usize = 3_000;
    const CHECKPOINT: usize = 500;
    let (sim, _dir, spec, conns) = sku_source(ROWS, CHECKPOINT);
    let source = source_ids(&sim);

    // How long a whole run takes here, into a bucket of its own: the kill points are spread over it.
    // The first run may compile the component into the cache, which the killed runs then load, so
    // a second, warm run is the one timed.
    let timing = Warehouse::s3("weir-kill-timing");
    let out = timing.spawn_run(&spec, &conns, CHECKPOINT).wait_with_output().expect("weir runs");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(ids(&timing.read(SKU_TABLE)), source);
    let warm = Warehouse::s3("weir-kill-warm");
    let started = std::time::Instant::now();
    let out = warm.spawn_run(&spec, &conns, CHECKPOINT).wait_with_output().expect("weir runs");
    let whole = started.elapsed();
    assert!(out.status.success(), "{}", text(&out));

    let warehouse = Warehouse::s3("weir-killed");
    // Kill points as fractions of a whole run: a run that resumes from a checkpoint has less to do,
    // so the later points come early.
    let points = [0.1, 0.35, 0.2, 0.5, 0.15, 0.3];
    let mut killed_midway = 0;
    for point in points {
        let mut child = warehouse.spawn_run(&spec, &conns, CHECKPOINT);
        std::thread::sleep(whole.mul_f64(point));
        if child.try_wait().expect("wait").is_none() {
            killed_midway += 1;
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }
    assert!(
        killed_midway >= 3,
        "at least three kills landed during a run ({killed_midway} of {})",
        points.len()
    );
    let out = warehouse.spawn_run(&spec, &conns, CHECKPOINT).wait_with_output().expect("weir runs");
    assert!(out.status.success(), "the rerun after the kills:\n{}", text(&out));
    assert_no_secret(&out);

    let table = warehouse.read(SKU_TABLE);
    assert_eq!(ids(&table), source, "every source record once, after {killed_midway} kills and a rerun");
    assert_log_is_whole(&table);
    let timing_rows = timing.read(SKU_TABLE);
    assert_eq!(table["data"], timing_rows["data"], "the same rows as an uninterrupted run");
}

#[test]
fn s3_two_concurrent_runs_on_one_table_never_commit_a_version_twice() {
    const ROWS: usize = 2_000;
    const CHECKPOINT: usize = 250;
    let (sim, _dir, spec, conns) = sku_source(ROWS, CHECKPOINT);
    let warehouse = Warehouse::s3("weir-concurrent");
    let (a, b) =
        (warehouse.spawn_run(&spec, &conns, CHECKPOINT), warehouse.spawn_run(&spec, &conns, CHECKPOINT));
    let (a, b) = (a.wait_with_output().expect("weir runs"), b.wait_with_output().expect("weir runs"));
    for out in [&a, &b] {
        assert_no_secret(out);
        if !out.status.success() {
            // The loser of a version is told so, in one error naming the table; nothing panics.
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!stderr.contains("panicked"), "{stderr}");
            assert!(stderr.contains("sku_candidates"), "the error names the table:\n{stderr}");
        }
    }
    assert!(
        a.status.success() || b.status.success(),
        "one of the runs completes:\n{}\n{}",
        text(&a),
        text(&b)
    );

    let table = warehouse.read(SKU_TABLE);
    assert_log_is_whole(&table);
    assert_eq!(ids(&table), source_ids(&sim), "every source record once");
    // A third run finds nothing left to do and leaves the log whole.
    let again = reports(&warehouse.weir(&[
        "run",
        &spec,
        "--connections",
        &conns,
        "--warehouse",
        &warehouse.url,
        "--json",
    ]));
    let report = &again["main.bronze.sku_candidates"];
    assert_eq!((report["inserted"].as_u64(), report["updated"].as_u64()), (Some(0), Some(0)), "{report}");
    assert_log_is_whole(&warehouse.read(SKU_TABLE));
}
