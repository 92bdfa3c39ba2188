//! The SMTP driver's own error enum (what failed, at which protocol step) and its mapping into core's `SendError` kinds.

use std::fmt;
use std::time::Duration;

use mailroom_core::config::Field;
use mailroom_core::{ErrorKind, Provider, SendError, SmtpConfig, TlsMode, Transcript};

use crate::reply::{ReadError, Reply};

/// A step of an SMTP session, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// DNS lookup of the server.
    Resolve,
    /// TCP connect.
    Connect,
    /// Implicit TLS handshake, or the handshake after STARTTLS.
    TlsHandshake,
    /// The server's 220 greeting.
    Greeting,
    /// EHLO (before or after TLS).
    Ehlo,
    /// The STARTTLS command.
    StartTls,
    /// AUTH and its challenges.
    Auth,
    /// RSET between messages.
    Rset,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// The DATA command.
    Data,
    /// Sending the message body.
    Body,
    /// The reply to the end of the message.
    FinalReply,
}

impl Step {
    /// A short lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Step::Resolve => "resolve",
            Step::Connect => "connect",
            Step::TlsHandshake => "tls",
            Step::Greeting => "greeting",
            Step::Ehlo => "ehlo",
            Step::StartTls => "starttls",
            Step::Auth => "auth",
            Step::Rset => "rset",
            Step::Mail => "mail",
            Step::Rcpt => "rcpt",
            Step::Data => "data",
            Step::Body => "body",
            Step::FinalReply => "final reply",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What went wrong in an SMTP session.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// The server name does not resolve.
    #[error("the server name {host} does not resolve: {reason}")]
    Resolve {
        /// The host.
        host: String,
        /// The resolver's message.
        reason: String,
    },
    /// TCP connect failed.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// `host:port`.
        target: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A step did not finish within the deadline.
    #[error("no answer within {} s at step {step}", limit.as_secs_f32())]
    Timeout {
        /// The step.
        step: Step,
        /// The deadline.
        limit: Duration,
    },
    /// The server closed the connection.
    #[error("the server closed the connection at step {step}")]
    Closed {
        /// The step.
        step: Step,
    },
    /// A socket error other than a close.
    #[error("network error at step {step}: {reason}")]
    Io {
        /// The step.
        step: Step,
        /// The OS error.
        reason: String,
    },
    /// The TLS handshake failed.
    #[error("the TLS handshake failed: {reason}")]
    Tls {
        /// What rustls said.
        reason: String,
        /// rustls's classification.
        cause: TlsFailure,
    },
    /// The server sent TLS bytes where SMTP text was expected.
    #[error("the server answered with TLS bytes at step {step}: it expects TLS from the first byte")]
    ServerSpeaksTls {
        /// The step.
        step: Step,
    },
    /// The server sent no greeting but completes a TLS handshake: it expects implicit TLS.
    #[error("the server sends no SMTP greeting but answers a TLS handshake: it expects TLS from the first byte")]
    ExpectsTls,
    /// The server's bytes are not SMTP.
    #[error("the server's answer at step {step} is not SMTP: {line:?}")]
    NotSmtp {
        /// The step.
        step: Step,
        /// The offending line, shortened.
        line: String,
    },
    /// The server refused a command.
    #[error("the server refused {step}: {}", reply.lines.join(" "))]
    Refused {
        /// The step.
        step: Step,
        /// The whole reply.
        reply: Reply,
    },
    /// TLS is configured but the server offers no STARTTLS.
    #[error("the server does not offer STARTTLS")]
    StartTlsNotOffered,
    /// A password is configured but the server offers no AUTH on this connection.
    #[error("the server offers no AUTH{}", if *.starttls_offered { " before STARTTLS" } else { "" })]
    NoAuthOffered {
        /// Whether it offered STARTTLS (AUTH usually appears after it).
        starttls_offered: bool,
    },
    /// None of the server's AUTH mechanisms is one we speak.
    #[error("the server offers AUTH {offered} but none of PLAIN, LOGIN, XOAUTH2")]
    NoCommonMechanism {
        /// What it offered.
        offered: String,
    },
    /// Refusing to send a password over an unencrypted connection.
    #[error("refusing to send the password over an unencrypted connection to {host}")]
    PlaintextAuthRefused {
        /// The host.
        host: String,
    },
    /// The message is larger than the server's advertised SIZE.
    #[error("the message is {size} bytes; the server accepts at most {limit}")]
    TooLarge {
        /// Message size.
        size: usize,
        /// The server's SIZE.
        limit: u64,
    },
    /// The extra CA file is unusable.
    #[error("cannot use the CA file {path}: {reason}")]
    CaFile {
        /// The path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The access-token provider failed.
    #[error("could not get an OAuth access token")]
    Token(#[source] Box<SendError>),
}

pub use mailroom_core::trust::TlsFailure;

/// Classifies an I/O error from a tokio-rustls handshake: the rustls error in its chain, or,
/// without one, `InvalidData` (bytes that are not TLS) versus anything else.
pub(crate) fn tls_failure_of(error: &std::io::Error) -> TlsFailure {
    match mailroom_core::trust::find_rustls_error(error) {
        Some(tls) => TlsFailure::of(tls),
        None if error.kind() == std::io::ErrorKind::InvalidData => TlsFailure::NotTls,
        None => TlsFailure::Other,
    }
}

impl SmtpError {
    /// Maps a reply-reading failure at `step` into a driver error.
    pub fn from_read(step: Step, error: ReadError) -> SmtpError {
        match error {
            ReadError::Closed => SmtpError::Closed { step },
            ReadError::TlsRecord => SmtpError::ServerSpeaksTls { step },
            ReadError::Malformed(line) => SmtpError::NotSmtp { step, line },
            ReadError::TooLong => {
                SmtpError::NotSmtp { step, line: "reply longer than 4096 bytes per line or 128 lines".into() }
            }
            ReadError::Io(
                std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::ConnectionAborted,
                _,
            ) => SmtpError::Closed { step },
            ReadError::Io(_, reason) => SmtpError::Io { step, reason },
        }
    }

    /// Maps a write failure at `step`.
    pub fn from_write(step: Step, error: std::io::Error) -> SmtpError {
        use std::io::ErrorKind::*;
        match error.kind() {
            UnexpectedEof | ConnectionReset | BrokenPipe | ConnectionAborted => SmtpError::Closed { step },
            _ => SmtpError::Io { step, reason: error.to_string() },
        }
    }

    /// The step that failed.
    pub fn step(&self) -> Step {
        match self {
            SmtpError::Resolve { .. } => Step::Resolve,
            SmtpError::Connect { .. } => Step::Connect,
            SmtpError::Timeout { step, .. }
            | SmtpError::Closed { step }
            | SmtpError::Io { step, .. }
            | SmtpError::ServerSpeaksTls { step }
            | SmtpError::NotSmtp { step, .. }
            | SmtpError::Refused { step, .. } => *step,
            SmtpError::Tls { .. } | SmtpError::CaFile { .. } => Step::TlsHandshake,
            SmtpError::ExpectsTls => Step::Greeting,
            SmtpError::StartTlsNotOffered => Step::StartTls,
            SmtpError::NoAuthOffered { .. }
            | SmtpError::NoCommonMechanism { .. }
            | SmtpError::PlaintextAuthRefused { .. }
            | SmtpError::Token(_) => Step::Auth,
            SmtpError::TooLarge { .. } => Step::Mail,
        }
    }

    /// True when a fresh connection may succeed where this one failed before the message
    /// was handed over (a pooled connection the server had closed).
    pub fn is_stale_connection(&self) -> bool {
        matches!(
            self,
            SmtpError::Closed { step: Step::Rset | Step::Mail } | SmtpError::Io { step: Step::Rset | Step::Mail, .. }
        )
    }

    /// True when the server may already have accepted the message: anything but a reply
    /// while waiting for the answer to the end of the message.
    pub fn may_have_delivered(&self) -> bool {
        self.step() == Step::FinalReply && !matches!(self, SmtpError::Refused { .. })
    }
}

/// What the classification needs to know about the config.
#[derive(Clone, Debug)]
pub struct Context {
    /// The server name as configured.
    pub server: String,
    /// The port.
    pub port: u16,
    /// The effective TLS mode.
    pub tls: TlsMode,
    /// The recognised provider.
    pub provider: Option<Provider>,
}

impl Context {
    /// Derives the context from a config.
    pub fn of(config: &SmtpConfig) -> Context {
        Context { server: config.server.clone(), port: config.port, tls: config.tls, provider: config.provider() }
    }

    /// With SSL on, a mismatch is fixed by choosing the other TLS mode (`tls`); with SSL off,
    /// by turning it on (`enable_ssl`).
    fn tls_field(&self) -> Field {
        if self.tls == TlsMode::None { Field::WebMailEnableSsl } else { Field::WebMailTls }
    }

    /// The likely fix for a TLS mismatch, given the port and mode.
    fn tls_mismatch_hint(&self) -> String {
        match (self.tls, self.port) {
            (TlsMode::Implicit, _) => format!("Port {} does not start with TLS (it sends a plain SMTP greeting): set tls = \"starttls\" (or remove tls and keep enable_ssl = true), or use port 465 for implicit TLS.", self.port),
            (_, 465) => "Port 465 expects implicit TLS from the first byte: set tls = \"implicit\" (or remove tls and keep enable_ssl = true), or use port 587 with STARTTLS.".to_owned(),
            (_, port) => format!("Port {port} seems to expect implicit TLS: set tls = \"implicit\", or use port 587 with STARTTLS."),
        }
    }
}

fn has_any(text: &str, needles: &[&str]) -> bool {
    needles.iter().any(|needle| text.contains(needle))
}

impl SmtpError {
    /// The core error for this failure; `transcript` is the redacted session so far.
    pub fn into_send_error(self, context: &Context, transcript: Transcript) -> SendError {
        self.classify(context, transcript).with_service(mailroom_core::ServiceKind::WebMail)
    }

    fn classify(self, context: &Context, transcript: Transcript) -> SendError {
        let detail = self.to_string();
        // Whatever goes wrong while waiting for the reply to the end of the message, the
        // server may already have accepted it: never advise changing settings and resending.
        if self.may_have_delivered() {
            return delivery_unknown(detail)
                .with_provider(context.provider)
                .with_transcript(transcript)
                .with_source(self);
        }
        let error = match &self {
            SmtpError::Resolve { host, .. } => SendError::new(ErrorKind::ConnectFailed, detail)
                .with_field(Field::WebMailServer)
                .with_hint(format!("The name {host} does not resolve: check its spelling (e.g. smtp.gmail.com, smtp.office365.com).")),
            SmtpError::Connect { source, .. } => {
                let field = match source.kind() {
                    std::io::ErrorKind::ConnectionRefused => Field::WebMailPort,
                    _ => Field::WebMailServer,
                };
                let hint = if field == Field::WebMailPort {
                    format!("Nothing listens on port {} of {}: use the port your provider documents (587 for STARTTLS, 465 for implicit TLS).", context.port, context.server)
                } else {
                    format!("{} cannot be reached from this machine: check the server name and the network or firewall.", context.server)
                };
                SendError::new(ErrorKind::ConnectFailed, detail).with_field(field).with_hint(hint)
            }
            SmtpError::Timeout { step: Step::Connect, .. } => SendError::new(ErrorKind::ConnectFailed, detail)
                .with_field(Field::WebMailPort)
                .with_hint(format!("Connecting to port {} timed out: a firewall may drop it; try 587 or 465.", context.port)),
            SmtpError::Timeout { step: Step::Greeting, .. } if context.tls != TlsMode::Implicit && context.port == 465 => {
                SendError::new(ErrorKind::TlsMismatch, format!("{detail}: the server waits for a TLS handshake"))
                    .with_field(context.tls_field())
                    .with_hint(context.tls_mismatch_hint())
            }
            SmtpError::Timeout { step: Step::TlsHandshake, .. } => SendError::new(ErrorKind::TlsMismatch, detail)
                .with_field(context.tls_field())
                .with_hint(context.tls_mismatch_hint()),
            SmtpError::Timeout { step: Step::FinalReply, .. } => delivery_unknown(detail),
            SmtpError::Timeout { .. } => SendError::new(ErrorKind::Timeout, detail).with_field(Field::WebMailServer),
            SmtpError::Closed { step: Step::FinalReply } | SmtpError::Io { step: Step::FinalReply, .. } => delivery_unknown(detail),
            SmtpError::Closed { step: Step::TlsHandshake } => SendError::new(ErrorKind::TlsMismatch, detail)
                .with_field(context.tls_field())
                .with_hint(context.tls_mismatch_hint()),
            SmtpError::Closed { .. } | SmtpError::Io { .. } => SendError::new(ErrorKind::ServiceUnavailable, detail),
            SmtpError::Tls { cause, .. } => match cause {
                TlsFailure::NotTls | TlsFailure::Other => SendError::new(ErrorKind::TlsMismatch, detail)
                    .with_field(context.tls_field())
                    .with_hint(context.tls_mismatch_hint()),
                TlsFailure::WrongHost => SendError::new(ErrorKind::TlsCertificate, detail)
                    .with_field(Field::WebMailServer)
                    .with_hint(format!("The certificate is not issued for {}: enter the server name the provider documents.", context.server)),
                TlsFailure::Expired => SendError::new(ErrorKind::TlsCertificate, detail).with_field(Field::WebMailServer)
                    .with_hint("The server's certificate is expired or not yet valid: its administrator must renew it (or check this machine's clock)."),
                TlsFailure::Untrusted => SendError::new(ErrorKind::TlsCertificate, detail).with_field(Field::WebMailCaFile),
            },
            SmtpError::ServerSpeaksTls { .. } | SmtpError::ExpectsTls => SendError::new(ErrorKind::TlsMismatch, detail)
                .with_field(context.tls_field())
                .with_hint(context.tls_mismatch_hint()),
            SmtpError::NotSmtp { .. } => SendError::new(ErrorKind::Protocol, detail)
                .with_field(Field::WebMailPort)
                .with_hint(format!("Port {} of {} answers, but not as a mail server: check the port.", context.port, context.server)),
            SmtpError::Refused { step: Step::StartTls, reply } => SendError::new(ErrorKind::TlsNotSupported, detail)
                .with_field(Field::WebMailEnableSsl)
                .with_reply(reply.to_server_reply()),
            SmtpError::Refused { step, reply } => classify_reply(*step, reply, context, detail),
            SmtpError::StartTlsNotOffered => {
                SendError::new(ErrorKind::TlsNotSupported, detail).with_field(Field::WebMailEnableSsl)
            }
            SmtpError::NoAuthOffered { starttls_offered: true } => SendError::new(ErrorKind::SecureConnectionRequired, detail)
                .with_field(Field::WebMailEnableSsl)
                .with_hint("The server offers login only after STARTTLS: set enable_ssl = true."),
            SmtpError::NoAuthOffered { starttls_offered: false } => SendError::new(ErrorKind::AuthFailed, detail)
                .with_field(Field::WebMailUsername)
                .with_hint("This server does not accept logins on this port: remove username and password if it relays without login, or use the provider's submission port (587)."),
            SmtpError::NoCommonMechanism { .. } => SendError::new(ErrorKind::AuthFailed, detail).with_field(Field::WebMailServer),
            SmtpError::PlaintextAuthRefused { .. } => SendError::new(ErrorKind::SecureConnectionRequired, detail)
                .with_field(Field::WebMailEnableSsl)
                .with_hint("Turn Enable SSL on, or for a trusted internal relay set allow_plaintext_auth = true."),
            SmtpError::TooLarge { limit, .. } => SendError::new(ErrorKind::MessageTooLarge, detail)
                .with_hint(format!("The server's limit is {limit} bytes (about {} MB) including encoding overhead.", limit / 1_000_000)),
            SmtpError::CaFile { .. } => SendError::new(ErrorKind::InvalidConfig, detail).with_field(Field::WebMailCaFile),
            SmtpError::Token(_) => {
                let SmtpError::Token(inner) = self else { unreachable!() };
                return inner.with_transcript(transcript);
            }
        };
        error.with_provider(context.provider).with_transcript(transcript).with_source(self)
    }
}

fn delivery_unknown(detail: String) -> SendError {
    SendError::new(
        ErrorKind::DeliveryUnknown,
        format!("{detail}, after the whole message was sent: it may or may not have been delivered"),
    )
}

/// Classifies a negative reply by step, code, enhanced status and text.
fn classify_reply(step: Step, reply: &Reply, context: &Context, detail: String) -> SendError {
    let server = reply.to_server_reply();
    let enhanced = server.enhanced.clone().unwrap_or_default();
    let text = server.text.to_ascii_lowercase();
    let code = reply.code;
    let (kind, field): (ErrorKind, Option<Field>) = if enhanced == "5.7.139"
        || has_any(&text, &["basic authentication is disabled", "smtpclientauthentication is disabled"])
    {
        (ErrorKind::AuthDisabled, Some(Field::WebMailUsername))
    } else if enhanced == "5.7.30" || text.contains("basic authentication is not supported") {
        // Microsoft 365 from December 2026: passwords are refused, XOAUTH2 is not.
        (ErrorKind::AuthDisabled, Some(Field::WebMailAuth))
    } else if code == 534 || enhanced == "5.7.9" || text.contains("application-specific password") {
        (ErrorKind::AppPasswordRequired, Some(Field::WebMailPassword))
    } else if code == 538
        || text.contains("starttls")
            && (matches!(code, 530 | 451 | 454) || enhanced.starts_with("5.7") || enhanced.starts_with("4.7"))
    {
        (ErrorKind::SecureConnectionRequired, Some(Field::WebMailEnableSsl))
    } else if step == Step::Auth && code >= 500 {
        (ErrorKind::AuthFailed, Some(Field::WebMailPassword))
    } else if code == 530 || enhanced == "5.7.57" || (code == 550 && enhanced == "5.7.0" && text.contains("auth")) {
        (ErrorKind::AuthFailed, Some(Field::WebMailUsername))
    } else if enhanced == "5.2.2" || text.contains("mailbox full") || text.contains("over quota") {
        (ErrorKind::RecipientRejected, None)
    } else if matches!(enhanced.as_str(), "5.3.4" | "5.2.3" | "4.3.4") || (code == 552 && enhanced.is_empty()) {
        (ErrorKind::MessageTooLarge, None)
    } else if matches!(enhanced.as_str(), "5.7.60" | "5.2.252")
        || has_any(&text, &["sendas", "send as", "not owned by user", "sender address rejected", "not allowed to send"])
        || (step == Step::Mail && matches!(code, 550 | 551 | 553 | 554))
    {
        (ErrorKind::SenderNotAllowed, Some(Field::EmailAddress))
    } else if step == Step::Rcpt && text.contains("relay") {
        (ErrorKind::AuthFailed, Some(Field::WebMailUsername))
    } else if step == Step::Rcpt && code == 452 {
        (ErrorKind::RateLimited, None)
    } else if step == Step::Rcpt && code >= 500 {
        (ErrorKind::RecipientRejected, None)
    } else if code == 421 || code / 100 == 4 {
        let throttled =
            enhanced.starts_with("4.7") || has_any(&text, &["rate", "too many", "limit", "throttl", "try again later"]);
        (if throttled { ErrorKind::RateLimited } else { ErrorKind::ServiceUnavailable }, None)
    } else if step == Step::FinalReply && enhanced.starts_with("5.7") {
        (ErrorKind::PermissionDenied, None)
    } else {
        (ErrorKind::Protocol, None)
    };
    // SendError::new already makes throttling and unavailability temporary, the rest permanent.
    let mut error = SendError::new(kind, detail).with_reply(server);
    if let Some(field) = field {
        error = error.with_field(field);
    }
    if kind == ErrorKind::SecureConnectionRequired && context.tls == TlsMode::None {
        error = error.with_hint(
            "The server requires an encrypted connection before login: set enable_ssl = true (STARTTLS on port 587).",
        );
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Context {
        Context { server: "smtp.gmail.com".into(), port: 587, tls: TlsMode::Starttls, provider: Some(Provider::Gmail) }
    }

    fn classify(step: Step, code: u16, lines: &[&str]) -> SendError {
        let reply = Reply { code, lines: lines.iter().map(|l| l.to_string()).collect() };
        SmtpError::Refused { step, reply }.into_send_error(&context(), Transcript::new())
    }

    #[test]
    fn captured_provider_replies_map_to_the_documented_kinds() {
        /// (step, code, reply lines, expected kind, expected field)
        type Case<'a> = (Step, u16, &'a [&'a str], ErrorKind, Option<&'a str>);
        let cases: &[Case] = &[
            (
                Step::Auth,
                535,
                &[
                    "5.7.8 Username and Password not accepted. For more information, go to",
                    "5.7.8  https://support.google.com/mail/?p=BadCredentials x - gsmtp",
                ],
                ErrorKind::AuthFailed,
                Some("web_mail.password"),
            ),
            (
                Step::Auth,
                534,
                &[
                    "5.7.9 Application-specific password required. For more information, go to",
                    "5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor x - gsmtp",
                ],
                ErrorKind::AppPasswordRequired,
                Some("web_mail.password"),
            ),
            (
                Step::Auth,
                535,
                &["5.7.3 Authentication unsuccessful [AM0PR.prod.outlook.com]"],
                ErrorKind::AuthFailed,
                Some("web_mail.password"),
            ),
            (
                Step::Auth,
                535,
                &[
                    "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [x]",
                ],
                ErrorKind::AuthDisabled,
                Some("web_mail.username"),
            ),
            (
                Step::Auth,
                535,
                &["5.7.139 Authentication unsuccessful, basic authentication is disabled. [x]"],
                ErrorKind::AuthDisabled,
                Some("web_mail.username"),
            ),
            (
                Step::Auth,
                550,
                &["5.7.30 Basic authentication is not supported for Client Submission. [x]"],
                ErrorKind::AuthDisabled,
                Some("web_mail.auth"),
            ),
            (
                Step::Mail,
                530,
                &["5.7.0 Must issue a STARTTLS command first. x - gsmtp"],
                ErrorKind::SecureConnectionRequired,
                Some("web_mail.enable_ssl"),
            ),
            (
                Step::Mail,
                451,
                &["5.7.3 STARTTLS is required to send mail [x]"],
                ErrorKind::SecureConnectionRequired,
                Some("web_mail.enable_ssl"),
            ),
            (
                Step::Mail,
                530,
                &[
                    "5.7.0 Authentication Required. For more information, go to",
                    "5.7.0  https://support.google.com/mail/?p=WantAuthError x - gsmtp",
                ],
                ErrorKind::AuthFailed,
                Some("web_mail.username"),
            ),
            (
                Step::Mail,
                530,
                &["5.7.57 Client not authenticated to send mail. [x]"],
                ErrorKind::AuthFailed,
                Some("web_mail.username"),
            ),
            (
                Step::Mail,
                550,
                &["5.7.60 SMTP; Client does not have permissions to send as this sender [x]"],
                ErrorKind::SenderNotAllowed,
                Some("email_address"),
            ),
            (
                Step::Mail,
                553,
                &["5.7.1 <erp@company.com>: Sender address rejected: not owned by user x"],
                ErrorKind::SenderNotAllowed,
                Some("email_address"),
            ),
            (
                Step::FinalReply,
                554,
                &[
                    "5.2.252 SendAsDenied; a@x not allowed to send as b@x; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied",
                ],
                ErrorKind::SenderNotAllowed,
                Some("email_address"),
            ),
            (
                Step::Rcpt,
                550,
                &["5.1.1 The email account that you tried to reach does not exist."],
                ErrorKind::RecipientRejected,
                None,
            ),
            (Step::Rcpt, 554, &["5.7.1 <x@y>: Relay access denied"], ErrorKind::AuthFailed, Some("web_mail.username")),
            (
                Step::FinalReply,
                552,
                &["5.3.4 Message size exceeds fixed maximum message size"],
                ErrorKind::MessageTooLarge,
                None,
            ),
            (Step::Mail, 421, &["4.7.0 Try again later, closing connection."], ErrorKind::RateLimited, None),
            (Step::Greeting, 421, &["4.3.2 Service not available"], ErrorKind::ServiceUnavailable, None),
            (Step::Mail, 503, &["5.5.1 Bad sequence of commands"], ErrorKind::Protocol, None),
            (
                Step::Auth,
                454,
                &["4.7.0 Too many login attempts, please try again later."],
                ErrorKind::RateLimited,
                None,
            ),
            (Step::Auth, 451, &["4.7.0 Temporary server error. Please try again later."], ErrorKind::RateLimited, None),
            (Step::Auth, 421, &["4.3.2 Service not available"], ErrorKind::ServiceUnavailable, None),
            (
                Step::FinalReply,
                552,
                &["5.2.2 The email account that you tried to reach is over quota."],
                ErrorKind::RecipientRejected,
                None,
            ),
            (
                Step::FinalReply,
                552,
                &["Message size exceeds fixed maximum message size"],
                ErrorKind::MessageTooLarge,
                None,
            ),
        ];
        for (step, code, lines, kind, field) in cases {
            let error = classify(*step, *code, lines);
            assert_eq!(error.kind(), *kind, "{code} {lines:?}");
            assert_eq!(error.field(), *field, "{code} {lines:?}");
            assert_eq!(error.server_reply().unwrap().code, Some(*code));
        }
    }

    #[test]
    fn anything_but_a_reply_after_the_body_is_delivery_unknown() {
        for error in [
            SmtpError::NotSmtp { step: Step::FinalReply, line: "garbage".into() },
            SmtpError::ServerSpeaksTls { step: Step::FinalReply },
            SmtpError::Io { step: Step::FinalReply, reason: "decrypt error".into() },
            SmtpError::Timeout { step: Step::FinalReply, limit: Duration::from_secs(60) },
        ] {
            let error = error.into_send_error(&context(), Transcript::new());
            assert_eq!(error.kind(), ErrorKind::DeliveryUnknown);
        }
    }

    #[test]
    fn disconnects_after_the_body_are_delivery_unknown_and_never_retried() {
        let error = SmtpError::Closed { step: Step::FinalReply }.into_send_error(&context(), Transcript::new());
        assert_eq!(error.kind(), ErrorKind::DeliveryUnknown);
        assert!(!error.retry().is_temporary());
        let before = SmtpError::Closed { step: Step::Data }.into_send_error(&context(), Transcript::new());
        assert_eq!(before.kind(), ErrorKind::ServiceUnavailable);
    }

    #[test]
    fn tls_mismatches_name_the_setting_and_the_port() {
        let implicit_on_587 = Context { tls: TlsMode::Implicit, ..context() };
        let error = SmtpError::Tls { reason: "corrupt message".into(), cause: TlsFailure::NotTls }
            .into_send_error(&implicit_on_587, Transcript::new());
        assert_eq!((error.kind(), error.field()), (ErrorKind::TlsMismatch, Some("web_mail.tls")));
        assert!(error.remediation()[0].contains("tls = \"starttls\""));
        let starttls_on_465 = Context { port: 465, tls: TlsMode::Starttls, ..context() };
        let error = SmtpError::Timeout { step: Step::Greeting, limit: Duration::from_secs(2) }
            .into_send_error(&starttls_on_465, Transcript::new());
        assert_eq!(error.kind(), ErrorKind::TlsMismatch);
        assert!(error.remediation()[0].contains("465 expects implicit TLS"));
    }
}
