//! A hostile connector: each `attack` option tries one way out of the sandbox, and
//! `read-table` on table `t` reports what it observed as rows `{id, value}`.
//!
//! | attack | what it tries |
//! |---|---|
//! | `fetch` | GET the `target` URL (a host not allowed, an IP literal, metadata, userinfo, a redirect) |
//! | `set_auth` | send its own `Authorization` header to `base_url` |
//! | `files` | read `/etc/passwd`, list `/` and `.` |
//! | `env` | read the environment and the arguments |
//! | `spin` | loop forever |
//! | `grow` | allocate memory without bound |
//! | `recurse` | recurse without bound |
//! | `big_page` | return a 100 MB page |
//! | `spy` | return its options, environment, and what `target` answers (headers and body) as rows |
//! | `echo_error` | fetch `target` and put the answer into an error |
//! | `echo_log` | fetch `target` and log the answer |
//! | `panic` | panic |
//! | `none` | behave: one row per call, then end |
//! | `sleep` | sleep for an hour in a WASI call |
//! | `http_loop` | send requests to `base_url` for ever |
//! | `moving_offsets` | pages without rows whose end offset always moves |
//! | `never_checkpoint` | 1,000-row pages whose offsets are never checkpointable and never end |
//! | `ipc_page` | return the hex-encoded bytes in `target` as an Arrow IPC page |
//! | `cells_bomb` | a `target`-column schema, and a page of 200,000 empty records |
//! | `deep_schema` | a column nested `target` arrays deep |
//! | `many_keys` | `target` primary keys (the same one repeated) |
//! | `counter_flood` | 150,000 new counter names per page |
//! | `counter_overflow` | a counter of u64::MAX on every page |
//! | `huge_offset` | an 8 MiB end offset |
//! | `log_flood` | log a million lines |
//! | `echo_decode` | fetch `target`, decode every hex or base64 word of the answer, and return them as rows |
//! | `terminal` | table names and errors carrying terminal escapes and forged lines |
//!
//! Table `wide` is benign whatever the attack: it serves [`WIDE_PAGE_ROWS`]-row pages of a
//! 20-column table of mixed types ([`WIDE_SCHEMA`]), generated deterministically by
//! [`wide_page`], for as many pages as its `pages` table option says (default 10). Offsets are
//! `{"page": n}`. The benchmarks call [`wide_page`] natively too, to compare a read through the
//! sandbox with the same work done without it.

use weir_connector_sdk::{
    Connector, ConnectorError, Host, Level, Options, Page, Request, Rows, TableMetadata,
};

/// The hostile connector.
pub struct Hostile;

const SCHEMA: &str = r#"{"type":"struct","fields":[{"name":"id","type":"string","nullable":false,"metadata":{}},{"name":"value","type":"string","nullable":true,"metadata":{}}]}"#;

/// The Spark JSON schema of table `wide`: 20 columns of mixed types.
pub const WIDE_SCHEMA: &str = concat!(
    r#"{"type":"struct","fields":["#,
    r#"{"name":"id","type":"string","nullable":false,"metadata":{}},"#,
    r#"{"name":"seq","type":"long","nullable":false,"metadata":{}},"#,
    r#"{"name":"name","type":"string","nullable":true,"metadata":{}},"#,
    r#"{"name":"category","type":"string","nullable":true,"metadata":{}},"#,
    r#"{"name":"description","type":"string","nullable":true,"metadata":{}},"#,
    r#"{"name":"email","type":"string","nullable":true,"metadata":{}},"#,
    r#"{"name":"notes","type":"string","nullable":true,"metadata":{}},"#,
    r#"{"name":"quantity","type":"long","nullable":true,"metadata":{}},"#,
    r#"{"name":"views","type":"long","nullable":true,"metadata":{}},"#,
    r#"{"name":"price","type":"double","nullable":true,"metadata":{}},"#,
    r#"{"name":"weight","type":"double","nullable":true,"metadata":{}},"#,
    r#"{"name":"score","type":"double","nullable":true,"metadata":{}},"#,
    r#"{"name":"active","type":"boolean","nullable":true,"metadata":{}},"#,
    r#"{"name":"featured","type":"boolean","nullable":true,"metadata":{}},"#,
    r#"{"name":"created","type":"timestamp","nullable":true,"metadata":{}},"#,
    r#"{"name":"modified","type":"timestamp","nullable":true,"metadata":{}},"#,
    r#"{"name":"launch","type":"date","nullable":true,"metadata":{}},"#,
    r#"{"name":"cost","type":"decimal(18,2)","nullable":true,"metadata":{}},"#,
    r#"{"name":"tags","type":{"type":"array","elementType":"string","containsNull":true},"nullable":true,"metadata":{}},"#,
    r#"{"name":"owner","type":{"type":"struct","fields":["#,
    r#"{"name":"name","type":"string","nullable":true,"metadata":{}},"#,
    r#"{"name":"email","type":"string","nullable":true,"metadata":{}},"#,
    r#"{"name":"id","type":"long","nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}}"#,
    r#"]}"#
);

/// Rows in each page of table `wide`.
pub const WIDE_PAGE_ROWS: u64 = 100;

const WORDS: [&str; 8] = ["Aurora", "Breeze", "Cirrus", "Drift", "Ember", "Fjord", "Glow", "Halo"];
const CATEGORIES: [&str; 4] = ["Lighting", "Audio", "Kitchen", "Garden"];

/// A fixed mix of a row number, so every page is the same on every call and platform.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Page `n` of table `wide` as JSON Lines: rows `n * 100 .. n * 100 + 100`.
pub fn wide_page(n: u64) -> String {
    let mut out = String::with_capacity(WIDE_PAGE_ROWS as usize * 700);
    for i in n * WIDE_PAGE_ROWS..(n + 1) * WIDE_PAGE_ROWS {
        let h = mix(i);
        let word = |k: u32| WORDS[((h >> (k * 3)) % 8) as usize];
        // Epoch seconds spread over 2024, rendered as RFC 3339 text the way APIs send them.
        let created = 1_704_067_200 + (h % 31_536_000);
        let day = |secs: u64| {
            let days = secs / 86_400;
            let (y, m, d) = civil(days as i64);
            let rest = secs % 86_400;
            (format!("{y:04}-{m:02}-{d:02}"), rest / 3600, rest / 60 % 60, rest % 60)
        };
        let (c_date, ch, cm, cs) = day(created);
        let (m_date, mh, mm, ms) = day(created + (h >> 40) % 864_000);
        let notes: serde_json::Value =
            if h.is_multiple_of(5) { serde_json::Value::Null } else { format!("note {}", h % 10_000).into() };
        let row = serde_json::json!({
            "id": format!("rec{i:014}"),
            "seq": i,
            "name": format!("{} {} {}", word(0), word(1), i),
            "category": CATEGORIES[(h % 4) as usize],
            "description": format!(
                "The {} {} line, batch {}: {} and {} finish.",
                word(2), word(3), h % 97, word(4), word(5)
            ),
            "email": format!("{}.{}@example.com", word(6).to_lowercase(), h % 1000),
            "notes": notes,
            "quantity": (h >> 8) % 10_000,
            "views": (h >> 16) % 1_000_000,
            "price": ((h >> 20) % 100_000) as f64 / 100.0,
            "weight": ((h >> 24) % 5_000) as f64 / 1000.0,
            "score": ((h >> 28) % 1000) as f64 / 10.0,
            "active": h.is_multiple_of(2),
            "featured": h.is_multiple_of(7),
            "created": format!("{c_date}T{ch:02}:{cm:02}:{cs:02}.000Z"),
            "modified": format!("{m_date}T{mh:02}:{mm:02}:{ms:02}.000Z"),
            "launch": m_date,
            "cost": format!("{}.{:02}", (h >> 32) % 10_000, (h >> 12) % 100),
            "tags": [word(7), CATEGORIES[((h >> 5) % 4) as usize]],
            "owner": {"name": word(8), "email": format!("owner{}@example.com", h % 50), "id": h % 50},
        });
        out.push_str(&row.to_string());
        out.push('\n');
    }
    out
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Serves table `wide`: the page the offset names, or the end once `pages` are done.
fn read_wide(table_options: &Options, start_offset: Option<&str>) -> Result<Page, ConnectorError> {
    let pages = match table_options.get("pages") {
        None => 10,
        Some(v) => v.parse::<u64>().map_err(|_| {
            ConnectorError::InvalidOptions(format!("pages must be a whole number, got {v:?}"))
        })?,
    };
    let page = match start_offset {
        None => 0,
        Some(text) => serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("page").and_then(serde_json::Value::as_u64))
            .ok_or_else(|| ConnectorError::InvalidOptions(format!("offset {text:?} has no page number")))?,
    };
    if page >= pages {
        return Ok(Page::end(start_offset));
    }
    Ok(Page {
        rows: Rows::JsonLines(wide_page(page)),
        end_offset: serde_json::json!({"page": page + 1}).to_string(),
        checkpointable: true,
        counters: Vec::new(),
    })
}

fn rows(values: &[String]) -> Rows {
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        out.push_str(&serde_json::json!({"id": i.to_string(), "value": v}).to_string());
        out.push('\n');
    }
    Rows::JsonLines(out)
}

fn fetch(host: &dyn Host, url: &str, headers: Vec<(String, String)>) -> Result<String, String> {
    let mut request = Request::get(url);
    request.headers = headers;
    match host.send(request) {
        Ok(r) => Ok(format!(
            "status={} headers={:?} body={}",
            r.status,
            r.headers,
            String::from_utf8_lossy(&r.body)
        )),
        Err(e) => Err(e.to_string()),
    }
}

// Unbounded on purpose: the sandbox must stop it.
#[allow(unconditional_recursion)]
#[inline(never)]
fn recurse(n: u64) -> u64 {
    // The array and black_box keep each frame real.
    let frame = std::hint::black_box([n; 64]);
    recurse(frame[(n % 64) as usize] + 1) + frame[0]
}

fn observe(host: &dyn Host, options: &Options) -> Result<Vec<String>, ConnectorError> {
    let opt = |k: &str| options.get(k).cloned().unwrap_or_default();
    let target = opt("target");
    Ok(match opt("attack").as_str() {
        "none" => vec!["ok".into()],
        "fetch" => vec![fetch(host, &target, vec![]).map_err(ConnectorError::Internal)?],
        "set_auth" => vec![
            fetch(host, &opt("base_url"), vec![("Authorization".into(), "Bearer stolen".into())])
                .map_err(ConnectorError::Internal)?,
        ],
        "files" => vec![
            format!("{:?}", std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())),
            format!("{:?}", std::fs::read_dir("/").map(|d| d.count()).map_err(|e| e.to_string())),
            format!("{:?}", std::fs::read_dir(".").map(|d| d.count()).map_err(|e| e.to_string())),
            format!("{:?}", std::fs::write("/tmp/weir-hostile", "x").map_err(|e| e.to_string())),
        ],
        "env" => {
            let mut v: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
            v.extend(std::env::args());
            v.push(format!("vars={}", std::env::vars().count()));
            v
        }
        "spin" => {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "grow" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "recurse" => vec![recurse(0).to_string()],
        "big_page" => vec!["x".repeat(100 << 20)],
        "spy" => {
            let mut seen: Vec<String> = options.iter().map(|(k, v)| format!("option {k}={v}")).collect();
            seen.extend(std::env::vars().map(|(k, v)| format!("env {k}={v}")));
            seen.extend(std::env::args().map(|a| format!("arg {a}")));
            seen.push(format!("fetch {}", fetch(host, &target, vec![]).unwrap_or_else(|e| e)));
            seen
        }
        "echo_error" => {
            let answer = fetch(host, &target, vec![]).unwrap_or_else(|e| e);
            return Err(ConnectorError::Internal(format!("echo: {answer}")));
        }
        "echo_log" => {
            let answer = fetch(host, &target, vec![]).unwrap_or_else(|e| e);
            host.log(Level::Error, &format!("echo: {answer}"));
            vec!["logged".into()]
        }
        // Attacks on what the host does with the schema or metadata: the rows are ordinary.
        "many_keys" | "deep_schema" => vec!["ok".into()],
        "panic" => panic!("hostile connector panicked on purpose"),
        "sleep" => {
            std::thread::sleep(std::time::Duration::from_secs(3600));
            vec!["woke".into()]
        }
        "http_loop" => loop {
            let _ = fetch(host, &format!("{}/ok", opt("base_url")), vec![]);
        },
        "echo_decode" => {
            // What a connector could do with an echoed token: decode what the host did not
            // redact, and put together the pieces the host could not recognise one by one.
            let answer = fetch(host, &target, vec![]).unwrap_or_else(|e| e);
            let words: Vec<&str> = answer.split_whitespace().collect();
            let mut out: Vec<String> = answer
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='))
                .filter(|w| w.len() >= 8)
                .flat_map(|w| [hex_decode(w), base64_decode(w)])
                .flatten()
                .filter_map(|b| String::from_utf8(b).ok())
                .collect();
            out.push(answer.chars().rev().collect());
            out.extend(words.windows(2).map(|w| w.concat()));
            out
        }
        other => return Err(ConnectorError::InvalidOptions(format!("unknown attack {other:?}"))),
    })
}

fn attack(options: &Options) -> &str {
    options.get("attack").map_or("none", String::as_str)
}

fn target_number(options: &Options) -> usize {
    options.get("target").and_then(|t| t.parse().ok()).unwrap_or(1)
}

/// Terminal escapes and a forged line, in everything the `terminal` attack names.
const TERMINAL: &str = "t\x1b]0;owned\x07\x1b[2J\nerror: forged by the connector\u{202e}";

/// A schema of `n` nullable string columns.
fn wide_schema(n: usize) -> String {
    let fields: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"name":"c{i}","type":"string","nullable":true,"metadata":{{}}}}"#))
        .collect();
    format!(
        r#"{{"type":"struct","fields":[{{"name":"id","type":"string","nullable":true,"metadata":{{}}}},{}]}}"#,
        fields.join(",")
    )
}

/// A schema whose one column is an array nested `depth` deep.
fn deep_schema(depth: usize) -> String {
    let mut ty = r#""string""#.to_string();
    for _ in 0..depth {
        ty = format!(r#"{{"type":"array","elementType":{ty},"containsNull":true}}"#);
    }
    format!(
        r#"{{"type":"struct","fields":[{{"name":"id","type":"string","nullable":true,"metadata":{{}}}},{{"name":"deep","type":{ty},"nullable":true,"metadata":{{}}}}]}}"#
    )
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.trim_end_matches('=').bytes() {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        bits = (bits << 6) | v;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Some(out)
}

/// The `read-table` answers of the attacks that misuse paging, pages or metadata.
fn paging_attack(
    host: &dyn Host,
    options: &Options,
    start_offset: Option<&str>,
) -> Result<Option<Page>, ConnectorError> {
    let n = start_offset
        .and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok())
        .and_then(|v| v.get("n").and_then(serde_json::Value::as_u64))
        .unwrap_or(0);
    let page = |rows: Rows, end_offset: String, checkpointable: bool, counters: Vec<(String, u64)>| {
        Ok(Some(Page { rows, end_offset, checkpointable, counters }))
    };
    let next = serde_json::json!({"n": n + 1}).to_string();
    match attack(options) {
        "moving_offsets" => page(Rows::JsonLines(String::new()), next, true, Vec::new()),
        "never_checkpoint" => {
            let lines: String = (0..1000)
                .map(|i| format!("{{\"id\":\"{n}-{i}\",\"value\":\"{}\"}}\n", "x".repeat(200)))
                .collect();
            page(Rows::JsonLines(lines), next, false, Vec::new())
        }
        "ipc_page" if start_offset.is_none() => {
            let bytes = hex_decode(options.get("target").map_or("", String::as_str))
                .ok_or_else(|| ConnectorError::InvalidOptions("target must be hex".into()))?;
            page(Rows::ArrowIpc(bytes), r#"{"done":true}"#.into(), true, Vec::new())
        }
        "cells_bomb" if start_offset.is_none() => {
            page(Rows::JsonLines("{}\n".repeat(200_000)), r#"{"done":true}"#.into(), true, Vec::new())
        }
        "counter_flood" => {
            let counters = (0..150_000).map(|i| (format!("c{n}-{i}"), 1)).collect();
            page(rows(&["x".to_string()]), next, true, counters)
        }
        "counter_overflow" if n < 3 => {
            page(rows(&[format!("row {n}")]), next, true, vec![("nulled.value".into(), u64::MAX)])
        }
        "huge_offset" => {
            let offset = serde_json::json!({"n": n + 1, "pad": "x".repeat(8 << 20)}).to_string();
            page(rows(&["x".to_string()]), offset, true, Vec::new())
        }
        "log_flood" if start_offset.is_none() => {
            for i in 0..1_000_000 {
                host.log(Level::Warn, &format!("flood {i}"));
            }
            page(rows(&["flooded".to_string()]), next, true, Vec::new())
        }
        "terminal" => Err(ConnectorError::Internal(TERMINAL.into())),
        _ => Ok(None),
    }
}

impl Connector for Hostile {
    fn list_tables(_host: &dyn Host, options: &Options) -> Result<Vec<String>, ConnectorError> {
        if attack(options) == "terminal" {
            return Ok(vec!["t".into(), "wide".into(), TERMINAL.into()]);
        }
        Ok(vec!["t".into(), "wide".into()])
    }

    fn table_schema(
        _: &dyn Host,
        options: &Options,
        table: &str,
        _: &Options,
    ) -> Result<String, ConnectorError> {
        match (table, attack(options)) {
            ("t", "cells_bomb") => Ok(wide_schema(target_number(options))),
            ("t", "deep_schema") => Ok(deep_schema(target_number(options))),
            ("t", _) => Ok(SCHEMA.into()),
            ("wide", _) => Ok(WIDE_SCHEMA.into()),
            (other, _) => Err(ConnectorError::UnknownTable(other.into())),
        }
    }

    fn table_metadata(
        _: &dyn Host,
        options: &Options,
        table: &str,
        _: &Options,
    ) -> Result<TableMetadata, ConnectorError> {
        let keys = match attack(options) {
            "many_keys" => vec!["id".to_string(); target_number(options)],
            _ => vec!["id".into()],
        };
        // Attacks that page for ever read as incremental tables, so a run commits as it goes.
        let (ingestion_type, cursor_field) = match attack(options) {
            "moving_offsets" | "never_checkpoint" | "counter_flood" | "counter_overflow" | "huge_offset" => {
                (weir_connector_sdk::IngestionType::Append, None)
            }
            // Keys matter to a MERGE: upserted by them, sequenced by the value.
            "many_keys" => (weir_connector_sdk::IngestionType::Cdc, Some("value".to_string())),
            _ => (weir_connector_sdk::IngestionType::Snapshot, None),
        };
        match table {
            "t" | "wide" => Ok(TableMetadata { primary_keys: keys, cursor_field, ingestion_type }),
            other => Err(ConnectorError::UnknownTable(other.into())),
        }
    }

    fn read_table(
        host: &dyn Host,
        options: &Options,
        table: &str,
        table_options: &Options,
        start_offset: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        if table == "wide" {
            return read_wide(table_options, start_offset);
        }
        if table != "t" {
            return Err(ConnectorError::UnknownTable(table.into()));
        }
        if let Some(page) = paging_attack(host, options, start_offset)? {
            return Ok(page);
        }
        if start_offset.is_some() {
            return Ok(Page::end(start_offset));
        }
        Ok(Page {
            rows: rows(&observe(host, options)?),
            end_offset: r#"{"done":true}"#.into(),
            checkpointable: true,
            counters: Vec::new(),
        })
    }
}

#[cfg(target_arch = "wasm32")]
weir_connector_sdk::export_connector!(Hostile);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_the_calendar() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(19_723), (2024, 1, 1));
        assert_eq!(civil(19_782), (2024, 2, 29));
    }

    #[test]
    fn wide_pages_are_deterministic_and_have_every_column() {
        let page = wide_page(3);
        assert_eq!(page, wide_page(3));
        assert_ne!(page, wide_page(4));
        let rows: Vec<serde_json::Value> = page.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(rows.len() as u64, WIDE_PAGE_ROWS);
        assert_eq!(rows[0]["id"], "rec00000000000300");
        assert_eq!(rows[99]["seq"], 399);
        let schema: serde_json::Value = serde_json::from_str(WIDE_SCHEMA).unwrap();
        let columns: Vec<&str> =
            schema["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert_eq!(columns.len(), 20);
        for row in &rows {
            let keys: Vec<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, columns);
        }
    }

    #[test]
    fn wide_reads_page_by_offset_and_ends() {
        let options: Options = [("pages".to_string(), "2".to_string())].into();
        let first = read_wide(&options, None).unwrap();
        assert_eq!(first.end_offset, r#"{"page":1}"#);
        let second = read_wide(&options, Some(&first.end_offset)).unwrap();
        assert_eq!(second.rows, Rows::JsonLines(wide_page(1)));
        let end = read_wide(&options, Some(&second.end_offset)).unwrap();
        assert_eq!(
            (end.end_offset.as_str(), end.rows),
            (second.end_offset.as_str(), Rows::JsonLines(String::new()))
        );
        assert!(read_wide(&options, Some(r#"{"cursor":1}"#)).is_err());
    }
}
