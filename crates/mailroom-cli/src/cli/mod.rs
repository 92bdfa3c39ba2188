//! The `mailroom` command line (CONTRACT: DESIGN.md §5): argument parsing, command dispatch and exit codes. The only place that prints.

mod events;
mod outbox;
mod report;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use mailroom_core::config::LoadedConfig;
use mailroom_core::{Mailbox, SendError, ServiceConfig, ServiceKind};

use mailroom::{self as facade, LoadError};
use report::{Failure, Reporter};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the mail could not be sent, or validation failed (a classified error).
pub const EXIT_FAILED: u8 = 1;
/// Exit code: usage error or unreadable config file.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "mailroom",
    version,
    about = "Send ERP system email from one Company Email sender through Web Mail (SMTP), Exchange (EWS) or Email Services (Gmail API, Microsoft Graph), and say exactly which setting to fix when it fails.",
    after_help = "Exit codes: 0 success; 1 the mail could not be sent or validation failed (classified error); 2 usage error, unreadable config or bad data file.\nWith --json, exactly one JSON object is printed on stdout.\nLogging: RUST_LOG=debug (or trace) writes diagnostics to stderr; secrets are never logged."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send a real test mail through the configured service (to the sender itself unless --to).
    Validate {
        /// The Company Email config file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Send the test mail to this address instead of the sender.
        #[arg(long, value_name = "ADDR")]
        to: Option<String>,
        /// After a successful validation, save the config to this file (never after a failure).
        #[arg(long, value_name = "FILE")]
        save: Option<PathBuf>,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Probe the configured service step by step without sending mail, and suggest the fix.
    Diagnose {
        /// The Company Email config file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Render an ERP event and send it through the configured service.
    Send {
        /// The Company Email config file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The event kind (see `mailroom events`).
        #[arg(long, value_name = "KIND")]
        event: String,
        /// The event's data (JSON).
        #[arg(long, value_name = "FILE.json")]
        data: PathBuf,
        /// Send to this address instead of the recipient in the data.
        #[arg(long, value_name = "ADDR")]
        to: Option<String>,
        #[command(flatten)]
        render: RenderArgs,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Render an ERP event to .eml, .html and .txt files without sending it.
    Preview {
        /// The event kind (see `mailroom events`).
        #[arg(long, value_name = "KIND")]
        event: String,
        /// The event's data (JSON).
        #[arg(long, value_name = "FILE.json")]
        data: PathBuf,
        /// The folder to write the files to (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[command(flatten)]
        render: RenderArgs,
        /// Render as this config's Company Email sender (default: the company's support address in the data).
        /// Only its email_address and display_name are read: no secret is needed.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Connect an account (Google, or Microsoft 365 with auth = "delegated"): sign in, allow sending, store the refresh token in token_file.
    Connect {
        #[command(subcommand)]
        provider: ConnectProvider,
    },
    /// Serve the web console: the Company Email page (Validate, Save, Diagnose, Connect), the Outbox and Events pages.
    Serve(serve::ServeArgs),
    /// List the ERP event kinds and their data fields.
    Events {
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// The durable outbox: enqueue event mail, send it within the provider's limits, inspect and decide.
    Outbox {
        #[command(subcommand)]
        command: outbox::OutboxCommand,
    },
    /// Enqueue the overdue-invoice reminders due today (history from the outbox: each reminder goes out once).
    Reminders(outbox::RemindersArgs),
}

/// Rendering options shared by `send` and `preview`, so a preview shows exactly what is sent.
#[derive(Debug, clap::Args)]
struct RenderArgs {
    /// A folder of templates overriding the defaults (same file names).
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
    /// Refuse messages larger than this many bytes (default 10485760, 10 MiB; Gmail and
    /// Office 365 accept 25-35 MB).
    #[arg(long, value_name = "BYTES")]
    max_message_bytes: Option<usize>,
}

impl From<RenderArgs> for events::RenderOptions {
    fn from(args: RenderArgs) -> events::RenderOptions {
        events::RenderOptions { templates: args.templates, max_message_bytes: args.max_message_bytes }
    }
}

#[derive(Debug, Subcommand)]
enum ConnectProvider {
    /// Sign in with Google and allow mailroom to send as the Company Email.
    Google {
        /// The Company Email config file (TOML) with an [email_services] section and a token_file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// How long to wait for the browser to come back from Google's consent page.
        #[arg(long, value_name = "SECONDS", default_value_t = 300)]
        wait_secs: u64,
    },
    /// Sign in to Microsoft 365 as the Company Email (auth = "delegated"): [email_services] provider = "microsoft" (Graph Mail.Send and Mail.ReadWrite) or [web_mail.oauth] provider = "microsoft" (SMTP.Send).
    Microsoft {
        /// The Company Email config file (TOML) with auth = "delegated" and a token_file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Sign in on another device instead (a server without a browser): print a code to enter at Microsoft's device login page.
        #[arg(long)]
        device_code: bool,
        /// How long to wait for the sign-in (default: 300 s for the browser, the code's lifetime, 15 minutes, with --device-code).
        #[arg(long, value_name = "SECONDS")]
        wait_secs: Option<u64>,
    },
}

/// Runs the CLI with the process arguments and returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // With --json the contract is one JSON object on stdout, usage errors included.
            let wants_json = std::env::args().any(|arg| arg == "--json");
            let is_usage_error =
                !matches!(error.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion);
            if wants_json && is_usage_error {
                let rendered = error.to_string();
                let summary = rendered.split("\n\nUsage:").next().unwrap_or(&rendered);
                let message = summary.trim_start_matches("error: ").split_whitespace().collect::<Vec<_>>().join(" ");
                Reporter::new(true).usage(
                    None,
                    Instant::now(),
                    &message,
                    &["Run `mailroom --help` for the commands and options."],
                );
                return ExitCode::from(EXIT_USAGE);
            }
            error.exit()
        }
    };
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mailroom: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    ExitCode::from(runtime.block_on(run(cli.command)))
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(true).try_init();
}

async fn run(command: Command) -> u8 {
    match command {
        Command::Validate { config, to, save, json } => validate(config, to, save, Reporter::new(json)).await,
        Command::Diagnose { config, json } => diagnose(config, Reporter::new(json)).await,
        Command::Send { config, event, data, to, render, json } => {
            send(config, event, data, to, render.into(), Reporter::new(json)).await
        }
        Command::Preview { event, data, out, render, config, json } => {
            let reporter = Reporter::new(json);
            let sender = match config {
                Some(path) => match facade::load_sender_file(&path) {
                    Ok(sender) => Some(sender),
                    Err(error) => {
                        report_load_error(error, &reporter, Instant::now());
                        return reporter.exit_code();
                    }
                },
                None => None,
            };
            events::preview(&reporter, &event, &data, &out, &render.into(), sender)
        }
        Command::Events { json } => events::list(&Reporter::new(json)),
        Command::Serve(args) => serve::run(args).await,
        Command::Outbox { command } => outbox::run(command).await,
        Command::Reminders(args) => outbox::reminders(args).await,
        Command::Connect { provider: ConnectProvider::Google { config, wait_secs } } => {
            connect_google(config, Duration::from_secs(wait_secs), Reporter::new(false)).await
        }
        Command::Connect { provider: ConnectProvider::Microsoft { config, device_code, wait_secs } } => {
            connect_microsoft(config, device_code, wait_secs.map(Duration::from_secs), Reporter::new(false)).await
        }
    }
}

/// `mailroom connect microsoft`: the browser (authorization code + PKCE on a loopback
/// redirect) or device code sign-in, the account check, then the refresh token into `token_file`.
async fn connect_microsoft(config_path: PathBuf, device_code: bool, wait: Option<Duration>, reporter: Reporter) -> u8 {
    let started = Instant::now();
    let Some(loaded) = load(&config_path, &reporter, started) else {
        return reporter.exit_code();
    };
    let service = loaded.config.service_kind();
    let sign_in = match mailroom_graph::MicrosoftSignIn::from_config(&loaded.config) {
        Ok(sign_in) => sign_in,
        Err(error) => {
            let hints = error.remediation();
            let hints: Vec<&str> = hints.iter().map(String::as_str).collect();
            reporter.usage_at(Some(service), started, error.field(), error.detail(), &hints);
            return EXIT_USAGE;
        }
    };
    let failed = |error: mailroom_graph::ConnectError| {
        let error = error.into_send_error(&sign_in);
        reporter.failure(Failure { service: Some(service), started, error: &error, headline: "Connecting failed" });
        EXIT_FAILED
    };
    let account = sign_in.account().to_owned();
    let connected = if device_code {
        let device = match sign_in.device_code().await {
            Ok(device) => device,
            Err(error) => return failed(error),
        };
        let wait = wait.unwrap_or(device.expires_in()).min(device.expires_in());
        reporter.plain(&format!(
            "On any device, open {} and enter the code {} , then sign in as {account} and accept.\n\nWaiting up to {} s for the sign-in ...\n",
            device.verification_uri(),
            device.user_code(),
            wait.as_secs()
        ));
        device.finish(wait).await
    } else {
        let flow = match sign_in.browser().await {
            Ok(flow) => flow,
            Err(error) => return failed(error),
        };
        let wait = wait.unwrap_or(Duration::from_secs(300));
        reporter.plain(&format!(
            "Open this address in a browser on this machine, sign in as {account} and accept:\n\n  {}\n\nWaiting up to {} s for Microsoft to send the browser back to {} ...\n(No browser here? Run `mailroom connect microsoft --device-code --config {}` instead.)\n",
            flow.authorize_url(),
            wait.as_secs(),
            flow.redirect_uri(),
            config_path.display()
        ));
        flow.finish(wait).await
    };
    let connected = match connected {
        Ok(connected) => connected,
        Err(error) => return failed(error),
    };
    if let Err(e) = sign_in.save(&connected) {
        reporter.usage(
            Some(service),
            started,
            &format!(
                "Microsoft granted access, but the token could not be written to {}: {e}",
                sign_in.token_file().display()
            ),
            &["Check that the folder exists and is writable, then run connect microsoft again."],
        );
        return EXIT_USAGE;
    }
    let private = if cfg!(unix) { " (readable only by you)" } else { "" };
    reporter.plain(&format!(
        "Connected as {}. The refresh token is in {}{private}.\nNext: mailroom validate --config {} sends a test mail.\n",
        connected.account,
        sign_in.token_file().display(),
        config_path.display()
    ));
    EXIT_OK
}

/// `mailroom connect google`: the consent flow, then the refresh token into `token_file`.
async fn connect_google(config_path: PathBuf, wait: Duration, reporter: Reporter) -> u8 {
    let started = Instant::now();
    let Some(loaded) = load(&config_path, &reporter, started) else {
        return reporter.exit_code();
    };
    let service = loaded.config.service_kind();
    let ServiceConfig::EmailServices(gmail) = &loaded.config.service else {
        reporter.usage(
            Some(service),
            started,
            &format!(
                "connect google needs service = \"email_services\"; this config uses service = \"{}\"",
                service.as_str()
            ),
            &[],
        );
        return EXIT_USAGE;
    };
    let Some(token_file) = &gmail.token_file else {
        reporter.usage_at(
            Some(service),
            started,
            Some("email_services.token_file"),
            "connect google stores the refresh token in the file named by token_file, and this config has none",
            &["Add token_file = \"google-token.json\" to [email_services] and remove refresh_token / refresh_token_env."],
        );
        return EXIT_USAGE;
    };
    let failed = |error: SendError| {
        reporter.failure(Failure { service: Some(service), started, error: &error, headline: "Connecting failed" });
        EXIT_FAILED
    };
    let sender = loaded.config.sender.email.to_string();
    let flow = match mailroom_gmail::ConsentFlow::start(gmail, Some(&sender)).await {
        Ok(flow) => flow,
        Err(error) => return failed(error.into_send_error()),
    };
    reporter.plain(&format!(
        "Open this address in a browser, sign in as {sender} and allow mailroom to send mail as that account:\n\n  {}\n\nWaiting up to {} s for Google to send the browser back to {} ...\n",
        flow.authorize_url(),
        wait.as_secs(),
        flow.redirect_uri()
    ));
    let connected = match flow.finish(wait).await {
        Ok(connected) => connected,
        Err(error) => return failed(error.into_send_error()),
    };
    let saved = mailroom_gmail::save_refresh_token(
        token_file,
        &gmail.client_id,
        &connected.refresh_token,
        connected.scope.as_deref(),
    );
    if let Err(e) = saved {
        reporter.usage_at(
            Some(service),
            started,
            Some("email_services.token_file"),
            &format!("Google granted access, but the token could not be written to {}: {e}", token_file.display()),
            &["Check that the folder exists and is writable, then run connect google again."],
        );
        return EXIT_USAGE;
    }
    let private = if cfg!(unix) { " (readable only by you)" } else { "" };
    reporter.plain(&format!(
        "Connected. The refresh token is in {}{private}.\nNext: mailroom validate --config {} sends a test mail through the Gmail API.\n",
        token_file.display(),
        config_path.display()
    ));
    EXIT_OK
}

/// Loads the config, printing its problems; `None` means the reporter already reported.
fn load(path: &std::path::Path, reporter: &Reporter, started: Instant) -> Option<LoadedConfig> {
    load_with_text(path, reporter, started).map(|(loaded, _)| loaded)
}

/// [`load`], also returning the text that was read and checked.
fn load_with_text(path: &std::path::Path, reporter: &Reporter, started: Instant) -> Option<(LoadedConfig, String)> {
    match facade::load_config_file_with_text(path) {
        Ok((loaded, text)) => {
            reporter.warnings(&loaded.warnings);
            Some((loaded, text))
        }
        Err(error) => {
            report_load_error(error, reporter, started);
            None
        }
    }
}

fn report_load_error(error: LoadError, reporter: &Reporter, started: Instant) {
    match error {
        LoadError::Invalid { errors, warnings } => reporter.config_errors(started, &errors, &warnings),
        other @ (LoadError::Unreadable { .. } | LoadError::Syntax(_)) => reporter.usage(
            None,
            started,
            &other.to_string(),
            &["Check the --config path and that the file is TOML as in fixtures/config/*.toml."],
        ),
    }
}

fn parse_recipient(
    to: Option<String>,
    reporter: &Reporter,
    service: ServiceKind,
    started: Instant,
) -> Result<Option<Mailbox>, u8> {
    match to.map(|to| to.parse::<Mailbox>().map_err(|_| to)).transpose() {
        Ok(to) => Ok(to),
        Err(to) => {
            reporter.usage(
                Some(service),
                started,
                &format!("--to \"{to}\" is not an email address"),
                &["Give an address like ada@example.com."],
            );
            Err(EXIT_USAGE)
        }
    }
}

fn transport(
    config: &mailroom_core::CompanyEmail,
    reporter: &Reporter,
    service: ServiceKind,
    started: Instant,
) -> Result<std::sync::Arc<dyn mailroom_core::Transport>, u8> {
    match facade::transport_for(config) {
        Ok(transport) => Ok(transport),
        Err(error) => {
            reporter.failure(Failure {
                service: Some(service),
                started,
                error: &error,
                headline: "The config cannot be used",
            });
            Err(EXIT_FAILED)
        }
    }
}

/// What `validate` and `send` both start from: a loaded config, its text, the `--to`
/// recipient and the transport.
struct Ready {
    loaded: LoadedConfig,
    text: String,
    service: ServiceKind,
    to: Option<Mailbox>,
    transport: std::sync::Arc<dyn mailroom_core::Transport>,
}

/// Loads the config, reads `--to` and makes the transport; `Err` carries the exit code
/// after the reporter has reported.
fn ready_to_send(
    config_path: &std::path::Path,
    to: Option<String>,
    reporter: &Reporter,
    started: Instant,
) -> Result<Ready, u8> {
    let Some((loaded, text)) = load_with_text(config_path, reporter, started) else {
        return Err(reporter.exit_code());
    };
    let service = loaded.config.service_kind();
    let to = parse_recipient(to, reporter, service, started)?;
    let transport = transport(&loaded.config, reporter, service, started)?;
    Ok(Ready { loaded, text, service, to, transport })
}

async fn validate(config_path: PathBuf, to: Option<String>, save: Option<PathBuf>, reporter: Reporter) -> u8 {
    let started = Instant::now();
    let Ready { loaded, text, service, to, transport } = match ready_to_send(&config_path, to, &reporter, started) {
        Ok(ready) => ready,
        Err(code) => return code,
    };
    match facade::validate(transport.as_ref(), &loaded.config, &text, to).await {
        Ok(validated) => {
            if let Some(save) = &save
                && let Err(e) = validated.save(save)
            {
                reporter.usage(
                    Some(service),
                    started,
                    &format!("the test mail was sent, but saving to {} failed: {e}", save.display()),
                    &[],
                );
                return EXIT_USAGE;
            }
            reporter.sent(service, started, &validated.receipt().message_id, save.as_deref());
            EXIT_OK
        }
        Err(error) => {
            reporter.failure(Failure { service: Some(service), started, error: &error, headline: "Validation failed" });
            EXIT_FAILED
        }
    }
}

async fn send(
    config_path: PathBuf,
    event: String,
    data: PathBuf,
    to: Option<String>,
    options: events::RenderOptions,
    reporter: Reporter,
) -> u8 {
    let started = Instant::now();
    let Ready { loaded, transport, to, .. } = match ready_to_send(&config_path, to, &reporter, started) {
        Ok(ready) => ready,
        Err(code) => return code,
    };
    // Event mail is sent in earnest: ride out throttling and brief outages (never after a
    // possible delivery). `validate` does not retry: it must show the first answer.
    let transport = mailroom::RetryLayer::new(transport, mailroom_core::RetryPolicy::default());
    let request = events::SendRequest { event, data, to, options };
    let code = events::send(&reporter, &loaded.config, &transport, started, request).await;
    // QUIT instead of a dropped connection: servers log a vanished client as an error.
    mailroom_core::Transport::close(&transport).await;
    code
}

async fn diagnose(config_path: PathBuf, reporter: Reporter) -> u8 {
    let started = Instant::now();
    let Some(loaded) = load(&config_path, &reporter, started) else {
        return reporter.exit_code();
    };
    let service = loaded.config.service_kind();
    let transport = match transport(&loaded.config, &reporter, service, started) {
        Ok(transport) => transport,
        Err(code) => return code,
    };
    let probe = transport.probe().await;
    reporter.probe(service, started, &probe);
    if probe.is_ok() { EXIT_OK } else { EXIT_FAILED }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
