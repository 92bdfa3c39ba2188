//! Messages as the fake servers received them, their MIME-parsed view, and the shared store tests wait on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use mailroom_core::conformance::ReceivedMessage;
use tokio::sync::watch;

use crate::KitError;

/// One message accepted by a fake server (the final reply to its data was positive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedMessage {
    /// The address in `MAIL FROM:<…>` (empty for the null sender `<>`).
    pub envelope_from: String,
    /// The addresses of every accepted `RCPT TO:<…>`, in order.
    pub recipients: Vec<String>,
    /// The message bytes after dot-unstuffing, without the final `.` line.
    pub raw: Vec<u8>,
    /// The user name the client authenticated as on this connection, if it did.
    pub authenticated_as: Option<String>,
    /// Whether the message travelled over TLS (STARTTLS or implicit TLS).
    pub over_tls: bool,
}

impl CapturedMessage {
    /// Parses the raw bytes as MIME (headers, bodies, attachments).
    pub fn parsed(&self) -> ParsedMessage {
        ParsedMessage::parse(&self.raw)
    }
}

impl From<&CapturedMessage> for ReceivedMessage {
    fn from(message: &CapturedMessage) -> Self {
        ReceivedMessage {
            envelope_from: Some(message.envelope_from.clone()),
            recipients: message.recipients.clone(),
            bytes: message.raw.clone(),
        }
    }
}

/// A mailbox from a header: display name and address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedAddress {
    /// The display name, decoded.
    pub name: Option<String>,
    /// The address (`local@domain`).
    pub address: String,
}

/// An attachment found in a captured message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedAttachment {
    /// The decoded filename (`Content-Disposition` filename or `Content-Type` name).
    pub filename: Option<String>,
    /// `type/subtype`, lower-case, e.g. `application/pdf`.
    pub content_type: String,
    /// The decoded content.
    pub bytes: Vec<u8>,
}

/// The MIME view of a captured message, owned so tests can keep it around.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedMessage {
    /// The decoded `Subject`.
    pub subject: Option<String>,
    /// The `From` mailboxes.
    pub from: Vec<ParsedAddress>,
    /// The `To` mailboxes.
    pub to: Vec<ParsedAddress>,
    /// The `Cc` mailboxes.
    pub cc: Vec<ParsedAddress>,
    /// Every header as (name, raw value), in order; values keep their folding and encoding.
    pub headers: Vec<(String, String)>,
    /// The first text/plain body, decoded.
    pub text: Option<String>,
    /// The first text/html body, decoded.
    pub html: Option<String>,
    /// The attachments, in order.
    pub attachments: Vec<ParsedAttachment>,
}

impl ParsedMessage {
    /// Parses RFC 5322 bytes; bytes that are not a message give an empty view.
    pub fn parse(raw: &[u8]) -> Self {
        let Some(message) = MessageParser::default().parse(raw) else {
            return Self::default();
        };
        let addresses = |address: Option<&mail_parser::Address<'_>>| -> Vec<ParsedAddress> {
            address
                .map(|list| {
                    list.iter()
                        .filter_map(|addr| {
                            Some(ParsedAddress {
                                name: addr.name().map(str::to_owned),
                                address: addr.address()?.to_owned(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let attachments = message
            .attachments()
            .map(|part| {
                let content_type = part
                    .content_type()
                    .map(|ct| match ct.subtype() {
                        Some(sub) => format!("{}/{}", ct.ctype(), sub),
                        None => ct.ctype().to_owned(),
                    })
                    .unwrap_or_else(|| "application/octet-stream".to_owned())
                    .to_ascii_lowercase();
                ParsedAttachment {
                    filename: part.attachment_name().map(str::to_owned),
                    content_type,
                    bytes: part.contents().to_vec(),
                }
            })
            .collect();
        // mail-parser's body_text/body_html convert one into the other when a part is missing;
        // a test needs to know which parts were really sent, so look for the MIME types.
        let inline_part = |subtype: &str| {
            message
                .parts
                .iter()
                .filter(|part| part.attachment_name().is_none())
                .find(|part| {
                    part.content_type().is_some_and(|ct| {
                        ct.ctype().eq_ignore_ascii_case("text")
                            && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case(subtype))
                    })
                })
                .and_then(|part| part.text_contents().map(str::to_owned))
        };
        let untyped = message.content_type().is_none();
        let text =
            inline_part("plain").or_else(|| untyped.then(|| message.body_text(0).map(|b| b.into_owned())).flatten());
        Self {
            subject: message.subject().map(str::to_owned),
            from: addresses(message.from()),
            to: addresses(message.to()),
            cc: addresses(message.cc()),
            headers: message.headers_raw().map(|(name, value)| (name.to_owned(), value.trim().to_owned())).collect(),
            text,
            html: inline_part("html"),
            attachments,
        }
    }

    /// The raw value of the first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(header, _)| header.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

/// The messages a server has captured, shared between its connections and the test.
#[derive(Clone, Debug)]
pub(crate) struct MessageStore {
    messages: Arc<Mutex<Vec<CapturedMessage>>>,
    count: Arc<watch::Sender<usize>>,
}

impl Default for MessageStore {
    fn default() -> Self {
        Self { messages: Arc::default(), count: Arc::new(watch::Sender::new(0)) }
    }
}

impl MessageStore {
    pub(crate) fn push(&self, message: CapturedMessage) {
        let mut messages = self.messages.lock().unwrap_or_else(|e| e.into_inner());
        messages.push(message);
        let count = messages.len();
        drop(messages);
        self.count.send_replace(count);
    }

    pub(crate) fn snapshot(&self) -> Vec<CapturedMessage> {
        self.messages.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) async fn wait_for(&self, count: usize, timeout: Duration) -> Result<Vec<CapturedMessage>, KitError> {
        let mut receiver = self.count.subscribe();
        let reached = tokio::time::timeout(timeout, receiver.wait_for(|n| *n >= count)).await;
        match reached {
            Ok(Ok(_)) => Ok(self.snapshot()),
            // The sender lives as long as the store, so a closed channel cannot happen here;
            // report it as a timeout rather than panicking.
            Ok(Err(_)) | Err(_) => Err(KitError::Timeout {
                waited_for: format!("{count} message(s)"),
                after: timeout,
                got: format!("{} message(s)", self.snapshot().len()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTIPART: &str = "From: Company ERP <erp@company.com>\r\n\
To: Ada <ada@example.com>, bob@example.com\r\n\
Cc: cc@example.com\r\n\
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=\"inner\"\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hello text\r\n\
--inner\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Hello html</p>\r\n\
--inner--\r\n\
--outer\r\n\
Content-Type: application/pdf\r\n\
Content-Disposition: attachment; filename=\"invoice.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0=\r\n\
--outer--\r\n";

    #[test]
    fn parses_headers_bodies_and_attachments() {
        let parsed = ParsedMessage::parse(MULTIPART.as_bytes());
        assert_eq!(parsed.subject.as_deref(), Some("Grüße"));
        assert_eq!(parsed.from[0].name.as_deref(), Some("Company ERP"));
        assert_eq!(parsed.to.len(), 2);
        assert_eq!(parsed.cc[0].address, "cc@example.com");
        assert_eq!(parsed.header("mime-version"), Some("1.0"));
        assert_eq!(parsed.text.as_deref().map(str::trim), Some("Hello text"));
        assert_eq!(parsed.html.as_deref().map(str::trim), Some("<p>Hello html</p>"));
        assert_eq!(parsed.attachments.len(), 1);
        let attachment = &parsed.attachments[0];
        assert_eq!(attachment.filename.as_deref(), Some("invoice.pdf"));
        assert_eq!(attachment.content_type, "application/pdf");
        assert_eq!(attachment.bytes, b"%PDF-");
    }

    #[tokio::test]
    async fn waiting_for_more_messages_than_arrive_times_out() {
        let store = MessageStore::default();
        store.push(CapturedMessage {
            envelope_from: "a@example.com".into(),
            recipients: vec!["b@example.com".into()],
            raw: b"Subject: x\r\n\r\nbody\r\n".to_vec(),
            authenticated_as: None,
            over_tls: false,
        });
        assert_eq!(store.wait_for(1, Duration::from_millis(10)).await.unwrap().len(), 1);
        let error = store.wait_for(2, Duration::from_millis(20)).await.unwrap_err();
        assert!(matches!(error, KitError::Timeout { .. }), "{error}");
    }
}
