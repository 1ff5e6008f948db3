//! What a response says about the source's rate limit, read from its status and headers.
//!
//! Sources say it in different ways, and the gate understands the common ones, so that no
//! connector has to:
//!
//! - **Refusals.** A 429, or a 403 that carries `Retry-After` or `X-RateLimit-Remaining: 0`
//!   (GitHub answers its primary and secondary limits with either status). A 403 without those
//!   headers is a permission error and stays one.
//! - **How long to wait.** `Retry-After` in seconds or as an HTTP date; failing that, when
//!   nothing is left, `X-RateLimit-Reset` (Unix seconds, as GitHub sends it, or seconds from now
//!   when the number is too small to be a date). Dates are read against the response's own
//!   `Date` header when it has one, so that a skewed local clock, or a recorded cassette
//!   replayed years later, waits what the source meant.
//! - **Quota.** `X-RateLimit-Remaining` with `X-RateLimit-Reset` on any response. While more
//!   than a tenth of `X-RateLimit-Limit` is left, the budget's own rate applies (a short job
//!   should not crawl because the hour is young); below that (or with no limit given) the gate
//!   spreads what is left until the reset (see [`crate::ratelimit::Budget::ration`]), and it
//!   pauses the budget until the reset when nothing is left, instead of spending a request on a
//!   refusal.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::MAX_RETRY_AFTER;

/// How long the source asks the client to wait.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Wait {
    /// Nothing usable: the manifest's penalty applies.
    Unsaid,
    For(Duration),
    /// More than [`MAX_RETRY_AFTER`], in seconds.
    TooLong(f64),
}

/// Requests left in the source's current window, and when it resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Quota {
    pub remaining: u64,
    pub reset_in: Duration,
    /// The window's whole quota, when the source says it.
    pub limit: Option<u64>,
}

impl Quota {
    /// Whether so little is left that requests must be spread until the reset.
    pub fn scarce(&self) -> bool {
        self.remaining == 0 || self.limit.is_none_or(|limit| self.remaining.saturating_mul(10) < limit)
    }
}

/// What one response says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Pushback {
    /// The source refused the request for its rate limit.
    pub refused: bool,
    pub wait: Wait,
    pub quota: Option<Quota>,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
}

/// Reads a response; `now` is the local clock, used only when the response has no `Date`.
pub(super) fn read(status: u16, headers: &[(String, String)], now: SystemTime) -> Pushback {
    let now = header(headers, "date").and_then(|d| httpdate::parse_http_date(d).ok()).unwrap_or(now);
    let remaining = header(headers, "x-ratelimit-remaining").and_then(|v| v.parse::<u64>().ok());
    let reset_in = header(headers, "x-ratelimit-reset").and_then(|v| until_reset(v, now));
    let retry_after = header(headers, "retry-after");
    let refused = status == 429 || (status == 403 && (retry_after.is_some() || remaining == Some(0)));
    let wait = match retry_after.map(|v| seconds_or_date(v, now)) {
        Some(wait @ (Wait::For(_) | Wait::TooLong(_))) => wait,
        _ => match (remaining, reset_in) {
            (Some(0), Some(reset_in)) => bounded(reset_in.as_secs_f64()),
            _ => Wait::Unsaid,
        },
    };
    let limit = header(headers, "x-ratelimit-limit").and_then(|v| v.parse::<u64>().ok());
    let quota = remaining.zip(reset_in).map(|(remaining, reset_in)| Quota { remaining, reset_in, limit });
    Pushback { refused, wait, quota }
}

fn bounded(seconds: f64) -> Wait {
    if seconds > MAX_RETRY_AFTER.as_secs_f64() {
        Wait::TooLong(seconds)
    } else if seconds.is_finite() && seconds >= 0.0 {
        Wait::For(Duration::from_secs_f64(seconds))
    } else {
        Wait::Unsaid
    }
}

/// `Retry-After`: seconds (fractions allowed) or an HTTP date; never trusted past the bound.
fn seconds_or_date(value: &str, now: SystemTime) -> Wait {
    if let Ok(seconds) = value.parse::<f64>() {
        return bounded(seconds);
    }
    match httpdate::parse_http_date(value) {
        Ok(at) => bounded(at.duration_since(now).unwrap_or_default().as_secs_f64()),
        Err(_) => Wait::Unsaid,
    }
}

/// `X-RateLimit-Reset`: Unix seconds, or seconds from now below a billion (2001-09-09).
fn until_reset(value: &str, now: SystemTime) -> Option<Duration> {
    let n = value.parse::<u64>().ok()?;
    if n < 1_000_000_000 {
        return Some(Duration::from_secs(n));
    }
    let at = UNIX_EPOCH.checked_add(Duration::from_secs(n))?;
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const DATE: &str = "Sun, 29 Nov 2026 00:00:00 GMT";
    const DATE_UNIX: u64 = 1_795_910_400;

    #[test]
    fn a_429_or_a_403_with_limit_headers_is_a_refusal_and_a_plain_403_is_not() {
        let now = SystemTime::now();
        assert!(read(429, &[], now).refused);
        assert!(read(403, &headers(&[("retry-after", "60")]), now).refused);
        assert!(read(403, &headers(&[("x-ratelimit-remaining", "0")]), now).refused);
        assert!(!read(403, &headers(&[("x-ratelimit-remaining", "12")]), now).refused);
        assert!(!read(403, &[], now).refused);
        assert!(!read(200, &headers(&[("x-ratelimit-remaining", "0")]), now).refused);
    }

    #[test]
    fn the_wait_comes_from_retry_after_then_the_reset_against_the_responses_date() {
        let long_ago = UNIX_EPOCH;
        let r = read(429, &headers(&[("retry-after", "2.5")]), long_ago);
        assert_eq!(r.wait, Wait::For(Duration::from_millis(2500)));
        let at = "Sun, 29 Nov 2026 00:00:30 GMT";
        let r = read(429, &headers(&[("date", DATE), ("retry-after", at)]), long_ago);
        assert_eq!(r.wait, Wait::For(Duration::from_secs(30)));
        // GitHub's primary limit: nothing left, reset in Unix seconds, read against Date.
        let reset = (DATE_UNIX + 42).to_string();
        let h = headers(&[
            ("date", DATE),
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &reset),
        ]);
        let r = read(403, &h, long_ago);
        assert!(r.refused);
        assert_eq!(r.wait, Wait::For(Duration::from_secs(42)));
        assert_eq!(
            r.quota,
            Some(Quota { remaining: 0, reset_in: Duration::from_secs(42), limit: Some(5000) })
        );
        assert!(r.quota.is_some_and(|q| q.scarce()));
        // A reset already past waits nothing; a small number is seconds from now.
        let past = read(
            403,
            &headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1700000000")]),
            SystemTime::now(),
        );
        assert_eq!(past.wait, Wait::For(Duration::ZERO));
        let delta =
            read(429, &headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "7")]), long_ago);
        assert_eq!(delta.wait, Wait::For(Duration::from_secs(7)));
        // A secondary limit without either header: the manifest's penalty.
        assert_eq!(read(429, &[], long_ago).wait, Wait::Unsaid);
    }

    #[test]
    fn nothing_is_trusted_past_the_bound() {
        let now = SystemTime::now();
        for huge in ["1e20", "1e10", "3601", "inf"] {
            assert!(
                matches!(read(429, &headers(&[("retry-after", huge)]), now).wait, Wait::TooLong(_)),
                "{huge}"
            );
        }
        for bad in ["-1", "NaN", "-inf", "soon"] {
            assert_eq!(read(429, &headers(&[("retry-after", bad)]), now).wait, Wait::Unsaid, "{bad}");
        }
        let far = read(
            403,
            &headers(&[("date", DATE), ("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "9999999999")]),
            now,
        );
        assert!(matches!(far.wait, Wait::TooLong(_)));
    }

    #[test]
    fn a_successful_response_reports_its_quota() {
        let reset = (DATE_UNIX + 600).to_string();
        let h = headers(&[("date", DATE), ("x-ratelimit-remaining", "120"), ("x-ratelimit-reset", &reset)]);
        let r = read(200, &h, UNIX_EPOCH);
        assert!(!r.refused);
        assert_eq!(r.quota, Some(Quota { remaining: 120, reset_in: Duration::from_secs(600), limit: None }));
        // Scarce below a tenth of the limit, or always when the limit is not said.
        assert!(r.quota.is_some_and(|q| q.scarce()));
        let plenty = Quota { remaining: 4990, reset_in: Duration::from_secs(600), limit: Some(5000) };
        assert!(!plenty.scarce());
        assert!(Quota { remaining: 499, ..plenty }.scarce());
        assert_eq!(read(200, &headers(&[("x-ratelimit-remaining", "120")]), UNIX_EPOCH).quota, None);
    }
}
