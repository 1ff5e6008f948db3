//! The scalar coercions: one JSON value to one Arrow native value, or `None` when the value does
//! not fit the column. The rules are the table in the crate docs.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime};
use serde_json::{Number, Value};
use weir_connector_sdk::decimal;

/// `NaiveDate::num_days_from_ce()` of 1970-01-01, the Arrow date epoch.
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// A JSON integer, a float with no fraction, or a string holding an integer.
pub(crate) fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            // -2^63 is exact in f64 but i64::MAX is not: the upper bound is 2^63, exclusive.
            let min = i64::MIN as f64;
            n.as_f64().filter(|f| f.fract() == 0.0 && *f >= min && *f < -min).map(|f| f as i64)
        }),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A JSON number, or a string that Rust reads as a float (including `NaN`, `Infinity`, `-Infinity`).
pub(crate) fn float(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// [`float`], narrowed to f32; a finite value too large for f32 does not fit.
pub(crate) fn float32(value: &Value) -> Option<f32> {
    let wide = float(value)?;
    let narrow = wide as f32;
    (!(wide.is_finite() && narrow.is_infinite())).then_some(narrow)
}

/// Only `true`/`false`, or those words in a string in any case: never truthiness.
pub(crate) fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Days since 1970-01-01 of `YYYY-MM-DD`, or of the UTC date of an RFC 3339 timestamp.
pub(crate) fn date(value: &Value) -> Option<i32> {
    let text = value.as_str()?;
    let date = if text.len() == 10 {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?
    } else {
        with_offset(text)?.naive_utc().date()
    };
    date.num_days_from_ce().checked_sub(EPOCH_DAYS_FROM_CE)
}

/// Microseconds since the epoch, UTC: an instant with its offset applied, a string without an offset
/// read as UTC, or a number of epoch seconds.
pub(crate) fn timestamp_utc(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => epoch_seconds(n),
        Value::String(s) => match with_offset(s) {
            Some(instant) => micros(instant.naive_utc()),
            None => micros(without_offset(s)?),
        },
        _ => None,
    }
}

/// Wall-clock microseconds: a string's local date and time as written (an offset, if any, is
/// dropped, not applied), or a number of epoch seconds read as a UTC wall clock.
pub(crate) fn timestamp_ntz(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => epoch_seconds(n),
        Value::String(s) => match with_offset(s) {
            Some(instant) => micros(instant.naive_local()),
            None => micros(without_offset(s)?),
        },
        _ => None,
    }
}

fn with_offset(text: &str) -> Option<DateTime<chrono::FixedOffset>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
}

fn without_offset(text: &str) -> Option<NaiveDateTime> {
    if text.len() == 10 {
        return NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0);
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
}

fn micros(wall: NaiveDateTime) -> Option<i64> {
    Some(wall.and_utc().timestamp_micros())
}

/// Epoch seconds to microseconds, exactly from the number's decimal text, within chrono's range so
/// that every stored value can be printed back.
fn epoch_seconds(n: &Number) -> Option<i64> {
    let micros = i64::try_from(decimal::number(n, 6)?).ok()?;
    DateTime::from_timestamp_micros(micros).map(|_| micros)
}

/// A decimal(p,s) unscaled value from a number or numeric string; `None` when it needs more than
/// `precision` digits.
pub(crate) fn decimal(value: &Value, precision: u8, scale: i8) -> Option<i128> {
    let unscaled = match value {
        Value::Number(n) => decimal::number(n, scale)?,
        Value::String(s) => decimal::scaled(s, scale)?,
        _ => return None,
    };
    let limit = 10_i128.checked_pow(u32::from(precision))?;
    (unscaled.abs() < limit).then_some(unscaled)
}

/// Base64, standard alphabet, padded; decoded into `out` (cleared first).
pub(crate) fn base64(text: &str, out: &mut Vec<u8>) -> Option<()> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    out.clear();
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let chunks = bytes.len() / 4;
    for (index, chunk) in bytes.chunks_exact(4).enumerate() {
        let pad =
            if index + 1 == chunks { chunk.iter().rev().take_while(|c| **c == b'=').count() } else { 0 };
        if pad > 2 {
            return None;
        }
        let mut bits = 0_u32;
        for (i, c) in chunk.iter().enumerate() {
            bits = bits << 6 | if i >= 4 - pad { 0 } else { sextet(*c)? };
        }
        let [_, a, b, c] = bits.to_be_bytes();
        out.push(a);
        if pad < 2 {
            out.push(b);
        }
        if pad < 1 {
            out.push(c);
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_decodes_padded_standard_alphabet_only() {
        let mut out = Vec::new();
        assert_eq!(base64("aGVsbG8=", &mut out), Some(()));
        assert_eq!(out, b"hello");
        assert_eq!(base64("aGk=", &mut out), Some(()));
        assert_eq!(out, b"hi");
        assert_eq!(base64("aA==", &mut out), Some(()));
        assert_eq!(out, b"h");
        assert_eq!(base64("", &mut out), Some(()));
        assert!(out.is_empty());
        assert_eq!(base64("+/8=", &mut out), Some(()));
        assert_eq!(out, [0xfb, 0xff]);
        assert_eq!(base64("aGk", &mut out), None, "unpadded");
        assert_eq!(base64("-_8=", &mut out), None, "url-safe alphabet");
        assert_eq!(base64("aG=k", &mut out), None, "padding in the middle");
        assert_eq!(base64("a===", &mut out), None, "three padding characters");
        assert_eq!(base64("aA==aA==", &mut out), None, "padding before the end");
    }

    #[test]
    fn integer_accepts_whole_floats_and_integer_strings_only() {
        assert_eq!(integer(&json!(3.0)), Some(3));
        assert_eq!(integer(&json!("-42")), Some(-42));
        assert_eq!(integer(&json!(i64::MIN)), Some(i64::MIN));
        assert_eq!(integer(&json!(3.5)), None);
        assert_eq!(integer(&json!(u64::MAX)), None);
        assert_eq!(integer(&json!(9.3e18)), None);
        assert_eq!(integer(&json!("4.0")), None);
        assert_eq!(integer(&json!(true)), None);
    }
}
