//! Connect: the Google or Microsoft consent flow started from the page, its loopback redirect listened for in the background, and a status page that refreshes itself until the account is connected.

use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use mailroom_core::ServiceConfig;
use serde::Serialize;

use crate::Console;
use crate::company_email::{Context, Notice, Outcome, failure, load};
use crate::form::Draft;
use crate::session::SessionId;

/// How long the console waits for the browser to come back from the consent page.
const WAIT: Duration = Duration::from_secs(300);

/// A Connect flow of one session.
#[derive(Clone, Debug)]
pub(crate) enum ConnectState {
    /// The consent page is open; waiting for the redirect.
    Waiting { provider: &'static str, authorize_url: String, redirect_uri: String, account: String },
    /// Access was granted and the refresh token stored.
    Connected { text: String },
    /// The flow ended without access.
    Failed { message: String, remediation: Vec<String> },
}

impl ConnectState {
    /// The line the Company Email page shows for a connected account.
    pub(crate) fn connected_text(&self) -> Option<String> {
        match self {
            ConnectState::Connected { text } => Some(text.clone()),
            _ => None,
        }
    }
}

/// Starts the consent flow for the page's Email Services values; the redirect goes to the
/// status page. `Err` is what the Company Email page shows instead (missing client ID…).
pub(crate) async fn start(
    console: &Console,
    session: &SessionId,
    context: &Context,
    draft: &Draft,
) -> Result<Response, Outcome> {
    if draft.service == "microsoft" {
        return start_microsoft(console, session, context, draft).await;
    }
    if draft.service != "email_services" {
        return Err(Outcome::notice(Notice::new(
            "error",
            "Connect is for Email Services",
            vec!["Choose Email Services: Google or Microsoft 365 as the Email Service Type first.".into()],
        )));
    }
    let built = context.build(console, draft);
    let (loaded, _) = load(console, &built)?;
    let ServiceConfig::EmailServices(gmail) = &loaded.config.service else {
        return Err(Outcome::notice(Notice::new("error", "Connect is for Email Services", vec![])));
    };
    let Some(token_file) = gmail.token_file.clone() else {
        return Err(Outcome::notice(Notice::new(
            "error",
            "This config keeps its refresh token elsewhere",
            vec!["The existing config names refresh_token_env; remove it (and let Connect store the token in a token file) to connect from here.".into()],
        )));
    };
    let account = loaded.config.sender.email.to_string();
    let flow = mailroom_gmail::ConsentFlow::start(gmail, Some(&account))
        .await
        .map_err(|error| failure("Connecting failed", &error.into_send_error(), None))?;
    let waiting = ConnectState::Waiting {
        provider: "Google",
        authorize_url: flow.authorize_url().to_string(),
        redirect_uri: flow.redirect_uri().to_owned(),
        account: account.clone(),
    };
    console.shared.sessions.with(&session.0, |s| s.connect = Some(waiting));
    let client_id = gmail.client_id.clone();
    let (console, session) = (console.clone(), session.clone());
    tokio::spawn(async move {
        let state = match flow.finish(WAIT).await {
            Ok(connected) => {
                match mailroom_gmail::save_refresh_token(
                    &token_file,
                    &client_id,
                    &connected.refresh_token,
                    connected.scope.as_deref(),
                ) {
                    Ok(()) => ConnectState::Connected {
                        text: format!(
                            "Google granted sending for the account that signed in (the sign-in was opened for {account}); the refresh token is stored in {}, readable only by its owner. Validate now sends a test mail through the Gmail API.",
                            token_file.display()
                        ),
                    },
                    Err(error) => ConnectState::Failed {
                        message: format!(
                            "Google granted access, but the token could not be written to {}: {error}",
                            token_file.display()
                        ),
                        remediation: vec!["Check that the folder is writable, then Connect again.".into()],
                    },
                }
            }
            Err(error) => {
                let error = error.into_send_error();
                ConnectState::Failed { message: error.user_message(), remediation: error.remediation() }
            }
        };
        console.shared.sessions.with(&session.0, |s| s.connect = Some(state));
    });
    Ok(Redirect::to("/connect").into_response())
}

/// Connect Microsoft (`auth = "delegated"`): authorization code + PKCE with a redirect to
/// `http://localhost:PORT`, the account checked against the Email Address, the refresh token
/// written to the config's `token_file` — `mailroom connect microsoft`'s flow.
async fn start_microsoft(
    console: &Console,
    session: &SessionId,
    context: &Context,
    draft: &Draft,
) -> Result<Response, Outcome> {
    let built = context.build(console, draft);
    // Only the settings: the transport would want the token this flow is about to get.
    let loaded = mailroom::load_config_text(&built.text, &crate::company_email::config_folder(console), &built.env())
        .map_err(crate::company_email::load_error)?;
    let sign_in = mailroom_graph::MicrosoftSignIn::from_config(&loaded.config)
        .map_err(|error| failure("Connecting failed", &error, None))?;
    let flow = sign_in
        .browser()
        .await
        .map_err(|error| failure("Connecting failed", &error.into_send_error(&sign_in), None))?;
    let account = sign_in.account().to_owned();
    let waiting = ConnectState::Waiting {
        provider: "Microsoft",
        authorize_url: flow.authorize_url().to_string(),
        redirect_uri: flow.redirect_uri().to_owned(),
        account: account.clone(),
    };
    console.shared.sessions.with(&session.0, |s| s.connect = Some(waiting));
    let (console, session) = (console.clone(), session.clone());
    tokio::spawn(async move {
        let state = match flow.finish(WAIT).await {
            Ok(connected) => match sign_in.save(&connected) {
                Ok(()) => ConnectState::Connected {
                    text: format!(
                        "Microsoft granted sending for {} (the Email Address); the refresh token is stored in {}, readable only by its owner. Validate now sends a test mail through Microsoft Graph.",
                        connected.account,
                        sign_in.token_file().display()
                    ),
                },
                Err(error) => ConnectState::Failed {
                    message: format!(
                        "Microsoft granted access, but the token could not be written to {}: {error}",
                        sign_in.token_file().display()
                    ),
                    remediation: vec!["Check that the folder is writable, then Connect again.".into()],
                },
            },
            Err(error) => {
                let error = error.into_send_error(&sign_in);
                ConnectState::Failed { message: error.user_message(), remediation: error.remediation() }
            }
        };
        console.shared.sessions.with(&session.0, |s| s.connect = Some(state));
    });
    Ok(Redirect::to("/connect").into_response())
}

#[derive(Serialize)]
struct FailureView {
    message: String,
    remediation: Vec<String>,
}

#[derive(Serialize)]
struct ConnectPage {
    page: &'static str,
    provider: &'static str,
    waiting: bool,
    authorize_url: Option<String>,
    redirect_uri: Option<String>,
    account: Option<String>,
    wait_secs: u64,
    connected: Option<String>,
    failure: Option<FailureView>,
}

/// GET /connect: the running flow's state (refreshing itself while it waits).
pub(crate) async fn status(State(console): State<Console>, Extension(session): Extension<SessionId>) -> Response {
    let state = console.shared.sessions.with(&session.0, |s| s.connect.clone()).flatten();
    let mut page = ConnectPage {
        page: "connect",
        provider: "Google",
        waiting: false,
        authorize_url: None,
        redirect_uri: None,
        account: None,
        wait_secs: WAIT.as_secs(),
        connected: None,
        failure: None,
    };
    match state {
        Some(ConnectState::Waiting { provider, authorize_url, redirect_uri, account }) => {
            page.provider = provider;
            page.waiting = true;
            page.authorize_url = Some(authorize_url);
            page.redirect_uri = Some(redirect_uri);
            page.account = Some(account);
        }
        Some(ConnectState::Connected { text }) => page.connected = Some(text),
        Some(ConnectState::Failed { message, remediation }) => {
            page.failure = Some(FailureView { message, remediation })
        }
        None => {}
    }
    console.shared.pages.render("connect.html", page)
}
