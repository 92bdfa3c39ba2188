//! The OAuth2 installed-app loopback flow behind `mailroom connect google`: consent URL (PKCE S256, `state`, offline access), a listener on 127.0.0.1 that waits for the redirect carrying its `state`, the code exchange, and the check that the grant can send.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mailroom_core::config::GmailConfig;
use mailroom_core::{ErrorKind, Secret, SendError, Transcript};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::error::scope_allows_send;
use crate::http;
use crate::token::{Param, TokenClient};

/// The only scope mailroom asks for: send mail as the account, nothing else.
pub const GMAIL_SEND_SCOPE: &str = "https://www.googleapis.com/auth/gmail.send";

/// How long the browser may take to send one request to the listener (and to take the reply).
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
            ConnectError::Denied { .. } => SendError::new(ErrorKind::PermissionDenied, detail)
                .with_hint("Run `mailroom connect google --config FILE` again, sign in with the Company Email account and click Allow on Google's consent screen."),
            ConnectError::StateMismatch => SendError::new(ErrorKind::Protocol, detail)
                .with_hint(format!("{RERUN} Close older sign-in tabs first: the page that came back belonged to an earlier link, and only the newest link works."))
                .with_hint("Nothing needs changing in the config file.")
                .with_complete_hints(),
            ConnectError::TimedOut(_) => SendError::new(ErrorKind::Timeout, detail)
                .with_hint("Open the printed link in a browser on this machine (the redirect goes to 127.0.0.1), sign in and click Allow before the time runs out.")
                .with_hint("Run `mailroom connect google --config FILE` again; --wait-secs gives more time. Nothing needs changing in the config file.")
                .with_complete_hints(),
            ConnectError::ScopeNotGranted { .. } => SendError::new(ErrorKind::PermissionDenied, detail)
                .with_field("email_services.refresh_token")
                .with_hint(format!("Run `mailroom connect google --config FILE` again and, on Google's consent screen, tick the box \"Send email on your behalf\" ({GMAIL_SEND_SCOPE}) before clicking Continue. Nothing was saved.")),
            ConnectError::NoRefreshToken => SendError::new(ErrorKind::OauthReconnectRequired, detail)
                .with_field("email_services.refresh_token")
                .with_hint("Remove mailroom's access at https://myaccount.google.com/permissions, then run `mailroom connect google --config FILE` again."),
        }
    }
}

/// 32 random bytes (aws-lc-rs's RNG), base64url: `state`, the PKCE verifier, and the name of
/// the token file's temporary file.
pub(crate) fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| std::io::Error::other("the system random generator failed"))?;
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
        let state = random_token().map_err(ConnectError::Listen)?;
        let verifier = Secret::new(random_token().map_err(ConnectError::Listen)?);
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
        let http = http::client_for(&config.token_uri, config.timeout, &[])
            .map_err(|e| ConnectError::Listen(std::io::Error::other(e)))?;
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
        let deadline = tokio::time::Instant::now() + wait;
        let mut reading: JoinSet<(TcpStream, Option<String>)> = JoinSet::new();
        let mut saw_other_state = false;
        loop {
            let (mut stream, target) = tokio::select! {
                accepted = self.listener.accept() => {
                    match accepted {
                        Ok((stream, _)) => {
                            let limit = deadline.min(tokio::time::Instant::now() + REQUEST_READ_LIMIT);
                            reading.spawn(read_request_target(stream, limit));
                        }
                        Err(error) => {
                            // Out of file descriptors and the like: do not spin.
                            tracing::debug!(%error, "accepting a loopback connection failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                    continue;
                }
                Some(read) = reading.join_next(), if !reading.is_empty() => match read {
                    Ok(read) => read,
                    Err(_) => continue,
                },
                () = tokio::time::sleep_until(deadline) => {
                    return Err(if saw_other_state { ConnectError::StateMismatch } else { ConnectError::TimedOut(wait) });
                }
            };
            match self.judge(target.as_deref()) {
                Verdict::Stray { status, text, other_state } => {
                    saw_other_state |= other_state;
                    tokio::spawn(async move { respond(&mut stream, status, text).await });
                }
                Verdict::Denied { error, description } => {
                    respond(&mut stream, "200 OK", "Access was not granted. You can close this window.").await;
                    return Err(ConnectError::Denied { error, description });
                }
                Verdict::Code(code) => {
                    let result = self.exchange(&code).await;
                    match &result {
                        Ok(_) => {
                            respond(&mut stream, "200 OK", "mailroom is connected to Gmail. You can close this window.")
                                .await
                        }
                        Err(error) => {
                            let text = format!("Connecting failed: {error}. Details are in the terminal.");
                            respond(&mut stream, "200 OK", &text).await
                        }
                    }
                    return result;
                }
            }
        }
    }

    /// What to do with one request to the listener.
    fn judge(&self, target: Option<&str>) -> Verdict {
        const LISTENER: &str = "This is mailroom's sign-in listener.";
        let Some(url) = target.and_then(|t| url::Url::parse(&format!("http://127.0.0.1{t}")).ok()) else {
            return Verdict::Stray { status: "400 Bad Request", text: LISTENER, other_state: false };
        };
        if url.path() != "/" {
            return Verdict::Stray { status: "404 Not Found", text: LISTENER, other_state: false };
        }
        let params: HashMap<String, String> = url.query_pairs().into_owned().collect();
        if !["state", "code", "error"].iter().any(|key| params.contains_key(*key)) {
            return Verdict::Stray { status: "400 Bad Request", text: LISTENER, other_state: false };
        }
        if params.get("state") != Some(&self.state) {
            return Verdict::Stray {
                status: "400 Bad Request",
                text: "This sign-in link is not the current one: finish the sign-in in the tab opened from the link mailroom printed last, or run `mailroom connect google` again.",
                other_state: true,
            };
        }
        if let Some(error) = params.get("error") {
            return Verdict::Denied { error: error.clone(), description: params.get("error_description").cloned() };
        }
        match params.get("code").filter(|c| !c.is_empty()) {
            Some(code) => Verdict::Code(Secret::new(code.clone())),
            None => Verdict::Stray {
                status: "400 Bad Request",
                text: "This answer from Google carries no authorization code.",
                other_state: false,
            },
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
        // Google's granular consent screen lets the user untick the send scope and still
        // returns a refresh token: one that can never send. Refuse it rather than store it.
        if let Some(scope) = grant.scope.as_deref()
            && !scope_allows_send(scope)
        {
            return Err(ConnectError::ScopeNotGranted { scope: scope.to_owned() });
        }
        let refresh_token = grant.refresh_token.ok_or(ConnectError::NoRefreshToken)?;
        Ok(Connected { refresh_token, scope: grant.scope })
    }
}

/// What a request to the listener means for the flow.
enum Verdict {
    /// Not this flow's redirect: answer it and keep waiting.
    Stray {
        /// The status line.
        status: &'static str,
        /// The page text.
        text: &'static str,
        /// It carried another sign-in's `state`.
        other_state: bool,
    },
    /// This flow's redirect, with an `error` (the user clicked Cancel, or Google refused).
    Denied {
        /// The `error` parameter.
        error: String,
        /// The `error_description` parameter.
        description: Option<String>,
    },
    /// This flow's redirect, with the authorization code.
    Code(Secret),
}

/// Reads one request head (at most 16 KiB) until `limit` and returns the stream and the
/// target of a GET (`None` for anything else, or nothing in time).
async fn read_request_target(mut stream: TcpStream, limit: tokio::time::Instant) -> (TcpStream, Option<String>) {
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
    if tokio::time::timeout_at(limit, read).await.ok().flatten().is_none() {
        return (stream, None);
    }
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.lines().next().unwrap_or_default().split(' ');
    let target = match (parts.next(), parts.next(), parts.next()) {
        (Some("GET"), Some(target), Some(version)) if target.starts_with('/') && version.starts_with("HTTP/") => {
            Some(target.to_owned())
        }
        _ => None,
    };
    (stream, target)
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
