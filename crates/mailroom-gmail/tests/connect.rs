//! The `mailroom connect google` loopback flow end to end: the test plays the browser (it GETs the redirect itself) against a wiremock token endpoint.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use common::*;
use mailroom_core::ErrorKind;
use mailroom_gmail::{ConnectError, ConsentFlow, GMAIL_SEND_SCOPE};
use sha2::Digest;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn query(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

/// Plays the browser coming back from Google: GET redirect_uri + `query`.
async fn browser_returns(redirect_uri: String, query: String) -> (u16, String) {
    let client = reqwest::Client::new();
    let response = client.get(format!("{redirect_uri}/?{query}")).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn token_endpoint(status: u16, fixture_name: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=authorization_code"))
        .respond_with(ResponseTemplate::new(status).set_body_json(json(fixture_name)))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn the_consent_url_asks_for_offline_send_access_with_pkce_and_state() {
    let server = MockServer::start().await;
    let config = config(&server.uri(), &server.uri());
    let flow = ConsentFlow::start(&config, Some("erp@company.com")).await.unwrap();
    let url = flow.authorize_url();
    assert!(url.as_str().starts_with(&format!("{}/o/oauth2/v2/auth?", server.uri())));
    let q = query(url);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["scope"], format!("openid email {GMAIL_SEND_SCOPE}"), "the account is learned too (issue 8)");
    assert_eq!(q["access_type"], "offline");
    assert_eq!(q["prompt"], "consent");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 43);
    assert_eq!(q["login_hint"], "erp@company.com");
    assert!(q["redirect_uri"].starts_with("http://127.0.0.1:"));
    assert_eq!(q["redirect_uri"], flow.redirect_uri());
    assert!(!url.as_str().contains(CLIENT_SECRET));
}

#[tokio::test]
async fn the_flow_exchanges_the_code_with_the_pkce_verifier_and_returns_the_refresh_token() {
    let server = token_endpoint(200, "token_code_exchanged.json").await;
    let config = config(&server.uri(), &server.uri());
    let flow = ConsentFlow::start(&config, None).await.unwrap();
    let q = query(flow.authorize_url());
    let redirect = flow.redirect_uri().to_owned();
    let waiting = tokio::spawn(flow.finish(Duration::from_secs(10)));
    // A stray request first (browsers ask for a favicon): answered 404, the wait goes on.
    let stray = reqwest::get(format!("{redirect}/favicon.ico")).await.unwrap();
    assert_eq!(stray.status().as_u16(), 404);
    let (status, page) = browser_returns(
        redirect.clone(),
        format!("state={}&code=4%2F0Afixture-code&scope={}", q["state"], GMAIL_SEND_SCOPE),
    )
    .await;
    assert_eq!(status, 200);
    assert!(page.contains("connected"), "{page}");
    let connected = waiting.await.unwrap().unwrap();
    assert_eq!(connected.refresh_token.expose(), "1//0g-fixture-refresh-token");
    assert_eq!(connected.scope.as_deref(), Some(GMAIL_SEND_SCOPE));

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let form: HashMap<String, String> = url::form_urlencoded::parse(&requests[0].body).into_owned().collect();
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code"], "4/0Afixture-code");
    assert_eq!(form["redirect_uri"], redirect);
    assert_eq!(form["client_id"], CLIENT_ID);
    assert_eq!(form["client_secret"], CLIENT_SECRET);
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(form["code_verifier"].as_bytes()));
    assert_eq!(challenge, q["code_challenge"], "the verifier matches the challenge sent to Google");
}

#[tokio::test]
async fn a_denied_consent_is_reported_as_such() {
    let server = MockServer::start().await;
    let flow = ConsentFlow::start(&config(&server.uri(), &server.uri()), None).await.unwrap();
    let state = query(flow.authorize_url())["state"].clone();
    let redirect = flow.redirect_uri().to_owned();
    let waiting = tokio::spawn(flow.finish(Duration::from_secs(10)));
    let (status, _) = browser_returns(redirect, format!("error=access_denied&state={state}")).await;
    assert_eq!(status, 200);
    let error = waiting.await.unwrap().unwrap_err();
    assert!(matches!(&error, ConnectError::Denied { error, .. } if error == "access_denied"), "{error}");
    assert_eq!(error.into_send_error().kind(), ErrorKind::PermissionDenied);
    assert!(server.received_requests().await.unwrap().is_empty(), "no code exchange after a denial");
}

#[tokio::test]
async fn stray_requests_are_answered_400_and_the_flow_waits_for_the_right_state() {
    let server = token_endpoint(200, "token_code_exchanged.json").await;
    let flow = ConsentFlow::start(&config(&server.uri(), &server.uri()), None).await.unwrap();
    let state = query(flow.authorize_url())["state"].clone();
    let redirect = flow.redirect_uri().to_owned();
    let waiting = tokio::spawn(flow.finish(Duration::from_secs(10)));
    for stray in [
        "state=forged&code=4%2Fstolen".to_owned(),
        "error=access_denied&state=forged".to_owned(),
        format!("state={state}"),
        String::new(),
    ] {
        let (status, page) = browser_returns(redirect.clone(), stray.clone()).await;
        assert_eq!(status, 400, "{stray:?}: {page}");
        assert!(!waiting.is_finished(), "{stray:?} ended the sign-in");
    }
    let favicon = reqwest::get(format!("{redirect}/favicon.ico")).await.unwrap();
    assert_eq!(favicon.status().as_u16(), 404);
    assert!(server.received_requests().await.unwrap().is_empty(), "no code exchange for a forged state");
    let (status, _) = browser_returns(redirect, format!("state={state}&code=4%2Fgood")).await;
    assert_eq!(status, 200);
    let connected = waiting.await.unwrap().unwrap();
    assert_eq!(connected.refresh_token.expose(), "1//0g-fixture-refresh-token");
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert!(String::from_utf8_lossy(&requests[0].body).contains("code=4%2Fgood"));
}

#[tokio::test]
async fn a_wrong_state_and_then_nothing_is_a_state_mismatch_with_rerun_advice() {
    let server = token_endpoint(200, "token_code_exchanged.json").await;
    let flow = ConsentFlow::start(&config(&server.uri(), &server.uri()), None).await.unwrap();
    let redirect = flow.redirect_uri().to_owned();
    let started = std::time::Instant::now();
    let waiting = tokio::spawn(flow.finish(Duration::from_millis(800)));
    let (status, _) = browser_returns(redirect, "state=forged&code=4%2Fstolen".into()).await;
    assert_eq!(status, 400);
    let error = waiting.await.unwrap().unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(700), "the flow waited for the deadline");
    assert!(matches!(error, ConnectError::StateMismatch), "{error}");
    let error = error.into_send_error();
    assert_eq!(error.field(), None);
    let first = &error.remediation()[0];
    assert!(first.contains("mailroom connect google"), "{first}");
    assert!(!first.to_ascii_lowercase().contains("mail server"), "{first}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_silent_client_cannot_block_the_flow() {
    let server = token_endpoint(200, "token_code_exchanged.json").await;
    // A connection that never sends a byte, then the real redirect.
    let flow = ConsentFlow::start(&config(&server.uri(), &server.uri()), None).await.unwrap();
    let state = query(flow.authorize_url())["state"].clone();
    let redirect = flow.redirect_uri().to_owned();
    let waiting = tokio::spawn(flow.finish(Duration::from_secs(20)));
    let address = redirect.trim_start_matches("http://").to_owned();
    let _silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let (status, _) = browser_returns(redirect, format!("state={state}&code=x")).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(5), "the redirect waited for the silent client");
    waiting.await.unwrap().unwrap();

    // A silent client alone does not stretch the deadline.
    let flow = ConsentFlow::start(&config(&server.uri(), &server.uri()), None).await.unwrap();
    let address = flow.redirect_uri().trim_start_matches("http://").to_owned();
    let started = std::time::Instant::now();
    let waiting = tokio::spawn(flow.finish(Duration::from_millis(500)));
    let _silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    let error = waiting.await.unwrap().unwrap_err();
    assert!(matches!(error, ConnectError::TimedOut(_)), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_grant_without_the_send_scope_is_permission_denied() {
    let server = token_endpoint(200, "token_code_exchanged_without_send_scope.json").await;
    let flow = ConsentFlow::start(&config(&server.uri(), &server.uri()), None).await.unwrap();
    let state = query(flow.authorize_url())["state"].clone();
    let redirect = flow.redirect_uri().to_owned();
    let waiting = tokio::spawn(flow.finish(Duration::from_secs(10)));
    let (_, page) = browser_returns(redirect, format!("state={state}&code=4%2Fx")).await;
    assert!(page.contains("failed"), "{page}");
    let error = waiting.await.unwrap().unwrap_err();
    assert!(!error.to_string().contains("fixture-refresh-token"), "{error}");
    let error = error.into_send_error();
    assert_eq!(error.kind(), ErrorKind::PermissionDenied, "{error}");
    assert_eq!(error.field(), Some("email_services.refresh_token"));
    let first = &error.remediation()[0];
    assert!(first.contains("gmail.send") || first.contains("Send email"), "{first}");
    assert!(first.contains("tick"), "{first}");
    assert!(!format!("{error:?} {error}").contains("1//0g-fixture-refresh-token"));
}

#[tokio::test]
async fn connect_errors_get_advice_that_fits_the_sign_in() {
    for error in [
        ConnectError::StateMismatch,
        ConnectError::TimedOut(Duration::from_secs(300)),
        ConnectError::Denied { error: "access_denied".into(), description: None },
        ConnectError::NoRefreshToken,
        ConnectError::Listen(std::io::Error::other("no ports")),
    ] {
        let shown = error.to_string();
        let error = error.into_send_error();
        let steps = error.remediation();
        assert!(steps.len() >= 2 || !steps[0].is_empty(), "{shown}");
        assert!(steps[0].contains("mailroom connect google") || steps[0].contains("127.0.0.1"), "{shown}: {steps:?}");
    }
}

#[tokio::test]
async fn no_redirect_in_time_is_a_timeout() {
    let server = MockServer::start().await;
    let flow = ConsentFlow::start(&config(&server.uri(), &server.uri()), None).await.unwrap();
    let started = std::time::Instant::now();
    let error = flow.finish(Duration::from_millis(300)).await.unwrap_err();
    assert!(matches!(error, ConnectError::TimedOut(_)), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(error.into_send_error().kind(), ErrorKind::Timeout);
}

#[tokio::test]
async fn token_endpoint_errors_during_the_exchange_are_classified() {
    for (status, name, kind, field) in [
        (
            400,
            "token_invalid_grant_reused_code.json",
            ErrorKind::OauthReconnectRequired,
            "email_services.refresh_token",
        ),
        (401, "token_invalid_client.json", ErrorKind::AuthFailed, "email_services.client_id"),
    ] {
        let server = token_endpoint(status, name).await;
        let flow = ConsentFlow::start(&config(&server.uri(), &server.uri()), None).await.unwrap();
        let state = query(flow.authorize_url())["state"].clone();
        let redirect = flow.redirect_uri().to_owned();
        let waiting = tokio::spawn(flow.finish(Duration::from_secs(10)));
        let (_, page) = browser_returns(redirect, format!("state={state}&code=4%2Fsentinel-auth-code-55")).await;
        assert!(page.contains("failed"), "{page}");
        assert!(!page.contains("sentinel-auth-code-55"));
        let error = waiting.await.unwrap().unwrap_err().into_send_error();
        assert_eq!(error.kind(), kind, "{name}");
        assert_eq!(error.field(), Some(field));
        let everything = format!("{error:?} {error} {}", serde_json::to_string(&error.report()).unwrap());
        for secret in ["sentinel-auth-code-55", CLIENT_SECRET] {
            assert!(!everything.contains(secret), "{secret} leaked: {everything}");
        }
    }
}

#[tokio::test]
async fn a_grant_without_refresh_token_is_reported() {
    let server = token_endpoint(200, "token_refreshed.json").await;
    let flow = ConsentFlow::start(&config(&server.uri(), &server.uri()), None).await.unwrap();
    let state = query(flow.authorize_url())["state"].clone();
    let redirect = flow.redirect_uri().to_owned();
    let waiting = tokio::spawn(flow.finish(Duration::from_secs(10)));
    browser_returns(redirect, format!("state={state}&code=x")).await;
    let error = waiting.await.unwrap().unwrap_err();
    assert!(matches!(error, ConnectError::NoRefreshToken), "{error}");
}

/// An `id_token` (unsigned test JWT) naming `email`.
fn id_token(email: &str) -> String {
    let encode = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.sig",
        encode(serde_json::json!({"alg":"RS256"})),
        encode(serde_json::json!({"email": email, "email_verified": true}))
    )
}

async fn exchange_answering(body: serde_json::Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=authorization_code"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    server
}

/// Issue 8: connect learns the signed-in account (`openid email`) and refuses one that is
/// not the Company Email address (Gmail would silently rewrite the From); nothing is stored.
#[tokio::test]
async fn the_consent_learns_the_account_and_refuses_another_one() {
    for (signed_in, accepted) in [("ERP@company.com", true), ("someone.else@gmail.com", false)] {
        let mut body = json("token_code_exchanged.json");
        body["scope"] = format!("openid https://www.googleapis.com/auth/userinfo.email {GMAIL_SEND_SCOPE}").into();
        body["id_token"] = id_token(signed_in).into();
        let server = exchange_answering(body).await;
        let flow = ConsentFlow::start(&config(&server.uri(), &server.uri()), Some("erp@company.com")).await.unwrap();
        let q = query(flow.authorize_url());
        let scopes: Vec<&str> = q["scope"].split(' ').collect();
        assert!(
            scopes.contains(&"openid") && scopes.contains(&"email") && scopes.contains(&GMAIL_SEND_SCOPE),
            "{scopes:?}"
        );
        let redirect = flow.redirect_uri().to_owned();
        let waiting = tokio::spawn(flow.finish(Duration::from_secs(10)));
        browser_returns(redirect, format!("state={}&code=4%2Fcode", q["state"])).await;
        let result = waiting.await.unwrap();
        if accepted {
            assert_eq!(result.unwrap().account.as_deref(), Some("ERP@company.com"));
        } else {
            let error = result.unwrap_err();
            assert!(matches!(error, ConnectError::WrongAccount { .. }), "{error}");
            let error = error.into_send_error();
            assert_eq!((error.kind(), error.field()), (ErrorKind::SenderNotAllowed, Some("email_address")));
            assert!(error.remediation().join(" ").contains("someone.else@gmail.com"));
        }
    }
}

/// Issue 10 #7: `invalid_grant` during the first consent means the code was reused or the
/// PKCE verifier did not match, not that a stored refresh token expired.
#[tokio::test]
async fn invalid_grant_at_first_consent_gets_consent_advice() {
    let server = token_endpoint(400, "token_invalid_grant_reused_code.json").await;
    let flow = ConsentFlow::start(&config(&server.uri(), &server.uri()), None).await.unwrap();
    let state = query(flow.authorize_url())["state"].clone();
    let redirect = flow.redirect_uri().to_owned();
    let waiting = tokio::spawn(flow.finish(Duration::from_secs(10)));
    browser_returns(redirect, format!("state={state}&code=4%2Fused")).await;
    let error = waiting.await.unwrap().unwrap_err().into_send_error();
    let advice = error.remediation().join(" ");
    assert!(!advice.contains("stored refresh token"), "{advice}");
    assert!(advice.contains("once") && advice.contains("newest"), "{advice}");
}

/// Issue 10 #8: the loopback redirect only works for "Desktop app" OAuth clients; a consent
/// that never comes back (Google refused the redirect) says so.
#[tokio::test]
async fn a_consent_that_never_comes_back_mentions_desktop_app_clients() {
    let error = ConnectError::TimedOut(Duration::from_secs(300)).into_send_error();
    let advice = error.remediation().join(" ");
    assert!(advice.contains("Desktop app"), "{advice}");
    let refused =
        ConnectError::Denied { error: "invalid_request".into(), description: Some("redirect_uri_mismatch".into()) };
    assert!(refused.into_send_error().remediation().join(" ").contains("Desktop app"));
}
