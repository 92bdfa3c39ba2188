//! The event kinds (CONTRACT: their snake_case names are the CLI's `--event` values) and the data fields each one takes.

use std::fmt;
use std::str::FromStr;

/// One kind of system e-mail the ERP sends.
///
/// ```
/// use mailroom_events::EventKind;
/// let kind: EventKind = "shipment_confirmed".parse().unwrap();
/// assert_eq!(kind, EventKind::ShipmentConfirmed);
/// assert_eq!(kind.as_str(), "shipment_confirmed");
/// assert!(kind.fields().iter().any(|f| f.name == "shipment.tracking_url" && f.required));
/// assert_eq!(EventKind::ALL.len(), 10);
/// ```
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
    strum::EnumCount,
)]
#[strum(serialize_all = "snake_case")]
pub enum EventKind {
    /// A reminder that an invoice is past due (sent automatically, see [`crate::reminders_due`]).
    OverdueInvoiceReminder,
    /// Stock has been allocated to a sales order.
    SalesOrderAllocated,
    /// Pack & Ship confirmed a shipment: carrier, tracking, packages, lines.
    ShipmentConfirmed,
    /// A bill was paid; the confirmation goes to the vendor.
    BillPaymentConfirmed,
    /// An order was released for fulfilment.
    OrderReleased,
    /// The packing slip sent along with the invoice, both attached as PDFs.
    PackingSlipWithInvoice,
    /// Goods were received against a purchase order.
    GoodsReceived,
    /// A link to pay the deposit on an order.
    DepositPaymentLink,
    /// A link to pay an invoice.
    InvoicePaymentLink,
    /// A system message to another ERP user.
    UserNotification,
}

impl EventKind {
    /// Every kind, in catalogue (declaration) order.
    pub const ALL: [EventKind; <EventKind as strum::EnumCount>::COUNT] =
        mailroom_core::every_variant(<EventKind as strum::VariantArray>::VARIANTS);

    /// The kind's name (CONTRACT), e.g. `overdue_invoice_reminder`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// One sentence saying when the ERP sends it and to whom.
    pub fn description(self) -> &'static str {
        match self {
            EventKind::OverdueInvoiceReminder => {
                "Reminds a customer that an invoice is past due; sent automatically at each stage of the reminder policy."
            }
            EventKind::SalesOrderAllocated => "Tells a customer that stock has been allocated to their sales order.",
            EventKind::ShipmentConfirmed => {
                "Confirms a shipment from Pack & Ship: carrier, tracking number and link, packages and lines."
            }
            EventKind::BillPaymentConfirmed => {
                "Tells a vendor that their bills have been paid, with the payment reference."
            }
            EventKind::OrderReleased => "Confirms to a customer that their order has been released for fulfilment.",
            EventKind::PackingSlipWithInvoice => {
                "Sends the packing slip and the invoice to a customer as PDF attachments."
            }
            EventKind::GoodsReceived => "Tells a vendor (or buyer) which goods were received against a purchase order.",
            EventKind::DepositPaymentLink => {
                "Asks a customer to pay the deposit on an order through a secure payment link."
            }
            EventKind::InvoicePaymentLink => "Asks a customer to pay an invoice through a secure payment link.",
            EventKind::UserNotification => "A system message from the ERP to another ERP user.",
        }
    }

    /// Every data field the payload takes (common parts first), as dotted paths;
    /// `[]` marks an element of a list, e.g. `invoice.lines[].amount`.
    pub fn fields(self) -> Vec<FieldSpec> {
        let with_currency = matches!(
            self,
            EventKind::OverdueInvoiceReminder
                | EventKind::BillPaymentConfirmed
                | EventKind::PackingSlipWithInvoice
                | EventKind::DepositPaymentLink
                | EventKind::InvoicePaymentLink
        );
        let mut fields = COMMON_FIELDS.to_vec();
        if with_currency {
            fields.push(CURRENCY_FIELD);
        }
        fields.extend_from_slice(self.specific_fields());
        fields
    }

    fn specific_fields(self) -> &'static [FieldSpec] {
        match self {
            EventKind::OverdueInvoiceReminder => OVERDUE_INVOICE_REMINDER_FIELDS,
            EventKind::SalesOrderAllocated => SALES_ORDER_ALLOCATED_FIELDS,
            EventKind::ShipmentConfirmed => SHIPMENT_CONFIRMED_FIELDS,
            EventKind::BillPaymentConfirmed => BILL_PAYMENT_CONFIRMED_FIELDS,
            EventKind::OrderReleased => ORDER_RELEASED_FIELDS,
            EventKind::PackingSlipWithInvoice => PACKING_SLIP_WITH_INVOICE_FIELDS,
            EventKind::GoodsReceived => GOODS_RECEIVED_FIELDS,
            EventKind::DepositPaymentLink => DEPOSIT_PAYMENT_LINK_FIELDS,
            EventKind::InvoicePaymentLink => INVOICE_PAYMENT_LINK_FIELDS,
            EventKind::UserNotification => USER_NOTIFICATION_FIELDS,
        }
    }
}

/// The name is not one of [`EventKind::ALL`]; the message lists the valid ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown event kind \"{name}\": use one of {}", known_kinds())]
pub struct UnknownKind {
    /// The name given.
    pub name: String,
}

fn known_kinds() -> String {
    EventKind::ALL.map(EventKind::as_str).join(", ")
}

impl FromStr for EventKind {
    type Err = UnknownKind;

    /// Parses a kind name exactly as [`EventKind::as_str`] writes it (`-` is taken as `_`).
    fn from_str(name: &str) -> Result<EventKind, UnknownKind> {
        let wanted = name.trim().replace('-', "_");
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == wanted)
            .ok_or_else(|| UnknownKind { name: name.to_owned() })
    }
}

/// What a data field holds, as the `mailroom events` listing shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// Free text.
    Text,
    /// A list of text lines.
    TextList,
    /// A whole number ≥ 0.
    Count,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// A decimal number as a string (`"2.5"`) or a JSON integer.
    Decimal,
    /// Money in the payload's currency: a decimal string (`"1250.00"`) or a JSON integer, never a JSON float.
    Amount,
    /// An ISO 4217 currency code, e.g. `USD`.
    Currency,
    /// A locale tag: `en-US`, `en-GB`, `de-DE` or `fr-FR`.
    Locale,
    /// An e-mail address.
    Email,
    /// A list of e-mail addresses.
    EmailList,
    /// An absolute `https://` URL.
    HttpsUrl,
    /// Bytes encoded as base64.
    Base64,
    /// An object with the fields listed under it.
    Object,
    /// A list of objects with the fields listed under it (`name[].field`).
    ObjectList,
}

impl FieldType {
    /// A short name for listings, e.g. `date (YYYY-MM-DD)`.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::TextList => "list of text",
            FieldType::Count => "whole number",
            FieldType::Date => "date (YYYY-MM-DD)",
            FieldType::Decimal => "decimal (string)",
            FieldType::Amount => "amount (decimal string)",
            FieldType::Currency => "currency (ISO 4217 code)",
            FieldType::Locale => "locale (en-US, en-GB, de-DE, fr-FR)",
            FieldType::Email => "e-mail address",
            FieldType::EmailList => "list of e-mail addresses",
            FieldType::HttpsUrl => "https URL",
            FieldType::Base64 => "base64",
            FieldType::Object => "object",
            FieldType::ObjectList => "list of objects",
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One data field of an event payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    /// Dotted path, `[]` for list elements: `invoice.lines[].amount`.
    pub name: &'static str,
    /// What it holds.
    pub field_type: FieldType,
    /// Whether the payload must have it (when its parent is present).
    pub required: bool,
    /// What it means.
    pub description: &'static str,
}

const fn required(name: &'static str, field_type: FieldType, description: &'static str) -> FieldSpec {
    FieldSpec { name, field_type, required: true, description }
}

const fn optional(name: &'static str, field_type: FieldType, description: &'static str) -> FieldSpec {
    FieldSpec { name, field_type, required: false, description }
}

use FieldType as T;

const COMMON_FIELDS: &[FieldSpec] = &[
    required("recipient", T::Object, "Who the e-mail goes to."),
    required("recipient.name", T::Text, "Name used in the greeting and the To header."),
    required("recipient.email", T::Email, "The To address."),
    optional("recipient.cc", T::EmailList, "Addresses copied (Cc)."),
    required("company", T::Object, "The sending company's branding (header and footer)."),
    required("company.name", T::Text, "Trading name."),
    optional("company.address_lines", T::TextList, "Postal address, one line per entry."),
    required("company.support_email", T::Email, "Where replies go (Reply-To) and the contact shown in the footer."),
    optional("company.support_phone", T::Text, "Phone number shown in the footer."),
    optional("company.logo_url", T::HttpsUrl, "Logo image shown at the top (alt text: the company name)."),
    optional("company.website_url", T::HttpsUrl, "Company web site linked in the footer."),
    optional("locale", T::Locale, "How dates and money are written; default en-US."),
    optional(
        "event_id",
        T::Text,
        "Distinguishes repeated events for the same document (e.g. a second allocation); part of the Message-ID.",
    ),
];

const CURRENCY_FIELD: FieldSpec = required("currency", T::Currency, "Currency of every amount in the payload.");

const OVERDUE_INVOICE_REMINDER_FIELDS: &[FieldSpec] = &[
    optional("customer_number", T::Text, "The customer's account number in the ERP."),
    required("invoice", T::Object, "The overdue invoice."),
    required("invoice.number", T::Text, "Invoice number, e.g. INV-1001."),
    required("invoice.issue_date", T::Date, "Date the invoice was issued."),
    required("invoice.due_date", T::Date, "Date payment was due."),
    required("invoice.total", T::Amount, "Invoice total."),
    required("invoice.amount_due", T::Amount, "Amount still unpaid (greater than zero)."),
    optional("invoice.purchase_order", T::Text, "The customer's purchase order number."),
    optional("invoice.lines", T::ObjectList, "Invoice lines, listed in the reminder."),
    optional("invoice.lines[].sku", T::Text, "Item code."),
    required("invoice.lines[].description", T::Text, "What was sold."),
    required("invoice.lines[].quantity", T::Decimal, "Quantity."),
    required("invoice.lines[].unit_price", T::Amount, "Price per unit."),
    required("invoice.lines[].amount", T::Amount, "Line total."),
    required(
        "reminder_stage",
        T::Count,
        "The reminder policy stage this reminder is for, in days after the due date (e.g. 7).",
    ),
    required("as_of", T::Date, "The day the reminder is generated; must be after the due date."),
    optional("payment_url", T::HttpsUrl, "Secure link to pay the invoice online."),
];

const SALES_ORDER_ALLOCATED_FIELDS: &[FieldSpec] = &[
    required("order", T::Object, "The sales order."),
    required("order.number", T::Text, "Sales order number, e.g. SO-1001."),
    required("order.order_date", T::Date, "Date the order was placed."),
    optional("order.customer_po", T::Text, "The customer's purchase order number."),
    optional("order.expected_ship_date", T::Date, "When the order is expected to ship."),
    required("order.lines", T::ObjectList, "Order lines with their allocation (at least one)."),
    optional("order.lines[].sku", T::Text, "Item code."),
    required("order.lines[].description", T::Text, "Item description."),
    required("order.lines[].ordered", T::Decimal, "Quantity ordered."),
    required("order.lines[].allocated", T::Decimal, "Quantity allocated from stock."),
];

const SHIPMENT_CONFIRMED_FIELDS: &[FieldSpec] = &[
    required("shipment", T::Object, "The shipment from Pack & Ship."),
    required("shipment.number", T::Text, "Shipment number, e.g. SH-2001."),
    required("shipment.order_number", T::Text, "The sales order shipped."),
    required("shipment.ship_date", T::Date, "Date shipped."),
    required("shipment.carrier", T::Text, "Carrier, e.g. UPS."),
    optional("shipment.service", T::Text, "Carrier service level, e.g. Ground."),
    required("shipment.tracking_number", T::Text, "The carrier's tracking number."),
    required("shipment.tracking_url", T::HttpsUrl, "Tracking page on the carrier's site."),
    optional("shipment.ship_to", T::TextList, "Delivery address, one line per entry."),
    required("shipment.packages", T::ObjectList, "Packages in the shipment (at least one)."),
    required("shipment.packages[].label", T::Text, "Package label or number, e.g. Box 1 of 2."),
    optional("shipment.packages[].weight", T::Text, "Weight as written, e.g. 4.2 kg."),
    optional("shipment.packages[].tracking_number", T::Text, "Tracking number of this package when it has its own."),
    required("shipment.lines", T::ObjectList, "Items shipped (at least one)."),
    optional("shipment.lines[].sku", T::Text, "Item code."),
    required("shipment.lines[].description", T::Text, "Item description."),
    required("shipment.lines[].quantity", T::Decimal, "Quantity shipped."),
];

const BILL_PAYMENT_CONFIRMED_FIELDS: &[FieldSpec] = &[
    optional("vendor_number", T::Text, "The vendor's account number in the ERP."),
    required("payment", T::Object, "The payment made."),
    required("payment.reference", T::Text, "Payment reference, e.g. PAY-3001."),
    required("payment.payment_date", T::Date, "Date paid."),
    required("payment.method", T::Text, "How it was paid, e.g. ACH transfer."),
    required("payment.amount", T::Amount, "Amount paid; must equal the sum of the bills' amounts."),
    required("bills", T::ObjectList, "The vendor's bills this payment settles (at least one)."),
    required("bills[].bill_number", T::Text, "The vendor's invoice number."),
    optional("bills[].bill_date", T::Date, "Date of the vendor's invoice."),
    required("bills[].amount_paid", T::Amount, "Amount of this payment applied to the bill."),
];

const ORDER_RELEASED_FIELDS: &[FieldSpec] = &[
    required("order", T::Object, "The released order."),
    required("order.number", T::Text, "Order number, e.g. SO-1001."),
    required("order.released_date", T::Date, "Date released for fulfilment."),
    optional("order.customer_po", T::Text, "The customer's purchase order number."),
    optional("order.expected_ship_date", T::Date, "When the order is expected to ship."),
    optional("order.warehouse", T::Text, "Warehouse that will fulfil it."),
    required("order.lines", T::ObjectList, "Lines released (at least one)."),
    optional("order.lines[].sku", T::Text, "Item code."),
    required("order.lines[].description", T::Text, "Item description."),
    required("order.lines[].quantity", T::Decimal, "Quantity released."),
];

const PACKING_SLIP_WITH_INVOICE_FIELDS: &[FieldSpec] = &[
    required("order_number", T::Text, "The sales order shipped."),
    required("invoice", T::Object, "The attached invoice."),
    required("invoice.number", T::Text, "Invoice number."),
    required("invoice.issue_date", T::Date, "Date issued."),
    required("invoice.due_date", T::Date, "Payment due date."),
    required("invoice.amount_due", T::Amount, "Amount to pay."),
    required("packing_slip_pdf", T::Object, "The packing slip PDF."),
    required("packing_slip_pdf.filename", T::Text, "File name shown to the recipient (ends in .pdf)."),
    required("packing_slip_pdf.content_base64", T::Base64, "The PDF's bytes."),
    required("invoice_pdf", T::Object, "The invoice PDF."),
    required("invoice_pdf.filename", T::Text, "File name shown to the recipient (ends in .pdf)."),
    required("invoice_pdf.content_base64", T::Base64, "The PDF's bytes."),
];

const GOODS_RECEIVED_FIELDS: &[FieldSpec] = &[
    required("receipt", T::Object, "The goods receipt."),
    required("receipt.number", T::Text, "Receipt number, e.g. GR-4001."),
    required("receipt.received_date", T::Date, "Date received."),
    required("receipt.purchase_order", T::Text, "Purchase order the goods were received against."),
    optional("receipt.warehouse", T::Text, "Warehouse that received them."),
    optional("receipt.received_by", T::Text, "Who received them."),
    required("receipt.lines", T::ObjectList, "Lines received (at least one)."),
    optional("receipt.lines[].sku", T::Text, "Item code."),
    required("receipt.lines[].description", T::Text, "Item description."),
    required("receipt.lines[].ordered", T::Decimal, "Quantity on the purchase order."),
    required("receipt.lines[].received", T::Decimal, "Quantity received."),
];

const DEPOSIT_PAYMENT_LINK_FIELDS: &[FieldSpec] = &[
    required("order_number", T::Text, "The order the deposit is for."),
    optional("order_date", T::Date, "Date the order was placed."),
    required("order_total", T::Amount, "Order total."),
    required("deposit_amount", T::Amount, "Deposit to pay now (more than zero, at most the order total)."),
    optional("due_date", T::Date, "Pay the deposit by this date."),
    required("payment_url", T::HttpsUrl, "Secure link to pay the deposit."),
];

const INVOICE_PAYMENT_LINK_FIELDS: &[FieldSpec] = &[
    required("invoice", T::Object, "The invoice to pay."),
    required("invoice.number", T::Text, "Invoice number."),
    required("invoice.issue_date", T::Date, "Date issued."),
    required("invoice.due_date", T::Date, "Payment due date."),
    required("invoice.amount_due", T::Amount, "Amount to pay (more than zero)."),
    required("payment_url", T::HttpsUrl, "Secure link to pay the invoice."),
];

const USER_NOTIFICATION_FIELDS: &[FieldSpec] = &[
    required("notification_id", T::Text, "The ERP's id for this notification; part of the Message-ID."),
    required("from_user", T::Object, "The ERP user or process it is from."),
    required("from_user.name", T::Text, "Their name."),
    optional("from_user.email", T::Email, "Their e-mail address."),
    required("title", T::Text, "One-line summary; also the subject."),
    required("message", T::Text, "The message; blank lines separate paragraphs."),
    optional("link", T::Object, "A link to the record in the ERP."),
    required("link.label", T::Text, "Link text, e.g. Open PO-5001."),
    required("link.url", T::HttpsUrl, "Link target."),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_valid_ones() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
            assert!(!kind.description().is_empty());
        }
        assert_eq!("packing-slip-with-invoice".parse::<EventKind>(), Ok(EventKind::PackingSlipWithInvoice));
        let error = "invoice_reminder".parse::<EventKind>().unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("unknown event kind \"invoice_reminder\": use one of overdue_invoice_reminder, ")
        );
    }

    #[test]
    fn field_names_are_unique_and_children_follow_their_parent() {
        for kind in EventKind::ALL {
            let fields = kind.fields();
            for (index, field) in fields.iter().enumerate() {
                assert!(fields[..index].iter().all(|f| f.name != field.name), "{kind}: {} listed twice", field.name);
                if let Some((parent, _)) = field.name.rsplit_once('.') {
                    let parent = parent.trim_end_matches("[]");
                    assert!(
                        fields[..index].iter().any(|f| f.name == parent),
                        "{kind}: {} is listed before its parent",
                        field.name
                    );
                }
            }
        }
    }
}
