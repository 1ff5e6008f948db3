//! Decimal text to an unscaled decimal value: the rule the host converts a JSON number in a
//! `decimal(p, s)` column by, here so that a connector building Arrow itself stores what the host
//! would have.

use std::fmt::Write;

use serde_json::Number;

/// Decimal text (`-12.5`, `1e-3`, `+7`) times 10^scale, rounded half away from zero, exactly.
pub fn scaled(text: &str, scale: i8) -> Option<i128> {
    let bytes = text.as_bytes();
    let (negative, rest) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let (mantissa, exponent) = match rest.iter().position(|c| matches!(c, b'e' | b'E')) {
        Some(i) => (&rest[..i], exponent(&rest[i + 1..])?),
        None => (rest, 0),
    };
    let (whole, fraction) = match mantissa.iter().position(|c| *c == b'.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, &[][..]),
    };
    if whole.is_empty() && fraction.is_empty() || !whole.iter().chain(fraction).all(u8::is_ascii_digit) {
        return None;
    }
    // value * 10^scale == digits * 10^shift
    let shift = exponent + i64::from(scale) - fraction.len() as i64;
    let total = (whole.len() + fraction.len()) as i64;
    let keep = if shift < 0 { total + shift } else { total };
    // The kept digits, gathered eighteen at a time in an i64: wasm multiplies those natively, an
    // i128 by a call into compiler-rt (a decimal column's cell paid four such calls).
    let mut unscaled = 0_i128;
    let mut round_up = false;
    let (mut chunk, mut chunk_len) = (0_i64, 0_u32);
    for (i, digit) in whole.iter().chain(fraction).enumerate() {
        let i = i as i64;
        if i >= keep {
            round_up = i == keep && *digit >= b'5';
            break;
        }
        chunk = chunk * 10 + i64::from(digit - b'0');
        chunk_len += 1;
        if chunk_len == 18 {
            unscaled = unscaled.checked_mul(10_i128.pow(18))?.checked_add(chunk.into())?;
            (chunk, chunk_len) = (0, 0);
        }
    }
    unscaled = match unscaled {
        0 => i128::from(chunk),
        _ => unscaled.checked_mul(10_i128.pow(chunk_len))?.checked_add(chunk.into())?,
    };
    if unscaled != 0 && shift > 0 {
        unscaled = unscaled.checked_mul(10_i128.checked_pow(u32::try_from(shift).ok()?)?)?;
    }
    if round_up {
        unscaled = unscaled.checked_add(1)?;
    }
    Some(if negative { -unscaled } else { unscaled })
}

/// An exponent, clamped: anything beyond ±100000 already overflows or rounds to zero.
fn exponent(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits.iter().fold(0_i64, |acc, d| (acc * 10 + i64::from(d - b'0')).min(100_000));
    Some(if negative { -magnitude } else { magnitude })
}

/// A JSON number as [`scaled`] reads it: from its shortest text (`1e3` parsed as a float reads
/// `1000.0`), so that a number converts alike whether it came from text or from a `Value`.
pub fn number(n: &Number, scale: i8) -> Option<i128> {
    scaled(number_text(n).as_str(), scale)
}

/// A JSON number's shortest text, on the stack: the decimal and epoch paths run once per cell.
fn number_text(n: &Number) -> StackText {
    let mut text = StackText { bytes: [0; 40], len: 0 };
    // The longest f64 or u64 text is well under 40 bytes; an overflow leaves a truncated text that
    // then fails to parse, never a panic.
    let _ = write!(text, "{n}");
    text
}

struct StackText {
    bytes: [u8; 40],
    len: usize,
}

impl StackText {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.bytes.len() {
            return Err(std::fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_decimal_rounds_half_away_from_zero_exactly() {
        assert_eq!(scaled("1.005", 2), Some(101));
        assert_eq!(scaled("-1.005", 2), Some(-101));
        assert_eq!(scaled("1.004", 2), Some(100));
        assert_eq!(scaled("0.5", 0), Some(1));
        assert_eq!(scaled("12", 3), Some(12_000));
        assert_eq!(scaled("1e3", 0), Some(1000));
        assert_eq!(scaled("1.5E-2", 3), Some(15));
        assert_eq!(scaled("+.25", 2), Some(25));
        assert_eq!(scaled("7.", 1), Some(70));
        assert_eq!(scaled("0e99999999999", 2), Some(0));
        assert_eq!(scaled("1e-99999999999", 2), Some(0));
        assert_eq!(scaled("1e99999", 2), None);
        assert_eq!(scaled("", 2), None);
        assert_eq!(scaled(".", 2), None);
        assert_eq!(scaled("1.2.3", 2), None);
        assert_eq!(scaled("12a", 2), None);
        assert_eq!(scaled("1e", 2), None);
        assert_eq!(scaled(" 1", 2), None);
        // Past eighteen digits, and at the edge of what an i128 holds.
        assert_eq!(scaled("123456789012345678901234567.891", 2), Some(12345678901234567890123456789));
        assert_eq!(scaled("-9999999999999999999.995", 2), Some(-1000000000000000000000));
        assert_eq!(scaled("170141183460469231731687303715884105727", 0), Some(i128::MAX));
        assert_eq!(scaled("170141183460469231731687303715884105728", 0), None);
        assert_eq!(scaled("17014118346046923173168730371588410572.7", 1), Some(i128::MAX));
        assert_eq!(scaled("1.7014118346046923173168730371588410573", 38), None);
        assert_eq!(scaled("1e38", 0), Some(10_i128.pow(38)));
        assert_eq!(scaled("2e38", 0), None);
        assert_eq!(scaled("0.0000000000000000000000000049", 27), Some(5));
        assert_eq!(scaled("0.000000000000000000000000000000000000000000005", 50), Some(500_000));
    }
}
