//! `cargo xtask demo`: the main job end to end on an embedded fake SMTP server — validate the Company Email, render and send every ERP event from fixtures/events/, then an outbox act (a batch through a server that throttles one recipient, and the status table); with `--serve`, the web console stays up on that server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mailroom_core::Secret;
use mailroom_core::ServiceConfig;
use mailroom_events::{EventKind, Renderer};
use mailroom_testkit::FakeSmtpServer;
use mailroom_web::{Console, ConsoleOptions, InboxMessage, InboxSource};

const ACCOUNT: (&str, &str) = ("erp@northwind.example", "demo-app-password");

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_owned()
}

fn output_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target")).join("demo")
}

/// Runs the demo; prints what the server received and where the copies are. With `serve`,
/// the fake server and the web console then keep running on that address until Ctrl-C.
pub fn run(serve: Option<SocketAddr>) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(demo(serve))
}

async fn demo(serve: Option<SocketAddr>) -> Result<(), String> {
    let root = workspace_root();
    let out = output_dir(&root);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(out.join("messages")).map_err(|e| format!("{}: {e}", out.display()))?;

    let server = FakeSmtpServer::builder()
        .account(ACCOUNT.0, ACCOUNT.1)
        .require_auth(true)
        .start()
        .await
        .map_err(|e| e.to_string())?;
    let ca_file = out.join("fake-smtp-ca.pem");
    std::fs::write(&ca_file, server.ca_pem()).map_err(|e| e.to_string())?;
    let config_file = out.join("company-email.toml");
    let config_text = format!(
        "service = \"web_mail\"\nemail_address = \"{}\"\ndisplay_name = \"Northwind ERP\"\n\n[web_mail]\nserver = \"localhost\"\nport = {}\nenable_ssl = true\nusername = \"{}\"\npassword_env = \"MAILROOM_PASSWORD\"\nca_file = \"{}\"\ntimeout_secs = 5\n",
        ACCOUNT.0,
        server.addr().port(),
        ACCOUNT.0,
        ca_file.display()
    );
    std::fs::write(&config_file, &config_text).map_err(|e| e.to_string())?;
    println!("1. Fake SMTP server (STARTTLS + AUTH, certificate generated now) on {}", server.addr());
    println!("2. Company Email config written to {}", config_file.display());

    let env = |name: &str| (name == "MAILROOM_PASSWORD").then(|| ACCOUNT.1.to_owned());
    let loaded = mailroom::load_config_text(&config_text, &out, &env).map_err(|e| e.to_string())?;
    let ServiceConfig::WebMail(_) = &loaded.config.service else { return Err("the demo config is Web Mail".into()) };
    let transport = mailroom::transport_for(&loaded.config).map_err(|e| format!("{e:?}"))?;
    let started = Instant::now();
    let validated = mailroom::validate(transport.as_ref(), &loaded.config, &config_text, None)
        .await
        .map_err(|e| format!("validate failed: {e}"))?;
    println!(
        "3. Validate: test mail accepted in {} ms ({}); the config may be saved",
        started.elapsed().as_millis(),
        validated.receipt().message_id
    );

    let renderer = Renderer::new();
    let mut sent = Vec::new();
    for kind in EventKind::ALL {
        let data_file = root.join("fixtures/events").join(format!("{}.json", kind.as_str()));
        let data = std::fs::read_to_string(&data_file).map_err(|e| format!("{}: {e}", data_file.display()))?;
        let rendered = renderer.render(kind, data.as_str(), &loaded.config.sender).map_err(|e| e.to_string())?;
        let preview = rendered.preview();
        std::fs::write(out.join("messages").join(format!("{}.eml", kind.as_str())), &preview.eml)
            .map_err(|e| e.to_string())?;
        std::fs::write(out.join("messages").join(format!("{}.html", kind.as_str())), &preview.html)
            .map_err(|e| e.to_string())?;
        transport.send(&rendered.message).await.map_err(|e| format!("sending {}: {e}", kind.as_str()))?;
        sent.push((kind, rendered.message.message_id().to_owned()));
    }
    println!("4. Rendered and sent {} ERP events from fixtures/events/\n", sent.len());

    let received =
        server.wait_for_messages(sent.len() + 1, Duration::from_secs(10)).await.map_err(|e| e.to_string())?;
    println!("What the server received ({} messages, all over TLS as {}):", received.len(), ACCOUNT.0);
    println!("{:<27} {:<28} {:<52} {:<10} {:<44} {:>8}", "kind", "to", "subject", "parts", "attachments", "bytes");
    for message in &received {
        let parsed = message.parsed();
        let kind = parsed.header("X-ERP-Event").map(str::trim).unwrap_or("(validate test)").to_owned();
        let to = parsed.to.iter().map(|a| a.address.clone()).collect::<Vec<_>>().join(", ");
        let parts = match (parsed.text.is_some(), parsed.html.is_some()) {
            (true, true) => "text+html",
            (true, false) => "text",
            (false, true) => "html",
            (false, false) => "none",
        };
        let attachments = parsed
            .attachments
            .iter()
            .map(|a| format!("{} ({} KB)", a.filename.as_deref().unwrap_or("(unnamed)"), a.bytes.len().div_ceil(1024)))
            .collect::<Vec<_>>()
            .join(", ");
        let subject = parsed.subject.unwrap_or_default();
        let subject: String =
            if subject.chars().count() > 50 { subject.chars().take(49).chain(['…']).collect() } else { subject };
        println!(
            "{:<27} {:<28} {:<52} {:<10} {:<44} {:>8}",
            kind,
            to,
            subject,
            parts,
            if attachments.is_empty() { "-".into() } else { attachments },
            message.raw.len()
        );
        if !message.over_tls || message.authenticated_as.as_deref() != Some(ACCOUNT.0) {
            return Err(format!("{kind} arrived without TLS or AUTH"));
        }
    }
    println!(
        "\nCopies: {}/messages/<kind>.eml (open in a mail client) and <kind>.html (open in a browser)",
        out.display()
    );
    outbox_act(&root, &out, &loaded.config.sender).await?;
    match serve {
        Some(listen) => serve_console(server, &root, &out, &config_text, listen).await,
        None => {
            println!("{}", closing_hint());
            server.shutdown();
            Ok(())
        }
    }
}

/// The outbox act: a batch of notifications enqueued in a SQLite outbox and dispatched to a
/// second fake server that throttles one recipient (`451 4.7.0` at RCPT, every time), then
/// the status table: the throttled message waits in the queue with its back-off, the rest are sent.
async fn outbox_act(root: &Path, out: &Path, sender: &mailroom_core::Mailbox) -> Result<(), String> {
    use mailroom_outbox::{Dispatcher, RunOptions, SendingLimits, State, Store, bulk_retry};
    const BATCH: usize = 12;
    const THROTTLED: &str = "busy@contoso.example";
    let server = mailroom_testkit::ChaosSmtpServer::builder()
        .throttle_recipient(THROTTLED)
        .start()
        .await
        .map_err(|e| e.to_string())?;
    let store = Store::open(&format!("sqlite:{}", out.join("outbox.db").display())).await.map_err(|e| e.to_string())?;
    let fixture = root.join("fixtures/events/user_notification.json");
    let text = std::fs::read_to_string(&fixture).map_err(|e| format!("{}: {e}", fixture.display()))?;
    let mut data: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let renderer = Renderer::new();
    let mut batch = Vec::with_capacity(BATCH);
    for n in 1..=BATCH {
        data["event_id"] = serde_json::json!(format!("demo-outbox-{n}"));
        let to = if n == 5 { THROTTLED.to_owned() } else { format!("customer{n}@contoso.example") };
        data["recipient"]["email"] = serde_json::json!(to);
        let message = mailroom::render_for_outbox(&renderer, EventKind::UserNotification, &data, sender)
            .map_err(|e| e.to_string())?;
        batch.push(message);
    }
    let enqueued = store.enqueue(&batch).await.map_err(|e| e.to_string())?;
    let again = store.enqueue(&batch).await.map_err(|e| e.to_string())?;
    println!(
        "\n5. Outbox: enqueued {} notifications in {} (enqueued again: {} duplicates, nothing added)",
        enqueued.iter().filter(|e| !e.duplicate).count(),
        out.join("outbox.db").display(),
        again.iter().filter(|e| e.duplicate).count()
    );
    let smtp = mailroom_core::SmtpConfig::new(server.addr().ip().to_string(), server.addr().port())
        .with_tls(mailroom_core::TlsMode::None)
        .with_timeout(Duration::from_secs(5));
    let transport = mailroom_smtp::SmtpTransport::builder(sender.clone(), &smtp)
        .max_connections(4)
        .build()
        .map_err(|e| e.to_string())?;
    let limits = SendingLimits {
        preset: "demo",
        concurrency: 4,
        rate_per_minute: None,
        daily_quota: None,
        max_attempts: 8,
        lease: Duration::from_secs(60),
    };
    // Short back-off so the demo shows a few retries; the run stops once the next one is
    // more than a second away, leaving the throttled message queued for later.
    let retry = mailroom_core::RetryPolicy { initial_delay: Duration::from_millis(200), ..bulk_retry(8) };
    let options = RunOptions { retry, max_wait: Duration::from_secs(1), ..RunOptions::until_empty("demo") };
    let started = Instant::now();
    let summary = Dispatcher::new(store.clone(), std::sync::Arc::new(transport), limits)
        .run(options, std::future::pending(), Default::default())
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "6. Dispatched to a fake server that throttles {THROTTLED}: {} sent, {} temporary refusals retried, {} still queued ({} ms)\n",
        summary.sent,
        summary.retried,
        summary.queued,
        started.elapsed().as_millis()
    );
    let counts = store.counts().await.map_err(|e| e.to_string())?;
    println!("state     messages");
    for state in State::ALL {
        println!("{:<9} {:>8}", state.as_str(), counts.of(state));
    }
    for waiting in store.list(Some(State::Queued), 10).await.map_err(|e| e.to_string())? {
        let error = waiting.error.as_ref();
        let wait_ms = waiting.not_before_ms.saturating_sub(mailroom_outbox::now_ms()).max(0);
        println!(
            "queued: {} after {} attempts, {} — next try in {:.1} s",
            waiting.recipients.join(", "),
            waiting.attempts,
            error.and_then(|e| e["kind"].as_str()).unwrap_or("-"),
            wait_ms as f64 / 1000.0
        );
    }
    let delivered = server.delivered_counts();
    if counts.sent != (BATCH - 1) as u64
        || counts.queued != 1
        || delivered.len() != BATCH - 1
        || delivered.values().any(|n| *n != 1)
    {
        return Err(format!("the outbox act went wrong: {counts:?}, server got {delivered:?}"));
    }
    store.close().await;
    server.shutdown();
    Ok(())
}

/// The web console on the demo's fake server: prefilled with its settings and password (the
/// page opens ready to Validate), the fixtures on the Events page, an Inbox tab of what the
/// server received, and an outbox beside the console's config with a few events queued (the
/// Outbox page shows them once the config is saved; Run sends them). Runs until Ctrl-C.
async fn serve_console(
    server: FakeSmtpServer,
    root: &Path,
    out: &Path,
    config_text: &str,
    listen: SocketAddr,
) -> Result<(), String> {
    let server = std::sync::Arc::new(server);
    let console_dir = out.join("console");
    std::fs::create_dir_all(&console_dir).map_err(|e| format!("{}: {e}", console_dir.display()))?;
    let config_path = console_dir.join("company-email.toml");
    let mut options = ConsoleOptions::new(&config_path);
    // Save keeps the prefill's [outbox] section, so the saved config finds the queued batch.
    let outbox_url = "sqlite:outbox.db";
    options.prefill = Some(format!("{config_text}\n[outbox]\nurl = \"{outbox_url}\"\n"));
    let queued = queue_demo_batch(root, out, &config_path, config_text, outbox_url).await?;
    options.known_secrets = vec![("MAILROOM_PASSWORD".to_owned(), Secret::new(ACCOUNT.1))];
    options.events_dir = Some(root.join("fixtures/events"));
    let received = server.clone();
    options.inbox = Some(InboxSource::new(move || received.messages().iter().map(inbox_message).collect()));
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    println!(
        "\nThe console is on http://{address}/ (prefilled for the fake server on {}; its password is known, so Validate works as is).\n\
         Save writes to {}. The Inbox tab shows what the fake server received.\n\
         {queued} events wait in the outbox: after Save, the Outbox page lists them and Run sends them. Stop with Ctrl-C.",
        server.addr(),
        console_dir.display()
    );
    tokio::select! {
        served = mailroom_web::serve(listener, Console::new(options)) => served.map_err(|e| e.to_string()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Queues a few fixture events in the console's outbox (`outbox_url`, beside `config_path`);
/// returns how many.
async fn queue_demo_batch(
    root: &Path,
    out: &Path,
    config_path: &Path,
    config_text: &str,
    outbox_url: &str,
) -> Result<usize, String> {
    let env = |name: &str| (name == "MAILROOM_PASSWORD").then(|| ACCOUNT.1.to_owned());
    let loaded = mailroom::load_config_text(config_text, out, &env).map_err(|e| e.to_string())?;
    let mut outbox = mailroom_core::config::OutboxConfig::default();
    outbox.url = Some(outbox_url.to_owned());
    let store = mailroom::open_outbox(config_path, &outbox).await.map_err(|e| e.to_string())?;
    let renderer = Renderer::new();
    let mut batch = Vec::new();
    for kind in [EventKind::OrderReleased, EventKind::ShipmentConfirmed, EventKind::UserNotification] {
        let data_file = root.join("fixtures/events").join(format!("{}.json", kind.as_str()));
        let text = std::fs::read_to_string(&data_file).map_err(|e| format!("{}: {e}", data_file.display()))?;
        let data: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", data_file.display()))?;
        batch.push(
            mailroom::render_for_outbox(&renderer, kind, &data, &loaded.config.sender).map_err(|e| e.to_string())?,
        );
    }
    let enqueued = store.enqueue(&batch).await.map_err(|e| e.to_string())?;
    store.close().await;
    Ok(enqueued.len())
}

fn inbox_message(message: &mailroom_testkit::CapturedMessage) -> InboxMessage {
    let parsed = message.parsed();
    InboxMessage {
        from: parsed.from.iter().map(|a| a.address.clone()).collect::<Vec<_>>().join(", "),
        to: parsed.to.iter().map(|a| a.address.clone()).collect(),
        subject: parsed.subject.clone().unwrap_or_default(),
        text: parsed.text.clone(),
        html: parsed.html.clone(),
        attachments: parsed
            .attachments
            .iter()
            .map(|a| format!("{} ({} KB)", a.filename.as_deref().unwrap_or("(unnamed)"), a.bytes.len().div_ceil(1024)))
            .collect(),
        size: message.raw.len(),
        over_tls: message.over_tls,
        authenticated_as: message.authenticated_as.clone(),
    }
}

/// What to try next, printed last — after which this demo's fake server is gone.
/// The demo's own config points at that stopped server, so the hint offers one that stays up.
fn closing_hint() -> String {
    "Try the CLI yourself: `cargo xtask fake-smtp` starts a fake server that stays up, writes a config for it\n\
     and prints the `mailroom validate` command to run against it; or point a config of your own at your server."
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closing_hint_offers_a_server_that_is_still_running() {
        let hint = closing_hint();
        assert!(hint.contains("cargo xtask fake-smtp"), "{hint}");
        assert!(
            !hint.contains("company-email.toml"),
            "the demo's config points at a server that stops with the demo: {hint}"
        );
    }
}
