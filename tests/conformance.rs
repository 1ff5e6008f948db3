//! The upstream conformance checks against the bundled Airtable connector and the simulator,
//! fault-free and with a tenth of all requests failing in each way the simulator knows.

mod conformance_support;

use std::collections::{BTreeMap, BTreeSet};

use conformance_support::{conformance, open, read_keys, runtime};
use weir_airtable_sim::{DEFAULT_BASE_ID, DEFAULT_TOKEN, Faults, Sim, SimConfig};
use weir_runtime::http::GateCounts;

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
    let tables: Vec<&String> = report.tables.keys().collect();
    assert_eq!(tables.len(), 6, "every table of the base was read: {tables:?}");
    for (table, read) in &report.tables {
        assert!(!read.keys.is_empty(), "{table} returned no rows");
    }
    let stats = sim.stats();
    assert_eq!(stats.unauthorized, 0);
    assert_eq!(stats.faults_injected, 0);
}

#[test]
fn the_checks_fail_a_connection_whose_reads_fail() {
    // The suite must be able to fail: a wrong token makes every call fail, and the run says so.
    let sim = sim(Faults::default());
    let toml = connection(&sim, "patWrong.0000");
    let outcome = std::panic::catch_unwind(|| conformance(weir_artifacts::AIRTABLE, &toml));
    let message = match outcome {
        Ok(_) => panic!("conformance passed on a connection that cannot authenticate"),
        Err(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    };
    assert!(message.contains("list_tables failed"), "{message}");
    assert!(message.contains("authentication failed"), "{message}");
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
            let read = read_keys(&mut session, &table, options).unwrap_or_else(|e| panic!("{table}: {e}"));
            (table, read.keys)
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
