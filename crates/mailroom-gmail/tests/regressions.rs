//! Issue 10's Gmail defects, each pinned by a test that failed before its fix: http:// endpoints off loopback, replies that may mean "accepted" but cannot be read whole, token replies that trickle, Google's `deleted_client` and `invalid_grant` advice, and group-readable token files.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use mailroom_core::{ErrorKind, Transport};
use mailroom_gmail::GmailTransport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A server that answers each request with `head` and then sends `body` a byte every `pace`.
async fn trickling(head: &'static str, body: &'static [u8], pace: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 1 << 16];
                let _ = stream.read(&mut buffer).await;
                let _ = stream.write_all(head.as_bytes()).await;
                for byte in body {
                    tokio::time::sleep(pace).await;
                    if stream.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{address}")
}

/// #1: an http:// endpoint must reach loopback only; an address off loopback is refused
/// before any connection, whatever the config loader let through.
#[tokio::test]
async fn http_endpoints_off_loopback_are_refused_without_connecting() {
    let server = MockServer::start().await;
    mount_token_ok(&server).await;
    for (token_base, api_base, field) in [
        ("http://10.255.255.1:9".to_owned(), server.uri(), "email_services.token_uri"),
        (server.uri(), "http://10.255.255.1:9".to_owned(), "email_services.api_base"),
    ] {
        let transport = GmailTransport::new(sender(), &config(&token_base, &api_base)).unwrap();
        let started = Instant::now();
        let error = transport.send(&message()).await.unwrap_err();
        assert_eq!((error.kind(), error.field()), (ErrorKind::InvalidConfig, Some(field)), "{error}");
        assert!(started.elapsed() < Duration::from_secs(1), "it tried to connect: {:?}", started.elapsed());
    }
}

/// #10: Gmail answered 200 to the upload, then the body trickles past the deadline: the
/// message may have been accepted, so it is delivery_unknown (never retried), not protocol.
#[tokio::test]
async fn a_200_whose_body_trickles_past_the_deadline_is_delivery_unknown() {
    let server = MockServer::start().await;
    mount_token_ok(&server).await;
    let api = trickling(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n",
        b"{\"id\":\"18e1c0ffee000001\",\"labelIds\":[]}",
        Duration::from_millis(300),
    )
    .await;
    let transport = GmailTransport::builder(sender(), &config(&server.uri(), &api))
        .upload_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let error = transport.send(&message()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::DeliveryUnknown, "{error}");
    assert_eq!(mailroom_core::RetryPolicy::default().delay_before_retry(1, &error), None);
}

/// #10: a token endpoint whose 200 body trickles past the deadline is a timeout, not a
/// malformed reply on token_uri.
#[tokio::test]
async fn a_token_reply_that_trickles_is_a_timeout() {
    let token = trickling(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n",
        b"{\"access_token\":\"ya29.x\",\"expires_in\":3599,\"token_type\":\"Bearer\"}",
        Duration::from_millis(300),
    )
    .await;
    let mut config = config(&token, "http://127.0.0.1:9");
    config.timeout = Duration::from_millis(500);
    let error = GmailTransport::new(sender(), &config).unwrap().send(&message()).await.unwrap_err();
    assert_eq!((error.kind(), error.field()), (ErrorKind::Timeout, Some("email_services.token_uri")), "{error}");
}

/// #7: a deleted OAuth client is an unknown client to fix in client_id, not a protocol error.
#[tokio::test]
async fn a_deleted_client_points_at_client_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json("token_deleted_client.json")))
        .mount(&server)
        .await;
    let error = GmailTransport::new(sender(), &config(&server.uri(), &server.uri()))
        .unwrap()
        .send(&message())
        .await
        .unwrap_err();
    assert_eq!((error.kind(), error.field()), (ErrorKind::AuthFailed, Some("email_services.client_id")), "{error}");
    assert!(error.remediation().join(" ").contains("deleted"), "{:?}", error.remediation());
}

/// #8: apps left in "Testing" get refresh tokens that expire after 7 days: say so.
#[tokio::test]
async fn invalid_grant_on_refresh_mentions_testing_apps() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json("token_invalid_grant.json")))
        .mount(&server)
        .await;
    let error = GmailTransport::new(sender(), &config(&server.uri(), &server.uri()))
        .unwrap()
        .send(&message())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::OauthReconnectRequired);
    let advice = error.remediation().join(" ");
    assert!(advice.contains("Testing") && advice.contains("7 days"), "{advice}");
}

/// A writer for tracing output captured by a test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// #8: the token file's reader warns when others can read the refresh token.
#[cfg(unix)]
#[test]
fn a_group_readable_token_file_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("google-token.json");
    std::fs::write(&path, "1//sentinel-refresh\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    tracing::subscriber::with_default(subscriber, || {
        mailroom_gmail::load_refresh_token(&path, CLIENT_ID).unwrap();
    });
    let logged = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("WARN") && logged.contains("chmod 600"), "{logged}");
    assert!(!logged.contains("sentinel-refresh"), "{logged}");
}
