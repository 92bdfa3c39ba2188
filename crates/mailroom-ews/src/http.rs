//! HTTP for the EWS driver: one reqwest client (rustls on aws-lc-rs with webpki roots plus `ca_file`, no redirects, per-request and connect deadlines), a bounded body read, a redacted transcript, and reqwest errors classified by walking their sources.

use std::error::Error as StdError;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mailroom_core::Transcript;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use url::Url;

use crate::error::{EwsError, TlsFailure};

/// The largest reply body read; EWS replies to these operations are a few KB.
pub(crate) const MAX_BODY: usize = 4 << 20;

/// Idle pooled connections older than this are not reused: IIS closes idle keep-alive
/// connections after 120 s, and writing a request into a connection the server is closing
/// would look like a lost reply (`delivery_unknown`).
const POOL_IDLE: Duration = Duration::from_secs(20);

/// The rustls client config: aws-lc-rs chosen explicitly (never the process default), Mozilla's
/// roots plus every certificate in `ca_file`, HTTP/1.1 only.
pub(crate) fn tls_config(ca_file: Option<&Path>) -> Result<ClientConfig, EwsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let ca_error = |reason: String| EwsError::CaFile { path: path.display().to_string(), reason };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let mut added = 0;
        for certificate in CertificateDer::pem_slice_iter(&pem) {
            let certificate = certificate.map_err(|e| ca_error(format!("not a PEM certificate: {e}")))?;
            roots.add(certificate).map_err(|e| ca_error(format!("unusable certificate: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(ca_error("it holds no -----BEGIN CERTIFICATE----- block".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EwsError::Client(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A complete HTTP reply.
#[derive(Debug)]
pub(crate) struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Reason phrase (canonical).
    pub reason: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body, at most [`MAX_BODY`] bytes.
    pub body: Vec<u8>,
}

/// One header of a request; `secret` ones are recorded as `Name: scheme [redacted]`.
pub(crate) struct Header {
    pub name: HeaderName,
    pub value: HeaderValue,
    pub secret: bool,
}

impl Header {
    pub(crate) fn new(name: HeaderName, value: HeaderValue) -> Header {
        Header { name, value, secret: false }
    }

    pub(crate) fn secret(name: HeaderName, mut value: HeaderValue) -> Header {
        value.set_sensitive(true);
        Header { name, value, secret: true }
    }
}

/// The shared HTTP client.
#[derive(Clone, Debug)]
pub(crate) struct Http {
    client: reqwest::Client,
    timeout: Duration,
}

/// Server headers worth keeping in a transcript.
const RECORDED_HEADERS: &[&str] = &[
    "www-authenticate",
    "location",
    "retry-after",
    "x-caserrorcode",
    "ms-diagnostics-public",
    "x-ms-diagnostics",
    "content-type",
    "request-id",
];

impl Http {
    /// A client with `timeout` per request (connect included) and the given TLS config.
    /// `loopback` disables proxies (a proxy must never see a loopback test server's traffic).
    pub(crate) fn new(tls: ClientConfig, timeout: Duration, loopback: bool) -> Result<Http, EwsError> {
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_idle_timeout(POOL_IDLE)
            .http1_only()
            .user_agent(concat!("mailroom-ews/", env!("CARGO_PKG_VERSION")));
        if loopback {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| EwsError::Client(e.without_url().to_string()))?;
        Ok(Http { client, timeout })
    }

    /// POSTs `body` to `url` with `headers`, reads the whole reply (bounded), and records the
    /// exchange. `what` describes the body for the transcript (bodies are never recorded:
    /// they hold the message or the client secret).
    pub(crate) async fn post(
        &self,
        url: &Url,
        headers: Vec<Header>,
        body: Vec<u8>,
        what: &str,
        transcript: &mut Transcript,
    ) -> Result<HttpReply, EwsError> {
        let target = shown(url);
        transcript.client(&format!("POST {} HTTP/1.1", url_path(url)));
        transcript.client(&format!("Host: {}", url.host_str().unwrap_or_default()));
        let mut map = HeaderMap::new();
        for header in headers {
            if header.secret {
                let visible = header.value.to_str().ok().and_then(|v| v.split(' ').next()).unwrap_or_default();
                transcript.client_redacted(&format!("{}: {visible}", canonical(&header.name)));
            } else {
                transcript.client(&format!(
                    "{}: {}",
                    canonical(&header.name),
                    String::from_utf8_lossy(header.value.as_bytes())
                ));
            }
            map.append(header.name, header.value);
        }
        transcript.note(&format!("{what} ({} bytes)", body.len()));
        let result = self.client.post(url.clone()).headers(map).body(body).send().await;
        let mut response = match result {
            Ok(response) => response,
            Err(error) => {
                let error = classify(&error, &target, self.timeout);
                transcript.note(&error.to_string());
                return Err(error);
            }
        };
        let status = response.status();
        let reason = status.canonical_reason().unwrap_or_default().to_owned();
        transcript.server(&format!("HTTP/1.1 {} {reason}", status.as_u16()));
        for (name, value) in response.headers() {
            if RECORDED_HEADERS.contains(&name.as_str()) {
                transcript.server(&format!("{}: {}", canonical(name), String::from_utf8_lossy(value.as_bytes())));
            }
        }
        let headers = response.headers().clone();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY {
                        return Err(EwsError::TooLarge { status: status.as_u16(), limit: MAX_BODY });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                // A broken success reply leaves the outcome unknown; a broken error reply
                // is still classified by its status.
                Err(error) if status.is_success() => {
                    let error = if error.is_timeout() {
                        EwsError::Timeout { target, limit: self.timeout }
                    } else {
                        EwsError::Dropped { target, reason: describe(&error) }
                    };
                    transcript.note(&error.to_string());
                    return Err(error);
                }
                Err(error) => {
                    transcript.note(&format!("the reply body broke off: {}", describe(&error)));
                    break;
                }
            }
        }
        Ok(HttpReply { status: status.as_u16(), reason, headers, body })
    }
}

/// Records a reply body (only for replies that hold no secret).
pub(crate) fn record_body(transcript: &mut Transcript, body: &[u8]) {
    let text = String::from_utf8_lossy(&body[..body.len().min(8192)]);
    // One XML element a line keeps transcripts readable without parsing.
    let spaced = text.replace("><", ">\n<");
    transcript.server(&spaced);
}

fn canonical(name: &HeaderName) -> String {
    let special = [
        ("soapaction", "SOAPAction"),
        ("www-authenticate", "WWW-Authenticate"),
        ("x-caserrorcode", "X-CasErrorCode"),
        ("x-anchormailbox", "X-AnchorMailbox"),
        ("ms-diagnostics-public", "ms-diagnostics-public"),
        ("x-ms-diagnostics", "X-MS-Diagnostics"),
    ];
    if let Some((_, shown)) = special.iter().find(|(lower, _)| *lower == name.as_str()) {
        return (*shown).to_owned();
    }
    name.as_str()
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn url_path(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// The URL as shown in messages: never with user info.
pub(crate) fn shown(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// The error's own message and its sources, without the URL reqwest adds.
fn describe(error: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut current: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        current = next_source(e);
    }
    if parts.is_empty() { error.to_string() } else { parts.join(": ") }
}

/// The next error in a chain; for an `io::Error` that is its inner error (whose own
/// `source()` would skip it).
fn next_source<'e>(error: &'e (dyn StdError + 'static)) -> Option<&'e (dyn StdError + 'static)> {
    if let Some(io) = error.downcast_ref::<std::io::Error>()
        && let Some(inner) = io.get_ref()
    {
        return Some(inner as &(dyn StdError + 'static));
    }
    error.source()
}

fn chain(error: &reqwest::Error) -> Vec<&(dyn StdError + 'static)> {
    let mut all = Vec::new();
    let mut current: Option<&(dyn StdError + 'static)> = Some(error as &(dyn StdError + 'static));
    while let Some(e) = current {
        all.push(e);
        if all.len() > 32 {
            break;
        }
        current = next_source(e);
    }
    all
}

/// Classifies a failed request. TLS is checked first: reqwest reports handshake failures
/// as connect errors.
pub(crate) fn classify(error: &reqwest::Error, target: &str, limit: Duration) -> EwsError {
    let target = target.to_owned();
    let links = chain(error);
    if let Some(tls) = links.iter().find_map(|e| e.downcast_ref::<rustls::Error>()) {
        return EwsError::Tls { target, reason: tls.to_string(), cause: TlsFailure::of(tls) };
    }
    if error.is_timeout() {
        return if error.is_connect() {
            EwsError::ConnectTimeout { target, limit }
        } else {
            EwsError::Timeout { target, limit }
        };
    }
    if error.is_dns() {
        return EwsError::Resolve { target, reason: describe(error) };
    }
    let io_kind = links.iter().find_map(|e| e.downcast_ref::<std::io::Error>()).map(std::io::Error::kind);
    if error.is_connect() {
        if io_kind == Some(std::io::ErrorKind::InvalidData) {
            // A non-TLS peer on an https:// port, reported before rustls could say more.
            return EwsError::Tls { target, reason: describe(error), cause: TlsFailure::NotTls };
        }
        let refused = io_kind == Some(std::io::ErrorKind::ConnectionRefused);
        return EwsError::Connect { target, reason: describe(error), refused };
    }
    if let Some(hyper) = links.iter().find_map(|e| e.downcast_ref::<hyper::Error>()) {
        if hyper.is_parse() || hyper.is_parse_status() {
            return EwsError::NotHttp { target, reason: hyper.to_string() };
        }
        if hyper.is_canceled() || hyper.is_body_write_aborted() || hyper.is_user() {
            return EwsError::SendFailed { target, reason: describe(error) };
        }
    }
    if io_kind == Some(std::io::ErrorKind::BrokenPipe) {
        // Writing the request failed: the server stopped reading before the end.
        return EwsError::SendFailed { target, reason: describe(error) };
    }
    // Closed or reset while waiting for the reply (hyper's IncompleteMessage, ECONNRESET,
    // EOF): the request may have been processed. The safe reading is "unknown".
    EwsError::Dropped { target, reason: describe(error) }
}
