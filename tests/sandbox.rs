//! The sandbox, attacked from inside: the hostile connector (tests/components/hostile)
//! tries each way out, and these tests check what a user would notice: the request is
//! denied before it leaves, the call ends with an error naming the connector, the call
//! and the limit, the secret shows up nowhere but on the wire to the allowed origin, and
//! the host goes on serving other calls and other connections.
//!
//! Every test talks to a real HTTP server on loopback ([`weir_tests::EchoServer`]) that
//! records what it received, so "nothing was sent" is checked on the server's side.

use std::path::Path;
use std::time::{Duration, Instant};

use weir_runtime::{ConnectionsFile, ErrorKind, Runtime, RuntimeConfig};
use weir_tests::EchoServer;

mod hostile_support;

use hostile_support::*;

#[test]
fn requests_outside_the_allowed_origin_are_denied_before_they_leave() {
    let server = EchoServer::start().unwrap();
    let base = server.base_url();
    let port = server.port();
    let cases = [
        ("http://example.com/".to_string(), "is not an allowed origin"),
        ("http://93.184.216.34/".to_string(), "is not an allowed origin"),
        ("http://169.254.169.254/latest/meta-data/".to_string(), "is not an allowed origin"),
        (format!("http://user:pw@127.0.0.1:{port}/ok"), "userinfo"),
        (format!("{base}/redirect?to=http://example.com/"), "redirect leaves the allowed origins"),
        (format!("{base}/redirect?to=http://169.254.169.254/latest/meta-data/"), "redirect leaves"),
    ];
    for (target, reason) in &cases {
        let mut s = session(&base, "fetch", Conn { target, ..Conn::default() });
        let text = read_err(&mut s).to_string();
        assert_names_connector_and_call(&text);
        assert!(text.contains("request denied by the host"), "{target}: {text}");
        assert!(text.contains(reason), "{target}: expected {reason:?} in {text}");
        assert_eq!(s.http_counts().denied, 1, "{target}");
    }
    // Only the two redirect hops reached the server; nothing else was sent anywhere.
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/redirect?to=http://example.com/", "/redirect?to=http://169.254.169.254/latest/meta-data/"]
    );

    // The control: the allowed origin itself is reachable, so the denials above are the gate's.
    let ok = server.url("/ok");
    let mut s = session(&base, "fetch", Conn { target: &ok, ..Conn::default() });
    let rows = read(&mut s).expect("the allowed origin answers");
    assert!(rows[0].starts_with("status=200") && rows[0].ends_with("body=ok"), "{rows:?}");
}

#[test]
fn private_and_metadata_addresses_are_denied_even_when_the_manifest_allows_them() {
    // base_url is the allowed origin, so only the address rule stands in the way.
    // NAT64 and 6to4 addresses wrap IPv4 ones: 169.254.169.254 and 10.0.0.1 in disguise.
    for base in [
        "http://169.254.169.254",
        "http://10.0.0.1",
        "http://[fd00::1]",
        "http://[64:ff9b::a9fe:a9fe]",
        "http://[64:ff9b:1::a00:1]",
        "http://[2002:a9fe:a9fe::1]",
    ] {
        let target = format!("{base}/latest/meta-data/");
        let mut s = session(base, "fetch", Conn { target: &target, ..Conn::default() });
        let text = read_err(&mut s).to_string();
        assert!(text.contains("request denied by the host"), "{base}: {text}");
        assert!(text.contains("private, loopback or link-local"), "{base}: {text}");
        assert_eq!(s.http_counts().requests, 0, "{base}: nothing may be sent");
    }
}

#[test]
fn loopback_is_denied_unless_the_connection_allows_it() {
    let server = EchoServer::start().unwrap();
    let ok = server.url("/ok");
    let mut s =
        session(&server.base_url(), "fetch", Conn { target: &ok, deny_loopback: true, ..Conn::default() });
    let text = read_err(&mut s).to_string();
    assert_names_connector_and_call(&text);
    assert!(text.contains("request denied by the host"), "{text}");
    assert!(text.contains("allow_loopback"), "the error should say how to allow it: {text}");

    // A name that resolves to loopback is refused like the literal (no DNS way around it).
    let named = format!("http://localhost:{}", server.port());
    let target = format!("{named}/ok");
    let mut s = session(&named, "fetch", Conn { target: &target, deny_loopback: true, ..Conn::default() });
    let text = read_err(&mut s).to_string();
    assert!(text.contains("request denied by the host"), "{text}");
    assert!(text.contains("private, loopback or link-local"), "{text}");

    assert!(server.requests().is_empty(), "the server was contacted: {:?}", server.requests());
}

#[test]
fn the_guest_sees_no_files_and_no_environment() {
    let server = EchoServer::start().unwrap();
    let planted = Path::new("/tmp/weir-hostile");
    let existed = planted.exists();

    let mut s = session(&server.base_url(), "files", Conn::default());
    let rows = read(&mut s).expect("files attack reports what it saw");
    assert_eq!(rows.len(), 4, "{rows:?}");
    for row in &rows {
        assert!(row.starts_with("Err("), "a file operation succeeded: {row}");
    }
    if !existed {
        assert!(!planted.exists(), "the guest wrote a file on the host");
    }

    let mut s = session(&server.base_url(), "env", Conn::default());
    assert_eq!(read(&mut s).expect("env attack reports"), ["vars=0"]);
    assert!(server.requests().is_empty());
}

#[test]
fn a_spinning_guest_is_stopped_by_the_cpu_limit() {
    let server = EchoServer::start().unwrap();
    let mut s = session(&server.base_url(), "spin", Conn::default());
    let started = Instant::now();
    let e = read_err(&mut s);
    // Bounded, not benchmarked: the limit is 2 s of guest time.
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    let text = e.to_string();
    assert_names_connector_and_call(&text);
    assert!(matches!(e.kind, ErrorKind::Limit(_)), "{e:?}");
    assert!(text.contains("CPU limit of 2.0 s"), "{text}");
    assert!(text.contains("limits.call_seconds"), "the error should say how to raise it: {text}");
    assert_host_keeps_serving(&mut s, &server);
}

#[test]
fn a_growing_guest_is_stopped_by_the_memory_limit() {
    let server = EchoServer::start().unwrap();
    let mut s = session(&server.base_url(), "grow", Conn::default());
    let e = read_err(&mut s);
    let text = e.to_string();
    assert_names_connector_and_call(&text);
    assert!(matches!(e.kind, ErrorKind::Limit(_)), "{e:?}");
    assert!(text.contains("memory limit of 64 MiB"), "{text}");
    assert!(text.contains("limits.memory_mib"), "{text}");
    assert_host_keeps_serving(&mut s, &server);
}

#[test]
fn runaway_recursion_ends_the_call_not_the_host() {
    let server = EchoServer::start().unwrap();
    let mut s = session(&server.base_url(), "recurse", Conn::default());
    let e = read_err(&mut s);
    let text = e.to_string();
    assert_names_connector_and_call(&text);
    assert!(matches!(e.kind, ErrorKind::Trap(_)), "{e:?}");
    // Rust guests keep their frames in linear memory below the data, so a runaway
    // recursion there runs off the bottom of memory rather than off wasm's own stack; the
    // error says that this is most often a stack overflow.
    assert!(text.contains("exhausted its call stack") || text.contains("stack overflow"), "{text}");
    assert_host_keeps_serving(&mut s, &server);
}

#[test]
fn a_huge_page_is_stopped_by_the_memory_limit() {
    let server = EchoServer::start().unwrap();
    let mut s = session(&server.base_url(), "big_page", Conn::default());
    let e = read_err(&mut s);
    let text = e.to_string();
    assert_names_connector_and_call(&text);
    assert!(text.contains("memory limit of 64 MiB"), "{text}");
    assert_host_keeps_serving(&mut s, &server);
}

#[test]
fn a_huge_page_within_memory_is_stopped_by_the_page_limit() {
    let server = EchoServer::start().unwrap();
    // Enough memory to build the 100 MB page, so the page cap is what stops it.
    let limits = "memory_mib = 1024\ncall_seconds = 20";
    let mut s = session(&server.base_url(), "big_page", Conn { limits, ..Conn::default() });
    let e = read_err(&mut s);
    let text = e.to_string();
    assert_names_connector_and_call(&text);
    assert!(matches!(e.kind, ErrorKind::Limit(_)), "{e:?}");
    assert!(text.contains("exceeds the page limit of 8 MiB"), "{text}");
    assert_host_keeps_serving(&mut s, &server);
}

#[test]
fn a_panicking_guest_ends_the_call_not_the_host() {
    let server = EchoServer::start().unwrap();
    let mut s = session(&server.base_url(), "panic", Conn::default());
    let e = read_err(&mut s);
    let text = e.to_string();
    assert_names_connector_and_call(&text);
    assert!(matches!(e.kind, ErrorKind::Trap(_)), "{e:?}");
    assert!(text.contains("panicked"), "{text}");
    assert_host_keeps_serving(&mut s, &server);
}

#[test]
fn response_bodies_over_the_cap_are_refused() {
    let server = EchoServer::start().unwrap();
    for path in ["/big", "/big-stream"] {
        let target = server.url(path);
        let mut s = session(&server.base_url(), "fetch", Conn { target: &target, ..Conn::default() });
        let text = read_err(&mut s).to_string();
        assert_names_connector_and_call(&text);
        assert!(text.contains("response body larger than the host's cap of 1048576 bytes"), "{path}: {text}");
    }
    // Each was asked once: a body over the cap is final, not retried.
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/big", "/big-stream"]);
}

#[test]
fn the_guest_may_not_set_its_own_authorization() {
    let server = EchoServer::start().unwrap();
    let mut s = session(&server.base_url(), "set_auth", Conn::default());
    let text = read_err(&mut s).to_string();
    assert_names_connector_and_call(&text);
    assert!(
        text.contains("request denied by the host: the guest may not set the authorization header"),
        "{text}"
    );
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

#[test]
fn the_host_injects_the_credential_into_every_allowed_request() {
    let server = EchoServer::start().unwrap();
    // A same-origin redirect is followed, and its second hop is authenticated too.
    for path in ["/ok", "/echo", "/redirect?to=/ok"] {
        let target = server.url(path);
        let mut s = session(&server.base_url(), "fetch", Conn { target: &target, ..Conn::default() });
        let rows = read(&mut s).expect("allowed fetch succeeds");
        assert!(rows[0].starts_with("status=200"), "{path}: {rows:?}");
    }
    let seen = server.requests();
    let paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/ok", "/echo", "/redirect?to=/ok", "/ok"]);
    let expected = format!("Bearer {TOKEN}");
    for r in &seen {
        assert_eq!(r.header("authorization"), Some(expected.as_str()), "{r:?}");
    }
}

#[test]
fn the_secret_reaches_the_source_and_nothing_else() {
    let captured = logs();
    let server = EchoServer::start().unwrap();
    let echo = server.url("/echo");
    let conn = || Conn { token: Some(SECRET), target: &echo, ..Conn::default() };

    // spy: what the guest can see of its options, environment and the echoed request.
    let mut s = session(&server.base_url(), "spy", conn());
    assert!(s.guest_options().iter().all(|(k, v)| k != "bearer_token" && v != SECRET));
    let rows = cells(&mut s);
    for row in &rows {
        assert!(!row.contains(SECRET), "the secret reached the guest: {row}");
        assert!(!row.starts_with("env ") && !row.starts_with("arg "), "the guest saw {row}");
        assert!(!row.starts_with("option bearer_token"), "the guest saw {row}");
    }
    for option in [format!("option base_url={}", server.base_url()), "option attack=spy".into()] {
        assert!(rows.contains(&option), "missing {option:?} in {rows:?}");
    }
    // The echo came back (header line and x-echo-auth), with the value redacted by the host.
    let fetched = rows.iter().find(|r| r.starts_with("fetch ")).expect("a fetch row");
    assert!(fetched.contains("status=200"), "{fetched}");
    assert!(fetched.contains("(\"x-echo-auth\", \"Bearer [REDACTED]\")"), "{fetched}");
    assert!(fetched.contains("authorization: Bearer [REDACTED]"), "{fetched}");

    // echo_error: the echo goes into the connector's error message.
    let mut s = session(&server.base_url(), "echo_error", conn());
    let e = read_err(&mut s);
    let (text, debug) = (e.to_string(), format!("{e:?}"));
    assert!(text.contains("connector error: echo: status=200"), "{text}");
    assert!(text.contains("Bearer [REDACTED]"), "{text}");
    assert!(!text.contains(SECRET) && !debug.contains(SECRET), "the secret is in the error: {debug}");

    // echo_log: the echo goes into the host's log.
    let mut s = session(&server.base_url(), "echo_log", conn());
    assert_eq!(read(&mut s).expect("echo_log reads"), ["logged"]);
    let logged = captured.text();
    let marker = format!("host: 127.0.0.1:{}", server.port());
    let line = logged.lines().find(|l| l.contains("weir::guest") && l.contains(&marker));
    let guest: Vec<&str> = logged.lines().filter(|l| l.contains("weir::guest")).collect();
    // One event, one line: the echoed header lines arrive escaped, not as forged log lines.
    let line = line.unwrap_or_else(|| panic!("the guest's echo is not one log line: {guest:#?}"));
    assert!(line.contains("ERROR weir::guest: echo: status=200"), "{line}");
    assert!(line.contains("body=authorization: Bearer [REDACTED]\\n"), "{line}");
    assert!(!logged.contains(SECRET), "the secret is in the logs");

    // The host did send it, to the allowed origin, on every request.
    let seen = server.requests();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let expected = format!("Bearer {SECRET}");
    for r in &seen {
        assert_eq!(r.header("authorization"), Some(expected.as_str()), "{r:?}");
    }
}

#[test]
fn components_load_once_and_are_cached_and_bad_files_are_refused() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let config = || RuntimeConfig { cache_dir: Some(dir.path().to_path_buf()) };
    let runtime = Runtime::new(config()).unwrap();
    let first = runtime.load(weir_artifacts::HOSTILE).unwrap();
    assert!(!first.load.cached);
    assert_eq!(first.manifest.name, "hostile");
    let second = runtime.load(weir_artifacts::HOSTILE).unwrap();
    assert!(second.load.cached, "the second load should come from the cache");
    assert_eq!(first.sha256, second.sha256);
    // A new process (runtime) on the same cache folder skips the compile too, and works.
    let again = Runtime::new(config()).unwrap();
    let third = again.load(weir_artifacts::HOSTILE).unwrap();
    assert!(third.load.cached);
    let spec = ConnectionsFile::parse(
        "[connections.c]\nconnector = \"hostile\"\nbearer_token = \"t\"\nbase_url = \"http://127.0.0.1:9\"\nattack = \"none\"\n",
        Path::new("connections.toml"),
    )
    .unwrap();
    let mut s = again.session(&third, spec.get("c").unwrap()).unwrap();
    assert!(s.list_tables().unwrap().iter().any(|t| t == "t"));

    let refused = |bytes: &[u8]| match runtime.load(bytes) {
        Ok(c) => panic!("loaded {:?}", c.manifest.name),
        Err(e) => e.to_string(),
    };
    let core = refused(b"\0asm\x01\0\0\0");
    assert!(core.contains("not a WebAssembly component") && core.contains("core module"), "{core}");
    let bare = refused(b"\0asm\x0d\0\x01\0");
    assert!(bare.contains("carries no") && bare.contains("custom section"), "{bare}");
    let junk = refused(b"#!/bin/sh\nrm -rf /\n");
    assert!(junk.contains("not a WebAssembly component"), "{junk}");
}
