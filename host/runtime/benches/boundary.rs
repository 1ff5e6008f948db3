//! What the sandbox costs: loading a component (cold compile vs the compile cache), starting an
//! instance, and moving 100-row pages of a 20-column table across the boundary into Arrow.
//!
//! ```text
//! cargo bench -p weir-runtime --bench boundary --target-dir /work/target-release
//! ```
//!
//! The throughput benchmarks report rows/s (criterion's `elem/s`), and a summary at the end
//! prints each one as rows/s over every timed iteration:
//! - `sandbox`: `Session::read_table` on the hostile component's benign `wide` table, which
//!   generates the page inside the guest, crosses the boundary, and converts it to Arrow;
//! - `native`: the same generator (`weir_hostile::wide_page`) called directly, then the same
//!   `Converter`: everything but the sandbox;
//! - `convert`: the `Converter` alone on a page generated beforehand.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use weir_runtime::{ConnectionSpec, ConnectionsFile, LoadedConnector, Runtime, RuntimeConfig};

/// Timed work per benchmark name: (units of work, time), summed over every timed iteration.
type Tally = Arc<Mutex<BTreeMap<String, (u64, Duration)>>>;

fn record(tally: &Tally, name: &str, units: u64, took: Duration) {
    if let Ok(mut t) = tally.lock() {
        let entry = t.entry(name.to_string()).or_default();
        entry.0 += units;
        entry.1 += took;
    }
}

/// A connection to the hostile component that behaves and never reaches the network.
fn hostile_connection() -> ConnectionSpec {
    let text = r#"
        [connections.bench]
        connector = "hostile"
        bearer_token = "bench-token"
        base_url = "http://127.0.0.1:9"
        attack = "none"
        allow_loopback = true
    "#;
    let file = ConnectionsFile::parse(text, Path::new("bench-connections.toml")).expect("valid connections");
    file.get("bench").expect("the bench connection").clone()
}

fn wide_converter() -> weir_convert::Converter {
    let schema = weir_convert::arrow_schema(weir_hostile::WIDE_SCHEMA).expect("the wide schema converts");
    weir_convert::Converter::new(Arc::new(schema))
}

fn load_benches(c: &mut Criterion, tally: &Tally) {
    let mut group = c.benchmark_group("load");
    // A cold load compiles the whole component: seconds each, so few samples.
    group.sample_size(10).warm_up_time(Duration::from_millis(1)).measurement_time(Duration::from_secs(20));
    group.bench_function("airtable cold (compile)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("a temporary cache folder");
                let runtime = Runtime::new(RuntimeConfig { cache_dir: Some(dir.path().to_path_buf()) })
                    .expect("runtime");
                let started = Instant::now();
                let loaded = runtime.load(weir_artifacts::AIRTABLE).expect("airtable loads");
                let took = started.elapsed();
                assert!(!loaded.load.cached, "an empty cache cannot hold the component");
                total += took;
            }
            record(tally, "load airtable cold (compile)", iters, total);
            total
        })
    });
    let dir = tempfile::tempdir().expect("a temporary cache folder");
    let runtime = Runtime::new(RuntimeConfig { cache_dir: Some(dir.path().to_path_buf()) }).expect("runtime");
    runtime.load(weir_artifacts::AIRTABLE).expect("airtable compiles into the cache");
    group.bench_function("airtable warm (compile cache)", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                let loaded = runtime.load(weir_artifacts::AIRTABLE).expect("airtable loads");
                assert!(loaded.load.cached, "the second load comes from the cache");
                black_box(loaded);
            }
            let took = started.elapsed();
            record(tally, "load airtable warm (compile cache)", iters, took);
            took
        })
    });
    group.finish();
}

fn instantiate_benches(c: &mut Criterion, tally: &Tally, runtime: &Runtime, hostile: &LoadedConnector) {
    let spec = hostile_connection();
    let mut group = c.benchmark_group("instantiate");
    group.bench_function("hostile: new session + first list_tables", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                let mut session = runtime.session(hostile, &spec).expect("session");
                black_box(session.list_tables().expect("list_tables"));
            }
            let took = started.elapsed();
            record(tally, "new session + first list_tables", iters, took);
            took
        })
    });
    let mut live = runtime.session(hostile, &spec).expect("session");
    live.list_tables().expect("list_tables");
    group.bench_function("hostile: list_tables on a live instance", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                black_box(live.list_tables().expect("list_tables"));
            }
            let took = started.elapsed();
            record(tally, "list_tables on a live instance", iters, took);
            took
        })
    });
    group.finish();
}

fn throughput_benches(c: &mut Criterion, tally: &Tally, runtime: &Runtime, hostile: &LoadedConnector) {
    let rows = weir_hostile::WIDE_PAGE_ROWS;
    let mut group = c.benchmark_group("wide 100-row pages");
    group.throughput(Throughput::Elements(rows));

    // The guest's pages never run out, so each iteration reads the next one.
    let table_options = vec![("pages".to_string(), u64::MAX.to_string())];
    let mut session = runtime.session(hostile, &hostile_connection()).expect("session");
    let mut converter = wide_converter();
    let mut page_no = 0u64;
    let first = session.read_table("wide", &table_options, None, &mut converter).expect("read wide");
    assert_eq!(first.rows as u64, rows, "a wide page has 100 rows");
    assert!(converter.unknown_fields().is_empty(), "the wide schema covers every field");
    group.bench_function(BenchmarkId::new("rows", "sandbox (guest generates, boundary, convert)"), |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                page_no += 1;
                let offset = format!(r#"{{"page":{}}}"#, page_no % 10_000);
                let page = session
                    .read_table("wide", &table_options, Some(&offset), &mut converter)
                    .expect("read wide");
                black_box(page);
            }
            let took = started.elapsed();
            record(tally, "sandbox: guest generates + boundary + convert", iters * rows, took);
            took
        })
    });

    let mut converter = wide_converter();
    group.bench_function(BenchmarkId::new("rows", "native (generate, convert)"), |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                page_no += 1;
                let text = weir_hostile::wide_page(page_no % 10_000);
                black_box(converter.json_lines(text.as_bytes()).expect("convert"));
            }
            let took = started.elapsed();
            record(tally, "native: generate + convert", iters * rows, took);
            took
        })
    });

    let text = weir_hostile::wide_page(7);
    group.bench_function(BenchmarkId::new("rows", "convert only"), |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                black_box(converter.json_lines(text.as_bytes()).expect("convert"));
            }
            let took = started.elapsed();
            record(tally, "convert only", iters * rows, took);
            took
        })
    });

    group.bench_function(BenchmarkId::new("rows", "generate only (native)"), |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                page_no += 1;
                black_box(weir_hostile::wide_page(page_no % 10_000));
            }
            let took = started.elapsed();
            record(tally, "generate only (native, no convert)", iters * rows, took);
            took
        })
    });
    group.finish();
}

fn print_summary(tally: &Tally) {
    let Ok(t) = tally.lock() else { return };
    let per_call = |name: &str| t.get(name).map(|(n, d)| d.as_secs_f64() / (*n).max(1) as f64);
    println!("\n== boundary summary (means over every timed iteration, warm-up included) ==");
    for name in ["load airtable cold (compile)", "load airtable warm (compile cache)"] {
        if let Some(s) = per_call(name) {
            println!("{name:<48} {:>10.2} ms", s * 1e3);
        }
    }
    let first = per_call("new session + first list_tables");
    let live = per_call("list_tables on a live instance");
    for (name, value) in
        [("new session + first list_tables", first), ("list_tables on a live instance", live)]
    {
        if let Some(s) = value {
            println!("{name:<48} {:>10.1} µs", s * 1e6);
        }
    }
    if let (Some(f), Some(l)) = (first, live) {
        println!("{:<48} {:>10.1} µs", "instantiate (difference)", (f - l) * 1e6);
    }
    for name in [
        "sandbox: guest generates + boundary + convert",
        "native: generate + convert",
        "convert only",
        "generate only (native, no convert)",
    ] {
        if let Some((rows, d)) = t.get(name) {
            println!("{name:<48} {:>10.0} rows/s", *rows as f64 / d.as_secs_f64());
        }
    }
}

fn main() {
    let tally: Tally = Arc::default();
    let mut c = Criterion::default().configure_from_args();
    load_benches(&mut c, &tally);
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let hostile = runtime.load(weir_artifacts::HOSTILE).expect("hostile loads");
    instantiate_benches(&mut c, &tally, &runtime, &hostile);
    throughput_benches(&mut c, &tally, &runtime, &hostile);
    c.final_summary();
    print_summary(&tally);
}
