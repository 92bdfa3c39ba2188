//! The token reply (one parser for every grant and provider): `expires_in` as a number or a string and bounded, space-separated scopes, and the claims of an OpenID Connect `id_token`.

use std::time::Instant;

use base64::Engine as _;
use mailroom_core::{AccessToken, Secret};
use oauth2::basic::BasicTokenType;
use serde::{Deserialize, Serialize};

/// The token endpoint's success reply as oauth2 parses it (our own `TokenResponse`, because
/// Azure AD v1 and some proxies send `expires_in` as a string, and `id_token` is needed).
#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct TokenReply {
    access_token: oauth2::AccessToken,
    #[serde(deserialize_with = "oauth2::helpers::deserialize_untagged_enum_case_insensitive")]
    #[serde(default = "bearer")]
    token_type: BasicTokenType,
    #[serde(default, deserialize_with = "lenient_seconds")]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<oauth2::RefreshToken>,
    #[serde(rename = "scope")]
    #[serde(deserialize_with = "oauth2::helpers::deserialize_space_delimited_vec")]
    #[serde(serialize_with = "oauth2::helpers::serialize_space_delimited_vec")]
    #[serde(default)]
    scopes: Option<Vec<oauth2::Scope>>,
    #[serde(default)]
    id_token: Option<String>,
}

fn bearer() -> BasicTokenType {
    BasicTokenType::Bearer
}

/// `expires_in` as a JSON number or a string of digits; negative, fractional or other values
/// count as absent, and numbers beyond u64 as u64::MAX (cut later to a year).
fn lenient_seconds<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(match value {
        serde_json::Value::Number(n) => {
            n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= u64::MAX as f64).map(|_| u64::MAX))
        }
        serde_json::Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.parse().unwrap_or(u64::MAX))
        }
        _ => None,
    })
}

impl oauth2::TokenResponse for TokenReply {
    type TokenType = BasicTokenType;

    fn access_token(&self) -> &oauth2::AccessToken {
        &self.access_token
    }

    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }

    fn expires_in(&self) -> Option<std::time::Duration> {
        self.expires_in.map(std::time::Duration::from_secs)
    }

    fn refresh_token(&self) -> Option<&oauth2::RefreshToken> {
        self.refresh_token.as_ref()
    }

    fn scopes(&self) -> Option<&Vec<oauth2::Scope>> {
        self.scopes.as_ref()
    }
}

/// A granted token.
///
/// ```
/// let token = mailroom_http::Token::for_tests("ya29.x", Some(u64::MAX));
/// let access = token.access_token(std::time::Instant::now());
/// assert!(access.expires_at.is_some(), "a huge expires_in is cut, not a panic");
/// ```
pub struct Token {
    /// The access token.
    pub access: Secret,
    /// `expires_in` as sent (seconds); use [`Token::access_token`] for a bounded expiry.
    pub expires_in: Option<u64>,
    /// A refresh token, when one was issued.
    pub refresh: Option<Secret>,
    /// The granted scopes, space-separated, as the server listed them.
    pub scope: Option<String>,
    /// The OpenID Connect `id_token` claims, when one came back (`openid` scope).
    pub id: Option<IdClaims>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("access", &self.access)
            .field("expires_in", &self.expires_in)
            .field("refresh", &self.refresh)
            .field("scope", &self.scope)
            .field("id", &self.id)
            .finish()
    }
}

impl Token {
    /// Parses a token endpoint's success body as every grant does (the same lenient
    /// `expires_in`, scopes and `id_token` claims); `None` when it holds no access token.
    /// Never panics, whatever the bytes.
    ///
    /// ```
    /// let token = mailroom_http::Token::parse(br#"{"access_token":"ya29.x","expires_in":"3599","token_type":"bearer"}"#).unwrap();
    /// assert_eq!(token.expires_in, Some(3599));
    /// assert!(mailroom_http::Token::parse(b"\xff{").is_none());
    /// ```
    pub fn parse(body: &[u8]) -> Option<Token> {
        serde_json::from_slice::<TokenReply>(body).ok().and_then(Token::from_reply)
    }

    pub(crate) fn from_reply(reply: TokenReply) -> Option<Token> {
        let access = reply.access_token.secret().to_owned();
        if access.is_empty() {
            return None;
        }
        let scope = reply.scopes.map(|scopes| scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "));
        Some(Token {
            access: Secret::new(access),
            expires_in: reply.expires_in,
            refresh: reply.refresh_token.map(|r| Secret::new(r.secret().to_owned())).filter(|r| !r.expose().is_empty()),
            scope,
            id: reply.id_token.as_deref().and_then(IdClaims::from_jwt),
        })
    }

    /// Core's access token, expiring `expires_in` after `issued` (cut to a year, never a panic).
    pub fn access_token(&self, issued: Instant) -> AccessToken {
        AccessToken { token: self.access.clone(), expires_at: crate::token_expiry(issued, self.expires_in) }
    }

    /// A token for tests and examples.
    pub fn for_tests(access: &str, expires_in: Option<u64>) -> Token {
        Token { access: Secret::new(access), expires_in, refresh: None, scope: None, id: None }
    }
}

/// Who signed in, from an OpenID Connect `id_token`. Read without checking its signature:
/// it came straight from the token endpoint over the connection mailroom opened (OpenID
/// Connect Core §3.1.3.7 allows TLS server validation in place of the signature there).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdClaims {
    /// `email`.
    pub email: Option<String>,
    /// `email_verified` (Google).
    pub email_verified: Option<bool>,
    /// `preferred_username` (Microsoft: usually the UPN).
    pub preferred_username: Option<String>,
    /// `sub`.
    pub subject: Option<String>,
}

impl IdClaims {
    /// The claims of a compact JWT (`header.payload.signature`), or `None` when it is not one.
    ///
    /// ```
    /// use base64::Engine as _;
    /// let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"email":"erp@company.com","email_verified":true}"#);
    /// let claims = mailroom_http::IdClaims::from_jwt(&format!("e30.{payload}.sig")).unwrap();
    /// assert_eq!(claims.email.as_deref(), Some("erp@company.com"));
    /// ```
    pub fn from_jwt(jwt: &str) -> Option<IdClaims> {
        let payload = jwt.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let text = |key: &str| value.get(key).and_then(serde_json::Value::as_str).map(str::to_owned);
        let verified = match value.get("email_verified") {
            Some(serde_json::Value::Bool(b)) => Some(*b),
            Some(serde_json::Value::String(s)) => Some(s == "true"),
            _ => None,
        };
        Some(IdClaims {
            email: text("email"),
            email_verified: verified,
            preferred_username: text("preferred_username"),
            subject: text("sub"),
        })
    }

    /// The signed-in account's address: `email`, else `preferred_username` when it looks like one.
    pub fn account(&self) -> Option<&str> {
        self.email.as_deref().or(self.preferred_username.as_deref().filter(|u| u.contains('@')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Option<Token> {
        Token::parse(body.as_bytes())
    }

    #[test]
    fn expires_in_is_lenient_and_bounded() {
        assert_eq!(
            parse(r#"{"access_token":"a","token_type":"Bearer","expires_in":3599}"#).unwrap().expires_in,
            Some(3599)
        );
        assert_eq!(
            parse(r#"{"access_token":"a","token_type":"bearer","expires_in":"3599"}"#).unwrap().expires_in,
            Some(3599)
        );
        let huge = parse(r#"{"access_token":"a","expires_in":99999999999999999999999}"#).unwrap();
        assert_eq!(huge.expires_in, Some(u64::MAX));
        assert!(huge.access_token(Instant::now()).expires_at.is_some());
        assert_eq!(parse(r#"{"access_token":"a","expires_in":-5}"#).unwrap().expires_in, None);
        assert!(parse(r#"{"access_token":""}"#).is_none());
        assert!(parse(r#"{"expires_in":1}"#).is_none());
    }

    #[test]
    fn scopes_and_refresh_tokens_are_kept() {
        let token = parse(r#"{"access_token":"a","scope":"openid https://www.googleapis.com/auth/gmail.send","refresh_token":"1//r"}"#).unwrap();
        assert_eq!(token.scope.as_deref(), Some("openid https://www.googleapis.com/auth/gmail.send"));
        assert_eq!(token.refresh.unwrap().expose(), "1//r");
    }
}
