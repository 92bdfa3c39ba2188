//! The HTTP client every HTTP driver uses: reqwest on core's TLS trust, no redirects, proxy rules, loopback pinning by resolved address, a connect deadline apart from the reply deadline, bounded reads, and "was the request body handed over".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mailroom_core::Transcript;
use mailroom_core::config::checks::is_loopback_host;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rustls::pki_types::CertificateDer;
use url::Url;

use crate::error::{Failure, HttpError};
use crate::scrub::{Header, scrubber_for_request};

/// The loopback addresses a `localhost` / `*.localhost` name stands for (RFC 6761).
pub const LOOPBACK: [IpAddr; 2] = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];

/// Idle pooled connections older than this are not reused: servers and proxies close idle
/// keep-alive connections (IIS after 120 s, Google's front ends after a few minutes), and a
/// request written into a connection the server is closing fails in a way that can look like
/// a lost reply.
const POOL_IDLE: Duration = Duration::from_secs(20);

/// Slice size of a request body handed to hyper: small enough that "taken" is close to
/// "written", large enough to be cheap.
const SLICE: usize = 64 * 1024;

/// True for `localhost` and `*.localhost` names, which RFC 6761 reserves for loopback: the
/// client resolves them to [`LOOPBACK`] itself rather than asking DNS.
///
/// ```
/// assert!(mailroom_http::is_localhost_name("ews.localhost"));
/// assert!(!mailroom_http::is_localhost_name("localhost.example.com"));
/// ```
pub fn is_localhost_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// True when requests to `url` must bypass any proxy: `http://` (which config allows only to
/// loopback, and which a proxy would read in cleartext) and loopback hosts (core's rule:
/// `localhost`, `*.localhost`, 127/8, ::1), which a proxy cannot reach anyway.
///
/// ```
/// let direct = |u: &str| mailroom_http::bypasses_proxy(&u.parse().unwrap());
/// assert!(direct("http://127.0.0.1:8080/token") && direct("https://ews.localhost/"));
/// assert!(!direct("https://oauth2.googleapis.com/token"));
/// ```
pub fn bypasses_proxy(url: &Url) -> bool {
    url.scheme() == "http" || url.host_str().is_some_and(is_loopback_host)
}

/// The proxy the environment sets for `url` (`HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY`, upper
/// or lower case, minus `NO_PROXY` matches), shown without credentials; `None` when requests to
/// `url` go direct — always for endpoints that [`bypasses_proxy`]. This is the rule
/// [`HttpClient`] follows, for probes that must take the same way (a proxy-only network).
///
/// ```
/// let url = "http://127.0.0.1:8080/token".parse().unwrap();
/// assert_eq!(mailroom_http::environment_proxy(&url), None);
/// ```
pub fn environment_proxy(url: &Url) -> Option<String> {
    if bypasses_proxy(url) {
        return None;
    }
    let variable = |names: &[&str]| {
        names.iter().find_map(|name| std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()))
    };
    let proxy = match url.scheme() {
        "https" => variable(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]),
        _ => variable(&["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]),
    }?;
    let host = url.host_str()?.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    if let Some(no_proxy) = variable(&["NO_PROXY", "no_proxy"]) {
        for entry in no_proxy.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                return None;
            }
            let entry = entry.trim_start_matches("*.").trim_start_matches('.').to_ascii_lowercase();
            let entry = match entry.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.contains(':') => {
                    name.to_owned()
                }
                _ => entry,
            };
            if host == entry || host.ends_with(&format!(".{entry}")) {
                return None;
            }
        }
    }
    let shown = match Url::parse(&proxy) {
        Ok(parsed) => crate::shown(&parsed),
        Err(_) => proxy.split('@').next_back().unwrap_or_default().to_owned(),
    };
    Some(shown)
}

/// Settings of an [`HttpClient`].
///
/// ```
/// use std::time::Duration;
/// let options = mailroom_http::ClientOptions::new("mailroom-ews/0.1")
///     .connect_timeout(Duration::from_secs(5))
///     .max_body(1 << 20);
/// let client = mailroom_http::HttpClient::for_endpoint(&"https://outlook.office365.com/EWS/Exchange.asmx".parse().unwrap(), &options).unwrap();
/// assert!(!client.is_loopback_only());
/// ```
#[derive(Clone, Debug)]
pub struct ClientOptions {
    user_agent: String,
    connect_timeout: Duration,
    max_body: usize,
    extra_roots: Vec<CertificateDer<'static>>,
}

impl ClientOptions {
    /// Defaults: 10 s to connect (TCP + TLS), replies up to 4 MiB, Mozilla's roots only.
    pub fn new(user_agent: impl Into<String>) -> ClientOptions {
        ClientOptions {
            user_agent: user_agent.into(),
            connect_timeout: Duration::from_secs(10),
            max_body: 4 << 20,
            extra_roots: Vec::new(),
        }
    }

    /// The deadline for the TCP connect and the TLS handshake together.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The most of a reply body read.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Also trusts these CA certificates (a company CA, a TLS-inspecting proxy, a test server).
    pub fn extra_roots(mut self, roots: impl IntoIterator<Item = CertificateDer<'static>>) -> Self {
        self.extra_roots.extend(roots);
        self
    }
}

/// A reqwest client for one endpoint (and others with the same proxy decision).
///
/// - TLS: core's trust policy (rustls on aws-lc-rs, Mozilla's roots plus extra roots), HTTP/1.1.
/// - Redirects are never followed: a redirected POST would resend credentials or a message.
/// - An endpoint that [`bypasses_proxy`] gets no proxy; others honour `HTTPS_PROXY`/`NO_PROXY`.
/// - Names are resolved by the client: `*.localhost` to [`LOOPBACK`] without DNS; for an
///   `http://` endpoint every address a name resolves to must be loopback, or the request is
///   refused before connecting ([`Failure::NotLoopback`]).
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: reqwest::Client,
    connect_timeout: Duration,
    max_body: usize,
    loopback_only: bool,
}

/// Why an [`HttpClient`] could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up HTTPS: {0}")]
pub struct BuildError(String);

/// Resolves names for the client: `*.localhost` locally, others through the system resolver,
/// and with `loopback_only` refuses a name that resolves to any address off loopback.
#[derive(Clone, Debug)]
struct PinningResolver {
    loopback_only: bool,
}

/// A name of an `http://` endpoint resolved to an address that is not loopback.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {address}, which is not a loopback address: http:// is allowed only to this machine")]
pub(crate) struct NotLoopback {
    pub(crate) host: String,
    pub(crate) address: IpAddr,
}

impl reqwest::dns::Resolve for PinningResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let loopback_only = self.loopback_only;
        Box::pin(async move {
            if is_localhost_name(&host) {
                let pinned: reqwest::dns::Addrs = Box::new(LOOPBACK.map(|ip| SocketAddr::new(ip, 0)).into_iter());
                return Ok(pinned);
            }
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let addresses = judge_resolved(host, addresses, loopback_only)?;
            let addrs: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addrs)
        })
    }
}

/// The addresses a name resolved to, or the refusal when the client is loopback-only and
/// any of them is off loopback (one bad address is enough: the connector may pick it).
fn judge_resolved(
    host: String,
    addresses: Vec<SocketAddr>,
    loopback_only: bool,
) -> Result<Vec<SocketAddr>, NotLoopback> {
    match addresses.iter().find(|a| !a.ip().is_loopback()) {
        Some(off) if loopback_only => Err(NotLoopback { host, address: off.ip() }),
        _ => Ok(addresses),
    }
}

impl HttpClient {
    /// A client for `endpoint`: direct (no proxy) and loopback-only for `http://` endpoints,
    /// direct for loopback hosts, through the environment's proxy otherwise.
    pub fn for_endpoint(endpoint: &Url, options: &ClientOptions) -> Result<HttpClient, BuildError> {
        let loopback_only = endpoint.scheme() == "http";
        let mut tls = mailroom_core::trust::client_config(options.extra_roots.iter().cloned())
            .map_err(|e| BuildError(e.to_string()))?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(options.connect_timeout)
            .pool_idle_timeout(POOL_IDLE)
            .http1_only()
            .dns_resolver(Arc::new(PinningResolver { loopback_only }))
            .user_agent(options.user_agent.clone());
        if bypasses_proxy(endpoint) {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| BuildError(e.without_url().to_string()))?;
        Ok(HttpClient { client, connect_timeout: options.connect_timeout, max_body: options.max_body, loopback_only })
    }

    /// Whether this client was built for an `http://` endpoint (loopback only, no proxy).
    pub fn is_loopback_only(&self) -> bool {
        self.loopback_only
    }

    /// The connect (TCP + TLS) deadline.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Refuses an `http://` URL this client may not send to: an IP literal off loopback, or
    /// any `http://` URL on a client built for an `https://` endpoint (its resolver would not
    /// check the addresses).
    fn check_target(&self, url: &Url) -> Result<(), HttpError> {
        if url.scheme() != "http" {
            return Ok(());
        }
        let refused = |reason: String| HttpError::new(Failure::NotLoopback, url, reason);
        match url.host() {
            Some(url::Host::Ipv4(ip)) if !ip.is_loopback() => {
                Err(refused(format!("{ip} is not a loopback address: http:// is allowed only to this machine")))
            }
            Some(url::Host::Ipv6(ip)) if !ip.is_loopback() => {
                Err(refused(format!("{ip} is not a loopback address: http:// is allowed only to this machine")))
            }
            _ if !self.loopback_only => {
                Err(refused("an http:// address on a client built for https:// endpoints is refused".into()))
            }
            _ => Ok(()),
        }
    }

    /// Sends `request`, reads the whole reply (bounded), and records the exchange in
    /// `transcript` with secrets redacted from what was sent and scrubbed from what came back.
    ///
    /// The overall deadline is the connect deadline plus the request's reply deadline, and
    /// each body chunk must arrive within the reply deadline. A request whose body was not
    /// handed over in full when its connection failed (a stale pooled connection) is sent again
    /// once, transparently.
    ///
    /// ```no_run
    /// # async fn run(client: &mailroom_http::HttpClient) -> Result<(), mailroom_http::HttpError> {
    /// use mailroom_http::{Header, Request};
    /// let url = "https://gmail.googleapis.com/upload/gmail/v1/users/me/messages/send".parse().unwrap();
    /// let request = Request::post(&url)
    ///     .header(Header::new(http::header::CONTENT_TYPE, "message/rfc822".parse().unwrap()))
    ///     .header(Header::secret(http::header::AUTHORIZATION, "Bearer ya29.token".parse().unwrap()))
    ///     .body(b"From: erp@company.com\r\n\r\nHello".to_vec(), "the message")
    ///     .delivers(true);
    /// let mut transcript = mailroom_core::Transcript::new();
    /// let reply = client.send(request, &mut transcript).await?;
    /// println!("{} {}", reply.status, reply.scrubbed_text());
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, mut request: Request<'_>, transcript: &mut Transcript) -> Result<Reply, HttpError> {
        let scrubber = scrubber_for_request(&request.headers, &request.secrets);
        if let Err(error) = self.check_target(request.url) {
            let error = error.scrubbed(&scrubber);
            transcript.note(&error.to_string());
            return Err(error);
        }
        record_request(&request, &scrubber, transcript);
        let mut headers = HeaderMap::new();
        for header in &request.headers {
            headers.append(header.name.clone(), header.value.clone());
        }
        let meta = request_meta(&request);
        let body = hyper::body::Bytes::from(std::mem::take(&mut request.body));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let written = Arc::new(AtomicBool::new(false));
            let mut builder = self
                .client
                .request(request.method.clone(), request.url.clone())
                .headers(headers.clone())
                .timeout(self.connect_timeout.saturating_add(request.reply_timeout));
            if !body.is_empty() || request.method == reqwest::Method::POST {
                builder = builder
                    .header(reqwest::header::CONTENT_LENGTH, HeaderValue::from(body.len()))
                    .body(reqwest::Body::wrap(TrackedBody::new(body.clone(), written.clone())));
            } else {
                written.store(true, Ordering::SeqCst);
            }
            match builder.send().await {
                Ok(response) => {
                    return self.read_reply(response, &meta, scrubber, transcript).await;
                }
                Err(error) => {
                    let error = crate::error::classify(
                        &error,
                        request.url,
                        self.connect_timeout,
                        request.reply_timeout,
                        written.load(Ordering::SeqCst),
                        request.delivers,
                    )
                    .scrubbed(&scrubber);
                    if error.failure() == Failure::NotSent && attempt == 1 {
                        transcript.note(&format!("{error}; sending again on a new connection"));
                        continue;
                    }
                    transcript.note(&error.to_string());
                    return Err(error);
                }
            }
        }
    }

    async fn read_reply(
        &self,
        mut response: reqwest::Response,
        request: &RequestMeta,
        scrubber: mailroom_core::Scrubber,
        transcript: &mut Transcript,
    ) -> Result<Reply, HttpError> {
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
        let accepted = status.is_success();
        let mut body = Vec::new();
        let mut body_error = None;
        loop {
            let next = tokio::time::timeout(request.reply_timeout, response.chunk()).await;
            let failure = match next {
                Ok(Ok(Some(chunk))) => {
                    if body.len().saturating_add(chunk.len()) > self.max_body {
                        let room = self.max_body - body.len();
                        body.extend_from_slice(&chunk[..room]);
                        Some((Failure::TooLarge, format!("the reply body is larger than {} bytes", self.max_body)))
                    } else {
                        body.extend_from_slice(&chunk);
                        None
                    }
                }
                Ok(Ok(None)) => break,
                Ok(Err(error)) if error.is_timeout() => Some((
                    Failure::Timeout,
                    format!("the reply body did not arrive within {} s", request.reply_timeout.as_secs_f32()),
                )),
                Ok(Err(error)) => {
                    Some((Failure::Dropped, format!("the reply body broke off: {}", crate::error::describe(&error))))
                }
                Err(_) => Some((
                    Failure::Timeout,
                    format!("the reply body stalled for more than {} s", request.reply_timeout.as_secs_f32()),
                )),
            };
            let Some((failure, reason)) = failure else { continue };
            if !accepted {
                // A broken error reply is still classified by its status.
                transcript.note(&reason);
                body_error = Some(reason);
                break;
            }
            // A 2xx whose body cannot be read whole: the request may have been accepted.
            let failure = match failure {
                _ if request.delivers => Failure::DeliveryUnknown,
                Failure::TooLarge => Failure::TooLarge,
                Failure::Timeout => Failure::Timeout,
                _ => Failure::Dropped,
            };
            let error = HttpError::new(
                failure,
                request_url(request),
                format!("HTTP {} answered, but {reason}", status.as_u16()),
            )
            .with_status(status.as_u16())
            .with_limit(request.reply_timeout)
            .scrubbed(&scrubber);
            transcript.note(&error.to_string());
            return Err(error);
        }
        Ok(Reply { status: status.as_u16(), reason, headers, body, body_error, scrubber })
    }
}

fn request_url(request: &RequestMeta) -> &Url {
    &request.url
}

/// What the reply reader needs of a request.
struct RequestMeta {
    url: Url,
    reply_timeout: Duration,
    delivers: bool,
}

fn request_meta(request: &Request<'_>) -> RequestMeta {
    RequestMeta { url: request.url.clone(), reply_timeout: request.reply_timeout, delivers: request.delivers }
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
    "client-request-id",
    "x-ms-ags-diagnostic",
];

/// One request for [`HttpClient::send`].
pub struct Request<'a> {
    method: reqwest::Method,
    url: &'a Url,
    headers: Vec<Header>,
    body: Vec<u8>,
    what: String,
    reply_timeout: Duration,
    secrets: Vec<String>,
    delivers: bool,
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &mailroom_core::Scrubber::new(&self.secrets).scrub(&crate::shown(self.url)))
            .finish_non_exhaustive()
    }
}

impl<'a> Request<'a> {
    /// A request with `method` to `url`: no body, 10 s reply deadline, not delivering.
    pub fn new(method: reqwest::Method, url: &'a Url) -> Request<'a> {
        Request {
            method,
            url,
            headers: Vec::new(),
            body: Vec::new(),
            what: String::new(),
            reply_timeout: Duration::from_secs(10),
            secrets: Vec::new(),
            delivers: false,
        }
    }

    /// A POST to `url`.
    pub fn post(url: &'a Url) -> Request<'a> {
        Request::new(reqwest::Method::POST, url)
    }

    /// A GET of `url`.
    pub fn get(url: &'a Url) -> Request<'a> {
        Request::new(reqwest::Method::GET, url)
    }

    /// Adds a header ([`Header::secret`] ones are recorded redacted and scrubbed from the reply).
    pub fn header(mut self, header: Header) -> Self {
        self.headers.push(header);
        self
    }

    /// The body, never recorded; `what` describes it in the transcript (no secrets in it).
    pub fn body(mut self, body: Vec<u8>, what: impl Into<String>) -> Self {
        self.body = body;
        self.what = what.into();
        self
    }

    /// How long to wait for the reply once connected (also the deadline of each body chunk).
    pub fn reply_timeout(mut self, timeout: Duration) -> Self {
        self.reply_timeout = timeout;
        self
    }

    /// A secret the body or the URL carries (a client secret, a token, an upload URL's
    /// `authtoken`): scrubbed from the reply, the recorded request line, errors and `Debug`.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secrets.push(secret.into());
        self
    }

    /// Whether the server may act on this request once it has it whole (a message to send):
    /// then a failure after hand-over, or a 2xx whose body cannot be read, is
    /// [`Failure::DeliveryUnknown`] instead of [`Failure::Dropped`] or [`Failure::Timeout`].
    pub fn delivers(mut self, delivers: bool) -> Self {
        self.delivers = delivers;
        self
    }
}

fn record_request(request: &Request<'_>, scrubber: &mailroom_core::Scrubber, transcript: &mut Transcript) {
    let url = request.url;
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    // A pre-authenticated URL (an upload session's `authtoken`) carries its secret in the query.
    transcript.client(&scrubber.scrub(&format!("{} {path} HTTP/1.1", request.method)));
    transcript.client(&format!("Host: {}", url.host_str().unwrap_or_default()));
    for header in &request.headers {
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
    }
    if !request.what.is_empty() || !request.body.is_empty() {
        transcript.note(&format!(
            "{} ({} bytes)",
            if request.what.is_empty() { "body" } else { &request.what },
            request.body.len()
        ));
    }
}

/// A complete HTTP reply.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Reason phrase (canonical).
    pub reason: String,
    /// Headers.
    pub headers: HeaderMap,
    /// The body as received, at most the client's `max_body` bytes (scrub before keeping any).
    pub body: Vec<u8>,
    /// For a non-2xx reply whose body broke off, was too large or stalled: what happened
    /// (the status still classifies it).
    pub body_error: Option<String>,
    /// The secrets of the request, to scrub from anything kept of this reply.
    pub scrubber: mailroom_core::Scrubber,
}

impl Reply {
    /// The body as text with the request's secrets scrubbed (whole, before any cutting).
    pub fn scrubbed_text(&self) -> String {
        self.scrubber.scrub(&String::from_utf8_lossy(&self.body))
    }

    /// A header's value as text, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A request body handed to hyper in slices, noting when the last one was taken. hyper takes
/// the next slice only when its write buffer has room, so "taken in full" means all but at
/// most that much was written: the flag errs towards "written" (towards `delivery_unknown`,
/// never towards a resend), and while it is false the server cannot have the whole request.
struct TrackedBody {
    data: hyper::body::Bytes,
    written: Arc<AtomicBool>,
}

impl TrackedBody {
    fn new(data: hyper::body::Bytes, written: Arc<AtomicBool>) -> TrackedBody {
        if data.is_empty() {
            written.store(true, Ordering::SeqCst);
        }
        TrackedBody { data, written }
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
            // hyper ends the body itself once Content-Length is reached and does not ask
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

/// A header name as servers print it (`SOAPAction`, `WWW-Authenticate`, `Content-Type`).
pub(crate) fn canonical(name: &HeaderName) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_only_client_refuses_a_name_that_resolves_off_loopback() {
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let lan: SocketAddr = "192.168.1.20:0".parse().unwrap();
        assert!(judge_resolved("mail.test".into(), vec![loopback], true).is_ok());
        let refused = judge_resolved("mail.test".into(), vec![loopback, lan], true).unwrap_err();
        assert_eq!(refused.address, lan.ip());
        assert!(refused.to_string().contains("not a loopback address"));
        assert!(judge_resolved("mail.test".into(), vec![lan], false).is_ok());
    }

    #[tokio::test]
    async fn the_resolver_pins_localhost_names_without_dns() {
        use reqwest::dns::Resolve;
        let resolver = PinningResolver { loopback_only: true };
        let name: reqwest::dns::Name = "ews.localhost".parse().unwrap();
        let addresses: Vec<_> = resolver.resolve(name).await.unwrap().map(|a| a.ip()).collect();
        assert_eq!(addresses, LOOPBACK);
    }
}
