//! `diagnose` for Email Services: refresh token → access token → granted scope → an authorised call to `messages.send` that cannot deliver anything, each step timed.
//!
//! The gmail.send scope allows `messages.send` and nothing else (not even `users.getProfile`),
//! so the API step uploads a message with no recipient at all. Gmail checks the token, the
//! scope, that the API is enabled and that the account has Gmail before it looks at the
//! message, then refuses it with `400 invalidArgument "Recipient address required"`: that
//! refusal is the success signal, and no mail can go out.

use std::time::{Duration, Instant, SystemTime};

use mailroom_core::config::Field;
use mailroom_core::{ErrorKind, ProbeReport, SendError, StepOutcome, Transcript};

use crate::error::{GmailError, scope_allows_send};
use crate::http;
use crate::transport::{GmailTransport, interpret};

pub(crate) async fn probe(transport: &GmailTransport) -> ProbeReport {
    let inner = &transport.inner;
    let mut report = ProbeReport::default();
    let mut transcript = Transcript::new();

    let started = Instant::now();
    let grant = match inner.source.grant(&mut transcript).await {
        Ok(grant) => grant,
        Err(failure) => {
            let (shown, error) = match failure {
                Ok(refused) => {
                    let error = crate::token::from_oauth(refused);
                    (error.to_string(), error.into_send_error(transcript))
                }
                // The token file, read before any exchange: its error says what is wrong.
                Err(unusable) => (unusable.detail().to_owned(), unusable),
            };
            report.step("token", StepOutcome::Failed, started.elapsed(), shown);
            report.step("api", StepOutcome::Skipped, Default::default(), "needs an access token");
            report.error = Some(error);
            return report;
        }
    };
    let lifetime = grant
        .expires_in
        .map(|secs| format!(", valid {} s", Duration::from_secs(secs).min(mailroom_http::MAX_TOKEN_LIFETIME).as_secs()))
        .unwrap_or_default();
    report.step(
        "token",
        StepOutcome::Ok,
        started.elapsed(),
        format!("refresh token accepted by {}{lifetime}", inner.source.client().endpoints().token),
    );

    match grant.scope.as_deref() {
        Some(scope) if !scope_allows_send(scope) => {
            report.step("scope", StepOutcome::Failed, Default::default(), format!("granted: {scope}"));
            report.step("api", StepOutcome::Skipped, Default::default(), "the token cannot send");
            report.error = Some(
                SendError::new(
                    ErrorKind::PermissionDenied,
                    format!("the refresh token grants {scope}, which does not allow sending mail"),
                )
                .with_field(Field::EmailServicesRefreshToken)
                .with_hint(format!(
                    "Run `mailroom connect google --config FILE` again and allow \"Send email on your behalf\" ({}).",
                    crate::GMAIL_SEND_SCOPE
                ))
                .with_transcript(transcript),
            );
            return report;
        }
        Some(scope) => report.step("scope", StepOutcome::Ok, Default::default(), format!("granted: {scope}")),
        None => report.step(
            "scope",
            StepOutcome::Skipped,
            Default::default(),
            "the token endpoint did not list the granted scopes",
        ),
    }

    let started = Instant::now();
    let probe_message = format!(
        "From: {}\r\nSubject: mailroom diagnose (has no recipient, cannot be delivered)\r\n\r\nmailroom diagnose\r\n",
        inner.sender.email
    );
    let upload = http::Upload {
        url: &inner.send_url,
        token: &grant.access,
        body: probe_message.into_bytes(),
        what: "a message without recipients",
        timeout: inner.timeout,
        delivers: false,
    };
    let sent = http::post_message(&inner.http, upload, &mut transcript).await;
    let reply = match sent {
        Ok(reply) => reply,
        Err(error) => {
            report.step("api", StepOutcome::Failed, started.elapsed(), error.to_string());
            report.error = Some(error.into_probe_error(transcript));
            return report;
        }
    };
    let status = reply.status;
    match interpret(reply, SystemTime::now(), &[grant.access.expose()]) {
        Ok((id, shown)) => {
            transcript.server(&format!("HTTP {status} {shown}"));
            report.step(
                "api",
                StepOutcome::Ok,
                started.elapsed(),
                format!("authorised to send (Gmail accepted the recipient-less probe as {id})"),
            );
        }
        Err((GmailError::Api { status: 400, error, .. }, _))
            if error.has("invalidArgument") || error.message.to_ascii_lowercase().contains("recipient") =>
        {
            report.step(
                "api",
                StepOutcome::Ok,
                started.elapsed(),
                format!(
                    "authorised to send: Gmail refused the recipient-less probe as expected (400 {})",
                    error.message
                ),
            );
        }
        Err((error, shown)) => {
            transcript.server(&format!("HTTP {status} {shown}"));
            report.step("api", StepOutcome::Failed, started.elapsed(), error.to_string());
            report.error = Some(error.into_probe_error(transcript));
        }
    }
    report
}
