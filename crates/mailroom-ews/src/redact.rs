//! The secrets an EWS request carries, for core's [`Scrubber`]: a server or proxy that echoes the request (an HTML error page quoting the headers, a debugging endpoint) must not put the credentials into a transcript, an error or JSON output.
//!
//! The secrets are the whole `Authorization` value, its credential part, for Basic the
//! decoded `user:password` and the password alone, and any extra secret (the OAuth client
//! secret, which travels in the form body). The Scrubber takes them from there: every echo
//! encoding, and secrets cut short at the end of a kept text.

use base64::Engine as _;
use mailroom_core::Scrubber;

use crate::http::Header;

/// A scrubber for the secrets of `headers` (those marked secret) plus `extra` secrets.
pub(crate) fn scrubber_for_request(headers: &[Header], extra: &[&str]) -> Scrubber {
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

#[cfg(test)]
mod tests {
    use super::*;
    use mailroom_core::REDACTED;
    use reqwest::header::{AUTHORIZATION, HeaderValue};

    #[test]
    fn every_form_of_basic_credentials_is_scrubbed() {
        let password = "pa ss&<wörd>/+\"";
        let user_password = format!("erp@company.com:{password}");
        let encoded = base64::engine::general_purpose::STANDARD.encode(&user_password);
        let header = Header::secret(AUTHORIZATION, HeaderValue::from_str(&format!("Basic {encoded}")).unwrap());
        let scrubber = scrubber_for_request(&[header], &["client-secret/+&"]);
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
