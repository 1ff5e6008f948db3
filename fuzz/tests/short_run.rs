//! The short fuzz run that every `cargo test --workspace` (and so CI) makes: each target's committed
//! corpus replayed, then random mutations of it for a few seconds per target. It is not
//! coverage-guided (that is libFuzzer's job, `fuzz/run.sh`, whose build costs a CI run about
//! 15 minutes); it catches a property broken by a change to the code under test, on the inputs that
//! libFuzzer found interesting, within seconds.
//!
//! Knobs: `WEIR_FUZZ_SHORT_SECONDS` (mutation time per target, default 3), `WEIR_FUZZ_SEED` (the
//! mutations' seed, default fixed, so that a run is reproducible up to its time budget). A failing
//! input is written under the test's temporary folder, and the message says how to replay it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use weir_fuzz::targets;

/// Inputs libFuzzer runs under are capped at this length by `run.sh`; so are the mutations here.
const MAX_LEN: usize = 65_536;

/// Bytes and words that make parsers take other paths: delimiters of JSON, TOML and YAML, numbers
/// at the edges, and lengths that Arrow IPC reads as sizes.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"=",
    b"\n",
    b"\0",
    b"\\u0000",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1e308",
    b"-9223372036854775809",
    b"NaN",
    b"inf",
    b"[[",
    b"]]",
    b"- ",
    b"---",
    b"\xff\xff\xff\xff",
    b"\xff\xff\xff\x7f",
    b"\0\0\0\x80",
    b"\x01\0\0\0\0\0\0\0",
    b"\xf0\x9f\x98\x80",
];

/// xorshift64*: small, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One to four mutations of `input`, with `other` (another corpus input) to splice from.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..=rng.below(4) {
        let len = bytes.len();
        match rng.below(8) {
            0 if len > 0 => {
                let at = rng.below(len);
                bytes[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                bytes[at] = [0, 0x7f, 0x80, 0xff, rng.next() as u8][rng.below(5)];
            }
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(len + 1);
                bytes.splice(at..at, token.iter().copied());
            }
            3 if len > 0 => {
                let from = rng.below(len);
                let to = (from + 1 + rng.below(16)).min(len);
                bytes.drain(from..to);
            }
            4 if len > 0 => {
                let from = rng.below(len);
                let chunk = bytes[from..(from + 1 + rng.below(64)).min(len)].to_vec();
                let at = rng.below(len + 1);
                bytes.splice(at..at, chunk);
            }
            5 => {
                let keep = rng.below(len + 1);
                bytes.truncate(keep);
                bytes.extend_from_slice(&other[rng.below(other.len() + 1)..]);
            }
            6 if len >= 4 => {
                let at = rng.below(len - 3);
                let word = [0u32, u32::MAX, i32::MAX as u32, 0x8000_0000, rng.next() as u32][rng.below(5)];
                bytes[at..at + 4].copy_from_slice(&word.to_le_bytes());
            }
            _ => bytes.truncate(rng.below(len + 1)),
        }
    }
    bytes.truncate(MAX_LEN);
    bytes
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a corpus entry").path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, bytes)
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{} holds no input: run the corpus example (fuzz/README.md)", dir.display());
    inputs
}

/// Whether `run` panics on `input`.
fn fails(run: fn(&[u8]), input: &[u8]) -> bool {
    catch_unwind(AssertUnwindSafe(|| run(input))).is_err()
}

/// Replays the target's corpus, then mutates it until the time budget is spent.
fn short_run(target: &str) {
    let (_, run) = *targets::ALL.iter().find(|(name, _)| *name == target).expect("a known target");
    let seconds: f64 =
        std::env::var("WEIR_FUZZ_SHORT_SECONDS").map_or(3.0, |s| s.parse().expect("a number of seconds"));
    let seed: u64 = std::env::var("WEIR_FUZZ_SEED").map_or(0x5eed_f00d, |s| s.parse().expect("a number"));
    let inputs = corpus(target);
    for (path, bytes) in &inputs {
        assert!(
            !fails(run, bytes),
            "target {target}: the committed input {} fails its property",
            path.display()
        );
    }

    let mut rng = Rng(seed | 1);
    let (started, budget) = (Instant::now(), Duration::from_secs_f64(seconds));
    let mut executions = 0u64;
    while started.elapsed() < budget {
        let (_, input) = &inputs[rng.below(inputs.len())];
        let (_, other) = &inputs[rng.below(inputs.len())];
        let mutated = mutate(&mut rng, input, other);
        executions += 1;
        if fails(run, &mutated) {
            let saved = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{target}-{executions}"));
            std::fs::write(&saved, &mutated).expect("the failing input is saved");
            panic!(
                "target {target}: mutation {executions} (seed {seed}) breaks the property (the panic above); \
                 the input is saved in {}; replay it under libFuzzer with \
                 RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz --features libfuzzer -a {target} {}",
                saved.display(),
                saved.display()
            );
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "short run: {target}: {} corpus inputs, {executions} mutations in {elapsed:.1} s ({:.0}/s), 0 failures",
        inputs.len(),
        executions as f64 / elapsed
    );
}

#[test]
fn ipc_page() {
    short_run("ipc_page");
}

#[test]
fn json_lines_page() {
    short_run("json_lines_page");
}

#[test]
fn spark_schema() {
    short_run("spark_schema");
}

#[test]
fn manifest() {
    short_run("manifest");
}

#[test]
fn connections() {
    short_run("connections");
}

#[test]
fn pipeline_spec() {
    short_run("pipeline_spec");
}

#[test]
fn offsets() {
    short_run("offsets");
}

#[test]
fn redactor() {
    short_run("redactor");
}

#[test]
fn every_target_has_a_short_run() {
    let source = include_str!("short_run.rs");
    for (name, _) in targets::ALL {
        assert!(source.contains(&format!("short_run(\"{name}\")")), "no short run for {name}");
    }
}
