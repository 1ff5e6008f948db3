//! Tools for testing connectors, through the `weir` binary. Record and replay: a run recorded
//! against the Airtable simulator replays with the simulator stopped and no token into the same
//! rows, the cassette holds no secret, and a request the cassette lacks fails the run with an
//! error that names it (tables read back with the independent reader, tests/py/read_delta.py).
//! `weir test`: the conformance suite passes the Airtable connector, live and from a cassette,
//! and fails a connector whose offsets never stop with a line that names the rule.

mod common;

use std::path::Path;
use std::process::Output;

use common::{read_delta, report_line, text, write_sim_connections};
use serde_json::Value;
use weir_airtable_sim::{DEFAULT_TOKEN, Sim, SimConfig};

const TABLES: [&str; 3] = ["sku_candidates", "vendors", "launch_milestones"];

fn weir(dir: &Path, args: &[&str]) -> Output {
    common::weir_command()
        .args(args)
        .arg("--connections")
        .arg(dir.join("connections.toml"))
        .output()
        .expect("weir runs")
}

fn run(dir: &Path, warehouse: &str, tape: &[&str]) -> Output {
    let spec = dir.join("pipeline.yaml");
    let warehouse = dir.join(warehouse);
    let mut args =
        vec!["run", spec.to_str().expect("UTF-8"), "--warehouse", warehouse.to_str().expect("UTF-8")];
    args.extend_from_slice(tape);
    args.push("--json");
    weir(dir, &args)
}

fn data(dir: &Path, warehouse: &str, table: &str) -> Value {
    read_delta(&dir.join(warehouse).join(table))["data"].clone()
}

#[test]
fn a_recorded_run_replays_offline_with_no_token_into_the_same_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let sim = Sim::start(SimConfig { rate_limit: false, ..SimConfig::default() }).expect("simulator starts");
    write_sim_connections(dir, &sim);
    std::fs::write(
        dir.join("pipeline.yaml"),
        "connection_name: airtable\nobjects:\n  - table:\n      source_table: SKU Candidates\n  \
         - table:\n      source_table: Vendors\n  - table:\n      source_table: Launch Milestones\n",
    )
    .expect("write spec");
    let cassette = dir.join("run.cassette");
    let cassette_arg = cassette.to_str().expect("UTF-8");

    let recorded = run(dir, "recorded", &["--record", cassette_arg]);
    assert!(recorded.status.success(), "the recorded run: {}", text(&recorded));
    let tables = weir(dir, &["tables", "--record", dir.join("tables.cassette").to_str().expect("UTF-8")]);
    assert!(tables.status.success(), "{}", text(&tables));

    let tape = std::fs::read_to_string(&cassette).expect("the cassette exists");
    assert!(
        tape.starts_with("{\n  \"cassette\": \"weir\""),
        "a header first: {}",
        &tape[..tape.len().min(200)]
    );
    assert!(tape.contains("\"json\": {"), "JSON bodies are stored as JSON, readable and diffable");
    assert!(!tape.contains(DEFAULT_TOKEN), "the cassette holds the token");
    assert!(!tape.contains("Bearer"), "the injected auth header is not recorded");
    let exchanges = tape.matches("\"request\":").count();
    assert!(exchanges >= 4, "{exchanges} exchanges recorded");

    // Offline: the simulator is gone, and so is the token.
    drop(sim);
    std::fs::remove_file(dir.join("sim-token")).expect("remove the token");
    let replayed = run(dir, "replayed", &["--replay", cassette_arg]);
    assert!(replayed.status.success(), "the replay: {}", text(&replayed));
    for table in TABLES {
        let (a, b) = (data(dir, "recorded", table), data(dir, "replayed", table));
        assert!(a.as_array().is_some_and(|rows| !rows.is_empty()), "{table} has rows");
        assert_eq!(a, b, "{table}: the replay wrote other rows than the recording");
    }
    let listed = weir(dir, &["tables", "--replay", dir.join("tables.cassette").to_str().expect("UTF-8")]);
    assert!(listed.status.success(), "{}", text(&listed));
    assert_eq!(listed.stdout, tables.stdout, "weir tables replays the same listing");

    // A cassette without one of the record listings fails naming the request it lacks.
    let records: Vec<&str> = tape.split("\n\n").filter(|r| !r.trim().is_empty()).collect();
    let urls: Vec<String> = records
        .iter()
        .map(|r| {
            let record: Value = serde_json::from_str(r).expect("a record is JSON");
            record["request"]["url"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    let lacking = (1..records.len())
        .find(|&i| !urls[i].contains("/meta/") && urls.iter().filter(|u| **u == urls[i]).count() == 1)
        .expect("a record listing asked for once");
    let url = &urls[lacking];
    let broken: Vec<&str> =
        records.iter().enumerate().filter(|(i, _)| *i != lacking).map(|(_, r)| *r).collect();
    let broken_path = dir.join("broken.cassette");
    std::fs::write(&broken_path, broken.join("\n\n")).expect("write the broken cassette");
    let failed = run(dir, "broken", &["--replay", broken_path.to_str().expect("UTF-8")]);
    assert!(!failed.status.success(), "a replay missing a request succeeded: {}", text(&failed));
    let all = text(&failed);
    assert!(all.contains(&format!("no exchange for GET {url}")), "the error names {url}: {all}");
}

#[test]
fn cassette_flags_are_checked_before_anything_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    std::fs::write(dir.join("connections.toml"), "[connections.airtable]\nconnector = \"airtable\"\n")
        .expect("write connections");
    let missing = weir(dir, &["tables", "--replay", dir.join("nope.cassette").to_str().expect("UTF-8")]);
    assert!(!missing.status.success());
    assert!(text(&missing).contains("nope.cassette"), "{}", text(&missing));
    std::fs::write(dir.join("bad.cassette"), "{\"cassette\": \"vcr\"}").expect("write");
    let bad = weir(dir, &["tables", "--replay", dir.join("bad.cassette").to_str().expect("UTF-8")]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("is not valid"), "{}", text(&bad));
    let both = weir(dir, &["tables", "--record", "a", "--replay", "b"]);
    assert!(!both.status.success(), "--record and --replay together");
}

#[test]
fn weir_test_passes_airtable_live_and_replayed_and_names_the_rule_a_connector_breaks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let sim = Sim::start(SimConfig { rate_limit: false, ..SimConfig::default() }).expect("simulator starts");
    write_sim_connections(dir, &sim);
    let cassette = dir.join("test.cassette");
    // Small pages and checkpoints, so that reads span pages and can be resumed mid-way.
    let small = ["-o", "page_size=10", "-o", "checkpoint_records=10"];
    let live = weir(dir, &[&["test", "--record", cassette.to_str().expect("UTF-8")][..], &small].concat());
    assert!(live.status.success(), "weir test on Airtable: {}", text(&live));
    let stdout = String::from_utf8_lossy(&live.stdout).into_owned();
    for check in [
        "list_tables",
        "unknown_table",
        "schema",
        "read_terminates",
        "reread_from_checkpoint",
        "keys_not_null",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with("PASS  ") && l[6..].starts_with(check)),
            "no PASS {check}:\n{stdout}"
        );
    }
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    let lines = stdout.lines().filter(|l| l.starts_with("PASS") || l.starts_with("skip")).count();
    assert!(lines >= 6 * 11, "one line per check and table: {lines} lines\n{stdout}");

    drop(sim);
    std::fs::remove_file(dir.join("sim-token")).expect("remove the token");
    let replayed =
        weir(dir, &[&["test", "--replay", cassette.to_str().expect("UTF-8"), "--json"][..], &small].concat());
    assert!(replayed.status.success(), "weir test from the cassette: {}", text(&replayed));
    let report: Value = serde_json::from_slice(&replayed.stdout).expect("--json prints JSON");
    let checks = report["checks"].as_array().expect("checks");
    assert!(checks.iter().all(|c| c["status"] != "fail"), "{report}");
    assert_eq!(
        checks.len(),
        stdout.lines().filter(|l| l.starts_with("PASS") || l.starts_with("skip")).count()
    );

    // A connector whose offsets move for ever: the failing line names the rule it broke.
    let hostile = tempfile::tempdir().expect("temp dir");
    let hostile = hostile.path();
    std::fs::write(hostile.join("hostile.wasm"), weir_artifacts::HOSTILE).expect("component");
    std::fs::write(
        hostile.join("connections.toml"),
        "[connections.h]\nconnector = \"hostile.wasm\"\nallow_unsigned = true\nbearer_token = \"patHOSTILE-0123456789\"\n\
         base_url = \"http://127.0.0.1:9\"\nattack = \"moving_offsets\"\ntarget = \"\"\nallow_loopback = true\n",
    )
    .expect("connections");
    let broken = weir(hostile, &["test", "--tables", "t", "--max-calls", "50"]);
    assert!(
        !broken.status.success(),
        "weir test passed a connector whose offsets never stop: {}",
        text(&broken)
    );
    let line = report_line(&broken, "FAIL", "read_terminates", None);
    assert!(line.contains("50 calls without ending (limits.read_calls)"), "{line}");
    assert!(
        String::from_utf8_lossy(&broken.stderr).contains("conformance check(s) failed"),
        "{}",
        text(&broken)
    );
}

/// `weir ARGS` in `cwd`, with no connection chosen from the environment.
fn weir_in(cwd: &Path, args: &[&str]) -> Output {
    common::weir_command()
        .current_dir(cwd)
        .args(args)
        .env_remove("ACME_TOKEN")
        // The scaffold's own build, kept between test runs.
        .env("CARGO_TARGET_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target"))
        .output()
        .expect("weir runs")
}

#[test]
fn a_scaffolded_connector_builds_packages_and_passes_weir_test_until_it_breaks_a_rule() {
    let dir = tempfile::tempdir().expect("temp dir");
    let created = weir_in(dir.path(), &["new", "connector", "acme"]);
    assert!(created.status.success(), "weir new: {}", text(&created));
    let root = dir.path().join("acme");
    for file in ["Cargo.toml", "manifest.toml", "src/lib.rs", "connections.toml", "fixtures/acme.cassette"] {
        assert!(root.join(file).is_file(), "weir new wrote no {file}");
    }
    let again = weir_in(dir.path(), &["new", "connector", "acme"]);
    assert!(!again.status.success() && text(&again).contains("exists already"), "{}", text(&again));
    let bad = weir_in(dir.path(), &["new", "connector", "Bad Name"]);
    assert!(!bad.status.success() && text(&bad).contains("lowercase"), "{}", text(&bad));

    let built = weir_in(&root, &["build"]);
    assert!(built.status.success(), "weir build: {}", text(&built));
    assert!(
        String::from_utf8_lossy(&built.stdout).contains("packaged acme 0.1.0 (lakeflow:connect@0.2.0"),
        "{}",
        text(&built)
    );
    assert!(root.join("target/weir/acme.wasm").is_file());

    let passed = weir_in(&root, &["test", "--replay", "fixtures/acme.cassette"]);
    assert!(passed.status.success(), "weir test on the scaffold: {}", text(&passed));
    let stdout = String::from_utf8_lossy(&passed.stdout);
    assert!(stdout.contains("PASS  reread_from_checkpoint  items"), "{stdout}");
    assert!(stdout.contains(" 0 failed"), "{stdout}");

    // weir package checks the manifest against the component: a contract it does not export.
    let raw = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target/wasm32-wasip2/release/acme.wasm");
    let manifest = std::fs::read_to_string(root.join("manifest.toml")).expect("manifest");
    std::fs::write(root.join("v01.toml"), manifest.replace("@0.2.0", "@0.1.0")).expect("write");
    let raw_arg = raw.to_str().expect("UTF-8");
    let wrong = weir_in(&root, &["package", raw_arg, "--manifest", "v01.toml", "--out", "x.wasm"]);
    assert!(!wrong.status.success(), "packaged with the wrong contract: {}", text(&wrong));
    assert!(text(&wrong).contains("0.1.0"), "{}", text(&wrong));
    let repackaged = weir_in(&root, &["package", raw_arg, "--manifest", "manifest.toml", "--out", "y.wasm"]);
    assert!(repackaged.status.success(), "{}", text(&repackaged));
    assert_eq!(
        std::fs::read(root.join("y.wasm")).ok(),
        std::fs::read(root.join("target/weir/acme.wasm")).ok()
    );

    // Break one rule: once done, the offset keeps moving instead of standing still.
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).expect("lib.rs");
    let end = "return Ok(Page::end(start_offset));";
    assert!(lib.contains(end), "the scaffold ends its read with {end}");
    let moving = r#"return Ok(Page { end_offset: json!({"done": true, "n": start.get("n").and_then(Value::as_u64).unwrap_or(0) + 1}).to_string(), ..Page::end(None) });"#;
    std::fs::write(root.join("src/lib.rs"), lib.replacen(end, moving, 1)).expect("write lib.rs");
    let rebuilt = weir_in(&root, &["build"]);
    assert!(rebuilt.status.success(), "weir build: {}", text(&rebuilt));
    let failed = weir_in(&root, &["test", "--replay", "fixtures/acme.cassette", "--max-calls", "20"]);
    assert!(
        !failed.status.success(),
        "weir test passed a connector whose offset never stops: {}",
        text(&failed)
    );
    let line = report_line(&failed, "FAIL", "read_terminates", None);
    assert!(line.contains("(limits.read_calls)"), "the line names the rule: {line}");
}
