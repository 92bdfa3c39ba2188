//! Loopback endpoints never go through the environment's proxy (it would see the client secret, the refresh token and the message in cleartext), while Google's real https endpoints still do.
//!
//! Proxy variables are read from the environment, and changing the environment of a running
//! test process races with other threads, so the one test here re-runs this test binary as a
//! child process with the proxy variables pointing at a fake proxy listener owned by the
//! parent. The child does the sign-in, a send and a probe against loopback `http://` servers;
//! the parent then checks what reached the proxy.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use mailroom_core::Transport;
use mailroom_gmail::{ConsentFlow, GmailTransport};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CHILD: &str = "MAILROOM_GMAIL_PROXY_TEST_CHILD";
const TEST_NAME: &str = "loopback_endpoints_bypass_the_environment_proxy";
/// A non-loopback https endpoint: only the proxy is ever asked for it (no DNS lookup).
const REMOTE_TOKEN_BASE: &str = "https://oauth2.mailroom-test.invalid";

#[test]
fn loopback_endpoints_bypass_the_environment_proxy() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    {
        let seen = seen.clone();
        std::thread::spawn(move || {
            for stream in proxy.incoming() {
                let Ok(mut stream) = stream else { return };
                stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut data = Vec::new();
                let mut buffer = [0u8; 4096];
                while !data.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => data.extend_from_slice(&buffer[..n]),
                    }
                }
                // Give whatever body follows a moment to arrive, so a leak is seen whole.
                stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
                if let Ok(n) = stream.read(&mut buffer) {
                    data.extend_from_slice(&buffer[..n]);
                }
                seen.lock().unwrap().push(String::from_utf8_lossy(&data).into_owned());
                let _ = stream.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
    }
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"]).env(CHILD, "1");
    for name in ["NO_PROXY", "no_proxy"] {
        command.env_remove(name);
    }
    for name in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
        command.env(name, &proxy_url);
    }
    let output = command.output().unwrap();
    let child_output =
        format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the child run failed:\n{child_output}");
    assert!(child_output.contains("1 passed"), "the child did not run the test:\n{child_output}");

    let seen = seen.lock().unwrap().clone();
    for request in &seen {
        for secret in [CLIENT_SECRET, REFRESH_TOKEN, "fixture-code", "Invoice INV-1001"] {
            assert!(!request.contains(secret), "the proxy received {secret}: {request}");
        }
        assert!(!request.contains("127.0.0.1"), "a loopback request went through the proxy: {request}");
    }
    // https endpoints elsewhere still use the proxy (corporate networks need it).
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("CONNECT oauth2.mailroom-test.invalid:443 "), "{seen:?}");
}

/// Runs in the child, with the proxy variables set.
fn child() {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
        let server = MockServer::start().await;
        mount_token_ok(&server).await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("grant_type=authorization_code"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json("token_code_exchanged.json")))
            .mount(&server)
            .await;
        Mock::given(method("POST")).and(path(SEND_PATH)).respond_with(FakeGmail::default()).mount(&server).await;
        let config = config(&server.uri(), &server.uri());

        // The code exchange of `mailroom connect google`.
        let flow = ConsentFlow::start(&config, None).await.unwrap();
        let state: String =
            flow.authorize_url().query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned()).unwrap();
        let redirect = format!("{}/?state={state}&code=4%2Ffixture-code", flow.redirect_uri());
        let waiting = tokio::spawn(flow.finish(Duration::from_secs(10)));
        let browser = reqwest::Client::builder().no_proxy().build().unwrap();
        assert_eq!(browser.get(redirect).send().await.unwrap().status().as_u16(), 200);
        waiting.await.unwrap().expect("the code exchange reached the loopback token endpoint");

        // A send (token refresh and upload) and a probe.
        let transport = GmailTransport::new(sender(), &config).unwrap();
        transport.send(&message()).await.expect("the send reached the loopback servers");
        assert!(transport.probe().await.is_ok());
        assert_eq!(server.received_requests().await.unwrap().len(), 5);

        // A remote https token endpoint is asked for through the proxy, which refuses.
        let remote = common::config(REMOTE_TOKEN_BASE, &server.uri());
        let error = GmailTransport::new(sender(), &remote).unwrap().send(&message()).await.unwrap_err();
        eprintln!("remote endpoint through the proxy: {error}");
    });
}
