//! HTTP for the EWS driver: one reqwest client per endpoint (rustls on aws-lc-rs with webpki roots plus `ca_file`, no redirects, no proxy for `http://` and loopback endpoints, localhost names pinned to loopback), a connect deadline covering the TLS handshake plus a reply deadline per request, a bounded body read, a redacted and scrubbed transcript, and reqwest errors classified by walking their sources.

use std::error::Error as StdError;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mailroom_core::Transcript;
use mailroom_core::config::checks::is_loopback_host;
use mailroom_core::trust::{self, TrustError};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rustls::ClientConfig;
use url::Url;

use crate::error::{EwsError, TlsFailure};
use mailroom_core::Scrubber;

/// The largest reply body read; EWS replies to these operations are a few KB.
pub(crate) const MAX_BODY: usize = 4 << 20;

/// Idle pooled connections older than this are not reused: IIS closes idle keep-alive
/// connections after 120 s, and writing a request into a connection the server is closing
/// would look like a lost reply (`delivery_unknown`).
const POOL_IDLE: Duration = Duration::from_secs(20);

/// The rustls client config: aws-lc-rs chosen explicitly (never the process default), Mozilla's
/// roots plus every certificate in `ca_file`, HTTP/1.1 only.
pub(crate) fn tls_config(ca_file: Option<&Path>) -> Result<ClientConfig, EwsError> {
    let mut extra_roots = Vec::new();
    if let Some(path) = ca_file {
        let ca_error = |reason: String| EwsError::CaFile { path: path.display().to_string(), reason };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        extra_roots = trust::certificates_from_pem(&pem).map_err(|e| ca_error(e.to_string()))?;
    }
    let mut config = trust::client_config(extra_roots).map_err(|e| match (e, ca_file) {
        (TrustError::Unusable(reason), Some(path)) => EwsError::CaFile { path: path.display().to_string(), reason },
        (other, _) => EwsError::Client(other.to_string()),
    })?;
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
    /// Body, at most [`MAX_BODY`] bytes, as received (scrub before keeping any of it).
    pub body: Vec<u8>,
    /// The secrets of the request, to scrub from anything kept of this reply.
    pub scrubber: Scrubber,
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
    /// The deadline for connecting: TCP connect and TLS handshake (reqwest's connect
    /// timeout wraps its whole connector, rustls handshake included).
    connect_timeout: Duration,
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
    /// Secrets the body carries, scrubbed from whatever the server sends back.
    pub secrets: &'a [&'a str],
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

/// True when requests to `url` must bypass any proxy: `http://` (which config allows only
/// to loopback, and which a proxy would see in cleartext, Basic credentials included) and
/// loopback hosts, by core's own loopback rule (`localhost`, `*.localhost`, 127/8, ::1).
pub(crate) fn direct(url: &Url) -> bool {
    url.scheme() == "http" || is_loopback_host(url.host_str().unwrap_or_default())
}

/// True for `localhost` and `*.localhost` names, which RFC 6761 reserves for loopback: the
/// driver resolves them to 127.0.0.1 and ::1 itself rather than asking DNS, so a resolver
/// answering with another address can never receive what config allowed only for loopback.
pub(crate) fn localhost_name(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => {
            let name = name.to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        _ => false,
    }
}

/// The loopback addresses a localhost name stands for.
pub(crate) const LOOPBACK: [std::net::IpAddr; 2] =
    [std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)];

impl Http {
    /// A client for `endpoint` with the given TLS config; `connect_timeout` bounds the TCP
    /// connect and the TLS handshake together, each request sets its own reply deadline.
    /// Endpoints that must not go through a proxy ([`direct`]) get none; localhost names
    /// are pinned to the loopback addresses.
    pub(crate) fn new(tls: ClientConfig, connect_timeout: Duration, endpoint: &Url) -> Result<Http, EwsError> {
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(POOL_IDLE)
            .http1_only()
            .user_agent(concat!("mailroom-ews/", env!("CARGO_PKG_VERSION")));
        if direct(endpoint) {
            builder = builder.no_proxy();
        }
        if localhost_name(endpoint)
            && let Some(host) = endpoint.host_str()
        {
            let pinned: Vec<std::net::SocketAddr> =
                LOOPBACK.iter().map(|ip| std::net::SocketAddr::new(*ip, 0)).collect();
            builder = builder.resolve_to_addrs(host, &pinned);
        }
        let client = builder.build().map_err(|e| EwsError::Client(e.without_url().to_string()))?;
        Ok(Http { client, connect_timeout })
    }

    /// POSTs the request, reads the whole reply (bounded), and records the exchange with
    /// secrets scrubbed from everything the server sent.
    ///
    /// The overall deadline is the connect deadline plus `reply_timeout`, so a request that
    /// times out after the connect deadline had passed was connected. Whether the body was
    /// handed to the connection in full is tracked: a timeout or a lost connection before
    /// that cannot have delivered anything.
    pub(crate) async fn post(&self, request: Post<'_>, transcript: &mut Transcript) -> Result<HttpReply, EwsError> {
        let Post { url, headers, body, what, reply_timeout, secrets } = request;
        let target = shown(url);
        let scrubber = crate::redact::scrubber_for_request(&headers, secrets);
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
        map.insert(reqwest::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        let written = Arc::new(AtomicBool::new(false));
        let limits = Limits { connect: self.connect_timeout, reply: reply_timeout };
        let result = self
            .client
            .post(url.clone())
            .headers(map)
            .body(reqwest::Body::wrap(TrackedBody::new(body, written.clone())))
            .timeout(self.connect_timeout + reply_timeout)
            .send()
            .await;
        let mut response = match result {
            Ok(response) => response,
            Err(error) => {
                let error = classify(&error, &target, limits, written.load(Ordering::SeqCst));
                transcript.note(&error.to_string());
                return Err(error);
            }
        };
        let status = response.status();
        let reason = status.canonical_reason().unwrap_or_default().to_owned();
        transcript.server(&format!("HTTP/1.1 {} {reason}", status.as_u16()));
        for (name, value) in response.headers() {
            if RECORDED_HEADERS.contains(&name.as_str()) {
                let value = scrubber.scrub(&String::from_utf8_lossy(value.as_bytes()));
                transcript.server(&format!("{}: {value}", canonical(name)));
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
                        EwsError::Timeout { target, limit: reply_timeout, request_sent: true }
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
        Ok(HttpReply { status: status.as_u16(), reason, headers, body, scrubber })
    }
}

/// The deadlines of one request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// TCP connect plus TLS handshake.
    pub connect: Duration,
    /// The reply, once connected.
    pub reply: Duration,
}

/// A request body handed to hyper in slices, noting when the last one was taken. hyper
/// takes the next slice only when its write buffer has room (a few hundred KB), so "taken
/// in full" means all but at most that much was written: the flag errs towards "written"
/// (towards `delivery_unknown`, never towards a resend), and while it is false the server
/// cannot have the whole request.
struct TrackedBody {
    data: hyper::body::Bytes,
    written: Arc<AtomicBool>,
}

/// Slice size: small enough that "taken" is close to "written", large enough to be cheap.
const SLICE: usize = 64 * 1024;

impl TrackedBody {
    fn new(body: Vec<u8>, written: Arc<AtomicBool>) -> TrackedBody {
        if body.is_empty() {
            written.store(true, Ordering::SeqCst);
        }
        TrackedBody { data: hyper::body::Bytes::from(body), written }
    }
}

impl hyper::body::Body for TrackedBody {
    type Data = hyper::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        if self.data.is_empty() {
            return std::task::Poll::Ready(None);
        }
        let take = self.data.len().min(SLICE);
        let slice = self.data.split_to(take);
        if self.data.is_empty() {
            // hyper ends the body itself once Content-Length is reached: it does not ask
            // again, so the last slice is the moment to note.
            self.written.store(true, Ordering::SeqCst);
        }
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(slice))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.data.len() as u64)
    }
}

impl HttpReply {
    /// Records the reply body with secrets scrubbed (before it is cut to size).
    pub(crate) fn record_body(&self, transcript: &mut Transcript) {
        let text = self.scrubber.scrub(&String::from_utf8_lossy(&self.body));
        let cut = match text.char_indices().nth(8192) {
            Some((cut, _)) => &text[..cut],
            None => text.as_str(),
        };
        // One XML element a line keeps transcripts readable without parsing.
        let spaced = cut.replace("><", ">\n<");
        transcript.server(&spaced);
    }
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
/// as connect errors. `written` says whether the body was handed over in full.
pub(crate) fn classify(error: &reqwest::Error, target: &str, limits: Limits, written: bool) -> EwsError {
    let target = target.to_owned();
    let links = chain(error);
    if let Some(tls) = links.iter().find_map(|e| e.downcast_ref::<rustls::Error>()) {
        return EwsError::Tls { target, reason: tls.to_string(), cause: TlsFailure::of(tls) };
    }
    if error.is_timeout() {
        // The overall deadline is connect + reply, so the connect deadline fires first while
        // connecting (TLS handshake included), and a later timeout was connected.
        return if error.is_connect() {
            EwsError::ConnectTimeout { tls: target.starts_with("https:"), target, limit: limits.connect }
        } else {
            EwsError::Timeout { target, limit: limits.reply, request_sent: written }
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
    if !written {
        // The connection ended before the whole request was handed over: the server cannot
        // have acted on a request it did not have.
        return EwsError::SendFailed { target, reason: describe(error) };
    }
    // Closed or reset while waiting for the reply (hyper's IncompleteMessage, ECONNRESET,
    // EOF): the request may have been processed. The safe reading is "unknown".
    EwsError::Dropped { target, reason: describe(error) }
}
