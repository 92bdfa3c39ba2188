//! The scenario catalogue runner: starts each entry's fake server (SMTP, or an EWS / Google endpoint on loopback HTTP), writes a config for it, runs the validate flow and compares the classified error with the expectation.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailroom_core::config::LoadedConfig;
use mailroom_core::{CompanyEmail, Mailbox, SendError, ServiceConfig, Transport};
use mailroom_smtp::{Resolver, SmtpTransport};
use mailroom_testkit::{FakeSmtpServer, Fault, KitError, ListenerTls, Persona, Reply, ScriptedSmtpServer, Step};
use serde::Deserialize;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

/// The Web Mail catalogue shipped in `fixtures/scenarios/smtp.toml`.
pub const SMTP_CATALOGUE: &str = include_str!("../fixtures/scenarios/smtp.toml");

/// The Exchange and Email Services catalogue shipped in `fixtures/scenarios/http.toml`.
pub const HTTP_CATALOGUE: &str = include_str!("../fixtures/scenarios/http.toml");

/// The account every fake server accepts.
pub const ACCOUNT: (&str, &str) = ("erp@company.com", "right-password");

#[derive(Debug, Deserialize)]
struct Catalogue {
    scenario: Vec<Scenario>,
}

/// One catalogue entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Unique name.
    pub name: String,
    /// What it reproduces.
    pub description: String,
    /// The documented ERP error expected, if any.
    pub documented_error: Option<String>,
    /// The service type of the client config: `web_mail` (default), `exchange`, `email_services` (Gmail) or `microsoft` (Email Services through Graph).
    #[serde(default = "web_mail")]
    pub service: String,
    /// The expected kind (`ok` for success).
    pub kind: String,
    /// The expected field.
    pub field: Option<String>,
    /// The server to start.
    pub server: ServerSpec,
    /// The client config.
    #[serde(default)]
    pub client: ClientSpec,
    /// Bounded by `timeout_secs` rather than the 2 s budget.
    #[serde(default)]
    pub slow: bool,
    /// Text the remediation must contain (e.g. the way out of a dead end).
    #[serde(default)]
    pub remediation_contains: Option<String>,
}

/// Which server a scenario talks to.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerSpec {
    /// A provider persona in a fault mode.
    Persona {
        /// `gmail_587`, `gmail_465` or `office365_587`.
        persona: String,
        /// `none`, `bad_password`, `app_password_required`, `smtp_auth_disabled`,
        /// `starttls_required`, `sender_not_allowed`, `send_as_denied`, `oauth_token_rejected`.
        fault: String,
    },
    /// The mailin-embedded fake server.
    Fake {
        /// Offer STARTTLS.
        #[serde(default = "yes")]
        starttls: bool,
        /// TLS from the first byte.
        #[serde(default)]
        implicit_tls: bool,
        /// Advertised SIZE limit.
        max_message_size: Option<usize>,
        /// A recipient refused with 550 5.1.1.
        reject_recipient: Option<String>,
    },
    /// The scripted responder.
    Script {
        /// `none`, `starttls` or `implicit`.
        #[serde(default = "starttls")]
        tls: String,
        /// Never say anything.
        #[serde(default)]
        silent: bool,
        /// Hang up at this step (`connect`, `greeting`, `ehlo`, `starttls`, `auth`, `mail`, `rcpt`, `data_command`, `message_body`).
        hang_up_at: Option<String>,
        /// Bytes to send instead of SMTP.
        garbage: Option<String>,
        /// The reply after the message data, as `[code, "line", …]`.
        end_of_data_reply: Option<Vec<toml::Value>>,
    },
    /// An EWS endpoint answering every request with one captured reply.
    Ews {
        /// The HTTP status.
        status: u16,
        /// The body, a file under `fixtures/` (e.g. `ews/create_item_success.xml`).
        fixture: Option<String>,
        /// Extra response headers as `[name, value]` pairs (repeat a name for several values).
        #[serde(default)]
        headers: Vec<(String, String)>,
    },
    /// Google's token endpoint (`/token`) and the Gmail upload endpoint, each with one reply.
    Google {
        /// The token endpoint's status.
        token_status: u16,
        /// Its body, a file under `fixtures/`.
        token_fixture: String,
        /// The upload endpoint's status.
        #[serde(default = "http_ok")]
        api_status: u16,
        /// Its body (default `google/send_success.json`).
        #[serde(default = "gmail_sent")]
        api_fixture: String,
    },
    /// The testkit's mocked Microsoft 365 (identity platform + Graph), with an optional fault
    /// on the token endpoint or on Graph (a fixture of `fixtures/microsoft`).
    Microsoft {
        /// Which endpoint fails: `token` or `graph`; none for the happy path.
        #[serde(default)]
        fails: Option<String>,
        /// The failing reply's status.
        #[serde(default)]
        status: u16,
        /// Its body, a file name under `fixtures/microsoft/`.
        #[serde(default)]
        fixture: Option<String>,
        /// A `Retry-After` header on it.
        #[serde(default)]
        retry_after: Option<String>,
    },
    /// A port nothing listens on.
    ClosedPort,
    /// No server: the scenario is about the config alone.
    None,
}

fn yes() -> bool {
    true
}

fn starttls() -> String {
    "starttls".into()
}

fn web_mail() -> String {
    "web_mail".into()
}

fn http_ok() -> u16 {
    200
}

fn gmail_sent() -> String {
    "google/send_success.json".into()
}

/// The client side of a scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientSpec {
    /// The server name in the config (default 127.0.0.1).
    pub server: String,
    /// Enable SSL checkbox.
    pub enable_ssl: bool,
    /// Explicit TLS mode.
    pub tls: Option<String>,
    /// Log in with the account (default true).
    pub login: bool,
    /// The password (default the right one).
    pub password: String,
    /// Trust the server's generated CA (default true).
    pub trust_server_ca: bool,
    /// Per-step deadline.
    pub timeout_secs: u64,
    /// Test-mail recipient instead of the sender.
    pub to: Option<String>,
    /// A whole config instead of the generated one.
    pub config: Option<String>,
}

impl Default for ClientSpec {
    fn default() -> Self {
        ClientSpec {
            server: "127.0.0.1".into(),
            enable_ssl: true,
            tls: None,
            login: true,
            password: ACCOUNT.1.into(),
            trust_server_ca: true,
            timeout_secs: 5,
            to: None,
            config: None,
        }
    }
}

/// What running one scenario showed.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The scenario.
    pub scenario: Scenario,
    /// Observed kind (`ok` on success).
    pub kind: String,
    /// Observed field.
    pub field: Option<String>,
    /// Observed documented error.
    pub documented_error: Option<String>,
    /// Wall time of the validate flow.
    pub elapsed: Duration,
    /// The error's detail or a setup failure.
    pub detail: String,
    /// The error's remediation steps, joined by newlines.
    pub remediation: String,
}

impl Outcome {
    /// Whether kind, field and documented error match, within the time budget.
    pub fn passed(&self) -> bool {
        let expected = &self.scenario;
        let in_budget = expected.slow || self.elapsed < Duration::from_secs(2);
        self.kind == expected.kind
            && (expected.kind == "ok" || self.field == expected.field)
            && self.documented_error == expected.documented_error
            && expected.remediation_contains.as_ref().is_none_or(|needle| self.remediation.contains(needle.as_str()))
            && in_budget
    }
}

/// Parses both catalogues: Web Mail first, then Exchange and Email Services.
pub fn load_catalogue() -> Result<Vec<Scenario>, String> {
    let mut scenarios = Vec::new();
    for (name, text) in [("smtp.toml", SMTP_CATALOGUE), ("http.toml", HTTP_CATALOGUE)] {
        let catalogue: Catalogue = toml::from_str(text).map_err(|e| format!("fixtures/scenarios/{name}: {e}"))?;
        scenarios.extend(catalogue.scenario);
    }
    Ok(scenarios)
}

/// A running server, held only so it lives until the scenario ends.
#[allow(dead_code)]
enum Running {
    Fake(FakeSmtpServer),
    Script(ScriptedSmtpServer),
    Http(wiremock::MockServer),
    Microsoft(Box<mailroom_testkit::MockMicrosoft365>),
    Nothing,
}

struct Started {
    _server: Running,
    port: u16,
    ca_pem: Option<String>,
}

fn kit(error: KitError) -> String {
    error.to_string()
}

fn persona(name: &str) -> Result<Persona, String> {
    match name {
        "gmail_587" => Ok(Persona::gmail_587()),
        "gmail_465" => Ok(Persona::gmail_465()),
        "office365_587" => Ok(Persona::office365_587()),
        other => Err(format!("unknown persona {other}")),
    }
}

fn fault(name: &str) -> Result<Fault, String> {
    Ok(match name {
        "none" => Fault::None,
        "bad_password" => Fault::BadPassword,
        "app_password_required" => Fault::AppPasswordRequired,
        "smtp_auth_disabled" => Fault::SmtpAuthDisabled,
        "basic_auth_retired" => Fault::BasicAuthRetired,
        "starttls_required" => Fault::StartTlsRequired,
        "sender_not_allowed" => Fault::SenderNotAllowed,
        "send_as_denied" => Fault::SendAsDenied,
        "oauth_token_rejected" => Fault::OAuthTokenRejected,
        other => return Err(format!("unknown fault {other}")),
    })
}

fn step(name: &str) -> Result<Step, String> {
    Ok(match name {
        "connect" => Step::Connect,
        "greeting" => Step::Greeting,
        "ehlo" => Step::Ehlo,
        "starttls" => Step::StartTls,
        "auth" => Step::Auth,
        "mail" => Step::Mail,
        "rcpt" => Step::Rcpt,
        "data_command" => Step::DataCommand,
        "message_body" => Step::MessageBody,
        other => return Err(format!("unknown step {other}")),
    })
}

fn reply(values: &[toml::Value]) -> Result<Reply, String> {
    let code = values.first().and_then(toml::Value::as_integer).ok_or("a reply starts with its code")?;
    let lines: Vec<String> = values[1..].iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
    Ok(Reply::new(code as u16, lines))
}

async fn start(spec: &ServerSpec) -> Result<Started, String> {
    match spec {
        ServerSpec::Persona { persona: name, fault: fault_name } => {
            let server =
                persona(name)?.account(ACCOUNT.0, ACCOUNT.1).fault(fault(fault_name)?).start().await.map_err(kit)?;
            Ok(Started {
                port: server.addr().port(),
                ca_pem: Some(server.ca_pem().to_owned()),
                _server: Running::Script(server),
            })
        }
        ServerSpec::Fake { starttls, implicit_tls, max_message_size, reject_recipient } => {
            let mut builder =
                FakeSmtpServer::builder().starttls(*starttls).implicit_tls(*implicit_tls).account(ACCOUNT.0, ACCOUNT.1);
            if let Some(size) = max_message_size {
                builder = builder.max_message_size(*size);
            }
            if let Some(address) = reject_recipient {
                builder = builder.reject_recipient(address.clone());
            }
            let server = builder.start().await.map_err(kit)?;
            Ok(Started {
                port: server.addr().port(),
                ca_pem: Some(server.ca_pem().to_owned()),
                _server: Running::Fake(server),
            })
        }
        ServerSpec::Script { tls, silent, hang_up_at, garbage, end_of_data_reply } => {
            let listener = match tls.as_str() {
                "none" => ListenerTls::None,
                "starttls" => ListenerTls::StartTls,
                "implicit" => ListenerTls::Implicit,
                other => return Err(format!("unknown tls {other}")),
            };
            let mut builder = ScriptedSmtpServer::builder().tls(listener).account(ACCOUNT.0, ACCOUNT.1);
            if *silent {
                builder = builder.silent();
            }
            if let Some(at) = hang_up_at {
                builder = builder.hang_up_at(step(at)?);
            }
            if let Some(bytes) = garbage {
                builder = builder.garbage(bytes.as_bytes().to_vec());
            }
            if let Some(values) = end_of_data_reply {
                builder = builder.end_of_data_reply(reply(values)?);
            }
            let server = builder.start().await.map_err(kit)?;
            Ok(Started {
                port: server.addr().port(),
                ca_pem: Some(server.ca_pem().to_owned()),
                _server: Running::Script(server),
            })
        }
        ServerSpec::Ews { status, fixture, headers } => {
            let mut reply = ResponseTemplate::new(*status);
            for (name, value) in headers {
                reply = reply.append_header(name.as_str(), value.as_str());
            }
            if let Some(fixture) = fixture {
                reply = reply
                    .insert_header("content-type", "text/xml; charset=utf-8")
                    .set_body_string(read_fixture(fixture)?);
            }
            let server = wiremock::MockServer::start().await;
            Mock::given(method("POST")).and(path("/EWS/Exchange.asmx")).respond_with(reply).mount(&server).await;
            Ok(Started { port: server.address().port(), ca_pem: None, _server: Running::Http(server) })
        }
        ServerSpec::Microsoft { fails, status, fixture, retry_after } => {
            let mock = mailroom_testkit::MockMicrosoft365::start(mailroom_testkit::MicrosoftTenant::company()).await;
            let fault = mailroom_testkit::MicrosoftFault {
                status: *status,
                fixture: fixture.clone(),
                retry_after: retry_after.clone(),
                times: None,
            };
            match fails.as_deref() {
                None => {}
                Some("token") => mock.token_fault(fault),
                Some("graph") => mock.graph_fault(fault),
                Some(other) => return Err(format!("unknown failing endpoint {other}: use token or graph")),
            }
            let port = mock.uri().rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_default();
            Ok(Started { port, ca_pem: None, _server: Running::Microsoft(Box::new(mock)) })
        }
        ServerSpec::Google { token_status, token_fixture, api_status, api_fixture } => {
            let json = |status: u16, fixture: &str| -> Result<ResponseTemplate, String> {
                Ok(ResponseTemplate::new(status)
                    .insert_header("content-type", "application/json; charset=UTF-8")
                    .set_body_string(read_fixture(fixture)?))
            };
            let server = wiremock::MockServer::start().await;
            Mock::given(method("POST"))
                .and(path("/token"))
                .respond_with(json(*token_status, token_fixture)?)
                .mount(&server)
                .await;
            Mock::given(method("POST"))
                .and(path("/upload/gmail/v1/users/me/messages/send"))
                .respond_with(json(*api_status, api_fixture)?)
                .mount(&server)
                .await;
            Ok(Started { port: server.address().port(), ca_pem: None, _server: Running::Http(server) })
        }
        ServerSpec::ClosedPort => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            let port = listener.local_addr().map_err(|e| e.to_string())?.port();
            drop(listener);
            Ok(Started { _server: Running::Nothing, port, ca_pem: None })
        }
        ServerSpec::None => Ok(Started { _server: Running::Nothing, port: 1, ca_pem: None }),
    }
}

fn read_fixture(relative: &str) -> Result<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(relative);
    std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The Company Email config a scenario's client uses.
pub fn client_config(service: &str, client: &ClientSpec, port: u16, ca_file: Option<&Path>) -> String {
    if let Some(config) = &client.config {
        return config.clone();
    }
    let header = format!("email_address = \"{}\"\ndisplay_name = \"Company ERP\"\n", ACCOUNT.0);
    match service {
        "exchange" => {
            return format!(
                "service = \"exchange\"\n{header}\n[exchange]\nuri = \"http://127.0.0.1:{port}/EWS/Exchange.asmx\"\ndomain = \"company.com\"\nusername = \"erp\"\npassword = \"{}\"\nauth = \"basic\"\ntimeout_secs = {}\n",
                client.password, client.timeout_secs
            );
        }
        "microsoft" => {
            let tenant = mailroom_testkit::MicrosoftTenant::company();
            return format!(
                "service = \"email_services\"\n{header}\n[email_services]\nprovider = \"microsoft\"\ntenant = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nauth = \"application\"\nauthority = \"http://127.0.0.1:{port}\"\napi_base = \"http://127.0.0.1:{port}\"\ntimeout_secs = {}\n",
                tenant.tenant,
                tenant.client_id,
                tenant.client_secret.unwrap_or_default(),
                client.timeout_secs
            );
        }
        "email_services" => {
            return format!(
                "service = \"email_services\"\n{header}\n[email_services]\nclient_id = \"1234-scenario.apps.googleusercontent.com\"\nclient_secret = \"scenario-client-secret\"\nrefresh_token = \"1//scenario-refresh-token\"\nauth_uri = \"http://127.0.0.1:{port}/auth\"\ntoken_uri = \"http://127.0.0.1:{port}/token\"\napi_base = \"http://127.0.0.1:{port}/\"\ntimeout_secs = {}\n",
                client.timeout_secs
            );
        }
        _ => {}
    }
    let mut text = format!(
        "service = \"web_mail\"\nemail_address = \"{}\"\ndisplay_name = \"Company ERP\"\n\n[web_mail]\nserver = \"{}\"\nport = {port}\nenable_ssl = {}\ntimeout_secs = {}\n",
        ACCOUNT.0, client.server, client.enable_ssl, client.timeout_secs
    );
    if let Some(tls) = &client.tls {
        text.push_str(&format!("tls = \"{tls}\"\n"));
    }
    if client.login {
        text.push_str(&format!("username = \"{}\"\npassword = \"{}\"\n", ACCOUNT.0, client.password));
    }
    if let Some(path) = ca_file {
        text.push_str(&format!("ca_file = \"{}\"\n", path.display()));
    }
    text
}

/// Resolves only `localhost` and the alias the certificate does not carry; anything else fails without DNS.
pub fn hermetic_resolver() -> Resolver {
    let loopback = std::net::Ipv4Addr::LOCALHOST.into();
    Resolver::only([("localhost", loopback), ("alias.mailroom.test", loopback)])
}

/// Runs one scenario end to end.
pub async fn run(scenario: &Scenario, workdir: &Path) -> Outcome {
    let outcome = |kind: &str, error: Option<&SendError>, elapsed, detail: String| Outcome {
        scenario: scenario.clone(),
        kind: kind.to_owned(),
        field: error.and_then(SendError::field).map(str::to_owned),
        documented_error: error.and_then(SendError::documented_error).map(|d| d.as_str().to_owned()),
        elapsed,
        detail,
        remediation: error.map(|e| e.remediation().join("\n")).unwrap_or_default(),
    };
    let started = match start(&scenario.server).await {
        Ok(started) => started,
        Err(reason) => return outcome("setup_failed", None, Duration::ZERO, reason),
    };
    let ca_file: Option<PathBuf> = match (&started.ca_pem, scenario.client.trust_server_ca) {
        (Some(pem), true) => {
            let path = workdir.join(format!("{}-ca.pem", scenario.name));
            if let Err(e) = std::fs::write(&path, pem) {
                return outcome("setup_failed", None, Duration::ZERO, e.to_string());
            }
            Some(path)
        }
        _ => None,
    };
    let text = client_config(&scenario.service, &scenario.client, started.port, ca_file.as_deref());
    let clock = Instant::now();
    let loaded: LoadedConfig = match mailroom::load_config_text(&text, workdir, &|_| None) {
        Ok(loaded) => loaded,
        Err(mailroom::LoadError::Invalid { errors, .. }) => {
            let error = errors[0].to_send_error();
            return outcome("invalid_config", Some(&error), clock.elapsed(), error.detail().to_owned());
        }
        Err(other) => return outcome("setup_failed", None, Duration::ZERO, other.to_string()),
    };
    let to = match scenario.client.to.as_deref().map(str::parse::<Mailbox>).transpose() {
        Ok(to) => to,
        Err(e) => return outcome("setup_failed", None, Duration::ZERO, e.to_string()),
    };
    let result = send_test_mail(&loaded.config, &text, to).await;
    let elapsed = clock.elapsed();
    match result {
        Ok(message_id) => outcome("ok", None, elapsed, message_id),
        Err(error) => outcome(error.kind().as_str(), Some(&error), elapsed, error.detail().to_owned()),
    }
}

async fn send_test_mail(config: &CompanyEmail, text: &str, to: Option<Mailbox>) -> Result<String, SendError> {
    let ServiceConfig::WebMail(smtp) = &config.service else {
        // The HTTP services' endpoints are loopback URLs: no name to resolve.
        let transport = mailroom::transport_for(config)?;
        let validated = mailroom::validate(transport.as_ref(), config, text, to).await?;
        return Ok(validated.receipt().message_id.clone());
    };
    let transport =
        Arc::new(SmtpTransport::builder(config.sender.clone(), smtp).resolver(hermetic_resolver()).build()?);
    // The same layer transport_for puts around the driver: the dead ends name the way out.
    let layered = mailroom::WayOutLayer::new(transport.clone(), config.clone());
    let validated = mailroom::validate(&layered as &dyn Transport, config, text, to).await;
    transport.close().await;
    let validated = validated?;
    Ok(validated.receipt().message_id.clone())
}

/// Runs every scenario in order (each bounded), in a scratch folder.
pub async fn run_all(scenarios: &[Scenario]) -> Vec<Outcome> {
    let workdir = tempfile::tempdir().expect("a scratch folder");
    let mut outcomes = Vec::new();
    for scenario in scenarios {
        let limit = Duration::from_secs(scenario.client.timeout_secs * 4 + 10);
        let outcome = match tokio::time::timeout(limit, run(scenario, workdir.path())).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome {
                scenario: scenario.clone(),
                kind: "hung".into(),
                field: None,
                documented_error: None,
                elapsed: limit,
                detail: format!("no result within {limit:?}"),
                remediation: String::new(),
            },
        };
        outcomes.push(outcome);
    }
    outcomes
}

/// The outcomes as a table: scenario, documented error, expected, observed, time, pass.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut out = format!(
        "{:<38} {:<16} {:<28} {:<28} {:>8}  {}\n",
        "scenario", "documented", "expected", "observed", "time", "pass"
    );
    for outcome in outcomes {
        let expected = match &outcome.scenario.field {
            Some(field) => format!("{} ({field})", outcome.scenario.kind),
            None => outcome.scenario.kind.clone(),
        };
        let observed = match &outcome.field {
            Some(field) => format!("{} ({field})", outcome.kind),
            None => outcome.kind.clone(),
        };
        out.push_str(&format!(
            "{:<38} {:<16} {:<28} {:<28} {:>6}ms  {}\n",
            outcome.scenario.name,
            outcome.scenario.documented_error.as_deref().unwrap_or("-"),
            expected,
            observed,
            outcome.elapsed.as_millis(),
            if outcome.passed() { "ok" } else { "FAIL" }
        ));
    }
    let passed = outcomes.iter().filter(|o| o.passed()).count();
    out.push_str(&format!("{passed} passed, {} failed\n", outcomes.len() - passed));
    out
}
