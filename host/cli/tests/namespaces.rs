//! Namespaces (contract 0.2): an Airtable connection without `base_id` reaches every base its
//! token can read, each a namespace. `weir tables` lists the tables of every base, and one spec
//! ingests a table from each of two bases in one run, each paced by its own base's budget.

mod common;

use common::{read_delta, text};
use serde_json::{Value, json};
use weir_airtable_sim::{DEFAULT_BASE_ID, DEFAULT_TOKEN, Sim, SimConfig};

const SECOND: &str = "appSecondBase";

fn setup() -> (Sim, tempfile::TempDir) {
    let sim = Sim::start(SimConfig { extra_bases: vec![SECOND.to_string()], ..SimConfig::default() })
        .expect("simulator starts");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("sim-token"), DEFAULT_TOKEN).expect("token");
    std::fs::write(
        dir.path().join("connections.toml"),
        format!(
            "[connections.every_base]\nconnector = \"airtable\"\nbase_url = \"{}\"\n\
             bearer_token = {{ file = \"sim-token\" }}\nallow_loopback = true\n",
            sim.base_url()
        ),
    )
    .expect("connections");
    (sim, dir)
}

fn weir(dir: &tempfile::TempDir, args: &[&str]) -> std::process::Output {
    common::weir_command()
        .current_dir(dir.path())
        .env("WEIR_CACHE_DIR", dir.path().join("cache"))
        .args(args)
        .output()
        .expect("weir runs")
}

#[test]
fn tables_lists_every_base_of_a_connection_without_base_id() {
    let (sim, dir) = setup();
    let out = weir(&dir, &["tables", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    for base in [DEFAULT_BASE_ID, SECOND] {
        let names: Vec<&str> = listed
            .iter()
            .filter(|t| t["namespace"] == json!([base]))
            .filter_map(|t| t["table"].as_str())
            .collect();
        let expected: Vec<String> =
            sim.table_ids_of(base).expect("base").into_iter().map(|(_, name)| name).collect();
        assert_eq!(names, expected, "{base}");
    }
    let plain = weir(&dir, &["tables"]);
    let plain = String::from_utf8_lossy(&plain.stdout);
    assert!(plain.contains(&format!("{SECOND} / Vendors")), "{plain}");
}

#[test]
fn one_spec_ingests_a_table_from_each_of_two_bases() {
    let (sim, dir) = setup();
    std::fs::write(
        dir.path().join("pipeline.yaml"),
        format!(
            "connection_name: every_base\nobjects:\n\
             \x20 - table:\n      source_table: Vendors\n      destination_table: vendors_first\n      \
             table_configuration:\n        namespace: [{DEFAULT_BASE_ID}]\n\
             \x20 - table:\n      source_table: Vendors\n      destination_table: vendors_second\n      \
             table_configuration:\n        namespace: '[\"{SECOND}\"]'\n"
        ),
    )
    .expect("spec");
    let out = weir(&dir, &["run", "pipeline.yaml", "--warehouse", "warehouse", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let reports: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(reports[1]["namespace"], json!([SECOND]));
    let first = read_delta(&dir.path().join("warehouse/vendors_first"));
    let second = read_delta(&dir.path().join("warehouse/vendors_second"));
    assert!(first["rows"].as_u64().unwrap_or(0) > 0);
    assert_eq!(first["rows"], second["rows"]);
    // The same table in two bases: the same shape, different records.
    let ids = |t: &Value| -> Vec<String> {
        t["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
    };
    assert!(ids(&first).iter().all(|id| !ids(&second).contains(id)));
    // Each base was asked for its own records.
    let stats = sim.stats();
    for base in [DEFAULT_BASE_ID, SECOND] {
        assert!(stats.bases.get(base).is_some_and(|b| b.requests > 0), "{base} served nothing: {stats:?}");
    }
}

#[test]
fn a_namespace_the_connection_is_not_scoped_to_is_refused_by_name() {
    let (sim, dir) = setup();
    std::fs::write(
        dir.path().join("scoped.toml"),
        format!(
            "[connections.one]\nconnector = \"airtable\"\nbase_id = \"{DEFAULT_BASE_ID}\"\nbase_url = \"{}\"\n\
             bearer_token = {{ file = \"sim-token\" }}\nallow_loopback = true\n",
            sim.base_url()
        ),
    )
    .expect("connections");
    let out = weir(&dir, &["schema", "--connections", "scoped.toml", "-t", "Vendors", "--namespace", SECOND]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("scoped to base") && err.contains(SECOND), "{err}");
}
