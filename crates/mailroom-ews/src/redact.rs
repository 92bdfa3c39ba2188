//! Scrubs secrets out of what a server sent back before any of it is kept: a server or proxy that echoes the request (an HTML error page quoting the headers, a debugging endpoint) must not put the credentials into a transcript, an error or JSON output.
//!
//! The secrets are the ones the request carried: the whole `Authorization` value, its
//! credential part, for Basic the decoded `user:password` and the password alone, and any
//! extra secret (the OAuth client secret, which travels in the form body). Each is scrubbed
//! raw and in the encodings an echo would use: form-urlencoded, HTML/XML-escaped and
//! JSON-escaped. Scrubbing happens before texts are cut or whitespace-collapsed, so no
//! secret is ever kept in part.

use std::sync::Arc;

use base64::Engine as _;

use crate::http::Header;

/// What replaces a secret.
const REDACTED: &str = "[redacted]";

/// The secrets of one request, in every form an echo could show them; longest first.
#[derive(Clone, Default)]
pub(crate) struct Scrubber {
    needles: Arc<Vec<String>>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrubber({} forms)", self.needles.len())
    }
}

impl Scrubber {
    /// The secrets of `headers` (those marked secret) plus `extra` secrets.
    pub(crate) fn for_request(headers: &[Header], extra: &[&str]) -> Scrubber {
        let mut secrets: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        for header in headers.iter().filter(|h| h.secret) {
            let Ok(value) = header.value.to_str() else { continue };
            secrets.push(value.to_owned());
            if let Some((scheme, credentials)) = value.split_once(' ') {
                let credentials = credentials.trim();
                secrets.push(credentials.to_owned());
                if scheme.eq_ignore_ascii_case("basic")
                    && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials)
                    && let Ok(decoded) = String::from_utf8(decoded)
                {
                    if let Some((_, password)) = decoded.split_once(':') {
                        secrets.push(password.to_owned());
                    }
                    secrets.push(decoded);
                }
            }
        }
        Scrubber::new(secrets)
    }

    fn new(secrets: Vec<String>) -> Scrubber {
        let mut needles: Vec<String> = Vec::new();
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
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

    /// `text` with every secret form replaced by `[redacted]`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        self.scrub_in_place(&mut text);
        text
    }

    /// Scrubs `text` where it is, including a secret cut short at the end of the text (reply
    /// texts are kept to a bounded length, and the cut may fall inside an echoed secret).
    pub(crate) fn scrub_in_place(&self, text: &mut String) {
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

/// The shortest start of a secret treated as the secret when a text ends with it.
const MIN_CUT_PREFIX: usize = 4;

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
    use reqwest::header::{AUTHORIZATION, HeaderValue};

    #[test]
    fn a_secret_cut_short_at_the_end_of_a_text_is_scrubbed_too() {
        let scrubber = Scrubber::new(vec!["Hunter2-secret-pw".into()]);
        let cut = format!("{}Hunter2-sec", "x".repeat(20));
        assert_eq!(scrubber.scrub(&cut), format!("{}{REDACTED}", "x".repeat(20)));
        assert_eq!(scrubber.scrub("ends with Hun"), "ends with Hun", "three characters are not a secret");
    }

    #[test]
    fn every_form_of_basic_credentials_is_scrubbed() {
        let password = "pa ss&<wörd>/+\"";
        let user_password = format!("erp@company.com:{password}");
        let encoded = base64::engine::general_purpose::STANDARD.encode(&user_password);
        let header = Header::secret(AUTHORIZATION, HeaderValue::from_str(&format!("Basic {encoded}")).unwrap());
        let scrubber = Scrubber::for_request(&[header], &["client-secret/+&"]);
        let echoes = [
            format!("authorization: Basic {encoded}"),
            format!("credentials {encoded} end"),
            format!("user {user_password}"),
            format!("pw={}", url::form_urlencoded::byte_serialize(password.as_bytes()).collect::<String>()),
            format!(
                "<td>{}</td>",
                password.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
            ),
            format!("{{\"pw\":{}}}", serde_json::to_string(password).unwrap()),
            "client_secret=client-secret%2F%2B%26&scope=x".to_owned(),
        ];
        for echo in echoes {
            let scrubbed = scrubber.scrub(&echo);
            assert!(scrubbed.contains(REDACTED), "{echo} → {scrubbed}");
            assert!(
                !scrubbed.contains(&encoded) && !scrubbed.contains("wörd") && !scrubbed.contains("client-secret"),
                "{scrubbed}"
            );
        }
        assert!(!format!("{scrubber:?}").contains("wörd"));
    }
}
