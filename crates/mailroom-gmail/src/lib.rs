//! mailroom's Email Services driver: sends the Company Email's messages through the Gmail API as a Google account connected with OAuth2.
//!
//! - [`GmailTransport`] implements [`mailroom_core::Transport`]: it uploads the message's
//!   RFC 5322 bytes unchanged as `message/rfc822` to the media upload endpoint
//!   (`/upload/gmail/v1/users/me/messages/send?uploadType=media`, up to 35 MB), never the JSON
//!   `raw` path, which fails above a few MB.
//! - Access tokens come from the refresh-token grant at `token_uri`, through core's
//!   [`mailroom_core::TokenCache`] (early refresh, single flight); a token the API rejects
//!   with 401 is refreshed once and the request retried once.
//! - [`ConsentFlow`] is the OAuth2 installed-app loopback flow behind
//!   `mailroom connect google`: consent URL with PKCE (S256) and `state`, a listener on
//!   `127.0.0.1` that waits for the redirect carrying that `state` (stray requests are
//!   answered and ignored), the code exchange, a check that the granted scope can send and
//!   that the account that signed in (`openid email`) is the Company Email address, and the
//!   refresh token, which [`save_refresh_token`] writes to the config's `token_file`
//!   (owner-only, through a fresh temporary file renamed into place). The HTTP client, its
//!   failure classification and the OAuth2 flows come from `mailroom-http`.
//! - Every failure is a [`GmailError`] inside the driver and a classified
//!   [`mailroom_core::SendError`] outside, naming the config field to change and keeping
//!   Google's reply (HTTP status, reason, message). No secret (client secret, refresh token,
//!   access token, authorization code) reaches an error, a transcript or a log line.
//!
//! HTTP goes through reqwest 0.13 on rustls with the aws-lc-rs provider (the workspace's one
//! crypto provider), trusting Mozilla's roots plus any extra root given to the builder, and
//! never following redirects. Google's https endpoints honour the environment's proxy
//! settings; loopback and `http://` endpoints never go through a proxy.
//!
//! Only failures that happened before Gmail could have accepted the message are marked
//! retryable: 429, 503 and throttling refusals of the upload, connect failures, and 429/5xx
//! answers of the token endpoint (no message had been sent yet). A 500/502/504 answer to the
//! upload is not (the message may have gone out), nor is a connection lost after the upload
//! (`delivery_unknown`).

// Items are `pub` only where the crate exports them: a user sees exactly the public API.
#![warn(unreachable_pub)]

mod connect;
mod error;
mod http;
mod probe;
mod token;
mod transport;

pub use connect::{ConnectError, Connected, ConsentFlow, GMAIL_SEND_SCOPE};
pub use error::{ApiError, Endpoint, GmailError, TokenErrorBody};
pub use token::{google_oauth_client, load_refresh_token, save_refresh_token};
pub use transport::{GmailTransport, GmailTransportBuilder, MAX_UPLOAD_BYTES};

/// The README's example, compiled (and run where it needs no server) as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
