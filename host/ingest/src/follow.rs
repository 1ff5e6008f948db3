//! `weir run --follow`: keep ingesting, take new connector versions between two commits, and
//! roll back by itself when a new version misbehaves.
//!
//! A following run reads every table from its committed offsets, waits `interval`, and reads
//! again, until it is stopped (the caller sets `stop`: a signal). A watcher thread looks at the
//! connection's connector every `poll`: when the store's pin moves or the `.wasm` file changes,
//! it prepares the new version off the hot path (see [`crate::swap`]) and offers it; readers end
//! their read at their next commit, the run swaps, and reads on from the committed offsets. A
//! new version that fails before its first commit is rolled back: the run says so, returns to
//! the previous version and reads again from the last committed offset. A schema the new
//! version brings goes through the same evolution rules as any run: every pass plans its
//! tables with the version it runs.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use weir_runtime::{ConnectionSpec, Runtime, RuntimeConfig};

use crate::progress::Progress;
use crate::report::TableReport;
use crate::spec::{PipelineSpec, Planned};
use crate::swap::{Active, Current};
use crate::{IngestError, RunOptions};

/// How a following run paces itself.
#[derive(Debug, Clone, Copy)]
pub struct FollowOptions {
    /// The wait between two passes over the tables.
    pub interval: Duration,
    /// How often the connector is looked at for a new version.
    pub poll: Duration,
}

/// Where the connector of a connection comes from: enough to load it again.
struct Source<'a> {
    home: std::path::PathBuf,
    connection: &'a ConnectionSpec,
    base: &'a Path,
    allow_unsigned: bool,
}

impl Source<'_> {
    /// The digest of what the connection names now, without verifying or compiling it.
    fn fingerprint(&self) -> Result<String, IngestError> {
        Ok(weir_vet::component::fingerprint(&self.home, &self.connection.connector, self.base)?)
    }

    /// Verifies, compiles and probes what the connection names now: `list-tables` must still list
    /// every table the run ingests, and give each a schema and metadata the host can use.
    fn prepare(&self, runtime: &Runtime, tables: &[Planned]) -> Result<Active, IngestError> {
        let started = Instant::now();
        let component = weir_vet::component::load(
            &self.home,
            &self.connection.connector,
            self.base,
            self.allow_unsigned,
        )?;
        let connector = runtime.load(&component.bytes)?;
        // Probe: every table the run ingests must still be listed, with a schema the host can use.
        let mut session = runtime.session(&connector, self.connection)?;
        let namespaces: std::collections::BTreeSet<&Vec<String>> =
            tables.iter().map(|p| &p.namespace).collect();
        for namespace in namespaces {
            let listed = if session.supports(weir_runtime::Capability::Namespaces) {
                session.list_tables_in_namespace(namespace)
            } else {
                session.list_tables()
            };
            let listed = listed.map_err(|error| IngestError::Call {
                table: format!("the tables of {namespace:?}"),
                error: Box::new(error),
            })?;
            if let Some(missing) =
                tables.iter().find(|p| &p.namespace == namespace && !listed.contains(&p.source_table))
            {
                return Err(IngestError::Plan {
                    table: crate::plan::describe(missing),
                    message: "the new version of the connector no longer lists this table".into(),
                });
            }
        }
        for plan in tables {
            let what = crate::plan::describe(plan);
            let call = |error| IngestError::Call { table: what.clone(), error: Box::new(error) };
            session.arrow_schema(&plan.source_table, &plan.table_options).map_err(call)?;
            session.table_metadata(&plan.source_table, &plan.table_options).map_err(call)?;
        }
        Ok(Active::new(connector, Some(component.origin), started.elapsed()))
    }
}

/// Runs the spec again and again until `stop` is set; see the module docs.
pub fn follow(
    spec_path: &Path,
    connections: &Path,
    connection_override: Option<&str>,
    options: &RunOptions,
    follow: &FollowOptions,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Result<(), IngestError> {
    let (spec, tables) = PipelineSpec::load(spec_path)?;
    let file = weir_runtime::ConnectionsFile::load(connections)?;
    let connection = &options.taped(file.get(connection_override.unwrap_or(&spec.connection_name))?);
    let source = Source {
        home: weir_vet::weir_home(),
        connection,
        base: connections.parent().unwrap_or(Path::new(".")),
        allow_unsigned: connection.allow_unsigned || options.allow_unsigned,
    };
    let runtime = Runtime::new(RuntimeConfig::with_default_cache())?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(IngestError::Start)?;
    let first = source.prepare(&runtime, &tables)?;
    if let Some(warning) = first.origin.as_ref().and_then(|o| o.unsigned_warning()) {
        progress.notice(&warning);
    }
    let current = Current::new(first);
    let watching = AtomicBool::new(true);
    std::thread::scope(|scope| {
        scope.spawn(|| watch(&runtime, &source, &tables, &current, follow.poll, &watching, stop, progress));
        let result = passes(&runtime, &current, connection, &tables, options, follow, progress, &tokio, stop);
        watching.store(false, Ordering::Relaxed);
        result
    })
}

#[allow(clippy::too_many_arguments)]
fn passes(
    runtime: &Runtime,
    current: &Current,
    connection: &ConnectionSpec,
    tables: &[Planned],
    options: &RunOptions,
    follow: &FollowOptions,
    progress: &dyn Progress,
    tokio: &tokio::runtime::Runtime,
    stop: &AtomicBool,
) -> Result<(), IngestError> {
    loop {
        if let Some((old, new)) = current.swap() {
            progress.notice(&format!(
                "connector {} takes over from {} between two commits (verified, compiled and probed in {} ms)",
                new.describe(),
                old.describe(),
                new.prepared_in.as_millis()
            ));
        }
        let started = Instant::now();
        let on_trial = current.get();
        let reports = crate::run(
            runtime,
            current,
            connection,
            tables.to_vec(),
            options,
            progress,
            tokio.handle(),
            stop,
        )?;
        progress.pass_finished(&reports);
        if let Some(failure) = failure(&reports)
            && current.on_probation(&on_trial)
            && let Some((failed, previous)) = current.roll_back()
        {
            progress.notice(&format!(
                "connector {} failed before its first commit ({failure}); rolled back to {}, which reads on \
                 from the last committed offset; {} will not be taken again",
                failed.describe(),
                previous.describe(),
                failed.describe()
            ));
            continue;
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        // Wait for the interval, or less: a stop, or a new version ready to take over.
        while started.elapsed() < follow.interval && !stop.load(Ordering::Relaxed) && !current.swap_pending()
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
    }
}

/// The first failed table's error, if any.
fn failure(reports: &[TableReport]) -> Option<String> {
    reports.iter().find_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.destination)))
}

/// Looks at the connector every `poll` and offers each new version once it is ready.
#[allow(clippy::too_many_arguments)]
fn watch(
    runtime: &Runtime,
    source: &Source,
    tables: &[Planned],
    current: &Current,
    poll: Duration,
    watching: &AtomicBool,
    stop: &AtomicBool,
    progress: &dyn Progress,
) {
    let mut next = Instant::now() + poll;
    while watching.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
        if Instant::now() < next {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        next = Instant::now() + poll;
        let fingerprint = match source.fingerprint() {
            Ok(f) => f,
            Err(e) => {
                progress.notice(&format!("cannot look at the connector for a new version: {e}"));
                continue;
            }
        };
        if current.knows(&fingerprint) {
            continue;
        }
        match source.prepare(runtime, tables) {
            Ok(candidate) => {
                progress.notice(&format!(
                    "connector {} is ready (verified, compiled and probed in {} ms); it takes over at the next commit",
                    candidate.describe(),
                    candidate.prepared_in.as_millis()
                ));
                current.offer(candidate);
            }
            Err(e) => {
                current.reject(&fingerprint);
                progress.notice(&format!(
                    "a new version of the connector was refused, the run goes on with the current one: {e}"
                ));
            }
        }
    }
}
