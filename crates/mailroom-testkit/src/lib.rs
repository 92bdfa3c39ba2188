//! Test kit for mailroom and for other projects' tests — being built (issue "Web Mail (SMTP) driver").
//!
//! It will hold an embedded fake SMTP server (mailin-embedded, STARTTLS with a certificate
//! generated at start, AUTH accounts, captured and parsed messages), a scripted tokio SMTP
//! responder for what mailin cannot do, provider personas built from captured replies, and a
//! fast counting sink for benchmarks.
