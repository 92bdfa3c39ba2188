//! `EventError`: everything that can stop an event from becoming a message, each naming the kind, field, or template file and line at fault.

use std::path::PathBuf;

use mailroom_core::{ErrorKind, MessageError, SendError};

use crate::kind::EventKind;

/// Why an event could not be read, rendered or built into a message.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The event kind name is not one of [`EventKind::ALL`].
    #[error(transparent)]
    UnknownKind(#[from] crate::kind::UnknownKind),

    /// The data is not JSON (or not the JSON shape of a payload at all).
    #[error("the {kind} data is not valid JSON: {detail}")]
    InvalidJson {
        /// The event kind being read.
        kind: EventKind,
        /// What the JSON parser said, with line and column.
        detail: String,
    },

    /// A required field is absent.
    #[error("the {kind} data is missing the required field `{field}`")]
    MissingField {
        /// The event kind being read.
        kind: EventKind,
        /// Dotted path of the missing field, e.g. `invoice.due_date`.
        field: String,
    },

    /// A field the payload does not have (often a misspelling).
    #[error("the {kind} data has an unknown field `{field}`: {detail}")]
    UnknownField {
        /// The event kind being read.
        kind: EventKind,
        /// Dotted path of the unknown field.
        field: String,
        /// The fields expected there.
        detail: String,
    },

    /// A field is present but its value is wrong (type, format, https-only URL, amount
    /// precision, an inconsistency with another field…).
    #[error("the {kind} data field `{field}` is invalid: {reason}")]
    InvalidField {
        /// The event kind being read.
        kind: EventKind,
        /// Dotted path of the field, e.g. `payment_url` or `invoice.lines[2].amount`.
        field: String,
        /// What is wrong and, where useful, what is expected.
        reason: String,
    },

    /// A template failed to parse or to render.
    #[error(
        "template {file}{}: {reason}{}{}",
        line.map(|l| format!(", line {l}")).unwrap_or_default(),
        expression.as_ref().map(|e| format!(" (in `{e}`)")).unwrap_or_default(),
        kind.map(|k| format!(" while rendering {k}")).unwrap_or_default()
    )]
    Template {
        /// The event kind being rendered; `None` while loading templates.
        kind: Option<EventKind>,
        /// The template file name, e.g. `overdue_invoice_reminder.html`.
        file: String,
        /// 1-based line in that file.
        line: Option<usize>,
        /// The expression at fault as written in the template, e.g. `invoice.nmuber`.
        expression: Option<String>,
        /// What went wrong, e.g. `undefined value`.
        reason: String,
    },

    /// The template override directory cannot be used.
    #[error("template override directory {}: {reason}", path.display())]
    OverrideDir {
        /// The directory or the file in it at fault.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The message is over the size limit; nothing was sent.
    #[error(
        "the {kind} message would be {size} bytes, over the {limit}-byte limit: send the attachments another way or raise the limit"
    )]
    MessageTooLarge {
        /// The event kind.
        kind: EventKind,
        /// Size of the message (or, when refused early, the least it would be).
        size: usize,
        /// The configured limit.
        limit: usize,
    },

    /// The rendered parts could not be put together as a message.
    #[error("the {kind} message could not be built: {source}")]
    Message {
        /// The event kind.
        kind: EventKind,
        /// What the message builder refused.
        #[source]
        source: MessageError,
    },
}

impl EventError {
    /// The event kind involved, when there is one.
    pub fn event_kind(&self) -> Option<EventKind> {
        match self {
            EventError::UnknownKind(_) | EventError::OverrideDir { .. } => None,
            EventError::Template { kind, .. } => *kind,
            EventError::InvalidJson { kind, .. }
            | EventError::MissingField { kind, .. }
            | EventError::UnknownField { kind, .. }
            | EventError::InvalidField { kind, .. }
            | EventError::MessageTooLarge { kind, .. }
            | EventError::Message { kind, .. } => Some(*kind),
        }
    }

    /// The payload field at fault, as a dotted path, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            EventError::MissingField { field, .. }
            | EventError::UnknownField { field, .. }
            | EventError::InvalidField { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The same error in mailroom's send taxonomy, where one applies: a message over the
    /// size limit is `message_too_large`, exactly as if the server had refused it.
    ///
    /// ```
    /// use mailroom_core::ErrorKind;
    /// use mailroom_events::{EventError, EventKind};
    /// let error = EventError::MessageTooLarge { kind: EventKind::PackingSlipWithInvoice, size: 30_000_000, limit: 10_485_760 };
    /// assert_eq!(error.send_error().unwrap().kind(), ErrorKind::MessageTooLarge);
    /// ```
    pub fn send_error(&self) -> Option<SendError> {
        match self {
            EventError::MessageTooLarge { .. } => Some(SendError::new(ErrorKind::MessageTooLarge, self.to_string())),
            _ => None,
        }
    }

    /// Maps a serde error at `path` (as `serde_path_to_error` writes it; `.` is the root) to the error naming the field.
    pub(crate) fn from_serde(kind: EventKind, path: String, error: serde_json::Error) -> EventError {
        use serde_json::error::Category;
        let path = if path == "." { String::new() } else { path };
        let join = |leaf: &str| {
            if path.is_empty() { leaf.to_owned() } else { format!("{path}.{leaf}") }
        };
        let message = error.to_string();
        match error.classify() {
            Category::Syntax | Category::Eof | Category::Io => EventError::InvalidJson { kind, detail: message },
            Category::Data => {
                // serde's derive writes these two messages; the field name sits between backticks.
                let quoted = |prefix: &str| {
                    message
                        .strip_prefix(prefix)
                        .and_then(|rest| rest.split_once('`'))
                        .map(|(name, rest)| (name.to_owned(), rest.to_owned()))
                };
                if let Some((name, _)) = quoted("missing field `") {
                    EventError::MissingField { kind, field: join(&name) }
                } else if let Some((_, rest)) = quoted("unknown field `") {
                    // For an unknown field, the path already ends with the field itself.
                    let detail =
                        rest.trim_start_matches(',').split(" at line ").next().unwrap_or_default().trim().to_owned();
                    EventError::UnknownField { kind, field: path, detail }
                } else if path.is_empty() {
                    EventError::InvalidJson { kind, detail: message }
                } else {
                    let reason =
                        message.rsplit_once(" at line ").map_or(message.as_str(), |(reason, _)| reason).to_owned();
                    EventError::InvalidField { kind, field: path, reason }
                }
            }
        }
    }

    /// Maps a minijinja error to the error naming the file, line and expression.
    pub(crate) fn from_template(kind: Option<EventKind>, fallback_file: &str, error: &minijinja::Error) -> EventError {
        let expression = match (error.range(), error.template_source()) {
            (Some(range), Some(source)) => {
                source.get(range).map(|text| text.trim().to_owned()).filter(|text| !text.is_empty())
            }
            _ => None,
        };
        let reason = match error.detail() {
            Some(detail) => format!("{}: {detail}", error.kind()),
            None => error.kind().to_string(),
        };
        EventError::Template {
            kind,
            file: error.name().unwrap_or(fallback_file).to_owned(),
            line: error.line(),
            expression,
            reason,
        }
    }
}
