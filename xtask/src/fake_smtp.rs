//! `cargo xtask fake-smtp`: runs a fake SMTP server in the foreground, prints a config to point `mailroom validate` at, and prints every message it receives.

use std::time::Duration;

use mailroom_testkit::{CapturedMessage, FakeSmtpServer, Persona, ScriptedSmtpServer};

/// The account the fake server accepts.
const ACCOUNT: (&str, &str) = ("erp@company.com", "app-password-1234");

enum Server {
    Fake(FakeSmtpServer),
    Persona(ScriptedSmtpServer),
}

impl Server {
    fn addr(&self) -> std::net::SocketAddr {
        match self {
            Server::Fake(server) => server.addr(),
            Server::Persona(server) => server.addr(),
        }
    }
    fn ca_pem(&self) -> &str {
        match self {
            Server::Fake(server) => server.ca_pem(),
            Server::Persona(server) => server.ca_pem(),
        }
    }
    fn messages(&self) -> Vec<CapturedMessage> {
        match self {
            Server::Fake(server) => server.messages(),
            Server::Persona(server) => server.messages(),
        }
    }
}

/// Runs until Ctrl-C.
pub fn run(persona: &str, port: Option<u16>) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let (server, tls, implicit) = match persona {
            "plain" => {
                let mut builder = FakeSmtpServer::builder().account(ACCOUNT.0, ACCOUNT.1);
                if let Some(port) = port {
                    builder = builder.port(port);
                }
                (Server::Fake(builder.start().await.map_err(|e| e.to_string())?), "starttls", false)
            }
            "gmail" | "gmail-465" | "office365" => {
                let persona_kit = match persona {
                    "gmail" => Persona::gmail_587(),
                    "gmail-465" => Persona::gmail_465(),
                    _ => Persona::office365_587(),
                };
                let implicit = persona_kit.implicit_tls();
                let mut builder = persona_kit.account(ACCOUNT.0, ACCOUNT.1).builder().map_err(|e| e.to_string())?;
                if let Some(port) = port {
                    builder = builder.port(port);
                }
                let server = builder.start().await.map_err(|e| e.to_string())?;
                (Server::Persona(server), if implicit { "implicit" } else { "starttls" }, implicit)
            }
            other => return Err(format!("unknown persona `{other}`: use gmail, gmail-465, office365 or plain")),
        };
        let dir = std::env::temp_dir().join(format!("mailroom-fake-smtp-{}", server.addr().port()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, server.ca_pem()).map_err(|e| e.to_string())?;
        let config_file = dir.join("company-email.toml");
        let config = format!(
            "service = \"web_mail\"\nemail_address = \"{user}\"\ndisplay_name = \"Company ERP\"\n\n[web_mail]\nserver = \"localhost\"\nport = {port}\nenable_ssl = true\ntls = \"{tls}\"\nusername = \"{user}\"\npassword_env = \"MAILROOM_PASSWORD\"\nca_file = \"{ca}\"\ntimeout_secs = 5\n",
            user = ACCOUNT.0,
            port = server.addr().port(),
            ca = ca_file.display()
        );
        std::fs::write(&config_file, &config).map_err(|e| e.to_string())?;
        println!("fake SMTP server ({persona}{}) listening on {}", if implicit { ", implicit TLS" } else { ", STARTTLS" }, server.addr());
        println!("account: {} / {}", ACCOUNT.0, ACCOUNT.1);
        println!("config written to {}:\n\n{config}", config_file.display());
        println!("try:\n  MAILROOM_PASSWORD={} cargo run -p mailroom-cli -- validate --config {}\n", ACCOUNT.1, config_file.display());
        println!("waiting for mail (Ctrl-C to stop)…");
        let mut shown = 0;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            let messages = server.messages();
            for message in &messages[shown..] {
                let parsed = message.parsed();
                println!(
                    "received: from {} to {} | subject {:?} | {} bytes | tls {} | auth {}",
                    message.envelope_from,
                    message.recipients.join(", "),
                    parsed.subject.unwrap_or_default(),
                    message.raw.len(),
                    message.over_tls,
                    message.authenticated_as.as_deref().unwrap_or("-")
                );
            }
            shown = messages.len();
        }
        println!("stopped; {shown} message(s) received");
        Ok(())
    })
}
