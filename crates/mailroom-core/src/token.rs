//! OAuth access tokens shared by XOAUTH2, EWS OAuth and Gmail: a `TokenSource` trait and a cache that refreshes early and single-flight.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::error::SendError;
use crate::secret::Secret;

/// An access token and when it stops working.
#[derive(Clone, Debug)]
pub struct AccessToken {
    /// The bearer token.
    pub token: Secret,
    /// When it expires; `None` when the issuer did not say.
    pub expires_at: Option<Instant>,
}

/// Something that can mint access tokens (a refresh-token grant, client credentials, …).
#[async_trait]
pub trait TokenSource: Send + Sync {
    /// Fetches a fresh token.
    async fn fetch_token(&self) -> Result<AccessToken, SendError>;
}

#[async_trait]
impl<T: TokenSource + ?Sized> TokenSource for std::sync::Arc<T> {
    async fn fetch_token(&self) -> Result<AccessToken, SendError> {
        (**self).fetch_token().await
    }
}

/// Caches a [`TokenSource`]'s token: concurrent callers share one refresh, and the token is
/// renewed `refresh_margin` before it expires.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::time::{Duration, Instant};
/// use mailroom_core::{AccessToken, Secret, SendError, TokenCache, TokenSource};
///
/// struct Counter(AtomicUsize);
/// #[async_trait::async_trait]
/// impl TokenSource for Counter {
///     async fn fetch_token(&self) -> Result<AccessToken, SendError> {
///         let n = self.0.fetch_add(1, Ordering::SeqCst);
///         Ok(AccessToken { token: Secret::new(format!("token-{n}")), expires_at: Some(Instant::now() + Duration::from_secs(3600)) })
///     }
/// }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let cache = TokenCache::new(Counter(AtomicUsize::new(0)));
/// let first = cache.token().await.unwrap();
/// assert_eq!(cache.token().await.unwrap(), first);
/// cache.invalidate(&first).await;
/// assert_ne!(cache.token().await.unwrap(), first);
/// # });
/// ```
pub struct TokenCache<S> {
    source: S,
    current: Mutex<Cached>,
    /// Counts finished fetches, so a caller can tell whether one finished while it waited.
    fetches: AtomicU64,
    refresh_margin: Duration,
}

#[derive(Default)]
struct Cached {
    token: Option<(AccessToken, Instant)>,
    /// The last fetch's failure and its number in `fetches`.
    failure: Option<(u64, SendError)>,
}

impl<S: TokenSource> TokenCache<S> {
    /// A cache that refreshes 60 s before expiry.
    pub fn new(source: S) -> Self {
        Self::with_margin(source, Duration::from_secs(60))
    }

    /// A cache with a custom early-refresh margin.
    pub fn with_margin(source: S, refresh_margin: Duration) -> Self {
        TokenCache { source, current: Mutex::new(Cached::default()), fetches: AtomicU64::new(0), refresh_margin }
    }

    /// A valid token, fetched only when the cached one is missing or about to expire.
    pub async fn token(&self) -> Result<Secret, SendError> {
        let fetches_before = self.fetches.load(Ordering::SeqCst);
        // Holding the lock across the fetch is what makes the refresh single-flight.
        let mut current = self.current.lock().await;
        if let Some((token, fetched_at)) = &current.token
            && self.fresh_enough(token, *fetched_at)
        {
            return Ok(token.token.clone());
        }
        // A fetch that failed while this caller waited answers it too: otherwise N senders
        // queued behind a hanging token endpoint would wait N deadlines one after another.
        if let Some((number, error)) = &current.failure
            && *number > fetches_before
        {
            return Err(error.copy_for_waiter());
        }
        let fetched_at = Instant::now();
        let result = self.source.fetch_token().await;
        let number = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        match result {
            Ok(token) => {
                let secret = token.token.clone();
                *current = Cached { token: Some((token, fetched_at)), failure: None };
                Ok(secret)
            }
            Err(error) => {
                current.failure = Some((number, error.copy_for_waiter()));
                Err(error)
            }
        }
    }

    /// Whether `token` may still be used: more than the refresh margin from expiry, where the
    /// margin is at most half the token's lifetime (a token issued for 60 s would otherwise
    /// be refreshed before every use).
    fn fresh_enough(&self, token: &AccessToken, fetched_at: Instant) -> bool {
        match token.expires_at {
            Some(expires_at) => {
                let lifetime = expires_at.saturating_duration_since(fetched_at);
                Instant::now() + self.refresh_margin.min(lifetime / 2) < expires_at
            }
            None => true,
        }
    }

    /// Drops `rejected` so the next [`TokenCache::token`] refreshes; a token other callers
    /// already replaced is left alone, so one rejection causes one refresh.
    pub async fn invalidate(&self, rejected: &Secret) {
        let mut current = self.current.lock().await;
        if current.token.as_ref().is_some_and(|(token, _)| &token.token == rejected) {
            current.token = None;
        }
    }
}

impl<S> std::fmt::Debug for TokenCache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").field("refresh_margin", &self.refresh_margin).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct SlowCounter {
        calls: AtomicUsize,
        lifetime: Duration,
    }

    #[async_trait]
    impl TokenSource for SlowCounter {
        async fn fetch_token(&self) -> Result<AccessToken, SendError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(AccessToken { token: Secret::new(format!("t{n}")), expires_at: Some(Instant::now() + self.lifetime) })
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_refresh() {
        let cache =
            Arc::new(TokenCache::new(SlowCounter { calls: AtomicUsize::new(0), lifetime: Duration::from_secs(3600) }));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let c = cache.clone();
                tokio::spawn(async move { c.token().await.unwrap() })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().expose(), "t0");
        }
        assert_eq!(cache.source.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn tokens_inside_the_margin_are_refreshed_early() {
        let cache = TokenCache::with_margin(
            SlowCounter { calls: AtomicUsize::new(0), lifetime: Duration::from_millis(200) },
            Duration::from_secs(60),
        );
        assert_eq!(cache.token().await.unwrap().expose(), "t0");
        assert_eq!(cache.token().await.unwrap().expose(), "t0", "short-lived tokens are used for half their life");
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(cache.token().await.unwrap().expose(), "t1");
    }

    struct HangingEndpoint {
        calls: AtomicUsize,
    }

    #[async_trait]
    impl TokenSource for HangingEndpoint {
        async fn fetch_token(&self) -> Result<AccessToken, SendError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(200)).await;
            Err(SendError::new(crate::error::ErrorKind::Timeout, "the token endpoint did not answer"))
        }
    }

    #[tokio::test]
    async fn callers_waiting_on_a_failed_fetch_share_its_error() {
        let cache = Arc::new(TokenCache::new(HangingEndpoint { calls: AtomicUsize::new(0) }));
        let started = Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let c = cache.clone();
                tokio::spawn(async move { c.token().await.unwrap_err().kind() })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), crate::error::ErrorKind::Timeout);
        }
        assert_eq!(cache.source.calls.load(Ordering::SeqCst), 1, "one fetch for all waiters");
        assert!(started.elapsed() < Duration::from_millis(1000), "{:?}", started.elapsed());
        assert!(cache.token().await.is_err());
        assert_eq!(cache.source.calls.load(Ordering::SeqCst), 2, "a later caller tries again");
    }

    #[tokio::test]
    async fn invalidating_a_stale_token_does_not_drop_the_new_one() {
        let cache = TokenCache::new(SlowCounter { calls: AtomicUsize::new(0), lifetime: Duration::from_secs(3600) });
        let old = cache.token().await.unwrap();
        cache.invalidate(&old).await;
        let new = cache.token().await.unwrap();
        cache.invalidate(&old).await;
        assert_eq!(cache.token().await.unwrap(), new);
        assert_eq!(cache.source.calls.load(Ordering::SeqCst), 2);
    }
}
