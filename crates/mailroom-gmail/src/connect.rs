//! The OAuth2 installed-app loopback flow behind `mailroom connect google`: consent URL (PKCE S256, `state`, offline access), a one-shot listener on 127.0.0.1, the code exchange.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mailroom_core::config::GmailConfig;
use mailroom_core::{ErrorKind, Secret, SendError, Transcript};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::http;
use crate::token::{Param, TokenClient};

/// The only scope mailroom asks for: send mail as the account, nothing else.
pub const GMAIL_SEND_SCOPE: &str = "https://www.googleapis.com/auth/gmail.send";

/// How long the browser may take to send one request to the listener.
const REQUEST_READ_LIMIT: Duration = Duration::from_secs(10);

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
    listener: TcpListener,
    redirect_uri: String,
    authorize_url: url::Url,
    state: String,
    verifier: Secret,
    tokens: TokenClient,
}

impl std::fmt::Debug for ConsentFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentFlow").field("redirect_uri", &self.redirect_uri).finish_non_exhaustive()
    }
}

/// The result of a completed consent.
#[derive(Debug)]
pub struct Connected {
    /// The refresh token to store (in `token_file`).
    pub refresh_token: Secret,
    /// The scopes Google says were granted.
    pub scope: Option<String>,
}

/// Why the consent flow failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The loopback listener could not be opened.
    #[error("cannot listen on 127.0.0.1 for Google's redirect: {0}")]
    Listen(#[source] std::io::Error),
    /// The user clicked Cancel (or Google refused): `error=access_denied` on the redirect.
    #[error("Google did not grant access: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Denied {
        /// The `error` parameter.
        error: String,
        /// The `error_description` parameter, if any.
        description: Option<String>,
    },
    /// The redirect's `state` is not the one this flow sent (a stale tab or a forged request).
    #[error(
        "the redirect's state parameter does not match this sign-in: start `mailroom connect google` again and use the link it prints"
    )]
    StateMismatch,
    /// No redirect arrived in time.
    #[error("no answer from the browser within {} s", .0.as_secs())]
    TimedOut(Duration),
    /// Google answered without a refresh token.
    #[error("Google granted access but sent no refresh token")]
    NoRefreshToken,
    /// The code exchange at the token endpoint failed (classified like a refresh).
    #[error("exchanging the authorization code failed: {0}")]
    Token(#[source] Box<SendError>),
}

impl ConnectError {
    /// The classified error, for the CLI's JSON and remediation output.
    pub fn into_send_error(self) -> SendError {
        let detail = self.to_string();
        match self {
            ConnectError::Token(error) => *error,
            ConnectError::Listen(_) => SendError::new(ErrorKind::ConnectFailed, detail)
                .with_hint("mailroom needs a free local port on 127.0.0.1 to receive Google's answer: check that local connections are allowed."),
            ConnectError::Denied { .. } => SendError::new(ErrorKind::PermissionDenied, detail)
                .with_hint("Run `mailroom connect google --config FILE` again, sign in with the Company Email account and click Allow on Google's consent screen."),
            ConnectError::StateMismatch => SendError::new(ErrorKind::Protocol, detail),
            ConnectError::TimedOut(_) => SendError::new(ErrorKind::Timeout, detail)
                .with_hint("Open the printed link in a browser on this machine (the redirect goes to 127.0.0.1), sign in and click Allow before the time runs out."),
            ConnectError::NoRefreshToken => SendError::new(ErrorKind::OauthReconnectRequired, detail)
                .with_field("email_services.refresh_token")
                .with_hint("Remove mailroom's access at https://myaccount.google.com/permissions, then run `mailroom connect google --config FILE` again."),
        }
    }
}

fn random_token() -> Result<String, ConnectError> {
    let mut bytes = [0u8; 32];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| ConnectError::Listen(std::io::Error::other("the system random generator failed")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl ConsentFlow {
    /// Opens the listener on an ephemeral port of 127.0.0.1 and builds the consent URL;
    /// `login_hint` (the Company Email address) preselects the account on Google's page.
    pub async fn start(config: &GmailConfig, login_hint: Option<&str>) -> Result<ConsentFlow, ConnectError> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(ConnectError::Listen)?;
        let port = listener.local_addr().map_err(ConnectError::Listen)?.port();
        let redirect_uri = format!("http://127.0.0.1:{port}");
        let state = random_token()?;
        let verifier = Secret::new(random_token()?);
        let mut authorize_url = config.auth_uri.clone();
        {
            let mut query = authorize_url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &config.client_id)
                .append_pair("redirect_uri", &redirect_uri)
                .append_pair("scope", GMAIL_SEND_SCOPE)
                .append_pair("access_type", "offline")
                .append_pair("prompt", "consent")
                .append_pair("code_challenge", &challenge(verifier.expose()))
                .append_pair("code_challenge_method", "S256")
                .append_pair("state", &state);
            if let Some(hint) = login_hint {
                query.append_pair("login_hint", hint);
            }
        }
        let http = http::client(config.timeout, &[]).map_err(|e| ConnectError::Listen(std::io::Error::other(e)))?;
        let tokens = TokenClient {
            http,
            token_uri: config.token_uri.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            timeout: config.timeout,
        };
        Ok(ConsentFlow { listener, redirect_uri, authorize_url, state, verifier, tokens })
    }

    /// The page the user opens to sign in and allow access.
    pub fn authorize_url(&self) -> &url::Url {
        &self.authorize_url
    }

    /// Where Google sends the browser back: `http://127.0.0.1:PORT`.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Waits up to `wait` for the redirect, checks `state`, exchanges the code (with the
    /// PKCE verifier) at `token_uri` and returns the refresh token. The browser gets a short
    /// page saying how it went. Requests for other paths (a favicon) are answered 404 and
    /// the wait goes on.
    pub async fn finish(self, wait: Duration) -> Result<Connected, ConnectError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let accepted = tokio::time::timeout_at(deadline, self.listener.accept()).await;
            let mut stream = match accepted {
                Err(_) => return Err(ConnectError::TimedOut(wait)),
                Ok(Err(error)) => {
                    tracing::debug!(%error, "accepting a loopback connection failed");
                    continue;
                }
                Ok(Ok((stream, _))) => stream,
            };
            let Some(target) = read_request_target(&mut stream).await else {
                respond(&mut stream, "400 Bad Request", "This is mailroom's sign-in listener.").await;
                continue;
            };
            let Ok(url) = url::Url::parse(&format!("http://127.0.0.1{target}")) else {
                respond(&mut stream, "400 Bad Request", "This is mailroom's sign-in listener.").await;
                continue;
            };
            let params: HashMap<String, String> = url.query_pairs().into_owned().collect();
            if url.path() != "/" || !(params.contains_key("code") || params.contains_key("error")) {
                respond(&mut stream, "404 Not Found", "This is mailroom's sign-in listener.").await;
                continue;
            }
            if params.get("state") != Some(&self.state) {
                respond(
                    &mut stream,
                    "400 Bad Request",
                    "This sign-in link is not the current one: run `mailroom connect google` again.",
                )
                .await;
                return Err(ConnectError::StateMismatch);
            }
            if let Some(error) = params.get("error") {
                respond(&mut stream, "200 OK", "Access was not granted. You can close this window.").await;
                return Err(ConnectError::Denied {
                    error: error.clone(),
                    description: params.get("error_description").cloned(),
                });
            }
            let code = Secret::new(params.get("code").cloned().unwrap_or_default());
            let result = self.exchange(&code).await;
            match &result {
                Ok(_) => {
                    respond(&mut stream, "200 OK", "mailroom is connected to Gmail. You can close this window.").await
                }
                Err(error) => {
                    let text = format!("Connecting failed: {error}. Details are in the terminal.");
                    respond(&mut stream, "200 OK", &text).await
                }
            }
            return result;
        }
    }

    async fn exchange(&self, code: &Secret) -> Result<Connected, ConnectError> {
        let mut transcript = Transcript::new();
        let grant = self
            .tokens
            .request(
                &[
                    ("grant_type", Param::Public("authorization_code")),
                    ("code", Param::Secret(code)),
                    ("redirect_uri", Param::Public(&self.redirect_uri)),
                    ("code_verifier", Param::Secret(&self.verifier)),
                ],
                &mut transcript,
            )
            .await
            .map_err(|e| ConnectError::Token(Box::new(e.into_send_error(transcript))))?;
        let refresh_token = grant.refresh_token.ok_or(ConnectError::NoRefreshToken)?;
        Ok(Connected { refresh_token, scope: grant.scope })
    }
}

/// Reads one request head (at most 16 KiB) and returns the target of a GET.
async fn read_request_target(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 2048];
    let read = async {
        while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buffer).await.ok()?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buffer[..n]);
        }
        Some(())
    };
    tokio::time::timeout(REQUEST_READ_LIMIT, read).await.ok()??;
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.lines().next()?.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("GET"), Some(target), Some(version)) if target.starts_with('/') && version.starts_with("HTTP/") => {
            Some(target.to_owned())
        }
        _ => None,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, text: &str) {
    let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let body = format!("<!doctype html><meta charset=utf-8><title>mailroom</title><p>{escaped}</p>\n");
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REQUEST_READ_LIMIT, async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }
}
