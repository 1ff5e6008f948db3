//! From `--connections FILE --connection NAME` to a live session.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use weir_runtime::{ConnectionsFile, Runtime, RuntimeConfig, Session};

/// Where the connection comes from, as the user said it.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionArgs {
    /// The connection to use; optional when the file has only one.
    #[arg(long, short = 'c', env = "WEIR_CONNECTION")]
    pub connection: Option<String>,
    /// The connections file.
    #[arg(long, default_value = "connections.toml", env = "WEIR_CONNECTIONS")]
    pub connections: PathBuf,
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
    let spec = file.get(&name)?;
    let base = args.connections.parent().unwrap_or(Path::new("."));
    let bytes = weir_artifacts::resolve(&spec.connector, base)?;
    let runtime = runtime()?;
    let connector = runtime.load(&bytes)?;
    let session = runtime.session(&connector, spec)?;
    Ok(Connected { _runtime: runtime, session, connection: name })
}
