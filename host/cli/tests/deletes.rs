//! Airtable deletes through webhooks, end to end through the `weir` binary against the simulator,
//! tables read back with the independent reader (tests/py/read_delta.py): records created,
//! changed and deleted between runs leave a Delta table equal to the source (SCD 1) or a history
//! whose open rows are the source (SCD 2); an expired webhook, payloads past retention and a
//! released webhook are recovered from by a resynchronisation that still loses no delete; and no
//! rerun creates a second webhook.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use common::{encode, read_delta, sim_api, text, write_sim_connections};
use serde_json::{Value, json};
use weir_airtable_sim::{DEFAULT_BASE_ID, Sim, SimConfig};

const TABLE: &str = "Compliance Records";

fn weir(dir: &Path, args: &[&str]) -> Output {
    common::weir_command().current_dir(dir).args(args).output().expect("weir runs")
}

fn setup(scd: &str) -> (tempfile::TempDir, Sim) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(SimConfig { rate_limit: false, ..SimConfig::default() }).expect("simulator starts");
    write_sim_connections(dir.path(), &sim);
    std::fs::write(
        dir.path().join("pipeline.yaml"),
        format!(
            "connection_name: airtable\nobjects:\n  - table:\n      source_table: {TABLE}\n      \
             destination_table: compliance\n      table_configuration: {{scd_type: {scd}, deletes: webhook}}\n"
        ),
    )
    .expect("write spec");
    (dir, sim)
}

/// `weir run`'s report of the one table.
fn run(dir: &Path) -> Value {
    let out = weir(dir, &["run", "pipeline.yaml", "--warehouse", "wh", "--json"]);
    assert!(out.status.success(), "weir run: {}", text(&out));
    let reports: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let report = reports[0].clone();
    assert_eq!(report["ingestion_type"], "cdc_with_deletes", "{report}");
    report
}

/// The ids the source holds now, through the simulator's API.
fn source_ids(sim: &Sim) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut offset = String::new();
    loop {
        let path = format!("/v0/{DEFAULT_BASE_ID}/{}?pageSize=100{offset}", encode(TABLE));
        let (status, body) = sim_api(sim, "GET", &path, None);
        assert_eq!(status, 200, "{body}");
        ids.extend(
            body["records"]
                .as_array()
                .expect("records")
                .iter()
                .map(|r| r["id"].as_str().expect("id").to_string()),
        );
        match body["offset"].as_str() {
            Some(next) => offset = format!("&offset={}", encode(next)),
            None => return ids,
        }
    }
}

fn rows(dir: &Path) -> Vec<Value> {
    read_delta(&dir.join("wh/compliance"))["data"].as_array().expect("rows").clone()
}

/// The ids of the table's current rows: all of them (SCD 1), the open versions (SCD 2).
fn current_ids(dir: &Path) -> BTreeSet<String> {
    rows(dir)
        .iter()
        .filter(|r| r.get("__END_AT").is_none_or(Value::is_null))
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect()
}

fn webhooks(sim: &Sim) -> Vec<String> {
    sim.webhook_ids(DEFAULT_BASE_ID).expect("webhooks")
}

/// Two records of the source, by id order: ones no test step has touched.
fn some_ids(sim: &Sim, n: usize) -> Vec<String> {
    source_ids(sim).into_iter().take(n).collect()
}

fn delete(sim: &Sim, ids: &[String]) {
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    sim.delete_records(DEFAULT_BASE_ID, TABLE, &ids).expect("delete");
}

fn count(report: &Value, key: &str) -> u64 {
    report[key].as_u64().unwrap_or_else(|| panic!("no {key} in {report}"))
}

#[test]
fn scd1_follows_creates_changes_and_deletes_and_recovers_every_lost_delete() {
    let (dir, sim) = setup("SCD_TYPE_1");
    let dir = dir.path();

    // First run: deletes start first (the webhook exists before the table is read), on an empty
    // table, so nothing is read twice.
    let first = run(dir);
    assert_eq!(current_ids(dir), source_ids(&sim));
    assert_eq!(count(&first, "rows_read"), source_ids(&sim).len() as u64);
    assert!(first["counters"].get("resync.rows_read").is_none(), "{first}");
    let hooks = webhooks(&sim);
    assert_eq!(hooks.len(), 1, "one webhook for the table: {hooks:?}");

    // Between runs: one record created, one changed, two deleted.
    let created = sim
        .create_records(DEFAULT_BASE_ID, TABLE, vec![json!({"fields": {"Certificate": "CERT-NEW"}})])
        .expect("create");
    let created_id = created[0]["id"].as_str().expect("id").to_string();
    let touched = some_ids(&sim, 3);
    sim.update_records(
        DEFAULT_BASE_ID,
        TABLE,
        vec![json!({"id": touched[0], "fields": {"Certificate": "CERT-CHANGED"}})],
    )
    .expect("update");
    delete(&sim, &touched[1..]);
    let second = run(dir);
    assert_eq!(count(&second, "deleted"), 2, "{second}");
    assert_eq!(count(&second, "inserted"), 1, "{second}");
    assert_eq!(current_ids(dir), source_ids(&sim));
    let changed = rows(dir).into_iter().find(|r| r["id"] == touched[0]).expect("the changed row");
    assert_eq!(changed["certificate"], "CERT-CHANGED");
    assert!(current_ids(dir).contains(&created_id));
    assert_eq!(webhooks(&sim), hooks, "a rerun takes up its webhook and makes no second one");

    // Nothing changed: nothing written, still one webhook.
    let idle = run(dir);
    assert_eq!(
        (count(&idle, "inserted"), count(&idle, "updated"), count(&idle, "deleted")),
        (0, 0, 0),
        "{idle}"
    );
    assert_eq!(webhooks(&sim), hooks);

    // The webhook expires (nobody ran for a week) after one more delete: the run resynchronises
    // from a whole read, loses no delete, and a new webhook takes over.
    let gone = some_ids(&sim, 1);
    delete(&sim, &gone);
    sim.expire_webhook(DEFAULT_BASE_ID, &hooks[0]).expect("expire");
    let third = run(dir);
    assert_eq!(count(&third, "deleted"), 1, "{third}");
    assert_eq!(
        third["counters"]["resync.rows_read"].as_u64(),
        Some(source_ids(&sim).len() as u64),
        "{third}"
    );
    assert_eq!(current_ids(dir), source_ids(&sim));
    let renewed = webhooks(&sim);
    assert_eq!(renewed.len(), 1);
    assert_ne!(renewed, hooks);

    // Payloads past retention: the same webhook goes on from its current cursor after a resync.
    let gone = some_ids(&sim, 1);
    delete(&sim, &gone);
    assert!(sim.drop_webhook_payloads(DEFAULT_BASE_ID, &renewed[0]).expect("drop") >= 1);
    let fourth = run(dir);
    assert_eq!(count(&fourth, "deleted"), 1, "{fourth}");
    assert_eq!(current_ids(dir), source_ids(&sim));
    assert_eq!(webhooks(&sim), renewed);

    // weir release removes the webhook; the next run resynchronises and watches again.
    let released = weir(dir, &["release", "pipeline.yaml", "--warehouse", "wh"]);
    assert!(released.status.success(), "weir release: {}", text(&released));
    assert!(
        String::from_utf8_lossy(&released.stdout).contains("compliance: released"),
        "{}",
        text(&released)
    );
    assert_eq!(webhooks(&sim), Vec::<String>::new());
    let gone = some_ids(&sim, 1);
    delete(&sim, &gone);
    let fifth = run(dir);
    assert_eq!(count(&fifth, "deleted"), 1, "{fifth}");
    assert_eq!(current_ids(dir), source_ids(&sim));
    assert_eq!(webhooks(&sim).len(), 1);
}

#[test]
fn scd2_closes_the_current_row_of_each_deleted_record() {
    let (dir, sim) = setup("SCD_TYPE_2");
    let dir = dir.path();
    run(dir);
    let touched = some_ids(&sim, 2);
    sim.update_records(
        DEFAULT_BASE_ID,
        TABLE,
        vec![json!({"id": touched[0], "fields": {"Certificate": "CERT-V2"}})],
    )
    .expect("update");
    delete(&sim, &touched[1..]);
    let second = run(dir);
    assert_eq!(count(&second, "deleted"), 0, "SCD 2 closes, it does not delete: {second}");
    assert_eq!(current_ids(dir), source_ids(&sim));
    let history = |id: &str| -> Vec<(Value, bool)> {
        let mut versions: Vec<(Value, bool)> = rows(dir)
            .into_iter()
            .filter(|r| r["id"] == id)
            .map(|r| (r["certificate"].clone(), r["__END_AT"].is_null()))
            .collect();
        versions.sort_by_key(|(_, open)| *open);
        versions
    };
    let changed = history(&touched[0]);
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert_eq!(changed[1], (json!("CERT-V2"), true));
    assert!(!changed[0].1, "the old version is closed");
    let deleted = history(&touched[1]);
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert!(!deleted[0].1, "the deleted record's row is closed, not removed");

    // A resync closes too.
    let gone = some_ids(&sim, 1);
    delete(&sim, &gone);
    let hooks = webhooks(&sim);
    sim.expire_webhook(DEFAULT_BASE_ID, &hooks[0]).expect("expire");
    run(dir);
    assert_eq!(current_ids(dir), source_ids(&sim));
    assert!(rows(dir).iter().any(|r| r["id"] == gone[0]), "the resync closed the row, it kept its history");
}
