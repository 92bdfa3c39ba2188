//! `cargo xtask bench events`: render + MIME build throughput of event e-mails, single-threaded, for a fixed wall time.
//!
//! Payloads are read once and the renderer parses its templates once, as in a real
//! sending loop; each iteration renders subject, HTML and text and builds the RFC 5322
//! message. Target: at least 30,000 reminders/s on one core in release. The baseline,
//! measured in the same run when `python3` with Jinja2 is available: the same templates and
//! payload rendered by Jinja2 and built with Python's `email` package
//! (`baseline_events.py`). A third row, the engine ceiling, renders the same three templates
//! with minijinja alone (prebuilt context, identity filters, no MIME build): no renderer built
//! on minijinja can beat it on this machine, which puts the target in perspective.

use std::hint::black_box;
use std::time::{Duration, Instant};

use mailroom_core::Mailbox;
use mailroom_events::{Event, EventKind, Renderer};

const WARM_UP: Duration = Duration::from_millis(300);
const MEASURE: Duration = Duration::from_secs(2);
const PDF_SIZE: usize = 200 * 1024;

/// One measured workload.
struct Measurement {
    name: &'static str,
    messages: u64,
    elapsed: Duration,
    message_bytes: usize,
}

impl Measurement {
    fn msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs both workloads and prints a table, or with `json` one JSON object per line
/// (`name`, `messages`, `msgs_per_sec`).
pub fn run(json: bool) -> Result<(), String> {
    let renderer = Renderer::new();
    let sender: Mailbox = "Northwind ERP <erp@northwind.example>".parse().map_err(|e| format!("bench sender: {e}"))?;
    let workloads = [
        ("overdue_invoice_reminder (10 lines)", overdue_reminder_with_lines(10)?),
        ("packing_slip_with_invoice (2 x 200 KB PDF)", packing_slip_with_pdfs(PDF_SIZE)?),
    ];
    let mut results = Vec::new();
    for (name, event) in &workloads {
        results.push(measure(name, &renderer, event, &sender)?);
    }
    let ceiling = engine_ceiling(10)?;
    let share_of_ceiling = results[0].msgs_per_sec() / ceiling.msgs_per_sec();
    results.push(ceiling);
    let baseline = python_baseline(10);
    let ratio = baseline.as_ref().map(|b| results[0].msgs_per_sec() / b.msgs_per_sec());
    results.extend(baseline);
    if json {
        for result in &results {
            // Names are fixed ASCII without quotes or backslashes, so no escaping is needed.
            println!(
                "{{\"name\": \"{}\", \"messages\": {}, \"msgs_per_sec\": {:.1}}}",
                result.name,
                result.messages,
                result.msgs_per_sec()
            );
        }
    } else {
        println!("{:<52} {:>10} {:>12} {:>14}", "workload", "messages", "msgs/s", "message bytes");
        for result in &results {
            println!(
                "{:<52} {:>10} {:>12.0} {:>14}",
                result.name,
                result.messages,
                result.msgs_per_sec(),
                result.message_bytes
            );
        }
        println!(
            "(single thread, {:.1} s each after a {:.1} s warm-up; render + MIME build, no sending)",
            MEASURE.as_secs_f64(),
            WARM_UP.as_secs_f64()
        );
        println!(
            "overdue_invoice_reminder: {:.0}% of the minijinja-only ceiling measured in this run",
            share_of_ceiling * 100.0
        );
        if let Some(ratio) = ratio {
            println!("overdue_invoice_reminder: {ratio:.1}x the Python Jinja2 + email baseline measured in this run");
        }
    }
    Ok(())
}

fn measure(name: &'static str, renderer: &Renderer, event: &Event, sender: &Mailbox) -> Result<Measurement, String> {
    let render = || renderer.render_event(event, sender).map_err(|e| format!("{name}: {e}"));
    let message_bytes = render()?.message.len();
    time_repeatedly(name, message_bytes, render)
}

/// Runs `work` for [`WARM_UP`], then counts how many times it completes in [`MEASURE`].
fn time_repeatedly<T>(
    name: &'static str,
    message_bytes: usize,
    work: impl Fn() -> Result<T, String>,
) -> Result<Measurement, String> {
    let warm_up_until = Instant::now() + WARM_UP;
    while Instant::now() < warm_up_until {
        black_box(work()?);
    }
    let started = Instant::now();
    let mut messages = 0_u64;
    // Checking the clock every message costs ~20 ns against tens of µs per message: negligible.
    while started.elapsed() < MEASURE {
        black_box(work()?);
        messages += 1;
    }
    Ok(Measurement { name, messages, elapsed: started.elapsed(), message_bytes })
}

const COMMON: &str = r#"
  "recipient": {"name": "Ada Lovelace", "email": "ada@example.com", "cc": ["accounts@example.com"]},
  "company": {
    "name": "Northwind Traders",
    "address_lines": ["12 Harbour Road", "Seattle, WA 98101", "United States"],
    "support_email": "help@northwind.example",
    "support_phone": "+1 206 555 0142",
    "website_url": "https://www.northwind.example/"
  },
  "locale": "en-US","#;

fn overdue_reminder_with_lines(count: usize) -> Result<Event, String> {
    Event::from_json(EventKind::OverdueInvoiceReminder, &overdue_reminder_json(count))
        .map_err(|e| format!("bench reminder payload: {e}"))
}

fn overdue_reminder_json(count: usize) -> String {
    let lines: Vec<String> = (1..=count)
        .map(|n| {
            format!(
                r#"{{"sku": "SKU-{n:03}", "description": "Catalogue item {n}", "quantity": "{n}", "unit_price": "12.50", "amount": "{}.{:02}"}}"#,
                n * 1250 / 100,
                n * 1250 % 100
            )
        })
        .collect();
    let total_cents: usize = (1..=count).map(|n| n * 1250).sum();
    let total = format!("{}.{:02}", total_cents / 100, total_cents % 100);
    format!(
        r#"{{{COMMON}
  "currency": "USD",
  "customer_number": "C-0042",
  "invoice": {{"number": "INV-1001", "issue_date": "2026-10-12", "due_date": "2026-11-11",
               "total": "{total}", "amount_due": "{total}", "purchase_order": "PO-7788",
               "lines": [{}]}},
  "reminder_stage": 14,
  "as_of": "2026-11-25",
  "payment_url": "https://pay.northwind.example/i/INV-1001"
}}"#,
        lines.join(",\n")
    )
}

/// The template engine alone on the reminder: minijinja, set up as the renderer sets it up,
/// renders the subject, HTML and text templates from a context built once, with identity
/// filters, and nothing else: no payload checks, no formatting, no line folding, no MIME build.
fn engine_ceiling(lines: usize) -> Result<Measurement, String> {
    use minijinja::value::Value;
    let env = mailroom_events::engine_only_environment();
    let mut payload: serde_json::Value =
        serde_json::from_str(&overdue_reminder_json(lines)).map_err(|e| format!("ceiling payload: {e}"))?;
    // Optional fields the payload leaves out are none to the Rust renderer; say so explicitly here.
    if let Some(company) = payload.pointer_mut("/company").and_then(|v| v.as_object_mut()) {
        company.entry("logo_url").or_insert(serde_json::Value::Null);
    }
    payload["kind"] = "overdue_invoice_reminder".into();
    payload["days_overdue"] = 14.into();
    payload["lang"] = "en-US".into();
    payload["subject"] = "Reminder: invoice INV-1001 is 14 days overdue".into();
    let context = Value::from_serialize(&payload);
    let files = mailroom_events::template_files(EventKind::OverdueInvoiceReminder);
    let render = || -> Result<usize, String> {
        let mut bytes = 0;
        for file in [files.subject, files.html, files.text] {
            let template = env.get_template(file).map_err(|e| format!("ceiling: {e:#}"))?;
            bytes += template.render(&context).map_err(|e| format!("ceiling: {e:#}"))?.len();
        }
        Ok(bytes)
    };
    let rendered_bytes = render()?;
    time_repeatedly("minijinja_only_ceiling (10 lines, templates only)", rendered_bytes, render)
}

const PYTHON_BASELINE: &str = include_str!("baseline_events.py");

/// Runs the Python baseline on the same reminder payload; `None` (with the reason printed)
/// where python3 or Jinja2 is missing.
fn python_baseline(lines: usize) -> Option<Measurement> {
    let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/mailroom-events/templates");
    let scratch = std::env::temp_dir().join(format!("mailroom-bench-events-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).ok()?;
    let data = scratch.join("reminder.json");
    let script = scratch.join("baseline_events.py");
    std::fs::write(&data, overdue_reminder_json(lines)).ok()?;
    std::fs::write(&script, PYTHON_BASELINE).ok()?;
    let output = std::process::Command::new("python3")
        .arg(&script)
        .arg(&templates)
        .arg(&data)
        .arg(WARM_UP.as_secs_f64().to_string())
        .arg(MEASURE.as_secs_f64().to_string())
        .output();
    let _ = std::fs::remove_dir_all(&scratch);
    let output = match output {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            eprintln!(
                "baseline skipped: python3 failed (is Jinja2 installed? pip install jinja2): {}",
                String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or_default()
            );
            return None;
        }
        Err(e) => {
            eprintln!("baseline skipped: cannot run python3: {e}");
            return None;
        }
    };
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    Some(Measurement {
        name: "python_jinja2_email_baseline (10 lines)",
        messages: report["messages"].as_u64()?,
        elapsed: Duration::from_secs_f64(report["elapsed_s"].as_f64()?),
        message_bytes: report["message_bytes"].as_u64()? as usize,
    })
}

fn packing_slip_with_pdfs(size: usize) -> Result<Event, String> {
    // Tiny placeholder PDFs in the JSON, replaced by full-size ones in the typed payload:
    // the bench measures rendering, not base64-decoding its own input.
    let placeholder = "JVBERi0xLjcK"; // "%PDF-1.7\n"
    let json = format!(
        r#"{{{COMMON}
  "currency": "USD",
  "order_number": "SO-1001",
  "invoice": {{"number": "INV-1001", "issue_date": "2026-11-26", "due_date": "2026-12-26", "amount_due": "1250.00"}},
  "packing_slip_pdf": {{"filename": "Packing slip SO-1001.pdf", "content_base64": "{placeholder}"}},
  "invoice_pdf": {{"filename": "Invoice INV-1001.pdf", "content_base64": "{placeholder}"}}
}}"#
    );
    let mut event = Event::from_json(EventKind::PackingSlipWithInvoice, &json)
        .map_err(|e| format!("bench packing slip payload: {e}"))?;
    if let Event::PackingSlipWithInvoice(payload) = &mut event {
        payload.packing_slip_pdf.content = pdf_like_bytes(size, 1);
        payload.invoice_pdf.content = pdf_like_bytes(size, 2);
    }
    event.checked().map_err(|e| format!("bench packing slip payload: {e}"))
}

/// `size` bytes starting like a PDF, then binary noise (as compressed PDF streams are),
/// so the message builder has to base64-encode them as it would real files.
fn pdf_like_bytes(size: usize, seed: u64) -> Vec<u8> {
    let mut bytes = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    // xorshift64: deterministic filler, not randomness anyone relies on.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ seed;
    while bytes.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(size);
    bytes
}
