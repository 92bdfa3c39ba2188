//! Loopback endpoints never go through the environment's proxy: `http://` is allowed only to loopback (by core's rule, `*.localhost` included), and a proxy would see it in cleartext, Basic credentials and all.
//!
//! The proxy comes from `HTTP_PROXY`, which is process-wide; the test runs itself again as a
//! child process with it set, so no other test sees it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use mailroom_core::Transport;
use mailroom_ews::EwsTransport;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const CHILD: &str = "MAILROOM_EWS_PROXY_CHILD";

/// A "proxy" on loopback that counts every byte it is sent and answers nothing useful.
async fn fake_proxy() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    counter.fetch_add(n, Ordering::SeqCst);
                }
            });
        }
    });
    (addr, seen)
}

#[test]
fn localhost_endpoints_bypass_the_environment_proxy() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (proxy, seen) = runtime.block_on(fake_proxy());
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_sends_to_localhost_names_with_a_proxy_set", "--ignored", "--nocapture"])
        .env(CHILD, "1")
        .env("HTTP_PROXY", format!("http://{proxy}"))
        .env("http_proxy", format!("http://{proxy}"))
        .env("ALL_PROXY", format!("http://{proxy}"))
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(seen.load(Ordering::SeqCst), 0, "the proxy received the request");
    assert!(status.success(), "the child test failed");
}

/// Runs only as the child of the test above (ignored otherwise).
#[tokio::test]
#[ignore = "run by localhost_endpoints_bypass_the_environment_proxy with HTTP_PROXY set"]
async fn child_sends_to_localhost_names_with_a_proxy_set() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    // Basic: an EWS URI on a *.localhost name (pinned to loopback, no DNS asked).
    let ews = raw_http(Answer::Xml(fixture("create_item_success.xml"))).await;
    let transport =
        EwsTransport::new(sender(), &config(&format!("http://ews.localhost:{}{EWS_PATH}", ews.port()))).unwrap();
    transport.send(&message("via localhost name")).await.expect("sent directly, not through the proxy");
    let probe = transport.probe().await;
    assert!(probe.is_ok(), "{probe:?}");

    // OAuth: the token endpoint on a *.localhost name too.
    let login = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "expires_in": 3599, "access_token": "sentinel-access-token-1",
        })))
        .mount(&login)
        .await;
    let token_endpoint = format!("http://login.localhost:{}/tenant/oauth2/v2.0/token", login.address().port());
    let transport =
        EwsTransport::builder(sender(), &oauth_config(&format!("http://ews.localhost:{}{EWS_PATH}", ews.port())))
            .token_endpoint(token_endpoint.parse().unwrap())
            .build()
            .unwrap();
    transport.send(&message("oauth via localhost names")).await.expect("token and send direct");
    assert_eq!(login.received_requests().await.unwrap().len(), 1);
}

const DIAGNOSE_CHILD: &str = "MAILROOM_EWS_DIAGNOSE_PROXY_CHILD";

/// Issue 10 #5: on a network that reaches Exchange only through `HTTPS_PROXY`, `diagnose`
/// must go through the proxy as `send` does, not resolve and connect directly.
#[test]
fn diagnose_honours_https_proxy_like_send() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (proxy, seen) = runtime.block_on(fake_proxy());
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_diagnoses_through_the_proxy", "--ignored", "--nocapture"])
        .env(DIAGNOSE_CHILD, "1")
        .env("HTTPS_PROXY", format!("http://{proxy}"))
        .env("https_proxy", format!("http://{proxy}"))
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(status.success(), "the child test failed");
    assert!(seen.load(Ordering::SeqCst) > 0, "diagnose did not go through the proxy");
}

/// Runs only as the child of the test above (ignored otherwise).
#[tokio::test]
#[ignore = "run by diagnose_honours_https_proxy_like_send with HTTPS_PROXY set"]
async fn child_diagnoses_through_the_proxy() {
    if std::env::var_os(DIAGNOSE_CHILD).is_none() {
        return;
    }
    // A name only the proxy could resolve: a direct lookup fails.
    let mut config = config("https://ews.proxied.invalid/EWS/Exchange.asmx");
    config.timeout = Duration::from_secs(1);
    let transport = EwsTransport::new(sender(), &config).unwrap();
    let probe = transport.probe().await;
    let resolve_failed =
        probe.steps.iter().any(|s| s.name == "resolve" && s.outcome == mailroom_core::StepOutcome::Failed);
    assert!(!resolve_failed, "diagnose resolved the name itself instead of using the proxy: {probe:?}");
}
