//! SMTP replies: reading one (single- or multi-line, bounded in size) from the wire and keeping every line.

use mailroom_core::ServerReply;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// The longest reply line we accept (RFC 5321 says 512; real servers send longer URLs).
pub(crate) const MAX_LINE: usize = 4096;
/// The most lines in one reply (EHLO lists are ~20).
pub(crate) const MAX_LINES: usize = 128;

/// One SMTP reply: the code and every line's text (code and separator removed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text of each line.
    pub lines: Vec<String>,
}

impl Reply {
    /// A 2xx reply: the command completed.
    pub fn is_completion(&self) -> bool {
        self.code / 100 == 2
    }

    /// The reply in core's form, with the enhanced status code lifted out.
    pub fn to_server_reply(&self) -> ServerReply {
        ServerReply::smtp(self.code, &self.lines)
    }

    /// The reply as the server sent it, one line per reply line.
    pub fn wire_lines(&self) -> impl Iterator<Item = String> + '_ {
        let last = self.lines.len().saturating_sub(1);
        self.lines.iter().enumerate().map(move |(n, text)| {
            let separator = if n == last { ' ' } else { '-' };
            format!("{}{separator}{text}", self.code)
        })
    }
}

/// Why bytes from the server are not an SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The server closed the connection (possibly mid-reply).
    Closed,
    /// The bytes look like a TLS record: the server expects TLS here.
    TlsRecord,
    /// Not SMTP at all: the offending line, lossily decoded and shortened.
    Malformed(String),
    /// A line or the reply is longer than we accept.
    TooLong,
    /// The socket failed.
    Io(std::io::ErrorKind, String),
}

fn shorten(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]);
    text.trim_end().chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// Parses one reply line: `250-text`, `250 text` or bare `250`. Returns (code, is_last, text).
pub(crate) fn parse_line(line: &[u8]) -> Result<(u16, bool, String), ReadError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.first().is_some_and(|b| matches!(b, 0x14..=0x17)) && line.get(1) == Some(&0x03) {
        return Err(ReadError::TlsRecord);
    }
    let code_ok = line.len() >= 3 && line[..3].iter().all(u8::is_ascii_digit) && (b'2'..=b'5').contains(&line[0]);
    if !code_ok {
        return Err(ReadError::Malformed(shorten(line)));
    }
    let code = line[..3].iter().fold(0u16, |acc, digit| acc * 10 + u16::from(digit - b'0'));
    let (last, text) = match line.get(3) {
        None => (true, &line[3..]),
        Some(b' ') => (true, &line[4..]),
        Some(b'-') => (false, &line[4..]),
        Some(_) => return Err(ReadError::Malformed(shorten(line))),
    };
    Ok((code, last, String::from_utf8_lossy(text).into_owned()))
}

/// Reads one whole reply; every line must carry the same code.
pub(crate) async fn read_reply<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<Reply, ReadError> {
    let mut lines = Vec::new();
    let mut code = None;
    let mut buffer = Vec::with_capacity(128);
    loop {
        buffer.clear();
        let read = (&mut *reader)
            .take(MAX_LINE as u64 + 2)
            .read_until(b'\n', &mut buffer)
            .await
            .map_err(|e| ReadError::Io(e.kind(), e.to_string()))?;
        if read == 0 {
            return Err(ReadError::Closed);
        }
        if !buffer.ends_with(b"\n") {
            if buffer.len() > MAX_LINE {
                return Err(ReadError::TooLong);
            }
            // The first bytes of a TLS alert or handshake never end in a newline.
            parse_line(&buffer)?;
            return Err(ReadError::Closed);
        }
        let (line_code, last, text) = parse_line(&buffer)?;
        match code {
            None => code = Some(line_code),
            Some(first) if first != line_code => {
                return Err(ReadError::Malformed(format!("reply lines with codes {first} and {line_code}")));
            }
            Some(_) => {}
        }
        lines.push(text);
        if lines.len() > MAX_LINES {
            return Err(ReadError::TooLong);
        }
        if last {
            return Ok(Reply { code: line_code, lines });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    async fn read(bytes: &[u8]) -> Result<Reply, ReadError> {
        let mut reader = tokio::io::BufReader::new(bytes);
        read_reply(&mut reader).await
    }

    #[tokio::test]
    async fn multi_line_replies_are_kept_whole() {
        let reply = read(b"535-5.7.8 Username and Password not accepted. For more information, go to\r\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials x - gsmtp\r\n").await.unwrap();
        assert_eq!(reply.code, 535);
        assert_eq!(reply.lines.len(), 2);
        let server = reply.to_server_reply();
        assert_eq!(server.enhanced.as_deref(), Some("5.7.8"));
        assert!(server.text.contains("BadCredentials"));
        assert_eq!(
            reply.wire_lines().next().unwrap(),
            "535-5.7.8 Username and Password not accepted. For more information, go to"
        );
    }

    #[tokio::test]
    async fn tls_bytes_garbage_and_truncation_are_told_apart() {
        assert_eq!(read(&[0x16, 0x03, 0x01, 0x00, 0x2a]).await, Err(ReadError::TlsRecord));
        assert_eq!(read(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]).await, Err(ReadError::TlsRecord));
        assert!(matches!(read(b"HTTP/1.1 400 Bad Request\r\n").await, Err(ReadError::Malformed(_))));
        assert_eq!(read(b"250-first\r\n").await, Err(ReadError::Closed));
        assert_eq!(read(b"").await, Err(ReadError::Closed));
        assert!(matches!(read(b"250-a\r\n251 b\r\n").await, Err(ReadError::Malformed(_))));
        assert_eq!(read(&[b'2'; MAX_LINE + 10]).await, Err(ReadError::TooLong));
        assert_eq!(read(b"220\r\n").await.unwrap().lines, [""]);
    }

    /// Fuzz case count: fixed for CI (well under a minute), `MAILROOM_FUZZ_CASES` for longer runs.
    fn fuzz_cases(default: u32) -> ProptestConfig {
        let cases = std::env::var("MAILROOM_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(default);
        ProptestConfig::with_cases(cases)
    }

    /// One reply line as a server might garble it: a code-like prefix, a separator, any bytes,
    /// then a line end (or none).
    fn server_line() -> impl Strategy<Value = Vec<u8>> {
        let code = prop_oneof![
            Just(b"250".to_vec()),
            Just(b"220".to_vec()),
            Just(b"535".to_vec()),
            (0u8..=255, 0u8..=255, 0u8..=255).prop_map(|(a, b, c)| vec![a, b, c]),
            proptest::collection::vec(b'0'..=b'9', 0..5),
        ];
        let separator = proptest::sample::select(vec![&b"-"[..], b" ", b"", b"\t", b"="]);
        let text = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::sample::select(vec![
                b"AUTH PLAIN LOGIN".to_vec(),
                b"AUTH=LOGIN PLAIN".to_vec(),
                b"AUTH=".to_vec(),
                b"SIZE 18446744073709551616".to_vec(),
                b"SIZE -1".to_vec(),
                b"STARTTLS".to_vec(),
                b"auth xoauth2 \xff\xfe".to_vec(),
            ]),
        ];
        let end = proptest::sample::select(vec![&b"\r\n"[..], b"\n", b"\r", b""]);
        (code, separator, text, end)
            .prop_map(|(code, separator, text, end)| [code, separator.to_vec(), text, end.to_vec()].concat())
    }

    proptest! {
        #![proptest_config(fuzz_cases(1024))]

        #[test]
        fn no_server_bytes_cause_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let _ = runtime.block_on(read(&bytes));
        }

        #[test]
        fn fuzz_garbled_replies_are_bounded_and_their_capabilities_parse(lines in proptest::collection::vec(server_line(), 1..40)) {
            let bytes = lines.concat();
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            if let Ok(reply) = runtime.block_on(read(&bytes)) {
                prop_assert!(reply.lines.len() <= MAX_LINES);
                prop_assert!(reply.lines.iter().all(|line| line.len() <= 3 * MAX_LINE), "lossy decoding at most triples a line");
                let caps = crate::session::Capabilities::parse(&reply);
                let mut unique = caps.auth.clone();
                unique.sort();
                unique.dedup();
                prop_assert_eq!(unique.len(), caps.auth.len(), "no mechanism twice: {:?}", caps.auth);
                prop_assert!(caps.auth.iter().all(|m| !m.is_empty() && *m == m.to_ascii_uppercase()), "{:?}", caps.auth);
                let _ = reply.to_server_reply();
            }
        }

        #[test]
        fn well_formed_replies_round_trip(code in 200u16..600, lines in proptest::collection::vec("[ -~]{0,60}", 1..6)) {
            let reply = Reply { code, lines: lines.clone() };
            let wire: String = reply.wire_lines().map(|l| l + "\r\n").collect();
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let parsed = runtime.block_on(read(wire.as_bytes())).unwrap();
            prop_assert_eq!(parsed, reply);
        }
    }
}
