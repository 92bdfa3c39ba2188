//! Microsoft 365 end to end through the real `mailroom` binary: Email Services with provider = "microsoft" (Graph, application and delegated) validates, diagnoses and sends against the testkit's mocked Microsoft 365; Web Mail with auth = "oauth" signs in with XOAUTH2 to the Office 365 and Gmail personas; validate rides out one short back-off; `connect microsoft` in the browser (played by the test) and with a device code stores a refresh token the other commands use, refuses the wrong account, and a rotated refresh token is written back.

use mailroom_e2e::{run_mailroom, write_file};
use mailroom_testkit::{MicrosoftFault, MicrosoftTenant, MockMicrosoft365, Persona};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "right-secret";
const REFRESH: &str = "right-refresh-token";

fn graph_config(dir: &std::path::Path, mock: &MockMicrosoft365, auth: &str) -> String {
    let tenant = mock.tenant();
    let credentials = match auth {
        "application" => "client_secret_env = \"MAILROOM_MS_SECRET\"",
        _ => "refresh_token_env = \"MAILROOM_MS_REFRESH\"",
    };
    write_file(
        dir,
        &format!("graph-{auth}.toml"),
        &format!(
            "service = \"email_services\"\nemail_address = \"{}\"\ndisplay_name = \"Company ERP\"\n[email_services]\nprovider = \"microsoft\"\ntenant = \"{}\"\nclient_id = \"{}\"\n{credentials}\nauth = \"{auth}\"\nauthority = \"{uri}\"\napi_base = \"{uri}\"\ntimeout_secs = 5\n",
            tenant.mailbox,
            tenant.tenant,
            tenant.client_id,
            uri = mock.uri()
        ),
    )
}

const ENV: [(&str, &str); 2] = [("MAILROOM_MS_SECRET", SECRET), ("MAILROOM_MS_REFRESH", REFRESH)];

#[tokio::test(flavor = "multi_thread")]
async fn graph_validates_diagnoses_and_sends_for_application_and_delegated_auth() {
    for auth in ["application", "delegated"] {
        let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
        let dir = tempfile::tempdir().unwrap();
        let config = graph_config(dir.path(), &mock, auth);

        let validate = run_mailroom(&["validate", "--config", &config, "--json"], &ENV);
        assert_eq!(validate.code, 0, "{auth}: {validate:?}");
        assert_eq!(validate.json()["service"], "email_services");
        assert_eq!(mock.sent().len(), 1, "{auth}: the test mail went through sendMail");
        assert!(String::from_utf8_lossy(&mock.sent()[0]).contains("Subject: mailroom test message"));

        let diagnose = run_mailroom(&["diagnose", "--config", &config, "--json"], &ENV);
        assert_eq!(diagnose.code, 0, "{auth}: {diagnose:?}");
        assert_eq!(mock.sent().len(), 1, "{auth}: diagnose sends nothing");

        let data = format!("{}/fixtures/events/overdue_invoice_reminder.json", env!("CARGO_MANIFEST_DIR"));
        let send = run_mailroom(
            &["send", "--config", &config, "--event", "overdue_invoice_reminder", "--data", &data, "--json"],
            &ENV,
        );
        assert_eq!(send.code, 0, "{auth}: {send:?}");
        assert_eq!(mock.sent().len(), 2);
        for run in [&validate, &diagnose, &send] {
            assert!(!run.stdout.contains(SECRET) && !run.stderr.contains(SECRET), "{run:?}");
            assert!(!run.stdout.contains(REFRESH) && !run.stderr.contains(REFRESH), "{run:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn graph_refusals_name_the_field_and_the_entra_step() {
    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    mock.token_fault(MicrosoftFault::always(401, "token_7000222_expired_secret.json"));
    let dir = tempfile::tempdir().unwrap();
    let config = graph_config(dir.path(), &mock, "application");
    let run = run_mailroom(&["validate", "--config", &config, "--json"], &ENV);
    assert_eq!(run.code, 1, "{run:?}");
    let error = &run.json()["error"];
    assert_eq!(error["kind"], "auth_failed");
    assert_eq!(error["field"], "email_services.client_secret");
    assert_eq!(error["server_reply"]["enhanced"], "AADSTS7000222");
    assert!(
        error["remediation"][0].as_str().unwrap().contains("The client secret expired: create a new one"),
        "{error}"
    );

    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    mock.graph_fault(MicrosoftFault::always(403, "graph_403_access_denied.json"));
    let config = graph_config(dir.path(), &mock, "application");
    let run = run_mailroom(&["validate", "--config", &config, "--json"], &ENV);
    let error = &run.json()["error"];
    assert_eq!(
        (error["kind"].as_str(), error["field"].as_str()),
        (Some("permission_denied"), Some("email_services.auth"))
    );
    assert!(error["remediation"][0].as_str().unwrap().contains("Grant admin consent for Mail.Send"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_rides_out_one_short_back_off_but_not_a_long_one() {
    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    mock.graph_fault(MicrosoftFault::always(429, "graph_429_throttled.json").retry_after("1").times(1));
    let dir = tempfile::tempdir().unwrap();
    let config = graph_config(dir.path(), &mock, "application");
    let run = run_mailroom(&["validate", "--config", &config, "--json"], &ENV);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(mock.sent().len(), 1);

    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    mock.graph_fault(MicrosoftFault::always(429, "graph_429_throttled.json").retry_after("120"));
    let config = graph_config(dir.path(), &mock, "application");
    let run = run_mailroom(&["validate", "--config", &config, "--json"], &ENV);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.json()["error"]["kind"], "rate_limited");
    assert_eq!(run.json()["error"]["retry_after_ms"], 120_000);
}

fn web_mail_oauth_config(dir: &std::path::Path, port: u16, ca: &str, oauth: &str) -> String {
    write_file(dir, "ca.pem", ca);
    write_file(
        dir,
        "web-mail-oauth.toml",
        &format!(
            "service = \"web_mail\"\nemail_address = \"erp@company.com\"\n[web_mail]\nserver = \"localhost\"\nport = {port}\nenable_ssl = true\nusername = \"erp@company.com\"\nauth = \"oauth\"\nca_file = \"ca.pem\"\ntimeout_secs = 5\n[web_mail.oauth]\n{oauth}"
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn web_mail_oauth_signs_in_to_office365_with_an_smtp_send_as_app_token() {
    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    // The mock's first token is `mock-access-outlook-1`: the persona accepts only that one.
    let server =
        Persona::office365_587().oauth_token("erp@company.com", "mock-access-outlook-1").start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tenant = mock.tenant();
    let oauth = format!(
        "provider = \"microsoft\"\ntenant = \"{}\"\nclient_id = \"{}\"\nclient_secret_env = \"MAILROOM_MS_SECRET\"\nauth = \"application\"\nauthority = \"{}\"\n",
        tenant.tenant,
        tenant.client_id,
        mock.uri()
    );
    let config = web_mail_oauth_config(dir.path(), server.addr().port(), server.ca_pem(), &oauth);
    let run = run_mailroom(&["validate", "--config", &config, "--json"], &ENV);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(mock.token_requests()[0]["scope"], "https://outlook.office365.com/.default");
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn web_mail_oauth_signs_in_to_gmail_with_a_refreshed_token() {
    let google = MockServer::start().await;
    let token = std::fs::read(format!("{}/fixtures/google/token_refreshed.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(token, "application/json"))
        .mount(&google)
        .await;
    let server =
        Persona::gmail_587().oauth_token("erp@company.com", "ya29.a0-fixture-access-token").start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let oauth = format!(
        "provider = \"gmail\"\nclient_id = \"1234-abc.apps.googleusercontent.com\"\nclient_secret_env = \"MAILROOM_MS_SECRET\"\nrefresh_token_env = \"MAILROOM_MS_REFRESH\"\ntoken_uri = \"{}/token\"\n",
        google.uri()
    );
    let config = web_mail_oauth_config(dir.path(), server.addr().port(), server.ca_pem(), &oauth);
    let run = run_mailroom(&["validate", "--config", &config, "--json"], &ENV);
    assert_eq!(run.code, 0, "{run:?}");
    let requests = google.received_requests().await.unwrap();
    let form = String::from_utf8_lossy(&requests[0].body).into_owned();
    assert!(form.contains("grant_type=refresh_token") && form.contains("mail.google.com"), "{form}");
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn office365_basic_auth_retired_names_the_way_out_and_oauth_still_works() {
    let server = Persona::office365_587()
        .account("erp@company.com", "pw")
        .fault(mailroom_testkit::Fault::BasicAuthRetired)
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "ca.pem", server.ca_pem());
    let config = write_file(
        dir.path(),
        "password.toml",
        &format!(
            "service = \"web_mail\"\nemail_address = \"erp@company.com\"\n[web_mail]\nserver = \"localhost\"\nport = {}\nenable_ssl = true\nusername = \"erp@company.com\"\npassword_env = \"MAILROOM_PASSWORD\"\nca_file = \"ca.pem\"\ntimeout_secs = 5\n",
            server.addr().port()
        ),
    );
    let run = run_mailroom(&["validate", "--config", &config, "--json"], &[("MAILROOM_PASSWORD", "pw")]);
    assert_eq!(run.code, 1, "{run:?}");
    let error = &run.json()["error"];
    assert_eq!((error["kind"].as_str(), error["field"].as_str()), (Some("auth_disabled"), Some("web_mail.auth")));
    let advice = error["remediation"].to_string();
    assert!(advice.contains("auth = \\\"oauth\\\"") && advice.contains("provider = \\\"microsoft\\\""), "{advice}");
}

fn delegated_config(dir: &std::path::Path, mock: &MockMicrosoft365) -> String {
    let tenant = mock.tenant();
    write_file(
        dir,
        "graph-connect.toml",
        &format!(
            "service = \"email_services\"\nemail_address = \"{}\"\ndisplay_name = \"Company ERP\"\n[email_services]\nprovider = \"microsoft\"\ntenant = \"{}\"\nclient_id = \"{}\"\nauth = \"delegated\"\ntoken_file = \"microsoft-token.json\"\nauthority = \"{uri}\"\napi_base = \"{uri}\"\ntimeout_secs = 5\n",
            tenant.mailbox,
            tenant.tenant,
            tenant.client_id,
            uri = mock.uri()
        ),
    )
}

/// One HTTP/1.1 GET over a plain TCP connection to a loopback `url` (as a browser would send
/// it): the status line and the `Location` header of the reply.
fn browser_get(url: &url::Url) -> (String, Option<String>) {
    use std::io::{Read as _, Write as _};
    let port = url.port_or_known_default().unwrap();
    // The redirect names `localhost`; mailroom's listener is on 127.0.0.1.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let target = &url[url::Position::BeforePath..];
    write!(stream, "GET {target} HTTP/1.1\r\nHost: {}:{port}\r\nConnection: close\r\n\r\n", url.host_str().unwrap())
        .unwrap();
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    let status = reply.lines().next().unwrap_or_default().to_owned();
    let location = reply
        .lines()
        .take_while(|line| !line.is_empty())
        .find_map(|line| line.strip_prefix("location: ").or_else(|| line.strip_prefix("Location: ")))
        .map(str::to_owned);
    (status, location)
}

/// Runs `connect microsoft` (browser flow) and plays the browser: reads the sign-in URL the
/// command prints, requests it at the mocked identity platform, and follows its redirect to
/// the command's loopback listener. Returns the exit status and everything printed.
fn connect_in_browser(config: &str, mock_uri: &str) -> (std::process::ExitStatus, String, url::Url) {
    use std::io::{BufRead as _, Read as _};
    let mut child = std::process::Command::new(mailroom_e2e::mailroom_bin())
        .args(["connect", "microsoft", "--config", config, "--wait-secs", "20"])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let sign_in = loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the command ended before printing the sign-in URL: {printed}"
        );
        printed.push_str(&line);
        if let Some(start) = line.find(&format!("{mock_uri}/")) {
            break url::Url::parse(line[start..].trim()).unwrap();
        }
    };
    let (status, location) = browser_get(&sign_in);
    assert!(status.contains(" 302 "), "{status}");
    let redirect = url::Url::parse(&location.unwrap()).unwrap();
    assert_eq!(redirect.host_str(), Some("localhost"));
    let (page, _) = browser_get(&redirect);
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let status = child.wait().unwrap();
    stdout.read_to_string(&mut printed).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut printed).unwrap();
    (status, printed, sign_in)
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_microsoft_in_the_browser_stores_a_token_that_validate_diagnose_and_send_use() {
    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = delegated_config(dir.path(), &mock);
    let uri = mock.uri();
    let (status, printed, sign_in) =
        tokio::task::spawn_blocking(move || connect_in_browser(&config, &uri)).await.unwrap();
    assert!(status.success(), "{printed}");
    assert!(printed.contains("Connected as erp@company.com"), "{printed}");
    let param = |name: &str| sign_in.query_pairs().find(|(key, _)| key == name).map(|(_, value)| value.into_owned());
    assert_eq!(sign_in.path(), "/company.onmicrosoft.com/oauth2/v2.0/authorize");
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param("login_hint").as_deref(), Some("erp@company.com"));
    let scope = param("scope").unwrap();
    assert!(["Mail.Send", "offline_access", "openid", "email"].iter().all(|s| scope.contains(s)), "{scope}");

    let token_file = dir.path().join("microsoft-token.json");
    let stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&token_file).unwrap()).unwrap();
    assert_eq!(stored["account"], "erp@company.com");
    let refresh = stored["refresh_token"].as_str().unwrap().to_owned();
    assert!(refresh.starts_with("mock-refresh-"), "{stored}");
    assert!(!printed.contains(&refresh), "the refresh token is never printed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let code_exchange = &mock.token_requests()[0];
    assert_eq!(code_exchange["grant_type"], "authorization_code");
    assert!(!code_exchange["code_verifier"].is_empty());

    let config = dir.path().join("graph-connect.toml").to_string_lossy().into_owned();
    let validate = run_mailroom(&["validate", "--config", &config, "--json"], &[]);
    assert_eq!(validate.code, 0, "{validate:?}");
    let diagnose = run_mailroom(&["diagnose", "--config", &config, "--json"], &[]);
    assert_eq!(diagnose.code, 0, "{diagnose:?}");
    let data = format!("{}/fixtures/events/overdue_invoice_reminder.json", env!("CARGO_MANIFEST_DIR"));
    let send = run_mailroom(
        &["send", "--config", &config, "--event", "overdue_invoice_reminder", "--data", &data, "--json"],
        &[],
    );
    assert_eq!(send.code, 0, "{send:?}");
    assert_eq!(mock.sent().len(), 2, "validate and send went through /me/sendMail");
    let requests = mock.requests().await;
    assert!(requests.iter().any(|r| r.url.path() == "/v1.0/me/sendMail"));
    let refreshes: Vec<_> = mock.token_requests().into_iter().filter(|f| f["grant_type"] == "refresh_token").collect();
    assert!(!refreshes.is_empty() && refreshes.iter().all(|f| f["refresh_token"].starts_with("mock-refresh-")));
    for run in [&validate, &diagnose, &send] {
        assert!(!run.stdout.contains(&refresh) && !run.stderr.contains(&refresh), "{run:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_microsoft_refuses_an_account_that_is_not_the_company_email() {
    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    mock.sign_in_as("boss@company.com");
    let dir = tempfile::tempdir().unwrap();
    let config = delegated_config(dir.path(), &mock);
    let uri = mock.uri();
    let (status, printed, _) = tokio::task::spawn_blocking(move || connect_in_browser(&config, &uri)).await.unwrap();
    assert_eq!(status.code(), Some(1), "{printed}");
    assert!(printed.contains("boss@company.com") && printed.contains("email_address"), "{printed}");
    assert!(!dir.path().join("microsoft-token.json").exists(), "nothing is stored for the wrong account");
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_microsoft_with_a_device_code_polls_until_the_sign_in_and_stores_the_token() {
    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = delegated_config(dir.path(), &mock);
    let run = run_mailroom(&["connect", "microsoft", "--device-code", "--config", &config, "--wait-secs", "30"], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("https://microsoft.com/devicelogin") && run.stdout.contains("ABCD-EFGH"), "{run:?}");
    assert_eq!(mock.device_polls_pending(), 1, "the pending answer was polled past");
    let stored = std::fs::read_to_string(dir.path().join("microsoft-token.json")).unwrap();
    assert!(stored.contains("mock-refresh-") && stored.contains("erp@company.com"), "{stored}");
    let validate = run_mailroom(&["validate", "--config", &config, "--json"], &[]);
    assert_eq!(validate.code, 0, "{validate:?}");

    let declined = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    declined.decline_sign_in();
    let dir = tempfile::tempdir().unwrap();
    let config = delegated_config(dir.path(), &declined);
    let run = run_mailroom(&["connect", "microsoft", "--device-code", "--config", &config, "--wait-secs", "30"], &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("authorization_declined") || run.stderr.contains("authorization_declined"), "{run:?}");
    assert!(!dir.path().join("microsoft-token.json").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_refresh_token_is_written_back_and_the_next_run_uses_it() {
    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    // Each refresh token works once: a run that kept the old one would fail the next time.
    mock.revoke_used_refresh_tokens();
    let dir = tempfile::tempdir().unwrap();
    let config = delegated_config(dir.path(), &mock);
    let token_file = dir.path().join("microsoft-token.json");
    let tenant = mock.tenant();
    std::fs::write(
        &token_file,
        serde_json::json!({"client_id": tenant.client_id, "account": tenant.mailbox, "refresh_token": REFRESH})
            .to_string(),
    )
    .unwrap();
    for run in 1..=2 {
        let validate = run_mailroom(&["validate", "--config", &config, "--json"], &[]);
        assert_eq!(validate.code, 0, "run {run}: {validate:?}");
    }
    let refreshes: Vec<String> = mock
        .token_requests()
        .into_iter()
        .filter(|form| form["grant_type"] == "refresh_token")
        .map(|form| form["refresh_token"].clone())
        .collect();
    assert_eq!(refreshes.len(), 2, "{refreshes:?}");
    assert_eq!(refreshes[0], REFRESH);
    assert!(refreshes[1].starts_with("mock-refresh-"), "the second run used the rotated token: {refreshes:?}");
    let stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&token_file).unwrap()).unwrap();
    assert_ne!(stored["refresh_token"], refreshes[1].as_str(), "the second rotation was stored too");
    assert_eq!(stored["account"], "erp@company.com", "the file's other fields are kept");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn web_mail_oauth_delegated_signs_in_to_office365_with_the_token_of_connect_microsoft() {
    let mock = MockMicrosoft365::start(MicrosoftTenant::company()).await;
    // Token 1 comes from the device code sign-in, token 2 from validate's refresh.
    let server =
        Persona::office365_587().oauth_token("erp@company.com", "mock-access-outlook-2").start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tenant = mock.tenant();
    let oauth = format!(
        "provider = \"microsoft\"\ntenant = \"{}\"\nclient_id = \"{}\"\nauth = \"delegated\"\ntoken_file = \"smtp-token.json\"\nauthority = \"{}\"\n",
        tenant.tenant,
        tenant.client_id,
        mock.uri()
    );
    let config = web_mail_oauth_config(dir.path(), server.addr().port(), server.ca_pem(), &oauth);
    let connect =
        run_mailroom(&["connect", "microsoft", "--device-code", "--config", &config, "--wait-secs", "30"], &[]);
    assert_eq!(connect.code, 0, "{connect:?}");
    let device_scope = &mock.token_requests()[0]["scope"];
    assert!(device_scope.contains("https://outlook.office365.com/SMTP.Send"), "{device_scope}");
    let run = run_mailroom(&["validate", "--config", &config, "--json"], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(server.messages().len(), 1);
}
