//! Browser sessions kept in the server's memory: the CSRF token, the secrets typed this session, the draft on the page and the fingerprint of the last successfully validated values.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::connect::ConnectState;
use crate::form::{Draft, SecretFields};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "mailroom_console";

/// Sessions idle longer than this are forgotten (with the secrets typed in them).
const IDLE_LIMIT: Duration = Duration::from_secs(8 * 60 * 60);
/// At most this many sessions are kept; the least recently used goes first.
const MAX_SESSIONS: usize = 256;

/// One browser's state.
pub(crate) struct Session {
    /// The token every form of this session must carry.
    pub(crate) csrf: String,
    /// Signed in with the access token (always true when the console has none).
    pub(crate) signed_in: bool,
    /// Secrets typed into the page this session, by form field.
    pub(crate) secrets: SecretFields,
    /// The values last submitted, shown again when the page is opened.
    pub(crate) draft: Option<Draft>,
    /// SHA-256 of the config text and secrets that last sent a test mail successfully.
    pub(crate) validated: Option<[u8; 32]>,
    /// A running or finished Connect (consent) flow.
    pub(crate) connect: Option<ConnectState>,
    /// Event data pasted on the Events page, for its frame and "send me a copy".
    pub(crate) pasted: Option<(mailroom_events::EventKind, String)>,
    /// The address "send me a copy" last went to.
    pub(crate) copy_to: Option<String>,
    last_used: Instant,
}

/// All sessions, by id.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes from the operating system, hex.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // Without randomness there is no safe session: failing loudly beats a guessable token.
    getrandom::fill(&mut bytes).expect("the operating system's random generator is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two tokens in time independent of where they differ.
pub(crate) fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    /// The session `id` names, if it is known and fresh; refreshes its idle clock.
    pub(crate) fn touch(&self, id: &str) -> bool {
        let mut map = self.map.lock().expect("session lock");
        match map.get_mut(id) {
            Some(session) if session.last_used.elapsed() < IDLE_LIMIT => {
                session.last_used = Instant::now();
                true
            }
            Some(_) => {
                map.remove(id);
                false
            }
            None => false,
        }
    }

    /// Starts a session and returns its id.
    pub(crate) fn create(&self, signed_in: bool) -> String {
        let id = random_token();
        let mut map = self.map.lock().expect("session lock");
        map.retain(|_, session| session.last_used.elapsed() < IDLE_LIMIT);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_used).map(|(id, _)| id.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                csrf: random_token(),
                signed_in,
                secrets: SecretFields::default(),
                draft: None,
                validated: None,
                connect: None,
                pasted: None,
                copy_to: None,
                last_used: Instant::now(),
            },
        );
        id
    }

    /// Whether `posted` is the CSRF token of the session `id` (false once the session is gone).
    pub(crate) fn csrf_matches(&self, id: &str, posted: &str) -> bool {
        self.with(id, |s| same_token(posted, &s.csrf)).unwrap_or(false)
    }

    /// Runs `f` on the session `id`; `None` if it is gone.
    pub(crate) fn with<T>(&self, id: &str, f: impl FnOnce(&mut Session) -> T) -> Option<T> {
        self.map.lock().expect("session lock").get_mut(id).map(f)
    }
}

/// The current request's session id (set by the guard layer).
#[derive(Clone, Debug)]
pub(crate) struct SessionId(pub(crate) String);
