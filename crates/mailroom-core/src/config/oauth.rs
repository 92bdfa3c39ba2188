//! OAuth settings shared by Email Services and Web Mail: Microsoft 365 (Graph, or XOAUTH2 to Outlook SMTP) and Google (XOAUTH2 to Gmail SMTP).

use std::path::PathBuf;
use std::time::Duration;

use super::Field;

/// The Microsoft identity platform's sign-in host.
pub const MICROSOFT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The Microsoft Graph API base.
pub const GRAPH_API_BASE: &str = "https://graph.microsoft.com";
/// The client-credentials scope for Graph (`Mail.Send` application permission).
pub const GRAPH_APP_SCOPE: &str = "https://graph.microsoft.com/.default";
/// The delegated scopes for Graph with a refresh token: `Mail.Send` for `sendMail`, and
/// `Mail.ReadWrite` for the draft and attachment uploads that carry messages above one 4 MB
/// request (user-consentable, like `Mail.Send`; the sign-in is the Company Email account
/// itself, so it reaches no other mailbox).
pub const GRAPH_DELEGATED_SCOPE: &str = "https://graph.microsoft.com/Mail.Send https://graph.microsoft.com/Mail.ReadWrite offline_access openid email profile";
/// The client-credentials scope for Exchange Online SMTP (`SMTP.SendAsApp`).
pub const OUTLOOK_APP_SCOPE: &str = "https://outlook.office365.com/.default";
/// The delegated scopes for Exchange Online SMTP (`SMTP.Send`) with a refresh token.
pub const OUTLOOK_DELEGATED_SCOPE: &str = "https://outlook.office365.com/SMTP.Send offline_access openid email profile";
/// The scope Gmail's SMTP server needs for XOAUTH2.
pub const GOOGLE_SMTP_SCOPE: &str = "https://mail.google.com/";

use crate::secret::Secret;

/// How mailroom signs in to Microsoft 365.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MicrosoftAuth {
    /// Client credentials: the app itself, with an application permission (`Mail.Send`,
    /// `SMTP.SendAsApp`) that an administrator consented to.
    Application,
    /// A refresh token of the signed-in Company Email account (`mailroom connect microsoft`).
    Delegated,
}

impl MicrosoftAuth {
    /// The config value (`application`, `delegated`).
    pub fn as_str(self) -> &'static str {
        match self {
            MicrosoftAuth::Application => "application",
            MicrosoftAuth::Delegated => "delegated",
        }
    }
}

/// An Entra ID app registration and how it signs in (the keys of `[email_services]` with
/// `provider = "microsoft"`, and of `[web_mail.oauth]` with `provider = "microsoft"`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MicrosoftOAuth {
    /// Directory (tenant) ID or a verified domain.
    pub tenant: String,
    /// Application (client) ID.
    pub client_id: String,
    /// Client secret: required for `application`, optional for `delegated` (a public
    /// "Mobile and desktop applications" registration has none).
    pub client_secret: Option<Secret>,
    /// Application or delegated.
    pub auth: MicrosoftAuth,
    /// Delegated: refresh token given inline or by environment.
    pub refresh_token: Option<Secret>,
    /// Delegated: file holding the refresh token (written by `mailroom connect microsoft`).
    pub token_file: Option<PathBuf>,
    /// The sign-in host, `https://login.microsoftonline.com` unless overridden.
    pub authority: url::Url,
    /// The dotted config section these settings came from (`email_services` or
    /// `web_mail.oauth`), so errors name the right field.
    pub section: &'static str,
}

impl MicrosoftOAuth {
    /// `{authority}/{tenant}/oauth2/v2.0/{endpoint}` (`token`, `authorize`, `devicecode`).
    ///
    /// ```
    /// # use mailroom_core::config::{CompanyEmail, ServiceConfig};
    /// let toml = r#"
    ///     service = "email_services"
    ///     email_address = "erp@company.com"
    ///     [email_services]
    ///     provider = "microsoft"
    ///     tenant = "company.onmicrosoft.com"
    ///     client_id = "11111111-2222-3333-4444-555555555555"
    ///     client_secret_env = "MAILROOM_MS_SECRET"
    ///     auth = "application"
    /// "#;
    /// let loaded = CompanyEmail::from_toml(toml, &|_| Some("secret".into())).unwrap();
    /// let ServiceConfig::Graph(graph) = &loaded.config.service else { unreachable!() };
    /// assert_eq!(
    ///     graph.oauth.endpoint("token").as_str(),
    ///     "https://login.microsoftonline.com/company.onmicrosoft.com/oauth2/v2.0/token"
    /// );
    /// ```
    pub fn endpoint(&self, endpoint: &str) -> url::Url {
        let mut url = self.authority.clone();
        let base = self.authority.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/{}/oauth2/v2.0/{endpoint}", self.tenant));
        url.set_query(None);
        url
    }

    /// The config field of `key` in this section (`email_services.client_secret`, …), so errors
    /// name the field the user wrote.
    ///
    /// ```
    /// # use mailroom_core::config::{CompanyEmail, Field, MicrosoftKey, ServiceConfig, SmtpOAuth};
    /// let toml = r#"
    ///     service = "web_mail"
    ///     email_address = "erp@company.com"
    ///     [web_mail]
    ///     server = "smtp.office365.com"
    ///     port = 587
    ///     username = "erp@company.com"
    ///     auth = "oauth"
    ///     [web_mail.oauth]
    ///     provider = "microsoft"
    ///     tenant = "company.onmicrosoft.com"
    ///     client_id = "11111111-2222-3333-4444-555555555555"
    ///     client_secret_env = "MAILROOM_MS_SECRET"
    ///     auth = "application"
    /// "#;
    /// let loaded = CompanyEmail::from_toml(toml, &|_| Some("secret".into())).unwrap();
    /// let ServiceConfig::WebMail(smtp) = &loaded.config.service else { unreachable!() };
    /// let Some(SmtpOAuth::Microsoft(oauth)) = &smtp.oauth else { unreachable!() };
    /// assert_eq!(oauth.field(MicrosoftKey::ClientSecret), Field::WebMailOauthClientSecret);
    /// ```
    pub fn field(&self, key: MicrosoftKey) -> Field {
        key.field_in(self.section)
    }
}

/// A key of a Microsoft sign-in section: the same keys in `[email_services]` (Graph) and
/// `[web_mail.oauth]` (XOAUTH2 to Outlook SMTP). [`MicrosoftOAuth::field`] gives its [`Field`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MicrosoftKey {
    /// `provider`.
    Provider,
    /// `tenant`.
    Tenant,
    /// `client_id`.
    ClientId,
    /// `client_secret`.
    ClientSecret,
    /// `client_secret_env`.
    ClientSecretEnv,
    /// `auth`.
    Auth,
    /// `refresh_token`.
    RefreshToken,
    /// `refresh_token_env`.
    RefreshTokenEnv,
    /// `token_file`.
    TokenFile,
    /// `authority`.
    Authority,
}

impl MicrosoftKey {
    /// This key's field in the Microsoft section `section`: `web_mail.oauth`, else
    /// `email_services` (the two sections [`MicrosoftOAuth::section`] can name).
    ///
    /// ```
    /// use mailroom_core::config::{Field, MicrosoftKey};
    /// assert_eq!(MicrosoftKey::Tenant.field_in("email_services"), Field::EmailServicesTenant);
    /// assert_eq!(MicrosoftKey::Tenant.field_in("web_mail.oauth"), Field::WebMailOauthTenant);
    /// ```
    pub fn field_in(self, section: &str) -> Field {
        let web_mail = section == Field::WebMailOauth.name();
        match self {
            MicrosoftKey::Provider if web_mail => Field::WebMailOauthProvider,
            MicrosoftKey::Provider => Field::EmailServicesProvider,
            MicrosoftKey::Tenant if web_mail => Field::WebMailOauthTenant,
            MicrosoftKey::Tenant => Field::EmailServicesTenant,
            MicrosoftKey::ClientId if web_mail => Field::WebMailOauthClientId,
            MicrosoftKey::ClientId => Field::EmailServicesClientId,
            MicrosoftKey::ClientSecret if web_mail => Field::WebMailOauthClientSecret,
            MicrosoftKey::ClientSecret => Field::EmailServicesClientSecret,
            MicrosoftKey::ClientSecretEnv if web_mail => Field::WebMailOauthClientSecretEnv,
            MicrosoftKey::ClientSecretEnv => Field::EmailServicesClientSecretEnv,
            MicrosoftKey::Auth if web_mail => Field::WebMailOauthAuth,
            MicrosoftKey::Auth => Field::EmailServicesAuth,
            MicrosoftKey::RefreshToken if web_mail => Field::WebMailOauthRefreshToken,
            MicrosoftKey::RefreshToken => Field::EmailServicesRefreshToken,
            MicrosoftKey::RefreshTokenEnv if web_mail => Field::WebMailOauthRefreshTokenEnv,
            MicrosoftKey::RefreshTokenEnv => Field::EmailServicesRefreshTokenEnv,
            MicrosoftKey::TokenFile if web_mail => Field::WebMailOauthTokenFile,
            MicrosoftKey::TokenFile => Field::EmailServicesTokenFile,
            MicrosoftKey::Authority if web_mail => Field::WebMailOauthAuthority,
            MicrosoftKey::Authority => Field::EmailServicesAuthority,
        }
    }
}

/// Email Services through Microsoft Graph (`provider = "microsoft"`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GraphConfig {
    /// The app registration and how it signs in.
    pub oauth: MicrosoftOAuth,
    /// The Graph API base, `https://graph.microsoft.com` unless overridden.
    pub api_base: url::Url,
    /// Deadline for each request.
    pub timeout: Duration,
}

/// A Google OAuth client for XOAUTH2 on Gmail's SMTP server (`[web_mail.oauth]` with
/// `provider = "gmail"`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GoogleOAuth {
    /// OAuth client ID (`….apps.googleusercontent.com`).
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: Secret,
    /// Refresh token given inline or by environment.
    pub refresh_token: Option<Secret>,
    /// File holding the refresh token (written by `mailroom connect google`).
    pub token_file: Option<PathBuf>,
    /// Google's authorization endpoint.
    pub auth_uri: url::Url,
    /// Google's token endpoint.
    pub token_uri: url::Url,
}

/// Where Web Mail's XOAUTH2 tokens come from (`[web_mail] auth = "oauth"`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SmtpOAuth {
    /// Google: refresh token with the `https://mail.google.com/` scope.
    Google(GoogleOAuth),
    /// Microsoft 365: `SMTP.SendAsApp` (application) or `SMTP.Send` (delegated).
    Microsoft(MicrosoftOAuth),
}
