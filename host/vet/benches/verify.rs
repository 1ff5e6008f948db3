//! The cost of verifying a component's signature before it is compiled, per MiB of
//! component, for a few sizes and for the real Airtable connector. Figures are printed,
//! never asserted: `cargo bench -p weir-vet --bench verify`.

use std::time::{Duration, Instant};

use weir_vet::{keys, signature};

fn main() {
    let key = keys::generate();
    let public = [key.public_key()];
    // A realistic trust store holds a few keys; verification tries each signature's key only.
    let mut trusted: Vec<_> = (0..4).map(|_| keys::generate().public_key()).collect();
    trusted.push(key.public_key());

    println!("signature verification (SHA-256 over the component + one Ed25519 check)");
    println!("{:>34} {:>12} {:>12} {:>10}", "component", "per verify", "per MiB", "MiB/s");
    let mut cases: Vec<(String, Vec<u8>)> = [64 << 10, 1 << 20, 8 << 20, 32 << 20]
        .into_iter()
        .map(|size: usize| (format!("{} KiB synthetic", size >> 10), synthetic(size)))
        .collect();
    cases.push(("airtable.wasm".into(), weir_artifacts::AIRTABLE.to_vec()));
    for (label, unsigned) in cases {
        let signed = signature::sign(&unsigned, &key).expect("sign");
        assert!(signature::verify(&signed, &public).is_ok());
        let per_call = time(|| {
            std::hint::black_box(signature::verify(std::hint::black_box(&signed), &trusted).is_ok());
        });
        let mib = signed.len() as f64 / (1 << 20) as f64;
        println!(
            "{:>34} {:>9.3} ms {:>9.3} ms {:>10.0}",
            format!("{label} ({:.2} MiB)", mib),
            per_call.as_secs_f64() * 1e3,
            per_call.as_secs_f64() * 1e3 / mib,
            mib / per_call.as_secs_f64()
        );
    }
}

/// A component of about `size` bytes: its manifest, padded with a long TOML comment.
fn synthetic(size: usize) -> Vec<u8> {
    let filler: String = (0..size).map(|i| char::from(b'a' + (i * 31 % 26) as u8)).collect();
    let manifest =
        format!("name = \"bench\"\nversion = \"0.1.0\"\ncontract = \"lakeflow:connect@0.1.0\"\n# {filler}\n");
    weir_runtime::manifest::embed(b"\0asm\x0d\0\x01\0", &manifest)
}

/// The mean time of `f`, over enough runs to fill about a second.
fn time(mut f: impl FnMut()) -> Duration {
    f();
    let start = Instant::now();
    let mut runs = 0u32;
    while start.elapsed() < Duration::from_secs(1) || runs < 3 {
        f();
        runs += 1;
    }
    start.elapsed() / runs
}
