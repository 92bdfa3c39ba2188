//! A browser look at every kind's HTML: headless Chromium screenshots under `target/screenshots/`.
//!
//! Skipped (with a message) where Chromium is not installed. Look at the PNGs after
//! changing a template; the test checks that each page renders to a non-trivial image.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mailroom_events::EventKind;
use support::{fixture_text, renderer, sender, target_dir};

const CHROMIUM: &str = "/usr/bin/chromium";

#[test]
fn every_kind_renders_in_a_browser() {
    if !Path::new(CHROMIUM).exists() {
        println!(
            "skipped: chromium not found; install Debian's chromium (apt-get install chromium) to screenshot the HTML"
        );
        return;
    }
    let out_dir = target_dir().join("screenshots");
    std::fs::create_dir_all(&out_dir).unwrap();
    let html_dir = tempfile::tempdir().unwrap();
    let renderer = renderer();
    for kind in EventKind::ALL {
        let rendered = renderer.render(kind, &fixture_text(kind), &sender()).unwrap();
        let html_path = html_dir.path().join(format!("{kind}.html"));
        std::fs::write(&html_path, &rendered.html).unwrap();
        let png = out_dir.join(format!("{kind}.png"));
        let _ = std::fs::remove_file(&png);
        // A fresh profile per run: a shared one can be locked by another Chromium.
        let profile = tempfile::tempdir().unwrap();
        let output = run_with_deadline(
            Command::new(CHROMIUM)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--hide-scrollbars",
                ])
                .arg(format!("--user-data-dir={}", profile.path().display()))
                .arg(format!("--screenshot={}", png.display()))
                .arg("--window-size=700,1400")
                .arg(format!("file://{}", html_path.display())),
            Duration::from_secs(60),
        );
        let png_bytes = std::fs::read(&png)
            .unwrap_or_else(|e| panic!("{kind}: no screenshot at {} ({e}); chromium said: {output}", png.display()));
        assert!(png_bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{kind}: not a PNG");
        // A blank page compresses to almost nothing; a rendered message does not.
        assert!(png_bytes.len() > 20_000, "{kind}: the screenshot looks empty ({} bytes)", png_bytes.len());
        println!("{kind}: {}", png.display());
    }
}

/// Runs `command`, killing it after `deadline`; returns what it printed.
fn run_with_deadline(command: &mut Command, deadline: Duration) -> String {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let started = std::time::Instant::now();
    loop {
        if child.try_wait().expect("wait for chromium").is_some() {
            break;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return format!("(killed after {deadline:?})");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("chromium output");
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}
