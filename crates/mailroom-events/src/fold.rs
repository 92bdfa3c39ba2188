//! Short body lines: plain text wrapped at 72 columns, HTML folded at whitespace where a line break means the same as a space.
//!
//! Besides readability in plain-text clients, this keeps ASCII bodies 7bit: lettre
//! (email-encoding) quoted-printable-encodes any body with a line of 76 bytes or more
//! (counting the CRLF), which made encoding the largest cost of building a message.

/// The longest line we produce, in bytes, before the CRLF: 73 + 2 stays under email-encoding's 76.
pub(crate) const MAX_LINE: usize = 72;

/// Wraps each line of `text` longer than [`MAX_LINE`] at spaces. Continuation lines keep
/// the line's indentation, plus two spaces under a `- ` list item. A word longer than a
/// line (a long URL) stays whole on its own line: breaking it would break the link.
pub(crate) fn wrap_text(text: String) -> String {
    if !has_long_line(&text) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + text.len() / 32);
    for (index, line) in text.split('\n').enumerate() {
        if index > 0 {
            out.push('\n');
        }
        if line.len() <= MAX_LINE {
            out.push_str(line);
            continue;
        }
        let indent_len = line.len() - line.trim_start_matches(' ').len();
        let mut continuation = " ".repeat(indent_len);
        if line[indent_len..].starts_with("- ") {
            continuation.push_str("  ");
        }
        let mut current_len = 0;
        out.push_str(&line[..indent_len]);
        current_len += indent_len;
        let mut first_word = true;
        for word in line[indent_len..].split(' ') {
            if !first_word && current_len + 1 + word.len() > MAX_LINE {
                out.push('\n');
                out.push_str(&continuation);
                current_len = continuation.len();
            } else if !first_word {
                out.push(' ');
                current_len += 1;
            }
            out.push_str(word);
            current_len += word.len();
            first_word = false;
        }
    }
    out
}

fn has_long_line(text: &str) -> bool {
    // A vectorised newline search: a `split` or a byte loop here cost more than the folding.
    let mut line_start = 0;
    for newline in memchr::memchr_iter(b'\n', text.as_bytes()) {
        if newline - line_start > MAX_LINE {
            return true;
        }
        line_start = newline + 1;
    }
    text.len() - line_start > MAX_LINE
}

/// Whether the attribute whose value starts after `before` (which ends with `name=`) is
/// exactly `style`, not `data-style` or `mso-style`.
fn is_style_attribute(before: &[u8]) -> bool {
    before.len() > b"style=".len()
        && before[before.len() - b"style=".len()..].eq_ignore_ascii_case(b"style=")
        && before[before.len() - b"style=".len() - 1].is_ascii_whitespace()
}

/// Whether `rest` starts with the tag `name` (case-insensitive) followed by a space, `/` or `>`.
fn starts_with_tag(rest: &[u8], name: &[u8]) -> bool {
    rest.len() > name.len()
        && rest[..name.len()].eq_ignore_ascii_case(name)
        && matches!(rest[name.len()], b' ' | b'\t' | b'\n' | b'\r' | b'>' | b'/')
}

/// Folds lines of `html` longer than [`MAX_LINE`] by turning a space into a line break
/// where HTML treats both alike: in text, between attributes, and inside `style` values
/// (CSS). Never inside other attribute values (`href`, `alt`…), where the break would be kept.
/// Our templates have no `<pre>` or `<textarea>`, whose text keeps its line breaks.
pub(crate) fn fold_html(html: String) -> String {
    // The templates are written in short lines, so usually there is nothing to do.
    if !has_long_line(&html) {
        return html;
    }
    // Work on bytes: every byte this looks at is ASCII, and UTF-8 continuation bytes never
    // equal an ASCII byte, so the chosen positions are always char boundaries.
    let bytes = html.as_bytes();
    let mut breaks = Vec::new();
    let mut line_start = 0;
    let mut last_space: Option<usize> = None;
    let mut in_tag = false;
    let mut quote: Option<u8> = None;
    let mut in_style_value = false;
    let mut in_style_element = false;
    // A quoted CSS string inside a style value or a <style> element ('Segoe UI'): a break
    // there would change the string, e.g. drop a font family.
    let mut css_quote: Option<u8> = None;
    for (index, &byte) in bytes.iter().enumerate() {
        if in_style_value || (in_style_element && !in_tag) {
            match css_quote {
                Some(open) if byte == open => css_quote = None,
                None if (byte == b'\'' || byte == b'"') && Some(byte) != quote => css_quote = Some(byte),
                _ => {}
            }
        }
        let in_css_string = css_quote.is_some() && byte != b'\'' && byte != b'"';
        let breakable = byte == b' ' && !in_css_string && (quote.is_none() || in_style_value);
        match quote {
            Some(open) if byte == open => {
                quote = None;
                in_style_value = false;
                css_quote = None;
            }
            Some(_) => {}
            None if in_tag && (byte == b'"' || byte == b'\'') => {
                in_style_value = is_style_attribute(&bytes[..index]);
                quote = Some(byte);
            }
            None if in_tag && byte == b'>' => in_tag = false,
            None if byte == b'<' => {
                in_tag = true;
                let rest = &bytes[index..];
                if starts_with_tag(rest, b"<style") {
                    in_style_element = true;
                } else if starts_with_tag(rest, b"</style") {
                    in_style_element = false;
                    css_quote = None;
                }
            }
            None => {}
        }
        if byte == b'\n' {
            line_start = index + 1;
            last_space = None;
            continue;
        }
        if breakable {
            last_space = Some(index);
        }
        if index + 1 - line_start > MAX_LINE
            && let Some(space) = last_space.take()
        {
            breaks.push(space);
            line_start = space + 1;
        }
    }
    let mut out = String::with_capacity(html.len());
    let mut copied = 0;
    for space in breaks {
        out.push_str(&html[copied..space]);
        out.push('\n');
        copied = space + 1;
    }
    out.push_str(&html[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn longest_line(text: &str) -> usize {
        text.lines().map(str::len).max().unwrap_or(0)
    }

    #[test]
    fn text_wraps_at_words_keeping_indentation_and_long_urls_whole() {
        let paragraph = "Our records show that invoice INV-1001 for $1,250.00 was due on November 11, 2026 and is now 14 days overdue.";
        let wrapped = wrap_text(paragraph.to_owned());
        assert_eq!(
            wrapped,
            "Our records show that invoice INV-1001 for $1,250.00 was due on November\n11, 2026 and is now 14 days overdue."
        );
        let item = "- A very long catalogue item description that goes on and on (SKU-0001): 10 x $45.00 = $450.00";
        let wrapped = wrap_text(item.to_owned());
        assert!(wrapped.contains("\n  "), "{wrapped}");
        assert!(longest_line(&wrapped) <= MAX_LINE);
        let url = format!("Pay online: https://pay.example.com/{}", "x".repeat(90));
        let wrapped = wrap_text(url.clone());
        assert_eq!(wrapped, format!("Pay online:\nhttps://pay.example.com/{}", "x".repeat(90)));
        assert_eq!(wrap_text("short\n\n-- \nsig".to_owned()), "short\n\n-- \nsig", "short lines are untouched");
        assert_eq!(wrap_text(paragraph.to_owned()).replace('\n', " "), paragraph, "only spaces become line breaks");
    }

    #[test]
    fn html_folds_only_where_a_break_means_a_space() {
        let href = format!("https://pay.example.com/i/INV 1?t={}", "a".repeat(80));
        let html = format!(
            "<td class=\"pad\" style=\"padding:8px; border-bottom:1px solid #e4e7eb; font-size:14px; line-height:20px; color:#1f2933;\"><a href=\"{href}\" title=\"Pay the invoice now please, it is quite overdue by now\">Pay this invoice online through our secure payment page today</a></td>"
        );
        let folded = fold_html(html.clone());
        assert_eq!(folded.replace('\n', " "), html, "only spaces become line breaks");
        assert!(folded.contains(&href), "the href keeps its space");
        assert!(folded.contains("title=\"Pay the invoice now please, it is quite overdue by now\""));
        for line in folded.lines().filter(|l| !l.contains("href=")) {
            assert!(line.len() <= MAX_LINE, "{line:?}");
        }
        assert!(folded.contains("style=\"padding:8px;"), "{folded}");
    }

    #[test]
    fn css_strings_are_never_broken() {
        let style =
            "font-family:'Segoe UI', 'Helvetica Neue', Arial, sans-serif; margin:0 0 16px; padding:0; color:#1f2933;";
        for prefix_len in 0..80 {
            let html = format!(
                "<p>{}</p><p style=\"{style}\" data-style=\"a b c d e f g h\">x</p><style>p {{ font-family: \"Trebuchet MS\", 'Times New Roman', serif; margin: 0 auto 0 auto; }}</style>",
                "w".repeat(prefix_len)
            );
            let folded = fold_html(html.clone());
            assert_eq!(folded.replace('\n', " "), html);
            for family in ["'Segoe UI'", "'Helvetica Neue'", "\"Trebuchet MS\"", "'Times New Roman'"] {
                assert!(folded.contains(family), "{family} broken at prefix {prefix_len}: {folded}");
            }
            assert!(folded.contains("data-style=\"a b c d e f g h\""), "{folded}");
        }
    }

    #[test]
    fn html_without_long_lines_is_unchanged() {
        let html = "<p>Hello</p>\n<p style=\"margin:0;\">World</p>\n";
        assert_eq!(fold_html(html.to_owned()), html);
    }
}
