//! The SOAP requests this driver sends (`CreateItem` with `MimeContent`, `GetFolder`), written with quick-xml's `Writer` in the schema's fixed element order.
//!
//! Never `format!`: every text and attribute value goes through the writer's escaping, so an
//! address such as `o'brien&co@company.com` cannot break (or inject into) the envelope.

use base64::Engine as _;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

/// SOAP 1.1 envelope namespace. Microsoft's pages print `https://…`; Exchange only accepts `http://`.
pub(crate) const SOAP_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// EWS types namespace (`t:`).
pub(crate) const TYPES_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
/// EWS messages namespace (`m:`).
pub(crate) const MESSAGES_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";

/// The schema version we ask for first. Exchange2010_SP2 has everything this driver uses
/// (MimeContent, ExchangeImpersonation with SmtpAddress, GetFolder) and is accepted by
/// Exchange 2010 SP2, 2013, 2016, 2019, Subscription Edition and Exchange Online; asking for
/// a newer one would lock out the older on-premises servers for no gain. A mailbox on an
/// older Exchange answers `ErrorInvalidSchemaVersionForMailboxVersion`, and the transport
/// asks again once with the version the server reports (as exchangelib does).
pub(crate) const SERVER_VERSION: &str = "Exchange2010_SP2";

/// The EWS operations this driver sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    /// Sends a message.
    CreateItem,
    /// The probe's cheap authenticated read.
    GetFolder,
}

impl Operation {
    /// The operation's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Operation::CreateItem => "CreateItem",
            Operation::GetFolder => "GetFolder",
        }
    }

    /// The quoted `SOAPAction` header value (SOAP 1.1 §6.1.1 wants it quoted).
    pub(crate) fn soap_action(self) -> String {
        let mut action = String::with_capacity(MESSAGES_NS.len() + 16);
        action.push('"');
        action.push_str(MESSAGES_NS);
        action.push('/');
        action.push_str(self.name());
        action.push('"');
        action
    }
}

/// What Exchange does with the created message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Send, keep no copy.
    SendOnly,
    /// Send and save a copy in Sent Items.
    SendAndSaveCopy,
}

impl Disposition {
    fn as_str(self) -> &'static str {
        match self {
            Disposition::SendOnly => "SendOnly",
            Disposition::SendAndSaveCopy => "SendAndSaveCopy",
        }
    }
}

/// A quick-xml writer into memory. Writing into a `Vec` cannot fail, so the `io::Result`s
/// quick-xml returns are unwrapped in one place.
struct Xml(Writer<Vec<u8>>);

impl Xml {
    fn new(capacity: usize) -> Xml {
        let mut xml = Xml(Writer::new(Vec::with_capacity(capacity)));
        xml.event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)));
        xml
    }

    fn event(&mut self, event: Event<'_>) {
        self.0.write_event(event).expect("writing XML into a Vec cannot fail");
    }

    fn start(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.event(Event::Start(BytesStart::new(name).with_attributes(attributes.iter().copied())));
    }

    fn empty(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.event(Event::Empty(BytesStart::new(name).with_attributes(attributes.iter().copied())));
    }

    fn end(&mut self, name: &str) {
        self.event(Event::End(BytesEnd::new(name)));
    }

    /// `<name>text</name>`, the text escaped.
    fn text_element(&mut self, name: &str, text: &str) {
        self.start(name, &[]);
        self.event(Event::Text(BytesText::new(text)));
        self.end(name);
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner()
    }
}

/// `<soap:Envelope><soap:Header>…</soap:Header><soap:Body>` with the schema version and,
/// for app-only OAuth, the impersonated mailbox. The mailbox is named by `SmtpAddress`,
/// which takes any of its addresses, as in Microsoft's impersonation samples
/// (`PrimarySmtpAddress` refuses an alias with `ErrorNonPrimarySmtpAddress`).
fn open_envelope(xml: &mut Xml, version: &str, impersonate: Option<&str>) {
    xml.start("soap:Envelope", &[("xmlns:soap", SOAP_NS), ("xmlns:t", TYPES_NS), ("xmlns:m", MESSAGES_NS)]);
    xml.start("soap:Header", &[]);
    xml.empty("t:RequestServerVersion", &[("Version", version)]);
    if let Some(address) = impersonate {
        xml.start("t:ExchangeImpersonation", &[]);
        xml.start("t:ConnectingSID", &[]);
        xml.text_element("t:SmtpAddress", address);
        xml.end("t:ConnectingSID");
        xml.end("t:ExchangeImpersonation");
    }
    xml.end("soap:Header");
    xml.start("soap:Body", &[]);
}

fn close_envelope(xml: &mut Xml) {
    xml.end("soap:Body");
    xml.end("soap:Envelope");
}

/// A `CreateItem` that sends `mime` (the RFC 5322 bytes, byte for byte, as base64
/// `MimeContent`). `bcc` are the envelope recipients the MIME headers do not name:
/// Exchange takes recipients from the headers, so they must be listed explicitly.
///
/// Element order is the schema's: in `t:Message`, `MimeContent` (from ItemType) comes
/// before `BccRecipients` (from MessageType); in `m:CreateItem`, `SavedItemFolderId`
/// comes before `Items`.
pub(crate) fn create_item(
    version: &str,
    mime: &[u8],
    bcc: &[String],
    disposition: Disposition,
    impersonate: Option<&str>,
) -> Vec<u8> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(mime);
    let mut xml = Xml::new(encoded.len() + 1024 + bcc.len() * 96);
    open_envelope(&mut xml, version, impersonate);
    xml.start("m:CreateItem", &[("MessageDisposition", disposition.as_str())]);
    if disposition == Disposition::SendAndSaveCopy {
        xml.start("m:SavedItemFolderId", &[]);
        xml.empty("t:DistinguishedFolderId", &[("Id", "sentitems")]);
        xml.end("m:SavedItemFolderId");
    }
    xml.start("m:Items", &[]);
    xml.start("t:Message", &[]);
    xml.start("t:MimeContent", &[("CharacterSet", "UTF-8")]);
    // The base64 alphabet holds nothing XML would escape: skip the escaping pass over what
    // may be megabytes.
    xml.event(Event::Text(BytesText::from_escaped(encoded.as_str())));
    xml.end("t:MimeContent");
    if !bcc.is_empty() {
        xml.start("t:BccRecipients", &[]);
        for address in bcc {
            xml.start("t:Mailbox", &[]);
            xml.text_element("t:EmailAddress", address);
            xml.end("t:Mailbox");
        }
        xml.end("t:BccRecipients");
    }
    xml.end("t:Message");
    xml.end("m:Items");
    xml.end("m:CreateItem");
    close_envelope(&mut xml);
    xml.finish()
}

/// A `GetFolder` of the acting mailbox's Sent Items, ids only: the probe's cheap
/// authenticated round trip (see `probe.rs` for why this operation).
pub(crate) fn get_folder(version: &str, impersonate: Option<&str>) -> Vec<u8> {
    let mut xml = Xml::new(1024);
    open_envelope(&mut xml, version, impersonate);
    xml.start("m:GetFolder", &[]);
    xml.start("m:FolderShape", &[]);
    xml.text_element("t:BaseShape", "IdOnly");
    xml.end("m:FolderShape");
    xml.start("m:FolderIds", &[]);
    xml.empty("t:DistinguishedFolderId", &[("Id", "sentitems")]);
    xml.end("m:FolderIds");
    xml.end("m:GetFolder");
    close_envelope(&mut xml);
    xml.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn create_item_has_the_schema_order_and_the_http_envelope_namespace() {
        let xml = text(create_item(
            SERVER_VERSION,
            b"Subject: x\r\n\r\nhi\r\n",
            &["hidden@example.com".into()],
            Disposition::SendOnly,
            None,
        ));
        assert!(xml.contains("xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\""));
        assert!(!xml.contains("https://schemas.xmlsoap.org"));
        assert!(xml.contains("<t:RequestServerVersion Version=\"Exchange2010_SP2\"/>"));
        assert!(xml.contains("<m:CreateItem MessageDisposition=\"SendOnly\">"));
        let order =
            ["<soap:Header>", "</soap:Header>", "<soap:Body>", "<m:Items>", "<t:MimeContent", "<t:BccRecipients>"];
        let positions: Vec<usize> = order.iter().map(|needle| xml.find(needle).unwrap()).collect();
        assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{xml}");
        assert!(!xml.contains("ExchangeImpersonation"));
        assert!(!xml.contains("SavedItemFolderId"));
    }

    #[test]
    fn save_copy_names_sent_items_before_the_items() {
        let xml = text(create_item(SERVER_VERSION, b"x", &[], Disposition::SendAndSaveCopy, None));
        let saved = xml.find("<m:SavedItemFolderId><t:DistinguishedFolderId Id=\"sentitems\"/>").unwrap();
        assert!(saved < xml.find("<m:Items>").unwrap());
        assert!(!xml.contains("BccRecipients"));
    }

    #[test]
    fn impersonation_names_the_mailbox_by_any_of_its_smtp_addresses() {
        // Microsoft's impersonation samples use SmtpAddress, which takes an alias too;
        // PrimarySmtpAddress fails with ErrorNonPrimarySmtpAddress when email_address is one.
        let xml = text(get_folder(SERVER_VERSION, Some("erp@company.com")));
        assert!(
            xml.contains("<t:ExchangeImpersonation><t:ConnectingSID><t:SmtpAddress>erp@company.com</t:SmtpAddress>"),
            "{xml}"
        );
        assert!(!xml.contains("PrimarySmtpAddress"), "{xml}");
    }

    #[test]
    fn the_impersonated_address_is_escaped() {
        let xml = text(get_folder(SERVER_VERSION, Some("o'brien&<co>@company.com")));
        assert!(xml.contains("<t:SmtpAddress>o&apos;brien&amp;&lt;co&gt;@company.com</t:SmtpAddress>"), "{xml}");
        assert_eq!(
            Operation::GetFolder.soap_action(),
            "\"http://schemas.microsoft.com/exchange/services/2006/messages/GetFolder\""
        );
    }
}
