//! The `connections` target: see `weir_fuzz::targets::connections`.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| weir_fuzz::targets::connections::run(input));
