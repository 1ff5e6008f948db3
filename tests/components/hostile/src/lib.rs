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

use weir_connector_sdk::{
    Connector, ConnectorError, Host, Level, Options, Page, Request, Rows, TableMetadata,
};

/// The hostile connector.
pub struct Hostile;

const SCHEMA: &str = r#"{"type":"struct","fields":[{"name":"id","type":"string","nullable":false,"metadata":{}},{"name":"value","type":"string","nullable":true,"metadata":{}}]}"#;

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
        "panic" => panic!("hostile connector panicked on purpose"),
        other => return Err(ConnectorError::InvalidOptions(format!("unknown attack {other:?}"))),
    })
}

impl Connector for Hostile {
    fn list_tables(_host: &dyn Host, _options: &Options) -> Result<Vec<String>, ConnectorError> {
        Ok(vec!["t".into()])
    }

    fn table_schema(_: &dyn Host, _: &Options, table: &str, _: &Options) -> Result<String, ConnectorError> {
        match table {
            "t" => Ok(SCHEMA.into()),
            other => Err(ConnectorError::UnknownTable(other.into())),
        }
    }

    fn table_metadata(
        _: &dyn Host,
        _: &Options,
        table: &str,
        _: &Options,
    ) -> Result<TableMetadata, ConnectorError> {
        match table {
            "t" => Ok(TableMetadata {
                primary_keys: vec!["id".into()],
                cursor_field: None,
                ingestion_type: weir_connector_sdk::IngestionType::Snapshot,
            }),
            other => Err(ConnectorError::UnknownTable(other.into())),
        }
    }

    fn read_table(
        host: &dyn Host,
        options: &Options,
        table: &str,
        _: &Options,
        start_offset: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        if table != "t" {
            return Err(ConnectorError::UnknownTable(table.into()));
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
