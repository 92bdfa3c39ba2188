//! Server-supplied numbers turned into durations and deadlines within sane bounds: `expires_in`, `Retry-After` (seconds, decimals or an HTTP date), `BackOffMilliseconds`. None of them can overflow or panic, whatever the server sends.

use std::time::{Duration, Instant, SystemTime};

/// The longest back-off a server hint is honoured for; longer hints are cut to this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(24 * 3600);

/// The longest token lifetime believed; longer `expires_in` values are cut to this.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// `now + after`, or `None` when that is not representable (instead of panicking).
///
/// ```
/// use std::time::{Duration, Instant};
/// assert!(mailroom_http::deadline_after(Instant::now(), Duration::MAX).is_none());
/// ```
pub fn deadline_after(now: Instant, after: Duration) -> Option<Instant> {
    now.checked_add(after)
}

/// The expiry of a token issued at `issued` for `expires_in` seconds, the lifetime cut to
/// [`MAX_TOKEN_LIFETIME`]; `None` when the server gave no lifetime.
///
/// ```
/// use std::time::{Duration, Instant};
/// let now = Instant::now();
/// let at = mailroom_http::token_expiry(now, Some(u64::MAX)).unwrap();
/// assert_eq!(at - now, mailroom_http::MAX_TOKEN_LIFETIME);
/// ```
pub fn token_expiry(issued: Instant, expires_in: Option<u64>) -> Option<Instant> {
    let lifetime = Duration::from_secs(expires_in?).min(MAX_TOKEN_LIFETIME);
    issued.checked_add(lifetime)
}

/// A `Retry-After` header value: delay seconds (Graph sends decimals such as `2.128`) or an
/// HTTP date, cut to [`MAX_BACKOFF`]; `None` when unreadable.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// let now = SystemTime::now();
/// assert_eq!(mailroom_http::retry_after(" 120 ", now), Some(Duration::from_secs(120)));
/// assert_eq!(mailroom_http::retry_after("2.128", now), Some(Duration::from_millis(2128)));
/// assert_eq!(mailroom_http::retry_after("99999999999999999999", now), Some(mailroom_http::MAX_BACKOFF));
/// assert_eq!(mailroom_http::retry_after("soon", now), None);
/// ```
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for u64 is still "a very long time".
        return Some(value.parse::<u64>().map(Duration::from_secs).unwrap_or(MAX_BACKOFF).min(MAX_BACKOFF));
    }
    if let Ok(seconds) = value.parse::<f64>() {
        if !seconds.is_finite() || seconds < 0.0 {
            return None;
        }
        return Some(Duration::try_from_secs_f64(seconds).unwrap_or(MAX_BACKOFF).min(MAX_BACKOFF));
    }
    let at = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    Some(SystemTime::from(at).duration_since(now).unwrap_or(Duration::ZERO).min(MAX_BACKOFF))
}

/// A back-off in milliseconds (EWS `BackOffMilliseconds`), as text, cut to [`MAX_BACKOFF`].
///
/// ```
/// use std::time::Duration;
/// assert_eq!(mailroom_http::backoff_millis("1500"), Some(Duration::from_millis(1500)));
/// assert_eq!(mailroom_http::backoff_millis("184467440737095516150"), Some(mailroom_http::MAX_BACKOFF));
/// assert_eq!(mailroom_http::backoff_millis("-3"), None);
/// ```
pub fn backoff_millis(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(value.parse::<u64>().map(Duration::from_millis).unwrap_or(MAX_BACKOFF).min(MAX_BACKOFF))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_count_from_now_and_never_go_negative() {
        let now = SystemTime::from(time::macros::datetime!(2026-03-07 17:48:15 UTC));
        assert_eq!(retry_after("Sat, 07 Mar 2026 17:49:15 GMT", now), Some(Duration::from_secs(60)));
        assert_eq!(retry_after("Sat, 07 Mar 2026 17:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(retry_after("NaN", now), None);
        assert_eq!(retry_after("inf", now), None);
        assert_eq!(retry_after("1e300", now), Some(MAX_BACKOFF));
    }

    #[test]
    fn a_huge_expires_in_does_not_panic() {
        let now = Instant::now();
        assert!(token_expiry(now, Some(u64::MAX)).is_some());
        assert_eq!(token_expiry(now, None), None);
    }
}
