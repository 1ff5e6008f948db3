//! Guest-side types and glue for weir connectors.
//!
//! A connector is plain Rust: it implements [`Connector`] over a [`Host`] that sends
//! HTTP requests and logs. The same code then runs in two places:
//!
//! - inside the wasmtime sandbox, where [`export_connector!`] binds it to the
//!   `lakeflow:connect` WIT world and the host serves [`Host`] through its gates;
//! - natively, for unit tests and for benchmarks that compare with and without the
//!   sandbox, with any [`Host`] the caller provides.
//!
//! `weir new connector NAME` writes a crate that builds, packages and passes `weir test` as
//! it stands; the example below shows every contract function, each as small as it can be (a
//! source with one namespace, `shop`, holding table `orders`, split into two partitions), and
//! runs as a doc test against a [`Host`] that answers from memory.
//!
//! ```
//! use weir_connector_sdk::{
//!     Connector, ConnectorError, Host, HttpError, IngestionType, Level, Options, Page, Request,
//!     Response, Rows, TableMetadata,
//! };
//!
//! struct Shop;
//!
//! fn known(table: &str) -> Result<(), ConnectorError> {
//!     if table == "orders" { Ok(()) } else { Err(ConnectorError::UnknownTable(table.into())) }
//! }
//!
//! impl Connector for Shop {
//!     // Upstream `list_tables`: the root's tables.
//!     fn list_tables(_: &dyn Host, _: &Options) -> Result<Vec<String>, ConnectorError> {
//!         Ok(vec!["orders".into()])
//!     }
//!
//!     // Upstream `get_table_schema`: Spark's JSON schema.
//!     fn table_schema(_: &dyn Host, _: &Options, table: &str, _: &Options) -> Result<String, ConnectorError> {
//!         known(table)?;
//!         Ok(r#"{"type":"struct","fields":[
//!             {"name":"id","type":"long","nullable":false,"metadata":{}},
//!             {"name":"updated_at","type":"timestamp","nullable":true,"metadata":{}}]}"#.into())
//!     }
//!
//!     // Upstream `read_table_metadata`: keys, cursor, ingestion type.
//!     fn table_metadata(_: &dyn Host, _: &Options, table: &str, _: &Options) -> Result<TableMetadata, ConnectorError> {
//!         known(table)?;
//!         Ok(TableMetadata {
//!             primary_keys: vec!["id".into()],
//!             cursor_field: Some("updated_at".into()),
//!             ingestion_type: IngestionType::CdcWithDeletes,
//!         })
//!     }
//!
//!     // Upstream `read_table`: one page from an offset; the read ends when the end offset
//!     // equals the start offset.
//!     fn read_table(host: &dyn Host, options: &Options, table: &str, _: &Options, start: Option<&str>)
//!         -> Result<Page, ConnectorError> {
//!         known(table)?;
//!         if start == Some(r#"{"page":2}"#) {
//!             return Ok(Page::end(start));
//!         }
//!         let base = options.get("base_url").map(String::as_str).unwrap_or("https://shop.example");
//!         let response = host.send(Request::get(format!("{base}/orders")))?;
//!         Ok(Page {
//!             rows: Rows::JsonLines(String::from_utf8_lossy(&response.body).into_owned()),
//!             end_offset: r#"{"page":2}"#.into(),
//!             checkpointable: true,
//!             counters: vec![("pages".into(), 1)],
//!         })
//!     }
//!
//!     // Tombstones of a cdc_with_deletes table: the keys, and the cursor set to when.
//!     fn read_deletes(_: &dyn Host, _: &Options, table: &str, _: &Options, start: Option<&str>)
//!         -> Result<Page, ConnectorError> {
//!         known(table)?;
//!         if start.is_some() {
//!             return Ok(Page::end(start));
//!         }
//!         let gone = r#"{"id": 7, "updated_at": "2026-01-05T00:00:00Z"}"#;
//!         Ok(Page { rows: Rows::JsonLines(gone.into()), end_offset: r#"{"deletes":1}"#.into(), checkpointable: true, counters: vec![] })
//!     }
//!
//!     // Capability `namespaces`: one level below `prefix`, each as its full path.
//!     fn list_namespaces(_: &dyn Host, _: &Options, prefix: &[String]) -> Result<Vec<Vec<String>>, ConnectorError> {
//!         Ok(if prefix.is_empty() { vec![vec!["shop".into()]] } else { vec![] })
//!     }
//!
//!     // Capability `namespaces`: the tables of one namespace (the root's when empty).
//!     fn list_tables_in_namespace(_: &dyn Host, _: &Options, namespace: &[String]) -> Result<Vec<String>, ConnectorError> {
//!         Ok(if namespace == ["shop"] { vec!["orders".into()] } else { vec![] })
//!     }
//!
//!     // Capability `partitions`: stable JSON objects the host reads concurrently.
//!     fn list_partitions(_: &dyn Host, _: &Options, table: &str, _: &Options) -> Result<Vec<String>, ConnectorError> {
//!         known(table)?;
//!         Ok(vec![r#"{"shard":0}"#.into(), r#"{"shard":1}"#.into()])
//!     }
//!
//!     // Capability `partitions`: one page of one partition, paged like read_table.
//!     fn read_partition(_: &dyn Host, _: &Options, table: &str, _: &Options, partition: &str, start: Option<&str>)
//!         -> Result<Page, ConnectorError> {
//!         known(table)?;
//!         if start.is_some() {
//!             return Ok(Page::end(start));
//!         }
//!         let id = if partition.contains('0') { 10 } else { 11 };
//!         Ok(Page { rows: Rows::JsonLines(format!("{{\"id\":{id}}}\n")), end_offset: r#"{"done":true}"#.into(), checkpointable: true, counters: vec![] })
//!     }
//!
//!     // Capability `partitioned-stream`: how far the source has got now.
//!     fn latest_offset(_: &dyn Host, _: &Options, table: &str, _: &Options, _: Option<&str>) -> Result<String, ConnectorError> {
//!         known(table)?;
//!         Ok(r#"{"seq":42}"#.into())
//!     }
//!
//!     // Capability `partitioned-stream`: the partitions between two offsets, none when equal.
//!     fn stream_partitions(_: &dyn Host, _: &Options, table: &str, _: &Options, start: Option<&str>, end: &str)
//!         -> Result<Vec<String>, ConnectorError> {
//!         known(table)?;
//!         Ok(if start == Some(end) { vec![] } else { vec![format!(r#"{{"upto":{end}}}"#)] })
//!     }
//! }
//!
//! // In a component: `#[cfg(target_arch = "wasm32")] weir_connector_sdk::export_connector!(Shop);`
//!
//! /// A host that answers every request from memory, as a unit test's would.
//! struct Canned;
//! impl Host for Canned {
//!     fn send(&self, request: Request) -> Result<Response, HttpError> {
//!         assert_eq!(request.url, "https://shop.example/orders");
//!         Ok(Response { status: 200, headers: vec![], body: b"{\"id\":1,\"updated_at\":null}\n".to_vec() })
//!     }
//!     fn log(&self, _: Level, _: &str) {}
//! }
//!
//! let options = Options::new();
//! let first = Shop::read_table(&Canned, &options, "orders", &options, None).unwrap();
//! let last = Shop::read_table(&Canned, &options, "orders", &options, Some(&first.end_offset)).unwrap();
//! assert_eq!(last.end_offset, first.end_offset, "the read ends");
//! assert!(matches!(Shop::table_schema(&Canned, &options, "nope", &options), Err(ConnectorError::UnknownTable(_))));
//! assert_eq!(Shop::list_partitions(&Canned, &options, "orders", &options).unwrap().len(), 2);
//! ```
//!
//! A connector picks the contract it exports with one cargo feature: `v0_2` (namespaces,
//! partitions, and the `unsupported-offset` and `continuity-lost` errors) or `v0_1`. The
//! [`Connector`] trait is the same for both: what 0.2 adds are methods with defaults, so a
//! 0.1 connector's code builds unchanged, and a 0.2 connector overrides what its manifest's
//! `capabilities` declare.

use std::collections::BTreeMap;

pub mod decimal;
#[cfg(target_arch = "wasm32")]
pub mod guest;

/// Connection or table options: what the guest may see (never a secret).
pub type Options = BTreeMap<String, String>;

/// The table option that places a table in a namespace (contract 0.2): the namespace path as a
/// JSON list of strings, e.g. `["appX"]`, as upstream's Spark data source spells it.
pub const NAMESPACE_OPTION: &str = "namespace";

/// The namespace path a table's options name; empty for a root-level table.
pub fn namespace(table_options: &Options) -> Result<Vec<String>, ConnectorError> {
    match table_options.get(NAMESPACE_OPTION).map(|v| v.trim()) {
        None | Some("") => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text).map_err(|_| {
            ConnectorError::InvalidOptions(format!(
                "table option {NAMESPACE_OPTION:?} must be a JSON list of strings such as [\"a\"], got {text:?}"
            ))
        }),
    }
}

/// An outbound HTTP request. The host adds credentials; the guest never has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl Request {
    /// A GET request with no headers.
    pub fn get(url: impl Into<String>) -> Self {
        Request { method: "GET".into(), url: url.into(), headers: Vec::new(), body: None }
    }

    /// A POST request carrying a JSON body.
    pub fn post_json(url: impl Into<String>, body: &serde_json::Value) -> Self {
        Request {
            method: "POST".into(),
            url: url.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(body.to_string().into_bytes()),
        }
    }
}

/// An HTTP response as the host received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why the host could not deliver a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The capability gate refused the request; nothing was sent.
    Denied(String),
    Timeout(String),
    Connection(String),
    /// The response body exceeded the host's cap, in bytes.
    BodyTooLarge(u64),
    InvalidRequest(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Denied(m) => write!(f, "request denied by the host: {m}"),
            HttpError::Timeout(m) => write!(f, "request timed out: {m}"),
            HttpError::Connection(m) => write!(f, "connection failed: {m}"),
            HttpError::BodyTooLarge(n) => write!(f, "response body larger than the host's cap of {n} bytes"),
            HttpError::InvalidRequest(m) => write!(f, "invalid request: {m}"),
        }
    }
}

/// Log levels, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// What the host offers a connector: HTTP through its gates, and its log.
pub trait Host {
    /// Sends one request; the host paces, retries and authenticates it.
    fn send(&self, request: Request) -> Result<Response, HttpError>;
    /// Writes a line to the host's log.
    fn log(&self, level: Level, message: &str);
}

/// Upstream `ingestion_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestionType {
    Snapshot,
    Cdc,
    CdcWithDeletes,
    Append,
}

/// Upstream `read_table_metadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMetadata {
    pub primary_keys: Vec<String>,
    pub cursor_field: Option<String>,
    pub ingestion_type: IngestionType,
}

/// The rows of one page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rows {
    /// One JSON object per line, keyed by column name.
    JsonLines(String),
    /// An Arrow IPC stream in the table's schema.
    ArrowIpc(Vec<u8>),
}

/// One page of a paged read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub rows: Rows,
    /// The offset reached, a JSON object; equal to the start offset when exhausted.
    pub end_offset: String,
    /// False while the offset points inside a snapshot that cannot be resumed.
    pub checkpointable: bool,
    /// Named counts the host sums per table for the run summary, e.g. `nulled.<column>`.
    pub counters: Vec<(String, u64)>,
}

impl Page {
    /// The page that ends a read: no rows, and the start offset handed back.
    pub fn end(start_offset: Option<&str>) -> Page {
        Page {
            rows: Rows::JsonLines(String::new()),
            end_offset: start_offset.unwrap_or("{}").to_string(),
            checkpointable: true,
            counters: Vec::new(),
        }
    }
}

/// Why a connector call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorError {
    UnknownTable(String),
    InvalidOptions(String),
    Auth(String),
    RateLimited(String),
    Source {
        status: u16,
        message: String,
    },
    Internal(String),
    /// The start offset cannot be resumed by this connector (another version wrote it); the
    /// host restarts the table from the beginning. Contract 0.2; a 0.1 component reports it as
    /// an internal error.
    UnsupportedOffset(String),
    /// `read_deletes` cannot say what was deleted since its start offset; the host re-reads the
    /// whole table and removes the keys it no longer sees, then continues deletes from
    /// `resume_offset`. Contract 0.2; a 0.1 component reports it as an internal error.
    ContinuityLost {
        reason: String,
        resume_offset: String,
    },
}

impl std::fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectorError::UnknownTable(t) => write!(f, "unknown table {t:?}"),
            ConnectorError::InvalidOptions(m) => write!(f, "invalid options: {m}"),
            ConnectorError::Auth(m) => write!(f, "authentication failed: {m}"),
            ConnectorError::RateLimited(m) => write!(f, "rate limited: {m}"),
            ConnectorError::Source { status, message } => write!(f, "source answered {status}: {message}"),
            ConnectorError::Internal(m) => write!(f, "internal error: {m}"),
            ConnectorError::UnsupportedOffset(m) => write!(f, "cannot resume the offset: {m}"),
            ConnectorError::ContinuityLost { reason, .. } => write!(f, "deletes lost continuity: {reason}"),
        }
    }
}

impl std::error::Error for ConnectorError {}

impl From<HttpError> for ConnectorError {
    fn from(e: HttpError) -> Self {
        ConnectorError::Internal(e.to_string())
    }
}

/// A Lakeflow connector (upstream `LakeflowConnect`), stateless between calls.
pub trait Connector {
    fn list_tables(host: &dyn Host, options: &Options) -> Result<Vec<String>, ConnectorError>;

    /// The table's schema as Spark's JSON schema string.
    fn table_schema(
        host: &dyn Host,
        options: &Options,
        table: &str,
        table_options: &Options,
    ) -> Result<String, ConnectorError>;

    fn table_metadata(
        host: &dyn Host,
        options: &Options,
        table: &str,
        table_options: &Options,
    ) -> Result<TableMetadata, ConnectorError>;

    /// One page from `start_offset` (None on the first call).
    fn read_table(
        host: &dyn Host,
        options: &Options,
        table: &str,
        table_options: &Options,
        start_offset: Option<&str>,
    ) -> Result<Page, ConnectorError>;

    /// Tombstones for `cdc_with_deletes` tables; connectors without deletes end at once.
    fn read_deletes(
        _host: &dyn Host,
        _options: &Options,
        _table: &str,
        _table_options: &Options,
        start_offset: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        Ok(Page::end(start_offset))
    }

    /// Capability `namespaces` (contract 0.2), upstream `list_namespaces`: the namespaces one
    /// level below `prefix` (empty: the root's), each as its full path.
    fn list_namespaces(
        _host: &dyn Host,
        _options: &Options,
        _prefix: &[String],
    ) -> Result<Vec<Vec<String>>, ConnectorError> {
        Ok(Vec::new())
    }

    /// Capability `namespaces` (contract 0.2), upstream `list_tables_in_namespace`; the empty
    /// namespace holds the root-level tables, which is all a connector without namespaces has.
    fn list_tables_in_namespace(
        host: &dyn Host,
        options: &Options,
        namespace: &[String],
    ) -> Result<Vec<String>, ConnectorError> {
        if namespace.is_empty() {
            Self::list_tables(host, options)
        } else {
            Err(ConnectorError::InvalidOptions(format!("this connector has no namespace {namespace:?}")))
        }
    }

    /// Capability `partitions` (contract 0.2), upstream `get_partitions`: opaque JSON objects,
    /// the same on every call for the same table and options.
    fn list_partitions(
        _host: &dyn Host,
        _options: &Options,
        table: &str,
        _table_options: &Options,
    ) -> Result<Vec<String>, ConnectorError> {
        Err(unsupported("partitions", table))
    }

    /// Capability `partitions` (contract 0.2), upstream `read_partition`, paged like `read_table`.
    fn read_partition(
        _host: &dyn Host,
        _options: &Options,
        table: &str,
        _table_options: &Options,
        _partition: &str,
        _start_offset: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        Err(unsupported("partitions", table))
    }

    /// Capability `partitioned-stream` (contract 0.2), upstream `latest_offset`.
    fn latest_offset(
        _host: &dyn Host,
        _options: &Options,
        table: &str,
        _table_options: &Options,
        _start_offset: Option<&str>,
    ) -> Result<String, ConnectorError> {
        Err(unsupported("partitioned-stream", table))
    }

    /// Capability `partitioned-stream` (contract 0.2), upstream `get_partitions(start, end)`:
    /// none when the offsets are equal.
    fn stream_partitions(
        _host: &dyn Host,
        _options: &Options,
        table: &str,
        _table_options: &Options,
        _start_offset: Option<&str>,
        _end_offset: &str,
    ) -> Result<Vec<String>, ConnectorError> {
        Err(unsupported("partitioned-stream", table))
    }
}

fn unsupported(capability: &str, table: &str) -> ConnectorError {
    ConnectorError::Internal(format!("table {table:?}: this connector does not implement {capability}"))
}
