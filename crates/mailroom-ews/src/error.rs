//! The EWS driver's own error enum (what failed: network, TLS, HTTP status, SOAP fault, response code, token endpoint) and its mapping into core's `SendError` kinds with the config field to change.

use std::fmt;
use std::time::Duration;

use mailroom_core::config::EwsAuth;
use mailroom_core::config::Field;
use mailroom_core::{ErrorKind, Retry, SendError, ServerReply, Transcript};
use reqwest::header::HeaderMap;

use crate::http::HttpReply;
use crate::reply::{self, Fault, ParseError, ResponseMessage};
use mailroom_core::Scrubber;

/// Where a request went, which decides the fields to blame and whether a lost connection
/// may mean the message was delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum At {
    /// `CreateItem`: the message is in the request.
    Send,
    /// The probe's `GetFolder`: nothing is sent.
    Probe,
    /// The OAuth token endpoint.
    Token,
}

pub(crate) use mailroom_core::trust::TlsFailure;

/// The authentication schemes a 401 offered (`WWW-Authenticate`) and Microsoft's
/// diagnostics header, which says "Modern Auth" when only OAuth is accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Challenges {
    /// Scheme names in the order offered, as sent (`Negotiate`, `NTLM`, `Basic`, `Bearer`).
    pub schemes: Vec<String>,
    /// `ms-diagnostics-public` or `x-ms-diagnostics`, if sent.
    pub diagnostics: Option<String>,
}

const KNOWN_SCHEMES: &[&str] = &["Basic", "Bearer", "Negotiate", "NTLM", "Digest", "Kerberos"];

impl Challenges {
    /// Reads every `WWW-Authenticate` header. A header may carry several challenges
    /// separated by commas, and Bearer parameters hold commas too, so only a known scheme
    /// name at the start of a comma-separated piece counts.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Challenges {
        let mut schemes: Vec<String> = Vec::new();
        for value in headers.get_all(reqwest::header::WWW_AUTHENTICATE) {
            let value = String::from_utf8_lossy(value.as_bytes());
            for piece in value.split(',') {
                let token = piece.trim_start().split([' ', '\t']).next().unwrap_or_default();
                if let Some(known) = KNOWN_SCHEMES.iter().find(|k| k.eq_ignore_ascii_case(token))
                    && !schemes.iter().any(|s| s.eq_ignore_ascii_case(known))
                {
                    schemes.push(token.to_owned());
                }
            }
        }
        let diagnostics = ["ms-diagnostics-public", "x-ms-diagnostics"]
            .iter()
            .find_map(|name| headers.get(*name))
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        Challenges { schemes, diagnostics }
    }

    /// True when `scheme` was offered.
    pub(crate) fn offers(&self, scheme: &str) -> bool {
        self.schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme))
    }

    /// Microsoft's way of saying "OAuth only": `ms-diagnostics-public` mentions Modern Auth.
    fn says_modern_auth(&self) -> bool {
        self.diagnostics.as_deref().is_some_and(|d| d.to_ascii_lowercase().contains("modern auth"))
    }

    fn offered(&self) -> String {
        if self.schemes.is_empty() { "no authentication scheme".to_owned() } else { self.schemes.join(", ") }
    }
}

/// An HTTP reply's status line and the headers worth quoting, for non-SOAP errors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct HttpSummary {
    /// The reason phrase (`Service Unavailable`).
    pub reason: String,
    /// `Retry-After` in seconds.
    pub retry_after: Option<Duration>,
    /// `X-CasErrorCode`: the Client Access front end's own error.
    pub cas_error: Option<String>,
    /// The first characters of the body, whitespace collapsed.
    pub excerpt: String,
}

impl HttpSummary {
    /// Summarises a reply; secrets are scrubbed from the body before it is cut.
    pub(crate) fn of(reason: &str, headers: &HeaderMap, body: &[u8], scrubber: &Scrubber) -> HttpSummary {
        // Bounded (issue 10 #3): a huge hint is cut, never an overflow later.
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| mailroom_http::retry_after(v, std::time::SystemTime::now()));
        let cas_error = header_text(headers, "x-caserrorcode", scrubber);
        let text = scrubber.scrub(&String::from_utf8_lossy(body));
        let text = match text.char_indices().nth(2048) {
            Some((cut, _)) => &text[..cut],
            None => text.as_str(),
        };
        let mut excerpt = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some((cut, _)) = excerpt.char_indices().nth(200) {
            excerpt.truncate(cut);
            excerpt.push('…');
        }
        HttpSummary { reason: reason.to_owned(), retry_after, cas_error, excerpt }
    }
}

/// A reply header as text, secrets scrubbed.
fn header_text(headers: &HeaderMap, name: &str, scrubber: &Scrubber) -> Option<String> {
    headers.get(name).map(|v| scrubber.scrub(&String::from_utf8_lossy(v.as_bytes())))
}

/// What went wrong talking to Exchange (or to the OAuth token endpoint).
#[derive(Debug, thiserror::Error)]
pub(crate) enum EwsError {
    /// A setting this driver cannot use.
    #[error("{reason}")]
    Config {
        /// The field.
        field: Field,
        /// Why.
        reason: String,
    },
    /// The extra CA file is unusable.
    #[error("cannot use the CA file {path}: {reason}")]
    CaFile {
        /// The path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTPS client: {0}")]
    Client(String),
    /// The host name does not resolve.
    #[error("{target} does not resolve: {reason}")]
    Resolve {
        /// The endpoint.
        target: String,
        /// The resolver's message.
        reason: String,
    },
    /// TCP connect failed.
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        /// The endpoint.
        target: String,
        /// The OS error.
        reason: String,
        /// Connection refused (nothing listens on the port).
        refused: bool,
    },
    /// Connecting (TCP connect, and for https the TLS handshake) did not finish in time:
    /// nothing was sent.
    #[error("connecting to {target}{} did not finish within {} s", if *tls { " (TCP connect and TLS handshake)" } else { "" }, limit.as_secs_f32())]
    ConnectTimeout {
        /// The endpoint.
        target: String,
        /// The deadline.
        limit: Duration,
        /// An https endpoint (the handshake was part of it).
        tls: bool,
    },
    /// The TLS handshake failed.
    #[error("the TLS handshake with {target} failed: {reason}")]
    Tls {
        /// The endpoint.
        target: String,
        /// What rustls said.
        reason: String,
        /// rustls's classification.
        cause: TlsFailure,
    },
    /// Connected, but no (complete) reply in time.
    #[error("no reply from {target} within {} s{}", limit.as_secs_f32(), if *request_sent { " after the request was sent" } else { " (the request was not completely sent)" })]
    Timeout {
        /// The endpoint.
        target: String,
        /// The reply deadline.
        limit: Duration,
        /// The whole request had been handed over: the server may have acted on it.
        request_sent: bool,
    },
    /// The connection broke while the request was still being written: the server cannot
    /// have acted on it.
    #[error("the connection to {target} broke before the request was completely sent: {reason}")]
    SendFailed {
        /// The endpoint.
        target: String,
        /// What happened.
        reason: String,
    },
    /// The connection was lost after the request was sent, before a complete reply.
    #[error("the connection to {target} was lost after the request was sent, before a complete reply: {reason}")]
    Dropped {
        /// The endpoint.
        target: String,
        /// What happened.
        reason: String,
    },
    /// The peer's bytes are not HTTP.
    #[error("{target} answered with something that is not HTTP: {reason}")]
    NotHttp {
        /// The endpoint.
        target: String,
        /// hyper's message.
        reason: String,
    },
    /// The reply body is larger than we read.
    #[error("the reply (HTTP {status}) is larger than {limit} bytes")]
    TooLarge {
        /// HTTP status.
        status: u16,
        /// The cap.
        limit: usize,
    },
    /// A 3xx reply (redirects are never followed on POST).
    #[error("HTTP {status}: the server redirects to {location}{}", cas_error.as_ref().map(|c| format!(" (X-CasErrorCode: {c})")).unwrap_or_default())]
    Redirect {
        /// HTTP status.
        status: u16,
        /// The `Location` header, as sent.
        location: String,
        /// `X-CasErrorCode`, if sent.
        cas_error: Option<String>,
        /// `Location` resolved against the request's URL, when the result would pass the
        /// config's endpoint rule (https, or http only to loopback).
        target: Option<Box<url::Url>>,
    },
    /// HTTP 401.
    #[error("HTTP 401: the server refused the credentials (it offers {})", challenges.offered())]
    Unauthorized {
        /// What the server offered instead.
        challenges: Challenges,
    },
    /// Another non-SOAP HTTP error.
    #[error("HTTP {status} {}{}", summary.reason, summary.cas_error.as_ref().map(|c| format!(" (X-CasErrorCode: {c})")).unwrap_or_default())]
    Status {
        /// HTTP status.
        status: u16,
        /// Reason, headers and body excerpt.
        summary: HttpSummary,
    },
    /// The body is not a SOAP reply.
    #[error("the reply (HTTP {status}) is not a usable SOAP message: {reason}")]
    Malformed {
        /// HTTP status.
        status: u16,
        /// Why.
        reason: ParseError,
        /// The body starts like a SOAP envelope (cut, corrupted or not UTF-8 on the way):
        /// Exchange itself answered, so a `CreateItem` may have been carried out.
        soap_started: bool,
    },
    /// A SOAP fault.
    #[error("SOAP fault {}: {}", fault.code(), fault_text(fault))]
    Fault {
        /// HTTP status.
        status: u16,
        /// The fault.
        fault: Box<Fault>,
    },
    /// A response message with an error code.
    #[error("{} {}{}", message.element, message.code(), message.text.as_ref().map(|t| format!(": {t}")).unwrap_or_default())]
    Response {
        /// HTTP status.
        status: u16,
        /// The message.
        message: Box<ResponseMessage>,
    },
    /// `ErrorInvalidSchemaVersionForMailboxVersion`: the mailbox is on an older Exchange than
    /// the schema version asked for. Nothing was done; the request may be repeated once with
    /// `retry_with`.
    #[error(
        "Exchange refuses the request's schema version for this mailbox (ErrorInvalidSchemaVersionForMailboxVersion); it supports {retry_with}"
    )]
    SchemaVersion {
        /// HTTP status.
        status: u16,
        /// The server's text.
        text: String,
        /// The older schema version to ask for instead.
        retry_with: &'static str,
    },
    /// A SOAP envelope without any response message or fault.
    #[error("the reply (HTTP {status}) holds no response message")]
    NoResponse {
        /// HTTP status.
        status: u16,
    },
    /// The token endpoint refused to issue a token.
    #[error("the token endpoint refused (HTTP {status}): {error}{}", if description.is_empty() { String::new() } else { format!(": {description}") })]
    TokenRefused {
        /// HTTP status.
        status: u16,
        /// The OAuth `error` (`invalid_client`, …).
        error: String,
        /// `error_description`, first line.
        description: String,
    },
    /// The token endpoint's reply is not a token.
    #[error("the token endpoint's reply (HTTP {status}) is not a token: {reason}")]
    TokenMalformed {
        /// HTTP status.
        status: u16,
        /// Why.
        reason: String,
    },
}

fn fault_text(fault: &Fault) -> String {
    let mut text = fault.text.clone();
    let xml = &fault.message_xml;
    let get = |wanted: &str| xml.elements.iter().find(|(name, _)| name == wanted).map(|(_, text)| text.as_str());
    match (get("Violation"), xml.violation()) {
        (Some(raw), Some(_)) if text.contains(raw) => {
            if let (Some(line), Some(position)) = (get("LineNumber"), get("LinePosition")) {
                text.push_str(&format!(" (request line {line}, position {position})"));
            }
        }
        (_, Some(violation)) => {
            text.push_str(" — ");
            text.push_str(&violation);
        }
        _ => {}
    }
    text
}

/// What the classification needs to know about the configuration.
#[derive(Clone, Debug)]
pub(crate) struct Context {
    /// The EWS endpoint as configured (no user info).
    pub uri: String,
    /// Its host.
    pub host: String,
    /// The authentication method.
    pub auth: EwsAuth,
    /// The name sent for Basic, or the OAuth client id.
    pub login: String,
    /// The Company Email address.
    pub sender: String,
}

impl Context {
    /// Exchange Online (where Basic has been off since 2022).
    fn exchange_online(&self) -> bool {
        let host = self.host.to_ascii_lowercase();
        host == "outlook.office365.com" || host == "outlook.office.com" || host.ends_with(".outlook.com")
    }

    fn oauth(&self) -> bool {
        self.auth == EwsAuth::Oauth
    }
}

const OAUTH_HINT: &str = "This server accepts only OAuth (Modern Auth): set auth = \"oauth\" in [exchange] with client_id, tenant and client_secret_env from an Azure app registration that has the Office 365 Exchange Online application permission full_access_as_app (admin consent granted). Exchange Online turned Basic authentication off in 2022.";

impl EwsError {
    /// Classifies the complete HTTP reply to a request for `url`: status, challenges, SOAP.
    /// Returns the first response message when the reply is a success. Every text taken
    /// from the reply is scrubbed of the request's secrets.
    pub(crate) fn check_reply(url: &url::Url, reply: &HttpReply) -> Result<ResponseMessage, EwsError> {
        let HttpReply { status, reason, headers, body, scrubber, .. } = reply;
        let (status, reason) = (*status, reason.as_str());
        if (300..400).contains(&status) {
            let raw =
                headers.get(reqwest::header::LOCATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            let target = raw
                .as_deref()
                .and_then(|location| url.join(location.trim()).ok())
                .and_then(|joined| mailroom_core::config::checks::check_endpoint(joined.as_str()).ok())
                .map(Box::new);
            let location = raw.map(|l| scrubber.scrub(&l)).unwrap_or_else(|| "(no Location header)".to_owned());
            let cas_error = header_text(headers, "x-caserrorcode", scrubber);
            return Err(EwsError::Redirect { status, location, cas_error, target });
        }
        if status == 401 {
            let mut challenges = Challenges::from_headers(headers);
            if let Some(diagnostics) = &mut challenges.diagnostics {
                scrubber.scrub_in_place(diagnostics);
            }
            return Err(EwsError::Unauthorized { challenges });
        }
        let parsed = reply::parse(body).map(|mut parsed| {
            parsed.scrub(scrubber);
            parsed
        });
        match parsed {
            Ok(parsed) => {
                let code =
                    parsed.fault.as_ref().map(Fault::code).or(parsed.messages.first().map(ResponseMessage::code));
                if code == Some(SCHEMA_TOO_NEW) {
                    let text = match (&parsed.fault, parsed.messages.first()) {
                        (Some(fault), _) => fault.text.clone(),
                        (None, Some(message)) => message.text.clone().unwrap_or_default(),
                        (None, None) => String::new(),
                    };
                    // exchangelib's answer: ask again with the version the server reports.
                    // When it reports none older than ours (a newer front end before an
                    // older mailbox server), the oldest schema with everything we use.
                    let retry_with = parsed
                        .server_version
                        .as_ref()
                        .and_then(reply::ServerVersion::older_schema)
                        .unwrap_or("Exchange2007_SP1");
                    return Err(EwsError::SchemaVersion { status, text, retry_with });
                }
                if let Some(fault) = parsed.fault {
                    return Err(EwsError::Fault { status, fault: Box::new(fault) });
                }
                match parsed.messages.into_iter().next() {
                    Some(message) if message.is_success() => Ok(message),
                    Some(message) => Err(EwsError::Response { status, message: Box::new(message) }),
                    None if status == 200 => Err(EwsError::NoResponse { status }),
                    None => Err(EwsError::Status { status, summary: HttpSummary::of(reason, headers, body, scrubber) }),
                }
            }
            Err(reason) if status == 200 => Err(EwsError::Malformed {
                status,
                soap_started: !matches!(reason, ParseError::NotSoap(_)) && starts_like_soap(body),
                reason: reason.scrubbed(scrubber),
            }),
            Err(_) => Err(EwsError::Status { status, summary: HttpSummary::of(reason, headers, body, scrubber) }),
        }
    }

    /// Core's kind for a failure to reach the token endpoint (no usable HTTP reply).
    fn token_transport_kind(&self) -> Option<ErrorKind> {
        Some(match self {
            EwsError::Resolve { .. } | EwsError::Connect { .. } | EwsError::ConnectTimeout { tls: false, .. } => {
                ErrorKind::ConnectFailed
            }
            EwsError::ConnectTimeout { .. } | EwsError::Timeout { .. } => ErrorKind::Timeout,
            EwsError::Tls { cause: TlsFailure::NotTls, .. } => ErrorKind::TlsMismatch,
            EwsError::Tls { .. } => ErrorKind::TlsCertificate,
            EwsError::SendFailed { .. } | EwsError::Dropped { .. } => ErrorKind::ServiceUnavailable,
            EwsError::NotHttp { .. } | EwsError::TooLarge { .. } => ErrorKind::Protocol,
            _ => return None,
        })
    }

    /// The core error for this failure; `transcript` is the redacted exchange so far.
    pub(crate) fn into_send_error(self, context: &Context, at: At, transcript: Transcript) -> SendError {
        let error = self.classify(context, at, transcript);
        // Token-step errors are about the identity platform, not Exchange: no Exchange advice.
        if at == At::Token { error } else { error.with_service(mailroom_core::ServiceKind::Exchange) }
    }

    fn classify(self, context: &Context, at: At, transcript: Transcript) -> SendError {
        let detail = self.to_string();
        let uri_field = if at == At::Token { None } else { Some(Field::ExchangeUri) };
        let with_field = |error: SendError, field: Option<Field>| match field {
            Some(field) => error.with_field(field),
            None => error,
        };
        if at == At::Token
            && let Some(kind) = self.token_transport_kind()
        {
            // The token endpoint, not Exchange: the advice is about reaching the Microsoft
            // identity platform over HTTPS, never Exchange's URI or SMTP ports (issue 10 #6).
            return SendError::new(kind, detail)
                .with_field(Field::ExchangeTenant)
                .with_hint("mailroom could not get an OAuth token from the Microsoft identity platform token endpoint (https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token): check that this machine reaches login.microsoftonline.com over HTTPS (port 443; through HTTPS_PROXY if the network needs a proxy; no firewall or TLS inspection in the way), and that exchange.tenant is the directory (tenant) ID or a verified domain such as company.onmicrosoft.com.")
                .with_hint("Nothing was sent: no request reaches Exchange without a token, so trying again is safe.")
                .with_complete_hints()
                .with_transcript(transcript)
                .with_source(self);
        }
        let error = match &self {
            EwsError::Config { field, .. } => SendError::invalid_config(*field, detail),
            EwsError::CaFile { .. } => SendError::invalid_config(Field::ExchangeCaFile, detail),
            EwsError::Client(_) => SendError::new(ErrorKind::Protocol, detail),
            EwsError::Resolve { target, .. } => with_field(SendError::new(ErrorKind::ConnectFailed, detail), uri_field)
                .with_hint(format!("The host of {target} does not resolve from this machine: check its spelling (usually https://mail.company.com/EWS/Exchange.asmx on premises, https://outlook.office365.com/EWS/Exchange.asmx for Exchange Online).")),
            EwsError::Connect { target, refused, .. } => {
                let hint = if *refused {
                    format!("Nothing accepts connections at {target}: check the port in the URI (HTTPS is 443).")
                } else {
                    format!("{target} cannot be reached from this machine: check the URI and the network or firewall.")
                };
                with_field(SendError::new(ErrorKind::ConnectFailed, detail), uri_field).with_hint(hint)
            }
            // reqwest's connect deadline covers the TCP connect and the TLS handshake, and does
            // not say which one stalled. Over https the usual case is a host that accepts the
            // connection and then stays silent (a port that does not speak TLS, an inspecting
            // firewall): connected, no answer in time, which is `timeout` (DESIGN.md's "no
            // answer after connecting"); over http:// (loopback only) it can only be the TCP
            // connect, which is `connect_failed`. Either way nothing was sent.
            EwsError::ConnectTimeout { target, tls: true, .. } => with_field(SendError::new(ErrorKind::Timeout, detail), uri_field)
                .with_hint(format!("Connecting to {target} and completing the TLS handshake did not finish in time, so nothing was sent: check the host and port in exchange.uri (HTTPS is 443; a port that does not speak TLS stays silent like this), and that no firewall drops the traffic.")),
            EwsError::ConnectTimeout { target, .. } => with_field(SendError::new(ErrorKind::ConnectFailed, detail), uri_field)
                .with_hint(format!("Connecting to {target} timed out, so nothing was sent: a firewall may drop the traffic, or the host is wrong.")),
            EwsError::Tls { cause, target, .. } => match cause {
                TlsFailure::NotTls => with_field(SendError::new(ErrorKind::TlsMismatch, detail), uri_field)
                    .with_hint(format!("{target} does not speak TLS on that port: use the https:// address and port of the Exchange server (443).")),
                TlsFailure::WrongHost => with_field(SendError::new(ErrorKind::TlsCertificate, detail), uri_field)
                    .with_hint("Use the host name the server's certificate is issued for (e.g. mail.company.com, not an IP address or internal alias)."),
                TlsFailure::Expired => with_field(SendError::new(ErrorKind::TlsCertificate, detail), uri_field)
                    .with_hint("The server's certificate is expired or not yet valid: its administrator must renew it (or check this machine's clock)."),
                TlsFailure::Untrusted => SendError::new(ErrorKind::TlsCertificate, detail)
                    .with_field(Field::ExchangeCaFile)
                    .with_hint("If the Exchange server uses your company's own certificate authority, set ca_file to that CA's PEM file."),
                TlsFailure::Other => with_field(SendError::new(ErrorKind::TlsCertificate, detail), uri_field),
            },
            // Like the SMTP and Gmail drivers: no answer to a CreateItem that was sent in full
            // means Exchange may have accepted the message (it scans content before
            // answering), so the outcome is unknown and nothing is ever resent on its own.
            EwsError::Timeout { request_sent: true, .. } if at == At::Send => SendError::new(
                ErrorKind::DeliveryUnknown,
                format!("{detail}: the message may or may not have been sent"),
            )
            .with_hint("Exchange did not answer the CreateItem in time: it may still deliver the message. Check the sender's Sent Items or the recipient's mailbox before sending again (mailroom does not resend on its own); raise timeout_secs for a slow server."),
            EwsError::Timeout { .. } if at == At::Send => SendError::new(ErrorKind::Timeout, detail)
                .with_field(Field::ExchangeTimeoutSecs)
                .with_hint("The message could not be sent completely in time, so Exchange did not receive it: check the network to the server, or raise timeout_secs for a large message on a slow link."),
            EwsError::Timeout { .. } => SendError::new(ErrorKind::Timeout, detail)
                .with_field(Field::ExchangeTimeoutSecs)
                .with_hint("The server accepted the connection but did not answer in time: check that exchange.uri points at the EWS endpoint, or raise timeout_secs for a slow server."),
            EwsError::SendFailed { .. } => SendError::new(ErrorKind::ServiceUnavailable, detail)
                .with_hint("The connection broke before the request was complete, so nothing was sent: trying again is safe."),
            EwsError::Dropped { .. } if at == At::Send => SendError::new(
                ErrorKind::DeliveryUnknown,
                format!("{detail}: the message may or may not have been sent"),
            ),
            EwsError::Dropped { .. } => SendError::new(ErrorKind::ServiceUnavailable, detail),
            EwsError::NotHttp { .. } => with_field(SendError::new(ErrorKind::Protocol, detail), uri_field)
                .with_hint("Something other than a web server answers at that address: check the scheme and port of exchange.uri."),
            EwsError::TooLarge { .. } => with_field(SendError::new(ErrorKind::Protocol, detail), uri_field),
            EwsError::Redirect { location, status, target, .. } => {
                let reply = ServerReply::http(*status, None, format!("Location: {location}"));
                if location.to_ascii_lowercase().contains("genericerrorpage.htm") {
                    let error = SendError::new(ErrorKind::ServiceUnavailable, format!("{detail}: Exchange's generic error page, a temporary server problem"))
                        .with_reply(reply);
                    // Exchange shows this page for unhandled errors, which may come after
                    // the message was submitted.
                    if at == At::Send { maybe_sent(error) } else { error }
                } else {
                    let hint = match target {
                        _ if location.to_ascii_lowercase().contains("/owa/") => {
                            format!("The address redirects to Outlook on the web ({location}): point exchange.uri at the EWS endpoint itself, https://{}/EWS/Exchange.asmx.", context.host)
                        }
                        Some(target) => format!("mailroom never follows redirects when posting (the credentials and the message would go elsewhere). The server points to {target} (unverified): if that is the EWS endpoint, set uri = \"{target}\" (`mailroom diagnose` tries it when it is on the same host)."),
                        None => format!("mailroom never follows redirects when posting (the credentials and the message would go elsewhere). The server points to {location}, which is not usable as exchange.uri (it must be an https:// address): ask the Exchange administrator for the EWS address."),
                    };
                    with_field(SendError::new(ErrorKind::Protocol, detail), uri_field).with_reply(reply).with_hint(hint)
                }
            }
            EwsError::Unauthorized { challenges } => unauthorized(challenges, context, detail),
            EwsError::Status { status, summary } => status_error(*status, summary, context, at, detail),
            // A 200 to CreateItem that starts as a SOAP envelope but cannot be read may mean
            // "sent": never `protocol`, which would let someone send it again (issue 10 #10).
            EwsError::Malformed { status, soap_started: true, .. } if at == At::Send => {
                SendError::new(ErrorKind::DeliveryUnknown, detail)
                    .with_retry(Retry::Permanent)
                    .with_reply(ServerReply::http(*status, None, "unreadable SOAP reply"))
                    .with_hint("Exchange answered HTTP 200 but its reply cannot be read whole: the message may have been sent. Check the sender's Sent Items or the recipient's mailbox before sending it again (mailroom does not resend it on its own).")
            }
            EwsError::Malformed { status, .. } => {
                let error = with_field(SendError::new(ErrorKind::Protocol, detail), uri_field)
                    .with_reply(ServerReply::http(*status, None, "unreadable SOAP reply"));
                if at == At::Send {
                    error.with_hint("The server answered HTTP 200 but its reply cannot be read: the message may have been sent. Check before sending again.")
                } else {
                    error.with_hint("The address answers, but not as Exchange Web Services: check that exchange.uri ends in /EWS/Exchange.asmx.")
                }
            }
            EwsError::Fault { status, fault } => {
                let mut text = fault_text(fault);
                if let Some(message) = &fault.message
                    && !text.contains(message.trim_end_matches('.'))
                {
                    text = format!("{message} {text}");
                }
                let reply = ServerReply::http(*status, Some(fault.code()), text);
                by_response_code(fault.code(), &fault.message_xml, context, detail, *status, at).with_reply(reply)
            }
            EwsError::Response { status, message } => {
                let reply = ServerReply::http(*status, Some(message.code()), message.text.clone().unwrap_or_default());
                by_response_code(message.code(), &message.message_xml, context, detail, *status, at).with_reply(reply)
            }
            EwsError::SchemaVersion { status, text, retry_with } => SendError::new(ErrorKind::Protocol, detail)
                .with_reply(ServerReply::http(*status, Some(SCHEMA_TOO_NEW), text.clone()))
                .with_hint(format!("The mailbox is on an older Exchange than the server in front of it, and the request was refused with schema version {retry_with} too, so nothing was sent. Please report this to mailroom's maintainers with the server's version (`mailroom diagnose` shows it in the transcript).")),
            EwsError::NoResponse { .. } => with_field(SendError::new(ErrorKind::Protocol, detail), uri_field),
            EwsError::TokenRefused { status, error, description } => token_refused(*status, error, description, detail),
            EwsError::TokenMalformed { .. } => SendError::new(ErrorKind::Protocol, detail),
        };
        error.with_transcript(transcript).with_source(self)
    }
}

/// HTTP 401: which credentials the server would take decides between "wrong password"
/// and "this kind of login is switched off".
fn unauthorized(challenges: &Challenges, context: &Context, detail: String) -> SendError {
    let reply = ServerReply::http(
        401,
        None,
        match &challenges.diagnostics {
            Some(diagnostics) => format!("WWW-Authenticate: {}; {diagnostics}", challenges.offered()),
            None => format!("WWW-Authenticate: {}", challenges.offered()),
        },
    );
    if context.oauth() {
        let diagnostics = challenges.diagnostics.as_deref().unwrap_or_default().to_ascii_lowercase();
        if diagnostics.contains("2000008") || diagnostics.contains("permission") {
            return SendError::new(ErrorKind::PermissionDenied, detail)
                .with_field(Field::ExchangeClientId)
                .with_reply(reply)
                .with_hint("Exchange accepted the token but it carries no EWS permission: in the Azure app registration add the Office 365 Exchange Online application permission full_access_as_app and grant admin consent.");
        }
        return SendError::new(ErrorKind::AuthFailed, detail)
            .with_field(Field::ExchangeTenant)
            .with_reply(reply)
            .with_hint("Exchange rejected the access token even after a refresh: check that tenant is the mailbox's tenant and that the app has full_access_as_app with admin consent.");
    }
    let basic = challenges.offers("Basic");
    let bearer = challenges.offers("Bearer");
    let windows = challenges.offers("Negotiate") || challenges.offers("NTLM");
    if challenges.says_modern_auth() || (bearer && !basic) || (context.exchange_online() && !windows) {
        return SendError::new(
            ErrorKind::AuthDisabled,
            format!("{detail}: Basic authentication is disabled, the server wants OAuth"),
        )
        .with_field(Field::ExchangeAuth)
        .with_reply(reply)
        .with_hint(OAUTH_HINT);
    }
    if windows && !basic {
        return SendError::new(
            ErrorKind::AuthDisabled,
            format!("{detail}: Basic authentication is disabled on the EWS endpoint, it accepts only Windows authentication"),
        )
        .with_field(Field::ExchangeAuth)
        .with_reply(reply)
        .with_hint("The server offers only Negotiate/NTLM (Windows authentication), which mailroom does not speak: ask the Exchange administrator to enable Basic authentication on the EWS virtual directory (Set-WebServicesVirtualDirectory -BasicAuthentication $true; it is safe over HTTPS), or use auth = \"oauth\" if the organisation has hybrid Modern Auth.");
    }
    let mut error = SendError::new(ErrorKind::AuthFailed, detail)
        .with_field(Field::ExchangePassword)
        .with_reply(reply)
        .with_hint(format!(
            "mailroom signed in as {} (user name @ domain): check the user name, the domain and the password.",
            context.login
        ));
    if bearer {
        error = error.with_hint("The server also accepts OAuth: auth = \"oauth\" avoids passwords altogether.");
    }
    error
}

/// Non-SOAP HTTP errors.
fn status_error(status: u16, summary: &HttpSummary, context: &Context, at: At, detail: String) -> SendError {
    let mut text = summary.reason.clone();
    if let Some(cas) = &summary.cas_error {
        text.push_str(&format!(" (X-CasErrorCode: {cas})"));
    }
    if !summary.excerpt.is_empty() {
        text.push_str(": ");
        text.push_str(&summary.excerpt);
    }
    let reply = ServerReply::http(status, None, text);
    let temporary = Retry::Temporary { after: summary.retry_after };
    let error = match status {
        403..=405 if at == At::Token => SendError::new(ErrorKind::Protocol, format!("{detail}: is the token endpoint right?")),
        403 => SendError::new(ErrorKind::AuthDisabled, format!("{detail}: EWS access is blocked for this account or application"))
            .with_field(Field::ExchangeAuth)
            .with_hint("Exchange refuses EWS for this mailbox or app: an administrator must allow it (Set-CASMailbox -EwsEnabled $true, Set-OrganizationConfig -EwsEnabled $true, or the EWS application access policy). Exchange Online turns EWS off from October 2026; plan a move to Email Services."),
        404 | 405 => SendError::new(ErrorKind::Protocol, format!("{detail}: no EWS endpoint at this address"))
            .with_field(Field::ExchangeUri)
            .with_hint(format!("The EWS endpoint is usually https://{}/EWS/Exchange.asmx.", context.host)),
        413 => SendError::new(ErrorKind::MessageTooLarge, detail),
        429 => SendError::new(ErrorKind::RateLimited, detail).with_retry(temporary),
        503 => SendError::new(ErrorKind::ServiceUnavailable, detail).with_retry(temporary),
        // 500, 502, 504…: an application error, a bad gateway or a gateway timeout may come
        // after Exchange took the message (see `maybe_sent`).
        500..=599 if at == At::Send => maybe_sent(SendError::new(ErrorKind::ServiceUnavailable, detail)),
        500..=599 => SendError::new(ErrorKind::ServiceUnavailable, detail).with_retry(temporary),
        _ => {
            let error = SendError::new(ErrorKind::Protocol, detail);
            if at == At::Token { error } else { error.with_field(Field::ExchangeUri) }
        }
    };
    error.with_reply(reply)
}

/// A server error in reply to a `CreateItem`, which carried the message: never retried.
///
/// Why `service_unavailable` with [`Retry::Permanent`] rather than `delivery_unknown`: the
/// server did answer, and what it said is a server-side failure (DESIGN.md's
/// `service_unavailable`: "5xx backend error"); `delivery_unknown` means no final answer at
/// all and its advice speaks of a dropped connection. What the kind cannot say, the retry
/// status and the hint do: an internal error, a proxy's 502 or a gateway timeout may come
/// after Exchange accepted and submitted the message, so resending automatically could
/// send it twice (DESIGN.md: only errors raised before the server could have accepted the
/// message are retried). 429, 503 and the throttling codes are refusals before any work
/// and stay temporary.
/// Whether a body begins like a SOAP reply (an XML declaration or element, an `Envelope`
/// near the start), read leniently: its bytes may be cut or not UTF-8.
fn starts_like_soap(body: &[u8]) -> bool {
    let start = String::from_utf8_lossy(&body[..body.len().min(512)]);
    start.trim_start_matches('\u{feff}').trim_start().starts_with('<') && start.contains("Envelope")
}

fn maybe_sent(error: SendError) -> SendError {
    error.with_retry(Retry::Permanent).with_hint(
        "Exchange reported a server error after receiving the message, so it may have been sent: check the sender's Sent Items or the recipient's mailbox before sending it again (mailroom does not resend it on its own).",
    )
}

/// The response code for a schema version newer than the mailbox's Exchange.
const SCHEMA_TOO_NEW: &str = "ErrorInvalidSchemaVersionForMailboxVersion";

/// EWS `ResponseCode`s (from a response message or a fault) into kinds.
///
/// Exchange sends a code the request's schema version does not know as
/// `ErrorInternalServerError` with the real one in `MessageXml` (`InnerErrorResponseCode`;
/// Microsoft's documented throttling form wraps `ErrorServerBusy` like this, at HTTP 200).
/// A known inner code is classified as itself; an unknown one keeps the outer meaning.
fn by_response_code(
    code: &str,
    message_xml: &reply::MessageXml,
    context: &Context,
    detail: String,
    status: u16,
    at: At,
) -> SendError {
    if code == "ErrorInternalServerError"
        && let Some(inner) = message_xml.value("InnerErrorResponseCode")
        && let Some(error) = known_response_code(
            inner,
            message_xml,
            context,
            format!(
                "{detail} (inner error {inner}{})",
                message_xml.value("InnerErrorMessageText").map(|t| format!(": {t}")).unwrap_or_default()
            ),
            at,
        )
    {
        return error;
    }
    match known_response_code(code, message_xml, context, detail.clone(), at) {
        Some(error) => error,
        None if status >= 500 && !code.starts_with("Error") => {
            let error = SendError::new(ErrorKind::ServiceUnavailable, detail);
            if at == At::Send { maybe_sent(error) } else { error }
        }
        None => SendError::new(ErrorKind::Protocol, format!("{detail} (a response code mailroom does not know)")),
    }
}

/// The response codes this driver knows; `None` for any other.
fn known_response_code(
    code: &str,
    message_xml: &reply::MessageXml,
    context: &Context,
    detail: String,
    at: At,
) -> Option<SendError> {
    let impersonation_field = if context.oauth() { Field::ExchangeClientId } else { Field::ExchangeUsername };
    Some(match code {
        "ErrorSendAsDenied" => SendError::new(ErrorKind::SenderNotAllowed, detail)
            .with_field(Field::EmailAddress)
            .with_hint(format!("The signed-in account may not send as {}: use that mailbox's own credentials, or have an administrator grant Send As on it (Add-RecipientPermission / Exchange admin center → mailbox → Delegation).", context.sender)),
        "ErrorServerBusy" => {
            let after = message_xml.back_off();
            let mut error = SendError::new(ErrorKind::RateLimited, detail).with_retry(Retry::Temporary { after });
            if let Some(after) = after {
                error = error.with_hint(format!("Exchange asks to wait {} ms before the next request.", after.as_millis()));
            }
            error
        }
        // Throttling budgets are checked before the operation runs: nothing was done.
        "ErrorExceededConnectionCount" | "ErrorTooManyObjectsOpened" => {
            SendError::new(ErrorKind::RateLimited, detail).with_retry(Retry::Temporary { after: message_xml.back_off() })
        }
        // A search budget, which a CreateItem never spends: not retried there.
        "ErrorExceededFindCountLimit" => {
            let error = SendError::new(ErrorKind::RateLimited, detail);
            if at == At::Send { error.with_retry(Retry::Permanent) } else { error.with_retry(Retry::Temporary { after: message_xml.back_off() }) }
        }
        "ErrorInvalidRecipients" | "ErrorInvalidRecipientSubfilter" => SendError::new(ErrorKind::RecipientRejected, detail),
        "ErrorMessageSizeExceeded" => SendError::new(ErrorKind::MessageTooLarge, detail),
        "ErrorAccessDenied" => SendError::new(ErrorKind::PermissionDenied, detail),
        "ErrorImpersonateUserDenied" | "ErrorImpersonationDenied" | "ErrorImpersonationFailed" => {
            SendError::new(ErrorKind::PermissionDenied, detail)
                .with_field(impersonation_field)
                .with_hint(format!("The account may not act as {}: the Azure app needs the full_access_as_app permission with admin consent (or, on premises, the ApplicationImpersonation role), and the mailbox must be in its scope.", context.sender))
        }
        // Microsoft's ResponseCode reference: ErrorMailRecipientNotFound "occurs if the
        // MailboxData element information cannot be mapped to a valid mailbox account", that
        // is, an address the request names (a recipient or attendee), not the signed-in or
        // impersonated mailbox, which fails with ErrorNonExistentMailbox or an impersonation
        // error instead.
        "ErrorMailRecipientNotFound" => SendError::new(ErrorKind::RecipientRejected, detail)
            .with_hint("Exchange found no mailbox for a recipient of this message: check the recipient addresses."),
        "ErrorNonExistentMailbox" | "ErrorInvalidSmtpAddress" => {
            SendError::new(ErrorKind::SenderNotAllowed, detail)
                .with_field(Field::EmailAddress)
                .with_hint(format!("Exchange has no mailbox for {}: check email_address against the mailbox's primary SMTP address.", context.sender))
        }
        "ErrorSchemaValidation" | "ErrorInvalidRequest" | "ErrorInvalidServerVersion" | "ErrorInvalidPropertySet"
        | "ErrorIncorrectSchemaVersion" => {
            let mut error = SendError::new(ErrorKind::Protocol, format!("{detail}: Exchange rejected mailroom's request, which is a bug in mailroom"));
            if let Some(violation) = message_xml.violation() {
                error = error.with_hint(format!("Please report this to mailroom's maintainers with the violation: {violation}"));
            }
            error
        }
        // Mailbox store and internal errors, timeouts inside Exchange, a failed proxy hop
        // between Exchange servers: during CreateItem each may come after the message was
        // submitted, so they are retried only where nothing is sent.
        "ErrorMailboxStoreUnavailable" | "ErrorMailboxMoveInProgress" | "ErrorInternalServerTransientError"
        | "ErrorInternalServerError" | "ErrorConnectionFailed" | "ErrorTimeoutExpired" | "ErrorProxyRequestProcessingFailed" => {
            let error = SendError::new(ErrorKind::ServiceUnavailable, detail);
            if at == At::Send { maybe_sent(error) } else { error.with_retry(Retry::Temporary { after: message_xml.back_off() }) }
        }
        // The impersonation header or a mailbox reference named an alias; the reply names
        // the primary address (`t:Value Name="Primary"`).
        "ErrorNonPrimarySmtpAddress" => {
            let error = SendError::new(ErrorKind::SenderNotAllowed, detail).with_field(Field::EmailAddress);
            match message_xml.value("Primary").filter(|primary| !primary.is_empty()) {
                Some(primary) => error.with_hint(format!("{} is an alias of the mailbox; Exchange wants its primary address: set email_address = \"{primary}\".", context.sender)),
                None => error.with_hint(format!("{} is not the mailbox's primary SMTP address: set email_address to the primary one (Exchange admin center → mailbox → Email addresses).", context.sender)),
            }
        }
        // The sender's submission quota (recipients per day): refused before submission, so
        // nothing went out; sending can resume when the rolling window frees up.
        "ErrorSubmissionQuotaExceeded" => SendError::new(ErrorKind::RateLimited, detail)
            .with_retry(Retry::Temporary { after: message_xml.back_off() })
            .with_hint(format!("Exchange's sending quota for {} (recipients per day) is used up: messages are accepted again as the 24-hour window moves on. Spread bulk sends over the day or ask for a higher limit.", context.sender)),
        // The mailbox is full: Exchange cannot create the message in it (even SendOnly
        // creates it first), and it stays full until someone acts.
        "ErrorQuotaExceeded" => SendError::new(ErrorKind::ServiceUnavailable, detail)
            .with_field(Field::EmailAddress)
            .with_retry(Retry::Permanent)
            .with_hint(format!("The mailbox is full ({}), so Exchange cannot create the message in it and nothing was sent: empty its Sent Items and Deleted Items, or have an administrator raise its quota.", context.sender))
            .with_complete_hints(),
        "ErrorAccountDisabled" => {
            let field = if context.oauth() { Field::EmailAddress } else { Field::ExchangeUsername };
            SendError::new(ErrorKind::AuthDisabled, detail)
                .with_field(field)
                .with_hint("The account is disabled in the directory (Active Directory or Entra ID): an administrator must enable it, or use an account that is active.")
        }
        _ => return None,
    })
}

/// Azure AD token endpoint errors (`AADSTS…` codes in the description).
fn token_refused(status: u16, error: &str, description: &str, detail: String) -> SendError {
    let reply = ServerReply::http(status, Some(error), description.to_owned());
    let aadsts = |code: &str| description.contains(&format!("AADSTS{code}"));
    let (kind, field, hint): (ErrorKind, Option<Field>, Option<&str>) = if aadsts("90002")
        || aadsts("900023")
        || aadsts("90013")
    {
        (
            ErrorKind::AuthFailed,
            Some(Field::ExchangeTenant),
            Some(
                "Azure AD does not know this tenant: use the directory (tenant) ID or the company.onmicrosoft.com domain from the app registration's overview page.",
            ),
        )
    } else if aadsts("700016") || error == "unauthorized_client" {
        (
            ErrorKind::AuthFailed,
            Some(Field::ExchangeClientId),
            Some(
                "No application with this client_id exists in the tenant: copy the Application (client) ID from the app registration's overview page.",
            ),
        )
    } else if aadsts("7000222") {
        (
            ErrorKind::AuthFailed,
            Some(Field::ExchangeClientSecret),
            Some(
                "The client secret has expired: create a new one under the app registration's Certificates & secrets and update client_secret_env.",
            ),
        )
    } else if error == "invalid_client" {
        (
            ErrorKind::AuthFailed,
            Some(Field::ExchangeClientSecret),
            Some(
                "Azure AD rejected the client secret: copy the secret's Value (not its Secret ID) from Certificates & secrets.",
            ),
        )
    } else if error == "invalid_scope" || aadsts("70011") {
        (ErrorKind::PermissionDenied, Some(Field::ExchangeClientId), None)
    } else if status == 429 {
        (ErrorKind::RateLimited, None, None)
    } else if status >= 500 || error == "temporarily_unavailable" {
        (ErrorKind::ServiceUnavailable, None, None)
    } else {
        (ErrorKind::AuthFailed, Some(Field::ExchangeClientId), None)
    };
    let mut result = SendError::new(kind, detail).with_reply(reply);
    if let Some(field) = field {
        result = result.with_field(field);
    }
    if let Some(hint) = hint {
        result = result.with_hint(hint);
    }
    result
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            At::Send => "send",
            At::Probe => "probe",
            At::Token => "token",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, WWW_AUTHENTICATE};

    fn context(auth: EwsAuth, host: &str) -> Context {
        Context {
            uri: format!("https://{host}/EWS/Exchange.asmx"),
            host: host.into(),
            auth,
            login: "erp@company.com".into(),
            sender: "erp@company.com".into(),
        }
    }

    fn challenge(values: &[&str], diagnostics: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(WWW_AUTHENTICATE, HeaderValue::from_str(value).unwrap());
        }
        if let Some(d) = diagnostics {
            headers.insert("ms-diagnostics-public", HeaderValue::from_str(d).unwrap());
        }
        headers
    }

    const URI: &str = "https://mail.company.com/EWS/Exchange.asmx";

    fn check(status: u16, headers: HeaderMap, body: &[u8]) -> Result<ResponseMessage, EwsError> {
        let reason = reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or_default();
        let reply = HttpReply {
            status,
            reason: reason.into(),
            headers,
            body: body.to_vec(),
            body_error: None,
            scrubber: Scrubber::default(),
        };
        EwsError::check_reply(&URI.parse().unwrap(), &reply)
    }

    fn classify_401(headers: HeaderMap, ctx: &Context) -> SendError {
        let error = check(401, headers, b"").unwrap_err();
        error.into_send_error(ctx, At::Send, Transcript::new())
    }

    #[test]
    fn challenges_are_read_from_every_header_and_bearer_parameters_are_skipped() {
        let headers = challenge(
            &[
                "Negotiate",
                "NTLM",
                "Bearer client_id=\"00000002-0000-0ff1-ce00-000000000000\", trusted_issuers=\"00000001-0000-0000-c000-000000000000@*\", token_types=\"app_asserted_user_v1 service_asserted_app_v1\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", Basic Realm=\"\"",
            ],
            None,
        );
        assert_eq!(Challenges::from_headers(&headers).schemes, ["Negotiate", "NTLM", "Bearer", "Basic"]);
    }

    #[test]
    fn a_401_says_why() {
        let on_prem = context(EwsAuth::Basic, "mail.company.com");
        let wrong_password =
            classify_401(challenge(&["Negotiate", "NTLM", "Basic realm=\"mail.company.com\""], None), &on_prem);
        assert_eq!((wrong_password.kind(), wrong_password.field()), (ErrorKind::AuthFailed, Some("exchange.password")));
        let windows_only = classify_401(challenge(&["Negotiate", "NTLM"], None), &on_prem);
        assert_eq!((windows_only.kind(), windows_only.field()), (ErrorKind::AuthDisabled, Some("exchange.auth")));
        let modern = classify_401(
            challenge(
                &["Basic Realm=\"\""],
                Some("000000;reason=\"Modern Auth required\";error_category=\"invalid_client\""),
            ),
            &on_prem,
        );
        assert_eq!((modern.kind(), modern.field()), (ErrorKind::AuthDisabled, Some("exchange.auth")));
        assert!(modern.remediation()[0].contains("auth = \"oauth\""));
        let online =
            classify_401(challenge(&["Basic Realm=\"\""], None), &context(EwsAuth::Basic, "outlook.office365.com"));
        assert_eq!(online.kind(), ErrorKind::AuthDisabled);
        let bearer_only = classify_401(challenge(&["Bearer client_id=\"x\", trusted_issuers=\"y\""], None), &on_prem);
        assert_eq!(bearer_only.kind(), ErrorKind::AuthDisabled);
        assert_eq!(bearer_only.server_reply().unwrap().code, Some(401));
    }

    #[test]
    fn redirects_are_never_followed_and_the_error_page_is_transient() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "location",
            HeaderValue::from_static(
                "https://mail.company.com/ews/genericerrorpage.htm?aspxerrorpath=/EWS/Exchange.asmx",
            ),
        );
        let ctx = context(EwsAuth::Basic, "mail.company.com");
        let busy = check(302, headers.clone(), b"").unwrap_err().into_send_error(&ctx, At::Probe, Transcript::new());
        assert_eq!(busy.kind(), ErrorKind::ServiceUnavailable);
        assert!(busy.retry().is_temporary(), "nothing is sent by the probe: trying again is safe");
        let sent = check(302, headers.clone(), b"").unwrap_err().into_send_error(&ctx, At::Send, Transcript::new());
        assert_eq!(sent.kind(), ErrorKind::ServiceUnavailable);
        assert!(!sent.retry().is_temporary(), "the error page may follow a submitted CreateItem");
        assert!(sent.remediation()[0].contains("may have been sent"), "{:?}", sent.remediation());
        headers.insert("location", HeaderValue::from_static("https://mail.company.com/owa/auth/logon.aspx"));
        let owa = check(302, headers, b"").unwrap_err();
        let owa = owa.into_send_error(&context(EwsAuth::Basic, "mail.company.com"), At::Send, Transcript::new());
        assert_eq!((owa.kind(), owa.field()), (ErrorKind::Protocol, Some("exchange.uri")));
        assert!(owa.to_string().contains("/owa/auth/logon.aspx"));
    }

    #[test]
    fn token_errors_name_the_field() {
        let cases = [
            ("invalid_client", "AADSTS7000215: Invalid client secret provided.", "exchange.client_secret"),
            (
                "unauthorized_client",
                "AADSTS700016: Application with identifier 'x' was not found in the directory 'y'.",
                "exchange.client_id",
            ),
            ("invalid_request", "AADSTS90002: Tenant 'nope' not found.", "exchange.tenant"),
        ];
        for (error, description, field) in cases {
            let e = EwsError::TokenRefused { status: 400, error: error.into(), description: description.into() }
                .into_send_error(&context(EwsAuth::Oauth, "outlook.office365.com"), At::Token, Transcript::new());
            assert_eq!((e.kind(), e.field()), (ErrorKind::AuthFailed, Some(field)), "{description}");
        }
    }

    #[test]
    fn a_drop_after_the_request_is_delivery_unknown_only_when_sending() {
        let dropped = || EwsError::Dropped { target: "x".into(), reason: "closed".into() };
        let ctx = context(EwsAuth::Basic, "mail.company.com");
        let send = dropped().into_send_error(&ctx, At::Send, Transcript::new());
        assert_eq!(send.kind(), ErrorKind::DeliveryUnknown);
        assert!(!send.retry().is_temporary());
        assert_eq!(dropped().into_send_error(&ctx, At::Probe, Transcript::new()).kind(), ErrorKind::ServiceUnavailable);
    }

    #[test]
    fn a_relative_redirect_is_resolved_and_only_usable_targets_are_suggested() {
        let ctx = context(EwsAuth::Basic, "mail.company.com");
        let redirect = |location: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("location", HeaderValue::from_str(location).unwrap());
            check(302, headers, b"").unwrap_err()
        };
        let relative = redirect("/EWS/Exchange2.asmx");
        let EwsError::Redirect { target, .. } = &relative else { panic!("{relative:?}") };
        assert_eq!(target.as_deref().map(url::Url::as_str), Some("https://mail.company.com/EWS/Exchange2.asmx"));
        let hint = relative.into_send_error(&ctx, At::Probe, Transcript::new()).remediation()[0].clone();
        assert!(
            hint.contains("uri = \"https://mail.company.com/EWS/Exchange2.asmx\"") && hint.contains("unverified"),
            "{hint}"
        );
        assert!(!hint.contains("uri = \"/EWS"), "{hint}");

        let cleartext = redirect("http://mail.company.com/EWS/Exchange.asmx");
        let EwsError::Redirect { target, .. } = &cleartext else { panic!("{cleartext:?}") };
        assert_eq!(target, &None, "http:// off loopback fails the endpoint rule");
        let hint = cleartext.into_send_error(&ctx, At::Probe, Transcript::new()).remediation()[0].clone();
        assert!(!hint.contains("uri = "), "{hint}");
    }

    #[test]
    fn mail_recipient_not_found_is_a_recipient_error() {
        let body = br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><m:CreateItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><m:ResponseMessages><m:CreateItemResponseMessage ResponseClass="Error"><m:MessageText>Unable to resolve e-mail address to an Active Directory object.</m:MessageText><m:ResponseCode>ErrorMailRecipientNotFound</m:ResponseCode></m:CreateItemResponseMessage></m:ResponseMessages></m:CreateItemResponse></s:Body></s:Envelope>"#;
        let error = check(200, HeaderMap::new(), body).unwrap_err().into_send_error(
            &context(EwsAuth::Basic, "mail.company.com"),
            At::Send,
            Transcript::new(),
        );
        assert_eq!((error.kind(), error.field()), (ErrorKind::RecipientRejected, None), "{error}");
    }

    /// The response codes the classification knows, plus some it does not.
    const CODES: &[&str] = &[
        "ErrorServerBusy",
        "ErrorExceededConnectionCount",
        "ErrorTooManyObjectsOpened",
        "ErrorExceededFindCountLimit",
        "ErrorInternalServerError",
        "ErrorInternalServerTransientError",
        "ErrorTimeoutExpired",
        "ErrorProxyRequestProcessingFailed",
        "ErrorMailboxStoreUnavailable",
        "ErrorMailboxMoveInProgress",
        "ErrorConnectionFailed",
        "ErrorSendAsDenied",
        "ErrorSubmissionQuotaExceeded",
        "ErrorQuotaExceeded",
        "ErrorAccountDisabled",
        "ErrorNonPrimarySmtpAddress",
        "ErrorInvalidRecipients",
        "ErrorAccessDenied",
        "ErrorSchemaValidation",
        "ErrorSomethingNew",
        "Server",
        "Client",
        "a:InternalError",
    ];

    /// Throttling refusals: Exchange checks these budgets before running the operation.
    const THROTTLING: &[&str] = &[
        "ErrorServerBusy",
        "ErrorExceededConnectionCount",
        "ErrorTooManyObjectsOpened",
        "ErrorSubmissionQuotaExceeded",
    ];

    fn fault(code: &str, back_off: bool) -> String {
        let xml = if back_off {
            r#"<t:MessageXml xmlns:t="t"><t:Value Name="BackOffMilliseconds">500</t:Value></t:MessageXml>"#
        } else {
            ""
        };
        format!(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>{code}</faultcode><faultstring>text</faultstring><detail><e:ResponseCode xmlns:e="e">{code}</e:ResponseCode>{xml}</detail></s:Fault></s:Body></s:Envelope>"#
        )
    }

    fn response(code: &str) -> String {
        format!(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><m:CreateItemResponse xmlns:m="m"><m:ResponseMessages><m:CreateItemResponseMessage ResponseClass="Error"><m:MessageText>text</m:MessageText><m:ResponseCode>{code}</m:ResponseCode></m:CreateItemResponseMessage></m:ResponseMessages></m:CreateItemResponse></s:Body></s:Envelope>"#
        )
    }

    /// Fuzz case count: fixed for CI (well under a minute), `MAILROOM_FUZZ_CASES` for longer runs.
    fn fuzz_cases(default: u32) -> proptest::test_runner::Config {
        let cases = std::env::var("MAILROOM_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(default);
        proptest::test_runner::Config::with_cases(cases)
    }

    /// Every captured EWS reply under `fixtures/ews/`.
    fn captured_replies() -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/ews");
        let mut replies: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .filter(|entry| entry.path().extension().is_some_and(|e| e == "xml"))
            .map(|entry| std::fs::read(entry.path()).unwrap())
            .collect();
        replies.sort();
        replies
    }

    /// A byte edit of a captured reply: overwrite, insert, delete or duplicate a span.
    #[derive(Clone, Debug)]
    enum Edit {
        Overwrite(proptest::sample::Index, Vec<u8>),
        Insert(proptest::sample::Index, Vec<u8>),
        Delete(proptest::sample::Index, usize),
        Repeat(proptest::sample::Index, usize, usize),
    }

    fn edit() -> impl proptest::strategy::Strategy<Value = Edit> {
        use proptest::prelude::*;
        let bytes = prop_oneof![
            proptest::collection::vec(any::<u8>(), 1..8),
            proptest::sample::select(vec![
                b"<".to_vec(),
                b"</".to_vec(),
                b"&#xFFFFFFFF;".to_vec(),
                b"&bogus;".to_vec(),
                b"<![CDATA[".to_vec(),
                b"\xff\xfe".to_vec(),
                b"<t:Value Name=\"BackOffMilliseconds\">99999999999999999999</t:Value>".to_vec(),
                b"<t:Value Name=\"InnerErrorResponseCode\">ErrorServerBusy</t:Value>".to_vec(),
                b"<h:ServerVersionInfo MajorVersion=\"4294967296\" MinorVersion=\"-1\"/>".to_vec(),
            ]),
        ];
        prop_oneof![
            (any::<proptest::sample::Index>(), bytes.clone()).prop_map(|(at, b)| Edit::Overwrite(at, b)),
            (any::<proptest::sample::Index>(), bytes).prop_map(|(at, b)| Edit::Insert(at, b)),
            (any::<proptest::sample::Index>(), 1usize..64).prop_map(|(at, n)| Edit::Delete(at, n)),
            (any::<proptest::sample::Index>(), 1usize..64, 1usize..50)
                .prop_map(|(at, n, times)| Edit::Repeat(at, n, times)),
        ]
    }

    fn apply(body: &mut Vec<u8>, edit: &Edit) {
        let at = |index: &proptest::sample::Index, body: &Vec<u8>| index.index(body.len() + 1);
        match edit {
            Edit::Overwrite(index, bytes) => {
                let start = at(index, body);
                for (offset, byte) in bytes.iter().enumerate() {
                    if let Some(slot) = body.get_mut(start + offset) {
                        *slot = *byte;
                    }
                }
            }
            Edit::Insert(index, bytes) => {
                let start = at(index, body);
                body.splice(start..start, bytes.iter().copied());
            }
            Edit::Delete(index, length) => {
                let start = at(index, body);
                body.drain(start..(start + length).min(body.len()));
            }
            Edit::Repeat(index, length, times) => {
                let start = at(index, body);
                let span = body[start..(start + length).min(body.len())].to_vec();
                let repeated = span.repeat(*times);
                body.splice(start..start, repeated);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(fuzz_cases(1024))]

        /// The SOAP reply parser and the classification behind it, on captured replies with
        /// bytes changed and on arbitrary bytes, under any status and hostile headers: a
        /// classified error or a success, never a panic; a back-off hint stays bounded.
        #[test]
        fn fuzz_edited_captured_replies_are_classified(
            pick in proptest::prelude::any::<proptest::sample::Index>(),
            edits in proptest::collection::vec(edit(), 0..6),
            arbitrary in proptest::option::weighted(0.2, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)),
            status in proptest::prop_oneof![proptest::sample::select(vec![200u16, 401, 500, 503]), 100u16..600],
            header in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            at in proptest::sample::select(vec![At::Send, At::Probe, At::Token]),
        ) {
            let replies = captured_replies();
            let mut body = arbitrary.unwrap_or_else(|| pick.get(&replies).clone());
            for edit in &edits {
                apply(&mut body, edit);
            }
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_bytes(&header) {
                headers.insert("retry-after", value.clone());
                headers.insert(WWW_AUTHENTICATE, value.clone());
                headers.insert("location", value.clone());
                headers.insert("x-caserrorcode", value);
            }
            let _ = reply::parse(&body);
            if let Err(error) = check(status, headers, &body) {
                let soap = matches!(error, EwsError::Fault { .. } | EwsError::Response { .. });
                let error = error.into_send_error(&context(EwsAuth::Oauth, "outlook.office365.com"), at, Transcript::new());
                let _ = (error.report(), error.remediation(), error.user_message());
                if soap && let Retry::Temporary { after: Some(after) } = error.retry() {
                    proptest::prop_assert!(after <= reply::MAX_BACK_OFF, "{:?}", after);
                }
            }
        }
    }

    proptest::proptest! {
        /// No reply to a CreateItem (which carries the message) is retried automatically,
        /// except the refusals that come before Exchange does anything: HTTP 429 and 503
        /// without a SOAP body, and the throttling codes.
        #[test]
        fn no_reply_to_a_create_item_is_temporary_unless_exchange_refused_before_acting(
            status in proptest::prop_oneof![100u16..600, proptest::sample::select(vec![200u16, 302, 429, 500, 502, 503, 504])],
            shape in 0usize..5,
            code in proptest::sample::select(CODES),
            back_off: bool,
            retry_after in proptest::option::of(0u64..100),
            location in proptest::sample::select(vec!["/ews/genericerrorpage.htm?aspxerrorpath=/EWS/Exchange.asmx", "/EWS/Exchange2.asmx", "https://other.example/owa/"]),
        ) {
            let mut headers = HeaderMap::new();
            if let Some(seconds) = retry_after {
                headers.insert("retry-after", HeaderValue::from(seconds));
            }
            if shape == 4 {
                headers.insert("location", HeaderValue::from_static(location));
            }
            let body = match shape {
                0 => fault(code, back_off),
                1 => response(code),
                2 => "<html><body>Runtime Error</body></html>".to_owned(),
                _ => String::new(),
            };
            let ctx = context(EwsAuth::Basic, "mail.company.com");
            let Err(error) = check(status, headers, body.as_bytes()) else { return Ok(()) };
            let soap = matches!(error, EwsError::Fault { .. } | EwsError::Response { .. });
            let refused_first = if soap { THROTTLING.contains(&code) } else { matches!(status, 429 | 503) };
            let error = error.into_send_error(&ctx, At::Send, Transcript::new());
            if error.retry().is_temporary() {
                proptest::prop_assert!(refused_first, "HTTP {} shape {} code {}: {:?}", status, shape, code, error);
            }
            if mailroom_core::RetryPolicy::default().delay_before_retry(1, &error).is_some() {
                proptest::prop_assert!(refused_first, "the facade would resend: {:?}", error);
            }
        }
    }
}
