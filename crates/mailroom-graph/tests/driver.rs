//! The Graph driver against the testkit's mocked Microsoft 365: application and delegated sends, Bcc, one refresh on 401, classified refusals, the probe, and core's conformance suite.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mailroom_core::config::CompanyEmail;
use mailroom_core::conformance::{ConformanceHarness, ReceivedMessage, run_suite};
use mailroom_core::{ErrorKind, Mailbox, MessageDraft, Retry, StepOutcome, Transport};
use mailroom_graph::GraphTransport;
use mailroom_testkit::{MicrosoftFault, MicrosoftTenant, MockMicrosoft365};

mod common;
use common::{config, transport};

fn message(config: &CompanyEmail) -> mailroom_core::OutgoingMessage {
    MessageDraft::new(config.sender.clone())
        .to("customer@example.com".parse().unwrap())
        .bcc("audit@company.com".parse().unwrap())
        .subject("Invoice 1042 is overdue")
        .text("Please pay.")
        .build()
        .unwrap()
}

#[tokio::test]
async fn application_auth_sends_the_unchanged_bytes_with_bcc_as_a_header() {
    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    let config = config(&mock, "application");
    let message = message(&config);
    let receipt = transport(&config).send(&message).await.unwrap();
    assert_eq!(receipt.message_id, message.message_id());
    assert_eq!(receipt.service_id.as_deref(), Some("mock-request-1"));
    let sent = mock.sent();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].starts_with(b"Bcc: audit@company.com\r\n"), "{}", String::from_utf8_lossy(&sent[0]));
    assert!(sent[0].ends_with(message.bytes()), "the message bytes are sent unchanged");
    let requests = mock.requests().await;
    let send = requests.iter().find(|r| r.url.path().ends_with("/sendMail")).unwrap();
    assert_eq!(send.url.path(), "/v1.0/users/erp@company.com/sendMail");
    assert_eq!(send.headers.get("content-type").unwrap(), "text/plain");
    let token = &mock.token_requests()[0];
    assert_eq!(token["grant_type"], "client_credentials");
    assert_eq!(token["scope"], "https://graph.microsoft.com/.default");
}

#[tokio::test]
async fn delegated_auth_refreshes_and_sends_to_me() {
    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    let config = config(&mock, "delegated");
    transport(&config).send(&message(&config)).await.unwrap();
    let requests = mock.requests().await;
    assert!(requests.iter().any(|r| r.url.path() == "/v1.0/me/sendMail"));
    let token = &mock.token_requests()[0];
    assert_eq!(token["grant_type"], "refresh_token");
    assert!(token["scope"].contains("Mail.Send") && token["scope"].contains("offline_access"), "{}", token["scope"]);
}

#[tokio::test]
async fn a_401_is_refreshed_once_then_classified() {
    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    let config = config(&mock, "application");
    mock.graph_fault(MicrosoftFault::always(401, "graph_401_invalid_token.json").times(1));
    transport(&config).send(&message(&config)).await.unwrap();
    assert_eq!(mock.token_requests().len(), 2, "one fresh token after the 401");

    mock.graph_fault(MicrosoftFault::always(401, "graph_401_invalid_token.json"));
    let error = transport(&config).send(&message(&config)).await.unwrap_err();
    assert_eq!((error.kind(), error.field()), (ErrorKind::AuthFailed, Some("email_services.client_id")));
}

#[tokio::test]
async fn refusals_are_classified_with_their_fields() {
    let cases: [(MicrosoftFault, bool, ErrorKind, Option<&str>); 6] = [
        (
            MicrosoftFault::always(401, "token_7000215_invalid_secret.json"),
            true,
            ErrorKind::AuthFailed,
            Some("email_services.client_secret"),
        ),
        (
            MicrosoftFault::always(400, "token_90002_unknown_tenant.json"),
            true,
            ErrorKind::AuthFailed,
            Some("email_services.tenant"),
        ),
        (
            MicrosoftFault::always(403, "graph_403_access_policy.json"),
            false,
            ErrorKind::PermissionDenied,
            Some("email_address"),
        ),
        (
            MicrosoftFault::always(403, "graph_403_send_as_denied.json"),
            false,
            ErrorKind::SenderNotAllowed,
            Some("email_address"),
        ),
        (
            MicrosoftFault::always(404, "graph_404_mailbox_not_enabled.json"),
            false,
            ErrorKind::SenderNotAllowed,
            Some("email_address"),
        ),
        (MicrosoftFault::always(413, "graph_413_too_large.json"), false, ErrorKind::MessageTooLarge, None),
    ];
    for (fault, at_token, kind, field) in cases {
        let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
        let config = config(&mock, "application");
        if at_token {
            mock.token_fault(fault.clone())
        } else {
            mock.graph_fault(fault.clone())
        }
        let error = transport(&config).send(&message(&config)).await.unwrap_err();
        assert_eq!((error.kind(), error.field()), (kind, field), "{fault:?}: {error}");
        let json = serde_json::to_string(&error.report()).unwrap();
        assert!(!json.contains("right-secret") && !json.contains("mock-access"), "no secret in {json}");
    }
}

#[tokio::test]
async fn throttling_carries_a_decimal_retry_after() {
    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    let config = config(&mock, "application");
    mock.graph_fault(MicrosoftFault::always(429, "graph_429_throttled.json").retry_after("2.128"));
    let error = transport(&config).send(&message(&config)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited);
    assert_eq!(error.retry(), Retry::Temporary { after: Some(Duration::from_millis(2128)) });
}

#[tokio::test]
async fn a_504_after_the_message_is_delivery_unknown() {
    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    let config = config(&mock, "application");
    mock.graph_fault(MicrosoftFault { status: 504, fixture: None, retry_after: None, times: None });
    let error = transport(&config).send(&message(&config)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::DeliveryUnknown);
    assert!(!error.retry().is_temporary());
}

#[tokio::test]
async fn probe_signs_in_and_reads_the_mailbox_without_sending() {
    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    let config = config(&mock, "application");
    let report = transport(&config).probe().await;
    assert!(report.is_ok(), "{:?}", report.error);
    let steps: Vec<_> = report.steps.iter().map(|s| (s.name.as_str(), s.outcome)).collect();
    assert_eq!(steps, [("token", StepOutcome::Ok), ("mailbox", StepOutcome::Ok)]);
    assert!(mock.sent().is_empty());

    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    mock.token_fault(MicrosoftFault::always(401, "token_7000222_expired_secret.json"));
    let report = transport(&config_for(&mock)).probe().await;
    let error = report.error.expect("the token step fails");
    assert!(error.remediation()[0].contains("client secret expired"), "{:?}", error.remediation());
    assert_eq!(report.steps[1].outcome, StepOutcome::Skipped);
}

fn config_for(mock: &MockMicrosoft365) -> CompanyEmail {
    config(mock, "application")
}

struct Harness {
    mock: MockMicrosoft365,
    transport: Arc<GraphTransport>,
    sender: Mailbox,
}

#[async_trait]
impl ConformanceHarness for Harness {
    fn transport(&self) -> Arc<dyn Transport> {
        self.transport.clone()
    }

    fn sender(&self) -> Mailbox {
        self.sender.clone()
    }

    /// What Exchange would deliver: recipients from To/Cc/Bcc, the Bcc field removed.
    async fn received(&self) -> Vec<ReceivedMessage> {
        self.mock
            .sent()
            .into_iter()
            .map(|mime| {
                let (bcc, rest) = split_bcc(&mime);
                let parsed = mail_parser::MessageParser::default().parse(&rest[..]);
                let mut recipients: Vec<String> = Vec::new();
                if let Some(parsed) = &parsed {
                    for list in [parsed.to(), parsed.cc()].into_iter().flatten() {
                        recipients.extend(list.iter().filter_map(|a| a.address()).map(str::to_owned));
                    }
                }
                recipients.extend(bcc);
                ReceivedMessage { envelope_from: None, recipients, bytes: rest }
            })
            .collect()
    }
}

/// The leading `Bcc:` field (as the driver adds it) and the bytes after it.
fn split_bcc(mime: &[u8]) -> (Vec<String>, Vec<u8>) {
    let text = String::from_utf8_lossy(mime);
    let Some(rest) = text.strip_prefix("Bcc: ") else { return (Vec::new(), mime.to_vec()) };
    let mut end = 0;
    let mut addresses = Vec::new();
    for line in rest.split_inclusive("\r\n") {
        if end > 0 && !line.starts_with(' ') {
            break;
        }
        addresses.extend(
            line.trim().trim_end_matches(',').split(',').map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()),
        );
        end += line.len();
    }
    let consumed = "Bcc: ".len() + end;
    (addresses, mime[consumed..].to_vec())
}

#[tokio::test]
async fn the_graph_driver_passes_core_conformance() {
    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    let config = config(&mock, "application");
    let transport = Arc::new(transport(&config));
    let harness = Harness { mock, transport, sender: config.sender.clone() };
    let passed = run_suite(&harness).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(passed.contains(&"bcc_in_envelope_not_headers"), "{passed:?}");
}

#[tokio::test]
async fn a_message_above_one_request_without_files_is_refused_before_any_request_with_the_exact_limit() {
    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    let config = config(&mock, "application");
    let big = MessageDraft::new(config.sender.clone())
        .to("customer@example.com".parse().unwrap())
        .subject("Statement")
        .text("x".repeat(3_100_000))
        .build()
        .unwrap();
    let error = transport(&config).send(&big).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::MessageTooLarge);
    assert!(error.detail().contains("3000000 bytes one Graph request can carry"), "{}", error.detail());
    assert!(error.detail().contains("no file attachments"), "{}", error.detail());
    assert!(error.remediation().iter().any(|hint| hint.contains("auth = \"oauth\"")), "{:?}", error.remediation());
    assert!(mock.requests().await.is_empty(), "nothing was sent, not even a token request");
}
