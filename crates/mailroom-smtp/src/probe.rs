//! `diagnose` for Web Mail: walks the session step by step with timings, and on a connection-level failure tries the other usual port/TLS settings in parallel to say which one works.

use std::time::{Duration, Instant};

use mailroom_core::config::Field;
use mailroom_core::{ErrorKind, ProbeReport, StepOutcome, Suggestion, TlsMode};

use crate::error::Step;
use crate::session::{Session, SessionSettings, StepObserver};
use crate::transport::{Shared, SmtpTransport};

struct Recorder<'r> {
    report: &'r mut ProbeReport,
    last: Option<Step>,
}

impl StepObserver for Recorder<'_> {
    fn step_done(&mut self, step: Step, elapsed: Duration, detail: String) {
        self.report.step(step.name(), StepOutcome::Ok, elapsed, detail);
        self.last = Some(step);
    }
}

/// The combinations tried when the configured one fails, most common first.
const ALTERNATIVES: &[(u16, TlsMode)] = &[
    (587, TlsMode::Starttls),
    (465, TlsMode::Implicit),
    (2525, TlsMode::Starttls),
    (25, TlsMode::Starttls),
    (2525, TlsMode::None),
    (25, TlsMode::None),
];

pub(crate) async fn probe(shared: &Shared) -> ProbeReport {
    let mut report = ProbeReport::default();
    let started = Instant::now();
    let mut recorder = Recorder { report: &mut report, last: None };
    match SmtpTransport::open_classifiable(shared, &mut recorder).await {
        Ok(mut session) => {
            let mail_started = Instant::now();
            match session.check_sender(&shared.sender.email).await {
                Ok(reply) => report.step(
                    "mail from",
                    StepOutcome::Ok,
                    mail_started.elapsed(),
                    reply.wire_lines().next().unwrap_or_default(),
                ),
                Err(error) => {
                    report.step("mail from", StepOutcome::Failed, mail_started.elapsed(), error.to_string());
                    let transcript = session.take_transcript();
                    report.error = Some(error.into_send_error(&shared.context, transcript));
                }
            }
            session.quit().await;
        }
        Err((error, transcript)) => {
            let step = error.step();
            let elapsed = started.elapsed().saturating_sub(report.steps.iter().map(|s| s.elapsed).sum());
            report.step(step.name(), StepOutcome::Failed, elapsed, error.to_string());
            let error = error.into_send_error(&shared.context, transcript);
            let failed_at = error.kind();
            let worth_alternatives = matches!(
                failed_at,
                ErrorKind::ConnectFailed
                    | ErrorKind::TlsMismatch
                    | ErrorKind::Timeout
                    | ErrorKind::TlsNotSupported
                    | ErrorKind::SecureConnectionRequired
                    | ErrorKind::Protocol
            ) && error.config_field() != Some(Field::WebMailServer);
            report.error = Some(error);
            if worth_alternatives {
                report.suggestions = alternatives(&shared.settings).await;
            }
        }
    }
    report
}

/// Tries the usual settings on the same host in parallel (no login, short deadline) and
/// returns the ones that answered, as suggestions.
async fn alternatives(settings: &SessionSettings) -> Vec<Suggestion> {
    let limit = settings.timeout.min(Duration::from_secs(4));
    let mut candidates: Vec<(u16, TlsMode)> =
        [TlsMode::Implicit, TlsMode::Starttls, TlsMode::None].into_iter().map(|tls| (settings.port, tls)).collect();
    candidates.extend(ALTERNATIVES.iter().copied());
    let mut seen = vec![(settings.port, settings.tls)];
    candidates.retain(|candidate| {
        let new = !seen.contains(candidate);
        seen.push(*candidate);
        new
    });
    let mut attempts = tokio::task::JoinSet::new();
    for (index, &(port, tls)) in candidates.iter().enumerate() {
        let mut trial = settings.clone();
        trial.port = port;
        trial.tls = tls;
        trial.login = None;
        trial.timeout = limit;
        attempts.spawn(async move {
            let session = Session::open(&trial, &mut ()).await.ok()?;
            let starttls_offered = session.capabilities().starttls;
            session.quit().await;
            Some((index, port, tls, starttls_offered))
        });
    }
    let mut answered: Vec<_> = attempts.join_all().await.into_iter().flatten().collect();
    answered.sort_by_key(|(index, ..)| *index);
    let mut suggestions = Vec::new();
    for (_, port, tls, starttls_offered) in answered {
        if tls == TlsMode::None && starttls_offered {
            continue; // the STARTTLS candidate on the same port says it better
        }
        let mode = match tls {
            TlsMode::Implicit => "expects implicit TLS",
            TlsMode::Starttls => "answers with STARTTLS",
            TlsMode::None => "answers without encryption (only for a trusted internal relay)",
        };
        let mut settings_to_change = Vec::new();
        let summary = if port == settings.port {
            format!("port {port} {mode}: set tls = \"{}\"", tls.as_str())
        } else {
            settings_to_change.push((Field::WebMailPort.name(), port.to_string()));
            format!("port {port} {mode}: set port = {port} and tls = \"{}\"", tls.as_str())
        };
        settings_to_change.push((Field::WebMailTls.name(), format!("\"{}\"", tls.as_str())));
        suggestions.push(Suggestion { summary, settings: settings_to_change });
    }
    suggestions
}
