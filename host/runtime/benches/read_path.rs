//! Issue 12: the CPU one row costs to read and convert, through the sandbox and natively.
//!
//! ```text
//! cargo bench -p weir-runtime --bench read_path          # release; WEIR_BENCH_ROWS (200,000)
//! ```
//!
//! The simulator, in this process with its rate limit off, grows `SKU Candidates` to
//! `WEIR_BENCH_ROWS` rows (about 1 KB of JSON each). Each round (`WEIR_BENCH_ROUNDS`, 2) then
//! reads the table to its end once by each path, as `weir run` reads it (a cdc read, checkpoints
//! every 50,000 records), each page converted to Arrow by the same converter:
//! - **sandbox**: the bundled Airtable component in wasmtime, through `Session::read_table`;
//! - **native**: the same connector crate compiled for the host, its requests sent through the
//!   same HTTP gate (same allow-list, token injection and pacing), with no sandbox;
//! - **other component**, when `WEIR_BENCH_COMPARE` names a packaged Airtable component (say the
//!   same connector built with other flags): read through the sandbox as the bundled one is, in
//!   the same rounds and before the bundled one in every other round, so that a guest build is
//!   compared without the machine's drift between runs; the summary gives other / bundled.
//!
//! CPU is the reading thread's own (`CLOCK_THREAD_CPUTIME_ID`): the connector, the boundary, the
//! conversion and the HTTP client (each session drives its requests on the thread that calls
//! it). The simulator runs on threads of its own and is not counted, so the figures are weir's
//! read path alone. Beside it, the CPU of all of weir's threads (the process's, less the
//! simulator's threads, `airtable-sim`): the reading thread and the epoch ticker, and any thread
//! work might move to. It prints each round, then each path's minimum and median over the rounds,
//! and the native path taken apart: its requests, the connector, the host reading its Arrow.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow_schema::SchemaRef;
use weir_airtable_sim::{Sim, SimConfig};
use weir_connector_sdk::{Connector, Host, Level, Rows};
use weir_runtime::contract::{HttpError, HttpRequest};
use weir_runtime::http::HttpGate;
use weir_runtime::secrets::Redactor;
use weir_runtime::{ConnectionsFile, Runtime, RuntimeConfig, Session};

/// The allocator `weir` runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TABLE: &str = "SKU Candidates";

/// Nanoseconds this thread has run on a CPU, to the moment of the call. (`schedstat` is only
/// brought up to date when the thread is switched out or at a timer tick, which made the
/// convert figure, measured between two reads with neither in between, a quarter of the truth.)
fn thread_cpu_ns() -> u64 {
    cpu_clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// The connector's `Host`, natively: the runtime's HTTP gate, driven on this thread.
struct NativeHost {
    gate: HttpGate,
    tokio: tokio::runtime::Runtime,
    /// The reading thread's CPU in `send` so far: the gate, the HTTP client, the kernel's receive.
    send_ns: std::cell::Cell<u64>,
}

impl Host for NativeHost {
    fn send(
        &self,
        r: weir_connector_sdk::Request,
    ) -> Result<weir_connector_sdk::Response, weir_connector_sdk::HttpError> {
        let request = HttpRequest { method: r.method, url: r.url, headers: r.headers, body: r.body };
        let started = thread_cpu_ns();
        let sent = self.tokio.block_on(self.gate.send(request)).expect("no bound is hit");
        self.send_ns.set(self.send_ns.get() + thread_cpu_ns() - started);
        match sent {
            Ok(response) => Ok(weir_connector_sdk::Response {
                status: response.status,
                headers: response.headers,
                body: response.body,
            }),
            Err(HttpError::Denied(m)) => Err(weir_connector_sdk::HttpError::Denied(m)),
            Err(e) => Err(weir_connector_sdk::HttpError::Connection(e.to_string())),
        }
    }

    fn log(&self, _: Level, _: &str) {}
}

/// Nanoseconds all threads of this process have run, less those of the simulator's threads.
/// (A simulator thread that ended would count as weir's: its blocking pool's, after 10 s idle.)
fn weir_cpu_ns() -> u64 {
    let process = cpu_clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID);
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task lists the threads");
    let simulator: u64 = tasks
        .filter_map(|task| {
            let task = task.ok()?;
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            let tid: libc::pid_t = task.file_name().to_str()?.parse().ok()?;
            // Linux's CPU clock of another thread of this process: MAKE_THREAD_CPUCLOCK(tid, SCHED).
            (comm.trim_end() == "airtable-sim").then(|| cpu_clock_ns((!tid << 3) | 6))
        })
        .sum();
    process.saturating_sub(simulator)
}

/// Nanoseconds on a CPU clock, or 0 if it is gone (a thread that ended since it was listed).
fn cpu_clock_ns(clock: libc::clockid_t) -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid timespec for the call to write.
    if unsafe { libc::clock_gettime(clock, &mut t) } != 0 {
        return 0;
    }
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

struct Figures {
    rows: usize,
    pages: usize,
    cpu_ns: u64,
    /// All of weir's threads ([`weir_cpu_ns`]).
    weir_ns: u64,
    convert_ns: u64,
    /// In the connector's requests (native path only; the sandbox's are inside its calls).
    send_ns: u64,
    wall_s: f64,
}

fn main() {
    let rows: usize = std::env::var("WEIR_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let started = Instant::now();
    let sim =
        Sim::start(SimConfig { rate_limit: false, grow: vec![(TABLE.into(), rows)], ..SimConfig::default() })
            .expect("the simulator starts");
    eprintln!("simulator: {TABLE} grown to {rows} rows in {:.1} s", started.elapsed().as_secs_f64());

    let text = format!(
        "[connections.bench]\nconnector = \"airtable\"\nbase_id = \"{}\"\nbase_url = \"{}\"\n\
         bearer_token = \"{}\"\nallow_loopback = true\n[connections.bench.rate_limits]\n{}",
        weir_airtable_sim::DEFAULT_BASE_ID,
        sim.base_url(),
        weir_airtable_sim::DEFAULT_TOKEN,
        weir_airtable_sim::UNPACED,
    );
    let file = ConnectionsFile::parse(&text, Path::new("bench.toml")).expect("valid connections");
    let spec = file.get("bench").expect("the bench connection").clone();
    let cache = tempfile::tempdir().expect("a cache folder");
    let runtime =
        Runtime::new(RuntimeConfig { cache_dir: Some(cache.path().to_path_buf()) }).expect("runtime");
    let airtable = runtime.load(weir_artifacts::AIRTABLE).expect("airtable loads");
    let table_options = vec![("checkpoint_records".to_string(), "50000".to_string())];
    let mut session = runtime.session(&airtable, &spec).expect("session");
    let schema = session.arrow_schema(TABLE, &table_options).expect("schema");

    // The native path: the same connector and gate, no sandbox.
    let connection = spec.resolve(&airtable.manifest).expect("the connection resolves");
    let redactor = Arc::new(Redactor::new(connection.secrets.values()));
    let gate = HttpGate::configure(&airtable.manifest, &connection, runtime.rate_limiters(), redactor)
        .expect("the gate");
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let host = NativeHost { gate, tokio, send_ns: std::cell::Cell::new(0) };
    let native_options: BTreeMap<String, String> = session.guest_options().iter().cloned().collect();

    // A second component to compare, read through its own session on the same connection.
    let mut other = std::env::var_os("WEIR_BENCH_COMPARE").map(|path| {
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("cannot read WEIR_BENCH_COMPARE {}: {e}", path.to_string_lossy()));
        let loaded = runtime.load(&bytes).expect("the other component loads");
        runtime.session(&loaded, &spec).expect("a session of the other component")
    });

    // Rounds alternate the paths, so that a slower moment of the machine shows as a difference
    // between rounds rather than between paths.
    let rounds: usize = std::env::var("WEIR_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let mut results: Vec<Vec<(&str, Figures)>> = Vec::new();
    for round in 1..=rounds {
        // Kept in the order the table prints; the other build reads first in every other round.
        let mut paths = Vec::new();
        if let Some(other) = other.as_mut() {
            let (first, second) = if round % 2 == 0 {
                let o = read_sandboxed(other, &schema, &table_options);
                (read_sandboxed(&mut session, &schema, &table_options), o)
            } else {
                let s = read_sandboxed(&mut session, &schema, &table_options);
                (s, read_sandboxed(other, &schema, &table_options))
            };
            paths.push(("sandbox (wasmtime)", first));
            paths.push(("other component (wasmtime)", second));
        } else {
            paths.push(("sandbox (wasmtime)", read_sandboxed(&mut session, &schema, &table_options)));
        }
        paths.push((
            "native (no sandbox)",
            read_native(&host, &session, &native_options, &schema, &table_options),
        ));
        // The other build may read differently (its per-row figures still compare).
        assert_eq!(
            paths[0].1.rows,
            paths[paths.len() - 1].1.rows,
            "both paths of this build read the same rows"
        );
        results.push(paths);
    }
    println!("\nread + convert, {TABLE}, {rows} rows in the table (reading thread's CPU):\n");
    println!(
        "| round | path | rows read | pages | CPU s | CPU µs/row | of which convert µs/row | wall s | all weir threads' CPU µs/row |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let per_row = |ns: u64, rows: usize| ns as f64 / 1000.0 / rows as f64;
    for (round, paths) in results.iter().enumerate() {
        for (name, f) in paths {
            // The sandbox converts inside `Session::read_table`, with no clock around it.
            let convert = if f.convert_ns > 0 {
                format!("{:.2}", per_row(f.convert_ns, f.rows))
            } else {
                "—".to_string()
            };
            println!(
                "| {} | {name} | {} | {} | {:.2} | {:.2} | {convert} | {:.1} | {:.2} |",
                round + 1,
                f.rows,
                f.pages,
                f.cpu_ns as f64 / 1e9,
                per_row(f.cpu_ns, f.rows),
                f.wall_s,
                per_row(f.weir_ns, f.rows)
            );
        }
    }
    // This machine's speed drifts by several percent between minutes: compare builds by the
    // minimum and median over many rounds, not by one round.
    println!("\nover {rounds} rounds, min / median:");
    let cpu = |(_, f): &(&str, Figures)| per_row(f.cpu_ns, f.rows);
    let native = results.iter().map(|paths| cpu(&paths[paths.len() - 1])).collect::<Vec<_>>();
    for (i, (name, _)) in results[0].iter().enumerate() {
        let figures: Vec<f64> = results.iter().map(|paths| cpu(&paths[i])).collect();
        let weir: Vec<f64> =
            results.iter().map(|paths| per_row(paths[i].1.weir_ns, paths[i].1.rows)).collect();
        println!("  {name:<27} {:.2} / {:.2} µs/row", min(&figures), median(&figures));
        println!("  {:<27} {:.2} / {:.2} µs/row, all weir threads", "", min(&weir), median(&weir));
        if i + 1 < results[0].len() {
            let ratio: Vec<f64> = figures.iter().zip(&native).map(|(s, n)| s / n).collect();
            println!("  {:<27} {:.2} / {:.2}× native", "", min(&ratio), median(&ratio));
        }
    }
    // The native path taken apart: its requests (the gate, the HTTP client and the kernel's
    // receive), the host's reading of the connector's Arrow, and the connector itself (the rest:
    // scanning the page, shaping its cells, building Arrow, writing IPC).
    let part = |ns: fn(&Figures) -> u64| {
        let native = results.iter().map(|paths| &paths[paths.len() - 1].1);
        let each: Vec<f64> = native.map(|f| per_row(ns(f), f.rows)).collect();
        format!("{:.2} / {:.2}", min(&each), median(&each))
    };
    println!("\n  native, of which, min / median µs/row:");
    println!("    requests (gate, HTTP, kernel)  {}", part(|f| f.send_ns));
    println!(
        "    the connector                  {}",
        part(|f| f.cpu_ns.saturating_sub(f.send_ns + f.convert_ns))
    );
    println!("    the host reading its Arrow     {}", part(|f| f.convert_ns));
    if other.is_some() {
        let ratio: Vec<f64> = results.iter().map(|paths| cpu(&paths[1]) / cpu(&paths[0])).collect();
        println!("  other / bundled component   {:.2} / {:.2}×", min(&ratio), median(&ratio));
    }
}

fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 { sorted[mid] } else { (sorted[mid - 1] + sorted[mid]) / 2.0 }
}

/// Reads the table to its end through the sandbox.
fn read_sandboxed(session: &mut Session, schema: &SchemaRef, table_options: &[(String, String)]) -> Figures {
    let mut converter = session.converter(schema.clone());
    let (cpu0, weir0, wall0) = (thread_cpu_ns(), weir_cpu_ns(), Instant::now());
    let mut f = Figures { rows: 0, pages: 0, cpu_ns: 0, weir_ns: 0, convert_ns: 0, send_ns: 0, wall_s: 0.0 };
    let mut start: Option<String> = None;
    loop {
        let page = session.read_table(TABLE, table_options, start.as_deref(), &mut converter).expect("page");
        f.rows += page.rows;
        f.pages += 1;
        if page.done {
            break;
        }
        start = Some(page.end_offset);
    }
    f.cpu_ns = thread_cpu_ns() - cpu0;
    f.weir_ns = weir_cpu_ns().saturating_sub(weir0);
    f.wall_s = wall0.elapsed().as_secs_f64();
    f
}

/// Reads the table to its end with the connector compiled for the host.
fn read_native(
    host: &NativeHost,
    session: &Session,
    options: &BTreeMap<String, String>,
    schema: &SchemaRef,
    table_options: &[(String, String)],
) -> Figures {
    let table_opts: BTreeMap<String, String> = table_options.iter().cloned().collect();
    let mut converter = session.converter(schema.clone());
    let (cpu0, weir0, wall0, send0) = (thread_cpu_ns(), weir_cpu_ns(), Instant::now(), host.send_ns.get());
    let mut f = Figures { rows: 0, pages: 0, cpu_ns: 0, weir_ns: 0, convert_ns: 0, send_ns: 0, wall_s: 0.0 };
    let mut start: Option<String> = None;
    loop {
        let page = weir_airtable::Airtable::read_table(host, options, TABLE, &table_opts, start.as_deref())
            .expect("page");
        let c0 = thread_cpu_ns();
        let rows: usize = match &page.rows {
            Rows::ArrowIpc(stream) => {
                converter.arrow_ipc(stream).expect("converts").iter().map(|b| b.num_rows()).sum()
            }
            // The page that ends a read (`Page::end`) holds no rows.
            Rows::JsonLines(text) if text.is_empty() => 0,
            Rows::JsonLines(_) => panic!("the Airtable connector writes Arrow IPC"),
        };
        f.convert_ns += thread_cpu_ns() - c0;
        f.rows += rows;
        f.pages += 1;
        if start.as_deref() == Some(page.end_offset.as_str()) {
            break;
        }
        start = Some(page.end_offset);
    }
    f.cpu_ns = thread_cpu_ns() - cpu0;
    f.weir_ns = weir_cpu_ns().saturating_sub(weir0);
    f.wall_s = wall0.elapsed().as_secs_f64();
    f.send_ns = host.send_ns.get() - send0;
    f
}
