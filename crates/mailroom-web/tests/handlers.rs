//! Handler tests for every route of the console, through its real router, against the testkit's fake SMTP server on loopback.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use mailroom_core::Secret;
use mailroom_testkit::FakeSmtpServer;
use mailroom_web::{Console, ConsoleOptions};
use tower::ServiceExt;

const USER: &str = "erp@northwind.example";
const PASSWORD: &str = "right-horse-battery";
const WRONG: &str = "wrong-password-123";

/// One browser: the router, its session cookie and the page's CSRF token.
struct Browser {
    router: Router,
    cookie: Option<String>,
    csrf: String,
    host: &'static str,
}

struct Page {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    html: String,
}

async fn read(response: Response<Body>) -> Page {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Page { status, headers, html: String::from_utf8(bytes.to_vec()).unwrap() }
}

/// The page's text with minijinja's HTML escapes undone, for reading URLs and quotes.
fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn csrf_of(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[at..].split('"').next()?.to_owned())
}

impl Browser {
    fn new(console: &Console) -> Browser {
        Browser { router: console.router(), cookie: None, csrf: String::new(), host: "127.0.0.1:8025" }
    }

    async fn send(&mut self, request: axum::http::request::Builder, body: Body) -> Page {
        let mut request = request.header(header::HOST, self.host);
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let response = self.router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        if let Some(set) = response.headers().get(header::SET_COOKIE) {
            self.cookie = Some(set.to_str().unwrap().split(';').next().unwrap().to_owned());
        }
        let page = read(response).await;
        if let Some(csrf) = csrf_of(&page.html) {
            self.csrf = csrf;
        }
        page
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send(Request::get(path), Body::empty()).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut all = vec![("csrf", self.csrf.clone())];
        all.extend(fields.iter().map(|(k, v)| (*k, v.to_string())));
        let body = serde_urlencoded::to_string(&all).unwrap();
        let request = Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        self.send(request, Body::from(body)).await
    }
}

struct Setup {
    server: FakeSmtpServer,
    dir: tempfile::TempDir,
    console: Console,
}

impl Setup {
    async fn new() -> Setup {
        let server = FakeSmtpServer::builder().account(USER, PASSWORD).require_auth(true).start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), server.ca_pem()).unwrap();
        let console = Console::new(ConsoleOptions::new(dir.path().join("company-email.toml")));
        Setup { server, dir, console }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("company-email.toml")
    }

    fn secrets_path(&self) -> PathBuf {
        self.dir.path().join("company-email.secrets.env")
    }

    /// The Web Mail values for the fake server, with `password` and Enable SSL as given.
    fn web_mail(&self, password: &str, enable_ssl: bool) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("service", "web_mail".to_owned()),
            ("email_address", USER.to_owned()),
            ("display_name", "Northwind ERP".to_owned()),
            ("smtp_server", "localhost".to_owned()),
            ("smtp_port", self.server.addr().port().to_string()),
            ("smtp_username", USER.to_owned()),
            ("smtp_password", password.to_owned()),
            ("smtp_tls", "auto".to_owned()),
            ("smtp_ca_file", "ca.pem".to_owned()),
            ("timeout_secs", "5".to_owned()),
        ];
        if enable_ssl {
            fields.push(("smtp_enable_ssl", "on".to_owned()));
        }
        fields
    }

    fn nothing_on_disk(&self) -> bool {
        !self.config_path().exists() && !self.secrets_path().exists()
    }
}

fn with_action<'a>(fields: &'a [(&'static str, String)], action: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut all: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.push(("action", action));
    all
}

/// The `<input …>` tag with this id.
fn input_tag<'a>(html: &'a str, id: &str) -> &'a str {
    let marker = format!("id=\"{id}\"");
    let at = html.find(&marker).unwrap_or_else(|| panic!("no element #{id}"));
    let start = html[..at].rfind('<').unwrap();
    let end = at + html[at..].find('>').unwrap();
    &html[start..=end]
}

fn save_enabled(html: &str) -> bool {
    !input_tag(html, "save").contains("disabled")
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_page_has_the_seed_labels_a_strict_policy_and_save_disabled() {
    let setup = Setup::new().await;
    let mut browser = Browser::new(&setup.console);
    let page = browser.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    for label in [
        "Email Service Type",
        "Web Mail",
        "Exchange",
        "Email Services: Google",
        "Outgoing Mail Server (SMTP)",
        "Email Address",
        "Port Number",
        "Enable SSL",
        "Display Name",
        "User Name",
        "Email Password",
        "Exchange Uri",
        "Domain",
        "Username",
    ] {
        assert!(page.html.contains(&format!(">{label}<")), "no label {label}");
    }
    let csp = page.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"));
    assert!(!page.html.contains("<script>") && !page.html.contains(" style="), "inline script or style");
    assert!(!save_enabled(&page.html));
    assert!(browser.cookie.as_deref().unwrap().starts_with("mailroom_console="));
    let cookie = page.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
}

#[tokio::test]
async fn a_wrong_password_is_shown_at_email_password_and_never_echoed() {
    let setup = Setup::new().await;
    let mut browser = Browser::new(&setup.console);
    browser.get("/").await;
    let fields = setup.web_mail(WRONG, true);
    let page = browser.post("/", &with_action(&fields, "validate")).await;
    assert_eq!(page.status, StatusCode::OK);
    let password = input_tag(&page.html, "smtp_password");
    assert!(password.contains("aria-invalid=\"true\""), "{password}");
    assert!(password.contains("smtp_password-error"), "{password}");
    let error = &page.html[page.html.find("id=\"smtp_password-error\"").unwrap()..];
    assert!(error.contains("The SMTP server required a secure connection or the client was not authenticated"));
    assert!(error.contains("authentication"), "documented error named");
    assert!(error.contains("How to fix"));
    assert!(page.html.contains("<details>") && page.html.contains("Server reply and transcript"));
    assert!(!page.html.contains(WRONG), "a typed password came back to the browser");
    assert!(!save_enabled(&page.html));
    assert!(setup.nothing_on_disk());
}

#[tokio::test]
async fn validate_then_save_writes_private_files_without_a_secret_in_the_config() {
    let setup = Setup::new().await;
    let mut browser = Browser::new(&setup.console);
    browser.get("/").await;
    let fields = setup.web_mail(PASSWORD, true);

    // Save before any Validate is refused by the server, whatever the button says.
    let refused = browser.post("/", &with_action(&fields, "save")).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(setup.nothing_on_disk());

    let validated = browser.post("/", &with_action(&fields, "validate")).await;
    assert!(validated.html.contains("Validated: the test mail was accepted"), "{}", validated.html);
    assert!(validated.html.contains("Message-ID &lt;"), "Message-ID shown");
    assert!(validated.html.contains(" ms, sent to "), "time shown");
    assert!(save_enabled(&validated.html));
    assert!(!validated.html.contains(PASSWORD));

    // The password field comes back empty; posting it empty keeps the typed one.
    let mut kept = fields.clone();
    kept.retain(|(k, _)| *k != "smtp_password");
    let reloaded = browser.get("/").await;
    assert!(save_enabled(&reloaded.html), "the same values are still validated");
    let saved = browser.post("/", &with_action(&kept, "save")).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.html);
    assert!(saved.html.contains("Saved"));

    let config = std::fs::read_to_string(setup.config_path()).unwrap();
    assert!(!config.contains(PASSWORD), "{config}");
    assert!(config.contains("password_env = \"MAILROOM_PASSWORD\""), "{config}");
    let secrets = std::fs::read_to_string(setup.secrets_path()).unwrap();
    assert!(secrets.contains(PASSWORD));
    #[cfg(unix)]
    {
        assert_eq!(mode(&setup.config_path()), 0o600);
        assert_eq!(mode(&setup.secrets_path()), 0o600);
    }
    // The CLI's loader finds the secret in the secrets file beside the config.
    let loaded = mailroom::load_config_file(&setup.config_path()).unwrap();
    assert_eq!(loaded.config.sender.email.to_string(), USER);
    assert_eq!(setup.server.messages().len(), 1, "exactly one test mail");
}

#[tokio::test]
async fn values_changed_after_validate_cannot_be_saved() {
    let setup = Setup::new().await;
    let mut browser = Browser::new(&setup.console);
    browser.get("/").await;
    let fields = setup.web_mail(PASSWORD, true);
    browser.post("/", &with_action(&fields, "validate")).await;
    let mut changed = fields.clone();
    changed.iter_mut().find(|(k, _)| *k == "display_name").unwrap().1 = "Someone Else".into();
    let page = browser.post("/", &with_action(&changed, "save")).await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(!save_enabled(&page.html));
    assert!(setup.nothing_on_disk());
    // Another browser session cannot ride on this session's Validate either.
    let mut other = Browser::new(&setup.console);
    other.get("/").await;
    let page = other.post("/", &with_action(&fields, "save")).await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(setup.nothing_on_disk());
}

#[tokio::test]
async fn diagnose_lists_steps_and_its_fix_repairs_the_ssl_setting() {
    let setup = Setup::new().await;
    let mut browser = Browser::new(&setup.console);
    browser.get("/").await;
    let fields = setup.web_mail(PASSWORD, false);
    let failed = browser.post("/", &with_action(&fields, "validate")).await;
    let enable_ssl = input_tag(&failed.html, "smtp_enable_ssl");
    assert!(enable_ssl.contains("aria-invalid=\"true\""), "{}", failed.html);
    assert!(failed.html.contains("ssl_setting"));

    let diagnosed = browser.post("/", &with_action(&fields, "diagnose")).await;
    assert!(diagnosed.html.contains("Diagnosis"));
    assert!(diagnosed.html.contains(" ms</td>"), "timings shown");
    let at = diagnosed.html.find("value=\"fix:").expect("a suggestion button");
    let value = unescape(diagnosed.html[at + 7..].split('"').next().unwrap());
    assert!(value.contains("web_mail.tls"), "{value}");
    let fixed = browser.post("/", &with_action(&fields, &value)).await;
    assert!(fixed.html.contains("Validated: the test mail was accepted"), "{}", fixed.html);
    assert!(input_tag(&fixed.html, "smtp_enable_ssl").contains("checked"));
    assert!(save_enabled(&fixed.html));
}

#[tokio::test]
async fn presets_fill_server_and_port() {
    let setup = Setup::new().await;
    let mut browser = Browser::new(&setup.console);
    browser.get("/").await;
    let fields = vec![("service", "web_mail".to_owned()), ("email_address", USER.to_owned())];
    let page = browser.post("/", &with_action(&fields, "preset:office365")).await;
    assert!(input_tag(&page.html, "smtp_server").contains("value=\"smtp.office365.com\""));
    assert!(input_tag(&page.html, "smtp_port").contains("value=\"587\""));
    let page = browser.post("/", &with_action(&fields, "preset:gmail")).await;
    assert!(input_tag(&page.html, "smtp_server").contains("value=\"smtp.gmail.com\""));
    let page = browser.post("/", &with_action(&fields, "preset:nope")).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn config_errors_sit_at_their_fields_including_the_exchange_domain() {
    let setup = Setup::new().await;
    let mut browser = Browser::new(&setup.console);
    browser.get("/").await;
    let mut fields = setup.web_mail("", true);
    fields.iter_mut().find(|(k, _)| *k == "smtp_server").unwrap().1 = String::new();
    let page = browser.post("/", &with_action(&fields, "validate")).await;
    assert!(input_tag(&page.html, "smtp_server").contains("aria-invalid=\"true\""));
    assert!(input_tag(&page.html, "smtp_password").contains("aria-invalid=\"true\""));
    assert!(page.html.contains("Enter the Email Password."), "{}", page.html);

    let exchange = [
        ("service", "exchange"),
        ("email_address", USER),
        ("ews_uri", "https://outlook.office365.com/EWS/Exchange.asmx"),
        ("ews_domain", "https://company"),
        ("ews_username", "erp"),
        ("ews_password", "pw"),
        ("action", "validate"),
    ];
    let page = browser.post("/", &exchange).await;
    assert!(input_tag(&page.html, "ews_domain").contains("aria-invalid=\"true\""));
    assert!(page.html.contains("exchange_domain"));
    assert!(page.html.contains("The Exchange domain must be in the form company.com."));
}

#[tokio::test]
async fn bad_requests_get_a_clear_page_and_change_nothing() {
    let setup = Setup::new().await;
    let mut browser = Browser::new(&setup.console);
    browser.get("/").await;
    let csrf = browser.csrf.clone();

    let page =
        browser.send(Request::post("/").header(header::CONTENT_TYPE, "application/json"), Body::from("{}")).await;
    assert_eq!(page.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(unescape(&page.html).contains("application/x-www-form-urlencoded"));

    let huge = format!("csrf={csrf}&display_name={}", "x".repeat(mailroom_web::MAX_BODY_BYTES + 1));
    let page = browser
        .send(Request::post("/").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded"), Body::from(huge))
        .await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(page.html.contains("larger than the console accepts"));

    let page = browser.post("/", &[("unknown_field", "1"), ("action", "save")]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.html.contains("unknown field `unknown_field`"), "{}", page.html);

    browser.csrf = "forged".into();
    let page = browser.post("/", &[("action", "validate")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);

    let page = browser
        .send(
            Request::post("/")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ORIGIN, "http://evil.example"),
            Body::from(format!("csrf={csrf}&action=validate")),
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(setup.nothing_on_disk());
    assert!(setup.server.messages().is_empty());
}

#[tokio::test]
async fn other_host_names_are_refused_without_an_access_token() {
    let setup = Setup::new().await;
    let mut browser = Browser::new(&setup.console);
    browser.host = "attacker.example:8025";
    let page = browser.get("/").await;
    assert_eq!(page.status, StatusCode::MISDIRECTED_REQUEST);
}

#[tokio::test]
async fn an_access_token_guards_every_page_but_the_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ConsoleOptions::new(dir.path().join("c.toml"));
    options.access_token = Some(Secret::new("a-long-access-token-0123456789"));
    let console = Console::new(options);
    let mut browser = Browser::new(&console);
    browser.host = "console.internal:8025";
    let page = browser.get("/").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.headers[header::LOCATION], "/sign-in");
    let page = browser.get("/sign-in").await;
    assert!(page.html.contains("Access token"));
    let page = browser.post("/sign-in", &[("token", "wrong")]).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    let page = browser.post("/sign-in", &[("token", "a-long-access-token-0123456789")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = browser.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("Company Email"));

    let mut bearer = Browser::new(&console);
    bearer.host = "console.internal:8025";
    let page = bearer
        .send(Request::get("/").header(header::AUTHORIZATION, "Bearer a-long-access-token-0123456789"), Body::empty())
        .await;
    assert_eq!(page.status, StatusCode::OK);
}

#[tokio::test]
async fn connect_starts_the_google_consent_and_shows_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let console = Console::new(ConsoleOptions::new(dir.path().join("company-email.toml")));
    let mut browser = Browser::new(&console);
    let page = browser.get("/connect").await;
    assert!(page.html.contains("No sign-in is running"));
    browser.get("/").await;
    let missing = [("service", "email_services"), ("email_address", USER), ("action", "connect")];
    let page = browser.post("/", &missing).await;
    assert!(input_tag(&page.html, "google_client_id").contains("aria-invalid=\"true\""), "{}", page.html);

    let fields = [
        ("service", "email_services"),
        ("email_address", USER),
        ("google_client_id", "123-abc.apps.googleusercontent.com"),
        ("google_client_secret", "client-secret-value"),
        ("action", "connect"),
    ];
    let page = browser.post("/", &fields).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.headers[header::LOCATION], "/connect");
    let page = browser.get("/connect").await;
    assert!(page.html.contains("http-equiv=\"refresh\""), "refreshes while waiting");
    let text = unescape(&page.html);
    assert!(text.contains("https://accounts.google.com/o/oauth2/v2/auth?"), "{text}");
    assert!(text.contains("login_hint=erp%40northwind.example"));
    assert!(!page.html.contains("client-secret-value"));
}

#[tokio::test]
async fn static_files_and_unknown_paths() {
    let setup = Setup::new().await;
    let mut browser = Browser::new(&setup.console);
    let css = browser.get("/static/console.css").await;
    assert_eq!(css.headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
    let js = browser.get("/static/console.js").await;
    assert_eq!(js.headers[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert!(js.html.contains("save.disabled = true"));
    let missing = browser.get("/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.html.contains("No such page"));
}

#[tokio::test]
async fn an_existing_config_is_shown_with_its_secret_write_only() {
    let setup = Setup::new().await;
    std::fs::write(
        setup.config_path(),
        format!(
            "service = \"web_mail\"\nemail_address = \"{USER}\"\n[web_mail]\nserver = \"localhost\"\nport = {}\nenable_ssl = true\nusername = \"{USER}\"\npassword_env = \"SOME_VAR\"\nca_file = \"ca.pem\"\n",
            setup.server.addr().port()
        ),
    )
    .unwrap();
    std::fs::write(setup.secrets_path(), format!("SOME_VAR=\"{PASSWORD}\"\n")).unwrap();
    let mut browser = Browser::new(&setup.console);
    let page = browser.get("/").await;
    assert!(input_tag(&page.html, "smtp_server").contains("value=\"localhost\""));
    assert!(page.html.contains("Saved: leave empty to keep it"));
    assert!(!page.html.contains(PASSWORD));
    // Validate with the field left empty uses the saved password.
    let mut fields = setup.web_mail("", true);
    fields.retain(|(k, _)| *k != "timeout_secs");
    let page = browser.post("/", &with_action(&fields, "validate")).await;
    assert!(page.html.contains("Validated"), "{}", page.html);
}

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/events")
}

#[tokio::test]
async fn every_event_kind_renders_from_its_fixture_in_a_sandboxed_frame() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ConsoleOptions::new(dir.path().join("company-email.toml"));
    options.events_dir = Some(events_dir());
    let console = Console::new(options);
    let mut browser = Browser::new(&console);
    let index = browser.get("/events").await;
    assert_eq!(index.status, StatusCode::OK);
    for kind in mailroom_events::EventKind::ALL {
        let name = kind.as_str();
        assert!(unescape(&index.html).contains(&format!("href=\"/events/{name}\"")), "{name} listed");
        let page = browser.get(&format!("/events/{name}")).await;
        assert_eq!(page.status, StatusCode::OK, "{name}");
        let text = unescape(&page.html);
        assert!(
            text.contains(&format!("<iframe class=\"preview\" src=\"/events/{name}/message.html\" sandbox=\"\"")),
            "{name}"
        );
        assert!(text.contains("Text part") && text.contains("Message-ID"), "{name}");
        let frame = browser.get(&format!("/events/{name}/message.html")).await;
        assert_eq!(frame.status, StatusCode::OK);
        let csp = frame.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.starts_with("sandbox;") && csp.contains("frame-ancestors 'self'"), "{csp}");
        assert!(frame.html.contains("<!DOCTYPE html>"), "{name}: the customer's HTML");
    }
    let missing = browser.get("/events/no_such_kind").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pasted_json_renders_or_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let console = Console::new(ConsoleOptions::new(dir.path().join("company-email.toml")));
    let mut browser = Browser::new(&console);
    let page = browser.get("/events/invoice_payment_link").await;
    assert!(page.html.contains("no fixture for this kind"), "{}", page.html);
    let data = std::fs::read_to_string(events_dir().join("invoice_payment_link.json")).unwrap();
    let page = browser.post("/events/preview", &[("kind", "invoice_payment_link"), ("data", &data)]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(unescape(&page.html).contains("src=\"/events/pasted/message.html\""));
    let frame = browser.get("/events/pasted/message.html").await;
    assert_eq!(frame.status, StatusCode::OK);
    let page = browser.post("/events/preview", &[("kind", "invoice_payment_link"), ("data", "{\"nope\": 1}")]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.html.contains("id=\"problem\""));
    let page = browser.post("/events/preview", &[("kind", "nope"), ("data", "{}")]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn send_me_a_copy_goes_to_the_given_address_through_the_saved_config() {
    let setup = Setup::new().await;
    let mut browser = Browser::new(&setup.console);
    browser.get("/").await;
    // Without a saved config there is nothing to send through.
    let page = browser.post("/events/pasted/copy", &[("to", "me@company.example"), ("source", "pasted")]).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let data = std::fs::read_to_string(events_dir().join("shipment_confirmed.json")).unwrap();
    browser.post("/events/preview", &[("kind", "shipment_confirmed"), ("data", &data)]).await;
    let page =
        browser.post("/events/shipment_confirmed/copy", &[("to", "me@company.example"), ("source", "pasted")]).await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(page.html.contains("Validate and Save it first"));

    let fields = setup.web_mail(PASSWORD, true);
    browser.post("/", &with_action(&fields, "validate")).await;
    browser.post("/", &with_action(&fields, "save")).await;
    let page = browser.post("/events/shipment_confirmed/copy", &[("to", "not an address"), ("source", "pasted")]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let page =
        browser.post("/events/shipment_confirmed/copy", &[("to", "me@company.example"), ("source", "pasted")]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(page.html.contains("A copy was sent to me@company.example"));
    let received = setup.server.messages();
    assert_eq!(received.len(), 2, "the test mail and the copy");
    let copy = received[1].parsed();
    assert_eq!(copy.to.iter().map(|a| a.address.as_str()).collect::<Vec<_>>(), ["me@company.example"]);
    assert!(copy.cc.is_empty());
}

#[tokio::test]
async fn the_inbox_tab_lists_what_the_test_server_received() {
    let setup = Setup::new().await;
    let mut browser = Browser::new(&setup.console);
    assert_eq!(browser.get("/inbox").await.status, StatusCode::NOT_FOUND, "no inbox without a source");
    assert!(!browser.get("/").await.html.contains("href=\"/inbox\""));

    let server = std::sync::Arc::new(setup.server);
    let received = server.clone();
    let mut options = ConsoleOptions::new(setup.dir.path().join("company-email.toml"));
    options.inbox = Some(mailroom_web::InboxSource::new(move || {
        received
            .messages()
            .iter()
            .map(|m| {
                let parsed = m.parsed();
                mailroom_web::InboxMessage {
                    subject: parsed.subject.clone().unwrap_or_default(),
                    html: Some("<p>hello</p>".into()),
                    text: parsed.text.clone(),
                    size: m.raw.len(),
                    over_tls: m.over_tls,
                    ..Default::default()
                }
            })
            .collect()
    }));
    let console = Console::new(options);
    let mut browser = Browser::new(&console);
    let page = browser.get("/").await;
    assert!(page.html.contains("href=\"/inbox\""), "the tab is in the navigation");
    let fields = [
        ("service", "web_mail"),
        ("email_address", USER),
        ("smtp_server", "localhost"),
        ("smtp_port", &server.addr().port().to_string()),
        ("smtp_enable_ssl", "on"),
        ("smtp_username", USER),
        ("smtp_password", PASSWORD),
        ("smtp_ca_file", "ca.pem"),
        ("action", "validate"),
    ];
    assert!(browser.post("/", &fields).await.html.contains("Validated"));
    let inbox = browser.get("/inbox").await;
    assert!(inbox.html.contains("1. mailroom test message"), "{}", inbox.html);
    assert!(inbox.html.contains("over TLS"));
    let frame = browser.get("/inbox/1/message.html").await;
    assert_eq!(frame.html, "<p>hello</p>");
    assert!(frame.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().starts_with("sandbox;"));
    assert_eq!(browser.get("/inbox/2/message.html").await.status, StatusCode::NOT_FOUND);
    assert_eq!(browser.get("/inbox/0/message.html").await.status, StatusCode::NOT_FOUND);
}

/// The saved config's outbox, opened the way the CLI opens it (creating the default SQLite file).
async fn outbox_of(setup: &Setup) -> mailroom_outbox::Store {
    let loaded = mailroom::load_config_file(&setup.config_path()).unwrap();
    mailroom::open_outbox(&setup.config_path(), &loaded.outbox).await.unwrap()
}

async fn state_of(store: &mailroom_outbox::Store, id: i64) -> mailroom_outbox::State {
    store.list(None, 100).await.unwrap().into_iter().find(|m| m.id == id).unwrap().state
}

fn order(n: usize) -> mailroom_outbox::NewMessage {
    let message = mailroom_core::MessageDraft::new(USER.parse().unwrap())
        .to(format!("customer{n}@example.com").parse().unwrap())
        .subject(format!("Order {n} confirmed – danke schön"))
        .text("Your order is confirmed.\n")
        .message_id(format!("<order-{n}@northwind.example>"))
        .build()
        .unwrap();
    mailroom_outbox::NewMessage {
        event_kind: Some("order_confirmed".into()),
        ..mailroom_outbox::NewMessage::from_outgoing(&message)
    }
}

async fn validate_and_save(setup: &Setup, browser: &mut Browser) {
    browser.get("/").await;
    let fields = setup.web_mail(PASSWORD, true);
    assert!(browser.post("/", &with_action(&fields, "validate")).await.html.contains("Validated"));
    assert!(browser.post("/", &with_action(&fields, "save")).await.html.contains("Saved"));
}

#[tokio::test]
async fn the_outbox_page_explains_what_is_missing_and_creates_nothing() {
    let setup = Setup::new().await;
    let mut browser = Browser::new(&setup.console);
    let page = browser.get("/outbox").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("Validate and Save it on the Company Email page first"), "{}", page.html);
    assert!(page.html.contains("href=\"/outbox\" aria-current=\"page\""), "the Outbox tab");

    validate_and_save(&setup, &mut browser).await;
    let page = browser.get("/outbox").await;
    assert!(page.html.contains("The outbox is not enabled"), "{}", page.html);
    assert!(page.html.contains("[outbox]"));
    let retried = browser.post("/outbox/1/retry", &[]).await;
    assert_eq!(retried.status, StatusCode::CONFLICT);
    assert!(retried.html.contains("Nothing was changed"));
    assert_eq!(browser.post("/outbox/run", &[]).await.status, StatusCode::CONFLICT);
    assert!(!setup.dir.path().join(mailroom::DEFAULT_OUTBOX_FILE).exists(), "looking created no database");

    // An [outbox] section enables it: the page creates the database it names.
    let config = std::fs::read_to_string(setup.config_path()).unwrap();
    std::fs::write(setup.config_path(), format!("{config}\n[outbox]\nurl = \"sqlite:queue.db\"\n")).unwrap();
    let page = browser.get("/outbox").await;
    assert!(page.html.contains("The outbox is empty."), "{}", page.html);
    assert!(setup.dir.path().join("queue.db").exists());
}

#[tokio::test]
async fn the_outbox_page_counts_lists_retries_resolves_and_runs() {
    use mailroom_outbox::{Outcome, State};
    let setup = Setup::new().await;
    let mut browser = Browser::new(&setup.console);
    validate_and_save(&setup, &mut browser).await;
    let store = outbox_of(&setup).await;
    store.enqueue(&(1..=4).map(order).collect::<Vec<_>>()).await.unwrap();
    let claimed = store.claim("test", 3, std::time::Duration::from_secs(60)).await.unwrap();
    let error = |kind: &str, message: &str| serde_json::json!({"kind": kind, "message": message}).to_string();
    store
        .finish(&[
            Outcome::Failed {
                id: claimed[0].id,
                claim_token: claimed[0].claim_token,
                error: error("recipient_rejected", "550 5.1.1 <customer1@example.com>: no such user"),
            },
            Outcome::Unknown {
                id: claimed[1].id,
                claim_token: claimed[1].claim_token,
                error: error("delivery_unknown", "The connection was lost after the message was handed over."),
            },
            Outcome::Unknown {
                id: claimed[2].id,
                claim_token: claimed[2].claim_token,
                error: error("delivery_unknown", "-"),
            },
        ])
        .await
        .unwrap();

    let page = browser.get("/outbox").await;
    assert_eq!(page.status, StatusCode::OK);
    for (count, state) in [(1, "queued"), (0, "sending"), (0, "sent"), (1, "failed"), (2, "unknown")] {
        assert!(
            page.html.contains(&format!("<span class=\"count\">{count}</span> <strong>{state}</strong>")),
            "{state}"
        );
    }
    let text = unescape(&page.html);
    for needle in [
        "Order 1 confirmed – danke schön",
        "customer4@example.com",
        "order_confirmed",
        "recipient_rejected: 550 5.1.1 <customer1@example.com>: no such user",
        "<order-2@northwind.example>",
    ] {
        assert!(text.contains(needle), "{needle} not on the page");
    }
    assert!(page.html.contains("action=\"/outbox/1/retry\""));
    assert!(page.html.contains("action=\"/outbox/2/resolve\"") && page.html.contains("action=\"/outbox/3/resolve\""));
    assert!(!page.html.contains("action=\"/outbox/4/"), "a queued message has no button");
    assert!(!page.html.contains("auto-refresh"), "nothing is being sent");

    // Bad input changes nothing.
    assert_eq!(browser.post("/outbox/2/retry", &[]).await.status, StatusCode::CONFLICT, "unknown is not failed");
    let wrong = browser.post("/outbox/1/resolve", &[("decision", "sent")]).await;
    assert_eq!(wrong.status, StatusCode::CONFLICT);
    assert!(wrong.html.contains("message 1 is failed, not unknown"), "{}", wrong.html);
    assert_eq!(browser.post("/outbox/999/retry", &[]).await.status, StatusCode::NOT_FOUND);
    let not_a_number = browser.post("/outbox/abc/retry", &[]).await;
    assert_eq!(not_a_number.status, StatusCode::NOT_FOUND);
    assert!(not_a_number.html.contains("No such message"));
    assert_eq!(browser.post("/outbox/2/resolve", &[("decision", "maybe")]).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(browser.post("/outbox/2/resolve", &[("sure", "1")]).await.status, StatusCode::BAD_REQUEST);
    let no_csrf = browser
        .send(
            Request::post("/outbox/1/retry").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
            Body::empty(),
        )
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    let csrf = std::mem::replace(&mut browser.csrf, "forged".into());
    assert_eq!(browser.post("/outbox/1/retry", &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(browser.post("/outbox/2/resolve", &[("decision", "sent")]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(browser.post("/outbox/run", &[]).await.status, StatusCode::FORBIDDEN);
    browser.csrf = csrf;
    let states = [state_of(&store, 1).await, state_of(&store, 2).await, state_of(&store, 3).await];
    assert_eq!(states, [State::Failed, State::Unknown, State::Unknown]);

    // Retry and both decisions.
    let page = browser.post("/outbox/1/retry", &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(page.html.contains("Message 1 is queued again"));
    assert!(browser.post("/outbox/2/resolve", &[("decision", "sent")]).await.html.contains("Message 2 is marked sent"));
    let page = browser.post("/outbox/3/resolve", &[("decision", "resend")]).await;
    assert!(page.html.contains("Message 3 will be sent again"));
    let states = [state_of(&store, 1).await, state_of(&store, 2).await, state_of(&store, 3).await];
    assert_eq!(states, [State::Queued, State::Sent, State::Queued]);

    // While a message is being sent the page refreshes itself (unless asked not to).
    let held = store.claim("another-worker", 1, std::time::Duration::from_secs(60)).await.unwrap();
    let page = browser.get("/outbox").await;
    assert!(page.html.contains("id=\"auto-refresh\" data-seconds=\"2\""), "{}", page.html);
    let page = browser.get("/outbox?auto=off").await;
    assert!(!page.html.contains("auto-refresh") && page.html.contains("Refresh automatically"));
    let retry =
        Outcome::Retry { id: held[0].id, claim_token: held[0].claim_token, not_before_ms: 0, error: error("x", "y") };
    store.finish(&[retry]).await.unwrap();

    // Run sends what is queued through the saved config; the page follows it.
    let page = browser.post("/outbox/run", &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.headers[header::LOCATION], "/outbox");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let page = loop {
        let page = browser.get("/outbox").await;
        if page.html.contains("The last run from this page") {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "the run did not finish: {}", page.html);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(page.html.contains("3 sent, 0 failed, 0 unknown, 0 still queued."), "{}", page.html);
    assert!(page.html.contains("<span class=\"count\">4</span> <strong>sent</strong>"));
    assert_eq!(setup.server.messages().len(), 4, "the validate mail and messages 1, 3 and 4 (2 was marked sent)");
}

/// The Email Services: Microsoft 365 values for the mocked tenant, with `secret`.
fn microsoft_fields(mock: &mailroom_testkit::MockMicrosoft365, secret: &str) -> Vec<(&'static str, String)> {
    let tenant = mock.tenant();
    vec![
        ("service", "microsoft".to_owned()),
        ("email_address", tenant.mailbox.clone()),
        ("display_name", "Company ERP".to_owned()),
        ("ms_tenant", tenant.tenant.clone()),
        ("ms_client_id", tenant.client_id.clone()),
        ("ms_auth", "application".to_owned()),
        ("ms_client_secret", secret.to_owned()),
        ("ms_authority", mock.uri()),
        ("ms_api_base", mock.uri()),
        ("timeout_secs", "5".to_owned()),
    ]
}

#[tokio::test]
async fn microsoft_365_validates_saves_and_diagnoses_through_graph() {
    let mock = mailroom_testkit::MockMicrosoft365::start(mailroom_testkit::MicrosoftTenant::company()).await;
    let setup = Setup::new().await;
    let mut browser = Browser::new(&setup.console);
    let page = browser.get("/").await;
    for label in ["Email Services: Microsoft 365", "Tenant", "Application (client) ID", "Sign in as", "Client secret"] {
        assert!(page.html.contains(&format!(">{label}<")), "no label {label}");
    }

    // A wrong secret is shown at the Microsoft client secret, with the Entra step.
    let wrong = microsoft_fields(&mock, "wrong-secret-value");
    let page = browser.post("/", &with_action(&wrong, "validate")).await;
    let secret = input_tag(&page.html, "ms_client_secret");
    assert!(secret.contains("aria-invalid=\"true\"") && secret.contains("ms_client_secret-error"), "{}", page.html);
    assert!(page.html.contains("AADSTS7000215"), "the documented identity-platform code");
    assert!(page.html.contains("href=\"#ms_client_secret\""), "the notice links the field");
    assert!(!page.html.contains("wrong-secret-value"));
    assert!(mock.sent().is_empty());

    // A tenant that is not one directory is a field error before any request.
    let mut common = microsoft_fields(&mock, "right-secret");
    common.iter_mut().find(|(k, _)| *k == "ms_tenant").unwrap().1 = "common".into();
    let page = browser.post("/", &with_action(&common, "validate")).await;
    assert!(input_tag(&page.html, "ms_tenant").contains("aria-invalid=\"true\""), "{}", page.html);

    let fields = microsoft_fields(&mock, "right-secret");
    let page = browser.post("/", &with_action(&fields, "diagnose")).await;
    assert!(page.html.contains("Diagnosis: every step succeeded"), "{}", page.html);
    let page = browser.post("/", &with_action(&fields, "validate")).await;
    assert!(page.html.contains("Validated: the test mail was accepted"), "{}", page.html);
    assert_eq!(mock.sent().len(), 1, "Graph accepted the test mail");
    assert!(save_enabled(&page.html));
    let page = browser.post("/", &with_action(&fields, "save")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let config = std::fs::read_to_string(setup.config_path()).unwrap();
    assert!(config.contains("service = \"email_services\"") && config.contains("provider = \"microsoft\""), "{config}");
    assert!(
        config.contains("client_secret_env = \"MAILROOM_MS_SECRET\"") && !config.contains("right-secret"),
        "{config}"
    );
    assert!(std::fs::read_to_string(setup.secrets_path()).unwrap().contains("MAILROOM_MS_SECRET=\"right-secret\""));
    let loaded = mailroom::load_config_file(&setup.config_path()).unwrap();
    assert!(matches!(loaded.config.service, mailroom_core::ServiceConfig::Graph(_)));

    // A fresh session shows the saved values, the secret write-only.
    let mut other = Browser::new(&setup.console);
    let page = other.get("/").await;
    assert!(input_tag(&page.html, "service-microsoft").contains("checked"));
    assert!(input_tag(&page.html, "ms_client_id").contains(&mock.tenant().client_id));
    assert!(input_tag(&page.html, "ms_auth-application").contains("checked"));
    assert!(page.html.contains("Saved: leave empty to keep it"));
    assert!(!page.html.contains("right-secret"));
}

#[tokio::test]
async fn the_microsoft_365_smtp_preset_warns_of_december_2026_and_offers_graph() {
    let setup = Setup::new().await;
    let mut browser = Browser::new(&setup.console);
    browser.get("/").await;
    let fields = vec![("service", "web_mail".to_owned()), ("email_address", USER.to_owned())];
    let page = browser.post("/", &with_action(&fields, "preset:office365")).await;
    assert!(input_tag(&page.html, "smtp_server").contains("value=\"smtp.office365.com\""));
    assert!(page.html.contains("end of December 2026"), "{}", page.html);
    assert!(page.html.contains("value=\"preset:graph\""), "Graph is offered");
    let page = browser.post("/", &with_action(&fields, "preset:graph")).await;
    assert!(input_tag(&page.html, "service-microsoft").contains("checked"), "{}", page.html);
    assert!(page.html.contains("Mail.Send"));
}

/// One plain HTTP/1.1 GET to a loopback URL (the test plays the browser on the sign-in
/// page and the redirect): the status and the `Location` header.
async fn loopback_get(url: &str) -> (u16, Option<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("a loopback http:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let port = authority.rsplit_once(':').map_or(80, |(_, port)| port.parse().unwrap());
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let path = if path.is_empty() { "/" } else { path };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(20), stream.read_to_end(&mut reply)).await.unwrap().unwrap();
    let reply = String::from_utf8_lossy(&reply);
    let status = reply.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let location = reply
        .lines()
        .take_while(|line| !line.is_empty())
        .find_map(|line| line.strip_prefix("location: ").or_else(|| line.strip_prefix("Location: ")))
        .map(str::to_owned);
    (status, location)
}

/// The sign-in page link of the Connect page.
fn authorize_link(html: &str) -> String {
    let text = unescape(html);
    let link =
        text.split("href=\"").filter_map(|part| part.split('"').next()).find(|href| href.contains("/authorize?"));
    link.unwrap_or_else(|| panic!("no sign-in link: {html}")).to_owned()
}

/// Waits until the Connect page shows the flow's end.
async fn connect_outcome(browser: &mut Browser) -> Page {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let page = browser.get("/connect").await;
        if !page.html.contains("http-equiv=\"refresh\"") {
            return page;
        }
        assert!(std::time::Instant::now() < deadline, "the sign-in did not end: {}", page.html);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn connect_microsoft_signs_in_the_company_email_and_stores_its_token() {
    let mock = mailroom_testkit::MockMicrosoft365::start(mailroom_testkit::MicrosoftTenant::company()).await;
    let setup = Setup::new().await;
    let mut browser = Browser::new(&setup.console);
    browser.get("/").await;
    let mut fields = microsoft_fields(&mock, "right-secret");
    fields.iter_mut().find(|(k, _)| *k == "ms_auth").unwrap().1 = "delegated".into();

    // Application sign-in has nothing to connect: the error sits at Sign in as.
    let application = microsoft_fields(&mock, "right-secret");
    let page = browser.post("/", &with_action(&application, "connect")).await;
    assert!(input_tag(&page.html, "ms_auth-application").contains("aria-invalid=\"true\""), "{}", page.html);

    // Someone else signs in: refused, nothing stored.
    mock.sign_in_as("someone.else@company.com");
    let page = browser.post("/", &with_action(&fields, "connect")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    let page = browser.get("/connect").await;
    assert!(page.html.contains("Connect Microsoft") && page.html.contains("Accept"));
    let authorize = authorize_link(&page.html);
    assert!(
        authorize.starts_with(&format!("{}/company.onmicrosoft.com/oauth2/v2.0/authorize?", mock.uri())),
        "{authorize}"
    );
    let (status, redirect) = loopback_get(&authorize).await;
    assert_eq!(status, 302);
    loopback_get(&redirect.unwrap()).await;
    let page = connect_outcome(&mut browser).await;
    assert!(page.html.contains("Connecting failed") && page.html.contains("someone.else@company.com"), "{}", page.html);
    let token_file = setup.dir.path().join("company-email.microsoft-token.json");
    assert!(!token_file.exists());

    // The Company Email signs in: the token is stored and Validate sends through Graph.
    mock.sign_in_as(&mock.tenant().mailbox.clone());
    browser.post("/", &with_action(&fields, "connect")).await;
    let page = browser.get("/connect").await;
    let authorize = authorize_link(&page.html);
    let (_, redirect) = loopback_get(&authorize).await;
    loopback_get(&redirect.unwrap()).await;
    let page = connect_outcome(&mut browser).await;
    assert!(page.html.contains("Connected") && page.html.contains("erp@company.com"), "{}", page.html);
    assert!(!page.html.contains("right-refresh-token"));
    #[cfg(unix)]
    assert_eq!(mode(&token_file), 0o600);
    let page = browser.post("/", &with_action(&fields, "validate")).await;
    assert!(page.html.contains("Validated: the test mail was accepted"), "{}", page.html);
    assert_eq!(mock.sent().len(), 1);
}
