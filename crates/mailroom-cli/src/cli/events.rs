//! The event commands: `events` (the catalogue), `preview` (render to files) and `send` (render and send through the Company Email).

use std::path::{Path, PathBuf};
use std::time::Instant;

use mailroom_core::{Mailbox, OutgoingMessage, ServiceKind};
use mailroom_events::{EventError, EventKind, Renderer};
use serde_json::{Value, json};

use super::report::{Failure, Reporter};
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};

/// `mailroom events`: every kind with its description and data fields.
pub fn list(reporter: &Reporter) -> u8 {
    if reporter.is_json() {
        let events: Vec<Value> = EventKind::ALL
            .into_iter()
            .map(|kind| {
                json!({
                    "kind": kind.as_str(),
                    "description": kind.description(),
                    "fields": kind.fields().iter().map(|field| json!({
                        "name": field.name,
                        "type": field.field_type.as_str(),
                        "required": field.required,
                        "description": field.description,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        reporter.object(json!({"ok": true, "events": events}));
        return EXIT_OK;
    }
    let mut text = String::new();
    for kind in EventKind::ALL {
        text.push_str(&format!("{}\n  {}\n  data fields:\n", kind.as_str(), kind.description()));
        for field in kind.fields() {
            let required = if field.required { "required" } else { "optional" };
            text.push_str(&format!(
                "    {:<34} {:<24} {:<9} {}\n",
                field.name,
                field.field_type.as_str(),
                required,
                field.description
            ));
        }
        text.push('\n');
    }
    text.push_str("Example payloads: fixtures/events/<kind>.json\n");
    reporter.plain(&text);
    EXIT_OK
}

/// Reads the event kind and data file, or reports a usage error.
fn read_input(
    reporter: &Reporter,
    service: Option<ServiceKind>,
    started: Instant,
    event: &str,
    data: &Path,
) -> Result<(EventKind, String), u8> {
    let kind = match event.parse::<EventKind>() {
        Ok(kind) => kind,
        Err(unknown) => {
            reporter.usage(
                service,
                started,
                &unknown.to_string(),
                &["Run `mailroom events` to list the event kinds and their data fields."],
            );
            return Err(EXIT_USAGE);
        }
    };
    match std::fs::read_to_string(data) {
        Ok(text) => Ok((kind, text)),
        Err(e) => {
            reporter.usage(service, started, &format!("cannot read the event data {}: {e}", data.display()), &[]);
            Err(EXIT_USAGE)
        }
    }
}

/// Reports an event error: too large is a classified send error (exit 1), bad data or templates are usage errors (exit 2).
fn report_event_error(reporter: &Reporter, service: Option<ServiceKind>, started: Instant, error: &EventError) -> u8 {
    if let Some(send_error) = error.send_error() {
        reporter.failure(Failure { service, started, error: &send_error, headline: "The message cannot be sent" });
        return EXIT_FAILED;
    }
    let hint = match error.field() {
        Some(field) => format!("Fix the data field {field} (see `mailroom events` for every field)."),
        None => "See `mailroom events` for the data fields, and fixtures/events/ for examples.".to_owned(),
    };
    reporter.usage_at(service, started, error.field(), &error.to_string(), &[hint.as_str()]);
    EXIT_USAGE
}

/// How `preview` and `send` render: the same options, so a preview shows what goes out.
#[derive(Debug, Default)]
pub struct RenderOptions {
    /// A folder of templates overriding the built-ins.
    pub templates: Option<PathBuf>,
    /// The message size limit, instead of [`mailroom_events::DEFAULT_MAX_MESSAGE_BYTES`].
    pub max_message_bytes: Option<usize>,
}

fn renderer(
    reporter: &Reporter,
    service: Option<ServiceKind>,
    started: Instant,
    options: &RenderOptions,
) -> Result<Renderer, u8> {
    let mut renderer = Renderer::new();
    if let Some(limit) = options.max_message_bytes {
        renderer = renderer.with_max_message_bytes(limit);
    }
    match &options.templates {
        None => Ok(renderer),
        Some(dir) => renderer.with_override_dir(dir).map_err(|e| report_event_error(reporter, service, started, &e)),
    }
}

/// `mailroom preview`: renders to `<kind>.eml`, `.html` and `.txt` in `out`.
pub fn preview(
    reporter: &Reporter,
    event: &str,
    data: &Path,
    out: &Path,
    options: &RenderOptions,
    sender: Option<Mailbox>,
) -> u8 {
    let started = Instant::now();
    let (kind, text) = match read_input(reporter, None, started, event, data) {
        Ok(input) => input,
        Err(code) => return code,
    };
    let renderer = match renderer(reporter, None, started, options) {
        Ok(renderer) => renderer,
        Err(code) => return code,
    };
    let sender = match sender {
        Some(sender) => sender,
        // Without a config, the preview comes from the company's own support address.
        None => match mailroom_events::Event::from_json(kind, &text) {
            Ok(event) => event.company().support_mailbox(),
            Err(e) => return report_event_error(reporter, None, started, &e),
        },
    };
    let preview = match renderer.preview(kind, text.as_str(), &sender) {
        Ok(preview) => preview,
        Err(e) => return report_event_error(reporter, None, started, &e),
    };
    let paths: Vec<PathBuf> =
        ["eml", "html", "txt"].iter().map(|ext| out.join(format!("{}.{ext}", preview.file_stem))).collect();
    let written = std::fs::create_dir_all(out).and_then(|()| {
        std::fs::write(&paths[0], &preview.eml)?;
        std::fs::write(&paths[1], &preview.html)?;
        std::fs::write(&paths[2], &preview.text)
    });
    if let Err(e) = written {
        reporter.usage(None, started, &format!("cannot write the preview to {}: {e}", out.display()), &[]);
        return EXIT_USAGE;
    }
    let listing: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    if reporter.is_json() {
        reporter.object(json!({"ok": true, "event": kind.as_str(), "files": listing}));
    } else {
        reporter.plain(&format!(
            "Rendered {} ({} bytes):\n  {}\n",
            kind.as_str(),
            preview.eml.len(),
            listing.join("\n  ")
        ));
    }
    EXIT_OK
}

/// What `mailroom send` is asked to send.
#[derive(Debug)]
pub struct SendRequest {
    /// The event kind, as typed.
    pub event: String,
    /// The event data file.
    pub data: PathBuf,
    /// Send only to this address instead of the data's recipients.
    pub to: Option<Mailbox>,
    /// How to render.
    pub options: RenderOptions,
}

/// `mailroom send`: renders the event as the Company Email and sends it.
pub async fn send(
    reporter: &Reporter,
    config: &mailroom_core::CompanyEmail,
    transport: &dyn mailroom_core::Transport,
    started: Instant,
    request: SendRequest,
) -> u8 {
    let SendRequest { event, data, to, options } = request;
    let (event, data, options) = (event.as_str(), data.as_path(), &options);
    let service = Some(config.service_kind());
    let (kind, mut text) = match read_input(reporter, service, started, event, data) {
        Ok(input) => input,
        Err(code) => return code,
    };
    if let Some(to) = &to {
        match mailroom::redirect_event(&text, to) {
            Ok(redirected) => text = redirected,
            Err(reason) => {
                reporter.usage(service, started, &reason, &[]);
                return EXIT_USAGE;
            }
        }
    }
    let renderer = match renderer(reporter, service, started, options) {
        Ok(renderer) => renderer,
        Err(code) => return code,
    };
    let rendered = match renderer.render(kind, text.as_str(), &config.sender) {
        Ok(rendered) => rendered,
        Err(e) => return report_event_error(reporter, service, started, &e),
    };
    let message: &OutgoingMessage = &rendered.message;
    match transport.send(message).await {
        Ok(receipt) => {
            let recipients: Vec<String> = message.recipients().iter().map(ToString::to_string).collect();
            if reporter.is_json() {
                reporter.object(json!({
                    "ok": true,
                    "service": service,
                    "elapsed_ms": started.elapsed().as_millis() as u64,
                    "message_id": receipt.message_id,
                    "event": kind.as_str(),
                    "recipients": recipients,
                }));
            } else {
                reporter.plain(&format!(
                    "✓ Sent {} \"{}\" to {} in {} ms, Message-ID {}\n",
                    kind.as_str(),
                    rendered.subject,
                    recipients.join(", "),
                    started.elapsed().as_millis(),
                    receipt.message_id
                ));
            }
            EXIT_OK
        }
        Err(error) => {
            reporter.failure(Failure { service, started, error: &error, headline: "Sending failed" });
            EXIT_FAILED
        }
    }
}
