//! No secret leaves the driver: sentinel client secret, refresh token and access token, servers that echo them back, and every rendering of the results (Debug, Display, JSON report, transcript, trace logs) searched for them.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use mailroom_core::Transport;
use mailroom_gmail::GmailTransport;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SENTINEL_ACCESS: &str = "ya29.sentinel-access-token-0d1e";

/// Echoes everything it was sent (body and Authorization header) inside an error reply.
struct Echo {
    status: u16,
    api_shape: bool,
}

impl Respond for Echo {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let auth = request.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let echoed = format!("you sent {} with {auth}", String::from_utf8_lossy(&request.body));
        let body = if self.api_shape {
            serde_json::json!({"error": {"code": self.status, "message": echoed, "errors": [{"reason": "forbidden", "message": echoed}], "status": "PERMISSION_DENIED"}})
        } else {
            serde_json::json!({"error": "invalid_grant", "error_description": echoed})
        };
        ResponseTemplate::new(self.status).set_body_json(body)
    }
}

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn assert_clean(text: &str, what: &str) {
    for secret in [CLIENT_SECRET, REFRESH_TOKEN, SENTINEL_ACCESS, "sentinel"] {
        assert!(!text.contains(secret), "{what} reveals {secret}:\n{text}");
    }
}

async fn token_server(access_token: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": access_token, "expires_in": 3599, "token_type": "Bearer",
            "scope": "https://www.googleapis.com/auth/gmail.send"
        })))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn no_rendering_of_any_outcome_reveals_a_secret() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut rendered = Vec::new();

    // The token endpoint echoes the refresh token and client secret back.
    let echo_token = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(Echo { status: 400, api_shape: false })
        .mount(&echo_token)
        .await;
    let transport = GmailTransport::new(sender(), &config(&echo_token.uri(), &echo_token.uri())).unwrap();
    rendered.push(format!("{transport:?}"));
    let error = transport.send(&message()).await.unwrap_err();
    rendered.push(format!("{error:?} {error} {}", serde_json::to_string(&error.report()).unwrap()));
    assert!(error.transcript().is_some_and(|t| !t.is_empty()));
    let report = transport.probe().await;
    rendered.push(format!("{report:?}"));

    // The API echoes the Authorization header back: 403, then 401 twice, then a garbage 200.
    for (status, api_shape) in [(403, true), (401, true), (200, false)] {
        let tokens = token_server(SENTINEL_ACCESS).await;
        let api = MockServer::start().await;
        Mock::given(method("POST")).and(path(SEND_PATH)).respond_with(Echo { status, api_shape }).mount(&api).await;
        let transport = GmailTransport::new(sender(), &config(&tokens.uri(), &api.uri())).unwrap();
        let error = transport.send(&message()).await.unwrap_err();
        rendered.push(format!("{error:?} {error} {}", serde_json::to_string(&error.report()).unwrap()));
        for step in error.remediation() {
            rendered.push(step);
        }
        let report = transport.probe().await;
        rendered.push(format!("{report:?}"));
        if let Some(error) = report.error {
            rendered.push(serde_json::to_string(&error.report()).unwrap());
        }
    }

    for text in &rendered {
        assert_clean(text, "an error or report");
    }
    assert!(rendered.iter().any(|t| t.contains("[redacted]")), "echoed secrets show as [redacted]");
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(!logs.is_empty(), "the driver logs at debug level");
    assert_clean(&logs, "the trace log");
}
