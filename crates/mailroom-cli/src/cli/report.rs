//! Printing results for people (colour on a terminal, plain when piped) or as exactly one JSON object (CONTRACT: DESIGN.md §5).

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anstyle::{AnsiColor, Style};
use mailroom_core::config::ConfigIssue;
use mailroom_core::{ProbeReport, SendError, ServiceKind, StepOutcome};
use serde_json::{Value, json};

use super::{EXIT_FAILED, EXIT_USAGE};

const RED: Style = AnsiColor::Red.on_default().bold();
const GREEN: Style = AnsiColor::Green.on_default().bold();
const YELLOW: Style = AnsiColor::Yellow.on_default();
const BOLD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();

/// A failed operation to report.
pub struct Failure<'a> {
    pub service: Option<ServiceKind>,
    pub started: Instant,
    pub error: &'a SendError,
    pub headline: &'a str,
}

/// Prints one command's outcome, in JSON or for people.
pub struct Reporter {
    json: bool,
    exit_code: Cell<u8>,
    warnings: RefCell<Vec<ConfigIssue>>,
}

fn elapsed_ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}

fn issue_json(issue: &ConfigIssue) -> Value {
    json!({"field": issue.field, "message": issue.message})
}

impl Reporter {
    pub fn new(json: bool) -> Reporter {
        Reporter { json, exit_code: Cell::new(0), warnings: RefCell::new(Vec::new()) }
    }

    /// Whether output is JSON.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints a finished JSON object (with any collected warnings).
    pub fn object(&self, object: Value) {
        self.print_json(object);
    }

    /// Prints text for people on stdout.
    pub fn plain(&self, text: &str) {
        let mut out = anstream::stdout().lock();
        let _ = out.write_all(text.as_bytes());
    }

    /// The exit code implied by what was reported so far.
    pub fn exit_code(&self) -> u8 {
        self.exit_code.get()
    }

    fn print_json(&self, mut object: Value) {
        let warnings: Vec<Value> = self.warnings.borrow().iter().map(issue_json).collect();
        if !warnings.is_empty() {
            object["warnings"] = Value::Array(warnings);
        }
        let mut stdout = std::io::stdout().lock();
        let _ = serde_json::to_writer(&mut stdout, &object);
        let _ = writeln!(stdout);
    }

    pub fn warnings(&self, warnings: &[ConfigIssue]) {
        if self.json {
            self.warnings.borrow_mut().extend(warnings.iter().cloned());
            return;
        }
        let mut stderr = anstream::stderr().lock();
        for warning in warnings {
            let _ = writeln!(stderr, "{YELLOW}warning{YELLOW:#}: {BOLD}{}{BOLD:#}: {}", warning.field, warning.message);
        }
    }

    pub fn config_errors(&self, started: Instant, errors: &[ConfigIssue], warnings: &[ConfigIssue]) {
        self.exit_code.set(EXIT_FAILED);
        self.warnings(warnings);
        let first = errors.first().map(ConfigIssue::to_send_error);
        if self.json {
            let error = first.map(|e| serde_json::to_value(e.report()).unwrap_or(Value::Null));
            self.print_json(json!({
                "ok": false,
                "service": Value::Null,
                "elapsed_ms": elapsed_ms(started),
                "error": error,
                "errors": errors.iter().map(issue_json).collect::<Vec<_>>(),
            }));
            return;
        }
        let mut out = anstream::stdout().lock();
        let count = errors.len();
        let plural = if count == 1 { "" } else { "s" };
        let _ = writeln!(out, "{RED}✗ The config has {count} problem{plural}{RED:#}");
        for error in errors {
            let as_error = error.to_send_error();
            if as_error.documented_error().is_some() {
                let _ = writeln!(out, "\n  {}", as_error.user_message());
            }
            let _ = writeln!(out, "  {BOLD}{}{BOLD:#}: {}", error.field, error.message);
        }
        let _ = writeln!(
            out,
            "\n{BOLD}How to fix:{BOLD:#} change the field{plural} above in the config file and run the command again."
        );
    }

    pub fn usage(&self, service: Option<ServiceKind>, started: Instant, message: &str, hints: &[&str]) {
        self.usage_at(service, started, None, message, hints);
    }

    /// A usage error caused by one input field (e.g. `invoice.due_date` in the event data).
    pub fn usage_at(
        &self,
        service: Option<ServiceKind>,
        started: Instant,
        field: Option<&str>,
        message: &str,
        hints: &[&str],
    ) {
        self.exit_code.set(EXIT_USAGE);
        if self.json {
            self.print_json(json!({
                "ok": false,
                "service": service,
                "elapsed_ms": elapsed_ms(started),
                "error": {
                    "kind": "usage",
                    "documented_error": Value::Null,
                    "field": field,
                    "message": message,
                    "remediation": hints,
                    "retryable": false,
                    "server_reply": Value::Null,
                },
            }));
            return;
        }
        let mut err = anstream::stderr().lock();
        let _ = writeln!(err, "{RED}mailroom:{RED:#} {message}");
        for hint in hints {
            let _ = writeln!(err, "  {hint}");
        }
    }

    pub fn sent(&self, service: ServiceKind, started: Instant, message_id: &str, saved_to: Option<&Path>) {
        if self.json {
            let mut object =
                json!({"ok": true, "service": service, "elapsed_ms": elapsed_ms(started), "message_id": message_id});
            if let Some(path) = saved_to {
                object["saved_to"] = json!(path.display().to_string());
            }
            self.print_json(object);
            return;
        }
        let mut out = anstream::stdout().lock();
        let _ = writeln!(
            out,
            "{GREEN}✓ Sent{GREEN:#} through {} in {} ms, Message-ID {message_id}",
            service.as_str(),
            elapsed_ms(started)
        );
        if let Some(path) = saved_to {
            let _ = writeln!(out, "  Saved the validated config to {}", path.display());
        }
    }

    pub fn failure(&self, failure: Failure<'_>) {
        self.exit_code.set(EXIT_FAILED);
        if self.json {
            self.print_json(json!({
                "ok": false,
                "service": failure.service,
                "elapsed_ms": elapsed_ms(failure.started),
                "error": failure.error.report(),
            }));
            return;
        }
        let mut out = anstream::stdout().lock();
        let service = failure.service.map(ServiceKind::as_str).unwrap_or("config");
        let _ = writeln!(out, "{RED}✗ {}{RED:#} ({service}, {} ms)\n", failure.headline, elapsed_ms(failure.started));
        write_error(&mut out, failure.error);
    }

    pub fn probe(&self, service: ServiceKind, started: Instant, report: &ProbeReport) {
        if !report.is_ok() {
            self.exit_code.set(EXIT_FAILED);
        }
        if self.json {
            let mut object = json!({
                "ok": report.is_ok(),
                "service": service,
                "elapsed_ms": elapsed_ms(started),
                "steps": report.steps,
                "suggestions": report.suggestions.iter().map(|s| json!({
                    "summary": s.summary,
                    "settings": s.settings.iter().map(|(field, value)| json!({"field": field, "value": value})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            });
            if let Some(error) = &report.error {
                object["error"] = serde_json::to_value(error.report()).unwrap_or(Value::Null);
            }
            self.print_json(object);
            return;
        }
        let mut out = anstream::stdout().lock();
        let _ = writeln!(out, "{BOLD}Diagnosis of {}{BOLD:#}", service.as_str());
        for step in &report.steps {
            let (mark, style) = match step.outcome {
                StepOutcome::Ok => ("✓", GREEN),
                StepOutcome::Failed => ("✗", RED),
                StepOutcome::Skipped => ("·", DIM),
            };
            let _ = writeln!(
                out,
                "  {style}{mark}{style:#} {:<10} {:>5} ms  {}",
                step.name,
                step.elapsed.as_millis(),
                step.detail
            );
        }
        if let Some(error) = &report.error {
            let _ = writeln!(out);
            write_error(&mut out, error);
        }
        for suggestion in &report.suggestions {
            let _ = writeln!(out, "{GREEN}→{GREEN:#} {}", suggestion.summary);
            for (field, value) in &suggestion.settings {
                let _ = writeln!(out, "    {field} = {value}");
            }
        }
        if report.is_ok() {
            let _ = writeln!(out, "{GREEN}✓ Every step succeeded{GREEN:#} ({} ms)", elapsed_ms(started));
        }
    }
}

fn write_error(out: &mut impl Write, error: &SendError) {
    let _ = writeln!(out, "  {}\n", error.user_message());
    if error.documented_error().is_some() {
        let _ = writeln!(out, "  {BOLD}What happened:{BOLD:#} {}", error.detail());
    }
    let _ = writeln!(out, "  {BOLD}Kind:{BOLD:#} {}", error.kind());
    if let Some(field) = error.field() {
        let _ = writeln!(out, "  {BOLD}Field to change:{BOLD:#} {field}");
    }
    if let Some(reply) = error.server_reply() {
        let _ = writeln!(out, "  {BOLD}Server reply:{BOLD:#} {reply}");
    }
    let _ = writeln!(out, "  {BOLD}How to fix:{BOLD:#}");
    for (n, step) in error.remediation().iter().enumerate() {
        let _ = writeln!(out, "    {}. {step}", n + 1);
    }
    if let Some(transcript) = error.transcript().filter(|t| !t.is_empty()) {
        let _ = writeln!(out, "  {BOLD}Transcript:{BOLD:#}");
        for line in transcript.lines() {
            let _ = writeln!(out, "    {DIM}{line}{DIM:#}");
        }
    }
}
