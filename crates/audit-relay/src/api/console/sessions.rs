//! Console sessions: an operator signs in with the admin token (or the one-time code `serve`
//! prints) and gets a session id in a cookie (`HttpOnly`, `SameSite=Strict`, 30 minutes since its
//! last use) and a CSRF token that every change must carry. Only the ids' SHA-256 are kept, in
//! memory: a restart signs everyone out.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};

/// How long a session lasts since its last use.
pub(crate) const IDLE: Duration = Duration::from_secs(30 * 60);
/// How long the one-time code is good for after the relay starts.
const CODE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Most sessions at once; the one closest to expiry goes first.
const MAX_SESSIONS: usize = 1024;

/// The sessions of one relay process.
pub struct Sessions {
    inner: Mutex<Inner>,
    started: Instant,
}

struct Inner {
    /// By the SHA-256 of the session id: the CSRF token and when the session ends.
    sessions: HashMap<String, (String, Instant)>,
    /// The one-time code's SHA-256, until it is used or too old.
    code_sha256: Option<String>,
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// 256 random bits as 64 hex digits.
fn random() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// Compares two strings in time that depends on their length only.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    /// Sessions with the one-time code of this SHA-256 (empty: none).
    pub fn new(code_sha256: &str) -> Sessions {
        let code_sha256 = (!code_sha256.is_empty()).then(|| code_sha256.to_ascii_lowercase());
        Sessions { inner: Mutex::new(Inner { sessions: HashMap::new(), code_sha256 }), started: Instant::now() }
    }

    /// Opens a session; its id (for the cookie).
    pub(crate) fn open(&self) -> String {
        let (id, csrf) = (random(), random());
        let mut inner = self.inner.lock().expect("console sessions lock");
        let now = Instant::now();
        inner.sessions.retain(|_, (_, until)| *until > now);
        if inner.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = inner.sessions.iter().min_by_key(|(_, (_, until))| *until).map(|(k, _)| k.clone())
        {
            inner.sessions.remove(&oldest);
        }
        inner.sessions.insert(sha256(&id), (csrf, now + IDLE));
        id
    }

    /// The CSRF token of the session `id` if it is open (using it keeps it open).
    pub(crate) fn csrf(&self, id: &str) -> Option<String> {
        let mut inner = self.inner.lock().expect("console sessions lock");
        let now = Instant::now();
        let entry = inner.sessions.get_mut(&sha256(id))?;
        if entry.1 <= now {
            return None;
        }
        entry.1 = now + IDLE;
        Some(entry.0.clone())
    }

    /// Ends the session `id`.
    pub(crate) fn close(&self, id: &str) {
        self.inner.lock().expect("console sessions lock").sessions.remove(&sha256(id));
    }

    /// Whether `code` is the one-time code, still unused and within its window; it is used now.
    pub(crate) fn redeem(&self, code: &str) -> bool {
        let mut inner = self.inner.lock().expect("console sessions lock");
        let fits = inner.code_sha256.as_deref().is_some_and(|expected| same(&sha256(code), expected));
        if fits && self.started.elapsed() < CODE_WINDOW {
            inner.code_sha256 = None;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_has_its_own_csrf_token_and_ends_when_closed() {
        let sessions = Sessions::new("");
        let (a, b) = (sessions.open(), sessions.open());
        let (csrf_a, csrf_b) = (sessions.csrf(&a).unwrap(), sessions.csrf(&b).unwrap());
        assert_ne!(csrf_a, csrf_b);
        assert_eq!(sessions.csrf(&a).as_deref(), Some(csrf_a.as_str()), "stable while open");
        assert!(sessions.csrf("made-up").is_none());
        sessions.close(&a);
        assert!(sessions.csrf(&a).is_none());
        assert!(sessions.csrf(&b).is_some());
    }

    #[test]
    fn the_one_time_code_works_once() {
        let sessions = Sessions::new(&sha256("kcode_1"));
        assert!(!sessions.redeem("kcode_2"));
        assert!(sessions.redeem("kcode_1"));
        assert!(!sessions.redeem("kcode_1"), "used up");
        assert!(!Sessions::new("").redeem(""), "no code, nothing redeems");
    }
}
