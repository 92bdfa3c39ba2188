//! XOAUTH2 tokens for Web Mail (`[web_mail] auth = "oauth"`): the OAuth flows of mailroom-http (Microsoft through mailroom-graph's token source, Google directly) behind core's `TokenSource`, so mailroom-smtp needs no HTTP client.

use std::sync::Arc;
use std::time::Duration;

use mailroom_core::config::Field;
use mailroom_core::config::{GOOGLE_SMTP_SCOPE, GoogleOAuth, SmtpOAuth};
use mailroom_core::{ErrorKind, SendError, TokenSource};
use mailroom_http::{OAuthError, OAuthTokenSource};

/// The token source for `oauth`, signing in as `username` (the SMTP user).
pub(crate) fn token_source(
    oauth: &SmtpOAuth,
    username: &str,
    timeout: Duration,
) -> Result<Arc<dyn TokenSource>, SendError> {
    Ok(match oauth {
        SmtpOAuth::Microsoft(microsoft) => {
            Arc::new(mailroom_graph::token_source(microsoft, username, mailroom_graph::Resource::OutlookSmtp, timeout)?)
        }
        SmtpOAuth::Google(google) => Arc::new(google_source(google, timeout)?),
        _ => {
            return Err(SendError::invalid_config(
                Field::WebMailOauthProvider,
                "this version of mailroom cannot sign in there",
            ));
        }
    })
}

fn google_source(google: &GoogleOAuth, timeout: Duration) -> Result<OAuthTokenSource, SendError> {
    let client = mailroom_gmail::google_oauth_client(
        &google.token_uri,
        Some(&google.auth_uri),
        &google.client_id,
        &google.client_secret,
        timeout,
    )
    .map_err(|e| SendError::invalid_config(Field::WebMailOauthTokenUri, e))?;
    let inline = google.refresh_token.clone();
    let file = google.token_file.clone();
    let client_id = google.client_id.clone();
    let provider: mailroom_http::RefreshTokenProvider = Arc::new(move || match (&inline, &file) {
        (Some(token), _) => Ok(token.clone()),
        (None, Some(path)) => mailroom_gmail::load_refresh_token(path, &client_id).map_err(|error| {
            SendError::new(error.kind(), error.detail().to_owned()).with_field(Field::WebMailOauthTokenFile)
        }),
        (None, None) => Err(SendError::invalid_config(Field::WebMailOauthRefreshTokenEnv, "no refresh token")),
    });
    let map_error: mailroom_http::ErrorMapper =
        Arc::new(|error, transcript| classify_google(error).with_transcript(transcript));
    let source = OAuthTokenSource::refresh_token(client, vec![GOOGLE_SMTP_SCOPE.to_owned()], provider, map_error);
    Ok(match (&google.refresh_token, &google.token_file) {
        // A rotated refresh token replaces the old one in the token file.
        (None, Some(path)) => source.store_rotated_refresh_tokens_in(path.clone()),
        _ => source,
    })
}

/// Google's token refusals for XOAUTH2, by OAuth `error`.
fn classify_google(error: OAuthError) -> SendError {
    let detail = format!("Google sign-in for SMTP: {error}");
    let classified = match error.refusal().and_then(|r| r.error.as_deref()) {
        Some("invalid_grant") => SendError::new(ErrorKind::OauthReconnectRequired, detail)
            .with_field(Field::WebMailOauthTokenFile)
            .with_hint("Run `mailroom connect google --config FILE` and allow access again; the new refresh token replaces the expired or revoked one (apps left in Testing status get tokens that expire after 7 days).")
            .with_complete_hints(),
        Some("invalid_client") => SendError::new(ErrorKind::AuthFailed, detail)
            .with_field(Field::WebMailOauthClientSecret)
            .with_hint("Check web_mail.oauth.client_id and the secret against Google Cloud console → APIs & Services → Credentials (a Desktop app client)."),
        Some("unauthorized_client") => SendError::new(ErrorKind::AuthFailed, detail).with_field(Field::WebMailOauthClientId),
        Some(_) => SendError::new(ErrorKind::PermissionDenied, detail).with_field(Field::WebMailOauthClientId),
        None => match &error {
            OAuthError::Http(http) => SendError::new(http.failure().kind(), detail).with_field(Field::WebMailOauthTokenUri),
            _ => SendError::new(ErrorKind::Protocol, detail).with_field(Field::WebMailOauthTokenUri),
        },
    };
    classified.with_source(error)
}
