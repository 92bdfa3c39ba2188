//! Sending through the Gmail driver against wiremock token and API servers: request shape, token refresh, and the classification of every captured Google reply.

mod common;

use std::time::Duration;

use common::*;
use mailroom_core::{ErrorKind, MessageDraft, Retry, SendError, Transport};
use mailroom_gmail::{GmailTransport, MAX_UPLOAD_BYTES};
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn servers() -> MockServer {
    MockServer::start().await
}

fn transport(server: &MockServer) -> GmailTransport {
    GmailTransport::builder(sender(), &config(&server.uri(), &server.uri()))
        .upload_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

async fn send_error(server: &MockServer, status: u16, fixture_name: &str) -> SendError {
    mount_token_ok(server).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(status).set_body_json(json(fixture_name)))
        .mount(server)
        .await;
    transport(server).send(&message()).await.unwrap_err()
}

#[tokio::test]
async fn send_uploads_the_bytes_unchanged_as_message_rfc822() {
    let server = servers().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json("token_refreshed.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .and(query_param("uploadType", "media"))
        .and(header("authorization", format!("Bearer {ACCESS_TOKEN}").as_str()))
        .and(header("content-type", "message/rfc822"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json("send_success.json")))
        .expect(2)
        .mount(&server)
        .await;
    let transport = transport(&server);
    let message = message();
    let receipt = transport.send(&message).await.unwrap();
    assert_eq!(receipt.service_id.as_deref(), Some("18e1c0ffee0fixture"));
    assert_eq!(receipt.message_id, message.message_id());
    transport.send(&message).await.unwrap(); // the cached token is reused: one token request

    let requests = server.received_requests().await.unwrap();
    let token_request = requests.iter().find(|r| r.url.path() == "/token").unwrap();
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(&token_request.body).into_owned().collect();
    assert_eq!(form["grant_type"], "refresh_token");
    assert_eq!(form["client_id"], CLIENT_ID);
    assert_eq!(form["client_secret"], CLIENT_SECRET);
    assert_eq!(form["refresh_token"], REFRESH_TOKEN);
    let upload = requests.iter().find(|r| r.url.path() == SEND_PATH).unwrap();
    assert_eq!(upload.body, message.bytes(), "the upload is byte-identical to message.bytes()");
    assert_eq!(upload.url.query(), Some("uploadType=media"));
}

#[tokio::test]
async fn bcc_recipients_travel_in_a_bcc_field_before_the_unchanged_bytes() {
    let server = servers().await;
    mount_token_ok(&server).await;
    Mock::given(method("POST")).and(path(SEND_PATH)).respond_with(FakeGmail::default()).mount(&server).await;
    let message = MessageDraft::new(sender())
        .to("to@example.com".parse().unwrap())
        .bcc("hidden@example.com".parse().unwrap())
        .subject("bcc")
        .text("x")
        .build()
        .unwrap();
    transport(&server).send(&message).await.unwrap();
    let upload = server.received_requests().await.unwrap().into_iter().find(|r| r.url.path() == SEND_PATH).unwrap();
    assert!(upload.body.starts_with(b"Bcc: hidden@example.com\r\n"));
    assert!(upload.body.ends_with(message.bytes()));
    let mut recipients = recipients_of(&upload.body);
    recipients.sort();
    assert_eq!(recipients, ["hidden@example.com", "to@example.com"]);
    assert_eq!(without_bcc(&upload.body), message.bytes(), "Gmail delivers the bytes as built");
}

#[tokio::test]
async fn a_rejected_access_token_is_refreshed_once_and_the_upload_retried_once() {
    let server = servers().await;
    mount_token_ok(&server).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(401).set_body_json(json("api_401_auth_error.json")))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json("send_success.json")))
        .mount(&server)
        .await;
    transport(&server).send(&message()).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.iter().filter(|r| r.url.path() == "/token").count(), 2);
    assert_eq!(requests.iter().filter(|r| r.url.path() == SEND_PATH).count(), 2);
}

#[tokio::test]
async fn a_second_401_is_auth_failed_after_exactly_one_refresh() {
    let server = servers().await;
    let error = send_error(&server, 401, "api_401_auth_error.json").await;
    assert_eq!(error.kind(), ErrorKind::AuthFailed);
    assert_eq!(error.field(), Some("email_services.refresh_token"));
    let reply = error.server_reply().unwrap();
    assert_eq!(reply.code, Some(401));
    assert_eq!(reply.enhanced.as_deref(), Some("authError"));
    assert!(reply.text.starts_with("Request had invalid authentication credentials."));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.iter().filter(|r| r.url.path() == "/token").count(), 2);
    assert_eq!(requests.iter().filter(|r| r.url.path() == SEND_PATH).count(), 2);
    assert!(error.transcript().is_some());
}

#[tokio::test]
async fn captured_api_errors_map_to_their_kinds_and_fields() {
    // (status, fixture, kind, field, reason in the reply)
    let cases: &[(u16, &str, ErrorKind, Option<&str>, &str)] = &[
        (
            403,
            "api_403_insufficient_permissions.json",
            ErrorKind::PermissionDenied,
            Some("email_services.refresh_token"),
            "insufficientPermissions",
        ),
        (
            403,
            "api_403_scope_insufficient.json",
            ErrorKind::PermissionDenied,
            Some("email_services.refresh_token"),
            "insufficientPermissions",
        ),
        (
            403,
            "api_403_access_not_configured.json",
            ErrorKind::PermissionDenied,
            Some("email_services.client_id"),
            "accessNotConfigured",
        ),
        (
            400,
            "api_400_failed_precondition.json",
            ErrorKind::PermissionDenied,
            Some("email_services.refresh_token"),
            "failedPrecondition",
        ),
        (429, "api_429_user_rate_limit.json", ErrorKind::RateLimited, None, "rateLimitExceeded"),
        (429, "api_429_user_rate_limit_exceeded.json", ErrorKind::RateLimited, None, "userRateLimitExceeded"),
        (500, "api_500_backend_error.json", ErrorKind::ServiceUnavailable, None, "backendError"),
        (400, "api_400_recipient_required.json", ErrorKind::RecipientRejected, None, "invalidArgument"),
    ];
    for (status, name, kind, field, reason) in cases {
        let server = servers().await;
        let error = send_error(&server, *status, name).await;
        assert_eq!(error.kind(), *kind, "{name}: {error}");
        assert_eq!(error.field(), *field, "{name}");
        let reply = error.server_reply().unwrap_or_else(|| panic!("{name} has no reply"));
        assert_eq!(reply.code, Some(*status), "{name}");
        assert_eq!(reply.enhanced.as_deref(), Some(*reason), "{name}");
        assert!(!reply.text.is_empty(), "{name}");
        assert!(!error.remediation().is_empty());
    }
}

#[tokio::test]
async fn access_not_configured_points_at_the_enable_link_and_scope_errors_at_reconsent() {
    let server = servers().await;
    let error = send_error(&server, 403, "api_403_access_not_configured.json").await;
    assert!(
        error.remediation()[0].contains(
            "https://console.developers.google.com/apis/api/gmail.googleapis.com/overview?project=123456789012"
        ),
        "{:?}",
        error.remediation()
    );
    let server = servers().await;
    let error = send_error(&server, 403, "api_403_scope_insufficient.json").await;
    assert!(error.remediation()[0].contains("mailroom connect google"));
    assert!(error.remediation()[0].contains("gmail.send"));
}

#[tokio::test]
async fn rate_limits_carry_the_retry_time_from_the_message_and_the_header() {
    let retry_at = time::OffsetDateTime::now_utc() + time::Duration::minutes(15);
    let stamp = retry_at.format(&time::format_description::well_known::Rfc3339).unwrap();
    let body = fixture("api_429_user_rate_limit.json").replace("2026-03-07T18:03:15.961Z", &stamp);
    let server = servers().await;
    mount_token_ok(&server).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(
            ResponseTemplate::new(429)
                .set_body_json(serde_json::from_str::<serde_json::Value>(&body).unwrap())
                .insert_header("retry-after", "30"),
        )
        .mount(&server)
        .await;
    let error = transport(&server).send(&message()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited);
    let Retry::Temporary { after: Some(after) } = error.retry() else { panic!("{:?}", error.retry()) };
    assert!(after > Duration::from_secs(14 * 60) && after <= Duration::from_secs(15 * 60), "{after:?}");
    assert!(error.remediation()[0].contains(&stamp));
    // The default retry policy does not wait 15 minutes: the caller reschedules.
    assert_eq!(mailroom_core::RetryPolicy::default().delay_before_retry(1, &error), None);

    let server = servers().await;
    mount_token_ok(&server).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "7").set_body_string("slow down"))
        .mount(&server)
        .await;
    let error = transport(&server).send(&message()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited);
    assert_eq!(error.retry(), Retry::Temporary { after: Some(Duration::from_secs(7)) });
}

#[tokio::test]
async fn status_only_replies_are_classified_by_status() {
    for (status, kind) in [
        (413, ErrorKind::MessageTooLarge),
        (503, ErrorKind::ServiceUnavailable),
        (502, ErrorKind::ServiceUnavailable),
        (404, ErrorKind::Protocol),
    ] {
        let server = servers().await;
        mount_token_ok(&server).await;
        Mock::given(method("POST"))
            .and(path(SEND_PATH))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_string("<html><body>Request Entity Too Large or Bad Gateway</body></html>"),
            )
            .mount(&server)
            .await;
        let error = transport(&server).send(&message()).await.unwrap_err();
        assert_eq!(error.kind(), kind, "HTTP {status}: {error}");
        if kind == ErrorKind::Protocol {
            assert_eq!(error.field(), Some("email_services.api_base"));
        }
    }
}

#[tokio::test]
/// Issue 10 #10: a 2xx may mean "accepted", so an unreadable receipt is delivery_unknown
/// (never retried, held for a person), not protocol (which the outbox would let someone retry).
async fn garbage_success_bodies_are_delivery_unknown_and_say_the_mail_probably_went() {
    for body in ["not json", "{\"threadId\":\"x\"}", "[]", "{\"id\":42}", ""] {
        let server = servers().await;
        mount_token_ok(&server).await;
        Mock::given(method("POST"))
            .and(path(SEND_PATH))
            .respond_with(ResponseTemplate::new(200).set_body_string(body))
            .mount(&server)
            .await;
        let error = transport(&server).send(&message()).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::DeliveryUnknown, "{body:?}");
        assert!(error.detail().contains("probably sent"), "{}", error.detail());
        assert_eq!(mailroom_core::RetryPolicy::default().delay_before_retry(1, &error), None);
    }
}

#[tokio::test]
async fn a_truncated_reply_and_a_lost_connection_after_upload_are_delivery_unknown() {
    let token = servers().await;
    mount_token_ok(&token).await;
    let truncated = raw_server(
        Some(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"id\":\"18e"),
        Duration::ZERO,
    )
    .await;
    let transport = GmailTransport::new(sender(), &config(&token.uri(), &truncated)).unwrap();
    let error = transport.send(&message()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::DeliveryUnknown, "a 200 cut short may mean accepted (issue 10 #10): {error}");

    let silent = raw_server(None, Duration::ZERO).await;
    let transport = GmailTransport::new(sender(), &config(&token.uri(), &silent)).unwrap();
    let error = transport.send(&message()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::DeliveryUnknown, "{error}");
    assert_eq!(mailroom_core::RetryPolicy::default().delay_before_retry(1, &error), None);
}

#[tokio::test]
async fn a_slow_api_is_delivery_unknown_and_a_slow_token_endpoint_is_timeout() {
    let server = servers().await;
    mount_token_ok(&server).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json("send_success.json")).set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let transport = GmailTransport::builder(sender(), &config(&server.uri(), &server.uri()))
        .upload_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let error = transport.send(&message()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::DeliveryUnknown, "{error}");
    assert!(started.elapsed() < Duration::from_secs(3));

    let slow_token = servers().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json("token_refreshed.json")).set_delay(Duration::from_secs(5)),
        )
        .mount(&slow_token)
        .await;
    let mut config = config(&slow_token.uri(), &server.uri());
    config.timeout = Duration::from_millis(500);
    let error = GmailTransport::new(sender(), &config).unwrap().send(&message()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_eq!(error.field(), Some("email_services.token_uri"));
}

#[tokio::test]
async fn refused_connections_are_connect_failed_with_the_endpoint_field() {
    let server = servers().await;
    mount_token_ok(&server).await;
    let closed = closed_port().await;
    let error =
        GmailTransport::new(sender(), &config(&server.uri(), &closed)).unwrap().send(&message()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConnectFailed, "{error}");
    assert_eq!(error.field(), Some("email_services.api_base"));
    let error =
        GmailTransport::new(sender(), &config(&closed, &server.uri())).unwrap().send(&message()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConnectFailed, "{error}");
    assert_eq!(error.field(), Some("email_services.token_uri"));
}

#[tokio::test]
async fn messages_over_35_mb_are_refused_before_any_request() {
    let server = servers().await;
    let big = MessageDraft::new(sender())
        .to("ada@example.com".parse().unwrap())
        .subject("big")
        .text("see attachment")
        .attach(mailroom_core::Attachment::guess("big.bin", vec![7u8; MAX_UPLOAD_BYTES * 3 / 4 + 1024]))
        .build()
        .unwrap();
    let error = transport(&server).send(&big).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::MessageTooLarge);
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn captured_token_errors_map_to_their_kinds_and_fields() {
    let cases: &[(u16, &str, ErrorKind, &str)] = &[
        (400, "token_invalid_grant.json", ErrorKind::OauthReconnectRequired, "email_services.refresh_token"),
        (401, "token_invalid_client.json", ErrorKind::AuthFailed, "email_services.client_id"),
        (401, "token_invalid_client_secret.json", ErrorKind::AuthFailed, "email_services.client_secret"),
        (401, "token_unauthorized_client.json", ErrorKind::AuthFailed, "email_services.client_id"),
    ];
    for (status, name, kind, field) in cases {
        let server = servers().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(ResponseTemplate::new(*status).set_body_json(json(name)))
            .mount(&server)
            .await;
        let error = transport(&server).send(&message()).await.unwrap_err();
        assert_eq!(error.kind(), *kind, "{name}: {error}");
        assert_eq!(error.field(), Some(*field), "{name}");
        let reply = error.server_reply().unwrap();
        assert_eq!(reply.code, Some(*status));
        assert_eq!(Some(reply.enhanced.as_deref().unwrap()), json(name)["error"].as_str());
        if *kind == ErrorKind::OauthReconnectRequired {
            assert!(error.remediation()[0].contains("mailroom connect google"));
            assert!(error.remediation()[0].contains("Token has been expired or revoked."));
        }
        // Nothing reached the API.
        assert!(server.received_requests().await.unwrap().iter().all(|r| r.url.path() == "/token"));
    }
}

#[tokio::test]
async fn garbage_token_replies_are_protocol_errors_on_token_uri() {
    for (status, body) in
        [(200, "<html>captive portal</html>"), (200, "{\"token_type\":\"Bearer\"}"), (404, "Not Found")]
    {
        let server = servers().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(ResponseTemplate::new(status).set_body_string(body))
            .mount(&server)
            .await;
        let error = transport(&server).send(&message()).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Protocol, "{body}: {error}");
        assert_eq!(error.field(), Some("email_services.token_uri"));
    }
    let server = servers().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(503).set_body_string("<html>unavailable</html>"))
        .mount(&server)
        .await;
    let error = transport(&server).send(&message()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ServiceUnavailable);
}

#[tokio::test]
async fn concurrent_sends_share_one_token_refresh() {
    let server = servers().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json("token_refreshed.json"))
                .set_delay(Duration::from_millis(100)),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST")).and(path(SEND_PATH)).respond_with(FakeGmail::default()).mount(&server).await;
    let transport = std::sync::Arc::new(transport(&server));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let transport = transport.clone();
        tasks.spawn(async move { transport.send(&message()).await });
    }
    for result in tasks.join_all().await {
        result.unwrap();
    }
}

#[tokio::test]
async fn the_refresh_token_is_read_from_token_file_at_each_refresh() {
    let server = servers().await;
    mount_token_ok(&server).await;
    Mock::given(method("POST")).and(path(SEND_PATH)).respond_with(FakeGmail::default()).mount(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("google-token.json");
    let mut config = config(&server.uri(), &server.uri());
    config.refresh_token = None;
    config.token_file = Some(file.clone());
    let transport = GmailTransport::new(sender(), &config).unwrap();
    let error = transport.send(&message()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidConfig);
    assert_eq!(error.field(), Some("email_services.token_file"));
    assert!(error.remediation()[0].contains("mailroom connect google"));

    mailroom_gmail::save_refresh_token(&file, CLIENT_ID, &mailroom_core::Secret::new("1//from-the-file"), None)
        .unwrap();
    transport.send(&message()).await.unwrap();
    let token_request =
        server.received_requests().await.unwrap().into_iter().find(|r| r.url.path() == "/token").unwrap();
    assert!(String::from_utf8_lossy(&token_request.body).contains("refresh_token=1%2F%2Ffrom-the-file"));
}

/// Google may send a new refresh token with a refresh (the field as in its code-exchange
/// reply, `token_code_exchanged.json`): it replaces the old one in the token file, which
/// stays owner-only and keeps its other fields, and the next refresh sends it.
#[tokio::test]
async fn a_rotated_refresh_token_replaces_the_old_one_in_the_token_file() {
    let server = servers().await;
    let rotated_token = json("token_code_exchanged.json")["refresh_token"].as_str().unwrap().to_owned();
    let mut rotated = json("token_refreshed.json");
    rotated["refresh_token"] = rotated_token.clone().into();
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(rotated))
        .mount(&server)
        .await;
    Mock::given(method("POST")).and(path(SEND_PATH)).respond_with(FakeGmail::default()).mount(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("google-token.json");
    let scope = mailroom_gmail::GMAIL_SEND_SCOPE;
    mailroom_gmail::save_refresh_token(
        &file,
        CLIENT_ID,
        &mailroom_core::Secret::new("1//before-rotation"),
        Some(scope),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut config = config(&server.uri(), &server.uri());
    config.refresh_token = None;
    config.token_file = Some(file.clone());

    GmailTransport::new(sender(), &config).unwrap().send(&message()).await.unwrap();
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved["refresh_token"], rotated_token.as_str(), "{saved}");
    assert_eq!(saved["client_id"], CLIENT_ID);
    assert_eq!(saved["type"], "authorized_user");
    assert_eq!(saved["scope"], scope);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, ["google-token.json"], "no temporary file is left behind");

    // A new sender (a new run) refreshes with the rotated token.
    GmailTransport::new(sender(), &config).unwrap().send(&message()).await.unwrap();
    let refreshes: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/token")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(refreshes.len(), 2);
    assert!(refreshes[0].contains("refresh_token=1%2F%2Fbefore-rotation"), "{}", refreshes[0]);
    let sent_rotated = format!("refresh_token={}", rotated_token.replace('/', "%2F"));
    assert!(refreshes[1].contains(&sent_rotated), "{}", refreshes[1]);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = servers().await;
    mount_token_ok(&server).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(307).insert_header("location", "http://127.0.0.1:9/elsewhere"))
        .mount(&server)
        .await;
    let error = transport(&server).send(&message()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Protocol, "{error}");
    assert_eq!(server.received_requests().await.unwrap().iter().filter(|r| r.url.path() == SEND_PATH).count(), 1);
}

/// Sends like the facade's RetryLayer: tries again while core's policy says so (with no
/// real waiting), and returns the last outcome.
async fn send_with_retries(transport: &GmailTransport) -> Result<mailroom_core::SendReceipt, SendError> {
    let policy = mailroom_core::RetryPolicy { initial_delay: Duration::from_millis(1), ..Default::default() };
    let mut failed = 0;
    loop {
        match transport.send(&message()).await {
            Ok(receipt) => return Ok(receipt),
            Err(error) => {
                failed += 1;
                if policy.delay_before_retry(failed, &error).is_none() {
                    return Err(error);
                }
            }
        }
    }
}

fn uploads(requests: &[wiremock::Request]) -> usize {
    requests.iter().filter(|r| r.url.path() == SEND_PATH).count()
}

#[tokio::test]
async fn a_5xx_after_the_whole_upload_is_not_retried_and_says_to_check_the_sent_folder() {
    // (status, body): the captured backendError, and bare gateway errors.
    let cases: [(u16, Option<&str>); 3] = [(500, Some("api_500_backend_error.json")), (502, None), (504, None)];
    for (status, fixture_name) in cases {
        let server = servers().await;
        mount_token_ok(&server).await;
        let reply = match fixture_name {
            Some(name) => ResponseTemplate::new(status).set_body_json(json(name)),
            None => ResponseTemplate::new(status).set_body_string("<html>Bad Gateway</html>"),
        };
        Mock::given(method("POST")).and(path(SEND_PATH)).respond_with(reply).up_to_n_times(1).mount(&server).await;
        Mock::given(method("POST")).and(path(SEND_PATH)).respond_with(FakeGmail::default()).mount(&server).await;
        let error = send_with_retries(&transport(&server)).await.unwrap_err();
        assert_eq!(uploads(&server.received_requests().await.unwrap()), 1, "HTTP {status}: sent twice");
        assert_eq!(error.kind(), ErrorKind::ServiceUnavailable, "HTTP {status}: {error}");
        assert_eq!(error.retry(), Retry::Permanent, "HTTP {status}");
        assert!(!error.report().retryable);
        assert_eq!(error.server_reply().unwrap().code, Some(status));
        let first = &error.remediation()[0];
        assert!(first.contains("Sent folder") && first.contains("may"), "HTTP {status}: {first}");
    }
}

#[tokio::test]
async fn throttling_and_503_on_the_upload_and_5xx_at_the_token_endpoint_are_still_retried() {
    for status in [429, 503] {
        let server = servers().await;
        mount_token_ok(&server).await;
        Mock::given(method("POST"))
            .and(path(SEND_PATH))
            .respond_with(ResponseTemplate::new(status).set_body_string("busy"))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST")).and(path(SEND_PATH)).respond_with(FakeGmail::default()).mount(&server).await;
        send_with_retries(&transport(&server)).await.unwrap();
        assert_eq!(uploads(&server.received_requests().await.unwrap()), 2, "HTTP {status}");
    }
    // Nothing was sent when the token endpoint fails: a 500 there is retried.
    let server = servers().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(500).set_body_string("oops"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_token_ok(&server).await;
    Mock::given(method("POST")).and(path(SEND_PATH)).respond_with(FakeGmail::default()).mount(&server).await;
    send_with_retries(&transport(&server)).await.unwrap();
    assert_eq!(uploads(&server.received_requests().await.unwrap()), 1);
}
