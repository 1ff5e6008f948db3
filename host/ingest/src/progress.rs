//! How a run tells its caller what it is doing: a small trait, so a front end can draw progress
//! bars, log, or ignore it, and the library knows nothing of terminals.

use crate::report::TableReport;

/// What a table is doing when it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Reading pages (of `partitions` partitions at once, when above zero).
    Reading { partitions: u64 },
    /// Reading tombstones.
    ReadingDeletes,
    /// Committing this many rows with their offset.
    Committing { rows: u64 },
}

/// Receives a run's progress. Every method has an empty default; calls come from the run's
/// worker threads.
pub trait Progress: Sync {
    /// A table starts.
    fn started(&self, _report: &TableReport) {}
    /// After each page and before each commit, with the table's running totals.
    fn update(&self, _report: &TableReport, _activity: Activity) {}
    /// A table is done (its report says whether it failed).
    fn finished(&self, _report: &TableReport) {}
    /// Something the user must be told that is not a table's progress, such as a connector
    /// running unsigned, or a new connector version taking over.
    fn notice(&self, _message: &str) {}
    /// A following run finished one pass over its tables.
    fn pass_finished(&self, _reports: &[TableReport]) {}
}

/// Progress that nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {}
