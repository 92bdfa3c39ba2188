//! `HostileHttpServer`: a raw HTTP/1.1 server on loopback that reads each request whole and then misbehaves on purpose — replies cut mid-body, 10 MB header lines or bodies, endless chunked bodies, a reply trickled a byte at a time, silence — for the HTTP drivers' hostile-server tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mailroom_core::{ErrorKind, OutgoingMessage, RetryPolicy, SendError, Transport};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::KitError;

/// The largest request head and body the server reads (a message upload fits).
const MAX_REQUEST: usize = 64 * 1024 * 1024;

/// What the server does once it has read a request whole.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum HostileReply {
    /// Writes `bytes` (head and body, exactly as given) and closes the connection.
    Raw(Vec<u8>),
    /// Writes a reply head promising `promised` body bytes, then only `sent`, then closes.
    CutBody {
        /// The status code of the head.
        status: u16,
        /// The `Content-Length` announced.
        promised: usize,
        /// The body bytes actually written.
        sent: Vec<u8>,
    },
    /// Writes a status line and then one header line of `bytes` bytes that never ends.
    HugeHeaderLine {
        /// The status code.
        status: u16,
        /// How long the header line is.
        bytes: usize,
    },
    /// Writes a complete reply with a body of `bytes` bytes (`Content-Length` set).
    HugeBody {
        /// The status code.
        status: u16,
        /// The body's size.
        bytes: usize,
    },
    /// Writes a `Transfer-Encoding: chunked` reply whose chunks never end (until the client
    /// goes away).
    EndlessChunked {
        /// The status code.
        status: u16,
    },
    /// Writes `bytes` one byte every `pace`, then closes.
    Trickle {
        /// The whole reply, head and body.
        bytes: Vec<u8>,
        /// The pause before each byte.
        pace: Duration,
    },
    /// Never answers; keeps the connection open until the client goes away.
    Silent,
}

impl HostileReply {
    /// A complete reply with `status`, extra `headers` (each `Name: value`, no line ending)
    /// and `body`, as [`HostileReply::Raw`].
    ///
    /// ```
    /// use mailroom_testkit::HostileReply;
    /// let reply = HostileReply::reply(429, &["Retry-After: 99999999999"], b"{}");
    /// assert!(matches!(reply, HostileReply::Raw(bytes) if bytes.starts_with(b"HTTP/1.1 429 ")));
    /// ```
    pub fn reply(status: u16, headers: &[&str], body: &[u8]) -> HostileReply {
        let mut bytes = head(status, headers, Some(body.len()));
        bytes.extend_from_slice(body);
        HostileReply::Raw(bytes)
    }

    /// A complete reply trickled one byte every `pace`, as [`HostileReply::Trickle`].
    pub fn trickle(status: u16, headers: &[&str], body: &[u8], pace: Duration) -> HostileReply {
        let HostileReply::Raw(bytes) = HostileReply::reply(status, headers, body) else { unreachable!() };
        HostileReply::Trickle { bytes, pace }
    }
}

/// A status line and headers ending in the blank line.
fn head(status: u16, headers: &[&str], content_length: Option<usize>) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {status} Hostile\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    if let Some(length) = content_length {
        text.push_str(&format!("Content-Length: {length}\r\n"));
    }
    text.push_str("Connection: close\r\n\r\n");
    text.into_bytes()
}

/// A raw HTTP server on 127.0.0.1 that answers every request with one [`HostileReply`].
///
/// It runs on the caller's tokio runtime and stops when dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mailroom_testkit::KitError> {
/// use mailroom_testkit::{HostileHttpServer, HostileReply};
/// let server = HostileHttpServer::start(HostileReply::EndlessChunked { status: 200 }).await?;
/// assert!(server.uri().starts_with("http://127.0.0.1:"));
/// assert_eq!(server.requests(), 0);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct HostileHttpServer {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl HostileHttpServer {
    /// Binds an ephemeral loopback port and serves every connection with `reply`.
    pub async fn start(reply: HostileReply) -> Result<HostileHttpServer, KitError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| KitError::Io { context: "binding the hostile HTTP server", source })?;
        let addr = listener.local_addr().map_err(|source| KitError::Io { context: "reading its address", source })?;
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let reply = Arc::new(reply);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.spawn(serve(stream, reply.clone(), counter.clone()));
            }
        });
        Ok(HostileHttpServer { addr, requests, task })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many requests were read whole so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// What "ended within its deadline" is checked against in a hostile-server test: far above the
/// sub-second deadlines such tests configure, so a loaded CI machine does not fail it, and far
/// below what a missing deadline would cost (a reply trickled a byte per second needs minutes,
/// an honoured `Retry-After: 99999999999` years).
pub const HANG_BOUND: Duration = Duration::from_secs(8);

/// The outer limit after which [`send_expecting_error`] gives up on the transport altogether.
const WALL: Duration = Duration::from_secs(15);

/// Sends `message` through `transport` to a hostile server, for a test: the error it must end
/// in, and how long it took. Panics if the send succeeds or outlasts every deadline.
pub async fn send_expecting_error(transport: &impl Transport, message: &OutgoingMessage) -> (SendError, Duration) {
    let started = Instant::now();
    let outcome =
        tokio::time::timeout(WALL, transport.send(message)).await.expect("the send ends within its deadlines");
    (outcome.expect_err("a hostile server accepts nothing"), started.elapsed())
}

/// Asserts that `error` may mean "sent": `delivery_unknown`, and never retried by the default
/// policy.
pub fn assert_never_retried(error: &SendError) {
    assert_eq!(error.kind(), ErrorKind::DeliveryUnknown, "{error}");
    assert_eq!(RetryPolicy::default().delay_before_retry(1, error), None, "{error}");
}

impl Drop for HostileHttpServer {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, reply: Arc<HostileReply>, requests: Arc<AtomicUsize>) {
    if read_request(&mut stream).await.is_none() {
        return;
    }
    requests.fetch_add(1, Ordering::SeqCst);
    let _ = act(&mut stream, &reply).await;
    let _ = stream.shutdown().await;
}

async fn act(stream: &mut TcpStream, reply: &HostileReply) -> std::io::Result<()> {
    match reply {
        HostileReply::Raw(bytes) => stream.write_all(bytes).await,
        HostileReply::CutBody { status, promised, sent } => {
            stream.write_all(&head(*status, &["Content-Type: application/json"], Some(*promised))).await?;
            stream.write_all(sent).await
        }
        HostileReply::HugeHeaderLine { status, bytes } => {
            stream.write_all(format!("HTTP/1.1 {status} Hostile\r\nX-Hostile: ").as_bytes()).await?;
            write_filler(stream, *bytes).await
        }
        HostileReply::HugeBody { status, bytes } => {
            stream.write_all(&head(*status, &["Content-Type: application/json"], Some(*bytes))).await?;
            write_filler(stream, *bytes).await
        }
        HostileReply::EndlessChunked { status } => {
            let head = format!(
                "HTTP/1.1 {status} Hostile\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
            let chunk = format!("4000\r\n{}\r\n", "a".repeat(0x4000));
            loop {
                stream.write_all(chunk.as_bytes()).await?;
            }
        }
        HostileReply::Trickle { bytes, pace } => {
            for byte in bytes {
                tokio::time::sleep(*pace).await;
                stream.write_all(&[*byte]).await?;
            }
            Ok(())
        }
        HostileReply::Silent => {
            // Wait for the client to go away; whatever it sends is ignored.
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            Ok(())
        }
    }
}

async fn write_filler(stream: &mut TcpStream, bytes: usize) -> std::io::Result<()> {
    let chunk = vec![b'a'; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let now = left.min(chunk.len());
        stream.write_all(&chunk[..now]).await?;
        left -= now;
    }
    Ok(())
}

/// Reads one request's head and its `Content-Length` body; `None` when the client went away
/// or the request is larger than [`MAX_REQUEST`].
async fn read_request(stream: &mut TcpStream) -> Option<()> {
    let mut buffer = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > MAX_REQUEST {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]);
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_REQUEST);
    let mut have = buffer.len() - head_end;
    while have < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        have += n;
    }
    Some(())
}
