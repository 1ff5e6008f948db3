//! Offsets and partition descriptors as the host compares and keys them (`same_offset`,
//! `read::is_offset`, `partition_app_id`). The input is two texts, split at its first NUL byte.
//! For any pair nothing panics and `same_offset` is reflexive and symmetric; for a text that is
//! JSON, the same value written with every object's keys in reverse order (compact, and
//! pretty-printed) is the same offset, is an offset exactly when the value is an object, and gets
//! the same partition application id.
use crate::app_id::partition_app_id;
use serde_json::Value;
use weir_runtime::read::is_offset;
use weir_runtime::same_offset;

const APP_ID: &str = "weir/fuzz/table";

/// One execution: panics when the property does not hold.
pub fn run(input: &[u8]) {
    let (a, b) = match input.iter().position(|&byte| byte == 0) {
        Some(nul) => (&input[..nul], &input[nul + 1..]),
        None => (input, &[][..]),
    };
    let (Ok(a), Ok(b)) = (std::str::from_utf8(a), std::str::from_utf8(b)) else { return };
    assert!(same_offset(a, a));
    assert_eq!(same_offset(a, b), same_offset(b, a));
    for text in [a, b] {
        is_offset(text);
        let id = partition_app_id(APP_ID, text);
        assert!(id.starts_with(APP_ID) && id.len() == APP_ID.len() + "#partition:".len() + 16, "{id}");
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            reordered(&value);
        }
    }
}

/// The value written as is, and with its keys reversed, is the same offset with the same id.
fn reordered(value: &Value) {
    let written = serde_json::to_string(value).expect("a JSON value writes");
    let reversed = reverse_keys(value);
    let id = partition_app_id(APP_ID, &written);
    for other in [
        serde_json::to_string(&reversed).expect("a JSON value writes"),
        serde_json::to_string_pretty(&reversed).expect("a JSON value writes"),
    ] {
        assert!(same_offset(&written, &other), "{written}\n{other}");
        assert!(same_offset(&other, &written), "{written}\n{other}");
        assert_eq!(is_offset(&other), value.is_object(), "{other}");
        assert_eq!(partition_app_id(APP_ID, &other), id, "{written}\n{other}");
    }
    assert_eq!(is_offset(&written), value.is_object(), "{written}");
}

/// The value with every object's keys in reverse order (serde_json keeps insertion order here).
fn reverse_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().rev().map(|(k, v)| (k.clone(), reverse_keys(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(reverse_keys).collect()),
        other => other.clone(),
    }
}
