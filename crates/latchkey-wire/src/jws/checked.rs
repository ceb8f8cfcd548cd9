//! Tokens whose signature a key set has already checked.
//!
//! A client sends the same access token with every call for its lifetime,
//! and checking an Ed25519 signature is about half of an authenticated
//! read's CPU. Remembering the outcome turns the repeat into a keyed hash
//! and a compare. What is remembered depends only on the token's bytes and
//! the key that checked it, so it lives and dies with its [`VerifyingKeys`]
//! (a changed key clears it); issuer, audience and times are still checked
//! on every use, revocation by the caller as before.
//!
//! [`VerifyingKeys`]: super::VerifyingKeys

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};

use subtle::ConstantTimeEq as _;

use super::AccessClaims;
use crate::clock::UnixTime;

/// Enough for every token of a busy node's recent callers; about 0.7 KiB
/// each, so at most some 1.4 MiB.
pub const CAPACITY: usize = 2048;

#[derive(Default)]
pub(super) struct CheckedTokens {
    /// Randomly keyed per process: nobody outside can aim a token at another
    /// token's slot.
    hasher: RandomState,
    entries: Mutex<HashMap<u64, Checked>>,
}

struct Checked {
    token: Box<str>,
    claims: AccessClaims,
}

impl CheckedTokens {
    /// The claims of `token` if its signature was checked before. The slot
    /// is found by hash; the token it holds must then equal `token` byte for
    /// byte, compared in constant time (tokens are bearer secrets).
    pub(super) fn get(&self, token: &str) -> Option<AccessClaims> {
        let slot = self.hasher.hash_one(token);
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let checked = entries.get(&slot)?;
        bool::from(checked.token.as_bytes().ct_eq(token.as_bytes())).then(|| checked.claims.clone())
    }

    /// Remembers a token whose signature checked out. When full, expired
    /// tokens are dropped first, and if they were not the ones filling it,
    /// everything: a caller flooding it with fresh tokens only brings the
    /// others back to a full check, never past [`CAPACITY`].
    pub(super) fn insert(&self, token: &str, claims: &AccessClaims, now: UnixTime) {
        let slot = self.hasher.hash_one(token);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CAPACITY {
            entries.retain(|_, c| c.claims.exp > now);
            if entries.len() >= CAPACITY / 2 {
                entries.clear();
            }
        }
        entries.insert(
            slot,
            Checked {
                token: token.into(),
                claims: claims.clone(),
            },
        );
    }

    pub(super) fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}
