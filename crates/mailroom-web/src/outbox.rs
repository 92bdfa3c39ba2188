//! The Outbox page: counts by state, the recent messages with their last error, Retry for failed ones, Resolve (it arrived / send again) for unknown ones, and a Run button whose progress the page follows (it refreshes itself while anything is being sent).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::Extension;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use mailroom_core::config::LoadedConfig;
use mailroom_outbox::{Counts, Dispatcher, Progress, Resolution, RunOptions, SendingLimits, Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::Console;
use crate::company_email::Notice;
use crate::session::SessionId;
use crate::strict_form::StrictForm;

/// How many recent messages the page lists.
const RECENT: usize = 50;
/// Seconds between refreshes while something is being sent.
const REFRESH_SECS: u32 = 2;

/// The outbox the console has open, and a run started from the page.
#[derive(Default)]
pub(crate) struct OutboxState {
    /// The open store and the URL it was opened for (reopened when the saved config changes it).
    store: tokio::sync::Mutex<Option<(String, Store)>>,
    /// The live counters of the run started from the page, while it lasts.
    running: Mutex<Option<Arc<Progress>>>,
    /// How the last run from the page ended.
    last_run: Mutex<Option<String>>,
}

/// Why the page has no outbox to show.
enum Unavailable {
    /// No Company Email config has been saved yet.
    NoConfig(String),
    /// The config has no `[outbox]` section and the default SQLite file does not exist.
    NotEnabled { config_path: PathBuf, default_file: PathBuf },
    /// The config or the database cannot be used.
    Broken(String),
}

impl Unavailable {
    fn line(&self) -> String {
        match self {
            Unavailable::NoConfig(why) => why.clone(),
            Unavailable::NotEnabled { config_path, .. } => format!(
                "The outbox is not enabled: {} has no [outbox] section yet. Nothing was changed.",
                config_path.display()
            ),
            Unavailable::Broken(why) => why.clone(),
        }
    }
}

/// Where the outbox is, for the page: the SQLite file, or "PostgreSQL" (a URL may carry a password).
fn describe(url: &str) -> String {
    match mailroom::sqlite_outbox_file(url) {
        Some(path) => format!("SQLite file {}", path.display()),
        None if url.starts_with("sqlite:") => "SQLite (in memory)".to_owned(),
        None => "PostgreSQL (the [outbox] url of the config)".to_owned(),
    }
}

/// The saved config and its outbox, opened (and migrated) once and kept.
async fn open(console: &Console) -> Result<(LoadedConfig, Store, String), Unavailable> {
    let config_path = &console.options().config_path;
    if !config_path.exists() {
        return Err(Unavailable::NoConfig(
            "The outbox lives beside the saved Company Email config, and none is saved yet: Validate and Save it on the Company Email page first.".into(),
        ));
    }
    let (loaded, text) = mailroom::load_config_file_with_text(config_path).map_err(|error| {
        Unavailable::Broken(format!(
            "The saved Company Email config cannot be used ({error}); fix it on the Company Email page."
        ))
    })?;
    let url = mailroom::outbox_url(config_path, &loaded.outbox);
    let has_section = text.parse::<toml::Table>().map(|table| table.contains_key("outbox")).unwrap_or(false);
    if !has_section
        && let Some(file) = mailroom::sqlite_outbox_file(&url)
        && !file.exists()
    {
        return Err(Unavailable::NotEnabled { config_path: config_path.clone(), default_file: file });
    }
    let state = &console.shared.outbox;
    let mut cached = state.store.lock().await;
    if let Some((open_url, store)) = cached.as_ref()
        && *open_url == url
    {
        return Ok((loaded, store.clone(), url));
    }
    let store = Store::open(&url)
        .await
        .map_err(|error| Unavailable::Broken(format!("The outbox ({}) cannot be opened: {error}", describe(&url))))?;
    *cached = Some((url.clone(), store.clone()));
    Ok((loaded, store, url))
}

#[derive(Serialize)]
struct CountView {
    state: &'static str,
    count: u64,
    meaning: &'static str,
}

#[derive(Serialize)]
struct Row {
    id: i64,
    kind: String,
    recipients: String,
    subject: String,
    message_id: String,
    state: &'static str,
    attempts: u32,
    last_error: Option<String>,
}

#[derive(Serialize)]
struct NotEnabledView {
    config_path: String,
    default_file: String,
}

#[derive(Serialize)]
struct OutboxPage<'a> {
    page: &'static str,
    csrf: &'a str,
    location: Option<String>,
    counts: Vec<CountView>,
    total: u64,
    rows: Vec<Row>,
    running: Option<String>,
    refresh_secs: Option<u32>,
    in_flight: bool,
    notice: Option<&'a Notice>,
    problem: Option<String>,
    not_enabled: Option<NotEnabledView>,
}

fn count_views(counts: &Counts) -> Vec<CountView> {
    vec![
        CountView { state: "queued", count: counts.queued, meaning: "waiting to be sent" },
        CountView { state: "sending", count: counts.sending, meaning: "being sent now" },
        CountView { state: "sent", count: counts.sent, meaning: "accepted by the service" },
        CountView { state: "failed", count: counts.failed, meaning: "refused for good: Retry puts one back" },
        CountView { state: "unknown", count: counts.unknown, meaning: "may have arrived: decide below" },
    ]
}

/// One line for a stored classified error: its kind and what it says.
fn error_line(error: &serde_json::Value) -> String {
    let kind = error.get("kind").and_then(|k| k.as_str()).unwrap_or("error");
    let text = error
        .get("message")
        .and_then(|m| m.as_str())
        .or_else(|| error.get("detail").and_then(|d| d.as_str()))
        .unwrap_or("");
    format!("{kind}: {text}")
}

fn running_line(progress: &Progress) -> String {
    format!(
        "A run started here is going: {} sent, {} failed, {} unknown, {} in flight so far.",
        progress.sent.load(Ordering::Relaxed),
        progress.failed.load(Ordering::Relaxed),
        progress.unknown.load(Ordering::Relaxed),
        progress.in_flight.load(Ordering::Relaxed)
    )
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn render(
    console: &Console,
    session: &SessionId,
    notice: Option<Notice>,
    status: StatusCode,
    auto_refresh: bool,
) -> Response {
    let csrf = console.shared.sessions.with(&session.0, |s| s.csrf.clone()).unwrap_or_default();
    let state = &console.shared.outbox;
    let running = lock(&state.running).as_deref().map(running_line);
    let notice = notice.or_else(|| {
        lock(&state.last_run).clone().map(|line| Notice::new("info", "The last run from this page", vec![line]))
    });
    let mut page = OutboxPage {
        page: "outbox",
        csrf: &csrf,
        location: None,
        counts: Vec::new(),
        total: 0,
        rows: Vec::new(),
        in_flight: running.is_some(),
        running,
        refresh_secs: None,
        notice: notice.as_ref(),
        problem: None,
        not_enabled: None,
    };
    match open(console).await {
        Ok((_, store, url)) => {
            page.location = Some(describe(&url));
            match (store.counts().await, store.list(None, RECENT).await) {
                (Ok(counts), Ok(listed)) => {
                    page.in_flight |= counts.sending > 0;
                    page.total = counts.total();
                    page.counts = count_views(&counts);
                    page.rows = listed
                        .into_iter()
                        .map(|m| Row {
                            id: m.id,
                            kind: m.event.unwrap_or_else(|| "(not an event)".into()),
                            recipients: m.recipients.join(", "),
                            subject: m.subject.unwrap_or_default(),
                            message_id: m.message_id,
                            state: m.state.as_str(),
                            attempts: m.attempts,
                            last_error: m.error.as_ref().map(error_line),
                        })
                        .collect();
                }
                (Err(e), _) | (_, Err(e)) => page.problem = Some(format!("The outbox cannot be read: {e}")),
            }
        }
        Err(Unavailable::NotEnabled { config_path, default_file }) => {
            page.not_enabled = Some(NotEnabledView {
                config_path: config_path.display().to_string(),
                default_file: default_file.display().to_string(),
            })
        }
        Err(other) => page.problem = Some(other.line()),
    }
    if page.in_flight && auto_refresh {
        page.refresh_secs = Some(REFRESH_SECS);
    }
    let mut response = console.shared.pages.render("outbox.html", page);
    *response.status_mut() = status;
    response
}

/// `?auto=off` stops the page refreshing itself.
#[derive(Deserialize)]
pub(crate) struct PageQuery {
    #[serde(default)]
    auto: Option<String>,
}

/// GET /outbox
pub(crate) async fn page(
    State(console): State<Console>,
    Extension(session): Extension<SessionId>,
    Query(query): Query<PageQuery>,
) -> Response {
    let auto = query.auto.as_deref() != Some("off");
    render(&console, &session, None, StatusCode::OK, auto).await
}

/// The form of Retry and Run: only the CSRF token (a missing one is refused like a wrong one).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenOnly {
    #[serde(default)]
    csrf: String,
}

/// The form of Resolve: the CSRF token and the decision (`sent` or `resend`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Decision {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
}

fn unknown_message(console: &Console, id: &str) -> Response {
    let shown: String = id.chars().filter(|c| !c.is_control()).take(40).collect();
    console.shared.pages.error_page(
        StatusCode::NOT_FOUND,
        "No such message",
        &format!("\"{shown}\" is not a message number of the outbox. Nothing was changed."),
    )
}

/// POST /outbox/{id}/retry: a failed message back to queued.
pub(crate) async fn retry(
    State(console): State<Console>,
    Extension(session): Extension<SessionId>,
    UrlPath(id): UrlPath<String>,
    StrictForm(form): StrictForm<TokenOnly>,
) -> Response {
    if !console.shared.sessions.csrf_matches(&session.0, &form.csrf) {
        return console.shared.pages.csrf_failed();
    }
    let Ok(number) = id.parse::<i64>() else { return unknown_message(&console, &id) };
    change(&console, &session, number, None).await
}

/// POST /outbox/{id}/resolve: the decision on an unknown message (`sent`: it arrived;
/// `resend`: queue it again), as `mailroom outbox resolve --sent|--resend`.
pub(crate) async fn resolve(
    State(console): State<Console>,
    Extension(session): Extension<SessionId>,
    UrlPath(id): UrlPath<String>,
    StrictForm(form): StrictForm<Decision>,
) -> Response {
    if !console.shared.sessions.csrf_matches(&session.0, &form.csrf) {
        return console.shared.pages.csrf_failed();
    }
    let Ok(number) = id.parse::<i64>() else { return unknown_message(&console, &id) };
    let resolution = match form.decision.as_str() {
        "sent" => Resolution::Sent,
        "resend" => Resolution::Resend,
        _ => {
            return console.shared.pages.error_page(
                StatusCode::BAD_REQUEST,
                "Unknown decision",
                "An unknown message is resolved as sent (it arrived) or resend (queue it again). Nothing was changed.",
            );
        }
    };
    change(&console, &session, number, Some(resolution)).await
}

async fn change(console: &Console, session: &SessionId, id: i64, resolution: Option<Resolution>) -> Response {
    let store = match open(console).await {
        Ok((_, store, _)) => store,
        Err(unavailable) => {
            let notice = Notice::new("error", "Nothing was changed", vec![unavailable.line()]);
            return render(console, session, Some(notice), StatusCode::CONFLICT, true).await;
        }
    };
    let result = match resolution {
        None => store.retry(id).await,
        Some(resolution) => store.resolve(id, resolution).await,
    };
    let (notice, status) = match result {
        Ok(()) => {
            let (title, lines) = match resolution {
                None => (
                    format!("Message {id} is queued again"),
                    vec!["Run sends it (or the next `mailroom outbox run`).".to_owned()],
                ),
                Some(Resolution::Sent) => {
                    (format!("Message {id} is marked sent"), vec!["It will not be sent again.".to_owned()])
                }
                Some(Resolution::Resend) => (
                    format!("Message {id} will be sent again"),
                    vec!["It is queued: Run sends it (or the next `mailroom outbox run`).".to_owned()],
                ),
            };
            tracing::info!(id, ?resolution, "outbox message changed from the console");
            (Notice::new("success", title, lines), StatusCode::OK)
        }
        Err(error @ StoreError::NotFound(_)) => {
            (Notice::new("error", "Nothing was changed", vec![error.to_string()]), StatusCode::NOT_FOUND)
        }
        Err(error @ StoreError::WrongState { .. }) => {
            let hint = if resolution.is_none() {
                "Only a failed message can be retried."
            } else {
                "Only an unknown message (possibly delivered) needs a decision."
            };
            (
                Notice::new("error", "Nothing was changed", vec![error.to_string(), hint.to_owned()]),
                StatusCode::CONFLICT,
            )
        }
        Err(error) => {
            (Notice::new("error", "Nothing was changed", vec![error.to_string()]), StatusCode::INTERNAL_SERVER_ERROR)
        }
    };
    render(console, session, Some(notice), status, true).await
}

/// POST /outbox/run: sends what is due through the saved config, in the background, until
/// nothing is left; the page follows it.
pub(crate) async fn run(
    State(console): State<Console>,
    Extension(session): Extension<SessionId>,
    StrictForm(form): StrictForm<TokenOnly>,
) -> Response {
    if !console.shared.sessions.csrf_matches(&session.0, &form.csrf) {
        return console.shared.pages.csrf_failed();
    }
    let (loaded, store) = match open(&console).await {
        Ok((loaded, store, _)) => (loaded, store),
        Err(unavailable) => {
            let notice = Notice::new("error", "Nothing was sent", vec![unavailable.line()]);
            return render(&console, &session, Some(notice), StatusCode::CONFLICT, true).await;
        }
    };
    let transport = match mailroom::transport_for(&loaded.config) {
        Ok(transport) => transport,
        Err(error) => {
            let notice = Notice::new("error", "The saved config cannot send", vec![error.user_message()]);
            return render(&console, &session, Some(notice), StatusCode::CONFLICT, true).await;
        }
    };
    let progress = Arc::new(Progress::default());
    let already_running = {
        let mut running = lock(&console.shared.outbox.running);
        let already = running.is_some();
        if !already {
            *running = Some(progress.clone());
        }
        already
    };
    if already_running {
        let notice = Notice::new("info", "A run is already going", vec!["The page follows it.".into()]);
        return render(&console, &session, Some(notice), StatusCode::OK, true).await;
    }
    let limits = SendingLimits::for_config(&loaded.config, &loaded.outbox);
    let options = RunOptions::until_empty(format!("console-{}", std::process::id()));
    let dispatcher = Dispatcher::new(store, transport, limits);
    let background = console.clone();
    tokio::spawn(async move {
        let result = dispatcher.run(options, std::future::pending::<()>(), progress).await;
        let line = match result {
            Ok(summary) => format!(
                "{} sent, {} failed, {} unknown, {} still queued.",
                summary.sent, summary.failed, summary.unknown, summary.queued
            ),
            Err(error) => format!("The run stopped: {error}"),
        };
        let state = &background.shared.outbox;
        *lock(&state.last_run) = Some(line);
        *lock(&state.running) = None;
    });
    Redirect::to("/outbox").into_response()
}
