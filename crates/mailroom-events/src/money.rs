//! Exact decimal numbers from event payloads, ISO 4217 currencies, and money in integer minor units.
//!
//! Payloads carry amounts as decimal strings (`"1250.00"`) or JSON integers, never as
//! JSON numbers with a fraction: those are binary floats once parsed and would silently
//! lose cents. A [`Decimal`] becomes [`Money`] (an `i64` count of minor units) only
//! against a [`Currency`], which knows how many minor units it has.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The most significant digits a [`Decimal`] may have; keeps every value exact in an `i64`.
const MAX_DIGITS: usize = 18;

/// The largest magnitude with [`MAX_DIGITS`] digits.
const MAX_MAGNITUDE: u64 = 999_999_999_999_999_999;

/// An exact decimal number as written in the payload, e.g. `"1250.50"` or `"-3"`.
///
/// ```
/// use mailroom_events::{Currency, Decimal};
/// let amount: Decimal = "1250.5".parse().unwrap();
/// let money = amount.to_money(Currency::from_code("USD").unwrap()).unwrap();
/// assert_eq!(money.minor_units(), 125_050);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decimal {
    /// All digits without the decimal point, signed: `12.50` is 1250.
    mantissa: i64,
    /// How many of the mantissa's digits are after the decimal point: `12.50` has 2.
    scale: u32,
}

/// Why a decimal string or an amount in a currency was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// The text is not a plain decimal number.
    #[error(
        "\"{0}\" is not a decimal number: write digits with an optional leading minus and one decimal point, e.g. \"1250.00\" (no thousands separators, exponents or currency symbols)"
    )]
    NotADecimal(String),
    /// The number has more digits than fit exactly.
    #[error("\"{0}\" has more than {MAX_DIGITS} digits")]
    TooManyDigits(String),
    /// The amount has more decimal places than the currency's minor unit allows.
    #[error("{amount} has more decimal places than {currency} allows ({minor_digits})")]
    TooPrecise {
        /// The amount as written.
        amount: Decimal,
        /// The currency code.
        currency: &'static str,
        /// The currency's number of minor-unit digits.
        minor_digits: u8,
    },
    /// The amount does not fit in minor units.
    #[error("{0} is too large")]
    Overflow(Decimal),
}

impl Decimal {
    /// The number `mantissa × 10^-scale`, e.g. `Decimal::new(1250, 2)` is 12.50.
    ///
    /// Panics if `scale` exceeds 18 (no `i64` has more digits).
    pub const fn new(mantissa: i64, scale: u32) -> Decimal {
        assert!(scale <= MAX_DIGITS as u32, "scale above 18 digits");
        Decimal { mantissa, scale }
    }

    /// Whether the number is below zero.
    pub fn is_negative(self) -> bool {
        self.mantissa < 0
    }

    /// Whether the number is zero (`0`, `0.00`, `-0`).
    pub fn is_zero(self) -> bool {
        self.mantissa == 0
    }

    /// The amount in `currency`'s minor units (cents for USD, yen for JPY, fils for KWD).
    ///
    /// Refuses amounts with more significant decimal places than the currency has:
    /// `"10.50"` JPY is an error, `"10.00"` JPY is 10 yen.
    pub fn to_money(self, currency: Currency) -> Result<Money, AmountError> {
        let minor_digits = u32::from(currency.minor_digits());
        let minor_units = if self.scale > minor_digits {
            let divisor = 10_i64.pow(self.scale - minor_digits);
            if self.mantissa % divisor != 0 {
                return Err(AmountError::TooPrecise {
                    amount: self,
                    currency: currency.code(),
                    minor_digits: currency.minor_digits(),
                });
            }
            self.mantissa / divisor
        } else {
            10_i64
                .checked_pow(minor_digits - self.scale)
                .and_then(|factor| self.mantissa.checked_mul(factor))
                .ok_or(AmountError::Overflow(self))?
        };
        Ok(Money { minor_units, currency })
    }

    /// The number's integer digits and its fraction digits (exactly `scale` of them), without sign.
    fn split_digits(self) -> (u64, u64) {
        let magnitude = self.mantissa.unsigned_abs();
        let divisor = 10_u64.pow(self.scale);
        (magnitude / divisor, magnitude % divisor)
    }

    /// The number with the locale's decimal and grouping separators, keeping every written decimal place.
    pub fn format(self, locale: crate::Locale) -> String {
        let mut out = String::with_capacity(24);
        self.write_unsigned(&mut out, locale);
        if self.is_negative() {
            out.insert(0, '-');
        }
        out
    }

    /// Appends the number without its sign, with the locale's separators. Written digit by
    /// digit into the caller's buffer: templates print dozens of amounts per message.
    fn write_unsigned(self, out: &mut String, locale: crate::Locale) {
        let (integer, fraction) = self.split_digits();
        push_grouped(out, integer, locale.data().group_separator);
        if self.scale > 0 {
            out.push_str(locale.data().decimal_separator);
            push_zero_padded(out, fraction, self.scale as usize);
        }
    }
}

impl FromStr for Decimal {
    type Err = AmountError;

    fn from_str(text: &str) -> Result<Decimal, AmountError> {
        let not_a_decimal = || AmountError::NotADecimal(text.to_owned());
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (integer, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if integer.is_empty() || !all_digits(integer) || !all_digits(fraction) {
            return Err(not_a_decimal());
        }
        if unsigned.ends_with('.') {
            return Err(not_a_decimal());
        }
        let significant = integer.trim_start_matches('0').len() + fraction.len();
        if significant > MAX_DIGITS || fraction.len() > MAX_DIGITS {
            return Err(AmountError::TooManyDigits(text.to_owned()));
        }
        let mut mantissa: i64 = 0;
        for digit in integer.bytes().chain(fraction.bytes()) {
            // Cannot overflow: at most 18 significant digits, checked above.
            mantissa = mantissa * 10 + i64::from(digit - b'0');
        }
        Ok(Decimal { mantissa: if negative { -mantissa } else { mantissa }, scale: fraction.len() as u32 })
    }
}

impl fmt::Display for Decimal {
    /// The canonical payload form: `-`, digits, `.`, exactly `scale` fraction digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (integer, fraction) = self.split_digits();
        let sign = if self.is_negative() { "-" } else { "" };
        if self.scale == 0 {
            write!(f, "{sign}{integer}")
        } else {
            write!(f, "{sign}{integer}.{fraction:0width$}", width = self.scale as usize)
        }
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        struct DecimalVisitor;
        impl Visitor<'_> for DecimalVisitor {
            type Value = Decimal;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal string such as \"1250.00\" or an integer")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Decimal, E> {
                text.parse().map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Decimal, E> {
                // The same 18-digit limit as decimal strings, so the error names the field here
                // rather than surfacing later from a template.
                if value.unsigned_abs() > MAX_MAGNITUDE {
                    return Err(E::custom(AmountError::TooManyDigits(value.to_string())));
                }
                Ok(Decimal::new(value, 0))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Decimal, E> {
                if value > MAX_MAGNITUDE {
                    return Err(E::custom(AmountError::TooManyDigits(value.to_string())));
                }
                Ok(Decimal::new(value as i64, 0))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Decimal, E> {
                Err(E::custom(format!(
                    "{value} is a JSON number with a fraction, which is a binary float and may not be exact: write it as a string, e.g. \"{value}\""
                )))
            }
        }
        deserializer.deserialize_any(DecimalVisitor)
    }
}

/// The decimal digits of `value`, most significant first, in a stack buffer.
fn decimal_digits(value: u64, buffer: &mut [u8; 20]) -> &[u8] {
    let mut start = buffer.len();
    let mut rest = value;
    loop {
        start -= 1;
        buffer[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            return &buffer[start..];
        }
    }
}

/// Appends `value` with `separator` between groups of three digits.
fn push_grouped(out: &mut String, value: u64, separator: &str) {
    let mut buffer = [0_u8; 20];
    let digits = decimal_digits(value, &mut buffer);
    for (index, digit) in digits.iter().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push_str(separator);
        }
        out.push(char::from(*digit));
    }
}

/// Appends `value` with leading zeros to `width` digits (a fraction: 5 cents at scale 2 is "05").
fn push_zero_padded(out: &mut String, value: u64, width: usize) {
    let mut buffer = [0_u8; 20];
    let digits = decimal_digits(value, &mut buffer);
    out.extend(std::iter::repeat_n('0', width.saturating_sub(digits.len())));
    out.extend(digits.iter().map(|digit| char::from(*digit)));
}

/// An ISO 4217 currency with its number of minor-unit digits (USD 2, JPY 0, KWD 3).
///
/// ```
/// use mailroom_events::Currency;
/// let yen = Currency::from_code("jpy").unwrap();
/// assert_eq!((yen.code(), yen.minor_digits()), ("JPY", 0));
/// assert!(Currency::from_code("USX").is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    minor_digits: u8,
}

/// Active ISO 4217 codes and their minor-unit digits (the standard's list, 2025).
const ISO_4217: &[(&str, u8)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("ANG", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BOV", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHE", 2),
    ("CHF", 2),
    ("CHW", 2),
    ("CLF", 4),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("COU", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MXV", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("USN", 2),
    ("UYI", 0),
    ("UYU", 2),
    ("UYW", 4),
    ("UZS", 2),
    ("VED", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XCG", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
];

impl Currency {
    /// The currency for an ISO 4217 code (any letter case); `None` for codes not in the standard.
    pub fn from_code(code: &str) -> Option<Currency> {
        let mut upper = [0_u8; 3];
        if code.len() != 3 {
            return None;
        }
        for (slot, byte) in upper.iter_mut().zip(code.bytes()) {
            *slot = byte.to_ascii_uppercase();
        }
        ISO_4217.binary_search_by(|(known, _)| known.as_bytes().cmp(&upper[..])).ok().map(|index| {
            let (code, minor_digits) = ISO_4217[index];
            Currency { code, minor_digits }
        })
    }

    /// The three-letter code, upper case.
    pub fn code(self) -> &'static str {
        self.code
    }

    /// Digits after the decimal point in this currency (ISO 4217 "minor unit").
    pub fn minor_digits(self) -> u8 {
        self.minor_digits
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Currency, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::from_code(&code).ok_or_else(|| {
            de::Error::custom(format!("\"{code}\" is not an ISO 4217 currency code (e.g. USD, EUR, GBP, JPY)"))
        })
    }
}

/// An amount of money: an exact count of a currency's minor units.
///
/// ```
/// use mailroom_events::{Currency, Locale, Money};
/// let usd = Currency::from_code("USD").unwrap();
/// assert_eq!(Money::new(123_456_778, usd).format(Locale::EN_US), "$1,234,567.78");
/// let kwd = Currency::from_code("KWD").unwrap();
/// assert_eq!(Money::new(1_234_500, kwd).format(Locale::EN_GB), "KWD\u{a0}1,234.500");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Money {
    minor_units: i64,
    currency: Currency,
}

impl Money {
    /// `minor_units` of `currency` (cents, yen, fils…).
    pub fn new(minor_units: i64, currency: Currency) -> Money {
        Money { minor_units, currency }
    }

    /// The amount in minor units.
    pub fn minor_units(self) -> i64 {
        self.minor_units
    }

    /// The currency.
    pub fn currency(self) -> Currency {
        self.currency
    }

    /// The amount as `locale` writes money: separators, the currency's decimal places,
    /// and its symbol (or code) on the locale's side.
    pub fn format(self, locale: crate::Locale) -> String {
        let mut out = String::with_capacity(32);
        self.write(&mut out, locale);
        out
    }

    /// Appends the amount as [`Money::format`] writes it.
    pub fn write(self, out: &mut String, locale: crate::Locale) {
        use crate::locale::SymbolPlacement;
        let number = Decimal { mantissa: self.minor_units, scale: u32::from(self.currency.minor_digits) };
        let data = locale.data();
        let symbol =
            data.currency_symbols.iter().find(|(code, _)| *code == self.currency.code).map(|&(_, symbol)| symbol);
        if number.is_negative() {
            out.push('-');
        }
        match (data.symbol_placement, symbol) {
            (SymbolPlacement::Before, Some(symbol)) => {
                out.push_str(symbol);
                number.write_unsigned(out, locale);
            }
            (SymbolPlacement::Before, None) => {
                out.push_str(self.currency.code);
                out.push('\u{a0}');
                number.write_unsigned(out, locale);
            }
            (SymbolPlacement::After, symbol) => {
                number.write_unsigned(out, locale);
                out.push('\u{a0}');
                out.push_str(symbol.unwrap_or(self.currency.code));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Locale;

    fn currency(code: &str) -> Currency {
        Currency::from_code(code).unwrap()
    }

    #[test]
    fn decimal_strings_parse_exactly_and_print_canonically() {
        for (text, mantissa, scale) in [
            ("0", 0, 0),
            ("12", 12, 0),
            ("12.50", 1250, 2),
            ("-0.05", -5, 2),
            ("007.1", 71, 1),
            ("999999999999999999", 999_999_999_999_999_999, 0),
        ] {
            let parsed: Decimal = text.parse().unwrap();
            assert_eq!(parsed, Decimal::new(mantissa, scale), "{text}");
        }
        assert_eq!("007.10".parse::<Decimal>().unwrap().to_string(), "7.10");
        assert_eq!("-0.05".parse::<Decimal>().unwrap().to_string(), "-0.05");
    }

    #[test]
    fn malformed_decimals_are_refused() {
        for text in ["", "-", ".5", "5.", "1,000.00", "1e3", "+5", "$5", " 5", "1.2.3", "١٢"] {
            assert!(matches!(text.parse::<Decimal>(), Err(AmountError::NotADecimal(_))), "{text:?}");
        }
        assert!(matches!("1234567890123456789".parse::<Decimal>(), Err(AmountError::TooManyDigits(_))));
    }

    #[test]
    fn json_floats_are_refused_and_integers_accepted() {
        let from_json = |json: &str| serde_json::from_str::<Decimal>(json);
        assert_eq!(from_json("42").unwrap(), Decimal::new(42, 0));
        assert_eq!(from_json("\"42.10\"").unwrap(), Decimal::new(4210, 2));
        let error = from_json("42.1").unwrap_err().to_string();
        assert!(error.contains("binary float"), "{error}");
    }

    #[test]
    fn minor_units_follow_iso_4217() {
        let cases = [
            ("12.5", "USD", Ok(1250)),
            ("12.50", "EUR", Ok(1250)),
            ("12", "GBP", Ok(1200)),
            ("1500", "JPY", Ok(1500)),
            ("1500.00", "JPY", Ok(1500)),
            ("1.234", "KWD", Ok(1234)),
            ("1.2", "BHD", Ok(1200)),
            ("0.0001", "CLF", Ok(1)),
        ];
        for (amount, code, expected) in cases {
            let decimal: Decimal = amount.parse().unwrap();
            assert_eq!(decimal.to_money(currency(code)).map(Money::minor_units), expected, "{amount} {code}");
        }
        let error = "10.50".parse::<Decimal>().unwrap().to_money(currency("JPY")).unwrap_err();
        assert_eq!(error.to_string(), "10.50 has more decimal places than JPY allows (0)");
        assert!("1.0001".parse::<Decimal>().unwrap().to_money(currency("USD")).is_err());
        assert!(matches!(
            "999999999999999999".parse::<Decimal>().unwrap().to_money(currency("KWD")),
            Err(AmountError::Overflow(_))
        ));
    }

    #[test]
    fn the_iso_table_is_sorted_for_binary_search() {
        assert!(ISO_4217.windows(2).all(|pair| pair[0].0 < pair[1].0));
        for &(code, _) in ISO_4217 {
            assert_eq!(Currency::from_code(code).unwrap().code(), code);
        }
    }

    #[test]
    fn unknown_currency_codes_are_refused_by_name() {
        assert!(Currency::from_code("XYZ").is_none());
        let error = serde_json::from_str::<Currency>("\"EURO\"").unwrap_err().to_string();
        assert!(error.contains("\"EURO\" is not an ISO 4217 currency code"));
        assert_eq!(serde_json::from_str::<Currency>("\"eur\"").unwrap().code(), "EUR");
    }

    /// The formatting table: (minor units, currency, locale, expected text).
    #[test]
    fn money_formats_per_currency_and_locale() {
        let table = [
            (123_456_778, "USD", Locale::EN_US, "$1,234,567.78"),
            (123_456_778, "USD", Locale::EN_GB, "US$1,234,567.78"),
            (123_456_778, "USD", Locale::DE_DE, "1.234.567,78\u{a0}$"),
            (5, "USD", Locale::EN_US, "$0.05"),
            (-1999, "USD", Locale::EN_US, "-$19.99"),
            (100_000, "EUR", Locale::EN_US, "€1,000.00"),
            (100_000, "EUR", Locale::EN_GB, "€1,000.00"),
            (100_000, "EUR", Locale::DE_DE, "1.000,00\u{a0}€"),
            (100_000, "EUR", Locale::FR_FR, "1\u{202f}000,00\u{a0}€"),
            (-100_000, "EUR", Locale::DE_DE, "-1.000,00\u{a0}€"),
            (99_900, "GBP", Locale::EN_GB, "£999.00"),
            (99_900, "GBP", Locale::EN_US, "£999.00"),
            (1_234_567, "JPY", Locale::EN_US, "¥1,234,567"),
            (1_234_567, "JPY", Locale::EN_GB, "JP¥1,234,567"),
            (1_234_567, "JPY", Locale::DE_DE, "1.234.567\u{a0}¥"),
            (0, "JPY", Locale::EN_US, "¥0"),
            (1_234_500, "KWD", Locale::EN_US, "KWD\u{a0}1,234.500"),
            (1_234_500, "KWD", Locale::DE_DE, "1.234,500\u{a0}KWD"),
            (7, "BHD", Locale::EN_US, "BHD\u{a0}0.007"),
            (250_000, "CAD", Locale::EN_US, "CA$2,500.00"),
            (250_000, "CHF", Locale::FR_FR, "2\u{202f}500,00\u{a0}CHF"),
        ];
        for (minor_units, code, locale, expected) in table {
            assert_eq!(
                Money::new(minor_units, currency(code)).format(locale),
                expected,
                "{minor_units} {code} {}",
                locale.tag()
            );
        }
    }

    #[test]
    fn decimals_format_with_locale_separators() {
        let decimal: Decimal = "12345.250".parse().unwrap();
        assert_eq!(decimal.format(Locale::EN_US), "12,345.250");
        assert_eq!(decimal.format(Locale::DE_DE), "12.345,250");
        assert_eq!("3".parse::<Decimal>().unwrap().format(Locale::FR_FR), "3", "integers keep no decimal point");
        assert_eq!("1000000".parse::<Decimal>().unwrap().format(Locale::FR_FR), "1\u{202f}000\u{202f}000");
    }

    proptest::proptest! {
        /// Every number formats to its canonical digits plus separators: the locale only
        /// adds group separators every three integer digits and swaps the decimal point.
        #[test]
        fn locale_formatting_only_adds_separators(mantissa in proptest::num::i64::ANY, scale in 0_u32..=6) {
            let decimal = Decimal::new(mantissa, scale);
            let us = decimal.format(Locale::EN_US);
            proptest::prop_assert_eq!(us.replace(',', ""), decimal.to_string());
            let integer_digits = us.trim_start_matches('-').split('.').next().unwrap_or_default();
            for (index, group) in integer_digits.split(',').enumerate() {
                proptest::prop_assert!(group.len() == 3 || (index == 0 && (1..=3).contains(&group.len())), "{us}");
            }
            let de = decimal.format(Locale::DE_DE);
            proptest::prop_assert_eq!(de.replace('.', "").replace(',', "."), decimal.to_string());
        }
    }
}
