//! The `pipeline_spec` target: see `weir_fuzz::targets::pipeline_spec`.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| weir_fuzz::targets::pipeline_spec::run(input));
