//! mailroom's Exchange (EWS) driver — not implemented yet.
//!
//! It will hold a hand-built SOAP layer over reqwest + quick-xml: `CreateItem` with
//! `MessageDisposition="SendAndSaveCopy"` carrying the message as `MimeContent`, Basic/NTLM
//! and OAuth authentication, no redirects on POST, and a mapping of EWS response codes
//! (`ErrorSendAsDenied`, `ErrorServerBusy` with `BackOffMilliseconds`, SOAP faults) into
//! `mailroom_core::ErrorKind`. Until then the `mailroom` facade reports Exchange configs as
//! "driver not available" (exit 2) after validating them.
