//! The sign-in behind `mailroom connect microsoft`: authorization code + PKCE on a loopback redirect (Entra ID "Mobile and desktop applications", `http://localhost`) or the device code flow, the check that the signed-in account is the Company Email address, and the refresh token into `token_file`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mailroom_core::config::{CompanyEmail, MicrosoftAuth, MicrosoftOAuth, ServiceConfig, SmtpOAuth};
use mailroom_core::config::{Field, MicrosoftKey};
use mailroom_core::{ErrorKind, Secret, SendError};
use mailroom_http::{ConsentError, DeviceAuthorization, LoopbackConsent, OAuthClient, OAuthError, Token};

use crate::error::{Context, Resource};
use crate::token::{classify_token_failure, oauth_client, save_refresh_token, scopes};

/// Where the consent URL and the remediation send people in Entra admin centre.
const APP_REGISTRATION: &str = "Entra admin centre → Identity → Applications → App registrations → your app";

/// What `connect microsoft` signs in for: the app registration of the config (Graph for
/// `[email_services] provider = "microsoft"`, Exchange Online SMTP for `[web_mail.oauth]`),
/// the Company Email address the sign-in must be, and the `token_file` the refresh token goes to.
///
/// ```no_run
/// # async fn run(config: &mailroom_core::config::CompanyEmail) -> Result<(), mailroom_core::SendError> {
/// use std::time::Duration;
/// use mailroom_graph::MicrosoftSignIn;
/// let sign_in = MicrosoftSignIn::from_config(config)?;
///
/// // In a browser on this machine: authorization code + PKCE, redirect to http://localhost:PORT.
/// let flow = sign_in.browser().await.map_err(|e| e.into_send_error(&sign_in))?;
/// println!("Open {} and sign in as {}", flow.authorize_url(), sign_in.account());
/// let connected = flow.finish(Duration::from_secs(300)).await.map_err(|e| e.into_send_error(&sign_in))?;
///
/// // Or on a server without a browser: the device code flow.
/// let device = sign_in.device_code().await.map_err(|e| e.into_send_error(&sign_in))?;
/// println!("Open {} and enter {}", device.verification_uri(), device.user_code());
/// let connected = device.finish(Duration::from_secs(900)).await.map_err(|e| e.into_send_error(&sign_in))?;
///
/// sign_in.save(&connected).expect("writable token_file");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MicrosoftSignIn {
    oauth: MicrosoftOAuth,
    resource: Resource,
    account: String,
    token_file: PathBuf,
    timeout: Duration,
}

impl std::fmt::Debug for MicrosoftSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MicrosoftSignIn")
            .field("section", &self.oauth.section)
            .field("resource", &self.resource)
            .field("account", &self.account)
            .field("token_file", &self.token_file)
            .finish_non_exhaustive()
    }
}

/// The result of a completed sign-in, checked: a refresh token of the Company Email account.
#[derive(Debug)]
pub struct Connected {
    /// The refresh token to store (in `token_file`).
    pub refresh_token: Secret,
    /// The account that signed in (the Company Email address, as Microsoft spelled it).
    pub account: String,
    /// The scopes Microsoft says were granted.
    pub scope: Option<String>,
}

/// Why `connect microsoft` failed. [`ConnectError::into_send_error`] gives the classified
/// error with the field to change and the Entra step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The loopback listener could not be opened.
    #[error("cannot listen on 127.0.0.1 for Microsoft's redirect: {0}")]
    Listen(#[source] std::io::Error),
    /// The sign-in could not be prepared before any socket was opened (already classified):
    /// the HTTPS client for the token endpoint could not be built, or the consent URL could
    /// not be made.
    #[error("cannot prepare the sign-in with Microsoft: {}", .0.detail())]
    Setup(#[source] Box<SendError>),
    /// The sign-in page sent the browser back with an `error` (the user declined: `access_denied`),
    /// or the device flow was declined (`authorization_declined`).
    #[error("Microsoft did not grant access: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Denied {
        /// The `error` parameter.
        error: String,
        /// The `error_description` parameter, if any.
        description: Option<String>,
    },
    /// No redirect for this sign-in arrived in time, but one with another `state` did.
    #[error(
        "the browser came back with the state parameter of another sign-in (an older tab or link), which was refused, and no answer for this sign-in arrived in time"
    )]
    StateMismatch,
    /// No redirect arrived in time.
    #[error("no answer from the browser within {} s", .0.as_secs())]
    TimedOut(Duration),
    /// The device code expired (or the wait ended) before the sign-in was finished.
    #[error("the device code expired before the sign-in was finished")]
    DeviceCodeExpired,
    /// Microsoft granted access without a refresh token (`offline_access` missing).
    #[error("Microsoft granted access but sent no refresh token")]
    NoRefreshToken,
    /// The grant lacks the permission that sends mail. Nothing was stored.
    #[error("Microsoft granted only {scope}, which does not include {permission}")]
    ScopeNotGranted {
        /// The granted scopes, as Microsoft listed them.
        scope: String,
        /// The permission that was asked for (`Mail.Send`, `SMTP.Send`).
        permission: &'static str,
    },
    /// The account that signed in is not the Company Email address. Nothing was stored.
    #[error("the sign-in was with {signed_in}, not with the Company Email address {expected}")]
    WrongAccount {
        /// The account that signed in.
        signed_in: String,
        /// `email_address`.
        expected: String,
    },
    /// Microsoft did not say which account signed in (no id_token). Nothing was stored.
    #[error(
        "Microsoft did not say which account signed in (no id_token with email or preferred_username), so the Company Email address {expected} cannot be checked"
    )]
    UnknownAccount {
        /// `email_address`.
        expected: String,
    },
    /// The token endpoint refused or failed (already classified: AADSTS code, field, Entra step).
    #[error("{0}")]
    Token(#[source] Box<SendError>),
}

impl MicrosoftSignIn {
    /// The sign-in a config asks for: `[email_services]` with `provider = "microsoft"` (Graph
    /// `Mail.Send`) or `[web_mail] auth = "oauth"` with `[web_mail.oauth] provider =
    /// "microsoft"` (Exchange Online `SMTP.Send`). Either needs `auth = "delegated"` and a
    /// `token_file`; otherwise the error names the field to change.
    pub fn from_config(config: &CompanyEmail) -> Result<MicrosoftSignIn, SendError> {
        let (oauth, resource, timeout) = match &config.service {
            ServiceConfig::Graph(graph) => (&graph.oauth, Resource::Graph, graph.timeout),
            ServiceConfig::WebMail(smtp) => match &smtp.oauth {
                Some(SmtpOAuth::Microsoft(oauth)) => (oauth, Resource::OutlookSmtp, smtp.timeout),
                _ => return Err(not_microsoft(config)),
            },
            _ => return Err(not_microsoft(config)),
        };
        if oauth.auth != MicrosoftAuth::Delegated {
            return Err(SendError::invalid_config(
                oauth.field(MicrosoftKey::Auth),
                "connect microsoft signs in as the Company Email account, which is auth = \"delegated\"; auth = \"application\" needs no sign-in (the app's client secret and admin consent are enough)",
            )
            .with_hint(format!("Set auth = \"delegated\" and token_file = \"microsoft-token.json\" in [{}], or keep auth = \"application\" and run `mailroom validate` instead.", oauth.section)));
        }
        let Some(token_file) = oauth.token_file.clone() else {
            return Err(SendError::invalid_config(
                oauth.field(MicrosoftKey::TokenFile),
                "connect microsoft stores the refresh token in the file named by token_file, and this config has none",
            )
            .with_hint(format!(
                "Add token_file = \"microsoft-token.json\" to [{}] and remove refresh_token / refresh_token_env.",
                oauth.section
            )));
        };
        Ok(MicrosoftSignIn {
            oauth: oauth.clone(),
            resource,
            account: config.sender.email.to_string(),
            token_file,
            timeout,
        })
    }

    /// The Company Email address the sign-in must be.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// Where [`MicrosoftSignIn::save`] writes the refresh token.
    pub fn token_file(&self) -> &Path {
        &self.token_file
    }

    /// The scopes asked for: the send permission, `offline_access` (a refresh token) and
    /// `openid email profile` (who signed in).
    pub fn scopes(&self) -> Vec<String> {
        scopes(self.resource, MicrosoftAuth::Delegated)
    }

    fn client(&self) -> Result<OAuthClient, ConnectError> {
        oauth_client(&self.oauth, self.timeout).map_err(|error| ConnectError::Setup(Box::new(error)))
    }

    /// A consent that failed for another reason than its listener, on `authority`.
    fn setup_failed(&self, error: ConsentError) -> ConnectError {
        ConnectError::Setup(Box::new(SendError::invalid_config(
            self.oauth.field(MicrosoftKey::Authority),
            error.to_string(),
        )))
    }

    fn context(&self) -> Context {
        Context::new(&self.oauth, self.account.clone(), self.resource)
    }

    /// Starts the browser sign-in: opens a listener on an ephemeral port of 127.0.0.1 and
    /// builds the consent URL (PKCE S256, `state`, `login_hint`, redirect `http://localhost:PORT`).
    pub async fn browser(&self) -> Result<BrowserSignIn, ConnectError> {
        let client = self.client()?;
        let scopes = self.scopes();
        let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let extra = [("login_hint", self.account.as_str()), ("prompt", "select_account")];
        let consent = LoopbackConsent::start(client, &scopes, &extra, "localhost").await.map_err(|e| match e {
            ConsentError::Listen(io) => ConnectError::Listen(io),
            other => self.setup_failed(other),
        })?;
        Ok(BrowserSignIn { consent, sign_in: self.clone() })
    }

    /// Starts the device code flow: asks `{authority}/{tenant}/oauth2/v2.0/devicecode` for a
    /// user code to enter at the verification page on any device.
    pub async fn device_code(&self) -> Result<DeviceSignIn, ConnectError> {
        let client = self.client()?;
        let scopes = self.scopes();
        let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let mut transcript = mailroom_core::Transcript::new();
        let authorization =
            client.start_device(&scopes, &mut transcript).await.map_err(|error| self.token_error(error, transcript))?;
        Ok(DeviceSignIn { client, authorization, sign_in: self.clone() })
    }

    /// Writes `connected` to `token_file` (atomic, owner-only).
    pub fn save(&self, connected: &Connected) -> std::io::Result<()> {
        save_refresh_token(&self.token_file, &self.oauth.client_id, &connected.refresh_token, &connected.account)
    }

    fn token_error(&self, error: OAuthError, transcript: mailroom_core::Transcript) -> ConnectError {
        if let Some(refusal) = error.refusal()
            && let Some(code) = refusal.error.as_deref()
            && matches!(code, "authorization_declined" | "access_denied")
        {
            return ConnectError::Denied { error: code.to_owned(), description: refusal.description.clone() };
        }
        if matches!(error, OAuthError::DeviceCodeExpired) {
            return ConnectError::DeviceCodeExpired;
        }
        ConnectError::Token(Box::new(classify_token_failure(error, &self.context()).with_transcript(transcript)))
    }

    /// What a grant must be to be stored: a refresh token, the send permission, the Company Email account.
    fn check(&self, token: Token) -> Result<Connected, ConnectError> {
        let permission = self.resource.permission(MicrosoftAuth::Delegated);
        if let Some(scope) = token.scope.as_deref().filter(|scope| !scope.trim().is_empty())
            && !scope.to_ascii_lowercase().contains(&permission.to_ascii_lowercase())
        {
            return Err(ConnectError::ScopeNotGranted { scope: scope.to_owned(), permission });
        }
        let refresh_token = token.refresh.ok_or(ConnectError::NoRefreshToken)?;
        let claims = token.id.unwrap_or_default();
        // Microsoft's `email` is the primary SMTP address when present; `preferred_username`
        // is the sign-in name (UPN), which may differ from it. Either matching is the mailbox.
        let names = [claims.email.as_deref(), claims.preferred_username.as_deref()];
        if let Some(name) = names.iter().flatten().find(|name| name.eq_ignore_ascii_case(&self.account)) {
            return Ok(Connected { refresh_token, account: (*name).to_owned(), scope: token.scope });
        }
        match claims.account() {
            Some(signed_in) => {
                Err(ConnectError::WrongAccount { signed_in: signed_in.to_owned(), expected: self.account.clone() })
            }
            None => Err(ConnectError::UnknownAccount { expected: self.account.clone() }),
        }
    }
}

fn not_microsoft(config: &CompanyEmail) -> SendError {
    SendError::invalid_config(
        Field::Service,
        format!(
            "connect microsoft needs service = \"email_services\" with provider = \"microsoft\", or service = \"web_mail\" with auth = \"oauth\" and [web_mail.oauth] provider = \"microsoft\"; this config uses service = \"{}\"",
            config.service_kind().as_str()
        ),
    )
}

/// A browser sign-in in progress: the URL to open and a listener waiting for the redirect.
pub struct BrowserSignIn {
    consent: LoopbackConsent,
    sign_in: MicrosoftSignIn,
}

impl std::fmt::Debug for BrowserSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserSignIn").field("redirect_uri", &self.consent.redirect_uri()).finish_non_exhaustive()
    }
}

impl BrowserSignIn {
    /// The sign-in page to open.
    pub fn authorize_url(&self) -> &url::Url {
        self.consent.authorize_url()
    }

    /// Where Microsoft sends the browser back: `http://localhost:PORT` (listening on 127.0.0.1).
    pub fn redirect_uri(&self) -> &str {
        self.consent.redirect_uri()
    }

    /// Waits up to `wait` for the redirect carrying this sign-in's `state` (other requests are
    /// answered and ignored), exchanges the code with the PKCE verifier, and checks the grant
    /// (refresh token, send permission, account). The browser page says how it went.
    pub async fn finish(self, wait: Duration) -> Result<Connected, ConnectError> {
        let sign_in = self.sign_in;
        let accept = |token, _transcript| sign_in.check(token);
        match self.consent.finish_with(wait, accept).await {
            Ok(checked) => checked,
            Err(ConsentError::Listen(io)) => Err(ConnectError::Listen(io)),
            Err(ConsentError::Denied { error, description }) => Err(ConnectError::Denied { error, description }),
            Err(ConsentError::StateMismatch) => Err(ConnectError::StateMismatch),
            Err(ConsentError::TimedOut(wait)) => Err(ConnectError::TimedOut(wait)),
            Err(ConsentError::Token { error, transcript }) => Err(sign_in.token_error(error, transcript)),
            Err(other) => Err(sign_in.setup_failed(other)),
        }
    }
}

/// A device code sign-in in progress: show the user the code and the page, then wait.
pub struct DeviceSignIn {
    client: OAuthClient,
    authorization: DeviceAuthorization,
    sign_in: MicrosoftSignIn,
}

impl std::fmt::Debug for DeviceSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSignIn").field("authorization", &self.authorization).finish_non_exhaustive()
    }
}

impl DeviceSignIn {
    /// The code to enter.
    pub fn user_code(&self) -> &str {
        &self.authorization.user_code
    }

    /// Where to enter it (`https://microsoft.com/devicelogin`).
    pub fn verification_uri(&self) -> &str {
        &self.authorization.verification_uri
    }

    /// Microsoft's own instruction text, if it sent one.
    pub fn message(&self) -> Option<&str> {
        self.authorization.message.as_deref()
    }

    /// How long the code is valid (Microsoft: 15 minutes; bounded to an hour).
    pub fn expires_in(&self) -> Duration {
        self.authorization.expires_in
    }

    /// Polls the token endpoint at the server's interval (longer after `slow_down`, at most a
    /// minute between polls) until the user signed in, declined, the code expired, or `wait`
    /// passed (never past the code's lifetime), then checks the grant like the browser flow.
    pub async fn finish(self, wait: Duration) -> Result<Connected, ConnectError> {
        let mut transcript = mailroom_core::Transcript::new();
        let started = Instant::now();
        let token = self
            .client
            .poll_device(&self.authorization, wait, &mut transcript)
            .await
            .map_err(|error| self.sign_in.token_error(error, transcript))?;
        tracing::debug!(elapsed = ?started.elapsed(), "device code sign-in finished");
        self.sign_in.check(token)
    }
}

impl ConnectError {
    /// The classified error, for the CLI's JSON and remediation output, with the field to
    /// change and the Entra admin-centre step that fixes it.
    pub fn into_send_error(self, sign_in: &MicrosoftSignIn) -> SendError {
        let rerun = "run `mailroom connect microsoft --config FILE` again";
        let rerun_first = "Run `mailroom connect microsoft --config FILE` again";
        let section = sign_in.oauth.section;
        let field = |key: MicrosoftKey| sign_in.oauth.field(key);
        let permission = sign_in.resource.permission(MicrosoftAuth::Delegated);
        let detail = self.to_string();
        match self {
            ConnectError::Token(error) | ConnectError::Setup(error) => *error,
            ConnectError::Listen(_) => SendError::new(ErrorKind::ConnectFailed, detail)
                .with_hint(format!("mailroom needs a free local port on 127.0.0.1 to receive Microsoft's answer: check that local connections are allowed, then {rerun}, or use --device-code on a machine without a browser."))
                .with_complete_hints(),
            ConnectError::Denied { error, description } => {
                let aadsts = description.as_deref().and_then(|d| d.split(':').next()).unwrap_or_default().to_owned();
                let hint = match (error.as_str(), aadsts.as_str()) {
                    (_, "AADSTS50011") => format!("The app registration does not accept the redirect http://localhost: in {APP_REGISTRATION} → Authentication → Add a platform → Mobile and desktop applications, add the custom redirect URI http://localhost, save, and {rerun}."),
                    (_, "AADSTS65001") | ("consent_required", _) => format!("The tenant requires an administrator's consent: in {APP_REGISTRATION} → API permissions → Add a permission → {} → Delegated permissions → {permission}, then \"Grant admin consent\"; then {rerun}.", match sign_in.resource { Resource::Graph => "Microsoft Graph", Resource::OutlookSmtp => "APIs my organization uses → Office 365 Exchange Online" }),
                    (_, "AADSTS50020" | "AADSTS50034") => format!("The account that signed in is not in the tenant {}: {rerun} and sign in as {}, or check {}.", sign_in.oauth.tenant, sign_in.account, field(MicrosoftKey::Tenant)),
                    ("access_denied" | "authorization_declined", _) => format!("The sign-in was cancelled or consent was declined: {rerun}, sign in as {} and click Accept on Microsoft's consent page.", sign_in.account),
                    _ => format!("Check {} and {} against {APP_REGISTRATION} → Overview, then {rerun}.", field(MicrosoftKey::ClientId), field(MicrosoftKey::Tenant)),
                };
                SendError::new(ErrorKind::PermissionDenied, detail).with_field(field(MicrosoftKey::ClientId)).with_hint(hint).with_complete_hints()
            }
            ConnectError::WrongAccount { signed_in, expected } => SendError::new(ErrorKind::SenderNotAllowed, detail)
                .with_field(Field::EmailAddress)
                .with_hint(format!("Graph and Exchange Online send as the account that signed in, so nothing was stored. {rerun_first} and sign in as {expected} (use \"Use another account\", or a private window if the browser signs in as {signed_in} by itself), or set email_address = \"{signed_in}\" if that account is the Company Email."))
                .with_complete_hints(),
            ConnectError::UnknownAccount { .. } => SendError::new(ErrorKind::Protocol, detail)
                .with_field(field(MicrosoftKey::Authority))
                .with_hint(format!("mailroom asks for openid email profile to learn who signed in: check that {} is https://login.microsoftonline.com (or your national cloud) and {rerun}. Nothing was stored.", field(MicrosoftKey::Authority))),
            ConnectError::StateMismatch => SendError::new(ErrorKind::Protocol, detail)
                .with_hint(format!("{rerun_first}, and finish the sign-in in the tab opened from the newest link (close older sign-in tabs). Nothing needs changing in the config file."))
                .with_complete_hints(),
            ConnectError::TimedOut(_) => SendError::new(ErrorKind::Timeout, detail)
                .with_hint(format!("Open the printed link in a browser on this machine (the redirect goes to http://localhost), sign in and accept before the time runs out. If Microsoft showed an error page instead (AADSTS50011), add the platform Mobile and desktop applications with redirect http://localhost in {APP_REGISTRATION} → Authentication."))
                .with_hint(format!("{rerun_first} (--wait-secs gives more time), or use --device-code on a machine without a browser."))
                .with_complete_hints(),
            ConnectError::DeviceCodeExpired => SendError::new(ErrorKind::OauthReconnectRequired, detail)
                .with_field(field(MicrosoftKey::TokenFile))
                .with_hint(format!("Run `mailroom connect microsoft --device-code --config FILE` again and enter the code at the page it prints within its time (15 minutes). The device code flow needs {APP_REGISTRATION} → Authentication → Advanced settings → \"Allow public client flows\" = Yes."))
                .with_complete_hints(),
            ConnectError::NoRefreshToken => SendError::new(ErrorKind::OauthReconnectRequired, detail)
                .with_field(field(MicrosoftKey::TokenFile))
                .with_hint(format!("mailroom asks for offline_access; check {APP_REGISTRATION} → API permissions lists offline_access (Microsoft Graph, Delegated), then {rerun}.")),
            ConnectError::ScopeNotGranted { permission, .. } => SendError::new(ErrorKind::PermissionDenied, detail)
                .with_field(field(MicrosoftKey::ClientId))
                .with_hint(format!("Add the delegated permission {permission} in {APP_REGISTRATION} → API permissions (and grant admin consent if the tenant requires it), then {rerun}. The [{section}] section is otherwise fine."))
                .with_complete_hints(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailroom_core::config::CompanyEmail;

    fn config(extra: &str) -> CompanyEmail {
        let toml = format!(
            "service = \"email_services\"\nemail_address = \"erp@company.com\"\n[email_services]\nprovider = \"microsoft\"\ntenant = \"company.onmicrosoft.com\"\nclient_id = \"11111111-2222-3333-4444-555555555555\"\n{extra}"
        );
        CompanyEmail::from_toml(&toml, &|_| Some("x".into())).unwrap().config
    }

    fn token(scope: Option<&str>, refresh: Option<&str>, claims: Option<mailroom_http::IdClaims>) -> Token {
        let mut token = Token::for_tests("access", Some(3599));
        token.scope = scope.map(str::to_owned);
        token.refresh = refresh.map(Secret::new);
        token.id = claims;
        token
    }

    fn claims(email: Option<&str>, upn: Option<&str>) -> Option<mailroom_http::IdClaims> {
        Some(mailroom_http::IdClaims {
            email: email.map(str::to_owned),
            preferred_username: upn.map(str::to_owned),
            ..Default::default()
        })
    }

    /// Issue 10: a sign-in that failed before its listener existed was reported as "cannot
    /// listen on 127.0.0.1" with advice about local ports; it names its own cause.
    #[test]
    fn a_sign_in_that_cannot_be_prepared_is_not_blamed_on_the_listener() {
        let sign_in = MicrosoftSignIn::from_config(&config("auth = \"delegated\"\ntoken_file = \"t.json\"\n")).unwrap();
        let error = sign_in.setup_failed(ConsentError::NoAuthorizationEndpoint);
        assert!(error.to_string().contains("authorization endpoint"), "{error}");
        let error = error.into_send_error(&sign_in);
        assert_eq!(error.kind(), ErrorKind::InvalidConfig, "{error}");
        assert_eq!(error.field(), Some("email_services.authority"));
        let said = format!("{error} {:?}", error.remediation());
        assert!(!said.contains("listen") && !said.contains("local port"), "{said}");
    }

    #[test]
    fn only_delegated_configs_with_a_token_file_can_connect() {
        let error =
            MicrosoftSignIn::from_config(&config("client_secret_env = \"S\"\nauth = \"application\"\n")).unwrap_err();
        assert_eq!(error.field(), Some("email_services.auth"));
        let error =
            MicrosoftSignIn::from_config(&config("auth = \"delegated\"\nrefresh_token_env = \"R\"\n")).unwrap_err();
        assert_eq!(error.field(), Some("email_services.token_file"));
        let sign_in = MicrosoftSignIn::from_config(&config("auth = \"delegated\"\ntoken_file = \"t.json\"\n")).unwrap();
        assert_eq!(sign_in.account(), "erp@company.com");
        assert!(sign_in.scopes().iter().any(|s| s == "offline_access"));
    }

    #[test]
    fn the_grant_must_be_the_company_email_with_a_refresh_token_that_can_send() {
        let sign_in = MicrosoftSignIn::from_config(&config("auth = \"delegated\"\ntoken_file = \"t.json\"\n")).unwrap();
        let scope = Some("https://graph.microsoft.com/Mail.Send openid profile email");
        let ok = sign_in.check(token(scope, Some("r"), claims(None, Some("ERP@company.com")))).unwrap();
        assert_eq!(ok.account, "ERP@company.com");
        // The UPN may differ from the primary address: the email claim matching is enough.
        assert!(
            sign_in
                .check(token(scope, Some("r"), claims(Some("erp@company.com"), Some("erp@x.onmicrosoft.com"))))
                .is_ok()
        );
        let wrong = sign_in.check(token(scope, Some("r"), claims(None, Some("boss@company.com")))).unwrap_err();
        assert!(matches!(&wrong, ConnectError::WrongAccount { signed_in, .. } if signed_in == "boss@company.com"));
        assert_eq!(wrong.into_send_error(&sign_in).field(), Some("email_address"));
        assert!(matches!(sign_in.check(token(scope, Some("r"), None)), Err(ConnectError::UnknownAccount { .. })));
        assert!(matches!(
            sign_in.check(token(scope, None, claims(None, Some("erp@company.com")))),
            Err(ConnectError::NoRefreshToken)
        ));
        assert!(matches!(
            sign_in.check(token(Some("openid profile User.Read"), Some("r"), claims(None, Some("erp@company.com")))),
            Err(ConnectError::ScopeNotGranted { permission: "Mail.Send", .. })
        ));
    }

    #[test]
    fn a_declined_consent_and_a_redirect_mismatch_name_their_entra_step() {
        let sign_in = MicrosoftSignIn::from_config(&config("auth = \"delegated\"\ntoken_file = \"t.json\"\n")).unwrap();
        let declined = ConnectError::Denied {
            error: "access_denied".into(),
            description: Some("AADSTS65004: User declined to consent to access the app.".into()),
        }
        .into_send_error(&sign_in);
        assert_eq!(declined.kind(), ErrorKind::PermissionDenied);
        assert!(declined.remediation().iter().any(|h| h.contains("click Accept")), "{declined:?}");
        let mismatch = ConnectError::Denied {
            error: "invalid_request".into(),
            description: Some("AADSTS50011: The redirect URI 'http://localhost:1' specified in the request does not match the redirect URIs configured for the application.".into()),
        }
        .into_send_error(&sign_in);
        assert!(mismatch.remediation().iter().any(|h| h.contains("Mobile and desktop applications")));
    }
}
