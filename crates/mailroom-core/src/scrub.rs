//! `Scrubber`: removes secrets from what a server sent back (an error page quoting the request, an echoing proxy) before any of it is kept in an error, a transcript or JSON.
//!
//! Each secret is scrubbed raw and in the encodings an echo would use: form-urlencoded,
//! percent-encoded, HTML/XML-escaped and JSON-escaped. A text that ends with the start of a
//! secret (it was cut to a bounded length inside an echo) loses that start too. Scrub before
//! cutting or collapsing a text, so no secret is ever kept in part.

use std::sync::Arc;

use crate::secret::REDACTED;

/// The shortest start of a secret treated as the secret when a text ends with it.
const MIN_CUT_PREFIX: usize = 4;

/// The secrets of one request, in every form an echo could show them; longest first.
///
/// ```
/// use mailroom_core::Scrubber;
/// let scrubber = Scrubber::new(["s3cret/pw"]);
/// assert_eq!(scrubber.scrub("echo: password=s3cret%2Fpw"), "echo: password=[redacted]");
/// ```
#[derive(Clone, Default)]
pub struct Scrubber {
    needles: Arc<Vec<String>>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrubber({} forms)", self.needles.len())
    }
}

impl Scrubber {
    /// A scrubber for `secrets` (empty ones are ignored).
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Scrubber {
        let mut needles: Vec<String> = Vec::new();
        for secret in secrets {
            let secret = secret.as_ref();
            if secret.is_empty() {
                continue;
            }
            for form in forms(secret) {
                if !form.is_empty() && !needles.contains(&form) {
                    needles.push(form);
                }
            }
        }
        // Longest first: `user:password` goes before `password`, whose removal would leave
        // `user:[redacted]` anyway, but the base64 of it must go whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        Scrubber { needles: Arc::new(needles) }
    }

    /// `text` with every secret form replaced by [`REDACTED`].
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        self.scrub_in_place(&mut text);
        text
    }

    /// Scrubs `text` where it is, including a secret cut short at the end of the text.
    pub fn scrub_in_place(&self, text: &mut String) {
        for needle in self.needles.iter() {
            if text.contains(needle.as_str()) {
                *text = text.replace(needle.as_str(), REDACTED);
            }
        }
        for needle in self.needles.iter() {
            let cut_secret = (MIN_CUT_PREFIX..needle.len())
                .rev()
                .filter(|&length| needle.is_char_boundary(length))
                .find(|&length| text.ends_with(&needle[..length]));
            if let Some(length) = cut_secret {
                text.truncate(text.len() - length);
                text.push_str(REDACTED);
                return;
            }
        }
    }
}

/// A secret as it may appear in an echo.
fn forms(secret: &str) -> Vec<String> {
    let form_encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let percent_encoded = form_encoded.replace('+', "%20");
    let html = secret
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    let html_apos = html.replace("&#39;", "&apos;");
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json.trim_matches('"').to_owned();
    let json_slashes = json.replace('/', "\\/");
    vec![secret.to_owned(), form_encoded, percent_encoded, html, html_apos, json, json_slashes]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_cut_short_at_the_end_of_a_text_is_scrubbed_too() {
        let scrubber = Scrubber::new(["Hunter2-secret-pw"]);
        let cut = format!("{}Hunter2-sec", "x".repeat(20));
        assert_eq!(scrubber.scrub(&cut), format!("{}{REDACTED}", "x".repeat(20)));
        assert_eq!(scrubber.scrub("ends with Hun"), "ends with Hun", "three characters are not a secret");
    }

    #[test]
    fn every_echo_encoding_is_scrubbed() {
        let password = "pa ss&<wörd>/+\"";
        let scrubber = Scrubber::new([password]);
        let echoes = [
            format!("pw={}", url::form_urlencoded::byte_serialize(password.as_bytes()).collect::<String>()),
            format!(
                "<td>{}</td>",
                password.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
            ),
            format!("{{\"pw\":{}}}", serde_json::to_string(password).unwrap()),
        ];
        for echo in echoes {
            let scrubbed = scrubber.scrub(&echo);
            assert!(scrubbed.contains(REDACTED) && !scrubbed.contains("wörd"), "{echo} → {scrubbed}");
        }
        assert!(!format!("{scrubber:?}").contains("wörd"));
    }
}
