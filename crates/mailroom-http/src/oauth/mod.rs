//! OAuth2, written once on the `oauth2` crate: endpoint presets (Google, Microsoft identity platform), the token reply and its typed errors, and the flows (refresh token, client credentials, authorization code + PKCE on a loopback listener, device code).
//!
//! `oauth2` builds the requests and parses success replies; its `AsyncHttpClient` is
//! implemented on our [`crate::HttpClient`] (see `adapter.rs`), which records every reply's
//! status, `Retry-After` and raw body, so a refusal reaches the drivers as a typed
//! [`TokenEndpointError`] rather than as oauth2's status-less error.

mod adapter;
mod client;
mod error;
mod loopback;
mod reply;
mod source;

pub use client::{DeviceAuthorization, OAuthClient};
pub use error::{OAuthError, TokenEndpointError};
pub use loopback::{ConsentError, LoopbackConsent};
pub use reply::{IdClaims, Token};
pub use source::{ErrorMapper, OAuthTokenSource, RefreshTokenProvider, RefreshTokenSink};

use url::Url;

/// Where one OAuth2 authorization server takes its requests.
///
/// ```
/// let google = mailroom_http::Endpoints::google();
/// assert_eq!(google.token.as_str(), "https://oauth2.googleapis.com/token");
/// let entra = mailroom_http::Endpoints::microsoft(&"https://login.microsoftonline.com".parse().unwrap(), "company.onmicrosoft.com");
/// assert_eq!(entra.token.as_str(), "https://login.microsoftonline.com/company.onmicrosoft.com/oauth2/v2.0/token");
/// assert_eq!(entra.device.unwrap().as_str(), "https://login.microsoftonline.com/company.onmicrosoft.com/oauth2/v2.0/devicecode");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// The token endpoint (every grant).
    pub token: Url,
    /// The authorization endpoint (the browser's consent page), if the server has one.
    pub authorize: Option<Url>,
    /// The device authorization endpoint (RFC 8628), if the server has one.
    pub device: Option<Url>,
}

impl Endpoints {
    /// Google's endpoints.
    pub fn google() -> Endpoints {
        Endpoints {
            token: Url::parse("https://oauth2.googleapis.com/token").expect("static URL"),
            authorize: Some(Url::parse("https://accounts.google.com/o/oauth2/v2/auth").expect("static URL")),
            device: Some(Url::parse("https://oauth2.googleapis.com/device/code").expect("static URL")),
        }
    }

    /// The Microsoft identity platform (v2.0) of `tenant` at `authority`
    /// (`https://login.microsoftonline.com` by default): `{authority}/{tenant}/oauth2/v2.0/token`,
    /// `…/authorize` and `…/devicecode`. The tenant is one escaped path segment, and any path
    /// of the authority is kept.
    pub fn microsoft(authority: &Url, tenant: &str) -> Endpoints {
        let at = |last: &str| {
            let mut url = authority.clone();
            url.set_query(None);
            url.set_fragment(None);
            if let Ok(mut segments) = url.path_segments_mut() {
                segments.pop_if_empty().extend([tenant, "oauth2", "v2.0", last]);
            }
            url
        };
        Endpoints { token: at("token"), authorize: Some(at("authorize")), device: Some(at("devicecode")) }
    }

    /// Only a token endpoint (client credentials or refresh tokens against a custom server).
    pub fn token_only(token: Url) -> Endpoints {
        Endpoints { token, authorize: None, device: None }
    }
}

/// The default Microsoft identity platform authority.
pub const MICROSOFT_AUTHORITY: &str = "https://login.microsoftonline.com";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenant_is_one_escaped_segment_and_the_authority_path_is_kept() {
        let authority: Url = "http://127.0.0.1:9/prefix/".parse().unwrap();
        let endpoints = Endpoints::microsoft(&authority, "a/b?c");
        assert_eq!(endpoints.token.as_str(), "http://127.0.0.1:9/prefix/a%2Fb%3Fc/oauth2/v2.0/token");
        assert_eq!(endpoints.authorize.unwrap().as_str(), "http://127.0.0.1:9/prefix/a%2Fb%3Fc/oauth2/v2.0/authorize");
    }
}
