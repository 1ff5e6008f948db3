//! The `manifest` target: see `weir_fuzz::targets::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| weir_fuzz::targets::manifest::run(input));
