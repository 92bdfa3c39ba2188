//! Bcc for the MIME form: Graph reads recipients from the headers only, so envelope recipients the To/Cc headers do not show travel as a `Bcc:` field in front of the unchanged bytes.

use mailroom_core::OutgoingMessage;

/// The bytes to send: the message unchanged, preceded by a `Bcc:` field when the envelope
/// has recipients the To/Cc headers do not show (Exchange removes the field before delivery).
pub(crate) fn mime_with_bcc(message: &OutgoingMessage) -> Vec<u8> {
    let bytes = message.bytes();
    let header_end = find(bytes, b"\r\n\r\n").or_else(|| find(bytes, b"\n\n")).unwrap_or(bytes.len());
    let visible = address_fields(&bytes[..header_end]);
    let hidden: Vec<String> =
        message.recipients().iter().map(ToString::to_string).filter(|address| !mentions(&visible, address)).collect();
    if hidden.is_empty() {
        return bytes.to_vec();
    }
    let field = format!("Bcc: {}\r\n", hidden.join(",\r\n "));
    let mut body = Vec::with_capacity(field.len() + bytes.len());
    body.extend_from_slice(field.as_bytes());
    body.extend_from_slice(bytes);
    body
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
    let bytes = fields.as_bytes();
    let mut from = 0;
    while let Some(found) = fields[from..].find(&address) {
        let start = from + found;
        let end = start + address.len();
        let before_ok = start == 0 || matches!(bytes[start - 1], b'<' | b' ' | b',' | b'\n' | b'\t' | b':');
        let after_ok = end == bytes.len() || matches!(bytes[end], b'>' | b' ' | b',' | b'\n' | b'\t' | b'\r');
        if before_ok && after_ok {
            return true;
        }
        from = start + address.len().max(1);
        while !fields.is_char_boundary(from) {
            from += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailroom_core::MessageDraft;

    #[test]
    fn bcc_recipients_become_a_bcc_field_and_the_rest_is_unchanged() {
        let sender: mailroom_core::Mailbox = "Company ERP <erp@company.com>".parse().unwrap();
        let plain = MessageDraft::new(sender.clone())
            .to("a@example.com".parse().unwrap())
            .subject("s")
            .text("t")
            .build()
            .unwrap();
        assert_eq!(mime_with_bcc(&plain), plain.bytes());
        let hidden = MessageDraft::new(sender)
            .to("a@example.com".parse().unwrap())
            .bcc("hidden@example.com".parse().unwrap())
            .subject("s")
            .text("t")
            .build()
            .unwrap();
        let sent = mime_with_bcc(&hidden);
        assert!(sent.starts_with(b"Bcc: hidden@example.com\r\n"));
        assert!(sent.ends_with(hidden.bytes()));
    }
}
