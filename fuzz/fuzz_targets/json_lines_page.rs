//! The `json_lines_page` target: see `weir_fuzz::targets::json_lines_page`.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| weir_fuzz::targets::json_lines_page::run(input));
