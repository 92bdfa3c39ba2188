//! The outbox through the facade: where a config's outbox lives, event mail turned into stored messages, and the daily overdue-reminder job that reads its history from the outbox.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mailroom_core::Mailbox;
use mailroom_core::config::OutboxConfig;
use mailroom_events::{
    Decimal, DueReminder, EventError, EventKind, OpenInvoice, ReminderPolicy, RenderedEvent, Renderer, SentReminder,
    reminders_due,
};
use mailroom_outbox::{NewMessage, Store, StoreError};
use serde_json::{Value, json};
use time::Date;

/// The default outbox: a SQLite file beside the config file.
pub const DEFAULT_OUTBOX_FILE: &str = "mailroom-outbox.db";

/// The database URL of a config's outbox: `[outbox] url`, with a relative SQLite path taken
/// relative to the config file's folder (default `sqlite:mailroom-outbox.db` there).
///
/// ```
/// use mailroom_core::config::OutboxConfig;
/// let url = mailroom::outbox_url("/etc/erp/mail.toml".as_ref(), &OutboxConfig::default());
/// assert_eq!(url, "sqlite:/etc/erp/mailroom-outbox.db");
/// let mut pg = OutboxConfig::default();
/// pg.url = Some("postgres://mailroom@db/erp".into());
/// assert_eq!(mailroom::outbox_url("mail.toml".as_ref(), &pg), "postgres://mailroom@db/erp");
/// ```
pub fn outbox_url(config_path: &Path, outbox: &OutboxConfig) -> String {
    let url = outbox.url.clone().unwrap_or_else(|| format!("sqlite:{DEFAULT_OUTBOX_FILE}"));
    let Some((path, query)) = sqlite_parts(&url) else { return url };
    if Path::new(path).is_absolute() || path.starts_with(':') {
        return url;
    }
    let folder = config_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let resolved = folder.join(path);
    match query {
        Some(query) => format!("sqlite:{}?{query}", resolved.display()),
        None => format!("sqlite:{}", resolved.display()),
    }
}

/// The SQLite file of an outbox URL (as [`outbox_url`] returns it); `None` for PostgreSQL or an
/// in-memory database.
///
/// ```
/// assert_eq!(mailroom::sqlite_outbox_file("sqlite:/srv/outbox.db?mode=rwc"), Some("/srv/outbox.db".into()));
/// assert_eq!(mailroom::sqlite_outbox_file("sqlite::memory:"), None);
/// assert_eq!(mailroom::sqlite_outbox_file("postgres://mailroom@db/erp"), None);
/// ```
pub fn sqlite_outbox_file(url: &str) -> Option<PathBuf> {
    let (path, _) = sqlite_parts(url)?;
    (!path.is_empty() && !path.starts_with(':')).then(|| PathBuf::from(path))
}

/// A `sqlite:` URL's path (without a leading `//`) and query; `None` for another scheme.
fn sqlite_parts(url: &str) -> Option<(&str, Option<&str>)> {
    let rest = url.strip_prefix("sqlite:")?;
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    Some((path.strip_prefix("//").unwrap_or(path), query))
}

/// Opens (creating and migrating if needed) the outbox of a config file.
pub async fn open_outbox(config_path: &Path, outbox: &OutboxConfig) -> Result<Store, StoreError> {
    Store::open(&outbox_url(config_path, outbox)).await
}

/// A rendered event as a message to store: its Message-ID is the idempotency key, and its
/// kind, document and stage are kept so the reminder job can read its history.
pub fn event_message(rendered: &RenderedEvent, document: &str, stage: Option<u32>) -> NewMessage {
    NewMessage {
        event_kind: Some(rendered.kind.as_str().to_owned()),
        document: Some(document.to_owned()),
        stage,
        ..NewMessage::from_outgoing(&rendered.message)
    }
}

/// Renders one event (JSON data) as a message to store.
pub fn render_for_outbox(
    renderer: &Renderer,
    kind: EventKind,
    data: &Value,
    sender: &Mailbox,
) -> Result<NewMessage, EventError> {
    let event = mailroom_events::Event::from_value(kind, data)?;
    let rendered = renderer.render_event(&event, sender)?;
    Ok(event_message(&rendered, event.document_number(), event.stage()))
}

/// Why an invoices file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RemindersError {
    /// Not JSON, or a field is missing or wrong.
    #[error("the invoices file: {field}: {message}")]
    Invoices {
        /// The dotted path of the field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A due reminder's payload did not render.
    #[error(transparent)]
    Event(#[from] EventError),
}

fn invoices_error(field: impl Into<String>, message: impl Into<String>) -> RemindersError {
    RemindersError::Invoices { field: field.into(), message: message.into() }
}

/// A reminder due today, rendered and ready to enqueue.
#[derive(Debug)]
pub struct PlannedReminder {
    /// Which invoice and stage.
    pub due: DueReminder,
    /// The message (Message-ID from kind, invoice number and stage: the same on every machine).
    pub message: NewMessage,
}

/// The reminders due `today` for the open invoices in `invoices_json`, given what the outbox
/// already holds (`history`: `(invoice number, stage)` of every reminder in it, whatever its
/// state), rendered from `sender`.
///
/// The invoices file: `{"company": {…}, "currency": "USD", "locale": "en-US" (optional),
/// "policy": [1, 7, 14, 30] (optional), "invoices": [{"recipient": {…}, "customer_number": …,
/// "invoice": {"number", "issue_date", "due_date", "total", "amount_due", …}, "paid": false,
/// "payment_url": …}]}` — the `overdue_invoice_reminder` payload's fields, one entry per invoice.
/// Reminders carry no `event_id`, so their Message-ID depends only on the invoice and the stage:
/// two machines running the job on the same day enqueue the same keys, and the second is a
/// duplicate.
pub fn plan_reminders(
    invoices_json: &str,
    today: Date,
    policy: Option<&ReminderPolicy>,
    history: &[(String, u32)],
    renderer: &Renderer,
    sender: &Mailbox,
) -> Result<Vec<PlannedReminder>, RemindersError> {
    let file: Value = serde_json::from_str(invoices_json).map_err(|e| invoices_error("(file)", e.to_string()))?;
    let Some(root) = file.as_object() else { return Err(invoices_error("(file)", "must be a JSON object")) };
    let policy = match (policy, root.get("policy")) {
        (Some(policy), _) => policy.clone(),
        (None, None) => ReminderPolicy::default(),
        (None, Some(stages)) => {
            let stages: Vec<u32> = serde_json::from_value(stages.clone()).map_err(|_| {
                invoices_error("policy", "must be a list of days after the due date, e.g. [1, 7, 14, 30]")
            })?;
            ReminderPolicy::new(stages).map_err(|e| invoices_error("policy", e.to_string()))?
        }
    };
    let Some(entries) = root.get("invoices").and_then(Value::as_array) else {
        return Err(invoices_error("invoices", "is missing: list the open invoices"));
    };
    let mut open = Vec::with_capacity(entries.len());
    let mut by_number: HashMap<String, &Value> = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
        let at = |field: &str| format!("invoices[{index}].{field}");
        let invoice = entry.get("invoice").ok_or_else(|| invoices_error(at("invoice"), "is missing"))?;
        let text = |field: &str| {
            invoice
                .get(field)
                .and_then(Value::as_str)
                .ok_or_else(|| invoices_error(at(&format!("invoice.{field}")), "is missing or not text"))
        };
        let number = text("number")?.to_owned();
        let due_date = Date::parse(text("due_date")?, time::macros::format_description!("[year]-[month]-[day]"))
            .map_err(|_| invoices_error(at("invoice.due_date"), "must be a date like 2026-11-30"))?;
        let amount_due: Decimal = text("amount_due")?
            .parse()
            .map_err(|_| invoices_error(at("invoice.amount_due"), "must be an amount like \"1250.00\""))?;
        let paid = match entry.get("paid") {
            None => false,
            Some(Value::Bool(paid)) => *paid,
            Some(_) => return Err(invoices_error(at("paid"), "must be true or false")),
        };
        by_number.entry(number.clone()).or_insert(entry);
        open.push(OpenInvoice { number, due_date, amount_due, paid });
    }
    let history: Vec<SentReminder> = history
        .iter()
        .map(|(invoice_number, stage)| SentReminder { invoice_number: invoice_number.clone(), stage: *stage })
        .collect();
    let today_text = format!("{:04}-{:02}-{:02}", today.year(), u8::from(today.month()), today.day());
    let mut planned = Vec::new();
    for due in reminders_due(&open, today, &policy, &history) {
        let entry = by_number[&due.invoice_number];
        let mut payload = serde_json::Map::new();
        for key in ["company", "currency", "locale"] {
            if let Some(value) = entry.get(key).or_else(|| root.get(key)) {
                payload.insert(key.into(), value.clone());
            }
        }
        for key in ["recipient", "customer_number", "invoice", "payment_url"] {
            if let Some(value) = entry.get(key) {
                payload.insert(key.into(), value.clone());
            }
        }
        payload.insert("reminder_stage".into(), json!(due.stage));
        payload.insert("as_of".into(), json!(today_text));
        let message = render_for_outbox(renderer, EventKind::OverdueInvoiceReminder, &Value::Object(payload), sender)?;
        planned.push(PlannedReminder { due, message });
    }
    Ok(planned)
}
