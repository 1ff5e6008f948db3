//! The `spark_schema` target: see `weir_fuzz::targets::spark_schema`.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| weir_fuzz::targets::spark_schema::run(input));
