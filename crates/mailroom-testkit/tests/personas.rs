//! Provider personas answer each step and fault with the captured real replies, verified over loopback.

mod common;

use common::{RawClient, STEP, WireReply, b64, lettre_tls_parameters, lettre_transport};
use lettre::transport::smtp::authentication::Mechanism;
use lettre::transport::smtp::client::Tls;
use lettre::{AsyncTransport, Message};
use mailroom_testkit::{Fault, Persona, ScriptedSmtpServer};

const USER: &str = "erp@company.com";
const PASSWORD: &str = "abcdefghijklmnop";

fn message() -> Message {
    Message::builder()
        .from(USER.parse().unwrap())
        .to("ada@example.com".parse().unwrap())
        .subject("Order SO-7 allocated")
        .body("Your order is allocated.".to_owned())
        .unwrap()
}

/// Connects the way the persona's port expects and stops at an authenticated-ready session.
async fn secure_session(persona: &Persona, server: &ScriptedSmtpServer) -> RawClient {
    if persona.implicit_tls() {
        let mut client = RawClient::connect_tls(server.addr(), server.certificates()).await.unwrap();
        assert_eq!(client.reply().await.raw, persona.reply("greeting").unwrap().render());
        assert_eq!(client.command("EHLO client.example").await.code, 250);
        client
    } else {
        RawClient::connect_starttls(server.addr(), server.certificates()).await
    }
}

async fn auth_login(client: &mut RawClient, password: &str) -> WireReply {
    assert_eq!(client.command("AUTH LOGIN").await.code, 334);
    assert_eq!(client.command(&b64(USER)).await.code, 334);
    client.command(&b64(password)).await
}

fn expected(persona: &Persona, key: &str) -> String {
    persona.reply(key).unwrap_or_else(|| panic!("{} has no {key}", persona.name())).render()
}

#[tokio::test]
async fn happy_path_accepts_the_configured_account_on_every_persona() {
    for persona in Persona::all() {
        let server = persona.clone().account(USER, PASSWORD).start().await.unwrap();
        let tls = if persona.implicit_tls() {
            Tls::Wrapper(lettre_tls_parameters(server.ca_pem()))
        } else {
            Tls::Required(lettre_tls_parameters(server.ca_pem()))
        };
        let transport = lettre_transport(server.addr(), tls, Some((USER, PASSWORD)), Mechanism::Login);
        transport.send(message()).await.unwrap_or_else(|e| panic!("{}: {e}", persona.name()));
        let captured = &server.wait_for_messages(1, STEP).await.unwrap()[0];
        assert_eq!(captured.authenticated_as.as_deref(), Some(USER));
        assert!(captured.over_tls);
        assert_eq!(captured.parsed().subject.as_deref(), Some("Order SO-7 allocated"));
        let replies = server.transcripts()[0].server_replies().join("\r\n") + "\r\n";
        assert!(replies.contains(&expected(&persona, "message_accepted")), "{}", persona.name());
        assert!(replies.contains(&expected(&persona, "auth_success")), "{}", persona.name());
    }
}

#[tokio::test]
async fn starttls_personas_offer_no_auth_before_tls_and_refuse_mail_there() {
    for persona in [Persona::gmail_587(), Persona::office365_587()] {
        let server = persona.clone().account(USER, PASSWORD).start().await.unwrap();
        let mut client = RawClient::connect(server.addr()).await;
        assert_eq!(client.reply().await.raw, expected(&persona, "greeting"));
        let ehlo = client.command("EHLO client.example").await;
        assert!(ehlo.raw.contains("STARTTLS") && !ehlo.raw.contains("AUTH"), "{}", ehlo.raw);
        let refused = client.command(&format!("MAIL FROM:<{USER}>")).await;
        assert_eq!(refused.raw, expected(&persona, "tls_required"), "{}", persona.name());

        let mut secure = RawClient::connect_starttls(server.addr(), server.certificates()).await;
        let unauthenticated = secure.command(&format!("MAIL FROM:<{USER}>")).await;
        assert_eq!(unauthenticated.raw, expected(&persona, "auth_required"), "{}", persona.name());
    }
    // Gmail's answers are the captured texts, multi-line where Gmail's are.
    let gmail = Persona::gmail_587();
    assert!(expected(&gmail, "tls_required").starts_with("530 5.7.0 Must issue a STARTTLS command first."));
    assert!(expected(&gmail, "auth_required").starts_with("530-5.7.0 Authentication Required."));
    let o365 = Persona::office365_587();
    assert!(expected(&o365, "tls_required").starts_with("451 5.7.3 STARTTLS is required to send mail"));
    assert!(expected(&o365, "auth_required").starts_with("530 5.7.57 Client not authenticated"));
}

#[tokio::test]
async fn gmail_capabilities_after_tls_list_every_mechanism() {
    let persona = Persona::gmail_587();
    let server = persona.clone().start().await.unwrap();
    let mut client = RawClient::connect(server.addr()).await;
    client.reply().await;
    client.command("EHLO client.example").await;
    client.command("STARTTLS").await;
    let mut client = client.starttls(server.certificates()).await.unwrap();
    let ehlo = client.command("EHLO client.example").await;
    for capability in [
        "250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH\r\n",
        "250-SIZE 35882577\r\n",
        "250-8BITMIME\r\n",
        "250-ENHANCEDSTATUSCODES\r\n",
        "250-PIPELINING\r\n",
        "250-CHUNKING\r\n",
        "250 SMTPUTF8\r\n",
    ] {
        assert!(ehlo.raw.contains(capability), "{capability} missing from {}", ehlo.raw);
    }
    assert!(!ehlo.raw.contains("STARTTLS"));
}

#[tokio::test]
async fn credential_faults_answer_auth_with_the_captured_replies() {
    let cases = [
        (Persona::gmail_587(), Fault::BadPassword, "bad_credentials", "535-5.7.8 Username and Password not accepted."),
        (Persona::gmail_465(), Fault::BadPassword, "bad_credentials", "535-5.7.8 Username and Password not accepted."),
        (
            Persona::gmail_587(),
            Fault::AppPasswordRequired,
            "app_password_required",
            "534-5.7.9 Application-specific password required.",
        ),
        (Persona::office365_587(), Fault::BadPassword, "bad_credentials", "535 5.7.3 Authentication unsuccessful"),
        (
            Persona::office365_587(),
            Fault::SmtpAuthDisabled,
            "smtp_auth_disabled",
            "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
        ),
    ];
    for (persona, fault, key, prefix) in cases {
        let server = persona.clone().account(USER, PASSWORD).fault(fault).start().await.unwrap();
        let mut client = secure_session(&persona, &server).await;
        // The right password does not help: the fault is the server's verdict.
        let reply = auth_login(&mut client, PASSWORD).await;
        assert_eq!(reply.raw, expected(&persona, key), "{} {fault:?}", persona.name());
        assert!(reply.raw.starts_with(prefix), "{}", reply.raw);
        assert_eq!(client.command(&format!("MAIL FROM:<{USER}>")).await.raw, expected(&persona, "auth_required"));
    }
}

#[tokio::test]
async fn without_a_fault_a_wrong_password_gets_the_bad_credentials_reply() {
    for persona in Persona::all() {
        let server = persona.clone().account(USER, PASSWORD).start().await.unwrap();
        let mut client = secure_session(&persona, &server).await;
        let reply = auth_login(&mut client, "wrong").await;
        assert_eq!(reply.raw, expected(&persona, "bad_credentials"), "{}", persona.name());
    }
}

#[tokio::test]
async fn lettre_sees_the_multi_line_app_password_reply() {
    let persona = Persona::gmail_587();
    let server = persona.clone().account(USER, PASSWORD).fault(Fault::AppPasswordRequired).start().await.unwrap();
    let transport = lettre_transport(
        server.addr(),
        Tls::Required(lettre_tls_parameters(server.ca_pem())),
        Some((USER, PASSWORD)),
        Mechanism::Plain,
    );
    let error = transport.send(message()).await.unwrap_err();
    assert_eq!(error.status().map(|c| c.to_string()).as_deref(), Some("534"), "{error}");
    assert!(error.to_string().contains("Application-specific password required"), "{error}");
}

#[tokio::test]
async fn office365_refuses_auth_plain_with_504_5_7_4() {
    let persona = Persona::office365_587();
    let server = persona.clone().account(USER, PASSWORD).start().await.unwrap();
    let mut client = secure_session(&persona, &server).await;
    let reply = client.command(&format!("AUTH PLAIN {}", b64(&format!("\0{USER}\0{PASSWORD}")))).await;
    assert_eq!(reply.raw, expected(&persona, "unrecognized_mechanism"));
    assert!(reply.raw.starts_with("504 5.7.4 Unrecognized authentication type"));
}

#[tokio::test]
async fn gmail_rejects_a_bad_xoauth2_token_with_the_error_challenge() {
    let persona = Persona::gmail_587();
    let server =
        persona.clone().oauth_token(USER, "ya29.valid").fault(Fault::OAuthTokenRejected).start().await.unwrap();
    let mut client = secure_session(&persona, &server).await;
    let token = b64(&format!("user={USER}\u{1}auth=Bearer ya29.valid\u{1}\u{1}"));
    let challenge = client.command(&format!("AUTH XOAUTH2 {token}")).await;
    assert_eq!(challenge.raw, expected(&persona, "xoauth2_error_challenge"));
    assert_eq!(client.command("").await.raw, expected(&persona, "bad_credentials"));

    let happy = persona.clone().oauth_token(USER, "ya29.valid").start().await.unwrap();
    let mut client = secure_session(&persona, &happy).await;
    assert_eq!(client.command(&format!("AUTH XOAUTH2 {token}")).await.raw, expected(&persona, "auth_success"));
}

#[tokio::test]
async fn starttls_required_fault_lets_plaintext_clients_reach_auth_and_refuses_it() {
    for persona in [Persona::gmail_587(), Persona::office365_587()] {
        let server = persona.clone().account(USER, PASSWORD).fault(Fault::StartTlsRequired).start().await.unwrap();
        let mut client = RawClient::connect(server.addr()).await;
        client.reply().await;
        let ehlo = client.command("EHLO client.example").await;
        assert!(ehlo.raw.contains("AUTH LOGIN"), "{}", ehlo.raw);
        let auth = client.command(&format!("AUTH PLAIN {}", b64(&format!("\0{USER}\0{PASSWORD}")))).await;
        assert_eq!(auth.raw, expected(&persona, "tls_required"), "{}", persona.name());

        // lettre without TLS gets the same captured reply.
        let transport = lettre_transport(server.addr(), Tls::None, Some((USER, PASSWORD)), Mechanism::Login);
        let error = transport.send(message()).await.unwrap_err();
        let code = persona.reply("tls_required").unwrap().code.to_string();
        assert_eq!(error.status().map(|c| c.to_string()), Some(code), "{error}");
    }
}

#[tokio::test]
async fn office365_sender_faults_refuse_at_mail_and_after_data() {
    let persona = Persona::office365_587();
    let server = persona.clone().account(USER, PASSWORD).fault(Fault::SenderNotAllowed).start().await.unwrap();
    let mut client = secure_session(&persona, &server).await;
    assert_eq!(auth_login(&mut client, PASSWORD).await.code, 235);
    let refused = client.command("MAIL FROM:<ceo@company.com>").await;
    assert_eq!(refused.raw, expected(&persona, "sender_not_allowed"));
    assert!(refused.raw.starts_with("550 5.7.60 SMTP; Client does not have permissions to send as this sender"));

    let server = persona.clone().account(USER, PASSWORD).fault(Fault::SendAsDenied).start().await.unwrap();
    let mut client = secure_session(&persona, &server).await;
    assert_eq!(auth_login(&mut client, PASSWORD).await.code, 235);
    assert_eq!(client.command("MAIL FROM:<ceo@company.com>").await.code, 250);
    assert_eq!(client.command("RCPT TO:<ada@example.com>").await.code, 250);
    assert_eq!(client.command("DATA").await.code, 354);
    client.send_raw(b"Subject: t\r\n\r\nx\r\n.\r\n").await;
    let denied = client.reply().await;
    assert!(
        denied.raw.starts_with(&format!(
            "554 5.2.252 SendAsDenied; {USER} not allowed to send as ceo@company.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied;"
        )),
        "{}",
        denied.raw
    );
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn faults_without_a_capture_are_refused_not_invented() {
    for persona in Persona::all() {
        for fault in Fault::ALL {
            let started = persona.clone().fault(fault).start().await;
            assert_eq!(started.is_ok(), persona.supports(fault), "{} {fault:?}", persona.name());
        }
    }
}
