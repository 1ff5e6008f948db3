//! A field renamed in the source keeps its Delta column: the connector tags each column with a
//! stable `column_id` (Airtable's field id) and `weir run` maps the new name back onto the
//! column the table already has. Runs the real binary against the Airtable simulator and reads
//! the table back with tests/py/read_delta.py (needs the packages of requirements-test.txt).

mod common;

use std::path::{Path, PathBuf};

use common::{read_delta, sim_api, text, write_sim_connections};
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

    fn connections(&self) -> PathBuf {
        self.dir.path().join("connections.toml")
    }

    fn warehouse(&self) -> PathBuf {
        self.dir.path().join("warehouse")
    }

    /// `weir ARGS --connections …`, required to succeed; returns stdout.
    fn weir(&self, args: &[&str]) -> String {
        let out = common::weir_command()
            .args(args)
            .arg("--connections")
            .arg(self.connections())
            .output()
            .expect("weir runs");
        assert!(out.status.success(), "weir {args:?} failed:\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `weir run SPEC --json` into the warehouse.
    fn run(&self, spec: &Path) {
        let warehouse = self.warehouse();
        let spec = spec.to_str().expect("a UTF-8 path");
        let warehouse = warehouse.to_str().expect("a UTF-8 path");
        self.weir(&["run", spec, "--warehouse", warehouse, "--json"]);
    }

    /// The column names `weir schema` prints for a table.
    fn schema_names(&self, table: &str) -> Vec<String> {
        let schema: Value = serde_json::from_str(&self.weir(&["schema", "-t", table, "--json"]))
            .expect("weir schema --json prints JSON");
        schema["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .map(|f| f["name"].as_str().expect("name").to_string())
            .collect()
    }

    /// One request to the simulator's API.
    fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        sim_api(&self.sim, method, path, body)
    }
}

/// Each row's `id` and the value of `column`, sorted by id.
fn column(table: &Value, column: &str) -> Vec<(String, Value)> {
    table["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| (r["id"].as_str().expect("id").to_string(), r.get(column).cloned().unwrap_or(Value::Null)))
        .collect()
}

fn columns(table: &Value) -> Vec<String> {
    table["schema"]["fields"]
        .as_array()
        .expect("schema fields")
        .iter()
        .map(|f| f["name"].as_str().expect("name").to_string())
        .collect()
}

#[test]
fn a_renamed_field_keeps_its_column_and_its_values() {
    let env = Env::new();
    let spec = env.dir.path().join("vendors.yaml");
    std::fs::write(&spec, "connection_name: airtable\nobjects:\n  - table:\n      source_table: Vendors\n")
        .expect("write spec");
    env.run(&spec);
    let table_path = env.warehouse().join("vendors");
    let before = read_delta(&table_path);
    let emails = column(&before, "contact_email");
    assert!(emails.iter().filter(|(_, v)| !v.is_null()).count() > 1, "the seed has emails: {emails:?}");

    let (status, body) = env.api(
        "PATCH",
        &format!("/v0/meta/bases/{DEFAULT_BASE_ID}/tables/Vendors/fields/Contact%20Email"),
        Some(json!({"name": "Primary Contact Email"})),
    );
    assert_eq!(status, 200, "{body}");
    let names = env.schema_names("Vendors");
    assert!(
        names.contains(&"primary_contact_email".to_string()),
        "the connector sees the new name: {names:?}"
    );
    assert!(!names.contains(&"contact_email".to_string()), "{names:?}");

    env.run(&spec);
    let after = read_delta(&table_path);
    assert_eq!(columns(&after), columns(&before), "no column is added or lost by a rename");
    assert!(!columns(&after).contains(&"primary_contact_email".to_string()));
    assert_eq!(column(&after, "contact_email"), emails, "the old column still holds every email");
    assert!(after["version"].as_i64() > before["version"].as_i64(), "the second run committed");
    // The column's stored source name follows the rename; its field id stays.
    let meta = |table: &Value| {
        let fields = table["schema"]["fields"].as_array().expect("schema fields");
        let field = fields.iter().find(|f| f["name"] == "contact_email").expect("contact_email");
        (field["metadata"]["airtable_field_name"].clone(), field["metadata"]["column_id"].clone())
    };
    let ((name_before, id_before), (name_after, id_after)) = (meta(&before), meta(&after));
    assert_eq!(
        (name_before.as_str(), name_after.as_str()),
        (Some("Contact Email"), Some("Primary Contact Email"))
    );
    assert_eq!(id_after, id_before);
}
