//! Issue 4's figures: `weir run` end to end on one large Airtable table, beside the Delta write
//! alone, and beside a plain Python script doing the same job.
//!
//! ```text
//! cargo bench -p weir --bench pipeline --target-dir /work/target-release
//! WEIR_BENCH_ROWS=200000 WEIR_BENCH_PY_ROWS=0 \
//!     cargo bench -p weir --bench pipeline --target-dir /work/target-release
//! ```
//!
//! 1. **End to end.** The simulator (rate limit off) grows `SKU Candidates` to
//!    `WEIR_BENCH_ROWS` rows (default 1,000,000); the release `weir run` binary ingests it
//!    into a fresh warehouse as the pipeline does by default (a cdc table: MERGE upserts in
//!    commits of 50,000 rows). Wall time and peak RSS (`/usr/bin/time -v`, else `VmHWM`
//!    polled from `/proc`) are those of the `weir` process; the simulator runs in this process
//!    and shares the machine's cores with it.
//! 2. **The write alone.** The same table is read through the runtime into memory (untimed),
//!    then the same batches are written with `weir_delta::DeltaSink`: Upsert and Append in
//!    commits of 50,000 rows, and Replace as one commit (what a snapshot table gets).
//! 3. **The alternative.** `benches/airtable_to_delta.py`, a reference script in the style of
//!    the upstream Python connector (requests, paging, pyarrow, `write_deltalake`), not the
//!    upstream code, against a simulator with `WEIR_BENCH_PY_ROWS` rows (default 100,000; 0
//!    skips it), beside `weir run` on the same simulator.
//!
//! The bundled Airtable manifest paces requests at Airtable's 5 per second per base (see the
//! `ratelimit` bench), which caps any Airtable read at about 250 rows/s whatever the machine.
//! To measure weir itself, this bench runs the same component repackaged with the manifest's
//! `[[rate_limits]]` removed (`airtable-unpaced.wasm`); nothing else differs.
//!
//! The Airtable connector starts a new sorted, filtered listing every `checkpoint_records`
//! rows of a cdc read (default 5,000), and the simulator answers each new listing in O(table).
//! At 1,000,000 rows that makes the simulator, not weir, the bottleneck (weir idled at ~5% CPU
//! while the simulator held a core). The spec therefore sets `checkpoint_records` to
//! `WEIR_BENCH_CHECKPOINT_RECORDS` (default 50,000, the same as `--commit-rows`), so commits
//! fall every 50,000 rows as with the defaults, and the simulator sorts 20 times, not 200.
//!
//! Figures are printed, never asserted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use arrow_array::RecordBatch;
use weir_airtable_sim::{DEFAULT_BASE_ID, DEFAULT_TOKEN, Sim, SimConfig};
use weir_delta::{Checkpoint, DeltaSink, WriteMode};
use weir_runtime::{ConnectionsFile, Pages, Runtime, RuntimeConfig, Stream};

const TABLE: &str = "SKU Candidates";
/// The file name the unpaced component gets beside each connections file.
const UNPACED: &str = "airtable-unpaced.wasm";
/// `weir run`'s default `--commit-rows`.
const COMMIT_ROWS: usize = 50_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

/// The cdc chunk size the spec sets, as a table option.
fn checkpoint_records() -> usize {
    env_usize("WEIR_BENCH_CHECKPOINT_RECORDS", COMMIT_ROWS)
}

fn main() -> Result<()> {
    let rows = env_usize("WEIR_BENCH_ROWS", 1_000_000);
    let py_rows = env_usize("WEIR_BENCH_PY_ROWS", 100_000);
    let weir = PathBuf::from(env!("CARGO_BIN_EXE_weir"));
    let work = tempfile::Builder::new().prefix("weir-bench-pipeline").tempdir()?;
    let cache = work.path().join("cache");
    let unpaced = unpaced_airtable()?;
    // Warm the compile cache the way a second run of `weir` finds it: the figure is the
    // pipeline's, not cranelift's (the boundary bench measures compiling).
    Runtime::new(RuntimeConfig { cache_dir: Some(cache.clone()) })?.load(&unpaced)?;
    println!(
        "machine: {} cores; weir binary {}; table option checkpoint_records = {}",
        cores(),
        weir.display(),
        checkpoint_records()
    );

    println!("\n== 1. end to end: weir run, {rows} rows of {TABLE:?}, simulator rate limit off ==");
    let started = Instant::now();
    let sim = start_sim(rows)?;
    println!("simulator grew the table in {:.1} s", started.elapsed().as_secs_f64());
    let e2e = run_weir(&weir, &sim, &work.path().join("e2e"), &cache, &unpaced)?;
    e2e.print("weir run");

    println!("\n== 2. the Delta write alone, same batches, {rows} rows ==");
    let started = Instant::now();
    let table = read_into_memory(&sim, &unpaced)?;
    drop(sim);
    println!(
        "read {} rows in {} pages through the runtime into memory in {:.1} s (untimed below)",
        table.rows,
        table.pages.len(),
        started.elapsed().as_secs_f64()
    );
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let keys = table.keys.clone();
    let upsert = WriteMode::Upsert { keys, sequence_by: table.sequence_by.clone() };
    for (label, mode, commit_rows) in [
        ("upsert (the pipeline's mode for this cdc table)", upsert, COMMIT_ROWS),
        ("append", WriteMode::Append, COMMIT_ROWS),
        ("replace (one commit, as a snapshot table)", WriteMode::Replace, usize::MAX),
    ] {
        let uri = work.path().join(format!("write-{}", label.split(' ').next().unwrap_or("mode")));
        let (took, commits) = tokio.block_on(write_alone(&uri, &table, &mode, commit_rows))?;
        println!(
            "{label:<48} {:>7.1} s  {:>9.0} rows/s  {commits} commits",
            took.as_secs_f64(),
            table.rows as f64 / took.as_secs_f64()
        );
        std::fs::remove_dir_all(&uri).ok();
    }
    drop(table);

    if py_rows > 0 {
        println!("\n== 3. weir run vs a plain Python script, {py_rows} rows, simulator rate limit off ==");
        let sim = start_sim(py_rows)?;
        let weir_small = run_weir(&weir, &sim, &work.path().join("small"), &cache, &unpaced)?;
        weir_small.print("weir run (upsert)");
        for mode in ["upsert", "append"] {
            match run_python(&sim, &work.path().join(format!("py-{mode}")), mode) {
                Ok(m) => m.print(&format!("python reference ({mode})")),
                Err(e) => println!("python reference ({mode}): not measured: {e:#}"),
            }
        }
    }
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn start_sim(rows: usize) -> Result<Sim> {
    Sim::start(SimConfig {
        rate_limit: false,
        grow: vec![(TABLE.to_string(), rows)],
        seed: 42,
        ..SimConfig::default()
    })
}

/// The bundled Airtable component with its manifest's `[[rate_limits]]` removed.
fn unpaced_airtable() -> Result<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/airtable/manifest.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut manifest: toml::Table = toml::from_str(&text)?;
    manifest.remove("rate_limits").context("the Airtable manifest declares rate limits")?;
    weir_runtime::manifest::package(weir_artifacts::AIRTABLE, &toml::to_string(&manifest)?)
        .map_err(anyhow::Error::msg)
}

fn connections_toml(sim: &Sim) -> String {
    format!(
        "[connections.airtable]\nconnector = \"{UNPACED}\"\nbase_id = \"{DEFAULT_BASE_ID}\"\n\
         base_url = \"{}\"\nbearer_token = {{ file = \"sim-token\" }}\nallow_loopback = true\n",
        sim.base_url()
    )
}

/// What one measured process did.
struct Measured {
    wall: Duration,
    peak_rss_kib: Option<u64>,
    rows: u64,
    detail: String,
}

impl Measured {
    fn print(&self, label: &str) {
        let rss = self.peak_rss_kib.map_or("n/a".to_string(), |k| format!("{:.0} MiB", k as f64 / 1024.0));
        println!(
            "{label:<28} {:>9} rows  {:>7.1} s  {:>8.0} rows/s  peak RSS {rss}  ({})",
            self.rows,
            self.wall.as_secs_f64(),
            self.rows as f64 / self.wall.as_secs_f64(),
            self.detail
        );
    }
}

/// Runs `command` to completion, timing it and taking its peak RSS.
fn measure(mut command: Command) -> Result<(Duration, Option<u64>, String)> {
    let time = Path::new("/usr/bin/time");
    let mut command = if time.exists() {
        let mut wrapped = Command::new(time);
        wrapped.arg("-v").arg(command.get_program()).args(command.get_args());
        for (k, v) in command.get_envs() {
            match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        if let Some(dir) = command.get_current_dir() {
            wrapped.current_dir(dir);
        }
        wrapped
    } else {
        std::mem::replace(&mut command, Command::new("true"))
    };
    let started = Instant::now();
    let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().context("spawning")?;
    let pid = child.id();
    // Without /usr/bin/time, poll the high-water mark; the last read before exit is kept.
    let poll = (!time.exists()).then(|| {
        std::thread::spawn(move || {
            let mut peak = None;
            while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                peak = vm_hwm(&status).or(peak);
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    });
    let output = child.wait_with_output()?;
    let wall = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("{} failed ({}):\n{stderr}\n{stdout}", command.get_program().to_string_lossy(), output.status);
    }
    let peak = match poll {
        Some(handle) => handle.join().ok().flatten(),
        None => stderr.lines().find_map(|l| {
            l.trim().strip_prefix("Maximum resident set size (kbytes):").and_then(|v| v.trim().parse().ok())
        }),
    };
    Ok((wall, peak, stdout))
}

fn vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `weir run` on a one-table spec into a fresh warehouse under `dir`.
fn run_weir(weir: &Path, sim: &Sim, dir: &Path, cache: &Path, component: &[u8]) -> Result<Measured> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(UNPACED), component)?;
    std::fs::write(dir.join("sim-token"), DEFAULT_TOKEN)?;
    std::fs::write(dir.join("connections.toml"), connections_toml(sim))?;
    std::fs::write(
        dir.join("pipeline.yaml"),
        format!(
            "connection_name: airtable\nobjects:\n  - table:\n      source_table: {TABLE}\n      \
             destination_catalog: main\n      destination_schema: bronze\n      \
             destination_table: sku_candidates\n      table_configuration:\n        \
             checkpoint_records: \"{}\"\n",
            checkpoint_records()
        ),
    )?;
    let mut command = Command::new(weir);
    command
        .current_dir(dir)
        .args([
            "run",
            "pipeline.yaml",
            "--connections",
            "connections.toml",
            "--warehouse",
            "warehouse",
            "--json",
        ])
        .env("WEIR_CACHE_DIR", cache);
    let (wall, peak, stdout) = measure(command)?;
    let reports: serde_json::Value = serde_json::from_str(&stdout).context("weir run --json output")?;
    let report = reports.get(0).context("one table report")?;
    let n = |k: &str| report.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let detail = format!(
        "{} inserted, {} updated, {} commits, {} pages, {} requests",
        n("inserted"),
        n("updated"),
        n("commits"),
        n("pages"),
        report.pointer("/http/requests").and_then(serde_json::Value::as_u64).unwrap_or(0)
    );
    Ok(Measured { wall, peak_rss_kib: peak, rows: n("rows_read"), detail })
}

/// The reference Python script against the same simulator.
fn run_python(sim: &Sim, dir: &Path, mode: &str) -> Result<Measured> {
    std::fs::create_dir_all(dir)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/airtable_to_delta.py");
    let mut command = Command::new("python3");
    command.arg(&script).args([
        "--base-url",
        &sim.base_url(),
        "--base-id",
        DEFAULT_BASE_ID,
        "--table",
        TABLE,
        "--out",
        &dir.join("sku_candidates").to_string_lossy(),
        "--mode",
        mode,
        "--commit-rows",
        &COMMIT_ROWS.to_string(),
    ]);
    command.env("AIRTABLE_TOKEN", DEFAULT_TOKEN);
    let (wall, peak, stdout) = measure(command)?;
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .context("the script's JSON summary")?;
    let n = |k: &str| summary.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    Ok(Measured {
        wall,
        peak_rss_kib: peak,
        rows: n("rows"),
        detail: format!("{} commits, {} requests", n("commits"), n("requests")),
    })
}

/// One table, read whole into memory as the pipeline's pages of batches.
struct InMemory {
    schema: arrow_schema::SchemaRef,
    keys: Vec<String>,
    sequence_by: Option<String>,
    pages: Vec<Vec<RecordBatch>>,
    rows: usize,
}

fn read_into_memory(sim: &Sim, component: &[u8]) -> Result<InMemory> {
    let file = ConnectionsFile::parse(
        &connections_toml(sim).replace("{ file = \"sim-token\" }", &format!("\"{DEFAULT_TOKEN}\"")),
        Path::new("bench-connections.toml"),
    )?;
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let connector = runtime.load(component)?;
    let mut session = runtime.session(&connector, file.get("airtable")?)?;
    let options = vec![("checkpoint_records".to_string(), checkpoint_records().to_string())];
    let schema = session.arrow_schema(TABLE, &options)?;
    let metadata = session.table_metadata(TABLE, &options)?;
    let (mut pages, mut rows) = (Vec::new(), 0usize);
    let mut read = Pages::new(&mut session, TABLE, &options, Stream::Table, None, Arc::clone(&schema));
    while let Some(page) = read.next_page() {
        let page = page?;
        rows += page.rows;
        pages.push(page.batches.into_iter().filter(|b| b.num_rows() > 0).collect());
    }
    Ok(InMemory { schema, keys: metadata.primary_keys, sequence_by: metadata.cursor_field, pages, rows })
}

/// Writes every page with `mode`, committing once `commit_rows` rows are pending, as `weir run` does.
async fn write_alone(
    uri: &Path,
    table: &InMemory,
    mode: &WriteMode,
    commit_rows: usize,
) -> Result<(Duration, u64)> {
    let uri = uri.to_string_lossy();
    let started = Instant::now();
    let mut sink = DeltaSink::open(&uri, Arc::clone(&table.schema), mode).await?;
    let (mut pending, mut pending_rows, mut version) = (Vec::new(), 0usize, 0i64);
    let last = table.pages.len().saturating_sub(1);
    for (i, page) in table.pages.iter().enumerate() {
        pending_rows += page.iter().map(RecordBatch::num_rows).sum::<usize>();
        pending.extend(page.iter().cloned());
        if pending_rows >= commit_rows || i == last {
            version += 1;
            let checkpoint = Checkpoint {
                app_id: "bench".into(),
                version,
                offset: format!(r#"{{"page":{i}}}"#),
                connector: None,
            };
            sink.commit(std::mem::take(&mut pending), mode, &checkpoint).await?;
            pending_rows = 0;
        }
    }
    Ok((started.elapsed(), version as u64))
}
