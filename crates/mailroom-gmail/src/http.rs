//! The HTTP plumbing shared by the token, send, probe and consent requests: the reqwest clients (rustls on aws-lc-rs, no redirects, no proxy for loopback endpoints), bounded body reads, and the classification of transport failures.

use std::time::Duration;

use rustls::pki_types::CertificateDer;

use mailroom_core::trust::TlsFailure;

use crate::error::{Endpoint, GmailError};

/// The most of a reply body read; Google's replies are a few hundred bytes.
pub(crate) const MAX_REPLY_BYTES: usize = 64 * 1024;

/// How long an idle pooled connection is kept. Google's front ends close idle connections
/// after a few minutes and proxies often much sooner; reusing one the server already closed
/// can fail an upload mid-way, which then reads as `delivery_unknown`.
const POOL_IDLE: Duration = Duration::from_secs(20);

/// True when requests to `url` must bypass any proxy: `http://` endpoints (which the config
/// allows only on loopback) and loopback hosts. A proxy cannot reach this machine's loopback
/// anyway, and over `http://` it would read the client secret, the tokens and the message.
pub(crate) fn bypasses_proxy(url: &url::Url) -> bool {
    url.scheme() == "http" || url.host_str().is_some_and(mailroom_core::config::checks::is_loopback_host)
}

/// Builds a client: Mozilla's roots plus `extra_roots`, aws-lc-rs, HTTP/1.1, no redirects
/// (a redirected POST would resend the credentials or the message elsewhere). With `direct`
/// it ignores the proxy settings of the environment (see [`bypasses_proxy`]); otherwise it
/// honours them, as networks that reach Google only through a proxy need.
pub(crate) fn client(
    connect_timeout: Duration,
    extra_roots: &[CertificateDer<'static>],
    direct: bool,
) -> Result<reqwest::Client, String> {
    let mut tls = mailroom_core::trust::client_config(extra_roots.iter().cloned()).map_err(|e| e.to_string())?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(POOL_IDLE)
        .user_agent(concat!("mailroom-gmail/", env!("CARGO_PKG_VERSION")));
    if direct {
        builder = builder.no_proxy();
    }
    builder.build().map_err(|e| e.to_string())
}

/// The client for `url`: [`client`], direct when [`bypasses_proxy`] says so.
pub(crate) fn client_for(
    url: &url::Url,
    connect_timeout: Duration,
    extra_roots: &[CertificateDer<'static>],
) -> Result<reqwest::Client, String> {
    client(connect_timeout, extra_roots, bypasses_proxy(url))
}

/// A reply as far as it could be read.
pub(crate) struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The body (at most [`MAX_REPLY_BYTES`]), or why it could not be read whole.
    pub body: Result<Vec<u8>, String>,
}

/// Reads the status, `Retry-After` and at most [`MAX_REPLY_BYTES`] of the body.
pub(crate) async fn read_reply(mut response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let retry_after =
        response.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut body = Vec::new();
    let body = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_REPLY_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= MAX_REPLY_BYTES {
                    break Ok(body);
                }
            }
            Ok(None) => break Ok(body),
            Err(e) => break Err(describe(&e)),
        }
    };
    Reply { status, retry_after, body }
}

/// How a request failed before a reply arrived.
pub(crate) fn classify(
    error: &reqwest::Error,
    endpoint: Endpoint,
    url: &str,
    limit: Duration,
    carried_message: bool,
) -> GmailError {
    let url = url.to_owned();
    let reason = describe(error);
    if error.is_connect() {
        match tls_cause(error) {
            Some((TlsFailure::NotTls, reason)) => return GmailError::NotTls { endpoint, url, reason },
            Some((_, reason)) => return GmailError::Tls { endpoint, url, reason },
            None => {}
        }
        let reason = if error.is_timeout() { format!("connect timed out ({reason})") } else { reason };
        return GmailError::Connect { endpoint, url, reason };
    }
    if carried_message {
        // Connected, and the message went (or was going) out: Gmail may have accepted it.
        let reason = if error.is_timeout() { format!("no answer within {} s", limit.as_secs_f32()) } else { reason };
        return GmailError::LostAfterUpload { url, reason };
    }
    if error.is_timeout() {
        return GmailError::Timeout { endpoint, url, limit };
    }
    GmailError::Network { endpoint, url, reason }
}

/// The error and its causes in one line, without the URL (callers name it themselves).
fn describe(error: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = current {
        let part = if let Some(reqwest_error) = cause.downcast_ref::<reqwest::Error>() {
            // Its Display repeats the URL; keep only the kind of failure.
            let shown = reqwest_error.to_string();
            shown.split(" for url (").next().unwrap_or(&shown).to_owned()
        } else {
            cause.to_string()
        };
        if !part.is_empty() && !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        current = cause.source();
    }
    text
}

/// The TLS failure in the chain, if the failure was the TLS handshake: its kind and text.
fn tls_cause(error: &reqwest::Error) -> Option<(TlsFailure, String)> {
    if let Some(tls) = mailroom_core::trust::find_rustls_error(error) {
        return Some((TlsFailure::of(tls), tls.to_string()));
    }
    // Without a rustls error, an io InvalidData in the chain is bytes that are not TLS.
    not_tls_data(error, 0).map(|reason| (TlsFailure::NotTls, reason))
}

/// The text of an `io::ErrorKind::InvalidData` somewhere in the chain, looking inside
/// `io::Error`s too (their `source()` skips the error they wrap).
fn not_tls_data(cause: &(dyn std::error::Error + 'static), depth: usize) -> Option<String> {
    if depth > 16 {
        return None;
    }
    if let Some(io) = cause.downcast_ref::<std::io::Error>()
        && let Some(inner) = io.get_ref()
    {
        let inner: &(dyn std::error::Error + 'static) = inner;
        if let Some(found) = not_tls_data(inner, depth + 1) {
            return Some(found);
        }
        if io.kind() == std::io::ErrorKind::InvalidData {
            return Some(format!("the server does not speak TLS: {inner}"));
        }
    }
    cause.source().and_then(|next| not_tls_data(next, depth + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_http_endpoints_bypass_the_proxy() {
        for url in ["http://127.0.0.1:8080/token", "http://localhost/x", "http://[::1]:9/", "https://localhost:443/"] {
            assert!(bypasses_proxy(&url.parse().unwrap()), "{url}");
        }
        for url in ["https://oauth2.googleapis.com/token", "https://gmail.googleapis.com", "https://10.0.0.1/"] {
            assert!(!bypasses_proxy(&url.parse().unwrap()), "{url}");
        }
    }

    #[test]
    fn tls_failures_are_told_apart() {
        use rustls::{CertificateError, InvalidMessage};
        assert_eq!(
            TlsFailure::of(&rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType)),
            TlsFailure::NotTls
        );
        assert_eq!(
            TlsFailure::of(&rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)),
            TlsFailure::Untrusted
        );
        assert_eq!(
            TlsFailure::of(&rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure)),
            TlsFailure::Other
        );
    }
}
