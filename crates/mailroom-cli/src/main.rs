//! The `mailroom` command-line tool: clap commands over the `mailroom` facade; the CLI is the only part of the workspace that prints.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
