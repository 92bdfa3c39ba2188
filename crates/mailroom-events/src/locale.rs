//! Locales: how dates, numbers and money are written for a recipient (en-US, en-GB, de-DE, fr-FR).
//!
//! A locale is a table of conventions ([`LocaleData`]), so adding one is adding one
//! `const` and listing it in [`Locale::ALL`]; nothing else changes. Calendar facts
//! (which day a date is) come from the `time` crate; a locale only names and orders them.
//! Templates stay in the company's language: a locale changes formatting, not wording.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use time::Date;

/// Which side of the number the currency symbol goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolPlacement {
    /// `$1,234.50`; a currency without a symbol in this locale shows its code and a no-break space: `KWD 1,234.500`.
    Before,
    /// `1.234,50 €`: a no-break space, then the symbol or code.
    After,
}

/// The conventions of one locale.
#[derive(Debug, PartialEq, Eq)]
pub struct LocaleData {
    /// BCP 47 tag, e.g. `en-US`; also the HTML `lang` attribute.
    pub tag: &'static str,
    /// Between integer and fraction digits.
    pub decimal_separator: &'static str,
    /// Between groups of three integer digits.
    pub group_separator: &'static str,
    /// Where the currency symbol goes.
    pub symbol_placement: SymbolPlacement,
    /// Currency symbols this locale uses (CLDR's), by ISO 4217 code; other currencies show their code.
    pub currency_symbols: &'static [(&'static str, &'static str)],
    /// January to December, as written in a long date.
    pub month_names: [&'static str; 12],
    /// A long date with `{day}`, `{month}` (name) and `{year}` placeholders.
    pub long_date_pattern: &'static str,
}

/// A locale for formatting dates and money; deserializes from its tag (`"en-GB"`).
///
/// ```
/// use mailroom_events::Locale;
/// let date = time::macros::date!(2026-11-26);
/// assert_eq!(Locale::EN_US.format_date(date), "November 26, 2026");
/// assert_eq!(Locale::from_tag("en-GB").unwrap().format_date(date), "26 November 2026");
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Locale(&'static LocaleData);

const ENGLISH_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const EN_US: LocaleData = LocaleData {
    tag: "en-US",
    decimal_separator: ".",
    group_separator: ",",
    symbol_placement: SymbolPlacement::Before,
    currency_symbols: &[
        ("USD", "$"),
        ("EUR", "€"),
        ("GBP", "£"),
        ("JPY", "¥"),
        ("CAD", "CA$"),
        ("AUD", "A$"),
        ("NZD", "NZ$"),
        ("MXN", "MX$"),
        ("CNY", "CN¥"),
        ("INR", "₹"),
        ("KRW", "₩"),
        ("ILS", "₪"),
        ("VND", "₫"),
    ],
    month_names: ENGLISH_MONTHS,
    long_date_pattern: "{month} {day}, {year}",
};

const EN_GB: LocaleData = LocaleData {
    tag: "en-GB",
    decimal_separator: ".",
    group_separator: ",",
    symbol_placement: SymbolPlacement::Before,
    currency_symbols: &[
        ("GBP", "£"),
        ("EUR", "€"),
        ("USD", "US$"),
        ("JPY", "JP¥"),
        ("CAD", "CA$"),
        ("AUD", "A$"),
        ("NZD", "NZ$"),
        ("CNY", "CN¥"),
        ("INR", "₹"),
    ],
    month_names: ENGLISH_MONTHS,
    long_date_pattern: "{day} {month} {year}",
};

const DE_DE: LocaleData = LocaleData {
    tag: "de-DE",
    decimal_separator: ",",
    group_separator: ".",
    symbol_placement: SymbolPlacement::After,
    currency_symbols: &[("EUR", "€"), ("USD", "$"), ("GBP", "£"), ("JPY", "¥")],
    month_names: [
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ],
    long_date_pattern: "{day}. {month} {year}",
};

const FR_FR: LocaleData = LocaleData {
    tag: "fr-FR",
    decimal_separator: ",",
    // CLDR's French grouping separator is the narrow no-break space.
    group_separator: "\u{202f}",
    symbol_placement: SymbolPlacement::After,
    currency_symbols: &[("EUR", "€"), ("USD", "$US"), ("GBP", "£GB"), ("JPY", "JPY")],
    month_names: [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ],
    long_date_pattern: "{day} {month} {year}",
};

impl Locale {
    /// American English: `November 26, 2026`, `$1,234.50`.
    pub const EN_US: Locale = Locale(&EN_US);
    /// British English: `26 November 2026`, `£1,234.50`.
    pub const EN_GB: Locale = Locale(&EN_GB);
    /// German (Germany): `26. November 2026`, `1.234,50 €`.
    pub const DE_DE: Locale = Locale(&DE_DE);
    /// French (France): `26 novembre 2026`, `1 234,50 €`.
    pub const FR_FR: Locale = Locale(&FR_FR);

    /// Every built-in locale; [`Locale::from_tag`] and payloads accept these tags.
    pub const ALL: [Locale; 4] = [Locale::EN_US, Locale::EN_GB, Locale::DE_DE, Locale::FR_FR];

    /// A locale from your own conventions (for code that builds payloads itself).
    pub const fn new(data: &'static LocaleData) -> Locale {
        Locale(data)
    }

    /// The built-in locale for a BCP 47 tag; case and `_`/`-` do not matter (`en_gb` works).
    pub fn from_tag(tag: &str) -> Option<Locale> {
        let wanted = tag.replace('_', "-");
        Locale::ALL.into_iter().find(|locale| locale.0.tag.eq_ignore_ascii_case(&wanted))
    }

    /// The BCP 47 tag, e.g. `en-US`.
    pub fn tag(self) -> &'static str {
        self.0.tag
    }

    /// The conventions behind this locale.
    pub fn data(self) -> &'static LocaleData {
        self.0
    }

    /// A long date as this locale writes it, e.g. `November 26, 2026`.
    pub fn format_date(self, date: Date) -> String {
        let month_name = self.0.month_names[usize::from(u8::from(date.month())) - 1];
        let mut out = String::with_capacity(self.0.long_date_pattern.len() + 16);
        let mut rest = self.0.long_date_pattern;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open..];
            let (value, skip): (&dyn fmt::Display, usize) = if after.starts_with("{day}") {
                (&date.day(), "{day}".len())
            } else if after.starts_with("{month}") {
                (&month_name, "{month}".len())
            } else if after.starts_with("{year}") {
                (&date.year(), "{year}".len())
            } else {
                (&'{', 1)
            };
            // Writing to a String cannot fail.
            let _ = fmt::Write::write_fmt(&mut out, format_args!("{value}"));
            rest = &after[skip..];
        }
        out.push_str(rest);
        out
    }
}

impl Default for Locale {
    /// `en-US`, the locale of a payload that names none.
    fn default() -> Locale {
        Locale::EN_US
    }
}

impl fmt::Debug for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Locale({})", self.0.tag)
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.tag)
    }
}

impl Serialize for Locale {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.tag)
    }
}

impl<'de> Deserialize<'de> for Locale {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Locale, D::Error> {
        let tag = String::deserialize(deserializer)?;
        Locale::from_tag(&tag).ok_or_else(|| {
            let known: Vec<&str> = Locale::ALL.iter().map(|l| l.tag()).collect();
            de::Error::custom(format!("\"{tag}\" is not a supported locale; use one of {}", known.join(", ")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    /// The date table: (date, locale, expected long date).
    #[test]
    fn long_dates_per_locale() {
        let table = [
            (date!(2026 - 11 - 26), Locale::EN_US, "November 26, 2026"),
            (date!(2026 - 11 - 26), Locale::EN_GB, "26 November 2026"),
            (date!(2026 - 11 - 26), Locale::DE_DE, "26. November 2026"),
            (date!(2026 - 11 - 26), Locale::FR_FR, "26 novembre 2026"),
            (date!(2027 - 01 - 01), Locale::EN_US, "January 1, 2027"),
            (date!(2027 - 01 - 01), Locale::EN_GB, "1 January 2027"),
            (date!(2028 - 02 - 29), Locale::EN_US, "February 29, 2028"),
            (date!(2026 - 03 - 09), Locale::DE_DE, "9. März 2026"),
            (date!(2026 - 08 - 15), Locale::FR_FR, "15 août 2026"),
        ];
        for (date, locale, expected) in table {
            assert_eq!(locale.format_date(date), expected, "{date} {locale}");
        }
    }

    #[test]
    fn tags_parse_loosely_and_unknown_tags_name_the_supported_ones() {
        assert_eq!(Locale::from_tag("en_gb"), Some(Locale::EN_GB));
        assert_eq!(Locale::from_tag("EN-us"), Some(Locale::EN_US));
        assert_eq!(Locale::from_tag("en"), None);
        let error = serde_json::from_str::<Locale>("\"xx-YY\"").unwrap_err().to_string();
        assert!(error.contains("en-US, en-GB, de-DE, fr-FR"), "{error}");
        assert_eq!(serde_json::to_string(&Locale::DE_DE).unwrap(), "\"de-DE\"");
    }
}
