//! `weir demo` and `weir sim airtable`: the embedded default, offline.

use std::path::Path;

use anyhow::{Context, Result};
use weir_airtable_sim::{DEFAULT_BASE_ID, DEFAULT_TOKEN, Sim, SimConfig};

use weir_ingest::RunOptions;

use crate::progress::Bars;

/// The six tables of the Product Launch base, and their bronze destinations.
const TABLES: &[(&str, &str)] = &[
    ("SKU Candidates", "bronze_sku_candidates"),
    ("Launch Milestones", "bronze_launch_milestones"),
    ("Compliance Records", "bronze_compliance_records"),
    ("Packaging Tasks", "bronze_packaging_tasks"),
    ("Marketing Assets", "bronze_marketing_assets"),
    ("Vendors", "bronze_vendors"),
];

/// Rows shown per table after the run.
const PREVIEW_ROWS: usize = 3;

/// The table the demo reads deletes of (through a webhook), and how many of its records it
/// deletes in the simulator between its two runs.
const DELETES_TABLE: &str = "Compliance Records";
const DELETED: usize = 2;

fn sim_config(grow: Option<(String, usize)>, seed: u64, rate_limit: bool) -> SimConfig {
    SimConfig { grow: grow.into_iter().collect(), seed, rate_limit, ..SimConfig::default() }
}

/// The connections file that points at a running simulator.
fn connections_toml(base_url: &str) -> String {
    format!(
        "# Written by `weir demo`. The simulator lives only as long as the demo; for a real base\n\
         # see examples/connections.toml.\n\
         [connections.airtable]\n\
         connector = \"airtable\"\n\
         base_id = \"{DEFAULT_BASE_ID}\"\n\
         base_url = \"{base_url}\"\n\
         bearer_token = {{ file = \"sim-token\" }}\n\
         allow_loopback = true\n"
    )
}

/// The demo's pipeline spec, in the upstream format.
pub fn demo_spec() -> String {
    let mut spec = String::from("connection_name: airtable\nobjects:\n");
    for (source, destination) in TABLES {
        spec.push_str(&format!(
            "  - table:\n      source_table: {source}\n      destination_table: {destination}\n"
        ));
        if *source == DELETES_TABLE {
            spec.push_str("      table_configuration:\n        deletes: webhook   # cdc_with_deletes\n");
        }
    }
    spec
}

pub fn demo(dir: &Path, rows: Option<usize>, warehouse: Option<&str>, json: bool) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Checked before the simulator starts, so a bad URL or setting fails at once.
    let local = dir.join("warehouse").to_string_lossy().into_owned();
    let warehouse = weir_ingest::warehouse_uri(warehouse.unwrap_or(&local))?;
    let sim = Sim::start(sim_config(rows.map(|n| ("SKU Candidates".to_string(), n)), 42, true))?;
    let base_url = sim.base_url();
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text)
            .with_context(|| format!("cannot write {}", dir.join(name).display()))
    };
    write("sim-token", DEFAULT_TOKEN)?;
    write("connections.toml", &connections_toml(&base_url))?;
    write("pipeline.yaml", &demo_spec())?;
    if !json {
        eprintln!(
            "Airtable simulator on {base_url}; wrote connections.toml and pipeline.yaml into {}",
            dir.display()
        );
    }
    let options = RunOptions {
        warehouse: warehouse.clone(),
        parallel: 3,
        commit_rows: 50_000,
        only: None,
        allow_unsigned: false,
        tape: None,
    };
    let bars = Bars::new(!json && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let run = || -> Result<Vec<weir_ingest::TableReport>> {
        let (spec, connections) = (dir.join("pipeline.yaml"), dir.join("connections.toml"));
        Ok(weir_ingest::run_spec(&spec, &connections, None, &options, &bars)?)
    };
    let first = run()?;
    let mut runs = vec![first];
    // Deletes: someone deletes records in Airtable, and the next run removes their rows.
    if runs[0].iter().all(|r| r.error.is_none()) {
        let ids = sim.record_ids(DEFAULT_BASE_ID, DELETES_TABLE)?;
        let gone: Vec<&str> = ids.iter().take(DELETED).map(String::as_str).collect();
        sim.delete_records(DEFAULT_BASE_ID, DELETES_TABLE, &gone)?;
        if !json {
            crate::summary::print_summary(&runs[0]);
            println!(
                "\nDeleted {} record(s) of {DELETES_TABLE} in the simulator, as someone would in Airtable; \
                 running again (its deletes come through a webhook):\n",
                gone.len()
            );
        }
        // The second run's budgets start empty, and the simulator still counts the first run's
        // last second of requests against Airtable's 5 per second: one window apart, no 429.
        std::thread::sleep(weir_runtime::ratelimit::WINDOW);
        runs.push(run()?);
    }
    let failed = runs.iter().flatten().filter(|r| r.error.is_some()).count();
    let reports = runs.last().map(Vec::as_slice).unwrap_or_default();
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "runs": runs }))?);
    } else {
        crate::summary::print_summary(reports);
        anyhow::ensure!(failed == 0, "{failed} table(s) failed");
        preview_tables(&warehouse)?;
        println!(
            "\nRead the tables with any Delta reader, for example:\n  \
             python3 -c \"from deltalake import DeltaTable; print(DeltaTable('{warehouse}/bronze_vendors').to_pandas())\"\n  \
             duckdb -c \"INSTALL delta; LOAD delta; SELECT * FROM delta_scan('{warehouse}/bronze_vendors')\"\n\
             Run it again with `weir run {spec} --connections {conns} --warehouse {warehouse}` while a simulator runs\n\
             (`weir sim airtable`), or point examples/connections.toml at a real base.",
            spec = dir.join("pipeline.yaml").display(),
            conns = dir.join("connections.toml").display(),
        );
    }
    anyhow::ensure!(failed == 0, "{failed} table(s) failed");
    Ok(())
}

/// Prints a few rows of each bronze table, read back from Delta.
fn preview_tables(warehouse: &str) -> Result<()> {
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    for (_, destination) in TABLES {
        let uri = format!("{warehouse}/{destination}");
        let batches = tokio.block_on(weir_delta::read_table(&uri))?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let first: Vec<_> = batches
            .iter()
            .filter(|b| b.num_rows() > 0)
            .take(1)
            .map(|b| {
                let keep: Vec<usize> = (0..b.num_columns().min(6)).collect();
                b.project(&keep).map(|b| b.slice(0, b.num_rows().min(PREVIEW_ROWS)))
            })
            .collect::<Result<_, _>>()?;
        println!("\n{destination}: {rows} rows (first columns of {} rows)", PREVIEW_ROWS.min(rows));
        println!("{}", arrow_cast::pretty::pretty_format_batches(&first)?);
    }
    Ok(())
}

pub fn serve_sim(port: u16, grow: Option<(String, usize)>, seed: u64, rate_limit: bool) -> Result<()> {
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    tokio.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{port}; choose another --port"))?;
        let base_url = format!("http://{}", listener.local_addr()?);
        println!(
            "Airtable simulator on {base_url} (base {DEFAULT_BASE_ID}, rate limit {}). A connection for it:\n\n{}\
             # and put the simulator's token in ./sim-token:  echo -n '{DEFAULT_TOKEN}' > sim-token\n\nCtrl-C stops it.",
            if rate_limit { "5 req/s" } else { "off" },
            connections_toml(&base_url).lines().skip(2).collect::<Vec<_>>().join("\n") + "\n"
        );
        tokio::select! {
            r = weir_airtable_sim::serve(sim_config(grow, seed, rate_limit), listener) => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
