//! From `--connections FILE --connection NAME` to a live session.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, bail};
use weir_runtime::terminal::escape;
use weir_runtime::{ConnectionsFile, Runtime, RuntimeConfig, Session, Tape};

/// Where the connection comes from, as the user said it.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionArgs {
    /// The connection to use; optional when the file has only one.
    #[arg(long, short = 'c', env = "WEIR_CONNECTION")]
    pub connection: Option<String>,
    /// The connections file.
    #[arg(long, default_value = "connections.toml", env = "WEIR_CONNECTIONS")]
    pub connections: PathBuf,
    #[command(flatten)]
    pub tape: TapeArgs,
    /// Set from the global --allow-unsigned.
    #[arg(skip)]
    pub allow_unsigned: bool,
}

/// Record and replay: `--record CASSETTE` or `--replay CASSETTE`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TapeArgs {
    /// Record every HTTP exchange into this cassette (a plain JSON file; secrets redacted).
    #[arg(long, value_name = "CASSETTE", conflicts_with = "replay")]
    pub record: Option<PathBuf>,
    /// Serve every HTTP exchange from this cassette: offline, deterministic, no token needed.
    #[arg(long, value_name = "CASSETTE")]
    pub replay: Option<PathBuf>,
}

impl TapeArgs {
    /// The cassette the flags name, opened.
    pub fn open(&self) -> Result<Option<Arc<Tape>>> {
        Ok(match (&self.record, &self.replay) {
            (Some(path), _) => Some(Arc::new(Tape::record(path)?)),
            (None, Some(path)) => Some(Arc::new(Tape::replay(path)?)),
            (None, None) => None,
        })
    }
}

impl ConnectionArgs {
    /// The same, with the global `--allow-unsigned` applied.
    pub fn allowing(mut self, allow_unsigned: bool) -> ConnectionArgs {
        self.allow_unsigned = allow_unsigned;
        self
    }
}

/// A runtime, a loaded connector and a session for one connection.
pub struct Connected {
    /// Kept alive for the session: it owns the executor that serves the http gate.
    _runtime: Runtime,
    pub session: Session,
    pub connection: String,
}

/// Starts the runtime with the default compile cache.
pub fn runtime() -> Result<Runtime> {
    Ok(Runtime::new(RuntimeConfig::with_default_cache())?)
}

/// Loads the file, picks the connection, loads its connector and opens a session.
pub fn connect(args: &ConnectionArgs) -> Result<Connected> {
    connect_to(args, None)
}

/// As [`connect`], with `connector` (a bundled or installed name, or a .wasm path) in place of
/// the connection's own.
pub fn connect_to(args: &ConnectionArgs, connector: Option<&str>) -> Result<Connected> {
    let file = ConnectionsFile::load(&args.connections)?;
    let name = match &args.connection {
        Some(n) => n.clone(),
        None if file.connections.len() == 1 => file.connections.keys().next().cloned().unwrap_or_default(),
        None => bail!(
            "{} holds {} connections; choose one with --connection ({})",
            args.connections.display(),
            file.connections.len(),
            file.connections.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    };
    let mut spec = file.get(&name)?.clone();
    spec.tape = args.tape.open()?;
    let spec = &spec;
    let base = args.connections.parent().unwrap_or(Path::new("."));
    let allow_unsigned = spec.allow_unsigned || args.allow_unsigned;
    let component = match connector {
        // Relative to where the command runs, as the user typed it.
        Some(c) => weir_vet::component::load(&weir_vet::weir_home(), c, Path::new("."), allow_unsigned)?,
        None => weir_vet::component::load(&weir_vet::weir_home(), &spec.connector, base, allow_unsigned)?,
    };
    if let Some(warning) = component.origin.unsigned_warning() {
        eprintln!("warning: {}", escape(&warning));
    }
    let runtime = runtime()?;
    let connector = runtime.load(&component.bytes)?;
    let session = runtime.session(&connector, spec)?;
    Ok(Connected { _runtime: runtime, session, connection: name })
}
