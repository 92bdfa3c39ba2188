//! `auth = "oauth"` against a wiremock Azure AD token endpoint and a wiremock Exchange: the client-credentials form, Bearer plus impersonation of the sender, one cached token, one refresh on 401, AADSTS errors naming the field, and XML escaping of the impersonated address.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use mailroom_core::{ErrorKind, MessageDraft, Transport};
use mailroom_ews::EwsTransport;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN_PATH: &str = "/company.onmicrosoft.com/oauth2/v2.0/token";

/// Issues `sentinel-access-token-N`, counting calls.
struct Issuer(Arc<AtomicUsize>);

impl Respond for Issuer {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": format!("sentinel-access-token-{n}"),
        }))
    }
}

struct Setup {
    ews: MockServer,
    login: MockServer,
    issued: Arc<AtomicUsize>,
}

impl Setup {
    async fn new() -> Setup {
        let login = MockServer::start().await;
        let issued = Arc::new(AtomicUsize::new(0));
        Mock::given(method("POST")).and(path(TOKEN_PATH)).respond_with(Issuer(issued.clone())).mount(&login).await;
        Setup { ews: MockServer::start().await, login, issued }
    }

    fn transport(&self, sender: mailroom_core::Mailbox) -> EwsTransport {
        EwsTransport::builder(sender, &oauth_config(&format!("{}{EWS_PATH}", self.ews.uri())))
            .token_endpoint(format!("{}{TOKEN_PATH}", self.login.uri()).parse().unwrap())
            .build()
            .unwrap()
    }

    async fn ews_requests(&self) -> Vec<Request> {
        self.ews.received_requests().await.unwrap()
    }
}

fn bearer(request: &Request) -> String {
    request.headers.get("authorization").unwrap().to_str().unwrap().to_owned()
}

#[tokio::test]
async fn client_credentials_then_bearer_with_impersonation_and_one_cached_token() {
    let setup = Setup::new().await;
    Mock::given(method("POST")).respond_with(Exchange { rejected: None }).mount(&setup.ews).await;
    let transport = setup.transport(sender());
    transport.send(&message("one")).await.unwrap();
    transport.send(&message("two")).await.unwrap();
    assert_eq!(setup.issued.load(Ordering::SeqCst), 1, "the token is cached");

    let token_requests = setup.login.received_requests().await.unwrap();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&token_requests[0].body).into_owned().collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(field("grant_type"), Some("client_credentials"));
    assert_eq!(field("client_id"), Some("11111111-2222-3333-4444-555555555555"));
    assert_eq!(field("client_secret"), Some(CLIENT_SECRET));
    assert_eq!(field("scope"), Some("https://outlook.office365.com/.default"));
    assert_eq!(
        token_requests[0].headers.get("content-type").unwrap().to_str().unwrap(),
        "application/x-www-form-urlencoded"
    );

    for request in setup.ews_requests().await {
        assert_eq!(bearer(&request), "Bearer sentinel-access-token-1");
        assert_eq!(request.headers.get("x-anchormailbox").unwrap().to_str().unwrap(), "erp@company.com");
        assert_eq!(decode(&request.body).impersonated.as_deref(), Some("erp@company.com"));
    }
}

#[tokio::test]
async fn a_rejected_token_is_refreshed_once() {
    let setup = Setup::new().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).append_header("www-authenticate", "Bearer error=\"invalid_token\""))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&setup.ews)
        .await;
    Mock::given(method("POST")).respond_with(Exchange { rejected: None }).with_priority(2).mount(&setup.ews).await;
    setup.transport(sender()).send(&message("refresh")).await.unwrap();
    let requests = setup.ews_requests().await;
    assert_eq!(requests.len(), 2);
    assert_eq!(bearer(&requests[1]), "Bearer sentinel-access-token-2");
    assert_eq!(setup.issued.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_token_rejected_twice_is_auth_failed_without_a_loop() {
    let setup = Setup::new().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).append_header("www-authenticate", "Bearer error=\"invalid_token\""))
        .mount(&setup.ews)
        .await;
    let error = setup.transport(sender()).send(&message("rejected")).await.unwrap_err();
    assert_eq!((error.kind(), error.field()), (ErrorKind::AuthFailed, Some("exchange.tenant")), "{error}");
    assert_eq!(setup.ews_requests().await.len(), 2);
    let transcript = error.transcript().unwrap().to_string();
    assert!(transcript.contains("Authorization: Bearer [redacted]"), "{transcript}");
    assert!(!transcript.contains("sentinel-access-token"), "{transcript}");
}

#[tokio::test]
async fn a_refused_client_secret_names_the_field_and_never_shows_the_secret() {
    let login = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("content-type", "application/json; charset=utf-8")
                .set_body_string(fixture("token_invalid_client.json")),
        )
        .mount(&login)
        .await;
    let ews = MockServer::start().await;
    let transport = EwsTransport::builder(sender(), &oauth_config(&format!("{}{EWS_PATH}", ews.uri())))
        .token_endpoint(format!("{}{TOKEN_PATH}", login.uri()).parse().unwrap())
        .build()
        .unwrap();
    let error = transport.send(&message("bad secret")).await.unwrap_err();
    assert_eq!((error.kind(), error.field()), (ErrorKind::AuthFailed, Some("exchange.client_secret")), "{error}");
    assert_eq!(error.server_reply().unwrap().enhanced.as_deref(), Some("invalid_client"));
    assert!(error.server_reply().unwrap().text.starts_with("AADSTS7000215"));
    assert!(ews.received_requests().await.unwrap().is_empty(), "no EWS request without a token");
    let report = serde_json::to_string(&error.report()).unwrap();
    assert!(report.contains("client_secret=[redacted]"), "{report}");
    for text in [report, format!("{error:?}"), format!("{transport:?}")] {
        assert!(!text.contains(CLIENT_SECRET), "{text}");
    }
    let probe = transport.probe().await;
    let token_step = probe.steps.iter().find(|s| s.name == "token").expect("a token step");
    assert_eq!(token_step.outcome, mailroom_core::StepOutcome::Failed);
}

#[tokio::test]
async fn the_impersonated_address_is_escaped_and_non_ascii_survives() {
    let setup = Setup::new().await;
    Mock::given(method("POST")).respond_with(Exchange { rejected: None }).mount(&setup.ews).await;
    let tricky: mailroom_core::Mailbox = "O'Brien & Co <o'brien&co@company.com>".parse().unwrap();
    let transport = setup.transport(tricky.clone());
    let message = MessageDraft::new(tricky)
        .to("Jörg Müller <joerg@example.com>".parse().unwrap())
        .subject("Rechnung <42> & \"Mahnung\" — ☃")
        .text("Grüße </t:MimeContent> ]]>")
        .build()
        .unwrap();
    transport.send(&message).await.unwrap();
    let request = &setup.ews_requests().await[0];
    let raw = String::from_utf8(request.body.clone()).unwrap();
    assert!(raw.contains("o&apos;brien&amp;co@company.com") || raw.contains("o'brien&amp;co@company.com"), "{raw}");
    let decoded = decode(&request.body);
    assert_eq!(decoded.impersonated.as_deref(), Some("o'brien&co@company.com"));
    assert_eq!(decoded.mime.as_deref(), Some(message.bytes()));
}

#[tokio::test]
async fn an_http_token_endpoint_off_loopback_is_refused() {
    let error = EwsTransport::builder(sender(), &oauth_config("https://outlook.office365.com/EWS/Exchange.asmx"))
        .token_endpoint("http://login.example.com/token".parse().unwrap())
        .build()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidConfig);
    let mut missing = oauth_config("https://outlook.office365.com/EWS/Exchange.asmx");
    missing.client_secret = None;
    let error = EwsTransport::new(sender(), &missing).unwrap_err();
    assert_eq!((error.kind(), error.field()), (ErrorKind::InvalidConfig, Some("exchange.client_secret")));
}

/// Answers a token request with an OAuth error whose description quotes the request.
struct EchoingTokenEndpoint;

impl Respond for EchoingTokenEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let headers: Vec<String> = request
            .headers
            .iter()
            .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap_or_default()))
            .collect();
        ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": "invalid_request",
            "error_description": format!("AADSTS900144: cannot read {} {}", headers.join("; "), String::from_utf8_lossy(&request.body)),
        }))
    }
}

fn assert_no_secret(error: &mailroom_core::SendError, secrets: &[&str]) {
    let rendered = [
        format!("{error:?}"),
        error.to_string(),
        error.user_message(),
        error.remediation().join("\n"),
        error.transcript().map(|t| t.to_string()).unwrap_or_default(),
        serde_json::to_string(&error.report()).unwrap(),
    ];
    for text in rendered {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
}

#[tokio::test]
async fn echoing_token_and_ews_endpoints_never_get_secrets_into_errors() {
    // The token endpoint quotes the form (client secret) in a JSON error, then as an HTML page.
    let login = MockServer::start().await;
    Mock::given(method("POST")).respond_with(EchoingTokenEndpoint).mount(&login).await;
    let html_login = raw_http(Answer::Echo { status: 400, soap: false }).await;
    for endpoint in [format!("{}{TOKEN_PATH}", login.uri()), format!("http://{html_login}{TOKEN_PATH}")] {
        let transport =
            EwsTransport::builder(sender(), &oauth_config("https://outlook.office365.com/EWS/Exchange.asmx"))
                .token_endpoint(endpoint.parse().unwrap())
                .build()
                .unwrap();
        let error = transport.send(&message("echo")).await.unwrap_err();
        assert!(
            error.transcript().unwrap().to_string().contains("client_secret=[redacted]"),
            "{}",
            error.transcript().unwrap()
        );
        assert_no_secret(&error, &[CLIENT_SECRET]);
    }

    // Exchange quotes the Bearer token back.
    let setup = Setup::new().await;
    for soap in [false, true] {
        let ews = raw_http(Answer::Echo { status: if soap { 500 } else { 400 }, soap }).await;
        let transport = EwsTransport::builder(sender(), &oauth_config(&format!("http://{ews}{EWS_PATH}")))
            .token_endpoint(format!("{}{TOKEN_PATH}", setup.login.uri()).parse().unwrap())
            .build()
            .unwrap();
        let error = transport.send(&message("echo")).await.unwrap_err();
        assert!(
            error.transcript().unwrap().to_string().contains("x-anchormailbox: erp@company.com"),
            "{}",
            error.transcript().unwrap()
        );
        assert_no_secret(&error, &["sentinel-access-token", CLIENT_SECRET]);
        let probe = transport.probe().await;
        assert_no_secret(probe.error.as_ref().unwrap(), &["sentinel-access-token", CLIENT_SECRET]);
    }
}

/// Issue 10 #3: `expires_in` is the server's number; a huge one must not panic
/// (`Instant + Duration` overflow) but be cut to a sane lifetime.
#[tokio::test]
async fn a_huge_expires_in_does_not_panic() {
    let login = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "expires_in": u64::MAX, "access_token": "sentinel-access-token-huge",
        })))
        .mount(&login)
        .await;
    let ews = MockServer::start().await;
    Mock::given(method("POST")).respond_with(Exchange { rejected: None }).mount(&ews).await;
    let transport = EwsTransport::builder(sender(), &oauth_config(&format!("{}{EWS_PATH}", ews.uri())))
        .token_endpoint(format!("{}{TOKEN_PATH}", login.uri()).parse().unwrap())
        .build()
        .unwrap();
    let sent = tokio::spawn(async move { transport.send(&message("huge lifetime")).await }).await;
    assert!(sent.expect("the send task must not panic").is_ok());
}

/// Issue 10 #6: a token endpoint that cannot be reached gets OAuth/HTTPS advice naming the
/// identity platform, not SMTP advice ("check the port: 587").
#[tokio::test]
async fn an_unreachable_token_endpoint_gets_oauth_advice_not_smtp_advice() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let transport = EwsTransport::builder(sender(), &oauth_config("https://outlook.office365.com/EWS/Exchange.asmx"))
        .token_endpoint(format!("http://{address}{TOKEN_PATH}").parse().unwrap())
        .build()
        .unwrap();
    let error = transport.send(&message("no token")).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConnectFailed, "{error}");
    let advice = error.remediation().join("\n");
    assert!(!advice.contains("587") && !advice.contains("STARTTLS") && !advice.contains("SMTP"), "{advice}");
    assert!(advice.contains("token endpoint") || advice.contains("login.microsoftonline.com"), "{advice}");
    assert!(error.field().is_some_and(|f| f.starts_with("exchange.")), "{:?}", error.field());
}
