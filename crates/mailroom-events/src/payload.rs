//! One typed payload per event kind, the [`Event`] that holds any of them, and the checks run before rendering.
//!
//! Every payload denies unknown fields, so a misspelt optional field is an error instead
//! of silently missing from the e-mail. Field lists for tools are in [`EventKind::fields`].
//! That is also why each payload spells out the common fields (`recipient`, `company`,
//! `locale`, `event_id`) instead of flattening a shared struct: serde ignores
//! `deny_unknown_fields` on a struct with a `#[serde(flatten)]` field.

use mailroom_core::Attachment;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::Date;

use crate::common::{Company, EmailAddress, HttpsUrl, PdfFile, Recipient, iso_date};
use crate::error::EventError;
use crate::kind::EventKind;
use crate::locale::Locale;
use crate::money::{Currency, Decimal, Money};

/// A field that failed a check after the payload was read: its dotted path and why.
pub(crate) struct FieldProblem {
    pub(crate) field: String,
    pub(crate) reason: String,
}

impl FieldProblem {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> FieldProblem {
        FieldProblem { field: field.into(), reason: reason.into() }
    }
}

/// `amount` in `currency`, or a problem naming `field`.
fn money_at(field: &str, amount: Decimal, currency: Currency) -> Result<Money, FieldProblem> {
    amount.to_money(currency).map_err(|e| FieldProblem::new(field, e.to_string()))
}

fn positive_money_at(field: &str, amount: Decimal, currency: Currency) -> Result<Money, FieldProblem> {
    let money = money_at(field, amount, currency)?;
    if money.minor_units() <= 0 {
        return Err(FieldProblem::new(field, format!("must be more than zero, got {amount}")));
    }
    Ok(money)
}

fn not_blank(field: &str, value: &str) -> Result<(), FieldProblem> {
    if value.trim().is_empty() {
        return Err(FieldProblem::new(field, "must not be empty"));
    }
    Ok(())
}

fn not_empty<T>(field: &str, list: &[T]) -> Result<(), FieldProblem> {
    if list.is_empty() {
        return Err(FieldProblem::new(field, "must list at least one entry"));
    }
    Ok(())
}

fn not_negative(field: &str, quantity: Decimal) -> Result<(), FieldProblem> {
    if quantity.is_negative() {
        return Err(FieldProblem::new(field, format!("must not be negative, got {quantity}")));
    }
    Ok(())
}

/// What every payload type provides to the renderer.
pub(crate) trait Payload: Serialize + DeserializeOwned + Into<Event> {
    fn recipient(&self) -> &Recipient;
    fn company(&self) -> &Company;
    fn locale(&self) -> Locale;
    fn event_id(&self) -> Option<&str>;
    /// The ERP document the event is about (invoice, order, shipment… number).
    fn document_number(&self) -> &str;
    /// The reminder stage, for kinds that have stages.
    fn stage(&self) -> Option<u32> {
        None
    }
    /// Checks what serde cannot: amounts against the currency, dates against each other, non-empty lists.
    fn check(&self) -> Result<(), FieldProblem>;
    /// Files to attach.
    fn attachments(&self) -> Vec<Attachment> {
        Vec::new()
    }
    /// Values derived from the payload that templates need (e.g. days overdue).
    fn derived(&self) -> Vec<(&'static str, minijinja::Value)> {
        Vec::new()
    }
}

/// Implements the common accessors of [`Payload`] for a struct with the common fields.
macro_rules! common_accessors {
    () => {
        fn recipient(&self) -> &Recipient {
            &self.recipient
        }
        fn company(&self) -> &Company {
            &self.company
        }
        fn locale(&self) -> Locale {
            self.locale
        }
        fn event_id(&self) -> Option<&str> {
            self.event_id.as_deref()
        }
    };
}

fn check_common(recipient: &Recipient, company: &Company) -> Result<(), FieldProblem> {
    not_blank("recipient.name", &recipient.name)?;
    not_blank("company.name", &company.name)?;
    // Both become display names in the To and Reply-To headers.
    one_line("recipient.name", &recipient.name)?;
    one_line("company.name", &company.name)
}

fn one_line(field: &str, value: &str) -> Result<(), FieldProblem> {
    if value.contains(['\r', '\n']) {
        return Err(FieldProblem::new(field, "must be one line: remove the line break"));
    }
    Ok(())
}

/// The first string in `value` holding a control character other than tab and line breaks
/// (NUL, vertical tab, ESC…), as (field path, character). Such characters have no meaning in
/// an e-mail and would otherwise reach headers or bodies raw.
fn find_control_character(value: &serde_json::Value, path: &mut String) -> Option<(String, char)> {
    match value {
        serde_json::Value::String(text) => {
            text.chars().find(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n')).map(|c| (path.clone(), c))
        }
        serde_json::Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            let length = path.len();
            path.push_str(&format!("[{index}]"));
            let found = find_control_character(item, path);
            path.truncate(length);
            found
        }),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(name, item)| {
            let length = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(name);
            let found = find_control_character(item, path);
            path.truncate(length);
            found
        }),
        _ => None,
    }
}

/// One line of an invoice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceLine {
    /// Item code, e.g. `WID-100`.
    pub sku: Option<String>,
    /// What was sold.
    pub description: String,
    /// Quantity sold.
    pub quantity: Decimal,
    /// Price per unit, in the payload's currency.
    pub unit_price: Decimal,
    /// Line total, in the payload's currency.
    pub amount: Decimal,
}

/// The invoice an overdue reminder is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverdueInvoice {
    /// Invoice number, e.g. `INV-1001`.
    pub number: String,
    /// Date the invoice was issued.
    #[serde(with = "iso_date")]
    pub issue_date: Date,
    /// Date payment was due.
    #[serde(with = "iso_date")]
    pub due_date: Date,
    /// Invoice total.
    pub total: Decimal,
    /// Amount still unpaid; more than zero.
    pub amount_due: Decimal,
    /// The customer's purchase order number.
    pub purchase_order: Option<String>,
    /// Invoice lines, listed in the reminder (may be empty).
    #[serde(default)]
    pub lines: Vec<InvoiceLine>,
}

/// `overdue_invoice_reminder`: an invoice is past due.
///
/// ```
/// use mailroom_events::{Event, EventKind};
/// let json = r#"{
///   "recipient": {"name": "Ada Lovelace", "email": "ada@example.com"},
///   "company": {"name": "Northwind Traders", "support_email": "ar@northwind.example"},
///   "currency": "USD",
///   "invoice": {"number": "INV-1001", "issue_date": "2026-10-12", "due_date": "2026-11-11",
///               "total": "1250.00", "amount_due": "1250.00"},
///   "reminder_stage": 14,
///   "as_of": "2026-11-25"
/// }"#;
/// let Event::OverdueInvoiceReminder(reminder) = Event::from_json(EventKind::OverdueInvoiceReminder, json).unwrap() else { unreachable!() };
/// assert_eq!(reminder.days_overdue(), 14);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverdueInvoiceReminder {
    /// Who it goes to.
    pub recipient: Recipient,
    /// The sending company.
    pub company: Company,
    /// How dates and money are written (default en-US).
    #[serde(default)]
    pub locale: Locale,
    /// Distinguishes repeated events for the same document; part of the Message-ID.
    pub event_id: Option<String>,
    /// Currency of every amount.
    pub currency: Currency,
    /// The customer's account number.
    pub customer_number: Option<String>,
    /// The overdue invoice.
    pub invoice: OverdueInvoice,
    /// The reminder policy stage, in days after the due date (e.g. 7); part of the Message-ID.
    pub reminder_stage: u32,
    /// The day the reminder is generated; after the due date.
    #[serde(with = "iso_date")]
    pub as_of: Date,
    /// Secure link to pay online.
    pub payment_url: Option<HttpsUrl>,
}

impl OverdueInvoiceReminder {
    /// Whole days between the due date and [`as_of`](Self::as_of).
    pub fn days_overdue(&self) -> i64 {
        (self.as_of - self.invoice.due_date).whole_days()
    }
}

impl Payload for OverdueInvoiceReminder {
    common_accessors!();

    fn document_number(&self) -> &str {
        &self.invoice.number
    }

    fn stage(&self) -> Option<u32> {
        Some(self.reminder_stage)
    }

    fn check(&self) -> Result<(), FieldProblem> {
        check_common(&self.recipient, &self.company)?;
        not_blank("invoice.number", &self.invoice.number)?;
        money_at("invoice.total", self.invoice.total, self.currency)?;
        positive_money_at("invoice.amount_due", self.invoice.amount_due, self.currency)?;
        if self.as_of <= self.invoice.due_date {
            return Err(FieldProblem::new(
                "as_of",
                format!(
                    "{} is not after invoice.due_date {}: the invoice is not overdue yet",
                    iso_date::format(self.as_of),
                    iso_date::format(self.invoice.due_date)
                ),
            ));
        }
        for (index, line) in self.invoice.lines.iter().enumerate() {
            let at = |field: &str| format!("invoice.lines[{index}].{field}");
            money_at(&at("unit_price"), line.unit_price, self.currency)?;
            money_at(&at("amount"), line.amount, self.currency)?;
        }
        Ok(())
    }

    fn derived(&self) -> Vec<(&'static str, minijinja::Value)> {
        vec![("days_overdue", self.days_overdue().into())]
    }
}

/// One line of an allocated sales order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocationLine {
    /// Item code.
    pub sku: Option<String>,
    /// Item description.
    pub description: String,
    /// Quantity ordered.
    pub ordered: Decimal,
    /// Quantity allocated from stock.
    pub allocated: Decimal,
}

/// The sales order stock was allocated to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocatedOrder {
    /// Sales order number, e.g. `SO-1001`.
    pub number: String,
    /// Date the order was placed.
    #[serde(with = "iso_date")]
    pub order_date: Date,
    /// The customer's purchase order number.
    pub customer_po: Option<String>,
    /// When the order is expected to ship.
    #[serde(default, with = "iso_date::option")]
    pub expected_ship_date: Option<Date>,
    /// Lines with their allocation; at least one.
    pub lines: Vec<AllocationLine>,
}

/// `sales_order_allocated`: stock has been allocated to a sales order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesOrderAllocated {
    /// Who it goes to.
    pub recipient: Recipient,
    /// The sending company.
    pub company: Company,
    /// How dates and numbers are written (default en-US).
    #[serde(default)]
    pub locale: Locale,
    /// Distinguishes repeated allocations of the same order; part of the Message-ID.
    pub event_id: Option<String>,
    /// The sales order.
    pub order: AllocatedOrder,
}

impl Payload for SalesOrderAllocated {
    common_accessors!();

    fn document_number(&self) -> &str {
        &self.order.number
    }

    fn check(&self) -> Result<(), FieldProblem> {
        check_common(&self.recipient, &self.company)?;
        not_blank("order.number", &self.order.number)?;
        not_empty("order.lines", &self.order.lines)?;
        for (index, line) in self.order.lines.iter().enumerate() {
            not_negative(&format!("order.lines[{index}].ordered"), line.ordered)?;
            not_negative(&format!("order.lines[{index}].allocated"), line.allocated)?;
        }
        Ok(())
    }
}

/// One package of a shipment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// Package label or number, e.g. `Box 1 of 2`.
    pub label: String,
    /// Weight as written, e.g. `4.2 kg`.
    pub weight: Option<String>,
    /// This package's own tracking number, when it has one.
    pub tracking_number: Option<String>,
}

/// One shipped item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippedLine {
    /// Item code.
    pub sku: Option<String>,
    /// Item description.
    pub description: String,
    /// Quantity shipped.
    pub quantity: Decimal,
}

/// A shipment confirmed in Pack & Ship.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shipment {
    /// Shipment number, e.g. `SH-2001`.
    pub number: String,
    /// The sales order shipped.
    pub order_number: String,
    /// Date shipped.
    #[serde(with = "iso_date")]
    pub ship_date: Date,
    /// Carrier, e.g. `UPS`.
    pub carrier: String,
    /// Service level, e.g. `Ground`.
    pub service: Option<String>,
    /// The carrier's tracking number.
    pub tracking_number: String,
    /// Tracking page on the carrier's site.
    pub tracking_url: HttpsUrl,
    /// Delivery address lines.
    #[serde(default)]
    pub ship_to: Vec<String>,
    /// Packages; at least one.
    pub packages: Vec<Package>,
    /// Items shipped; at least one.
    pub lines: Vec<ShippedLine>,
}

/// `shipment_confirmed`: Pack & Ship confirmed a shipment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipmentConfirmed {
    /// Who it goes to.
    pub recipient: Recipient,
    /// The sending company.
    pub company: Company,
    /// How dates and numbers are written (default en-US).
    #[serde(default)]
    pub locale: Locale,
    /// Distinguishes repeated events for the same shipment; part of the Message-ID.
    pub event_id: Option<String>,
    /// The shipment.
    pub shipment: Shipment,
}

impl Payload for ShipmentConfirmed {
    common_accessors!();

    fn document_number(&self) -> &str {
        &self.shipment.number
    }

    fn check(&self) -> Result<(), FieldProblem> {
        check_common(&self.recipient, &self.company)?;
        not_blank("shipment.number", &self.shipment.number)?;
        not_blank("shipment.carrier", &self.shipment.carrier)?;
        not_blank("shipment.tracking_number", &self.shipment.tracking_number)?;
        not_empty("shipment.packages", &self.shipment.packages)?;
        not_empty("shipment.lines", &self.shipment.lines)?;
        for (index, line) in self.shipment.lines.iter().enumerate() {
            not_negative(&format!("shipment.lines[{index}].quantity"), line.quantity)?;
        }
        Ok(())
    }
}

/// The payment a bill payment confirmation is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillPayment {
    /// Payment reference, e.g. `PAY-3001`.
    pub reference: String,
    /// Date paid.
    #[serde(with = "iso_date")]
    pub payment_date: Date,
    /// How it was paid, e.g. `ACH transfer`.
    pub method: String,
    /// Amount paid; equals the sum of the bills' `amount_paid`.
    pub amount: Decimal,
}

/// One vendor bill settled by the payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaidBill {
    /// The vendor's invoice number.
    pub bill_number: String,
    /// Date of the vendor's invoice.
    #[serde(default, with = "iso_date::option")]
    pub bill_date: Option<Date>,
    /// Amount of this payment applied to the bill.
    pub amount_paid: Decimal,
}

/// `bill_payment_confirmed`: bills were paid; the confirmation goes to the vendor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillPaymentConfirmed {
    /// The vendor's contact.
    pub recipient: Recipient,
    /// The paying company.
    pub company: Company,
    /// How dates and money are written (default en-US).
    #[serde(default)]
    pub locale: Locale,
    /// Distinguishes repeated events for the same payment; part of the Message-ID.
    pub event_id: Option<String>,
    /// Currency of every amount.
    pub currency: Currency,
    /// The vendor's account number.
    pub vendor_number: Option<String>,
    /// The payment.
    pub payment: BillPayment,
    /// The bills it settles; at least one.
    pub bills: Vec<PaidBill>,
}

impl Payload for BillPaymentConfirmed {
    common_accessors!();

    fn document_number(&self) -> &str {
        &self.payment.reference
    }

    fn check(&self) -> Result<(), FieldProblem> {
        check_common(&self.recipient, &self.company)?;
        not_blank("payment.reference", &self.payment.reference)?;
        let paid = positive_money_at("payment.amount", self.payment.amount, self.currency)?;
        not_empty("bills", &self.bills)?;
        let mut applied: i64 = 0;
        for (index, bill) in self.bills.iter().enumerate() {
            let field = format!("bills[{index}].amount_paid");
            let money = positive_money_at(&field, bill.amount_paid, self.currency)?;
            applied = applied
                .checked_add(money.minor_units())
                .ok_or_else(|| FieldProblem::new(&field, "the bills' total is too large"))?;
        }
        if applied != paid.minor_units() {
            let total = Money::new(applied, self.currency).format(self.locale);
            return Err(FieldProblem::new(
                "payment.amount",
                format!("{} does not match the bills, whose amount_paid add up to {total}", paid.format(self.locale)),
            ));
        }
        Ok(())
    }
}

/// One released order line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleasedLine {
    /// Item code.
    pub sku: Option<String>,
    /// Item description.
    pub description: String,
    /// Quantity released.
    pub quantity: Decimal,
}

/// The order released for fulfilment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleasedOrder {
    /// Order number, e.g. `SO-1001`.
    pub number: String,
    /// Date released.
    #[serde(with = "iso_date")]
    pub released_date: Date,
    /// The customer's purchase order number.
    pub customer_po: Option<String>,
    /// When the order is expected to ship.
    #[serde(default, with = "iso_date::option")]
    pub expected_ship_date: Option<Date>,
    /// Warehouse that will fulfil it.
    pub warehouse: Option<String>,
    /// Lines released; at least one.
    pub lines: Vec<ReleasedLine>,
}

/// `order_released`: an order was released for fulfilment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderReleased {
    /// Who it goes to.
    pub recipient: Recipient,
    /// The sending company.
    pub company: Company,
    /// How dates and numbers are written (default en-US).
    #[serde(default)]
    pub locale: Locale,
    /// Distinguishes repeated releases of the same order; part of the Message-ID.
    pub event_id: Option<String>,
    /// The order.
    pub order: ReleasedOrder,
}

impl Payload for OrderReleased {
    common_accessors!();

    fn document_number(&self) -> &str {
        &self.order.number
    }

    fn check(&self) -> Result<(), FieldProblem> {
        check_common(&self.recipient, &self.company)?;
        not_blank("order.number", &self.order.number)?;
        not_empty("order.lines", &self.order.lines)?;
        for (index, line) in self.order.lines.iter().enumerate() {
            not_negative(&format!("order.lines[{index}].quantity"), line.quantity)?;
        }
        Ok(())
    }
}

/// An invoice as referenced by payment-link and packing-slip messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceSummary {
    /// Invoice number.
    pub number: String,
    /// Date issued.
    #[serde(with = "iso_date")]
    pub issue_date: Date,
    /// Payment due date.
    #[serde(with = "iso_date")]
    pub due_date: Date,
    /// Amount to pay.
    pub amount_due: Decimal,
}

/// `packing_slip_with_invoice`: the packing slip and the invoice, attached as PDFs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackingSlipWithInvoice {
    /// Who it goes to.
    pub recipient: Recipient,
    /// The sending company.
    pub company: Company,
    /// How dates and money are written (default en-US).
    #[serde(default)]
    pub locale: Locale,
    /// Distinguishes repeated sends for the same invoice; part of the Message-ID.
    pub event_id: Option<String>,
    /// Currency of every amount.
    pub currency: Currency,
    /// The sales order shipped.
    pub order_number: String,
    /// The attached invoice.
    pub invoice: InvoiceSummary,
    /// The packing slip PDF.
    pub packing_slip_pdf: PdfFile,
    /// The invoice PDF.
    pub invoice_pdf: PdfFile,
}

impl Payload for PackingSlipWithInvoice {
    common_accessors!();

    fn document_number(&self) -> &str {
        &self.invoice.number
    }

    fn check(&self) -> Result<(), FieldProblem> {
        check_common(&self.recipient, &self.company)?;
        not_blank("order_number", &self.order_number)?;
        not_blank("invoice.number", &self.invoice.number)?;
        money_at("invoice.amount_due", self.invoice.amount_due, self.currency)?;
        self.packing_slip_pdf.check().map_err(|reason| FieldProblem::new("packing_slip_pdf", reason))?;
        self.invoice_pdf.check().map_err(|reason| FieldProblem::new("invoice_pdf", reason))
    }

    fn attachments(&self) -> Vec<Attachment> {
        [&self.packing_slip_pdf, &self.invoice_pdf]
            .into_iter()
            .map(|pdf| Attachment {
                filename: pdf.filename.clone(),
                content_type: "application/pdf".to_owned(),
                bytes: pdf.content.clone(),
            })
            .collect()
    }
}

/// One received line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceivedLine {
    /// Item code.
    pub sku: Option<String>,
    /// Item description.
    pub description: String,
    /// Quantity on the purchase order.
    pub ordered: Decimal,
    /// Quantity received.
    pub received: Decimal,
}

/// A goods receipt against a purchase order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoodsReceipt {
    /// Receipt number, e.g. `GR-4001`.
    pub number: String,
    /// Date received.
    #[serde(with = "iso_date")]
    pub received_date: Date,
    /// Purchase order the goods were received against.
    pub purchase_order: String,
    /// Warehouse that received them.
    pub warehouse: Option<String>,
    /// Who received them.
    pub received_by: Option<String>,
    /// Lines received; at least one.
    pub lines: Vec<ReceivedLine>,
}

/// `goods_received`: goods were received against a purchase order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoodsReceived {
    /// Who it goes to (the vendor or the buyer).
    pub recipient: Recipient,
    /// The receiving company.
    pub company: Company,
    /// How dates and numbers are written (default en-US).
    #[serde(default)]
    pub locale: Locale,
    /// Distinguishes repeated events for the same receipt; part of the Message-ID.
    pub event_id: Option<String>,
    /// The receipt.
    pub receipt: GoodsReceipt,
}

impl Payload for GoodsReceived {
    common_accessors!();

    fn document_number(&self) -> &str {
        &self.receipt.number
    }

    fn check(&self) -> Result<(), FieldProblem> {
        check_common(&self.recipient, &self.company)?;
        not_blank("receipt.number", &self.receipt.number)?;
        not_empty("receipt.lines", &self.receipt.lines)?;
        for (index, line) in self.receipt.lines.iter().enumerate() {
            not_negative(&format!("receipt.lines[{index}].ordered"), line.ordered)?;
            not_negative(&format!("receipt.lines[{index}].received"), line.received)?;
        }
        Ok(())
    }
}

/// `deposit_payment_link`: a secure link to pay the deposit on an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepositPaymentLink {
    /// Who it goes to.
    pub recipient: Recipient,
    /// The sending company.
    pub company: Company,
    /// How dates and money are written (default en-US).
    #[serde(default)]
    pub locale: Locale,
    /// Distinguishes repeated links for the same order; part of the Message-ID.
    pub event_id: Option<String>,
    /// Currency of every amount.
    pub currency: Currency,
    /// The order the deposit is for.
    pub order_number: String,
    /// Date the order was placed.
    #[serde(default, with = "iso_date::option")]
    pub order_date: Option<Date>,
    /// Order total.
    pub order_total: Decimal,
    /// Deposit to pay now; more than zero and at most the order total.
    pub deposit_amount: Decimal,
    /// Pay the deposit by this date.
    #[serde(default, with = "iso_date::option")]
    pub due_date: Option<Date>,
    /// Secure payment link (absolute https).
    pub payment_url: HttpsUrl,
}

impl Payload for DepositPaymentLink {
    common_accessors!();

    fn document_number(&self) -> &str {
        &self.order_number
    }

    fn check(&self) -> Result<(), FieldProblem> {
        check_common(&self.recipient, &self.company)?;
        not_blank("order_number", &self.order_number)?;
        let total = positive_money_at("order_total", self.order_total, self.currency)?;
        let deposit = positive_money_at("deposit_amount", self.deposit_amount, self.currency)?;
        if deposit.minor_units() > total.minor_units() {
            return Err(FieldProblem::new(
                "deposit_amount",
                format!("{} is more than the order total {}", deposit.format(self.locale), total.format(self.locale)),
            ));
        }
        Ok(())
    }
}

/// `invoice_payment_link`: a secure link to pay an invoice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoicePaymentLink {
    /// Who it goes to.
    pub recipient: Recipient,
    /// The sending company.
    pub company: Company,
    /// How dates and money are written (default en-US).
    #[serde(default)]
    pub locale: Locale,
    /// Distinguishes repeated links for the same invoice; part of the Message-ID.
    pub event_id: Option<String>,
    /// Currency of every amount.
    pub currency: Currency,
    /// The invoice to pay.
    pub invoice: InvoiceSummary,
    /// Secure payment link (absolute https).
    pub payment_url: HttpsUrl,
}

impl Payload for InvoicePaymentLink {
    common_accessors!();

    fn document_number(&self) -> &str {
        &self.invoice.number
    }

    fn check(&self) -> Result<(), FieldProblem> {
        check_common(&self.recipient, &self.company)?;
        not_blank("invoice.number", &self.invoice.number)?;
        positive_money_at("invoice.amount_due", self.invoice.amount_due, self.currency)?;
        Ok(())
    }
}

/// Who (or which ERP process) a user notification is from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErpUser {
    /// Their name.
    pub name: String,
    /// Their e-mail address.
    pub email: Option<EmailAddress>,
}

/// A link to a record in the ERP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationLink {
    /// Link text, e.g. `Open PO-5001`.
    pub label: String,
    /// Link target (absolute https).
    pub url: HttpsUrl,
}

/// `user_notification`: a system message to another ERP user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserNotification {
    /// The ERP user it goes to.
    pub recipient: Recipient,
    /// The company (branding).
    pub company: Company,
    /// How dates are written (default en-US).
    #[serde(default)]
    pub locale: Locale,
    /// Distinguishes repeated sends of the same notification; part of the Message-ID.
    pub event_id: Option<String>,
    /// The ERP's id for the notification; part of the Message-ID.
    pub notification_id: String,
    /// Who it is from.
    pub from_user: ErpUser,
    /// One-line summary; also the subject.
    pub title: String,
    /// The message; blank lines separate paragraphs.
    pub message: String,
    /// A link to the record.
    pub link: Option<NotificationLink>,
}

impl Payload for UserNotification {
    common_accessors!();

    fn document_number(&self) -> &str {
        &self.notification_id
    }

    fn check(&self) -> Result<(), FieldProblem> {
        check_common(&self.recipient, &self.company)?;
        not_blank("notification_id", &self.notification_id)?;
        not_blank("title", &self.title)?;
        not_blank("message", &self.message)
    }

    fn derived(&self) -> Vec<(&'static str, minijinja::Value)> {
        let normalized = self.message.replace("\r\n", "\n");
        let paragraphs: Vec<minijinja::Value> =
            normalized.split("\n\n").map(str::trim).filter(|p| !p.is_empty()).map(minijinja::Value::from).collect();
        vec![("message_paragraphs", paragraphs.into())]
    }
}

/// Calls `$body` with `$payload` bound to whichever payload `$event` holds.
macro_rules! with_payload {
    ($event:expr, $payload:ident => $body:expr) => {
        match $event {
            Event::OverdueInvoiceReminder($payload) => $body,
            Event::SalesOrderAllocated($payload) => $body,
            Event::ShipmentConfirmed($payload) => $body,
            Event::BillPaymentConfirmed($payload) => $body,
            Event::OrderReleased($payload) => $body,
            Event::PackingSlipWithInvoice($payload) => $body,
            Event::GoodsReceived($payload) => $body,
            Event::DepositPaymentLink($payload) => $body,
            Event::InvoicePaymentLink($payload) => $body,
            Event::UserNotification($payload) => $body,
        }
    };
}

fn not_an_object(kind: EventKind) -> EventError {
    EventError::InvalidJson { kind, detail: "expected a JSON object holding the payload's fields".into() }
}

/// An event of any kind with its typed, checked payload.
///
/// Build one from JSON with [`Event::from_json`] / [`Event::from_value`] (which check it),
/// or build a payload struct in code and call [`Event::checked`] on `Event::from(payload)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// See [`OverdueInvoiceReminder`].
    OverdueInvoiceReminder(OverdueInvoiceReminder),
    /// See [`SalesOrderAllocated`].
    SalesOrderAllocated(SalesOrderAllocated),
    /// See [`ShipmentConfirmed`].
    ShipmentConfirmed(ShipmentConfirmed),
    /// See [`BillPaymentConfirmed`].
    BillPaymentConfirmed(BillPaymentConfirmed),
    /// See [`OrderReleased`].
    OrderReleased(OrderReleased),
    /// See [`PackingSlipWithInvoice`].
    PackingSlipWithInvoice(PackingSlipWithInvoice),
    /// See [`GoodsReceived`].
    GoodsReceived(GoodsReceived),
    /// See [`DepositPaymentLink`].
    DepositPaymentLink(DepositPaymentLink),
    /// See [`InvoicePaymentLink`].
    InvoicePaymentLink(InvoicePaymentLink),
    /// See [`UserNotification`].
    UserNotification(UserNotification),
}

macro_rules! event_from_payload {
    ($($variant:ident),*) => {
        $(impl From<$variant> for Event {
            fn from(payload: $variant) -> Event {
                Event::$variant(payload)
            }
        })*
    };
}
event_from_payload!(
    OverdueInvoiceReminder,
    SalesOrderAllocated,
    ShipmentConfirmed,
    BillPaymentConfirmed,
    OrderReleased,
    PackingSlipWithInvoice,
    GoodsReceived,
    DepositPaymentLink,
    InvoicePaymentLink,
    UserNotification
);

impl Event {
    /// Reads and checks a `kind` payload from JSON text. Errors name the kind and the
    /// field: a missing required field, an unknown field, a bad value, a failed check.
    pub fn from_json(kind: EventKind, json: &str) -> Result<Event, EventError> {
        // serde would read a JSON array as a struct's fields in order; a payload is an object.
        if !json.trim_start().starts_with('{') {
            return Err(not_an_object(kind));
        }
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let event = Event::deserialize_kind(kind, &mut deserializer)?;
        deserializer.end().map_err(|e| EventError::from_serde(kind, String::new(), e))?;
        Ok(event)
    }

    /// Reads and checks a `kind` payload from a JSON value (see [`Event::from_json`]).
    pub fn from_value(kind: EventKind, value: &serde_json::Value) -> Result<Event, EventError> {
        if !value.is_object() {
            return Err(not_an_object(kind));
        }
        Event::deserialize_kind(kind, value)
    }

    fn deserialize_kind<'de, D>(kind: EventKind, deserializer: D) -> Result<Event, EventError>
    where
        D: serde::Deserializer<'de, Error = serde_json::Error>,
    {
        fn read<'de, P: Payload, D>(kind: EventKind, deserializer: D) -> Result<Event, EventError>
        where
            D: serde::Deserializer<'de, Error = serde_json::Error>,
        {
            let payload: P = serde_path_to_error::deserialize(deserializer).map_err(|e| {
                let path = e.path().to_string();
                EventError::from_serde(kind, path, e.into_inner())
            })?;
            payload.into().checked()
        }
        match kind {
            EventKind::OverdueInvoiceReminder => read::<OverdueInvoiceReminder, _>(kind, deserializer),
            EventKind::SalesOrderAllocated => read::<SalesOrderAllocated, _>(kind, deserializer),
            EventKind::ShipmentConfirmed => read::<ShipmentConfirmed, _>(kind, deserializer),
            EventKind::BillPaymentConfirmed => read::<BillPaymentConfirmed, _>(kind, deserializer),
            EventKind::OrderReleased => read::<OrderReleased, _>(kind, deserializer),
            EventKind::PackingSlipWithInvoice => read::<PackingSlipWithInvoice, _>(kind, deserializer),
            EventKind::GoodsReceived => read::<GoodsReceived, _>(kind, deserializer),
            EventKind::DepositPaymentLink => read::<DepositPaymentLink, _>(kind, deserializer),
            EventKind::InvoicePaymentLink => read::<InvoicePaymentLink, _>(kind, deserializer),
            EventKind::UserNotification => read::<UserNotification, _>(kind, deserializer),
        }
    }

    /// The event after the checks JSON payloads get (for payloads built in code):
    /// amounts against the currency, dates against each other, non-empty lists.
    pub fn checked(self) -> Result<Event, EventError> {
        let kind = self.kind();
        let as_json = with_payload!(&self, payload => serde_json::to_value(payload));
        if let Some((field, character)) =
            as_json.ok().and_then(|json| find_control_character(&json, &mut String::new()))
        {
            return Err(EventError::InvalidField {
                kind,
                field,
                reason: format!(
                    "contains the control character {character:?}, which has no place in an e-mail: remove it"
                ),
            });
        }
        with_payload!(&self, payload => payload.check()).map_err(|problem| EventError::InvalidField {
            kind,
            field: problem.field,
            reason: problem.reason,
        })?;
        Ok(self)
    }

    /// Which kind this is.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::OverdueInvoiceReminder(_) => EventKind::OverdueInvoiceReminder,
            Event::SalesOrderAllocated(_) => EventKind::SalesOrderAllocated,
            Event::ShipmentConfirmed(_) => EventKind::ShipmentConfirmed,
            Event::BillPaymentConfirmed(_) => EventKind::BillPaymentConfirmed,
            Event::OrderReleased(_) => EventKind::OrderReleased,
            Event::PackingSlipWithInvoice(_) => EventKind::PackingSlipWithInvoice,
            Event::GoodsReceived(_) => EventKind::GoodsReceived,
            Event::DepositPaymentLink(_) => EventKind::DepositPaymentLink,
            Event::InvoicePaymentLink(_) => EventKind::InvoicePaymentLink,
            Event::UserNotification(_) => EventKind::UserNotification,
        }
    }

    /// Who the message goes to.
    pub fn recipient(&self) -> &Recipient {
        with_payload!(self, payload => payload.recipient())
    }

    /// The sending company's branding.
    pub fn company(&self) -> &Company {
        with_payload!(self, payload => payload.company())
    }

    /// The payload's locale.
    pub fn locale(&self) -> Locale {
        with_payload!(self, payload => payload.locale())
    }

    /// The ERP document the event is about: invoice, order, shipment, payment, receipt or notification number.
    pub fn document_number(&self) -> &str {
        with_payload!(self, payload => payload.document_number())
    }

    /// The reminder stage (days after due) for overdue reminders; `None` for other kinds.
    pub fn stage(&self) -> Option<u32> {
        with_payload!(self, payload => payload.stage())
    }

    /// The payload's `event_id`, if any.
    pub fn event_id(&self) -> Option<&str> {
        with_payload!(self, payload => payload.event_id())
    }

    /// Files the message carries (the two PDFs of `packing_slip_with_invoice`).
    pub fn attachments(&self) -> Vec<Attachment> {
        with_payload!(self, payload => payload.attachments())
    }

    /// The deterministic Message-ID for this event from a sender at `sender_domain`.
    /// See [`crate::message_id_for`].
    pub fn message_id(&self, sender_domain: &str) -> String {
        crate::message_id::message_id_for(
            self.kind(),
            self.document_number(),
            self.stage(),
            self.event_id(),
            sender_domain,
        )
    }

    /// The template context: the payload's fields as templates see them, derived values and
    /// the event kind, in one flat map (a lookup in nested merged maps cost a tenth of the
    /// rendering time). Derived names never collide with payload fields by design.
    pub(crate) fn context(&self) -> TemplateContext {
        with_payload!(self, payload => {
            let mut extra = payload.derived();
            extra.push(("kind", minijinja::Value::from(self.kind().as_str())));
            TemplateContext { payload: minijinja::Value::from_serialize(payload), extra }
        })
    }
}

/// The variables a template sees: the payload's fields as serialized, plus a few values
/// computed here (derived values, the kind, the subject). A lookup checks the few computed
/// names, then the payload's own map, so no merged map is built per render and no lookup
/// goes through nested merged maps (which measured as a tenth of the rendering time).
#[derive(Clone, Debug)]
pub(crate) struct TemplateContext {
    payload: minijinja::Value,
    extra: Vec<(&'static str, minijinja::Value)>,
}

impl TemplateContext {
    /// Adds (or replaces) a computed variable.
    pub(crate) fn insert(&mut self, name: &'static str, value: impl Into<minijinja::Value>) {
        let value = value.into();
        match self.extra.iter_mut().find(|(known, _)| *known == name) {
            Some(slot) => slot.1 = value,
            None => self.extra.push((name, value)),
        }
    }

    /// The context as the value templates render with.
    pub(crate) fn to_value(&self) -> minijinja::Value {
        minijinja::Value::from_object(self.clone())
    }
}

impl minijinja::value::Object for TemplateContext {
    fn repr(self: &std::sync::Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Map
    }

    fn get_value(self: &std::sync::Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        let name = key.as_str()?;
        match self.extra.iter().find(|(known, _)| *known == name) {
            Some((_, value)) => Some(value.clone()),
            None => self.payload.as_object()?.get_value(key),
        }
    }

    fn enumerate(self: &std::sync::Arc<Self>) -> minijinja::value::Enumerator {
        let mut names: Vec<minijinja::Value> =
            self.extra.iter().map(|(name, _)| minijinja::Value::from(*name)).collect();
        if let Ok(fields) = self.payload.try_iter() {
            names.extend(fields.filter(|field| !self.extra.iter().any(|(name, _)| field.as_str() == Some(name))));
        }
        minijinja::value::Enumerator::Values(names)
    }
}
