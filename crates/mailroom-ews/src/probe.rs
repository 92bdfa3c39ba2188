//! `diagnose` for Exchange: resolve, connect, TLS handshake, OAuth token, then one cheap authenticated EWS call (`GetFolder` of Sent Items), each timed, with the setting to change when a step fails.
//!
//! Why `GetFolder` of `sentitems` (ids only): it is the cheapest EWS operation that needs a
//! mailbox, so a success proves the endpoint is EWS, the credentials work, EWS is enabled for
//! the account, and — with OAuth — that the app may impersonate the Company Email mailbox,
//! which is exactly what `CreateItem` will need. It sends no mail and changes nothing.
//! (`ResolveNames` needs no mailbox rights, so it would pass where sending then fails on
//! impersonation.) With Basic the folder is the signed-in account's own: Send As rights on
//! another address cannot be checked without sending, which `validate` does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::error::Error as _;

use mailroom_core::config::Field;
use mailroom_core::{ErrorKind, ProbeReport, SendError, StepOutcome, Suggestion, Transcript};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::error::{At, EwsError, TlsFailure};
use crate::soap::{self, Operation};
use crate::transport::{Login, Shared};

pub(crate) async fn probe(shared: &Shared) -> ProbeReport {
    let mut report = ProbeReport::default();
    if let Err(error) = run(shared, &mut report).await {
        report.suggestions = suggestions(&error, shared).await;
        report.error = Some(error);
    }
    report
}

fn fail(shared: &Shared, error: EwsError) -> SendError {
    error.into_send_error(&shared.context, At::Probe, Transcript::new())
}

async fn run(shared: &Shared, report: &mut ProbeReport) -> Result<(), SendError> {
    let uri = &shared.uri;
    let host = uri.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = uri.port_or_known_default().unwrap_or(443);
    let limit = shared.timeout;

    let started = Instant::now();
    if let Some(proxy) = mailroom_http::environment_proxy(uri) {
        // The HTTP client goes through the proxy (HTTPS_PROXY), so on a proxy-only network
        // resolving and connecting directly would fail a config that sends (issue 10 #5):
        // the proxy does those steps, and the EWS call below proves the way through it.
        let through = format!("through the proxy {proxy} (HTTPS_PROXY), as sending does");
        report.step("resolve", StepOutcome::Skipped, Duration::ZERO, through.clone());
        report.step("connect", StepOutcome::Skipped, Duration::ZERO, through.clone());
        report.step("tls", StepOutcome::Skipped, Duration::ZERO, through);
        return token_and_mailbox(shared, report).await;
    }
    if mailroom_http::is_localhost_name(&host) {
        // Pinned to loopback, as the HTTP client does (RFC 6761): DNS is not asked.
        let pinned: Vec<SocketAddr> = mailroom_http::LOOPBACK.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
        return connect_onwards(shared, report, pinned, started, "(localhost name, not looked up)").await;
    }
    let resolved = tokio::time::timeout(limit, tokio::net::lookup_host((host.as_str(), port))).await;
    let addresses: Vec<SocketAddr> = match resolved {
        Ok(Ok(addresses)) => addresses.collect(),
        Ok(Err(e)) => {
            report.step("resolve", StepOutcome::Failed, started.elapsed(), e.to_string());
            return Err(fail(shared, EwsError::Resolve { target: shared.context.uri.clone(), reason: e.to_string() }));
        }
        Err(_) => {
            report.step("resolve", StepOutcome::Failed, started.elapsed(), "no answer from DNS");
            return Err(fail(
                shared,
                EwsError::Resolve { target: shared.context.uri.clone(), reason: "DNS timed out".into() },
            ));
        }
    };
    connect_onwards(shared, report, addresses, started, "").await
}

/// The steps after name resolution: connect, TLS, token, GetFolder.
async fn connect_onwards(
    shared: &Shared,
    report: &mut ProbeReport,
    addresses: Vec<SocketAddr>,
    resolved_at: Instant,
    note: &str,
) -> Result<(), SendError> {
    let uri = &shared.uri;
    let host = uri.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = uri.port_or_known_default().unwrap_or(443);
    let target = format!("{host}:{port}");
    let limit = shared.timeout;
    let shown: Vec<String> = addresses.iter().map(|a| a.ip().to_string()).collect();
    let detail = format!("{host} → {} {note}", shown.join(", "));
    report.step("resolve", StepOutcome::Ok, resolved_at.elapsed(), detail.trim_end());

    let started = Instant::now();
    let mut stream = None;
    let mut last_error = None;
    for address in &addresses {
        match tokio::time::timeout(limit, TcpStream::connect(address)).await {
            Ok(Ok(connected)) => {
                stream = Some((connected, *address));
                break;
            }
            Ok(Err(e)) => {
                let refused = e.kind() == std::io::ErrorKind::ConnectionRefused;
                last_error = Some(EwsError::Connect { target: target.clone(), reason: e.to_string(), refused });
            }
            Err(_) => last_error = Some(EwsError::ConnectTimeout { target: target.clone(), limit, tls: false }),
        }
    }
    let Some((stream, address)) = stream else {
        let error = last_error.unwrap_or(EwsError::Connect {
            target: target.clone(),
            reason: "the name has no addresses".into(),
            refused: false,
        });
        report.step("connect", StepOutcome::Failed, started.elapsed(), error.to_string());
        return Err(fail(shared, error));
    };
    report.step("connect", StepOutcome::Ok, started.elapsed(), address.to_string());

    if uri.scheme() == "https" {
        let started = Instant::now();
        match handshake(shared, stream, &host, &target).await {
            Ok(detail) => report.step("tls", StepOutcome::Ok, started.elapsed(), detail),
            Err(error) => {
                report.step("tls", StepOutcome::Failed, started.elapsed(), error.to_string());
                return Err(fail(shared, error));
            }
        }
    } else {
        drop(stream);
        report.step("tls", StepOutcome::Skipped, Duration::ZERO, "http:// (loopback only)");
    }

    token_and_mailbox(shared, report).await
}

/// The steps over HTTP: the OAuth token (if any), then GetFolder.
async fn token_and_mailbox(shared: &Shared, report: &mut ProbeReport) -> Result<(), SendError> {
    if let Login::OAuth { tokens } = &shared.login {
        let started = Instant::now();
        match tokens.token().await {
            Ok(_) => report.step(
                "token",
                StepOutcome::Ok,
                started.elapsed(),
                format!("access token for client {}", shared.context.login),
            ),
            Err(error) => {
                report.step("token", StepOutcome::Failed, started.elapsed(), error.detail().to_owned());
                return Err(error);
            }
        }
    }

    let started = Instant::now();
    let body = |version: &str| soap::get_folder(version, shared.impersonated());
    let mut transcript = Transcript::new();
    let acting = match shared.impersonated() {
        Some(address) => format!("impersonating {address}"),
        None => format!("as {}", shared.context.login),
    };
    match shared.run(Operation::GetFolder, &body, "GetFolder sentitems", At::Probe, &mut transcript).await {
        Ok((status, message)) => {
            report.step("auth", StepOutcome::Ok, started.elapsed(), format!("HTTP {status} {acting}"));
            report.step("mailbox", StepOutcome::Ok, Duration::ZERO, format!("GetFolder sentitems: {}", message.code()));
            Ok(())
        }
        Err(error) => {
            let step = match error.kind() {
                ErrorKind::AuthFailed | ErrorKind::AuthDisabled | ErrorKind::OauthReconnectRequired => "auth",
                ErrorKind::PermissionDenied | ErrorKind::SenderNotAllowed => {
                    report.step("auth", StepOutcome::Ok, started.elapsed(), acting);
                    "mailbox"
                }
                _ => "ews",
            };
            let elapsed = if step == "mailbox" { Duration::ZERO } else { started.elapsed() };
            report.step(step, StepOutcome::Failed, elapsed, error.detail().to_owned());
            Err(error)
        }
    }
}

/// What to say about a redirect to `target` (the `Location` resolved against exchange.uri,
/// already known to pass the config's endpoint rule). It becomes a setting only when a
/// `GetFolder` there succeeds; that check is made only on the same origin (scheme, host and
/// port), since following a redirect's word to another host would hand it the credentials.
async fn redirect_suggestion(shared: &Shared, target: &url::Url) -> Suggestion {
    if target.origin() != shared.uri.origin() {
        return Suggestion {
            summary: format!(
                "the server points to {target}, on another host (unverified: mailroom sends no credentials to another host because a redirect says so); if that is the EWS endpoint, set exchange.uri to it and run diagnose again"
            ),
            settings: Vec::new(),
        };
    }
    let mut transcript = Transcript::new();
    let body = |version: &str| soap::get_folder(version, shared.impersonated());
    let what = "GetFolder sentitems at the redirect target";
    match shared.run_at(target, Operation::GetFolder, &body, what, At::Probe, &mut transcript).await {
        Ok(_) => Suggestion {
            summary: format!(
                "the server redirects to {target}, and GetFolder succeeds there: use it as the EWS address"
            ),
            settings: vec![(Field::ExchangeUri.name(), format!("\"{target}\""))],
        },
        Err(error) => Suggestion {
            summary: format!(
                "the server points to {target} (unverified: GetFolder there failed with {}: {})",
                error.kind(),
                error.detail()
            ),
            settings: Vec::new(),
        },
    }
}

/// A TLS handshake with the same config the HTTP client uses, on its own connection.
async fn handshake(shared: &Shared, stream: TcpStream, host: &str, target: &str) -> Result<String, EwsError> {
    let tls_error = |reason: String, cause| EwsError::Tls { target: target.to_owned(), reason, cause };
    let name = ServerName::try_from(host.to_owned()).map_err(|e| tls_error(e.to_string(), TlsFailure::Other))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(shared.tls.clone()));
    match tokio::time::timeout(shared.timeout, connector.connect(name, stream)).await {
        Ok(Ok(tls)) => {
            let (_, connection) = tls.get_ref();
            let version = connection.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default();
            let suite = connection.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
            Ok(format!("{version} {suite}, certificate valid for {host}").trim().to_owned())
        }
        Ok(Err(e)) => {
            let rustls_error = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
            Err(match rustls_error {
                Some(error) => tls_error(error.to_string(), TlsFailure::of(error)),
                None if e.kind() == std::io::ErrorKind::InvalidData => tls_error(e.to_string(), TlsFailure::NotTls),
                None => tls_error(e.to_string(), TlsFailure::Other),
            })
        }
        Err(_) => Err(tls_error(
            format!("no TLS handshake reply within {} s", shared.timeout.as_secs_f32()),
            TlsFailure::NotTls,
        )),
    }
}

/// Settings to change, read off the classified error.
async fn suggestions(error: &SendError, shared: &Shared) -> Vec<Suggestion> {
    let mut found = Vec::new();
    if error.kind() == ErrorKind::AuthDisabled
        && error.config_field() == Some(Field::ExchangeAuth)
        && error.detail().contains("wants OAuth")
    {
        found.push(Suggestion {
            summary: "this server wants OAuth: set auth = \"oauth\" with client_id, tenant and client_secret_env from an Azure app registration (full_access_as_app)".into(),
            settings: vec![(Field::ExchangeAuth.name(), "\"oauth\"".into())],
        });
    }
    if error.kind() == ErrorKind::Protocol
        && let Some(EwsError::Redirect { target: Some(target), .. }) =
            error.source().and_then(|source| source.downcast_ref::<EwsError>())
        && target.path().to_ascii_lowercase().ends_with(".asmx")
    {
        found.push(redirect_suggestion(shared, target).await);
    }
    if error.kind() == ErrorKind::Protocol
        && error.config_field() == Some(Field::ExchangeUri)
        && error.server_reply().is_some_and(|r| r.code == Some(404))
        && !shared.uri.path().eq_ignore_ascii_case("/EWS/Exchange.asmx")
    {
        let mut usual = shared.uri.clone();
        usual.set_path("/EWS/Exchange.asmx");
        usual.set_query(None);
        found.push(Suggestion {
            summary: format!("no EWS at {}: the usual address is {usual}", shared.context.uri),
            settings: vec![(Field::ExchangeUri.name(), format!("\"{usual}\""))],
        });
    }
    found
}
