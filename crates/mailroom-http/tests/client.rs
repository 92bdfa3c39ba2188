//! The client against real loopback servers: pinning, classification of replies that break after the head, scrubbing of echoed secrets.

use std::time::Duration;

use mailroom_core::Transcript;
use mailroom_http::{ClientOptions, Failure, Header, HttpClient, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn options() -> ClientOptions {
    ClientOptions::new("mailroom-http-test").connect_timeout(Duration::from_secs(2))
}

/// A server that answers every request with `head`, then sends `body` one byte per `pace`.
async fn trickling_server(head: &'static str, body: &'static [u8], pace: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 65536];
                let _ = stream.read(&mut buffer).await;
                let _ = stream.write_all(head.as_bytes()).await;
                for byte in body {
                    tokio::time::sleep(pace).await;
                    if stream.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{address}/")
}

#[tokio::test]
async fn a_2xx_whose_body_trickles_past_the_deadline_is_delivery_unknown_when_it_delivers() {
    let url = trickling_server(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n",
        b"{\"id\":\"18e1c0ffee000001\",\"labelIds\":[]}",
        Duration::from_millis(400),
    )
    .await
    .parse()
    .unwrap();
    let client = HttpClient::for_endpoint(&url, &options()).unwrap();
    let request =
        Request::post(&url).body(b"message".to_vec(), "the message").reply_timeout(Duration::from_millis(300));
    let error = client.send(request.delivers(true), &mut Transcript::new()).await.unwrap_err();
    assert_eq!(error.failure(), Failure::DeliveryUnknown, "{error}");
    assert_eq!(error.status(), Some(200));

    let token = Request::post(&url).body(b"grant_type=x".to_vec(), "grant").reply_timeout(Duration::from_millis(300));
    let error = client.send(token, &mut Transcript::new()).await.unwrap_err();
    assert_eq!(error.failure(), Failure::Timeout, "a token reply that trickles is a timeout: {error}");
}

#[tokio::test]
async fn a_2xx_cut_short_is_delivery_unknown_when_it_delivers() {
    let url = trickling_server("HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n", b"{\"id\":", Duration::ZERO).await;
    // The server task ends the connection after the last byte.
    let url: url::Url = url.parse().unwrap();
    let client = HttpClient::for_endpoint(&url, &options()).unwrap();
    let error = client
        .send(Request::post(&url).body(b"m".to_vec(), "m").delivers(true), &mut Transcript::new())
        .await
        .unwrap_err();
    assert_eq!(error.failure(), Failure::DeliveryUnknown, "{error}");
}

#[tokio::test]
async fn localhost_names_reach_loopback_and_http_to_other_addresses_is_refused() {
    let server = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(204)).mount(&server).await;
    let port = server.address().port();
    let url: url::Url = format!("http://mail.localhost:{port}/").parse().unwrap();
    let client = HttpClient::for_endpoint(&url, &options()).unwrap();
    assert!(client.is_loopback_only());
    let reply = client.send(Request::get(&url), &mut Transcript::new()).await.unwrap();
    assert_eq!(reply.status, 204);

    let elsewhere: url::Url = "http://10.1.2.3:8080/token".parse().unwrap();
    let error = client.send(Request::get(&elsewhere), &mut Transcript::new()).await.unwrap_err();
    assert_eq!(error.failure(), Failure::NotLoopback, "{error}");

    let https: url::Url = "https://gmail.googleapis.com/".parse().unwrap();
    let https_client = HttpClient::for_endpoint(&https, &options()).unwrap();
    let error = https_client.send(Request::get(&url), &mut Transcript::new()).await.unwrap_err();
    assert_eq!(error.failure(), Failure::NotLoopback, "an https client is not checked for http:// targets: {error}");
}

#[tokio::test]
async fn echoed_secrets_are_scrubbed_and_credential_headers_redacted() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_string("you sent Bearer sentinel-access-token and client_secret=sentinel%2Fsecret"),
        )
        .mount(&server)
        .await;
    let url: url::Url = server.uri().parse().unwrap();
    let client = HttpClient::for_endpoint(&url, &options()).unwrap();
    let mut transcript = Transcript::new();
    let request = Request::post(&url)
        .header(Header::secret(http::header::AUTHORIZATION, "Bearer sentinel-access-token".parse().unwrap()))
        .body(b"client_secret=sentinel%2Fsecret".to_vec(), "client_secret=[redacted]")
        .secret("sentinel/secret");
    let reply = client.send(request, &mut transcript).await.unwrap();
    assert_eq!(reply.status, 400);
    let text = reply.scrubbed_text();
    assert!(!text.contains("sentinel"), "{text}");
    let shown = transcript.to_string();
    assert!(shown.contains("Authorization: Bearer [redacted]") && !shown.contains("sentinel"), "{shown}");
}

#[tokio::test]
async fn refused_connections_are_not_sent_and_classified_as_connect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url: url::Url = format!("http://{}/", listener.local_addr().unwrap()).parse().unwrap();
    drop(listener);
    let client = HttpClient::for_endpoint(&url, &options()).unwrap();
    let error = client
        .send(Request::post(&url).body(b"m".to_vec(), "m").delivers(true), &mut Transcript::new())
        .await
        .unwrap_err();
    assert_eq!(error.failure(), Failure::Connect { refused: true }, "{error}");
    assert!(error.failure().not_sent());
}
