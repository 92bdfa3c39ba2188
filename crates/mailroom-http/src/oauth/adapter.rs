//! oauth2's `AsyncHttpClient` on our [`HttpClient`]: every request goes through our trust, deadlines, pinning and classification, form secrets are redacted in the transcript and scrubbed from replies, and the last reply (status, `Retry-After`, raw body) is kept for classification.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex as SyncMutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mailroom_core::{REDACTED, Transcript};
use reqwest::header::HeaderName;
use tokio::sync::{Mutex, Notify};
use url::Url;

use crate::{Failure, Header, HttpClient, HttpError, Request};

/// Form parameters whose values are secrets.
const SECRET_PARAMS: &[&str] = &[
    "client_secret",
    "refresh_token",
    "code",
    "code_verifier",
    "device_code",
    "password",
    "assertion",
    "client_assertion",
];

/// What the last reply was, as far as classification needs it.
#[derive(Clone, Debug)]
pub(crate) struct LastReply {
    pub status: u16,
    pub retry_after: Option<String>,
    /// Scrubbed body text.
    pub body: String,
    pub body_error: Option<String>,
}

/// One flow's use of the HTTP client.
pub(crate) struct Adapter<'a> {
    http: &'a HttpClient,
    reply_timeout: Duration,
    client_secret: Option<String>,
    pub(crate) transcript: Mutex<Transcript>,
    pub(crate) last: SyncMutex<Option<LastReply>>,
    /// The last transport failure, for flows (device polling) in which oauth2 swallows it.
    pub(crate) failure: SyncMutex<Option<HttpError>>,
    consecutive_failures: AtomicUsize,
    /// Signalled when a transport failure will not go away by polling again.
    pub(crate) fatal: Notify,
}

impl<'a> Adapter<'a> {
    pub(crate) fn new(http: &'a HttpClient, reply_timeout: Duration, client_secret: Option<String>) -> Adapter<'a> {
        Adapter {
            http,
            reply_timeout,
            client_secret,
            transcript: Mutex::new(Transcript::new()),
            last: SyncMutex::new(None),
            failure: SyncMutex::new(None),
            consecutive_failures: AtomicUsize::new(0),
            fatal: Notify::new(),
        }
    }

    pub(crate) fn last_reply(&self) -> Option<LastReply> {
        self.last.lock().map(|l| l.clone()).unwrap_or(None)
    }

    pub(crate) fn last_failure(&self) -> Option<HttpError> {
        self.failure.lock().map(|l| l.clone()).unwrap_or(None)
    }

    pub(crate) async fn take_transcript(&self) -> Transcript {
        std::mem::take(&mut *self.transcript.lock().await)
    }

    async fn call_inner(&self, request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, HttpError> {
        let url: Url = request.uri().to_string().parse().map_err(|_| {
            HttpError::new(
                Failure::NotHttp,
                &Url::parse("http://invalid.invalid/").expect("static URL"),
                "oauth2 built an unusable URL",
            )
        })?;
        let (parts, body) = request.into_parts();
        let mut secrets: Vec<String> = self.client_secret.iter().cloned().collect();
        let mut shown = Vec::new();
        for (name, value) in url::form_urlencoded::parse(&body) {
            if SECRET_PARAMS.contains(&name.as_ref()) {
                secrets.push(value.into_owned());
                shown.push(format!("{name}={REDACTED}"));
            } else {
                shown.push(format!("{name}={value}"));
            }
        }
        let mut outgoing =
            Request::new(parts.method.clone(), &url).body(body, shown.join("&")).reply_timeout(self.reply_timeout);
        for secret in secrets {
            outgoing = outgoing.secret(secret);
        }
        for (name, value) in &parts.headers {
            let name: HeaderName = name.clone();
            outgoing = if name == reqwest::header::AUTHORIZATION {
                outgoing.header(Header::secret(name, value.clone()))
            } else {
                outgoing.header(Header::new(name, value.clone()))
            };
        }
        let mut transcript = self.transcript.lock().await;
        let result = self.http.send(outgoing, &mut transcript).await;
        let reply = match result {
            Ok(reply) => reply,
            Err(error) => {
                let failures = self.consecutive_failures.fetch_add(1, Ordering::SeqCst) + 1;
                if let Ok(mut slot) = self.failure.lock() {
                    *slot = Some(error.clone());
                }
                let hopeless = matches!(
                    error.failure(),
                    Failure::Tls(_) | Failure::NotLoopback | Failure::NotHttp | Failure::Resolve | Failure::TooLarge
                );
                if hopeless || failures >= 3 {
                    self.fatal.notify_one();
                }
                return Err(error);
            }
        };
        self.consecutive_failures.store(0, Ordering::SeqCst);
        let body_text = reply.scrubbed_text();
        if reply.is_success() {
            // Never the body itself: it carries the tokens.
            transcript.server(&format!("{{\"access_token\": {REDACTED}, …}}"));
        } else {
            transcript.server(&crate::oauth::error::snippet(body_text.as_bytes()));
        }
        if let Ok(mut slot) = self.last.lock() {
            *slot = Some(LastReply {
                status: reply.status,
                retry_after: reply.header("retry-after").map(str::to_owned),
                body: body_text,
                body_error: reply.body_error.clone(),
            });
        }
        let mut response = http::Response::builder().status(reply.status);
        // oauth2 refuses a success reply whose Content-Type is not application/json; the
        // previous hand-written clients (and some proxies and test servers) judged the body
        // instead. A body that is a JSON object is handed over as JSON, whatever its label.
        let json_body = reply.is_success()
            && serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&reply.body).is_ok();
        for (name, value) in &reply.headers {
            if json_body && name == reqwest::header::CONTENT_TYPE {
                continue;
            }
            response = response.header(name, value);
        }
        if json_body {
            response = response.header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        response.body(reply.body).map_err(|e| HttpError::new(Failure::NotHttp, &url, e.to_string()))
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for Adapter<'_> {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.call_inner(request))
    }
}
