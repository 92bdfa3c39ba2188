//! mailroom's web console (`mailroom serve`): the ERP's Company Email page made real — Validate, Save only after a successful Validate, Diagnose with one-click fixes, Connect — served as plain HTML.
//!
//! Every page is rendered on the server; the only script is a small static file that
//! disables Save as soon as a field changes (the server enforces the same rule anyway) and
//! refreshes the Outbox page while messages are being sent.
//! Secrets are write-only: a password typed into the page is kept in the server's memory for
//! that browser session and written to the secrets file on Save, never sent back.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use mailroom_web::{Console, ConsoleOptions};
//! let console = Console::new(ConsoleOptions::new("company-email.toml"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8025").await?;
//! mailroom_web::serve(listener, console).await
//! # }
//! ```

#![warn(unreachable_pub)]

mod company_email;
mod connect;
mod events;
mod form;
mod guard;
mod html;
mod inbox;
mod outbox;
mod session;
mod strict_form;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use mailroom_core::Secret;

pub use inbox::{InboxMessage, InboxSource};

/// The largest request body accepted; anything larger gets an error page and changes nothing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How the console is set up.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// The Company Email config file the page edits and Save writes (it need not exist yet).
    pub config_path: PathBuf,
    /// The secrets file Save writes beside it (default: [`mailroom::secrets_path_for`]).
    pub secrets_path: PathBuf,
    /// Required on every request when set (`Authorization: Bearer …` or the sign-in page):
    /// mandatory when listening on anything but loopback.
    pub access_token: Option<Secret>,
    /// Values shown on a fresh page when the config file does not exist yet (TOML text of
    /// a config, secrets left out), e.g. the demo's fake server.
    pub prefill: Option<String>,
    /// A folder of event data files (`<kind>.json`, like the repository's `fixtures/events/`)
    /// the Events page renders each kind from.
    pub events_dir: Option<PathBuf>,
    /// An Inbox tab of what a test server received (the demo's fake server).
    pub inbox: Option<InboxSource>,
    /// Secrets known before anyone typed them (the demo's fake server account), by
    /// environment variable name as the config uses them.
    pub known_secrets: Vec<(String, Secret)>,
}

impl ConsoleOptions {
    /// Options for editing `config_path`, with its secrets file beside it.
    pub fn new(config_path: impl Into<PathBuf>) -> ConsoleOptions {
        let config_path = config_path.into();
        let secrets_path = mailroom::secrets_path_for(&config_path);
        ConsoleOptions {
            config_path,
            secrets_path,
            access_token: None,
            prefill: None,
            events_dir: None,
            inbox: None,
            known_secrets: Vec::new(),
        }
    }
}

/// Why the console refuses to listen on an address.
#[derive(Debug)]
pub struct ListenRefused(String);

impl std::fmt::Display for ListenRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ListenRefused {}

/// Checks the rule for `--listen`: loopback needs nothing; any other address needs an
/// access token, because the page can send mail and write the config.
///
/// ```
/// let loopback = "127.0.0.1:8025".parse().unwrap();
/// assert!(mailroom_web::check_listen(loopback, false).is_ok());
/// let everywhere = "0.0.0.0:8025".parse().unwrap();
/// assert!(mailroom_web::check_listen(everywhere, false).is_err());
/// assert!(mailroom_web::check_listen(everywhere, true).is_ok());
/// ```
pub fn check_listen(addr: SocketAddr, has_access_token: bool) -> Result<(), ListenRefused> {
    if addr.ip().is_loopback() || has_access_token {
        return Ok(());
    }
    Err(ListenRefused(format!(
        "listening on {addr} (not loopback) needs an access token: set MAILROOM_CONSOLE_TOKEN to a long random value \
         (e.g. `openssl rand -hex 32`); every browser must then sign in with it. Put the console behind HTTPS \
         (a reverse proxy) when it is reachable from other machines, or keep the default 127.0.0.1:8025."
    )))
}

/// The console: its options and the state its pages share.
#[derive(Clone)]
pub struct Console {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").field("config_path", &self.shared.options.config_path).finish_non_exhaustive()
    }
}

pub(crate) struct Shared {
    pub(crate) options: ConsoleOptions,
    pub(crate) sessions: session::Sessions,
    pub(crate) pages: html::Pages,
    pub(crate) renderer: mailroom_events::Renderer,
    pub(crate) outbox: outbox::OutboxState,
}

impl Console {
    /// A console for `options`.
    pub fn new(options: ConsoleOptions) -> Console {
        let pages = html::Pages::new(options.inbox.is_some());
        Console {
            shared: Arc::new(Shared {
                options,
                sessions: session::Sessions::default(),
                pages,
                renderer: mailroom_events::Renderer::new(),
                outbox: outbox::OutboxState::default(),
            }),
        }
    }

    /// The console's routes, with its security layer (headers, host check, access token,
    /// session cookie) and the request body limit.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(company_email::page).post(company_email::submit))
            .route("/connect", get(connect::status))
            .route("/events", get(events::index))
            .route("/events/preview", post(events::preview))
            .route("/events/{kind}", get(events::show))
            .route("/events/{kind}/message.html", get(events::message_html))
            .route("/events/{kind}/copy", post(events::send_copy))
            .route("/outbox", get(outbox::page))
            .route("/outbox/run", post(outbox::run))
            .route("/outbox/{id}/retry", post(outbox::retry))
            .route("/outbox/{id}/resolve", post(outbox::resolve))
            .route("/inbox", get(inbox::page))
            .route("/inbox/{number}/message.html", get(inbox::message_html))
            .route("/sign-in", get(guard::sign_in_page).post(guard::sign_in))
            .route("/static/console.css", get(html::stylesheet))
            .route("/static/console.js", get(html::script))
            .fallback(html::not_found)
            .layer(axum::middleware::from_fn_with_state(self.clone(), guard::guard))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self.clone())
    }

    pub(crate) fn options(&self) -> &ConsoleOptions {
        &self.shared.options
    }
}

/// Serves the console on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, console: Console) -> std::io::Result<()> {
    axum::serve(listener, console.router()).await
}
