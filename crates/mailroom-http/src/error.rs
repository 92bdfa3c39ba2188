//! `HttpError`: one classification of a failed request (not sent / maybe delivered / TLS / connect / timeout …) from reqwest's error chain and whether the body was handed over.

use std::error::Error as StdError;
use std::time::Duration;

use mailroom_core::ErrorKind;
use mailroom_core::trust::TlsFailure;
use url::Url;

/// What became of a request that got no usable reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The name did not resolve.
    Resolve,
    /// Refused, unreachable, reset while connecting.
    Connect {
        /// The peer refused the connection (nothing listens on that port).
        refused: bool,
    },
    /// No connection (TCP + TLS) within the connect deadline.
    ConnectTimeout,
    /// The TLS handshake failed; `NotTls` when the peer does not speak TLS.
    Tls(TlsFailure),
    /// An `http://` endpoint whose host is, or resolves to, an address off loopback.
    NotLoopback,
    /// The connection failed before the request was handed over in full: the server cannot
    /// have acted on it (a stale pooled connection, a server that stopped reading). Sent again
    /// once by [`crate::HttpClient::send`]; safe to retry.
    NotSent,
    /// Connected, but no reply within the reply deadline, and nothing the server may have
    /// acted on (the request was not handed over whole, or it delivers nothing).
    Timeout,
    /// The connection was lost after the request was handed over, on a request that delivers
    /// nothing (a token request, a probe).
    Dropped,
    /// A request that delivers (a message) was handed over and then the connection was lost,
    /// the reply deadline passed, or a 2xx reply's body was cut, unreadable or trickled past
    /// the deadline: it may have been accepted. Never resend on your own.
    DeliveryUnknown,
    /// The peer answered with something that is not HTTP.
    NotHttp,
    /// A 2xx reply body larger than the client's limit, on a request that delivers nothing.
    TooLarge,
}

impl Failure {
    /// Core's kind for this failure, for drivers that have no more specific mapping.
    ///
    /// ```
    /// use mailroom_http::Failure;
    /// assert_eq!(Failure::DeliveryUnknown.kind().as_str(), "delivery_unknown");
    /// assert_eq!(Failure::NotSent.kind().as_str(), "service_unavailable");
    /// ```
    pub fn kind(self) -> ErrorKind {
        match self {
            Failure::Resolve | Failure::Connect { .. } | Failure::ConnectTimeout => ErrorKind::ConnectFailed,
            Failure::Tls(TlsFailure::NotTls) => ErrorKind::TlsMismatch,
            Failure::Tls(_) => ErrorKind::TlsCertificate,
            Failure::NotLoopback => ErrorKind::InvalidConfig,
            Failure::NotSent | Failure::Dropped => ErrorKind::ServiceUnavailable,
            Failure::Timeout => ErrorKind::Timeout,
            Failure::DeliveryUnknown => ErrorKind::DeliveryUnknown,
            Failure::NotHttp | Failure::TooLarge => ErrorKind::Protocol,
        }
    }

    /// True when the server cannot have acted on the request (safe to send again).
    pub fn not_sent(self) -> bool {
        matches!(
            self,
            Failure::Resolve
                | Failure::Connect { .. }
                | Failure::ConnectTimeout
                | Failure::Tls(_)
                | Failure::NotLoopback
                | Failure::NotSent
        )
    }
}

/// A request that failed, classified, with the URL (never with user info) and what happened.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{}", self.message())]
pub struct HttpError {
    failure: Failure,
    target: String,
    reason: String,
    status: Option<u16>,
    limit: Option<Duration>,
}

impl HttpError {
    pub(crate) fn new(failure: Failure, url: &Url, reason: impl Into<String>) -> HttpError {
        HttpError { failure, target: crate::shown(url), reason: reason.into(), status: None, limit: None }
    }

    pub(crate) fn with_status(mut self, status: u16) -> HttpError {
        self.status = Some(status);
        self
    }

    pub(crate) fn with_limit(mut self, limit: Duration) -> HttpError {
        self.limit = Some(limit);
        self
    }

    /// The error with the request's secrets (a URL's `authtoken`) scrubbed from what it shows.
    pub(crate) fn scrubbed(mut self, scrubber: &mailroom_core::Scrubber) -> HttpError {
        self.target = scrubber.scrub(&self.target);
        self.reason = scrubber.scrub(&self.reason);
        self
    }

    /// The classification.
    pub fn failure(&self) -> Failure {
        self.failure
    }

    /// The URL, without user info.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// What the network or the server did, without the URL.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The HTTP status, when a reply head arrived before the failure (a 2xx whose body broke).
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The deadline that passed, for timeouts.
    pub fn limit(&self) -> Option<Duration> {
        self.limit
    }

    fn message(&self) -> String {
        let target = &self.target;
        let reason = &self.reason;
        match self.failure {
            Failure::Resolve => format!("cannot resolve the host of {target}: {reason}"),
            Failure::Connect { .. } => format!("cannot connect to {target}: {reason}"),
            Failure::ConnectTimeout => format!(
                "no connection to {target} within {} s{}",
                self.limit.unwrap_or_default().as_secs_f32(),
                if target.starts_with("https:") { " (TCP connect and TLS handshake)" } else { "" }
            ),
            Failure::Tls(TlsFailure::NotTls) => format!("{target} did not answer in TLS: {reason}"),
            Failure::Tls(_) => format!("the TLS handshake with {target} failed: {reason}"),
            Failure::NotLoopback => format!("refused to send to {target}: {reason}"),
            Failure::NotSent => format!("the connection to {target} failed before the request was sent: {reason}"),
            Failure::Timeout => match self.status {
                Some(_) => format!("{target}: {reason}"),
                None => format!("no answer from {target} within {} s", self.limit.unwrap_or_default().as_secs_f32()),
            },
            Failure::Dropped => format!("the connection to {target} broke before the whole reply arrived: {reason}"),
            Failure::DeliveryUnknown => format!(
                "{target}: the request was handed over but no complete answer came back ({reason}): it may or may not have been accepted"
            ),
            Failure::NotHttp => format!("{target} did not answer in HTTP: {reason}"),
            Failure::TooLarge => format!("{target}: {reason}"),
        }
    }
}

/// The error's own message and its sources, without the URL reqwest adds.
pub(crate) fn describe(error: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut current: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        if parts.len() > 16 {
            break;
        }
        current = next_source(e);
    }
    if parts.is_empty() { error.without_url_text() } else { parts.join(": ") }
}

trait WithoutUrl {
    fn without_url_text(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_text(&self) -> String {
        let shown = self.to_string();
        shown.split(" for url (").next().unwrap_or(&shown).to_owned()
    }
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

/// Classifies a failed request. TLS is checked first (reqwest reports handshake failures as
/// connect errors); `written` says whether the body was handed over in full; `delivers`
/// whether the server may act on the request (then lost-after-hand-over is delivery unknown).
pub(crate) fn classify(
    error: &reqwest::Error,
    url: &Url,
    connect: Duration,
    reply: Duration,
    written: bool,
    delivers: bool,
) -> HttpError {
    let links = chain(error);
    let reason = describe(error);
    let make = |failure: Failure| HttpError::new(failure, url, reason.clone());
    if let Some(refused) = links.iter().find_map(|e| e.downcast_ref::<crate::client::NotLoopback>()) {
        return HttpError::new(Failure::NotLoopback, url, refused.to_string());
    }
    if let Some(tls) = links.iter().find_map(|e| e.downcast_ref::<rustls::Error>()) {
        return HttpError::new(Failure::Tls(TlsFailure::of(tls)), url, tls.to_string());
    }
    if error.is_timeout() {
        // The overall deadline is connect + reply, so the connect deadline fires first while
        // connecting (TLS handshake included), and a later timeout was connected.
        return if error.is_connect() {
            make(Failure::ConnectTimeout).with_limit(connect)
        } else if written && delivers {
            make(Failure::DeliveryUnknown).with_limit(reply)
        } else {
            make(Failure::Timeout).with_limit(reply)
        };
    }
    let io_kind = links.iter().find_map(|e| e.downcast_ref::<std::io::Error>()).map(std::io::Error::kind);
    if error.is_connect() {
        if io_kind == Some(std::io::ErrorKind::InvalidData) {
            // A non-TLS peer on an https:// port, reported before rustls could say more.
            return make(Failure::Tls(TlsFailure::NotTls));
        }
        let dns = links.iter().any(|e| {
            let text = e.to_string().to_ascii_lowercase();
            text.contains("dns error")
                || text.contains("failed to lookup address")
                || text.contains("name or service not known")
        });
        if dns {
            return make(Failure::Resolve);
        }
        return make(Failure::Connect { refused: io_kind == Some(std::io::ErrorKind::ConnectionRefused) });
    }
    if let Some(hyper) = links.iter().find_map(|e| e.downcast_ref::<hyper::Error>()) {
        // A reply head past hyper's limit ("message head is too large") may begin
        // `HTTP/1.1 200`: the message was handed over and may have been accepted. (hyper's
        // `is_parse_too_large` exists only with its `server` feature, so the text is read.)
        if hyper.is_parse() && written && delivers && hyper.to_string().contains("too large") {
            return make(Failure::DeliveryUnknown);
        }
        if hyper.is_parse() || hyper.is_parse_status() {
            return make(Failure::NotHttp);
        }
        if hyper.is_canceled() || hyper.is_body_write_aborted() || hyper.is_user() {
            return make(Failure::NotSent);
        }
    }
    if io_kind == Some(std::io::ErrorKind::BrokenPipe) || !written {
        // Writing failed, or the connection ended before the whole request was handed over:
        // the server cannot have acted on a request it did not have.
        return make(Failure::NotSent);
    }
    // Closed or reset while waiting for the reply: the request may have been processed.
    make(if delivers { Failure::DeliveryUnknown } else { Failure::Dropped })
}
