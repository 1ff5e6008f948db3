//! Running prepared tables: bounded concurrency, the page loop into commits, exactly once.
//!
//! Every table is read through [`weir_runtime::Pages`] (one page loop for every front end) and
//! committed with the offset its rows reach in one Delta commit (see `weir-delta`), at a
//! checkpointable offset once `commit_rows` rows are pending, and at the end of the read. A
//! partitioned table (contract 0.2) reads its partitions concurrently, each with an offset and
//! an application id of its own, so each commits exactly once on its own; commits to one table
//! are serialised. One table's failure does not stop the others.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use arrow_array::{RecordBatch, RecordBatchOptions};
use arrow_schema::SchemaRef;
use weir_delta::{Checkpoint, DeltaSink, WriteMode};
use weir_runtime::http::GateCounts;
use weir_runtime::{
    ConnectionSpec, ConnectorError, ErrorKind, IngestionType, Pages, Runtime, Session, Stream, same_offset,
};

use crate::IngestError;
use crate::app_id::{deletes_app_id, partition_app_id};
use crate::plan::Prepared;
use crate::progress::{Activity, Progress};
use crate::report::TableReport;
use crate::swap::{Active, Current};

/// How a run is carried out.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Local folder (absolute) or object-store URL.
    pub warehouse: String,
    /// Tables (and partitions of one table) processed at once.
    pub parallel: usize,
    /// Commit once this many rows are pending at a checkpointable offset.
    pub commit_rows: usize,
    /// Only these source or destination tables.
    pub only: Option<Vec<String>>,
    /// Run a connector given by path even when no trusted key signed it (`--allow-unsigned`).
    pub allow_unsigned: bool,
    /// Record every HTTP exchange into, or replay them from, this cassette.
    pub tape: Option<std::sync::Arc<weir_runtime::Tape>>,
}

impl RunOptions {
    /// The connection with this run's cassette, if any.
    pub fn taped(&self, connection: &ConnectionSpec) -> ConnectionSpec {
        let mut connection = connection.clone();
        connection.tape = self.tape.clone();
        connection
    }
}

/// What the workers share.
pub(crate) struct Ctx<'a> {
    pub runtime: &'a Runtime,
    /// The connector version in use; a following run swaps it between two commits.
    pub current: &'a Current,
    pub connection: &'a ConnectionSpec,
    pub options: &'a RunOptions,
    pub progress: &'a dyn Progress,
    pub tokio: &'a tokio::runtime::Handle,
    /// Set to stop: every read ends before its next page; what is committed stays committed.
    pub stop: &'a AtomicBool,
}

/// How a read ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FlowEnd {
    /// At the end of the data, with the offset committed last.
    Done(Option<String>),
    /// Early, between two commits: the run is stopping, or a new connector version takes over.
    Interrupted,
}

/// A lock that survives a panicked holder: the data is counters and a sink, both still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs every table, `parallel` at a time; returns their reports in the spec's order.
pub(crate) fn run_tables(ctx: &Ctx, tables: Vec<Prepared>) -> Vec<TableReport> {
    let queue = Mutex::new(tables.into_iter().enumerate().collect::<VecDeque<_>>());
    let reports = Mutex::new(BTreeMap::new());
    std::thread::scope(|scope| {
        for _ in 0..ctx.options.parallel.max(1) {
            scope.spawn(|| {
                loop {
                    let Some((i, table)) = lock(&queue).pop_front() else { break };
                    let report = run_table(ctx, &table);
                    lock(&reports).insert(i, report);
                }
            });
        }
    });
    reports.into_inner().unwrap_or_else(PoisonError::into_inner).into_values().collect()
}

fn run_table(ctx: &Ctx, table: &Prepared) -> TableReport {
    let started = Instant::now();
    let report = Mutex::new(TableReport::new(&table.plan, table.metadata.ingestion_type.name(), &table.uri));
    ctx.progress.started(&lock(&report));
    let result = ingest(ctx, table, &report);
    let mut report = report.into_inner().unwrap_or_else(PoisonError::into_inner);
    if let Err(e) = result {
        report.error = Some(e.to_string());
    }
    report.duration = started.elapsed();
    ctx.progress.finished(&report);
    report
}

/// One stream of a table into the sink under one application id.
struct Flow<'a> {
    app_id: String,
    stream: Stream,
    mode: &'a WriteMode,
}

fn ingest(ctx: &Ctx, table: &Prepared, report: &Mutex<TableReport>) -> Result<(), IngestError> {
    let what = table.describe();
    let sink = ctx
        .tokio
        .block_on(DeltaSink::open(&table.uri, table.sink_schema.clone(), &table.mode))
        .map_err(|source| IngestError::Sink { table: what.clone(), error: source })?;
    // Fair (first come, first served): partitions read faster than they commit, and an unfair
    // lock would let one partition commit again and again while the others wait.
    let sink = tokio::sync::Mutex::new(sink);
    let deletes = table.delete_mode.as_ref().map(|mode| Flow {
        app_id: deletes_app_id(&table.app_id),
        stream: Stream::Deletes,
        mode,
    });
    // Deletes that have never run go first, so that the connector starts watching them (Airtable:
    // creates its webhook) before the table is read and nothing deleted in between is missed; a
    // table that already holds rows is resynchronised then (see `resync`).
    let deletes_first = match &deletes {
        Some(flow) => ctx
            .tokio
            .block_on(async { sink.lock().await.last_checkpoint(&flow.app_id).await })
            .map_err(|error| IngestError::Sink { table: table.describe(), error })?
            .is_none(),
        None => false,
    };
    let mut deletes = deletes;
    if deletes_first && let Some(flow) = deletes.take() {
        run_flow(ctx, table, &sink, flow, report)?;
    }
    if table.partitions.is_empty() {
        let main = Flow { app_id: table.app_id.clone(), stream: Stream::Table, mode: &table.mode };
        if run_flow(ctx, table, &sink, main, report)? == FlowEnd::Interrupted {
            return Ok(());
        }
    } else if partitioned(ctx, table, &sink, report)? == FlowEnd::Interrupted {
        return Ok(());
    }
    if let Some(flow) = deletes {
        run_flow(ctx, table, &sink, flow, report)?;
    }
    cluster(ctx, table, &sink, report)
}

/// Z-orders the table by its `cluster_by` columns once a run has changed rows: after the last
/// commit, so that the rewrite covers everything the run wrote. A run killed before it leaves
/// the table correct and unclustered until the next run that changes rows.
fn cluster(
    ctx: &Ctx,
    table: &Prepared,
    sink: &tokio::sync::Mutex<DeltaSink>,
    report: &Mutex<TableReport>,
) -> Result<(), IngestError> {
    let changed = {
        let r = report.lock().unwrap_or_else(PoisonError::into_inner);
        r.inserted + r.updated + r.deleted > 0
    };
    if table.cluster_by.is_empty() || !changed {
        return Ok(());
    }
    let files = ctx
        .tokio
        .block_on(async { sink.lock().await.cluster(&table.cluster_by).await })
        .map_err(|error| IngestError::Sink { table: table.describe(), error })?;
    report.lock().unwrap_or_else(PoisonError::into_inner).clustered_files = files;
    Ok(())
}

/// Whether an error is the connector saying it cannot resume its start offset.
fn cannot_resume(e: &IngestError) -> Option<&str> {
    match e {
        IngestError::Call { error, .. } => match &error.kind {
            ErrorKind::Connector(ConnectorError::UnsupportedOffset(why)) => Some(why),
            _ => None,
        },
        _ => None,
    }
}

/// Whether an error is the connector saying its deletes lost continuity: why, and the offset
/// deletes resume from once the table is resynchronised.
fn continuity_lost(e: &IngestError) -> Option<(String, String)> {
    match e {
        IngestError::Call { error, .. } => match &error.kind {
            ErrorKind::Connector(ConnectorError::ContinuityLost { reason, resume_offset }) => {
                Some((reason.clone(), resume_offset.clone()))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Resynchronisations one deletes flow may need in a run before it gives up: a connector whose
/// deletes lose continuity again right after one is broken, not unlucky.
const MAX_RESYNCS: usize = 3;

/// One flow in a session of its own on the active connector version. A version that cannot
/// resume the committed offset (another version wrote it) says so, and the flow restarts from
/// the beginning rather than corrupting the table: cdc and snapshot reads merge or replace
/// anyway, and an append flow's first commit then replaces what the table held.
fn run_flow(
    ctx: &Ctx,
    table: &Prepared,
    sink: &tokio::sync::Mutex<DeltaSink>,
    flow: Flow,
    report: &Mutex<TableReport>,
) -> Result<FlowEnd, IngestError> {
    let active = ctx.current.get();
    let mut session = ctx.runtime.session(&active.connector, ctx.connection)?;
    let mut result = read_flow(ctx, table, &mut session, &active, sink, &flow, false, report);
    if let Some(why) = result.as_ref().err().and_then(cannot_resume) {
        let restarting =
            matches!(flow.stream, Stream::Table | Stream::Deletes) || !matches!(flow.mode, WriteMode::Append);
        if restarting {
            ctx.progress.notice(&format!(
                "{}: connector {} cannot resume the committed offset ({why}); the table restarts from the beginning",
                table.describe(),
                active.describe()
            ));
            result = read_flow(ctx, table, &mut session, &active, sink, &flow, true, report);
        }
    }
    for _ in 0..MAX_RESYNCS {
        let Some((reason, resume)) = result.as_ref().err().and_then(continuity_lost) else { break };
        if let Err(e) = resync(ctx, table, &mut session, &active, sink, &flow, &reason, resume, report) {
            result = Err(e);
            break;
        }
        result = read_flow(ctx, table, &mut session, &active, sink, &flow, false, report);
    }
    add_counts(&mut lock(report).http, session.http_counts());
    result
}

/// The connector's deletes lost continuity (an expired webhook, payloads past retention, or
/// deletes that never ran): reads the whole table and, in one commit that also moves the deletes
/// to `resume_offset`, deletes (SCD 1) or closes (SCD 2) every row whose key it no longer holds.
/// A table that holds no rows has nothing to remove: only the offset is committed.
#[allow(clippy::too_many_arguments)]
fn resync(
    ctx: &Ctx,
    table: &Prepared,
    session: &mut Session,
    active: &Active,
    sink: &tokio::sync::Mutex<DeltaSink>,
    flow: &Flow,
    reason: &str,
    resume_offset: String,
    report: &Mutex<TableReport>,
) -> Result<(), IngestError> {
    let what = table.describe();
    let sink_error = |error| IngestError::Sink { table: what.clone(), error };
    let Some(mode) = flow.mode.resync() else {
        return Err(IngestError::Plan {
            table: what.clone(),
            message: format!("deletes lost continuity ({reason}), and this write mode cannot resynchronise"),
        });
    };
    let (rows, last) = ctx
        .tokio
        .block_on(async {
            let sink = sink.lock().await;
            Ok((sink.row_count().await?, sink.last_checkpoint(&flow.app_id).await?))
        })
        .map_err(sink_error)?;
    let mut keys = Vec::new();
    if rows > 0 {
        ctx.progress.notice(&format!(
            "{what}: deletes lost continuity ({reason}); reading the whole table to remove what the source no longer has"
        ));
        let (source, options) = (&table.plan.source_table, &table.plan.table_options);
        let mut pages = Pages::new(session, source, options, Stream::Table, None, table.schema.clone());
        let key_columns: Vec<bool> =
            table.sink_schema.fields().iter().map(|f| mode.key_columns().contains(f.name())).collect();
        let mut read = 0u64;
        while let Some(page) = pages.next_page() {
            let page =
                page.map_err(|source| IngestError::Call { table: what.clone(), error: Box::new(source) })?;
            read += page.rows as u64;
            // Only the keys matter: the other columns become nulls rather than stay in memory.
            keys.extend(
                page.batches.into_iter().filter(|b| b.num_rows() > 0).map(|b| keys_only(b, &key_columns)),
            );
            ctx.progress.update(&lock(report), Activity::ReadingDeletes);
        }
        lock(report)
            .count([("resync.rows_read".to_string(), read)])
            .map_err(|message| IngestError::Plan { table: what.clone(), message })?;
    } else {
        ctx.progress.notice(&format!("{what}: {reason}; the table holds no rows, so none can be stale"));
    }
    let checkpoint = Checkpoint {
        app_id: flow.app_id.clone(),
        version: last.map_or(0, |c| c.version) + 1,
        offset: resume_offset,
        connector: Some(active.stamp.clone()),
    };
    commit(ctx, table, sink, &mode, &checkpoint, keys, report)
}

/// The batch with every column but the keys replaced by nulls of its type.
fn keys_only(batch: RecordBatch, key_columns: &[bool]) -> RecordBatch {
    let rows = batch.num_rows();
    let columns = batch
        .columns()
        .iter()
        .zip(key_columns)
        .map(|(c, key)| if *key { c.clone() } else { arrow_array::new_null_array(c.data_type(), rows) })
        .collect();
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(batch.schema(), columns, &options).unwrap_or(batch)
}

fn add_counts(total: &mut GateCounts, more: GateCounts) {
    total.requests += more.requests;
    total.denied += more.denied;
    total.retries += more.retries;
    total.rate_limited += more.rate_limited;
}

fn snapshot_mode(mode: &WriteMode) -> bool {
    matches!(mode, WriteMode::Replace | WriteMode::Scd2Snapshot { .. })
}

/// Reads one flow from its last committed offset (or the beginning, when `restart`) to the end,
/// committing as it goes, until the run stops or a new connector version takes over.
#[allow(clippy::too_many_arguments)]
fn read_flow(
    ctx: &Ctx,
    table: &Prepared,
    session: &mut Session,
    active: &Active,
    sink: &tokio::sync::Mutex<DeltaSink>,
    flow: &Flow,
    restart: bool,
    report: &Mutex<TableReport>,
) -> Result<FlowEnd, IngestError> {
    let what = table.describe();
    let sink_error = |source| IngestError::Sink { table: what.clone(), error: source };
    let last = ctx
        .tokio
        .block_on(async { sink.lock().await.last_checkpoint(&flow.app_id).await })
        .map_err(sink_error)?;
    let version = last.as_ref().map_or(0, |c| c.version);
    // A snapshot is read whole every run; incremental reads resume where the table stands.
    let committed = match (table.source_ingestion, last) {
        (IngestionType::Snapshot, _) | (_, None) => None,
        _ if restart => None,
        (_, Some(c)) => Some(c.offset),
    };
    // An append flow that restarts replaces the table's rows with its first commit.
    let first_mode = (restart && matches!(flow.mode, WriteMode::Append)).then_some(WriteMode::Replace);
    let pending_limit = session.connection().limits.pending_mib << 20;
    let start = Start { version, committed: committed.clone(), first_mode, pending_limit };
    let (source, options) = (&table.plan.source_table, &table.plan.table_options);
    let pages = Pages::new(session, source, options, flow.stream.clone(), committed, table.schema.clone());
    // The connector reads the next pages while this thread converts and commits.
    pages.read_ahead(|pages| commit_pages(ctx, table, active, sink, flow, report, pages, start))
}

/// Where a flow starts: its last commit, and how its first commit writes.
struct Start {
    version: i64,
    committed: Option<String>,
    first_mode: Option<WriteMode>,
    /// Bytes of rows the host holds at most without a checkpointable offset.
    pending_limit: u64,
}

/// Commits a flow's pages as they come, at checkpointable offsets, until the read ends, the run
/// stops, or a new connector version takes over.
#[allow(clippy::too_many_arguments)]
fn commit_pages(
    ctx: &Ctx,
    table: &Prepared,
    active: &Active,
    sink: &tokio::sync::Mutex<DeltaSink>,
    flow: &Flow,
    report: &Mutex<TableReport>,
    pages: &mut Pages,
    start: Start,
) -> Result<FlowEnd, IngestError> {
    let what = table.describe();
    let Start { mut version, mut committed, mut first_mode, pending_limit } = start;
    let snapshot = snapshot_mode(flow.mode);
    let activity = match flow.stream {
        Stream::Deletes => Activity::ReadingDeletes,
        _ => Activity::Reading { partitions: table.partitions.len() as u64 },
    };
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_rows = 0u64;
    let mut pending_bytes = 0u64;
    loop {
        if ctx.stop.load(Ordering::Relaxed) {
            // What is pending was read but not committed: the next run reads it again.
            return Ok(FlowEnd::Interrupted);
        }
        let Some(page) = pages.next_page() else { break };
        let page =
            page.map_err(|source| IngestError::Call { table: what.clone(), error: Box::new(source) })?;
        if let Some(pause) = ctx.current.take_swap_pause() {
            ctx.progress.notice(&format!(
                "{}: the first page read by connector {} came {} ms after the swap",
                what,
                active.describe(),
                pause.as_millis()
            ));
        }
        {
            let mut r = lock(report);
            r.pages += 1;
            r.rows_read += page.rows as u64;
            r.count(page.counters).map_err(|message| IngestError::Plan { table: what.clone(), message })?;
            ctx.progress.update(&r, activity);
        }
        pending_rows += page.rows as u64;
        pending_bytes += page.batches.iter().map(RecordBatch::get_array_memory_size).sum::<usize>() as u64;
        pending.extend(page.batches.into_iter().filter(|b| b.num_rows() > 0));
        if pending_bytes > pending_limit && !(page.checkpointable && page.done) {
            return Err(IngestError::Plan {
                table: what.clone(),
                message: format!(
                    "the connector returned {} MiB of rows without a checkpointable offset to commit them at; \
                     the host holds at most {} MiB (limits.pending_mib): a connector must mark an offset \
                     checkpointable at least that often",
                    pending_bytes >> 20,
                    pending_limit >> 20
                ),
            });
        }
        let due = pending_rows >= ctx.options.commit_rows as u64 && !snapshot;
        let moved = !committed.as_deref().is_some_and(|c| same_offset(c, &page.end_offset));
        if page.checkpointable && (page.done || due) && (pending_rows > 0 || moved || snapshot) {
            version += 1;
            let checkpoint = Checkpoint {
                app_id: flow.app_id.clone(),
                version,
                offset: page.end_offset,
                connector: Some(active.stamp.clone()),
            };
            ctx.progress.update(&lock(report), Activity::Committing { rows: pending_rows });
            let mode = first_mode.take();
            commit(
                ctx,
                table,
                sink,
                mode.as_ref().unwrap_or(flow.mode),
                &checkpoint,
                std::mem::take(&mut pending),
                report,
            )?;
            committed = Some(checkpoint.offset);
            pending_rows = 0;
            pending_bytes = 0;
            ctx.current.confirm(active);
            if ctx.current.swap_pending() && !page.done {
                // Between two commits: the new version reads on from here.
                lock(report).unknown_fields += pages.converter().unknown_fields().values().sum::<u64>();
                return Ok(FlowEnd::Interrupted);
            }
        }
    }
    lock(report).unknown_fields += pages.converter().unknown_fields().values().sum::<u64>();
    Ok(FlowEnd::Done(committed))
}

fn commit(
    ctx: &Ctx,
    table: &Prepared,
    sink: &tokio::sync::Mutex<DeltaSink>,
    mode: &WriteMode,
    checkpoint: &Checkpoint,
    batches: Vec<RecordBatch>,
    report: &Mutex<TableReport>,
) -> Result<(), IngestError> {
    let what = table.describe();
    let batches = batches
        .into_iter()
        .map(|b| rename_batch(b, &table.sink_schema))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| IngestError::Plan { table: what.clone(), message: source.to_string() })?;
    let stats = ctx
        .tokio
        .block_on(async { sink.lock().await.commit(batches, mode, checkpoint).await })
        .map_err(|source| IngestError::Sink { table: what, error: source })?;
    let mut r = lock(report);
    r.commits += 1;
    r.inserted += stats.inserted;
    r.updated += stats.updated;
    r.deleted += stats.deleted;
    r.offset = checkpoint.offset.clone();
    Ok(())
}

/// Reads the partitions of a table concurrently (at most `parallel` at once), each with its
/// own session, offset and application id.
fn partitioned(
    ctx: &Ctx,
    table: &Prepared,
    sink: &tokio::sync::Mutex<DeltaSink>,
    report: &Mutex<TableReport>,
) -> Result<FlowEnd, IngestError> {
    let partitions = &table.partitions;
    lock(report).partitions = partitions.len() as u64;
    if snapshot_mode(&table.mode) {
        return partitioned_snapshot(ctx, table, sink, report).map(|()| FlowEnd::Done(None));
    }
    let queue = Mutex::new(partitions.iter().cloned().collect::<VecDeque<_>>());
    let offsets = Mutex::new(BTreeMap::new());
    let errors = Mutex::new(Vec::new());
    let interrupted = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..ctx.options.parallel.clamp(1, partitions.len()) {
            scope.spawn(|| {
                loop {
                    // Taken in a statement of its own: a `while let` would hold the queue's
                    // lock for the whole body, and the partitions would run one at a time.
                    let next = lock(&queue).pop_front();
                    let Some(partition) = next else { break };
                    let app_id = partition_app_id(&table.app_id, &partition);
                    let one =
                        Flow { app_id, stream: Stream::Partition(partition.clone()), mode: &table.mode };
                    match run_flow(ctx, table, sink, one, report) {
                        Ok(FlowEnd::Done(offset)) => {
                            lock(&offsets).insert(partition, offset);
                        }
                        Ok(FlowEnd::Interrupted) => interrupted.store(true, Ordering::Relaxed),
                        Err(e) => lock(&errors).push(e),
                    }
                }
            });
        }
    });
    let offsets = offsets.into_inner().unwrap_or_else(PoisonError::into_inner);
    lock(report).offset = serde_json::to_string(&offsets).unwrap_or_default();
    match errors.into_inner().unwrap_or_else(PoisonError::into_inner).into_iter().next() {
        Some(e) => Err(e),
        None if interrupted.into_inner() => Ok(FlowEnd::Interrupted),
        None => Ok(FlowEnd::Done(None)),
    }
}

/// A partitioned snapshot is one whole table: every partition is read (concurrently), then
/// the table is replaced in one commit.
fn partitioned_snapshot(
    ctx: &Ctx,
    table: &Prepared,
    sink: &tokio::sync::Mutex<DeltaSink>,
    report: &Mutex<TableReport>,
) -> Result<(), IngestError> {
    let what = table.describe();
    let active = ctx.current.get();
    let read = Mutex::new(Vec::new());
    let ends = Mutex::new(BTreeMap::new());
    let errors = Mutex::new(Vec::new());
    let queue = Mutex::new(table.partitions.iter().cloned().collect::<VecDeque<_>>());
    std::thread::scope(|scope| {
        for _ in 0..ctx.options.parallel.clamp(1, table.partitions.len()) {
            scope.spawn(|| {
                let mut session = match ctx.runtime.session(&active.connector, ctx.connection) {
                    Ok(s) => s,
                    Err(e) => return lock(&errors).push(IngestError::from(e)),
                };
                loop {
                    // Taken in a statement of its own: a `while let` would hold the queue's
                    // lock for the whole body, and the partitions would run one at a time.
                    let next = lock(&queue).pop_front();
                    let Some(partition) = next else { break };
                    let (source, options) = (&table.plan.source_table, &table.plan.table_options);
                    let stream = Stream::Partition(partition.clone());
                    let mut pages =
                        Pages::new(&mut session, source, options, stream, None, table.schema.clone());
                    while let Some(page) = pages.next_page() {
                        match page {
                            Ok(page) => {
                                let mut r = lock(report);
                                r.pages += 1;
                                r.rows_read += page.rows as u64;
                                if let Err(message) = r.count(page.counters) {
                                    lock(&errors).push(IngestError::Plan { table: what.clone(), message });
                                }
                                ctx.progress.update(
                                    &r,
                                    Activity::Reading { partitions: table.partitions.len() as u64 },
                                );
                                drop(r);
                                lock(&read).extend(page.batches.into_iter().filter(|b| b.num_rows() > 0));
                                if page.done {
                                    lock(&ends).insert(partition.clone(), page.end_offset);
                                }
                            }
                            Err(source) => lock(&errors)
                                .push(IngestError::Call { table: what.clone(), error: Box::new(source) }),
                        }
                    }
                }
                add_counts(&mut lock(report).http, session.http_counts());
            });
        }
    });
    if let Some(e) = errors.into_inner().unwrap_or_else(PoisonError::into_inner).into_iter().next() {
        return Err(e);
    }
    let last = ctx
        .tokio
        .block_on(async { sink.lock().await.last_checkpoint(&table.app_id).await })
        .map_err(|source| IngestError::Sink { table: what.clone(), error: source })?;
    let offset =
        serde_json::to_string(&ends.into_inner().unwrap_or_else(PoisonError::into_inner)).unwrap_or_default();
    let checkpoint = Checkpoint {
        app_id: table.app_id.clone(),
        version: last.map_or(0, |c| c.version) + 1,
        offset,
        connector: Some(active.stamp.clone()),
    };
    let batches = read.into_inner().unwrap_or_else(PoisonError::into_inner);
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    ctx.progress.update(&lock(report), Activity::Committing { rows: rows as u64 });
    commit(ctx, table, sink, &table.mode, &checkpoint, batches, report)
}

/// The batch's columns under the destination's names; the arrays are shared, not copied.
pub fn rename_batch(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(schema.clone(), batch.columns().to_vec(), &options)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::plan::{COLUMN_ID, keep_renamed_columns};

    #[test]
    fn rename_batch_keeps_the_arrays_under_the_new_names() {
        let field = |name: &str| {
            Field::new(name, DataType::Utf8, true)
                .with_metadata([(COLUMN_ID.to_string(), "fldA".to_string())].into())
        };
        let incoming = Arc::new(Schema::new(vec![field("primary_contact_email")]));
        let existing = Schema::new(vec![field("contact_email")]);
        let sink = keep_renamed_columns(&incoming, &existing);
        let array: arrow_array::ArrayRef =
            Arc::new(arrow_array::StringArray::from(vec![Some("a@x.io"), None]));
        let batch = RecordBatch::try_new(incoming, vec![array.clone()]).unwrap();
        let renamed = rename_batch(batch, &sink).unwrap();
        assert_eq!(renamed.schema().field(0).name(), "contact_email");
        assert_eq!(renamed.num_rows(), 2);
        assert!(Arc::ptr_eq(renamed.column(0), &array));
    }
}
