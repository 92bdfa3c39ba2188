//! The Gmail driver against hostile HTTP servers on loopback (the testkit's `HostileHttpServer` as the Gmail API, wiremock as Google's token endpoint): replies cut mid-body, a 10 MB header line and body, an endless chunked body, a reply trickled a byte per second, invalid UTF-8, `Retry-After: 99999999999`, and a token endpoint that trickles past its deadline. Each ends in a classified error within its deadline; a 2xx that may mean "accepted" is `delivery_unknown`.

mod common;

use std::time::Duration;

use common::*;
use mailroom_core::{ErrorKind, Retry, RetryPolicy, SendError};
use mailroom_gmail::GmailTransport;
use mailroom_testkit::{HANG_BOUND, HostileHttpServer, HostileReply, assert_never_retried, send_expecting_error};
use wiremock::MockServer;

/// The deadline of every step here (connect, token, upload reply).
const STEP: Duration = Duration::from_millis(700);
const CUT_JSON: &[u8] = br#"{"id":"18e1c0ffee000001","threadId":"18e1c0"#;

/// Sends one message through a Gmail API at `api`, with tokens from wiremock.
async fn send_to(api: &HostileHttpServer) -> (SendError, Duration) {
    let login = MockServer::start().await;
    mount_token_ok(&login).await;
    let mut config = config(&login.uri(), &api.uri());
    config.timeout = STEP;
    let transport = GmailTransport::builder(sender(), &config).upload_timeout(STEP).build().unwrap();
    send_expecting_error(&transport, &message()).await
}

async fn hostile(reply: HostileReply) -> HostileHttpServer {
    HostileHttpServer::start(reply).await.unwrap()
}

#[tokio::test]
async fn a_200_cut_mid_body_is_delivery_unknown() {
    let api = hostile(HostileReply::CutBody { status: 200, promised: 4096, sent: CUT_JSON.to_vec() }).await;
    let (error, elapsed) = send_to(&api).await;
    assert_never_retried(&error);
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
    assert_eq!(api.requests(), 1, "a message that may have been accepted is not sent again");
}

#[tokio::test]
async fn a_500_cut_mid_body_is_classified_by_its_status() {
    let api =
        hostile(HostileReply::CutBody { status: 500, promised: 4096, sent: br#"{"error":{"code":50"#.to_vec() }).await;
    let (error, elapsed) = send_to(&api).await;
    assert_eq!(error.kind(), ErrorKind::ServiceUnavailable, "{error}");
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn a_ten_megabyte_header_line_after_the_message_was_handed_over_is_delivery_unknown() {
    let api = hostile(HostileReply::HugeHeaderLine { status: 200, bytes: 10 << 20 }).await;
    let (error, elapsed) = send_to(&api).await;
    assert_never_retried(&error);
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn a_ten_megabyte_200_body_is_delivery_unknown() {
    let api = hostile(HostileReply::HugeBody { status: 200, bytes: 10 << 20 }).await;
    let (error, elapsed) = send_to(&api).await;
    assert_never_retried(&error);
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn an_endless_chunked_200_body_is_delivery_unknown() {
    let api = hostile(HostileReply::EndlessChunked { status: 200 }).await;
    let (error, elapsed) = send_to(&api).await;
    assert_never_retried(&error);
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn an_endless_chunked_503_body_is_classified_by_its_status() {
    let api = hostile(HostileReply::EndlessChunked { status: 503 }).await;
    let (error, elapsed) = send_to(&api).await;
    assert_eq!(error.kind(), ErrorKind::ServiceUnavailable, "{error}");
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn a_reply_trickled_one_byte_per_second_runs_into_the_deadline_as_delivery_unknown() {
    let api =
        hostile(HostileReply::trickle(200, &["Content-Type: application/json"], CUT_JSON, Duration::from_secs(1)))
            .await;
    let (error, elapsed) = send_to(&api).await;
    assert_never_retried(&error);
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn a_200_with_invalid_utf8_is_delivery_unknown() {
    let api = hostile(HostileReply::reply(
        200,
        &["Content-Type: application/json"],
        b"{\"id\":\"\xff\xfe\xc3\x28\xed\xa0\x80\"}",
    ))
    .await;
    let (error, elapsed) = send_to(&api).await;
    assert_never_retried(&error);
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn a_400_with_invalid_utf8_is_classified_without_a_panic() {
    let api = hostile(HostileReply::reply(
        400,
        &["Content-Type: application/json"],
        b"{\"error\":{\"message\":\"\xff\xfe\xc3\x28\"}}",
    ))
    .await;
    let (error, _) = send_to(&api).await;
    assert!(matches!(error.kind(), ErrorKind::Protocol | ErrorKind::RecipientRejected), "{error}");
    let _ = (error.report(), error.remediation(), error.user_message());
}

#[tokio::test]
async fn an_absurd_retry_after_is_bounded() {
    let api = hostile(HostileReply::reply(
        429,
        &["Retry-After: 99999999999", "Content-Type: application/json"],
        br#"{"error":{"code":429,"message":"Too many","status":"RESOURCE_EXHAUSTED"}}"#,
    ))
    .await;
    let (error, elapsed) = send_to(&api).await;
    assert_eq!(error.kind(), ErrorKind::RateLimited, "{error}");
    if let Retry::Temporary { after: Some(delay) } = error.retry() {
        assert!(delay <= mailroom_http::MAX_BACKOFF, "{delay:?}");
    }
    if let Some(delay) = RetryPolicy::default().delay_before_retry(1, &error) {
        assert!(delay <= mailroom_http::MAX_BACKOFF, "{delay:?}");
    }
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn a_token_endpoint_that_trickles_past_its_deadline_is_a_timeout() {
    let login = hostile(HostileReply::trickle(
        200,
        &["Content-Type: application/json"],
        br#"{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}"#,
        Duration::from_secs(1),
    ))
    .await;
    let api = hostile(HostileReply::Silent).await;
    let mut config = config(&login.uri(), &api.uri());
    config.timeout = STEP;
    let transport = GmailTransport::builder(sender(), &config).upload_timeout(STEP).build().unwrap();
    let (error, elapsed) = send_expecting_error(&transport, &message()).await;
    assert_eq!((error.kind(), error.field()), (ErrorKind::Timeout, Some("email_services.token_uri")), "{error}");
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
    assert_eq!(api.requests(), 0, "no message without a token");
}
