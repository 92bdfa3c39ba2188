//! The Company Email config (CONTRACT: DESIGN.md §4): typed model, TOML loading, and validation that reports every bad field at once.

pub mod checks;
mod load;
mod oauth;

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;

use crate::error::ServiceKind;
use crate::provider::Provider;
use crate::secret::Secret;

pub use load::{ConfigIssue, ConfigProblems, FIELDS, LoadedConfig, Severity};
pub use oauth::{
    GOOGLE_SMTP_SCOPE, GRAPH_API_BASE, GRAPH_APP_SCOPE, GRAPH_DELEGATED_SCOPE, GoogleOAuth, GraphConfig,
    MICROSOFT_AUTHORITY, MicrosoftAuth, MicrosoftOAuth, OUTLOOK_APP_SCOPE, OUTLOOK_DELEGATED_SCOPE, SmtpOAuth,
};

/// The `[outbox]` section (DESIGN.md §4): every key optional, each checked for range. Core
/// keeps `url` as written; the facade resolves a relative SQLite path against the config file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxConfig {
    /// `sqlite:PATH` or `postgres://…`; `None` means `sqlite:mailroom-outbox.db` beside the config file.
    pub url: Option<String>,
    /// Messages in flight per worker.
    pub concurrency: Option<u32>,
    /// Messages per minute (default: the provider preset).
    pub rate_per_minute: Option<u32>,
    /// Messages per UTC day (default: the provider preset).
    pub daily_quota: Option<u32>,
    /// Attempts before a temporary failure becomes `failed`.
    pub max_attempts: Option<u32>,
    /// How long a claimed message may stay `sending` before the crash rule judges it.
    pub lease_secs: Option<u32>,
}

/// The one sender every system email goes out from, and the service it goes out through.
#[derive(Clone, Debug)]
pub struct CompanyEmail {
    /// Address and display name of the Company Email.
    pub sender: Mailbox,
    /// How mail is sent.
    pub service: ServiceConfig,
}

impl CompanyEmail {
    /// Parses and validates a config file's text. `env` looks up the `*_env` variables
    /// (pass `|name| std::env::var(name).ok()` in a program; core itself reads no environment).
    ///
    /// ```
    /// use mailroom_core::config::CompanyEmail;
    /// let toml = r#"
    ///     service = "web_mail"
    ///     email_address = "erp@company.com"
    ///     display_name = "Company ERP"
    ///     [web_mail]
    ///     server = "smtp.gmail.com"
    ///     port = 587
    ///     enable_ssl = true
    ///     username = "erp@company.com"
    ///     password_env = "MAILROOM_PASSWORD"
    /// "#;
    /// let loaded = CompanyEmail::from_toml(toml, &|_| Some("app-password".into())).unwrap();
    /// assert_eq!(loaded.config.service.kind().as_str(), "web_mail");
    /// ```
    pub fn from_toml(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<LoadedConfig, ConfigProblems> {
        load::load(text, env)
    }

    /// Which service type this config uses.
    pub fn service_kind(&self) -> ServiceKind {
        self.service.kind()
    }
}

/// The three service types of the ERP's setup screen.
#[derive(Clone, Debug)]
pub enum ServiceConfig {
    /// Web Mail (SMTP).
    WebMail(SmtpConfig),
    /// Exchange (EWS).
    Exchange(EwsConfig),
    /// Email Services (Gmail API).
    EmailServices(GmailConfig),
    /// Email Services with `provider = "microsoft"` (Microsoft Graph `sendMail`).
    Graph(GraphConfig),
}

impl ServiceConfig {
    /// The service kind.
    pub fn kind(&self) -> ServiceKind {
        match self {
            ServiceConfig::WebMail(_) => ServiceKind::WebMail,
            ServiceConfig::Exchange(_) => ServiceKind::Exchange,
            ServiceConfig::EmailServices(_) | ServiceConfig::Graph(_) => ServiceKind::EmailServices,
        }
    }
}

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS at all.
    None,
}

impl TlsMode {
    /// The config value (`starttls`, `implicit`, `none`).
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Starttls => "starttls",
            TlsMode::Implicit => "implicit",
            TlsMode::None => "none",
        }
    }

    /// The mode the ERP's Enable SSL checkbox means for a port: 465 → implicit, otherwise STARTTLS.
    pub fn from_enable_ssl(enable_ssl: bool, port: u16) -> TlsMode {
        match (enable_ssl, port) {
            (false, _) => TlsMode::None,
            (true, 465) => TlsMode::Implicit,
            (true, _) => TlsMode::Starttls,
        }
    }
}

/// The default per-operation network deadline.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Web Mail (SMTP) settings.
#[derive(Clone, Debug)]
pub struct SmtpConfig {
    /// Outgoing server host name or IP address.
    pub server: String,
    /// Port, 1–65535.
    pub port: u16,
    /// The ERP's Enable SSL checkbox as entered.
    pub enable_ssl: bool,
    /// The effective TLS mode (explicit `tls`, or derived from `enable_ssl` and the port).
    pub tls: TlsMode,
    /// User name for AUTH, if the server needs one.
    pub username: Option<String>,
    /// Password for AUTH.
    pub password: Option<Secret>,
    /// Extra trusted CA certificate (PEM).
    pub ca_file: Option<PathBuf>,
    /// Deadline for each network step.
    pub timeout: Duration,
    /// Allow AUTH without TLS to a non-loopback server.
    pub allow_plaintext_auth: bool,
    /// `auth = "oauth"`: XOAUTH2 with tokens from this OAuth client instead of a password.
    pub oauth: Option<SmtpOAuth>,
}

impl SmtpConfig {
    /// The provider recognised from the server name.
    pub fn provider(&self) -> Option<Provider> {
        Provider::detect(&self.server)
    }
}

/// How mailroom authenticates to Exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EwsAuth {
    /// HTTP Basic (on-premises only; off in Exchange Online since 2022).
    Basic,
    /// NTLM (on-premises).
    Ntlm,
    /// OAuth2 client credentials (Exchange Online).
    Oauth,
}

/// Exchange (EWS) settings.
#[derive(Clone, Debug)]
pub struct EwsConfig {
    /// The EWS endpoint, e.g. `https://outlook.office365.com/EWS/Exchange.asmx`.
    pub uri: url::Url,
    /// The mail domain, `company.com` form.
    pub domain: String,
    /// User name.
    pub username: String,
    /// Password (basic and NTLM).
    pub password: Option<Secret>,
    /// Authentication method.
    pub auth: EwsAuth,
    /// OAuth application (client) ID, for `auth = "oauth"`.
    pub client_id: Option<String>,
    /// OAuth client secret, for `auth = "oauth"`.
    pub client_secret: Option<Secret>,
    /// Azure AD tenant (ID or domain), for `auth = "oauth"`.
    pub tenant: Option<String>,
    /// Extra trusted CA certificate (PEM).
    pub ca_file: Option<PathBuf>,
    /// Deadline for each request.
    pub timeout: Duration,
}

/// Email Services (Gmail API) settings.
#[derive(Clone, Debug)]
pub struct GmailConfig {
    /// OAuth client ID (`….apps.googleusercontent.com`).
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: Secret,
    /// Refresh token from the consent flow, when given inline or by environment.
    pub refresh_token: Option<Secret>,
    /// File holding the refresh token (written by `mailroom connect google`).
    pub token_file: Option<PathBuf>,
    /// Google's authorization endpoint.
    pub auth_uri: url::Url,
    /// Google's token endpoint.
    pub token_uri: url::Url,
    /// The Gmail API base URL.
    pub api_base: url::Url,
    /// Deadline for each request.
    pub timeout: Duration,
}

#[cfg(test)]
mod tests;
