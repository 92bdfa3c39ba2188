//! `mailroom serve`: the web console (DESIGN.md §9) on loopback by default; any other address needs an access token.

use std::net::SocketAddr;
use std::path::PathBuf;

use mailroom_core::Secret;

use super::{EXIT_OK, EXIT_USAGE};

/// The environment variable holding the console's access token.
const TOKEN_ENV: &str = "MAILROOM_CONSOLE_TOKEN";

#[derive(Debug, clap::Args)]
pub(super) struct ServeArgs {
    /// The Company Email config file the page edits and Save writes (created on the first Save);
    /// its secrets go to NAME.secrets.env beside it.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Where to listen. Loopback by default; any other address needs MAILROOM_CONSOLE_TOKEN
    /// (an access token every browser must sign in with).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8025")]
    listen: SocketAddr,
    /// Event data files (<kind>.json) the Events page renders each kind from
    /// [default: fixtures/events when that folder exists here].
    #[arg(long, value_name = "DIR")]
    events_dir: Option<PathBuf>,
}

pub(super) async fn run(args: ServeArgs) -> u8 {
    let access_token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()).map(Secret::new);
    if let Err(refused) = mailroom_web::check_listen(args.listen, access_token.is_some()) {
        eprintln!("mailroom: {refused}");
        return EXIT_USAGE;
    }
    if access_token.as_ref().is_some_and(|t| t.expose().len() < 16) {
        eprintln!("mailroom: {TOKEN_ENV} is too short to protect the console: use at least 16 random characters");
        return EXIT_USAGE;
    }
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("mailroom: cannot listen on {}: {e}", args.listen);
            return EXIT_USAGE;
        }
    };
    let address = listener.local_addr().unwrap_or(args.listen);
    let mut options = mailroom_web::ConsoleOptions::new(&args.config);
    options.events_dir = args.events_dir.or_else(|| {
        let repository_fixtures = PathBuf::from("fixtures/events");
        repository_fixtures.is_dir().then_some(repository_fixtures)
    });
    let signed =
        if access_token.is_some() { format!(" (sign in with the token in {TOKEN_ENV})") } else { String::new() };
    options.access_token = access_token;
    println!(
        "mailroom console on http://{address}/{signed}\n  config:  {}\n  secrets: {}\nStop it with Ctrl-C.",
        options.config_path.display(),
        options.secrets_path.display()
    );
    let console = mailroom_web::Console::new(options);
    tokio::select! {
        served = mailroom_web::serve(listener, console) => match served {
            Ok(()) => EXIT_OK,
            Err(e) => {
                eprintln!("mailroom: the console stopped: {e}");
                EXIT_USAGE
            }
        },
        _ = tokio::signal::ctrl_c() => EXIT_OK,
    }
}
