//! Hostile connectors through the `weir` binary: what a user sees when a connector breaks a
//! rule during `weir run` or `weir preview` (an error naming the connector, the table and the
//! rule, a nonzero exit, nothing committed from the bad pages), and that what a connector writes
//! reaches the terminal escaped and its log floods are cut.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{read_delta, text};
use serde_json::Value;
use weir_tests::EchoServer;
use weir_tests::delta_reader::has_commit;

struct Env {
    server: EchoServer,
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("hostile.wasm"), weir_artifacts::HOSTILE).expect("component");
        Env { server: EchoServer::start().expect("echo server"), dir }
    }

    /// A connections file whose connection `h` runs `attack`, with `limits` lines.
    fn connection(&self, attack: &str, target: &str, limits: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{attack}.toml"));
        std::fs::write(
            &path,
            format!(
                "[connections.h]\nconnector = \"hostile.wasm\"\nallow_unsigned = true\nbearer_token = \"patHOSTILE-0123456789\"\n\
                 base_url = \"{}\"\nattack = \"{attack}\"\ntarget = \"{target}\"\nallow_loopback = true\n\
                 [connections.h.limits]\n{limits}\n",
                self.server.base_url()
            ),
        )
        .expect("connections");
        path
    }

    fn weir(&self, args: &[&str]) -> Output {
        common::weir_command()
            .current_dir(self.dir.path())
            .env("WEIR_CACHE_DIR", self.dir.path().join("cache"))
            .args(args)
            .output()
            .expect("weir runs")
    }

    /// `weir run` of table `t` of connection `conns` into `warehouse/t`; fails, returns stdout+stderr.
    fn run_fails(&self, conns: &Path) -> String {
        let spec = self.dir.path().join("t.yaml");
        std::fs::write(&spec, "connection_name: h\nobjects:\n  - table:\n      source_table: t\n").unwrap();
        let conns = conns.to_string_lossy();
        let out =
            self.weir(&["run", "t.yaml", "--connections", &conns, "--warehouse", "warehouse", "--json"]);
        assert!(!out.status.success(), "the run should fail:\n{}", text(&out));
        text(&out)
    }

    /// Nothing from the bad pages was committed: no rows, no application transaction.
    fn nothing_committed(&self) {
        let path = self.dir.path().join("warehouse/t");
        if has_commit(&path) {
            let table = read_delta(&path);
            assert_eq!(table["rows"], 0, "{table}");
            assert_eq!(table["txn"], Value::Object(Default::default()), "{table}");
        }
    }
}

#[test]
fn a_read_whose_offsets_never_stop_fails_the_run_naming_the_rule() {
    let env = Env::new();
    let out = env.run_fails(&env.connection("moving_offsets", "", "read_empty_pages = 20"));
    for expected in
        ["connector hostile", "read-table", "\"t\"", "20 pages in a row", "limits.read_empty_pages"]
    {
        assert!(out.contains(expected), "{expected:?} missing:\n{out}");
    }
    env.nothing_committed();
}

#[test]
fn pages_that_are_never_checkpointable_are_not_buffered_without_end() {
    let env = Env::new();
    let out = env.run_fails(&env.connection("never_checkpoint", "", "pending_mib = 2"));
    for expected in ["\"t\"", "without a checkpointable offset", "limits.pending_mib"] {
        assert!(out.contains(expected), "{expected:?} missing:\n{out}");
    }
    env.nothing_committed();
}

#[test]
fn a_counter_that_would_wrap_fails_the_table_naming_it() {
    let env = Env::new();
    let out = env.run_fails(&env.connection("counter_overflow", "", ""));
    assert!(
        out.contains("counter \\\"nulled.value\\\" passed")
            || out.contains("counter \"nulled.value\" passed"),
        "{out}"
    );
    env.nothing_committed();
}

#[test]
fn fifty_thousand_copies_of_one_primary_key_are_one_key() {
    let env = Env::new();
    let conns = env.connection("many_keys", "50000", "");
    let spec = env.dir.path().join("t.yaml");
    std::fs::write(&spec, "connection_name: h\nobjects:\n  - table:\n      source_table: t\n").unwrap();
    let out =
        env.weir(&["run", "t.yaml", "--connections", &conns.to_string_lossy(), "--warehouse", "warehouse"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(read_delta(&env.dir.path().join("warehouse/t"))["rows"], 1);
}

#[test]
fn what_a_connector_writes_reaches_the_terminal_escaped() {
    let env = Env::new();
    let conns = env.connection("terminal", "", "");
    let conns = conns.to_string_lossy();
    for args in [vec!["tables", "--connections", &conns], vec!["preview", "--connections", &conns, "-t", "t"]]
    {
        let out = env.weir(&args);
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!all.contains('\x1b'), "a raw escape reached the terminal: {all:?}");
        assert!(!all.contains('\u{202e}'), "a bidirectional override reached the terminal: {all:?}");
        assert!(!all.lines().any(|l| l.starts_with("error: forged")), "a forged line: {all}");
        assert!(all.contains("\\u{1b}]0;owned"), "the escape is shown, escaped: {all}");
    }
}

#[test]
fn a_flood_of_connector_log_lines_is_cut_and_counted() {
    let env = Env::new();
    let conns = env.connection("log_flood", "", "call_seconds = 120.0");
    let out = env.weir(&["preview", "--connections", &conns.to_string_lossy(), "-t", "t"]);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A million lines of about 60 bytes would be 60 MB.
    assert!(stderr.len() < 1 << 20, "{} bytes of stderr", stderr.len());
    assert!(stderr.contains("dropped") && stderr.contains("log line(s)"), "{stderr}");
}
