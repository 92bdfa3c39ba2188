//! The OAuth2 installed-app loopback flow behind `mailroom connect google`, on mailroom-http's `LoopbackConsent` (PKCE S256, `state`, offline access, a listener on 127.0.0.1): the checks that the grant can send and that the signed-in account is the Company Email address.

use std::time::Duration;

use mailroom_core::config::Field;
use mailroom_core::config::GmailConfig;
use mailroom_core::{ErrorKind, Secret, SendError};
use mailroom_http::{ConsentError, LoopbackConsent, Token};

use crate::error::scope_allows_send;
use crate::token::{from_oauth, google_oauth_client_trusting};

/// The only scope mailroom asks for: send mail as the account, nothing else.
pub const GMAIL_SEND_SCOPE: &str = "https://www.googleapis.com/auth/gmail.send";

/// What `connect google` asks for: the signed-in address (`openid email`, so a mismatch
/// with the Company Email address is caught: Gmail silently rewrites a From the account does
/// not own) and sending mail.
const CONSENT_SCOPES: [&str; 3] = ["openid", "email", GMAIL_SEND_SCOPE];

/// A consent in progress: the URL to open and a listener waiting for Google's redirect.
///
/// ```no_run
/// # async fn run(gmail: &mailroom_core::config::GmailConfig) -> Result<(), mailroom_gmail::ConnectError> {
/// use std::time::Duration;
/// let flow = mailroom_gmail::ConsentFlow::start(gmail, Some("erp@company.com")).await?;
/// println!("Open this page, sign in and click Allow:\n{}", flow.authorize_url());
/// let connected = flow.finish(Duration::from_secs(300)).await?;
/// mailroom_gmail::save_refresh_token("google-token.json".as_ref(), &gmail.client_id, &connected.refresh_token, connected.scope.as_deref())
///     .expect("writable token file");
/// # Ok(()) }
/// ```
pub struct ConsentFlow {
    consent: LoopbackConsent,
    expected_account: Option<String>,
}

impl std::fmt::Debug for ConsentFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentFlow").field("redirect_uri", &self.consent.redirect_uri()).finish_non_exhaustive()
    }
}

/// The result of a completed consent.
#[derive(Debug)]
pub struct Connected {
    /// The refresh token to store (in `token_file`).
    pub refresh_token: Secret,
    /// The scopes Google says were granted.
    pub scope: Option<String>,
    /// The signed-in account's address, from the `id_token`.
    pub account: Option<String>,
}

/// Issue 10 #8: Google's loopback redirect works only for "Desktop app" OAuth clients.
const DESKTOP_APP: &str = "Google sends the browser back to http://127.0.0.1 only for OAuth clients of type \"Desktop app\": if Google showed an error page (redirect_uri_mismatch, invalid_request, \"doesn't comply with Google's OAuth 2.0 policy\") instead of coming back, create a client of type Desktop app in Google Cloud console → APIs & Services → Credentials and put its client ID and secret in the config.";

/// Why the consent flow failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The loopback listener could not be opened.
    #[error("cannot listen on 127.0.0.1 for Google's redirect: {0}")]
    Listen(#[source] std::io::Error),
    /// The sign-in could not be prepared before any socket was opened: the HTTPS client for
    /// `token_uri` could not be built, or the consent URL could not be made.
    #[error("cannot prepare the sign-in with Google: {0}")]
    Setup(String),
    /// The user clicked Cancel (or Google refused): `error=access_denied` on the redirect.
    #[error("Google did not grant access: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Denied {
        /// The `error` parameter.
        error: String,
        /// The `error_description` parameter, if any.
        description: Option<String>,
    },
    /// No redirect for this sign-in arrived in time, but one with another `state` did (a
    /// stale tab, another run's link, or a forged request); it was refused.
    #[error(
        "the browser came back with the state parameter of another sign-in (an older tab or link), which was refused, and no answer for this sign-in arrived in time"
    )]
    StateMismatch,
    /// Google granted access without a scope that can send mail (the user unticked "Send
    /// email on your behalf" on the granular consent screen). Nothing was stored.
    #[error("Google granted only {scope}, which does not include sending mail ({GMAIL_SEND_SCOPE})")]
    ScopeNotGranted {
        /// The granted scopes, space-separated, as Google listed them.
        scope: String,
    },
    /// No redirect arrived in time.
    #[error("no answer from the browser within {} s", .0.as_secs())]
    TimedOut(Duration),
    /// Google answered without a refresh token.
    #[error("Google granted access but sent no refresh token")]
    NoRefreshToken,
    /// The account that signed in is not the Company Email address (Gmail would silently
    /// send as the signed-in account instead). Nothing was stored.
    #[error("the sign-in was with {signed_in}, not with the Company Email address {expected}")]
    WrongAccount {
        /// The account that signed in.
        signed_in: String,
        /// `email_address`.
        expected: String,
    },
    /// Google did not say which account signed in (no `id_token` with an email). Nothing was stored.
    #[error(
        "Google did not say which account signed in (no email in the id_token), so the Company Email address {expected} cannot be checked"
    )]
    UnknownAccount {
        /// `email_address`.
        expected: String,
    },
    /// The code exchange at the token endpoint failed (classified like a refresh).
    #[error("exchanging the authorization code failed: {0}")]
    Token(#[source] Box<SendError>),
}

impl ConnectError {
    /// The classified error, for the CLI's JSON and remediation output. Each carries a hint
    /// about the sign-in itself, shown before core's generic advice for the kind.
    pub fn into_send_error(self) -> SendError {
        const RERUN: &str = "Run `mailroom connect google --config FILE` again, open the link it prints in a browser on this machine, sign in with the Company Email account and click Allow.";
        let detail = self.to_string();
        match self {
            ConnectError::Token(error) => *error,
            ConnectError::Listen(_) => SendError::new(ErrorKind::ConnectFailed, detail)
                .with_hint("mailroom needs a free local port on 127.0.0.1 to receive Google's answer: check that local connections are allowed (no firewall or sandbox blocking 127.0.0.1), then run `mailroom connect google --config FILE` again.")
                .with_complete_hints(),
            ConnectError::Setup(_) => SendError::new(ErrorKind::InvalidConfig, detail)
                .with_hint("Nothing was sent to Google: mailroom could not set up its own side of the sign-in (HTTPS and the consent link). Check email_services.token_uri and auth_uri, then run `mailroom connect google --config FILE` again.")
                .with_complete_hints(),
            ConnectError::Denied { error, .. } if error != "access_denied" => SendError::new(ErrorKind::PermissionDenied, detail)
                .with_field(Field::EmailServicesClientId)
                .with_hint(DESKTOP_APP),
            ConnectError::Denied { .. } => SendError::new(ErrorKind::PermissionDenied, detail)
                .with_hint("Run `mailroom connect google --config FILE` again, sign in with the Company Email account and click Allow on Google's consent screen."),
            ConnectError::WrongAccount { signed_in, expected } => SendError::new(ErrorKind::SenderNotAllowed, detail.clone())
                .with_field(Field::EmailAddress)
                .with_hint(format!("Gmail sends as the account that signed in and silently replaces a From address it does not own, so nothing was stored. Run `mailroom connect google --config FILE` again and sign in as {expected} (use another browser profile or a private window if the browser signs in as {signed_in} by itself), or set email_address = \"{signed_in}\" if that account is the Company Email."))
                .with_complete_hints(),
            ConnectError::UnknownAccount { .. } => SendError::new(ErrorKind::Protocol, detail)
                .with_field(Field::EmailServicesAuthUri)
                .with_hint("mailroom asks Google for the signed-in address (scopes openid email) to check it is the Company Email: check that email_services.auth_uri and token_uri point at Google (https://accounts.google.com/o/oauth2/v2/auth, https://oauth2.googleapis.com/token) and run `mailroom connect google --config FILE` again. Nothing was stored."),
            ConnectError::StateMismatch => SendError::new(ErrorKind::Protocol, detail)
                .with_hint(format!("{RERUN} Close older sign-in tabs first: the page that came back belonged to an earlier link, and only the newest link works."))
                .with_hint("Nothing needs changing in the config file.")
                .with_complete_hints(),
            ConnectError::TimedOut(_) => SendError::new(ErrorKind::Timeout, detail)
                .with_hint("Open the printed link in a browser on this machine (the redirect goes to 127.0.0.1), sign in and click Allow before the time runs out.")
                .with_hint(DESKTOP_APP)
                .with_hint("Run `mailroom connect google --config FILE` again; --wait-secs gives more time. Nothing needs changing in the config file.")
                .with_complete_hints(),
            ConnectError::ScopeNotGranted { .. } => SendError::new(ErrorKind::PermissionDenied, detail)
                .with_field(Field::EmailServicesRefreshToken)
                .with_hint(format!("Run `mailroom connect google --config FILE` again and, on Google's consent screen, tick the box \"Send email on your behalf\" ({GMAIL_SEND_SCOPE}) before clicking Continue. Nothing was saved.")),
            ConnectError::NoRefreshToken => SendError::new(ErrorKind::OauthReconnectRequired, detail)
                .with_field(Field::EmailServicesRefreshToken)
                .with_hint("Remove mailroom's access at https://myaccount.google.com/permissions, then run `mailroom connect google --config FILE` again."),
        }
    }
}

impl ConsentFlow {
    /// Opens the listener on an ephemeral port of 127.0.0.1 and builds the consent URL
    /// (scopes `openid email` and gmail.send, offline access, PKCE, `state`);
    /// `login_hint` (the Company Email address) preselects the account on Google's page, and
    /// the account that signs in must be that address.
    pub async fn start(config: &GmailConfig, login_hint: Option<&str>) -> Result<ConsentFlow, ConnectError> {
        ConsentFlow::start_trusting(config, login_hint, &[]).await
    }

    /// [`ConsentFlow::start`] with extra trust roots for `token_uri`.
    async fn start_trusting(
        config: &GmailConfig,
        login_hint: Option<&str>,
        extra_roots: &[rustls::pki_types::CertificateDer<'static>],
    ) -> Result<ConsentFlow, ConnectError> {
        let client = google_oauth_client_trusting(
            &config.token_uri,
            Some(&config.auth_uri),
            &config.client_id,
            &config.client_secret,
            config.timeout,
            extra_roots,
        )
        .map_err(ConnectError::Setup)?;
        let mut extra = vec![("access_type", "offline"), ("prompt", "consent")];
        if let Some(hint) = login_hint {
            extra.push(("login_hint", hint));
        }
        let consent =
            LoopbackConsent::start(client, &CONSENT_SCOPES, &extra, "127.0.0.1").await.map_err(|e| match e {
                ConsentError::Listen(io) => ConnectError::Listen(io),
                other => ConnectError::Setup(other.to_string()),
            })?;
        Ok(ConsentFlow { consent, expected_account: login_hint.map(str::to_owned) })
    }

    /// The page the user opens to sign in and allow access.
    pub fn authorize_url(&self) -> &url::Url {
        self.consent.authorize_url()
    }

    /// Where Google sends the browser back: `http://127.0.0.1:PORT`.
    pub fn redirect_uri(&self) -> &str {
        self.consent.redirect_uri()
    }

    /// Waits up to `wait` for the redirect, checks `state`, exchanges the code (with the
    /// PKCE verifier) at `token_uri`, checks the grant can send and that the signed-in
    /// account is the expected one, and returns the refresh token. The browser gets a short
    /// page saying how it went.
    ///
    /// Only the redirect carrying this flow's `state` ends the wait: with a code (the
    /// exchange) or an `error` (`access_denied`: [`ConnectError::Denied`]). Anything else —
    /// another `state`, no code, other paths such as `/favicon.ico`, garbage — is answered
    /// 400 or 404 and the wait goes on. Connections are read concurrently, each within
    /// a few seconds and never past the deadline, so a client that connects and sends
    /// nothing cannot hold the flow up. If the deadline passes after a request with another
    /// `state`, the error is [`ConnectError::StateMismatch`], else [`ConnectError::TimedOut`].
    pub async fn finish(self, wait: Duration) -> Result<Connected, ConnectError> {
        let expected_account = self.expected_account;
        let accept = move |token, _transcript| check_grant(token, expected_account);
        self.consent.finish_with(wait, accept).await.map_err(|error| match error {
            ConsentError::Listen(io) => ConnectError::Listen(io),
            ConsentError::Denied { error, description } => ConnectError::Denied { error, description },
            ConsentError::StateMismatch => ConnectError::StateMismatch,
            ConsentError::TimedOut(wait) => ConnectError::TimedOut(wait),
            ConsentError::Token { error, transcript } => {
                ConnectError::Token(Box::new(from_oauth(error).into_consent_error(transcript)))
            }
            other => ConnectError::Setup(other.to_string()),
        })?
    }
}

/// What a grant must be to be stored: able to send, with a refresh token, for the expected account.
fn check_grant(grant: Token, expected_account: Option<String>) -> Result<Connected, ConnectError> {
    {
        // Google's granular consent screen lets the user untick the send scope and still
        // returns a refresh token: one that can never send. Refuse it rather than store it.
        if let Some(scope) = grant.scope.as_deref()
            && !scope_allows_send(scope)
        {
            return Err(ConnectError::ScopeNotGranted { scope: scope.to_owned() });
        }
        let refresh_token = grant.refresh.ok_or(ConnectError::NoRefreshToken)?;
        let account = grant.id.as_ref().and_then(|id| id.account().map(str::to_owned));
        if let Some(expected) = expected_account {
            match &account {
                Some(signed_in) if signed_in.eq_ignore_ascii_case(&expected) => {}
                Some(signed_in) => return Err(ConnectError::WrongAccount { signed_in: signed_in.clone(), expected }),
                None => return Err(ConnectError::UnknownAccount { expected }),
            }
        }
        Ok(Connected { refresh_token, scope: grant.scope, account })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10: an HTTPS client that cannot be built was reported as "cannot listen on
    /// 127.0.0.1" with advice about local ports; it is a set-up failure and says so.
    #[tokio::test]
    async fn an_http_client_that_cannot_be_built_is_not_blamed_on_the_listener() {
        let config = GmailConfig::new("1-a.apps.googleusercontent.com", Secret::new("s"));
        let unusable_root = rustls::pki_types::CertificateDer::from(vec![1u8, 2, 3]);
        let error = ConsentFlow::start_trusting(&config, None, &[unusable_root]).await.unwrap_err();
        assert!(matches!(error, ConnectError::Setup(_)), "{error:?}");
        let error = error.into_send_error();
        assert_eq!(error.kind(), ErrorKind::InvalidConfig, "{error}");
        assert!(error.detail().contains("HTTPS"), "{error}");
        let said = format!("{error} {:?}", error.remediation());
        assert!(!said.contains("listen") && !said.contains("local port"), "{said}");
    }
}
