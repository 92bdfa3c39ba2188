//! A protocol session transcript (client commands, server replies), redacted by construction, attached to errors and shown by diagnose.

use std::fmt;

use serde::Serialize;

use crate::secret::REDACTED;

/// Who said a transcript line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Sent by mailroom.
    Client,
    /// Sent by the server.
    Server,
    /// A note from mailroom about the session (TLS established, connection closed, …).
    Note,
}

/// One line of a transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranscriptLine {
    /// Who said it.
    pub direction: Direction,
    /// What was said (never a secret: credentials are recorded as [`REDACTED`]).
    pub text: String,
}

/// The lines of one session, capped at [`Transcript::MAX_LINES`] so a chatty server cannot grow it without bound.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transcript {
    lines: Vec<TranscriptLine>,
    dropped: usize,
}

impl Transcript {
    /// The most lines kept; later lines are counted, not stored.
    pub const MAX_LINES: usize = 200;
    /// The longest line kept; longer lines are cut.
    pub const MAX_LINE_CHARS: usize = 512;

    /// An empty transcript.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, direction: Direction, text: &str) {
        if self.lines.len() >= Self::MAX_LINES {
            self.dropped += 1;
            return;
        }
        let text = text.trim_end_matches(['\r', '\n']);
        let text = match text.char_indices().nth(Self::MAX_LINE_CHARS) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.to_owned(),
        };
        self.lines.push(TranscriptLine { direction, text });
    }

    /// Records a command mailroom sent. Must not contain secrets: use [`Transcript::client_redacted`] for credentials.
    pub fn client(&mut self, text: &str) {
        self.push(Direction::Client, text);
    }

    /// Records a command whose arguments are credentials: only `visible` is kept, followed by [`REDACTED`].
    ///
    /// ```
    /// use mailroom_core::Transcript;
    /// let mut transcript = Transcript::new();
    /// transcript.client_redacted("AUTH PLAIN");
    /// assert_eq!(transcript.to_string(), "C: AUTH PLAIN [redacted]\n");
    /// ```
    pub fn client_redacted(&mut self, visible: &str) {
        let visible = visible.trim();
        if visible.is_empty() {
            self.push(Direction::Client, REDACTED);
        } else {
            self.push(Direction::Client, &format!("{visible} {REDACTED}"));
        }
    }

    /// Records a server reply (each line of a multi-line reply separately).
    pub fn server(&mut self, text: &str) {
        for line in text.lines() {
            self.push(Direction::Server, line);
        }
    }

    /// Records a note about the session.
    pub fn note(&mut self, text: &str) {
        self.push(Direction::Note, text);
    }

    /// The recorded lines.
    pub fn lines(&self) -> &[TranscriptLine] {
        &self.lines
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

impl fmt::Display for TranscriptLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.direction {
            Direction::Client => "C:",
            Direction::Server => "S:",
            Direction::Note => "--",
        };
        write!(f, "{prefix} {}", self.text)
    }
}

impl fmt::Display for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        if self.dropped > 0 {
            writeln!(f, "-- {} more lines not kept", self.dropped)?;
        }
        Ok(())
    }
}

impl Serialize for Transcript {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.lines.iter().map(ToString::to_string))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_replies_become_separate_lines_and_length_is_capped() {
        let mut transcript = Transcript::new();
        transcript.server("250-smtp.example\r\n250 AUTH PLAIN\r\n");
        assert_eq!(transcript.lines().len(), 2);
        for _ in 0..(Transcript::MAX_LINES + 5) {
            transcript.client(&"x".repeat(2000));
        }
        assert_eq!(transcript.lines().len(), Transcript::MAX_LINES);
        assert!(transcript.to_string().ends_with("-- 7 more lines not kept\n"));
        assert!(transcript.lines()[3].text.chars().count() <= Transcript::MAX_LINE_CHARS + 1);
    }
}
