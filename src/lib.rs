//! Helpers for mailroom's end-to-end tests: locate (and build once) the `mailroom` binary, run it, write configs; and the scenario catalogue runner shared with `cargo xtask scenarios`.

pub mod scenarios;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `mailroom` binary under test: `MAILROOM_BIN` when set (an installed or release
/// binary), else this workspace's, built on first use.
///
/// Cargo gives `CARGO_BIN_EXE_<name>` only to the tests of the package that owns the binary,
/// and the binary lives in `mailroom-cli` (so the facade can be shared without a crate
/// cycle). So the tests ask cargo itself, the way escargot does: `cargo build -p mailroom-cli
/// --bin mailroom --message-format=json` (a no-op when up to date) reports the executable's
/// path in its `compiler-artifact` message, whatever the target directory, profile or
/// platform. Nothing is guessed from the test's own path.
pub fn mailroom_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("MAILROOM_BIN") {
            return PathBuf::from(bin);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = Command::new(cargo)
            .args(["build", "--quiet", "--package", "mailroom-cli", "--bin", "mailroom"])
            .args(["--message-format=json-render-diagnostics"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("cargo runs");
        assert!(output.status.success(), "building the mailroom binary failed");
        built_executable(&String::from_utf8_lossy(&output.stdout), "mailroom")
            .unwrap_or_else(|| panic!("cargo reported no `mailroom` executable"))
    })
}

/// The executable of binary target `name` in cargo's JSON messages.
fn built_executable(messages: &str, name: &str) -> Option<PathBuf> {
    messages.lines().filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok()).find_map(|message| {
        let is_artifact = message["reason"] == "compiler-artifact";
        let is_bin = message["target"]["kind"].as_array().is_some_and(|kinds| kinds.iter().any(|k| k == "bin"));
        let named = message["target"]["name"] == name;
        (is_artifact && is_bin && named).then(|| message["executable"].as_str().map(PathBuf::from)).flatten()
    })
}

/// What one run of the CLI printed and how it exited.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Parses stdout as exactly one JSON object.
    pub fn json(&self) -> serde_json::Value {
        let trimmed = self.stdout.trim();
        assert_eq!(
            trimmed.lines().count(),
            1,
            "expected one JSON line, got:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        serde_json::from_str(trimmed).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `mailroom` with `args` and extra environment variables; stdin is closed.
pub fn run_mailroom(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(mailroom_bin());
    command.args(args).stdin(std::process::Stdio::null()).env_remove("RUST_LOG");
    for (key, value) in env {
        command.env(key, value);
    }
    let Output { status, stdout, stderr } = command.output().expect("mailroom runs");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Writes `text` as `name` in `dir` and returns the path as a string.
pub fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path.to_string_lossy().into_owned()
}

/// Writes `dir/company.toml`: Web Mail to a plain loopback SMTP server on `port` (no TLS, no
/// AUTH), with `outbox` as the body of its `[outbox]` section. Returns the path.
pub fn outbox_config(dir: &Path, port: u16, outbox: &str) -> String {
    write_file(
        dir,
        "company.toml",
        &format!(
            "service = \"web_mail\"\nemail_address = \"erp@northwind.example\"\ndisplay_name = \"Northwind ERP\"\n\
             [web_mail]\nserver = \"127.0.0.1\"\nport = {port}\nenable_ssl = false\ntimeout_secs = 5\n\
             [outbox]\n{outbox}\n"
        ),
    )
}

/// The `user_notification` fixture as event `notify-{n}`, addressed to `email`.
pub fn user_notification(n: usize, email: &str) -> serde_json::Value {
    let mut data: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/events/user_notification.json")).expect("fixture is JSON");
    data["event_id"] = serde_json::json!(format!("notify-{n}"));
    data["recipient"]["email"] = serde_json::json!(email);
    data
}
