//! `weir`: run sandboxed Lakeflow connectors into Delta tables.

mod allocator;
mod author;
mod connect;
mod demo;
mod explore;
mod progress;
mod summary;
mod vet;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use connect::ConnectionArgs;
use explore::TableArgs;

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "Run Lakeflow community connectors as sandboxed WebAssembly components."
)]
struct Cli {
    /// More logging on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Run a connector given by path even when no trusted key signed it (it says so).
    #[arg(long, global = true, env = "WEIR_ALLOW_UNSIGNED")]
    allow_unsigned: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum NewCommand {
    /// A Rust connector crate on the guest SDK that builds, packages and passes `weir test`
    /// offline as it stands (against its fixture cassette).
    Connector {
        name: String,
        /// The folder to create the crate in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The path of weir-connector-sdk (default: the one this weir was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

/// A pipeline spec, its connection and where its tables are.
#[derive(Debug, Clone, clap::Args)]
struct PipelineArgs {
    /// The pipeline spec (upstream format, YAML or JSON).
    spec: PathBuf,
    #[arg(long, default_value = "connections.toml", env = "WEIR_CONNECTIONS")]
    connections: PathBuf,
    /// Use this connection instead of the spec's connection_name.
    #[arg(long)]
    connection: Option<String>,
    /// A local folder, or s3://bucket/prefix, abfss://container@account.dfs.core.windows.net/prefix
    /// (gs:// with the `gcs` cargo feature); credentials come from the environment.
    #[arg(long, default_value = "warehouse")]
    warehouse: String,
    /// Only these tables (source or destination names), comma-separated.
    #[arg(long, value_delimiter = ',')]
    tables: Option<Vec<String>>,
    #[command(flatten)]
    tape: connect::TapeArgs,
}

impl PipelineArgs {
    fn options(
        &self,
        parallel: usize,
        commit_rows: usize,
        allow_unsigned: bool,
    ) -> Result<weir_ingest::RunOptions> {
        Ok(weir_ingest::RunOptions {
            warehouse: weir_ingest::warehouse_uri(&self.warehouse)?,
            parallel,
            commit_rows,
            only: self.tables.clone(),
            allow_unsigned,
            tape: self.tape.open()?,
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Start the Airtable simulator, then ingest its six tables into bronze_* Delta tables.
    Demo {
        /// Where to write connections.toml, the spec and the warehouse.
        #[arg(long, default_value = "weir-demo")]
        dir: PathBuf,
        /// Grow SKU Candidates to this many rows.
        #[arg(long)]
        rows: Option<usize>,
        /// Where the tables go: a local folder (default DIR/warehouse), or s3://, abfss://, gs://.
        #[arg(long)]
        warehouse: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Ingest a pipeline spec (upstream format, YAML or JSON) into Delta tables.
    Run {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Tables ingested at once.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// Commit every this many rows, at the next checkpointable offset.
        #[arg(long, default_value_t = 50_000)]
        commit_rows: usize,
        /// Keep ingesting: read again every --interval, take new connector versions between two
        /// commits, until Ctrl-C or SIGTERM (which end it after the current commit).
        #[arg(long)]
        follow: bool,
        /// Seconds between two passes of --follow.
        #[arg(long, default_value_t = 30.0, requires = "follow")]
        interval: f64,
        #[arg(long)]
        json: bool,
    },
    /// Give back what the connector holds at the source for a spec's tables: the Airtable
    /// connector's deletes webhooks. A later run of a table finds them gone and resynchronises.
    Release {
        #[command(flatten)]
        pipeline: PipelineArgs,
        #[arg(long)]
        json: bool,
    },
    /// List the source's tables.
    Tables {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        json: bool,
    },
    /// Show a table's schema; --json prints the Spark JSON schema.
    Schema {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[command(flatten)]
        table: TableArgs,
        #[arg(long)]
        json: bool,
    },
    /// Show a table's primary keys, cursor field and ingestion type.
    Metadata {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[command(flatten)]
        table: TableArgs,
        #[arg(long)]
        json: bool,
    },
    /// Show the first rows of a table; --json prints one JSON object per line.
    Preview {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[command(flatten)]
        table: TableArgs,
        #[arg(long, default_value_t = 10)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Scaffold a connector: `weir new connector NAME`.
    New {
        #[command(subcommand)]
        what: NewCommand,
    },
    /// Build a connector crate for wasm32-wasip2 and package it with its manifest.toml
    /// (default output: target/weir/NAME.wasm in the crate).
    Build {
        /// The crate's folder.
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[arg(long, short)]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Package any wasm32-wasip2 component with a manifest.toml, checked as a run checks it.
    Package {
        component: PathBuf,
        #[arg(long, short)]
        manifest: PathBuf,
        #[arg(long, short)]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Run the conformance suite on a connector through the sandbox: one line per check and
    /// table, and a nonzero exit when any check fails.
    Test {
        /// A bundled or installed connector name, or a .wasm path (default: the connection's).
        connector: Option<String>,
        #[command(flatten)]
        conn: ConnectionArgs,
        /// Only these tables, comma-separated.
        #[arg(long, value_delimiter = ',')]
        tables: Option<Vec<String>>,
        /// A read that has not ended after this many calls fails `read_terminates`.
        #[arg(long, default_value_t = 1000)]
        max_calls: u64,
        /// A table option every call gets, key=value (repeatable), e.g. a small page size.
        #[arg(long = "option", short = 'o')]
        options: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Check that the source is reachable and accepts the credentials.
    Check {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[arg(long)]
        json: bool,
    },
    /// Show a connector's manifest, capabilities, digest and contract version.
    Inspect {
        /// A bundled connector name or a path to a .wasm component.
        connector: String,
        #[arg(long)]
        json: bool,
    },
    /// Serve a simulated source on loopback.
    Sim {
        #[command(subcommand)]
        source: SimSource,
    },
    /// Signing keys.
    Key {
        #[command(subcommand)]
        command: vet::KeyCommand,
        #[arg(long, global = true)]
        json: bool,
    },
    /// Sign a packaged component (again, for a co-signature) with a secret key.
    Sign {
        file: PathBuf,
        #[arg(long)]
        key: PathBuf,
        /// Write the signed component here instead of replacing FILE.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Verify a component's signature: by the given public key, else by a trusted key.
    Verify {
        file: PathBuf,
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// The public keys whose signatures you trust.
    Trust {
        #[command(subcommand)]
        command: vet::TrustCommand,
        #[arg(long, global = true)]
        json: bool,
    },
    /// The connector store: install, review, pin and roll back connector versions.
    Connector {
        #[command(subcommand)]
        command: vet::ConnectorCommand,
        #[arg(long, global = true)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SimSource {
    /// An Airtable-compatible API with the Product Launch base.
    Airtable {
        #[arg(long, default_value_t = 8787)]
        port: u16,
        /// Grow a table to this many rows (see --table).
        #[arg(long)]
        rows: Option<usize>,
        /// The table that --rows grows.
        #[arg(long, default_value = "SKU Candidates")]
        table: String,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Turn off the 5 requests/s per base limit.
        #[arg(long)]
        no_rate_limit: bool,
    },
}

/// The log filter for `-v` counts: weir's own warnings always show; the libraries it builds on
/// (delta-rs, DataFusion, wasmtime, HTTP) stay quiet unless asked for, since what they say at
/// error or warn level on a healthy run ("No files in log segment" for a new table) reads as a
/// failure to a user. weir reports their real failures itself, in its errors.
fn log_filter(verbose: u8) -> &'static str {
    // `weir` matches every weir crate's target (weir_runtime, weir_ingest, …) and `weir::guest`.
    match verbose {
        0 => "off,weir=warn",
        1 => "warn,weir=info",
        2 => "info,weir=debug",
        _ => "trace",
    }
}

fn init_logging(verbose: u8) {
    let default = log_filter(verbose);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(true).init();
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so `weir preview | head` would panic on the closed pipe.
    // SAFETY: restoring the default disposition of one signal, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match dispatch(cli.command, cli.allow_unsigned) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command, allow_unsigned: bool) -> Result<()> {
    use std::io::IsTerminal;
    match command {
        Command::Demo { dir, rows, warehouse, json } => demo::demo(&dir, rows, warehouse.as_deref(), json),
        Command::Run { pipeline, parallel, commit_rows, follow, interval, json } => {
            let options = pipeline.options(parallel, commit_rows.max(1), allow_unsigned)?;
            let PipelineArgs { spec, connections, connection, .. } = pipeline;
            let bars = progress::Bars::new(!json && std::io::stderr().is_terminal()).printing_passes(json);
            if follow {
                anyhow::ensure!(
                    interval.is_finite() && (0.0..=86_400.0).contains(&interval),
                    "--interval must be a number of seconds from 0 to 86400, got {interval}"
                );
                let follow = weir_ingest::FollowOptions {
                    interval: std::time::Duration::from_secs_f64(interval),
                    poll: std::time::Duration::from_secs_f64(interval.clamp(0.2, 2.0)),
                };
                stop_on_signals();
                return Ok(weir_ingest::follow(
                    &spec,
                    &connections,
                    connection.as_deref(),
                    &options,
                    &follow,
                    &bars,
                    &STOP,
                )?);
            }
            let reports = weir_ingest::run_spec(&spec, &connections, connection.as_deref(), &options, &bars)?;
            report(&reports, json)
        }
        Command::Release { pipeline, json } => {
            let options = pipeline.options(1, 1, allow_unsigned)?;
            let bars = progress::Bars::new(false);
            let PipelineArgs { spec, connections, connection, .. } = pipeline;
            let released =
                weir_ingest::release_spec(&spec, &connections, connection.as_deref(), &options, &bars)?;
            summary::released(&released, json)
        }
        Command::Tables { conn, json } => explore::tables(&conn.allowing(allow_unsigned), json),
        Command::Schema { conn, table, json } => {
            explore::schema(&conn.allowing(allow_unsigned), &table, json)
        }
        Command::Metadata { conn, table, json } => {
            explore::metadata(&conn.allowing(allow_unsigned), &table, json)
        }
        Command::Preview { conn, table, limit, json } => {
            explore::preview(&conn.allowing(allow_unsigned), &table, limit, json)
        }
        Command::Check { conn, json } => explore::check(&conn.allowing(allow_unsigned), json),
        Command::New { what: NewCommand::Connector { name, dir, sdk, json } } => {
            author::new_connector(&name, &dir, sdk.as_deref(), json)
        }
        Command::Build { dir, out, json } => author::build(&dir, out.as_deref(), json),
        Command::Package { component, manifest, out, json } => {
            author::package(&component, &manifest, &out, json)
        }
        Command::Test { connector, conn, tables, max_calls, options, json } => {
            let table_options = explore::key_values(&options)?;
            let options = weir_conformance::Options { tables, max_calls: max_calls.max(1), table_options };
            explore::test(&conn.allowing(allow_unsigned), connector.as_deref(), &options, json)
        }
        Command::Inspect { connector, json } => explore::inspect(&connector, json),
        Command::Sim { source: SimSource::Airtable { port, rows, table, seed, no_rate_limit } } => {
            demo::serve_sim(port, rows.map(|n| (table, n)), seed, !no_rate_limit)
        }
        Command::Key { command, json } => vet::key(command, json),
        Command::Sign { file, key, out, json } => vet::sign(file, key, out, json),
        Command::Verify { file, key, json } => vet::verify(file, key, json),
        Command::Trust { command, json } => vet::trust(command, json),
        Command::Connector { command, json } => vet::connector(command, json),
    }
}

/// Set by SIGINT or SIGTERM during `weir run --follow`: the run ends after the current commit.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    // Only an atomic store: the one thing a signal handler may safely do here.
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Makes Ctrl-C and SIGTERM end a following run cleanly instead of killing it.
fn stop_on_signals() {
    let handler = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: installs a handler that only stores to an atomic, for two signals.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// Prints a run's summary and fails when any table failed.
fn report(reports: &[weir_ingest::TableReport], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(reports)?);
    } else {
        summary::print_summary(reports);
    }
    let failed: Vec<&str> =
        reports.iter().filter(|r| r.error.is_some()).map(|r| r.destination.as_str()).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{} of {} table(s) failed: {}", failed.len(), reports.len(), failed.join(", "))
    }
}
