//! HTTP for the EWS driver, on mailroom-http's client (trust with `ca_file`, no redirects, proxy rules, loopback pinning by resolved address, connect and reply deadlines, bounded reads, "was the body handed over"): the TLS config for the probe's own handshake, and mailroom-http's failures mapped into `EwsError`.

use std::path::Path;
use std::time::Duration;

use mailroom_core::Transcript;
use mailroom_core::config::Field;
use mailroom_core::trust::{self, TrustError};
use mailroom_http::{ClientOptions, Failure, HttpClient, HttpError, Request};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use url::Url;

use crate::error::EwsError;

pub(crate) use mailroom_http::{Header, Reply as HttpReply, shown};

/// The largest reply body read; EWS replies to these operations are a few KB.
pub(crate) const MAX_BODY: usize = 4 << 20;

/// The certificates of `ca_file` (none without one).
pub(crate) fn ca_roots(ca_file: Option<&Path>) -> Result<Vec<CertificateDer<'static>>, EwsError> {
    let mut extra_roots = Vec::new();
    if let Some(path) = ca_file {
        let ca_error = |reason: String| EwsError::CaFile { path: path.display().to_string(), reason };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        extra_roots = trust::certificates_from_pem(&pem).map_err(|e| ca_error(e.to_string()))?;
    }
    Ok(extra_roots)
}

/// The rustls client config of the probe's own TLS handshake: core's trust policy with the
/// roots of `ca_file`, HTTP/1.1 only (the HTTP client builds the same from the same roots).
pub(crate) fn tls_config(
    ca_file: Option<&Path>,
    extra_roots: Vec<CertificateDer<'static>>,
) -> Result<ClientConfig, EwsError> {
    let mut config = trust::client_config(extra_roots).map_err(|e| match (e, ca_file) {
        (TrustError::Unusable(reason), Some(path)) => EwsError::CaFile { path: path.display().to_string(), reason },
        (other, _) => EwsError::Client(other.to_string()),
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The shared HTTP client of one endpoint.
#[derive(Clone, Debug)]
pub(crate) struct Http {
    client: HttpClient,
}

/// One request for [`Http::post`].
pub(crate) struct Post<'a> {
    /// Where to.
    pub url: &'a Url,
    /// Request headers; secret ones are recorded redacted and scrubbed from the reply.
    pub headers: Vec<Header>,
    /// The body (never recorded: it holds the message or the client secret).
    pub body: Vec<u8>,
    /// What the body is, for the transcript.
    pub what: &'a str,
    /// How long to wait for the complete reply once connected.
    pub reply_timeout: Duration,
    /// Whether Exchange may act on the request once it has it (a `CreateItem`).
    pub delivers: bool,
}

impl Http {
    /// A client for `endpoint` trusting `extra_roots` too; `connect_timeout` bounds the TCP
    /// connect and the TLS handshake together, each request sets its own reply deadline.
    pub(crate) fn new(
        extra_roots: &[CertificateDer<'static>],
        connect_timeout: Duration,
        endpoint: &Url,
    ) -> Result<Http, EwsError> {
        let options = ClientOptions::new(concat!("mailroom-ews/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(connect_timeout)
            .max_body(MAX_BODY)
            .extra_roots(extra_roots.iter().cloned());
        let client = HttpClient::for_endpoint(endpoint, &options).map_err(|e| EwsError::Client(e.to_string()))?;
        Ok(Http { client })
    }

    /// POSTs the request, reads the whole reply (bounded), and records the exchange with
    /// secrets scrubbed from everything the server sent.
    pub(crate) async fn post(&self, request: Post<'_>, transcript: &mut Transcript) -> Result<HttpReply, EwsError> {
        let Post { url, headers, body, what, reply_timeout, delivers } = request;
        let mut outgoing = Request::post(url).body(body, what).reply_timeout(reply_timeout).delivers(delivers);
        for header in headers {
            outgoing = outgoing.header(header);
        }
        let reply =
            self.client.send(outgoing, transcript).await.map_err(|e| from_http(e, self.client.connect_timeout()))?;
        // An error reply whose body was cut (too large, stalled) is still classified by its
        // status and what could be read; a 2xx that could not be read whole is an error above.
        Ok(reply)
    }
}

/// mailroom-http's classification in this driver's words.
pub(crate) fn from_http(error: HttpError, connect_timeout: Duration) -> EwsError {
    let target = error.target().to_owned();
    let reason = error.reason().to_owned();
    match error.failure() {
        Failure::Resolve => EwsError::Resolve { target, reason },
        Failure::Connect { refused } => EwsError::Connect { target, reason, refused },
        Failure::ConnectTimeout => {
            EwsError::ConnectTimeout { tls: target.starts_with("https:"), target, limit: connect_timeout }
        }
        Failure::Tls(cause) => EwsError::Tls { target, reason, cause },
        Failure::NotLoopback => EwsError::Config { field: Field::ExchangeUri, reason: error.to_string() },
        Failure::NotSent => EwsError::SendFailed { target, reason },
        Failure::Timeout => EwsError::Timeout { target, limit: error.limit().unwrap_or_default(), request_sent: false },
        // Handed over and then no (complete) answer: timeouts keep their deadline in the text.
        Failure::DeliveryUnknown if error.status().is_none() && error.limit().is_some() => {
            EwsError::Timeout { target, limit: error.limit().unwrap_or_default(), request_sent: true }
        }
        Failure::DeliveryUnknown | Failure::Dropped => EwsError::Dropped { target, reason },
        Failure::NotHttp => EwsError::NotHttp { target, reason },
        Failure::TooLarge => EwsError::TooLarge { status: error.status().unwrap_or(200), limit: MAX_BODY },
        _ => EwsError::Dropped { target, reason },
    }
}

/// Records the reply body with secrets scrubbed (before it is cut to size).
pub(crate) fn record_body(reply: &HttpReply, transcript: &mut Transcript) {
    let text = reply.scrubbed_text();
    let cut = match text.char_indices().nth(8192) {
        Some((cut, _)) => &text[..cut],
        None => text.as_str(),
    };
    // One XML element a line keeps transcripts readable without parsing.
    let spaced = cut.replace("><", ">\n<");
    transcript.server(&spaced);
}

/// The canonical reason phrase of a status (`Service Unavailable`).
pub(crate) fn reason_phrase(status: u16) -> String {
    reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or_default().to_owned()
}

impl Http {
    /// The mailroom-http client (the OAuth client shares it).
    pub(crate) fn client(&self) -> &HttpClient {
        &self.client
    }
}
