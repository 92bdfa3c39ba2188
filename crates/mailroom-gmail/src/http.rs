//! The Gmail driver's HTTP, on mailroom-http's client (trust, no redirects, proxy rules, loopback pinning by resolved address, bounded reads, "was the body handed over"): one POST helper for the upload and the probe, and mailroom-http's failures in this driver's words.

use std::time::Duration;

use mailroom_core::{Secret, Transcript};
use mailroom_http::{ClientOptions, Failure, Header, HttpClient, HttpError, Request};
use rustls::pki_types::CertificateDer;

use crate::error::{Endpoint, GmailError};

/// The most of a reply body read; Google's replies are a few hundred bytes.
pub(crate) const MAX_REPLY_BYTES: usize = 64 * 1024;

pub(crate) use mailroom_http::bypasses_proxy;

/// The client for `url`: direct (and loopback-only for `http://`) when [`bypasses_proxy`]
/// says so, through the environment's proxy otherwise.
pub(crate) fn client_for(
    url: &url::Url,
    connect_timeout: Duration,
    extra_roots: &[CertificateDer<'static>],
) -> Result<HttpClient, String> {
    let options = ClientOptions::new(concat!("mailroom-gmail/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        .max_body(MAX_REPLY_BYTES)
        .extra_roots(extra_roots.iter().cloned());
    HttpClient::for_endpoint(url, &options).map_err(|e| e.to_string())
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

/// One `message/rfc822` POST with a Bearer token.
pub(crate) struct Upload<'a> {
    /// Where to.
    pub url: &'a url::Url,
    /// The access token.
    pub token: &'a Secret,
    /// The bytes.
    pub body: Vec<u8>,
    /// What the body is, for the transcript.
    pub what: &'a str,
    /// The reply deadline.
    pub timeout: Duration,
    /// Whether Gmail may send what it gets (a real message, not the probe's).
    pub delivers: bool,
}

/// POSTs the upload and reads the reply (bounded).
pub(crate) async fn post_message(
    client: &HttpClient,
    upload: Upload<'_>,
    transcript: &mut Transcript,
) -> Result<Reply, GmailError> {
    let Upload { url, token, body, what, timeout, delivers } = upload;
    let bearer = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        GmailError::Malformed {
            endpoint: Endpoint::Token,
            status: None,
            what: "the access token holds characters that cannot go in an HTTP header".into(),
        }
    })?;
    let request = Request::post(url)
        .header(Header::new(reqwest::header::CONTENT_TYPE, reqwest::header::HeaderValue::from_static("message/rfc822")))
        .header(Header::new(reqwest::header::ACCEPT, reqwest::header::HeaderValue::from_static("application/json")))
        .header(Header::secret(reqwest::header::AUTHORIZATION, bearer))
        .body(body, what)
        .reply_timeout(timeout)
        .delivers(delivers);
    let reply = client.send(request, transcript).await.map_err(|e| from_http(e, Endpoint::Api))?;
    let retry_after = reply.header("retry-after").map(str::to_owned);
    let body = match reply.body_error {
        Some(cut) => Err(cut),
        None => Ok(reply.body),
    };
    Ok(Reply { status: reply.status, retry_after, body })
}

/// mailroom-http's classification in this driver's words.
pub(crate) fn from_http(error: HttpError, endpoint: Endpoint) -> GmailError {
    let url = error.target().to_owned();
    let reason = error.reason().to_owned();
    match error.failure() {
        Failure::Resolve | Failure::Connect { .. } => GmailError::Connect { endpoint, url, reason },
        Failure::ConnectTimeout => {
            GmailError::Connect { endpoint, url, reason: format!("connect timed out ({reason})") }
        }
        Failure::Tls(mailroom_core::trust::TlsFailure::NotTls) => GmailError::NotTls { endpoint, url, reason },
        Failure::Tls(_) => GmailError::Tls { endpoint, url, reason },
        Failure::NotLoopback => GmailError::NotLoopback { endpoint, url, reason },
        Failure::Timeout => GmailError::Timeout { endpoint, url, limit: error.limit().unwrap_or_default() },
        Failure::DeliveryUnknown => {
            let reason = match (error.status(), error.limit()) {
                (None, Some(limit)) => format!("no answer within {} s", limit.as_secs_f32()),
                _ => reason,
            };
            GmailError::LostAfterUpload { url, reason }
        }
        Failure::NotHttp | Failure::TooLarge => {
            GmailError::Malformed { endpoint, status: error.status(), what: error.to_string() }
        }
        _ => GmailError::Network { endpoint, url, reason },
    }
}
