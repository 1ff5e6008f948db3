//! Helpers shared by the `weir` binary's end-to-end tests: a simulator connection, raw
//! requests to the simulator's API, and the independent Delta reader.

// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use weir_airtable_sim::{DEFAULT_BASE_ID, DEFAULT_TOKEN, Sim};

#[allow(unused_imports)]
pub use weir_tests::delta_reader::read_delta;

/// The `weir` binary as a test runs it: without the caller's `WEIR_CONNECTIONS`,
/// `WEIR_CONNECTION` and `RUST_LOG`, and with its cache (compiled components, shared request
/// budgets) in the target folder, beside the Spark suite's, rather than the user's
/// `~/.cache/weir`. A test that needs a cache of its own sets `WEIR_CACHE_DIR` again.
pub fn weir_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.env_remove("WEIR_CONNECTIONS")
        .env_remove("WEIR_CONNECTION")
        .env_remove("RUST_LOG")
        .env("WEIR_CACHE_DIR", weir_tests::delta_reader::target_dir().join("weir-cache"));
    cmd
}

/// Writes `sim-token` and a `connections.toml` whose connection `airtable` points at `sim`.
pub fn write_sim_connections(dir: &Path, sim: &Sim) {
    std::fs::write(dir.join("sim-token"), DEFAULT_TOKEN).expect("write token");
    std::fs::write(
        dir.join("connections.toml"),
        format!(
            "[connections.airtable]\nconnector = \"airtable\"\nbase_id = \"{DEFAULT_BASE_ID}\"\n\
             base_url = \"{}\"\nbearer_token = {{ file = \"sim-token\" }}\nallow_loopback = true\n",
            sim.base_url()
        ),
    )
    .expect("write connections");
}

/// One request to the simulator's API; HTTP/1.0 so the body is plain and ends at EOF.
pub fn sim_api(sim: &Sim, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let addr = sim.base_url().trim_start_matches("http://").to_string();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect to the simulator");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {DEFAULT_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read response");
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    (status, serde_json::from_str(body).unwrap_or(Value::String(body.to_string())))
}

/// Percent-encodes a path segment.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A process's exit code and output, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The line `weir test` printed for `check` with `status` (`PASS`, `FAIL`, `skip`), on `table`
/// when one is named; its columns are separated by two spaces or more.
pub fn report_line(out: &Output, status: &str, check: &str, table: Option<&str>) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let words = |l: &str| {
        l.split("  ").map(str::trim).filter(|w| !w.is_empty()).map(String::from).collect::<Vec<_>>()
    };
    let wanted: Vec<String> =
        [Some(status), Some(check), table].into_iter().flatten().map(String::from).collect();
    stdout
        .lines()
        .find(|l| words(l).get(..wanted.len()) == Some(&wanted[..]))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no {status} line for {check} on {table:?}: {}", text(out)))
}
