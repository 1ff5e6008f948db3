//! The redactor (`secrets::Redactor`): the input is a secret, a NUL byte, a byte that picks a form
//! of the secret and where it goes, then a text. The secret in that form (as is, upper-cased,
//! percent-encoded, hex, reversed, or inside a base64 value; a secret shorter than
//! `MIN_ENCODED_SECRET` bytes only as is, the one form promised for it) is put into the text. Nothing panics, whatever the input;
//! `finds_secret` finds a secret of `MIN_ENCODED_SECRET` bytes or more; `redact` and `redact_bytes` agree; and the redacted text holds
//! the secret in no ASCII case (a short one: as written), nor its percent, hex or reversed form, once the `[REDACTED]`
//! markers the redactor writes are taken out (a secret that starts or ends with characters of the
//! marker would otherwise be found by gluing marker and text together).
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use weir_runtime::secrets::{MIN_ENCODED_SECRET, REDACTED, Redactor};

/// One execution: panics when the property does not hold.
pub fn run(input: &[u8]) {
    let Some(nul) = input.iter().position(|&byte| byte == 0) else { return };
    let Ok(secret) = std::str::from_utf8(&input[..nul]) else { return };
    let (pick, text) = match input[nul + 1..].split_first() {
        Some((pick, text)) => (*pick, text),
        None => (0, &[][..]),
    };
    let redactor = redactor(secret);

    // Any text as it comes.
    let redacted = redactor.redact_bytes(text.to_vec());
    if let Ok(text) = std::str::from_utf8(text) {
        assert_eq!(redactor.redact(text).as_bytes(), &redacted[..]);
    }
    if secret.is_empty() {
        return;
    }

    // The text with the secret in it, in one of its forms.
    let encoded = secret.len() >= MIN_ENCODED_SECRET;
    // A short secret is only promised to be redacted as it is written (see `MIN_ENCODED_SECRET`).
    let forms = if encoded { 7 } else { 1 };
    let (form, at) = (pick % forms, usize::from(pick / 8).min(text.len()));
    let inserted: Vec<u8> = match form {
        0 => secret.as_bytes().to_vec(),
        1 => secret.to_ascii_uppercase().into_bytes(),
        2 => secret.bytes().map(|b| format!("%{b:02x}")).collect::<String>().into_bytes(),
        3 => hex::encode_upper(secret).into_bytes(),
        4 => secret.chars().rev().collect::<String>().into_bytes(),
        // Inside a larger base64 value, at the alignment the text's first bytes give.
        5 | 6 => {
            let mut value = text[..at.min(2)].to_vec();
            value.extend_from_slice(secret.as_bytes());
            value.extend_from_slice(&text[at..text.len().min(at + 2)]);
            let engine = if form == 5 { &STANDARD } else { &URL_SAFE };
            engine.encode(value).into_bytes()
        }
        _ => unreachable!("form < 7"),
    };
    let mut carrier = text[..at].to_vec();
    carrier.extend_from_slice(&inserted);
    carrier.extend_from_slice(&text[at..]);

    // A page holding a short secret is not refused (a short value matches too much by chance).
    assert_eq!(redactor.finds_secret(&carrier), encoded, "form {form}");
    let redacted = redactor.redact_bytes(carrier.clone());
    if let Ok(carrier) = std::str::from_utf8(&carrier) {
        assert_eq!(redactor.redact(carrier).as_bytes(), &redacted[..]);
    }
    if secret.to_ascii_lowercase().contains(&REDACTED.to_ascii_lowercase()) {
        // Such a secret is the marker and more: taking the markers out would hide it.
        return;
    }
    let left = without_markers(&redacted, encoded);
    let mut leaks = vec![if encoded { secret.to_ascii_lowercase() } else { secret.to_string() }.into_bytes()];
    if encoded {
        leaks.push(secret.bytes().map(|b| format!("%{b:02x}")).collect::<String>().into_bytes());
        leaks.push(hex::encode(secret).into_bytes());
        leaks.push(secret.chars().rev().collect::<String>().to_ascii_lowercase().into_bytes());
    }
    for leak in leaks {
        assert!(
            !contains(&left, &leak),
            "form {form}: {:?} survived in {:?}",
            String::from_utf8_lossy(&leak),
            String::from_utf8_lossy(&redacted)
        );
    }
}

/// The bytes (ASCII-lower-cased when `fold`), with every `[redacted]` replaced by a NUL byte
/// (which no secret holds: the input's first NUL ends the secret).
fn without_markers(bytes: &[u8], fold: bool) -> Vec<u8> {
    let lower = bytes.to_ascii_lowercase();
    let marker = REDACTED.to_ascii_lowercase().into_bytes();
    let mut out = Vec::with_capacity(lower.len());
    let mut i = 0;
    while i < lower.len() {
        if lower[i..].starts_with(&marker) {
            out.push(0);
            i += marker.len();
        } else {
            out.push(if fold { lower[i] } else { bytes[i] });
            i += 1;
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The redactor for a secret, built once: its automata over every form of the secret cost far more
/// than a redaction, and most mutations keep an input's secret and change its text.
fn redactor(secret: &str) -> Rc<Redactor> {
    thread_local! {
        static BUILT: RefCell<HashMap<String, Rc<Redactor>>> = RefCell::new(HashMap::new());
    }
    BUILT.with_borrow_mut(|built| {
        if built.len() >= 4096 {
            built.clear();
        }
        built.entry(secret.to_string()).or_insert_with(|| Rc::new(Redactor::new([secret]))).clone()
    })
}
