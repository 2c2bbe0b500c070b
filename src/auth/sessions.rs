//! Session tokens issued by `POST /v1/auth/session` to keys that require TOTP.
//!
//! Only the SHA-256 of a token is kept. Looking it up in a hash map is safe against timing
//! attacks: the map is keyed by the digest, which a client cannot steer toward a stored one.

use dashmap::DashMap;

use super::Token;
use super::keys::{KeyHash, KeysError, new_token};

/// Every session token starts with this.
pub const SESSION_PREFIX: &str = "aigws-";

/// Sessions a key may hold at once; opening another ends its oldest. TOTP's replay guard
/// already limits a key to about one new session per 30 s step.
const MAX_SESSIONS_PER_KEY: usize = 16;

#[derive(Debug, Clone)]
struct Session {
    key: Box<str>,
    expires_ms: u64,
}

/// Live sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    by_hash: DashMap<[u8; 32], Session>,
}

impl Sessions {
    /// Issues a token for `key`, valid until `expires_ms`.
    pub fn issue(&self, key: &str, expires_ms: u64) -> Result<Token, KeysError> {
        let token = new_token(SESSION_PREFIX)?;
        let mut mine: Vec<([u8; 32], u64)> = self
            .by_hash
            .iter()
            .filter(|e| &*e.value().key == key)
            .map(|e| (*e.key(), e.value().expires_ms))
            .collect();
        if mine.len() >= MAX_SESSIONS_PER_KEY {
            mine.sort_by_key(|(_, expires)| *expires);
            for (hash, _) in &mine[..=mine.len() - MAX_SESSIONS_PER_KEY] {
                self.by_hash.remove(hash);
            }
        }
        self.by_hash.insert(
            KeyHash::of(token.expose()).0,
            Session {
                key: key.into(),
                expires_ms,
            },
        );
        Ok(token)
    }

    /// The key name a live token belongs to.
    pub fn lookup(&self, token: &str, now_ms: u64) -> Option<Box<str>> {
        let hash = KeyHash::of(token).0;
        let session = self.by_hash.get(&hash)?;
        if now_ms < session.expires_ms {
            return Some(session.key.clone());
        }
        drop(session);
        self.by_hash.remove(&hash);
        None
    }

    /// Drops expired sessions.
    pub fn sweep(&self, now_ms: u64) {
        self.by_hash.retain(|_, s| now_ms < s.expires_ms);
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_and_are_swept() {
        let sessions = Sessions::default();
        let token = sessions.issue("alice", 1000).unwrap();
        assert!(token.expose().starts_with(SESSION_PREFIX));
        assert_eq!(sessions.lookup(token.expose(), 999).as_deref(), Some("alice"));
        assert_eq!(sessions.lookup(token.expose(), 1000), None);
        assert!(sessions.is_empty());
        sessions.issue("alice", 10).unwrap();
        sessions.sweep(10);
        assert!(sessions.is_empty());
    }

    #[test]
    fn a_key_holds_a_bounded_number_of_sessions() {
        let sessions = Sessions::default();
        let first = sessions.issue("k", 1).unwrap();
        for i in 0..MAX_SESSIONS_PER_KEY as u64 {
            sessions.issue("k", 100 + i).unwrap();
        }
        sessions.issue("other", 5).unwrap();
        assert_eq!(sessions.len(), MAX_SESSIONS_PER_KEY + 1);
        assert_eq!(sessions.lookup(first.expose(), 0), None, "the oldest is ended");
    }
}
