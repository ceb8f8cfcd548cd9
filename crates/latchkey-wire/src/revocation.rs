//! Revocation entries, and the in-memory revocation set consulted on every
//! bearer check: cancelled access tokens (`jti`) and ended sessions (`sid`),
//! each kept only until the access tokens it could affect have expired.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::clock::UnixTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationKind {
    /// Every access token of a session (`sid` claim).
    Session,
    /// One access token (`jti` claim).
    Token,
}

impl RevocationKind {
    /// The name on the feed and in the store: the claim it matches.
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationKind::Session => "sid",
            RevocationKind::Token => "jti",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sid" => Some(RevocationKind::Session),
            "jti" => Some(RevocationKind::Token),
            _ => None,
        }
    }
}

/// An entry of the revocation set; it is kept only until `expires_at`, when
/// every access token it could affect has expired anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub kind: RevocationKind,
    pub id: String,
    pub expires_at: UnixTime,
}

#[derive(Debug, Default)]
pub struct RevocationSet {
    inner: RwLock<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    sessions: HashMap<String, UnixTime>,
    tokens: HashMap<String, UnixTime>,
}

impl Entries {
    fn map(&mut self, kind: RevocationKind) -> &mut HashMap<String, UnixTime> {
        match kind {
            RevocationKind::Session => &mut self.sessions,
            RevocationKind::Token => &mut self.tokens,
        }
    }
}

impl RevocationSet {
    pub fn insert(&self, entry: &Revocation) {
        let mut e = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let slot = e.map(entry.kind).entry(entry.id.clone()).or_insert(0);
        *slot = (*slot).max(entry.expires_at);
    }

    /// Whether a token with this session id and token id is revoked.
    pub fn is_revoked(&self, sid: Option<&str>, jti: &str) -> bool {
        let e = self.inner.read().unwrap_or_else(|p| p.into_inner());
        sid.is_some_and(|sid| e.sessions.contains_key(sid)) || e.tokens.contains_key(jti)
    }

    /// Drops entries whose tokens have all expired.
    pub fn prune(&self, now: UnixTime) {
        let mut e = self.inner.write().unwrap_or_else(|p| p.into_inner());
        e.sessions.retain(|_, exp| *exp > now);
        e.tokens.retain(|_, exp| *exp > now);
    }

    pub fn len(&self) -> usize {
        let e = self.inner.read().unwrap_or_else(|p| p.into_inner());
        e.sessions.len() + e.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire() {
        let set = RevocationSet::default();
        set.insert(&Revocation {
            kind: RevocationKind::Session,
            id: "s1".into(),
            expires_at: 100,
        });
        set.insert(&Revocation {
            kind: RevocationKind::Token,
            id: "j1".into(),
            expires_at: 50,
        });
        assert!(set.is_revoked(Some("s1"), "x"));
        assert!(set.is_revoked(Some("x"), "j1"));
        assert!(set.is_revoked(None, "j1"));
        assert!(!set.is_revoked(Some("j1"), "s1"));
        set.prune(60);
        assert!(!set.is_revoked(Some("x"), "j1"));
        assert!(set.is_revoked(Some("s1"), "x"));
        assert_eq!(set.len(), 1);
    }
}
