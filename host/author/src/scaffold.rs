//! `weir new connector NAME`: a Rust connector crate on the guest SDK that builds, packages and
//! passes `weir test` offline as it stands, against a cassette of a small JSON API.
//!
//! The example API is `GET {base_url}/items?page=N`, answering
//! `{"items": [{"id", "name", "updated_at"}], "next_page": N or null}`, with the token sent by
//! the host as `Authorization: Bearer …`. The crate holds:
//!
//! | file | what it is |
//! |---|---|
//! | `Cargo.toml` | a `cdylib` on `weir-connector-sdk` (contract 0.2), its own workspace |
//! | `manifest.toml` | name, contract, parameters (`token` is secret), the allowed origin, how the host authenticates |
//! | `src/lib.rs` | the connector: one table, `items`, paged by `{"page": N}` offsets |
//! | `connections.toml` | a connection to the example API, the token from `<NAME>_TOKEN` |
//! | `fixtures/<name>.cassette` | the API's two pages, for `weir test --replay` |
//! | `README.md` | the three commands that build, test and run it |

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::AuthorError;

/// The example API's origin in the scaffold's connection and cassette.
pub const EXAMPLE_ORIGIN: &str = "https://api.example.com";

/// Writes a new connector crate into `parent/name`, with `sdk` as the path of
/// `weir-connector-sdk`; returns the files written. Refuses to touch an existing folder.
pub fn new_connector(parent: &Path, name: &str, sdk: &Path) -> Result<Vec<PathBuf>, AuthorError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(AuthorError::Invalid(format!(
            "connector name {name:?} must start with a lowercase letter and hold only a-z, 0-9, - and _ \
             (at most 64), since it names the crate, the manifest and the connection"
        )));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(AuthorError::Invalid(format!(
            "{} exists already; choose another name or folder",
            dir.display()
        )));
    }
    let io = |path: &Path, error| AuthorError::Io { path: path.to_path_buf(), error };
    let sdk = std::path::absolute(sdk).map_err(|e| io(sdk, e))?;
    let type_name: String = name
        .split(['-', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| p[..1].to_ascii_uppercase() + &p[1..])
        .collect::<String>()
        + "Connector";
    let env_var = format!("{}_TOKEN", name.to_ascii_uppercase().replace('-', "_"));
    let files = [
        ("Cargo.toml", cargo_toml(name, &sdk)),
        ("manifest.toml", manifest_toml(name)),
        ("src/lib.rs", LIB_RS.replace("{{TYPE}}", &type_name).replace("{{NAME}}", name)),
        ("connections.toml", connections_toml(name, &env_var)),
        (&format!("fixtures/{name}.cassette") as &str, cassette()),
        ("README.md", readme(name, &env_var)),
        (".gitignore", "/target\nCargo.lock\n".to_string()),
    ];
    let mut written = Vec::new();
    for (file, text) in files {
        let path = dir.join(file);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(|e| io(folder, e))?;
        }
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

fn cargo_toml(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# A connector is a library that wasm32-wasip2's linker turns into a component.
[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
# `v0_2` exports contract lakeflow:connect@0.2.0, as manifest.toml says.
weir-connector-sdk = {{ path = {sdk:?}, features = ["v0_2"] }}
serde_json = "1"

# Small and fast guests, as weir builds its own.
[profile.release]
opt-level = "s"
codegen-units = 1
strip = true
panic = "abort"

# Its own workspace, wherever the folder lies.
[workspace]
"#,
        sdk = sdk.to_string_lossy()
    )
}

fn manifest_toml(name: &str) -> String {
    format!(
        r#"# What the host needs to know before it runs the component; `weir build` embeds it.
name = "{name}"
version = "0.1.0"
contract = "lakeflow:connect@0.2.0"
description = "Items from an example JSON API (written by weir new)"

# The host keeps secret parameters: the guest never sees them, the gate injects them.
[[parameters]]
name = "token"
required = true
secret = true
description = "the API token, sent by the host as a bearer token"

[[parameters]]
name = "base_url"
default = "{EXAMPLE_ORIGIN}"
description = "the API's origin"

# The only origins the component may reach.
[network]
allow = ["{{base_url}}"]

# How the host authenticates requests to an origin.
[[auth]]
origin = "{{base_url}}"
header = "Authorization"
value = "Bearer {{token}}"

# The source's limit: the host spaces requests evenly to stay under it.
[[rate_limits]]
key = "api"
per_second = 10
"#
    )
}

fn connections_toml(name: &str, env_var: &str) -> String {
    format!(
        r#"# A connection to the example API. `weir test --replay fixtures/{name}.cassette` needs no token.
[connections.{name}]
connector = "target/weir/{name}.wasm"   # what `weir build` writes
allow_unsigned = true                    # your own build; sign it to share it (weir sign)
base_url = "{EXAMPLE_ORIGIN}"
token = {{ env = "{env_var}" }}
"#
    )
}

fn cassette() -> String {
    let page = |n: u64, items: serde_json::Value, next: serde_json::Value| {
        json!({
            "request": {"method": "GET", "url": format!("{EXAMPLE_ORIGIN}/items?page={n}"),
                        "headers": [["accept", "application/json"]]},
            "response": {"status": 200, "headers": [["content-type", "application/json"]],
                         "json": {"items": items, "next_page": next}}
        })
    };
    let records = [
        json!({"cassette": "weir", "version": 1, "clock_ms": 1_767_225_600_000u64}),
        page(
            1,
            json!([
                {"id": "itm1", "name": "First item", "updated_at": "2026-01-01T09:00:00.000Z"},
                {"id": "itm2", "name": "Second item", "updated_at": "2026-01-02T09:30:00.000Z"}
            ]),
            json!(2),
        ),
        page(
            2,
            json!([{"id": "itm3", "name": "Third item", "updated_at": "2026-01-03T11:15:00.000Z"}]),
            json!(null),
        ),
    ];
    records.iter().map(|r| serde_json::to_string_pretty(r).unwrap_or_default() + "\n\n").collect()
}

fn readme(name: &str, env_var: &str) -> String {
    format!(
        r#"# {name}

A weir connector, written by `weir new connector {name}`.

```sh
weir build                                        # target/weir/{name}.wasm, manifest embedded and checked
weir test --replay fixtures/{name}.cassette       # the conformance suite, offline
{env_var}=… weir test --record fixtures/{name}.cassette   # against the real API, recording it
```

Edit `src/lib.rs` (one function per contract call; the SDK's docs have an example for each)
and `manifest.toml` (origins, parameters, auth, rate limits), then build and test again.
"#
    )
}

const LIB_RS: &str = r##"//! The {{NAME}} connector: table `items` of an example JSON API,
//! `GET {base_url}/items?page=N` → `{"items": [...], "next_page": N | null}`.
//!
//! A connector is stateless between calls: everything it needs to go on is in the offset it
//! returns. It never sees the token: the host adds `Authorization` to every request.

use serde_json::{Value, json};
use weir_connector_sdk::{
    Connector, ConnectorError, Host, IngestionType, Options, Page, Request, Rows, TableMetadata,
};

pub struct {{TYPE}};

const TABLES: &[&str] = &["items"];

/// Spark's JSON schema of `items`.
const ITEMS_SCHEMA: &str = r#"{"type":"struct","fields":[
  {"name":"id","type":"string","nullable":false,"metadata":{}},
  {"name":"name","type":"string","nullable":true,"metadata":{}},
  {"name":"updated_at","type":"timestamp","nullable":true,"metadata":{}}]}"#;

fn known(table: &str) -> Result<(), ConnectorError> {
    if TABLES.contains(&table) { Ok(()) } else { Err(ConnectorError::UnknownTable(table.to_string())) }
}

fn base_url(options: &Options) -> Result<&str, ConnectorError> {
    options
        .get("base_url")
        .map(|u| u.trim_end_matches('/'))
        .ok_or_else(|| ConnectorError::InvalidOptions("base_url is missing".into()))
}

impl Connector for {{TYPE}} {
    fn list_tables(_host: &dyn Host, _options: &Options) -> Result<Vec<String>, ConnectorError> {
        Ok(TABLES.iter().map(|t| t.to_string()).collect())
    }

    fn table_schema(
        _host: &dyn Host,
        _options: &Options,
        table: &str,
        _table_options: &Options,
    ) -> Result<String, ConnectorError> {
        known(table)?;
        Ok(ITEMS_SCHEMA.to_string())
    }

    fn table_metadata(
        _host: &dyn Host,
        _options: &Options,
        table: &str,
        _table_options: &Options,
    ) -> Result<TableMetadata, ConnectorError> {
        known(table)?;
        Ok(TableMetadata {
            primary_keys: vec!["id".into()],
            cursor_field: None,
            ingestion_type: IngestionType::Snapshot,
        })
    }

    fn read_table(
        host: &dyn Host,
        options: &Options,
        table: &str,
        _table_options: &Options,
        start_offset: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        known(table)?;
        let start: Value = match start_offset {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| ConnectorError::Internal(format!("offset {text:?} is not JSON: {e}")))?,
            None => json!({}),
        };
        if start.get("done") == Some(&Value::Bool(true)) {
            // The read is over: handing the start offset back ends it.
            return Ok(Page::end(start_offset));
        }
        let page = start.get("page").and_then(Value::as_u64).unwrap_or(1);
        let url = format!("{}/items?page={page}", base_url(options)?);
        let mut request = Request::get(url);
        request.headers.push(("accept".into(), "application/json".into()));
        let response = host.send(request)?;
        match response.status {
            200 => {}
            401 | 403 => return Err(ConnectorError::Auth(format!("the API answered {}", response.status))),
            status => {
                let message = String::from_utf8_lossy(&response.body).chars().take(200).collect();
                return Err(ConnectorError::Source { status, message });
            }
        }
        let body: Value = serde_json::from_slice(&response.body)
            .map_err(|e| ConnectorError::Internal(format!("the API's answer is not JSON: {e}")))?;
        let items = body["items"]
            .as_array()
            .ok_or_else(|| ConnectorError::Internal("the API's answer has no items list".into()))?;
        let mut lines = String::new();
        for item in items {
            let row = json!({"id": item["id"], "name": item["name"], "updated_at": item["updated_at"]});
            lines.push_str(&row.to_string());
            lines.push('\n');
        }
        let end = match body.get("next_page").and_then(Value::as_u64) {
            Some(next) => json!({"page": next}),
            None => json!({"page": page, "done": true}),
        };
        Ok(Page { rows: Rows::JsonLines(lines), end_offset: end.to_string(), checkpointable: true, counters: Vec::new() })
    }

    fn read_deletes(
        _host: &dyn Host,
        _options: &Options,
        table: &str,
        _table_options: &Options,
        start_offset: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        // No deletes: the read ends at once.
        known(table)?;
        Ok(Page::end(start_offset))
    }
}

// The component's exports; native builds (unit tests) have none.
#[cfg(target_arch = "wasm32")]
weir_connector_sdk::export_connector!({{TYPE}});
"##;
