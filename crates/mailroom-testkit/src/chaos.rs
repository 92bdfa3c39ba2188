//! `ChaosSmtpServer`: a plain SMTP server that refuses, throttles and drops connections after the message on purpose, and keeps a log of every message by Message-ID with its fate and arrival time — for outbox crash, chaos and rate tests.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::KitError;
use crate::host::ServerHost;

/// What the server did with one complete message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fate {
    /// `250` after the data: delivered.
    Accepted,
    /// `451 4.7.0` after the data: refused for now (the client may try again).
    Deferred,
    /// The connection was closed after the whole message arrived, without a reply: the
    /// client cannot know; counted as possibly delivered.
    Dropped,
    /// `554 5.7.1` after the data: refused for good (content policy).
    Rejected,
}

/// One message that arrived in full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// Its Message-ID header value (with angle brackets), empty when it had none.
    pub message_id: String,
    /// The envelope recipients accepted for it.
    pub recipients: Vec<String>,
    /// What the server did.
    pub fate: Fate,
    /// When the end of its data arrived (monotonic).
    pub at: Instant,
    /// When the end of its data arrived (wall clock).
    pub at_wall: SystemTime,
}

/// Configures a [`ChaosSmtpServer`]; by default it accepts everything.
#[derive(Clone, Debug, Default)]
pub struct ChaosSmtpServerBuilder {
    defer_rate: f64,
    drop_rate: f64,
    reject_rate: f64,
    refuse_containing: Vec<String>,
    throttle: Vec<String>,
    seed: u64,
    reply_delay: Duration,
}

impl ChaosSmtpServerBuilder {
    /// Answers this share (0–1) of complete messages with `451 4.7.0 Try again later`.
    pub fn defer_rate(mut self, rate: f64) -> Self {
        self.defer_rate = rate.clamp(0.0, 1.0);
        self
    }

    /// Closes the connection after this share (0–1) of complete messages, without a reply.
    pub fn drop_rate(mut self, rate: f64) -> Self {
        self.drop_rate = rate.clamp(0.0, 1.0);
        self
    }

    /// Answers this share (0–1) of complete messages with `554 5.7.1 Message rejected` (a
    /// permanent refusal after the data).
    pub fn reject_rate(mut self, rate: f64) -> Self {
        self.reject_rate = rate.clamp(0.0, 1.0);
        self
    }

    /// Refuses `RCPT` for addresses containing `needle` with `550 5.1.1` (a permanent refusal).
    pub fn refuse_recipients_containing(mut self, needle: impl Into<String>) -> Self {
        self.refuse_containing.push(needle.into());
        self
    }

    /// Throttles this recipient: `RCPT` gets `451 4.7.0 … rate limit exceeded` every time.
    pub fn throttle_recipient(mut self, address: impl Into<String>) -> Self {
        self.throttle.push(address.into().to_ascii_lowercase());
        self
    }

    /// Seeds the random choices (the default seed is 0: runs repeat).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Waits this long before the reply to the end of each message (a slow server).
    pub fn reply_delay(mut self, delay: Duration) -> Self {
        self.reply_delay = delay;
        self
    }

    /// Binds an ephemeral port on 127.0.0.1 and serves on its own thread.
    pub async fn start(self) -> Result<ChaosSmtpServer, KitError> {
        let shared = Arc::new(Shared {
            rng: Mutex::new(fastrand_seeded(self.seed)),
            arrivals: Mutex::new(Vec::new()),
            config: self,
        });
        let bind = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        let serving = shared.clone();
        let host = ServerHost::start("chaos-smtp", bind, 2, move |tcp, _| serve(tcp, serving.clone()))?;
        Ok(ChaosSmtpServer { host, shared })
    }
}

/// A small xorshift generator: the kit needs repeatable choices, not good randomness.
#[derive(Debug)]
struct Xorshift(u64);

fn fastrand_seeded(seed: u64) -> Xorshift {
    Xorshift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
}

impl Xorshift {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug)]
struct Shared {
    config: ChaosSmtpServerBuilder,
    rng: Mutex<Xorshift>,
    arrivals: Mutex<Vec<Arrival>>,
}

/// A misbehaving SMTP server on an ephemeral loopback port (no TLS, no AUTH, PIPELINING).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mailroom_testkit::KitError> {
/// let server = mailroom_testkit::ChaosSmtpServer::builder().defer_rate(0.05).drop_rate(0.01).start().await?;
/// // … send to server.addr() …
/// assert!(server.arrivals().is_empty());
/// assert!(server.delivered_counts().is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ChaosSmtpServer {
    host: ServerHost,
    shared: Arc<Shared>,
}

impl ChaosSmtpServer {
    /// Starts configuring one.
    pub fn builder() -> ChaosSmtpServerBuilder {
        ChaosSmtpServerBuilder::default()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.host.addr()
    }

    /// Every complete message so far, in arrival order.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.shared.arrivals.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// How many times each Message-ID was accepted or dropped (possibly delivered).
    pub fn delivered_counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for arrival in self.arrivals() {
            if matches!(arrival.fate, Fate::Accepted | Fate::Dropped) {
                *counts.entry(arrival.message_id).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Stops listening and closes every connection.
    pub fn shutdown(mut self) {
        self.host.shutdown();
    }
}

const IDLE: Duration = Duration::from_secs(30);
const MAX_LINE: usize = 4096;
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

async fn serve(tcp: TcpStream, shared: Arc<Shared>) {
    let _ = tokio::time::timeout(Duration::from_secs(600), session(tcp, &shared)).await;
}

async fn read_line(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, line: &mut Vec<u8>) -> Option<()> {
    line.clear();
    let read = tokio::time::timeout(IDLE, (&mut *reader).take(MAX_LINE as u64).read_until(b'\n', line)).await;
    match read {
        Ok(Ok(n)) if n > 0 && line.ends_with(b"\n") => Some(()),
        _ => None,
    }
}

async fn session(tcp: TcpStream, shared: &Shared) -> Option<()> {
    let (read, mut write) = tcp.into_split();
    let mut reader = BufReader::new(read);
    write.write_all(b"220 chaos.localhost ESMTP ready\r\n").await.ok()?;
    let mut line = Vec::with_capacity(256);
    let mut recipients: Vec<String> = Vec::new();
    let mut has_sender = false;
    loop {
        // Replies to pipelined commands are written as they are decided; only flush when no
        // more input is already buffered, so a pipelined group gets one write.
        read_line(&mut reader, &mut line).await?;
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        let verb = text.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" => "250-chaos.localhost\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n".into(),
            "HELO" => "250 chaos.localhost\r\n".into(),
            "MAIL" => {
                has_sender = true;
                recipients.clear();
                "250 2.1.0 OK\r\n".into()
            }
            "RCPT" => {
                let address = text
                    .split_once('<')
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map(|(address, _)| address.to_ascii_lowercase())
                    .unwrap_or_default();
                if !has_sender {
                    "503 5.5.1 MAIL first\r\n".into()
                } else if shared.config.refuse_containing.iter().any(|needle| address.contains(needle.as_str())) {
                    "550 5.1.1 The email account that you tried to reach does not exist\r\n".into()
                } else if shared.config.throttle.contains(&address) {
                    "451 4.7.0 Recipient rate limit exceeded, try again later\r\n".into()
                } else {
                    recipients.push(address);
                    "250 2.1.5 OK\r\n".into()
                }
            }
            "DATA" if recipients.is_empty() => "554 5.5.1 No valid recipients\r\n".into(),
            "DATA" => {
                write.write_all(b"354 Go ahead\r\n").await.ok()?;
                let message_id = read_message(&mut reader, &mut line).await?;
                let fate = {
                    let mut rng = shared.rng.lock().ok()?;
                    let roll = rng.unit();
                    let config = &shared.config;
                    if roll < config.drop_rate {
                        Fate::Dropped
                    } else if roll < config.drop_rate + config.reject_rate {
                        Fate::Rejected
                    } else if roll < config.drop_rate + config.reject_rate + config.defer_rate {
                        Fate::Deferred
                    } else {
                        Fate::Accepted
                    }
                };
                if let Ok(mut arrivals) = shared.arrivals.lock() {
                    arrivals.push(Arrival {
                        message_id,
                        recipients: std::mem::take(&mut recipients),
                        fate,
                        at: Instant::now(),
                        at_wall: SystemTime::now(),
                    });
                }
                has_sender = false;
                if !shared.config.reply_delay.is_zero() {
                    tokio::time::sleep(shared.config.reply_delay).await;
                }
                match fate {
                    Fate::Dropped => return None,
                    Fate::Deferred => "451 4.7.0 Try again later\r\n".into(),
                    Fate::Rejected => "554 5.7.1 Message rejected by content policy\r\n".into(),
                    Fate::Accepted => "250 2.0.0 OK queued\r\n".into(),
                }
            }
            "RSET" => {
                has_sender = false;
                recipients.clear();
                "250 2.0.0 OK\r\n".into()
            }
            "NOOP" => "250 2.0.0 OK\r\n".into(),
            "QUIT" => {
                let _ = write.write_all(b"221 2.0.0 Bye\r\n").await;
                return Some(());
            }
            _ => "502 5.5.2 Command not recognized\r\n".into(),
        };
        write.write_all(reply.as_bytes()).await.ok()?;
    }
}

/// Reads a message up to the `.` line; returns its Message-ID (empty if none).
async fn read_message(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, line: &mut Vec<u8>) -> Option<String> {
    let mut message_id = String::new();
    let mut in_headers = true;
    let mut size = 0usize;
    loop {
        read_line(reader, line).await?;
        size = size.saturating_add(line.len());
        if size > MAX_MESSAGE {
            return None;
        }
        if line == b".\r\n" || line == b".\n" {
            return Some(message_id);
        }
        if in_headers {
            if line == b"\r\n" || line == b"\n" {
                in_headers = false;
            } else if line.len() > 11 && line[..11].eq_ignore_ascii_case(b"message-id:") {
                message_id = String::from_utf8_lossy(&line[11..]).trim().to_owned();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_repeatable_and_spread() {
        let mut a = fastrand_seeded(7);
        let mut b = fastrand_seeded(7);
        let rolls: Vec<f64> = (0..1000).map(|_| a.unit()).collect();
        assert!(rolls.iter().zip((0..1000).map(|_| b.unit())).all(|(x, y)| *x == y));
        let low = rolls.iter().filter(|r| **r < 0.05).count();
        assert!((20..=80).contains(&low), "{low}");
        assert!(rolls.iter().all(|r| (0.0..1.0).contains(r)));
    }
}
