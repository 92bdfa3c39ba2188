//! The retry policy shared by all drivers: a pure back-off schedule that honours the server's hints and never resends a message that may have been delivered.

use std::time::Duration;

use crate::error::{ErrorKind, Retry, SendError};

/// When and how often to try a failed send again.
///
/// ```
/// use std::time::Duration;
/// use mailroom_core::{ErrorKind, RetryPolicy, Retry, SendError};
/// let policy = RetryPolicy::default();
/// let busy = SendError::new(ErrorKind::RateLimited, "slow down")
///     .with_retry(Retry::Temporary { after: Some(Duration::from_secs(3)) });
/// assert_eq!(policy.delay_before_retry(1, &busy), Some(Duration::from_secs(3)));
/// let lost = SendError::new(ErrorKind::DeliveryUnknown, "connection lost after DATA");
/// assert_eq!(policy.delay_before_retry(1, &lost), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first.
    pub max_attempts: u32,
    /// Delay before the first retry when the server gives no hint.
    pub initial_delay: Duration,
    /// Cap for the exponential delay.
    pub max_delay: Duration,
    /// The longest server hint we wait for; beyond it we give up and report (the caller reschedules).
    pub max_hinted_delay: Duration,
    /// Retry `connect_failed` too (bulk runs, where a flaky network is likelier than a wrong host).
    pub retry_connect_failures: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_hinted_delay: Duration::from_secs(60),
            retry_connect_failures: false,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> Self {
        RetryPolicy { max_attempts: 1, ..Self::default() }
    }

    /// How long to wait before attempt `failed_attempts + 1`, or `None` to stop.
    /// Only errors raised before the server could have accepted the message are retried.
    pub fn delay_before_retry(&self, failed_attempts: u32, error: &SendError) -> Option<Duration> {
        if failed_attempts >= self.max_attempts {
            return None;
        }
        let retryable_kind = match error.kind() {
            ErrorKind::RateLimited | ErrorKind::ServiceUnavailable => true,
            ErrorKind::ConnectFailed => self.retry_connect_failures,
            _ => false,
        };
        let Retry::Temporary { after } = error.retry() else {
            return None;
        };
        if !retryable_kind {
            return None;
        }
        match after {
            Some(hint) if hint > self.max_hinted_delay => None,
            Some(hint) => Some(hint),
            None => {
                let exponent = failed_attempts.saturating_sub(1).min(20);
                Some(self.initial_delay.saturating_mul(1 << exponent).min(self.max_delay))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exponential_schedule_is_capped_and_bounded_in_attempts() {
        let policy = RetryPolicy { max_attempts: 10, ..RetryPolicy::default() };
        let busy = SendError::new(ErrorKind::ServiceUnavailable, "503");
        let delays: Vec<_> = (1..=10).map(|n| policy.delay_before_retry(n, &busy)).collect();
        assert_eq!(delays[0], Some(Duration::from_millis(500)));
        assert_eq!(delays[1], Some(Duration::from_secs(1)));
        assert_eq!(delays[7], Some(Duration::from_secs(30)));
        assert_eq!(delays[9], None);
    }

    #[test]
    fn hints_beyond_the_limit_stop_and_connect_failures_need_opt_in() {
        let policy = RetryPolicy::default();
        let daily_cap = SendError::new(ErrorKind::RateLimited, "quota")
            .with_retry(Retry::Temporary { after: Some(Duration::from_secs(900)) });
        assert_eq!(policy.delay_before_retry(1, &daily_cap), None);
        let refused = SendError::new(ErrorKind::ConnectFailed, "refused");
        assert_eq!(policy.delay_before_retry(1, &refused), None);
        let bulk = RetryPolicy { retry_connect_failures: true, ..policy };
        assert!(bulk.delay_before_retry(1, &refused).is_some());
    }

    proptest! {
        #[test]
        fn errors_after_hand_over_are_never_retried(attempt in 0u32..10, kind_index in 0usize..19, hint in proptest::option::of(0u64..100_000)) {
            let kind = ErrorKind::ALL[kind_index];
            let error = SendError::new(kind, "x").with_retry(Retry::Temporary { after: hint.map(Duration::from_millis) });
            let delay = RetryPolicy::default().delay_before_retry(attempt, &error);
            if !matches!(kind, ErrorKind::RateLimited | ErrorKind::ServiceUnavailable) {
                prop_assert_eq!(delay, None);
            }
            if let Some(delay) = delay {
                prop_assert!(delay <= Duration::from_secs(60));
            }
        }
    }
}
