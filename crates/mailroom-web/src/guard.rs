//! The layer in front of every page: session cookie, host check, access token, same-origin posts and the security headers (strict CSP, no framing).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::Console;
use crate::session::{COOKIE, SessionId, same_token};
use crate::strict_form::StrictForm;

/// The policy of every page: nothing inline, nothing from elsewhere, never framed.
pub(crate) const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'";

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Whether `host` (a Host header) names this machine's loopback interface.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => {
            host.rsplit_once(':').map_or(host, |(name, port)| if port.parse::<u16>().is_ok() { name } else { host })
        }
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

/// The host part of an `Origin` header value (`http://host:port`).
fn origin_host(origin: &str) -> Option<&str> {
    origin.split_once("://").map(|(_, rest)| rest.trim_end_matches('/'))
}

pub(crate) async fn guard(State(console): State<Console>, mut request: Request, next: Next) -> Response {
    let pages = &console.shared.pages;
    let host = request.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let token_required = console.options().access_token.is_some();
    // Without an access token the console listens on loopback only; a page reached through
    // another name is a DNS-rebinding attempt from a web site the person has open.
    if !token_required && !is_loopback_host(&host) {
        return secure(
            pages
                .error_page(
                    StatusCode::MISDIRECTED_REQUEST,
                    "This console answers on localhost only",
                    "Open it as http://127.0.0.1:PORT/ or http://localhost:PORT/.",
                )
                .into_response(),
        );
    }
    if request.method() == Method::POST
        && let Some(origin) = request.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok())
        && origin_host(origin) != Some(host.as_str())
    {
        return secure(
            pages
                .error_page(StatusCode::FORBIDDEN, "The form came from another site", "Nothing was changed.")
                .into_response(),
        );
    }
    let sessions = &console.shared.sessions;
    let (id, new_session) = match session_cookie(request.headers()).filter(|id| sessions.touch(id)) {
        Some(id) => (id, false),
        None => (sessions.create(!token_required), true),
    };
    if token_required && !sessions.with(&id, |s| s.signed_in).unwrap_or(false) {
        let bearer = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let token = console.options().access_token.as_ref().map(|t| t.expose()).unwrap_or_default();
        let path = request.uri().path();
        if bearer.is_some_and(|b| same_token(b, token)) {
            sessions.with(&id, |s| s.signed_in = true);
        } else if path != "/sign-in" && !path.starts_with("/static/") {
            let mut response = Redirect::to("/sign-in").into_response();
            set_cookie(&mut response, &id, new_session);
            return secure(response);
        }
    }
    request.extensions_mut().insert(SessionId(id.clone()));
    let mut response = next.run(request).await;
    set_cookie(&mut response, &id, new_session);
    secure(response)
}

fn set_cookie(response: &mut Response, id: &str, new_session: bool) {
    if new_session
        && let Ok(value) = HeaderValue::from_str(&format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict"))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Adds the security headers a handler did not set itself.
fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // `no-referrer` would make browsers send `Origin: null` on the console's own forms.
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    response
}

/// GET /sign-in: the access token form (only when the console has one).
pub(crate) async fn sign_in_page(
    State(console): State<Console>,
    axum::Extension(session): axum::Extension<SessionId>,
) -> Response {
    let csrf = console.shared.sessions.with(&session.0, |s| s.csrf.clone()).unwrap_or_default();
    console.shared.pages.sign_in(&csrf, None).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignIn {
    csrf: String,
    token: String,
}

/// POST /sign-in: checks the token and signs the session in.
pub(crate) async fn sign_in(
    State(console): State<Console>,
    axum::Extension(session): axum::Extension<SessionId>,
    StrictForm(form): StrictForm<SignIn>,
) -> Response {
    let sessions = &console.shared.sessions;
    let csrf = sessions.with(&session.0, |s| s.csrf.clone()).unwrap_or_default();
    if !same_token(&form.csrf, &csrf) {
        return console.shared.pages.csrf_failed().into_response();
    }
    let Some(token) = &console.options().access_token else {
        return Redirect::to("/").into_response();
    };
    if same_token(&form.token, token.expose()) {
        sessions.with(&session.0, |s| s.signed_in = true);
        return Redirect::to("/").into_response();
    }
    let page = console.shared.pages.sign_in(&csrf, Some("That is not the console's access token."));
    (StatusCode::UNAUTHORIZED, page).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_told_apart_from_others() {
        for host in ["127.0.0.1:8025", "localhost:8025", "LOCALHOST", "[::1]:8025", "127.9.9.9"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["", "evil.example:8025", "localhost.evil.example", "10.0.0.1:8025", "[::2]:80"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
