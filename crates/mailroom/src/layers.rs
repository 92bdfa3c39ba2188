//! The layers around any `Transport`: retry and concurrency live in core (feature `layers`) and are re-exported here; the way-out layer needs the config, so it lives in the facade.

pub use mailroom_core::layers::{ConcurrencyLimit, RetryLayer};

use std::sync::Arc;

use async_trait::async_trait;
use mailroom_core::{OutgoingMessage, ProbeReport, SendError, SendReceipt, ServiceKind, Transport};

/// Adds the way out to the dead ends (core's [`mailroom_core::add_way_out`]): Exchange Online
/// refusing EWS, Microsoft 365 refusing SMTP passwords, Gmail refusing a password get a ready
/// config snippet for the same sender. [`crate::transport_for`] puts it around every driver.
#[derive(Debug)]
pub struct WayOutLayer {
    inner: Arc<dyn Transport>,
    config: mailroom_core::CompanyEmail,
}

impl WayOutLayer {
    /// Wraps `inner`, which sends for `config`.
    pub fn new(inner: Arc<dyn Transport>, config: mailroom_core::CompanyEmail) -> WayOutLayer {
        WayOutLayer { inner, config }
    }
}

#[async_trait]
impl Transport for WayOutLayer {
    fn service(&self) -> ServiceKind {
        self.inner.service()
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<SendReceipt, SendError> {
        self.inner.send(message).await.map_err(|error| mailroom_core::add_way_out(&self.config, error))
    }

    async fn probe(&self) -> ProbeReport {
        let mut report = self.inner.probe().await;
        report.error = report.error.map(|error| mailroom_core::add_way_out(&self.config, error));
        report
    }
}
