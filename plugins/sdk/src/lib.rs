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
//! ```ignore
//! struct MyConnector;
//! impl weir_connector_sdk::Connector for MyConnector { /* … */ }
//! weir_connector_sdk::export_connector!(MyConnector);
//! ```

use std::collections::BTreeMap;

#[cfg(target_arch = "wasm32")]
pub mod guest;

/// Connection or table options: what the guest may see (never a secret).
pub type Options = BTreeMap<String, String>;

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
    Source { status: u16, message: String },
    Internal(String),
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
}
