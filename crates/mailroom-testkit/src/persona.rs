//! Provider personas: Gmail and Office 365 SMTP as captured from the real servers (fixtures/smtp), with fault modes.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::KitError;
use crate::reply::Reply;
use crate::scripted::{ListenerTls, ScriptedSmtpServer, ScriptedSmtpServerBuilder};

const GMAIL_587: &str = include_str!("../fixtures/smtp/gmail_587.toml");
const GMAIL_465: &str = include_str!("../fixtures/smtp/gmail_465.toml");
const OFFICE365_587: &str = include_str!("../fixtures/smtp/office365_587.toml");

/// A failure the persona reproduces with the provider's real reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The happy path: configured accounts authenticate and mail is accepted.
    None,
    /// Every AUTH is refused as bad credentials (Gmail `535-5.7.8` multi-line, O365 `535 5.7.3`).
    BadPassword,
    /// Every AUTH gets Gmail's `534-5.7.9 Application-specific password required` (2-Step Verification on).
    AppPasswordRequired,
    /// Every AUTH gets O365's `535 5.7.139 … SmtpClientAuthentication is disabled for the Tenant …`.
    SmtpAuthDisabled,
    /// AUTH is advertised before STARTTLS too, so a plaintext client really sends AUTH (and MAIL)
    /// and gets the TLS-required reply (Gmail `530 5.7.0 Must issue a STARTTLS command first`,
    /// O365 `451 5.7.3 STARTTLS is required to send mail`). Without this fault the personas
    /// offer no AUTH before TLS, as the real servers do, and answer only MAIL that way.
    StartTlsRequired,
    /// MAIL is refused: O365 `550 5.7.60 SMTP; Client does not have permissions to send as this sender`.
    SenderNotAllowed,
    /// The message is refused after its data: O365 `554 5.2.252 SendAsDenied; …`.
    SendAsDenied,
    /// XOAUTH2 tokens are rejected (Gmail: `334 <base64 error>`, then `535-5.7.8` after the client's empty line).
    OAuthTokenRejected,
    /// Password AUTH (basic authentication) gets O365's `550 5.7.30 Basic authentication is not
    /// supported for Client Submission.`; XOAUTH2 still works, as on Microsoft 365 from
    /// December 2026.
    BasicAuthRetired,
}

impl Fault {
    /// Every fault, the happy path first.
    pub const ALL: [Fault; 9] = [
        Fault::None,
        Fault::BadPassword,
        Fault::AppPasswordRequired,
        Fault::SmtpAuthDisabled,
        Fault::StartTlsRequired,
        Fault::SenderNotAllowed,
        Fault::SendAsDenied,
        Fault::OAuthTokenRejected,
        Fault::BasicAuthRetired,
    ];

    /// The fixture reply this fault needs (beyond the persona's base replies).
    fn reply_key(self) -> Option<&'static str> {
        match self {
            Fault::None => None,
            Fault::BadPassword | Fault::OAuthTokenRejected => Some("bad_credentials"),
            Fault::AppPasswordRequired => Some("app_password_required"),
            Fault::SmtpAuthDisabled => Some("smtp_auth_disabled"),
            Fault::StartTlsRequired => Some("tls_required"),
            Fault::SenderNotAllowed => Some("sender_not_allowed"),
            Fault::SendAsDenied => Some("send_as_denied"),
            Fault::BasicAuthRetired => Some("basic_auth_retired"),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureReply {
    code: u16,
    lines: Vec<String>,
    source: String,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum FixtureTls {
    Starttls,
    Implicit,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    name: String,
    source: String,
    hostname: String,
    port: u16,
    tls: FixtureTls,
    max_message_size: usize,
    ehlo_greeting: String,
    capabilities_before_tls: Vec<String>,
    capabilities_after_tls: Vec<String>,
    capabilities_source: String,
    replies: BTreeMap<String, FixtureReply>,
}

/// Replies every persona must have, because the happy path uses them.
const BASE_REPLIES: [&str; 9] = [
    "greeting",
    "auth_required",
    "auth_success",
    "bad_credentials",
    "mail_ok",
    "rcpt_ok",
    "data_ready",
    "message_accepted",
    "quit",
];

const KNOWN_REPLIES: [&str; 17] = [
    "greeting",
    "starttls_ready",
    "tls_required",
    "auth_required",
    "auth_success",
    "bad_credentials",
    "app_password_required",
    "smtp_auth_disabled",
    "basic_auth_retired",
    "xoauth2_error_challenge",
    "unrecognized_mechanism",
    "mail_ok",
    "rcpt_ok",
    "data_ready",
    "message_accepted",
    "quit",
    "sender_not_allowed",
];
const SEND_AS_DENIED: &str = "send_as_denied";

/// A provider's SMTP server as captured from the real thing, optionally put into a [`Fault`] mode.
///
/// The replies come from `fixtures/smtp/<name>.toml` (kept in this crate, so it packages on its own), each with a note
/// of its source. Start one to get a [`ScriptedSmtpServer`] speaking like the provider:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mailroom_testkit::KitError> {
/// use mailroom_testkit::{Fault, Persona};
///
/// let o365 = Persona::office365_587()
///     .account("erp@company.com", "app-password")
///     .fault(Fault::SmtpAuthDisabled)
///     .start()
///     .await?;
/// // AUTH LOGIN now ends in "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled …".
/// # drop(o365);
/// assert!(!Persona::gmail_587().supports(Fault::SendAsDenied)); // never captured from Gmail
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Persona {
    fixture: Fixture,
    fault: Fault,
    accounts: Vec<(String, String)>,
    oauth_tokens: Vec<(String, String)>,
}

impl Persona {
    /// Gmail, `smtp.gmail.com:587`, STARTTLS.
    pub fn gmail_587() -> Self {
        Self::from_toml(GMAIL_587).expect("the embedded gmail_587 fixture is valid (unit-tested)")
    }

    /// Gmail, `smtp.gmail.com:465`, implicit TLS.
    pub fn gmail_465() -> Self {
        Self::from_toml(GMAIL_465).expect("the embedded gmail_465 fixture is valid (unit-tested)")
    }

    /// Office 365, `smtp.office365.com:587`, STARTTLS, AUTH LOGIN and XOAUTH2 only.
    pub fn office365_587() -> Self {
        Self::from_toml(OFFICE365_587).expect("the embedded office365_587 fixture is valid (unit-tested)")
    }

    /// Every built-in persona.
    pub fn all() -> Vec<Self> {
        vec![Self::gmail_587(), Self::gmail_465(), Self::office365_587()]
    }

    /// A persona from a fixture in the same format as `fixtures/smtp/*.toml`.
    pub fn from_toml(text: &str) -> Result<Self, KitError> {
        let fixture: Fixture =
            toml::from_str(text).map_err(|e| KitError::Fixture { name: "<toml>".to_owned(), reason: e.to_string() })?;
        let problem = |reason: String| KitError::Fixture { name: fixture.name.clone(), reason };
        for key in BASE_REPLIES {
            if !fixture.replies.contains_key(key) {
                return Err(problem(format!("missing reply `{key}`")));
            }
        }
        for (key, reply) in &fixture.replies {
            if !KNOWN_REPLIES.contains(&key.as_str()) && key != SEND_AS_DENIED {
                return Err(problem(format!("unknown reply `{key}`")));
            }
            if reply.source.trim().is_empty() {
                return Err(problem(format!("reply `{key}` has no source")));
            }
            if reply.lines.is_empty() || !(200..600).contains(&reply.code) {
                return Err(problem(format!("reply `{key}` is not a valid SMTP reply")));
            }
        }
        if fixture.source.trim().is_empty() || fixture.capabilities_source.trim().is_empty() {
            return Err(problem("missing source note".to_owned()));
        }
        if fixture.tls == FixtureTls::Starttls && !fixture.replies.contains_key("tls_required") {
            return Err(problem("a STARTTLS persona needs `tls_required` (its answer to MAIL before TLS)".to_owned()));
        }
        Ok(Self { fixture, fault: Fault::None, accounts: Vec::new(), oauth_tokens: Vec::new() })
    }

    /// The persona's name, e.g. `gmail_587`.
    pub fn name(&self) -> &str {
        &self.fixture.name
    }

    /// The real server's host name (`smtp.gmail.com`, …).
    pub fn hostname(&self) -> &str {
        &self.fixture.hostname
    }

    /// The real server's port (587 or 465); the fake listens on an ephemeral one.
    pub fn real_port(&self) -> u16 {
        self.fixture.port
    }

    /// Whether the persona speaks implicit TLS (port 465 style).
    pub fn implicit_tls(&self) -> bool {
        self.fixture.tls == FixtureTls::Implicit
    }

    /// The overall source note of the fixture.
    pub fn source(&self) -> &str {
        &self.fixture.source
    }

    /// A reply from the fixture by key (`bad_credentials`, `tls_required`, …), for assertions.
    pub fn reply(&self, key: &str) -> Option<Reply> {
        self.fixture.replies.get(key).map(|r| Reply::new(r.code, r.lines.clone()))
    }

    /// Where a fixture reply comes from.
    pub fn reply_source(&self, key: &str) -> Option<&str> {
        self.fixture.replies.get(key).map(|r| r.source.as_str())
    }

    /// Puts the persona into a fault mode (default [`Fault::None`]).
    pub fn fault(mut self, fault: Fault) -> Self {
        self.fault = fault;
        self
    }

    /// An account that AUTH PLAIN/LOGIN accept on the happy path.
    pub fn account(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.accounts.push((username.into(), password.into()));
        self
    }

    /// A bearer token that AUTH XOAUTH2 accepts for `username` on the happy path.
    pub fn oauth_token(mut self, username: impl Into<String>, token: impl Into<String>) -> Self {
        self.oauth_tokens.push((username.into(), token.into()));
        self
    }

    /// Whether this persona can reproduce `fault` with a captured reply.
    pub fn supports(&self, fault: Fault) -> bool {
        self.unsupported_reason(fault).is_none()
    }

    fn unsupported_reason(&self, fault: Fault) -> Option<String> {
        if fault == Fault::StartTlsRequired && self.implicit_tls() {
            return Some("an implicit-TLS server has no plaintext stage".to_owned());
        }
        let key = fault.reply_key()?;
        (!self.fixture.replies.contains_key(key)).then(|| format!("the fixture has no `{key}` reply"))
    }

    fn required(&self, key: &str) -> Reply {
        self.reply(key).expect("base replies are checked when the fixture is loaded")
    }

    /// The scripted-server configuration for this persona and fault, to customise further
    /// (e.g. `.hang_up_at(Step::MessageBody)`) before starting.
    pub fn builder(&self) -> Result<ScriptedSmtpServerBuilder, KitError> {
        if let Some(reason) = self.unsupported_reason(self.fault) {
            return Err(KitError::FaultNotAvailable { persona: self.name().to_owned(), fault: self.fault, reason });
        }
        let fixture = &self.fixture;
        let limits = crate::Limits { max_message_size: fixture.max_message_size, ..crate::Limits::default() };
        let mut capabilities_before_tls = fixture.capabilities_before_tls.clone();
        if self.fault == Fault::StartTlsRequired {
            let auth_line = fixture
                .capabilities_after_tls
                .iter()
                .find(|line| line.to_ascii_uppercase().starts_with("AUTH"))
                .cloned();
            if let Some(line) = auth_line
                && !capabilities_before_tls.contains(&line)
            {
                capabilities_before_tls.push(line);
            }
        }
        let mut builder = ScriptedSmtpServer::builder()
            .hostname(fixture.hostname.clone())
            .greeting(self.required("greeting"))
            .ehlo_greeting(fixture.ehlo_greeting.clone())
            .capabilities_before_tls(capabilities_before_tls)
            .capabilities_after_tls(fixture.capabilities_after_tls.clone())
            .tls(match fixture.tls {
                FixtureTls::Starttls => ListenerTls::StartTls,
                FixtureTls::Implicit => ListenerTls::Implicit,
            })
            .auth_required(self.required("auth_required"))
            .auth_success(self.required("auth_success"))
            .auth_failure(self.required("bad_credentials"))
            .mail_reply(self.required("mail_ok"))
            .rcpt_reply(self.required("rcpt_ok"))
            .data_reply(self.required("data_ready"))
            .end_of_data_reply(self.required("message_accepted"))
            .quit_reply(self.required("quit"))
            .limits(limits);
        if let Some(reply) = self.reply("starttls_ready") {
            builder = builder.starttls_reply(reply);
        }
        if let Some(reply) = self.reply("tls_required") {
            builder = builder.tls_required(reply);
        }
        if let Some(reply) = self.reply("unrecognized_mechanism") {
            builder = builder.unrecognized_mechanism(reply);
        }
        if let Some(reply) = self.reply("xoauth2_error_challenge") {
            builder = builder.xoauth2_error_challenge(reply.lines.join(""));
        }
        for (user, password) in &self.accounts {
            builder = builder.account(user.clone(), password.clone());
        }
        if self.fault != Fault::OAuthTokenRejected {
            for (user, token) in &self.oauth_tokens {
                builder = builder.oauth_token(user.clone(), token.clone());
            }
        }
        builder = match self.fault {
            Fault::None | Fault::StartTlsRequired | Fault::OAuthTokenRejected => builder,
            Fault::BadPassword => builder.auth_reply(self.required("bad_credentials")),
            Fault::AppPasswordRequired => builder.auth_reply(self.required("app_password_required")),
            Fault::SmtpAuthDisabled => builder.auth_reply(self.required("smtp_auth_disabled")),
            Fault::BasicAuthRetired => builder.password_auth_reply(self.required("basic_auth_retired")),
            Fault::SenderNotAllowed => builder.mail_reply(self.required("sender_not_allowed")),
            Fault::SendAsDenied => builder.end_of_data_reply(self.required(SEND_AS_DENIED)),
        };
        Ok(builder)
    }

    /// Starts the persona on an ephemeral loopback port.
    pub async fn start(self) -> Result<ScriptedSmtpServer, KitError> {
        self.builder()?.start().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_fixtures_load_and_quote_their_sources() {
        for persona in Persona::all() {
            assert!(!persona.source().is_empty());
            for key in BASE_REPLIES {
                assert!(persona.reply_source(key).is_some_and(|s| !s.is_empty()), "{} {key}", persona.name());
            }
        }
    }

    #[test]
    fn fault_support_follows_the_captures() {
        let gmail = Persona::gmail_587();
        let o365 = Persona::office365_587();
        assert!(gmail.supports(Fault::AppPasswordRequired));
        assert!(!gmail.supports(Fault::SmtpAuthDisabled));
        assert!(!gmail.supports(Fault::SenderNotAllowed));
        assert!(o365.supports(Fault::SmtpAuthDisabled));
        assert!(o365.supports(Fault::SendAsDenied));
        assert!(o365.supports(Fault::BasicAuthRetired));
        assert!(!gmail.supports(Fault::BasicAuthRetired));
        assert!(!o365.supports(Fault::AppPasswordRequired));
        assert!(!Persona::gmail_465().supports(Fault::StartTlsRequired));
        let error = Persona::gmail_587().fault(Fault::SmtpAuthDisabled).builder().unwrap_err();
        assert!(matches!(error, KitError::FaultNotAvailable { .. }), "{error}");
    }

    #[test]
    fn fixtures_with_missing_or_unsourced_replies_are_refused() {
        let without_source = GMAIL_587.replacen("source = \"captures.md: 'Greeting", "source = \"\" # ", 1);
        assert!(Persona::from_toml(&without_source).is_err());
        let without_greeting = GMAIL_587.replace("[replies.greeting]", "[replies.unused]");
        assert!(Persona::from_toml(&without_greeting).is_err());
    }
}
