//! What mailroom's HTTP drivers (Exchange, Gmail, Microsoft Graph) share: the HTTP client, the classification of failed requests, per-request secret scrubbing, the OAuth2 flows, and owner-only files for secrets.
//!
//! - [`HttpClient`]: reqwest 0.13 on core's TLS trust policy, HTTP/1.1, no redirects; loopback
//!   and `http://` endpoints bypass the environment's proxy, others honour `HTTPS_PROXY`;
//!   `*.localhost` resolves to loopback without DNS, and an `http://` endpoint must resolve to
//!   loopback addresses only; a connect (TCP + TLS) deadline apart from the reply deadline;
//!   bounded reads (size, and a deadline per body chunk); whether the request body was handed
//!   over, so a failure is classified as [`Failure::NotSent`] (sent again once, transparently),
//!   [`Failure::DeliveryUnknown`] (never resent) and so on.
//! - [`scrubber_for_request`]: a request's secrets (credential headers, secrets in the body or
//!   the URL's query) for core's `Scrubber`, applied to everything kept of the reply, to the
//!   recorded request line and to errors.
//! - OAuth2 on the `oauth2` crate with its `AsyncHttpClient` on our client: [`OAuthClient`]
//!   (refresh token, client credentials, authorization code + PKCE, device code),
//!   [`LoopbackConsent`] (the loopback redirect listener), [`OAuthTokenSource`] (core's
//!   `TokenSource`), [`Endpoints`] presets for Google and the Microsoft identity platform, and
//!   [`TokenEndpointError`] (status, OAuth `error`, description, AADSTS code, `Retry-After`).
//! - [`write_private_file`] / [`read_private_file`]: secret-bearing files, atomic and 0600;
//!   [`replace_refresh_token`] writes a rotated refresh token back into its token file.
//! - [`retry_after`], [`backoff_millis`], [`token_expiry`]: server numbers within bounds.

// Items are `pub` only where the crate exports them: a user sees exactly the public API.
#![warn(unreachable_pub)]

mod client;
mod error;
mod limits;
mod oauth;
mod private_file;
mod scrub;

pub use client::{
    BuildError, ClientOptions, HttpClient, LOOPBACK, Reply, Request, bypasses_proxy, environment_proxy,
    is_localhost_name,
};
pub use error::{Failure, HttpError};
pub use limits::{MAX_BACKOFF, MAX_TOKEN_LIFETIME, backoff_millis, deadline_after, retry_after, token_expiry};
pub use oauth::{
    ConsentError, DeviceAuthorization, Endpoints, ErrorMapper, IdClaims, LoopbackConsent, MICROSOFT_AUTHORITY,
    OAuthClient, OAuthError, OAuthTokenSource, RefreshTokenProvider, RefreshTokenSink, Token, TokenEndpointError,
};
pub use private_file::{read_private_file, readable_by_others, replace_refresh_token, write_private_file};
pub use scrub::{Header, scrubber_for_request};

/// A URL as shown in messages: never with user info.
///
/// ```
/// let url = "https://user:pw@example.com/x".parse().unwrap();
/// assert_eq!(mailroom_http::shown(&url), "https://example.com/x");
/// ```
pub fn shown(url: &url::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
