//! Shared helpers for the integration tests: fixture loading, the sender, a fixed date.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use mailroom_core::Mailbox;
use mailroom_events::{EventKind, Renderer};

/// The workspace's `fixtures/events` directory.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/events")
}

/// The example payload of `kind`, as text.
pub fn fixture_text(kind: EventKind) -> String {
    let path = fixtures_dir().join(format!("{}.json", kind.as_str()));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The example payload of `kind`, parsed.
pub fn fixture(kind: EventKind) -> serde_json::Value {
    serde_json::from_str(&fixture_text(kind)).unwrap()
}

/// The Company Email sender used throughout.
pub fn sender() -> Mailbox {
    "Northwind ERP <erp@northwind.example>".parse().unwrap()
}

/// 2026-11-26T09:00:00Z, so built messages are byte-for-byte reproducible.
pub fn fixed_date() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_683_600)
}

/// A renderer with a fixed Date header.
pub fn renderer() -> Renderer {
    Renderer::new().with_date(fixed_date())
}

/// The workspace target directory (CARGO_TARGET_DIR when set).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    }
}
