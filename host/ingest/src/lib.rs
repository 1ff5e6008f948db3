//! Pipelines as a library: an upstream pipeline spec, ingested into Delta tables exactly once
//! through a sandboxed connector. Every weir front end (the `weir` command line, a service, the
//! tests and benchmarks) drives a run through this crate, so planning, the page loop, the commit
//! policy and the reports exist once.
//!
//! ```no_run
//! # fn main() -> Result<(), weir_ingest::IngestError> {
//! use weir_ingest::{RunOptions, progress::Silent};
//! let options = RunOptions {
//!     warehouse: weir_ingest::warehouse_uri("warehouse")?,
//!     parallel: 4,
//!     commit_rows: 50_000,
//!     only: None,
//!     allow_unsigned: false,
//!     tape: None,
//! };
//! let reports = weir_ingest::run_spec(
//!     "pipeline.yaml".as_ref(),
//!     "connections.toml".as_ref(),
//!     None,
//!     &options,
//!     &Silent,
//! )?;
//! for r in &reports {
//!     println!("{}: {} rows in {} commits", r.destination, r.rows_read, r.commits);
//! }
//! # Ok(()) }
//! ```
//!
//! The flow of one run:
//! 1. [`spec`]: the spec is read and every object checked;
//! 2. [`plan`]: the connector is asked about every table (schema, metadata, partitions), and each
//!    destination about its current schema; keys and write modes are chosen. A bad spec, table,
//!    option or column fails here, with nothing written;
//! 3. `run`: tables run concurrently (at most `parallel`), each read page by page through
//!    [`weir_runtime::Pages`] and committed with its offset in one Delta commit; a partitioned
//!    table's partitions run concurrently too, each with its own offset;
//! 4. [`report`]: one [`TableReport`] per table; [`progress::Progress`] hears about it as it
//!    happens.

mod app_id;
pub mod follow;
pub mod plan;
pub mod progress;
mod release;
pub mod report;
mod run;
pub mod spec;
pub mod swap;

use std::path::Path;
use std::sync::atomic::AtomicBool;

pub use app_id::partition_app_id;
pub use follow::{FollowOptions, follow};
pub use plan::Prepared;
pub use release::{Released, release};
pub use report::TableReport;
pub use run::{RunOptions, rename_batch};
pub use spec::{PipelineSpec, Planned, ScdType, SpecError};
pub use swap::{Active, Current};
use weir_runtime::{CallError, ConnectionSpec, Runtime, RuntimeConfig};

/// Why a run could not start, or why one table failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Connection(#[from] weir_runtime::connection::ConnectionError),
    #[error(transparent)]
    Runtime(#[from] weir_runtime::RuntimeError),
    #[error(transparent)]
    Component(#[from] weir_vet::Error),
    /// A call into the connector failed.
    #[error("{table}: {error}")]
    Call { table: String, error: Box<CallError> },
    /// The Delta sink failed.
    #[error("{table}: {error}")]
    Sink { table: String, error: weir_delta::SinkError },
    /// The spec and what the connector says do not fit together.
    #[error("{table}: {message}")]
    Plan { table: String, message: String },
    #[error("--tables names {0:?}, which is not in the spec")]
    NotInSpec(String),
    #[error("cannot create warehouse folder {path}: {error}")]
    Warehouse { path: String, error: std::io::Error },
    /// The warehouse URL names a store this build lacks, carries credentials, or comes with a
    /// setting that would make commits unsafe.
    #[error("--warehouse: {0}")]
    WarehouseUrl(weir_delta::SinkError),
    #[error("cannot start the async runtime: {0}")]
    Start(std::io::Error),
}

/// Resolves a `--warehouse` argument: URLs are checked (a store this build serves, no
/// credentials in the URL, no setting that makes commits unsafe: see
/// [`weir_delta::check_location`]) and pass through; folders are created and made absolute.
pub fn warehouse_uri(arg: &str) -> Result<String, IngestError> {
    if arg.contains("://") {
        weir_delta::check_location(arg).map_err(IngestError::WarehouseUrl)?;
        return Ok(arg.trim_end_matches('/').to_string());
    }
    let fail = |error| IngestError::Warehouse { path: arg.to_string(), error };
    std::fs::create_dir_all(arg).map_err(fail)?;
    let abs = std::fs::canonicalize(arg).map_err(fail)?;
    Ok(abs.to_string_lossy().into_owned())
}

/// Runs planned tables with the connector version `current` holds: asks the connector about
/// each (nothing is written when that fails), then ingests them; returns one report per table,
/// failed tables included. Setting `stop` ends every read before its next page.
#[allow(clippy::too_many_arguments)]
pub fn run(
    runtime: &Runtime,
    current: &Current,
    connection: &ConnectionSpec,
    tables: Vec<Planned>,
    options: &RunOptions,
    progress: &dyn progress::Progress,
    tokio: &tokio::runtime::Handle,
    stop: &AtomicBool,
) -> Result<Vec<TableReport>, IngestError> {
    let tables = select(tables, options.only.as_deref())?;
    tokio.block_on(weir_delta::check_store(&options.warehouse)).map_err(IngestError::WarehouseUrl)?;
    let mut session = runtime.session(&current.get().connector, connection)?;
    let prepared = plan::prepare(&mut session, &connection.name, tables, &options.warehouse, tokio)?;
    drop(session);
    let ctx = run::Ctx { runtime, current, connection, options, progress, tokio, stop };
    Ok(run::run_tables(&ctx, prepared))
}

/// The tables `only` names by source or destination; all when `only` is None.
fn select(tables: Vec<Planned>, only: Option<&[String]>) -> Result<Vec<Planned>, IngestError> {
    let Some(only) = only else { return Ok(tables) };
    let named = |t: &Planned, n: &String| &t.source_table == n || &t.destination_name() == n;
    if let Some(missing) = only.iter().find(|n| !tables.iter().any(|t| named(t, n))) {
        return Err(IngestError::NotInSpec(missing.clone()));
    }
    Ok(tables.into_iter().filter(|t| only.iter().any(|n| named(t, n))).collect())
}

/// A spec file with its connection, and its connector loaded in a runtime.
struct Loaded {
    tables: Vec<Planned>,
    connection: ConnectionSpec,
    runtime: Runtime,
    current: Current,
    tokio: tokio::runtime::Runtime,
}

fn load(
    spec_path: &Path,
    connections: &Path,
    connection_override: Option<&str>,
    options: &RunOptions,
    progress: &dyn progress::Progress,
) -> Result<Loaded, IngestError> {
    let (spec, tables) = PipelineSpec::load(spec_path)?;
    let file = weir_runtime::ConnectionsFile::load(connections)?;
    let connection = options.taped(file.get(connection_override.unwrap_or(&spec.connection_name))?);
    let base = connections.parent().unwrap_or(Path::new("."));
    let allow_unsigned = connection.allow_unsigned || options.allow_unsigned;
    let component =
        weir_vet::component::load(&weir_vet::weir_home(), &connection.connector, base, allow_unsigned)?;
    if let Some(warning) = component.origin.unsigned_warning() {
        progress.notice(&warning);
    }
    let runtime = Runtime::new(RuntimeConfig::with_default_cache())?;
    let started = std::time::Instant::now();
    let connector = runtime.load(&component.bytes)?;
    let current = Current::new(Active::new(connector, Some(component.origin), started.elapsed()));
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(IngestError::Start)?;
    Ok(Loaded { tables, connection, runtime, current, tokio })
}

/// Runs a spec file end to end: load, connect, run, report.
pub fn run_spec(
    spec_path: &Path,
    connections: &Path,
    connection_override: Option<&str>,
    options: &RunOptions,
    progress: &dyn progress::Progress,
) -> Result<Vec<TableReport>, IngestError> {
    let l = load(spec_path, connections, connection_override, options, progress)?;
    let stop = AtomicBool::new(false);
    run(&l.runtime, &l.current, &l.connection, l.tables, options, progress, l.tokio.handle(), &stop)
}

/// [`release`] for a spec file: asks the connector to give up what it holds at the source for
/// the spec's tables (Airtable: the webhooks their deletes are read through).
pub fn release_spec(
    spec_path: &Path,
    connections: &Path,
    connection_override: Option<&str>,
    options: &RunOptions,
    progress: &dyn progress::Progress,
) -> Result<Vec<Released>, IngestError> {
    let l = load(spec_path, connections, connection_override, options, progress)?;
    release(&l.runtime, &l.current, &l.connection, l.tables, options, l.tokio.handle())
}
