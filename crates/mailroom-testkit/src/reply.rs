//! SMTP replies as servers send them: a code and one or more text lines, rendered with `-` continuations.

use std::fmt;

use serde::Deserialize;

/// One SMTP reply: a three-digit code and its text lines.
///
/// A reply with several lines renders with `code-` on every line but the last, as real
/// servers do (Gmail's 535 and 534 are multi-line):
///
/// ```
/// use mailroom_testkit::Reply;
/// let reply = Reply::new(535, [
///     "5.7.8 Username and Password not accepted. For more information, go to",
///     "5.7.8  https://support.google.com/mail/?p=BadCredentials x - gsmtp",
/// ]);
/// assert_eq!(
///     reply.render(),
///     "535-5.7.8 Username and Password not accepted. For more information, go to\r\n\
///      535 5.7.8  https://support.google.com/mail/?p=BadCredentials x - gsmtp\r\n"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Reply {
    /// The reply code, e.g. 250.
    pub code: u16,
    /// The text lines, without the code; never empty once built (an empty text renders as `250 `).
    pub lines: Vec<String>,
}

impl Reply {
    /// A reply with the given code and lines.
    pub fn new<I, S>(code: u16, lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut lines: Vec<String> = lines.into_iter().map(Into::into).collect();
        if lines.is_empty() {
            lines.push(String::new());
        }
        Self { code, lines }
    }

    /// A single-line reply.
    pub fn line(code: u16, text: impl Into<String>) -> Self {
        Self::new(code, [text.into()])
    }

    /// The reply as it goes on the wire, every line ending in CRLF.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let last = self.lines.len().saturating_sub(1);
        for (index, line) in self.lines.iter().enumerate() {
            let separator = if index == last { ' ' } else { '-' };
            out.push_str(&format!("{}{separator}{line}\r\n", self.code));
        }
        out
    }

    /// Whether the code is a positive completion or intermediate (2xx/3xx).
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// The enhanced status code (`5.7.8`) at the start of the first line, if any.
    pub fn enhanced_code(&self) -> Option<&str> {
        let first = self.lines.first()?.split_whitespace().next()?;
        let parts: Vec<&str> = first.split('.').collect();
        let numeric = parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        numeric.then_some(first)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.render().trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_renders_with_a_space() {
        assert_eq!(Reply::line(250, "2.0.0 OK").render(), "250 2.0.0 OK\r\n");
    }

    #[test]
    fn multi_line_uses_dashes_except_on_the_last_line() {
        let reply = Reply::new(250, ["smtp.example", "SIZE 100", "8BITMIME"]);
        assert_eq!(reply.render(), "250-smtp.example\r\n250-SIZE 100\r\n250 8BITMIME\r\n");
    }

    #[test]
    fn enhanced_code_is_found_only_when_present() {
        assert_eq!(Reply::line(535, "5.7.8 Bad").enhanced_code(), Some("5.7.8"));
        assert_eq!(Reply::line(220, "smtp.gmail.com ESMTP").enhanced_code(), None);
        assert_eq!(Reply::new(250, Vec::<String>::new()).render(), "250 \r\n");
    }
}
