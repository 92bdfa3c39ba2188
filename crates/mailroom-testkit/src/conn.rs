//! One server-side SMTP connection: bounded buffered line reads, batched writes, STARTTLS upgrade, deadlines on every wait.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Bounds that keep a misbehaving client from holding memory or a task forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted line, CRLF included (commands and message lines alike).
    pub max_line_length: usize,
    /// Largest message kept in memory; bigger messages are read to the end and refused with 552 5.3.4.
    pub max_message_size: usize,
    /// How long the server waits for the client's next bytes (or for a write to drain) before hanging up.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // RFC 5321 allows 1000-octet text lines; the slack covers sloppy clients.
            max_line_length: 8 * 1024,
            max_message_size: 64 * 1024 * 1024,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Why reading from the client stopped.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The client closed the connection.
    Closed,
    /// Nothing arrived within the idle timeout.
    Idle,
    /// A line exceeded the limit.
    LineTooLong,
    /// The socket or TLS layer failed.
    Io(io::Error),
}

/// The transport under an SMTP session: plaintext TCP or TLS over it.
pub(crate) enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while a STARTTLS handshake owns the socket; every operation fails.
    Detached,
}

fn detached() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection is being upgraded")
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
            Io::Detached => Poll::Ready(Err(detached())),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
            Io::Detached => Poll::Ready(Err(detached())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
            Io::Detached => Poll::Ready(Err(detached())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
            Io::Detached => Poll::Ready(Err(detached())),
        }
    }
}

/// Buffered, bounded SMTP I/O over [`Io`].
///
/// Replies are queued and written in one go when the server runs out of buffered input, so
/// pipelined commands get their replies in a single write (and a single segment).
pub(crate) struct SmtpStream {
    io: Io,
    input: Vec<u8>,
    start: usize,
    output: Vec<u8>,
    limits: Limits,
}

const READ_CHUNK: usize = 16 * 1024;

impl SmtpStream {
    pub(crate) fn new(io: Io, limits: Limits) -> Self {
        Self { io, input: Vec::with_capacity(READ_CHUNK), start: 0, output: Vec::with_capacity(1024), limits }
    }

    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.io, Io::Tls(_))
    }

    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// Queues bytes to send; they go out at the next [`flush`](Self::flush) or read that must wait.
    pub(crate) fn queue(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }

    /// Writes every queued byte, within the idle timeout.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if self.output.is_empty() {
            return Ok(());
        }
        let write = async {
            self.io.write_all(&self.output).await?;
            self.io.flush().await
        };
        let result = tokio::time::timeout(self.limits.idle_timeout, write).await;
        self.output.clear();
        match result {
            Ok(outcome) => outcome,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "client stopped reading")),
        }
    }

    /// Reads more bytes into the buffer, flushing queued replies first (the client may be waiting for them).
    async fn fill(&mut self) -> Result<(), ReadError> {
        self.flush().await.map_err(ReadError::Io)?;
        if self.start > 0 {
            self.input.drain(..self.start);
            self.start = 0;
        }
        // `read_buf` fills the spare capacity without zeroing it first.
        self.input.reserve(READ_CHUNK);
        let read = tokio::time::timeout(self.limits.idle_timeout, self.io.read_buf(&mut self.input)).await;
        match read {
            Err(_) => Err(ReadError::Idle),
            Ok(Err(error)) => Err(ReadError::Io(error)),
            Ok(Ok(0)) => Err(ReadError::Closed),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Waits for any bytes from the client (e.g. a ClientHello), within the idle timeout.
    pub(crate) async fn receive_any(&mut self) -> Result<(), ReadError> {
        self.fill().await
    }

    /// The next line, LF (and CR) included.
    pub(crate) async fn read_line(&mut self) -> Result<&[u8], ReadError> {
        let mut scanned = 0;
        let end = loop {
            let pending = &self.input[self.start..];
            if let Some(pos) = pending[scanned..].iter().position(|&b| b == b'\n') {
                break self.start + scanned + pos + 1;
            }
            scanned = pending.len();
            if scanned >= self.limits.max_line_length {
                return Err(ReadError::LineTooLong);
            }
            // `fill` may move the pending bytes to the front; `scanned` stays valid relative to start.
            self.fill().await?;
        };
        if end - self.start > self.limits.max_line_length {
            return Err(ReadError::LineTooLong);
        }
        let line_start = self.start;
        self.start = end;
        Ok(&self.input[line_start..end])
    }

    /// Exactly `count` bytes (BDAT chunks), handed to `sink` piecewise so nothing large is buffered twice.
    pub(crate) async fn read_exact_into(
        &mut self,
        mut count: usize,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<(), ReadError> {
        while count > 0 {
            if self.start == self.input.len() {
                self.fill().await?;
            }
            let available = (self.input.len() - self.start).min(count);
            sink(&self.input[self.start..self.start + available]);
            self.start += available;
            count -= available;
        }
        Ok(())
    }

    /// Upgrades a plaintext connection to TLS after a positive STARTTLS reply.
    ///
    /// Bytes the client sent after `STARTTLS` but before the handshake are dropped, as RFC 3207
    /// requires (they could be an injection).
    pub(crate) async fn start_tls(&mut self, config: Arc<ServerConfig>) -> io::Result<()> {
        self.flush().await?;
        self.input.clear();
        self.start = 0;
        let Io::Plain(tcp) = std::mem::replace(&mut self.io, Io::Detached) else {
            return Err(io::Error::other("the connection is not plaintext TCP"));
        };
        let tls = accept_tls(tcp, config, self.limits.idle_timeout).await?;
        self.io = Io::Tls(Box::new(tls));
        Ok(())
    }

    /// Closes the write side (TLS close_notify included) without waiting long.
    pub(crate) async fn close(mut self) {
        let _ = self.flush().await;
        let _ = tokio::time::timeout(Duration::from_millis(200), self.io.shutdown()).await;
    }

    /// Drops the connection without flushing or a TLS close_notify: an abrupt hang-up, as a
    /// crashed or timed-out server looks to its client (the client reads EOF).
    pub(crate) fn abort(self) {
        drop(self);
    }
}

/// Runs a server TLS handshake within `timeout`.
pub(crate) async fn accept_tls(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    timeout: Duration,
) -> io::Result<TlsStream<TcpStream>> {
    match tokio::time::timeout(timeout, TlsAcceptor::from(config).accept(tcp)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")),
    }
}
