//! Cross-cutting behaviour as layers around any `Transport` (OpenDAL's idea): today, retry with back-off.

use std::sync::Arc;

use async_trait::async_trait;
use mailroom_core::{OutgoingMessage, ProbeReport, RetryPolicy, SendError, SendReceipt, ServiceKind, Transport};

/// Retries sends that failed before the server could have accepted the message (throttling,
/// temporary unavailability), waiting as [`RetryPolicy`] says — honouring the server's
/// back-off hint. Never resends after `delivery_unknown`.
///
/// ```no_run
/// # async fn run(transport: std::sync::Arc<dyn mailroom_core::Transport>, message: mailroom_core::OutgoingMessage) {
/// use mailroom::RetryLayer;
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
}
