//! UTC instants as milliseconds since the Unix epoch, and their ISO-8601 text.
//!
//! No clock crate: the guest gets a wall clock from WASI through `std::time`, and the
//! only calendar arithmetic needed is days ↔ civil dates (Howard Hinnant's algorithms).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in milliseconds since the epoch (UTC).
pub(crate) fn now_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        // A clock before 1970 is broken; reading "from the epoch" is the harmless answer.
        Err(_) => 0,
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// `2024-01-02T03:04:05.000Z`: the one form offsets and formulas use, so equal instants
/// always compare equal as text.
pub(crate) fn format_ms(ms: i64) -> String {
    let mut out = Vec::with_capacity(24);
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    if (0..=9999).contains(&y) {
        push_digits(&mut out, y, 4);
    } else {
        out.extend_from_slice(format!("{y:04}").as_bytes());
    }
    for (sep, n, width) in
        [(b'-', m, 2), (b'-', d, 2), (b'T', h, 2), (b':', min, 2), (b':', s, 2), (b'.', milli, 3)]
    {
        out.push(sep);
        push_digits(&mut out, n, width);
    }
    out.push(b'Z');
    String::from_utf8(out).unwrap_or_default()
}

/// `n` (0 ≤ n < 10^width) in `width` decimal digits.
fn push_digits(out: &mut Vec<u8>, n: i64, width: u32) {
    for k in (0..width).rev() {
        out.push(b'0' + (n / 10i64.pow(k) % 10) as u8);
    }
}

fn digits(s: &[u8], at: usize, n: usize) -> Option<i64> {
    let part = s.get(at..at + n)?;
    part.iter().try_fold(0i64, |acc, b| b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0')))
}

/// Whether an instant's UTC year has four digits (0 to 9999): the years the text form covers.
pub(crate) fn four_digit_year(ms: i64) -> bool {
    // 0000-01-01T00:00:00.000Z ..= 9999-12-31T23:59:59.999Z
    (-62_167_219_200_000..=253_402_300_799_999).contains(&ms)
}

/// Days since the epoch of `YYYY-MM-DD` text that names a real calendar day.
pub(crate) fn parse_day(text: &str) -> Option<i64> {
    let s = text.as_bytes();
    if s.len() != 10 || s[4] != b'-' || s[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(s, 0, 4)?, digits(s, 5, 2)?, digits(s, 8, 2)?);
    let days = days_from_civil(y, m, d);
    (civil_from_days(days) == (y, m, d)).then_some(days)
}

/// Parses `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS[.fff…]][Z|±HH:MM]` (no zone means UTC), to
/// milliseconds: finer digits are truncated.
pub(crate) fn parse_ms(text: &str) -> Option<i64> {
    parse_us(text).map(|us| us.div_euclid(1000))
}

/// [`parse_ms`]'s forms, to microseconds: digits finer than those are truncated.
pub(crate) fn parse_us(text: &str) -> Option<i64> {
    let s = text.trim().as_bytes();
    let (y, m, d) = (digits(s, 0, 4)?, digits(s, 5, 2)?, digits(s, 8, 2)?);
    if s.get(4) != Some(&b'-') || s.get(7) != Some(&b'-') || !(1..=12).contains(&m) || !(1..=31).contains(&d)
    {
        return None;
    }
    let mut us = days_from_civil(y, m, d) * 86_400_000_000;
    if s.len() == 10 {
        return Some(us);
    }
    if !matches!(s.get(10), Some(b'T' | b't' | b' ')) || s.get(13) != Some(&b':') {
        return None;
    }
    let (h, min) = (digits(s, 11, 2)?, digits(s, 14, 2)?);
    if h > 23 || min > 59 {
        return None;
    }
    us += (h * 3_600 + min * 60) * 1_000_000;
    let mut i = 16;
    if s.get(i) == Some(&b':') {
        let sec = digits(s, i + 1, 2)?;
        if sec > 60 {
            return None;
        }
        us += sec * 1_000_000;
        i += 3;
        if s.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while s.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start {
                return None;
            }
            let frac = &s[start..i.min(start + 6)];
            let mut micro = frac.iter().fold(0i64, |acc, b| acc * 10 + i64::from(b - b'0'));
            for _ in frac.len()..6 {
                micro *= 10;
            }
            us += micro;
        }
    }
    match s.get(i) {
        None => Some(us),
        Some(b'Z' | b'z') if i + 1 == s.len() => Some(us),
        Some(sign @ (b'+' | b'-')) if s.len() == i + 6 && s.get(i + 3) == Some(&b':') => {
            let offset = (digits(s, i + 1, 2)? * 3_600 + digits(s, i + 4, 2)? * 60) * 1_000_000;
            Some(if *sign == b'+' { us - offset } else { us + offset })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        let ms = parse_ms("2024-02-29T23:59:58.123Z").unwrap();
        assert_eq!(format_ms(ms), "2024-02-29T23:59:58.123Z");
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(-1), "1969-12-31T23:59:59.999Z");
        // Years outside four digits keep `format!`'s forms.
        assert_eq!(format_ms(parse_ms("9999-12-31T23:59:59.999Z").unwrap() + 1), "10000-01-01T00:00:00.000Z");
        assert_eq!(format_ms(-62_198_755_200_000), "-001-01-01T00:00:00.000Z");
    }

    #[test]
    fn accepts_the_forms_airtable_writes() {
        assert_eq!(parse_ms("2022-09-05"), parse_ms("2022-09-05T00:00:00.000Z"));
        assert_eq!(parse_ms("2024-01-02T03:04:05Z"), parse_ms("2024-01-02T03:04:05.000Z"));
        assert_eq!(parse_ms("2024-01-02T05:04:05.5+02:00"), parse_ms("2024-01-02T03:04:05.500Z"));
        assert_eq!(parse_ms("2024-01-02T03:04:05.123456Z"), parse_ms("2024-01-02T03:04:05.123Z"));
    }

    #[test]
    fn microseconds_keep_six_digits_and_milliseconds_three() {
        let us = parse_us("2024-01-02T03:04:05.123456789Z").unwrap();
        assert_eq!(us % 1_000_000, 123_456);
        assert_eq!(parse_ms("2024-01-02T03:04:05.123456789Z"), Some(us.div_euclid(1000)));
        assert_eq!(parse_ms("1969-12-31T23:59:59.9999Z"), Some(-1));
    }

    #[test]
    fn rejects_what_is_not_a_time() {
        for bad in ["", "yesterday", "2024-13-01", "2024-01-02T25:00:00Z", "2024-01-02T03:04:05Q", "2024-1-2"]
        {
            assert_eq!(parse_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn four_digit_years_are_the_text_forms() {
        assert!(four_digit_year(parse_ms("0000-01-01").unwrap()));
        assert!(four_digit_year(parse_ms("9999-12-31T23:59:59.999Z").unwrap()));
        assert!(!four_digit_year(parse_ms("0000-01-01").unwrap() - 1));
        assert!(!four_digit_year(parse_ms("9999-12-31T23:59:59.999Z").unwrap() + 1));
    }

    #[test]
    fn days_are_real_calendar_days() {
        assert_eq!(parse_day("1970-01-02"), Some(1));
        assert_eq!(parse_day("2024-02-29"), Some(parse_ms("2024-02-29").unwrap() / 86_400_000));
        for bad in ["2023-02-29", "2024-04-31", "2024-13-01", "2024-00-10", "2024-1-02", "2024-01-02T00:00"] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn now_is_after_2020() {
        assert!(now_ms() > parse_ms("2020-01-01").unwrap());
    }
}
