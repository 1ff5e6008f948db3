//! The `redactor` target: see `weir_fuzz::targets::redactor`.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| weir_fuzz::targets::redactor::run(input));
