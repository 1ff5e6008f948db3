//! What the simulator costs to serve a plain listing and a cdc listing of a 1,000,000-row table.
//!
//! `cargo bench -p weir-airtable-sim --bench listing` prints the simulator's own CPU (its threads
//! only, read from `/proc`, so the client's JSON parsing is left out) per record served:
//! - a plain listing, following offsets;
//! - a cdc read as weir's connector makes it: listings of 50,000 records, each bounded by
//!   `AND(IS_AFTER({Last Modified}, cursor), NOT(IS_AFTER({Last Modified}, start)))` and sorted by
//!   `Last Modified` ascending, each starting where the previous one stopped;
//! - the cost of starting one such listing on the fast path, and on the general path (forced by a
//!   second sort key), which filters and sorts the whole table.
//!
//! `ROWS` and `SERVED` in the environment change the table size and the records read per kind.
//! Figures only: nothing is asserted.

use std::time::Instant;

use serde_json::Value;
use weir_airtable_sim::{DEFAULT_BASE_ID, DEFAULT_TOKEN, Sim, SimConfig};

const TABLE: &str = "SKU Candidates";
const PER_LISTING: usize = 50_000;

/// CPU seconds used so far by the simulator's threads (all named `airtable-sim`), or `None` off Linux.
fn sim_cpu() -> Option<f64> {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != "airtable-sim" {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // Fields after the command (which may hold spaces): state is 3rd, utime 14th, stime 15th.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        total += fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    }
    Some(total as f64 / ticks)
}

struct Reader {
    http: reqwest::Client,
    url: String,
}

impl Reader {
    /// One page: its records and its offset.
    async fn page(&self, query: &[(&str, &str)]) -> (Vec<Value>, Option<String>) {
        let mut url = url::Url::parse(&self.url).unwrap_or_else(|e| panic!("{}: {e}", self.url));
        url.query_pairs_mut().extend_pairs(query);
        let resp = self.http.get(url).bearer_auth(DEFAULT_TOKEN).send().await;
        let body: Value = match resp {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(e) => panic!("the simulator did not answer: {e}"),
        };
        let records = body["records"].as_array().cloned().unwrap_or_else(|| panic!("no records in {body}"));
        (records, body["offset"].as_str().map(str::to_string))
    }

    /// Reads up to `limit` records of one listing; returns them.
    async fn listing(&self, query: &[(&str, &str)], limit: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let (mut records, mut offset) = self.page(query).await;
        loop {
            out.append(&mut records);
            let Some(o) = offset.take().filter(|_| out.len() < limit) else { return out };
            let mut q = query.to_vec();
            q.push(("offset", &o));
            (records, offset) = self.page(&q).await;
        }
    }
}

/// Runs `work`, printing the simulator's CPU per unit (record or listing) it served.
async fn measure<F: Future<Output = usize>>(what: &str, unit: &str, work: F) {
    let (cpu, wall) = (sim_cpu(), Instant::now());
    let served = work.await;
    let wall = wall.elapsed().as_secs_f64();
    match (cpu, sim_cpu()) {
        (Some(a), Some(b)) => println!(
            "{what:<36} {served:>7} {unit}s  {:>10.2} µs CPU/{unit}  {:>6.2} s CPU  {wall:>6.2} s wall",
            (b - a) * 1e6 / served.max(1) as f64,
            b - a
        ),
        _ => println!("{what:<36} {served:>7} {unit}s  {wall:>6.2} s wall (CPU not measured off Linux)"),
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let rows = env("ROWS", 1_000_000);
    let served = env("SERVED", 200_000);
    let t = Instant::now();
    let sim = Sim::start(SimConfig { grow: vec![(TABLE.into(), rows)], ..SimConfig::default() })?;
    println!(
        "{TABLE} grown to {rows} rows in {:.1} s; reading {served} records per kind",
        t.elapsed().as_secs_f64()
    );
    let url = format!("{}/v0/{DEFAULT_BASE_ID}/{}", sim.base_url(), TABLE.replace(' ', "%20"));
    let reader = Reader { http: reqwest::Client::new(), url };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        measure("plain listing", "record", async { reader.listing(&[], served).await.len() }).await;

        let start = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        measure("cdc listings of 50,000, fast path", "record", async {
            let mut cursor = "2000-01-01T00:00:00.000Z".to_string();
            let mut total = 0;
            while total < served {
                let formula = format!(
                    "AND(IS_AFTER({{Last Modified}}, '{cursor}'), NOT(IS_AFTER({{Last Modified}}, '{start}')))"
                );
                let q = [("filterByFormula", formula.as_str()), ("sort[0][field]", "Last Modified")];
                let records = reader.listing(&q, PER_LISTING.min(served - total)).await;
                let Some(last) = records.last() else { break };
                cursor = last["fields"]["Last Modified"].as_str().unwrap_or_default().to_string();
                total += records.len();
            }
            total
        })
        .await;

        let formula = format!("NOT(IS_AFTER({{Last Modified}}, '{start}'))");
        let fast = [("filterByFormula", formula.as_str()), ("sort[0][field]", "Last Modified")];
        // A listing's start is its first page; the clock ticks in 10 ms, so starts are repeated.
        measure("cdc listing start, fast path", "listing", async {
            for _ in 0..100 {
                reader.page(&fast).await;
            }
            100
        })
        .await;
        let general = [fast[0], fast[1], ("sort[1][field]", "Row #")];
        measure("cdc listing start, general path", "listing", async {
            reader.page(&general).await;
            1
        })
        .await;
    });
    Ok(())
}
