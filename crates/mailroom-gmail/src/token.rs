//! Google OAuth2 tokens: the token endpoint requests (refresh-token grant, authorization-code exchange), the `TokenSource` behind core's `TokenCache`, and the token file.
//!
//! The two token requests are plain form POSTs done here with reqwest + serde instead of the
//! oauth2 crate. oauth2 5.0 is built for reqwest 0.12 (DESIGN.md §6) and would need its
//! `AsyncHttpClient` re-implemented over our 0.13 client plus the `http` crate, and its
//! `RequestTokenError` drops what classification needs: the HTTP status (400 vs 401 vs 5xx),
//! the `Retry-After` header, and any non-JSON body (it reports those as an opaque "unexpected
//! content type"). PKCE and `state` are a SHA-256 and 32 random bytes (aws-lc-rs's RNG), so
//! the crate would save little and hide the replies we must quote.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mailroom_core::{AccessToken, Secret, SendError, TokenSource, Transcript};

use crate::error::{Endpoint, GmailError, TokenErrorBody, scrub, scrubbed_snippet};
use crate::http;

/// One form parameter of a token request.
pub(crate) enum Param<'a> {
    /// Shown in transcripts.
    Public(&'a str),
    /// Recorded as `[redacted]` and scrubbed from the reply.
    Secret(&'a Secret),
}

/// A successful token reply.
pub(crate) struct Grant {
    pub access_token: Secret,
    pub expires_in: Option<Duration>,
    pub scope: Option<String>,
    pub refresh_token: Option<Secret>,
}

/// Talks to `token_uri` as one OAuth client.
pub(crate) struct TokenClient {
    pub http: reqwest::Client,
    pub token_uri: url::Url,
    pub client_id: String,
    pub client_secret: Secret,
    pub timeout: Duration,
}

impl TokenClient {
    /// POSTs `client_id`, `client_secret` and `params` to the token endpoint.
    pub async fn request(
        &self,
        params: &[(&str, Param<'_>)],
        transcript: &mut Transcript,
    ) -> Result<Grant, GmailError> {
        let mut shown = Vec::new();
        let mut secrets: Vec<&str> = vec![self.client_secret.expose()];
        // The serializer is not Send: finish it before any await.
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("client_id", &self.client_id);
            form.append_pair("client_secret", self.client_secret.expose());
            for (name, value) in params {
                match value {
                    Param::Public(value) => {
                        form.append_pair(name, value);
                        shown.push(format!("{name}={value}"));
                    }
                    Param::Secret(secret) => {
                        form.append_pair(name, secret.expose());
                        secrets.push(secret.expose());
                        shown.push(format!("{name}={}", mailroom_core::REDACTED));
                    }
                }
            }
            form.finish()
        };
        let url = self.token_uri.as_str();
        transcript.client(&format!(
            "POST {url} {} client_id={} client_secret={}",
            shown.join(" "),
            self.client_id,
            mailroom_core::REDACTED
        ));
        let request = self
            .http
            .post(self.token_uri.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.timeout)
            .body(form);
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                let error = http::classify(&error, Endpoint::Token, url, self.timeout, false);
                transcript.note(&error.to_string());
                return Err(error);
            }
        };
        let reply = http::read_reply(response).await;
        let status = reply.status;
        let body = match reply.body {
            Ok(body) => body,
            Err(cut) => {
                transcript.server(&format!("HTTP {status} (body cut off: {cut})"));
                if status == 429 || status >= 500 {
                    let description = format!("(reply body cut off: {cut})");
                    return Err(GmailError::TokenRefused {
                        status,
                        body: TokenErrorBody { error: String::new(), description },
                    });
                }
                return Err(GmailError::Malformed {
                    endpoint: Endpoint::Token,
                    status: Some(status),
                    what: format!("the reply body was cut off: {cut}"),
                });
            }
        };
        if (200..300).contains(&status)
            && let Some(grant) = parse_grant(&body)
        {
            // Never the body itself: it carries the new tokens.
            transcript.server(&format!(
                "HTTP {status} access_token={} expires_in={} scope={}{}",
                mailroom_core::REDACTED,
                grant.expires_in.map(|d| d.as_secs().to_string()).unwrap_or_else(|| "?".into()),
                grant.scope.as_deref().unwrap_or("?"),
                if grant.refresh_token.is_some() {
                    format!(" refresh_token={}", mailroom_core::REDACTED)
                } else {
                    String::new()
                },
            ));
            return Ok(grant);
        }
        transcript.server(&format!("HTTP {status} {}", scrubbed_snippet(&body, &secrets)));
        if (200..300).contains(&status) {
            return Err(GmailError::Malformed {
                endpoint: Endpoint::Token,
                status: Some(status),
                what: format!(
                    "not a token reply (expected JSON with access_token): {}",
                    scrubbed_snippet(&body, &secrets)
                ),
            });
        }
        // Scrubbed before parsing, so a cut snippet of a non-JSON body keeps no part of a secret.
        let body = scrub(&String::from_utf8_lossy(&body), &secrets).into_bytes();
        let mut parsed = TokenErrorBody::parse(&body);
        parsed.description = scrub(&parsed.description, &secrets);
        parsed.error = scrub(&parsed.error, &secrets);
        if parsed.error.is_empty() && status != 429 && status < 500 {
            return Err(GmailError::Malformed {
                endpoint: Endpoint::Token,
                status: Some(status),
                what: format!("not an OAuth2 error reply: {}", parsed.description),
            });
        }
        Err(GmailError::TokenRefused { status, body: parsed })
    }
}

/// Parses `{"access_token","expires_in","scope","refresh_token"}`; `None` unless an access token is there.
pub(crate) fn parse_grant(body: &[u8]) -> Option<Grant> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = |key: &str| value.get(key).and_then(serde_json::Value::as_str).filter(|s| !s.is_empty());
    let access_token = Secret::new(text("access_token")?);
    let expires_in = value
        .get("expires_in")
        .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
        .map(|s| Duration::from_secs(s.min(365 * 24 * 3600)));
    Some(Grant {
        access_token,
        expires_in,
        scope: text("scope").map(str::to_owned),
        refresh_token: text("refresh_token").map(Secret::new),
    })
}

/// Where the refresh token comes from.
#[derive(Clone, Debug)]
pub(crate) enum RefreshSource {
    /// Given inline or by environment.
    Inline(Secret),
    /// Read from `token_file` at every refresh, so `mailroom connect google` fixes a running sender.
    File(PathBuf),
}

/// The refresh-token grant as a core [`TokenSource`].
pub(crate) struct RefreshTokenSource {
    pub client: TokenClient,
    pub refresh: RefreshSource,
}

impl RefreshTokenSource {
    /// The refresh token, from the config or the token file.
    pub fn refresh_token(&self) -> Result<Secret, GmailError> {
        match &self.refresh {
            RefreshSource::Inline(secret) => Ok(secret.clone()),
            RefreshSource::File(path) => read_token_file(path, &self.client.client_id),
        }
    }

    /// One refresh-token grant, with the transcript of the exchange.
    pub async fn grant(&self, transcript: &mut Transcript) -> Result<Grant, GmailError> {
        let refresh_token = self.refresh_token()?;
        self.client
            .request(
                &[("grant_type", Param::Public("refresh_token")), ("refresh_token", Param::Secret(&refresh_token))],
                transcript,
            )
            .await
    }
}

#[async_trait]
impl TokenSource for RefreshTokenSource {
    async fn fetch_token(&self) -> Result<AccessToken, SendError> {
        let mut transcript = Transcript::new();
        let started = Instant::now();
        match self.grant(&mut transcript).await {
            Ok(grant) => {
                tracing::debug!(expires_in = ?grant.expires_in, scope = ?grant.scope, "Google access token refreshed");
                Ok(AccessToken { token: grant.access_token, expires_at: grant.expires_in.map(|d| started + d) })
            }
            Err(error) => {
                tracing::debug!(%error, "Google token refresh failed");
                Err(error.into_send_error(transcript))
            }
        }
    }
}

fn read_token_file(path: &Path, client_id: &str) -> Result<Secret, GmailError> {
    let fail = |reason: String| GmailError::TokenFile { path: path.display().to_string(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
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
/// only on Unix, replacing the file atomically.
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
    write_private_file(path, text.as_bytes())
}

/// Writes `contents` to `path` atomically, readable by the owner only on Unix.
///
/// The temporary file gets a fresh random name in the same directory and is created with
/// `create_new` (O_EXCL: never an existing file, never through a symlink), so a stale or
/// planted file cannot lend it wider permissions or redirect the write. Its mode is set to
/// 0600 at creation and again explicitly (the creation mode is filtered by the umask), then
/// it is written, flushed to disk and renamed over `path`; the directory is flushed too where
/// the platform allows it.
fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "token".into());
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut attempts = 0;
    let (temporary, mut file) = loop {
        let suffix: String = crate::connect::random_token()?.chars().take(16).collect();
        let temporary = directory.join(format!(".{file_name}.{suffix}.tmp"));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(&temporary) {
            Ok(file) => break (temporary, file),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && attempts < 16 => attempts += 1,
            Err(error) => return Err(error),
        }
    };
    let written = (|| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, path)
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    #[cfg(unix)]
    if let Ok(directory) = std::fs::File::open(&directory) {
        // Makes the rename durable; some file systems refuse fsync on a directory.
        let _ = directory.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_need_an_access_token() {
        let grant =
            parse_grant(br#"{"access_token":"ya29.x","expires_in":3599,"scope":"s","token_type":"Bearer"}"#).unwrap();
        assert_eq!(grant.access_token.expose(), "ya29.x");
        assert_eq!(grant.expires_in, Some(Duration::from_secs(3599)));
        assert!(parse_grant(br#"{"expires_in":3599}"#).is_none());
        assert!(parse_grant(br#"{"access_token":""}"#).is_none());
        assert!(parse_grant(b"<html>").is_none());
    }

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
