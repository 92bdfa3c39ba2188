//! Reads an EWS reply body with quick-xml's reader: SOAP faults and `*ResponseMessage` elements, matched by local name so any namespace prefix works; never panics, bounded in depth and text.

use std::fmt;
use std::time::Duration;

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};

/// The most nested elements we follow; real replies use about ten.
const MAX_DEPTH: usize = 128;
/// The most text kept per field; longer texts are cut.
const MAX_TEXT: usize = 4096;

/// A `t:MessageXml` block: `t:Value Name="…"` pairs and plain child elements
/// (`LineNumber`, `Violation`, …), in document order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MessageXml {
    /// `(Name attribute, text)` of each `Value` element.
    pub values: Vec<(String, String)>,
    /// `(local name, text)` of every other child element.
    pub elements: Vec<(String, String)>,
}

/// The longest `BackOffMilliseconds` taken as it is: a larger hint (or one too large for a
/// number) is cut to this, so no deadline computed from it can overflow.
pub(crate) const MAX_BACK_OFF: Duration = Duration::from_secs(3600);

impl MessageXml {
    /// The text of the `Value` element with this `Name`.
    pub(crate) fn value(&self, wanted: &str) -> Option<&str> {
        self.values.iter().find(|(name, _)| name == wanted).map(|(_, value)| value.trim())
    }

    /// `BackOffMilliseconds`, the server's throttling hint, at most [`MAX_BACK_OFF`].
    pub(crate) fn back_off(&self) -> Option<Duration> {
        let digits = self.value("BackOffMilliseconds")?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let millis = digits.parse::<u64>().unwrap_or(u64::MAX);
        Some(Duration::from_millis(millis).min(MAX_BACK_OFF))
    }

    /// The schema violation text of an `ErrorSchemaValidation` fault, with its position.
    pub(crate) fn violation(&self) -> Option<String> {
        let get = |wanted: &str| self.elements.iter().find(|(name, _)| name == wanted).map(|(_, text)| text.as_str());
        let violation = get("Violation")?;
        Some(match (get("LineNumber"), get("LinePosition")) {
            (Some(line), Some(position)) => format!("{violation} (request line {line}, position {position})"),
            _ => violation.to_owned(),
        })
    }
}

/// A SOAP `Fault`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fault {
    /// `faultcode` without its prefix (`ErrorSchemaValidation`, `Client`, …).
    pub code: String,
    /// `faultstring`.
    pub text: String,
    /// `detail/ResponseCode`, when EWS gave one.
    pub response_code: Option<String>,
    /// `detail/Message`.
    pub message: Option<String>,
    /// `detail/MessageXml`.
    pub message_xml: MessageXml,
}

impl Fault {
    /// The EWS response code: `detail/ResponseCode`, else the fault code.
    pub(crate) fn code(&self) -> &str {
        self.response_code.as_deref().unwrap_or(&self.code)
    }
}

/// One `*ResponseMessage` element (`CreateItemResponseMessage`, `GetFolderResponseMessage`, …).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ResponseMessage {
    /// The element's local name.
    pub element: String,
    /// `ResponseClass`: `Success`, `Warning` or `Error`.
    pub class: String,
    /// `ResponseCode` (`NoError`, `ErrorSendAsDenied`, …).
    pub code: Option<String>,
    /// `MessageText`.
    pub text: Option<String>,
    /// `MessageXml`.
    pub message_xml: MessageXml,
    /// The first `ItemId`/`FolderId` `Id` attribute inside it.
    pub id: Option<String>,
}

impl ResponseMessage {
    /// True for `ResponseClass="Success"` (or `Warning` with `NoError`).
    pub(crate) fn is_success(&self) -> bool {
        let no_error = self.code.as_deref().is_none_or(|code| code == "NoError");
        (self.class == "Success" || self.class == "Warning") && no_error
    }

    /// The response code, or the class when the code is missing.
    pub(crate) fn code(&self) -> &str {
        self.code.as_deref().unwrap_or(&self.class)
    }
}

/// The SOAP header's `ServerVersionInfo`: which Exchange answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ServerVersion {
    /// `MajorVersion` (8 = Exchange 2007, 14 = 2010, 15 = 2013 and later).
    pub major: Option<u32>,
    /// `MinorVersion`.
    pub minor: Option<u32>,
    /// `Version`, a schema name (`Exchange2010_SP1`, `V2017_07_11`), when sent.
    pub version: Option<String>,
}

/// The schema versions older than the one this driver asks for, oldest first. All of them
/// have what the requests use (`MimeContent`, `ExchangeImpersonation`, `GetFolder`).
const OLDER_SCHEMAS: [&str; 4] = ["Exchange2007", "Exchange2007_SP1", "Exchange2010", "Exchange2010_SP1"];

impl ServerVersion {
    /// The older schema version this server supports, as exchangelib reads it: its
    /// `Version` when that names an older schema, else its major and minor numbers; `None`
    /// when the server reports its own version as at least ours (or nothing usable).
    pub(crate) fn older_schema(&self) -> Option<&'static str> {
        if let Some(named) = &self.version
            && let Some(known) = OLDER_SCHEMAS.iter().find(|known| known.eq_ignore_ascii_case(named.trim()))
        {
            return Some(known);
        }
        match (self.major?, self.minor.unwrap_or(0)) {
            (8, 0) => Some("Exchange2007"),
            (8, _) => Some("Exchange2007_SP1"),
            (14, 0) => Some("Exchange2010"),
            (14, 1) => Some("Exchange2010_SP1"),
            _ => None,
        }
    }
}

/// A parsed reply: a fault, or response messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The SOAP fault, if the body held one.
    pub fault: Option<Fault>,
    /// The response messages, in order.
    pub messages: Vec<ResponseMessage>,
    /// The header's `ServerVersionInfo`, when sent.
    pub server_version: Option<ServerVersion>,
}

impl Reply {
    /// Scrubs the request's secrets from every text kept (an echoing server could quote
    /// them in a fault or a message text).
    pub(crate) fn scrub(&mut self, scrubber: &mailroom_core::Scrubber) {
        let xml = |xml: &mut MessageXml| {
            for (name, text) in xml.values.iter_mut().chain(xml.elements.iter_mut()) {
                scrubber.scrub_in_place(name);
                scrubber.scrub_in_place(text);
            }
        };
        if let Some(fault) = &mut self.fault {
            scrubber.scrub_in_place(&mut fault.code);
            scrubber.scrub_in_place(&mut fault.text);
            for text in [&mut fault.response_code, &mut fault.message].into_iter().flatten() {
                scrubber.scrub_in_place(text);
            }
            xml(&mut fault.message_xml);
        }
        if let Some(version) = self.server_version.as_mut().and_then(|v| v.version.as_mut()) {
            scrubber.scrub_in_place(version);
        }
        for message in &mut self.messages {
            scrubber.scrub_in_place(&mut message.element);
            scrubber.scrub_in_place(&mut message.class);
            for text in [&mut message.code, &mut message.text, &mut message.id].into_iter().flatten() {
                scrubber.scrub_in_place(text);
            }
            xml(&mut message.message_xml);
        }
    }
}

/// Why a body is not a usable SOAP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// Empty body.
    Empty,
    /// Not UTF-8.
    NotUtf8,
    /// Not well-formed XML.
    Malformed(String),
    /// The document ends inside an element.
    Truncated,
    /// Well-formed XML, but not a SOAP envelope.
    NotSoap(String),
    /// Deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl ParseError {
    /// The error with the request's secrets scrubbed from any quoted text.
    pub(crate) fn scrubbed(self, scrubber: &mailroom_core::Scrubber) -> ParseError {
        match self {
            ParseError::Malformed(reason) => ParseError::Malformed(scrubber.scrub(&reason)),
            ParseError::NotSoap(root) => ParseError::NotSoap(scrubber.scrub(&root)),
            other => other,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => f.write_str("the body is empty"),
            ParseError::NotUtf8 => f.write_str("the body is not UTF-8 text"),
            ParseError::Malformed(reason) => write!(f, "the body is not well-formed XML: {reason}"),
            ParseError::Truncated => f.write_str("the XML ends in the middle of the document (truncated reply)"),
            ParseError::NotSoap(root) => write!(f, "the XML is not a SOAP envelope (its root element is <{root}>)"),
            ParseError::TooDeep => write!(f, "the XML nests deeper than {MAX_DEPTH} elements"),
        }
    }
}

/// Which structure the reader is inside.
enum Scope {
    Fault(Fault),
    Message(ResponseMessage),
}

fn local(name: &str) -> String {
    name.to_owned()
}

fn attribute(start: &BytesStart<'_>, wanted: &str) -> Option<String> {
    start.attributes().flatten().find(|a| a.key.local_name().as_ref() == wanted).map(|a| {
        a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map(|v| v.into_owned())
            .unwrap_or_else(|_| a.value.as_ref().to_owned())
    })
}

fn push_text(buffer: &mut String, text: &str) {
    let room = MAX_TEXT.saturating_sub(buffer.len());
    if room == 0 {
        return;
    }
    match text.char_indices().nth(room) {
        Some((cut, _)) => buffer.push_str(&text[..cut]),
        None => buffer.push_str(text),
    }
}

/// Parses a reply body.
pub(crate) fn parse(body: &[u8]) -> Result<Reply, ParseError> {
    let text = std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
    let text = text.trim_start_matches('\u{feff}');
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let mut reader = Reader::from_str(text);
    let mut reply = Reply::default();
    // Local names of the open elements.
    let mut stack: Vec<String> = Vec::new();
    let mut scope: Option<(usize, Scope)> = None;
    // Depth of the open MessageXml element inside the scope, if any.
    let mut message_xml_depth: Option<usize> = None;
    let mut value_name: Option<String> = None;
    let mut text_buffer = String::new();
    let mut saw_root = false;
    loop {
        let event = match reader.read_event() {
            Ok(event) => event,
            // A construct still open when the input ends (a tag, an attribute value, a
            // comment): the reply was cut off.
            Err(quick_xml::Error::Syntax(_)) if reader.buffer_position() as usize >= text.len() => {
                return Err(ParseError::Truncated);
            }
            Err(e) => return Err(ParseError::Malformed(format!("{e} (at byte {})", reader.error_position()))),
        };
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let is_empty = matches!(event, Event::Empty(_));
                let name = local(start.local_name().as_ref());
                if stack.is_empty() {
                    if saw_root {
                        return Err(ParseError::Malformed("a second root element".into()));
                    }
                    saw_root = true;
                    if name != "Envelope" {
                        return Err(ParseError::NotSoap(name));
                    }
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(ParseError::TooDeep);
                }
                let depth = stack.len();
                text_buffer.clear();
                if name == "ServerVersionInfo" && stack.last().is_some_and(|p| p == "Header") {
                    let number = |wanted: &str| attribute(start, wanted).and_then(|n| n.trim().parse::<u32>().ok());
                    reply.server_version = Some(ServerVersion {
                        major: number("MajorVersion"),
                        minor: number("MinorVersion"),
                        version: attribute(start, "Version"),
                    });
                }
                match &mut scope {
                    None if name == "Fault" && stack.last().is_some_and(|p| p == "Body") => {
                        scope = Some((depth, Scope::Fault(Fault::default())));
                    }
                    None if name.ends_with("ResponseMessage")
                        && stack.last().is_some_and(|p| p == "ResponseMessages") =>
                    {
                        let message = ResponseMessage {
                            element: name.clone(),
                            class: attribute(start, "ResponseClass").unwrap_or_default(),
                            ..ResponseMessage::default()
                        };
                        scope = Some((depth, Scope::Message(message)));
                    }
                    Some((_, scope)) => {
                        if name == "MessageXml" && message_xml_depth.is_none() {
                            message_xml_depth = Some(depth);
                        } else if message_xml_depth.is_some_and(|d| depth == d + 1) && name == "Value" {
                            value_name = Some(attribute(start, "Name").unwrap_or_default());
                        } else if let Scope::Message(message) = scope
                            && message.id.is_none()
                            && (name == "ItemId" || name == "FolderId")
                        {
                            message.id = attribute(start, "Id");
                        }
                    }
                    None => {}
                }
                if is_empty {
                    // An empty element closes at once: treat it like Start + End with no text.
                    stack.push(name);
                    close_element(
                        &mut stack,
                        &mut scope,
                        &mut message_xml_depth,
                        &mut value_name,
                        &mut text_buffer,
                        &mut reply,
                    );
                } else {
                    stack.push(name);
                }
            }
            Event::End(_) => {
                if stack.is_empty() {
                    return Err(ParseError::Malformed("an end tag without a start tag".into()));
                }
                close_element(
                    &mut stack,
                    &mut scope,
                    &mut message_xml_depth,
                    &mut value_name,
                    &mut text_buffer,
                    &mut reply,
                );
            }
            Event::Text(text) => {
                if stack.is_empty() && !text.xml10_content().trim().is_empty() {
                    return Err(ParseError::Malformed("text outside the root element".into()));
                }
                push_text(&mut text_buffer, &text.xml10_content());
            }
            Event::CData(data) => push_text(&mut text_buffer, &data.xml10_content()),
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match resolve_predefined_entity(&reference) {
                        Some(text) => text.to_owned(),
                        None => return Err(ParseError::Malformed(format!("unknown entity &{};", &*reference))),
                    },
                    Err(e) => return Err(ParseError::Malformed(e.to_string())),
                };
                push_text(&mut text_buffer, &resolved);
            }
            Event::DocType(_) => return Err(ParseError::Malformed("a DOCTYPE, which EWS never sends".into())),
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(ParseError::Truncated);
    }
    if !saw_root {
        return Err(ParseError::Malformed("no root element".into()));
    }
    Ok(reply)
}

/// Closes the innermost open element, storing its text where it belongs.
fn close_element(
    stack: &mut Vec<String>,
    scope: &mut Option<(usize, Scope)>,
    message_xml_depth: &mut Option<usize>,
    value_name: &mut Option<String>,
    text_buffer: &mut String,
    reply: &mut Reply,
) {
    let Some(name) = stack.pop() else { return };
    let depth = stack.len();
    let text = text_buffer.trim().to_owned();
    text_buffer.clear();
    let Some((scope_depth, current)) = scope else { return };
    if depth == *scope_depth {
        match scope.take() {
            Some((_, Scope::Fault(fault))) if reply.fault.is_none() => reply.fault = Some(fault),
            Some((_, Scope::Message(message))) => reply.messages.push(message),
            Some((_, Scope::Fault(_))) | None => {}
        }
        *message_xml_depth = None;
        return;
    }
    if let Some(xml_depth) = *message_xml_depth {
        if depth == xml_depth {
            *message_xml_depth = None;
            return;
        }
        if depth == xml_depth + 1 {
            let target = match current {
                Scope::Fault(fault) => &mut fault.message_xml,
                Scope::Message(message) => &mut message.message_xml,
            };
            match value_name.take() {
                Some(value) if name == "Value" => target.values.push((value, text)),
                _ => target.elements.push((name, text)),
            }
        }
        return;
    }
    match current {
        Scope::Fault(fault) => match name.as_str() {
            "faultcode" => {
                fault.code = text.rsplit_once(':').map_or(text.as_str(), |(_, code)| code).to_owned();
            }
            "faultstring" => fault.text = text,
            "ResponseCode" => fault.response_code = Some(text),
            "Message" => fault.message = Some(text),
            _ => {}
        },
        Scope::Message(message) if depth == *scope_depth + 1 => match name.as_str() {
            "ResponseCode" => message.code = Some(text),
            "MessageText" => message.text = Some(text),
            _ => {}
        },
        Scope::Message(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SUCCESS: &str = r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><h:ServerVersionInfo MajorVersion="15" xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types"/></s:Header><s:Body><m:CreateItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><m:ResponseMessages><m:CreateItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items/></m:CreateItemResponseMessage></m:ResponseMessages></m:CreateItemResponse></s:Body></s:Envelope>"#;

    #[test]
    fn success_and_prefixes_do_not_matter() {
        let reply = parse(SUCCESS.as_bytes()).unwrap();
        assert_eq!(reply.messages.len(), 1);
        assert!(reply.messages[0].is_success());
        let renamed = SUCCESS.replace("m:", "messages:").replace("s:", "soap12:");
        assert_eq!(parse(renamed.as_bytes()).unwrap().messages, reply.messages);
        let default_ns = SUCCESS.replace("m:", "");
        assert_eq!(parse(default_ns.as_bytes()).unwrap().messages[0].code.as_deref(), Some("NoError"));
    }

    #[test]
    fn error_text_is_unescaped_and_message_xml_values_are_read() {
        let body = r#"<Envelope><Body><R><ResponseMessages><CreateItemResponseMessage ResponseClass="Error"><MessageText>Try &lt;later&gt; &amp; again &#x263A;</MessageText><ResponseCode>ErrorServerBusy</ResponseCode><MessageXml><t:Value Name="BackOffMilliseconds">5000</t:Value></MessageXml></CreateItemResponseMessage></ResponseMessages></R></Body></Envelope>"#;
        let message = &parse(body.as_bytes()).unwrap().messages[0];
        assert_eq!(message.text.as_deref(), Some("Try <later> & again ☺"));
        assert_eq!(message.message_xml.back_off(), Some(Duration::from_millis(5000)));
        assert!(!message.is_success());
    }

    #[test]
    fn broken_bodies_are_errors() {
        assert_eq!(parse(b""), Err(ParseError::Empty));
        assert_eq!(parse(b"\xff\xfe<"), Err(ParseError::NotUtf8));
        assert_eq!(parse(&SUCCESS.as_bytes()[..200]), Err(ParseError::Truncated));
        assert!(matches!(parse(b"<html><body>Error</body></html>"), Err(ParseError::NotSoap(root)) if root == "html"));
        assert!(matches!(parse(b"<Envelope><a></b></Envelope>"), Err(ParseError::Malformed(_))));
        assert!(matches!(parse(b"<Envelope/><Envelope/>"), Err(ParseError::Malformed(_))));
        assert!(matches!(parse(b"<!DOCTYPE x [<!ENTITY a \"b\">]><Envelope/>"), Err(ParseError::Malformed(_))));
        let deep = format!("<Envelope>{}", "<a>".repeat(200));
        assert_eq!(parse(deep.as_bytes()), Err(ParseError::TooDeep));
    }

    #[test]
    fn back_off_is_bounded_and_the_server_version_is_read_from_the_header() {
        let xml = |millis: &str| MessageXml {
            values: vec![("BackOffMilliseconds".into(), millis.into())],
            elements: Vec::new(),
        };
        assert_eq!(xml(" 1500 ").back_off(), Some(Duration::from_millis(1500)));
        assert_eq!(xml("99999999999").back_off(), Some(MAX_BACK_OFF));
        assert_eq!(xml("184467440737095516150000").back_off(), Some(MAX_BACK_OFF), "beyond u64");
        assert_eq!(xml("-5").back_off(), None);
        assert_eq!(xml("").back_off(), None);

        let version = parse(SUCCESS.as_bytes()).unwrap().server_version.unwrap();
        assert_eq!((version.major, version.minor, version.older_schema()), (Some(15), None, None));
        let older = |major, minor, named: Option<&str>| {
            ServerVersion { major, minor, version: named.map(str::to_owned) }.older_schema()
        };
        assert_eq!(older(Some(14), Some(1), None), Some("Exchange2010_SP1"));
        assert_eq!(older(Some(8), Some(3), None), Some("Exchange2007_SP1"));
        assert_eq!(older(Some(15), Some(1), Some("V2017_07_11")), None);
        assert_eq!(older(None, None, Some("exchange2010")), Some("Exchange2010"));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&body);
        }

        #[test]
        fn arbitrary_xmlish_text_never_panics(body in "[<>/=\"a-zA-Z:&#;! ?\\-\\[\\]]{0,300}") {
            let _ = parse(body.as_bytes());
        }

        #[test]
        fn any_cut_of_a_real_reply_is_an_error_or_the_reply(cut in 0usize..SUCCESS.len()) {
            // Cutting inside a multi-byte char cannot happen: the fixture is ASCII.
            let result = parse(&SUCCESS.as_bytes()[..cut]);
            prop_assert!(result.is_err());
        }
    }
}
