//! The page loop: a paged read from a start offset until the offset stops moving.
//!
//! Upstream's rule is that a read ends when a call's end offset equals its start offset; the
//! host passes every end offset back as the next start. [`Pages`] is that loop, written once:
//! every front end (preview, `weir run`, the conformance suite, Spark, benchmarks) reads
//! through it, so offsets are compared in one place ([`same_offset`]) and every read is bounded
//! the same way ([`ReadBounds`]): a connector whose offset moves for ever, or that returns
//! pages without rows for ever, fails the read with an error that names the rule it broke.

use std::time::{Duration, Instant};

use arrow_schema::SchemaRef;
use weir_convert::Converter;

use crate::session::{ReadPage, Session};
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
}

/// The pages of one read.
pub struct Pages<'s> {
    session: &'s mut Session,
    table: String,
    table_options: Vec<(String, String)>,
    stream: Stream,
    offset: Option<String>,
    converter: Converter,
    bounds: ReadBounds,
    calls: u64,
    empty_in_a_row: u64,
    started: Instant,
    finished: bool,
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
        let bounds = session.connection().limits.read_bounds();
        let converter = session.converter(schema);
        Pages {
            session,
            table: table.to_string(),
            table_options: table_options.to_vec(),
            stream,
            offset: start,
            converter,
            bounds,
            calls: 0,
            empty_in_a_row: 0,
            started: Instant::now(),
            finished: false,
        }
    }

    /// Replaces the bounds (tests, and callers with a tighter budget).
    pub fn with_bounds(mut self, bounds: ReadBounds) -> Self {
        self.bounds = bounds;
        self
    }

    /// The offset the read has reached: the last page's end offset, or the start.
    pub fn offset(&self) -> Option<&str> {
        self.offset.as_deref()
    }

    /// The converter, with its counts of fields the schema lacks.
    pub fn converter(&self) -> &Converter {
        &self.converter
    }

    /// The session the read runs in.
    pub fn session(&mut self) -> &mut Session {
        self.session
    }

    /// The next page, or None once a page has ended the read (that page is returned, with
    /// [`ReadPage::done`] set). After an error the read is over too.
    pub fn next_page(&mut self) -> Option<Result<ReadPage, CallError>> {
        if self.finished {
            return None;
        }
        let page = self.read();
        match &page {
            Ok(p) if p.done => self.finished = true,
            Ok(p) => self.offset = Some(p.end_offset.clone()),
            Err(_) => self.finished = true,
        }
        Some(page)
    }

    fn read(&mut self) -> Result<ReadPage, CallError> {
        self.calls += 1;
        if self.calls > self.bounds.calls {
            return Err(self.broke(ReadRule::Calls(self.bounds.calls)));
        }
        if let Some(limit) = self.bounds.duration
            && self.started.elapsed() > limit
        {
            return Err(self.broke(ReadRule::Duration(limit)));
        }
        let (table, options, start) = (&self.table, &self.table_options, self.offset.as_deref());
        let page = match &self.stream {
            Stream::Table => self.session.read_table(table, options, start, &mut self.converter),
            Stream::Deletes => self.session.read_deletes(table, options, start, &mut self.converter),
            Stream::Partition(p) => {
                self.session.read_partition(table, options, p, start, &mut self.converter)
            }
        }?;
        if page.rows == 0 && !page.done {
            self.empty_in_a_row += 1;
            if self.empty_in_a_row >= self.bounds.empty_pages {
                return Err(self.broke(ReadRule::EmptyPages(self.empty_in_a_row)));
            }
        } else {
            self.empty_in_a_row = 0;
        }
        Ok(page)
    }

    fn broke(&self, rule: ReadRule) -> CallError {
        CallError {
            connector: self.session.connector().manifest.name.clone(),
            call: match self.stream {
                Stream::Table => "read-table",
                Stream::Deletes => "read-deletes",
                Stream::Partition(_) => "read-partition",
            },
            table: Some(self.table.clone()),
            kind: ErrorKind::Read(rule),
        }
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
