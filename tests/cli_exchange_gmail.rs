//! `mailroom validate`, `diagnose` and `connect google` end to end for Exchange (EWS) and Email Services (Gmail API), against loopback HTTP servers answering with the captured replies in fixtures/ews and fixtures/google.

use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

use base64::Engine as _;
use mailroom_e2e::{mailroom_bin, run_mailroom, write_file};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PASSWORD: &str = "SENTINEL-ews-pw-5c1d";
const CLIENT_SECRET: &str = "SENTINEL-google-secret-9e2f";

fn fixture(relative: &str) -> String {
    std::fs::read_to_string(format!("{}/fixtures/{relative}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn soap(status: u16, relative: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", "text/xml; charset=utf-8")
        .set_body_string(fixture(relative))
}

fn json_reply(status: u16, relative: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).insert_header("content-type", "application/json").set_body_string(fixture(relative))
}

fn exchange_config(dir: &std::path::Path, server: &MockServer) -> String {
    write_file(
        dir,
        "exchange.toml",
        &format!(
            "service = \"exchange\"\nemail_address = \"erp@company.com\"\ndisplay_name = \"Company ERP\"\n[exchange]\nuri = \"{}/EWS/Exchange.asmx\"\ndomain = \"company.com\"\nusername = \"erp\"\npassword_env = \"MAILROOM_PASSWORD\"\nauth = \"basic\"\ntimeout_secs = 5\n",
            server.uri()
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn exchange_validate_sends_the_test_mail_as_mime_content() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/EWS/Exchange.asmx"))
        .respond_with(soap(200, "ews/create_item_success.xml"))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = exchange_config(dir.path(), &server);
    let run = run_mailroom(&["validate", "--config", &config, "--json"], &[("MAILROOM_PASSWORD", PASSWORD)]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["service"], "exchange");
    assert!(!run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD));

    let requests = server.received_requests().await.unwrap();
    let body = String::from_utf8_lossy(&requests[0].body).into_owned();
    let mime = body.split("<t:MimeContent").nth(1).and_then(|rest| rest.split('>').nth(1)).unwrap();
    let mime = mime.split('<').next().unwrap();
    let message = base64::engine::general_purpose::STANDARD.decode(mime.trim()).unwrap();
    let message = String::from_utf8_lossy(&message);
    assert!(message.contains("Subject: mailroom test message"), "{message}");
    assert!(message.contains(&format!("Message-ID: {}", run.json()["message_id"].as_str().unwrap())));
}

#[tokio::test(flavor = "multi_thread")]
async fn exchange_refusals_are_classified_with_the_server_reply() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(soap(200, "ews/create_item_send_as_denied.xml")).mount(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let config = exchange_config(dir.path(), &server);
    let run = run_mailroom(&["validate", "--config", &config, "--json"], &[("MAILROOM_PASSWORD", PASSWORD)]);
    assert_eq!(run.code, 1, "{run:?}");
    let error = &run.json()["error"];
    assert_eq!(error["kind"], "sender_not_allowed");
    assert!(error["server_reply"]["text"].as_str().unwrap_or_default().contains("send mail on behalf"), "{error}");

    let diagnose = run_mailroom(&["diagnose", "--config", &config, "--json"], &[("MAILROOM_PASSWORD", PASSWORD)]);
    assert!(diagnose.stdout.contains("\"steps\""), "{diagnose:?}");
    assert!(!diagnose.stdout.contains(PASSWORD));
}

fn gmail_config(dir: &std::path::Path, server: &MockServer, token_line: &str) -> String {
    write_file(
        dir,
        "gmail.toml",
        &format!(
            "service = \"email_services\"\nemail_address = \"erp@company.com\"\ndisplay_name = \"Company ERP\"\n[email_services]\nprovider = \"gmail\"\nclient_id = \"1234-abc.apps.googleusercontent.com\"\nclient_secret_env = \"MAILROOM_GOOGLE_SECRET\"\n{token_line}\nauth_uri = \"{0}/o/oauth2/v2/auth\"\ntoken_uri = \"{0}/token\"\napi_base = \"{0}/\"\ntimeout_secs = 5\n",
            server.uri()
        ),
    )
}

async fn google(server: &MockServer, token_reply: &str) {
    Mock::given(method("POST")).and(path("/token")).respond_with(json_reply(200, token_reply)).mount(server).await;
    Mock::given(method("POST"))
        .and(path("/upload/gmail/v1/users/me/messages/send"))
        .respond_with(json_reply(200, "google/send_success.json"))
        .mount(server)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gmail_validate_uploads_the_test_mail_and_reports_revoked_tokens() {
    let server = MockServer::start().await;
    google(&server, "google/token_refreshed.json").await;
    let dir = tempfile::tempdir().unwrap();
    let config = gmail_config(dir.path(), &server, "refresh_token_env = \"MAILROOM_GOOGLE_REFRESH\"");
    let env = [("MAILROOM_GOOGLE_SECRET", CLIENT_SECRET), ("MAILROOM_GOOGLE_REFRESH", "1//SENTINEL-refresh")];
    let run = run_mailroom(&["validate", "--config", &config, "--json"], &env);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["service"], "email_services");
    let uploads: Vec<_> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path().starts_with("/upload/"))
        .collect();
    assert_eq!(uploads[0].headers.get("content-type").unwrap(), "message/rfc822");
    assert!(String::from_utf8_lossy(&uploads[0].body).contains("Subject: mailroom test message"));

    let revoked = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(json_reply(400, "google/token_invalid_grant.json"))
        .mount(&revoked)
        .await;
    let config = gmail_config(dir.path(), &revoked, "refresh_token_env = \"MAILROOM_GOOGLE_REFRESH\"");
    let run = run_mailroom(&["validate", "--config", &config, "--json"], &env);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.json()["error"]["kind"], "oauth_reconnect_required");
    for secret in [CLIENT_SECRET, "1//SENTINEL-refresh"] {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret), "{secret} leaked: {run:?}");
    }
}

/// Plays the browser: reads the consent URL the command prints, then follows Google's
/// redirect back to the command's loopback listener with a code and the right state.
#[tokio::test(flavor = "multi_thread")]
async fn connect_google_stores_the_refresh_token_that_validate_then_uses() {
    let server = MockServer::start().await;
    google(&server, "google/token_code_exchanged.json").await;
    let dir = tempfile::tempdir().unwrap();
    let config = gmail_config(dir.path(), &server, "token_file = \"google-token.json\"");
    let mut child = std::process::Command::new(mailroom_bin())
        .args(["connect", "google", "--config", &config, "--wait-secs", "20"])
        .env("MAILROOM_GOOGLE_SECRET", CLIENT_SECRET)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let consent = loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "the command ended before printing the consent URL");
        if let Some(start) = line.find(&format!("{}/o/oauth2/v2/auth?", server.uri())) {
            break url::Url::parse(line[start..].trim()).unwrap();
        }
    };
    let param = |name: &str| consent.query_pairs().find(|(key, _)| key == name).map(|(_, value)| value.into_owned());
    assert_eq!(param("scope").as_deref(), Some("openid email https://www.googleapis.com/auth/gmail.send"));
    assert_eq!(param("login_hint").as_deref(), Some("erp@company.com"));
    let redirect = url::Url::parse(&param("redirect_uri").unwrap()).unwrap();
    let state = param("state").unwrap();
    let mut browser = std::net::TcpStream::connect((redirect.host_str().unwrap(), redirect.port().unwrap())).unwrap();
    write!(
        browser,
        "GET /?state={state}&code=4%2F0-fixture-code&scope=x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut page = String::new();
    let _ = browser.read_to_string(&mut page);
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");

    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "connect google did not finish");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("Connected."), "{rest}");
    let token_file = dir.path().join("google-token.json");
    let stored = std::fs::read_to_string(&token_file).unwrap();
    assert!(stored.contains("1//0g-fixture-refresh-token"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(!rest.contains("1//0g-fixture-refresh-token") && !rest.contains(CLIENT_SECRET));

    let run = run_mailroom(&["validate", "--config", &config, "--json"], &[("MAILROOM_GOOGLE_SECRET", CLIENT_SECRET)]);
    assert_eq!(run.code, 0, "{run:?}");
    let token_requests = server.received_requests().await.unwrap().into_iter().filter(|r| r.url.path() == "/token");
    let last = token_requests.last().unwrap();
    let form = String::from_utf8_lossy(&last.body).into_owned();
    assert!(form.contains("grant_type=refresh_token") && form.contains("fixture-refresh-token"), "{form}");
}
