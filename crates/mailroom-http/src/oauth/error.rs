//! Token-endpoint failures, typed: what the transport did ([`crate::HttpError`]), or what the server refused with (HTTP status, OAuth `error`, `error_description`, Microsoft `error_codes` / AADSTS number, `Retry-After`), for the drivers to map into core's kinds with their own field names.

use std::time::{Duration, SystemTime};

use crate::HttpError;

/// A token endpoint's refusal (a non-2xx reply), parsed leniently; secrets already scrubbed.
///
/// ```
/// let body = br#"{"error":"invalid_client","error_description":"AADSTS7000222: The provided client secret keys for app '00000000-0000-0000-0000-000000000000' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds. Trace ID: 1 Correlation ID: 2 Timestamp: 2026-12-01 10:00:00Z","error_codes":[7000222]}"#;
/// let refused = mailroom_http::TokenEndpointError::parse(401, None, body, std::time::SystemTime::now());
/// assert_eq!(refused.error.as_deref(), Some("invalid_client"));
/// assert_eq!(refused.aadsts, Some(7000222));
/// assert!(refused.description.as_deref().unwrap().contains("are expired"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenEndpointError {
    /// HTTP status.
    pub status: u16,
    /// OAuth `error` (`invalid_grant`, `invalid_client`, …); `None` when the body has none.
    pub error: Option<String>,
    /// `error_description`, whole (Microsoft puts the AADSTS text, and for AADSTS7000222 the
    /// expiry, there).
    pub description: Option<String>,
    /// Microsoft's `error_codes`.
    pub error_codes: Vec<u64>,
    /// The AADSTS number: `error_codes[0]`, else the `AADSTSnnnn` at the start of the description.
    pub aadsts: Option<u64>,
    /// The server's `Retry-After`, bounded.
    pub retry_after: Option<Duration>,
    /// The start of the body when it is not an OAuth error reply (an HTML page from a proxy).
    pub body_snippet: Option<String>,
    /// When the body could not be read whole (cut, stalled, too large).
    pub body_error: Option<String>,
}

impl TokenEndpointError {
    /// Parses a refusal from its status, `Retry-After` header and (scrubbed) body. Never fails.
    pub fn parse(status: u16, retry_after: Option<&str>, body: &[u8], now: SystemTime) -> TokenEndpointError {
        let value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let text =
            |key: &str| value.as_ref().and_then(|v| v.get(key)).and_then(serde_json::Value::as_str).map(str::to_owned);
        let error = text("error").filter(|e| !e.is_empty());
        let description = text("error_description");
        let error_codes: Vec<u64> = value
            .as_ref()
            .and_then(|v| v.get("error_codes"))
            .and_then(serde_json::Value::as_array)
            .map(|codes| codes.iter().filter_map(serde_json::Value::as_u64).collect())
            .unwrap_or_default();
        let aadsts = error_codes.first().copied().or_else(|| description.as_deref().and_then(aadsts_in));
        let body_snippet = error.is_none().then(|| snippet(body));
        TokenEndpointError {
            status,
            error,
            description,
            error_codes,
            aadsts,
            retry_after: retry_after.and_then(|v| crate::retry_after(v, now)),
            body_snippet,
            body_error: None,
        }
    }

    /// Whether the OAuth `error` is `code`.
    pub fn is(&self, code: &str) -> bool {
        self.error.as_deref() == Some(code)
    }

    /// The description's first line (Microsoft's carries trace and correlation IDs after it).
    pub fn summary(&self) -> String {
        let description = self.description.as_deref().unwrap_or_default();
        let first = description.lines().next().unwrap_or_default().trim();
        match (&self.error, first.is_empty()) {
            (Some(error), true) => error.clone(),
            (Some(error), false) => format!("{error}: {first}"),
            (None, _) => self.body_snippet.clone().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for TokenEndpointError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        let summary = self.summary();
        if !summary.is_empty() {
            write!(f, " {summary}")?;
        }
        if let Some(cut) = &self.body_error {
            write!(f, " ({cut})")?;
        }
        Ok(())
    }
}

/// The AADSTS number at the start of a description: `AADSTS700016: …`.
fn aadsts_in(description: &str) -> Option<u64> {
    let start = description.find("AADSTS")? + "AADSTS".len();
    let digits: String = description[start..].chars().take_while(char::is_ascii_digit).take(21).collect();
    digits.parse().ok()
}

/// The start of a body as one line of text.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(1200)]);
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match collapsed.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &collapsed[..cut]),
        None if collapsed.is_empty() => "(empty body)".to_owned(),
        None => collapsed,
    }
}

/// Why a token request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// The request got no usable reply (connect, TLS, timeout, …).
    #[error("{0}")]
    Http(#[from] HttpError),
    /// The token endpoint refused (non-2xx).
    #[error("the token endpoint at {endpoint} refused the request: {refusal}")]
    Refused {
        /// The endpoint URL (no user info).
        endpoint: String,
        /// What it said.
        refusal: Box<TokenEndpointError>,
    },
    /// A 2xx reply that is not a token reply (no `access_token`, not JSON, wrong content type).
    #[error("unexpected answer from the token endpoint at {endpoint} (HTTP {status}): {reason}")]
    Malformed {
        /// The endpoint URL.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// What was wrong, with the start of the body (scrubbed).
        reason: String,
    },
    /// The device code expired before the user finished signing in.
    #[error("the sign-in code expired before the sign-in was finished")]
    DeviceCodeExpired,
    /// The flow cannot run with these settings (no device endpoint, an unusable URL).
    #[error("{0}")]
    Setup(String),
}

impl OAuthError {
    /// The refusal, when the server refused.
    pub fn refusal(&self) -> Option<&TokenEndpointError> {
        match self {
            OAuthError::Refused { refusal, .. } => Some(refusal),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aadsts_comes_from_error_codes_or_the_description() {
        let now = SystemTime::now();
        let parsed = TokenEndpointError::parse(
            400,
            Some("7"),
            br#"{"error":"unauthorized_client","error_description":"AADSTS700016: Application with identifier 'x' was not found in the directory 'company'."}"#,
            now,
        );
        assert_eq!(parsed.aadsts, Some(700016));
        assert_eq!(parsed.retry_after, Some(Duration::from_secs(7)));
        let html = TokenEndpointError::parse(502, Some("99999999999999999999999"), b"<html>\n<b>Bad gateway</b>", now);
        assert_eq!(html.error, None);
        assert_eq!(html.body_snippet.as_deref(), Some("<html> <b>Bad gateway</b>"));
        assert_eq!(html.retry_after, Some(crate::MAX_BACKOFF));
        assert_eq!(aadsts_in("AADSTS9999999999999999999999: x"), None);
    }
}
