//! The Gmail driver's own error enum (what failed, at which Google endpoint), the parsers for Google's error bodies, and the mapping into core's `SendError` kinds.

use std::fmt;
use std::time::{Duration, SystemTime};

use mailroom_core::config::Field;
use mailroom_core::{ErrorKind, Retry, SendError, ServerReply, Transcript};

/// Which Google endpoint a request went to; it decides the config field blamed for
/// connection-level failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// The OAuth2 token endpoint (`email_services.token_uri`).
    Token,
    /// The Gmail API (`email_services.api_base`).
    Api,
}

impl Endpoint {
    /// The config field that holds this endpoint.
    pub fn field(self) -> Field {
        match self {
            Endpoint::Token => Field::EmailServicesTokenUri,
            Endpoint::Api => Field::EmailServicesApiBase,
        }
    }

    fn default_value(self) -> &'static str {
        match self {
            Endpoint::Token => "https://oauth2.googleapis.com/token",
            Endpoint::Api => "https://gmail.googleapis.com",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Endpoint::Token => "Google token endpoint",
            Endpoint::Api => "Gmail API",
        })
    }
}

/// A Google API error body (`{"error":{"code","message","errors":[{"reason","domain"}],"status","details"}}`), parsed leniently.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiError {
    /// `error.message`.
    pub message: String,
    /// `error.status`, e.g. `PERMISSION_DENIED`.
    pub status: Option<String>,
    /// `error.errors[].reason`, e.g. `insufficientPermissions`.
    pub reasons: Vec<String>,
    /// `error.details[].reason`, e.g. `ACCESS_TOKEN_SCOPE_INSUFFICIENT`, `SERVICE_DISABLED`.
    pub detail_reasons: Vec<String>,
    /// `error.details[].metadata.activationUrl`, when Google gives the enable-the-API link.
    pub activation_url: Option<String>,
    /// False when the body was not Google's error JSON (then `message` is a cut of the body).
    pub parsed: bool,
}

impl ApiError {
    /// Parses an error body; never fails: a body that is not Google's shape becomes a
    /// non-`parsed` error whose message is the start of the body.
    pub fn parse(body: &[u8]) -> ApiError {
        let value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let Some(error) = value.as_ref().and_then(|v| v.get("error")).filter(|e| e.is_object()) else {
            return ApiError { message: snippet(body), ..ApiError::default() };
        };
        let text = |v: Option<&serde_json::Value>| v.and_then(serde_json::Value::as_str).map(str::to_owned);
        let list = |key: &str| error.get(key).and_then(serde_json::Value::as_array).cloned().unwrap_or_default();
        let reasons = list("errors").iter().filter_map(|e| text(e.get("reason"))).collect();
        let details = list("details");
        let detail_reasons = details.iter().filter_map(|d| text(d.get("reason"))).collect();
        let activation_url = details.iter().find_map(|d| text(d.get("metadata").and_then(|m| m.get("activationUrl"))));
        ApiError {
            message: text(error.get("message")).unwrap_or_default(),
            status: text(error.get("status")),
            reasons,
            detail_reasons,
            activation_url,
            parsed: true,
        }
    }

    /// True when any reason or the status equals `name`.
    pub fn has(&self, name: &str) -> bool {
        self.reasons.iter().chain(&self.detail_reasons).chain(&self.status).any(|r| r == name)
    }

    /// The most specific reason for the server reply: `errors[0].reason`, else a details
    /// reason, else the status.
    pub fn primary_reason(&self) -> Option<&str> {
        self.reasons.first().or(self.detail_reasons.first()).or(self.status.as_ref()).map(String::as_str)
    }

    /// The link that enables the API: `activationUrl`, or the first `https://` URL in the message.
    pub fn enable_link(&self) -> Option<String> {
        self.activation_url.clone().or_else(|| first_url(&self.message))
    }
}

/// An OAuth2 error body from the token endpoint (`{"error","error_description"}`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenErrorBody {
    /// `error`, e.g. `invalid_grant`; empty when the body is not OAuth2 error JSON.
    pub error: String,
    /// `error_description`, or a cut of the body.
    pub description: String,
}

impl TokenErrorBody {
    /// Parses an error body; never fails.
    pub fn parse(body: &[u8]) -> TokenErrorBody {
        let value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        match value.as_ref().and_then(|v| v.get("error")).and_then(serde_json::Value::as_str) {
            Some(error) => TokenErrorBody {
                error: error.to_owned(),
                description: value
                    .as_ref()
                    .and_then(|v| v.get("error_description"))
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            },
            None => TokenErrorBody { error: String::new(), description: snippet(body) },
        }
    }
}

/// What went wrong talking to Google.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GmailError {
    /// DNS failure, connection refused or unreachable, connect timeout.
    #[error("cannot connect to the {endpoint} at {url}: {reason}")]
    Connect {
        /// The endpoint.
        endpoint: Endpoint,
        /// Its URL (never carries a secret).
        url: String,
        /// What the network said.
        reason: String,
    },
    /// The server at an https:// endpoint does not speak TLS (plain HTTP or another protocol
    /// on that port, or something in between answering in cleartext).
    #[error("the {endpoint} at {url} did not answer in TLS: {reason}")]
    NotTls {
        /// The endpoint.
        endpoint: Endpoint,
        /// Its URL.
        url: String,
        /// What rustls said.
        reason: String,
    },
    /// The TLS handshake failed (untrusted, expired or wrong-host certificate, or another
    /// handshake failure such as no common protocol version).
    #[error("the TLS handshake with the {endpoint} at {url} failed: {reason}")]
    Tls {
        /// The endpoint.
        endpoint: Endpoint,
        /// Its URL.
        url: String,
        /// What rustls said.
        reason: String,
    },
    /// Connected, but no answer within the deadline (before anything was handed over).
    #[error("no answer from the {endpoint} at {url} within {} s", limit.as_secs_f32())]
    Timeout {
        /// The endpoint.
        endpoint: Endpoint,
        /// Its URL.
        url: String,
        /// The deadline.
        limit: Duration,
    },
    /// The connection failed or timed out while the message was being uploaded or after it
    /// was, before Gmail's answer: the message may have been sent.
    #[error(
        "the upload to {url} ended without an answer from Gmail ({reason}): the message may or may not have been sent"
    )]
    LostAfterUpload {
        /// The send URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// Gmail answered 2xx to the upload, but its reply cannot be read as a receipt (no
    /// message id, not JSON): the message was probably sent.
    #[error("Gmail answered {status} (accepted) but {what}: the message was probably sent")]
    AcceptedUnconfirmed {
        /// HTTP status.
        status: u16,
        /// What was wrong with the reply (scrubbed).
        what: String,
    },
    /// An `http://` endpoint whose host is, or resolves to, an address off loopback: refused
    /// before connecting (cleartext is allowed only to this machine).
    #[error("refused to send to the {endpoint} at {url}: {reason}")]
    NotLoopback {
        /// The endpoint.
        endpoint: Endpoint,
        /// Its URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The connection broke during a request that carried no message (token, probe).
    #[error("the connection to the {endpoint} at {url} broke: {reason}")]
    Network {
        /// The endpoint.
        endpoint: Endpoint,
        /// Its URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The token endpoint refused the grant with an OAuth2 error.
    #[error("the Google token endpoint refused the request: HTTP {status} {}{}", body.error, if body.description.is_empty() { String::new() } else { format!(": {}", body.description) })]
    TokenRefused {
        /// HTTP status.
        status: u16,
        /// The parsed body (secrets already scrubbed).
        body: TokenErrorBody,
    },
    /// The Gmail API answered with an error.
    #[error("the Gmail API answered HTTP {status}{}: {}", error.primary_reason().map(|r| format!(" {r}")).unwrap_or_default(), error.message)]
    Api {
        /// HTTP status.
        status: u16,
        /// The parsed body (secrets already scrubbed).
        error: Box<ApiError>,
        /// The back-off the server asked for (Retry-After header or "Retry after `<time>`").
        retry_after: Option<Duration>,
        /// The RFC 3339 time from "Retry after `<time>`", as Google wrote it.
        retry_at: Option<String>,
    },
    /// An answer that is not what the endpoint should send (garbage, truncated, wrong shape).
    #[error("unexpected answer from the {endpoint}{}: {what}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Malformed {
        /// The endpoint.
        endpoint: Endpoint,
        /// HTTP status, when one arrived.
        status: Option<u16>,
        /// What was wrong, with the start of the body.
        what: String,
    },
    /// The message is over the upload limit; nothing was sent.
    #[error("the message is {size} bytes; the Gmail API accepts at most {limit} bytes (35 MB)")]
    TooLarge {
        /// The upload size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The token file is missing, unreadable or for another OAuth client.
    #[error("cannot use the token file {path}: {reason}")]
    TokenFile {
        /// The path.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The longest cut of a reply body kept in an error.
const SNIPPET_CHARS: usize = 300;

/// The start of a body as text, for errors: lossy UTF-8, whitespace collapsed, cut.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(4 * SNIPPET_CHARS)]);
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match collapsed.char_indices().nth(SNIPPET_CHARS) {
        Some((cut, _)) => format!("{}…", &collapsed[..cut]),
        None if collapsed.is_empty() => "(empty body)".to_owned(),
        None => collapsed,
    }
}

/// Replaces every secret value (of 4 characters or more) found in `text`, in any encoding an
/// echo would use and cut short at the end, with `[redacted]`: a server may echo what it was sent.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    mailroom_core::Scrubber::new(secrets.iter().filter(|s| s.len() >= 4)).scrub(text)
}

/// The reply body as a short single-line snippet, secrets scrubbed from the whole body first
/// (a snippet cut inside an echoed secret would keep part of it).
pub(crate) fn scrubbed_snippet(body: &[u8], secrets: &[&str]) -> String {
    snippet(scrub(&String::from_utf8_lossy(body), secrets).as_bytes())
}

fn first_url(text: &str) -> Option<String> {
    let start = text.find("https://")?;
    let url: String =
        text[start..].chars().take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '<' | '>')).collect();
    Some(url.trim_end_matches(['.', ',', ')', ';']).to_owned())
}

/// The back-off in Google's "Retry after 2026-03-07T18:03:15.961Z" message, from `now`,
/// with the time as written.
pub(crate) fn retry_after_in_message(message: &str, now: SystemTime) -> Option<(Duration, String)> {
    let lower = message.to_ascii_lowercase();
    let start = lower.find("retry after ")? + "retry after ".len();
    let stamp: String = message[start..].chars().take_while(|c| !c.is_whitespace()).collect();
    let stamp = stamp.trim_end_matches(['.', ',', ';']).to_owned();
    let at = time::OffsetDateTime::parse(&stamp, &time::format_description::well_known::Rfc3339).ok()?;
    let wait = SystemTime::from(at).duration_since(now).unwrap_or(Duration::ZERO).min(mailroom_http::MAX_BACKOFF);
    Some((wait, stamp))
}

/// The `Retry-After` header: delay seconds or an HTTP date, bounded (mailroom-http's one parser).
pub(crate) fn retry_after_header(value: &str, now: SystemTime) -> Option<Duration> {
    mailroom_http::retry_after(value, now)
}

/// Issue 10 #8: the refresh tokens of apps left in "Testing" expire after 7 days.
const TESTING_APPS: &str = "If the OAuth consent screen of the Google Cloud project is in \"Testing\" publishing status, Google expires its refresh tokens after 7 days: publish the app (Google Cloud console → APIs & Services → OAuth consent screen → Publish app) so the next refresh token keeps working.";

const RECONNECT: &str = "Run `mailroom connect google --config FILE`, sign in with the Company Email account and click Allow: it stores a new refresh token.";
const SCOPES_THAT_SEND: &[&str] = &[
    "https://www.googleapis.com/auth/gmail.send",
    "https://www.googleapis.com/auth/gmail.compose",
    "https://www.googleapis.com/auth/gmail.modify",
    "https://mail.google.com/",
];

/// True when a granted `scope` list (space-separated) allows `messages.send`.
pub(crate) fn scope_allows_send(scope: &str) -> bool {
    scope.split_whitespace().any(|s| SCOPES_THAT_SEND.contains(&s))
}

impl GmailError {
    /// True when Gmail may already have accepted the message (when the error came from an
    /// upload): the connection was lost after the upload, or Gmail answered 500, 502 or 504.
    pub fn may_have_delivered(&self) -> bool {
        match self {
            GmailError::LostAfterUpload { .. } | GmailError::AcceptedUnconfirmed { .. } => true,
            GmailError::Api { status, .. } => *status >= 500 && *status != 503,
            _ => false,
        }
    }

    /// The core error for this failure; `transcript` is the redacted exchange so far. An
    /// [`GmailError::Api`] reply is taken as the answer to an upload of a real message.
    pub fn into_send_error(self, transcript: Transcript) -> SendError {
        self.classify(transcript, true)
    }

    /// [`GmailError::into_send_error`] for the code exchange of `mailroom connect google`:
    /// there, `invalid_grant` means the authorization code was used already or did not match
    /// the PKCE verifier, not that a stored refresh token expired (issue 10 #7).
    pub(crate) fn into_consent_error(self, transcript: Transcript) -> SendError {
        match &self {
            GmailError::TokenRefused { status, body } if body.error == "invalid_grant" => {
                let reply = ServerReply::http(*status, Some("invalid_grant"), body.description.clone());
                let error = SendError::new(ErrorKind::OauthReconnectRequired, self.to_string())
                    .with_field(Field::EmailServicesRefreshToken)
                    .with_reply(reply)
                    .with_hint("Google refused the authorization code from this sign-in: a code works once and only with the link it came from (a reloaded or older tab sends a used one, or one whose PKCE challenge belongs to another run). Run `mailroom connect google --config FILE` again, open the newest link it prints, and sign in once without reloading the page.")
                    .with_hint("Nothing was stored and nothing in the config file needs changing.")
                    .with_complete_hints();
                let error = if transcript.is_empty() { error } else { error.with_transcript(transcript) };
                error.with_source(self)
            }
            _ => self.into_send_error(transcript),
        }
    }

    /// [`GmailError::into_send_error`] for the diagnose probe, whose upload cannot deliver
    /// anything (no Sent-folder advice).
    pub(crate) fn into_probe_error(self, transcript: Transcript) -> SendError {
        self.classify(transcript, false)
    }

    fn classify(self, transcript: Transcript, carried_message: bool) -> SendError {
        self.classify_kind(transcript, carried_message).with_service(mailroom_core::ServiceKind::EmailServices)
    }

    fn classify_kind(self, transcript: Transcript, carried_message: bool) -> SendError {
        let detail = self.to_string();
        let error = match &self {
            GmailError::Connect { endpoint, url, .. } => SendError::new(ErrorKind::ConnectFailed, detail)
                .with_field(endpoint.field())
                .with_hint(format!(
                    "Check {} = {url}: it must be reachable from this machine (the default is {}); check the proxy and firewall settings for outgoing HTTPS.",
                    endpoint.field(),
                    endpoint.default_value()
                )),
            GmailError::NotTls { endpoint, url, .. } => SendError::new(ErrorKind::TlsMismatch, detail)
                .with_field(endpoint.field())
                .with_hint(format!(
                    "{} = {url} is an https:// address, but the server there answered without TLS: check the URL (scheme, host and port; the default is {}), or whether a proxy or captive portal on this network answers in its place.",
                    endpoint.field(),
                    endpoint.default_value()
                )),
            // [email_services] has no ca_file: mailroom trusts the public web PKI for Google's
            // endpoints, so the advice is about the URL and whatever intercepts the traffic.
            GmailError::Tls { endpoint, url, .. } => SendError::new(ErrorKind::TlsCertificate, detail)
                .with_field(endpoint.field())
                .with_hint(format!(
                    "The server at {} = {url} did not present a certificate mailroom trusts: check the URL (the default is {}); if a TLS-intercepting proxy sits on this network, it must let Google's hosts through untouched.",
                    endpoint.field(),
                    endpoint.default_value()
                )),
            GmailError::Timeout { endpoint, .. } => SendError::new(ErrorKind::Timeout, detail)
                .with_field(endpoint.field())
                .with_hint(format!(
                    "{} accepted the connection but did not answer: check that it points at Google ({}), or raise email_services.timeout_secs for a slow proxy.",
                    endpoint.field(),
                    endpoint.default_value()
                )),
            GmailError::LostAfterUpload { .. } => SendError::new(ErrorKind::DeliveryUnknown, detail).with_hint(
                "Look in the Sent folder of the connected Gmail account before sending again: mailroom does not resend on its own.",
            ),
            GmailError::AcceptedUnconfirmed { .. } => SendError::new(ErrorKind::DeliveryUnknown, detail).with_hint(
                "Look in the Sent folder of the connected Gmail account before sending again: Gmail accepted the upload, and mailroom does not resend on its own.",
            ),
            GmailError::NotLoopback { endpoint, .. } => SendError::new(ErrorKind::InvalidConfig, detail)
                .with_field(endpoint.field())
                .with_hint(format!(
                    "http:// is allowed only to this machine (a loopback address): use https:// for {} (the default is {}).",
                    endpoint.field(),
                    endpoint.default_value()
                )),
            GmailError::Network { .. } => SendError::new(ErrorKind::ServiceUnavailable, detail),
            GmailError::TokenRefused { status, body } => classify_token_error(*status, body, detail),
            GmailError::Api { status, error, retry_after, retry_at } => {
                classify_api_error(*status, error, *retry_after, retry_at.as_deref(), detail, carried_message)
            }
            GmailError::Malformed { endpoint, .. } => SendError::new(ErrorKind::Protocol, detail)
                .with_field(endpoint.field())
                .with_hint(format!(
                    "{} should point at Google ({}); a proxy or captive portal may be answering instead.",
                    endpoint.field(),
                    endpoint.default_value()
                )),
            GmailError::TooLarge { .. } => SendError::new(ErrorKind::MessageTooLarge, detail).with_hint(
                "The Gmail API accepts messages up to 35 MB including attachments (which grow by a third when encoded): send large files as links.",
            ),
            GmailError::TokenFile { .. } => SendError::new(ErrorKind::InvalidConfig, detail)
                .with_field(Field::EmailServicesTokenFile)
                .with_hint(RECONNECT),
        };
        let error = if transcript.is_empty() { error } else { error.with_transcript(transcript) };
        error.with_source(self)
    }
}

/// Classifies a token endpoint error (RFC 6749 §5.2 codes as Google uses them).
fn classify_token_error(status: u16, body: &TokenErrorBody, detail: String) -> SendError {
    let reply =
        ServerReply::http(status, Some(body.error.as_str()).filter(|e| !e.is_empty()), body.description.clone());
    let description = body.description.to_ascii_lowercase();
    let error = match body.error.as_str() {
        "invalid_grant" => SendError::new(ErrorKind::OauthReconnectRequired, detail)
            .with_field(Field::EmailServicesRefreshToken)
            .with_hint(format!("Google no longer accepts the stored refresh token ({}). {RECONNECT}", if body.description.is_empty() { "invalid_grant" } else { body.description.as_str() }))
            .with_hint(TESTING_APPS),
        "deleted_client" => SendError::new(ErrorKind::AuthFailed, detail).with_field(Field::EmailServicesClientId).with_hint(
            "Google says this OAuth client was deleted: create a new OAuth client of type \"Desktop app\" in Google Cloud console → APIs & Services → Credentials (or restore the deleted one there within 30 days), put its client ID and secret in the config, then run `mailroom connect google --config FILE`.",
        ),
        "invalid_client" if description.contains("not found") || description.contains("deleted") => {
            SendError::new(ErrorKind::AuthFailed, detail).with_field(Field::EmailServicesClientId).with_hint(
                "Google does not know this OAuth client: copy the client ID from Google Cloud console → APIs & Services → Credentials (it ends in .apps.googleusercontent.com).",
            )
        }
        "invalid_client" => SendError::new(ErrorKind::AuthFailed, detail)
            .with_field(Field::EmailServicesClientSecret)
            .with_hint("Google refused the client secret: copy it again from Google Cloud console → APIs & Services → Credentials → the OAuth client (or reset it there and update the secret)."),
        "unauthorized_client" => SendError::new(ErrorKind::AuthFailed, detail)
            .with_field(Field::EmailServicesClientId)
            .with_hint(format!("This OAuth client may not use the refresh token: it was issued to another client ID, or the client type does not allow this grant. Use the client ID the token was issued to, or connect again with this one. {RECONNECT}")),
        "invalid_scope" | "access_denied" => SendError::new(ErrorKind::PermissionDenied, detail)
            .with_field(Field::EmailServicesRefreshToken)
            .with_hint(format!("Allow the {} scope on Google's consent screen. {RECONNECT}", crate::connect::GMAIL_SEND_SCOPE)),
        _ => match status {
            429 => SendError::new(ErrorKind::RateLimited, detail),
            500..=599 => SendError::new(ErrorKind::ServiceUnavailable, detail),
            _ => SendError::new(ErrorKind::Protocol, detail).with_field(Field::EmailServicesTokenUri).with_hint(
                "email_services.token_uri should be Google's token endpoint (https://oauth2.googleapis.com/token).",
            ),
        },
    };
    error.with_reply(reply)
}

/// Classifies a Gmail API error reply by reason first, then by HTTP status;
/// `carried_message` when the request uploaded a deliverable message.
fn classify_api_error(
    status: u16,
    api: &ApiError,
    retry_after: Option<Duration>,
    retry_at: Option<&str>,
    detail: String,
    carried_message: bool,
) -> SendError {
    let reply = ServerReply::http(status, api.primary_reason(), api.message.clone());
    let message = api.message.to_ascii_lowercase();
    let throttled = [
        "rateLimitExceeded",
        "userRateLimitExceeded",
        "dailyLimitExceeded",
        "quotaExceeded",
        "RATE_LIMIT_EXCEEDED",
        "RESOURCE_EXHAUSTED",
    ]
    .iter()
    .any(|r| api.has(r));
    // Whether the facade's RetryLayer may send the message again on its own. API errors come
    // from the upload (or the probe's undeliverable one), which carried the whole message:
    // only replies that say Gmail did not take it are safe to resend automatically. 429 and
    // 503 are refusals at the door; a 4xx throttling reason (403 userRateLimitExceeded, still
    // documented by Google) is a refusal too. A 500 backendError, 502 or 504 may come after
    // Gmail stored and sent the message (the gateway or a backend failed on the way back), so
    // those are never retried automatically.
    let temporary = status == 429 || status == 503 || (throttled && (400..500).contains(&status));
    let retry = if temporary { Retry::Temporary { after: retry_after } } else { Retry::Permanent };
    let error = if throttled || status == 429 {
        let mut error = SendError::new(ErrorKind::RateLimited, detail).with_retry(retry);
        if let Some(at) = retry_at {
            error = error.with_hint(format!(
                "Gmail asks to wait until {at} before sending again (the daily sending limit answers the same way)."
            ));
        }
        error
    } else if api.has("accessNotConfigured") || api.has("SERVICE_DISABLED") {
        let link = api.enable_link().unwrap_or_else(|| {
            "https://console.developers.google.com/apis/api/gmail.googleapis.com/overview".to_owned()
        });
        SendError::new(ErrorKind::PermissionDenied, detail)
            .with_field(Field::EmailServicesClientId)
            .with_hint(format!("Enable the Gmail API in the Google Cloud project of this OAuth client: open {link}, click Enable, wait a few minutes, then try again."))
    } else if api.has("insufficientPermissions")
        || api.has("ACCESS_TOKEN_SCOPE_INSUFFICIENT")
        || message.contains("insufficient authentication scopes")
    {
        SendError::new(ErrorKind::PermissionDenied, detail)
            .with_field(Field::EmailServicesRefreshToken)
            .with_hint(format!("The connected account did not grant sending: run `mailroom connect google --config FILE` again and allow \"Send email on your behalf\" ({}).", crate::connect::GMAIL_SEND_SCOPE))
    } else if api.has("failedPrecondition")
        || api.has("FAILED_PRECONDITION")
        || message.contains("mail service not enabled")
    {
        // permission_denied rather than auth_disabled: the credentials are fine, the account
        // lacks the Gmail service, and auth_disabled shows the ERP's "authentication" text and
        // SMTP AUTH advice, which would send the user the wrong way.
        SendError::new(ErrorKind::PermissionDenied, detail)
            .with_field(Field::EmailServicesRefreshToken)
            .with_hint("The connected Google account has no Gmail service: a Google Workspace administrator must turn Gmail on for this user (Admin console → Apps → Google Workspace → Gmail → Service status), or connect an account that has Gmail with `mailroom connect google`.")
    } else if status == 401 || api.has("authError") || api.has("UNAUTHENTICATED") {
        SendError::new(ErrorKind::AuthFailed, detail)
            .with_field(Field::EmailServicesRefreshToken)
            .with_hint(format!("Gmail rejected an access token just issued by email_services.token_uri: check that token_uri and api_base both point at Google. {RECONNECT}"))
    } else if status == 413 || api.has("uploadTooLarge") {
        SendError::new(ErrorKind::MessageTooLarge, detail)
    } else if status == 400
        && (message.contains("recipient")
            || message.contains("to header")
            || message.contains("cc header")
            || message.contains("bcc header"))
    {
        SendError::new(ErrorKind::RecipientRejected, detail)
    } else if status == 403 && api.has("forbidden") && message.contains("delegation denied") {
        SendError::new(ErrorKind::SenderNotAllowed, detail).with_field(Field::EmailAddress)
    } else if status == 403 {
        SendError::new(ErrorKind::PermissionDenied, detail)
    } else if status >= 500 {
        // A 500/502/504 is service_unavailable (DESIGN.md's row for a 5xx backend error, with
        // Gmail's reply kept) rather than delivery_unknown, whose advice speaks of a dropped
        // connection: Gmail did answer, with a failure that may have come before or after the
        // send. It is not retryable (see `temporary`), and the hint below keeps a duplicate
        // from going out by hand.
        SendError::new(ErrorKind::ServiceUnavailable, detail).with_retry(retry)
    } else {
        SendError::new(ErrorKind::Protocol, detail).with_field(Field::EmailServicesApiBase).with_hint(
            "email_services.api_base should be the Gmail API (https://gmail.googleapis.com); a proxy or another service may be answering.",
        )
    };
    let error = if carried_message && status >= 500 && status != 503 {
        error.with_hint(format!(
            "Gmail answered HTTP {status} after receiving the whole message, so it may have been sent anyway: look in the Sent folder of the connected Gmail account before sending it again (mailroom does not resend it on its own)."
        ))
    } else {
        error
    };
    error.with_reply(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_from_message_and_header() {
        let now = SystemTime::from(time::macros::datetime!(2026-03-07 17:48:15.961 UTC));
        let (wait, at) =
            retry_after_in_message("User-rate limit exceeded.  Retry after 2026-03-07T18:03:15.961Z", now).unwrap();
        assert_eq!(wait, Duration::from_secs(900));
        assert_eq!(at, "2026-03-07T18:03:15.961Z");
        assert_eq!(retry_after_header("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after_header("Sat, 07 Mar 2026 17:49:15 GMT", now).map(|d| d.as_secs()), Some(59));
        assert_eq!(retry_after_header("soon", now), None);
        assert_eq!(retry_after_in_message("Retry after yesterday", now), None);
    }

    #[test]
    fn scrub_removes_echoed_secrets() {
        assert_eq!(scrub("bad token abcd1234 here", &["abcd1234", ""]), "bad token [redacted] here");
        assert_eq!(scrub("refresh_token=1%2F%2Fabc&x", &["1//abc"]), "refresh_token=[redacted]&x");
        assert_eq!(scrub("cut here: abcd12", &["abcd1234"]), "cut here: [redacted]", "a secret cut at the end");
        let echo = format!("{}secret-token-value-123", "x".repeat(SNIPPET_CHARS - 10));
        assert!(!scrubbed_snippet(echo.as_bytes(), &["secret-token-value-123"]).contains("secret-to"));
    }

    #[test]
    fn snippets_are_short_and_single_line() {
        let long = "x".repeat(10_000);
        assert!(snippet(long.as_bytes()).chars().count() <= SNIPPET_CHARS + 1);
        assert_eq!(snippet(b"<html>\n <body>Bad\n gateway</body>"), "<html> <body>Bad gateway</body>");
        assert_eq!(snippet(b""), "(empty body)");
    }

    #[test]
    fn enable_link_comes_from_the_message() {
        let api = ApiError {
            message: "Gmail API has not been used in project 42 before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/gmail.googleapis.com/overview?project=42 then retry.".into(),
            ..ApiError::default()
        };
        assert_eq!(
            api.enable_link().as_deref(),
            Some("https://console.developers.google.com/apis/api/gmail.googleapis.com/overview?project=42")
        );
    }

    #[test]
    fn send_capable_scopes() {
        assert!(scope_allows_send("openid https://www.googleapis.com/auth/gmail.send"));
        assert!(scope_allows_send("https://mail.google.com/"));
        assert!(!scope_allows_send("https://www.googleapis.com/auth/gmail.readonly"));
    }
}
