//! JSON Lines pages against a table schema: any bytes must convert or fail with an error, and a
//! converted batch always has exactly the table's schema.

/// One execution: panics when the property does not hold.
pub fn run(input: &[u8]) {
    let Some((mut converter, page)) = crate::converter(input) else { return };
    if let Ok(batch) = converter.json_lines(page) {
        assert_eq!(batch.schema(), *converter.schema());
    }
}
