//! The Events page: every event kind rendered from its fixture or from pasted JSON as the customer will see it (the HTML part in a sandboxed frame, the text part beside it), with "send me a copy".

use std::time::Instant;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mailroom_core::Mailbox;
use mailroom_events::{Event, EventKind, RenderedEvent};
use serde::{Deserialize, Serialize};

use crate::Console;
use crate::company_email::{Notice, failure};
use crate::session::SessionId;
use crate::strict_form::StrictForm;

/// The policy of a rendered customer message: no script, no network, no same-origin
/// access, framed only by the console itself.
pub(crate) const MESSAGE_CSP: &str =
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'";

/// The largest pasted event data accepted (the form limit is larger; this keeps the session small).
const MAX_PASTED_BYTES: usize = 48 * 1024;

/// Where the data of a view came from.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Source {
    Fixture,
    Pasted,
}

#[derive(Serialize)]
struct KindView {
    name: &'static str,
    description: &'static str,
}

#[derive(Serialize)]
struct AttachmentView {
    filename: String,
    content_type: String,
    size_kib: usize,
}

#[derive(Serialize)]
struct MessageView {
    subject: String,
    from: String,
    to: String,
    cc: Vec<String>,
    message_id: String,
    attachments: Vec<AttachmentView>,
    text: String,
    frame_src: String,
    source: Source,
}

#[derive(Serialize)]
struct EventsPage<'a> {
    page: &'static str,
    csrf: &'a str,
    kinds: Vec<KindView>,
    kind: Option<&'static str>,
    description: Option<&'static str>,
    fields: Vec<String>,
    message: Option<MessageView>,
    problem: Option<String>,
    pasted: String,
    notice: Option<&'a Notice>,
    copy_to: String,
}

fn kinds() -> Vec<KindView> {
    EventKind::ALL.iter().map(|kind| KindView { name: kind.as_str(), description: kind.description() }).collect()
}

fn parse_kind(name: &str) -> Option<EventKind> {
    EventKind::ALL.into_iter().find(|kind| kind.as_str() == name)
}

/// The fixture data of `kind`, if the console has a fixtures folder holding it.
fn fixture(console: &Console, kind: EventKind) -> Option<String> {
    let dir = console.options().events_dir.as_ref()?;
    std::fs::read_to_string(dir.join(format!("{}.json", kind.as_str()))).ok()
}

/// The Company Email sender of the config file; without one, the company's support address.
fn sender(console: &Console, kind: EventKind, data: &str) -> Result<Mailbox, String> {
    if let Ok(sender) = mailroom::load_sender_file(&console.options().config_path) {
        return Ok(sender);
    }
    Event::from_json(kind, data).map(|event| event.company().support_mailbox()).map_err(|e| e.to_string())
}

/// The rendered event and the sender it was rendered as.
fn render(console: &Console, kind: EventKind, data: &str) -> Result<(RenderedEvent, Mailbox), String> {
    let sender = sender(console, kind, data)?;
    let rendered = console.shared.renderer.render(kind, data, &sender).map_err(|e| e.to_string())?;
    Ok((rendered, sender))
}

fn view((rendered, sender): &(RenderedEvent, Mailbox), source: Source) -> MessageView {
    let frame = match source {
        Source::Fixture => rendered.kind.as_str(),
        Source::Pasted => "pasted",
    };
    MessageView {
        subject: rendered.subject.clone(),
        from: sender.to_string(),
        to: rendered.to.to_string(),
        cc: rendered.cc.iter().map(ToString::to_string).collect(),
        message_id: rendered.message_id().to_owned(),
        attachments: rendered
            .attachments
            .iter()
            .map(|a| AttachmentView {
                filename: a.filename.clone(),
                content_type: a.content_type.clone(),
                size_kib: a.size.div_ceil(1024),
            })
            .collect(),
        text: rendered.text.clone(),
        frame_src: format!("/events/{frame}/message.html"),
        source,
    }
}

struct Shown {
    kind: Option<EventKind>,
    message: Option<MessageView>,
    problem: Option<String>,
    pasted: String,
    notice: Option<Notice>,
    status: StatusCode,
}

fn page(console: &Console, session: &SessionId, shown: Shown) -> Response {
    let (csrf, copy_to) = console
        .shared
        .sessions
        .with(&session.0, |s| (s.csrf.clone(), s.copy_to.clone().unwrap_or_default()))
        .unwrap_or_default();
    let copy_to = if copy_to.is_empty() {
        mailroom::load_sender_file(&console.options().config_path).map(|s| s.email.to_string()).unwrap_or_default()
    } else {
        copy_to
    };
    let context = EventsPage {
        page: "events",
        csrf: &csrf,
        kinds: kinds(),
        kind: shown.kind.map(EventKind::as_str),
        description: shown.kind.map(EventKind::description),
        fields: shown
            .kind
            .map(|kind| kind.fields().iter().map(|f| format!("{} ({})", f.name, f.field_type.as_str())).collect())
            .unwrap_or_default(),
        message: shown.message,
        problem: shown.problem,
        pasted: shown.pasted,
        notice: shown.notice.as_ref(),
        copy_to,
    };
    let mut response = console.shared.pages.render("events.html", context);
    *response.status_mut() = shown.status;
    response
}

fn shown(kind: Option<EventKind>) -> Shown {
    Shown { kind, message: None, problem: None, pasted: String::new(), notice: None, status: StatusCode::OK }
}

/// GET /events: the kinds, and the form for pasted data.
pub(crate) async fn index(State(console): State<Console>, Extension(session): Extension<SessionId>) -> Response {
    page(&console, &session, shown(None))
}

/// GET /events/{kind}: the kind rendered from its fixture.
pub(crate) async fn show(
    State(console): State<Console>,
    Extension(session): Extension<SessionId>,
    Path(name): Path<String>,
) -> Response {
    let Some(kind) = parse_kind(&name) else {
        return console.shared.pages.error_page(
            StatusCode::NOT_FOUND,
            "No such event kind",
            "See the list on the Events page.",
        );
    };
    let mut shown = shown(Some(kind));
    match fixture(&console, kind) {
        Some(data) => match render(&console, kind, &data) {
            Ok(rendered) => shown.message = Some(view(&rendered, Source::Fixture)),
            Err(problem) => shown.problem = Some(format!("The fixture does not render: {problem}")),
        },
        None => {
            shown.problem = Some(
                "The console has no fixture for this kind (start it with --events-dir fixtures/events): paste the event's data below.".into(),
            )
        }
    }
    page(&console, &session, shown)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Pasted {
    csrf: String,
    kind: String,
    data: String,
}

/// POST /events/preview: pasted JSON rendered.
pub(crate) async fn preview(
    State(console): State<Console>,
    Extension(session): Extension<SessionId>,
    StrictForm(form): StrictForm<Pasted>,
) -> Response {
    let sessions = &console.shared.sessions;
    if !sessions.csrf_matches(&session.0, &form.csrf) {
        return console.shared.pages.csrf_failed();
    }
    let Some(kind) = parse_kind(&form.kind) else {
        return console.shared.pages.error_page(StatusCode::BAD_REQUEST, "No such event kind", "Nothing was rendered.");
    };
    let mut shown = shown(Some(kind));
    if form.data.len() > MAX_PASTED_BYTES {
        shown.problem = Some(format!("The pasted data is larger than {} KiB.", MAX_PASTED_BYTES / 1024));
        shown.status = StatusCode::PAYLOAD_TOO_LARGE;
        return page(&console, &session, shown);
    }
    match render(&console, kind, &form.data) {
        Ok(rendered) => {
            sessions.with(&session.0, |s| s.pasted = Some((kind, form.data.clone())));
            shown.message = Some(view(&rendered, Source::Pasted));
        }
        Err(problem) => {
            shown.problem = Some(problem);
            shown.status = StatusCode::UNPROCESSABLE_ENTITY;
        }
    }
    shown.pasted = form.data;
    page(&console, &session, shown)
}

/// The data a view was rendered from: the fixture, or this session's pasted data.
fn data_for(console: &Console, session: &SessionId, name: &str) -> Option<(EventKind, String)> {
    if name == "pasted" {
        return console.shared.sessions.with(&session.0, |s| s.pasted.clone()).flatten();
    }
    let kind = parse_kind(name)?;
    fixture(console, kind).map(|data| (kind, data))
}

/// GET /events/{kind}/message.html: the HTML part alone, sandboxed by its own policy.
pub(crate) async fn message_html(
    State(console): State<Console>,
    Extension(session): Extension<SessionId>,
    Path(name): Path<String>,
) -> Response {
    let rendered = data_for(&console, &session, &name).map(|(kind, data)| render(&console, kind, &data));
    let Some(Ok((rendered, _))) = rendered else {
        return console.shared.pages.error_page(StatusCode::NOT_FOUND, "Nothing to show", "Render the event first.");
    };
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], rendered.html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(MESSAGE_CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN"));
    response
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Copy {
    csrf: String,
    to: String,
    source: Source,
}

/// POST /events/{kind}/copy: sends the event, pointed at the given address, through the
/// saved Company Email.
pub(crate) async fn send_copy(
    State(console): State<Console>,
    Extension(session): Extension<SessionId>,
    Path(name): Path<String>,
    StrictForm(form): StrictForm<Copy>,
) -> Response {
    let sessions = &console.shared.sessions;
    if !sessions.csrf_matches(&session.0, &form.csrf) {
        return console.shared.pages.csrf_failed();
    }
    let name = if form.source == Source::Pasted { "pasted" } else { name.as_str() };
    let Some((kind, data)) = data_for(&console, &session, name) else {
        return console.shared.pages.error_page(StatusCode::NOT_FOUND, "Nothing to send", "Render the event first.");
    };
    sessions.with(&session.0, |s| s.copy_to = Some(form.to.trim().to_owned()));
    let mut shown = shown(Some(kind));
    if form.source == Source::Pasted {
        shown.pasted = data.clone();
    }
    if let Ok(rendered) = render(&console, kind, &data) {
        shown.message = Some(view(&rendered, form.source));
    }
    let outcome = copy(&console, kind, &data, form.to.trim()).await;
    match outcome {
        Ok(notice) => shown.notice = Some(notice),
        Err((status, notice)) => {
            shown.notice = Some(notice);
            shown.status = status;
        }
    }
    page(&console, &session, shown)
}

async fn copy(console: &Console, kind: EventKind, data: &str, to: &str) -> Result<Notice, (StatusCode, Notice)> {
    let refuse = |status: StatusCode, title: &str, line: String| (status, Notice::new("error", title, vec![line]));
    let to: Mailbox = to.parse().map_err(|_| {
        refuse(StatusCode::BAD_REQUEST, "Not an email address", format!("\"{to}\" is not an email address."))
    })?;
    let loaded = mailroom::load_config_file(&console.options().config_path).map_err(|e| {
        refuse(
            StatusCode::CONFLICT,
            "No saved Company Email",
            format!("A copy goes out through the saved Company Email: Validate and Save it first ({e})."),
        )
    })?;
    let transport = mailroom::transport_for(&loaded.config).map_err(|e| {
        (StatusCode::CONFLICT, *failure("The saved config cannot send", &e, None).notice.unwrap_or_default())
    })?;
    let redirected =
        mailroom::redirect_event(data, &to).map_err(|e| refuse(StatusCode::BAD_REQUEST, "Cannot send", e))?;
    let rendered = console
        .shared
        .renderer
        .render(kind, redirected.as_str(), &loaded.config.sender)
        .map_err(|e| refuse(StatusCode::UNPROCESSABLE_ENTITY, "Cannot render", e.to_string()))?;
    let started = Instant::now();
    match transport.send(&rendered.message).await {
        Ok(receipt) => Ok(Notice::new(
            "success",
            format!("A copy was sent to {}", to.email),
            vec![format!("Message-ID {}", receipt.message_id), format!("Took {} ms.", started.elapsed().as_millis())],
        )),
        Err(error) => {
            Err((StatusCode::BAD_GATEWAY, *failure("Sending the copy failed", &error, None).notice.unwrap_or_default()))
        }
    }
}
