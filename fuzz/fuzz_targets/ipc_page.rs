//! The `ipc_page` target: see `weir_fuzz::targets::ipc_page`.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| weir_fuzz::targets::ipc_page::run(input));
