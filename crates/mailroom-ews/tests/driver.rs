//! The EWS driver against loopback servers: core's conformance suite on a wiremock Exchange, the request's shape, every captured reply classified, no redirect followed, deadlines, a hang-up after the request, and no secret anywhere.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use common::*;
use mailroom_core::config::EwsAuth;
use mailroom_core::conformance::{ConformanceHarness, ReceivedMessage, run_suite};
use mailroom_core::{ErrorKind, Mailbox, MessageDraft, Retry, SendError, Transport};
use mailroom_ews::EwsTransport;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn server_answering(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path(EWS_PATH)).respond_with(template).mount(&server).await;
    server
}

fn xml(status: u16, fixture_name: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", "text/xml; charset=utf-8")
        .set_body_string(fixture(fixture_name))
}

fn transport_for(server: &MockServer) -> EwsTransport {
    EwsTransport::new(sender(), &config(&format!("{}{EWS_PATH}", server.uri()))).unwrap()
}

async fn send_error(template: ResponseTemplate) -> SendError {
    let server = server_answering(template).await;
    transport_for(&server).send(&message("classify")).await.unwrap_err()
}

struct Harness {
    server: MockServer,
    transport: Arc<EwsTransport>,
}

#[async_trait]
impl ConformanceHarness for Harness {
    fn transport(&self) -> Arc<dyn Transport> {
        self.transport.clone()
    }
    fn sender(&self) -> Mailbox {
        sender()
    }
    async fn received(&self) -> Vec<ReceivedMessage> {
        let requests = self.server.received_requests().await.unwrap_or_default();
        requests
            .iter()
            .map(|request| decode(&request.body))
            .filter(|decoded| decoded.operation == "CreateItem")
            .map(|decoded| ReceivedMessage {
                envelope_from: None,
                recipients: delivered_to(&decoded),
                bytes: decoded.mime.clone().unwrap_or_default(),
            })
            .collect()
    }
    fn rejected_recipient(&self) -> Option<mailroom_core::Address> {
        Some("nobody@example.com".parse().unwrap())
    }
}

#[tokio::test]
async fn the_core_conformance_suite_passes_against_a_wiremock_exchange() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(EWS_PATH))
        .respond_with(Exchange { rejected: Some("nobody@example.com".into()) })
        .mount(&server)
        .await;
    let transport = Arc::new(transport_for(&server));
    let harness = Harness { server, transport };
    let passed = run_suite(&harness).await.unwrap();
    assert_eq!(passed.len(), 6, "{passed:?}");
}

#[tokio::test]
async fn the_request_is_a_soap_create_item_carrying_the_exact_message_bytes() {
    let server = server_answering(xml(200, "create_item_success.xml")).await;
    let message = MessageDraft::new(sender())
        .to("Ada <ada@example.com>".parse().unwrap())
        .bcc("hidden@example.com".parse().unwrap())
        .subject("Rechnung <Nr. 42> & Mahnung – Grüße ☃")
        .text("Zeile 1\n.\nZeile 3 <b>&amp;</b>")
        .build()
        .unwrap();
    let receipt = transport_for(&server).send(&message).await.unwrap();
    assert_eq!(receipt.message_id, message.message_id());
    assert_eq!(receipt.server_reply.as_ref().unwrap().enhanced.as_deref(), Some("NoError"));

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    let header = |name: &str| request.headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(header("content-type").as_deref(), Some("text/xml; charset=utf-8"));
    assert_eq!(
        header("soapaction").as_deref(),
        Some("\"http://schemas.microsoft.com/exchange/services/2006/messages/CreateItem\"")
    );
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("erp@company.com:{PASSWORD}"));
    assert_eq!(header("authorization"), Some(format!("Basic {expected}")));

    let decoded = decode(&request.body);
    assert_eq!(decoded.envelope_namespace.as_deref(), Some("http://schemas.xmlsoap.org/soap/envelope/"));
    assert_eq!(decoded.server_version.as_deref(), Some("Exchange2010_SP2"));
    assert_eq!(decoded.operation, "CreateItem");
    assert_eq!(decoded.disposition.as_deref(), Some("SendOnly"));
    assert_eq!(decoded.impersonated, None, "Basic auth acts as the signed-in account");
    assert_eq!(decoded.mime.as_deref(), Some(message.bytes()), "MimeContent must be the message, byte for byte");
    assert_eq!(decoded.bcc, ["hidden@example.com"]);
    let order: Vec<&str> = decoded
        .elements
        .iter()
        .map(String::as_str)
        .filter(|name| {
            ["Header", "Body", "CreateItem", "Items", "Message", "MimeContent", "BccRecipients"].contains(name)
        })
        .collect();
    assert_eq!(order, ["Header", "Body", "CreateItem", "Items", "Message", "MimeContent", "BccRecipients"]);
}

#[tokio::test]
async fn save_copy_asks_for_send_and_save_copy() {
    let server = server_answering(xml(200, "create_item_success.xml")).await;
    let transport = EwsTransport::builder(sender(), &config(&format!("{}{EWS_PATH}", server.uri())))
        .save_copy(true)
        .build()
        .unwrap();
    transport.send(&message("copy")).await.unwrap();
    let decoded = decode(&server.received_requests().await.unwrap()[0].body);
    assert_eq!(decoded.disposition.as_deref(), Some("SendAndSaveCopy"));
    assert!(decoded.elements.iter().any(|e| e == "SavedItemFolderId"));
}

#[tokio::test]
async fn captured_response_codes_map_to_their_kinds() {
    let cases: &[(u16, &str, ErrorKind, Option<&str>, &str)] = &[
        (
            200,
            "create_item_send_as_denied.xml",
            ErrorKind::SenderNotAllowed,
            Some("email_address"),
            "ErrorSendAsDenied",
        ),
        (200, "create_item_invalid_recipients.xml", ErrorKind::RecipientRejected, None, "ErrorInvalidRecipients"),
        (200, "create_item_message_size_exceeded.xml", ErrorKind::MessageTooLarge, None, "ErrorMessageSizeExceeded"),
        (200, "create_item_access_denied.xml", ErrorKind::PermissionDenied, None, "ErrorAccessDenied"),
        (500, "fault_schema_validation.xml", ErrorKind::Protocol, None, "ErrorSchemaValidation"),
    ];
    for (status, name, kind, field, code) in cases {
        let error = send_error(xml(*status, name)).await;
        assert_eq!((error.kind(), error.field()), (*kind, *field), "{name}: {error}");
        let reply = error.server_reply().expect("the server's reply is kept");
        assert_eq!((reply.code, reply.enhanced.as_deref()), (Some(*status), Some(*code)), "{name}");
        assert!(!reply.text.is_empty(), "{name}: the MessageText is kept");
        assert!(error.transcript().is_some_and(|t| !t.is_empty()), "{name}: a transcript is attached");
    }
    let send_as = send_error(xml(200, "create_item_send_as_denied.xml")).await;
    assert!(send_as.server_reply().unwrap().text.contains("does not have the right to send mail on behalf"));
    let schema = send_error(xml(500, "fault_schema_validation.xml")).await;
    assert!(schema.server_reply().unwrap().text.contains("invalid child element 'MimeContent'"));
    assert!(schema.remediation()[0].contains("request line 2, position 630"), "{:?}", schema.remediation());
}

#[tokio::test]
async fn server_busy_carries_its_back_off_in_both_forms() {
    for (status, name, millis) in [(200, "create_item_server_busy.xml", 5000), (500, "fault_server_busy.xml", 1200)] {
        let error = send_error(xml(status, name)).await;
        assert_eq!(error.kind(), ErrorKind::RateLimited, "{name}");
        assert_eq!(error.retry(), Retry::Temporary { after: Some(Duration::from_millis(millis)) }, "{name}");
        assert_eq!(error.server_reply().unwrap().enhanced.as_deref(), Some("ErrorServerBusy"));
        assert_eq!(error.report().retry_after_ms, Some(millis));
    }
}

#[tokio::test]
async fn http_level_failures_are_classified() {
    let too_large = send_error(ResponseTemplate::new(413).set_body_string("Request Entity Too Large")).await;
    assert_eq!(too_large.kind(), ErrorKind::MessageTooLarge);
    assert_eq!(too_large.server_reply().unwrap().code, Some(413));

    let unavailable = send_error(ResponseTemplate::new(503).insert_header("retry-after", "7")).await;
    assert_eq!(unavailable.kind(), ErrorKind::ServiceUnavailable);
    assert_eq!(unavailable.retry(), Retry::Temporary { after: Some(Duration::from_secs(7)) });

    // A server error after the whole CreateItem was sent may come after Exchange took the
    // message: never resent automatically (429 and 503 are refusals and are).
    for status in [500, 502, 504] {
        let error = send_error(ResponseTemplate::new(status).set_body_string("<html>Bad Gateway</html>")).await;
        assert_eq!(error.kind(), ErrorKind::ServiceUnavailable, "{status}");
        assert!(!error.retry().is_temporary(), "{status}: {error:?}");
        assert!(mailroom_core::RetryPolicy::default().delay_before_retry(1, &error).is_none(), "{status}");
        assert!(error.remediation()[0].contains("may have been sent"), "{status}: {:?}", error.remediation());
    }
    for (status, code) in
        [(500, "ErrorInternalServerError"), (500, "ErrorTimeoutExpired"), (500, "ErrorProxyRequestProcessingFailed")]
    {
        let body = fixture("fault_server_busy.xml").replace("ErrorServerBusy", code);
        let error = send_error(xml(status, "fault_server_busy.xml").set_body_string(body)).await;
        assert_eq!(error.kind(), ErrorKind::ServiceUnavailable, "{code}");
        assert!(!error.retry().is_temporary(), "{code}: {error:?}");
    }
    let throttled = send_error(ResponseTemplate::new(429)).await;
    assert!(throttled.retry().is_temporary());

    let garbage_500 =
        send_error(ResponseTemplate::new(500).set_body_string("<html><body>Runtime Error</body></html>")).await;
    assert_eq!(garbage_500.kind(), ErrorKind::ServiceUnavailable);
    assert!(garbage_500.server_reply().unwrap().text.contains("Runtime Error"));

    let garbage_200 = send_error(ResponseTemplate::new(200).set_body_string("this is not XML at all")).await;
    assert_eq!((garbage_200.kind(), garbage_200.field()), (ErrorKind::Protocol, Some("exchange.uri")));

    let html_200 = send_error(ResponseTemplate::new(200).set_body_string("<html><body>OWA</body></html>")).await;
    assert_eq!(html_200.kind(), ErrorKind::Protocol);
    assert!(html_200.detail().contains("not a SOAP envelope"), "{html_200}");

    let success = fixture("create_item_success.xml");
    let truncated = send_error(ResponseTemplate::new(200).set_body_string(&success[..success.len() / 2])).await;
    // Exchange answered 200 and its reply broke off: the message may have been sent (issue 10 #10).
    assert_eq!(truncated.kind(), ErrorKind::DeliveryUnknown);
    assert!(truncated.detail().contains("truncated"), "{truncated}");
    assert!(!truncated.retry().is_temporary(), "an unreadable reply to a send is never retried");

    let not_found = send_error(ResponseTemplate::new(404)).await;
    assert_eq!((not_found.kind(), not_found.field()), (ErrorKind::Protocol, Some("exchange.uri")));

    let blocked = send_error(ResponseTemplate::new(403)).await;
    assert_eq!(blocked.kind(), ErrorKind::AuthDisabled);
}

#[tokio::test]
async fn every_captured_401_challenge_says_why() {
    let challenges: toml::Table = toml::from_str(&fixture("challenges.toml")).unwrap();
    let expect = [
        ("on_premises_windows_only", ErrorKind::AuthDisabled, "exchange.auth"),
        ("on_premises_with_basic", ErrorKind::AuthFailed, "exchange.password"),
        ("exchange_online_basic", ErrorKind::AuthDisabled, "exchange.auth"),
        ("exchange_online_bearer", ErrorKind::AuthDisabled, "exchange.auth"),
    ];
    assert_eq!(challenges.len(), expect.len());
    for (name, kind, field) in expect {
        let case = challenges[name].as_table().unwrap();
        let mut template = ResponseTemplate::new(401);
        for value in case["www_authenticate"].as_array().unwrap() {
            template = template.append_header("www-authenticate", value.as_str().unwrap());
        }
        if let Some(diagnostics) = case.get("ms_diagnostics_public") {
            template = template.insert_header("ms-diagnostics-public", diagnostics.as_str().unwrap());
        }
        let error = send_error(template).await;
        assert_eq!((error.kind(), error.field()), (kind, Some(field)), "{name}: {error}");
        assert_eq!(error.documented_error(), Some(mailroom_core::DocumentedError::Authentication));
        if kind == ErrorKind::AuthDisabled && name.starts_with("exchange_online") {
            assert!(error.remediation()[0].contains("auth = \"oauth\""), "{name}: {:?}", error.remediation());
        }
    }
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(EWS_PATH))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", "/ews/genericerrorpage.htm?aspxerrorpath=/EWS/Exchange.asmx")
                .insert_header("x-caserrorcode", "ServerUnavailable"),
        )
        .mount(&server)
        .await;
    Mock::given(path("/ews/genericerrorpage.htm"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let error = transport_for(&server).send(&message("redirect")).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ServiceUnavailable);
    assert!(!error.retry().is_temporary(), "Exchange's error page may follow a submitted CreateItem");
    assert!(error.detail().contains("X-CasErrorCode: ServerUnavailable"), "{error}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1, "the redirect must not be followed");

    let elsewhere =
        send_error(ResponseTemplate::new(301).insert_header("location", "https://mail2.company.com/EWS/Exchange.asmx"))
            .await;
    assert_eq!((elsewhere.kind(), elsewhere.field()), (ErrorKind::Protocol, Some("exchange.uri")));
    assert!(elsewhere.remediation()[0].contains("https://mail2.company.com/EWS/Exchange.asmx"));
}

#[tokio::test]
async fn a_slow_get_folder_is_a_timeout_of_the_probe() {
    let server = server_answering(xml(200, "get_folder_success.xml").set_delay(Duration::from_secs(5))).await;
    let mut slow = config(&format!("{}{EWS_PATH}", server.uri()));
    slow.timeout = Duration::from_millis(600);
    let started = std::time::Instant::now();
    let report = EwsTransport::new(sender(), &slow).unwrap().probe().await;
    assert!(started.elapsed() < Duration::from_secs(3), "the deadline holds");
    let error = report.error.expect("the probe fails");
    assert_eq!((error.kind(), error.field()), (ErrorKind::Timeout, Some("exchange.timeout_secs")), "{error}");
}

/// Repro A: the server reads the whole CreateItem and never answers. Exchange may have
/// accepted the message (it scans content before answering): the outcome is unknown, and
/// never retried.
#[tokio::test]
async fn a_create_item_read_in_full_and_never_answered_is_delivery_unknown() {
    let addr = raw_http(Answer::Silent).await;
    let mut quick = config(&format!("http://{addr}{EWS_PATH}"));
    quick.timeout = Duration::from_secs(1);
    let transport = EwsTransport::builder(sender(), &quick).send_timeout(Duration::from_millis(700)).build().unwrap();
    let started = std::time::Instant::now();
    let error = transport.send(&message("unanswered")).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "the reply deadline holds: {:?}", started.elapsed());
    assert_eq!(error.kind(), ErrorKind::DeliveryUnknown, "{error}");
    assert!(!error.retry().is_temporary());
    assert!(mailroom_core::RetryPolicy::default().delay_before_retry(1, &error).is_none());
    assert!(error.remediation()[0].contains("Sent Items"), "{:?}", error.remediation());
}

/// The default reply deadline of a CreateItem is max(6 × timeout_secs, 60 s): a server
/// slower than timeout_secs but within it is a success.
#[tokio::test]
async fn a_create_item_may_take_longer_than_timeout_secs() {
    let server = server_answering(xml(200, "create_item_success.xml").set_delay(Duration::from_millis(1500))).await;
    let mut quick = config(&format!("{}{EWS_PATH}", server.uri()));
    quick.timeout = Duration::from_secs(1);
    EwsTransport::new(sender(), &quick).unwrap().send(&message("scanned")).await.unwrap();
}

/// Repro B: an https:// endpoint that accepts TCP and stays silent. The connect deadline
/// (TCP and TLS handshake) fires, nothing was sent, and the advice is about connecting.
#[tokio::test]
async fn a_tls_handshake_that_never_completes_is_a_connect_stage_timeout() {
    let addr = silent_listener().await;
    let mut quick = config(&format!("https://127.0.0.1:{}{EWS_PATH}", addr.port()));
    quick.timeout = Duration::from_secs(1);
    // Default reply deadline (60 s): only the connect deadline can end this within 5 s.
    let transport = EwsTransport::new(sender(), &quick).unwrap();
    let started = std::time::Instant::now();
    let error = transport.send(&message("handshake")).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "the connect deadline fires: {:?}", started.elapsed());
    assert_eq!((error.kind(), error.field()), (ErrorKind::Timeout, Some("exchange.uri")), "{error}");
    let advice = error.remediation().join(" ");
    assert!(advice.contains("nothing was sent") && advice.contains("TLS handshake"), "{advice}");
    assert!(!advice.contains("after the message was sent") && !advice.contains("may still deliver"), "{advice}");
    assert!(!error.detail().contains("after the request was sent"), "{error}");
}

#[tokio::test]
async fn a_hang_up_after_the_request_is_delivery_unknown() {
    let addr = raw_http(Answer::Hangup).await;
    let transport = EwsTransport::new(sender(), &config(&format!("http://{addr}{EWS_PATH}"))).unwrap();
    let error = transport.send(&message("lost")).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::DeliveryUnknown, "{error}");
    assert!(!error.retry().is_temporary());
    assert!(mailroom_core::RetryPolicy::default().delay_before_retry(1, &error).is_none());
}

#[tokio::test]
async fn nothing_listening_is_connect_failed_on_the_uri() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let transport = EwsTransport::new(sender(), &config(&format!("http://{addr}{EWS_PATH}"))).unwrap();
    let error = transport.send(&message("refused")).await.unwrap_err();
    assert_eq!((error.kind(), error.field()), (ErrorKind::ConnectFailed, Some("exchange.uri")), "{error}");
    assert_eq!(error.documented_error(), Some(mailroom_core::DocumentedError::ServerOrPort));
}

#[tokio::test]
async fn ntlm_and_missing_secrets_are_refused_when_building() {
    let mut ntlm = config("https://mail.company.com/EWS/Exchange.asmx");
    ntlm.auth = EwsAuth::Ntlm;
    let error = EwsTransport::new(sender(), &ntlm).unwrap_err();
    assert_eq!((error.kind(), error.field()), (ErrorKind::InvalidConfig, Some("exchange.auth")));
    assert!(error.detail().contains("auth = \"basic\"") && error.detail().contains("auth = \"oauth\""));

    let mut no_password = config("https://mail.company.com/EWS/Exchange.asmx");
    no_password.password = None;
    let error = EwsTransport::new(sender(), &no_password).unwrap_err();
    assert_eq!((error.kind(), error.field()), (ErrorKind::InvalidConfig, Some("exchange.password")));

    let mut bad_ca = config("https://mail.company.com/EWS/Exchange.asmx");
    bad_ca.ca_file = Some("/nonexistent/ca.pem".into());
    let error = EwsTransport::new(sender(), &bad_ca).unwrap_err();
    assert_eq!((error.kind(), error.field()), (ErrorKind::InvalidConfig, Some("exchange.ca_file")));
}

#[tokio::test]
async fn no_secret_reaches_debug_errors_transcripts_or_logs() {
    let logs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = {
        let logs = logs.clone();
        move || LogCapture(logs.clone())
    };
    let subscriber = tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_writer(writer).finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = server_answering(
        ResponseTemplate::new(401).append_header("www-authenticate", "Basic realm=\"mail.company.com\""),
    )
    .await;
    let transport = transport_for(&server);
    let error = transport.send(&message("secret")).await.unwrap_err();
    let probe = transport.probe().await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("erp@company.com:{PASSWORD}"));
    let rendered = [
        format!("{transport:?}"),
        format!("{error:?} {error}"),
        error.transcript().unwrap().to_string(),
        serde_json::to_string(&error.report()).unwrap(),
        format!("{probe:?}"),
        String::from_utf8_lossy(&logs.lock().unwrap()).into_owned(),
    ];
    for text in rendered {
        assert!(!text.contains(PASSWORD) && !text.contains(&basic), "a secret leaked: {text}");
    }
    assert!(error.transcript().unwrap().to_string().contains("C: Authorization: Basic [redacted]"));
}

/// A server (or a proxy in front of it) whose error page quotes the request, headers and
/// body: nothing of the credentials may be kept, in any rendering.
#[tokio::test]
async fn an_echoing_server_never_gets_the_credentials_into_errors_or_transcripts() {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("erp@company.com:{PASSWORD}"));
    for soap in [false, true] {
        let addr = raw_http(Answer::Echo { status: if soap { 500 } else { 400 }, soap }).await;
        let transport = EwsTransport::new(sender(), &config(&format!("http://{addr}{EWS_PATH}"))).unwrap();
        let error = transport.send(&message("echo")).await.unwrap_err();
        let probe = transport.probe().await;
        let transcript = error.transcript().unwrap().to_string();
        assert!(
            transcript.contains("[redacted]") && transcript.contains("SOAPAction"),
            "the echo is kept, scrubbed: {transcript}"
        );
        let rendered = [
            format!("{error:?}"),
            error.to_string(),
            error.user_message(),
            error.remediation().join("\n"),
            transcript,
            serde_json::to_string(&error.report()).unwrap(),
            format!("{probe:?}"),
            probe.error.as_ref().map(|e| e.transcript().map(|t| t.to_string()).unwrap_or_default()).unwrap_or_default(),
        ];
        for text in rendered {
            assert!(!text.contains(PASSWORD) && !text.contains(&basic), "soap={soap}: a secret leaked: {text}");
        }
    }
}

/// The send-as-denied reply with another response code and text (the shape every
/// CreateItem error shares).
fn response_with_code(code: &str, text: &str) -> ResponseTemplate {
    let body = fixture("create_item_send_as_denied.xml").replace("ErrorSendAsDenied", code).replace(
        "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account.",
        text,
    );
    xml(200, "create_item_send_as_denied.xml").set_body_string(body)
}

#[tokio::test]
async fn exchange_codes_that_used_to_be_protocol_errors_name_their_cause() {
    let alias = send_error(xml(500, "fault_non_primary_smtp_address.xml")).await;
    assert_eq!((alias.kind(), alias.field()), (ErrorKind::SenderNotAllowed, Some("email_address")), "{alias}");
    let advice = alias.remediation().join(" ");
    assert!(advice.contains("email_address = \"erp.mailer@company.com\""), "{advice}");

    let quota = send_error(response_with_code(
        "ErrorSubmissionQuotaExceeded",
        "The message can't be submitted because the sender's submission quota was exceeded.",
    ))
    .await;
    assert_eq!(quota.kind(), ErrorKind::RateLimited, "{quota}");
    assert!(quota.retry().is_temporary(), "the submission was refused: nothing went out");

    let full = send_error(response_with_code("ErrorQuotaExceeded", "Mailbox has exceeded maximum mailbox size.")).await;
    assert_eq!((full.kind(), full.field()), (ErrorKind::ServiceUnavailable, Some("email_address")), "{full}");
    assert!(!full.retry().is_temporary(), "a full mailbox stays full");
    assert!(full.remediation().join(" ").contains("mailbox is full"), "{:?}", full.remediation());

    let disabled = send_error(response_with_code("ErrorAccountDisabled", "The account has been disabled.")).await;
    assert_eq!((disabled.kind(), disabled.field()), (ErrorKind::AuthDisabled, Some("exchange.username")), "{disabled}");
}

#[tokio::test]
async fn server_busy_wrapped_in_an_internal_error_is_rate_limited_with_a_bounded_back_off() {
    let busy = send_error(xml(200, "create_item_internal_error_server_busy.xml")).await;
    assert_eq!(busy.kind(), ErrorKind::RateLimited, "{busy}");
    assert_eq!(busy.retry(), Retry::Temporary { after: Some(Duration::from_millis(2500)) });
    assert!(busy.detail().contains("ErrorServerBusy"), "{busy}");

    let absurd = fixture("create_item_internal_error_server_busy.xml").replace(">2500<", ">99999999999999<");
    let busy = send_error(xml(200, "create_item_internal_error_server_busy.xml").set_body_string(absurd)).await;
    let Retry::Temporary { after: Some(after) } = busy.retry() else { panic!("{busy:?}") };
    assert!(after <= Duration::from_secs(3600), "{after:?}");

    // Any other inner code keeps the outer meaning: an internal error after a CreateItem may
    // have sent the message.
    let other =
        fixture("create_item_internal_error_server_busy.xml").replace(">ErrorServerBusy<", ">ErrorInvalidLicense<");
    let internal = send_error(xml(200, "create_item_internal_error_server_busy.xml").set_body_string(other)).await;
    assert_eq!(internal.kind(), ErrorKind::ServiceUnavailable);
    assert!(!internal.retry().is_temporary());
}

#[tokio::test]
async fn a_schema_version_the_mailbox_refuses_is_retried_once_with_the_servers_version() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(EWS_PATH))
        .respond_with(xml(200, "create_item_schema_version_for_mailbox.xml"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(EWS_PATH))
        .respond_with(xml(200, "create_item_success.xml"))
        .mount(&server)
        .await;
    let transport = transport_for(&server);
    transport.send(&message("first")).await.unwrap();
    transport.send(&message("second")).await.unwrap();
    let versions: Vec<Option<String>> =
        server.received_requests().await.unwrap().iter().map(|request| decode(&request.body).server_version).collect();
    let versions: Vec<&str> = versions.iter().map(|v| v.as_deref().unwrap_or("-")).collect();
    assert_eq!(
        versions,
        ["Exchange2010_SP2", "Exchange2010_SP1", "Exchange2010_SP1"],
        "the second send keeps the version learnt"
    );

    let stubborn = server_answering(xml(200, "create_item_schema_version_for_mailbox.xml")).await;
    let error = transport_for(&stubborn).send(&message("refused")).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Protocol, "{error}");
    assert_eq!(stubborn.received_requests().await.unwrap().len(), 2, "one retry, not a loop");
}
