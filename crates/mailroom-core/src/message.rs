//! `OutgoingMessage`: one message built once as RFC 5322 bytes (lettre's builder) plus its envelope, handed unchanged to any driver.

use std::sync::Arc;
use std::time::SystemTime;

use lettre::Address;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment as LettreAttachment, Body as LettreBody, Mailbox, MultiPart, SinglePart};

/// A file attached to a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// The file name the recipient sees (non-ASCII is encoded per RFC 2231).
    pub filename: String,
    /// MIME type, e.g. `application/pdf`.
    pub content_type: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

impl Attachment {
    /// An attachment whose MIME type is guessed from the file name's extension.
    ///
    /// ```
    /// use mailroom_core::Attachment;
    /// let pdf = Attachment::guess("INV-1001.pdf", b"%PDF-1.7".to_vec());
    /// assert_eq!(pdf.content_type, "application/pdf");
    /// ```
    pub fn guess(filename: impl Into<String>, bytes: Vec<u8>) -> Attachment {
        let filename = filename.into();
        let content_type = mime_type_for(&filename).to_owned();
        Attachment { filename, content_type, bytes }
    }
}

/// The MIME type for a file name's extension; `application/octet-stream` when unknown.
pub fn mime_type_for(filename: &str) -> &'static str {
    let extension = filename.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "pdf" => "application/pdf",
        "csv" => "text/csv",
        "txt" => "text/plain",
        "html" | "htm" => "text/html",
        "xml" => "application/xml",
        "json" => "application/json",
        "zip" => "application/zip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "ics" => "text/calendar",
        _ => "application/octet-stream",
    }
}

/// Why a message could not be built. Each variant names the input at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// A header value (subject, name, custom header, file name) contains CR or LF.
    #[error("{input} contains a line break (CR or LF), which could inject a header: remove it")]
    LineBreakInHeader {
        /// Which input: `subject`, `header X-Foo`, `attachment file name`, …
        input: String,
    },
    /// The message has no To, Cc or Bcc recipient.
    #[error("the message has no recipient: add at least one To, Cc or Bcc address")]
    NoRecipients,
    /// The message has neither a text nor an HTML body.
    #[error("the message has no body: add a text or an HTML part")]
    NoBody,
    /// A custom header name is not a valid RFC 5322 field name.
    #[error("\"{0}\" is not a valid header name (printable ASCII without spaces or colons)")]
    InvalidHeaderName(String),
    /// A custom header would replace one the builder controls.
    #[error("the {0} header is set by the message builder; use its own method instead")]
    ReservedHeader(String),
    /// The Message-ID is not `<left@right>`.
    #[error("\"{0}\" is not a Message-ID: use the form <unique-part@company.com>")]
    InvalidMessageId(String),
    /// An attachment's MIME type does not parse.
    #[error("\"{0}\" is not a MIME type, e.g. application/pdf")]
    InvalidContentType(String),
    /// A header value contains a control character other than tab (NUL, vertical tab, ESC…).
    #[error("{input} contains a control character ({character:?}), which has no place in a header: remove it")]
    ControlCharacterInHeader {
        /// Which input: `subject`, `To name`, `attachment file name`, …
        input: String,
        /// The offending character.
        character: char,
    },
    /// A header value has a run of characters without a space too long to fit on one
    /// header line (RFC 5322 §2.1.1 allows 998 bytes, and a line can only break at a space).
    #[error(
        "{input} has {length} characters without a space; at most {MAX_HEADER_WORD} fit on a header line: shorten it"
    )]
    WordTooLong {
        /// Which input: `subject`, `To name`, …
        input: String,
        /// The length of the longest run, in bytes.
        length: usize,
    },
    /// lettre refused the message.
    #[error("the message could not be built: {0}")]
    Build(String),
}

/// The longest run without a space a header value may have, in bytes: a header line holds
/// 998 bytes, minus the field name and room for the encoding lettre may apply.
pub(crate) const MAX_HEADER_WORD: usize = 900;

const RESERVED_HEADERS: &[&str] = &[
    "from",
    "sender",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
];

/// A message being put together. Nothing is validated until [`MessageDraft::build`], which
/// reports the first problem by name.
///
/// ```
/// use mailroom_core::{MessageDraft, Attachment};
/// let sender = "Company ERP <erp@company.com>".parse().unwrap();
/// let message = MessageDraft::new(sender)
///     .to("Ada <ada@example.com>".parse().unwrap())
///     .bcc("audit@company.com".parse().unwrap())
///     .subject("Invoice INV-1001 is overdue")
///     .text("Please pay invoice INV-1001.")
///     .html("<p>Please pay invoice <b>INV-1001</b>.</p>")
///     .attach(Attachment::guess("INV-1001.pdf", b"%PDF-1.7".to_vec()))
///     .header("X-ERP-Event", "overdue_invoice_reminder")
///     .message_id("<reminder.INV-1001.1@company.com>")
///     .build()
///     .unwrap();
/// assert_eq!(message.recipients().len(), 2);
/// let text = String::from_utf8_lossy(message.bytes());
/// assert!(text.contains("Subject: Invoice INV-1001 is overdue\r\n"));
/// assert!(!text.contains("audit@company.com"), "Bcc stays out of the headers");
/// ```
#[derive(Clone, Debug)]
pub struct MessageDraft {
    sender: Mailbox,
    reply_to: Option<Mailbox>,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    bcc: Vec<Mailbox>,
    subject: String,
    text: Option<String>,
    html: Option<String>,
    attachments: Vec<Attachment>,
    headers: Vec<(String, String)>,
    message_id: Option<String>,
    date: Option<SystemTime>,
}

impl MessageDraft {
    /// A draft from the Company Email sender.
    pub fn new(sender: Mailbox) -> MessageDraft {
        MessageDraft {
            sender,
            reply_to: None,
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
            subject: String::new(),
            text: None,
            html: None,
            attachments: Vec::new(),
            headers: Vec::new(),
            message_id: None,
            date: None,
        }
    }

    /// Adds a To recipient.
    pub fn to(mut self, mailbox: Mailbox) -> Self {
        self.to.push(mailbox);
        self
    }

    /// Adds a Cc recipient.
    pub fn cc(mut self, mailbox: Mailbox) -> Self {
        self.cc.push(mailbox);
        self
    }

    /// Adds a Bcc recipient (in the envelope only, never in the headers).
    pub fn bcc(mut self, mailbox: Mailbox) -> Self {
        self.bcc.push(mailbox);
        self
    }

    /// Sets Reply-To.
    pub fn reply_to(mut self, mailbox: Mailbox) -> Self {
        self.reply_to = Some(mailbox);
        self
    }

    /// Sets the subject.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = subject.into();
        self
    }

    /// Sets the plain-text body.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// Sets the HTML body.
    pub fn html(mut self, html: impl Into<String>) -> Self {
        self.html = Some(html.into());
        self
    }

    /// Adds an attachment.
    pub fn attach(mut self, attachment: Attachment) -> Self {
        self.attachments.push(attachment);
        self
    }

    /// Adds a custom header (e.g. `X-ERP-Event`). Builder-controlled headers are refused at build.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the Message-ID (`<unique@domain>`); a random one is generated otherwise.
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// Sets the Date header (default: now).
    pub fn date(mut self, date: SystemTime) -> Self {
        self.date = Some(date);
        self
    }

    /// Renders the message to RFC 5322 bytes and its envelope.
    pub fn build(mut self) -> Result<OutgoingMessage, MessageError> {
        reject_line_breaks("subject", &self.subject)?;
        self.sender = with_ascii_domain(self.sender)?;
        self.reply_to = self.reply_to.map(with_ascii_domain).transpose()?;
        for list in [&mut self.to, &mut self.cc, &mut self.bcc] {
            *list = std::mem::take(list).into_iter().map(with_ascii_domain).collect::<Result<_, _>>()?;
        }
        let mailboxes = std::iter::once(("sender name", &self.sender))
            .chain(self.reply_to.iter().map(|m| ("Reply-To name", m)))
            .chain(self.to.iter().map(|m| ("To name", m)))
            .chain(self.cc.iter().map(|m| ("Cc name", m)))
            .chain(self.bcc.iter().map(|m| ("Bcc name", m)));
        for (input, mailbox) in mailboxes {
            if let Some(name) = &mailbox.name {
                reject_line_breaks(input, name)?;
            }
        }
        if self.to.is_empty() && self.cc.is_empty() && self.bcc.is_empty() {
            return Err(MessageError::NoRecipients);
        }
        if self.text.is_none() && self.html.is_none() {
            return Err(MessageError::NoBody);
        }
        let message_id = match self.message_id {
            Some(id) => {
                reject_line_breaks("Message-ID", &id)?;
                let well_formed = id.starts_with('<')
                    && id.ends_with('>')
                    && id.contains('@')
                    && !id.contains(char::is_whitespace)
                    && id.is_ascii();
                if !well_formed {
                    return Err(MessageError::InvalidMessageId(id));
                }
                id
            }
            None => generate_message_id(self.sender.email.domain()),
        };

        // The envelope is given rather than left to lettre, which would parse it back out of
        // the headers it has just formatted (a measurable share of the build).
        let recipients: Vec<Address> =
            self.to.iter().chain(&self.cc).chain(&self.bcc).map(|mailbox| mailbox.email.clone()).collect();
        let envelope = lettre::address::Envelope::new(Some(self.sender.email.clone()), recipients)
            .map_err(|e| MessageError::Build(e.to_string()))?;
        let mut builder = lettre::Message::builder()
            .envelope(envelope)
            .from(self.sender.clone())
            .subject(self.subject)
            .message_id(Some(message_id.clone()))
            .date(self.date.unwrap_or_else(SystemTime::now));
        if let Some(reply_to) = self.reply_to {
            builder = builder.reply_to(reply_to);
        }
        for mailbox in self.to {
            builder = builder.to(mailbox);
        }
        for mailbox in self.cc {
            builder = builder.cc(mailbox);
        }
        for mailbox in self.bcc {
            builder = builder.bcc(mailbox);
        }
        for (name, value) in self.headers {
            let valid_name = !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':');
            if !valid_name {
                return Err(MessageError::InvalidHeaderName(name));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(MessageError::ReservedHeader(name));
            }
            reject_line_breaks(&format!("header {name}"), &value)?;
            let header_name =
                HeaderName::new_from_ascii(name.clone()).map_err(|_| MessageError::InvalidHeaderName(name))?;
            builder = builder.raw_header(HeaderValue::new(header_name, value));
        }

        let body = match (self.text, self.html) {
            (Some(text), Some(html)) => Body::Multi(
                MultiPart::alternative()
                    .singlepart(text_part(text, ContentType::TEXT_PLAIN))
                    .singlepart(text_part(html, ContentType::TEXT_HTML)),
            ),
            (Some(text), None) => Body::Single(text_part(text, ContentType::TEXT_PLAIN)),
            (None, Some(html)) => Body::Single(text_part(html, ContentType::TEXT_HTML)),
            (None, None) => unreachable!("checked above"),
        };
        let message = if self.attachments.is_empty() {
            match body {
                Body::Multi(multi) => builder.multipart(multi),
                Body::Single(single) => builder.singlepart(single),
            }
        } else {
            let mut mixed = match body {
                Body::Multi(multi) => MultiPart::mixed().multipart(multi),
                Body::Single(single) => MultiPart::mixed().singlepart(single),
            };
            for attachment in self.attachments {
                reject_line_breaks("attachment file name", &attachment.filename)?;
                let content_type = ContentType::parse(&attachment.content_type)
                    .map_err(|_| MessageError::InvalidContentType(attachment.content_type.clone()))?;
                // Always base64: lettre would send bytes that happen to be ASCII (an uncompressed
                // PDF) as 7bit, bare LFs and NULs included, and a server that normalises line
                // ends would change the file.
                let body = LettreBody::new_with_encoding(attachment.bytes, ContentTransferEncoding::Base64)
                    .map_err(|_| MessageError::Build("base64 encoding refused".into()))?;
                mixed = mixed.singlepart(LettreAttachment::new(attachment.filename).body(body, content_type));
            }
            builder.multipart(mixed)
        }
        .map_err(|e| MessageError::Build(e.to_string()))?;

        let envelope = message.envelope();
        let envelope_from = envelope.from().cloned().unwrap_or_else(|| self.sender.email.clone());
        let recipients = envelope.to().to_vec();
        let bytes = message.formatted();
        // The checks above keep every header line short; this catches anything they miss
        // rather than send a message that servers may refuse or truncate.
        let header_end = memchr::memmem::find(&bytes, b"\r\n\r\n").unwrap_or(bytes.len());
        if bytes[..header_end].split(|b| *b == b'\n').any(|line| line.len() > 999) {
            return Err(MessageError::Build("a header line would be over 998 bytes".into()));
        }
        Ok(OutgoingMessage { envelope_from, recipients, bytes: Arc::new(bytes), message_id })
    }
}

enum Body {
    Single(SinglePart),
    Multi(MultiPart),
}

/// A text body as a MIME part. A body that is 7bit-clean, or becomes so once its LF line
/// ends are CRLF ([`seven_bit_with_crlf`]), is handed to lettre as it is: lettre would otherwise
/// scan it twice more (to choose an encoding and to convert line endings), which measured as
/// the largest cost of building a message. Anything else goes through lettre's own encoding choice.
fn text_part(content: String, content_type: ContentType) -> SinglePart {
    let builder = SinglePart::builder().content_type(content_type);
    if let Some(encoded) = seven_bit_with_crlf(&content) {
        builder.body(LettreBody::dangerous_pre_encoded(encoded, ContentTransferEncoding::SevenBit))
    } else if is_seven_bit_clean(content.as_bytes()) {
        builder.body(LettreBody::dangerous_pre_encoded(content.into_bytes(), ContentTransferEncoding::SevenBit))
    } else {
        // lettre turns LF into CRLF but leaves a lone CR as it is, which is not valid in a
        // message: make every line ending LF first.
        let content = if content.contains('\r') { content.replace("\r\n", "\n").replace('\r', "\n") } else { content };
        // lettre would pick 7bit for short ASCII lines even with a NUL in them; quoted-printable
        // writes it (and any other control but tab and line breaks) as =XX.
        let has_control = content.bytes().any(|b| (b < 0x20 && b != b'\t' && b != b'\n') || b == 0x7f);
        match has_control {
            true => match LettreBody::new_with_encoding(content, ContentTransferEncoding::QuotedPrintable) {
                Ok(body) => builder.body(body),
                Err(content) => builder.body(content),
            },
            false => builder.body(content),
        }
    }
}

/// The common case of a generated body, in one pass: ASCII without NUL or CR, lines ended by
/// LF and at most 998 bytes long; returned with CRLF line ends, ready to go out as `7bit`.
/// `None` for anything else (CRLF bodies included), which the slower checks handle.
fn seven_bit_with_crlf(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.is_ascii() || memchr::memchr2(0, b'\r', bytes).is_some() {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 16);
    let mut line_start = 0;
    for newline in memchr::memchr_iter(b'\n', bytes) {
        if newline - line_start > 998 {
            return None;
        }
        out.extend_from_slice(&bytes[line_start..newline]);
        out.extend_from_slice(b"\r\n");
        line_start = newline + 1;
    }
    if bytes.len() - line_start > 998 {
        return None;
    }
    out.extend_from_slice(&bytes[line_start..]);
    Some(out)
}

/// True when `bytes` can go out as `7bit` unchanged (RFC 5322 §2.3, RFC 2045 §2.7): ASCII
/// without NUL, every line ending in CRLF (no bare CR or LF), no line over 998 bytes.
fn is_seven_bit_clean(bytes: &[u8]) -> bool {
    if !bytes.is_ascii() || memchr::memchr(0, bytes).is_some() {
        return false;
    }
    // Only the line ends need a look, found with a vectorised search: a byte-at-a-time loop
    // or a search per line each measured as a tenth of the whole build time.
    let mut line_start = 0;
    let mut expect_lf_at = None;
    for index in memchr::memchr2_iter(b'\r', b'\n', bytes) {
        if bytes[index] == b'\r' {
            if expect_lf_at.is_some() || index - line_start > 998 {
                return false;
            }
            expect_lf_at = Some(index + 1);
        } else {
            if expect_lf_at != Some(index) {
                return false;
            }
            expect_lf_at = None;
            line_start = index + 1;
        }
    }
    expect_lf_at.is_none() && bytes.len() - line_start <= 998
}

/// Checks a value bound for a header: no line break (header injection), no other control
/// character, and no run without a space longer than [`MAX_HEADER_WORD`] (it could not be folded).
fn reject_line_breaks(input: &str, value: &str) -> Result<(), MessageError> {
    if value.contains(['\r', '\n']) {
        return Err(MessageError::LineBreakInHeader { input: input.to_owned() });
    }
    if let Some(character) = value.chars().find(|c| (c.is_control() && *c != '\t') || *c == '\u{7f}') {
        return Err(MessageError::ControlCharacterInHeader { input: input.to_owned(), character });
    }
    let longest_word = value.split([' ', '\t']).map(str::len).max().unwrap_or(0);
    if longest_word > MAX_HEADER_WORD {
        return Err(MessageError::WordTooLong { input: input.to_owned(), length: longest_word });
    }
    Ok(())
}

/// `mailbox` with its domain in ASCII (IDNA / punycode): header fields and the SMTP envelope
/// are ASCII unless the server offers SMTPUTF8, and Message-IDs use the sender's domain.
fn with_ascii_domain(mailbox: Mailbox) -> Result<Mailbox, MessageError> {
    let domain = mailbox.email.domain();
    if domain.is_ascii() {
        return Ok(mailbox);
    }
    let ascii = match url::Host::parse(domain) {
        Ok(url::Host::Domain(ascii)) => ascii,
        _ => return Err(MessageError::Build(format!("the domain of {} cannot be written in ASCII", mailbox.email))),
    };
    let email = Address::new(mailbox.email.user(), ascii).map_err(|e| MessageError::Build(e.to_string()))?;
    Ok(Mailbox::new(mailbox.name, email))
}

fn generate_message_id(domain: &str) -> String {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("<{:016x}.{:x}@{}>", fastrand::u64(..), nanos, domain)
}

/// A message ready to send: RFC 5322 bytes plus envelope. Cheap to clone (the bytes are shared).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingMessage {
    envelope_from: Address,
    recipients: Vec<Address>,
    // `Arc<Vec<u8>>` rather than `Arc<[u8]>`: converting the built `Vec` into a slice Arc
    // copied every message once more (half a megabyte for one with two PDFs).
    bytes: Arc<Vec<u8>>,
    message_id: String,
}

impl OutgoingMessage {
    /// A message from bytes rendered elsewhere (e.g. a stored `.eml`) and an explicit envelope.
    pub fn from_parts(
        envelope_from: Address,
        recipients: Vec<Address>,
        bytes: Vec<u8>,
        message_id: impl Into<String>,
    ) -> Result<OutgoingMessage, MessageError> {
        if recipients.is_empty() {
            return Err(MessageError::NoRecipients);
        }
        Ok(OutgoingMessage { envelope_from, recipients, bytes: Arc::new(bytes), message_id: message_id.into() })
    }

    /// The SMTP envelope sender (MAIL FROM).
    pub fn envelope_from(&self) -> &Address {
        &self.envelope_from
    }

    /// Every envelope recipient (To, Cc and Bcc).
    pub fn recipients(&self) -> &[Address] {
        &self.recipients
    }

    /// The RFC 5322 bytes, CRLF line endings.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True for an empty message (never, for a built one).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The Message-ID header value, with angle brackets.
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// The bytes for a service that takes recipients from the headers only (Gmail's media
    /// upload, Graph's MIME form): the message unchanged, preceded by a `Bcc:` field naming
    /// the envelope recipients its To/Cc headers do not show. The builder keeps Bcc out of
    /// the headers; those services remove the `Bcc:` field before delivery.
    ///
    /// ```
    /// use mailroom_core::MessageDraft;
    /// let message = MessageDraft::new("Company ERP <erp@company.com>".parse().unwrap())
    ///     .to("ada@example.com".parse().unwrap())
    ///     .bcc("audit@company.com".parse().unwrap())
    ///     .subject("Invoice 1042")
    ///     .text("Please pay.")
    ///     .build()
    ///     .unwrap();
    /// let upload = message.bytes_with_bcc_field();
    /// assert!(upload.starts_with(b"Bcc: audit@company.com\r\n"));
    /// assert!(upload.ends_with(message.bytes()));
    /// ```
    pub fn bytes_with_bcc_field(&self) -> Vec<u8> {
        let bytes = self.bytes();
        let header_end = find(bytes, b"\r\n\r\n").or_else(|| find(bytes, b"\n\n")).unwrap_or(bytes.len());
        let visible = address_fields(&bytes[..header_end]);
        let hidden: Vec<String> =
            self.recipients.iter().map(ToString::to_string).filter(|address| !mentions(&visible, address)).collect();
        if hidden.is_empty() {
            return bytes.to_vec();
        }
        let field = format!("Bcc: {}\r\n", hidden.join(",\r\n "));
        let mut body = Vec::with_capacity(field.len() + bytes.len());
        body.extend_from_slice(field.as_bytes());
        body.extend_from_slice(bytes);
        body
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The unfolded, lower-cased values of the To, Cc and Bcc fields.
fn address_fields(headers: &[u8]) -> String {
    let text = String::from_utf8_lossy(headers);
    let mut out = String::new();
    let mut in_field = false;
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if in_field {
                out.push(' ');
                out.push_str(line.trim());
            }
            continue;
        }
        let name = line.split(':').next().unwrap_or_default().trim().to_ascii_lowercase();
        in_field = matches!(name.as_str(), "to" | "cc" | "bcc") && line.contains(':');
        if in_field {
            out.push('\n');
            out.push_str(&line[line.find(':').map_or(0, |i| i + 1)..].to_ascii_lowercase());
        }
    }
    out
}

/// True when `address` appears in `fields` as a whole address (not inside a longer one).
fn mentions(fields: &str, address: &str) -> bool {
    let address = address.to_ascii_lowercase();
    if address.is_empty() {
        return false;
    }
    let bytes = fields.as_bytes();
    let mut from = 0;
    while let Some(found) = fields.get(from..).and_then(|rest| rest.find(&address)) {
        let start = from + found;
        let end = start + address.len();
        let before_ok = start == 0 || matches!(bytes[start - 1], b'<' | b' ' | b',' | b'\n' | b'\t' | b':');
        let after_ok = end == bytes.len() || matches!(bytes[end], b'>' | b' ' | b',' | b'\n' | b'\t' | b'\r');
        if before_ok && after_ok {
            return true;
        }
        // The next search starts after this match's first character, not its first byte: a
        // byte step could land inside a multi-byte character and the slice would panic.
        from = start + fields[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

#[cfg(test)]
mod bcc_tests {
    use super::*;

    fn sender() -> Mailbox {
        "Company ERP <erp@company.com>".parse().unwrap()
    }

    #[test]
    fn messages_without_bcc_are_unchanged() {
        let message = MessageDraft::new(sender())
            .to("Ada <ada@example.com>".parse().unwrap())
            .cc("cc@example.com".parse().unwrap())
            .subject("x")
            .text("y")
            .build()
            .unwrap();
        assert_eq!(message.bytes_with_bcc_field(), message.bytes());
    }

    #[test]
    fn bcc_recipients_become_a_bcc_field_in_front() {
        let message = MessageDraft::new(sender())
            .to("a@example.com".parse().unwrap())
            .bcc("hidden@example.com".parse().unwrap())
            .bcc("a@example.com.evil".parse().unwrap())
            .subject("x")
            .text("y")
            .build()
            .unwrap();
        let body = message.bytes_with_bcc_field();
        let prefix = b"Bcc: hidden@example.com,\r\n a@example.com.evil\r\n";
        assert!(body.starts_with(prefix), "{}", String::from_utf8_lossy(&body));
        assert_eq!(&body[prefix.len()..], message.bytes());
    }

    /// Issue 10 #2: a match that is not a whole address used to step one byte on and slice
    /// inside a multi-byte character.
    #[test]
    fn a_non_ascii_recipient_inside_a_longer_address_does_not_panic() {
        assert!(!mentions("\nüser@example.com.evil", "üser@example.com"));
        assert!(mentions("\nüser@example.com.evil, üser@example.com", "üser@example.com"));
        assert!(!mentions("\nééé", "é"));
    }

    /// Found by `mentions_never_panics`: an empty address matched at the end of the text and
    /// the next search started past it.
    #[test]
    fn an_empty_address_is_mentioned_nowhere() {
        assert!(!mentions("", ""));
        assert!(!mentions("\nä", ""));
    }

    proptest::proptest! {
        /// Whatever the header text and the address, the search never panics.
        #[test]
        fn mentions_never_panics(fields in ".{0,60}", address in ".{0,12}") {
            let _ = mentions(&fields, &address);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sender() -> Mailbox {
        "Company ERP <erp@company.com>".parse().unwrap()
    }

    /// Every header line (top level and MIME parts): folded continuations merged.
    fn header_names(bytes: &[u8]) -> Vec<String> {
        let text = String::from_utf8_lossy(bytes);
        let lines: Vec<&str> = text.split("\r\n").collect();
        let mut names = Vec::new();
        let mut in_headers = true;
        for line in &lines {
            if line.starts_with("--") && line.len() > 2 {
                in_headers = !line.ends_with("--");
                continue;
            }
            if line.is_empty() {
                in_headers = false;
                continue;
            }
            if in_headers && !line.starts_with([' ', '\t']) {
                names.push(line.split(':').next().unwrap_or_default().to_ascii_lowercase());
            }
        }
        names
    }

    const ALLOWED: &[&str] = &[
        "from",
        "to",
        "cc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "x-erp-event",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn no_input_yields_an_extra_header_line(
            subject in "\\PC{0,40}(\r|\n|\r\n)?[A-Za-z-]{0,8}(: x)?",
            name in "[A-Za-z \r\n:<>\"]{0,20}",
            header_value in "\\PC{0,30}(\r\n|\n)?(Bcc: evil@x.com)?",
            filename in "[A-Za-z0-9 é.\r\n:\"]{1,30}",
        ) {
            let to = Mailbox::new(Some(name.clone()), "ada@example.com".parse().unwrap());
            let result = MessageDraft::new(sender())
                .to(to)
                .subject(subject.clone())
                .text("body")
                .html("<p>body</p>")
                .header("X-ERP-Event", header_value.clone())
                .attach(Attachment::guess(filename.clone(), vec![1, 2, 3]))
                .build();
            let any_line_break = [&subject, &name, &header_value, &filename].iter().any(|s| s.contains(['\r', '\n']));
            let any_control = [&subject, &name, &header_value, &filename]
                .iter()
                .any(|s| s.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n')));
            match result {
                Err(MessageError::LineBreakInHeader { .. }) => prop_assert!(any_line_break),
                Err(MessageError::ControlCharacterInHeader { .. }) => prop_assert!(any_control),
                Err(other) => prop_assert!(false, "unexpected error {other}"),
                Ok(message) => {
                    prop_assert!(!any_line_break && !any_control);
                    for header in header_names(message.bytes()) {
                        prop_assert!(ALLOWED.contains(&header.as_str()), "unexpected header line {header:?}");
                    }
                }
            }
        }
    }

    fn parsed(message: &OutgoingMessage) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default().parse(message.bytes()).expect("the message parses")
    }

    #[test]
    fn ascii_attachments_go_out_base64_and_byte_exact() {
        let pdf = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n\0\0\0\n%%EOF\n".to_vec();
        let message = MessageDraft::new(sender())
            .to("a@example.com".parse().unwrap())
            .subject("s")
            .text("see attached")
            .attach(Attachment {
                filename: "plain.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: pdf.clone(),
            })
            .build()
            .unwrap();
        let raw = String::from_utf8_lossy(message.bytes()).into_owned();
        let part = &raw[raw.find("plain.pdf").unwrap()..];
        assert!(part.contains("Content-Transfer-Encoding: base64"), "{part}");
        assert!(!message.bytes().contains(&0), "no raw NUL on the wire");
        let parsed = parsed(&message);
        assert_eq!(parsed.attachment(0).unwrap().contents(), &pdf[..]);
    }

    #[test]
    fn header_values_with_controls_or_unfoldable_words_are_refused_by_input() {
        let draft = || MessageDraft::new(sender()).to("a@example.com".parse().unwrap()).text("x");
        let error = draft().subject("A".repeat(1200)).build().unwrap_err();
        assert!(matches!(&error, MessageError::WordTooLong { input, length: 1200 } if input == "subject"), "{error}");
        let error = draft().subject(format!("\u{c4}rger {}", "B".repeat(1200))).build().unwrap_err();
        assert!(matches!(error, MessageError::WordTooLong { .. }), "{error}");
        let error = draft().subject("tab\u{b}vertical").build().unwrap_err();
        assert!(matches!(&error, MessageError::ControlCharacterInHeader { character: '\u{b}', .. }), "{error}");
        let long_name = Mailbox::new(Some("N".repeat(1100)), "b@example.com".parse().unwrap());
        let error = draft().subject("s").cc(long_name).build().unwrap_err();
        assert!(matches!(&error, MessageError::WordTooLong { input, .. } if input == "Cc name"), "{error}");
        // Long subjects made of words fold and stay within the line limit.
        let message = draft().subject("word ".repeat(400)).build().unwrap();
        let header_end = message.bytes().windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        assert!(message.bytes()[..header_end].split(|b| *b == b'\n').all(|line| line.len() <= 999));
    }

    #[test]
    fn internationalised_domains_are_written_in_ascii() {
        let sender: Mailbox = "ERP <erp@b\u{fc}cher.example>".parse().unwrap();
        let message = MessageDraft::new(sender)
            .to("ada@b\u{fc}cher.example".parse().unwrap())
            .subject("s")
            .text("x")
            .build()
            .unwrap();
        assert!(message.message_id().ends_with("@xn--bcher-kva.example>"), "{}", message.message_id());
        assert!(message.bytes().is_ascii());
        assert_eq!(message.envelope_from().to_string(), "erp@xn--bcher-kva.example");
        assert_eq!(message.recipients()[0].to_string(), "ada@xn--bcher-kva.example");
    }

    #[test]
    fn bodies_with_nul_go_out_quoted_printable_and_decode_back() {
        let message = MessageDraft::new(sender())
            .to("a@example.com".parse().unwrap())
            .subject("s")
            .text("Hello\u{0}world\n")
            .build()
            .unwrap();
        assert!(!message.bytes().contains(&0));
        assert_eq!(parsed(&message).body_text(0).unwrap().trim_end(), "Hello\u{0}world");
    }

    #[test]
    fn seven_bit_clean_bodies_are_recognised_exactly() {
        assert!(is_seven_bit_clean(b"Hello\r\nWorld\r\n"));
        assert!(is_seven_bit_clean(b"no line end"));
        assert!(is_seven_bit_clean(b""));
        assert!(!is_seven_bit_clean(b"bare\nLF"));
        assert!(!is_seven_bit_clean(b"bare\rCR\r\n"));
        assert!(!is_seven_bit_clean("caf\u{e9}\r\n".as_bytes()));
        assert!(!is_seven_bit_clean(b"nul\0byte"));
        assert!(is_seven_bit_clean(format!("{}\r\n", "x".repeat(998)).as_bytes()));
        assert!(!is_seven_bit_clean(format!("{}\r\n", "x".repeat(999)).as_bytes()));
    }

    /// The rule as RFC 5322 states it, line by line: the reference the one-pass scan must match.
    fn seven_bit_clean_by_lines(bytes: &[u8]) -> bool {
        if !bytes.is_ascii() || bytes.contains(&0) {
            return false;
        }
        let lines: Vec<&[u8]> = bytes.split(|byte| *byte == b'\n').collect();
        lines.iter().enumerate().all(|(index, line)| {
            let content = if index + 1 == lines.len() { Some(*line) } else { line.strip_suffix(b"\r") };
            content.is_some_and(|content| content.len() <= 998 && !content.contains(&b'\r'))
        })
    }

    proptest! {
        /// LF bodies converted in one pass are exactly the CRLF bodies the line rule accepts.
        #[test]
        fn lf_bodies_become_seven_bit_crlf_exactly_when_the_rule_allows(
            parts in proptest::collection::vec(prop_oneof![
                Just("\n".to_owned()), Just("\r\n".to_owned()), Just("\0".to_owned()), Just("\u{e9}".to_owned()),
                "[a-z ]{0,40}", (990usize..1000).prop_map(|n| "x".repeat(n)),
            ], 0..12)
        ) {
            let text = parts.concat();
            match seven_bit_with_crlf(&text) {
                Some(encoded) => {
                    prop_assert!(!text.contains('\r'));
                    prop_assert_eq!(&encoded, &text.replace('\n', "\r\n").into_bytes());
                    prop_assert!(is_seven_bit_clean(&encoded));
                }
                None => prop_assert!(text.contains('\r') || !is_seven_bit_clean(text.replace('\n', "\r\n").as_bytes())),
            }
        }
    }

    proptest! {
        #[test]
        fn the_one_pass_seven_bit_scan_matches_the_line_rule(
            parts in proptest::collection::vec(prop_oneof![
                Just(b"\r\n".to_vec()), Just(b"\r".to_vec()), Just(b"\n".to_vec()), Just(vec![0]), Just(vec![0xc3, 0xa9]),
                "[a-z ]{0,40}".prop_map(String::into_bytes), (990usize..1000).prop_map(|n| vec![b'x'; n]),
            ], 0..12)
        ) {
            let bytes = parts.concat();
            prop_assert_eq!(is_seven_bit_clean(&bytes), seven_bit_clean_by_lines(&bytes), "{:?}", String::from_utf8_lossy(&bytes));
        }
    }

    proptest! {
        #[test]
        fn every_body_arrives_decodable_whatever_its_encoding(text in "[a-zA-Z .é☃\r\n]{0,300}", long in 0usize..1200) {
            let text = format!("{text}{}", "y".repeat(long));
            let message = MessageDraft::new(sender()).to("a@example.com".parse().unwrap()).subject("s").text(text.clone()).build().unwrap();
            let raw = String::from_utf8(message.bytes().to_vec()).unwrap();
            prop_assert!(raw.split("\r\n").all(|line| line.len() <= 998), "a line over 998 bytes");
            prop_assert!(!raw.replace("\r\n", "").contains(['\r', '\n']), "a bare CR or LF");
        }
    }

    #[test]
    fn bcc_is_in_the_envelope_only() {
        let message = MessageDraft::new(sender())
            .to("a@example.com".parse().unwrap())
            .cc("b@example.com".parse().unwrap())
            .bcc("hidden@example.com".parse().unwrap())
            .subject("s")
            .text("t")
            .build()
            .unwrap();
        let recipients: Vec<String> = message.recipients().iter().map(ToString::to_string).collect();
        assert_eq!(recipients, ["a@example.com", "b@example.com", "hidden@example.com"]);
        assert!(!String::from_utf8_lossy(message.bytes()).contains("hidden@"));
        assert_eq!(message.envelope_from().to_string(), "erp@company.com");
    }

    #[test]
    fn non_ascii_subject_and_file_names_are_encoded() {
        let message = MessageDraft::new(sender())
            .to("a@example.com".parse().unwrap())
            .subject("Facture n° 42 – échue")
            .text("t")
            .attach(Attachment::guess("Rechnung März 2026 – sehr langer Dateiname für den Test.pdf", b"%PDF".to_vec()))
            .build()
            .unwrap();
        let text = String::from_utf8(message.bytes().to_vec()).unwrap();
        assert!(text.is_ascii(), "headers must be 7-bit encoded");
        assert!(text.lines().any(|l| l.starts_with("Subject: ") && l.contains("=?utf-8?")), "{text}");
        assert!(text.contains("filename*"));
        assert!(text.contains("Content-Type: application/pdf"));
    }

    #[test]
    fn reserved_and_malformed_headers_are_refused() {
        let draft = || MessageDraft::new(sender()).to("a@example.com".parse().unwrap()).text("t");
        assert_eq!(draft().header("Bcc", "x@y.z").build().unwrap_err(), MessageError::ReservedHeader("Bcc".into()));
        assert_eq!(draft().header("X Bad", "v").build().unwrap_err(), MessageError::InvalidHeaderName("X Bad".into()));
        assert!(matches!(draft().message_id("no-brackets@x").build(), Err(MessageError::InvalidMessageId(_))));
        assert_eq!(MessageDraft::new(sender()).text("t").build().unwrap_err(), MessageError::NoRecipients);
        assert_eq!(
            MessageDraft::new(sender()).to("a@example.com".parse().unwrap()).build().unwrap_err(),
            MessageError::NoBody
        );
    }

    #[test]
    fn generated_message_ids_use_the_sender_domain_and_differ() {
        let build = || MessageDraft::new(sender()).to("a@example.com".parse().unwrap()).text("t").build().unwrap();
        let (first, second) = (build(), build());
        assert!(first.message_id().ends_with("@company.com>"));
        assert_ne!(first.message_id(), second.message_id());
        assert!(String::from_utf8_lossy(first.bytes()).contains(&format!("Message-ID: {}", first.message_id())));
    }
}
