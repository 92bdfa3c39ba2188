//! The secrets one request carries, for core's [`Scrubber`]: a server or proxy that echoes the request (an HTML error page quoting the headers, a debugging endpoint) must not put credentials into a transcript, an error or JSON output.
//!
//! The secrets are the whole value of every secret header, its credential part, for Basic
//! the decoded `user:password` and the password alone, and any extra secret the body carries
//! (a client secret, a refresh token, an authorization code). Core's Scrubber takes them from
//! there: every echo encoding, and secrets cut short at the end of a kept text.

use base64::Engine as _;
use mailroom_core::Scrubber;
use reqwest::header::{HeaderName, HeaderValue};

/// One header of a request; `secret` ones are recorded as `Name: scheme [redacted]`.
#[derive(Clone)]
pub struct Header {
    pub(crate) name: HeaderName,
    pub(crate) value: HeaderValue,
    pub(crate) secret: bool,
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.secret { write!(f, "{}: [redacted]", self.name) } else { write!(f, "{}: {:?}", self.name, self.value) }
    }
}

impl Header {
    /// A header shown as it is in transcripts.
    pub fn new(name: HeaderName, value: HeaderValue) -> Header {
        Header { name, value, secret: false }
    }

    /// A credential header (`Authorization`): recorded redacted, marked sensitive for hyper,
    /// and scrubbed from the reply in every form.
    ///
    /// ```
    /// use http::header::AUTHORIZATION;
    /// let header = mailroom_http::Header::secret(AUTHORIZATION, "Bearer ya29.secret".parse().unwrap());
    /// assert!(!format!("{header:?}").contains("ya29"));
    /// ```
    pub fn secret(name: HeaderName, mut value: HeaderValue) -> Header {
        value.set_sensitive(true);
        Header { name, value, secret: true }
    }
}

/// A scrubber for the secrets of `headers` (those marked secret) plus `extra` secrets.
///
/// ```
/// use base64::Engine as _;
/// use http::header::AUTHORIZATION;
/// let basic = base64::engine::general_purpose::STANDARD.encode("erp:pa55word");
/// let header = mailroom_http::Header::secret(AUTHORIZATION, format!("Basic {basic}").parse().unwrap());
/// let scrubber = mailroom_http::scrubber_for_request(&[header], &["client-secret".to_owned()]);
/// assert_eq!(scrubber.scrub("pw=pa55word&cs=client-secret"), "pw=[redacted]&cs=[redacted]");
/// ```
pub fn scrubber_for_request(headers: &[Header], extra: &[String]) -> Scrubber {
    let mut secrets: Vec<String> = extra.iter().filter(|s| s.len() >= 4).cloned().collect();
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
    use reqwest::header::AUTHORIZATION;

    #[test]
    fn every_form_of_basic_credentials_is_scrubbed() {
        let password = "pa ss&<wörd>/+\"";
        let user_password = format!("erp@company.com:{password}");
        let encoded = base64::engine::general_purpose::STANDARD.encode(&user_password);
        let header = Header::secret(AUTHORIZATION, HeaderValue::from_str(&format!("Basic {encoded}")).unwrap());
        let scrubber = scrubber_for_request(&[header], &["client-secret/+&".to_owned()]);
        let echoes = [
            format!("authorization: Basic {encoded}"),
            format!("credentials {encoded} end"),
            format!("user {user_password}"),
            format!("pw={}", url::form_urlencoded::byte_serialize(password.as_bytes()).collect::<String>()),
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
    }
}
