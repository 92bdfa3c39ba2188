//! Splitting a message too large for one Graph request: its top-level file parts come out (decoded, with name, type, Content-ID), and the rest stays the same MIME bytes, headers and Message-ID included.

use base64::Engine as _;
use mail_parser::{MessageParser, MimeHeaders, PartType};

/// One file part taken out of a message, ready to be attached to a Graph draft.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct FilePart {
    /// The file name (`attachment` when the part names none).
    pub(crate) name: String,
    /// `type/subtype` as the part declared it.
    pub(crate) content_type: String,
    /// The Content-ID without its angle brackets, for inline images.
    pub(crate) content_id: Option<String>,
    /// `Content-Disposition: inline`.
    pub(crate) inline: bool,
    /// The decoded bytes.
    pub(crate) bytes: Vec<u8>,
}

impl std::fmt::Debug for FilePart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilePart")
            .field("name", &self.name)
            .field("content_type", &self.content_type)
            .field("size", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// A message split into what goes in the draft's MIME and the files attached afterwards.
#[derive(Debug)]
pub(crate) struct Split {
    /// The message without the file parts: same headers, same other parts, byte for byte.
    pub(crate) remainder: Vec<u8>,
    /// The file parts, in message order.
    pub(crate) files: Vec<FilePart>,
}

/// Takes the file parts out of a `multipart/mixed` message: the leaves of the top-level
/// multipart that are attachments (`Content-Disposition: attachment` in base64) or not text.
/// `None` when the message is not `multipart/mixed` or has no such part.
pub(crate) fn split_files(mime: &[u8]) -> Option<Split> {
    let message = MessageParser::default().parse(mime)?;
    let root = message.parts.first()?;
    let content_type = root.content_type()?;
    if !content_type.c_type.eq_ignore_ascii_case("multipart")
        || !content_type.subtype().is_some_and(|s| s.eq_ignore_ascii_case("mixed"))
    {
        return None;
    }
    let boundary = format!("--{}", content_type.attribute("boundary")?);
    let children = root.sub_parts()?;
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut files = Vec::new();
    for &id in children {
        let Some(part) = message.parts.get(id as usize) else { continue };
        let Some(bytes) = file_bytes(part, mime) else { continue };
        let header = usize::try_from(part.raw_header_offset()).ok()?;
        let body = usize::try_from(part.raw_body_offset()).ok()?;
        // From this part's delimiter line to the next one: the CRLF before the next delimiter
        // belongs to it, so what remains is still delimiter, part, delimiter, … .
        let start = delimiter_before(mime, header, boundary.as_bytes())?;
        let end = delimiter_after(mime, body, boundary.as_bytes())?;
        if start >= end || cuts.last().is_some_and(|&(_, previous)| start < previous) {
            return None;
        }
        cuts.push((start, end));
        let content_type = part
            .content_type()
            .map(|t| match t.subtype() {
                Some(sub) => format!("{}/{sub}", t.ctype()),
                None => t.ctype().to_owned(),
            })
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        let inline = part.content_disposition().is_some_and(|d| d.is_inline());
        let content_id = part.content_id().map(|id| id.trim().trim_start_matches('<').trim_end_matches('>').to_owned());
        let name = part.attachment_name().unwrap_or("attachment").to_owned();
        files.push(FilePart { name, content_type, content_id, inline, bytes });
    }
    if files.is_empty() || cuts.len() == children.len() {
        // Nothing to take out, or nothing would be left of the body.
        return None;
    }
    let mut remainder = Vec::with_capacity(mime.len());
    let mut at = 0;
    for (start, end) in cuts {
        remainder.extend_from_slice(&mime[at..start]);
        at = end;
    }
    remainder.extend_from_slice(&mime[at..]);
    Some(Split { remainder, files })
}

/// The decoded bytes of a part that is a file: a non-text leaf, or a base64 text part marked
/// as an attachment (decoded here from the raw body, because the parser converts text to UTF-8).
fn file_bytes(part: &mail_parser::MessagePart<'_>, mime: &[u8]) -> Option<Vec<u8>> {
    match &part.body {
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => Some(bytes.to_vec()),
        PartType::Text(_) | PartType::Html(_)
            if part.content_disposition().is_some_and(|d| d.is_attachment())
                && part.encoding == mail_parser::Encoding::Base64 =>
        {
            let start = usize::try_from(part.raw_body_offset()).ok()?;
            let end = usize::try_from(part.raw_end_offset()).ok()?;
            let raw: Vec<u8> = mime.get(start..end)?.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
            base64::engine::general_purpose::STANDARD.decode(raw).ok()
        }
        _ => None,
    }
}

/// Where the delimiter line that opens the part whose headers start at `header` begins.
fn delimiter_before(mime: &[u8], header: usize, boundary: &[u8]) -> Option<usize> {
    let before = mime.get(..header)?;
    (0..before.len()).rev().find(|&at| (at == 0 || before[at - 1] == b'\n') && before[at..].starts_with(boundary))
}

/// Where the first delimiter line after `body` begins.
fn delimiter_after(mime: &[u8], body: usize, boundary: &[u8]) -> Option<usize> {
    let mut at = body;
    while at < mime.len() {
        let found = memchr_line(mime, at)?;
        if mime[found..].starts_with(boundary) {
            return Some(found);
        }
        at = found + 1;
    }
    None
}

/// The start of the next line at or after `from` (the byte after a `\n`).
fn memchr_line(mime: &[u8], from: usize) -> Option<usize> {
    if from > 0 && mime.get(from - 1) == Some(&b'\n') {
        return Some(from);
    }
    mime.get(from..)?.iter().position(|&b| b == b'\n').map(|at| from + at + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailroom_core::{Attachment, MessageDraft};

    fn message(attachments: Vec<Attachment>) -> Vec<u8> {
        let mut draft = MessageDraft::new("Company ERP <erp@company.com>".parse().unwrap())
            .to("customer@example.com".parse().unwrap())
            .subject("Statement")
            .text("Please find the statement attached.")
            .html("<p>Please find the statement attached.</p>")
            .message_id("<statement-1@company.com>");
        for attachment in attachments {
            draft = draft.attach(attachment);
        }
        draft.build().unwrap().bytes().to_vec()
    }

    #[test]
    fn file_parts_come_out_decoded_and_the_rest_stays_byte_for_byte() {
        let pdf: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let csv = "a;b\r\n1;2\r\n".repeat(100).into_bytes();
        let mime =
            message(vec![Attachment::guess("INV-1.pdf", pdf.clone()), Attachment::guess("data.csv", csv.clone())]);
        let split = split_files(&mime).expect("two files");
        assert_eq!(split.files.len(), 2, "{:?}", split.files);
        assert_eq!(
            (split.files[0].name.as_str(), split.files[0].content_type.as_str()),
            ("INV-1.pdf", "application/pdf")
        );
        assert_eq!(split.files[0].bytes, pdf);
        assert_eq!(split.files[1].bytes, csv, "a text attachment keeps its exact bytes");
        assert!(!split.files[0].inline);

        let parsed = MessageParser::default().parse(&split.remainder[..]).unwrap();
        assert_eq!(parsed.message_id(), Some("statement-1@company.com"));
        assert_eq!(parsed.attachment_count(), 0);
        assert_eq!(parsed.body_text(0).as_deref(), Some("Please find the statement attached."));
        let header_end = mime.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        assert_eq!(split.remainder[..header_end], mime[..header_end], "headers unchanged");
        assert!(split.remainder.len() < 3_000, "{}", split.remainder.len());
    }

    #[test]
    fn a_message_without_files_or_not_mixed_does_not_split() {
        assert!(split_files(&message(Vec::new())).is_none());
        assert!(split_files(b"Subject: x\r\n\r\nbody").is_none());
        assert!(split_files(b"").is_none());
    }
}
