//! `weir run`: ingests a pipeline spec into Delta tables, exactly once.
//!
//! For each table: read pages from the sandboxed connector, convert them to Arrow, and
//! commit them with the offset they reach in one Delta commit (see `weir-delta`). A run
//! resumes each table from the offset its last commit holds. Everything the run would
//! need (every source table, schema, option and destination) is checked before the first
//! write, so a bad spec writes nothing. Tables then run concurrently, bounded, sharing the
//! runtime's rate-limit budgets; one table's failure does not stop the others.

pub mod spec;
mod summary;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use arrow_array::{RecordBatch, RecordBatchOptions};
use arrow_schema::{Field, FieldRef, Schema, SchemaRef};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use weir_delta::{Checkpoint, DeltaSink, WriteMode};
use weir_runtime::session::{IngestionType, TableMetadata};
use weir_runtime::{ConnectionSpec, LoadedConnector, Runtime};

use crate::explore::ingestion_name;
use spec::{Planned, ScdType};
pub use summary::{TableReport, print_summary};

/// How a run is carried out.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Local folder (absolute) or object-store URL.
    pub warehouse: String,
    /// Tables processed at once.
    pub parallel: usize,
    /// Commit once this many rows are pending at a checkpointable offset.
    pub commit_rows: usize,
    /// Show progress bars on stderr.
    pub progress: bool,
    /// Only these source or destination tables.
    pub only: Option<Vec<String>>,
}

/// The contract's field-metadata key for a stable source-column identifier.
const COLUMN_ID: &str = "column_id";

/// A table ready to run: the plan plus what the connector said about it.
struct Prepared {
    plan: Planned,
    /// The connector's schema, which its rows are keyed by.
    schema: SchemaRef,
    /// The same columns as the destination names them: renamed source fields keep their column.
    sink_schema: SchemaRef,
    metadata: TableMetadata,
    /// What the connector reads, before APPEND_ONLY overrides how it is written.
    source_ingestion: IngestionType,
    mode: WriteMode,
    delete_mode: Option<WriteMode>,
    uri: String,
    app_id: String,
}

/// Resolves a `--warehouse` argument: URLs pass through; folders are created and made absolute.
pub fn warehouse_uri(arg: &str) -> Result<String> {
    if arg.contains("://") {
        return Ok(arg.trim_end_matches('/').to_string());
    }
    std::fs::create_dir_all(arg).with_context(|| format!("cannot create warehouse folder {arg}"))?;
    let abs = std::fs::canonicalize(arg).with_context(|| format!("cannot resolve warehouse folder {arg}"))?;
    Ok(abs.to_string_lossy().into_owned())
}

/// Runs a whole pipeline; returns one report per table.
pub fn run(
    runtime: &Runtime,
    connector: &LoadedConnector,
    connection: &ConnectionSpec,
    tables: Vec<Planned>,
    options: &RunOptions,
    tokio: &tokio::runtime::Handle,
) -> Result<Vec<TableReport>> {
    let tables: Vec<Planned> = match &options.only {
        None => tables,
        Some(only) => {
            for name in only {
                if !tables.iter().any(|t| &t.source_table == name || &t.destination_name() == name) {
                    bail!("--tables names {name:?}, which is not in the spec");
                }
            }
            tables
                .into_iter()
                .filter(|t| only.iter().any(|n| n == &t.source_table || n == &t.destination_name()))
                .collect()
        }
    };
    let prepared = prepare(runtime, connector, connection, tables, options, tokio)?;

    let multi = MultiProgress::with_draw_target(if options.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let queue = Arc::new(Mutex::new(prepared.into_iter().enumerate().collect::<Vec<_>>()));
    let reports = Arc::new(Mutex::new(BTreeMap::new()));
    std::thread::scope(|scope| {
        for _ in 0..options.parallel.max(1) {
            let queue = queue.clone();
            let reports = reports.clone();
            let multi = &multi;
            scope.spawn(move || {
                loop {
                    let next = queue.lock().map(|mut q| if q.is_empty() { None } else { Some(q.remove(0)) });
                    let Ok(Some((i, table))) = next else { break };
                    let bar = multi.add(progress_bar(&table.plan.destination_name()));
                    let report = run_table(runtime, connector, connection, &table, options, tokio, &bar);
                    bar.finish_with_message(match &report.error {
                        None => format!("done: {} rows, {} commits", report.rows_read, report.commits),
                        Some(e) => format!("failed: {}", e.lines().next().unwrap_or_default()),
                    });
                    if let Ok(mut r) = reports.lock() {
                        r.insert(i, report);
                    }
                }
            });
        }
    });
    let reports = Arc::try_unwrap(reports).map_err(|_| anyhow!("a table worker is still running"))?;
    Ok(reports.into_inner().map_err(|_| anyhow!("a table worker panicked"))?.into_values().collect())
}

fn progress_bar(name: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix:<32} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(name.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Asks the connector about every table before anything is written.
fn prepare(
    runtime: &Runtime,
    connector: &LoadedConnector,
    connection: &ConnectionSpec,
    tables: Vec<Planned>,
    options: &RunOptions,
    tokio: &tokio::runtime::Handle,
) -> Result<Vec<Prepared>> {
    let mut session = runtime.session(connector, connection)?;
    let mut out = Vec::new();
    for plan in tables {
        let what = || format!("table {:?} (destination {})", plan.source_table, plan.destination_name());
        let schema = session.arrow_schema(&plan.source_table, &plan.table_options).with_context(what)?;
        let metadata = session.table_metadata(&plan.source_table, &plan.table_options).with_context(what)?;
        let uri = format!("{}/{}", options.warehouse, plan.destination.join("/"));
        let sink_schema = match tokio.block_on(weir_delta::table_schema(&uri)).with_context(what)? {
            Some(existing) => keep_renamed_columns(&schema, &existing),
            None => schema.clone(),
        };
        // Keys may name a source field by its new name; the destination knows it by its old one.
        let dest = |name: &String| match schema.index_of(name) {
            Ok(i) => sink_schema.field(i).name().clone(),
            Err(_) => name.clone(),
        };
        let keys: Vec<String> =
            plan.primary_keys.as_ref().unwrap_or(&metadata.primary_keys).iter().map(dest).collect();
        let sequence_by = plan.sequence_by.as_ref().or(metadata.cursor_field.as_ref()).map(dest);
        let cluster_by: Vec<String> = plan.cluster_by.iter().map(dest).collect();
        for column in keys.iter().chain(sequence_by.iter()).chain(cluster_by.iter()) {
            if sink_schema.field_with_name(column).is_err() {
                bail!(
                    "{}: column {column:?} (a primary key, sequence_by or cluster_by) is not in the schema",
                    what()
                );
            }
        }
        let ingestion = if plan.scd_type == ScdType::AppendOnly {
            IngestionType::Append
        } else {
            metadata.ingestion_type
        };
        let needs_keys = !matches!(ingestion, IngestionType::Append);
        if needs_keys && keys.is_empty() {
            bail!("{}: no primary keys; set table_configuration.primary_keys", what());
        }
        let scd2 = plan.scd_type == ScdType::Type2;
        let scd2_sequence = || {
            sequence_by
                .clone()
                .ok_or_else(|| anyhow!("{}: SCD_TYPE_2 on a cdc table needs sequence_by", what()))
        };
        let (mode, delete_mode) = match (ingestion, scd2) {
            (IngestionType::Append, _) => (WriteMode::Append, None),
            (IngestionType::Snapshot, false) => (WriteMode::Replace, None),
            (IngestionType::Snapshot, true) => (WriteMode::Scd2Snapshot { keys }, None),
            (IngestionType::Cdc, false) => (WriteMode::Upsert { keys, sequence_by }, None),
            (IngestionType::Cdc, true) => {
                (WriteMode::Scd2Upsert { keys, sequence_by: scd2_sequence()? }, None)
            }
            (IngestionType::CdcWithDeletes, false) => (
                WriteMode::Upsert { keys: keys.clone(), sequence_by: sequence_by.clone() },
                Some(WriteMode::Delete { keys, sequence_by }),
            ),
            (IngestionType::CdcWithDeletes, true) => {
                let seq = scd2_sequence()?;
                (
                    WriteMode::Scd2Upsert { keys: keys.clone(), sequence_by: seq.clone() },
                    Some(WriteMode::Scd2Delete { keys, sequence_by: seq }),
                )
            }
        };
        let app_id = format!("weir/{}/{}", connection.name, plan.destination_name());
        out.push(Prepared {
            source_ingestion: metadata.ingestion_type,
            metadata: TableMetadata { ingestion_type: ingestion, ..metadata },
            plan,
            schema,
            sink_schema,
            mode,
            delete_mode,
            uri,
            app_id,
        });
    }
    Ok(out)
}

fn run_table(
    runtime: &Runtime,
    connector: &LoadedConnector,
    connection: &ConnectionSpec,
    table: &Prepared,
    options: &RunOptions,
    tokio: &tokio::runtime::Handle,
    bar: &ProgressBar,
) -> TableReport {
    let started = Instant::now();
    let mut report = TableReport::new(&table.plan, ingestion_name(table.metadata.ingestion_type), &table.uri);
    let result = ingest(runtime, connector, connection, table, options, tokio, bar, &mut report);
    if let Err(e) = result {
        report.error = Some(format!("{e:#}"));
    }
    report.duration = started.elapsed();
    report
}

#[allow(clippy::too_many_arguments)]
fn ingest(
    runtime: &Runtime,
    connector: &LoadedConnector,
    connection: &ConnectionSpec,
    table: &Prepared,
    options: &RunOptions,
    tokio: &tokio::runtime::Handle,
    bar: &ProgressBar,
    report: &mut TableReport,
) -> Result<()> {
    let mut session = runtime.session(connector, connection)?;
    let mut sink = tokio.block_on(DeltaSink::open(&table.uri, table.sink_schema.clone(), &table.mode))?;
    let started = Instant::now();
    let mut flows = vec![(table.mode.clone(), table.app_id.clone(), false)];
    if let Some(mode) = &table.delete_mode {
        flows.push((mode.clone(), format!("{}#deletes", table.app_id), true));
    }
    for (mode, app_id, deletes) in flows {
        let last = tokio.block_on(sink.last_checkpoint(&app_id))?;
        let mut version = last.as_ref().map_or(0, |c| c.version);
        // A snapshot is read whole every run; incremental reads resume where the table stands.
        let mut start = match (&table.source_ingestion, last) {
            (IngestionType::Snapshot, _) | (_, None) => None,
            (_, Some(c)) => Some(c.offset),
        };
        let mut converter = weir_convert::Converter::new(table.schema.clone());
        let mut pending: Vec<RecordBatch> = Vec::new();
        let mut pending_rows = 0usize;
        let snapshot = matches!(mode, WriteMode::Replace | WriteMode::Scd2Snapshot { .. });
        loop {
            bar.set_message(format!(
                "{} rows, {} pages, {:.0} rows/s, {}",
                report.rows_read,
                report.pages,
                report.rows_read as f64 / started.elapsed().as_secs_f64().max(1e-3),
                if deletes { "reading deletes" } else { "reading" }
            ));
            let page = if deletes {
                session.read_deletes(
                    &table.plan.source_table,
                    &table.plan.table_options,
                    start.as_deref(),
                    &mut converter,
                )?
            } else {
                session.read_table(
                    &table.plan.source_table,
                    &table.plan.table_options,
                    start.as_deref(),
                    &mut converter,
                )?
            };
            report.pages += 1;
            report.rows_read += page.rows as u64;
            for (name, n) in page.counters {
                *report.counters.entry(name).or_default() += n;
            }
            pending_rows += page.rows;
            pending.extend(page.batches.into_iter().filter(|b| b.num_rows() > 0));
            let done = start.as_deref().is_some_and(|s| same_offset(s, &page.end_offset));
            let moved = start.as_deref() != Some(page.end_offset.as_str());
            start = Some(page.end_offset);
            let due = pending_rows >= options.commit_rows && !snapshot;
            if page.checkpointable && (done || due) && (pending_rows > 0 || moved || snapshot) {
                version += 1;
                let checkpoint =
                    Checkpoint { app_id: app_id.clone(), version, offset: start.clone().unwrap_or_default() };
                bar.set_message(format!("committing {pending_rows} rows"));
                let batches = std::mem::take(&mut pending)
                    .into_iter()
                    .map(|b| rename_batch(b, &table.sink_schema))
                    .collect::<Result<Vec<_>>>()?;
                let stats = tokio.block_on(sink.commit(batches, &mode, &checkpoint))?;
                pending_rows = 0;
                report.commits += 1;
                report.inserted += stats.inserted;
                report.updated += stats.updated;
                report.deleted += stats.deleted;
                report.offset = checkpoint.offset;
            }
            if done {
                break;
            }
        }
        report.unknown_fields += converter.unknown_fields().values().sum::<u64>();
    }
    report.http = session.http_counts();
    Ok(())
}

/// The incoming schema with each renamed source field under its existing destination name: a
/// field whose `column_id` matches an existing column's under another name takes that name,
/// unless an incoming field already carries it (then the source really has a column by that name).
fn keep_renamed_columns(incoming: &SchemaRef, existing: &Schema) -> SchemaRef {
    let column_id = |f: &Field| f.metadata().get(COLUMN_ID).cloned();
    let mut taken: HashSet<String> = incoming.fields().iter().map(|f| f.name().clone()).collect();
    let fields: Vec<FieldRef> = incoming
        .fields()
        .iter()
        .map(|f| {
            let old = column_id(f).and_then(|id| {
                existing.fields().iter().find(|e| column_id(e).as_ref() == Some(&id)).map(|e| e.name())
            });
            match old {
                Some(old) if old != f.name() && taken.insert(old.clone()) => {
                    Arc::new(f.as_ref().clone().with_name(old))
                }
                _ => f.clone(),
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, incoming.metadata().clone()))
}

/// The batch's columns under the destination's names; the arrays are shared, not copied.
fn rename_batch(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(schema.clone(), batch.columns().to_vec(), &options)
        .context("cannot rename the batch's columns to the destination's names")
}

/// Offsets are JSON objects: equal when their JSON is equal, whatever the key order.
fn same_offset(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (serde_json::from_str::<serde_json::Value>(a), serde_json::from_str::<serde_json::Value>(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// Runs a spec file end to end: load, connect, run, report.
pub fn run_spec(
    spec_path: &Path,
    connections: &Path,
    connection_override: Option<&str>,
    options: &RunOptions,
) -> Result<Vec<TableReport>> {
    let spec = spec::PipelineSpec::load(spec_path)?;
    let plan = spec.plan().with_context(|| format!("pipeline spec {}", spec_path.display()))?;
    let file = weir_runtime::ConnectionsFile::load(connections)?;
    let name = connection_override.unwrap_or(&spec.connection_name);
    let connection = file.get(name)?;
    let base = connections.parent().unwrap_or(Path::new("."));
    let bytes = crate::connect::component_bytes(&connection.connector, base)?;
    let runtime = crate::connect::runtime()?;
    let connector = runtime.load(&bytes)?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    run(&runtime, &connector, connection, plan, options, tokio.handle())
}

#[cfg(test)]
mod tests {
    use arrow_schema::DataType;

    use super::*;

    fn field(name: &str, id: Option<&str>) -> Field {
        let f = Field::new(name, DataType::Utf8, true);
        match id {
            Some(id) => f.with_metadata([(COLUMN_ID.to_string(), id.to_string())].into()),
            None => f,
        }
    }

    fn names(schema: &Schema) -> Vec<&str> {
        schema.fields().iter().map(|f| f.name().as_str()).collect()
    }

    #[test]
    fn a_renamed_field_keeps_its_existing_column_by_column_id() {
        let existing = Schema::new(vec![
            field("id", None),
            field("contact_email", Some("fldA")),
            field("notes", Some("fldB")),
        ]);
        let incoming = Arc::new(Schema::new(vec![
            field("id", None),
            field("primary_contact_email", Some("fldA")),
            field("notes", Some("fldB")),
            field("new_field", Some("fldC")),
        ]));
        let out = keep_renamed_columns(&incoming, &existing);
        assert_eq!(names(&out), ["id", "contact_email", "notes", "new_field"]);
        assert_eq!(out.field(1).metadata().get(COLUMN_ID).map(String::as_str), Some("fldA"));
    }

    #[test]
    fn no_rename_onto_a_name_the_source_still_sends_or_without_a_matching_id() {
        let existing =
            Schema::new(vec![field("a", Some("fld1")), field("b", None), field("c", Some("fld3"))]);
        // fld1 is now "x" but the source also sends a new field called "a"; "y" has no id;
        // two incoming fields claim fld3, and only the first may take "c".
        let incoming = Arc::new(Schema::new(vec![
            field("x", Some("fld1")),
            field("a", Some("fld9")),
            field("y", None),
            field("z", Some("fld3")),
            field("w", Some("fld3")),
        ]));
        let out = keep_renamed_columns(&incoming, &existing);
        assert_eq!(names(&out), ["x", "a", "y", "c", "w"]);
    }

    #[test]
    fn rename_batch_keeps_the_arrays_under_the_new_names() {
        let incoming = Arc::new(Schema::new(vec![field("primary_contact_email", Some("fldA"))]));
        let existing = Schema::new(vec![field("contact_email", Some("fldA"))]);
        let sink = keep_renamed_columns(&incoming, &existing);
        let array: arrow_array::ArrayRef =
            Arc::new(arrow_array::StringArray::from(vec![Some("a@x.io"), None]));
        let batch = RecordBatch::try_new(incoming, vec![array.clone()]).unwrap();
        let renamed = rename_batch(batch, &sink).unwrap();
        assert_eq!(names(&renamed.schema()), ["contact_email"]);
        assert_eq!(renamed.num_rows(), 2);
        assert!(Arc::ptr_eq(renamed.column(0), &array));
    }
}
