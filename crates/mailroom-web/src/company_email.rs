//! The Company Email page: GET shows the values; POST runs its buttons — Validate, Save (only after a successful Validate of the same values), Diagnose, a diagnose fix, a preset, Connect.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use mailroom::LoadError;
use mailroom_core::config::{ConfigIssue, Field};
use mailroom_core::{Direction, ProbeReport, SendError, StepOutcome};
use serde::Serialize;

use crate::Console;
use crate::form::{Built, Draft, MS_AUTH_CHOICES, Posted, SERVICES, SecretFields, TLS_CHOICES};
use crate::session::{SessionId, same_token};
use crate::strict_form::StrictForm;

/// The page input a config field is changed in, and its label on the page.
pub(crate) fn input_for(field: Field) -> Option<(&'static str, &'static str)> {
    Some(match field {
        Field::EmailAddress => ("email_address", "Email Address"),
        Field::DisplayName => ("display_name", "Display Name"),
        Field::WebMailServer => ("smtp_server", "Outgoing Mail Server (SMTP)"),
        Field::WebMailPort => ("smtp_port", "Port Number"),
        Field::WebMailEnableSsl => ("smtp_enable_ssl", "Enable SSL"),
        Field::WebMailTls => ("smtp_tls", "TLS"),
        Field::WebMailUsername => ("smtp_username", "User Name"),
        Field::WebMailPassword | Field::WebMailPasswordEnv => ("smtp_password", "Email Password"),
        Field::WebMailCaFile => ("smtp_ca_file", "CA certificate file (PEM)"),
        Field::ExchangeUri => ("ews_uri", "Exchange Uri"),
        Field::ExchangeDomain => ("ews_domain", "Domain"),
        Field::ExchangeUsername => ("ews_username", "Username"),
        Field::ExchangePassword | Field::ExchangePasswordEnv => ("ews_password", "Email Password"),
        Field::ExchangeCaFile => ("ews_ca_file", "CA certificate file (PEM)"),
        Field::EmailServicesClientId => ("google_client_id", "Client ID"),
        Field::EmailServicesClientSecret | Field::EmailServicesClientSecretEnv => {
            ("google_client_secret", "Client secret")
        }
        Field::EmailServicesTenant => ("ms_tenant", "Tenant"),
        Field::EmailServicesAuth => ("ms_auth", "Sign in as"),
        Field::EmailServicesAuthority => ("ms_authority", "Sign-in host"),
        Field::EmailServicesApiBase => ("ms_api_base", "Graph API base"),
        Field::EmailServicesRefreshToken
        | Field::EmailServicesRefreshTokenEnv
        | Field::EmailServicesTokenFile
        | Field::EmailServicesProvider => ("connect", "Connect"),
        Field::WebMailTimeoutSecs | Field::ExchangeTimeoutSecs | Field::EmailServicesTimeoutSecs => {
            ("timeout_secs", "Timeout per network step (seconds)")
        }
        _ => return None,
    })
}

/// One error shown at a field.
#[derive(Serialize, Clone, Debug)]
pub(crate) struct FieldError {
    message: String,
    kind: Option<&'static str>,
    documented_error: Option<&'static str>,
    detail: Option<String>,
    remediation: Vec<String>,
}

#[derive(Serialize, Clone, Debug)]
struct FieldLink {
    id: &'static str,
    label: &'static str,
}

/// The box at the top of the page saying what the last button did.
#[derive(Serialize, Default, Debug)]
pub(crate) struct Notice {
    tone: &'static str,
    title: String,
    lines: Vec<String>,
    fields: Vec<FieldLink>,
    server_reply: Option<String>,
    transcript: Vec<String>,
    /// A button of the Company Email form offered with the notice (`action` value, label).
    offer: Option<(&'static str, &'static str)>,
}

impl Notice {
    pub(crate) fn new(tone: &'static str, title: impl Into<String>, lines: Vec<String>) -> Notice {
        Notice { tone, title: title.into(), lines, ..Notice::default() }
    }
}

/// The Google inputs the config's `email_services.*` fields map to, and their Microsoft twins.
const MICROSOFT_TWINS: &[(&str, &str, &str)] = &[
    ("google_client_id", "ms_client_id", "Application (client) ID"),
    ("google_client_secret", "ms_client_secret", "Client secret"),
    ("connect", "ms_connect", "Connect"),
];

impl Outcome {
    /// Moves errors placed at the Google inputs to the Microsoft ones (both providers share
    /// the config section `[email_services]`).
    fn for_microsoft(mut self) -> Outcome {
        for (google, microsoft, label) in MICROSOFT_TWINS {
            if let Some(errors) = self.errors.remove(google) {
                self.errors.entry(microsoft).or_default().extend(errors);
            }
            if let Some(notice) = &mut self.notice {
                for link in notice.fields.iter_mut().filter(|link| link.id == *google) {
                    *link = FieldLink { id: microsoft, label };
                }
            }
        }
        self
    }
}

#[derive(Serialize, Debug)]
struct StepView {
    name: String,
    outcome: &'static str,
    elapsed_ms: u128,
    detail: String,
}

#[derive(Serialize, Debug)]
struct SuggestionView {
    summary: String,
    settings: String,
}

#[derive(Serialize, Debug)]
struct DiagnoseView {
    steps: Vec<StepView>,
    suggestions: Vec<SuggestionView>,
    ok: bool,
    elapsed_ms: u128,
}

#[derive(Serialize)]
struct Choice {
    value: &'static str,
    label: &'static str,
}

#[derive(Serialize)]
struct SecretStates {
    smtp_password: Option<&'static str>,
    ews_password: Option<&'static str>,
    google_client_secret: Option<&'static str>,
    ms_client_secret: Option<&'static str>,
}

#[derive(Serialize)]
struct PageContext<'a> {
    page: &'static str,
    csrf: &'a str,
    draft: &'a Draft,
    services: Vec<Choice>,
    tls_choices: Vec<Choice>,
    ms_auth_choices: Vec<Choice>,
    secrets: SecretStates,
    errors: &'a BTreeMap<&'static str, Vec<FieldError>>,
    notice: Option<&'a Notice>,
    diagnose: Option<&'a DiagnoseView>,
    validated: bool,
    connected: Option<String>,
}

/// What one response of the page shows besides the values.
#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) notice: Option<Box<Notice>>,
    errors: BTreeMap<&'static str, Vec<FieldError>>,
    diagnose: Option<Box<DiagnoseView>>,
    status: Option<StatusCode>,
}

impl Outcome {
    pub(crate) fn notice(notice: Notice) -> Outcome {
        Outcome { notice: Some(Box::new(notice)), ..Outcome::default() }
    }

    fn with_status(mut self, status: StatusCode) -> Outcome {
        self.status = Some(status);
        self
    }
}

/// Where the page's values come from: the config file (or the prefill), its secrets, and
/// what this browser session typed.
pub(crate) struct Context {
    pub(crate) base: toml::Table,
    pub(crate) saved: SecretFields,
    pub(crate) typed: SecretFields,
}

impl Context {
    pub(crate) fn load(console: &Console, session: &SessionId) -> Context {
        let options = console.options();
        let base = match std::fs::read_to_string(&options.config_path) {
            Ok(text) => text.parse::<toml::Table>().unwrap_or_default(),
            Err(_) => options.prefill.as_deref().and_then(|t| t.parse::<toml::Table>().ok()).unwrap_or_default(),
        };
        let mut saved = crate::form::saved_secrets(&base, &options.secrets_path);
        for (name, value) in &options.known_secrets {
            let slots: &mut [&mut Option<_>] = match name.as_str() {
                // One variable, two fields: it belongs to the service the config uses.
                crate::form::PASSWORD_ENV if base.get("service").and_then(toml::Value::as_str) == Some("exchange") => {
                    &mut [&mut saved.ews_password]
                }
                crate::form::PASSWORD_ENV => &mut [&mut saved.smtp_password],
                crate::form::GOOGLE_SECRET_ENV => &mut [&mut saved.google_client_secret],
                crate::form::MS_SECRET_ENV => &mut [&mut saved.ms_client_secret],
                _ => &mut [],
            };
            for slot in slots {
                slot.get_or_insert_with(|| value.clone());
            }
        }
        let typed = console.shared.sessions.with(&session.0, |s| s.secrets.clone()).unwrap_or_default();
        Context { base, saved, typed }
    }

    pub(crate) fn secrets(&self) -> SecretFields {
        self.typed.or(&self.saved)
    }

    pub(crate) fn build(&self, console: &Console, draft: &Draft) -> Built {
        crate::form::build(draft, &self.secrets(), &self.base, &token_file_default(&console.options().config_path))
    }
}

fn token_file_default(config_path: &Path) -> String {
    config_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "mailroom".into())
}

/// The folder relative paths of the config are resolved against.
pub(crate) fn config_folder(console: &Console) -> PathBuf {
    match console.options().config_path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// GET /
pub(crate) async fn page(State(console): State<Console>, Extension(session): Extension<SessionId>) -> Response {
    let context = Context::load(&console, &session);
    let draft = console
        .shared
        .sessions
        .with(&session.0, |s| s.draft.clone())
        .flatten()
        .unwrap_or_else(|| if context.base.is_empty() { Draft::fresh() } else { Draft::from_table(&context.base) });
    render(&console, &session, &context, &draft, Outcome::default())
}

/// POST /
pub(crate) async fn submit(
    State(console): State<Console>,
    Extension(session): Extension<SessionId>,
    StrictForm(posted): StrictForm<Posted>,
) -> Response {
    let sessions = &console.shared.sessions;
    let csrf = sessions.with(&session.0, |s| s.csrf.clone()).unwrap_or_default();
    if !same_token(&posted.csrf, &csrf) {
        return console.shared.pages.csrf_failed();
    }
    let mut draft = posted.draft();
    sessions.with(&session.0, |s| s.secrets.overlay(&posted));
    let context = Context::load(&console, &session);
    let action = posted.action.as_str();
    let outcome = match action {
        "" | "validate" => validate(&console, &session, &context, &draft).await,
        "save" => save(&console, &session, &context, &draft),
        "diagnose" => diagnose(&console, &context, &draft).await,
        "connect" => match crate::connect::start(&console, &session, &context, &draft).await {
            Ok(redirect) => {
                sessions.with(&session.0, |s| s.draft = Some(draft));
                return redirect;
            }
            Err(outcome) => outcome,
        },
        _ if action.starts_with("preset:") => {
            let preset = &action["preset:".len()..];
            if draft.apply_preset(preset) {
                preset_notice(preset, &draft)
            } else {
                Outcome::notice(Notice::new("error", "Unknown preset", vec![])).with_status(StatusCode::BAD_REQUEST)
            }
        }
        _ if action.starts_with("fix:") => match draft.apply_fix(&action["fix:".len()..]) {
            Ok(()) => validate(&console, &session, &context, &draft).await,
            Err(problem) => Outcome::notice(Notice::new("error", "This fix cannot be applied", vec![problem]))
                .with_status(StatusCode::BAD_REQUEST),
        },
        _ => Outcome::notice(Notice::new("error", "Unknown button", vec!["Nothing was changed.".into()]))
            .with_status(StatusCode::BAD_REQUEST),
    };
    let outcome = if draft.service == "microsoft" { outcome.for_microsoft() } else { outcome };
    sessions.with(&session.0, |s| s.draft = Some(draft.clone()));
    // Re-read: Validate may have stored the fingerprint, typed secrets may have changed.
    let context = Context::load(&console, &session);
    render(&console, &session, &context, &draft, outcome)
}

/// What a preset filled in, and for Microsoft 365's SMTP the end of password sign-in.
fn preset_notice(preset: &str, draft: &Draft) -> Outcome {
    if preset == "graph" {
        return Outcome::notice(Notice::new(
            "info",
            "Email Services: Microsoft 365 (Graph)",
            vec![
                "Enter the Tenant, the Application (client) ID and, for Application sign-in, a client secret from Entra admin centre → App registrations → your app, then Validate. The app needs the Mail.Send permission (application: granted by an administrator; delegated: Connect signs in once).".into(),
            ],
        ));
    }
    let name = if preset == "gmail" { "Gmail" } else { "Microsoft 365" };
    let mut lines = vec![format!(
        "Outgoing Mail Server (SMTP) {} and Port Number {} with Enable SSL: enter the User Name and Email Password, then Validate.",
        draft.smtp_server, draft.smtp_port
    )];
    let mut notice = Notice::new("info", format!("Filled in {name}'s server and port"), Vec::new());
    if preset == "office365" {
        lines.push(
            "Microsoft switches off SMTP sign-in with a password (basic authentication) for Exchange Online at the end of December 2026 (new tenants cannot use it at all); after that the server answers 550 5.7.30. Sign-in with OAuth keeps working: Email Services: Microsoft 365 sends through Microsoft Graph with an Entra ID app instead of a password.".into(),
        );
        notice.offer = Some(("preset:graph", "Use Microsoft 365 through Graph instead"));
    }
    notice.lines = lines;
    Outcome::notice(notice)
}

fn render(console: &Console, session: &SessionId, context: &Context, draft: &Draft, outcome: Outcome) -> Response {
    let built = context.build(console, draft);
    let (csrf, validated, connected) = console
        .shared
        .sessions
        .with(&session.0, |s| {
            let connected = s.connect.as_ref().and_then(|c| c.connected_text());
            (s.csrf.clone(), s.validated == Some(built.fingerprint()), connected)
        })
        .unwrap_or_default();
    let state = |typed: &Option<_>, saved: &Option<_>| match (typed, saved) {
        (Some(_), _) => Some("typed"),
        (None, Some(_)) => Some("saved"),
        _ => None,
    };
    let secrets = SecretStates {
        smtp_password: state(&context.typed.smtp_password, &context.saved.smtp_password),
        ews_password: state(&context.typed.ews_password, &context.saved.ews_password),
        google_client_secret: state(&context.typed.google_client_secret, &context.saved.google_client_secret),
        ms_client_secret: state(&context.typed.ms_client_secret, &context.saved.ms_client_secret),
    };
    let page = PageContext {
        page: "company-email",
        csrf: &csrf,
        draft,
        services: SERVICES.iter().map(|(value, label)| Choice { value, label }).collect(),
        tls_choices: TLS_CHOICES.iter().map(|(value, label)| Choice { value, label }).collect(),
        ms_auth_choices: MS_AUTH_CHOICES.iter().map(|(value, label)| Choice { value, label }).collect(),
        secrets,
        errors: &outcome.errors,
        notice: outcome.notice.as_deref(),
        diagnose: outcome.diagnose.as_deref(),
        validated,
        connected,
    };
    let mut response = console.shared.pages.render("company_email.html", page);
    if let Some(status) = outcome.status {
        *response.status_mut() = status;
    }
    response
}

/// Puts an error at its field (or, without one, into the notice) and returns the field link.
fn place_error(outcome: &mut Outcome, field: Option<Field>, error: FieldError) {
    match field.and_then(input_for) {
        Some((id, label)) => {
            outcome.errors.entry(id).or_default().push(error);
            if let Some(notice) = &mut outcome.notice
                && !notice.fields.iter().any(|f| f.id == id)
            {
                notice.fields.push(FieldLink { id, label });
            }
        }
        None => {
            if let Some(notice) = &mut outcome.notice {
                notice.lines.push(error.message);
                notice.lines.extend(error.remediation.into_iter().map(|step| format!("• {step}")));
            }
        }
    }
}

fn send_error_view(error: &SendError) -> FieldError {
    let documented = error.documented_error().map(|d| d.as_str());
    FieldError {
        message: error.user_message(),
        kind: Some(error.kind().as_str()),
        documented_error: documented,
        // Without a documented text the message already is the detail.
        detail: documented.map(|_| error.detail().to_owned()),
        remediation: error.remediation(),
    }
}

/// The notice and field error for a classified send error.
pub(crate) fn failure(title: &str, error: &SendError, elapsed_ms: Option<u128>) -> Outcome {
    let mut lines = vec![error.user_message()];
    if let Some(ms) = elapsed_ms {
        lines.push(format!("After {ms} ms."));
    }
    let mut notice = Notice::new("error", title, lines);
    notice.server_reply = error.server_reply().map(|r| r.one_line());
    notice.transcript = error
        .transcript()
        .map(|t| {
            t.lines()
                .iter()
                .map(|line| {
                    let who = match line.direction {
                        Direction::Client => "C:",
                        Direction::Server => "S:",
                        Direction::Note => "*",
                    };
                    format!("{who} {}", line.text)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut outcome = Outcome::notice(notice);
    place_error(&mut outcome, error.config_field(), send_error_view(error));
    outcome
}

/// The config's field problems, each at its field, worded for the page.
fn config_problems(issues: &[ConfigIssue]) -> Outcome {
    let count = issues.len();
    let mut outcome = Outcome::notice(Notice::new(
        "error",
        if count == 1 { "One setting needs changing".to_owned() } else { format!("{count} settings need changing") },
        vec!["Nothing was sent. Change the highlighted fields and Validate again.".into()],
    ));
    for issue in issues {
        let as_error = issue.to_send_error();
        let secret_label = Field::from_name(issue.field)
            .and_then(input_for)
            .filter(|(id, _)| id.ends_with("password") || id.ends_with("secret"));
        // The loader words a missing secret in terms of *_env variables; on the page it is a field to fill.
        let message = match secret_label {
            Some((_, label)) if issue.message.contains("_env") || issue.message.contains("environment variable") => {
                format!("Enter the {label}.")
            }
            _ => issue.message.clone(),
        };
        let documented = as_error.documented_error().map(|d| d.as_str());
        let view = FieldError {
            message: if documented.is_some() { as_error.user_message() } else { message.clone() },
            kind: Some("invalid_config"),
            documented_error: documented,
            detail: documented.map(|_| message),
            remediation: Vec::new(),
        };
        place_error(&mut outcome, Field::from_name(issue.field), view);
    }
    outcome
}

pub(crate) fn load_error(error: LoadError) -> Outcome {
    match error {
        LoadError::Invalid { errors, .. } => config_problems(&errors),
        other => Outcome::notice(Notice::new("error", "The settings cannot be used", vec![other.to_string()])),
    }
}

/// Loads the page's config; `Err` is the outcome to show.
pub(crate) fn load(
    console: &Console,
    built: &Built,
) -> Result<(mailroom_core::config::LoadedConfig, std::sync::Arc<dyn mailroom_core::Transport>), Outcome> {
    let loaded = mailroom::load_config_text(&built.text, &config_folder(console), &built.env()).map_err(load_error)?;
    let transport = mailroom::transport_for(&loaded.config)
        .map_err(|error| failure("These settings cannot be used", &error, None))?;
    Ok((loaded, transport))
}

async fn validate(console: &Console, session: &SessionId, context: &Context, draft: &Draft) -> Outcome {
    let built = context.build(console, draft);
    console.shared.sessions.with(&session.0, |s| s.validated = None);
    let (loaded, transport) = match load(console, &built) {
        Ok(ready) => ready,
        Err(outcome) => return outcome,
    };
    let started = Instant::now();
    let result = mailroom::validate(transport.as_ref(), &loaded.config, &built.text, None).await;
    let elapsed_ms = started.elapsed().as_millis();
    match result {
        Ok(validated) => {
            let fingerprint = built.fingerprint();
            console.shared.sessions.with(&session.0, |s| s.validated = Some(fingerprint));
            let receipt = validated.receipt();
            Outcome::notice(Notice::new(
                "success",
                "Validated: the test mail was accepted",
                vec![
                    format!("Message-ID {}", receipt.message_id),
                    format!("Took {elapsed_ms} ms, sent to {}.", loaded.config.sender.email),
                    "Save is now enabled for these values.".into(),
                ],
            ))
        }
        Err(error) => failure("Validation failed", &error, Some(elapsed_ms)),
    }
}

fn save(console: &Console, session: &SessionId, context: &Context, draft: &Draft) -> Outcome {
    let built = context.build(console, draft);
    let validated = console.shared.sessions.with(&session.0, |s| s.validated).flatten();
    if validated != Some(built.fingerprint()) {
        return Outcome::notice(Notice::new(
            "error",
            "Validate first",
            vec![
                "Save is possible only after a successful Validate of exactly these values, and they have not been validated (or changed since). Nothing was saved.".into(),
            ],
        ))
        .with_status(StatusCode::CONFLICT);
    }
    let options = console.options();
    let secrets_text = mailroom::format_secrets(built.secrets.iter().map(|(name, value)| (*name, value)));
    // Secrets first: the config must never name a variable its secrets file lacks.
    let written = mailroom_http::write_private_file(&options.secrets_path, secrets_text.as_bytes())
        .map_err(|e| (options.secrets_path.clone(), e))
        .and_then(|()| {
            mailroom_http::write_private_file(&options.config_path, built.text.as_bytes())
                .map_err(|e| (options.config_path.clone(), e))
        });
    match written {
        Ok(()) => {
            tracing::info!(config = %options.config_path.display(), "saved the validated Company Email config");
            Outcome::notice(Notice::new(
                "success",
                "Saved",
                vec![
                    format!("Config: {} (readable only by its owner; no secret in it).", options.config_path.display()),
                    format!("Secrets: {} (readable only by its owner).", options.secrets_path.display()),
                    format!("The CLI uses both: mailroom validate --config {}", options.config_path.display()),
                ],
            ))
        }
        Err((path, error)) => Outcome::notice(Notice::new(
            "error",
            "Saving failed",
            vec![format!("{}: {error}", path.display()), "Check that the folder exists and is writable.".into()],
        ))
        .with_status(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

fn diagnose_view(report: &ProbeReport, elapsed_ms: u128) -> DiagnoseView {
    DiagnoseView {
        steps: report
            .steps
            .iter()
            .map(|step| StepView {
                name: step.name.clone(),
                outcome: match step.outcome {
                    StepOutcome::Ok => "ok",
                    StepOutcome::Failed => "failed",
                    StepOutcome::Skipped => "skipped",
                },
                elapsed_ms: step.elapsed.as_millis(),
                detail: step.detail.clone(),
            })
            .collect(),
        suggestions: report
            .suggestions
            .iter()
            .map(|s| SuggestionView {
                summary: s.summary.clone(),
                settings: s
                    .settings
                    .iter()
                    .map(|(field, value)| format!("{field}={value}"))
                    .collect::<Vec<_>>()
                    .join(";"),
            })
            .collect(),
        ok: report.is_ok(),
        elapsed_ms,
    }
}

async fn diagnose(console: &Console, context: &Context, draft: &Draft) -> Outcome {
    let built = context.build(console, draft);
    let (_, transport) = match load(console, &built) {
        Ok(ready) => ready,
        Err(outcome) => return outcome,
    };
    let started = Instant::now();
    let report = transport.probe().await;
    let elapsed_ms = started.elapsed().as_millis();
    let view = diagnose_view(&report, elapsed_ms);
    let mut outcome = match &report.error {
        Some(error) => {
            let mut outcome = failure("Diagnosis found a problem", error, Some(elapsed_ms));
            if !view.suggestions.is_empty()
                && let Some(notice) = &mut outcome.notice
            {
                notice.lines.push("Settings that work are listed under Diagnosis below.".into());
            }
            outcome
        }
        None => Outcome::notice(Notice::new(
            "success",
            "Diagnosis: every step succeeded",
            vec![format!("{} steps in {elapsed_ms} ms; no mail was sent.", view.steps.len())],
        )),
    };
    outcome.diagnose = Some(Box::new(view));
    outcome
}
