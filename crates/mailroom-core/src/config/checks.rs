//! Field-value checks shared by the config loader: host names, ports, URIs, addresses and the Exchange domain rule, each with a fix-it message.

use std::net::IpAddr;

/// True for `localhost`, 127.0.0.0/8 and ::1 (with or without brackets).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    host.parse::<IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

/// Checks one DNS label (letters, digits, hyphens; 1–63 chars; no leading/trailing hyphen).
fn is_valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Strips `scheme://`, a path, a port and a `user@` part, to suggest the bare host someone meant.
fn bare_host(input: &str) -> &str {
    let mut rest = input.trim();
    if let Some(index) = rest.find("://") {
        rest = &rest[index + 3..];
    }
    if let Some(index) = rest.find(['/', '?', '#']) {
        rest = &rest[..index];
    }
    if let Some(index) = rest.rfind('@') {
        rest = &rest[index + 1..];
    }
    if !rest.starts_with('[')
        && let Some(index) = rest.find(':')
    {
        rest = &rest[..index];
    }
    rest
}

/// Checks an SMTP server name: a DNS name or an IP address, nothing else.
///
/// ```
/// use mailroom_core::config::checks::check_server_host;
/// assert!(check_server_host("smtp.gmail.com").is_ok());
/// assert!(check_server_host("127.0.0.1").is_ok());
/// let err = check_server_host("smtp://smtp.gmail.com:587").unwrap_err();
/// assert!(err.contains("enter smtp.gmail.com, not smtp://smtp.gmail.com:587"));
/// ```
pub fn check_server_host(input: &str) -> Result<(), String> {
    let sanitized = without_userinfo(input);
    let input = sanitized.as_str();
    let host = input.trim();
    if host.is_empty() {
        return Err("is empty: enter the outgoing mail server, e.g. smtp.gmail.com".into());
    }
    if host != input {
        return Err(format!("\"{input}\" has spaces around it: enter {host}"));
    }
    let bare = bare_host(host);
    if bare != host && !bare.is_empty() {
        let why = if host.contains("://") || host.contains('/') {
            "enter only the server name, without scheme or path"
        } else if host.contains('@') {
            "that is an email address; the server is a host name"
        } else {
            "enter only the server name; the port goes in the port field"
        };
        return Err(format!("\"{host}\": {why}: enter {bare}, not {host}"));
    }
    let unbracketed = host.trim_start_matches('[').trim_end_matches(']');
    if unbracketed.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if host.contains(char::is_whitespace) {
        return Err(format!("\"{host}\" contains spaces: a server name has none"));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.len() > 253 {
        return Err("is longer than 253 characters: not a server name".into());
    }
    if let Some(bad) = name.split('.').find(|label| !is_valid_label(label)) {
        return Err(format!(
            "\"{host}\" is not a valid server name (the part \"{bad}\" may hold only letters, digits and hyphens): enter a name like smtp.company.com"
        ));
    }
    Ok(())
}

/// Checks the Exchange domain: `company.com` form — no scheme, path, `@`, backslash or spaces,
/// at least one dot, valid labels. The message says what was entered and what to enter instead.
///
/// ```
/// use mailroom_core::config::checks::check_exchange_domain;
/// assert!(check_exchange_domain("company.com").is_ok());
/// let err = check_exchange_domain("https://company.com/").unwrap_err();
/// assert!(err.contains("enter company.com, not https://company.com/"));
/// ```
pub fn check_exchange_domain(input: &str) -> Result<(), String> {
    let sanitized = without_userinfo(input);
    let entered = sanitized.trim();
    if entered.is_empty() {
        return Err("You left it empty: enter your company's mail domain, e.g. company.com.".into());
    }
    if entered.contains('\\') && !entered.contains('/') {
        let (netbios, user) = entered.split_once('\\').unwrap_or((entered, ""));
        let user_hint = if user.is_empty() {
            String::new()
        } else {
            format!(" (put the user name \"{user}\" in the user name field)")
        };
        return Err(format!(
            "You entered \"{entered}\", the Windows DOMAIN\\user form: enter the mail domain (e.g. company.com), not the NetBIOS name \"{netbios}\"{user_hint}."
        ));
    }
    let bare = bare_host(entered);
    if bare != entered {
        let suggestion =
            if bare.is_empty() || !bare.contains('.') { "company.com".to_owned() } else { bare.to_ascii_lowercase() };
        return Err(format!(
            "You entered \"{entered}\": enter {suggestion}, not {entered} (the domain alone, without scheme, path, port or user name)."
        ));
    }
    if entered.contains(char::is_whitespace) {
        return Err(format!("You entered \"{entered}\", which contains spaces: enter a domain like company.com."));
    }
    if !entered.contains('.') {
        return Err(format!(
            "You entered \"{entered}\", which has no dot: enter the full domain, e.g. {}.com, not the short name.",
            entered.to_ascii_lowercase()
        ));
    }
    let name = entered.strip_suffix('.').unwrap_or(entered);
    if name.len() > 253 {
        return Err("The domain is longer than 253 characters: enter a domain like company.com.".into());
    }
    if let Some(bad) = name.split('.').find(|label| !is_valid_label(label)) {
        return Err(format!(
            "You entered \"{entered}\": the part \"{bad}\" is not valid in a domain (letters, digits and hyphens only): enter a domain like company.com."
        ));
    }
    if name.split('.').next_back().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
        return Err(format!("You entered \"{entered}\", an IP address: enter the mail domain, e.g. company.com."));
    }
    Ok(())
}

/// Checks an HTTP endpoint: https, or http only to a loopback host.
///
/// ```
/// use mailroom_core::config::checks::check_endpoint;
/// assert!(check_endpoint("https://outlook.office365.com/EWS/Exchange.asmx").is_ok());
/// assert!(check_endpoint("http://127.0.0.1:8080/EWS/Exchange.asmx").is_ok());
/// assert!(check_endpoint("http://mail.company.com/EWS/Exchange.asmx").is_err());
/// ```
pub fn check_endpoint(input: &str) -> Result<url::Url, String> {
    let shown = without_userinfo(input.trim());
    let url = url::Url::parse(input.trim()).map_err(|e| {
        format!("\"{shown}\" is not a URL ({e}): enter a full address like https://mail.company.com/EWS/Exchange.asmx")
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("\"{shown}\" must not contain a user name or password: put them in their own fields"));
    }
    let host = url.host_str().unwrap_or_default();
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(host) => {}
        "http" => {
            return Err(format!(
                "\"{shown}\" uses http://, which would send the password unencrypted: use https:// (http:// is accepted only for localhost, 127.0.0.1 and ::1)"
            ));
        }
        other => {
            return Err(format!("\"{shown}\" uses the {other}: scheme: use https://"));
        }
    }
    if host.is_empty() {
        return Err(format!("\"{shown}\" has no host name"));
    }
    Ok(url)
}

/// The text with any `user:password@` part replaced by `…@`, so error messages that quote
/// what was entered never repeat a password typed into a URL or host field.
pub fn without_userinfo(input: &str) -> String {
    let (scheme, rest) = match input.find("://") {
        Some(index) => input.split_at(index + 3),
        None => ("", input),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) if rest[..at].contains(':') => format!("{scheme}…{}", &rest[at..]),
        _ => input.to_owned(),
    }
}

/// Checks an email address and returns it parsed.
pub fn check_address(input: &str) -> Result<lettre::Address, String> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err("is empty: enter an address like erp@company.com".into());
    }
    if trimmed.contains('<') || trimmed.contains('>') {
        return Err(format!("\"{input}\": enter the bare address (erp@company.com); the name goes in display_name"));
    }
    trimmed
        .parse::<lettre::Address>()
        .map_err(|_| format!("\"{input}\" is not an email address: enter one like erp@company.com"))
}

/// Rejects control characters (CR, LF, NUL, …) that would break a header or a protocol line.
pub fn check_no_control_chars(input: &str) -> Result<(), String> {
    match input.chars().find(|c| c.is_control()) {
        Some('\r' | '\n') => Err("contains a line break: enter it on one line".into()),
        Some(c) => Err(format!("contains the control character U+{:04X}: remove it", c as u32)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exchange_domain_rule_accepts_the_company_form_only() {
        for good in ["company.com", "mail.company.co.uk", "a-b.example", "company.com."] {
            assert!(check_exchange_domain(good).is_ok(), "{good}");
        }
        let cases = [
            ("https://company.com/", "enter company.com, not https://company.com/"),
            ("http://company.com", "enter company.com, not http://company.com"),
            ("company.com/owa", "enter company.com, not company.com/owa"),
            ("erp@company.com", "enter company.com, not erp@company.com"),
            ("COMPANY\\erp", "NetBIOS name \"COMPANY\""),
            ("company com", "contains spaces"),
            ("company", "has no dot"),
            ("comp_any.com", "\"comp_any\" is not valid"),
            ("-company.com", "\"-company\" is not valid"),
            ("10.0.0.1", "an IP address"),
            ("", "empty"),
        ];
        for (bad, expected) in cases {
            let err = check_exchange_domain(bad).unwrap_err();
            assert!(err.contains(expected), "{bad:?}: {err}");
        }
    }

    #[test]
    fn server_host_names_the_fix() {
        assert!(check_server_host("smtp.office365.com").is_ok());
        assert!(check_server_host("::1").is_ok());
        assert!(check_server_host("[::1]").is_ok());
        assert!(check_server_host("smtp.gmail.com:587").unwrap_err().contains("port goes in the port field"));
        assert!(check_server_host("erp@gmail.com").unwrap_err().contains("email address"));
        assert!(check_server_host("smtp gmail.com").unwrap_err().contains("spaces"));
        assert!(check_server_host(" smtp.gmail.com").unwrap_err().contains("spaces around"));
        assert!(check_server_host("smtp..gmail.com").is_err());
    }

    #[test]
    fn passwords_typed_into_urls_are_never_quoted_back() {
        let cases = [
            check_endpoint("http://erp:S3cret-pw@mail.company.com/EWS/Exchange.asmx").unwrap_err(),
            check_endpoint("https://erp:S3cret-pw@mail.company.com/EWS/Exchange.asmx").unwrap_err(),
            check_endpoint("notaurl erp:S3cret-pw@x").unwrap_err(),
            check_server_host("smtp://erp:S3cret-pw@smtp.gmail.com:587").unwrap_err(),
            check_exchange_domain("https://erp:S3cret-pw@company.com/").unwrap_err(),
        ];
        for message in cases {
            assert!(!message.contains("S3cret-pw"), "{message}");
        }
        assert_eq!(without_userinfo("https://a:b@host/x"), "https://…@host/x");
        assert_eq!(without_userinfo("erp@company.com"), "erp@company.com");
    }

    #[test]
    fn loopback_detection() {
        for host in ["localhost", "127.0.0.1", "127.8.9.1", "::1", "[::1]", "mail.localhost"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["10.0.0.1", "example.com", "localhost.example.com", "::2"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    proptest! {
        #[test]
        fn any_domain_with_a_scheme_or_path_is_rejected_with_a_suggestion(
            label in "[a-z][a-z0-9]{0,10}", tld in "[a-z]{2,6}", scheme in "(http|https|ftp)", path in "(/|/owa|/EWS/Exchange\\.asmx)")
        {
            let domain = format!("{label}.{tld}");
            let entered = format!("{scheme}://{domain}{path}");
            let err = check_exchange_domain(&entered).unwrap_err();
            let expected = format!("enter {}, not {}", domain, entered);
            prop_assert!(err.contains(&expected), "{}", err);
        }

        #[test]
        fn domain_check_never_panics(input in "\\PC{0,80}") {
            let _ = check_exchange_domain(&input);
            let _ = check_server_host(&input);
            let _ = check_endpoint(&input);
            let _ = check_address(&input);
        }
    }
}
