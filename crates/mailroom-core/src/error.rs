//! The error taxonomy every driver maps into: kinds, the ERP's documented errors, server replies, retry status, remediation.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::config::Field;
use crate::provider::Provider;
use crate::transcript::Transcript;

/// What went wrong, independent of the service (CONTRACT: the snake_case names are the JSON `kind`).
///
/// The names come from one place, the variant names in snake_case: serde writes them and
/// strum derives [`ErrorKind::as_str`], `Display`, `FromStr` and [`ErrorKind::ALL`].
///
/// ```
/// use mailroom_core::ErrorKind;
/// assert_eq!(ErrorKind::OauthReconnectRequired.as_str(), "oauth_reconnect_required");
/// assert_eq!("tls_mismatch".parse::<ErrorKind>(), Ok(ErrorKind::TlsMismatch));
/// assert_eq!(ErrorKind::ALL.len(), 19);
/// ```
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::Display,
    strum::VariantArray,
    strum::EnumCount,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// A config field fails validation (including the Exchange domain format).
    InvalidConfig,
    /// DNS failure, connection refused, unreachable, connect timeout.
    ConnectFailed,
    /// Implicit TLS against a STARTTLS port or the reverse; non-TLS bytes in the handshake.
    TlsMismatch,
    /// The server requires TLS (no AUTH before STARTTLS, 530 5.7.0, 451 5.7.3) but SSL is off.
    SecureConnectionRequired,
    /// SSL is on but the server offers no STARTTLS.
    TlsNotSupported,
    /// The server's certificate is untrusted, expired or for another host.
    TlsCertificate,
    /// Credentials rejected (535 5.7.8, 535 5.7.3, 530 5.7.1, HTTP 401).
    AuthFailed,
    /// Gmail with 2-Step Verification refuses the account password (534 5.7.9).
    AppPasswordRequired,
    /// Basic / SMTP AUTH is disabled for the tenant (535 5.7.139), EWS blocked.
    AuthDisabled,
    /// The OAuth refresh token expired or was revoked (`invalid_grant`).
    OauthReconnectRequired,
    /// A scope is missing, the API is disabled, or access is denied.
    PermissionDenied,
    /// The account may not send as the configured sender (550 5.7.60, SendAsDenied).
    SenderNotAllowed,
    /// A recipient was refused (550 5.1.1, ErrorInvalidRecipients).
    RecipientRejected,
    /// The message exceeds the server's size limit (552 5.3.4, HTTP 413).
    MessageTooLarge,
    /// The server is throttling this client (421/451 4.7.x, HTTP 429, ErrorServerBusy).
    RateLimited,
    /// The service is temporarily unavailable (421, 5xx backend error, HTTP 503).
    ServiceUnavailable,
    /// No answer within the operation timeout after connecting.
    Timeout,
    /// A malformed or unexpected reply.
    Protocol,
    /// The connection was lost after the message was handed over, before the final reply.
    DeliveryUnknown,
}

impl ErrorKind {
    /// Every kind, in the order of the design's table (the declaration order).
    pub const ALL: [ErrorKind; <ErrorKind as strum::EnumCount>::COUNT] =
        crate::every_variant(<ErrorKind as strum::VariantArray>::VARIANTS);

    /// The JSON name of this kind.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses a JSON kind name back (used by scenario catalogues).
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        name.parse().ok()
    }

    /// Which of the ERP's documented errors this kind shows as, given the field at fault.
    pub fn documented_error(self, field: Option<&str>) -> Option<DocumentedError> {
        match self {
            ErrorKind::InvalidConfig if field == Some(Field::ExchangeDomain.name()) => {
                Some(DocumentedError::ExchangeDomain)
            }
            ErrorKind::ConnectFailed | ErrorKind::Timeout => Some(DocumentedError::ServerOrPort),
            ErrorKind::TlsMismatch | ErrorKind::SecureConnectionRequired | ErrorKind::TlsNotSupported => {
                Some(DocumentedError::SslSetting)
            }
            ErrorKind::AuthFailed | ErrorKind::AppPasswordRequired | ErrorKind::AuthDisabled => {
                Some(DocumentedError::Authentication)
            }
            _ => None,
        }
    }
}

/// The four errors the ERP's setup guide documents (CONTRACT: the JSON `documented_error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum DocumentedError {
    /// Wrong email/password, or Gmail refusing a normal password.
    Authentication,
    /// Wrong outgoing server or port.
    ServerOrPort,
    /// The SSL setting is wrong.
    SslSetting,
    /// The Exchange domain is not in the form `company.com`.
    ExchangeDomain,
}

impl DocumentedError {
    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A reply from the server, kept whole (all lines of a multi-line SMTP reply).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServerReply {
    /// SMTP reply code or HTTP status.
    pub code: Option<u16>,
    /// Enhanced status code (`5.7.8`) or service error code (`ErrorSendAsDenied`, `invalid_grant`).
    pub enhanced: Option<String>,
    /// The reply text, one line per reply line, codes removed.
    pub text: String,
}

impl ServerReply {
    /// Builds a reply from an SMTP code and its text lines, lifting the enhanced status code
    /// (RFC 3463 `class.subject.detail`) off the first line when present.
    ///
    /// ```
    /// use mailroom_core::ServerReply;
    /// let reply = ServerReply::smtp(535, ["5.7.8 Username and Password not accepted.", "5.7.8  https://support.google.com/mail/?p=BadCredentials"]);
    /// assert_eq!(reply.enhanced.as_deref(), Some("5.7.8"));
    /// assert_eq!(reply.text, "Username and Password not accepted.\nhttps://support.google.com/mail/?p=BadCredentials");
    /// ```
    pub fn smtp<I, S>(code: u16, lines: I) -> ServerReply
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut enhanced: Option<String> = None;
        let mut text_lines = Vec::new();
        for line in lines {
            let line = line.as_ref().trim_end_matches(['\r', '\n']);
            let (status, rest) = split_enhanced_status(line);
            match (status, &enhanced) {
                (Some(status), None) => {
                    enhanced = Some(status.to_owned());
                    text_lines.push(rest.trim().to_owned());
                }
                (Some(status), Some(first)) if status == first => text_lines.push(rest.trim().to_owned()),
                _ => text_lines.push(line.trim().to_owned()),
            }
        }
        ServerReply { code: Some(code), enhanced, text: text_lines.join("\n") }
    }

    /// Builds a reply from an HTTP status, a service error code and a message.
    pub fn http(status: u16, error_code: Option<&str>, text: impl Into<String>) -> ServerReply {
        ServerReply { code: Some(status), enhanced: error_code.map(str::to_owned), text: text.into() }
    }

    /// The reply as one line, as the ERP quotes it: `5.7.8 Username and Password not accepted. …`.
    pub fn one_line(&self) -> String {
        let text = self.text.split('\n').map(str::trim).filter(|l| !l.is_empty());
        let text = text.collect::<Vec<_>>().join(" ");
        match &self.enhanced {
            Some(enhanced) if !text.is_empty() => format!("{enhanced} {text}"),
            Some(enhanced) => enhanced.clone(),
            None => text,
        }
    }
}

impl fmt::Display for ServerReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "{code} {}", self.one_line()),
            None => f.write_str(&self.one_line()),
        }
    }
}

/// Splits `5.7.8 text` into (`5.7.8`, `text`) when the line starts with an RFC 3463 status.
fn split_enhanced_status(line: &str) -> (Option<&str>, &str) {
    let token_end = line.find(' ').unwrap_or(line.len());
    let token = &line[..token_end];
    let parts: Vec<&str> = token.split('.').collect();
    let is_status = parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|part| !part.is_empty() && part.len() <= 3 && part.bytes().all(|b| b.is_ascii_digit()));
    if is_status { (Some(token), &line[token_end..]) } else { (None, line) }
}

/// Whether trying again may help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// The same request will fail the same way until something is changed.
    Permanent,
    /// The condition is temporary; `after` is the server's back-off hint, if it gave one.
    Temporary {
        /// How long the server asked us to wait.
        after: Option<Duration>,
    },
}

impl Retry {
    /// The default for a kind: throttling and unavailability are temporary, the rest permanent.
    pub fn default_for(kind: ErrorKind) -> Retry {
        match kind {
            ErrorKind::RateLimited | ErrorKind::ServiceUnavailable | ErrorKind::ConnectFailed => {
                Retry::Temporary { after: None }
            }
            _ => Retry::Permanent,
        }
    }

    /// True for [`Retry::Temporary`].
    pub fn is_temporary(self) -> bool {
        matches!(self, Retry::Temporary { .. })
    }
}

/// Which service type a config or error belongs to (CONTRACT: the JSON `service`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum ServiceKind {
    /// Web Mail (SMTP).
    WebMail,
    /// Exchange (EWS).
    Exchange,
    /// Email Services (Gmail API).
    EmailServices,
}

impl ServiceKind {
    /// The config/JSON name (`web_mail`, `exchange`, `email_services`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A failed send, probe or validation, classified into one [`ErrorKind`].
///
/// It says what went wrong (`kind`), which config field to change (`field`), what the server
/// said (`server_reply`), whether retrying may help (`retry`), and how to fix it
/// ([`SendError::remediation`]). It never holds a secret.
///
/// ```
/// use mailroom_core::{ErrorKind, SendError, ServerReply, DocumentedError, config::Field};
/// let err = SendError::new(ErrorKind::AppPasswordRequired, "Gmail refused the account password")
///     .with_field(Field::WebMailPassword)
///     .with_reply(ServerReply::smtp(534, ["5.7.9 Application-specific password required."]));
/// assert_eq!(err.documented_error(), Some(DocumentedError::Authentication));
/// assert!(err.user_message().contains("The server response was: 5.7.9 Application-specific password required."));
/// assert!(err.remediation().iter().any(|step| step.contains("App passwords")));
/// ```
pub struct SendError(Box<Details>);

/// The fields of a [`SendError`], boxed so `Result<_, SendError>` stays one pointer wide.
struct Details {
    kind: ErrorKind,
    field: Option<Field>,
    server_reply: Option<ServerReply>,
    retry: Retry,
    detail: String,
    hints: Vec<String>,
    /// The hints are the whole remediation: the generic advice of the kind would not fit.
    hints_complete: bool,
    provider: Option<Provider>,
    /// The service that failed, when the driver said so (else the service `field` belongs to).
    service: Option<ServiceKind>,
    transcript: Option<Transcript>,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl SendError {
    /// A new error of `kind`; `detail` says in one sentence what happened.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> SendError {
        SendError(Box::new(Details {
            kind,
            field: None,
            server_reply: None,
            retry: Retry::default_for(kind),
            detail: detail.into(),
            hints: Vec::new(),
            hints_complete: false,
            provider: None,
            service: None,
            transcript: None,
            source: None,
        }))
    }

    /// An `invalid_config` error for one field.
    ///
    /// ```
    /// use mailroom_core::{ErrorKind, SendError, config::Field};
    /// let error = SendError::invalid_config(Field::WebMailPort, "must be a number");
    /// assert_eq!((error.kind(), error.field()), (ErrorKind::InvalidConfig, Some("web_mail.port")));
    /// ```
    pub fn invalid_config(field: Field, detail: impl Into<String>) -> SendError {
        SendError::new(ErrorKind::InvalidConfig, detail).with_field(field)
    }

    /// Names the config field to change; a typed [`Field`], so a misspelt name does not compile.
    pub fn with_field(mut self, field: Field) -> Self {
        self.0.field = Some(field);
        self
    }

    /// Attaches the server's reply.
    pub fn with_reply(mut self, reply: ServerReply) -> Self {
        self.0.server_reply = Some(reply);
        self
    }

    /// Overrides the retry status.
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.0.retry = retry;
        self
    }

    /// Adds a remediation step specific to this situation; shown before the generic steps.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.0.hints.push(hint.into());
        self
    }

    /// A copy of this error for another caller that waited on the same operation (the
    /// underlying `source` is summarised in the detail rather than shared).
    pub fn copy_for_waiter(&self) -> SendError {
        SendError(Box::new(Details {
            kind: self.0.kind,
            field: self.0.field,
            server_reply: self.0.server_reply.clone(),
            retry: self.0.retry,
            detail: self.0.detail.clone(),
            hints: self.0.hints.clone(),
            hints_complete: self.0.hints_complete,
            provider: self.0.provider,
            service: self.0.service,
            transcript: self.0.transcript.clone(),
            source: None,
        }))
    }

    /// Makes the hints the whole remediation, without the kind's generic advice: for errors
    /// outside sending (a sign-in flow, say) where advice about mail servers would mislead.
    pub fn with_complete_hints(mut self) -> Self {
        self.0.hints_complete = true;
        self
    }

    /// Records the provider the config points at, for provider-specific remediation.
    pub fn with_provider(mut self, provider: Option<Provider>) -> Self {
        self.0.provider = provider;
        self
    }

    /// Says which service failed; drivers set it so advice never depends on a field name.
    pub fn with_service(mut self, service: ServiceKind) -> Self {
        self.0.service = Some(service);
        self
    }

    /// Attaches the (already redacted) session transcript.
    pub fn with_transcript(mut self, transcript: Transcript) -> Self {
        self.0.transcript = Some(transcript);
        self
    }

    /// Attaches the underlying cause. Its Display text must not contain secrets.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.0.source = Some(Box::new(source));
        self
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The dotted config field to change, e.g. `web_mail.port`.
    pub fn field(&self) -> Option<&'static str> {
        self.0.field.map(Field::name)
    }

    /// The config field to change, typed (its [`Field::name`] is [`SendError::field`]).
    pub fn config_field(&self) -> Option<Field> {
        self.0.field
    }

    /// What the server answered, if it answered.
    pub fn server_reply(&self) -> Option<&ServerReply> {
        self.0.server_reply.as_ref()
    }

    /// Whether trying again may help.
    pub fn retry(&self) -> Retry {
        self.0.retry
    }

    /// The specific explanation of what happened.
    pub fn detail(&self) -> &str {
        &self.0.detail
    }

    /// The provider recognised from the config, if any.
    pub fn provider(&self) -> Option<Provider> {
        self.0.provider
    }

    /// The service that failed: as the driver said ([`SendError::with_service`]), else the
    /// service of the typed field to change ([`Field::service`]: `exchange.uri` → Exchange),
    /// else `None`.
    ///
    /// ```
    /// use mailroom_core::{ErrorKind, SendError, ServiceKind, config::Field};
    /// let error = SendError::new(ErrorKind::Timeout, "no answer").with_service(ServiceKind::Exchange);
    /// assert_eq!(error.service(), Some(ServiceKind::Exchange));
    /// let guessed = SendError::new(ErrorKind::Timeout, "no answer").with_field(Field::WebMailServer);
    /// assert_eq!(guessed.service(), Some(ServiceKind::WebMail));
    /// ```
    pub fn service(&self) -> Option<ServiceKind> {
        self.0.service.or_else(|| self.0.field.and_then(Field::service))
    }

    /// The redacted session transcript, if the driver recorded one.
    pub fn transcript(&self) -> Option<&Transcript> {
        self.0.transcript.as_ref()
    }

    /// Which documented ERP error this is, if any.
    pub fn documented_error(&self) -> Option<DocumentedError> {
        self.0.kind.documented_error(self.field())
    }

    /// The message the ERP shows: the documented text for the four documented errors
    /// (with the server's reply filled in), a plain sentence for the rest.
    pub fn user_message(&self) -> String {
        let reply = self.0.server_reply.as_ref().map(ServerReply::one_line);
        match self.documented_error() {
            Some(DocumentedError::Authentication) => {
                let mut text = String::from(
                    "Cannot complete the request. Cannot send a test mail. The SMTP server required a secure connection or the client was not authenticated.",
                );
                if let Some(reply) = reply.filter(|r| !r.is_empty()) {
                    text.push_str(" The server response was: ");
                    text.push_str(reply.trim_end_matches('.'));
                    text.push('.');
                }
                text.push_str(" Please try again.");
                text
            }
            Some(DocumentedError::ServerOrPort) => {
                "Cannot complete the request. Cannot send a test mail. Failure sending mail. Please try again".to_owned()
            }
            Some(DocumentedError::SslSetting) => {
                "Cannot complete the request. Cannot test mail. The SMTP server requires a secure connection or the client was not authenticated.".to_owned()
            }
            Some(DocumentedError::ExchangeDomain) => {
                format!("The Exchange domain must be in the form company.com. {}", self.0.detail)
            }
            None => self.0.detail.clone(),
        }
    }

    /// Concrete steps that fix the problem, most specific first.
    pub fn remediation(&self) -> Vec<String> {
        let mut steps = self.0.hints.clone();
        if self.0.hints_complete && !steps.is_empty() {
            return steps;
        }
        let field = self.field().unwrap_or("the config");
        let preset = self.0.provider.map(Provider::preset);
        let mut push = |step: String| {
            if !steps.contains(&step) {
                steps.push(step);
            }
        };
        // HTTP services get their own advice where the SMTP wording (ports, STARTTLS) would mislead.
        if let Some(advice) = http_service_advice(self.0.kind, self.service()) {
            advice.into_iter().for_each(&mut push);
            return steps;
        }
        match self.0.kind {
            ErrorKind::InvalidConfig => push(format!("Change {field}: {}", self.0.detail)),
            ErrorKind::ConnectFailed => {
                push("Check the outgoing server name for typos (e.g. smtp.gmail.com, smtp.office365.com) and that it resolves from this machine.".into());
                push(
                    "Check the port: 587 (STARTTLS, Enable SSL on), 465 (implicit TLS), 25 or 2525 (plain relay)."
                        .into(),
                );
                push(
                    "Check that a firewall or the hosting provider does not block outgoing connections to that port."
                        .into(),
                );
            }
            ErrorKind::Timeout => {
                push("The server accepted the connection but stopped answering: port 465 expects implicit TLS (tls = \"implicit\"), port 587 expects STARTTLS (tls = \"starttls\").".into());
                push("Check that the server and port point at a mail server, and that no firewall swallows the traffic; raise timeout_secs only for a known slow server.".into());
            }
            ErrorKind::TlsMismatch => {
                push("Match the SSL setting to the port: 465 needs implicit TLS (tls = \"implicit\"), 587 needs STARTTLS (enable_ssl = true, tls = \"starttls\" or unset).".into());
                push("Run `mailroom diagnose --config FILE` to try the usual port/TLS combinations and see which one the server answers.".into());
            }
            ErrorKind::SecureConnectionRequired => {
                push("Turn Enable SSL on (enable_ssl = true): the server accepts the login only over an encrypted connection (STARTTLS on 587, implicit TLS on 465).".into());
            }
            ErrorKind::TlsNotSupported => {
                push("The server offers no encryption on this port: check the server name and port (587 with STARTTLS, 465 with implicit TLS).".into());
                push("Only for a trusted internal relay: turn Enable SSL off (enable_ssl = false), and set allow_plaintext_auth = true if it needs a password.".into());
            }
            ErrorKind::TlsCertificate => {
                push("Use the server name the certificate is issued for (the provider's documented SMTP host, not an IP address or alias).".into());
                push(
                    "If the server uses your company's own certificate authority, set ca_file to that CA's PEM file."
                        .into(),
                );
            }
            ErrorKind::AuthFailed => {
                if let Some(preset) = preset {
                    push(preset.password_advice.to_owned());
                }
                push("Check the user name (usually the full email address) and the password; re-type the password, watching for spaces and the keyboard layout.".into());
            }
            ErrorKind::AppPasswordRequired => {
                let advice = preset
                    .filter(|p| p.provider != Provider::Office365)
                    .map(|p| p.password_advice)
                    .unwrap_or(Provider::Gmail.preset().password_advice);
                push(advice.to_owned());
                push("Keep the user name as the full email address; only the password changes.".into());
            }
            ErrorKind::AuthDisabled => {
                push("An administrator must enable SMTP AUTH for this mailbox: Microsoft 365 admin center → Users → Active users → select the user → Mail → Manage email apps → tick Authenticated SMTP → Save (tenant-wide: Set-TransportConfig -SmtpClientAuthenticationDisabled $false). See https://aka.ms/smtp_auth_disabled.".into());
                push("If your organisation keeps basic authentication off, use Email Services (OAuth) or Exchange with auth = \"oauth\" instead.".into());
            }
            ErrorKind::OauthReconnectRequired => {
                push("Run `mailroom connect google --config FILE`, sign in with the Company Email account and click Allow; the new refresh token replaces the expired one.".into());
            }
            ErrorKind::PermissionDenied => {
                push("Grant the missing permission: for Gmail, allow the https://www.googleapis.com/auth/gmail.send scope and enable the Gmail API in the Google Cloud project; for Exchange, give the account rights to the mailbox.".into());
            }
            ErrorKind::SenderNotAllowed => {
                push("Use the mailbox you sign in with as the Company Email address (email_address = user name), or ask an administrator to grant the signing-in account Send As permission on the Company Email address.".into());
            }
            ErrorKind::RecipientRejected => {
                push("Check the recipient address for typos; the server says this mailbox does not exist or does not accept mail.".into());
            }
            ErrorKind::MessageTooLarge => {
                push("Make the message smaller (fewer or smaller attachments) than the server's size limit; attachments grow by a third when encoded.".into());
            }
            ErrorKind::RateLimited => {
                push("The server is throttling this account: wait before sending more (mailroom honours the server's back-off hint) or spread the sends out.".into());
            }
            ErrorKind::ServiceUnavailable if !self.0.retry.is_temporary() => {
                push("The server failed after it had the whole message: check whether it went out (Sent folder, or ask the recipient) before sending it again; nothing needs changing in the config.".into());
            }
            ErrorKind::ServiceUnavailable => {
                push("The service is temporarily unavailable: try again in a few minutes; nothing needs changing in the config.".into());
            }
            ErrorKind::Protocol => {
                push("The server answered something a mail server would not: check that the server and port point at the mail service (see the transcript).".into());
            }
            ErrorKind::DeliveryUnknown => {
                push("The connection dropped after the message was handed over: it may already have been delivered. Check the recipient or the Sent folder before sending again; mailroom does not resend it on its own.".into());
            }
        }
        steps
    }
}

impl fmt::Debug for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("kind", &self.0.kind)
            .field("field", &self.field())
            .field("detail", &self.0.detail)
            .field("server_reply", &self.0.server_reply)
            .field("retry", &self.0.retry)
            .field("source", &self.0.source.as_ref().map(|s| s.to_string()))
            .finish_non_exhaustive()
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.kind, self.0.detail)?;
        if let Some(field) = self.field() {
            write!(f, " (field {field})")?;
        }
        if let Some(reply) = &self.0.server_reply {
            write!(f, "; server replied: {reply}")?;
        }
        Ok(())
    }
}

impl StdError for SendError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source.as_deref().map(|s| s as &(dyn StdError + 'static))
    }
}

/// The serialisable view of a [`SendError`]: the `error` object of the CLI's JSON contract.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorReport {
    /// The kind.
    pub kind: ErrorKind,
    /// The documented ERP error, or null.
    pub documented_error: Option<DocumentedError>,
    /// The config field to change, or null.
    pub field: Option<&'static str>,
    /// The ERP's message.
    pub message: String,
    /// What happened, specifically.
    pub detail: String,
    /// Steps that fix it.
    pub remediation: Vec<String>,
    /// Whether retrying may help.
    pub retryable: bool,
    /// The server's back-off hint, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// The server's reply, or null.
    pub server_reply: Option<ServerReply>,
    /// The redacted session transcript, when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcript: Option<Transcript>,
}

impl SendError {
    /// The JSON view of this error.
    pub fn report(&self) -> ErrorReport {
        let retry_after_ms = match self.0.retry {
            Retry::Temporary { after: Some(after) } => Some(after.as_millis() as u64),
            _ => None,
        };
        ErrorReport {
            kind: self.0.kind,
            documented_error: self.documented_error(),
            field: self.field(),
            message: self.user_message(),
            detail: self.0.detail.clone(),
            remediation: self.remediation(),
            retryable: self.0.retry.is_temporary(),
            retry_after_ms,
            server_reply: self.0.server_reply.clone(),
            transcript: self.0.transcript.clone(),
        }
    }
}

/// Advice for an Exchange or Email Services error (told by [`SendError::service`]) whose
/// kind's generic advice is about SMTP; `None` where the generic advice fits.
fn http_service_advice(kind: ErrorKind, service: Option<ServiceKind>) -> Option<Vec<String>> {
    let service = match service {
        Some(service @ (ServiceKind::Exchange | ServiceKind::EmailServices)) => service,
        _ => return None,
    };
    let endpoint = match service {
        ServiceKind::Exchange => "the EWS URL (exchange.uri)",
        // Gmail and Graph are both Email Services and core cannot tell them apart here, so the
        // advice names each provider's keys rather than guessing (Microsoft users were told
        // about Google's endpoints).
        _ => "the provider's endpoints (email_services.api_base, and token_uri for Google or authority for Microsoft)",
    };
    let advice = match (kind, service) {
        (ErrorKind::ConnectFailed | ErrorKind::Timeout, _) => vec![
            format!(
                "Check {endpoint}: the host must resolve from this machine and answer HTTPS (port 443 unless the URL names another)."
            ),
            "Check that a firewall or proxy does not block outgoing HTTPS from this machine; raise timeout_secs only for a known slow server.".into(),
        ],
        (ErrorKind::TlsMismatch, _) => vec![format!(
            "Check {endpoint}: an https:// URL must point at a server speaking HTTPS, not plain HTTP (or another protocol) on that port."
        )],
        (ErrorKind::TlsCertificate, ServiceKind::Exchange) => vec!["Use the host name the server's certificate is issued for; if it uses your company's own certificate authority, set exchange.ca_file to that CA's PEM file.".into()],
        (ErrorKind::TlsCertificate, _) => vec![format!(
            "Check {endpoint}: Google's and Microsoft's endpoints carry publicly trusted certificates, so an untrusted one means the URL points elsewhere or a TLS-inspecting proxy sits in between; let it pass the provider's hosts through untouched."
        )],
        (ErrorKind::AuthDisabled, ServiceKind::Exchange) => vec!["Basic authentication is off for this Exchange server (Exchange Online turned it off for EWS in 2022): set auth = \"oauth\" with client_id, tenant and client_secret_env from an Entra ID app registration that has the full_access_as_app permission, or, on premises, ask an administrator to enable Basic authentication on the EWS virtual directory.".into()],
        (ErrorKind::Protocol, _) => vec![format!(
            "The server answered something the service would not: check {endpoint} (see the transcript)."
        )],
        _ => return None,
    };
    Some(advice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_json_names() {
        for kind in ErrorKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(ErrorKind::from_name(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn documented_error_mapping_follows_the_design_table() {
        use DocumentedError::*;
        let expected = [
            (ErrorKind::InvalidConfig, None),
            (ErrorKind::ConnectFailed, Some(ServerOrPort)),
            (ErrorKind::TlsMismatch, Some(SslSetting)),
            (ErrorKind::SecureConnectionRequired, Some(SslSetting)),
            (ErrorKind::TlsNotSupported, Some(SslSetting)),
            (ErrorKind::TlsCertificate, None),
            (ErrorKind::AuthFailed, Some(Authentication)),
            (ErrorKind::AppPasswordRequired, Some(Authentication)),
            (ErrorKind::AuthDisabled, Some(Authentication)),
            (ErrorKind::OauthReconnectRequired, None),
            (ErrorKind::PermissionDenied, None),
            (ErrorKind::SenderNotAllowed, None),
            (ErrorKind::RecipientRejected, None),
            (ErrorKind::MessageTooLarge, None),
            (ErrorKind::RateLimited, None),
            (ErrorKind::ServiceUnavailable, None),
            (ErrorKind::Timeout, Some(ServerOrPort)),
            (ErrorKind::Protocol, None),
            (ErrorKind::DeliveryUnknown, None),
        ];
        assert_eq!(expected.len(), ErrorKind::ALL.len());
        for (kind, documented) in expected {
            assert_eq!(kind.documented_error(Some("web_mail.server")), documented, "{kind}");
        }
        assert_eq!(ErrorKind::InvalidConfig.documented_error(Some("exchange.domain")), Some(ExchangeDomain));
        assert_eq!(ErrorKind::InvalidConfig.documented_error(Some("exchange.uri")), None);
    }

    #[test]
    fn documented_messages_are_the_erp_texts() {
        let auth = SendError::new(ErrorKind::AuthFailed, "rejected")
            .with_reply(ServerReply::smtp(530, ["5.7.1 Authentication Required"]));
        assert_eq!(
            auth.user_message(),
            "Cannot complete the request. Cannot send a test mail. The SMTP server required a secure connection or the client was not authenticated. The server response was: 5.7.1 Authentication Required. Please try again."
        );
        let refused = SendError::new(ErrorKind::ConnectFailed, "refused");
        assert_eq!(
            refused.user_message(),
            "Cannot complete the request. Cannot send a test mail. Failure sending mail. Please try again"
        );
        let ssl = SendError::new(ErrorKind::SecureConnectionRequired, "needs TLS");
        assert_eq!(
            ssl.user_message(),
            "Cannot complete the request. Cannot test mail. The SMTP server requires a secure connection or the client was not authenticated."
        );
        let domain = SendError::invalid_config(
            Field::ExchangeDomain,
            "You entered \"https://company.com/\": enter company.com, not https://company.com/.",
        );
        assert!(domain.user_message().starts_with("The Exchange domain must be in the form company.com."));
        assert!(domain.user_message().contains("https://company.com/"));
    }

    #[test]
    fn multi_line_replies_are_kept_whole() {
        let reply = ServerReply::smtp(
            535,
            [
                "5.7.8 Username and Password not accepted. For more information, go to",
                "5.7.8  https://support.google.com/mail/?p=BadCredentials abc - gsmtp",
            ],
        );
        assert_eq!(reply.enhanced.as_deref(), Some("5.7.8"));
        assert_eq!(
            reply.one_line(),
            "5.7.8 Username and Password not accepted. For more information, go to https://support.google.com/mail/?p=BadCredentials abc - gsmtp"
        );
        assert!(reply.to_string().starts_with("535 5.7.8 Username"));
    }

    #[test]
    fn replies_without_enhanced_codes_stay_as_sent() {
        let reply = ServerReply::smtp(554, ["Transaction failed", "try later"]);
        assert_eq!(reply.enhanced, None);
        assert_eq!(reply.text, "Transaction failed\ntry later");
        let odd = ServerReply::smtp(250, ["5.7 not a status"]);
        assert_eq!(odd.enhanced, None);
    }

    #[test]
    fn every_kind_has_remediation_and_a_message() {
        for kind in ErrorKind::ALL {
            let err = SendError::new(kind, "something specific").with_field(Field::WebMailServer);
            assert!(!err.remediation().is_empty(), "{kind} has no remediation");
            assert!(!err.user_message().is_empty());
            let report = serde_json::to_value(err.report()).unwrap();
            assert_eq!(report["kind"], kind.as_str());
        }
    }

    #[test]
    fn complete_hints_replace_the_generic_advice() {
        let error = SendError::new(ErrorKind::Timeout, "x").with_hint("Open the link before the time runs out.");
        assert!(error.remediation().len() > 1);
        let error = error.with_complete_hints();
        assert_eq!(error.remediation(), ["Open the link before the time runs out."]);
        let after_upload = SendError::new(ErrorKind::ServiceUnavailable, "x").with_retry(Retry::Permanent);
        assert!(!after_upload.remediation().join(" ").contains("try again in a few minutes"));
    }

    #[test]
    fn http_services_get_http_advice_not_smtp_ports() {
        for (kind, field) in [
            (ErrorKind::ConnectFailed, Field::ExchangeUri),
            (ErrorKind::Timeout, Field::EmailServicesApiBase),
            (ErrorKind::TlsMismatch, Field::ExchangeUri),
            (ErrorKind::AuthDisabled, Field::ExchangePassword),
            (ErrorKind::TlsCertificate, Field::EmailServicesTokenUri),
        ] {
            let steps = SendError::new(kind, "x").with_field(field).remediation().join("\n");
            assert!(
                !steps.contains("587") && !steps.contains("STARTTLS") && !steps.contains("SMTP"),
                "{kind:?}: {steps}"
            );
        }
        let smtp =
            SendError::new(ErrorKind::ConnectFailed, "x").with_field(Field::WebMailServer).remediation().join("\n");
        assert!(smtp.contains("587"), "{smtp}");
        let ews =
            SendError::new(ErrorKind::AuthDisabled, "x").with_field(Field::ExchangePassword).remediation().join("\n");
        assert!(ews.contains("auth = \"oauth\""), "{ews}");
        let google =
            SendError::new(ErrorKind::TlsCertificate, "x").with_field(Field::EmailServicesApiBase).remediation();
        assert!(!google.join("\n").contains("ca_file"), "[email_services] has no ca_file: {google:?}");
    }

    #[test]
    fn gmail_remediation_gives_the_app_password_steps() {
        let err = SendError::new(ErrorKind::AuthFailed, "bad credentials").with_provider(Some(Provider::Gmail));
        let steps = err.remediation().join("\n");
        for needle in ["Security", "2-Step Verification", "App passwords", "password field"] {
            assert!(steps.contains(needle), "missing {needle:?} in {steps}");
        }
    }

    #[test]
    fn hints_come_first_and_retry_after_is_reported() {
        let err = SendError::new(ErrorKind::RateLimited, "slow down")
            .with_hint("Wait 5 s")
            .with_retry(Retry::Temporary { after: Some(Duration::from_secs(5)) });
        assert_eq!(err.remediation()[0], "Wait 5 s");
        let report = err.report();
        assert!(report.retryable);
        assert_eq!(report.retry_after_ms, Some(5000));
    }

    #[test]
    fn email_services_advice_does_not_assume_google() {
        for kind in [ErrorKind::ConnectFailed, ErrorKind::TlsCertificate] {
            let advice = SendError::new(kind, "no answer")
                .with_field(Field::EmailServicesApiBase)
                .with_service(ServiceKind::EmailServices)
                .remediation()
                .join(" ");
            assert!(advice.contains("authority for Microsoft"), "{kind}: {advice}");
            assert!(advice.contains("token_uri for Google"), "{kind}: {advice}");
            assert!(!advice.contains("Check Google's endpoints"), "{kind}: {advice}");
        }
    }
}
