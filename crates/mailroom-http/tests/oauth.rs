//! The OAuth2 flows on oauth2 5 over our client, against Microsoft- and Google-shaped endpoints on loopback (wiremock, replies in the shapes of ../../shared captures: Microsoft identity platform A.2–A.4, Google token replies).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use mailroom_core::{Secret, TokenCache, Transcript};
use mailroom_http::{ClientOptions, Endpoints, Failure, HttpClient, LoopbackConsent, OAuthClient, OAuthError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TENANT: &str = "company.onmicrosoft.com";
const CLIENT_ID: &str = "00000000-0000-0000-0000-000000000000";
const SECRET: &str = "sentinel~client~secret~7f3a";

fn microsoft(server: &MockServer) -> OAuthClient {
    let endpoints = Endpoints::microsoft(&server.uri().parse().unwrap(), TENANT);
    let http = HttpClient::for_endpoint(&endpoints.token, &ClientOptions::new("test")).unwrap();
    OAuthClient::new(http, endpoints, CLIENT_ID, Some(Secret::new(SECRET))).reply_timeout(Duration::from_secs(2))
}

fn token_path() -> String {
    format!("/{TENANT}/oauth2/v2.0/token")
}

#[tokio::test]
async fn client_credentials_against_the_microsoft_identity_platform() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(token_path()))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains("scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"))
        .and(body_string_contains("client_secret=sentinel"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!(
            {"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAi.sentinel-access"}
        )))
        .mount(&server)
        .await;
    let mut transcript = Transcript::new();
    let token = microsoft(&server)
        .client_credentials(&["https://graph.microsoft.com/.default"], &mut transcript)
        .await
        .unwrap();
    assert_eq!(token.access.expose(), "eyJ0eXAi.sentinel-access");
    assert_eq!(token.expires_in, Some(3599));
    let shown = transcript.to_string();
    assert!(shown.contains("client_secret=[redacted]"), "{shown}");
    assert!(!shown.contains("sentinel"), "{shown}");
}

#[tokio::test]
async fn an_expired_client_secret_reaches_the_caller_typed_with_its_aadsts_code_and_date() {
    let server = MockServer::start().await;
    let description = format!(
        "AADSTS7000222: The provided client secret keys for app '{CLIENT_ID}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds. Trace ID: 1 Correlation ID: 2 Timestamp: 2026-12-01 10:00:00Z"
    );
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!(
            {"error":"invalid_client","error_description":description,"error_codes":[7000222],"timestamp":"2026-12-01 10:00:00Z"}
        )))
        .mount(&server)
        .await;
    let error = microsoft(&server)
        .client_credentials(&["https://graph.microsoft.com/.default"], &mut Transcript::new())
        .await
        .unwrap_err();
    let refusal = error.refusal().unwrap_or_else(|| panic!("{error:?}"));
    assert_eq!(refusal.status, 401);
    assert!(refusal.is("invalid_client"));
    assert_eq!(refusal.aadsts, Some(7000222));
    assert_eq!(refusal.error_codes, [7000222]);
    assert!(refusal.description.as_deref().unwrap().contains("Timestamp: 2026-12-01"));
}

#[tokio::test]
async fn throttling_keeps_retry_after_and_non_json_bodies_keep_their_status() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("grant_type=client_credentials"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "2.5").set_body_json(serde_json::json!(
            {"error":"temporarily_unavailable","error_description":"AADSTS50196: The server terminated an operation because it encountered a client request loop.","error_codes":[50196]}
        )))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(ResponseTemplate::new(502).set_body_raw("<html><body>Bad gateway</body></html>", "text/html"))
        .mount(&server)
        .await;
    let client = microsoft(&server);
    let error = client.client_credentials(&["x/.default"], &mut Transcript::new()).await.unwrap_err();
    let refusal = error.refusal().unwrap();
    assert_eq!((refusal.status, refusal.retry_after), (429, Some(Duration::from_millis(2500))));
    let error = client
        .refresh(&Secret::new("sentinel-refresh"), &["offline_access"], &mut Transcript::new())
        .await
        .unwrap_err();
    let refusal = error.refusal().unwrap();
    assert_eq!(refusal.status, 502);
    assert_eq!(refusal.error, None);
    assert!(refusal.body_snippet.as_deref().unwrap().contains("Bad gateway"));
}

#[tokio::test]
async fn a_success_status_with_a_non_token_body_is_malformed_and_echoed_secrets_are_scrubbed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(format!("<html>captive portal saw {SECRET}</html>"), "text/html"),
        )
        .mount(&server)
        .await;
    let error = microsoft(&server).client_credentials(&["x/.default"], &mut Transcript::new()).await.unwrap_err();
    assert!(matches!(error, OAuthError::Malformed { status: 200, .. }), "{error:?}");
    assert!(!error.to_string().contains("sentinel"), "{error}");
}

#[tokio::test]
async fn a_token_reply_that_trickles_past_the_deadline_is_a_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buffer = vec![0u8; 8192];
        let _ = stream.read(&mut buffer).await;
        let _ =
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n{").await;
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if stream.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let endpoints = Endpoints::token_only(format!("http://{address}/token").parse().unwrap());
    let http = HttpClient::for_endpoint(&endpoints.token, &ClientOptions::new("test")).unwrap();
    let client =
        OAuthClient::new(http, endpoints, "id", Some(Secret::new(SECRET))).reply_timeout(Duration::from_millis(200));
    let error = client.client_credentials(&[], &mut Transcript::new()).await.unwrap_err();
    match error {
        OAuthError::Http(http) => assert_eq!(http.failure(), Failure::Timeout, "{http}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

/// `authorization_pending` twice, then the token.
struct PendingThenToken(AtomicUsize);

impl Respond for PendingThenToken {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        if self.0.fetch_add(1, Ordering::SeqCst) < 2 {
            return ResponseTemplate::new(400).set_body_json(serde_json::json!(
                {"error":"authorization_pending","error_description":"AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling.","error_codes":[70016]}
            ));
        }
        ResponseTemplate::new(200).set_body_json(serde_json::json!(
            {"token_type":"Bearer","scope":"https://graph.microsoft.com/Mail.Send","expires_in":3599,"access_token":"eyJ0.access","refresh_token":"sentinel-refresh","id_token":id_token("erp@company.com")}
        ))
    }
}

fn id_token(email: &str) -> String {
    let encode = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.sig",
        encode(serde_json::json!({"alg":"RS256"})),
        encode(serde_json::json!({"preferred_username": email, "email": email, "sub": "x"}))
    )
}

#[tokio::test]
async fn the_device_code_flow_polls_until_the_user_signed_in() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/devicecode")))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "user_code": "FJKL2QWER", "device_code": "sentinel-device-code", "verification_uri": "https://microsoft.com/devicelogin",
            "expires_in": 900, "interval": 0,
            "message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code FJKL2QWER to authenticate."
        })))
        .mount(&server)
        .await;
    let polls = Arc::new(PendingThenToken(AtomicUsize::new(0)));
    Mock::given(method("POST"))
        .and(path(token_path()))
        .and(body_string_contains("device_code=sentinel-device-code"))
        .respond_with(PollCounter(polls.clone()))
        .mount(&server)
        .await;
    let client = microsoft(&server);
    let mut transcript = Transcript::new();
    let device = client.start_device(&["Mail.Send", "offline_access", "openid"], &mut transcript).await.unwrap();
    assert_eq!(device.user_code, "FJKL2QWER");
    assert!(device.message.as_deref().unwrap().contains("FJKL2QWER"));
    let token = client.poll_device(&device, Duration::from_secs(10), &mut transcript).await.unwrap();
    assert_eq!(polls.0.load(Ordering::SeqCst), 3);
    assert_eq!(token.refresh.unwrap().expose(), "sentinel-refresh");
    assert_eq!(token.id.unwrap().account(), Some("erp@company.com"));
    assert!(!transcript.to_string().contains("sentinel"), "{transcript}");
}

struct PollCounter(Arc<PendingThenToken>);

impl Respond for PollCounter {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.respond(request)
    }
}

#[tokio::test]
async fn device_polling_stops_at_a_refusal_and_at_a_transport_failure_polling_cannot_cure() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/devicecode")))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "user_code": "A", "device_code": "d", "verification_uri": "https://microsoft.com/devicelogin", "expires_in": 99999999999u64, "interval": 1
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(token_path()))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!(
            {"error":"authorization_declined","error_description":"AADSTS70000: the user declined","error_codes":[70000]}
        )))
        .mount(&server)
        .await;
    let client = microsoft(&server);
    let device = client.start_device(&["Mail.Send"], &mut Transcript::new()).await.unwrap();
    assert!(device.expires_in <= Duration::from_secs(3600), "huge lifetimes are bounded");
    let error = client.poll_device(&device, Duration::from_secs(10), &mut Transcript::new()).await.unwrap_err();
    assert_eq!(error.refusal().map(|r| r.aadsts), Some(Some(70000)), "{error:?}");

    // The token endpoint goes away: three failed polls in a row end the flow.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let endpoints = Endpoints::microsoft(&gone.parse().unwrap(), TENANT);
    let http = HttpClient::for_endpoint(&endpoints.token, &ClientOptions::new("test")).unwrap();
    let client = OAuthClient::new(http, endpoints, CLIENT_ID, None);
    let started = std::time::Instant::now();
    let error = client.poll_device(&device, Duration::from_secs(600), &mut Transcript::new()).await.unwrap_err();
    assert!(matches!(&error, OAuthError::Http(e) if e.failure().not_sent()), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
}

#[tokio::test]
async fn refresh_tokens_feed_core_token_cache() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=1%2F%2Fsentinel"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!(
            {"access_token":"ya29.a0-fixture","expires_in":"99999999999999999999999","scope":"https://www.googleapis.com/auth/gmail.send","token_type":"Bearer"}
        )))
        .mount(&server)
        .await;
    let endpoints = Endpoints::token_only(format!("{}/token", server.uri()).parse().unwrap());
    let http = HttpClient::for_endpoint(&endpoints.token, &ClientOptions::new("test")).unwrap();
    let client = OAuthClient::new(http, endpoints, "1-a.apps.googleusercontent.com", Some(Secret::new(SECRET)));
    let source = mailroom_http::OAuthTokenSource::refresh_token(
        client,
        Vec::new(),
        Arc::new(|| Ok(Secret::new("1//sentinel"))),
        Arc::new(|error, _| mailroom_core::SendError::new(mailroom_core::ErrorKind::Protocol, error.to_string())),
    );
    let cache = TokenCache::new(source);
    assert_eq!(cache.token().await.unwrap().expose(), "ya29.a0-fixture");
}

/// The browser's part: follows the consent URL's redirect with the given query.
async fn browser_get(redirect_uri: &str, query: &str) -> String {
    let address = redirect_uri.trim_start_matches("http://").replace("localhost", "127.0.0.1");
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream.write_all(format!("GET /?{query} HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes()).await.unwrap();
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply).await;
    reply
}

#[tokio::test]
async fn the_loopback_consent_checks_state_exchanges_the_code_with_pkce_and_learns_the_account() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(token_path()))
        .and(body_string_contains("grant_type=authorization_code"))
        .and(body_string_contains("code=sentinel-code"))
        .and(body_string_contains("code_verifier="))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!(
            {"token_type":"Bearer","scope":"Mail.Send openid","expires_in":3599,"access_token":"a","refresh_token":"r","id_token":id_token("erp@company.com")}
        )))
        .mount(&server)
        .await;
    let consent = LoopbackConsent::start(
        microsoft(&server),
        &["Mail.Send", "offline_access", "openid"],
        &[("login_hint", "erp@company.com")],
        "localhost",
    )
    .await
    .unwrap();
    let url = consent.authorize_url().clone();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["login_hint"], "erp@company.com");
    assert!(url.path().ends_with("/oauth2/v2.0/authorize"));
    let redirect = consent.redirect_uri().to_owned();
    assert!(redirect.starts_with("http://localhost:"));
    let state = query["state"].clone();
    let finished = tokio::spawn(consent.finish(Duration::from_secs(10)));
    assert!(browser_get(&redirect, "state=forged&code=x").await.starts_with("HTTP/1.1 400"));
    assert!(browser_get(&redirect, &format!("state={state}&code=sentinel-code")).await.contains("connected"));
    let (token, transcript) = finished.await.unwrap().unwrap();
    assert_eq!(token.id.unwrap().email.as_deref(), Some("erp@company.com"));
    assert!(!transcript.to_string().contains("sentinel"), "{transcript}");
}

/// Issue 10: a consent that fails before any socket is opened must not be reported as
/// "cannot listen on 127.0.0.1" — each failure names its own cause.
#[tokio::test]
async fn a_consent_that_cannot_start_names_its_own_cause_not_the_listener() {
    let token: url::Url = "http://127.0.0.1:9/token".parse().unwrap();
    let http = HttpClient::for_endpoint(&token, &ClientOptions::new("test")).unwrap();
    let client = OAuthClient::new(http, Endpoints::token_only(token), CLIENT_ID, None);
    let error = LoopbackConsent::start(client, &["openid"], &[], "127.0.0.1").await.unwrap_err();
    assert!(matches!(error, mailroom_http::ConsentError::NoAuthorizationEndpoint), "{error:?}");
    let message = error.to_string();
    assert!(!message.contains("listen"), "{message}");
    assert!(message.contains("authorization endpoint"), "{message}");
}

/// The HTTP client's own build failure (here an unusable extra root) says it is the HTTPS
/// set-up that failed, which the connect flows pass on instead of blaming the listener.
#[test]
fn an_http_client_that_cannot_be_built_says_so() {
    let token: url::Url = "https://login.example/token".parse().unwrap();
    let garbage = rustls::pki_types::CertificateDer::from(vec![1u8, 2, 3]);
    let error = HttpClient::for_endpoint(&token, &ClientOptions::new("test").extra_roots([garbage])).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("HTTPS") && !message.contains("listen"), "{message}");
}
