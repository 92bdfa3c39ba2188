//! The Company Email config (CONTRACT: DESIGN.md §4): typed model, TOML loading, and validation that reports every bad field at once.

pub mod checks;
mod field;
mod load;
mod oauth;

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;

use crate::error::ServiceKind;
use crate::provider::Provider;
use crate::secret::Secret;

pub use field::Field;
pub use load::{ConfigIssue, ConfigProblems, FIELDS, LoadedConfig, Severity};
pub use oauth::{
    GOOGLE_SMTP_SCOPE, GRAPH_API_BASE, GRAPH_APP_SCOPE, GRAPH_DELEGATED_SCOPE, GoogleOAuth, GraphConfig,
    MICROSOFT_AUTHORITY, MicrosoftAuth, MicrosoftKey, MicrosoftOAuth, OUTLOOK_APP_SCOPE, OUTLOOK_DELEGATED_SCOPE,
    SmtpOAuth,
};

/// The `[outbox]` section (DESIGN.md §4): every key optional, each checked for range. Core
/// keeps `url` as written; the facade resolves a relative SQLite path against the config file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
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
#[non_exhaustive]
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

    /// A Company Email built in code rather than loaded from TOML.
    pub fn new(sender: Mailbox, service: ServiceConfig) -> CompanyEmail {
        CompanyEmail { sender, service }
    }

    /// Which service type this config uses.
    pub fn service_kind(&self) -> ServiceKind {
        self.service.kind()
    }
}

/// The three service types of the ERP's setup screen.
#[derive(Clone, Debug)]
#[non_exhaustive]
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
#[non_exhaustive]
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
    /// Settings for `server:port` as the ERP's form defaults them: Enable SSL on (implicit TLS
    /// on 465, STARTTLS otherwise), no login, [`DEFAULT_TIMEOUT`] per step. The `with_*`
    /// methods change the rest; the config loader checks a file's values, this does not.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mailroom_core::{Secret, SmtpConfig, TlsMode};
    /// let config = SmtpConfig::new("smtp.office365.com", 587)
    ///     .with_login("erp@company.com", Secret::new("app-password"))
    ///     .with_timeout(Duration::from_secs(20));
    /// assert_eq!(config.tls, TlsMode::Starttls);
    /// assert!(!format!("{config:?}").contains("app-password"));
    /// ```
    pub fn new(server: impl Into<String>, port: u16) -> SmtpConfig {
        SmtpConfig {
            server: server.into(),
            port,
            enable_ssl: true,
            tls: TlsMode::from_enable_ssl(true, port),
            username: None,
            password: None,
            ca_file: None,
            timeout: DEFAULT_TIMEOUT,
            allow_plaintext_auth: false,
            oauth: None,
        }
    }

    /// Secures the connection with `tls` (`enable_ssl` follows: off only for [`TlsMode::None`]).
    pub fn with_tls(mut self, tls: TlsMode) -> SmtpConfig {
        self.tls = tls;
        self.enable_ssl = tls != TlsMode::None;
        self
    }

    /// Logs in with a user name and password (AUTH PLAIN or LOGIN).
    pub fn with_login(mut self, username: impl Into<String>, password: Secret) -> SmtpConfig {
        self.username = Some(username.into());
        self.password = Some(password);
        self
    }

    /// Logs in with XOAUTH2 as `username`, tokens from `oauth`, instead of a password.
    pub fn with_oauth(mut self, username: impl Into<String>, oauth: SmtpOAuth) -> SmtpConfig {
        self.username = Some(username.into());
        self.oauth = Some(oauth);
        self
    }

    /// The deadline of each network step.
    pub fn with_timeout(mut self, timeout: Duration) -> SmtpConfig {
        self.timeout = timeout;
        self
    }

    /// Also trusts the CA certificate(s) in this PEM file.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> SmtpConfig {
        self.ca_file = Some(path.into());
        self
    }

    /// Allows AUTH without TLS to a server off loopback (a trusted internal relay).
    pub fn with_plaintext_auth_allowed(mut self, allowed: bool) -> SmtpConfig {
        self.allow_plaintext_auth = allowed;
        self
    }

    /// The provider recognised from the server name.
    pub fn provider(&self) -> Option<Provider> {
        Provider::detect(&self.server)
    }
}

/// How mailroom authenticates to Exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
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
#[non_exhaustive]
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

impl EwsConfig {
    /// Settings for the EWS endpoint `uri` with Basic authentication as `username` of
    /// `domain` and [`DEFAULT_TIMEOUT`]; set the password or switch to OAuth with the
    /// `with_*` methods. The config loader checks a file's values, this does not.
    ///
    /// ```
    /// use mailroom_core::{EwsConfig, Secret};
    /// let config = EwsConfig::new("https://mail.company.com/EWS/Exchange.asmx".parse().unwrap(), "company.com", "erp")
    ///     .with_password(Secret::new("hunter2"));
    /// assert_eq!(config.auth, mailroom_core::config::EwsAuth::Basic);
    /// let online = EwsConfig::new("https://outlook.office365.com/EWS/Exchange.asmx".parse().unwrap(), "company.com", "erp")
    ///     .with_oauth("11111111-2222-3333-4444-555555555555", Secret::new("app-secret"), "company.onmicrosoft.com");
    /// assert_eq!(online.auth, mailroom_core::config::EwsAuth::Oauth);
    /// ```
    pub fn new(uri: url::Url, domain: impl Into<String>, username: impl Into<String>) -> EwsConfig {
        EwsConfig {
            uri,
            domain: domain.into(),
            username: username.into(),
            password: None,
            auth: EwsAuth::Basic,
            client_id: None,
            client_secret: None,
            tenant: None,
            ca_file: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The password for Basic or NTLM.
    pub fn with_password(mut self, password: Secret) -> EwsConfig {
        self.password = Some(password);
        self
    }

    /// Basic or NTLM (for OAuth use [`EwsConfig::with_oauth`]).
    pub fn with_auth(mut self, auth: EwsAuth) -> EwsConfig {
        self.auth = auth;
        self
    }

    /// OAuth2 client credentials of an Entra ID app registration (Exchange Online).
    pub fn with_oauth(
        mut self,
        client_id: impl Into<String>,
        client_secret: Secret,
        tenant: impl Into<String>,
    ) -> EwsConfig {
        self.auth = EwsAuth::Oauth;
        self.client_id = Some(client_id.into());
        self.client_secret = Some(client_secret);
        self.tenant = Some(tenant.into());
        self
    }

    /// The deadline of each request.
    pub fn with_timeout(mut self, timeout: Duration) -> EwsConfig {
        self.timeout = timeout;
        self
    }

    /// Also trusts the CA certificate(s) in this PEM file.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> EwsConfig {
        self.ca_file = Some(path.into());
        self
    }
}

/// Email Services (Gmail API) settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
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

impl GmailConfig {
    /// Settings for the OAuth client `client_id` on Google's own endpoints with
    /// [`DEFAULT_TIMEOUT`]; give the refresh token or its file with the `with_*` methods.
    ///
    /// ```
    /// use mailroom_core::{GmailConfig, Secret};
    /// let config = GmailConfig::new("123-abc.apps.googleusercontent.com", Secret::new("GOCSPX-x"))
    ///     .with_refresh_token(Secret::new("1//refresh"));
    /// assert_eq!(config.token_uri.as_str(), "https://oauth2.googleapis.com/token");
    /// ```
    pub fn new(client_id: impl Into<String>, client_secret: Secret) -> GmailConfig {
        let url = |text: &str| url::Url::parse(text).expect("a built-in Google endpoint is a URL");
        GmailConfig {
            client_id: client_id.into(),
            client_secret,
            refresh_token: None,
            token_file: None,
            auth_uri: url(load::GOOGLE_AUTH_URI),
            token_uri: url(load::GOOGLE_TOKEN_URI),
            api_base: url(load::GMAIL_API_BASE),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The refresh token from the consent flow.
    pub fn with_refresh_token(mut self, token: Secret) -> GmailConfig {
        self.refresh_token = Some(token);
        self
    }

    /// The file holding the refresh token (written by `mailroom connect google`).
    pub fn with_token_file(mut self, path: impl Into<PathBuf>) -> GmailConfig {
        self.token_file = Some(path.into());
        self
    }

    /// Other OAuth endpoints (tests, proxies).
    pub fn with_endpoints(mut self, auth_uri: url::Url, token_uri: url::Url) -> GmailConfig {
        self.auth_uri = auth_uri;
        self.token_uri = token_uri;
        self
    }

    /// Another Gmail API base (tests, proxies).
    pub fn with_api_base(mut self, api_base: url::Url) -> GmailConfig {
        self.api_base = api_base;
        self
    }

    /// The deadline of each request.
    pub fn with_timeout(mut self, timeout: Duration) -> GmailConfig {
        self.timeout = timeout;
        self
    }
}

#[cfg(test)]
mod tests;
