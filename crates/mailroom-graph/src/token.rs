//! Microsoft identity platform tokens on mailroom-http's OAuth client: client credentials or a refresh token, for Graph or for Exchange Online SMTP, with refusals classified by [`crate::classify_identity`].

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mailroom_core::config::MicrosoftKey;
use mailroom_core::config::{
    GRAPH_APP_SCOPE, GRAPH_DELEGATED_SCOPE, MicrosoftAuth, MicrosoftOAuth, OUTLOOK_APP_SCOPE, OUTLOOK_DELEGATED_SCOPE,
};
use mailroom_core::{ErrorKind, Secret, SendError};
use mailroom_http::{
    ClientOptions, Endpoints, HttpClient, OAuthClient, OAuthError, OAuthTokenSource, TokenEndpointError,
};

use crate::error::{Context, IdentityError, Resource, classify_identity};

/// The scopes a token for `resource` asks for.
pub fn scopes(resource: Resource, auth: MicrosoftAuth) -> Vec<String> {
    let joined = match (resource, auth) {
        (Resource::Graph, MicrosoftAuth::Application) => GRAPH_APP_SCOPE,
        (Resource::Graph, MicrosoftAuth::Delegated) => GRAPH_DELEGATED_SCOPE,
        (Resource::OutlookSmtp, MicrosoftAuth::Application) => OUTLOOK_APP_SCOPE,
        (Resource::OutlookSmtp, MicrosoftAuth::Delegated) => OUTLOOK_DELEGATED_SCOPE,
    };
    joined.split(' ').map(str::to_owned).collect()
}

/// The OAuth client of an app registration (token, authorize and device endpoints).
pub fn oauth_client(oauth: &MicrosoftOAuth, timeout: Duration) -> Result<OAuthClient, SendError> {
    let endpoints = Endpoints::microsoft(&oauth.authority, &oauth.tenant);
    let options = ClientOptions::new(concat!("mailroom/", env!("CARGO_PKG_VERSION"))).connect_timeout(timeout);
    let http = HttpClient::for_endpoint(&endpoints.token, &options)
        .map_err(|e| SendError::invalid_config(oauth.field(MicrosoftKey::Authority), e.to_string()))?;
    Ok(OAuthClient::new(http, endpoints, oauth.client_id.clone(), oauth.client_secret.clone()).reply_timeout(timeout))
}

/// A refusal of the token endpoint in this crate's terms.
pub fn identity_error(refusal: &TokenEndpointError) -> IdentityError {
    IdentityError {
        status: refusal.status,
        error: refusal.error.clone().unwrap_or_default(),
        description: refusal.description.clone().unwrap_or_default(),
        code: refusal.aadsts.and_then(|code| u32::try_from(code).ok()),
        retry_after: refusal.retry_after,
    }
}

/// Any token failure classified: refusals by AADSTS code, network failures by their kind on
/// the `authority` field.
pub fn classify_token_failure(error: OAuthError, context: &Context) -> SendError {
    match &error {
        OAuthError::Refused { refusal, .. } => classify_identity(&identity_error(refusal), context),
        OAuthError::Http(http) => {
            let failure = http.failure();
            let kind = match failure.kind() {
                // A token request delivers nothing: a lost reply is not a lost message.
                ErrorKind::DeliveryUnknown => ErrorKind::ServiceUnavailable,
                kind => kind,
            };
            SendError::new(kind, format!("Microsoft sign-in: {http}"))
                .with_field(context.field(MicrosoftKey::Authority))
                .with_hint(format!(
                    "Check {} (https://login.microsoftonline.com unless a national cloud or a proxy is used) and that this machine reaches it over HTTPS.",
                    context.field(MicrosoftKey::Authority)
                ))
        }
        OAuthError::DeviceCodeExpired => SendError::new(ErrorKind::OauthReconnectRequired, error.to_string())
            .with_field(context.field(MicrosoftKey::TokenFile))
            .with_hint("Run `mailroom connect microsoft --device-code --config FILE` again and enter the code within its time."),
        _ => SendError::new(ErrorKind::Protocol, format!("Microsoft sign-in: {error}")).with_field(context.field(MicrosoftKey::Authority)),
    }
    .with_source(error)
}

/// Reads the refresh token of a token file written by `mailroom connect microsoft`
/// (`{"client_id", "refresh_token", "account"}`, owner-only).
pub fn load_refresh_token(path: &Path, oauth: &MicrosoftOAuth) -> Result<Secret, SendError> {
    let field = oauth.field(MicrosoftKey::TokenFile);
    let fail = |why: String| {
        SendError::new(
            ErrorKind::OauthReconnectRequired,
            format!("cannot use the token file {}: {why}", path.display()),
        )
        .with_field(field)
        .with_hint("Run `mailroom connect microsoft --config FILE` to sign in and write it.")
    };
    let text = mailroom_http::read_private_file(path).map_err(|e| fail(e.to_string()))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|_| fail("it is not valid JSON".into()))?;
    let Some(token) = value.get("refresh_token").and_then(serde_json::Value::as_str).filter(|t| !t.is_empty()) else {
        return Err(fail("it holds no refresh_token".into()));
    };
    if let Some(file_client) = value.get("client_id").and_then(serde_json::Value::as_str)
        && !file_client.eq_ignore_ascii_case(&oauth.client_id)
    {
        return Err(fail(format!("it was written for another app ({file_client})")));
    }
    Ok(Secret::new(token))
}

/// Writes the token file (atomic, owner-only): the refresh token and the account it signs in as.
pub fn save_refresh_token(path: &Path, client_id: &str, refresh_token: &Secret, account: &str) -> std::io::Result<()> {
    let document = serde_json::json!({
        "client_id": client_id,
        "account": account,
        "refresh_token": refresh_token.expose(),
        "saved_at": SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    });
    mailroom_http::write_private_file(path, document.to_string().as_bytes())
}

/// Core's `TokenSource` for `oauth` and `resource`: client credentials for `application`,
/// the refresh-token grant for `delegated` (the token file is re-read at each refresh, so a
/// new `connect` fixes a running sender, and a rotated refresh token is written back to it).
///
/// ```
/// use mailroom_core::config::{CompanyEmail, ServiceConfig};
/// use mailroom_graph::{Resource, token_source};
/// let toml = r#"
///     service = "email_services"
///     email_address = "erp@company.com"
///     [email_services]
///     provider = "microsoft"
///     tenant = "company.onmicrosoft.com"
///     client_id = "11111111-2222-3333-4444-555555555555"
///     client_secret_env = "S"
///     auth = "application"
/// "#;
/// let loaded = CompanyEmail::from_toml(toml, &|_| Some("secret".into())).unwrap();
/// let ServiceConfig::Graph(graph) = &loaded.config.service else { unreachable!() };
/// let source = token_source(&graph.oauth, "erp@company.com", Resource::Graph, graph.timeout).unwrap();
/// # drop(source);
/// ```
pub fn token_source(
    oauth: &MicrosoftOAuth,
    mailbox: &str,
    resource: Resource,
    timeout: Duration,
) -> Result<OAuthTokenSource, SendError> {
    let client = oauth_client(oauth, timeout)?;
    let context = Context::new(oauth, mailbox, resource);
    let map_error: mailroom_http::ErrorMapper =
        Arc::new(move |error, transcript| classify_token_failure(error, &context).with_transcript(transcript));
    let scopes = scopes(resource, oauth.auth);
    Ok(match oauth.auth {
        MicrosoftAuth::Application => OAuthTokenSource::client_credentials(client, scopes, map_error),
        MicrosoftAuth::Delegated => {
            let inline = oauth.refresh_token.clone();
            let file = oauth.token_file.clone();
            let settings = oauth.clone();
            let provider: mailroom_http::RefreshTokenProvider = Arc::new(move || match (&inline, &file) {
                (Some(token), _) => Ok(token.clone()),
                (None, Some(path)) => load_refresh_token(path, &settings),
                (None, None) => Err(SendError::invalid_config(
                    settings.field(MicrosoftKey::RefreshTokenEnv),
                    "auth = \"delegated\" needs a refresh token: run `mailroom connect microsoft --config FILE`",
                )),
            });
            let source = OAuthTokenSource::refresh_token(client, scopes, provider, map_error);
            match (&oauth.refresh_token, &oauth.token_file) {
                // Microsoft: "Replace the old refresh token with this newly acquired refresh token".
                (None, Some(path)) => source.store_rotated_refresh_tokens_in(path.clone()),
                _ => source,
            }
        }
    })
}
