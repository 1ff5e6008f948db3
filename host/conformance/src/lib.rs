//! The conformance suite for any `lakeflow:connect` component: upstream's `LakeflowConnectTests`
//! checks (UPSTREAM.md, "The conformance checks every connector must pass") and weir's own, run
//! through the runtime's public API, so through the sandbox, whatever language the connector is
//! written in. Every check runs, and each gives one result per table, so that one run lists
//! every violation. `weir test` prints the [`Report`]; weir's own tests assert on it.
//!
//! ```no_run
//! # fn demo(session: &mut weir_runtime::Session) {
//! let report = weir_conformance::run(session, &weir_conformance::Options::default());
//! for failure in report.failures() {
//!     eprintln!("{}: {}", failure.check, failure.detail);
//! }
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow_array::{Array, RecordBatch};
use arrow_schema::Schema;
use serde::Serialize;
use weir_convert::Converter;
use weir_runtime::contract::NAMESPACE_OPTION;
use weir_runtime::http::GateCounts;
use weir_runtime::read::is_offset;
use weir_runtime::{
    CallError, Capability, ConnectorError, ErrorKind, IngestionType, Pages, ReadBounds, Session, Stream,
    TableAddress, TableMetadata,
};

/// A table name no connector has.
pub const UNKNOWN_TABLE: &str = "weir_conformance_no_such_table";

/// The checks, in the order they run and print, with what each asserts.
pub const CHECKS: &[(&str, &str)] = &[
    ("list_tables", "list_tables returns at least one table, each once"),
    ("unknown_table", "every call on a table that does not exist fails, naming it"),
    ("schema", "the schema is a Spark struct with fields and no duplicate names (ignoring case)"),
    ("schema_stable", "two table_schema calls return the same schema"),
    ("metadata", "metadata is deterministic; keys and cursor are in the schema; cdc tables have a cursor"),
    ("read_terminates", "a read from the start ends (end offset = start offset) within the call bound"),
    ("offsets_json", "every end offset is a JSON object"),
    (
        "keys_not_null",
        "primary keys, the cursor and non-nullable columns hold no null; no record is all null",
    ),
    ("no_unknown_fields", "records carry only fields of the schema"),
    (
        "reread_from_checkpoint",
        "a read resumed from a checkpointable offset loses no row the full read has after it",
    ),
    ("deletes", "cdc_with_deletes tables: the deletes read ends and every tombstone has its keys"),
    ("partitions", "0.2 connectors with partitions: descriptors are stable JSON objects, and each read ends"),
    ("columns_populated", "every column holds a value in some record of the test data"),
];

/// What a check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// The check does not apply (say, deletes on a table without them).
    Skip,
}

/// One check on one table (or on the connector, for `list_tables` and `unknown_table`).
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub check: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    pub status: Status,
    /// Why it failed or does not apply; what it saw when it passed.
    pub detail: String,
}

/// What a read of one table returned.
#[derive(Debug, Clone, Default)]
pub struct TableRead {
    /// The primary key of every row, in read order, as text (`a|b` for compound keys).
    pub keys: Vec<String>,
    /// `read-table` calls until the offset stopped moving.
    pub calls: usize,
}

/// A conformance run's results.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub checks: Vec<CheckResult>,
    /// Each table's full read, for further assertions by the caller.
    #[serde(skip)]
    pub reads: BTreeMap<String, TableRead>,
    /// The sandbox's HTTP counters after the run.
    pub http: GateCounts,
}

impl Report {
    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        self.failures().next().is_none()
    }

    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }

    fn add(&mut self, check: &'static str, table: Option<&str>, problems: Vec<String>, seen: String) {
        let (status, detail) =
            if problems.is_empty() { (Status::Pass, seen) } else { (Status::Fail, problems.join("; ")) };
        self.checks.push(CheckResult { check, table: table.map(str::to_string), status, detail });
    }

    fn skip(&mut self, check: &'static str, table: &str, why: &str) {
        self.checks.push(CheckResult {
            check,
            table: Some(table.to_string()),
            status: Status::Skip,
            detail: why.to_string(),
        });
    }
}

/// What to check.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only these tables (by name); all when None.
    pub tables: Option<Vec<String>>,
    /// A read that has not ended after this many calls breaks `read_terminates`.
    pub max_calls: u64,
    /// Table options every call gets (say, a small page size, so that reads span pages).
    pub table_options: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options { tables: None, max_calls: 1000, table_options: Vec::new() }
    }
}

/// Runs every check against the session's connector and connection.
pub fn run(session: &mut Session, options: &Options) -> Report {
    let mut report = Report::default();
    let tables = match session.all_tables() {
        Ok(t) => t,
        Err(e) => {
            report.add("list_tables", None, vec![format!("list_tables failed: {e}")], String::new());
            report.http = session.http_counts();
            return report;
        }
    };
    let mut problems = Vec::new();
    if tables.is_empty() {
        problems.push("list_tables returned no tables".to_string());
    }
    let unique: BTreeSet<&TableAddress> = tables.iter().collect();
    if unique.len() != tables.len() {
        problems.push("list_tables returned a table twice".to_string());
    }
    report.add("list_tables", None, problems, format!("{} table(s)", tables.len()));
    let problems = unknown_table(session);
    report.add("unknown_table", None, problems, "every call failed naming it".into());

    if let Some(wanted) = &options.tables
        && let Some(missing) = wanted.iter().find(|w| !tables.iter().any(|t| &t.name == *w))
    {
        report.add(
            "list_tables",
            Some(missing),
            vec![format!("no table {missing:?} was listed")],
            String::new(),
        );
    }
    for address in &tables {
        if options.tables.as_ref().is_some_and(|w| !w.contains(&address.name)) {
            continue;
        }
        Table::new(session, address, options, &mut report).check();
    }
    report.http = session.http_counts();
    report
}

/// Every call on a table that does not exist must fail, naming it.
fn unknown_table(session: &mut Session) -> Vec<String> {
    let mut problems = Vec::new();
    let mut names_it = |call: &str, r: Result<(), CallError>, strict: bool| match r {
        Ok(()) => problems.push(format!("{call} on unknown table {UNKNOWN_TABLE:?} succeeded")),
        Err(e) => {
            let unknown = matches!(&e.kind, ErrorKind::Connector(ConnectorError::UnknownTable(t)) if t == UNKNOWN_TABLE);
            if strict && !unknown {
                problems.push(format!(
                    "{call} on an unknown table failed, but not with unknown-table naming it: {e}"
                ));
            }
            if !e.to_string().contains(UNKNOWN_TABLE) {
                problems.push(format!("{call}'s error does not name the unknown table: {e}"));
            }
        }
    };
    names_it("table_schema", session.table_schema(UNKNOWN_TABLE, &[]).map(drop), true);
    names_it("table_metadata", session.table_metadata(UNKNOWN_TABLE, &[]).map(drop), true);
    let mut converter = Converter::new(Arc::new(Schema::empty()));
    names_it("read_table", session.read_table(UNKNOWN_TABLE, &[], None, &mut converter).map(drop), true);
    // A connector without deletes may refuse read_deletes for any table; it must still fail.
    names_it("read_deletes", session.read_deletes(UNKNOWN_TABLE, &[], None, &mut converter).map(drop), false);
    problems
}

/// One page of a full read, as the re-read check needs it.
struct PageSeen {
    end_offset: String,
    checkpointable: bool,
    keys: Vec<String>,
}

/// The checks of one table.
struct Table<'a> {
    session: &'a mut Session,
    report: &'a mut Report,
    name: String,
    label: String,
    options: Vec<(String, String)>,
    max_calls: u64,
}

impl<'a> Table<'a> {
    fn new(
        session: &'a mut Session,
        address: &TableAddress,
        run: &Options,
        report: &'a mut Report,
    ) -> Table<'a> {
        let mut options = run.table_options.clone();
        let label = if address.namespace.is_empty() {
            address.name.clone()
        } else {
            options.push((
                NAMESPACE_OPTION.to_string(),
                serde_json::to_string(&address.namespace).unwrap_or_default(),
            ));
            format!("{} / {}", address.namespace.join("."), address.name)
        };
        Table { session, report, name: address.name.clone(), label, options, max_calls: run.max_calls }
    }

    fn add(&mut self, check: &'static str, problems: Vec<String>, seen: String) {
        self.report.add(check, Some(&self.label), problems, seen);
    }

    fn bounds(&self) -> ReadBounds {
        ReadBounds { calls: self.max_calls, ..ReadBounds::default() }
    }

    fn check(mut self) {
        let Some(schema) = self.schema() else { return };
        let Some(metadata) = self.metadata(&schema) else { return };
        let Some(pages) = self.read(&schema, &metadata) else { return };
        self.reread(&schema, &metadata, &pages);
        self.deletes(&schema, &metadata);
        self.partitions(&schema);
    }

    /// `schema` and `schema_stable`; the Arrow schema for the other checks.
    fn schema(&mut self) -> Option<Arc<Schema>> {
        let first = self.session.table_schema(&self.name, &self.options);
        let second = self.session.table_schema(&self.name, &self.options);
        let (first, second) = match (first, second) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                self.add("schema", vec![format!("table_schema failed: {e}")], String::new());
                return None;
            }
        };
        let stable =
            if first == second { vec![] } else { vec!["two calls returned different schemas".to_string()] };
        let schema = match weir_convert::arrow_schema(&first) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                self.add("schema", vec![format!("not a usable Spark struct: {e}")], String::new());
                return None;
            }
        };
        let mut problems = Vec::new();
        if schema.fields().is_empty() {
            problems.push("the schema has no fields".to_string());
        }
        let mut seen = BTreeSet::new();
        for f in schema.fields() {
            if !seen.insert(f.name().to_lowercase()) {
                problems.push(format!("duplicate field name {:?}", f.name()));
            }
        }
        self.add("schema", problems, format!("{} field(s)", schema.fields().len()));
        self.add("schema_stable", stable, "the same twice".into());
        Some(schema)
    }

    fn metadata(&mut self, schema: &Schema) -> Option<TableMetadata> {
        let (m, again) = match (
            self.session.table_metadata(&self.name, &self.options),
            self.session.table_metadata(&self.name, &self.options),
        ) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                self.add("metadata", vec![format!("table_metadata failed: {e}")], String::new());
                return None;
            }
        };
        let mut problems = Vec::new();
        if format!("{m:?}") != format!("{again:?}") {
            problems.push(format!("not deterministic: {m:?} then {again:?}"));
        }
        let in_schema = |c: &str| schema.field_with_name(c).is_ok();
        if m.ingestion_type != IngestionType::Append {
            if m.primary_keys.is_empty() {
                problems.push(format!("a {} table without primary keys", m.ingestion_type.name()));
            }
            for k in m.primary_keys.iter().filter(|k| !in_schema(k)) {
                problems.push(format!("primary key {k:?} is not in the schema"));
            }
        }
        if matches!(m.ingestion_type, IngestionType::Cdc | IngestionType::CdcWithDeletes) {
            match &m.cursor_field {
                None => problems.push("a cdc table without a cursor field".to_string()),
                Some(c) if !in_schema(c) => problems.push(format!("cursor field {c:?} is not in the schema")),
                Some(_) => {}
            }
        }
        let seen =
            format!("{}, keys {:?}, cursor {:?}", m.ingestion_type.name(), m.primary_keys, m.cursor_field);
        self.add("metadata", problems, seen);
        Some(m)
    }

    /// The full read: `read_terminates`, `offsets_json`, `keys_not_null`, `no_unknown_fields`
    /// and `columns_populated`. Returns its pages for the re-read.
    fn read(&mut self, schema: &Arc<Schema>, metadata: &TableMetadata) -> Option<Vec<PageSeen>> {
        let bounds = self.bounds();
        let mut pages =
            Pages::new(self.session, &self.name, &self.options, Stream::Table, None, schema.clone())
                .with_bounds(bounds);
        let mut read = TableRead::default();
        let mut seen = Vec::new();
        let (mut offsets, mut nulls) = (Vec::new(), Vec::new());
        let mut populated: BTreeMap<String, bool> =
            schema.fields().iter().map(|f| (f.name().clone(), false)).collect();
        let mut failed = None;
        while let Some(page) = pages.next_page() {
            read.calls += 1;
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    failed = Some(format!("call {}: {e}", read.calls));
                    break;
                }
            };
            if !is_offset(&page.end_offset) && offsets.len() < 3 {
                offsets.push(format!("call {} returned end offset {:?}", read.calls, clip(&page.end_offset)));
            }
            let mut keys = Vec::new();
            for batch in &page.batches {
                check_batch(batch, metadata, &mut populated, &mut nulls);
                keys.extend(key_text(batch, &metadata.primary_keys));
            }
            read.keys.extend(keys.iter().cloned());
            seen.push(PageSeen { end_offset: page.end_offset, checkpointable: page.checkpointable, keys });
        }
        let unknown = pages.converter().unknown_fields().clone();
        let rows = read.keys.len();
        let calls = read.calls;
        match failed {
            Some(why) => {
                self.add("read_terminates", vec![why], String::new());
                return None;
            }
            None => self.add("read_terminates", vec![], format!("{rows} row(s) in {calls} call(s)")),
        }
        self.add("offsets_json", offsets, "every end offset".into());
        nulls.sort();
        nulls.dedup();
        self.add("keys_not_null", nulls, "no null key".into());
        let unknown = if unknown.is_empty() {
            vec![]
        } else {
            vec![format!("fields not in the schema: {:?}", unknown.keys().collect::<Vec<_>>())]
        };
        self.add("no_unknown_fields", unknown, "none".into());
        let empty: Vec<&String> = populated.iter().filter(|(_, p)| !**p).map(|(c, _)| c).collect();
        let empty = if empty.is_empty() || rows == 0 {
            vec![]
        } else {
            vec![format!("{} column(s) hold no value in any record: {empty:?}", empty.len())]
        };
        self.add("columns_populated", empty, "every column".into());
        self.report.reads.insert(self.label.clone(), read);
        Some(seen)
    }

    /// Resumes from the first checkpointable offset that has rows after it, and checks that
    /// every key the full read found after that offset comes back.
    fn reread(&mut self, schema: &Arc<Schema>, metadata: &TableMetadata, pages: &[PageSeen]) {
        if metadata.primary_keys.is_empty() {
            return self.report.skip("reread_from_checkpoint", &self.label, "no primary keys to compare");
        }
        let has_rows_after = |i: usize| pages[i + 1..].iter().any(|p| !p.keys.is_empty());
        let Some(at) = (0..pages.len()).find(|&i| pages[i].checkpointable && has_rows_after(i)) else {
            return self.report.skip(
                "reread_from_checkpoint",
                &self.label,
                "no checkpointable offset before the last rows (a read of one page)",
            );
        };
        let expected: BTreeSet<&String> = pages[at + 1..].iter().flat_map(|p| p.keys.iter()).collect();
        let bounds = self.bounds();
        let start = Some(pages[at].end_offset.clone());
        let mut resumed =
            Pages::new(self.session, &self.name, &self.options, Stream::Table, start, schema.clone())
                .with_bounds(bounds);
        let mut got = BTreeSet::new();
        let mut problems = Vec::new();
        while let Some(page) = resumed.next_page() {
            match page {
                Ok(page) => {
                    for batch in &page.batches {
                        got.extend(key_text(batch, &metadata.primary_keys));
                    }
                }
                Err(e) => {
                    problems.push(format!("the resumed read failed: {e}"));
                    break;
                }
            }
        }
        let lost: Vec<&&String> = expected.iter().filter(|k| !got.contains(**k)).collect();
        if problems.is_empty() && !lost.is_empty() {
            problems.push(format!(
                "resuming from offset {} lost {} row(s) the full read has after it, e.g. {:?}",
                clip(&pages[at].end_offset),
                lost.len(),
                lost.iter().take(3).collect::<Vec<_>>()
            ));
        }
        let seen = format!(
            "resumed after call {} of {}: all {} later row(s) again",
            at + 1,
            pages.len(),
            expected.len()
        );
        self.add("reread_from_checkpoint", problems, seen);
    }

    fn deletes(&mut self, schema: &Arc<Schema>, metadata: &TableMetadata) {
        if metadata.ingestion_type != IngestionType::CdcWithDeletes {
            return self.report.skip("deletes", &self.label, "not a cdc_with_deletes table");
        }
        let bounds = self.bounds();
        let mut pages =
            Pages::new(self.session, &self.name, &self.options, Stream::Deletes, None, schema.clone())
                .with_bounds(bounds);
        let (mut problems, mut tombstones) = (Vec::new(), 0);
        while let Some(page) = pages.next_page() {
            match page {
                Ok(page) => {
                    for batch in &page.batches {
                        tombstones += batch.num_rows();
                        for key in &metadata.primary_keys {
                            match batch.column_by_name(key) {
                                Some(c) if c.null_count() > 0 => {
                                    problems.push(format!("tombstones with a null {key:?}"))
                                }
                                None => problems.push(format!("tombstones without the key column {key:?}")),
                                Some(_) => {}
                            }
                        }
                    }
                }
                Err(e) => {
                    problems.push(format!("read_deletes: {e}"));
                    break;
                }
            }
        }
        problems.dedup();
        self.add("deletes", problems, format!("{tombstones} tombstone(s)"));
    }

    fn partitions(&mut self, schema: &Arc<Schema>) {
        if !self.session.supports(Capability::Partitions) {
            return self.report.skip("partitions", &self.label, "the connector has no partitions capability");
        }
        let (first, second) = (
            self.session.list_partitions(&self.name, &self.options),
            self.session.list_partitions(&self.name, &self.options),
        );
        let (first, second) = match (first, second) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                return self.add("partitions", vec![format!("list_partitions: {e}")], String::new());
            }
        };
        let mut problems = Vec::new();
        if first != second {
            problems.push("two list_partitions calls returned different partitions".to_string());
        }
        for p in first.iter().filter(|p| !is_offset(p)) {
            problems.push(format!("descriptor {:?} is not a JSON object", clip(p)));
        }
        for p in &first {
            let bounds = self.bounds();
            let stream = Stream::Partition(p.clone());
            let mut pages = Pages::new(self.session, &self.name, &self.options, stream, None, schema.clone())
                .with_bounds(bounds);
            while let Some(page) = pages.next_page() {
                if let Err(e) = page {
                    problems.push(format!("partition {}: {e}", clip(p)));
                }
            }
        }
        self.add("partitions", problems, format!("{} partition(s), each read to its end", first.len()));
    }
}

fn check_batch(
    batch: &RecordBatch,
    metadata: &TableMetadata,
    populated: &mut BTreeMap<String, bool>,
    problems: &mut Vec<String>,
) {
    let schema = batch.schema();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let nulls = column.null_count();
        let name = field.name();
        if nulls > 0 {
            if metadata.primary_keys.contains(name) {
                problems.push(format!("primary key {name:?} holds null"));
            } else if metadata.cursor_field.as_ref() == Some(name) {
                problems.push(format!("cursor field {name:?} holds null"));
            } else if !field.is_nullable() {
                problems.push(format!("non-nullable column {name:?} holds null"));
            }
        }
        if nulls < column.len()
            && let Some(p) = populated.get_mut(name)
        {
            *p = true;
        }
    }
    if (0..batch.num_rows()).any(|row| batch.columns().iter().all(|c| c.is_null(row))) {
        problems.push("a record is entirely null".to_string());
    }
}

/// Each row's primary key as text, for comparing reads.
pub fn key_text(batch: &RecordBatch, keys: &[String]) -> Vec<String> {
    let columns: Vec<_> = keys.iter().filter_map(|k| batch.column_by_name(k)).collect();
    let options = arrow_cast::display::FormatOptions::default();
    let formatters: Vec<_> = columns
        .iter()
        .filter_map(|c| arrow_cast::display::ArrayFormatter::try_new(c.as_ref(), &options).ok())
        .collect();
    (0..batch.num_rows())
        .map(|row| formatters.iter().map(|f| f.value(row).to_string()).collect::<Vec<_>>().join("|"))
        .collect()
}

fn clip(text: &str) -> String {
    if text.chars().count() <= 120 {
        text.to_string()
    } else {
        text.chars().take(119).collect::<String>() + "…"
    }
}
