//! Cross-cutting behaviour as layers around any `Transport` (feature `layers`): retry with back-off, and a limit on sends in flight.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Semaphore;

use crate::{OutgoingMessage, ProbeReport, RetryPolicy, SendError, SendReceipt, ServiceKind, Transport};

/// Retries sends that failed before the server could have accepted the message (throttling,
/// temporary unavailability), waiting as [`RetryPolicy`] says — honouring the server's
/// back-off hint. Never resends after `delivery_unknown`.
///
/// ```no_run
/// # async fn run(transport: std::sync::Arc<dyn mailroom_core::Transport>, message: mailroom_core::OutgoingMessage) {
/// use mailroom_core::layers::RetryLayer;
/// use mailroom_core::{RetryPolicy, Transport};
/// let transport = RetryLayer::new(transport, RetryPolicy::default());
/// let receipt = transport.send(&message).await;
/// # }
/// ```
#[derive(Debug)]
pub struct RetryLayer {
    inner: Arc<dyn Transport>,
    policy: RetryPolicy,
}

impl RetryLayer {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Transport>, policy: RetryPolicy) -> RetryLayer {
        RetryLayer { inner, policy }
    }
}

#[async_trait]
impl Transport for RetryLayer {
    fn service(&self) -> ServiceKind {
        self.inner.service()
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<SendReceipt, SendError> {
        let mut failed_attempts = 0;
        loop {
            match self.inner.send(message).await {
                Ok(receipt) => return Ok(receipt),
                Err(error) => {
                    failed_attempts += 1;
                    let Some(delay) = self.policy.delay_before_retry(failed_attempts, &error) else {
                        return Err(error);
                    };
                    tracing::info!(kind = %error.kind(), attempt = failed_attempts, ?delay, "send failed before hand-over; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn probe(&self) -> ProbeReport {
        self.inner.probe().await
    }

    async fn close(&self) {
        self.inner.close().await;
    }
}

/// At most `limit` sends in flight through `inner`; the others wait their turn (in order).
///
/// The drivers each keep their own limit for the server's sake; this one is the caller's:
/// one budget shared by several transports, or a tighter one for a provider's quota.
///
/// ```no_run
/// # async fn run(transport: std::sync::Arc<dyn mailroom_core::Transport>) {
/// use std::sync::Arc;
/// use mailroom_core::layers::{ConcurrencyLimit, RetryLayer};
/// use mailroom_core::RetryPolicy;
/// let limited = ConcurrencyLimit::new(transport, 2);
/// let transport = RetryLayer::new(Arc::new(limited), RetryPolicy::default());
/// # let _ = transport;
/// # }
/// ```
#[derive(Debug)]
pub struct ConcurrencyLimit {
    inner: Arc<dyn Transport>,
    permits: Semaphore,
}

impl ConcurrencyLimit {
    /// Wraps `inner`, letting at most `limit` sends (at least one) run at once.
    pub fn new(inner: Arc<dyn Transport>, limit: usize) -> ConcurrencyLimit {
        ConcurrencyLimit { inner, permits: Semaphore::new(limit.clamp(1, Semaphore::MAX_PERMITS)) }
    }
}

#[async_trait]
impl Transport for ConcurrencyLimit {
    fn service(&self) -> ServiceKind {
        self.inner.service()
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<SendReceipt, SendError> {
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        self.inner.send(message).await
    }

    async fn probe(&self) -> ProbeReport {
        self.inner.probe().await
    }

    async fn close(&self) {
        self.inner.close().await;
    }
}
