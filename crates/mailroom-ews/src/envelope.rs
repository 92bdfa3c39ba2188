//! Which envelope recipients the message's own headers do not name (its Bcc), because Exchange takes a `MimeContent` message's recipients from its To/Cc headers.
//!
//! Core builds messages with Bcc in the envelope only (never in the headers), as SMTP wants.
//! Sending those bytes unchanged as `MimeContent` would silently drop every Bcc recipient, so
//! the driver lists them as `t:BccRecipients` next to the untouched MIME.

/// The envelope recipients that appear in no To or Cc header of `bytes`, in envelope order.
///
/// Matching is case-insensitive on the address and needs an address boundary on both
/// sides (`<`, `>`, `,`, `;`, `:`, `"`, whitespace, or the end), so `ann@example.com` is not
/// found inside `joann@example.com`.
pub(crate) fn bcc_recipients<'a>(bytes: &[u8], recipients: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let visible = visible_recipient_text(bytes);
    recipients.into_iter().filter(|address| !contains_address(&visible, address)).map(str::to_owned).collect()
}

/// The unfolded, lower-cased values of the top-level To and Cc headers.
fn visible_recipient_text(bytes: &[u8]) -> String {
    let end = find(bytes, b"\r\n\r\n").or_else(|| find(bytes, b"\n\n")).unwrap_or(bytes.len());
    let headers = String::from_utf8_lossy(&bytes[..end]);
    let mut visible = String::new();
    let mut in_recipient_header = false;
    for line in headers.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if in_recipient_header {
                visible.push(' ');
                visible.push_str(line);
            }
            continue;
        }
        in_recipient_header = false;
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if name.eq_ignore_ascii_case("to") || name.eq_ignore_ascii_case("cc") {
                in_recipient_header = true;
                visible.push('\n');
                visible.push_str(value);
            }
        }
    }
    visible.to_lowercase()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn is_boundary(c: Option<char>) -> bool {
    match c {
        None => true,
        Some(c) => c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';' | ':' | '"'),
    }
}

fn contains_address(visible: &str, address: &str) -> bool {
    let address = address.to_lowercase();
    if address.is_empty() {
        return false;
    }
    let mut from = 0;
    while let Some(found) = visible[from..].find(&address) {
        let start = from + found;
        let end = start + address.len();
        if is_boundary(visible[..start].chars().next_back()) && is_boundary(visible[end..].chars().next()) {
            return true;
        }
        from = start + visible[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_addresses_missing_from_to_and_cc_are_bcc() {
        let message = b"From: erp@company.com\r\nTo: Ada <Ada@Example.com>,\r\n joann@example.com\r\nCc: \"Bob, B.\" <bob@example.com>\r\nSubject: ann@example.com\r\n\r\nTo: hidden@example.com\r\n";
        let recipients =
            ["ada@example.com", "joann@example.com", "bob@example.com", "ann@example.com", "hidden@example.com"];
        assert_eq!(bcc_recipients(message, recipients), ["ann@example.com", "hidden@example.com"]);
    }

    #[test]
    fn non_ascii_addresses_match() {
        let message = "To: jörg@bücher.de\r\n\r\nbody".as_bytes();
        assert!(bcc_recipients(message, ["JÖRG@bücher.de"]).is_empty());
    }
}
