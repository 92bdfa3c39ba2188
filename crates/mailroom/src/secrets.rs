//! The secrets file beside a config (`company-email.secrets.env`): the values of the config's `*_env` variables, kept out of the config file itself.
//!
//! `mailroom serve` writes it when it saves a config; the facade's loader reads it for any
//! `*_env` variable the process environment does not set. The format is a shell / dotenv
//! file (`NAME="value"`, one a line), so `set -a; . ./company-email.secrets.env` also works.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mailroom_core::Secret;

/// Where the secrets of the config at `config` live: `NAME.toml` → `NAME.secrets.env`, same folder.
///
/// ```
/// let path = mailroom::secrets_path_for("conf/company-email.toml".as_ref());
/// assert_eq!(path, std::path::Path::new("conf/company-email.secrets.env"));
/// ```
pub fn secrets_path_for(config: &Path) -> PathBuf {
    let stem = config.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "mailroom".into());
    config.with_file_name(format!("{stem}.secrets.env"))
}

/// Why a secrets file could not be read.
#[derive(Debug)]
pub struct SecretsFileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong (never a secret value).
    pub reason: String,
}

impl std::fmt::Display for SecretsFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read the secrets file {}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for SecretsFileError {}

/// Reads a secrets file; a missing file is an empty set.
pub fn read_secrets_file(path: &Path) -> Result<BTreeMap<String, Secret>, SecretsFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(SecretsFileError { path: path.to_owned(), reason: e.to_string() }),
    };
    parse_secrets(&text).map_err(|reason| SecretsFileError { path: path.to_owned(), reason })
}

/// Parses the `NAME="value"` lines of a secrets file (blank lines and `#` comments skipped).
///
/// ```
/// let secrets = mailroom::parse_secrets("# kept private\nMAILROOM_PASSWORD=\"p\\\"w\"\n").unwrap();
/// assert_eq!(secrets["MAILROOM_PASSWORD"].expose(), "p\"w");
/// ```
pub fn parse_secrets(text: &str) -> Result<BTreeMap<String, Secret>, String> {
    let mut secrets = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line_number = index + 1;
        let Some((name, value)) = line.split_once('=') else {
            return Err(format!("line {line_number} is not NAME=\"value\""));
        };
        let name = name.trim().trim_start_matches("export ").trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("line {line_number}: the variable name must be letters, digits and underscores"));
        }
        let value = unquote(value.trim())
            .ok_or_else(|| format!("line {line_number}: the value of {name} is not closed by a quote"))?;
        secrets.insert(name.to_owned(), Secret::new(value));
    }
    Ok(secrets)
}

fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return Some(value.to_owned());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return chars.as_str().trim().is_empty().then_some(out),
            c => out.push(c),
        }
    }
    None
}

/// The text of a secrets file holding `secrets` (values quoted for shells and dotenv readers).
///
/// ```
/// use mailroom_core::Secret;
/// let text = mailroom::format_secrets([("MAILROOM_PASSWORD", &Secret::new("a$b\"c"))]);
/// assert!(text.ends_with("MAILROOM_PASSWORD=\"a\\$b\\\"c\"\n"));
/// assert_eq!(mailroom::parse_secrets(&text).unwrap()["MAILROOM_PASSWORD"].expose(), "a$b\"c");
/// ```
pub fn format_secrets<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a Secret)>) -> String {
    let mut text = String::from(
        "# Secrets for the mailroom config beside this file (its *_env variables). Keep it private (mode 0600).\n",
    );
    for (name, secret) in secrets {
        text.push_str(name);
        text.push_str("=\"");
        for c in secret.expose().chars() {
            if matches!(c, '"' | '\\' | '$' | '`') {
                text.push('\\');
            }
            text.push(c);
        }
        text.push_str("\"\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_a_round_trip() {
        for value in ["plain", "with space", "q\"uote", "back\\slash", "$HOME", "`x`", "ünï", "=eq="] {
            let secret = Secret::new(value);
            let text = format_secrets([("NAME", &secret)]);
            assert_eq!(parse_secrets(&text).unwrap()["NAME"].expose(), value);
        }
    }

    #[test]
    fn bad_lines_name_the_line_not_the_value() {
        let error = parse_secrets("A=\"open-secret\n").unwrap_err();
        assert!(error.contains("line 1") && !error.contains("open-secret"), "{error}");
        assert!(parse_secrets("no equals sign").is_err());
        assert!(parse_secrets("BAD NAME=x").is_err());
    }

    #[test]
    fn a_missing_file_is_empty() {
        assert!(read_secrets_file(Path::new("/nonexistent/x.secrets.env")).unwrap().is_empty());
    }
}
