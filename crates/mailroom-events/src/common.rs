//! Payload parts every event kind shares: recipient, company branding, e-mail addresses, https links, dates, PDF files.

use std::fmt;

use base64::Engine as _;
use mailroom_core::{Address, Mailbox};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// An e-mail address, checked when the payload is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailAddress(Address);

impl EmailAddress {
    /// The parsed address.
    pub fn address(&self) -> &Address {
        &self.0
    }

    /// Parses `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<EmailAddress, String> {
        text.trim()
            .parse::<Address>()
            .map(EmailAddress)
            .map_err(|e| format!("\"{text}\" is not an e-mail address ({e})"))
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for EmailAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EmailAddress, D::Error> {
        let text = String::deserialize(deserializer)?;
        EmailAddress::parse(&text).map_err(de::Error::custom)
    }
}

/// An absolute `https://` URL. Anything else — `http:`, `javascript:`, `data:`, a relative
/// path — is refused when the payload is read, so no template can turn it into a link.
///
/// ```
/// use mailroom_events::HttpsUrl;
/// assert!(HttpsUrl::parse("https://pay.example.com/i/INV-1001").is_ok());
/// assert!(HttpsUrl::parse("http://pay.example.com/").is_err());
/// assert!(HttpsUrl::parse("javascript:alert(1)").is_err());
/// assert!(HttpsUrl::parse("/pay/INV-1001").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpsUrl(String);

impl HttpsUrl {
    /// Checks `text` is an absolute https URL with a host; the error says why not.
    pub fn parse(text: &str) -> Result<HttpsUrl, String> {
        let parsed = match url::Url::parse(text) {
            Ok(parsed) => parsed,
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                return Err(format!("\"{text}\" is a relative URL: use an absolute https:// URL"));
            }
            Err(e) => return Err(format!("\"{text}\" is not a URL ({e})")),
        };
        if parsed.scheme() != "https" {
            return Err(format!(
                "\"{text}\" uses the {}: scheme: only absolute https:// URLs are allowed",
                parsed.scheme()
            ));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(format!("\"{text}\" has no host"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            // A link like https://bank.com@evil.example/ shows one host and opens another.
            return Err(format!("\"{text}\" carries a user name or password: remove the part before @"));
        }
        // The normalised form: percent-encoded, so it is safe inside an attribute and a text part.
        Ok(HttpsUrl(parsed.into()))
    }

    /// The URL, normalised.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HttpsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for HttpsUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for HttpsUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<HttpsUrl, D::Error> {
        let text = String::deserialize(deserializer)?;
        HttpsUrl::parse(&text).map_err(de::Error::custom)
    }
}

/// Serde for `time::Date` as `YYYY-MM-DD` (ISO 8601 calendar date).
pub(crate) mod iso_date {
    use serde::de::{self, Deserializer};
    use serde::{Deserialize, Serializer};
    use time::Date;
    use time::macros::format_description;

    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
        format_description!("[year]-[month]-[day]");

    pub(crate) fn parse(text: &str) -> Result<Date, String> {
        Date::parse(text, FORMAT).map_err(|e| format!("\"{text}\" is not a date in the form YYYY-MM-DD ({e})"))
    }

    pub(crate) fn format(date: Date) -> String {
        // Formatting a valid Date with this description cannot fail.
        date.format(FORMAT).unwrap_or_default()
    }

    pub(crate) fn serialize<S: Serializer>(date: &Date, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*date))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Date, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).map_err(de::Error::custom)
    }

    /// The same for `Option<Date>` (absent or null is `None`).
    pub(crate) mod option {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(date: &Option<Date>, serializer: S) -> Result<S::Ok, S::Error> {
            match date {
                Some(date) => serializer.serialize_str(&format(*date)),
                None => serializer.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Date>, D::Error> {
            match Option::<String>::deserialize(deserializer)? {
                Some(text) => parse(&text).map(Some).map_err(de::Error::custom),
                None => Ok(None),
            }
        }
    }
}

/// Who the e-mail goes to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    /// The person or company as greeted in the message, e.g. `Ada Lovelace` or `Acme Corp Accounts Payable`.
    pub name: String,
    /// Their e-mail address (the To header).
    pub email: EmailAddress,
    /// Further addresses copied on the message (Cc), e.g. the customer's accounts team.
    #[serde(default)]
    pub cc: Vec<EmailAddress>,
}

impl Recipient {
    /// The To mailbox: name and address.
    pub fn mailbox(&self) -> Mailbox {
        Mailbox::new(Some(self.name.clone()), self.email.address().clone())
    }
}

/// The sending company's branding, shown in every message's header and footer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Company {
    /// Trading name, e.g. `Northwind Traders`.
    pub name: String,
    /// Postal address, one line per entry, shown in the footer.
    #[serde(default)]
    pub address_lines: Vec<String>,
    /// Where customers write back; used as the message's Reply-To so replies do not go to the ERP's sender.
    pub support_email: EmailAddress,
    /// A phone number for questions, shown as written.
    pub support_phone: Option<String>,
    /// Logo image (absolute https URL), shown at the top with the company name as its alt text.
    pub logo_url: Option<HttpsUrl>,
    /// The company's web site (absolute https URL), linked in the footer.
    pub website_url: Option<HttpsUrl>,
}

impl Company {
    /// The Reply-To mailbox: the company name at its support address.
    pub fn support_mailbox(&self) -> Mailbox {
        Mailbox::new(Some(self.name.clone()), self.support_email.address().clone())
    }
}

/// A PDF carried inside the payload as base64, so the payload is self-contained: the
/// renderer reads no files, and an ERP that posts JSON needs no shared disk.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PdfFile {
    /// The file name the recipient sees, e.g. `Packing slip SO-1001.pdf` (non-ASCII is fine).
    pub filename: String,
    /// The PDF's bytes, base64-encoded (standard alphabet, padding optional, line breaks allowed).
    #[serde(
        rename = "content_base64",
        serialize_with = "serialize_size_only",
        deserialize_with = "deserialize_base64"
    )]
    pub content: Vec<u8>,
}

impl fmt::Debug for PdfFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PdfFile").field("filename", &self.filename).field("bytes", &self.content.len()).finish()
    }
}

impl PdfFile {
    /// Checks the name and that the bytes are a PDF; the error says what is wrong.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.filename.trim().is_empty() {
            return Err("the file name is empty".into());
        }
        if self.filename.contains(['/', '\\', '\r', '\n', '\0']) {
            return Err(format!(
                "\"{}\" is not a bare file name: remove path separators and line breaks",
                self.filename.escape_debug()
            ));
        }
        if !self.filename.to_ascii_lowercase().ends_with(".pdf") {
            return Err(format!("\"{}\" does not end in .pdf", self.filename));
        }
        if !self.content.starts_with(b"%PDF-") {
            return Err(format!("the content of \"{}\" is not a PDF (it does not start with %PDF-)", self.filename));
        }
        Ok(())
    }
}

/// Templates see the file's size, never its bytes: copying a PDF into the template
/// context would cost time and could leak it into a body.
fn serialize_size_only<S: Serializer>(content: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(content.len() as u64)
}

fn deserialize_base64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(deserializer)?;
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(compact.trim_end_matches('='))
        .map_err(|e| de::Error::custom(format!("not valid base64 ({e})")))
}
