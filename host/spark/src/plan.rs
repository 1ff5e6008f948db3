//! A read's plan: which connector, which connection, which table, and how; resolved once on the
//! driver, then carried to every Python worker as configuration ([`Plan::to_wire`]).
//!
//! What crosses to the workers is the connector's reference (a bundled name, or the component's
//! bytes when it came from a path: a worker need not see the driver's files), the connection's
//! resolved parameters (secrets included: a worker must authenticate, and Spark already carries
//! them in the read's options), the limits and retries, the table and its options. Never a
//! runtime, an instance or a socket: each worker builds its runtime once, lazily
//! ([`runtime`]), and loads components through its own compile cache.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use weir_runtime::connection::ConnectionsFile;
use weir_runtime::manifest::{Limits, Retry};
use weir_runtime::{
    CallError, Capability, Connection, ConnectionSpec, LoadedConnector, Runtime, RuntimeConfig, Session,
};

use crate::options::{self, OptionsError, SplitOptions};

/// The upstream virtual tables.
pub const METADATA_TABLE: &str = "_community_table_metadata";
pub const NAMESPACES_TABLE: &str = "_community_namespaces";
pub const TABLES_TABLE: &str = "_community_tables";
pub const VIRTUAL_TABLES: &[&str] = &[METADATA_TABLE, NAMESPACES_TABLE, TABLES_TABLE];

/// Why a plan cannot be made or used.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A bad option, connection or connector reference.
    #[error("lakeflow_connect: {0}")]
    Options(String),
    /// A call into the connector failed; it names the connector, the call and the table.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The runtime could not start here.
    #[error("lakeflow_connect: {0}")]
    Runtime(String),
}

impl From<OptionsError> for PlanError {
    fn from(e: OptionsError) -> Self {
        PlanError::Options(e.0)
    }
}

/// The component a plan runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Component {
    /// A connector bundled in the package, by name.
    Bundled(String),
    /// A component read from a path on the driver (the path is kept for messages only).
    Bytes { path: String, bytes: Vec<u8> },
}

/// What is pickled: configuration only.
#[derive(Clone, Serialize, Deserialize)]
pub struct Wire {
    pub component: Component,
    pub connection_name: String,
    /// The connection's parameters, secrets included, by the manifest's names.
    pub parameters: BTreeMap<String, String>,
    pub allow_loopback: bool,
    pub limits: Limits,
    pub retry: Retry,
    /// The table, None when the read names none (it must, except to list tables).
    pub table: Option<String>,
    pub table_options: Vec<(String, String)>,
    pub delete_flow: bool,
    pub reserved: BTreeMap<String, String>,
}

/// A resolved read.
#[derive(Clone)]
pub struct Plan {
    pub wire: Wire,
    pub connector: LoadedConnector,
    pub connection: Connection,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The process's runtime, built on first use with the default compile cache.
pub fn runtime() -> Result<&'static Runtime, PlanError> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| Runtime::new(RuntimeConfig::with_default_cache()).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| PlanError::Runtime(e.clone()))
}

/// Loads a component once per process, by its digest.
fn load(bytes: &[u8]) -> Result<LoadedConnector, PlanError> {
    static LOADED: OnceLock<Mutex<HashMap<String, LoadedConnector>>> = OnceLock::new();
    let digest = weir_runtime::http::sha256_hex(bytes);
    let cache = LOADED.get_or_init(Mutex::default);
    if let Some(found) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&digest) {
        return Ok(found.clone());
    }
    let loaded = runtime()?.load(bytes).map_err(|e| PlanError::Options(e.to_string()))?;
    cache.lock().unwrap_or_else(|p| p.into_inner()).insert(digest, loaded.clone());
    Ok(loaded)
}

impl Component {
    /// What a connector reference names, checked as every front end checks it (a path must be
    /// signed by a trusted key unless unsigned connectors are allowed), read now on the driver:
    /// the executors get the verified bytes.
    fn resolve(reference: &str, relative_to: &Path, allow_unsigned: bool) -> Result<Component, PlanError> {
        let loaded =
            weir_vet::component::load(&weir_vet::weir_home(), reference, relative_to, allow_unsigned)
                .map_err(|e| PlanError::Options(e.to_string()))?;
        Ok(match loaded.origin {
            weir_vet::component::Origin::Bundled { name } => Component::Bundled(name),
            _ => Component::Bytes { path: reference.to_string(), bytes: loaded.bytes.into_owned() },
        })
    }

    fn bytes(&self) -> Result<&[u8], PlanError> {
        match self {
            Component::Bundled(name) => {
                weir_artifacts::BUNDLED.iter().find(|(n, _)| n == name).map(|(_, b)| *b).ok_or_else(|| {
                    PlanError::Options(format!("connector {name:?} is not bundled in this package"))
                })
            }
            Component::Bytes { bytes, .. } => Ok(bytes),
        }
    }
}

impl Plan {
    /// Resolves the options of a read on the driver: the connector, the connection (from the
    /// options, or from a connections file), the table and its options.
    pub fn new(given: &BTreeMap<String, String>) -> Result<Plan, PlanError> {
        let (mut split, rest) = SplitOptions::reserved(given)?;
        let delete_flow = split.flag(options::IS_DELETE_FLOW)?;
        split.count(options::MAX_PAGES)?;
        split.count(options::MAX_ROWS)?;
        split.rate_share()?;
        let table = split.get(options::TABLE_NAME).map(str::to_string);
        if let Some(t) = &table
            && t.starts_with("_community_")
            && !VIRTUAL_TABLES.contains(&t.as_str())
        {
            return Err(PlanError::Options(format!(
                "unknown virtual table {t:?}; the virtual tables are {}",
                VIRTUAL_TABLES.join(", ")
            )));
        }
        let reference = split.get(options::SOURCE_NAME).or(split.get(options::CONNECTOR)).map(str::to_string);
        let allow_unsigned = split.flag(options::ALLOW_UNSIGNED)?;
        let (component, spec_from_file) = match reference {
            Some(reference) => (Component::resolve(&reference, Path::new("."), allow_unsigned)?, None),
            None => {
                let (file, spec) = connection_from_file(&split)?;
                let base = file.path.parent().map(Path::to_path_buf).unwrap_or_default();
                let allow = allow_unsigned || spec.allow_unsigned;
                (Component::resolve(&spec.connector, &base, allow)?, Some(spec))
            }
        };
        let connector = load(component.bytes()?)?;
        split.assign(&connector.manifest, rest);
        let name = split
            .get(options::DATABRICKS_CONNECTION)
            .or(split.get(options::CONNECTION_NAME))
            .unwrap_or("spark")
            .to_string();
        let spec = match spec_from_file {
            Some(spec) => {
                if let Some(key) = split.connection.keys().next() {
                    return Err(PlanError::Options(format!(
                        "option {key:?} is a parameter of connection {:?}, which the connections file \
                         defines: set it there, or give the connection's options instead of the file",
                        spec.name
                    )));
                }
                spec
            }
            None => ConnectionSpec::from_options(
                &name,
                &reference_name(&component),
                &connector.manifest,
                split.connection.clone(),
            )
            .map_err(|e| PlanError::Options(e.to_string()))?,
        };
        let connection = spec.resolve(&connector.manifest).map_err(|e| PlanError::Options(e.to_string()))?;
        let mut parameters = connection.options.clone();
        for p in connector.manifest.parameters.iter().filter(|p| p.secret) {
            if let Some(value) = connection.secrets.get(&p.name) {
                parameters.insert(p.name.clone(), value.to_string());
            }
        }
        let wire = Wire {
            component,
            connection_name: connection.name.clone(),
            parameters,
            allow_loopback: connection.allow_loopback,
            limits: connection.limits.clone(),
            retry: connection.retry.clone(),
            table,
            table_options: split.table.clone().into_iter().collect(),
            delete_flow,
            reserved: split.reserved.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        };
        Ok(Plan { wire, connector, connection })
    }

    /// Rebuilds a plan from what was pickled, in a worker.
    pub fn from_wire(wire: Wire) -> Result<Plan, PlanError> {
        let connector = load(wire.component.bytes()?)?;
        let mut values: Vec<(String, String)> = wire.parameters.clone().into_iter().collect();
        values.push((options::ALLOW_LOOPBACK.to_string(), wire.allow_loopback.to_string()));
        let spec = ConnectionSpec::from_options(
            &wire.connection_name,
            &reference_name(&wire.component),
            &connector.manifest,
            values,
        )
        .map_err(|e| PlanError::Options(e.to_string()))?;
        let mut connection =
            spec.resolve(&connector.manifest).map_err(|e| PlanError::Options(e.to_string()))?;
        connection.limits = wire.limits.clone();
        connection.retry = wire.retry.clone();
        Ok(Plan { wire, connector, connection })
    }

    /// The wire form as JSON text (the component's bytes travel apart, as Python bytes).
    pub fn to_wire(&self) -> &Wire {
        &self.wire
    }

    /// The connector's name, from its manifest.
    pub fn connector_name(&self) -> &str {
        &self.connector.manifest.name
    }

    /// A one-line description that never holds a secret.
    pub fn describe(&self) -> String {
        format!(
            "lakeflow_connect(connector={}, connection={:?}, table={:?}{})",
            self.connector_name(),
            self.wire.connection_name,
            self.wire.table.as_deref().unwrap_or(""),
            if self.wire.delete_flow { ", deletes" } else { "" }
        )
    }

    /// The table the read names; an error naming the option when it names none.
    pub fn table(&self) -> Result<&str, PlanError> {
        self.wire.table.as_deref().ok_or_else(|| {
            PlanError::Options(format!(
                "connector {}: option {} is required (a table of the source, or one of {})",
                self.connector_name(),
                options::TABLE_NAME,
                VIRTUAL_TABLES.join(", ")
            ))
        })
    }

    /// Whether the read names one of the virtual tables.
    pub fn is_virtual(&self) -> bool {
        self.wire.table.as_deref().is_some_and(|t| VIRTUAL_TABLES.contains(&t))
    }

    /// A reserved option's value.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.wire.reserved.get(name).map(String::as_str)
    }

    /// Whether the connector declares `capability`.
    pub fn supports(&self, capability: Capability) -> bool {
        self.connector.manifest.has(capability)
    }

    /// A session with `share` of the rate budgets (times the read's `weir.rateShare`).
    pub fn session(&self, share: f64) -> Result<Session, PlanError> {
        let extra =
            self.option(options::RATE_SHARE).and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(1.0);
        let mut connection = self.connection.clone();
        connection.rate_share = (share * extra).clamp(f64::MIN_POSITIVE, 1.0);
        runtime()?.session_for(&self.connector, connection).map_err(|e| PlanError::Options(e.to_string()))
    }

    /// Pages a micro-batch may read, and rows (see [`options::MAX_PAGES`]).
    pub fn micro_batch_bounds(&self) -> (u64, Option<u64>) {
        let count = |name| self.option(name).and_then(|v| v.trim().parse::<u64>().ok()).filter(|n| *n >= 1);
        (count(options::MAX_PAGES).unwrap_or(options::DEFAULT_MAX_PAGES), count(options::MAX_ROWS))
    }
}

/// The reference a connection names its connector by.
fn reference_name(component: &Component) -> String {
    match component {
        Component::Bundled(name) => name.clone(),
        Component::Bytes { path, .. } => path.clone(),
    }
}

/// The connection named by `weir.connection` (or `databricks.connection`, so that a pipeline
/// written for Databricks runs unchanged) in the file `weir.connections` (or `$WEIR_CONNECTIONS`).
fn connection_from_file(split: &SplitOptions) -> Result<(ConnectionsFile, ConnectionSpec), PlanError> {
    let path = split
        .get(options::CONNECTIONS_FILE)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("WEIR_CONNECTIONS").map(PathBuf::from))
        .ok_or_else(|| {
            PlanError::Options(format!(
                "no connector: give option {} (a bundled connector such as \"airtable\", or a path to a .wasm) \
                 with the connection's options, or {} (a connections.toml) and {}",
                options::SOURCE_NAME,
                options::CONNECTIONS_FILE,
                options::CONNECTION_NAME
            ))
        })?;
    let file = ConnectionsFile::load(&path).map_err(|e| PlanError::Options(e.to_string()))?;
    let name = split
        .get(options::CONNECTION_NAME)
        .or(split.get(options::DATABRICKS_CONNECTION))
        .map(str::to_string)
        .or_else(|| (file.connections.len() == 1).then(|| file.connections.keys().next().cloned()).flatten())
        .ok_or_else(|| {
            PlanError::Options(format!(
                "{} holds {} connections; name one with option {}",
                path.display(),
                file.connections.len(),
                options::CONNECTION_NAME
            ))
        })?;
    let spec = file.get(&name).map_err(|e| PlanError::Options(e.to_string()))?.clone();
    Ok((file, spec))
}

/// Shared, so that the Python objects that hold a plan clone it cheaply.
pub type SharedPlan = Arc<Plan>;
