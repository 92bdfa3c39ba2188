//! Microsoft 365 end to end through the real `mailroom` binary: Email Services with provider = "microsoft" (Graph, application and delegated) validates, diagnoses and sends against the testkit's mocked Microsoft 365; Web Mail with auth = "oauth" signs in with XOAUTH2 to the Office 365 and Gmail personas; validate rides out one short back-off.

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
