//! The ERP event catalogue: one typed payload and one default template set (subject, HTML, text) per system e-mail, rendered into a ready-to-send [`mailroom_core::OutgoingMessage`].
//!
//! - [`EventKind`] names the ten kinds (CONTRACT: `overdue_invoice_reminder`, …) and lists
//!   each one's data fields ([`EventKind::fields`]).
//! - [`Event`] holds a typed, checked payload; [`Event::from_json`] reports a missing,
//!   unknown or invalid field by its dotted path and the kind.
//! - [`Renderer`] keeps every minijinja template parsed once (built-ins, or a company's
//!   overrides via [`Renderer::with_override_dir`]) and turns an event into a
//!   [`RenderedEvent`]: subject, text, HTML and the MIME message, with a deterministic
//!   Message-ID ([`message_id_for`]) and an `X-ERP-Event` header.
//! - [`Money`], [`Currency`], [`Decimal`] and [`Locale`] write amounts exactly (integer
//!   minor units, never floats) and dates per locale.
//! - [`reminders_due`] decides which overdue reminders to send today.
//!
//! ```
//! use mailroom_events::{EventKind, Renderer};
//! let renderer = Renderer::new();
//! let sender = "Northwind ERP <erp@northwind.example>".parse().unwrap();
//! let json = r#"{
//!   "recipient": {"name": "Grace Hopper", "email": "grace@example.com"},
//!   "company": {"name": "Northwind Traders", "support_email": "help@northwind.example"},
//!   "notification_id": "N-77",
//!   "from_user": {"name": "Purchasing"},
//!   "title": "PO-5001 needs your approval",
//!   "message": "Please approve purchase order PO-5001."
//! }"#;
//! let rendered = renderer.render(EventKind::UserNotification, json, &sender).unwrap();
//! assert_eq!(rendered.subject, "PO-5001 needs your approval");
//! let preview = rendered.preview();
//! assert!(String::from_utf8_lossy(&preview.eml).contains("X-ERP-Event: user_notification"));
//! ```

// Items are `pub` only where the crate exports them: a user sees exactly the public API.
#![warn(unreachable_pub)]

mod common;
mod error;
mod fold;
mod kind;
mod locale;
mod message_id;
mod money;
mod payload;
mod reminders;
mod render;

pub use common::{Company, EmailAddress, HttpsUrl, PdfFile, Recipient};
pub use error::EventError;
pub use kind::{EventKind, FieldSpec, FieldType, UnknownKind};
pub use locale::{Locale, LocaleData, SymbolPlacement};
pub use message_id::message_id_for;
pub use money::{AmountError, Currency, Decimal, Money};
pub use payload::{
    AllocatedOrder, AllocationLine, BillPayment, BillPaymentConfirmed, DepositPaymentLink, ErpUser, Event,
    GoodsReceipt, GoodsReceived, InvoiceLine, InvoicePaymentLink, InvoiceSummary, NotificationLink, OrderReleased,
    OverdueInvoice, OverdueInvoiceReminder, Package, PackingSlipWithInvoice, PaidBill, ReceivedLine, ReleasedLine,
    ReleasedOrder, SalesOrderAllocated, Shipment, ShipmentConfirmed, ShippedLine, UserNotification,
};
pub use reminders::{DueReminder, OpenInvoice, PolicyError, ReminderPolicy, SentReminder, reminders_due};
pub use render::{
    AttachmentInfo, DEFAULT_MAX_MESSAGE_BYTES, EVENT_HEADER, EventData, Preview, RenderedEvent, RenderedParts,
    Renderer, TemplateFiles, engine_only_environment, template_files,
};

/// The README's example, compiled (and run where it needs no server) as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
