//! `cargo xtask`: mailroom's developer tasks (rust-analyzer's xtask pattern; the alias lives in .cargo/config.toml).

mod bench_events;
mod bench_outbox;
mod bench_smtp;
mod demo;
mod fake_smtp;

use std::path::Path;
use std::process::{Command, ExitCode};

const HELP: &str = "\
cargo xtask <task>

Tasks:
  demo               the main job on an embedded fake SMTP server: validate, render and send every ERP event, then an outbox batch with one throttled recipient; [--serve [ADDR:PORT]] then keeps the server and the web console running
  scenarios          run the scenario catalogues (fixtures/scenarios/smtp.toml, http.toml) and print the table
  fake-smtp          run a fake SMTP server in the foreground: [--persona gmail|gmail-465|office365|plain] [--port N]
  bench              benchmarks (release build): `bench smtp [--sink HOST:PORT] [--json]`, `bench events [--json]`,
                     `bench outbox [--json] [--messages N] [--lines N]` (raw driver vs outbox on SQLite and PostgreSQL
                     vs Postfix's smtp-source; then N lines (default 100000) through `mailroom outbox enqueue|run`)
  ci                 what CI runs: bash .ci/run (fmt check, clippy -D warnings, tests, cargo package, demo)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => match serve_address(&args) {
            Ok(serve) => demo::run(serve),
            Err(e) => Err(e),
        },
        Some("scenarios") => scenarios(flag(&args, "--json")),
        Some("fake-smtp") => {
            let port = option(&args, "--port").map(|p| p.parse::<u16>().map_err(|e| format!("--port {p}: {e}")));
            match port.transpose() {
                Ok(port) => fake_smtp::run(option(&args, "--persona").unwrap_or("plain"), port),
                Err(e) => Err(e),
            }
        }
        Some("bench") if cfg!(debug_assertions) => {
            // Numbers from a debug build would mislead: re-run this task from a release build.
            let mut release = vec!["run", "--quiet", "--release", "--package", "xtask", "--"];
            release.extend(args.iter().map(String::as_str));
            cargo(&release)
        }
        Some("bench") => match args.get(1).map(String::as_str) {
            Some("smtp") => bench_smtp::run(option(&args, "--sink").map(str::to_owned), flag(&args, "--json")),
            Some("events") => bench_events::run(flag(&args, "--json")),
            Some("outbox") => match (count(&args, "--messages", 5_000), count(&args, "--lines", 100_000)) {
                (Ok(messages), Ok(lines)) => bench_outbox::run(flag(&args, "--json"), messages, lines),
                (Err(e), _) | (_, Err(e)) => Err(e),
            },
            _ => Err(format!("usage: cargo xtask bench smtp|events|outbox [--json]\n\n{HELP}")),
        },
        Some("ci") => ci(),
        Some("-h" | "--help" | "help") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task `{other}`\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `--serve [ADDR:PORT]`: where the demo's console listens, if it should.
fn serve_address(args: &[String]) -> Result<Option<std::net::SocketAddr>, String> {
    let Some(at) = args.iter().position(|a| a == "--serve") else {
        return Ok(None);
    };
    match args.get(at + 1).filter(|a| !a.starts_with("--")) {
        Some(address) => address.parse().map(Some).map_err(|e| format!("--serve {address}: {e}")),
        None => Ok(Some(std::net::SocketAddr::from(([127, 0, 0, 1], 8025)))),
    }
}

fn flag(args: &[String], name: &str) -> bool {
    args.iter().any(|a| a == name)
}

fn option<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

fn count(args: &[String], name: &str, default: usize) -> Result<usize, String> {
    option(args, name).map_or(Ok(default), |n| n.parse().map_err(|e| format!("{name} {n}: {e}")))
}

fn cargo(args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo).args(args).status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`cargo {}` failed", args.join(" "))) }
}

/// CI has one definition, `.ci/run`; this runs it (its install steps skip what is present).
fn ci() -> Result<(), String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/run");
    let status = Command::new("bash").arg(&script).status().map_err(|e| format!("cannot run bash: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{} failed", script.display())) }
}

fn scenarios(json: bool) -> Result<(), String> {
    use mailroom_e2e::scenarios::{load_catalogue, run_all, table};
    let scenarios = load_catalogue()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    let outcomes = runtime.block_on(run_all(&scenarios));
    if json {
        for outcome in &outcomes {
            let line = serde_json::json!({
                "scenario": outcome.scenario.name,
                "documented_error": outcome.scenario.documented_error,
                "expected": {"kind": outcome.scenario.kind, "field": outcome.scenario.field},
                "observed": {"kind": outcome.kind, "field": outcome.field, "documented_error": outcome.documented_error},
                "elapsed_ms": outcome.elapsed.as_millis() as u64,
                "pass": outcome.passed(),
            });
            println!("{line}");
        }
    } else {
        print!("{}", table(&outcomes));
    }
    let failed = outcomes.iter().filter(|o| !o.passed()).count();
    if failed == 0 { Ok(()) } else { Err(format!("{failed} scenario(s) failed")) }
}
