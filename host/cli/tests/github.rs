//! The GitHub connector (`plugins/github`), built and tested only with weir's own tools, through
//! the `weir` binary: `weir build` packages it, `weir test` passes it on its hand-written
//! cassettes and fails a cassette with a page missing, naming the request, and `weir run`
//! ingests the cassettes into Delta exactly once across two runs, the second reading only what
//! changed (tables read back with the independent reader, tests/py/read_delta.py). The
//! cassettes hold a 403 with `X-RateLimit-Remaining: 0` that the gate must wait out and retry.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{read_delta, report_line, text};
use serde_json::{Value, json};

fn crate_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/github")
}

fn fixture(name: &str) -> String {
    crate_dir().join("fixtures").join(name).to_str().expect("UTF-8").to_string()
}

/// `weir ARGS` in `cwd`, with no connection chosen from the environment and no token.
fn weir(cwd: &Path, args: &[&str]) -> Output {
    common::weir_command()
        .current_dir(cwd)
        .args(args)
        .env_remove("GITHUB_TOKEN")
        // The connector's own build, kept between test runs, beside the scaffold test's.
        .env("CARGO_TARGET_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target"))
        .output()
        .expect("weir runs")
}

/// The connector, built once by `weir build` into the test's temp folder.
fn component() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("github.wasm");
        let crate_dir = crate_dir();
        let built = weir(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            &["build", crate_dir.to_str().expect("UTF-8"), "--out", out.to_str().expect("UTF-8")],
        );
        assert!(built.status.success(), "weir build plugins/github: {}", text(&built));
        assert!(
            String::from_utf8_lossy(&built.stdout).contains("packaged github 0.1.0 (lakeflow:connect@0.2.0"),
            "{}",
            text(&built)
        );
        out
    })
}

/// A folder with the connector's connection (pointing at the built component) and pipeline.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let connections =
        std::fs::read_to_string(crate_dir().join("connections.toml")).expect("connections.toml");
    let connections = connections
        .replace("\"target/weir/github.wasm\"", &format!("{:?}", component().to_str().expect("UTF-8")));
    assert!(connections.contains("github.wasm"), "{connections}");
    std::fs::write(dir.path().join("connections.toml"), connections).expect("write");
    std::fs::copy(crate_dir().join("pipeline.yaml"), dir.path().join("pipeline.yaml")).expect("copy");
    dir
}

fn run(dir: &Path, cassette: &str) -> Value {
    let out = weir(dir, &["run", "pipeline.yaml", "--warehouse", "wh", "--replay", cassette, "--json"]);
    assert!(out.status.success(), "weir run --replay {cassette}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

/// Per destination: (rows read, inserted, updated).
fn counts(summary: &Value) -> Vec<(String, u64, u64, u64)> {
    let tables = summary.as_array().unwrap_or_else(|| panic!("not a list of tables: {summary}"));
    let mut out: Vec<_> = tables
        .iter()
        .map(|t| {
            let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("no {k} in {t}"));
            (
                t["destination"].as_str().unwrap_or_default().to_string(),
                n("rows_read"),
                n("inserted"),
                n("updated"),
            )
        })
        .collect();
    out.sort();
    out
}

fn rows(dir: &Path, table: &str, columns: &[&str]) -> Vec<Value> {
    let data = read_delta(&dir.join("wh").join(table))["data"].clone();
    data.as_array()
        .expect("rows")
        .iter()
        .map(|r| Value::Object(columns.iter().map(|c| (c.to_string(), r[*c].clone())).collect()))
        .collect()
}

#[test]
fn weir_test_passes_the_cassettes_and_names_the_request_a_broken_one_lacks() {
    let dir = workdir();
    let dir = dir.path();
    let cassette = fixture("github.cassette");
    let passed = weir(dir, &["test", "--replay", &cassette, "-o", "page_size=2"]);
    assert!(passed.status.success(), "weir test on the GitHub cassette: {}", text(&passed));
    let stdout = String::from_utf8_lossy(&passed.stdout);
    for (check, table) in [
        ("read_terminates", "octocat.Hello-World / issues"),
        ("reread_from_checkpoint", "octocat.Hello-World / issues"),
        ("reread_from_checkpoint", "octocat.Hello-World / pull_requests"),
        ("columns_populated", "octocat.Spoon-Knife / issues"),
        ("columns_populated", "octocat.Spoon-Knife / pull_requests"),
    ] {
        report_line(&passed, "PASS", check, Some(table));
    }
    assert!(stdout.contains(" 0 failed"), "{stdout}");

    // The page that the three issues updated in one second continue on, reached only through
    // the Link header's next URL, taken out.
    let tie = "https://api.github.com/repositories/1296269/issues?state=all&sort=updated&direction=asc&per_page=2&since=2026-01-07T12:00:00Z&page=2";
    let text_of = std::fs::read_to_string(&cassette).expect("cassette");
    let exchanges: Vec<&str> = text_of.split("\n\n").filter(|e| !e.trim().is_empty()).collect();
    let kept: Vec<&str> =
        exchanges.iter().copied().filter(|e| !e.contains(&format!("\"url\": \"{tie}\""))).collect();
    assert_eq!(kept.len() + 1, exchanges.len(), "the cassette has one exchange for the Link page");
    std::fs::write(dir.join("broken.cassette"), kept.join("\n\n") + "\n").expect("write");
    let failed = weir(dir, &["test", "--replay", "broken.cassette", "-o", "page_size=2"]);
    assert!(!failed.status.success(), "weir test passed a cassette with a page missing: {}", text(&failed));
    let line = report_line(&failed, "FAIL", "read_terminates", Some("octocat.Hello-World / issues"));
    assert!(line.contains(&format!("no exchange for GET {tie}")), "the line names the request: {line}");
}

#[test]
fn two_runs_ingest_exactly_once_and_the_second_reads_only_what_changed() {
    let dir = workdir();
    let dir = dir.path();
    let first = run(dir, &fixture("github.cassette"));
    assert_eq!(
        counts(&first),
        [
            ("hello_world_issues".into(), 4, 4, 0),
            ("hello_world_pull_requests".into(), 2, 2, 0),
            ("spoon_knife_issues".into(), 1, 1, 0),
            ("spoon_knife_pull_requests".into(), 1, 1, 0),
        ],
        "{first}"
    );
    // The 403 with nothing remaining was waited out and retried by the gate, never seen by
    // the connector. One per run: each table's read shares the session's gate.
    assert!(
        first.as_array().into_iter().flatten().any(|t| t["http"]["rate_limited"].as_u64() >= Some(1)),
        "no table's gate counted the 403: {first}"
    );
    let issues = rows(
        dir,
        "hello_world_issues",
        &["id", "number", "state", "updated_at", "closed_at", "state_reason"],
    );
    assert_eq!(
        issues,
        [
            json!({"id": 1001, "number": 1, "state": "closed", "updated_at": "2026-01-05T10:00:00+00:00", "closed_at": "2026-01-05T10:00:00+00:00", "state_reason": "completed"}),
            json!({"id": 1003, "number": 3, "state": "open", "updated_at": "2026-01-07T12:00:00+00:00", "closed_at": null, "state_reason": null}),
            json!({"id": 1004, "number": 4, "state": "open", "updated_at": "2026-01-07T12:00:00+00:00", "closed_at": null, "state_reason": null}),
            json!({"id": 1006, "number": 6, "state": "open", "updated_at": "2026-01-09T08:30:00+00:00", "closed_at": null, "state_reason": null}),
        ]
    );
    let table = read_delta(&dir.join("wh/hello_world_issues"));
    let row = &table["data"][0];
    assert_eq!(row["user"]["login"], "octocat");
    assert_eq!(row["labels"][0]["name"], "bug");
    assert_eq!(row["milestone"]["title"], "v1.0");
    assert_eq!(row["milestone"]["creator"]["login"], "octocat");
    assert_eq!(row["repository"], "octocat/Hello-World");
    let types: Vec<(String, Value)> = table["schema"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| (f["name"].as_str().unwrap_or_default().to_string(), f["type"].clone()))
        .collect();
    assert!(types.contains(&("updated_at".into(), json!("timestamp"))), "{types:?}");
    assert!(types.iter().any(|(n, t)| n == "milestone" && t["type"] == "struct"), "{types:?}");

    // Again from the same cassette: nothing new, nothing written.
    let again = run(dir, &fixture("github.cassette"));
    assert!(
        counts(&again).iter().all(|(_, read, inserted, updated)| (read, inserted, updated) == (&0, &0, &0)),
        "{again}"
    );

    // Two days later: issue 3 closed, pull request 2 merged, issue 7 opened in the same second.
    let later = run(dir, &fixture("github-later.cassette"));
    assert_eq!(
        counts(&later),
        [
            ("hello_world_issues".into(), 2, 1, 1),
            ("hello_world_pull_requests".into(), 1, 0, 1),
            ("spoon_knife_issues".into(), 0, 0, 0),
            ("spoon_knife_pull_requests".into(), 0, 0, 0),
        ],
        "{later}"
    );
    let issues = rows(dir, "hello_world_issues", &["id", "state", "state_reason"]);
    assert_eq!(
        issues,
        [
            json!({"id": 1001, "state": "closed", "state_reason": "completed"}),
            json!({"id": 1003, "state": "closed", "state_reason": "completed"}),
            json!({"id": 1004, "state": "open", "state_reason": null}),
            json!({"id": 1006, "state": "open", "state_reason": null}),
            json!({"id": 1007, "state": "open", "state_reason": null}),
        ]
    );
    let pulls = rows(dir, "hello_world_pull_requests", &["id", "state", "draft", "merged_at"]);
    assert_eq!(
        pulls,
        [
            json!({"id": 1002, "state": "closed", "draft": false, "merged_at": "2026-01-10T12:00:00+00:00"}),
            json!({"id": 1005, "state": "closed", "draft": false, "merged_at": "2026-01-07T12:00:00+00:00"}),
        ]
    );
}

/// The connector's own unit tests (Link parsing, offsets, the column projection): it is its own
/// workspace, so `cargo test --workspace` reaches them only through here.
#[test]
fn the_connectors_unit_tests_pass() {
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["test", "--locked", "--manifest-path"])
        .arg(crate_dir().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("github-native"))
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "cargo test in plugins/github: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("test result: ok. 3 passed"), "{stdout}");
}
