//! The Inbox tab: what a test SMTP server received (the demo's fake server), listed newest first with each message's parts, the HTML sandboxed like the Events page's.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::Console;

/// One message as the Inbox tab shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct InboxMessage {
    /// The From header.
    pub from: String,
    /// The To addresses.
    pub to: Vec<String>,
    /// The subject.
    pub subject: String,
    /// The plain-text part.
    pub text: Option<String>,
    /// The HTML part.
    pub html: Option<String>,
    /// Attachment names and sizes, e.g. `invoice.pdf (12 KB)`.
    pub attachments: Vec<String>,
    /// Size of the whole message in bytes.
    pub size: usize,
    /// Whether it arrived over TLS.
    pub over_tls: bool,
    /// The account that logged in to send it, if any.
    pub authenticated_as: Option<String>,
}

/// Where the Inbox tab reads the received messages from, oldest first (e.g. a fake server's
/// capture). Only development tools set one: the console itself knows no test server.
///
/// ```
/// let inbox = mailroom_web::InboxSource::new(|| vec![mailroom_web::InboxMessage::default()]);
/// assert_eq!(inbox.messages().len(), 1);
/// ```
#[derive(Clone)]
pub struct InboxSource(Arc<dyn Fn() -> Vec<InboxMessage> + Send + Sync>);

impl InboxSource {
    /// An inbox read by calling `messages`.
    pub fn new(messages: impl Fn() -> Vec<InboxMessage> + Send + Sync + 'static) -> InboxSource {
        InboxSource(Arc::new(messages))
    }

    /// The messages received so far, oldest first.
    pub fn messages(&self) -> Vec<InboxMessage> {
        (self.0)()
    }
}

impl std::fmt::Debug for InboxSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InboxSource")
    }
}

#[derive(Serialize)]
struct Listed {
    number: usize,
    message: InboxMessage,
}

#[derive(Serialize)]
struct InboxPage {
    page: &'static str,
    messages: Vec<Listed>,
}

fn no_inbox(console: &Console) -> Response {
    console.shared.pages.error_page(
        StatusCode::NOT_FOUND,
        "No inbox",
        "The Inbox tab shows what a test server received; this console was started without one (cargo xtask demo --serve has one).",
    )
}

/// GET /inbox
pub(crate) async fn page(State(console): State<Console>) -> Response {
    let Some(inbox) = &console.options().inbox else {
        return no_inbox(&console);
    };
    let mut messages: Vec<Listed> =
        inbox.messages().into_iter().enumerate().map(|(i, message)| Listed { number: i + 1, message }).collect();
    messages.reverse();
    console.shared.pages.render("inbox.html", InboxPage { page: "inbox", messages })
}

/// GET /inbox/{number}/message.html: one message's HTML part, sandboxed.
pub(crate) async fn message_html(State(console): State<Console>, Path(number): Path<usize>) -> Response {
    let Some(inbox) = &console.options().inbox else {
        return no_inbox(&console);
    };
    let html = number.checked_sub(1).and_then(|index| inbox.messages().into_iter().nth(index)).and_then(|m| m.html);
    let Some(html) = html else {
        return console.shared.pages.error_page(StatusCode::NOT_FOUND, "No such message", "See the Inbox tab.");
    };
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(crate::events::MESSAGE_CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN"));
    response
}
