//! Core's driver conformance suite and the diagnose probe, run against the Gmail driver backed by a wiremock fake of Google.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::*;
use mailroom_core::conformance::{ConformanceHarness, ReceivedMessage, run_suite};
use mailroom_core::{ErrorKind, Mailbox, StepOutcome, Transport};
use mailroom_gmail::GmailTransport;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Harness {
    server: MockServer,
    transport: Arc<GmailTransport>,
}

#[async_trait]
impl ConformanceHarness for Harness {
    fn transport(&self) -> Arc<dyn Transport> {
        self.transport.clone()
    }

    fn sender(&self) -> Mailbox {
        sender()
    }

    /// What Gmail would deliver: recipients from To/Cc/Bcc, the Bcc field removed.
    async fn received(&self) -> Vec<ReceivedMessage> {
        let requests = self.server.received_requests().await.unwrap_or_default();
        requests
            .into_iter()
            .filter(|r| r.url.path() == SEND_PATH && !recipients_of(&r.body).is_empty())
            .map(|r| ReceivedMessage {
                envelope_from: None,
                recipients: recipients_of(&r.body),
                bytes: without_bcc(&r.body),
            })
            .collect()
    }
}

async fn fake_google() -> MockServer {
    let server = MockServer::start().await;
    mount_token_ok(&server).await;
    Mock::given(method("POST")).and(path(SEND_PATH)).respond_with(FakeGmail::default()).mount(&server).await;
    server
}

#[tokio::test]
async fn the_gmail_driver_passes_core_conformance() {
    let server = fake_google().await;
    let transport = Arc::new(GmailTransport::new(sender(), &config(&server.uri(), &server.uri())).unwrap());
    let harness = Harness { server, transport };
    let passed = run_suite(&harness).await.unwrap();
    assert!(passed.contains(&"bcc_in_envelope_not_headers"));
    assert!(passed.contains(&"probe_succeeds_on_a_working_config"));
}

#[tokio::test]
async fn probe_reports_each_step_and_sends_nothing_deliverable() {
    let server = fake_google().await;
    let transport = GmailTransport::new(sender(), &config(&server.uri(), &server.uri())).unwrap();
    let report = transport.probe().await;
    assert!(report.is_ok(), "{:?}", report.error);
    let names: Vec<_> = report.steps.iter().map(|s| (s.name.as_str(), s.outcome)).collect();
    assert_eq!(names, [("token", StepOutcome::Ok), ("scope", StepOutcome::Ok), ("api", StepOutcome::Ok)]);
    assert!(report.steps[2].detail.contains("Recipient address required"), "{}", report.steps[2].detail);
    let uploads: Vec<_> =
        server.received_requests().await.unwrap().into_iter().filter(|r| r.url.path() == SEND_PATH).collect();
    assert_eq!(uploads.len(), 1);
    assert!(recipients_of(&uploads[0].body).is_empty(), "the probe message has no recipient");
}

#[tokio::test]
async fn probe_names_the_failing_step() {
    // The token step fails: invalid_grant.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json("token_invalid_grant.json")))
        .mount(&server)
        .await;
    let report = GmailTransport::new(sender(), &config(&server.uri(), &server.uri())).unwrap().probe().await;
    assert!(!report.is_ok());
    assert_eq!(report.steps[0].name, "token");
    assert_eq!(report.steps[0].outcome, StepOutcome::Failed);
    assert_eq!(report.error.as_ref().unwrap().kind(), ErrorKind::OauthReconnectRequired);

    // The scope step fails: the token only reads mail.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer",
            "scope": "https://www.googleapis.com/auth/gmail.readonly"
        })))
        .mount(&server)
        .await;
    let report = GmailTransport::new(sender(), &config(&server.uri(), &server.uri())).unwrap().probe().await;
    assert_eq!(report.steps[1].name, "scope");
    assert_eq!(report.steps[1].outcome, StepOutcome::Failed);
    assert_eq!(report.error.as_ref().unwrap().kind(), ErrorKind::PermissionDenied);

    // The API step fails: the Gmail API is not enabled in the project.
    let server = MockServer::start().await;
    mount_token_ok(&server).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(403).set_body_json(json("api_403_access_not_configured.json")))
        .mount(&server)
        .await;
    let report = GmailTransport::new(sender(), &config(&server.uri(), &server.uri())).unwrap().probe().await;
    assert_eq!(report.steps[2].name, "api");
    assert_eq!(report.steps[2].outcome, StepOutcome::Failed);
    let error = report.error.unwrap();
    assert_eq!(error.kind(), ErrorKind::PermissionDenied);
    assert_eq!(error.field(), Some("email_services.client_id"));
}
