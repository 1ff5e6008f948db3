//! Text from a connector or a source, made safe to print on a terminal.
//!
//! Table names, field names, error messages, manifest text and guest log lines are chosen by
//! whoever wrote the connector or controls the source. Printed raw, their escape sequences can
//! retitle the window, clear the screen, or forge an `error:` line; bidirectional overrides
//! (U+202E) can make text read backwards. [`escape`] turns every such character into a visible
//! escape, and keeps everything else (including ordinary Unicode) as it is.

use std::borrow::Cow;

/// Whether printing `c` could move the cursor, end a line, or reorder text.
fn unsafe_char(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' // line and paragraph separators
                | '\u{200B}'..='\u{200F}' // zero-width characters and direction marks
                | '\u{202A}'..='\u{202E}' // bidirectional embeddings and overrides
                | '\u{2066}'..='\u{2069}' // bidirectional isolates
                | '\u{061C}' | '\u{FEFF}'
        )
}

/// `text` with line breaks, control characters (terminal escapes included) and bidirectional
/// controls escaped as `\n`, `\u{1b}` and so on: one printable line.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_what_could_forge_or_hide_a_line() {
        assert_eq!(
            escape("a\nINFO weir::http: fake\r\x1b[2J\tb"),
            "a\\nINFO weir::http: fake\\r\\u{1b}[2J\tb"
        );
        assert_eq!(escape("x\u{202E}gnp.exe\u{2028}y"), "x\\u{202e}gnp.exe\\u{2028}y");
        assert_eq!(escape("\x1b]0;owned\x07"), "\\u{1b}]0;owned\\u{7}");
        assert!(matches!(escape("plain ünïcode 🚀"), std::borrow::Cow::Borrowed("plain ünïcode 🚀")));
    }
}
