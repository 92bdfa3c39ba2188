//! The `Renderer`: templates parsed once into a minijinja environment (built-ins, optionally overridden from a directory), turning an [`Event`] into subject, text, HTML and a ready [`OutgoingMessage`].

use std::path::Path;
use std::time::SystemTime;

use mailroom_core::{Mailbox, MessageDraft, OutgoingMessage};
use minijinja::{AutoEscape, Environment, State, UndefinedBehavior, Value};

use crate::error::EventError;
use crate::kind::EventKind;
use crate::locale::Locale;
use crate::money::{Currency, Decimal};
use crate::payload::Event;

/// The default message size limit: 10 MiB, the smallest common provider limit
/// (Exchange's historical default); providers take 25–35 MB, so raise it when yours does.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;

/// The name of the header carrying the event kind, so a retried send can be recognised.
pub const EVENT_HEADER: &str = "X-ERP-Event";

/// The three template files of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemplateFiles {
    /// Subject line, e.g. `overdue_invoice_reminder.subject.txt` (line breaks become spaces).
    pub subject: &'static str,
    /// HTML body, e.g. `overdue_invoice_reminder.html` (auto-escaped).
    pub html: &'static str,
    /// Plain-text body, e.g. `overdue_invoice_reminder.txt`.
    pub text: &'static str,
}

macro_rules! built_in_templates {
    ($($kind:ident => $name:literal),* $(,)?) => {
        /// The template files of `kind`.
        pub fn template_files(kind: EventKind) -> TemplateFiles {
            match kind {
                $(EventKind::$kind => TemplateFiles {
                    subject: concat!($name, ".subject.txt"),
                    html: concat!($name, ".html"),
                    text: concat!($name, ".txt"),
                },)*
            }
        }

        /// Every built-in template: (file name, source).
        const BUILT_IN_TEMPLATES: &[(&str, &str)] = &[
            ("_layout.html", include_str!("../templates/_layout.html")),
            ("_layout.txt", include_str!("../templates/_layout.txt")),
            ("_macros.html", include_str!("../templates/_macros.html")),
            $(
                (concat!($name, ".subject.txt"), include_str!(concat!("../templates/", $name, ".subject.txt"))),
                (concat!($name, ".html"), include_str!(concat!("../templates/", $name, ".html"))),
                (concat!($name, ".txt"), include_str!(concat!("../templates/", $name, ".txt"))),
            )*
        ];
    };
}

built_in_templates! {
    OverdueInvoiceReminder => "overdue_invoice_reminder",
    SalesOrderAllocated => "sales_order_allocated",
    ShipmentConfirmed => "shipment_confirmed",
    BillPaymentConfirmed => "bill_payment_confirmed",
    OrderReleased => "order_released",
    PackingSlipWithInvoice => "packing_slip_with_invoice",
    GoodsReceived => "goods_received",
    DepositPaymentLink => "deposit_payment_link",
    InvoicePaymentLink => "invoice_payment_link",
    UserNotification => "user_notification",
}

/// The subject, plain text and HTML of an event, before they become a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedParts {
    /// One line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

/// An attachment as it went into the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentInfo {
    /// The file name the recipient sees.
    pub filename: String,
    /// Its MIME type.
    pub content_type: String,
    /// Its size in bytes (before transfer encoding).
    pub size: usize,
}

/// An event rendered and built into a message, ready for any transport.
#[derive(Clone, Debug)]
pub struct RenderedEvent {
    /// The event kind.
    pub kind: EventKind,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
    /// The To mailbox.
    pub to: Mailbox,
    /// The Cc mailboxes.
    pub cc: Vec<Mailbox>,
    /// The attached files.
    pub attachments: Vec<AttachmentInfo>,
    /// The message: RFC 5322 bytes and envelope.
    pub message: OutgoingMessage,
}

impl RenderedEvent {
    /// The deterministic Message-ID (also the idempotency key of the send).
    pub fn message_id(&self) -> &str {
        self.message.message_id()
    }

    /// Every envelope recipient (To and Cc).
    pub fn recipients(&self) -> &[mailroom_core::Address] {
        self.message.recipients()
    }

    /// The preview files' contents: the `.eml`, `.html` and `.txt`.
    pub fn preview(&self) -> Preview {
        Preview {
            file_stem: self.kind.as_str(),
            eml: self.message.bytes().to_vec(),
            html: self.html.clone(),
            text: self.text.clone(),
        }
    }
}

/// What `mailroom preview` writes: `{file_stem}.eml`, `{file_stem}.html`, `{file_stem}.txt`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preview {
    /// Suggested file name without extension: the event kind.
    pub file_stem: &'static str,
    /// The whole message, RFC 5322 with CRLF line endings (opens in any mail client).
    pub eml: Vec<u8>,
    /// The HTML body alone (opens in a browser).
    pub html: String,
    /// The plain-text body alone.
    pub text: String,
}

/// Event data as given to [`Renderer::render`]: JSON text or an already parsed JSON value.
#[derive(Clone, Copy, Debug)]
pub enum EventData<'a> {
    /// JSON text.
    Json(&'a str),
    /// A parsed JSON value.
    Value(&'a serde_json::Value),
}

impl<'a> From<&'a str> for EventData<'a> {
    fn from(json: &'a str) -> EventData<'a> {
        EventData::Json(json)
    }
}

impl<'a> From<&'a String> for EventData<'a> {
    fn from(json: &'a String) -> EventData<'a> {
        EventData::Json(json)
    }
}

impl<'a> From<&'a serde_json::Value> for EventData<'a> {
    fn from(value: &'a serde_json::Value) -> EventData<'a> {
        EventData::Value(value)
    }
}

/// Renders events with templates parsed once.
///
/// Keep one renderer and reuse it: construction parses every template, rendering does not.
///
/// ```
/// use mailroom_events::{EventKind, Renderer};
/// let sender = "Northwind ERP <erp@northwind.example>".parse().unwrap();
/// let json = r#"{
///   "recipient": {"name": "Ada Lovelace", "email": "ada@example.com"},
///   "company": {"name": "Northwind Traders", "support_email": "help@northwind.example"},
///   "currency": "USD",
///   "invoice": {"number": "INV-1001", "issue_date": "2026-10-27", "due_date": "2026-11-26", "amount_due": "1250.00"},
///   "payment_url": "https://pay.northwind.example/i/INV-1001"
/// }"#;
/// let rendered = Renderer::new().render(EventKind::InvoicePaymentLink, json, &sender).unwrap();
/// assert_eq!(rendered.subject, "Invoice INV-1001 from Northwind Traders: $1,250.00 due November 26, 2026");
/// assert!(rendered.text.contains("https://pay.northwind.example/i/INV-1001"));
/// assert!(rendered.message_id().ends_with("@northwind.example>"));
/// ```
#[derive(Debug)]
pub struct Renderer {
    env: Environment<'static>,
    max_message_bytes: usize,
    date: Option<SystemTime>,
}

impl Default for Renderer {
    fn default() -> Renderer {
        Renderer::new()
    }
}

impl Renderer {
    /// A renderer with the built-in templates and a [`DEFAULT_MAX_MESSAGE_BYTES`] limit.
    pub fn new() -> Renderer {
        let mut env = configured_environment();
        env.add_filter("money", money_filter);
        env.add_filter("number", number_filter);
        env.add_filter("date", date_filter);
        env.add_filter("mailto", mailto_filter);
        Renderer { env, max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES, date: None }
    }

    /// Every template file name a directory may override.
    pub fn template_names() -> impl Iterator<Item = &'static str> {
        BUILT_IN_TEMPLATES.iter().map(|(name, _)| *name)
    }

    /// Replaces built-in templates with the files of the same name in `dir`
    /// (e.g. `overdue_invoice_reminder.html`, `_layout.html`); files not present keep the
    /// built-in. Every override is parsed now, so a syntax error surfaces here with its
    /// file and line. A `.html` or `.txt` file whose name is no template is refused
    /// (a misspelt override would otherwise be silently ignored); other files are ignored.
    pub fn with_override_dir(mut self, dir: impl AsRef<Path>) -> Result<Renderer, EventError> {
        let dir = dir.as_ref();
        let dir_error = |path: &Path, reason: String| EventError::OverrideDir { path: path.to_owned(), reason };
        let entries = std::fs::read_dir(dir).map_err(|e| dir_error(dir, format!("cannot be read: {e}")))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| dir_error(dir, format!("cannot be read: {e}")))?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            if !(name.ends_with(".html") || name.ends_with(".txt")) || !path.is_file() {
                continue;
            }
            if !Renderer::template_names().any(|known| known == name) {
                return Err(dir_error(
                    &path,
                    format!(
                        "\"{name}\" is not a template name: use one of {}",
                        Renderer::template_names().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            files.push((name, path));
        }
        // Sorted so that, with several broken files, the same one is reported every time.
        files.sort();
        for (name, path) in files {
            let source = std::fs::read_to_string(&path)
                .map_err(|e| dir_error(&path, format!("cannot be read as UTF-8 text: {e}")))?;
            self.env
                .add_template_owned(name.clone(), source)
                .map_err(|e| EventError::from_template(None, &name, &e))?;
        }
        Ok(self)
    }

    /// Sets the message size limit; larger messages are refused before anything is sent
    /// with [`EventError::MessageTooLarge`] (a `message_too_large` [`mailroom_core::SendError`]).
    pub fn with_max_message_bytes(mut self, limit: usize) -> Renderer {
        self.max_message_bytes = limit;
        self
    }

    /// Fixes the Date header of every message (default: the time of rendering), for
    /// byte-for-byte reproducible previews.
    pub fn with_date(mut self, date: SystemTime) -> Renderer {
        self.date = Some(date);
        self
    }

    /// The message size limit in bytes.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Reads, checks and renders a `kind` event from JSON (text or value) as a message
    /// from `sender` (the Company Email).
    pub fn render<'a>(
        &self,
        kind: EventKind,
        data: impl Into<EventData<'a>>,
        sender: &Mailbox,
    ) -> Result<RenderedEvent, EventError> {
        let event = match data.into() {
            EventData::Json(json) => Event::from_json(kind, json)?,
            EventData::Value(value) => Event::from_value(kind, value)?,
        };
        self.render_event(&event, sender)
    }

    /// Renders the preview files of a `kind` event (see [`RenderedEvent::preview`]).
    pub fn preview<'a>(
        &self,
        kind: EventKind,
        data: impl Into<EventData<'a>>,
        sender: &Mailbox,
    ) -> Result<Preview, EventError> {
        Ok(self.render(kind, data, sender)?.preview())
    }

    /// Renders an already read event into subject, text and HTML only.
    pub fn render_parts(&self, event: &Event) -> Result<RenderedParts, EventError> {
        let kind = event.kind();
        let files = template_files(kind);
        let mut context = event.context();
        let subject = one_line(&self.render_file(kind, files.subject, &context.to_value())?);
        context.insert("subject", subject.as_str());
        context.insert("lang", event.locale().tag());
        let context = context.to_value();
        let html = crate::fold::fold_html(self.render_file(kind, files.html, &context)?);
        let text = crate::fold::wrap_text(self.render_file(kind, files.text, &context)?);
        Ok(RenderedParts { subject, text, html })
    }

    /// Renders an already read event and builds its message from `sender`.
    ///
    /// The message has the recipient as To (and Cc), the company's support address as
    /// Reply-To, a deterministic Message-ID ([`Event::message_id`]) and an
    /// [`EVENT_HEADER`] with the kind.
    pub fn render_event(&self, event: &Event, sender: &Mailbox) -> Result<RenderedEvent, EventError> {
        let kind = event.kind();
        let attachments = event.attachments();
        // Refuse early, before rendering and encoding, when the raw files alone are too big:
        // no transfer encoding makes them smaller, so this never refuses a message that fits.
        let attachment_bytes: usize = attachments.iter().map(|a| a.bytes.len()).sum();
        if attachment_bytes > self.max_message_bytes {
            return Err(EventError::MessageTooLarge { kind, size: attachment_bytes, limit: self.max_message_bytes });
        }
        let parts = self.render_parts(event)?;
        let recipient = event.recipient();
        let to = recipient.mailbox();
        let cc: Vec<Mailbox> =
            recipient.cc.iter().map(|address| Mailbox::new(None, address.address().clone())).collect();
        let attachment_infos = attachments
            .iter()
            .map(|a| AttachmentInfo {
                filename: a.filename.clone(),
                content_type: a.content_type.clone(),
                size: a.bytes.len(),
            })
            .collect();
        let mut draft = MessageDraft::new(sender.clone())
            .to(to.clone())
            .reply_to(event.company().support_mailbox())
            .subject(parts.subject.clone())
            .text(parts.text.clone())
            .html(parts.html.clone())
            .header(EVENT_HEADER, kind.as_str())
            .message_id(event.message_id(sender.email.domain()));
        for mailbox in &cc {
            draft = draft.cc(mailbox.clone());
        }
        for attachment in attachments {
            draft = draft.attach(attachment);
        }
        if let Some(date) = self.date {
            draft = draft.date(date);
        }
        let message = draft.build().map_err(|source| EventError::Message { kind, source })?;
        if message.len() > self.max_message_bytes {
            return Err(EventError::MessageTooLarge { kind, size: message.len(), limit: self.max_message_bytes });
        }
        Ok(RenderedEvent {
            kind,
            subject: parts.subject,
            text: parts.text,
            html: parts.html,
            to,
            cc,
            attachments: attachment_infos,
            message,
        })
    }

    fn render_file(&self, kind: EventKind, file: &str, context: &Value) -> Result<String, EventError> {
        let template = self.env.get_template(file).map_err(|e| EventError::from_template(Some(kind), file, &e))?;
        template.render(context).map_err(|e| EventError::from_template(Some(kind), file, &e))
    }
}

/// The environment every renderer starts from: the engine's settings and the built-in
/// templates, without the formatting filters.
fn configured_environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Strict: a misspelt variable in a template is an error naming it, never an empty string in a customer's inbox.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_auto_escape_callback(|name| if name.ends_with(".html") { AutoEscape::Html } else { AutoEscape::None });
    env.set_formatter(html_formatter);
    for (name, source) in BUILT_IN_TEMPLATES {
        if let Err(error) = env.add_template(name, source) {
            // The built-ins are parsed by every test run; this is a build defect.
            panic!("built-in template {name} does not parse: {error:#}");
        }
    }
    env
}

/// The template engine exactly as [`Renderer`] sets it up, with `money`, `number`, `date`
/// and `mailto` as identity filters: what `cargo xtask bench events` times as the engine's
/// ceiling (no formatting, folding or MIME build can be faster than this).
#[doc(hidden)]
pub fn engine_only_environment() -> Environment<'static> {
    let mut env = configured_environment();
    for filter in ["money", "number", "date", "mailto"] {
        env.add_filter(filter, |value: Value, _options: minijinja::value::Rest<Value>| value);
    }
    env
}

/// The subject template's output on one line: line breaks and runs of spaces become one space.
fn one_line(text: &str) -> String {
    // ASCII whitespace only: the no-break spaces inside formatted amounts must stay.
    text.split(|c: char| c.is_ascii_whitespace()).filter(|word| !word.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Prints values, escaping strings in `.html` templates for text and attribute values
/// (`& < > " '`). minijinja's own escaper also writes `/` as `&#x2f;`, which HTML does not
/// need and which made every URL three times longer (see [`crate::fold`]).
fn html_formatter(out: &mut minijinja::Output, state: &State, value: &Value) -> Result<(), minijinja::Error> {
    match value.as_str() {
        Some(text) if state.auto_escape() == AutoEscape::Html && !value.is_safe() => {
            let mut last = 0;
            for (index, byte) in text.bytes().enumerate() {
                let entity = match byte {
                    b'&' => "&amp;",
                    b'<' => "&lt;",
                    b'>' => "&gt;",
                    b'"' => "&quot;",
                    b'\'' => "&#x27;",
                    _ => continue,
                };
                out.write_str(&text[last..index])?;
                out.write_str(entity)?;
                last = index + 1;
            }
            out.write_str(&text[last..]).map_err(Into::into)
        }
        // Everything else (numbers, undefined in strict mode, safe strings) as minijinja does it.
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// The locale and currency of the payload being rendered, looked up once per render: the
/// money and date filters run dozens of times per message, and two context lookups per call
/// were a fifth of the rendering time.
#[derive(Debug)]
struct PayloadFormatting {
    locale: Locale,
    currency: Option<Currency>,
}

impl minijinja::value::Object for PayloadFormatting {}

fn payload_formatting(state: &State) -> std::sync::Arc<PayloadFormatting> {
    state.get_or_set_temp_object("mailroom.payload_formatting", || PayloadFormatting {
        locale: state.lookup("locale").and_then(|value| value.as_str().and_then(Locale::from_tag)).unwrap_or_default(),
        currency: state.lookup("currency").and_then(|value| value.as_str().and_then(Currency::from_code)),
    })
}

fn locale_of(state: &State) -> Locale {
    payload_formatting(state).locale
}

fn decimal_of(value: &Value, filter: &str) -> Result<Decimal, minijinja::Error> {
    let parsed = match value.as_str() {
        Some(text) => text.parse::<Decimal>(),
        None if value.is_integer() => value.to_string().parse::<Decimal>(),
        None => {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("the {filter} filter needs a decimal amount, got {value:?}"),
            ));
        }
    };
    parsed.map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string()))
}

/// `{{ amount | money }}` or `{{ amount | money("EUR") }}`: the amount in the payload's
/// `currency` (or the one given), written the payload locale's way.
fn money_filter(state: &State, value: &Value, currency: Option<&str>) -> Result<String, minijinja::Error> {
    let invalid = |detail: String| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, detail);
    let formatting = payload_formatting(state);
    let currency = match currency {
        Some(code) => {
            Currency::from_code(code).ok_or_else(|| invalid(format!("\"{code}\" is not an ISO 4217 currency code")))?
        }
        None => formatting.currency.ok_or_else(|| {
            invalid(
                "the money filter needs a currency: add `currency` to the payload or write amount|money(\"USD\")"
                    .into(),
            )
        })?,
    };
    let money = decimal_of(value, "money")?.to_money(currency).map_err(|e| invalid(e.to_string()))?;
    Ok(money.format(formatting.locale))
}

/// `{{ quantity | number }}`: a decimal with the locale's separators.
fn number_filter(state: &State, value: &Value) -> Result<String, minijinja::Error> {
    Ok(decimal_of(value, "number")?.format(locale_of(state)))
}

/// `href="mailto:{{ address | mailto }}"`: the address percent-encoded for a `mailto:` URI
/// (RFC 6068). `?`, `&`, `#` and `%` are legal in an address's local part but would start
/// header fields in the URI (`help?bcc=someone@…`), so only unreserved characters, `@` and
/// the harmless sub-delimiters stay as they are.
fn mailto_filter(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~!$'()*+,;=@".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `{{ invoice.due_date | date }}`: a `YYYY-MM-DD` date as the locale writes a long date.
fn date_filter(state: &State, value: &str) -> Result<String, minijinja::Error> {
    let date = crate::common::iso_date::parse(value)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e))?;
    Ok(locale_of(state).format_date(date))
}
