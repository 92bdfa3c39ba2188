//! The EWS driver against hostile HTTP servers on loopback (the testkit's `HostileHttpServer`): replies cut mid-body, a 10 MB header line and body, an endless chunked body, a reply trickled a byte per second, invalid UTF-8, `Retry-After: 99999999999`, and a token endpoint that trickles past its deadline. Each ends in a classified error within its deadline; a 2xx that may mean "accepted" is `delivery_unknown`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mailroom_core::{ErrorKind, Retry, RetryPolicy, SendError, Transport};
use mailroom_ews::EwsTransport;
use mailroom_testkit::{HANG_BOUND, HostileHttpServer, HostileReply, assert_never_retried, send_expecting_error};

/// The deadline of every step here (connect, token, reply).
const STEP: Duration = Duration::from_millis(700);
/// No probe may take longer than this, whatever the server does.
const WALL: Duration = Duration::from_secs(15);

const CUT_SOAP: &[u8] = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><m:CreateItemResponse xmlns:m=\"http://schemas.microsoft.com/exchange/services/2006/messages\"><m:Respo";

fn transport(uri: &str) -> EwsTransport {
    let mut config = config(&format!("{uri}{EWS_PATH}"));
    config.timeout = STEP;
    EwsTransport::builder(sender(), &config).send_timeout(STEP).build().unwrap()
}

/// Sends one message to the server; returns the error and how long it took.
async fn send_to(server: &HostileHttpServer) -> (SendError, Duration) {
    send_expecting_error(&transport(&server.uri()), &message("hostile")).await
}

async fn hostile(reply: HostileReply) -> HostileHttpServer {
    HostileHttpServer::start(reply).await.unwrap()
}

#[tokio::test]
async fn a_200_cut_mid_body_is_delivery_unknown() {
    let server = hostile(HostileReply::CutBody { status: 200, promised: 4096, sent: CUT_SOAP.to_vec() }).await;
    let (error, elapsed) = send_to(&server).await;
    assert_never_retried(&error);
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
    assert_eq!(server.requests(), 1, "a message that may have been accepted is not sent again");
}

#[tokio::test]
async fn a_500_cut_mid_body_is_classified_by_its_status() {
    let server = hostile(HostileReply::CutBody { status: 500, promised: 4096, sent: CUT_SOAP.to_vec() }).await;
    let (error, elapsed) = send_to(&server).await;
    assert_eq!(error.kind(), ErrorKind::ServiceUnavailable, "{error}");
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn a_ten_megabyte_header_line_after_the_message_was_handed_over_is_delivery_unknown() {
    let server = hostile(HostileReply::HugeHeaderLine { status: 200, bytes: 10 << 20 }).await;
    let (error, elapsed) = send_to(&server).await;
    assert_never_retried(&error);
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn a_ten_megabyte_200_body_is_delivery_unknown_after_the_first_megabytes() {
    let server = hostile(HostileReply::HugeBody { status: 200, bytes: 10 << 20 }).await;
    let (error, elapsed) = send_to(&server).await;
    assert_never_retried(&error);
    assert!(error.detail().contains("larger than"), "{error}");
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn an_endless_chunked_200_body_is_delivery_unknown() {
    let server = hostile(HostileReply::EndlessChunked { status: 200 }).await;
    let (error, elapsed) = send_to(&server).await;
    assert_never_retried(&error);
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn an_endless_chunked_503_body_is_classified_by_its_status() {
    let server = hostile(HostileReply::EndlessChunked { status: 503 }).await;
    let (error, elapsed) = send_to(&server).await;
    assert_eq!(error.kind(), ErrorKind::ServiceUnavailable, "{error}");
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn a_reply_trickled_one_byte_per_second_runs_into_the_deadline_as_delivery_unknown() {
    let server = hostile(HostileReply::trickle(
        200,
        &["Content-Type: text/xml; charset=utf-8"],
        CUT_SOAP,
        Duration::from_secs(1),
    ))
    .await;
    let (error, elapsed) = send_to(&server).await;
    assert_never_retried(&error);
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn a_200_with_invalid_utf8_is_delivery_unknown() {
    let mut body = CUT_SOAP.to_vec();
    body.extend_from_slice(
        b"\xff\xfe\xc3\x28 ResponseClass=\"Success\"\xed\xa0\x80</m:CreateItemResponse></s:Body></s:Envelope>",
    );
    let server = hostile(HostileReply::reply(200, &["Content-Type: text/xml; charset=utf-8"], &body)).await;
    let (error, elapsed) = send_to(&server).await;
    assert_never_retried(&error);
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn a_500_with_invalid_utf8_is_classified_without_a_panic() {
    let server =
        hostile(HostileReply::reply(500, &["Content-Type: text/xml; charset=utf-8"], b"\xff\xfe<\xc3\x28>")).await;
    let (error, _) = send_to(&server).await;
    assert!(matches!(error.kind(), ErrorKind::ServiceUnavailable | ErrorKind::Protocol), "{error}");
    let _ = (error.report(), error.remediation(), error.user_message());
}

#[tokio::test]
async fn an_absurd_retry_after_is_bounded() {
    let server = hostile(HostileReply::reply(
        503,
        &["Retry-After: 99999999999", "Content-Type: text/plain"],
        b"Service Unavailable",
    ))
    .await;
    let (error, elapsed) = send_to(&server).await;
    assert!(matches!(error.kind(), ErrorKind::ServiceUnavailable | ErrorKind::RateLimited), "{error}");
    if let Retry::Temporary { after: Some(delay) } = error.retry() {
        assert!(delay <= mailroom_http::MAX_BACKOFF, "{delay:?}");
    }
    let policy = RetryPolicy::default();
    if let Some(delay) = policy.delay_before_retry(1, &error) {
        assert!(delay <= mailroom_http::MAX_BACKOFF, "{delay:?}");
    }
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn a_token_endpoint_that_trickles_past_its_deadline_is_a_timeout() {
    let login = hostile(HostileReply::trickle(
        200,
        &["Content-Type: application/json"],
        br#"{"token_type":"Bearer","expires_in":3599,"access_token":"sentinel-access-token"}"#,
        Duration::from_secs(1),
    ))
    .await;
    let ews = hostile(HostileReply::Silent).await;
    let mut config = oauth_config(&format!("{}{EWS_PATH}", ews.uri()));
    config.timeout = STEP;
    let transport = EwsTransport::builder(sender(), &config)
        .token_endpoint(format!("{}/company.onmicrosoft.com/oauth2/v2.0/token", login.uri()).parse().unwrap())
        .send_timeout(STEP)
        .build()
        .unwrap();
    let (error, elapsed) = send_expecting_error(&transport, &message("hostile")).await;
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
    assert_eq!(ews.requests(), 0, "no message without a token");
}

#[tokio::test]
async fn the_probe_ends_within_its_deadline_against_a_trickling_server() {
    let server = hostile(HostileReply::trickle(200, &[], CUT_SOAP, Duration::from_secs(1))).await;
    let started = Instant::now();
    let report = tokio::time::timeout(WALL, transport(&server.uri()).probe()).await.unwrap();
    let error = report.error.expect("the probe fails");
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(started.elapsed() < HANG_BOUND, "{:?}", started.elapsed());
}
