//! The object-safe `Transport` trait every driver implements, with its send receipt and step-by-step probe report.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::error::{SendError, ServerReply, ServiceKind};
use crate::message::OutgoingMessage;

/// Sends messages through one configured service. Object-safe: use it as `Arc<dyn Transport>`.
///
/// ```
/// use std::sync::Arc;
/// use mailroom_core::Transport;
/// fn accepts_any_driver(_transport: Arc<dyn Transport>) {}
/// ```
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// Which service type this transport sends through.
    fn service(&self) -> ServiceKind;

    /// Sends one message. Errors are classified; see [`SendError`].
    async fn send(&self, message: &OutgoingMessage) -> Result<SendReceipt, SendError>;

    /// Checks the configuration step by step without sending mail.
    async fn probe(&self) -> ProbeReport;

    /// Ends the transport's idle connections politely (SMTP: `QUIT` on each pooled
    /// connection) before the program exits. Sends after it open new connections. The
    /// default does nothing, for transports that keep no connection of their own.
    async fn close(&self) {}
}

/// What the service said when it accepted a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SendReceipt {
    /// The Message-ID of the sent message.
    pub message_id: String,
    /// The service's own ID for it (Gmail message id, EWS item id, SMTP queue id), when known.
    pub service_id: Option<String>,
    /// The final reply (SMTP 250 …), when the service gives one.
    pub server_reply: Option<ServerReply>,
}

/// How one probe step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// The step succeeded.
    Ok,
    /// The step failed; the report's error says why.
    Failed,
    /// The step was not attempted (an earlier one failed, or it does not apply).
    Skipped,
}

/// One step of a probe (resolve, connect, greeting, EHLO, TLS, AUTH, …).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProbeStep {
    /// Short name, e.g. `connect`.
    pub name: String,
    /// How it ended.
    pub outcome: StepOutcome,
    /// How long it took.
    #[serde(rename = "elapsed_ms", serialize_with = "as_millis")]
    pub elapsed: Duration,
    /// What happened, e.g. `127.0.0.1:587` or `250 AUTH PLAIN LOGIN`.
    pub detail: String,
}

fn as_millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_millis() as u64)
}

/// Another setting that was tried during diagnosis and worked (or did not).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Suggestion {
    /// One sentence, e.g. `port 465 expects implicit TLS: set tls = "implicit"`.
    pub summary: String,
    /// The config settings to change, as `(field, value)` in TOML syntax.
    pub settings: Vec<(&'static str, String)>,
}

/// The result of [`Transport::probe`].
#[derive(Debug, Default)]
pub struct ProbeReport {
    /// The steps in order.
    pub steps: Vec<ProbeStep>,
    /// Why the probe failed, if it did.
    pub error: Option<SendError>,
    /// Settings that were found to work instead.
    pub suggestions: Vec<Suggestion>,
}

impl ProbeReport {
    /// True when every attempted step succeeded.
    pub fn is_ok(&self) -> bool {
        self.error.is_none() && self.steps.iter().all(|s| s.outcome != StepOutcome::Failed)
    }

    /// Records a step.
    pub fn step(
        &mut self,
        name: impl Into<String>,
        outcome: StepOutcome,
        elapsed: Duration,
        detail: impl Into<String>,
    ) {
        self.steps.push(ProbeStep { name: name.into(), outcome, elapsed, detail: detail.into() });
    }
}
