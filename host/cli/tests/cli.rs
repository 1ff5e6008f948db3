//! The `weir` binary end to end against the Airtable simulator: what a user sees on stdout,
//! stderr and in the exit code, and what the simulator saw (the host injects the token, a
//! denied address is never contacted, the token is never printed).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use weir_airtable_sim::{DEFAULT_BASE_ID, DEFAULT_TOKEN, Sim, SimConfig};

/// The env var the `{ env = … }` connections read the token from.
const TOKEN_VAR: &str = "WEIR_CLI_TEST_AIRTABLE_TOKEN";
const WRONG_TOKEN: &str = "patWrongToken.fedcba9876543210";

/// The six tables of the seed base, in the meta API's order.
const TABLES: [&str; 6] = [
    "SKU Candidates",
    "Launch Milestones",
    "Compliance Records",
    "Packaging Tasks",
    "Marketing Assets",
    "Vendors",
];

/// How a connection passes its token.
enum Token<'a> {
    Literal(&'a str),
    /// From [`TOKEN_VAR`], which [`Fixture::weir`] sets to the given value.
    Env,
    /// From a file next to connections.toml holding the given value.
    File(&'a str),
}

/// A running simulator and a folder holding a connections.toml for it.
struct Fixture {
    sim: Sim,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let sim =
            Sim::start(SimConfig { rate_limit: false, ..SimConfig::default() }).expect("simulator starts");
        Fixture { sim, dir: tempfile::tempdir().expect("tempdir") }
    }

    /// Writes `connections.toml` with one connection `sim`, and returns its path.
    fn connections(&self, token: Token, allow_loopback: bool) -> PathBuf {
        let token = match token {
            Token::Literal(t) => format!("{t:?}"),
            Token::Env => format!("{{ env = \"{TOKEN_VAR}\" }}"),
            Token::File(t) => {
                std::fs::write(self.dir.path().join("token.txt"), format!("{t}\n")).expect("write token");
                "{ file = \"token.txt\" }".to_string()
            }
        };
        let text = format!(
            "[connections.sim]\nconnector = \"airtable\"\nbase_id = \"{DEFAULT_BASE_ID}\"\n\
             base_url = \"{}\"\nbearer_token = {token}\n{}",
            self.sim.base_url(),
            if allow_loopback { "allow_loopback = true\n" } else { "" }
        );
        self.write("connections.toml", &text)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }
}

/// Runs `weir` with `args`, `--connections` first when given, and a clean environment
/// (the right token in [`TOKEN_VAR`], no `WEIR_CONNECTION*`, no `RUST_LOG` unless given).
fn weir(connections: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = common::weir_command();
    cmd.env(TOKEN_VAR, DEFAULT_TOKEN);
    cmd.args(args);
    if let Some(c) = connections {
        cmd.arg("--connections").arg(c);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("weir runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
fn ok(o: &Output) -> String {
    assert!(o.status.success(), "weir failed ({}):\n{}", o.status, stderr(o));
    stdout(o)
}

/// Asserts a nonzero exit and returns stderr.
fn fails(o: &Output) -> String {
    assert!(!o.status.success(), "weir succeeded but should have failed; stdout:\n{}", stdout(o));
    stderr(o)
}

fn assert_no_secret(o: &Output, secrets: &[&str]) {
    for s in secrets {
        assert!(!stdout(o).contains(s), "stdout shows the token {s:?}:\n{}", stdout(o));
        assert!(!stderr(o).contains(s), "stderr shows the token {s:?}:\n{}", stderr(o));
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

#[test]
fn tables_json_lists_the_six_tables_and_only_the_host_sent_the_token() {
    let f = Fixture::new();
    let conns = f.connections(Token::File(DEFAULT_TOKEN), true);
    let out = ok(&weir(Some(&conns), &["tables", "--json"], &[]));
    assert_eq!(json(&out), serde_json::json!(TABLES));
    let stats = f.sim.stats();
    assert_eq!(stats.authorization_headers, BTreeSet::from([format!("Bearer {DEFAULT_TOKEN}")]));
    assert_eq!(stats.unauthorized, 0);
    assert!(stats.requests > 0);
}

#[test]
fn a_wrong_token_fails_with_airtables_error_and_shows_no_token() {
    let f = Fixture::new();
    let conns = f.connections(Token::Env, true);
    let env = [(TOKEN_VAR, WRONG_TOKEN)];
    for args in [&["tables", "--json"][..], &["-vvv", "preview", "-t", "Vendors"][..]] {
        let o = weir(Some(&conns), args, &env);
        let err = fails(&o);
        assert!(err.contains("authentication failed"), "{args:?}: {err}");
        assert!(err.contains("AUTHENTICATION_REQUIRED"), "{args:?}: {err}");
        assert_no_secret(&o, &[WRONG_TOKEN, DEFAULT_TOKEN]);
    }
    let o = weir(Some(&conns), &["check"], &env);
    let err = fails(&o);
    assert!(err.contains("authentication failed") && err.contains("AUTHENTICATION_REQUIRED"), "{err}");
    // Actionable: which connection, and what to look at.
    assert!(err.contains("\"sim\"") && err.contains("check the secret parameter"), "{err}");
    assert_no_secret(&o, &[WRONG_TOKEN, DEFAULT_TOKEN]);
    let stats = f.sim.stats();
    assert!(stats.unauthorized > 0);
    assert_eq!(stats.authorization_headers, BTreeSet::from([format!("Bearer {WRONG_TOKEN}")]));

    // The right token through the same env var works, and check says so.
    let out = ok(&weir(Some(&conns), &["check", "--json"], &[]));
    assert_eq!(json(&out), serde_json::json!({"ok": true, "connection": "sim", "tables": 6}));
}

#[test]
fn a_loopback_simulator_is_denied_without_allow_loopback_and_never_contacted() {
    let f = Fixture::new();
    let conns = f.connections(Token::Literal(DEFAULT_TOKEN), false);
    for args in [&["tables"][..], &["check"][..]] {
        let o = weir(Some(&conns), args, &[]);
        let err = fails(&o);
        assert!(err.contains("loopback"), "{args:?}: {err}");
        assert!(err.contains("denied"), "{args:?}: {err}");
        assert!(err.contains("allow_loopback = true"), "says how to allow it: {err}");
        assert_no_secret(&o, &[DEFAULT_TOKEN]);
    }
    assert_eq!(f.sim.stats().requests, 0, "a denied address must not be contacted");
}

#[test]
fn schema_prints_a_spark_struct_or_a_tree() {
    let f = Fixture::new();
    let conns = f.connections(Token::Literal(DEFAULT_TOKEN), true);
    let out = ok(&weir(Some(&conns), &["schema", "-t", "Vendors", "--json"], &[]));
    let schema = json(&out);
    assert_eq!(schema["type"], "struct");
    let fields = schema["fields"].as_array().expect("fields");
    let names: Vec<&str> = fields.iter().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(&names[..3], ["id", "created_time", "vendor"], "{names:?}");
    assert_eq!(fields[0]["nullable"], false, "id is the primary key");
    let manager = fields.iter().find(|f| f["name"] == "account_manager").expect("account_manager");
    assert_eq!(manager["metadata"]["airtable_field_name"], "Account Manager");
    assert_eq!(manager["type"]["type"], "struct");
    weir_convert::arrow_schema(out.trim()).expect("the converter accepts the printed schema");

    let tree = ok(&weir(Some(&conns), &["schema", "-t", "Vendors"], &[]));
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(lines[0], "Vendors");
    assert_eq!(lines[1], "├─ id: string not null");
    assert!(tree.contains("├─ account_manager: struct  ← \"Account Manager\"\n│  ├─ id: string"), "{tree}");
    assert!(tree.contains("├─ skus: array<string>  ← \"SKUs\""), "{tree}");
    assert!(lines.last().is_some_and(|l| l.starts_with("└─ ")), "{tree}");
}

#[test]
fn metadata_json_has_the_upstream_keys_and_picks_cdc_only_when_the_cursor_covers_all_fields() {
    let f = Fixture::new();
    let conns = f.connections(Token::Literal(DEFAULT_TOKEN), true);
    let meta = |table: &str| json(&ok(&weir(Some(&conns), &["metadata", "-t", table, "--json"], &[])));
    let sku = meta("SKU Candidates");
    let keys: Vec<&String> = sku.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["primary_keys", "cursor_field", "ingestion_type"]);
    assert_eq!(
        sku,
        serde_json::json!({"primary_keys": ["id"], "cursor_field": "last_modified", "ingestion_type": "cdc"})
    );
    let schema = json(&ok(&weir(Some(&conns), &["schema", "-t", "SKU Candidates", "--json"], &[])));
    let cursor = schema["fields"].as_array().and_then(|f| f.iter().find(|f| f["name"] == "last_modified"));
    assert_eq!(cursor.map(|c| c["type"].clone()), Some(Value::from("timestamp")), "the cursor is a column");

    let snapshot =
        serde_json::json!({"primary_keys": ["id"], "cursor_field": null, "ingestion_type": "snapshot"});
    assert_eq!(meta("Vendors"), snapshot, "Vendors has no lastModifiedTime field");
    assert_eq!(meta("Packaging Tasks"), snapshot, "its lastModifiedTime watches only two fields");
}

#[test]
fn an_unknown_table_or_table_option_is_a_clear_error() {
    let f = Fixture::new();
    let conns = f.connections(Token::Literal(DEFAULT_TOKEN), true);
    for cmd in ["schema", "metadata", "preview"] {
        let err = fails(&weir(Some(&conns), &[cmd, "-t", "Vendorz"], &[]));
        assert!(err.contains("unknown table \"Vendorz\""), "{cmd}: {err}");
        assert!(err.contains("weir tables"), "{cmd} says how to list the tables: {err}");
    }
    let err = fails(&weir(Some(&conns), &["schema", "-t", "Vendors", "-o", "page_sise=3"], &[]));
    assert!(err.contains("unknown table option \"page_sise\""), "{err}");
    assert!(err.contains("page_size"), "lists the valid options: {err}");
    let err = fails(&weir(Some(&conns), &["preview", "-t", "Vendors", "-o", "page_size"], &[]));
    assert!(err.contains("must look like key=value"), "{err}");
}

#[test]
fn preview_json_prints_one_object_per_line_up_to_the_limit() {
    let f = Fixture::new();
    let conns = f.connections(Token::Literal(DEFAULT_TOKEN), true);
    for table in ["SKU Candidates", "Vendors"] {
        // Pages of two, so that the limit cuts across pages.
        let out = ok(&weir(
            Some(&conns),
            &["preview", "-t", table, "--json", "--limit", "5", "-o", "page_size=2"],
            &[],
        ));
        let rows: Vec<Value> = out.lines().map(json).collect();
        assert_eq!(rows.len(), 5, "{table}:\n{out}");
        let ids: BTreeSet<&str> = rows.iter().filter_map(|r| r["id"].as_str()).collect();
        assert_eq!(ids.len(), 5, "{table}: five different records: {ids:?}");
        assert!(ids.iter().all(|id| id.starts_with("rec")));
    }
    let table = ok(&weir(Some(&conns), &["preview", "-t", "Vendors", "--limit", "3"], &[]));
    assert!(table.contains("| id ") && table.trim_end().ends_with("3 row(s)"), "{table}");
}

#[test]
fn inspect_shows_the_manifest_and_refuses_what_is_not_a_component() {
    let out = ok(&weir(None, &["inspect", "airtable", "--json"], &[]));
    let m = json(&out);
    assert_eq!(m["name"], "airtable");
    assert_eq!(m["contract"], "lakeflow:connect@0.2.0");
    assert_eq!(m["capabilities"], serde_json::json!(["namespaces"]));
    assert_eq!(m["sha256"], weir_runtime::http::sha256_hex(weir_artifacts::AIRTABLE));
    let params = m["parameters"].as_array().expect("parameters");
    let secret: Vec<&str> =
        params.iter().filter(|p| p["secret"] == true).filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(secret, ["bearer_token"]);

    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join("connector.wasm");
    std::fs::write(&fake, "this is not wasm").expect("write");
    let err = fails(&weir(None, &["inspect", fake.to_str().expect("utf-8 path")], &[]));
    assert!(err.contains("not a WebAssembly component"), "{err}");
    let err = fails(&weir(None, &["inspect", "airtabel"], &[]));
    assert!(err.contains("\"airtabel\"") && err.contains("bundled connector (airtable)"), "{err}");
}

#[test]
fn connections_file_mistakes_are_named() {
    let f = Fixture::new();
    let url = f.sim.base_url();
    let conn = |body: &str| {
        format!(
            "[connections.sim]\nconnector = \"airtable\"\nbase_url = \"{url}\"\nallow_loopback = true\n{body}"
        )
    };
    let cases: Vec<(&str, String, &[&str], &[&str])> = vec![
        (
            "env var not set",
            conn("base_id = \"appProductLaunch\"\nbearer_token = { env = \"WEIR_CLI_TEST_NOT_SET\" }\n"),
            &[],
            &["connection \"sim\"", "bearer_token", "WEIR_CLI_TEST_NOT_SET", "not set"],
        ),
        (
            "missing required parameter",
            conn("base_id = \"appProductLaunch\"\n"),
            &[],
            &["connection \"sim\"", "missing required `bearer_token`"],
        ),
        (
            "unknown key",
            conn(&format!(
                "base_id = \"appProductLaunch\"\nbearer_token = \"{DEFAULT_TOKEN}\"\nbase = \"x\"\n"
            )),
            &[],
            &["unknown key `base`", "bearer_token, base_id, base_url"],
        ),
        (
            "unknown connection",
            conn(&format!("base_id = \"appProductLaunch\"\nbearer_token = \"{DEFAULT_TOKEN}\"\n")),
            &["--connection", "prod"],
            &["no connection named \"prod\"", "it has: sim"],
        ),
        (
            "unknown connector",
            conn(&format!("base_id = \"appProductLaunch\"\nbearer_token = \"{DEFAULT_TOKEN}\"\n"))
                .replace("connector = \"airtable\"", "connector = \"nope\""),
            &[],
            &["connector \"nope\"", "bundled connector (airtable)"],
        ),
    ];
    for (what, text, extra, expected) in cases {
        let path = f.write("connections.toml", &text);
        let mut args = vec!["tables"];
        args.extend_from_slice(extra);
        let o = weir(Some(&path), &args, &[]);
        let err = fails(&o);
        for e in expected {
            assert!(err.contains(e), "{what}: stderr lacks {e:?}:\n{err}");
        }
        assert_no_secret(&o, &[DEFAULT_TOKEN]);
    }
    let missing = f.dir.path().join("nowhere.toml");
    let err = fails(&weir(Some(&missing), &["tables"], &[]));
    assert!(err.contains("cannot read connections file") && err.contains("nowhere.toml"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "the cause once: {err}");
    assert_eq!(f.sim.stats().requests, 0, "no mistake got as far as the source");
}

#[test]
fn trace_logging_never_shows_the_token() {
    let f = Fixture::new();
    let conns = f.connections(Token::Literal(DEFAULT_TOKEN), true);
    type Run<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);
    let runs: [Run; 3] = [
        (&["-vvv", "tables"], &[]),
        (
            &["preview", "-t", "SKU Candidates", "--json", "--limit", "3", "-o", "page_size=2"],
            &[("RUST_LOG", "trace")],
        ),
        (&["-vvv", "check"], &[("RUST_LOG", "trace")]),
    ];
    for (args, env) in runs {
        let o = weir(Some(&conns), args, env);
        ok(&o);
        assert!(stderr(&o).contains("TRACE"), "{args:?} logged at trace level");
        assert_no_secret(&o, &[DEFAULT_TOKEN, "patWeirSim"]);
    }
    let stats = f.sim.stats();
    assert_eq!(stats.authorization_headers, BTreeSet::from([format!("Bearer {DEFAULT_TOKEN}")]));
}

#[test]
fn the_demo_runs_on_a_fresh_folder_and_prints_no_library_noise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = dir.path().join("demo");
    let out = common::weir_command()
        .env("WEIR_CACHE_DIR", dir.path().join("cache"))
        .args(["demo", "--dir"])
        .arg(&demo)
        .output()
        .expect("weir demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for table in ["bronze_sku_candidates", "bronze_vendors", "bronze_marketing_assets"] {
        assert!(stdout.contains(table), "{stdout}");
    }
    // The table with deletes: two records deleted between the demo's two runs, two rows removed.
    assert!(stdout.contains("Deleted 2 record(s) of Compliance Records"), "{stdout}");
    let second: Vec<&str> = stdout
        .lines()
        .rfind(|l| l.starts_with("bronze_compliance_records "))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_else(|| panic!("no summary line for bronze_compliance_records: {stdout}"));
    assert_eq!(
        (second[1], second[5]),
        ("cdc_with_deletes", "2"),
        "table, ingestion, read, inserted, updated, deleted: {second:?}"
    );
    // A healthy run says nothing at error or warn level: delta-rs's "No files in log segment"
    // for a new table and DataFusion's merge metrics read as failures to a new user.
    let noisy: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR") || l.contains("WARN")).collect();
    assert!(noisy.is_empty(), "log lines on a healthy demo:\n{}", noisy.join("\n"));
    assert!(demo.join("warehouse/bronze_vendors/_delta_log").exists());
}
