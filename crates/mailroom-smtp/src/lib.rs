//! mailroom's Web Mail (SMTP) driver — being built (issue "Web Mail (SMTP) driver").
//!
//! It will hold lettre's SMTP client on a socket it owns (TCP_NODELAY, implicit TLS and
//! STARTTLS with rustls), a deadline on every protocol step, its own connection pool, AUTH
//! PLAIN/LOGIN/XOAUTH2, classification of replies and I/O errors into
//! `mailroom_core::ErrorKind`, a redacted transcript, and a step-by-step probe.

/// Whether this build contains a working SMTP driver.
pub const AVAILABLE: bool = false;
