//! The weir host runtime: runs Lakeflow connectors as sandboxed WebAssembly components.
//!
//! A connector is one `.wasm` component implementing a published version of
//! `lakeflow:connect` (`wit/v0.1.0`, `wit/v0.2.0`), with its [`Manifest`] in a custom section.
//! The runtime reads the manifest before compiling, picks the bindings of the manifest's
//! contract version, compiles once (or loads the precompiled code from its own cache), and
//! instantiates it per connection in a [`Session`] that gives it nothing but what the manifest
//! allows:
//!
//! | capability | module | enforced how |
//! |---|---|---|
//! | network | [`http`] | allowed origins only; no private, loopback or link-local addresses, userinfo, or redirects out |
//! | secrets | [`secrets`] | removed from the guest's options, injected into requests by the host, redacted everywhere |
//! | rate limits, retries | [`ratelimit`], [`http`] | evenly spaced budgets per key, 429 penalties, jittered backoff |
//! | memory, CPU, time, output | [`limits`] | a resource limiter, epoch deadlines, a wall-clock bound per call, page and body caps |
//! | logging | [`session`] | guest lines go to `tracing` under `weir::guest`, redacted, escaped and rate-limited |
//!
//! Everything public speaks weir's own types ([`contract`]); the generated bindings of each
//! WIT version stay inside [`bindings`].
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use weir_runtime::{Runtime, RuntimeConfig, connection::ConnectionsFile};
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let connector = runtime.load(&std::fs::read("airtable.wasm")?)?;
//! let spec = ConnectionsFile::load("connections.toml".as_ref())?;
//! let mut session = runtime.session(&connector, spec.get("airtable")?)?;
//! println!("{:?}", session.list_tables()?);
//! # Ok(()) }
//! ```
//!
//! Session calls block: do not call them, or drop a session, from inside an async task (each
//! session owns a current-thread tokio executor, which drives its requests during its calls).

pub mod bindings;
pub mod connection;
pub mod contract;
pub mod http;
pub mod limits;
pub mod manifest;
pub mod ratelimit;
pub mod read;
pub mod secrets;
pub mod session;
pub mod template;
pub mod terminal;

mod cache;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use connection::{Connection, ConnectionSpec, ConnectionsFile};
pub use contract::{Capability, ConnectorError, ContractVersion, IngestionType, TableMetadata};
pub use http::tape::{Tape, TapeError, TapeMode};
pub use manifest::Manifest;
pub use read::{Pages, ReadBounds, Stream, same_offset};
pub use session::{ReadPage, Session, TableAddress};

/// Why the runtime could not load or start a connector.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error("connector {name}: cannot compile the component: {message}")]
    Compile { name: String, message: String },
    #[error(transparent)]
    Connection(#[from] connection::ConnectionError),
    #[error("connection {connection:?} for connector {connector}: {message}")]
    Configure { connector: String, connection: String, message: String },
    #[error("cannot start the runtime: {0}")]
    Start(String),
}

/// Why a call into a connector failed: the connector, the call and the table are named.
#[derive(Debug, thiserror::Error)]
#[error("connector {connector}, {call}{}: {kind}", table.as_ref().map(|t| format!(" on table {:?}", terminal::escape(t))).unwrap_or_default())]
pub struct CallError {
    pub connector: String,
    pub call: &'static str,
    pub table: Option<String>,
    pub kind: ErrorKind,
}

/// What went wrong in a call. What the connector or the source wrote is escaped when shown
/// (see [`terminal::escape`]), so it cannot forge lines or send terminal escapes.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The connector said the call failed.
    #[error("{}", terminal::escape(&.0.to_string()))]
    Connector(ConnectorError),
    /// The sandbox stopped the call at a limit.
    #[error("stopped by the sandbox: {0}")]
    Limit(limits::LimitHit),
    /// A read broke one of the rules that make it end.
    #[error("the read broke a rule: {0}")]
    Read(read::ReadRule),
    #[error("the connector crashed: {}", terminal::escape(.0))]
    Trap(String),
    #[error("the connector returned unusable output: {}", terminal::escape(.0))]
    Output(String),
    /// The component's contract version or manifest does not offer the call.
    #[error("not offered by this connector: {0}")]
    Unsupported(String),
    /// A page carried one of the connection's secrets (or an encoding of it), which the source
    /// must have echoed back; it was refused before any sink saw it.
    #[error(
        "the page carries a secret parameter of the connection (or an encoding of it), which the source \
         echoed back; the page was refused and nothing from it was written"
    )]
    Secret,
}

impl CallError {
    /// Whether the source refused the credentials.
    pub fn is_auth(&self) -> bool {
        matches!(self.kind, ErrorKind::Connector(ConnectorError::Auth(_)))
    }
}

/// How to build a [`Runtime`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Where precompiled components are kept, and the rate-limit budgets this machine's processes
    /// share (`budgets/`); None disables both.
    pub cache_dir: Option<PathBuf>,
}

impl RuntimeConfig {
    /// The default cache folder: `$WEIR_CACHE_DIR`, else `$XDG_CACHE_HOME/weir`, else `~/.cache/weir`.
    pub fn with_default_cache() -> RuntimeConfig {
        let dir = std::env::var_os("WEIR_CACHE_DIR").map(PathBuf::from).or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map(|d| d.join("weir"))
        });
        RuntimeConfig { cache_dir: dir }
    }
}

/// A connector component, compiled and ready to instantiate.
#[derive(Clone)]
pub struct LoadedConnector {
    pub manifest: Manifest,
    /// Hex SHA-256 of the component's bytes.
    pub sha256: String,
    /// Size of the component in bytes.
    pub size: usize,
    /// How the compiled code was obtained, and how long it took.
    pub load: LoadInfo,
    pre: bindings::Pre,
}

/// How a component was loaded.
#[derive(Debug, Clone, Copy)]
pub struct LoadInfo {
    /// True when the precompiled code came from the cache.
    pub cached: bool,
    pub duration: Duration,
}

/// The engine, the linker, the compile cache and the process-wide rate-limit budgets.
pub struct Runtime {
    engine: wasmtime::Engine,
    linker: wasmtime::component::Linker<session::State>,
    cache: Option<cache::CompileCache>,
    limiters: Arc<ratelimit::RateLimiters>,
    _ticker: EpochTicker,
}

impl Runtime {
    /// Builds the engine with the sandbox's settings.
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        let mut wasm = wasmtime::Config::new();
        // Epoch interruption bounds guest CPU per call (see `limits`).
        wasm.epoch_interruption(true);
        // 512 KiB of wasm stack: deep enough for real connectors, and runaway recursion
        // traps long before the host's own stack is at risk.
        wasm.max_wasm_stack(512 * 1024);
        // `perf` names a guest's functions from /tmp/perf-PID.map when asked to (README, "Write a
        // connector", item 5).
        if std::env::var_os("WEIR_PERF_MAP").is_some_and(|v| v == "1") {
            wasm.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = wasmtime::Engine::new(&wasm).map_err(|e| RuntimeError::Start(e.to_string()))?;
        let mut linker = wasmtime::component::Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Start(e.to_string()))?;
        bindings::add_to_linker(&mut linker).map_err(|e| RuntimeError::Start(e.to_string()))?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(cache::CompileCache::open(dir, &engine).map_err(RuntimeError::Start)?),
            None => None,
        };
        let ticker = EpochTicker::start(engine.clone());
        // Budgets live beside the compile cache, shared with the machine's other processes.
        let limiters = Arc::new(match &config.cache_dir {
            Some(dir) => ratelimit::RateLimiters::shared(dir.join("budgets")),
            None => ratelimit::RateLimiters::default(),
        });
        Ok(Runtime { engine, linker, cache, limiters, _ticker: ticker })
    }

    /// Reads the manifest, then compiles the component or loads it from the cache.
    pub fn load(&self, bytes: &[u8]) -> Result<LoadedConnector, RuntimeError> {
        let started = Instant::now();
        let manifest = Manifest::from_component(bytes)?;
        let sha256 = http::sha256_hex(bytes);
        let compile_error = |message: String| RuntimeError::Compile { name: manifest.name.clone(), message };
        limits::check_shape(bytes).map_err(compile_error)?;
        let (component, cached) = match self.cache.as_ref().and_then(|c| c.get(&self.engine, &sha256)) {
            Some(component) => (component, true),
            None => {
                let component = wasmtime::component::Component::new(&self.engine, bytes)
                    .map_err(|e| compile_error(format!("{e:#}")))?;
                if let Some(c) = &self.cache
                    && let Err(e) = c.put(&sha256, &component)
                {
                    tracing::warn!("compile cache: {e}");
                }
                (component, false)
            }
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| compile_error(format!("it imports something the sandbox does not offer: {e:#}")))?;
        let pre = bindings::Pre::new(manifest.contract, pre).map_err(|e| {
            compile_error(format!("it does not implement {} as its manifest says: {e:#}", manifest.contract))
        })?;
        Ok(LoadedConnector {
            manifest,
            sha256,
            size: bytes.len(),
            load: LoadInfo { cached, duration: started.elapsed() },
            pre,
        })
    }

    /// Resolves a connection against the connector's manifest and prepares a session.
    pub fn session(
        &self,
        connector: &LoadedConnector,
        spec: &ConnectionSpec,
    ) -> Result<Session, RuntimeError> {
        let connection = spec.resolve(&connector.manifest)?;
        self.session_for(connector, connection)
    }

    /// Prepares a session for an already resolved connection.
    pub fn session_for(
        &self,
        connector: &LoadedConnector,
        connection: Connection,
    ) -> Result<Session, RuntimeError> {
        let redactor = Arc::new(secrets::Redactor::new(connection.secrets.values()));
        let gate =
            http::HttpGate::configure(&connector.manifest, &connection, &self.limiters, redactor.clone())
                .map_err(|e| RuntimeError::Configure {
                    connector: connector.manifest.name.clone(),
                    connection: connection.name.clone(),
                    message: e.to_string(),
                })?;
        // Each session drives its own requests on the thread that calls it: a guest blocks in
        // its call while its request is out, so worker threads would only add a wake-up per
        // chunk of every response (10 % more CPU a row in the read_path bench).
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RuntimeError::Start(e.to_string()))?;
        Ok(Session::new(connector.clone(), connection, Arc::new(gate), redactor, tokio))
    }

    /// The budgets shared by every session of this runtime.
    pub fn rate_limiters(&self) -> &Arc<ratelimit::RateLimiters> {
        &self.limiters
    }
}

/// Advances the engine's epoch every [`limits::TICK`] until dropped.
struct EpochTicker {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl EpochTicker {
    fn start(engine: wasmtime::Engine) -> EpochTicker {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(limits::TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
