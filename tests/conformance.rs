//! The conformance suite (weir-conformance, what `weir test` runs) against the bundled Airtable
//! connector and the simulator, fault-free and with a tenth of all requests failing in each way
//! the simulator knows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use weir_airtable_sim::{DEFAULT_BASE_ID, DEFAULT_TOKEN, Faults, Sim, SimConfig};
use weir_conformance::{Options, Report, Status, key_text};
use weir_runtime::http::GateCounts;
use weir_runtime::{ConnectionsFile, Pages, ReadBounds, Runtime, RuntimeConfig, Session, Stream};

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig::with_default_cache()).expect("the runtime starts")
}

/// A session for the only connection of `toml`.
fn open(runtime: &Runtime, component: &[u8], toml: &str) -> Session {
    let file =
        ConnectionsFile::parse(toml, Path::new("conformance/connections.toml")).expect("the TOML parses");
    let spec = file.connections.values().next().expect("a [connections.NAME]");
    let connector = runtime.load(component).expect("the component loads");
    runtime.session(&connector, spec).expect("a session opens")
}

/// The suite's report for `component` on the connection in `toml`.
fn conformance(component: &[u8], toml: &str) -> Report {
    let runtime = runtime();
    let mut session = open(&runtime, component, toml);
    weir_conformance::run(&mut session, &Options::default())
}

/// A connection to `sim`, with quick retries so that injected faults cost milliseconds.
fn connection(sim: &Sim, token: &str) -> String {
    format!(
        "[connections.sim]\n\
         connector = \"airtable\"\n\
         base_id = \"{DEFAULT_BASE_ID}\"\n\
         base_url = \"{}\"\n\
         bearer_token = \"{token}\"\n\
         allow_loopback = true\n\
         [connections.sim.retry]\n\
         initial_backoff_ms = 5\n\
         max_backoff_ms = 50\n\
         max_attempts = 8\n",
        sim.base_url()
    )
}

fn sim(faults: Faults) -> Sim {
    Sim::start(SimConfig { rate_limit: false, seed: 7, faults, ..SimConfig::default() })
        .expect("simulator starts")
}

#[test]
fn airtable_passes_the_conformance_checks() {
    let sim = sim(Faults::default());
    let report = conformance(weir_artifacts::AIRTABLE, &connection(&sim, DEFAULT_TOKEN));
    let failures: Vec<String> =
        report.failures().map(|f| format!("{} {:?}: {}", f.check, f.table, f.detail)).collect();
    assert!(failures.is_empty(), "{} conformance failure(s):\n{}", failures.len(), failures.join("\n"));
    let tables: Vec<&String> = report.reads.keys().collect();
    assert_eq!(tables.len(), 6, "every table of the base was read: {tables:?}");
    for (table, read) in &report.reads {
        assert!(!read.keys.is_empty(), "{table} returned no rows");
    }
    // Every check ran on every table; the re-read ran where a table spans several pages.
    for (check, _) in weir_conformance::CHECKS.iter().skip(2) {
        let ran = report.checks.iter().filter(|c| c.check == *check).count();
        assert_eq!(ran, 6, "{check} ran on {ran} table(s)");
    }
    let stats = sim.stats();
    assert_eq!(stats.unauthorized, 0);
    assert_eq!(stats.faults_injected, 0);
}

#[test]
fn the_checks_fail_a_connection_whose_reads_fail() {
    // The suite must be able to fail: a wrong token makes every call fail, and the report says so.
    let sim = sim(Faults::default());
    let report = conformance(weir_artifacts::AIRTABLE, &connection(&sim, "patWrong.0000"));
    assert!(!report.passed());
    let failure = report.failures().next().expect("a failure");
    assert_eq!((failure.check, failure.status), ("list_tables", Status::Fail));
    assert!(failure.detail.contains("list_tables failed"), "{}", failure.detail);
    assert!(failure.detail.contains("authentication failed"), "{}", failure.detail);
}

/// Reads `table` to its end and returns every row's primary key.
fn read_keys(session: &mut Session, table: &str, options: &[(String, String)]) -> Vec<String> {
    let schema = session.arrow_schema(table, options).expect("schema");
    let keys = session.table_metadata(table, options).expect("metadata").primary_keys;
    let bounds = ReadBounds { calls: 1000, ..ReadBounds::default() };
    let mut pages = Pages::new(session, table, options, Stream::Table, None, schema).with_bounds(bounds);
    let mut out = Vec::new();
    while let Some(page) = pages.next_page() {
        for batch in &page.unwrap_or_else(|e| panic!("{table}: {e}")).batches {
            out.extend(key_text(batch, &keys));
        }
    }
    out
}

/// Every table's primary keys, read start to end through `toml`'s connection, in a runtime of
/// its own (the runtime's per-base pacing budget would otherwise serialise the two reads).
fn read_base(toml: &str, options: &[(String, String)]) -> (BTreeMap<String, Vec<String>>, GateCounts) {
    let runtime = runtime();
    let mut session = open(&runtime, weir_artifacts::AIRTABLE, toml);
    let tables = session.list_tables().expect("list tables");
    let keys = tables
        .into_iter()
        .map(|table| {
            let keys = read_keys(&mut session, &table, options);
            (table, keys)
        })
        .collect();
    (keys, session.http_counts())
}

#[test]
fn faults_at_ten_percent_still_yield_every_row_exactly_once() {
    let clean_sim = sim(Faults::default());
    let clean_toml = connection(&clean_sim, DEFAULT_TOKEN);
    let clean = std::thread::spawn(move || read_base(&clean_toml, &[]));
    let faulty_sim = sim(Faults {
        error_rate: 0.1,
        reset_rate: 0.1,
        truncate_rate: 0.1,
        expire_rate: 0.1,
        ..Faults::default()
    });
    // Short pages make many requests with offsets, so that expiring iterators get their turn.
    let short = [("page_size".to_string(), "5".to_string())];
    let (got, counts) = read_base(&connection(&faulty_sim, DEFAULT_TOKEN), &short);
    let (expected, clean_counts) = clean.join().expect("the clean read");
    drop(clean_sim);

    assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "the same tables");
    for (table, keys) in &got {
        let unique: BTreeSet<&String> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len(), "{table}: a row came twice under faults");
        let expected: BTreeSet<&String> = expected[table].iter().collect();
        assert_eq!(unique, expected, "{table}: the rows under faults differ from a clean read");
    }
    let stats = faulty_sim.stats();
    assert!(stats.faults_injected > 0, "no fault was injected: {stats:?}");
    assert!(counts.retries > 0, "the sandbox never retried: {counts:?}");
    assert_eq!(clean_counts.retries, 0, "a fault-free simulator needed retries");
}

/// Reads `table`, grown to `rows` records, in pages of `page_size` through the sandbox: `before`
/// pages, then `meanwhile` changes the source (given the records read so far) and the page
/// iterator expires, then the rest of the listing. Asserts that the read returned every record the
/// table held at its start exactly once, within the bounds the connection's manifest sets on a read.
fn read_across_an_expiry(
    table: &str,
    (rows, page_size): (usize, usize),
    before: usize,
    meanwhile: impl FnOnce(&Sim, &[String]),
) {
    let sim = Sim::start(SimConfig {
        rate_limit: false,
        seed: 7,
        grow: vec![(table.to_string(), rows)],
        ..SimConfig::default()
    })
    .expect("simulator starts");
    let mut expected = sim.record_ids(DEFAULT_BASE_ID, table).expect("record ids");
    let runtime = runtime();
    // Unpaced: the simulator's limit is off, and 2,200 requests at Airtable's 5 a second would
    // take seven minutes.
    let unpaced = format!(
        "{}[connections.sim.rate_limits]\n{}",
        connection(&sim, DEFAULT_TOKEN),
        weir_airtable_sim::UNPACED
    );
    let mut session = open(&runtime, weir_artifacts::AIRTABLE, &unpaced);
    let options = [("page_size".to_string(), page_size.to_string())];
    let schema = session.arrow_schema(table, &options).expect("schema");
    let keys = session.table_metadata(table, &options).expect("metadata").primary_keys;
    // The manifest's bounds (a read that never ends stops at 10,000 calls).
    let bounds = ReadBounds { calls: 10_000, ..session.connection().limits.read_bounds() };
    let mut pages =
        Pages::new(&mut session, table, &options, Stream::Table, None, schema).with_bounds(bounds);
    // Reads a page and says whether it ended the listing: a snapshot's end, or a cdc read's first
    // checkpoint (a chunk holds 5,000 records), after which it would go on only to the records
    // changed since.
    let mut read = Vec::new();
    let page = |pages: &mut Pages, read: &mut Vec<String>| {
        let page = pages.next_page().expect("a page").expect("a page");
        for batch in &page.batches {
            read.extend(key_text(batch, &keys));
        }
        page.checkpointable
    };
    for _ in 0..before {
        assert!(!page(&mut pages, &mut read), "{table}: the listing ended early");
    }
    assert_eq!(read.len(), page_size * before, "{table}: {before} pages of {page_size}");
    meanwhile(&sim, &read);
    sim.expire_iterators();
    while !page(&mut pages, &mut read) {}

    let mut unique = read.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), read.len(), "{table}: a record came twice in one listing");
    expected.sort();
    assert_eq!(unique, expected, "{table}: the read did not return each record of the table once");
}

#[test]
fn an_expired_page_iterator_loses_no_record_though_records_read_before_it_changed_or_went() {
    // A cdc listing, its iterator expiring after four pages, by which time a person has edited two
    // of the records read and deleted a third. A listing started over no longer has them where
    // they were: passing over the first 20 places of it would pass over records never read.
    read_across_an_expiry("SKU Candidates", (120, 5), 4, |sim, read| {
        let table = "SKU Candidates";
        let edits = read[..2].iter().map(|id| serde_json::json!({"id": id, "fields": {"Name": "Renamed"}}));
        sim.update_records(DEFAULT_BASE_ID, table, edits.collect()).expect("edits");
        sim.delete_records(DEFAULT_BASE_ID, table, &[read[2].as_str()]).expect("a deletion");
    });
}

#[test]
fn an_expired_snapshot_page_iterator_loses_no_record_though_records_read_before_it_went() {
    // A snapshot listing of vendors, its iterator expiring after six pages, by which time two of
    // the records read first and the one read last are deleted. Passing over the first 30 places
    // of a listing started over would pass over three records never read.
    read_across_an_expiry("Vendors", (120, 5), 6, |sim, read| {
        let gone = [read[0].as_str(), read[1].as_str(), read[29].as_str()];
        sim.delete_records(DEFAULT_BASE_ID, "Vendors", &gone).expect("deletions");
    });
}

#[test]
fn an_expired_snapshot_listing_passes_over_more_pages_than_a_read_may_return_empty_by_default() {
    // 1,050 vendors read one a page before the iterator expires: the listing started over passes
    // over them a page a call, 1,050 pages without a row, past the 1,000 in a row that a read
    // may return by default (limits.read_empty_pages). The Airtable manifest allows more.
    read_across_an_expiry("Vendors", (1_100, 1), 1_050, |_, _| {});
}
