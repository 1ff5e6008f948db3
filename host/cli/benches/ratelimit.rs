//! Issue 3's figure: a full read of one Airtable table through the sandboxed connector, against
//! the simulator with its rate limit on (5 requests/s per base, 30 s penalty after a 429).
//!
//! ```text
//! cargo bench -p weir --bench ratelimit --target-dir /work/target-release
//! WEIR_BENCH_ROWS=6000 cargo bench -p weir --bench ratelimit --target-dir /work/target-release
//! ```
//!
//! It prints the requests sent, the wall time, the sustained request rate (the ceiling is 5/s),
//! the 429s the simulator answered (the goal is 0), and the most requests it accepted in any
//! one second. Figures are printed, never asserted: a slow machine must not fail a build.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use weir_airtable_sim::{DEFAULT_BASE_ID, DEFAULT_TOKEN, Sim, SimConfig};
use weir_runtime::{ConnectionsFile, Pages, Runtime, RuntimeConfig, Stream};

const TABLE: &str = "SKU Candidates";

fn main() -> anyhow::Result<()> {
    let rows: usize = std::env::var("WEIR_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000);
    let sim = Sim::start(SimConfig {
        rate_limit: true,
        grow: vec![(TABLE.to_string(), rows)],
        seed: 42,
        ..SimConfig::default()
    })?;
    let text = format!(
        "[connections.sim]\nconnector = \"airtable\"\nbase_id = \"{DEFAULT_BASE_ID}\"\nbase_url = \"{}\"\n\
         bearer_token = \"{DEFAULT_TOKEN}\"\nallow_loopback = true\n",
        sim.base_url()
    );
    let file = ConnectionsFile::parse(&text, Path::new("ratelimit-connections.toml"))?;
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let connector = runtime.load(weir_artifacts::AIRTABLE)?;
    let table_options = vec![("page_size".to_string(), "100".to_string())];

    let before = sim.stats();
    let started = Instant::now();
    let mut session = runtime.session(&connector, file.get("sim")?)?;
    let schema = session.arrow_schema(TABLE, &table_options)?;
    let (mut read, mut pages) = (0usize, 0usize);
    let mut reader =
        Pages::new(&mut session, TABLE, &table_options, Stream::Table, None, Arc::clone(&schema));
    while let Some(page) = reader.next_page() {
        read += page?.rows;
        pages += 1;
    }
    let wall = started.elapsed();
    let after = sim.stats();
    let gate = session.http_counts();
    let requests = after.requests - before.requests;

    println!("== Airtable full read, simulator rate limit ON (5 requests/s per base) ==");
    println!("table                          {TABLE} ({rows} rows in the simulator)");
    println!("rows read                      {read} in {pages} read-table calls, page_size 100");
    println!(
        "requests sent (simulator saw)  {requests}  (gate: {} sent, {} retries)",
        gate.requests, gate.retries
    );
    println!("wall time                      {:.2} s", wall.as_secs_f64());
    println!("sustained requests/s           {:.2}  (ceiling 5)", requests as f64 / wall.as_secs_f64());
    println!("rows/s                         {:.0}", read as f64 / wall.as_secs_f64());
    println!("429s from the simulator        {}  (goal 0)", after.rate_limited - before.rate_limited);
    println!("max requests in any second     {}", after.max_requests_in_any_second);
    Ok(())
}
