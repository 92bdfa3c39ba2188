//! The HTTP plumbing shared by the token, send, probe and consent requests: one reqwest client (rustls on aws-lc-rs, no redirects), bounded body reads, and the classification of transport failures.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::error::{Endpoint, GmailError};

/// The most of a reply body read; Google's replies are a few hundred bytes.
pub(crate) const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Builds the client: Mozilla's roots plus `extra_roots`, aws-lc-rs, HTTP/1.1, no redirects
/// (a redirected POST would resend the credentials or the message elsewhere).
pub(crate) fn client(
    connect_timeout: Duration,
    extra_roots: &[CertificateDer<'static>],
) -> Result<reqwest::Client, String> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for root in extra_roots {
        roots.add(root.clone()).map_err(|e| format!("unusable root certificate: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .user_agent(concat!("mailroom-gmail/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
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
        if let Some(tls) = tls_cause(error) {
            return GmailError::Tls { endpoint, url, reason: tls };
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

/// The rustls error in the chain, if the failure was the TLS handshake.
fn tls_cause(error: &reqwest::Error) -> Option<String> {
    find_tls(error, 0)
}

fn find_tls(cause: &(dyn std::error::Error + 'static), depth: usize) -> Option<String> {
    if depth > 16 {
        return None;
    }
    if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
        return Some(tls.to_string());
    }
    // io::Error::source() skips the error it wraps (and hyper-rustls nests io errors): look inside.
    if let Some(io) = cause.downcast_ref::<std::io::Error>()
        && let Some(inner) = io.get_ref()
    {
        let inner: &(dyn std::error::Error + 'static) = inner;
        if let Some(found) = find_tls(inner, depth + 1) {
            return Some(found);
        }
        if io.kind() == std::io::ErrorKind::InvalidData && inner.downcast_ref::<std::io::Error>().is_none() {
            return Some(format!("the server does not speak TLS: {inner}"));
        }
    }
    cause.source().and_then(|next| find_tls(next, depth + 1))
}
