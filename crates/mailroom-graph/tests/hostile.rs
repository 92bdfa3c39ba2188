//! The Graph driver against hostile HTTP servers on loopback (the testkit's `HostileHttpServer` as Graph, its mocked identity platform for tokens): replies cut mid-body, a 10 MB header line and body, an endless chunked body, a reply trickled a byte per second, invalid UTF-8, `Retry-After: 99999999999`, and a token endpoint that trickles past its deadline. Each ends in a classified error within its deadline; a 2xx that may mean "accepted" is `delivery_unknown`.

use std::time::{Duration, Instant};

use mailroom_core::config::{CompanyEmail, ServiceConfig};
use mailroom_core::{ErrorKind, MessageDraft, Retry, RetryPolicy, SendError, Transport};
use mailroom_graph::GraphTransport;
use mailroom_testkit::{
    HANG_BOUND, HostileHttpServer, HostileReply, MicrosoftTenant, MockMicrosoft365, assert_never_retried,
    send_expecting_error,
};

/// The deadline of every step here (connect, token, sendMail reply).
const STEP: Duration = Duration::from_millis(700);
/// No probe may take longer than this, whatever the server does.
const WALL: Duration = Duration::from_secs(15);

const CUT_JSON: &[u8] = br#"{"error":{"code":"ErrorSendAsDenied","message":"The user acc"#;

/// An application-auth transport whose tokens come from `authority` and whose mail goes to `api_base`.
fn transport(authority: &str, api_base: &str) -> GraphTransport {
    let tenant = MicrosoftTenant::company();
    let text = format!(
        "service = \"email_services\"\nemail_address = \"{}\"\n[email_services]\nprovider = \"microsoft\"\ntenant = \"{}\"\nclient_id = \"{}\"\nclient_secret_env = \"MS_SECRET\"\nauth = \"application\"\nauthority = \"{authority}\"\napi_base = \"{api_base}\"\n",
        tenant.mailbox, tenant.tenant, tenant.client_id,
    );
    let secret = tenant.client_secret.clone();
    let config = CompanyEmail::from_toml(&text, &move |_| secret.clone()).unwrap_or_else(|e| panic!("{e}")).config;
    let ServiceConfig::Graph(mut graph) = config.service else { panic!("not graph") };
    graph.timeout = STEP;
    GraphTransport::new(config.sender, &graph).unwrap().with_send_timeout(STEP)
}

fn message() -> mailroom_core::OutgoingMessage {
    MessageDraft::new("Company ERP <erp@company.com>".parse().unwrap())
        .to("customer@example.com".parse().unwrap())
        .bcc("audit@company.com".parse().unwrap())
        .subject("Invoice 1042 is overdue")
        .text("Please pay.")
        .build()
        .unwrap()
}

/// Sends one message to a Graph at `api`; returns the error and how long it took.
async fn send_to(api: &HostileHttpServer) -> (SendError, Duration) {
    let login = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    let transport = transport(&login.uri(), &api.uri());
    send_expecting_error(&transport, &message()).await
}

async fn hostile(reply: HostileReply) -> HostileHttpServer {
    HostileHttpServer::start(reply).await.unwrap()
}

#[tokio::test]
async fn a_202_cut_mid_body_is_delivery_unknown() {
    let api = hostile(HostileReply::CutBody { status: 202, promised: 4096, sent: b"{\"id\":".to_vec() }).await;
    let (error, elapsed) = send_to(&api).await;
    assert_never_retried(&error);
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
    assert_eq!(api.requests(), 1, "a message that may have been accepted is not sent again");
}

#[tokio::test]
async fn a_403_cut_mid_body_is_classified_by_its_status() {
    let api = hostile(HostileReply::CutBody { status: 403, promised: 4096, sent: CUT_JSON.to_vec() }).await;
    let (error, elapsed) = send_to(&api).await;
    assert!(matches!(error.kind(), ErrorKind::PermissionDenied | ErrorKind::SenderNotAllowed), "{error}");
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn a_ten_megabyte_header_line_after_the_message_was_handed_over_is_delivery_unknown() {
    let api = hostile(HostileReply::HugeHeaderLine { status: 202, bytes: 10 << 20 }).await;
    let (error, elapsed) = send_to(&api).await;
    assert_never_retried(&error);
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn a_ten_megabyte_202_body_is_delivery_unknown() {
    let api = hostile(HostileReply::HugeBody { status: 202, bytes: 10 << 20 }).await;
    let (error, elapsed) = send_to(&api).await;
    assert_never_retried(&error);
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn an_endless_chunked_202_body_is_delivery_unknown() {
    let api = hostile(HostileReply::EndlessChunked { status: 202 }).await;
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
    let api = hostile(HostileReply::trickle(202, &[], b"", Duration::from_secs(1))).await;
    let (error, elapsed) = send_to(&api).await;
    assert_never_retried(&error);
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn a_400_with_invalid_utf8_is_classified_without_a_panic() {
    let api = hostile(HostileReply::reply(
        400,
        &["Content-Type: application/json"],
        b"{\"error\":{\"code\":\"ErrorInvalidMimeContent\xff\",\"message\":\"\xfe\xc3\x28\xed\xa0\x80\"}}",
    ))
    .await;
    let (error, elapsed) = send_to(&api).await;
    assert!(!matches!(error.kind(), ErrorKind::DeliveryUnknown), "{error}");
    let _ = (error.report(), error.remediation(), error.user_message());
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test]
async fn an_absurd_retry_after_is_bounded() {
    let api = hostile(HostileReply::reply(
        429,
        &["Retry-After: 99999999999", "Content-Type: application/json"],
        br#"{"error":{"code":"ApplicationThrottled","message":"Application is over its MailboxConcurrency limit."}}"#,
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
        br#"{"token_type":"Bearer","expires_in":3599,"access_token":"sentinel-access-token"}"#,
        Duration::from_secs(1),
    ))
    .await;
    let api = hostile(HostileReply::Silent).await;
    let transport = transport(&login.uri(), &api.uri());
    let (error, elapsed) = send_expecting_error(&transport, &message()).await;
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
    assert_eq!(api.requests(), 0, "no message without a token");
}

#[tokio::test]
async fn the_probe_ends_within_its_deadline_against_a_trickling_server() {
    let login = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    let api = hostile(HostileReply::trickle(200, &[], b"{}", Duration::from_secs(1))).await;
    let started = Instant::now();
    let report = tokio::time::timeout(WALL, transport(&login.uri(), &api.uri()).probe()).await.unwrap();
    let error = report.error.expect("the probe fails");
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(started.elapsed() < HANG_BOUND, "{:?}", started.elapsed());
}
