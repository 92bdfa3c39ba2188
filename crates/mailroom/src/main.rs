//! The `mailroom` command-line tool; all logic lives in `mailroom::cli`.

fn main() -> std::process::ExitCode {
    mailroom::cli::main()
}
