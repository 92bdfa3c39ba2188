//! The driver conformance suite (feature `conformance`): the behaviour every `Transport` must show against a real (fake) server.

use std::sync::Arc;

use async_trait::async_trait;
use lettre::Address;
use lettre::message::Mailbox;

use crate::error::ErrorKind;
use crate::message::{Attachment, MessageDraft, OutgoingMessage};
use crate::transport::Transport;

/// A message as the server under test received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// Envelope sender (MAIL FROM), when the protocol has one.
    pub envelope_from: Option<String>,
    /// Envelope recipients.
    pub recipients: Vec<String>,
    /// The message bytes as stored by the server (it may have prepended trace headers).
    pub bytes: Vec<u8>,
}

/// What a driver's test provides to run the suite: the transport under test and a view of what its server received.
#[async_trait]
pub trait ConformanceHarness: Send + Sync {
    /// The transport under test, pointed at the harness's server.
    fn transport(&self) -> Arc<dyn Transport>;
    /// The sender the transport is configured with.
    fn sender(&self) -> Mailbox;
    /// Every message the server has received so far.
    async fn received(&self) -> Vec<ReceivedMessage>;
    /// A recipient the server refuses, if the harness can arrange one.
    fn rejected_recipient(&self) -> Option<Address> {
        None
    }
}

/// A failed conformance check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conformance check `{check}` failed: {reason}")]
pub struct ConformanceFailure {
    /// The check's name.
    pub check: &'static str,
    /// What was wrong.
    pub reason: String,
}

fn fail(check: &'static str, reason: impl Into<String>) -> ConformanceFailure {
    ConformanceFailure { check, reason: reason.into() }
}

fn address(text: &str) -> Mailbox {
    text.parse().expect("static test address")
}

fn ends_with_message(received: &[u8], sent: &[u8]) -> bool {
    let trim = |bytes: &[u8]| {
        let mut end = bytes.len();
        while end > 0 && matches!(bytes[end - 1], b'\r' | b'\n') {
            end -= 1;
        }
        end
    };
    let (received, sent) = (&received[..trim(received)], &sent[..trim(sent)]);
    received.ends_with(sent)
}

async fn send_and_find(
    harness: &dyn ConformanceHarness,
    check: &'static str,
    message: &OutgoingMessage,
) -> Result<ReceivedMessage, ConformanceFailure> {
    let receipt = harness.transport().send(message).await.map_err(|e| fail(check, format!("send failed: {e}")))?;
    if receipt.message_id != message.message_id() {
        return Err(fail(
            check,
            format!("receipt has Message-ID {} instead of {}", receipt.message_id, message.message_id()),
        ));
    }
    let received = harness.received().await;
    received
        .into_iter()
        .find(|r| ends_with_message(&r.bytes, message.bytes()))
        .ok_or_else(|| fail(check, format!("no received message matches {} byte for byte", message.message_id())))
}

/// Runs every check; returns the names of the checks that ran, or the first failure.
pub async fn run_suite(harness: &dyn ConformanceHarness) -> Result<Vec<&'static str>, ConformanceFailure> {
    let mut passed = Vec::new();
    let sender = harness.sender();

    let check = "simple_message_arrives_byte_identical";
    let simple = MessageDraft::new(sender.clone())
        .to(address("Ada Lovelace <ada@example.com>"))
        .subject("Conformance: simple")
        .text("Hello.\nSecond line.")
        .build()
        .map_err(|e| fail(check, e.to_string()))?;
    let got = send_and_find(harness, check, &simple).await?;
    if let Some(from) = &got.envelope_from
        && from != &sender.email.to_string()
    {
        return Err(fail(check, format!("envelope sender {from}, expected {}", sender.email)));
    }
    passed.push(check);

    let check = "bcc_in_envelope_not_headers";
    let with_bcc = MessageDraft::new(sender.clone())
        .to(address("to@example.com"))
        .cc(address("cc@example.com"))
        .bcc(address("hidden@example.com"))
        .subject("Conformance: bcc")
        .text("bcc")
        .build()
        .map_err(|e| fail(check, e.to_string()))?;
    let got = send_and_find(harness, check, &with_bcc).await?;
    let mut recipients = got.recipients.clone();
    recipients.sort();
    if recipients != ["cc@example.com", "hidden@example.com", "to@example.com"] {
        return Err(fail(check, format!("envelope recipients {recipients:?}")));
    }
    if String::from_utf8_lossy(&got.bytes).contains("hidden@example.com") {
        return Err(fail(check, "the Bcc address appears in the received bytes"));
    }
    passed.push(check);

    let check = "dot_lines_and_non_ascii_survive";
    let tricky = MessageDraft::new(sender.clone())
        .to(address("to@example.com"))
        .subject("Conformance: Grüße – ☃")
        .text(".\n..leading dots\n.\r\nFrom the start\nÜnïcödé body ☃")
        .html("<p>.</p>\n.\n<p>&lt;script&gt;</p>")
        .attach(Attachment::guess("Rechnung März.pdf", (0..=255u8).cycle().take(70_000).collect()))
        .build()
        .map_err(|e| fail(check, e.to_string()))?;
    send_and_find(harness, check, &tricky).await?;
    passed.push(check);

    let check = "concurrent_sends_through_one_shared_transport";
    let transport = harness.transport();
    let mut tasks = Vec::new();
    let mut sent = Vec::new();
    for n in 0..8 {
        let message = MessageDraft::new(sender.clone())
            .to(address("to@example.com"))
            .subject(format!("Conformance: concurrent {n}"))
            .text(format!("message {n}"))
            .build()
            .map_err(|e| fail(check, e.to_string()))?;
        sent.push(message.clone());
        let transport = transport.clone();
        tasks.push(async move { transport.send(&message).await });
    }
    for result in futures_join_all(tasks).await {
        result.map_err(|e| fail(check, format!("send failed: {e}")))?;
    }
    let received = harness.received().await;
    for message in &sent {
        if !received.iter().any(|r| ends_with_message(&r.bytes, message.bytes())) {
            return Err(fail(check, format!("{} was not received", message.message_id())));
        }
    }
    passed.push(check);

    let check = "probe_succeeds_on_a_working_config";
    let report = harness.transport().probe().await;
    if !report.is_ok() {
        return Err(fail(check, format!("probe failed: {:?}", report.error)));
    }
    passed.push(check);

    if let Some(rejected) = harness.rejected_recipient() {
        let check = "rejected_recipient_is_classified";
        let message = MessageDraft::new(sender.clone())
            .to(Mailbox::new(None, rejected))
            .subject("Conformance: rejected")
            .text("x")
            .build()
            .map_err(|e| fail(check, e.to_string()))?;
        match harness.transport().send(&message).await {
            Err(e) if e.kind() == ErrorKind::RecipientRejected => {}
            Err(e) => {
                return Err(fail(check, format!("classified as {} instead of recipient_rejected", e.kind())));
            }
            Ok(_) => return Err(fail(check, "the send succeeded")),
        }
        passed.push(check);
    }
    Ok(passed)
}

/// Polls all futures concurrently on the current task (no runtime dependency in core).
async fn futures_join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    use std::pin::Pin;
    use std::task::Poll;
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("all ready")).collect()
}

#[cfg(test)]
mod tests {
    //! The suite must pass a correct transport and fail a broken one; both live only here.
    use super::*;
    use crate::error::{SendError, ServiceKind};
    use crate::transport::{ProbeReport, SendReceipt};
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    struct Memory {
        received: Mutex<Vec<ReceivedMessage>>,
        drop_bcc: bool,
    }

    #[async_trait]
    impl Transport for Memory {
        fn service(&self) -> ServiceKind {
            ServiceKind::WebMail
        }
        async fn send(&self, message: &OutgoingMessage) -> Result<SendReceipt, SendError> {
            let mut recipients: Vec<String> = message.recipients().iter().map(ToString::to_string).collect();
            if recipients.iter().any(|r| r.starts_with("nobody@")) {
                return Err(SendError::new(ErrorKind::RecipientRejected, "550 5.1.1"));
            }
            if self.drop_bcc {
                recipients.retain(|r| !r.starts_with("hidden@"));
            }
            self.received.lock().unwrap().push(ReceivedMessage {
                envelope_from: Some(message.envelope_from().to_string()),
                recipients,
                bytes: message.bytes().to_vec(),
            });
            Ok(SendReceipt { message_id: message.message_id().to_owned(), service_id: None, server_reply: None })
        }
        async fn probe(&self) -> ProbeReport {
            ProbeReport::default()
        }
    }

    struct Harness(Arc<Memory>);

    #[async_trait]
    impl ConformanceHarness for Harness {
        fn transport(&self) -> Arc<dyn Transport> {
            self.0.clone()
        }
        fn sender(&self) -> Mailbox {
            "Company ERP <erp@company.com>".parse().unwrap()
        }
        async fn received(&self) -> Vec<ReceivedMessage> {
            self.0.received.lock().unwrap().clone()
        }
        fn rejected_recipient(&self) -> Option<Address> {
            Some("nobody@example.com".parse().unwrap())
        }
    }

    #[tokio::test]
    async fn a_correct_transport_passes_every_check() {
        let passed = run_suite(&Harness(Arc::new(Memory::default()))).await.unwrap();
        assert_eq!(passed.len(), 6, "{passed:?}");
    }

    #[tokio::test]
    async fn a_transport_that_loses_bcc_fails() {
        let broken = Memory { drop_bcc: true, ..Memory::default() };
        let failure = run_suite(&Harness(Arc::new(broken))).await.unwrap_err();
        assert_eq!(failure.check, "bcc_in_envelope_not_headers");
    }
}
