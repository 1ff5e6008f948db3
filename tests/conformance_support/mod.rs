//! The upstream connector conformance checks (UPSTREAM.md, "The conformance checks every
//! connector must pass"), run against any `lakeflow:connect` component through the runtime's
//! public API, so that a new connector gets them by calling [`conformance`].
//!
//! Every check runs and every violation is collected, so that one failing run lists all of
//! them rather than the first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, RecordBatch};
use arrow_schema::Schema;
use weir_convert::Converter;
use weir_runtime::http::GateCounts;
use weir_runtime::{
    CallError, ConnectionsFile, ConnectorError, ErrorKind, IngestionType, Pages, ReadBounds, Runtime,
    RuntimeConfig, Session, Stream,
};

/// A table name no connector has.
pub const UNKNOWN_TABLE: &str = "weir_conformance_no_such_table";

/// Reads of one table stop being "bounded" after this many calls.
pub const MAX_CALLS: usize = 1000;

/// What a read of one table returned.
#[derive(Debug, Clone, Default)]
pub struct TableRead {
    /// The primary key of every row, in read order, as text (`a|b` for compound keys).
    pub keys: Vec<String>,
    /// `read-table` calls until the offset stopped moving.
    pub calls: usize,
}

/// What a conformance run saw, for further assertions by the caller.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub tables: BTreeMap<String, TableRead>,
    /// The sandbox's http counters after the run.
    pub http: GateCounts,
}

/// Opens a session for the only (or first) connection of `connection_toml`.
///
/// Relative `{ file = … }` paths in the TOML would resolve against a made-up folder, so
/// callers use literals, `{ env = … }` or absolute paths.
pub fn open(runtime: &Runtime, component: &[u8], connection_toml: &str) -> Session {
    let file = ConnectionsFile::parse(connection_toml, Path::new("conformance/connections.toml"))
        .unwrap_or_else(|e| panic!("the conformance connection does not parse: {e}"));
    let spec = file.connections.values().next().expect("the connection TOML has no [connections.NAME]");
    let connector = runtime.load(component).unwrap_or_else(|e| panic!("cannot load the component: {e}"));
    runtime.session(&connector, spec).unwrap_or_else(|e| panic!("cannot open a session: {e}"))
}

/// A runtime with the default compile cache, so repeated runs skip compiling the component.
pub fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig::with_default_cache()).expect("the runtime starts")
}

/// Runs every conformance check against `component` on the connection in `connection_toml`,
/// and panics listing every violation.
pub fn conformance(component: &[u8], connection_toml: &str) -> Report {
    let runtime = runtime();
    let mut session = open(&runtime, component, connection_toml);
    let mut failures = Vec::new();
    let report = check_all(&mut session, &mut failures);
    assert!(
        failures.is_empty(),
        "{} conformance violation(s):\n  - {}",
        failures.len(),
        failures.join("\n  - ")
    );
    report
}

fn check_all(session: &mut Session, failures: &mut Vec<String>) -> Report {
    let mut report = Report::default();
    let tables = match session.list_tables() {
        Ok(t) => t,
        Err(e) => {
            failures.push(format!("list_tables failed: {e}"));
            return report;
        }
    };
    if tables.is_empty() {
        failures.push("list_tables returned no tables".into());
    }
    let unique: BTreeSet<&String> = tables.iter().collect();
    if unique.len() != tables.len() {
        failures.push(format!("list_tables returned duplicates: {tables:?}"));
    }
    check_unknown_table(session, failures);

    // Column → populated by at least one row, across the whole base.
    let mut populated: BTreeMap<String, bool> = BTreeMap::new();
    for table in &tables {
        let Some(schema) = check_schema(session, table, failures) else { continue };
        check_metadata(session, table, &schema, failures);
        if let Some(read) = read_checked(session, table, &schema, &mut populated, failures) {
            report.tables.insert(table.clone(), read);
        }
    }
    let empty: Vec<&String> = populated.iter().filter(|(_, p)| !**p).map(|(c, _)| c).collect();
    if !empty.is_empty() {
        failures.push(format!(
            "{} column(s) hold no value in any record of the test data: {}",
            empty.len(),
            empty.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    report.http = session.http_counts();
    report
}

/// Every call on a table that does not exist must fail, naming it.
fn check_unknown_table(session: &mut Session, failures: &mut Vec<String>) {
    let names_it = |call: &str, r: Result<(), CallError>, failures: &mut Vec<String>, strict: bool| match r {
        Ok(()) => failures.push(format!("{call} on unknown table {UNKNOWN_TABLE:?} succeeded")),
        Err(e) => {
            let is_unknown = matches!(&e.kind, ErrorKind::Connector(ConnectorError::UnknownTable(t)) if t == UNKNOWN_TABLE);
            if strict && !is_unknown {
                failures.push(format!(
                    "{call} on an unknown table failed, but not with unknown-table naming it: {e}"
                ));
            }
            if !e.to_string().contains(UNKNOWN_TABLE) {
                failures.push(format!("{call}'s error does not name the unknown table: {e}"));
            }
        }
    };
    names_it("table_schema", session.table_schema(UNKNOWN_TABLE, &[]).map(drop), failures, true);
    names_it("table_metadata", session.table_metadata(UNKNOWN_TABLE, &[]).map(drop), failures, true);
    let mut converter = Converter::new(Arc::new(Schema::empty()));
    names_it(
        "read_table",
        session.read_table(UNKNOWN_TABLE, &[], None, &mut converter).map(drop),
        failures,
        true,
    );
    // A connector without deletes may refuse read_deletes for any table; it must still fail.
    names_it(
        "read_deletes",
        session.read_deletes(UNKNOWN_TABLE, &[], None, &mut converter).map(drop),
        failures,
        false,
    );
}

/// The schema: parses, non-empty, no duplicate names (Spark compares them case-insensitively),
/// identical on a second call. Returns the Arrow schema for the read checks.
fn check_schema(session: &mut Session, table: &str, failures: &mut Vec<String>) -> Option<Arc<Schema>> {
    let first = session.table_schema(table, &[]);
    let second = session.table_schema(table, &[]);
    let (first, second) = match (first, second) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            failures.push(format!("{table}: table_schema failed: {e}"));
            return None;
        }
    };
    if first != second {
        failures.push(format!("{table}: two table_schema calls returned different schemas"));
    }
    let schema = match weir_convert::arrow_schema(&first) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            failures.push(format!("{table}: the schema is not a usable Spark struct: {e}"));
            return None;
        }
    };
    if schema.fields().is_empty() {
        failures.push(format!("{table}: the schema has no fields"));
    }
    let mut seen = BTreeSet::new();
    for f in schema.fields() {
        if !seen.insert(f.name().to_lowercase()) {
            failures.push(format!("{table}: duplicate field name {:?}", f.name()));
        }
    }
    Some(schema)
}

/// The metadata: deterministic, keys in the schema, a cursor for cdc, deletes for cdc_with_deletes.
fn check_metadata(session: &mut Session, table: &str, schema: &Schema, failures: &mut Vec<String>) {
    let (m, again) = match (session.table_metadata(table, &[]), session.table_metadata(table, &[])) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            failures.push(format!("{table}: table_metadata failed: {e}"));
            return;
        }
    };
    if format!("{m:?}") != format!("{again:?}") {
        failures.push(format!("{table}: table_metadata is not deterministic: {m:?} then {again:?}"));
    }
    let in_schema = |c: &str| schema.field_with_name(c).is_ok();
    if !matches!(m.ingestion_type, IngestionType::Append) {
        if m.primary_keys.is_empty() {
            failures.push(format!("{table}: {:?} table without primary keys", m.ingestion_type));
        }
        for k in m.primary_keys.iter().filter(|k| !in_schema(k)) {
            failures.push(format!("{table}: primary key {k:?} is not in the schema"));
        }
    }
    if matches!(m.ingestion_type, IngestionType::Cdc | IngestionType::CdcWithDeletes) {
        match &m.cursor_field {
            None => failures.push(format!("{table}: cdc table without a cursor field")),
            Some(c) if !in_schema(c) => {
                failures.push(format!("{table}: cursor field {c:?} is not in the schema"))
            }
            Some(_) => {}
        }
    }
    if matches!(m.ingestion_type, IngestionType::CdcWithDeletes) {
        let mut converter = Converter::new(Arc::new(schema.clone()));
        if let Err(e) = session.read_deletes(table, &[], None, &mut converter) {
            failures.push(format!("{table}: cdc_with_deletes but read_deletes fails: {e}"));
        }
    }
}

/// Reads `table` from the start until the offset stops moving, checking every page.
fn read_checked(
    session: &mut Session,
    table: &str,
    schema: &Arc<Schema>,
    populated: &mut BTreeMap<String, bool>,
    failures: &mut Vec<String>,
) -> Option<TableRead> {
    let keys = match session.table_metadata(table, &[]) {
        Ok(m) => m.primary_keys,
        Err(_) => Vec::new(),
    };
    for f in schema.fields() {
        populated.entry(format!("{table}.{}", f.name())).or_insert(false);
    }
    let mut read = TableRead::default();
    let bounds = ReadBounds { calls: MAX_CALLS as u64, ..ReadBounds::default() };
    let mut pages = Pages::new(session, table, &[], Stream::Table, None, schema.clone()).with_bounds(bounds);
    while let Some(page) = pages.next_page() {
        read.calls += 1;
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{table}: read_table call {} failed: {e}", read.calls));
                return None;
            }
        };
        for batch in &page.batches {
            check_batch(table, batch, &keys, populated, failures);
            read.keys.extend(key_text(batch, &keys));
        }
    }
    let converter = pages.converter();
    if !converter.unknown_fields().is_empty() {
        failures.push(format!(
            "{table}: records carry fields that are not in the schema: {:?}",
            converter.unknown_fields()
        ));
    }
    Some(read)
}

fn check_batch(
    table: &str,
    batch: &RecordBatch,
    keys: &[String],
    populated: &mut BTreeMap<String, bool>,
    failures: &mut Vec<String>,
) {
    let schema = batch.schema();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let nulls = column.null_count();
        if !field.is_nullable() && nulls > 0 {
            failures.push(format!("{table}: non-nullable column {:?} holds {nulls} null(s)", field.name()));
        }
        if keys.contains(field.name()) && nulls > 0 {
            failures.push(format!("{table}: primary key {:?} holds {nulls} null(s)", field.name()));
        }
        if nulls < column.len()
            && let Some(p) = populated.get_mut(&format!("{table}.{}", field.name()))
        {
            *p = true;
        }
    }
    for row in 0..batch.num_rows() {
        if batch.columns().iter().all(|c| c.is_null(row)) {
            failures.push(format!("{table}: a record is entirely null (row {row} of a page)"));
        }
    }
}

/// Each row's primary key as text, for comparing reads.
fn key_text(batch: &RecordBatch, keys: &[String]) -> Vec<String> {
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

/// Reads `table` to its end with no checks and returns every row's primary key.
pub fn read_keys(
    session: &mut Session,
    table: &str,
    options: &[(String, String)],
) -> Result<TableRead, CallError> {
    let schema = session.arrow_schema(table, options)?;
    let keys = session.table_metadata(table, options)?.primary_keys;
    let mut read = TableRead::default();
    let bounds = ReadBounds { calls: MAX_CALLS as u64, ..ReadBounds::default() };
    let mut pages = Pages::new(session, table, options, Stream::Table, None, schema).with_bounds(bounds);
    while let Some(page) = pages.next_page() {
        read.calls += 1;
        for batch in &page?.batches {
            read.keys.extend(key_text(batch, &keys));
        }
    }
    Ok(read)
}
