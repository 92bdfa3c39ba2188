//! `cargo xtask bench outbox`: 1 KB messages to the testkit sink at 1 and 10 connections in one run — the raw SMTP driver, the outbox on SQLite, the outbox on PostgreSQL (a private cluster, fsync on) and Postfix's `smtp-source` where installed — then 100,000 event lines through the release `mailroom outbox enqueue` and `run`, with each row's peak RSS.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mailroom_core::{Mailbox, MessageDraft, OutgoingMessage, RetryPolicy, SmtpConfig, TlsMode, Transport};
use mailroom_outbox::{Dispatcher, NewMessage, RunOptions, SendingLimits, Store, bulk_retry};
use mailroom_smtp::SmtpTransport;
use mailroom_testkit::{PostgresCluster, SmtpSink};

/// One measured row (CONTRACT: `--json` prints these fields, one object per line).
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) connections: usize,
    pub(crate) messages: u64,
    pub(crate) elapsed: Duration,
    pub(crate) peak_rss_mb: Option<f64>,
}

impl Row {
    fn per_second(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "connections": self.connections,
            "messages": self.messages,
            "msgs_per_sec": (self.per_second() * 10.0).round() / 10.0,
            "peak_rss_mb": self.peak_rss_mb.map(|mb| (mb * 10.0).round() / 10.0),
            "elapsed_ms": self.elapsed.as_millis() as u64,
        })
    }
}

fn sender() -> Mailbox {
    "Bench <bench@company.com>".parse().expect("static address")
}

/// A 1 KB message (the body of `bench smtp`) with its own Message-ID.
fn one_kb(tag: &str, n: usize) -> Result<OutgoingMessage, String> {
    MessageDraft::new(sender())
        .to("bench@example.com".parse().expect("static address"))
        .subject("mailroom bench: 1 KB")
        .text("The quick brown fox jumps over the lazy dog. ".repeat(18))
        .message_id(format!("<bench-{tag}-{n}@company.com>"))
        .build()
        .map_err(|e| e.to_string())
}

fn driver(target: std::net::SocketAddr, connections: usize) -> Result<Arc<SmtpTransport>, String> {
    let config = SmtpConfig::new(target.ip().to_string(), target.port())
        .with_tls(TlsMode::None)
        .with_timeout(Duration::from_secs(10));
    SmtpTransport::builder(sender(), &config)
        .max_connections(connections)
        .build()
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// Peak RSS since the last reset, in MB: `VmHWM` of `/proc/<pid>/status` (Linux).
pub(crate) fn peak_rss_mb(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Resets this process's peak RSS to its current RSS (Linux ≥ 4.0: `clear_refs` value 5), so
/// each in-process row reports its own peak.
pub(crate) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Waits for a child, sampling its peak RSS every 10 ms (the last sample before it exits;
/// growth in its last 10 ms would be missed).
pub(crate) fn wait_measuring(mut child: Child) -> Result<(std::process::Output, Option<f64>), String> {
    let pid = child.id();
    // Drain both pipes while the child runs: a child that writes more than a pipe holds (64 KiB,
    // e.g. `outbox enqueue --json` over 100,000 lines) would otherwise block on write forever
    // while this loop waits for it to exit.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let mut peak = None;
    let status = loop {
        if let Some(sample) = peak_rss_mb(Some(pid)) {
            peak = Some(sample);
        }
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let stdout = stdout.join().map_err(|_| "reading the child's stdout failed".to_string())?;
    let stderr = stderr.join().map_err(|_| "reading the child's stderr failed".to_string())?;
    Ok((std::process::Output { status, stdout, stderr }, peak))
}

/// Reads a child's pipe to its end on a thread of its own.
fn drain<R: std::io::Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error ends the capture; the exit status still tells success.
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// The raw driver: `connections` tasks share a list of prebuilt messages until all are sent.
async fn raw(target: std::net::SocketAddr, connections: usize, count: usize) -> Result<Row, String> {
    let transport = driver(target, connections)?;
    for n in 0..connections {
        transport.send(&one_kb("raw-warm", n)?).await.map_err(|e| e.to_string())?;
    }
    let messages =
        Arc::new((0..count).map(|n| one_kb(&format!("raw{connections}"), n)).collect::<Result<Vec<_>, _>>()?);
    reset_peak_rss();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (transport, messages, next) = (transport.clone(), messages.clone(), next.clone());
        tasks.spawn(async move {
            while let Some(message) = messages.get(next.fetch_add(1, Ordering::Relaxed)) {
                transport.send(message).await.map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.map_err(|e| e.to_string())??;
    }
    let elapsed = started.elapsed();
    Ok(Row {
        name: "raw_mailroom_smtp".into(),
        connections,
        messages: count as u64,
        elapsed,
        peak_rss_mb: peak_rss_mb(None),
    })
}

/// The outbox: `count` messages enqueued (not timed), then one dispatcher until the outbox is empty.
async fn outbox(
    name: &str,
    store: Store,
    target: std::net::SocketAddr,
    connections: usize,
    count: usize,
) -> Result<Row, String> {
    let tag = format!("{name}{connections}");
    for start in (0..count).step_by(2_000) {
        let chunk = (start..(start + 2_000).min(count))
            .map(|n| one_kb(&tag, n).map(|m| NewMessage::from_outgoing(&m)))
            .collect::<Result<Vec<_>, _>>()?;
        store.enqueue(&chunk).await.map_err(|e| e.to_string())?;
    }
    let limits = SendingLimits {
        preset: "bench",
        concurrency: connections,
        rate_per_minute: None,
        daily_quota: None,
        max_attempts: 8,
        lease: Duration::from_secs(300),
    };
    let dispatcher = Dispatcher::new(store.clone(), driver(target, connections)?, limits);
    let retry = RetryPolicy { initial_delay: Duration::from_millis(50), ..bulk_retry(8) };
    let options = RunOptions { retry, max_wait: Duration::from_secs(5), ..RunOptions::until_empty("bench") };
    reset_peak_rss();
    let started = Instant::now();
    let summary = dispatcher.run(options, std::future::pending(), Arc::default()).await.map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    if summary.sent != count as u64 {
        return Err(format!("{name}: sent {} of {count}: {summary:?}", summary.sent));
    }
    Ok(Row { name: name.into(), connections, messages: count as u64, elapsed, peak_rss_mb: peak_rss_mb(None) })
}

/// Postfix's `smtp-source`, if installed.
pub(crate) fn smtp_source_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("smtp-source"))
        .find(|candidate| candidate.is_file())
}

/// `smtp-source -d -s C -m N -l 1024`: N messages of a 1 KB body over C parallel sessions that
/// each keep their connection open (like a pool).
pub(crate) fn smtp_source(
    program: &Path,
    target: std::net::SocketAddr,
    connections: usize,
    count: usize,
) -> Result<Row, String> {
    let started = Instant::now();
    let child = Command::new(program)
        .args(["-d", "-s", &connections.to_string(), "-m", &count.to_string(), "-l", "1024"])
        .args(["-f", "bench@company.com", "-t", "bench@example.com", &target.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    let (output, peak) = wait_measuring(child)?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        return Err(format!("smtp-source failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok(Row { name: "smtp-source".into(), connections, messages: count as u64, elapsed, peak_rss_mb: peak })
}

/// The release `mailroom` binary (built now if needed; cargo reports its path).
fn release_mailroom() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--quiet", "--release", "--package", "mailroom-cli", "--bin", "mailroom"])
        .args(["--message-format=json-render-diagnostics"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err("building the release mailroom binary failed".into());
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "mailroom")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo reported no mailroom executable".into())
}

/// `lines` event lines (`user_notification`, numbered) as a JSONL batch file.
fn write_batch(path: &Path, lines: usize) -> Result<(), String> {
    use std::io::Write;
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/events/user_notification.json");
    let text = std::fs::read_to_string(&fixture).map_err(|e| format!("{}: {e}", fixture.display()))?;
    let mut data: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for n in 0..lines {
        data["event_id"] = serde_json::json!(format!("bench-{n}"));
        data["recipient"]["email"] = serde_json::json!(format!("customer{n}@example.com"));
        let line = serde_json::json!({"event": "user_notification", "data": data});
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

/// 100,000 lines through the release binary: `outbox enqueue --batch` then `outbox run
/// --until-empty` at 10 connections, each process's time and peak RSS.
fn cli_rows(scratch: &Path, target: std::net::SocketAddr, lines: usize) -> Result<Vec<Row>, String> {
    let bin = release_mailroom()?;
    let config = scratch.join("company.toml");
    std::fs::write(
        &config,
        format!(
            "service = \"web_mail\"\nemail_address = \"bench@company.com\"\n[web_mail]\nserver = \"127.0.0.1\"\nport = {}\nenable_ssl = false\ntimeout_secs = 10\n[outbox]\nurl = \"sqlite:cli-outbox.db\"\nconcurrency = 10\n",
            target.port()
        ),
    )
    .map_err(|e| e.to_string())?;
    let batch = scratch.join("batch.jsonl");
    write_batch(&batch, lines)?;
    let config = config.to_string_lossy().into_owned();
    let mut rows = Vec::new();
    let steps: [(&str, usize, Vec<&str>); 2] = [
        (
            "sqlite_cli_enqueue_lines",
            0,
            vec!["outbox", "enqueue", "--config", &config, "--batch", batch.to_str().unwrap_or(""), "--json"],
        ),
        ("sqlite_cli_run", 10, vec!["outbox", "run", "--config", &config, "--until-empty", "--json"]),
    ];
    for (name, connections, args) in steps {
        let started = Instant::now();
        let child = Command::new(&bin)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let (output, peak) = wait_measuring(child)?;
        let elapsed = started.elapsed();
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        let done = summary["enqueued"].as_u64().or(summary["sent"].as_u64()).unwrap_or(0);
        if !output.status.success() || done != lines as u64 {
            return Err(format!(
                "mailroom {}: {} {}",
                args[1],
                String::from_utf8_lossy(&output.stdout).trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        rows.push(Row { name: name.into(), connections, messages: done, elapsed, peak_rss_mb: peak });
    }
    Ok(rows)
}

/// How long one small write + fsync takes on the scratch disk (median of 100), in microseconds:
/// what bounds an outbox that commits per claim batch and per outcome batch.
fn fsync_micros(scratch: &Path) -> Result<f64, String> {
    use std::io::Write;
    let mut file = std::fs::File::create(scratch.join("fsync-probe")).map_err(|e| e.to_string())?;
    let mut samples = Vec::with_capacity(100);
    for _ in 0..100 {
        let started = Instant::now();
        file.write_all(&[0u8; 4096]).map_err(|e| e.to_string())?;
        file.sync_data().map_err(|e| e.to_string())?;
        samples.push(started.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples[samples.len() / 2])
}

/// Runs the outbox bench: `messages` per row, `lines` for the binary's rows (0 skips them).
pub fn run(json: bool, messages: usize, lines: usize) -> Result<(), String> {
    let scratch = std::env::temp_dir().join(format!("mailroom-bench-outbox-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let result = measure(&scratch, messages, lines);
    let _ = std::fs::remove_dir_all(&scratch);
    let (rows, fsync) = result?;
    print_rows(&rows, fsync, json);
    Ok(())
}

fn measure(scratch: &Path, messages: usize, lines: usize) -> Result<(Vec<Row>, f64), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    let cluster = PostgresCluster::builder().fsync(true).start().map_err(|e| e.to_string())?;
    let anchor = smtp_source_path();
    let fsync = fsync_micros(scratch)?;
    let mut rows = runtime.block_on(async {
        let sink = SmtpSink::builder().start().await.map_err(|e| e.to_string())?;
        let mut rows = Vec::new();
        for connections in [1, 10] {
            rows.push(raw(sink.addr(), connections, messages).await?);
            let sqlite = Store::open(&format!("sqlite:{}", scratch.join(format!("outbox-{connections}.db")).display()))
                .await
                .map_err(|e| e.to_string())?;
            rows.push(outbox("outbox_sqlite", sqlite.clone(), sink.addr(), connections, messages).await?);
            sqlite.close().await;
            let postgres = Store::open(&cluster.url()).await.map_err(|e| e.to_string())?;
            rows.push(outbox("outbox_postgres", postgres.clone(), sink.addr(), connections, messages).await?);
            postgres.close().await;
            if let Some(program) = &anchor {
                rows.push(smtp_source(program, sink.addr(), connections, messages)?);
            }
        }
        if lines > 0 {
            rows.extend(cli_rows(scratch, sink.addr(), lines)?);
        }
        Ok::<_, String>(rows)
    })?;
    if anchor.is_none() {
        eprintln!("smtp-source not installed (Debian package postfix): no outside anchor rows");
    }
    rows.retain(|row| row.messages > 0);
    Ok((rows, fsync))
}

fn print_rows(rows: &[Row], fsync_us: f64, json: bool) {
    if json {
        for row in rows {
            println!("{}", row.json());
        }
        // Not a row: on stderr, so stdout stays one row object a line.
        eprintln!("One 4 KB write + fsync on the scratch disk: {fsync_us:.0} µs (median of 100).");
        return;
    }
    println!(
        "{:<26} {:>11} {:>9} {:>10} {:>8} {:>13}",
        "name", "connections", "messages", "msgs/s", "vs raw", "peak RSS MB"
    );
    for row in rows {
        let raw = rows.iter().find(|r| r.name.starts_with("raw") && r.connections == row.connections);
        let ratio = match raw {
            Some(raw) if row.connections > 0 => format!("{:.0}%", 100.0 * row.per_second() / raw.per_second()),
            _ => String::new(),
        };
        let rss = row.peak_rss_mb.map(|mb| format!("{mb:.1}")).unwrap_or_else(|| "-".into());
        println!(
            "{:<26} {:>11} {:>9} {:>10.0} {:>8} {:>13}",
            row.name,
            row.connections,
            row.messages,
            row.per_second(),
            ratio,
            rss
        );
    }
    println!("\nOne 4 KB write + fsync on the scratch disk: {fsync_us:.0} µs (median of 100).");
    println!(
        "Outbox rows: messages enqueued first (not timed), then one dispatcher until empty; PostgreSQL with fsync on."
    );
}
