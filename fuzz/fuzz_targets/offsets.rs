//! The `offsets` target: see `weir_fuzz::targets::offsets`.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| weir_fuzz::targets::offsets::run(input));
