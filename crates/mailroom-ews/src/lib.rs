//! mailroom's Exchange (EWS) driver: sends the Company Email's messages through Exchange Web Services and classifies every failure.
//!
//! Hand-built SOAP over reqwest + quick-xml, as DESIGN.md §6 asks:
//!
//! - one `CreateItem` per message, `MessageDisposition="SendOnly"`, the message's RFC 5322
//!   bytes unchanged as base64 `t:MimeContent` (Bcc recipients, which core keeps out of the
//!   headers, listed as `t:BccRecipients`); see [`EwsTransport`] for why `SendOnly`;
//! - envelope namespace `http://schemas.xmlsoap.org/soap/envelope/`, `RequestServerVersion`
//!   `Exchange2010_SP2`, elements in schema order, XML written with quick-xml's writer and read
//!   with its reader by local name (any prefix), never with `format!` or string search;
//! - rustls on aws-lc-rs (the workspace's one provider) trusting Mozilla's roots plus
//!   `ca_file`; a deadline per request and per connect; redirects never followed (a redirect
//!   to `/ews/genericerrorpage.htm` is Exchange's way of saying "temporarily broken");
//! - `auth = "basic"` (user name @ domain), or `auth = "oauth"`: Azure AD client credentials,
//!   a Bearer token from core's single-flight `TokenCache` (refreshed once when Exchange
//!   rejects it) and `ExchangeImpersonation` of the sender. `auth = "ntlm"` is refused with
//!   `invalid_config` on `exchange.auth`: no NTLM crate we trust, and Basic over HTTPS or OAuth
//!   cover the same servers;
//! - every reply classified into core's kinds with the field to change: 401 challenges say
//!   *why* (Basic disabled, OAuth only, Windows auth only), `ErrorServerBusy` carries its
//!   `BackOffMilliseconds`, a connection lost after the request was sent is `delivery_unknown`.
//!
//! Errors carry a redacted transcript (request line and headers, `Authorization: Basic
//! [redacted]`, status, selected reply headers and the reply body); request bodies are never
//! recorded. The probe behind `mailroom diagnose` is in [`Transport::probe`](mailroom_core::Transport::probe).

mod envelope;
mod error;
mod http;
mod oauth;
mod probe;
mod reply;
mod soap;
mod transport;

pub use transport::{EwsTransport, EwsTransportBuilder};
