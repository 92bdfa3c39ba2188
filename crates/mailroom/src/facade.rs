//! The facade: reads a config file, turns a Company Email config into a transport, and runs the validate-then-save flow.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mailroom_core::config::Field;
use mailroom_core::config::{ConfigIssue, ConfigProblems, LoadedConfig, Severity, SmtpOAuth};
use mailroom_core::{CompanyEmail, Mailbox, MessageDraft, SendError, SendReceipt, ServiceConfig, Transport};

/// Why a config file could not be turned into a config.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read (missing, permissions, not UTF-8).
    Unreadable {
        /// The path as given.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// The file is not TOML.
    Syntax(ConfigProblems),
    /// Fields are wrong: every error, plus warnings.
    Invalid {
        /// The errors, in field order.
        errors: Vec<ConfigIssue>,
        /// The warnings.
        warnings: Vec<ConfigIssue>,
    },
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Unreadable { path, reason } => {
                write!(f, "cannot read config file {}: {reason}", path.display())
            }
            LoadError::Syntax(problems) => write!(f, "{problems}"),
            LoadError::Invalid { errors, .. } => {
                write!(f, "{} config error(s)", errors.len())?;
                errors.iter().try_for_each(|e| write!(f, "; {e}"))
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// Reads, parses and validates a config file; secrets come from the process environment,
/// then from the secrets file beside it ([`crate::secrets_path_for`]) if there is one.
/// Relative `ca_file` / `token_file` paths are resolved against the config file's folder,
/// and `ca_file` must exist and hold a PEM certificate.
///
/// ```no_run
/// let loaded = mailroom::load_config_file("company-email.toml".as_ref()).unwrap();
/// println!("sending as {}", loaded.config.sender);
/// ```
pub fn load_config_file(path: &Path) -> Result<LoadedConfig, LoadError> {
    load_config_file_with_text(path).map(|(loaded, _)| loaded)
}

/// [`load_config_file`], also returning the text it read: what [`validate`] saves is then
/// exactly what was checked, not the file read a second time.
pub fn load_config_file_with_text(path: &Path) -> Result<(LoadedConfig, String), LoadError> {
    let text = read_config(path)?;
    let secrets_path = crate::secrets_path_for(path);
    let saved = crate::read_secrets_file(&secrets_path)
        .map_err(|e| LoadError::Unreadable { path: secrets_path, reason: e.reason })?;
    let env = |name: &str| std::env::var(name).ok().or_else(|| saved.get(name).map(|s| s.expose().to_owned()));
    let loaded = load_config_text(&text, config_base(path), &env)?;
    Ok((loaded, text))
}

fn read_config(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|e| LoadError::Unreadable { path: path.to_owned(), reason: e.to_string() })
}

/// The folder relative paths in a config file (`ca_file`, `token_file`) are resolved against.
fn config_base(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Only the Company Email sender of a config file (`email_address` and `display_name`), for
/// rendering without sending (`mailroom preview --config`): the secrets the config names in
/// `*_env` variables need not be set, so a placeholder stands in for any that is missing.
/// Every other field is still checked.
pub fn load_sender_file(path: &Path) -> Result<Mailbox, LoadError> {
    let text = read_config(path)?;
    let placeholder = |name: &str| Some(std::env::var(name).unwrap_or_else(|_| "unused-by-preview".to_owned()));
    load_config_text(&text, config_base(path), &placeholder).map(|loaded| loaded.config.sender)
}

/// [`load_config_file`] on text already read, with an explicit environment and base folder.
pub fn load_config_text(
    text: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedConfig, LoadError> {
    let mut loaded = match CompanyEmail::from_toml(text, env) {
        Ok(loaded) => loaded,
        Err(syntax @ ConfigProblems::Syntax { .. }) => return Err(LoadError::Syntax(syntax)),
        Err(ConfigProblems::Invalid { errors, warnings }) => {
            return Err(LoadError::Invalid { errors, warnings });
        }
        Err(other) => return Err(LoadError::Syntax(other)),
    };
    let mut errors = Vec::new();
    let ca_file = match &mut loaded.config.service {
        ServiceConfig::WebMail(smtp) => {
            let token_file = match &mut smtp.oauth {
                Some(SmtpOAuth::Google(google)) => google.token_file.as_mut(),
                Some(SmtpOAuth::Microsoft(microsoft)) => microsoft.token_file.as_mut(),
                _ => None,
            };
            if let Some(token_file) = token_file {
                *token_file = base.join(&*token_file);
            }
            smtp.ca_file.as_mut().map(|p| (p, Field::WebMailCaFile))
        }
        ServiceConfig::Exchange(ews) => ews.ca_file.as_mut().map(|p| (p, Field::ExchangeCaFile)),
        ServiceConfig::EmailServices(gmail) => {
            if let Some(token_file) = &mut gmail.token_file {
                *token_file = base.join(&*token_file);
            }
            None
        }
        ServiceConfig::Graph(graph) => {
            if let Some(token_file) = &mut graph.oauth.token_file {
                *token_file = base.join(&*token_file);
            }
            None
        }
        _ => None,
    };
    if let Some((path, field)) = ca_file {
        *path = base.join(&*path);
        match std::fs::read_to_string(&*path) {
            Ok(pem) if pem.contains("-----BEGIN CERTIFICATE-----") => {}
            Ok(_) => errors.push(issue(
                field,
                format!(
                    "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----): point it at the CA certificate file",
                    path.display()
                ),
            )),
            Err(e) => errors.push(issue(field, format!("cannot read {}: {e}", path.display()))),
        }
    }
    if errors.is_empty() { Ok(loaded) } else { Err(LoadError::Invalid { errors, warnings: loaded.warnings }) }
}

fn issue(field: Field, message: String) -> ConfigIssue {
    ConfigIssue { field: field.name(), message, severity: Severity::Error }
}

/// The transport a config asks for: the Web Mail (SMTP), Exchange (EWS) or Email Services
/// (Gmail API or Microsoft Graph) driver. No connection is made until the first send or probe; an error here
/// means the driver refused the config (e.g. an unreadable `ca_file`, or NTLM for Exchange).
pub fn transport_for(config: &CompanyEmail) -> Result<Arc<dyn Transport>, SendError> {
    let sender = config.sender.clone();
    let driver: Arc<dyn Transport> = match &config.service {
        ServiceConfig::WebMail(smtp) => {
            let mut builder = mailroom_smtp::SmtpTransport::builder(sender, smtp);
            if let (Some(oauth), Some(username)) = (&smtp.oauth, &smtp.username) {
                builder = builder.xoauth2(crate::smtp_oauth::token_source(oauth, username, smtp.timeout)?);
            }
            Arc::new(builder.build()?)
        }
        ServiceConfig::Graph(graph) => Arc::new(mailroom_graph::GraphTransport::new(sender, graph)?),
        ServiceConfig::Exchange(ews) => Arc::new(mailroom_ews::EwsTransport::new(sender, ews)?),
        ServiceConfig::EmailServices(gmail) => Arc::new(mailroom_gmail::GmailTransport::new(sender, gmail)?),
        other => {
            return Err(SendError::invalid_config(
                Field::Service,
                format!("this version of mailroom has no driver for {}", other.kind().as_str()),
            ));
        }
    };
    Ok(Arc::new(crate::layers::WayOutLayer::new(driver, config.clone())))
}

/// The test mail `validate` sends: from the Company Email to `to` (default: the sender itself).
pub fn test_message(config: &CompanyEmail, to: Option<Mailbox>) -> mailroom_core::OutgoingMessage {
    let recipient = to.unwrap_or_else(|| config.sender.clone());
    let service = config.service_kind().as_str();
    MessageDraft::new(config.sender.clone())
        .to(recipient)
        .subject("mailroom test message")
        .text(format!(
            "This is a test message from mailroom.\n\nIt was sent through the Company Email configuration ({service}) to check that system emails can be delivered. No action is needed.\n"
        ))
        .header("X-Mailroom-Test", "validate")
        .build()
        .expect("the test message is well-formed for any validated sender")
}

/// A config that sent a test mail successfully: the only thing [`ValidatedConfig::save`] accepts.
#[derive(Debug)]
pub struct ValidatedConfig {
    text: String,
    receipt: SendReceipt,
}

impl ValidatedConfig {
    /// What the server said when it accepted the test mail.
    pub fn receipt(&self) -> &SendReceipt {
        &self.receipt
    }

    /// Writes the validated config text to `path` atomically, readable by its owner only
    /// (0600 on Unix: it may hold an inline password), through mailroom-http's private-write
    /// helper: a fresh temporary file in the same folder renamed over `path`, so a failed save
    /// never leaves half a config behind, a symlink at `path` is replaced rather than written
    /// through, and an existing file's wider mode is not kept.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        mailroom_http::write_private_file(path, self.text.as_bytes())
    }
}

/// Sends the test mail through `transport`; on success the config text may be saved.
/// This is the ERP's rule: Save is only allowed after a successful Validate.
pub async fn validate(
    transport: &dyn Transport,
    config: &CompanyEmail,
    config_text: &str,
    to: Option<Mailbox>,
) -> Result<ValidatedConfig, SendError> {
    let message = test_message(config, to);
    let receipt = match transport.send(&message).await {
        Ok(receipt) => receipt,
        // One short server back-off (EWS ErrorServerBusy, a 429 asking for a few seconds) is
        // ridden out, as `send` does: the config is fine, the server only asked to wait. A
        // longer hint, or a second refusal, is the verdict.
        Err(error) => match short_backoff(&error) {
            Some(wait) => {
                tracing::info!(kind = %error.kind(), ?wait, "validate: the server asked to wait; trying once more");
                tokio::time::sleep(wait).await;
                transport.send(&message).await?
            }
            None => return Err(error),
        },
    };
    Ok(ValidatedConfig { text: config_text.to_owned(), receipt })
}

/// The longest server back-off `validate` waits out before trying once more.
pub const VALIDATE_MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5);

fn short_backoff(error: &SendError) -> Option<std::time::Duration> {
    match (error.kind(), error.retry()) {
        (
            mailroom_core::ErrorKind::RateLimited | mailroom_core::ErrorKind::ServiceUnavailable,
            mailroom_core::Retry::Temporary { after: Some(wait) },
        ) if wait <= VALIDATE_MAX_BACKOFF => Some(wait),
        _ => None,
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn validated(text: &str) -> ValidatedConfig {
        ValidatedConfig {
            text: text.to_owned(),
            receipt: SendReceipt { message_id: "<m@x>".into(), server_reply: None, service_id: None },
        }
    }

    /// Issue 10 #4: a save never lands a password in a file others can read, never writes
    /// through a symlink, and never uses a predictable temporary name.
    #[test]
    fn save_is_private_atomic_and_does_not_follow_symlinks() {
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("company-email.toml");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        // A planted symlink at the old fixed temporary name must not receive the config.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        std::os::unix::fs::symlink(&victim, path.with_extension("toml.saving")).unwrap();
        validated("password = \"inline\"\n").save(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(mode(&path), 0o600, "an existing world-readable file becomes owner-only");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "password = \"inline\"\n");

        // A symlink at the destination is replaced, not written through.
        let link = dir.path().join("linked.toml");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        validated("x = 1\n").save(&link).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert!(!std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(mode(&link), 0o600);
    }
}
