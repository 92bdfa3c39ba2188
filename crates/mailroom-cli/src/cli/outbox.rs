//! The outbox commands (CONTRACT: DESIGN.md §5): `outbox enqueue | run | status | list | retry | resolve` and the daily `reminders` job.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use mailroom_core::config::LoadedConfig;
use mailroom_core::{Mailbox, ServiceKind};
use mailroom_events::{EventKind, ReminderPolicy, Renderer};
use mailroom_outbox::{
    Counts, Dispatcher, NewMessage, Progress, Resolution, RunOptions, SendingLimits, State, Store, StoreError,
};
use serde_json::{Value, json};

use super::report::Reporter;
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};

/// `mailroom outbox …`: the durable queue in front of the Company Email.
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Store event mail in the outbox (idempotent: the same event twice is one message, reported as a duplicate).
    Enqueue {
        /// The Company Email config file (TOML); its [outbox] url says where the outbox is.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The event kind (see `mailroom events`); with --data.
        #[arg(long, value_name = "KIND", requires = "data", conflicts_with = "batch")]
        event: Option<String>,
        /// The event's data (JSON); with --event.
        #[arg(long, value_name = "FILE.json", requires = "event")]
        data: Option<PathBuf>,
        /// Send to this address instead of the data's recipient (the copy gets its own Message-ID).
        #[arg(long, value_name = "ADDR", conflicts_with = "batch")]
        to: Option<String>,
        /// Many events, one JSON object a line: {"event": KIND, "data": {…}, "to": optional}.
        #[arg(long, value_name = "FILE.jsonl", required_unless_present = "event")]
        batch: Option<PathBuf>,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Send what is queued, within the provider's rate limit and daily quota, until stopped (Ctrl-C) or, with --until-empty, until nothing is left.
    Run {
        /// The Company Email config file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Stop when nothing is queued (retries due within a minute are waited for).
        #[arg(long)]
        until_empty: bool,
        /// Messages in flight at once (default: [outbox] concurrency, else 4).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
        workers: Option<u32>,
        /// Print one JSON object on stdout when it stops.
        #[arg(long)]
        json: bool,
    },
    /// Count the messages in each state.
    Status {
        /// The Company Email config file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List messages, newest first.
    List {
        /// The Company Email config file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Only messages in this state: queued, sending, sent, failed or unknown.
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
        /// At most this many.
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: usize,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Put a failed message back in the queue.
    Retry {
        /// The Company Email config file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The message's id (see `outbox list`).
        id: i64,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Decide about an unknown message (the connection was lost after it was handed over).
    Resolve {
        /// The Company Email config file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The message's id (see `outbox list --state unknown`).
        id: i64,
        /// It arrived: mark it sent.
        #[arg(long, conflicts_with = "resend", required_unless_present = "resend")]
        sent: bool,
        /// It did not arrive: queue it again.
        #[arg(long)]
        resend: bool,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// `mailroom reminders`: enqueue the overdue-invoice reminders due today.
#[derive(Debug, Args)]
pub struct RemindersArgs {
    /// The Company Email config file (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The open invoices: {"company", "currency", "invoices": [{"recipient", "invoice", "paid", …}]}.
    #[arg(long, value_name = "FILE.json")]
    invoices: PathBuf,
    /// The day to schedule for (YYYY-MM-DD; default today, UTC).
    #[arg(long, value_name = "DATE")]
    today: Option<String>,
    /// Reminder stages in days after the due date (default: the file's "policy", else 1,7,14,30).
    #[arg(long, value_name = "DAYS", value_delimiter = ',')]
    policy: Option<Vec<u32>>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs an outbox command.
pub async fn run(command: OutboxCommand) -> u8 {
    match command {
        OutboxCommand::Enqueue { config, event, data, to, batch, json } => {
            enqueue(&config, event.zip(data), to, batch, Reporter::new(json)).await
        }
        OutboxCommand::Run { config, until_empty, workers, json } => {
            run_dispatcher(&config, until_empty, workers, Reporter::new(json)).await
        }
        OutboxCommand::Status { config, json } => status(&config, Reporter::new(json)).await,
        OutboxCommand::List { config, state, limit, json } => list(&config, state, limit, Reporter::new(json)).await,
        OutboxCommand::Retry { config, id, json } => {
            change(
                &config,
                id,
                Reporter::new(json),
                |store| Box::pin(async move { store.retry(id).await }),
                State::Queued,
            )
            .await
        }
        OutboxCommand::Resolve { config, id, sent, resend: _, json } => {
            let (resolution, state) =
                if sent { (Resolution::Sent, State::Sent) } else { (Resolution::Resend, State::Queued) };
            change(
                &config,
                id,
                Reporter::new(json),
                move |store| Box::pin(async move { store.resolve(id, resolution).await }),
                state,
            )
            .await
        }
    }
}

/// The loaded config and its opened outbox; `Err` carries the exit code after reporting.
struct Opened {
    loaded: LoadedConfig,
    store: Store,
    service: ServiceKind,
}

async fn open(config_path: &Path, reporter: &Reporter, started: Instant) -> Result<Opened, u8> {
    let Some(loaded) = super::load(config_path, reporter, started) else {
        return Err(reporter.exit_code());
    };
    let service = loaded.config.service_kind();
    match mailroom::open_outbox(config_path, &loaded.outbox).await {
        Ok(store) => Ok(Opened { loaded, store, service }),
        Err(error) => Err(store_error(reporter, Some(service), started, &error)),
    }
}

fn store_error(reporter: &Reporter, service: Option<ServiceKind>, started: Instant, error: &StoreError) -> u8 {
    match error {
        StoreError::NotFound(_) => {
            reporter.usage(service, started, &error.to_string(), &["`mailroom outbox list` shows the ids."])
        }
        StoreError::WrongState { expected: "failed", .. } => reporter.usage(
            service,
            started,
            &error.to_string(),
            &["Only failed messages can be retried; an unknown one needs `outbox resolve ID --sent|--resend`."],
        ),
        StoreError::WrongState { .. } => reporter.usage(service, started, &error.to_string(), &[]),
        _ => reporter.usage_at(
            service,
            started,
            Some("outbox.url"),
            &error.to_string(),
            &["Check [outbox] url: a SQLite file in a writable folder, or a PostgreSQL server that accepts this user."],
        ),
    }
    EXIT_USAGE
}

fn elapsed_ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}

/// How many messages are rendered and stored per transaction in a batch.
const ENQUEUE_CHUNK: usize = 1_000;

async fn enqueue(
    config_path: &Path,
    single: Option<(String, PathBuf)>,
    to: Option<String>,
    batch: Option<PathBuf>,
    reporter: Reporter,
) -> u8 {
    let started = Instant::now();
    let Opened { loaded, store, service } = match open(config_path, &reporter, started).await {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let sender = loaded.config.sender.clone();
    let renderer = Renderer::new();
    let mut ids = Vec::new();
    let mut duplicates = 0u64;
    let mut store_chunk = async |messages: Vec<NewMessage>, ids: &mut Vec<i64>| -> Result<(), u8> {
        let enqueued =
            store.enqueue(&messages).await.map_err(|e| store_error(&reporter, Some(service), started, &e))?;
        duplicates += enqueued.iter().filter(|e| e.duplicate).count() as u64;
        ids.extend(enqueued.iter().map(|e| e.id));
        Ok(())
    };
    if let Some((event, data)) = single {
        let to = match super::parse_recipient(to, &reporter, service, started) {
            Ok(to) => to,
            Err(code) => return code,
        };
        let text = match std::fs::read_to_string(&data) {
            Ok(text) => text,
            Err(e) => {
                reporter.usage(
                    Some(service),
                    started,
                    &format!("cannot read the event data {}: {e}", data.display()),
                    &[],
                );
                return EXIT_USAGE;
            }
        };
        let line = json!({"event": event, "data": serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)), "to": to.map(|t| t.email.to_string())});
        let message = match render_line(&renderer, &sender, &line) {
            Ok(message) => message,
            Err(reason) => {
                reporter.usage(
                    Some(service),
                    started,
                    &reason,
                    &["Run `mailroom events` for the kinds and their data fields."],
                );
                return EXIT_USAGE;
            }
        };
        if let Err(code) = store_chunk(vec![message], &mut ids).await {
            return code;
        }
    } else if let Some(batch) = batch {
        let file = match std::fs::File::open(&batch) {
            Ok(file) => file,
            Err(e) => {
                reporter.usage(Some(service), started, &format!("cannot read the batch {}: {e}", batch.display()), &[]);
                return EXIT_USAGE;
            }
        };
        let mut lines = std::io::BufReader::new(file).lines().enumerate();
        let shared = Arc::new((renderer, sender));
        // Two stages overlap: while one chunk's transaction commits, the next one renders on
        // the other cores. A chunk's ids are reported only after its commit.
        let mut rendered: Option<Vec<NewMessage>> = None;
        loop {
            let chunk = match read_chunk(&mut lines) {
                Ok(chunk) => chunk,
                Err((number, e)) => {
                    if let Some(messages) = rendered.take()
                        && let Err(code) = store_chunk(messages, &mut ids).await
                    {
                        return code;
                    }
                    reporter.usage(Some(service), started, &format!("{}: line {number}: {e}", batch.display()), &[]);
                    return EXIT_USAGE;
                }
            };
            let rendering = (!chunk.is_empty()).then(|| {
                let shared = shared.clone();
                tokio::task::spawn_blocking(move || render_chunk(&shared.0, &shared.1, &chunk))
            });
            if let Some(messages) = rendered.take()
                && let Err(code) = store_chunk(messages, &mut ids).await
            {
                return code;
            }
            let Some(rendering) = rendering else { break };
            let result = match rendering.await {
                Ok(result) => result,
                Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                Err(_) => Err("rendering was cancelled".to_owned()),
            };
            match result {
                Ok(messages) => rendered = Some(messages),
                Err(reason) => {
                    let stored = ids.len();
                    reporter.usage(
                        Some(service),
                        started,
                        &format!("{}: {reason}", batch.display()),
                        &[
                            &format!("The {stored} messages before it are in the outbox; enqueueing is idempotent, so fix the line and run the same batch again."),
                            "Each line: {\"event\": KIND, \"data\": {…}, \"to\": \"optional@address\"}; `mailroom events` lists the kinds.",
                        ],
                    );
                    return EXIT_USAGE;
                }
            }
        }
    }
    let enqueued = ids.len() as u64 - duplicates;
    if reporter.is_json() {
        reporter.object(json!({"ok": true, "enqueued": enqueued, "duplicates": duplicates, "ids": ids, "elapsed_ms": elapsed_ms(started)}));
    } else {
        reporter.plain(&format!(
            "Enqueued {enqueued} message(s), {duplicates} duplicate(s) already in the outbox ({} ms).\nNext: mailroom outbox run --config {} --until-empty\n",
            elapsed_ms(started),
            config_path.display()
        ));
    }
    EXIT_OK
}

/// The next [`ENQUEUE_CHUNK`] non-blank lines with their 1-based numbers (fewer at the end of
/// the file, none after it); a read error names its line.
fn read_chunk(
    lines: &mut impl Iterator<Item = (usize, std::io::Result<String>)>,
) -> Result<Vec<(usize, String)>, (usize, std::io::Error)> {
    let mut chunk = Vec::with_capacity(ENQUEUE_CHUNK);
    for (index, line) in lines.by_ref() {
        match line {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => chunk.push((index + 1, line)),
            Err(e) => return Err((index + 1, e)),
        }
        if chunk.len() == ENQUEUE_CHUNK {
            break;
        }
    }
    Ok(chunk)
}

/// Renders a chunk of batch lines on every core; the first bad line's error names it.
fn render_chunk(renderer: &Renderer, sender: &Mailbox, chunk: &[(usize, String)]) -> Result<Vec<NewMessage>, String> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let per_thread = chunk.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunk
            .chunks(per_thread)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(number, line)| {
                            let value: Value =
                                serde_json::from_str(line).map_err(|e| format!("line {number} is not JSON: {e}"))?;
                            render_line(renderer, sender, &value).map_err(|reason| format!("line {number}: {reason}"))
                        })
                        .collect::<Result<Vec<_>, String>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(chunk.len());
        for handle in handles {
            all.extend(handle.join().map_err(|_| "rendering panicked".to_owned())??);
        }
        Ok(all)
    })
}

/// One `{"event", "data", "to"}` object to a stored message.
fn render_line(renderer: &Renderer, sender: &Mailbox, line: &Value) -> Result<NewMessage, String> {
    let kind: EventKind = line
        .get("event")
        .and_then(Value::as_str)
        .ok_or("\"event\" is missing: give the event kind, e.g. \"overdue_invoice_reminder\"")?
        .parse()
        .map_err(|e: mailroom_events::UnknownKind| e.to_string())?;
    let data = line.get("data").ok_or("\"data\" is missing: give the event's data object")?;
    let data = match line.get("to") {
        None | Some(Value::Null) => data.clone(),
        Some(Value::String(to)) => {
            let to: Mailbox = to.parse().map_err(|_| format!("\"to\": \"{to}\" is not an email address"))?;
            let redirected = mailroom::redirect_event(&data.to_string(), &to)?;
            serde_json::from_str(&redirected).map_err(|e| e.to_string())?
        }
        Some(_) => return Err("\"to\" must be an email address in quotes".into()),
    };
    mailroom::render_for_outbox(renderer, kind, &data, sender).map_err(|e| match e.field() {
        Some(field) => format!("{} (field {field})", e),
        None => e.to_string(),
    })
}

async fn run_dispatcher(config_path: &Path, until_empty: bool, workers: Option<u32>, reporter: Reporter) -> u8 {
    let started = Instant::now();
    let Opened { loaded, store, service } = match open(config_path, &reporter, started).await {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let transport = match super::transport(&loaded.config, &reporter, service, started) {
        Ok(transport) => transport,
        Err(code) => return code,
    };
    let mut limits = SendingLimits::for_config(&loaded.config, &loaded.outbox);
    if let Some(workers) = workers {
        limits.concurrency = workers as usize;
    }
    let before = match store.counts().await {
        Ok(counts) => counts,
        Err(e) => return store_error(&reporter, Some(service), started, &e),
    };
    let worker = format!("{}-{:08x}", std::process::id(), fastrand_u32());
    let options = RunOptions { until_empty, ..RunOptions::until_empty(worker) };
    let progress = Arc::new(Progress::default());
    let bar = (!reporter.is_json() && std::io::stderr().is_terminal())
        .then(|| progress_bar(before.queued + before.sending, &limits));
    let ticker = bar.clone().map(|bar| {
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                update_bar(&bar, &progress);
            }
        })
    });
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let dispatcher = Dispatcher::new(store.clone(), transport, limits.clone());
    let result = dispatcher.run(options, stop, progress.clone()).await;
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    if let Some(bar) = &bar {
        update_bar(bar, &progress);
        bar.finish_and_clear();
    }
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => return store_error(&reporter, Some(service), started, &e),
    };
    store.close().await;
    let ok = summary.failed == 0 && summary.unknown == 0;
    if reporter.is_json() {
        reporter.object(json!({
            "ok": ok,
            "sent": summary.sent,
            "failed": summary.failed,
            "unknown": summary.unknown,
            "queued": summary.queued,
            "elapsed_ms": elapsed_ms(started),
            "retried": summary.retried,
            "stopped": summary.stopped,
        }));
    } else {
        let stopped = match summary.stopped {
            mailroom_outbox::StopReason::Empty => "nothing left to send".to_owned(),
            mailroom_outbox::StopReason::DailyQuota => format!(
                "the daily quota ({}) is used up; the rest stays queued for tomorrow",
                limits.daily_quota.unwrap_or_default()
            ),
            mailroom_outbox::StopReason::Interrupted => "interrupted".to_owned(),
        };
        let mut text = format!(
            "{} sent, {} failed, {} unknown, {} retried later, {} still queued in {:.1} s ({stopped}).\n",
            summary.sent,
            summary.failed,
            summary.unknown,
            summary.retried,
            summary.queued,
            started.elapsed().as_secs_f64()
        );
        if summary.expired_leases > 0 {
            text.push_str(&format!(
                "{} message(s) of a stopped worker may have gone out: now unknown.\n",
                summary.expired_leases
            ));
        }
        if summary.failed > 0 {
            text.push_str(
                "Failed: `mailroom outbox list --state failed` shows why; `outbox retry ID` queues one again.\n",
            );
        }
        if summary.unknown > 0 || summary.expired_leases > 0 {
            text.push_str(
                "Unknown: check whether they arrived, then `mailroom outbox resolve ID --sent` or `--resend`.\n",
            );
        }
        reporter.plain(&text);
    }
    if ok { EXIT_OK } else { EXIT_FAILED }
}

fn fastrand_u32() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}

fn progress_bar(total: u64, limits: &SendingLimits) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {per_sec} ETA {eta} {msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    let pace = limits.rate_per_minute.map(|r| format!(" · ≤{r}/min")).unwrap_or_default();
    bar.set_message(format!("starting{pace}"));
    bar
}

fn update_bar(bar: &indicatif::ProgressBar, progress: &Progress) {
    let sent = progress.sent.load(Ordering::Relaxed);
    let failed = progress.failed.load(Ordering::Relaxed);
    let unknown = progress.unknown.load(Ordering::Relaxed);
    let retried = progress.retried.load(Ordering::Relaxed);
    let in_flight = progress.in_flight.load(Ordering::Relaxed);
    let done = sent + failed + unknown;
    if done > bar.length().unwrap_or(0) {
        bar.set_length(done);
    }
    bar.set_position(done);
    bar.set_message(format!(
        "sent {sent} · sending {in_flight} · retrying {retried} · failed {failed} · unknown {unknown}"
    ));
}

async fn status(config_path: &Path, reporter: Reporter) -> u8 {
    let started = Instant::now();
    let Opened { store, service, .. } = match open(config_path, &reporter, started).await {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let counts = match store.counts().await {
        Ok(counts) => counts,
        Err(e) => return store_error(&reporter, Some(service), started, &e),
    };
    if reporter.is_json() {
        reporter.object(json!({"ok": true, "counts": counts}));
    } else {
        reporter.plain(&status_table(&counts));
    }
    EXIT_OK
}

/// The counts as a small table for people.
pub fn status_table(counts: &Counts) -> String {
    let mut text = String::from("state     messages\n");
    for state in State::ALL {
        text.push_str(&format!("{:<9} {:>8}\n", state.as_str(), counts.of(state)));
    }
    text.push_str(&format!("{:<9} {:>8}\n", "total", counts.total()));
    text
}

async fn list(config_path: &Path, state: Option<String>, limit: usize, reporter: Reporter) -> u8 {
    let started = Instant::now();
    let state = match state.map(|s| s.parse::<State>()).transpose() {
        Ok(state) => state,
        Err(reason) => {
            reporter.usage(None, started, &format!("--state {reason}"), &[]);
            return EXIT_USAGE;
        }
    };
    let Opened { store, service, .. } = match open(config_path, &reporter, started).await {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let listed = match store.list(state, limit).await {
        Ok(listed) => listed,
        Err(e) => return store_error(&reporter, Some(service), started, &e),
    };
    if reporter.is_json() {
        reporter.object(json!({"ok": true, "messages": listed}));
        return EXIT_OK;
    }
    let mut text =
        format!("{:>6}  {:<8} {:>3}  {:<32} {:<28} {}\n", "id", "state", "try", "to", "event", "error / Message-ID");
    for message in &listed {
        let detail = match &message.error {
            Some(error) if message.state != State::Sent => format!(
                "{}: {}",
                error["kind"].as_str().unwrap_or("error"),
                error["detail"].as_str().or(error["message"].as_str()).unwrap_or("")
            ),
            _ => message.message_id.clone(),
        };
        text.push_str(&format!(
            "{:>6}  {:<8} {:>3}  {:<32} {:<28} {}\n",
            message.id,
            message.state.as_str(),
            message.attempts,
            message.recipients.join(", "),
            message.event.as_deref().unwrap_or("-"),
            detail
        ));
    }
    if listed.is_empty() {
        text.push_str("(no messages)\n");
    }
    reporter.plain(&text);
    EXIT_OK
}

type Change = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>>;

async fn change(
    config_path: &Path,
    id: i64,
    reporter: Reporter,
    apply: impl FnOnce(Store) -> Change,
    now: State,
) -> u8 {
    let started = Instant::now();
    let Opened { store, service, .. } = match open(config_path, &reporter, started).await {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    if let Err(e) = apply(store).await {
        return store_error(&reporter, Some(service), started, &e);
    }
    if reporter.is_json() {
        reporter.object(json!({"ok": true, "id": id, "state": now}));
    } else {
        reporter.plain(&format!("Message {id} is now {now}.\n"));
    }
    EXIT_OK
}

/// `mailroom reminders`: schedules from the outbox's history and enqueues what is due.
pub async fn reminders(args: RemindersArgs) -> u8 {
    let RemindersArgs { config, invoices, today, policy, json } = args;
    let reporter = Reporter::new(json);
    let started = Instant::now();
    let today = match today {
        None => time::OffsetDateTime::now_utc().date(),
        Some(text) => match time::Date::parse(&text, time::macros::format_description!("[year]-[month]-[day]")) {
            Ok(date) => date,
            Err(_) => {
                reporter.usage(None, started, &format!("--today \"{text}\" is not a date: use YYYY-MM-DD"), &[]);
                return EXIT_USAGE;
            }
        },
    };
    let policy = match policy.map(ReminderPolicy::new).transpose() {
        Ok(policy) => policy,
        Err(e) => {
            reporter.usage(None, started, &format!("--policy: {e}"), &[]);
            return EXIT_USAGE;
        }
    };
    let Opened { loaded, store, service } = match open(&config, &reporter, started).await {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let text = match std::fs::read_to_string(&invoices) {
        Ok(text) => text,
        Err(e) => {
            reporter.usage(
                Some(service),
                started,
                &format!("cannot read the invoices {}: {e}", invoices.display()),
                &[],
            );
            return EXIT_USAGE;
        }
    };
    let history = match store.event_history(EventKind::OverdueInvoiceReminder.as_str()).await {
        Ok(history) => history,
        Err(e) => return store_error(&reporter, Some(service), started, &e),
    };
    let renderer = Renderer::new();
    let planned = match mailroom::plan_reminders(
        &text,
        today,
        policy.as_ref(),
        &history,
        &renderer,
        &loaded.config.sender,
    ) {
        Ok(planned) => planned,
        Err(e) => {
            reporter.usage(Some(service), started, &e.to_string(), &["The invoices file lists {\"company\", \"currency\", \"invoices\": [{\"recipient\", \"invoice\", \"paid\"}]}: see fixtures/outbox/invoices.json."]);
            return EXIT_USAGE;
        }
    };
    let messages: Vec<NewMessage> = planned.iter().map(|p| p.message.clone()).collect();
    let enqueued = match store.enqueue(&messages).await {
        Ok(enqueued) => enqueued,
        Err(e) => return store_error(&reporter, Some(service), started, &e),
    };
    let duplicates = enqueued.iter().filter(|e| e.duplicate).count();
    if reporter.is_json() {
        let reminders: Vec<Value> = planned
            .iter()
            .zip(&enqueued)
            .map(|(p, e)| json!({"invoice": p.due.invoice_number, "stage": p.due.stage, "days_overdue": p.due.days_overdue, "id": e.id, "duplicate": e.duplicate, "message_id": p.message.message_id}))
            .collect();
        reporter.object(json!({
            "ok": true,
            "today": today.to_string(),
            "enqueued": enqueued.len() - duplicates,
            "duplicates": duplicates,
            "ids": enqueued.iter().map(|e| e.id).collect::<Vec<_>>(),
            "reminders": reminders,
        }));
    } else {
        let mut out = format!("{} reminder(s) due on {today}:\n", planned.len());
        for (p, e) in planned.iter().zip(&enqueued) {
            let note = if e.duplicate { " (already in the outbox)" } else { "" };
            out.push_str(&format!(
                "  {} stage {} ({} days overdue) → id {}{note}\n",
                p.due.invoice_number, p.due.stage, p.due.days_overdue, e.id
            ));
        }
        out.push_str(&format!("Next: mailroom outbox run --config {} --until-empty\n", config.display()));
        reporter.plain(&out);
    }
    EXIT_OK
}
