//! Reads: the page loop of `weir-runtime`, with every batch in exactly the Arrow schema Spark
//! checks (pyspark 4.2+ compares each batch's schema with the declared one).
//!
//! A whole read ([`Batches`]) runs on its own thread, which owns the session and keeps one page
//! ahead of Spark, handing batches over a bounded channel; a micro-batch ([`micro_batch`]) is read
//! on the caller's thread, because the stream must know its end offset before Spark plans it.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType, Schema, SchemaRef};
use weir_runtime::{Pages, Stream, same_offset};

use crate::plan::{Plan, PlanError};

/// Batches a reader thread may hold ready before Spark takes them.
const AHEAD: usize = 2;

/// Where a read's rows come from and go to.
pub struct Target {
    /// The schema rows are converted to: the schema Spark gave the reader, as Spark's JSON.
    pub convert: SchemaRef,
    /// The schema Spark checks batches against (pyspark's `to_arrow_schema` of the same).
    pub spark: SchemaRef,
}

impl Target {
    /// Both schemas, from the Spark JSON schema and the Arrow schema pyspark derives from it.
    pub fn new(spark_json: &str, spark: Schema) -> Result<Target, PlanError> {
        let convert = weir_convert::arrow_schema(spark_json)
            .map_err(|e| PlanError::Options(format!("the read's schema cannot be used: {e}")))?;
        if convert.fields().len() != spark.fields().len() {
            return Err(PlanError::Options("the read's schema and its Arrow form disagree".into()));
        }
        Ok(Target { convert: Arc::new(convert), spark: Arc::new(spark) })
    }

    /// The batch under Spark's schema. Types that differ only in the names of nested fields (a
    /// map's entries) are relabelled by a cast that shares the buffers; any other difference is
    /// a real conversion, which the converter's schema should have made unnecessary.
    pub fn conform(&self, batch: RecordBatch) -> Result<RecordBatch, String> {
        let columns = batch
            .columns()
            .iter()
            .zip(self.spark.fields())
            .map(|(column, field)| conform_column(column, field.data_type()))
            .collect::<Result<Vec<_>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        RecordBatch::try_new_with_options(self.spark.clone(), columns, &options).map_err(|e| e.to_string())
    }
}

fn conform_column(column: &ArrayRef, target: &DataType) -> Result<ArrayRef, String> {
    if column.data_type() == target {
        return Ok(column.clone());
    }
    arrow_cast::cast(column, target)
        .map_err(|e| format!("cannot give a {} column the type {target}: {e}", column.data_type()))
}

/// What a read reports per batch: a batch, or the error that ended it.
type Item = Result<RecordBatch, PlanError>;

/// A whole read, page after page, on its own thread.
pub struct Batches {
    receiver: Receiver<Item>,
}

impl Batches {
    /// Starts reading `stream` of the plan's table from the beginning, with `share` of the rate budgets.
    pub fn start(plan: Arc<Plan>, stream: Stream, target: Target, share: f64) -> Result<Batches, PlanError> {
        let table = plan.table()?.to_string();
        let (sender, receiver) = sync_channel(AHEAD);
        std::thread::Builder::new()
            .name("weir-read".into())
            .spawn(move || {
                if let Err(e) = produce(&plan, &table, stream, &target, share, &sender) {
                    let _ = sender.send(Err(e));
                }
            })
            .map_err(|e| PlanError::Runtime(format!("cannot start a reader thread: {e}")))?;
        Ok(Batches { receiver })
    }

    /// The next batch; None when the read is over.
    pub fn next_batch(&self) -> Option<Item> {
        self.receiver.recv().ok()
    }
}

/// Reads every page and sends its non-empty batches; stops early when the receiver is gone.
fn produce(
    plan: &Plan,
    table: &str,
    stream: Stream,
    target: &Target,
    share: f64,
    sender: &SyncSender<Item>,
) -> Result<(), PlanError> {
    let mut session = plan.session(share)?;
    let options = plan.wire.table_options.clone();
    let mut pages = Pages::new(&mut session, table, &options, stream, None, target.convert.clone());
    while let Some(page) = pages.next_page() {
        for batch in page?.batches.into_iter().filter(|b| b.num_rows() > 0) {
            let batch =
                target.conform(batch).map_err(|e| PlanError::Options(format!("table {table:?}: {e}")))?;
            if sender.send(Ok(batch)).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// One micro-batch of a stream that is not partitioned.
pub struct MicroBatch {
    pub batches: Vec<RecordBatch>,
    /// The offset the micro-batch reaches (the start's when nothing was new).
    pub end: Option<String>,
    /// The read caught up: its last page ended it.
    pub done: bool,
}

/// Reads from `start` until `max_pages` pages or `max_rows` rows are read and the offset is
/// checkpointable, until the read ends, or until the offset reaches `until` (a replay).
pub fn micro_batch(
    plan: &Plan,
    stream: Stream,
    target: &Target,
    start: Option<String>,
    (max_pages, max_rows): (u64, Option<u64>),
    until: Option<&str>,
) -> Result<MicroBatch, PlanError> {
    let table = plan.table()?.to_string();
    let mut session = plan.session(1.0)?;
    let pending_limit = session.connection().limits.pending_mib << 20;
    let options = plan.wire.table_options.clone();
    let mut pages = Pages::new(&mut session, &table, &options, stream, start.clone(), target.convert.clone());
    let (mut batches, mut read_pages, mut rows, mut bytes) = (Vec::new(), 0u64, 0u64, 0usize);
    let mut end = start;
    let mut done = false;
    while let Some(page) = pages.next_page() {
        let page = page?;
        read_pages += 1;
        rows += page.rows as u64;
        for batch in page.batches.into_iter().filter(|b| b.num_rows() > 0) {
            bytes += batch.get_array_memory_size();
            batches.push(
                target.conform(batch).map_err(|e| PlanError::Options(format!("table {table:?}: {e}")))?,
            );
        }
        end = Some(page.end_offset.clone());
        if page.done {
            done = true;
            break;
        }
        if (bytes as u64) > pending_limit && !page.checkpointable {
            return Err(PlanError::Options(format!(
                "table {table:?}: the connector returned more than {} MiB of rows without a checkpointable offset \
                 to end a micro-batch at (limits.pending_mib)",
                pending_limit >> 20
            )));
        }
        // A replay stops where the micro-batch stopped; the bounds still hold if the source has
        // changed so much since that its pages no longer fall on that offset.
        let reached = until.is_some_and(|u| same_offset(u, &page.end_offset));
        let full = read_pages >= max_pages || max_rows.is_some_and(|m| rows >= m);
        if page.checkpointable && (reached || full) {
            break;
        }
    }
    Ok(MicroBatch { batches, end, done })
}
