//! Helpers for mailroom's end-to-end tests: locate (and build once) the `mailroom` binary, run it, write configs; and the scenario catalogue runner shared with `cargo xtask scenarios`.

pub mod scenarios;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `mailroom` binary of this workspace, built on first use.
///
/// Cargo does not build a dependency's binaries for another package's tests, so this runs
/// `cargo build -p mailroom-cli --bin mailroom` once (a no-op when it is up to date).
pub fn mailroom_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--package", "mailroom-cli", "--bin", "mailroom"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the mailroom binary failed");
        let deps = std::env::current_exe().expect("test binary path");
        let profile_dir = deps.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
        let bin = profile_dir.join(format!("mailroom{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.exists(), "{} was not built", bin.display());
        bin
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
