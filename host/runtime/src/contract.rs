//! weir's own types for what crosses the contract, whatever WIT version a component speaks.
//!
//! Each published version of `lakeflow:connect` has a binding module (`bindings::since_v*`)
//! that converts its generated types to and from these, the way Zed's extension host keeps one
//! `since_vX_Y_Z` module per API version. Everything public in the runtime speaks these types,
//! so a front end never depends on a WIT version.

use std::fmt;

/// A published version of the `lakeflow:connect` WIT package that this host serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContractVersion {
    /// `lakeflow:connect@0.1.0`: list-tables, table-schema, table-metadata, read-table, read-deletes.
    V0_1_0,
    /// `lakeflow:connect@0.2.0`: 0.1, plus namespaces, partitions, and the `unsupported-offset`
    /// and `continuity-lost` errors.
    V0_2_0,
}

impl ContractVersion {
    /// Every version this host serves, oldest first.
    pub const SUPPORTED: &[ContractVersion] = &[ContractVersion::V0_1_0, ContractVersion::V0_2_0];

    /// The newest version, which new connectors should implement.
    pub const LATEST: ContractVersion = ContractVersion::V0_2_0;

    /// The version's package id, e.g. `lakeflow:connect@0.2.0`.
    pub fn id(self) -> &'static str {
        match self {
            ContractVersion::V0_1_0 => "lakeflow:connect@0.1.0",
            ContractVersion::V0_2_0 => "lakeflow:connect@0.2.0",
        }
    }

    /// The version named by a manifest's `contract`, if this host serves it.
    pub fn parse(id: &str) -> Option<ContractVersion> {
        Self::SUPPORTED.iter().copied().find(|v| v.id() == id)
    }

    /// The package ids this host serves, comma-separated, for error messages.
    pub fn supported_list() -> String {
        Self::SUPPORTED.iter().map(|v| v.id()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// An optional part of the contract that a component declares in its manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// `list-namespaces` and `list-tables-in-namespace` (contract 0.2).
    Namespaces,
    /// `list-partitions` and `read-partition` (contract 0.2).
    Partitions,
    /// `latest-offset` and `stream-partitions` (contract 0.2).
    PartitionedStream,
}

impl Capability {
    /// The capability's name as manifests spell it.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Namespaces => "namespaces",
            Capability::Partitions => "partitions",
            Capability::PartitionedStream => "partitioned-stream",
        }
    }

    /// The first contract version that has it.
    pub fn since(self) -> ContractVersion {
        ContractVersion::V0_2_0
    }
}

/// Connection or table options, as the guest sees them (never a secret).
pub type Options = [(String, String)];

/// The table option that places a table in a namespace: the path as a JSON list of strings,
/// as upstream's Spark data source spells its `namespace` option.
pub const NAMESPACE_OPTION: &str = "namespace";

/// How the pipeline applies a table's rows (upstream `ingestion_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestionType {
    Snapshot,
    Cdc,
    CdcWithDeletes,
    Append,
}

impl IngestionType {
    /// The ingestion type as upstream spells it.
    pub fn name(self) -> &'static str {
        match self {
            IngestionType::Snapshot => "snapshot",
            IngestionType::Cdc => "cdc",
            IngestionType::CdcWithDeletes => "cdc_with_deletes",
            IngestionType::Append => "append",
        }
    }
}

impl fmt::Display for IngestionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Upstream `read_table_metadata`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableMetadata {
    pub primary_keys: Vec<String>,
    pub cursor_field: Option<String>,
    pub ingestion_type: IngestionType,
}

/// The rows of one page, as the connector wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rows {
    /// One JSON object per line, keyed by column name.
    JsonLines(String),
    /// An Arrow IPC stream in the table's schema.
    ArrowIpc(Vec<u8>),
}

impl Rows {
    /// Bytes the rows take.
    pub fn len(&self) -> usize {
        match self {
            Rows::JsonLines(s) => s.len(),
            Rows::ArrowIpc(b) => b.len(),
        }
    }

    /// Whether the page holds no bytes of rows at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One page of a paged read, as the connector returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub rows: Rows,
    /// The offset this page reaches: a JSON object.
    pub end_offset: String,
    /// False while the offset points inside a snapshot that cannot be resumed from.
    pub checkpointable: bool,
    /// Named counts for the run summary, such as `nulled.<column>`.
    pub counters: Vec<(String, u64)>,
}

/// Why a connector said a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    #[error("unknown table {0:?}; `weir tables` lists the tables")]
    UnknownTable(String),
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    #[error("authentication failed: {0}; check the connection's credentials")]
    Auth(String),
    #[error("rate limited by the source: {0}")]
    RateLimited(String),
    #[error("the source answered {status}: {message}")]
    Source { status: u16, message: String },
    #[error("connector error: {0}")]
    Internal(String),
    /// The start offset cannot be resumed by this connector version (contract 0.2).
    #[error("the connector cannot resume this offset: {0}")]
    UnsupportedOffset(String),
    /// `read-deletes` lost track of deletes; the host resynchronises (contract 0.2).
    #[error("deletes lost continuity: {reason}")]
    ContinuityLost { reason: String, resume_offset: String },
}

impl ConnectorError {
    /// The same error with every message passed through `f` (for redaction).
    pub fn map_messages(self, f: impl Fn(String) -> String) -> ConnectorError {
        use ConnectorError as E;
        match self {
            E::UnknownTable(m) => E::UnknownTable(f(m)),
            E::InvalidOptions(m) => E::InvalidOptions(f(m)),
            E::Auth(m) => E::Auth(f(m)),
            E::RateLimited(m) => E::RateLimited(f(m)),
            E::Source { status, message } => E::Source { status, message: f(message) },
            E::Internal(m) => E::Internal(f(m)),
            E::UnsupportedOffset(m) => E::UnsupportedOffset(f(m)),
            E::ContinuityLost { reason, resume_offset } => {
                E::ContinuityLost { reason: f(reason), resume_offset }
            }
        }
    }
}

/// An outbound HTTP request from a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// An HTTP response as the gate hands it to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why the gate did not deliver a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The capability gate refused the request; nothing was sent.
    #[error("denied: {0}")]
    Denied(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("connection failed: {0}")]
    Connection(String),
    /// The response body exceeded the host's cap, in bytes.
    #[error("response body larger than {0} bytes")]
    BodyTooLarge(u64),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

/// A guest log line's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl serde::Serialize for ContractVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

impl<'de> serde::Deserialize<'de> for ContractVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = String::deserialize(d)?;
        ContractVersion::parse(&id).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "contract {id:?} is not served by this host (it serves {})",
                ContractVersion::supported_list()
            ))
        })
    }
}
