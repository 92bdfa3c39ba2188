//! The authorization code flow with PKCE on a loopback redirect (RFC 8252): the consent URL, a listener on 127.0.0.1 that waits for the redirect carrying its `state` (stray requests answered 400/404, every connection read concurrently under its own deadline), and the code exchange.

use std::collections::HashMap;
use std::time::Duration;

use mailroom_core::{Secret, Transcript};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::client::OAuthClient;
use super::error::OAuthError;
use super::reply::Token;

/// How long a browser may take to send one request to the listener (and to take the reply).
const REQUEST_READ_LIMIT: Duration = Duration::from_secs(10);

/// A consent in progress: the URL to open and a listener waiting for the redirect.
///
/// ```no_run
/// # async fn run(client: mailroom_http::OAuthClient) -> Result<(), mailroom_http::ConsentError> {
/// use std::time::Duration;
/// let consent = mailroom_http::LoopbackConsent::start(
///     client,
///     &["openid", "email", "https://www.googleapis.com/auth/gmail.send"],
///     &[("access_type", "offline"), ("prompt", "consent"), ("login_hint", "erp@company.com")],
///     "127.0.0.1",
/// )
/// .await?;
/// println!("Open this page, sign in and click Allow:\n{}", consent.authorize_url());
/// let (token, _transcript) = consent.finish(Duration::from_secs(300)).await?;
/// println!("signed in as {:?}", token.id.as_ref().and_then(|id| id.account()));
/// # Ok(()) }
/// ```
pub struct LoopbackConsent {
    listener: TcpListener,
    redirect_uri: String,
    authorize_url: url::Url,
    state: String,
    verifier: Secret,
    client: OAuthClient,
}

impl std::fmt::Debug for LoopbackConsent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackConsent").field("redirect_uri", &self.redirect_uri).finish_non_exhaustive()
    }
}

/// Why a loopback consent failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsentError {
    /// The loopback listener could not be opened.
    #[error("cannot listen on 127.0.0.1 for the sign-in redirect: {0}")]
    Listen(#[source] std::io::Error),
    /// The client was built without an authorization endpoint ([`crate::Endpoints::token_only`]).
    #[error("this authorization server has no authorization endpoint, so there is no sign-in page to open")]
    NoAuthorizationEndpoint,
    /// The sign-in could not be prepared: the redirect URI was refused, or the system random
    /// generator (for `state`) failed.
    #[error("cannot prepare the sign-in: {0}")]
    Setup(String),
    /// The redirect came back with `error` (the user clicked Cancel, or the server refused).
    #[error("access was not granted: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
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
    /// No redirect arrived in time.
    #[error("no answer from the browser within {} s", .0.as_secs())]
    TimedOut(Duration),
    /// The code exchange at the token endpoint failed.
    #[error("exchanging the authorization code failed: {error}")]
    Token {
        /// What failed.
        #[source]
        error: OAuthError,
        /// The exchange.
        transcript: Transcript,
    },
}

/// 32 random bytes (aws-lc-rs's RNG), base64url.
fn random_token() -> std::io::Result<String> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| std::io::Error::other("the system random generator failed"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

impl LoopbackConsent {
    /// Opens a listener on an ephemeral port of 127.0.0.1 and builds the consent URL
    /// (`response_type=code`, `scopes`, PKCE S256, `state`, `extra` parameters) with the
    /// redirect `http://{redirect_host}:{port}` (Google: `127.0.0.1`; Microsoft's "Mobile and
    /// desktop applications" platform: `localhost`).
    pub async fn start(
        client: OAuthClient,
        scopes: &[&str],
        extra: &[(&str, &str)],
        redirect_host: &str,
    ) -> Result<LoopbackConsent, ConsentError> {
        let Some(authorize) = client.endpoints.authorize.clone() else {
            return Err(ConsentError::NoAuthorizationEndpoint);
        };
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(ConsentError::Listen)?;
        let port = listener.local_addr().map_err(ConsentError::Listen)?.port();
        let redirect_uri = format!("http://{redirect_host}:{port}");
        let redirect = oauth2::RedirectUrl::new(redirect_uri.clone())
            .map_err(|e| ConsentError::Setup(format!("the redirect URI {redirect_uri} is refused: {e}")))?;
        let state = random_token().map_err(|e| ConsentError::Setup(e.to_string()))?;
        let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
        let oauth = client.token_client().set_auth_uri(oauth2::AuthUrl::from_url(authorize)).set_redirect_uri(redirect);
        let state_for_url = state.clone();
        let mut request = oauth
            .authorize_url(move || oauth2::CsrfToken::new(state_for_url))
            .add_scopes(scopes.iter().map(|s| oauth2::Scope::new((*s).to_owned())))
            .set_pkce_challenge(challenge);
        for (name, value) in extra {
            request = request.add_extra_param(*name, *value);
        }
        let (authorize_url, _) = request.url();
        Ok(LoopbackConsent {
            listener,
            redirect_uri,
            authorize_url,
            state,
            verifier: Secret::new(verifier.secret().to_owned()),
            client,
        })
    }

    /// The page the user opens to sign in and allow access.
    pub fn authorize_url(&self) -> &url::Url {
        &self.authorize_url
    }

    /// Where the browser comes back: `http://{redirect_host}:{port}`.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Waits up to `wait` for the redirect, checks `state`, exchanges the code (with the PKCE
    /// verifier) and returns the token with the exchange's transcript. The browser gets a
    /// short page saying how it went.
    ///
    /// Only the redirect carrying this flow's `state` ends the wait: with a code (the
    /// exchange) or an `error` ([`ConsentError::Denied`]). Anything else — another `state`,
    /// no code, other paths such as `/favicon.ico`, garbage — is answered 400 or 404 and the
    /// wait goes on. Connections are read concurrently, each within a few seconds and never
    /// past the deadline, so a client that connects and sends nothing cannot hold the flow up.
    pub async fn finish(self, wait: Duration) -> Result<(Token, Transcript), ConsentError> {
        self.finish_with(wait, |token, transcript| Ok::<_, std::convert::Infallible>((token, transcript))).await.map(
            |accepted| match accepted {
                Ok(done) => done,
                Err(never) => match never {},
            },
        )
    }

    /// [`LoopbackConsent::finish`], with the caller's own check of the token (a granted
    /// scope, the signed-in account) before the browser is told how it went: the page says
    /// "connected" only when `accept` returns `Ok`.
    pub async fn finish_with<T, E>(
        self,
        wait: Duration,
        accept: impl FnOnce(Token, Transcript) -> Result<T, E>,
    ) -> Result<Result<T, E>, ConsentError> {
        let now = tokio::time::Instant::now();
        let deadline = now.checked_add(wait).unwrap_or(now + Duration::from_secs(24 * 3600));
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
                    return Err(if saw_other_state { ConsentError::StateMismatch } else { ConsentError::TimedOut(wait) });
                }
            };
            match self.judge(target.as_deref()) {
                Verdict::Stray { status, text, other_state } => {
                    saw_other_state |= other_state;
                    tokio::spawn(async move { respond(&mut stream, status, text).await });
                }
                Verdict::Denied { error, description } => {
                    respond(&mut stream, "200 OK", "Access was not granted. You can close this window.").await;
                    return Err(ConsentError::Denied { error, description });
                }
                Verdict::Code(code) => {
                    let mut transcript = Transcript::new();
                    let result =
                        self.client.exchange_code(&code, &self.verifier, &self.redirect_uri, &mut transcript).await;
                    let outcome = match result {
                        Ok(token) => Ok(accept(token, transcript)),
                        Err(error) => Err(ConsentError::Token { error, transcript }),
                    };
                    let page = match &outcome {
                        Ok(Ok(_)) => "mailroom is connected. You can close this window.",
                        _ => "Connecting failed. Details are in the terminal.",
                    };
                    respond(&mut stream, "200 OK", page).await;
                    return outcome;
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
                text: "This sign-in link is not the current one: finish the sign-in in the tab opened from the link mailroom printed last, or run `mailroom connect` again.",
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
                text: "This answer carries no authorization code.",
                other_state: false,
            },
        }
    }
}

/// What a request to the listener means for the flow.
enum Verdict {
    /// Not this flow's redirect: answer it and keep waiting.
    Stray { status: &'static str, text: &'static str, other_state: bool },
    /// This flow's redirect, with an `error`.
    Denied { error: String, description: Option<String> },
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
