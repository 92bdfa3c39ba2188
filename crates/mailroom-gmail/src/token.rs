//! Google OAuth2 tokens on mailroom-http's OAuth client: the refresh-token grant as mailroom-http's `OAuthTokenSource`, its failures in this driver's words, and the token file (written owner-only and atomically, read with a warning when others can read it).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mailroom_core::config::{Field, GmailConfig};
use mailroom_core::{Secret, SendError, Transcript};
use mailroom_http::{ErrorMapper, OAuthClient, OAuthError, OAuthTokenSource, RefreshTokenProvider};

use crate::error::{Endpoint, GmailError, TokenErrorBody};

/// mailroom-http's token failure in this driver's words: `TokenRefused` for an OAuth error,
/// a throttled or failing server classified by status, `Malformed` on `token_uri` otherwise.
pub(crate) fn from_oauth(error: OAuthError) -> GmailError {
    match error {
        OAuthError::Http(error) => crate::http::from_http(error, Endpoint::Token),
        OAuthError::Refused { refusal, .. } => {
            let status = refusal.status;
            match (&refusal.error, &refusal.body_error) {
                (Some(code), _) => GmailError::TokenRefused {
                    status,
                    body: TokenErrorBody {
                        error: code.clone(),
                        description: refusal.description.clone().unwrap_or_default(),
                    },
                },
                (None, Some(cut)) if status == 429 || status >= 500 => GmailError::TokenRefused {
                    status,
                    body: TokenErrorBody { error: String::new(), description: format!("(reply body cut off: {cut})") },
                },
                (None, Some(cut)) => GmailError::Malformed {
                    endpoint: Endpoint::Token,
                    status: Some(status),
                    what: format!("the reply body was cut off: {cut}"),
                },
                (None, None) if status == 429 || status >= 500 => GmailError::TokenRefused {
                    status,
                    body: TokenErrorBody {
                        error: String::new(),
                        description: refusal.body_snippet.clone().unwrap_or_default(),
                    },
                },
                (None, None) => GmailError::Malformed {
                    endpoint: Endpoint::Token,
                    status: Some(status),
                    what: format!("not an OAuth2 error reply: {}", refusal.body_snippet.clone().unwrap_or_default()),
                },
            }
        }
        OAuthError::Malformed { status, reason, .. } => GmailError::Malformed {
            endpoint: Endpoint::Token,
            status: Some(status),
            what: format!("not a token reply (expected JSON with access_token): {reason}"),
        },
        other => GmailError::Malformed { endpoint: Endpoint::Token, status: None, what: other.to_string() },
    }
}

/// The refresh-token grant for `config` on `client`, as mailroom-http's [`OAuthTokenSource`]:
/// the refresh token from the config, or re-read from `token_file` at every refresh (so
/// `mailroom connect google` fixes a running sender), where a token Google rotates replaces
/// the old one; failures classified as [`GmailError`]s.
pub(crate) fn token_source(client: OAuthClient, config: &GmailConfig) -> Result<OAuthTokenSource, SendError> {
    let provider: RefreshTokenProvider = match (&config.refresh_token, &config.token_file) {
        (Some(token), _) => {
            let token = token.clone();
            Arc::new(move || Ok(token.clone()))
        }
        (None, Some(path)) => {
            let path = path.clone();
            let client_id = client.client_id().to_owned();
            Arc::new(move || read_token_file(&path, &client_id).map_err(|e| e.into_send_error(Transcript::new())))
        }
        (None, None) => {
            return Err(SendError::invalid_config(
                Field::EmailServicesRefreshTokenEnv,
                "no refresh token: add token_file = \"google-token.json\" and run `mailroom connect google --config FILE`",
            ));
        }
    };
    let map_error: ErrorMapper = Arc::new(|error, transcript| from_oauth(error).into_send_error(transcript));
    let source = OAuthTokenSource::refresh_token(client, Vec::new(), provider, map_error);
    Ok(match (&config.refresh_token, &config.token_file) {
        // Google may rotate the refresh token: the new one replaces the old in the file.
        (None, Some(path)) => source.store_rotated_refresh_tokens_in(path.clone()),
        _ => source,
    })
}

fn read_token_file(path: &Path, client_id: &str) -> Result<Secret, GmailError> {
    let fail = |reason: String| GmailError::TokenFile { path: path.display().to_string(), reason };
    // Warns (tracing) when the group or others can read the refresh token (issue 10 #8).
    let text = mailroom_http::read_private_file(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            fail("it does not exist yet: run `mailroom connect google --config FILE` to create it".into())
        }
        _ => fail(e.to_string()),
    })?;
    let trimmed = text.trim();
    if !trimmed.starts_with('{') {
        // A bare refresh token on one line is accepted too.
        return match trimmed {
            "" => Err(fail("it is empty".into())),
            token if token.contains(char::is_whitespace) => {
                Err(fail("it is neither a mailroom token file (JSON) nor a single refresh token".into()))
            }
            token => Ok(Secret::new(token)),
        };
    }
    let value: serde_json::Value =
        serde_json::from_str(trimmed).map_err(|e| fail(format!("it is not valid JSON (line {})", e.line())))?;
    let Some(token) = value.get("refresh_token").and_then(serde_json::Value::as_str).filter(|t| !t.is_empty()) else {
        return Err(fail("it holds no refresh_token".into()));
    };
    if let Some(file_client) = value.get("client_id").and_then(serde_json::Value::as_str)
        && file_client != client_id
    {
        return Err(fail(format!(
            "it was written for the OAuth client {file_client}, but email_services.client_id is {client_id}: a refresh token only works with the client it was issued to"
        )));
    }
    Ok(Secret::new(token))
}

/// Google's OAuth client for `client_id` at `token_uri` (and `auth_uri`, for the consent
/// flow) on a client of this driver's (Google's trust, bounded replies, proxy and loopback
/// rules), each reply within `timeout`: the one way mailroom builds it, for the Gmail API,
/// `connect google` and Web Mail's XOAUTH2 with Google.
///
/// ```
/// use mailroom_core::Secret;
/// let token_uri = "https://oauth2.googleapis.com/token".parse().unwrap();
/// let client = mailroom_gmail::google_oauth_client(
///     &token_uri,
///     None,
///     "1-a.apps.googleusercontent.com",
///     &Secret::new("secret"),
///     std::time::Duration::from_secs(10),
/// );
/// assert!(client.is_ok());
/// ```
pub fn google_oauth_client(
    token_uri: &url::Url,
    auth_uri: Option<&url::Url>,
    client_id: &str,
    client_secret: &Secret,
    timeout: Duration,
) -> Result<OAuthClient, String> {
    google_oauth_client_trusting(token_uri, auth_uri, client_id, client_secret, timeout, &[])
}

/// [`google_oauth_client`] trusting `extra_roots` too.
pub(crate) fn google_oauth_client_trusting(
    token_uri: &url::Url,
    auth_uri: Option<&url::Url>,
    client_id: &str,
    client_secret: &Secret,
    timeout: Duration,
    extra_roots: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<OAuthClient, String> {
    let http = crate::http::client_for(token_uri, timeout, extra_roots)?;
    Ok(google_oauth_client_on(http, token_uri, auth_uri, client_id, client_secret, timeout))
}

/// [`google_oauth_client`] on an existing client (the transport shares one with the API).
pub(crate) fn google_oauth_client_on(
    http: mailroom_http::HttpClient,
    token_uri: &url::Url,
    auth_uri: Option<&url::Url>,
    client_id: &str,
    client_secret: &Secret,
    timeout: Duration,
) -> OAuthClient {
    let endpoints = mailroom_http::Endpoints { token: token_uri.clone(), authorize: auth_uri.cloned(), device: None };
    OAuthClient::new(http, endpoints, client_id.to_owned(), Some(client_secret.clone())).reply_timeout(timeout)
}

/// Reads the refresh token from a token file written by [`save_refresh_token`] (or a file
/// holding just the token), checking it was issued to `client_id`.
///
/// Errors are `invalid_config` on `email_services.token_file`, telling the user to run
/// `mailroom connect google`.
pub fn load_refresh_token(path: &Path, client_id: &str) -> Result<Secret, SendError> {
    read_token_file(path, client_id).map_err(|e| e.into_send_error(Transcript::new()))
}

/// Writes the refresh token from [`crate::ConsentFlow`] to `path` as JSON
/// (`{"type":"authorized_user","client_id","refresh_token","scope"}`), readable by the owner
/// only on Unix, replacing the file atomically ([`mailroom_http::write_private_file`]).
///
/// ```
/// use mailroom_core::Secret;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("google-token.json");
/// mailroom_gmail::save_refresh_token(&path, "1-a.apps.googleusercontent.com", &Secret::new("1//refresh"), None).unwrap();
/// let token = mailroom_gmail::load_refresh_token(&path, "1-a.apps.googleusercontent.com").unwrap();
/// assert_eq!(token.expose(), "1//refresh");
/// ```
pub fn save_refresh_token(
    path: &Path,
    client_id: &str,
    refresh_token: &Secret,
    scope: Option<&str>,
) -> std::io::Result<()> {
    let mut document = serde_json::json!({
        "type": "authorized_user",
        "client_id": client_id,
        "refresh_token": refresh_token.expose(),
    });
    if let Some(scope) = scope {
        document["scope"] = serde_json::Value::from(scope);
    }
    let mut text = serde_json::to_string_pretty(&document).map_err(std::io::Error::other)?;
    text.push('\n');
    mailroom_http::write_private_file(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let client = "1-a.apps.googleusercontent.com";
        assert!(read_token_file(&path, client).unwrap_err().to_string().contains("mailroom connect google"));
        save_refresh_token(&path, client, &Secret::new("1//r"), Some("https://www.googleapis.com/auth/gmail.send"))
            .unwrap();
        assert_eq!(read_token_file(&path, client).unwrap().expose(), "1//r");
        let other = read_token_file(&path, "2-b.apps.googleusercontent.com").unwrap_err().to_string();
        assert!(other.contains("issued to"), "{other}");
        assert!(!other.contains("1//r"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, ["t.json"], "no temporary file is left behind");
        std::fs::write(&path, "1//bare-token\n").unwrap();
        assert_eq!(read_token_file(&path, client).unwrap().expose(), "1//bare-token");
        std::fs::write(&path, "{\"refresh_token\": 5}").unwrap();
        assert!(read_token_file(&path, client).unwrap_err().to_string().contains("no refresh_token"));
        std::fs::write(&path, "{ not json").unwrap();
        let garbage = read_token_file(&path, client).unwrap_err();
        assert_eq!(garbage.into_send_error(Transcript::new()).field(), Some("email_services.token_file"));
    }

    /// A stale world-readable temporary file from an older run, or a symlink planted at the
    /// old predictable temporary path, neither widens the token file's permissions nor
    /// redirects the write.
    #[cfg(unix)]
    #[test]
    fn stale_or_planted_temporary_files_do_not_leak_the_token() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
        let client = "1-a.apps.googleusercontent.com";

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("google-token.json");
        let stale = dir.path().join(".google-token.json.tmp");
        std::fs::write(&stale, "stale").unwrap();
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
        save_refresh_token(&path, client, &Secret::new("1//stale-case"), None).unwrap();
        assert_eq!(mode(&path), 0o600, "the token file is readable only by its owner");
        assert_eq!(read_token_file(&path, client).unwrap().expose(), "1//stale-case");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("google-token.json");
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, "untouched").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(".google-token.json.tmp")).unwrap();
        save_refresh_token(&path, client, &Secret::new("1//symlink-case"), None).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched", "the symlink target was not written");
        assert_eq!(mode(&victim), 0o644);
        assert_eq!(mode(&path), 0o600);
        assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        assert_eq!(read_token_file(&path, client).unwrap().expose(), "1//symlink-case");

        // An existing world-readable token file is replaced by an owner-only one.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        save_refresh_token(&path, client, &Secret::new("1//again"), None).unwrap();
        assert_eq!(mode(&path), 0o600);
    }
}
