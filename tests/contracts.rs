//! Two contract versions side by side in one host: the hostile component (still on
//! `lakeflow:connect@0.1.0`, the proof that old connectors keep working) and 0.2.0 components
//! (the Airtable connector against the simulator, and the partitioned `shards` table) loaded by
//! one [`Runtime`], each reading tables, at the same time. A contract this host does not serve,
//! and a component whose exports do not match the contract its manifest names, are refused
//! before anything runs.

use std::path::Path;
use std::sync::Arc;

use weir_airtable_sim::{DEFAULT_BASE_ID, DEFAULT_TOKEN, Sim, SimConfig};
use weir_runtime::{
    ConnectionsFile, ContractVersion, ErrorKind, Pages, Runtime, RuntimeConfig, Session, Stream,
};

fn session(runtime: &Runtime, component: &[u8], toml: &str) -> Session {
    let file = ConnectionsFile::parse(toml, Path::new("connections.toml")).expect("connection parses");
    let spec = file.connections.values().next().expect("one connection");
    let connector = runtime.load(component).expect("component loads");
    runtime.session(&connector, spec).expect("session starts")
}

/// Every row of a stream, read to its end through the shared page loop.
fn read_all(session: &mut Session, table: &str, options: &[(String, String)], stream: Stream) -> usize {
    let schema = session.arrow_schema(table, options).expect("schema");
    let mut pages = Pages::new(session, table, options, stream, None, Arc::clone(&schema));
    let mut rows = 0;
    while let Some(page) = pages.next_page() {
        rows += page.expect("page").rows;
    }
    rows
}

#[test]
fn one_runtime_runs_a_0_1_and_a_0_2_component_side_by_side() {
    let sim = Sim::start(SimConfig::default()).expect("simulator starts");
    let runtime = Runtime::new(RuntimeConfig { cache_dir: None }).expect("runtime starts");
    let airtable_toml = format!(
        "[connections.a]\nconnector = \"airtable\"\nbase_id = \"{DEFAULT_BASE_ID}\"\nbase_url = \"{}\"\n\
         bearer_token = \"{DEFAULT_TOKEN}\"\nallow_loopback = true\n",
        sim.base_url()
    );
    let hostile_toml = "[connections.h]\nconnector = \"hostile\"\nbearer_token = \"t\"\n\
                        base_url = \"http://127.0.0.1:9\"\nattack = \"none\"\n";
    let mut old = session(&runtime, weir_artifacts::HOSTILE, hostile_toml);
    let mut new = session(&runtime, weir_artifacts::AIRTABLE, &airtable_toml);
    let mut shards = session(&runtime, weir_artifacts::SHARDS, "[connections.s]\nconnector = \"shards\"\n");
    assert_eq!(old.contract(), ContractVersion::V0_1_0);
    assert_eq!(new.contract(), ContractVersion::V0_2_0);
    assert_eq!(shards.contract(), ContractVersion::V0_2_0);

    // All three read at once, in one process, from one engine.
    std::thread::scope(|s| {
        let wide = s.spawn(|| {
            let options = [("pages".to_string(), "3".to_string())];
            read_all(&mut old, "wide", &options, Stream::Table)
        });
        let vendors = s.spawn(|| read_all(&mut new, "Vendors", &[], Stream::Table));
        let shard = s.spawn(|| {
            let partitions = shards.list_partitions("events", &[]).expect("partitions");
            assert_eq!(partitions.len(), 4);
            read_all(&mut shards, "events", &[], Stream::Partition(partitions[3].clone()))
        });
        assert_eq!(wide.join().expect("0.1 reader"), 300);
        assert!(vendors.join().expect("0.2 reader") >= 5);
        assert_eq!(shard.join().expect("0.2 partition reader"), 1000);
    });
    assert!(sim.stats().requests > 0);
}

#[test]
fn a_0_1_component_is_not_asked_what_only_0_2_offers() {
    let runtime = Runtime::new(RuntimeConfig { cache_dir: None }).expect("runtime starts");
    let toml = "[connections.h]\nconnector = \"hostile\"\nbearer_token = \"t\"\nbase_url = \"http://127.0.0.1:9\"\nattack = \"none\"\n";
    let mut old = session(&runtime, weir_artifacts::HOSTILE, toml);
    let err = old.list_partitions("wide", &[]).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("partitions") && err.to_string().contains("0.1.0"), "{err}");
    // Its tables are still all there, at the root.
    let all = old.all_tables().expect("tables");
    assert_eq!(all.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["t", "wide"]);
}

/// The hostile component with `from` replaced by `to` in its manifest.
fn hostile_with(from: &str, to: &str) -> Vec<u8> {
    weir_tests::repackage(weir_artifacts::HOSTILE, "tests/components/hostile/manifest.toml", |m| {
        assert!(m.contains(from), "the hostile manifest has {from:?}");
        m.replace(from, to)
    })
}

#[test]
fn an_unknown_contract_is_refused_naming_the_supported_versions() {
    let runtime = Runtime::new(RuntimeConfig { cache_dir: None }).expect("runtime starts");
    let future = hostile_with("lakeflow:connect@0.1.0", "lakeflow:connect@0.3.0");
    let err = runtime.load(&future).err().expect("refused");
    let text = err.to_string();
    assert!(text.contains("lakeflow:connect@0.3.0"), "{text}");
    assert!(text.contains("lakeflow:connect@0.1.0, lakeflow:connect@0.2.0"), "{text}");
}

#[test]
fn a_component_that_does_not_implement_its_manifests_contract_is_refused() {
    let runtime = Runtime::new(RuntimeConfig { cache_dir: None }).expect("runtime starts");
    let claims_newer = hostile_with("lakeflow:connect@0.1.0", "lakeflow:connect@0.2.0");
    let err = runtime.load(&claims_newer).err().expect("refused");
    let text = err.to_string();
    assert!(text.contains("does not implement lakeflow:connect@0.2.0"), "{text}");
}

#[test]
fn a_read_ahead_returns_what_a_plain_read_does_page_for_page() {
    let config =
        SimConfig { rate_limit: false, grow: vec![("SKU Candidates".into(), 1_250)], ..SimConfig::default() };
    let sim = Sim::start(config).expect("simulator starts");
    let runtime = Runtime::new(RuntimeConfig { cache_dir: None }).expect("runtime starts");
    let toml = format!(
        "[connections.a]\nconnector = \"airtable\"\nbase_id = \"{DEFAULT_BASE_ID}\"\nbase_url = \"{}\"\n\
         bearer_token = \"{DEFAULT_TOKEN}\"\nallow_loopback = true\n",
        sim.base_url()
    );
    let mut session = session(&runtime, weir_artifacts::AIRTABLE, &toml);
    // Checkpoints every 300 records: some pages end a chunk, most do not.
    let options = [("checkpoint_records".to_string(), "300".to_string())];
    let schema = session.arrow_schema("SKU Candidates", &options).expect("schema");
    // Offsets name the time a cdc read began, so they differ between two reads: the rest may not.
    let page = |p: weir_runtime::ReadPage| (p.batches, p.checkpointable, p.done);
    let mut pages =
        Pages::new(&mut session, "SKU Candidates", &options, Stream::Table, None, Arc::clone(&schema));
    let plain: Vec<_> = std::iter::from_fn(|| pages.next_page()).map(|p| page(p.expect("page"))).collect();
    let pages = Pages::new(&mut session, "SKU Candidates", &options, Stream::Table, None, schema);
    let ahead: Vec<_> = pages.read_ahead(|pages| {
        std::iter::from_fn(|| pages.next_page()).map(|p| page(p.expect("page"))).collect()
    });
    assert!(plain.len() > 10, "{} pages", plain.len());
    let rows: usize = plain.iter().flat_map(|p| &p.0).map(|b| b.num_rows()).sum();
    assert!(rows >= 1_250, "{rows} rows");
    assert!(plain.iter().filter(|p| p.1).count() > 2, "chunks were checkpointed");
    assert!(plain.last().is_some_and(|p| p.2), "the plain read ended");
    assert_eq!(ahead, plain);
}
