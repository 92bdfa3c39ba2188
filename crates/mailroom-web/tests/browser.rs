//! The console in a real browser: Debian's Chromium through chromedriver (WebDriver, fantoccini) walks the seed's flow against the fake SMTP server, works the Outbox page (Retry by keyboard, the page refreshing itself while a message is being sent, Run), checks every page's layout at 390 px and 1280 px, and runs axe-core on each at both widths.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`apt-get install chromium
//! chromium-driver`) and axe-core under `$CARGO_TARGET_DIR/axe` (`.ci/run` installs all
//! three). Without them the test fails under CI (`CI` set) and skips with a message
//! elsewhere. Screenshots go to `$CARGO_TARGET_DIR/console-screenshots/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use mailroom_testkit::FakeSmtpServer;
use mailroom_web::{Console, ConsoleOptions};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const USER: &str = "erp@northwind.example";
const PASSWORD: &str = "right-horse-battery";
const WRONG: &str = "wrong-password-123";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

fn axe_script() -> PathBuf {
    target_dir().join("axe/node_modules/axe-core/axe.min.js")
}

/// `Some(reason)` when the browser tools are missing.
fn missing_tools() -> Option<String> {
    let missing: Vec<String> = [PathBuf::from(CHROMIUM), PathBuf::from(CHROMEDRIVER), axe_script()]
        .into_iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// chromedriver, killed when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_browser(profile: &Path) -> (Driver, Client) {
    let port = free_port();
    let driver = Driver(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let Value::Object(capabilities) = capabilities else { unreachable!() };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session");
    (driver, client)
}

async fn start_console(options: ConsoleOptions) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(mailroom_web::serve(listener, Console::new(options)));
    addr
}

/// Clicks an element that submits a form and waits for the next page to be loaded.
async fn click_and_wait(client: &Client, css: &str) {
    let old_main = client.find(Locator::Css("main")).await.unwrap();
    client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
    wait_for_new_page(client, old_main).await;
}

async fn wait_for_new_page(client: &Client, old_main: Element) {
    let deadline = Instant::now() + Duration::from_secs(30);
    // The old page's element goes stale once the new page replaced it.
    while old_main.attr("id").await.is_ok() {
        assert!(Instant::now() < deadline, "no new page after 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        let state = client.execute("return document.readyState", vec![]).await.unwrap();
        if state == "complete" {
            break;
        }
        assert!(Instant::now() < deadline, "the page did not finish loading");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fill(client: &Client, id: &str, value: &str) {
    let input = client.find(Locator::Id(id)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
}

async fn attr(client: &Client, id: &str, name: &str) -> Option<String> {
    client.find(Locator::Id(id)).await.unwrap().attr(name).await.unwrap()
}

async fn checked(client: &Client, id: &str) -> bool {
    client.find(Locator::Id(id)).await.unwrap().prop("checked").await.unwrap().as_deref() == Some("true")
}

async fn text(client: &Client, css: &str) -> String {
    client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).text().await.unwrap()
}

async fn screenshot(client: &Client, name: &str) {
    let dir = target_dir().join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// No horizontal scrolling at this width.
async fn check_layout(client: &Client, name: &str, width: u32) {
    client.set_window_size(width, 900).await.unwrap();
    let sizes =
        client.execute("return [document.documentElement.scrollWidth, window.innerWidth]", vec![]).await.unwrap();
    let (scroll, inner) = (sizes[0].as_u64().unwrap(), sizes[1].as_u64().unwrap());
    screenshot(client, &format!("{name}-{width}")).await;
    assert!(inner <= u64::from(width), "{name}: the window did not shrink to {width} (inner width {inner})");
    assert!(scroll <= inner, "{name} at {width} px scrolls sideways: content {scroll} px in a {inner} px window");
}

/// [`check_layout`], and axe-core finds no serious or critical violation at this width.
async fn check_page(client: &Client, axe: &str, name: &str, width: u32) {
    check_layout(client, name, width).await;
    client.execute(axe, vec![]).await.unwrap();
    let result = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {resultTypes: ['violations']})
               .then(r => done(r.violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => v.impact + ' ' + v.id + ': ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', '))))
               .catch(e => done(['axe failed: ' + e]));",
            vec![],
        )
        .await
        .unwrap();
    let violations: Vec<String> = serde_json::from_value(result).unwrap();
    assert!(violations.is_empty(), "{name}: axe-core found {violations:#?}");
}

/// Makes names, SKUs and descriptions long and partly unbreakable, as real ERP data often is.
fn lengthen(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match (key.as_str(), &mut *value) {
                    ("description" | "sku" | "name" | "title", Value::String(text)) => {
                        text.push_str(" GALVANISEDHEXAGONHEADBOLTM12X150DIN933ISO4017BOXOF100");
                    }
                    _ => lengthen(value),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(lengthen),
        _ => {}
    }
}

/// The saved config's outbox (the default SQLite file beside it) with a queued, a failed and
/// an unknown message, whose states the real store's claim and finish set.
async fn fill_outbox(config_path: &Path) -> mailroom_outbox::Store {
    let loaded = mailroom::load_config_file(config_path).unwrap();
    let store = mailroom::open_outbox(config_path, &loaded.outbox).await.unwrap();
    let messages: Vec<_> = (1..=3)
        .map(|n| {
            let message = mailroom_core::MessageDraft::new(USER.parse().unwrap())
                .to(format!("accounts-payable-department-{n}@galvanised-hexagon-bolts.example").parse().unwrap())
                .subject(format!(
                    "Reminder: invoice INV-2026-{n:05} is overdue (GALVANISEDHEXAGONHEADBOLTM12X150DIN933)"
                ))
                .text("Please pay.\n")
                .message_id(format!("<reminder-{n}@northwind.example>"))
                .build()
                .unwrap();
            mailroom_outbox::NewMessage {
                event_kind: Some("overdue_invoice_reminder".into()),
                ..mailroom_outbox::NewMessage::from_outgoing(&message)
            }
        })
        .collect();
    store.enqueue(&messages).await.unwrap();
    let claimed = store.claim("browser-test", 2, Duration::from_secs(60)).await.unwrap();
    let error = |kind: &str, message: &str| json!({"kind": kind, "message": message}).to_string();
    store
        .finish(&[
            mailroom_outbox::Outcome::Failed {
                id: claimed[0].id,
                claim_token: claimed[0].claim_token,
                error: error("recipient_rejected", "550 5.1.1 <accounts-payable-department-1@galvanised-hexagon-bolts.example>: Recipient address rejected: User unknown in virtual mailbox table"),
            },
            mailroom_outbox::Outcome::Unknown {
                id: claimed[1].id,
                claim_token: claimed[1].claim_token,
                error: error("delivery_unknown", "The connection was lost after the message was handed over: it may have been delivered."),
            },
        ])
        .await
        .unwrap();
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_flow_layout_and_accessibility_in_chromium() {
    if let Some(missing) = missing_tools() {
        if std::env::var_os("CI").is_some() {
            panic!("the browser test needs {missing}; .ci/run installs them");
        }
        println!(
            "skipped: {missing} not found (apt-get install chromium chromium-driver; npm install --prefix $CARGO_TARGET_DIR/axe axe-core)"
        );
        return;
    }
    let axe = std::fs::read_to_string(axe_script()).unwrap();
    let server = FakeSmtpServer::builder().account(USER, PASSWORD).require_auth(true).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), server.ca_pem()).unwrap();
    let config_path = dir.path().join("company-email.toml");
    let mut options = ConsoleOptions::new(&config_path);
    // The fake server's address and certificate authority; the person types the rest.
    options.prefill = Some(format!(
        "service = \"exchange\"\n[web_mail]\nserver = \"localhost\"\nport = {}\nenable_ssl = true\nca_file = \"ca.pem\"\ntimeout_secs = 5\n",
        server.addr().port()
    ));
    options.events_dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/events"));
    let server = std::sync::Arc::new(server);
    let received = server.clone();
    options.inbox = Some(mailroom_web::InboxSource::new(move || {
        received
            .messages()
            .iter()
            .map(|m| {
                let parsed = m.parsed();
                mailroom_web::InboxMessage {
                    subject: parsed.subject.clone().unwrap_or_default(),
                    to: parsed.to.iter().map(|a| a.address.clone()).collect(),
                    text: parsed.text.clone(),
                    html: parsed.html.clone(),
                    size: m.raw.len(),
                    over_tls: m.over_tls,
                    ..Default::default()
                }
            })
            .collect()
    }));
    let secrets_path = options.secrets_path.clone();
    let addr = start_console(options).await;
    let profile = tempfile::tempdir().unwrap();
    let (_driver, client) = start_browser(profile.path()).await;
    let base = format!("http://{addr}");

    // Choose Web Mail, enter a wrong password, Validate.
    client.goto(&format!("{base}/")).await.unwrap();
    client.find(Locator::Id("service-web_mail")).await.unwrap().click().await.unwrap();
    assert!(client.find(Locator::Id("smtp_password")).await.unwrap().is_displayed().await.unwrap());
    assert!(!client.find(Locator::Id("ews_uri")).await.unwrap().is_displayed().await.unwrap());
    fill(&client, "email_address", USER).await;
    fill(&client, "display_name", "Northwind ERP").await;
    fill(&client, "smtp_username", USER).await;
    fill(&client, "smtp_password", WRONG).await;
    assert!(attr(&client, "save", "disabled").await.is_some(), "Save starts disabled");
    click_and_wait(&client, "button.primary[value=validate]").await;
    screenshot(&client, "1-wrong-password").await;
    assert_eq!(attr(&client, "smtp_password", "aria-invalid").await.as_deref(), Some("true"));
    let error = text(&client, "#smtp_password-error").await;
    assert!(
        error.contains("The SMTP server required a secure connection or the client was not authenticated"),
        "{error}"
    );
    assert!(error.contains("authentication"), "{error}");
    assert!(attr(&client, "save", "disabled").await.is_some());
    assert_eq!(attr(&client, "smtp_password", "value").await.as_deref(), Some(""), "the password is not sent back");

    // Fix it and Validate by pressing Enter in the field (keyboard use): Save becomes enabled.
    let old_main = client.find(Locator::Css("main")).await.unwrap();
    fill(&client, "smtp_password", &format!("{PASSWORD}\u{E007}")).await;
    wait_for_new_page(&client, old_main).await;
    screenshot(&client, "2-validated").await;
    let result = text(&client, "#result").await;
    assert!(result.contains("Validated") && result.contains("Message-ID <"), "{result}");
    assert!(attr(&client, "save", "disabled").await.is_none(), "Save enabled after a successful Validate");

    // Save writes both files, 0600, no secret in the config.
    click_and_wait(&client, "#save").await;
    assert!(text(&client, "#result").await.contains("Saved"));
    let config = std::fs::read_to_string(&config_path).unwrap();
    assert!(!config.contains(PASSWORD) && config.contains("password_env"), "{config}");
    assert!(std::fs::read_to_string(&secrets_path).unwrap().contains(PASSWORD));
    #[cfg(unix)]
    for path in [&config_path, &secrets_path] {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o600, "{}", path.display());
    }

    // An SSL setting error, fixed by clicking Diagnose's suggestion.
    client.find(Locator::Id("smtp_enable_ssl")).await.unwrap().click().await.unwrap();
    assert!(attr(&client, "save", "disabled").await.is_some(), "a changed value disables Save at once");
    click_and_wait(&client, "button.primary[value=validate]").await;
    assert_eq!(attr(&client, "smtp_enable_ssl", "aria-invalid").await.as_deref(), Some("true"));
    assert!(text(&client, "#smtp_enable_ssl-error").await.contains("ssl_setting"));
    click_and_wait(&client, "button[value=diagnose]").await;
    screenshot(&client, "3-diagnose").await;
    click_and_wait(&client, "button[value^='fix:']").await;
    assert!(text(&client, "#result").await.contains("Validated"));
    assert!(checked(&client, "smtp_enable_ssl").await, "the fix ticked Enable SSL");

    // The Outbox page: first it explains how to enable the outbox, then it lists it.
    client.goto(&format!("{base}/outbox")).await.unwrap();
    assert!(text(&client, "#not-enabled").await.contains("[outbox]"));
    for width in [390, 1280] {
        check_page(&client, &axe, "outbox-not-enabled", width).await;
    }
    let store = fill_outbox(&config_path).await;
    client.goto(&format!("{base}/outbox")).await.unwrap();
    for width in [390, 1280] {
        check_page(&client, &axe, "outbox", width).await;
    }
    // Keyboard: Tab to the first Retry button and press Enter.
    client.set_window_size(1280, 900).await.unwrap();
    let retry = client.find(Locator::Css("button[aria-label='Retry message 1']")).await.unwrap();
    assert_eq!(retry.text().await.unwrap(), "Retry");
    let old_main = client.find(Locator::Css("main")).await.unwrap();
    retry.send_keys("\u{E007}").await.unwrap();
    wait_for_new_page(&client, old_main).await;
    assert!(text(&client, "#result").await.contains("Message 1 is queued again"));
    // While a message is being sent the page refreshes itself (the static script), and stops
    // once nothing is in flight.
    let held = store.claim("another-worker", 1, Duration::from_secs(60)).await.unwrap();
    client.goto(&format!("{base}/outbox")).await.unwrap();
    assert!(text(&client, "#refreshing").await.contains("refreshes every 2 seconds"));
    screenshot(&client, "outbox-refreshing").await;
    let old_main = client.find(Locator::Css("main")).await.unwrap();
    let back = mailroom_outbox::Outcome::Retry {
        id: held[0].id,
        claim_token: held[0].claim_token,
        not_before_ms: 0,
        error: "{}".into(),
    };
    store.finish(&[back]).await.unwrap();
    // The test does not navigate: only the page's own refresh can make the notice go.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if old_main.attr("id").await.is_err()
            && client.execute("return document.readyState", vec![]).await.unwrap() == "complete"
            && client.find(Locator::Id("refreshing")).await.is_err()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the page did not refresh itself");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Run sends the queued messages through the saved config; the page follows the run.
    let before = server.messages().len();
    click_and_wait(&client, "form[action='/outbox/run'] button").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client.source().await.unwrap().contains("The last run from this page") {
        assert!(Instant::now() < deadline, "the run did not finish: {}", text(&client, "main").await);
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.goto(&format!("{base}/outbox?auto=off")).await.unwrap();
    }
    assert!(text(&client, "#result").await.contains("2 sent, 0 failed, 0 unknown"), "{}", text(&client, "main").await);
    assert_eq!(server.messages().len(), before + 2, "messages 1 and 3 (2 waits for a decision)");
    screenshot(&client, "outbox-after-run").await;

    // Email Services: Microsoft 365 shows its own fields, on a phone too.
    client.goto(&format!("{base}/")).await.unwrap();
    client.find(Locator::Id("service-microsoft")).await.unwrap().click().await.unwrap();
    assert!(client.find(Locator::Id("ms_tenant")).await.unwrap().is_displayed().await.unwrap());
    assert!(!client.find(Locator::Id("smtp_server")).await.unwrap().is_displayed().await.unwrap());
    for width in [390, 1280] {
        check_page(&client, &axe, "company-email-microsoft", width).await;
    }

    // Every page: no sideways scrolling at 390 px and 1280 px, no serious axe violation.
    for (name, path) in [
        ("company-email", "/"),
        ("connect", "/connect"),
        ("events", "/events"),
        ("event", "/events/overdue_invoice_reminder"),
        ("inbox", "/inbox"),
        ("sign-in", "/sign-in"),
        ("not-found", "/nope"),
    ] {
        client.goto(&format!("{base}{path}")).await.unwrap();
        for width in [390, 1280] {
            check_page(&client, &axe, name, width).await;
        }
    }
    // The customer's e-mails themselves fit a phone.
    for kind in mailroom_events::EventKind::ALL {
        client.goto(&format!("{base}/events/{}/message.html", kind.as_str())).await.unwrap();
        check_layout(&client, &format!("mail-{}", kind.as_str()), 390).await;
    }
    // ... also with the long unbreakable names, SKUs and descriptions real ERP data has.
    for kind in mailroom_events::EventKind::ALL {
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../fixtures/events/{}.json", kind.as_str()));
        let mut data: Value = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
        lengthen(&mut data);
        client.goto(&format!("{base}/events")).await.unwrap();
        client
            .execute(
                "document.getElementById('paste-kind').value = arguments[0];
                 document.getElementById('paste-data').value = arguments[1];",
                vec![json!(kind.as_str()), json!(data.to_string())],
            )
            .await
            .unwrap();
        click_and_wait(&client, "#paste-data ~ * button, form[action='/events/preview'] button").await;
        assert!(
            client.find(Locator::Css("#message")).await.is_ok(),
            "{kind}: the long data did not render: {}",
            text(&client, "main").await
        );
        client.goto(&format!("{base}/events/pasted/message.html")).await.unwrap();
        check_layout(&client, &format!("mail-long-{}", kind.as_str()), 390).await;
    }
    // The page with an error and a diagnosis open is the longest one: check it too.
    client.set_window_size(1280, 900).await.unwrap();
    client.goto(&format!("{base}/")).await.unwrap();
    client.find(Locator::Id("smtp_enable_ssl")).await.unwrap().click().await.unwrap();
    click_and_wait(&client, "button[value=diagnose]").await;
    for width in [390, 1280] {
        check_page(&client, &axe, "company-email-diagnosis", width).await;
    }
    client.close().await.unwrap();
}
