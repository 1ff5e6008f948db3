//! The page loop: a paged read from a start offset until the offset stops moving.
//!
//! Upstream's rule is that a read ends when a call's end offset equals its start offset; the
//! host passes every end offset back as the next start. [`Pages`] is that loop, written once:
//! every front end (preview, `weir run`, the conformance suite, Spark, benchmarks) reads
//! through it, so offsets are compared in one place ([`same_offset`]) and every read is bounded
//! the same way ([`ReadBounds`]): a connector whose offset moves for ever, or that returns
//! pages without rows for ever, fails the read with an error that names the rule it broke.
//!
//! A read runs in lock step (the caller asks, the connector reads one page) or ahead
//! ([`Pages::read_ahead`]: the connector's calls on a thread of their own, while the caller
//! converts and commits). Either way every page is converted and checked on the caller's thread
//! (`PageCheck`), and the pages arrive in the same order with the same bounds. Reading ahead
//! holds at most [`READ_AHEAD_BYTES`] of rows beyond one page in flight; a page larger than the
//! connection's `page_mib` is refused on arrival as in lock step.

use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arrow_schema::SchemaRef;
use weir_convert::Converter;

use crate::contract::Page;
use crate::session::{PageCheck, ReadPage, Session};
use crate::{CallError, ErrorKind};

/// Offsets are JSON objects: equal when their JSON is equal, whatever the key order or spacing.
pub fn same_offset(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (serde_json::from_str::<serde_json::Value>(a), serde_json::from_str::<serde_json::Value>(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// Whether `text` is an offset (or a partition descriptor): a JSON object.
pub fn is_offset(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| v.is_object())
}

/// Which of a table's streams a read follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stream {
    /// `read-table`.
    Table,
    /// `read-deletes`: tombstones.
    Deletes,
    /// `read-partition` of one partition descriptor.
    Partition(String),
}

/// The bounds of one read. A read that breaks one fails with [`ErrorKind::Read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBounds {
    /// Pages in a row that return no row while their offset moves.
    pub empty_pages: u64,
    /// Calls in one read.
    pub calls: u64,
    /// Wall time of one read, when set.
    pub duration: Option<Duration>,
}

impl Default for ReadBounds {
    fn default() -> Self {
        ReadBounds { empty_pages: 1000, calls: 10_000_000, duration: None }
    }
}

/// The rule a read broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadRule {
    #[error(
        "the connector returned {0} pages in a row without a row while its offset kept moving; \
         a read must end with an end offset equal to its start offset (limits.read_empty_pages)"
    )]
    EmptyPages(u64),
    #[error("the read made {0} calls without ending (limits.read_calls)")]
    Calls(u64),
    #[error("the read took longer than {0:?} without ending")]
    Duration(Duration),
    #[error("the thread reading ahead ended before the read did: it could not start, or it panicked")]
    ReaderLost,
}

impl Stream {
    /// The contract function that reads this stream.
    pub fn call(&self) -> &'static str {
        match self {
            Stream::Table => "read-table",
            Stream::Deletes => "read-deletes",
            Stream::Partition(_) => "read-partition",
        }
    }
}

/// Raw rows a read may hold ahead of its consumer (see [`Pages::read_ahead`]): a second of
/// reading at the simulator's pace, so that the reader rarely waits for a commit, and little
/// beside the rows pending a commit.
pub const READ_AHEAD_BYTES: usize = 16 << 20;

/// The pages of one read.
pub struct Pages<'s> {
    target: Target,
    source: Source<'s>,
    check: PageCheck,
    converter: Converter,
    empty_in_a_row: u64,
    finished: bool,
}

/// Where pages come from.
enum Source<'s> {
    /// Read on the caller's thread when asked for.
    Here(&'s mut Session, Reader),
    /// Read ahead on another thread (see [`Pages::read_ahead`]).
    Ahead(Receiver<Result<Raw, CallError>>, Arc<Queue>),
}

/// What a read reads, and its bounds.
#[derive(Clone)]
struct Target {
    connector: String,
    table: String,
    table_options: Vec<(String, String)>,
    stream: Stream,
    bounds: ReadBounds,
}

impl Target {
    fn broke(&self, rule: ReadRule) -> CallError {
        CallError {
            connector: self.connector.clone(),
            call: self.stream.call(),
            table: Some(self.table.clone()),
            kind: ErrorKind::Read(rule),
        }
    }
}

/// The connector's side of a read: where it stands, and the calls made.
struct Reader {
    offset: Option<String>,
    calls: u64,
    started: Instant,
}

/// A page as the connector returned it, and whether it ends its read.
struct Raw {
    page: Page,
    done: bool,
}

/// Whether a page ends its read: its end offset equals its start offset.
pub(crate) fn ends_read(start: Option<&str>, page: &Page) -> bool {
    start.is_some_and(|s| same_offset(s, &page.end_offset))
}

impl Reader {
    /// The next page, not yet converted; the offset moves on to its end.
    fn read(&mut self, session: &mut Session, target: &Target) -> Result<Raw, CallError> {
        self.calls += 1;
        if self.calls > target.bounds.calls {
            return Err(target.broke(ReadRule::Calls(target.bounds.calls)));
        }
        if let Some(limit) = target.bounds.duration
            && self.started.elapsed() > limit
        {
            return Err(target.broke(ReadRule::Duration(limit)));
        }
        let (table, options) = (&target.table, &target.table_options);
        let page = session.read_raw(&target.stream, table, options, self.offset.as_deref())?;
        let done = ends_read(self.offset.as_deref(), &page);
        self.offset = Some(page.end_offset.clone());
        Ok(Raw { page, done })
    }
}

/// The bytes of rows read ahead and not yet taken, bounded by [`READ_AHEAD_BYTES`].
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    taken: Condvar,
}

#[derive(Default)]
struct QueueState {
    bytes: usize,
    /// The consumer is gone.
    closed: bool,
}

impl Queue {
    fn state(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until there is room; false once the consumer is gone.
    fn wait_for_room(&self) -> bool {
        let mut state = self.state();
        while state.bytes >= READ_AHEAD_BYTES && !state.closed {
            state = self.taken.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        !state.closed
    }

    fn add(&self, n: usize) {
        self.state().bytes += n;
    }

    fn take(&self, n: usize) {
        let mut state = self.state();
        state.bytes = state.bytes.saturating_sub(n);
        self.taken.notify_all();
    }

    fn close(&self) {
        self.state().closed = true;
        self.taken.notify_all();
    }
}

/// What a page read ahead counts against [`READ_AHEAD_BYTES`]: its rows, and at least a 256th
/// of the budget, so that pages without rows cannot pile up either.
fn cost(raw: &Result<Raw, CallError>) -> usize {
    raw.as_ref().map_or(0, |r| r.page.rows.len()).max(READ_AHEAD_BYTES / 256)
}

impl<'s> Pages<'s> {
    /// A read of `stream` of `table` from `start` (None: from the beginning), converting rows
    /// to `schema`, bounded by the connection's limits.
    pub fn new(
        session: &'s mut Session,
        table: &str,
        table_options: &[(String, String)],
        stream: Stream,
        start: Option<String>,
        schema: SchemaRef,
    ) -> Pages<'s> {
        let target = Target {
            connector: session.connector().manifest.name.clone(),
            table: table.to_string(),
            table_options: table_options.to_vec(),
            stream,
            bounds: session.connection().limits.read_bounds(),
        };
        Pages {
            target,
            check: session.page_check(),
            converter: session.converter(schema),
            source: Source::Here(session, Reader { offset: start, calls: 0, started: Instant::now() }),
            empty_in_a_row: 0,
            finished: false,
        }
    }

    /// Replaces the bounds (tests, and callers with a tighter budget).
    pub fn with_bounds(mut self, bounds: ReadBounds) -> Self {
        self.target.bounds = bounds;
        self
    }

    /// The converter, with its counts of fields the schema lacks.
    pub fn converter(&self) -> &Converter {
        &self.converter
    }

    /// Runs `consume` over this read with the connector's calls made on another thread, ahead
    /// of it: while the caller converts a page and commits, the connector already reads the
    /// next ones, at most [`READ_AHEAD_BYTES`] of rows ahead. Pages come in the same order,
    /// with the same checks and bounds. Once `consume` returns, the reading thread stops after
    /// the call it is in, and what it read ahead is dropped: a read resumes from what was
    /// committed, never from what was read.
    pub fn read_ahead<R>(self, consume: impl FnOnce(&mut Pages<'_>) -> R) -> R {
        let Pages { target, source, check, converter, empty_in_a_row, finished } = self;
        let (session, mut reader) = match source {
            Source::Here(session, reader) => (session, reader),
            source => {
                return consume(&mut Pages { target, source, check, converter, empty_in_a_row, finished });
            }
        };
        let queue = Arc::new(Queue::default());
        let (send, receive) = mpsc::channel();
        std::thread::scope(|scope| {
            let (reading, reads) = (queue.clone(), target.clone());
            let read = move || {
                while !finished && reading.wait_for_room() {
                    let raw = reader.read(session, &reads);
                    let last = !matches!(&raw, Ok(r) if !r.done);
                    reading.add(cost(&raw));
                    if send.send(raw).is_err() || last {
                        break;
                    }
                }
            };
            // A thread that cannot start drops its sender: the consumer's read fails (`ReaderLost`).
            let _ = std::thread::Builder::new().name("weir-read".into()).spawn_scoped(scope, read);
            let source = Source::Ahead(receive, queue.clone());
            let result = consume(&mut Pages { target, source, check, converter, empty_in_a_row, finished });
            queue.close();
            result
        })
    }

    /// The next page, or None once a page has ended the read (that page is returned, with
    /// [`ReadPage::done`] set). After an error the read is over too.
    pub fn next_page(&mut self) -> Option<Result<ReadPage, CallError>> {
        if self.finished {
            return None;
        }
        let raw = match &mut self.source {
            Source::Here(session, reader) => reader.read(session, &self.target),
            Source::Ahead(receive, queue) => {
                // The reading thread sends a last page or an error before it ends: a closed
                // channel means it did not start, or panicked (the scope passes the panic on).
                let raw = receive.recv().unwrap_or_else(|_| Err(self.target.broke(ReadRule::ReaderLost)));
                queue.take(cost(&raw));
                raw
            }
        };
        let page = raw.and_then(|raw| self.finish(raw));
        if !matches!(&page, Ok(p) if !p.done) {
            self.finished = true;
        }
        Some(page)
    }

    /// Converts and checks one page, and bounds the pages in a row that hold no row.
    fn finish(&mut self, raw: Raw) -> Result<ReadPage, CallError> {
        let target = &self.target;
        let page =
            self.check.finish(&target.stream, &target.table, raw.done, raw.page, &mut self.converter)?;
        if page.rows == 0 && !page.done {
            self.empty_in_a_row += 1;
            if self.empty_in_a_row >= target.bounds.empty_pages {
                return Err(target.broke(ReadRule::EmptyPages(self.empty_in_a_row)));
            }
        } else {
            self.empty_in_a_row = 0;
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::same_offset;

    #[test]
    fn offsets_compare_as_json() {
        assert!(same_offset(r#"{"a":1,"b":[1,2]}"#, r#"{ "b": [1, 2], "a": 1 }"#));
        assert!(!same_offset(r#"{"a":1}"#, r#"{"a":2}"#));
        assert!(same_offset("not json", "not json"));
        assert!(!same_offset("not json", "not  json"));
    }
}
