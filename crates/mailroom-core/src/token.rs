//! OAuth access tokens shared by XOAUTH2, EWS OAuth and Gmail: a `TokenSource` trait and a cache that refreshes early and single-flight.

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
    current: Mutex<Option<AccessToken>>,
    refresh_margin: Duration,
}

impl<S: TokenSource> TokenCache<S> {
    /// A cache that refreshes 60 s before expiry.
    pub fn new(source: S) -> Self {
        Self::with_margin(source, Duration::from_secs(60))
    }

    /// A cache with a custom early-refresh margin.
    pub fn with_margin(source: S, refresh_margin: Duration) -> Self {
        TokenCache { source, current: Mutex::new(None), refresh_margin }
    }

    /// A valid token, fetched only when the cached one is missing or about to expire.
    pub async fn token(&self) -> Result<Secret, SendError> {
        // Holding the lock across the fetch is what makes the refresh single-flight.
        let mut current = self.current.lock().await;
        let fresh_enough = current.as_ref().is_some_and(|token| match token.expires_at {
            Some(expires_at) => Instant::now() + self.refresh_margin < expires_at,
            None => true,
        });
        if !fresh_enough {
            *current = Some(self.source.fetch_token().await?);
        }
        Ok(current.as_ref().map(|t| t.token.clone()).expect("set above"))
    }

    /// Drops `rejected` so the next [`TokenCache::token`] refreshes; a token other callers
    /// already replaced is left alone, so one rejection causes one refresh.
    pub async fn invalidate(&self, rejected: &Secret) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|token| &token.token == rejected) {
            *current = None;
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
            SlowCounter { calls: AtomicUsize::new(0), lifetime: Duration::from_secs(30) },
            Duration::from_secs(60),
        );
        assert_eq!(cache.token().await.unwrap().expose(), "t0");
        assert_eq!(cache.token().await.unwrap().expose(), "t1");
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
