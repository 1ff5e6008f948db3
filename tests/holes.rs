//! The holes a hostile connector or a hostile source could use to crash the host, hang it, make
//! it spend without bound or get a secret past redaction, each attacked from the hostile
//! component (contract 0.1) or a hostile loopback source, and each checked the same way: the
//! host stays up, the error names the connector, the table and the rule, nothing from the bad
//! page comes back, and another connector instance in the same process keeps serving.

mod hostile_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hostile_support::*;
use weir_runtime::limits::LimitHit;
use weir_runtime::{ErrorKind, Pages, ReadBounds, Runtime, RuntimeConfig, Stream};
use weir_tests::EchoServer;

/// Reads table `t` to its end through the shared page loop.
fn read_to_end(session: &mut weir_runtime::Session) -> Result<usize, weir_runtime::CallError> {
    let schema = session.arrow_schema("t", &[])?;
    let mut pages = Pages::new(session, "t", &[], Stream::Table, None, Arc::clone(&schema));
    let mut rows = 0;
    while let Some(page) = pages.next_page() {
        rows += page?.rows;
    }
    Ok(rows)
}

#[test]
fn a_guest_asleep_in_a_wasi_call_is_stopped_by_the_wall_clock() {
    let server = EchoServer::start().unwrap();
    let limits = "call_wall_seconds = 1.5";
    let mut s = session(&server.base_url(), "sleep", Conn { limits, ..Conn::default() });
    let started = Instant::now();
    let e = read_err(&mut s);
    // It was stopped, not left sleeping for its hour.
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
    assert!(matches!(e.kind, ErrorKind::Limit(LimitHit::WallClock { .. })), "{e:?}");
    let text = e.to_string();
    assert_names_connector_and_call(&text);
    assert!(text.contains("wall-clock limit") && text.contains("limits.call_wall_seconds"), "{text}");
    assert_host_keeps_serving(&mut s, &server);
}

#[test]
fn a_guest_looping_on_http_send_is_stopped_by_the_wall_clock() {
    let server = EchoServer::start().unwrap();
    // Its CPU budget is large: time in the host does not count against it, the wall does.
    let limits = "call_wall_seconds = 2.0\ncall_seconds = 600.0";
    let mut s = session(&server.base_url(), "http_loop", Conn { limits, ..Conn::default() });
    let e = read_err(&mut s);
    assert!(matches!(e.kind, ErrorKind::Limit(LimitHit::WallClock { .. })), "{e:?}");
    assert_names_connector_and_call(&e.to_string());
    assert!(!server.requests().is_empty());
    assert_host_keeps_serving(&mut s, &server);
}

#[test]
fn offsets_that_never_stop_fail_the_read_naming_the_rule() {
    let server = EchoServer::start().unwrap();
    let limits = "read_empty_pages = 50";
    let mut s = session(&server.base_url(), "moving_offsets", Conn { limits, ..Conn::default() });
    let e = read_to_end(&mut s).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Read(_)), "{e:?}");
    let text = e.to_string();
    assert_names_connector_and_call(&text);
    assert!(
        text.contains("50 pages in a row without a row") && text.contains("limits.read_empty_pages"),
        "{text}"
    );

    // The same bound by calls, whatever the pages hold.
    let schema = s.arrow_schema("t", &[]).unwrap();
    let bounds = ReadBounds { calls: 20, ..ReadBounds::default() };
    let mut pages = Pages::new(&mut s, "t", &[], Stream::Table, None, schema).with_bounds(bounds);
    let mut last = None;
    while let Some(page) = pages.next_page() {
        last = Some(page);
    }
    let e = last.expect("pages").unwrap_err();
    assert!(e.to_string().contains("20 calls without ending"), "{e}");
    assert_host_keeps_serving(&mut s, &server);
}

#[test]
fn a_read_ahead_keeps_the_bounds_and_stops_with_its_consumer() {
    let server = EchoServer::start().unwrap();
    let limits = "read_empty_pages = 50";
    let mut s = session(&server.base_url(), "moving_offsets", Conn { limits, ..Conn::default() });
    let schema = s.arrow_schema("t", &[]).unwrap();

    // The rule on pages without rows holds where the pages are converted.
    let pages = Pages::new(&mut s, "t", &[], Stream::Table, None, Arc::clone(&schema));
    let last = pages.read_ahead(|pages| std::iter::from_fn(|| pages.next_page()).last());
    let e = last.expect("pages").unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Read(_)), "{e:?}");
    assert!(e.to_string().contains("50 pages in a row without a row"), "{e}");

    // A consumer that stops after three pages of a read that never ends: the reading thread
    // stops too (the call returns), and the session serves the next read.
    let started = Instant::now();
    let pages = Pages::new(&mut s, "t", &[], Stream::Table, None, schema);
    let taken = pages.read_ahead(|pages| (0..3).filter_map(|_| pages.next_page()?.ok()).count());
    assert_eq!(taken, 3);
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert_host_keeps_serving(&mut s, &server);
}

#[test]
fn a_retry_after_past_the_maximum_ends_the_call_instead_of_waiting() {
    let server = EchoServer::start().unwrap();
    for v in ["1e20", "1e19", "1e10", "inf"] {
        let target = server.url(&format!("/retry-after?v={v}"));
        let mut s = session(&server.base_url(), "fetch", Conn { target: &target, ..Conn::default() });
        let started = Instant::now();
        let e = read_err(&mut s);
        assert!(started.elapsed() < Duration::from_secs(30), "{v}: waited {:?}", started.elapsed());
        assert!(matches!(e.kind, ErrorKind::Limit(LimitHit::RetryAfter { .. })), "{v}: {e:?}");
        let text = e.to_string();
        assert_names_connector_and_call(&text);
        assert!(text.contains("Retry-After") && text.contains("3600 s"), "{v}: {text}");
        assert_host_keeps_serving(&mut s, &server);
    }
}

/// The hostile component with its manifest's text edited by `edit`.
fn with_manifest(edit: impl FnOnce(&str) -> String) -> Vec<u8> {
    weir_tests::repackage(weir_artifacts::HOSTILE, "tests/components/hostile/manifest.toml", edit)
}

#[test]
fn manifest_and_connection_numbers_are_checked_when_read() {
    let runtime = Runtime::new(RuntimeConfig { cache_dir: None }).unwrap();
    for (from, to, named) in [
        ("call_seconds = 2.0", "call_seconds = inf", "limits.call_seconds"),
        ("http_timeout_seconds = 5.0", "http_timeout_seconds = -1.0", "limits.http_timeout_seconds"),
        ("max_backoff_ms = 50", "max_backoff_ms = 50\npenalty_seconds = 1e300", "retry.penalty_seconds"),
        ("[retry]", "[[rate_limits]]\nkey = \"k\"\nper_second = 1e-300\n\n[retry]", "per_second"),
    ] {
        let bytes = with_manifest(|m| m.replace(from, to));
        let err = runtime.load(&bytes).err().expect("refused").to_string();
        assert!(err.contains(named) && err.contains("must be a number from"), "{to}: {err}");
    }
    // A connection's overrides meet the same ranges.
    let server = EchoServer::start().unwrap();
    let text = format!(
        "[connections.c]\nconnector = \"hostile\"\nbearer_token = \"t\"\nbase_url = \"{}\"\nattack = \"none\"\n\
         [connections.c.limits]\ncall_wall_seconds = 1e300\n",
        server.base_url()
    );
    let file = weir_runtime::ConnectionsFile::parse(&text, std::path::Path::new("c.toml")).unwrap();
    let (runtime, hostile) = host();
    let err = runtime.session(hostile, file.get("c").unwrap()).err().expect("refused").to_string();
    assert!(err.contains("limits.call_wall_seconds"), "{err}");
    let mut other = session(&server.base_url(), "none", Conn::default());
    assert_eq!(read(&mut other).unwrap(), ["ok"]);
}

#[test]
fn pages_with_huge_offsets_or_counter_floods_are_refused_naming_the_bound() {
    let server = EchoServer::start().unwrap();
    for (attack, bound) in [("huge_offset", "65536 bytes"), ("counter_flood", "at most 1000")] {
        let mut s = session(&server.base_url(), attack, Conn::default());
        let e = read_err(&mut s);
        let text = e.to_string();
        assert_names_connector_and_call(&text);
        assert!(text.contains(bound), "{attack}: {text}");
        assert_host_keeps_serving(&mut s, &server);
    }
}

#[test]
fn a_flood_of_guest_log_lines_is_cut_and_counted() {
    let server = EchoServer::start().unwrap();
    let before = logs().text().matches("flood ").count();
    let mut s =
        session(&server.base_url(), "log_flood", Conn { limits: "call_seconds = 60.0", ..Conn::default() });
    let started = Instant::now();
    let rows = read(&mut s).expect("the flooding call still answers");
    let seconds = started.elapsed().as_secs() + 1;
    assert_eq!(rows, ["flooded"]);
    let text = logs().text();
    let kept = text.matches("flood ").count() - before;
    // A million lines were logged; a hundred a second were kept.
    let allowed = (seconds + 1) as usize * weir_runtime::session::LOG_LINES_PER_SECOND as usize;
    assert!(kept <= allowed, "{kept} lines kept in {seconds} s");
    assert!(
        text.contains("dropped") && text.contains("log line(s) of the connector"),
        "no drop count in the log"
    );
}

#[test]
fn a_secret_echoed_in_any_disguise_never_reaches_the_rows() {
    let server = EchoServer::start().unwrap();
    let target = server.url("/echo-encoded");
    // What the guest is handed: every disguise redacted, the header's name too. The two halves
    // pass, since neither is the secret.
    let mut spy =
        session(&server.base_url(), "spy", Conn { token: Some(SECRET), target: &target, ..Conn::default() });
    let seen = cells(&mut spy).join("\n");
    assert!(seen.contains("halves: "), "{seen}");
    assert!(seen.matches("[REDACTED]").count() >= 7, "{seen}");
    assert!(!seen.contains(&hex_of(SECRET)), "a header's name carried the hex secret: {seen}");
    assert!(!seen.to_lowercase().contains(&SECRET.to_lowercase()), "{seen}");
    // A guest that decodes what it got and puts the halves together holds the secret again:
    // the page that carries it is refused before any sink sees it.
    let mut s = session(
        &server.base_url(),
        "echo_decode",
        Conn { token: Some(SECRET), target: &target, ..Conn::default() },
    );
    let e = read_err(&mut s);
    assert!(matches!(e.kind, ErrorKind::Secret), "{e:?}");
    let text = e.to_string();
    assert_names_connector_and_call(&text);
    assert!(!text.contains(SECRET), "{text}");
    assert!(!logs().text().to_lowercase().contains(&SECRET.to_lowercase()), "the secret reached the log");
    assert_host_keeps_serving(&mut s, &server);
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn an_upper_cased_secret_in_a_denied_redirect_is_redacted_from_the_warning() {
    let server = EchoServer::start().unwrap();
    let upper = SECRET.to_uppercase();
    let target = server.url(&format!("/redirect?to=http%3A%2F%2Fexample.com%2F{upper}"));
    let mut s = session(
        &server.base_url(),
        "fetch",
        Conn { token: Some(SECRET), target: &target, ..Conn::default() },
    );
    let e = read_err(&mut s);
    assert!(e.to_string().contains("redirect leaves the allowed origins"), "{e}");
    assert!(!e.to_string().contains(&upper), "{e}");
    let log = logs().text();
    assert!(log.contains("redirect leaves the allowed origins"), "the denial is logged");
    assert!(!log.contains(&upper), "the upper-cased secret reached the log");
}

#[test]
fn schemas_too_deep_or_too_wide_are_refused_naming_the_bound() {
    let server = EchoServer::start().unwrap();
    for (attack, target, bound) in
        [("deep_schema", "120", "max_depth"), ("cells_bomb", "60000", "max_schema_fields")]
    {
        let mut s = session(&server.base_url(), attack, Conn { target, ..Conn::default() });
        let e = s.arrow_schema("t", &[]).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Limit(LimitHit::Convert { .. })), "{attack}: {e:?}");
        let text = e.to_string();
        assert!(
            text.contains("connector hostile") && text.contains("\"t\"") && text.contains(bound),
            "{text}"
        );
        assert_host_keeps_serving(&mut s, &server);
    }
}

#[test]
fn a_page_of_empty_records_against_a_wide_schema_is_bounded_in_cells() {
    let server = EchoServer::start().unwrap();
    // 200,000 `{}` lines against 300 columns: 60 million cells from 600 KB.
    let mut s = session(&server.base_url(), "cells_bomb", Conn { target: "300", ..Conn::default() });
    let e = read_to_end(&mut s).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Limit(LimitHit::Convert { limit: "max_cells", .. })), "{e:?}");
    assert_names_connector_and_call(&e.to_string());
    assert_host_keeps_serving(&mut s, &server);
}

/// A valid Arrow IPC page of table `t` (`id`, `value`) with `rows` rows.
fn ipc_page(rows: usize) -> Vec<u8> {
    use arrow_array::{RecordBatch, StringArray};
    let schema = Arc::new(weir_convert::arrow_schema(
        r#"{"type":"struct","fields":[{"name":"id","type":"string","nullable":false,"metadata":{}},{"name":"value","type":"string","nullable":true,"metadata":{}}]}"#,
    ).unwrap());
    let ids: Vec<String> = (0..rows).map(|i| format!("r{i}")).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from(ids.clone())), Arc::new(StringArray::from(ids))],
    )
    .unwrap();
    let mut out = Vec::new();
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut out, &schema).unwrap();
    writer.write(&batch).unwrap();
    writer.finish().unwrap();
    drop(writer);
    out
}

#[test]
fn hostile_arrow_ipc_pages_end_the_call_cleanly() {
    let server = EchoServer::start().unwrap();
    let valid = ipc_page(5);
    let mut pages: Vec<Vec<u8>> = Vec::new();
    // Declared metadata lengths that are huge, negative or past the end.
    for len in [0x7fff_ffffu32, 0x8000_0000, 0xffff_fff0, 1 << 20] {
        let mut p = valid.clone();
        p[4..8].copy_from_slice(&len.to_le_bytes());
        pages.push(p);
    }
    pages.push(valid[..valid.len() / 2].to_vec());
    // Seeded random mutations of the valid page: flipped bytes anywhere.
    let mut seed = 0x853c_49e6_748f_ea9b_u64;
    for _ in 0..60 {
        let mut p = valid.clone();
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed as usize) % p.len();
            p[i] = (seed >> 32) as u8;
        }
        pages.push(p);
    }
    let hex: fn(&[u8]) -> String = |b| b.iter().map(|x| format!("{x:02x}")).collect();
    let mut refused = 0;
    for page in &pages {
        let target = hex(page);
        let mut s = session(&server.base_url(), "ipc_page", Conn { target: &target, ..Conn::default() });
        match read_to_end(&mut s) {
            Ok(_) => {}
            Err(e) => {
                refused += 1;
                assert!(
                    matches!(e.kind, ErrorKind::Output(_) | ErrorKind::Limit(LimitHit::Convert { .. })),
                    "{e:?}"
                );
                assert_names_connector_and_call(&e.to_string());
            }
        }
    }
    assert!(refused >= 5, "only {refused} of {} hostile pages were refused", pages.len());
    // The valid page itself reads, and the host still serves.
    let mut s = session(&server.base_url(), "ipc_page", Conn { target: &hex(&valid), ..Conn::default() });
    assert_eq!(read_to_end(&mut s).unwrap(), 5);
    assert_host_keeps_serving(&mut s, &server);
}

/// The hostile component with `modules` more core modules, each defining one memory of `mib`
/// MiB and instantiated `times` times: item 7's attack, a component made of many modules.
fn with_memories(modules: u32, times: u32, mib: u32) -> Vec<u8> {
    fn leb(n: u32, out: &mut Vec<u8>) {
        weir_runtime::manifest::leb128(n as usize, out);
    }
    fn section(id: u8, content: &[u8], out: &mut Vec<u8>) {
        out.push(id);
        leb(content.len() as u32, out);
        out.extend_from_slice(content);
    }
    // The outer component's own core modules come first in its module index space.
    let (mut existing, mut depth) = (0u32, 0usize);
    for payload in wasmparser::Parser::new(0).parse_all(weir_artifacts::HOSTILE) {
        match payload.expect("the hostile component parses") {
            wasmparser::Payload::ModuleSection { .. } => {
                existing += u32::from(depth == 0);
                depth += 1;
            }
            wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let mut memory = Vec::new();
    leb(1, &mut memory);
    memory.push(0x00); // limits: a minimum, no maximum
    leb(mib * 16, &mut memory); // 64 KiB pages
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(5, &memory, &mut module);
    let mut out = weir_artifacts::HOSTILE.to_vec();
    for m in 0..modules {
        section(1, &module, &mut out); // a core module
        let mut instances = Vec::new();
        leb(times, &mut instances);
        for _ in 0..times {
            instances.push(0x00); // instantiate
            leb(existing + m, &mut instances);
            leb(0, &mut instances); // no arguments
        }
        section(2, &instances, &mut out); // core instances
    }
    out
}

#[test]
fn a_component_of_many_memories_is_bounded_by_their_count_and_total() {
    let server = EchoServer::start().unwrap();
    let (runtime, hostile) = host();

    // Sixteen modules of 60 MiB each: refused before compiling, naming the rule.
    let err = runtime.load(&with_memories(16, 1, 60)).err().expect("refused").to_string();
    assert!(err.contains("connector hostile") && err.contains("linear memories"), "{err}");
    assert!(err.contains("at most 8"), "{err}");

    // Three modules of 30 MiB: fine in number, but together past a 64 MiB limit.
    let three = runtime.load(&with_memories(3, 1, 30)).expect("three memories load");
    let limits = "memory_mib = 64";
    let mut s = session_of(runtime, &three, &server.base_url(), "none", Conn { limits, ..Conn::default() });
    let e = read_err(&mut s);
    assert!(matches!(e.kind, ErrorKind::Limit(LimitHit::Memory { .. })), "{e:?}");
    assert!(
        e.to_string().contains("connector hostile") && e.to_string().contains("limits.memory_mib"),
        "{e}"
    );

    // One small module instantiated twelve times: stopped when the instance is created.
    let many = runtime.load(&with_memories(1, 12, 1)).expect("one module loads");
    let mut s = session_of(runtime, &many, &server.base_url(), "none", Conn::default());
    let e = read_err(&mut s).to_string();
    assert!(e.contains("connector hostile") && e.contains("memory count"), "{e}");

    // The runtime still serves the plain connector.
    let mut other = session_of(runtime, hostile, &server.base_url(), "none", Conn::default());
    assert_eq!(read(&mut other).expect("another connection still reads"), ["ok"]);
}
