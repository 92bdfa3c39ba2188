//! `mailroom validate` against an SMTP server not written here: Python's standard-library `smtpd` on loopback (skipped, with a message, where it is missing).

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mailroom_e2e::{run_mailroom, write_file};

struct PythonSmtpd(Child);

impl Drop for PythonSmtpd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_python_smtpd() -> Option<(PythonSmtpd, u16)> {
    let has_smtpd = Command::new("python3")
        .args(["-W", "ignore", "-c", "import smtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_smtpd {
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let child = Command::new("python3")
        .args(["-W", "ignore", "-m", "smtpd", "-n", "-c", "DebuggingServer", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = PythonSmtpd(child);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((server, port));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn validate_against_python_smtpd() {
    let Some((_server, port)) = start_python_smtpd() else {
        println!("skipped: python3 with the smtpd module (Python ≤ 3.11) is not available");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let plain = write_file(
        dir.path(),
        "plain.toml",
        &format!(
            "service = \"web_mail\"\nemail_address = \"erp@company.com\"\n[web_mail]\nserver = \"127.0.0.1\"\nport = {port}\nenable_ssl = false\ntimeout_secs = 5\n"
        ),
    );
    let run = run_mailroom(&["validate", "--config", &plain, "--json"], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["ok"], true);

    let ssl_on = write_file(
        dir.path(),
        "ssl.toml",
        &format!(
            "service = \"web_mail\"\nemail_address = \"erp@company.com\"\n[web_mail]\nserver = \"127.0.0.1\"\nport = {port}\nenable_ssl = true\ntimeout_secs = 5\n"
        ),
    );
    let run = run_mailroom(&["validate", "--config", &ssl_on, "--json"], &[]);
    assert_eq!(run.code, 1, "{run:?}");
    let error = &run.json()["error"];
    assert_eq!(error["kind"], "tls_not_supported");
    assert_eq!(error["documented_error"], "ssl_setting");
    assert_eq!(error["field"], "web_mail.enable_ssl");
}
