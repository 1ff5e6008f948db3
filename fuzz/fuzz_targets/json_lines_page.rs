//! JSON Lines pages against a table schema: any bytes must convert or fail with an error, and a
//! converted batch always has exactly the table's schema.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((mut converter, page)) = weir_fuzz::converter(input) else { return };
    if let Ok(batch) = converter.json_lines(page) {
        assert_eq!(batch.schema(), *converter.schema());
    }
});
