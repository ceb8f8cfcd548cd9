//! One-time account tokens: the secret in a password-reset or
//! email-verification link. 256 random bits, sent once (in the link) and
//! stored only as their SHA-256, so a copy of the database opens no
//! account; single use and short-lived (the store takes a token exactly
//! once, and issuing one voids the user's older ones of the same purpose).

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use crate::secret::fill_random;
use crate::AuthError;

/// Characters of a token as sent: base64url of 32 bytes.
pub const TOKEN_CHARS: usize = 43;

/// A freshly minted token: what to send, and what to store.
pub struct MintedToken {
    /// Goes into the link, nowhere else (never logged: no `Debug`).
    pub token: SecretString,
    pub hash: [u8; 32],
}

pub fn mint() -> Result<MintedToken, AuthError> {
    let mut bytes = [0u8; 32];
    fill_random(&mut bytes)?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_of(&token);
    Ok(MintedToken {
        token: SecretString::from(token),
        hash,
    })
}

/// The hash a presented token is looked up by; `None` for anything that
/// cannot be a token (checked before hashing, so junk costs nothing).
pub fn lookup_hash(presented: &str) -> Option<[u8; 32]> {
    let well_formed = presented.len() == TOKEN_CHARS
        && presented
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| hash_of(presented))
}

fn hash_of(token: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// `<public_url><path>?token=<token>`: the link a person follows.
pub fn link(public_url: &str, path: &str, token: &SecretString) -> SecretString {
    SecretString::from(format!(
        "{}{path}?token={}",
        public_url.trim_end_matches('/'),
        token.expose_secret()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_is_found_by_its_hash_and_nothing_else_is() {
        let minted = mint().expect("rng");
        let token = minted.token.expose_secret();
        assert_eq!(token.len(), TOKEN_CHARS);
        assert_eq!(lookup_hash(token), Some(minted.hash));
        let other = mint().expect("rng");
        assert_ne!(other.hash, minted.hash);
        assert_eq!(lookup_hash(&token[1..]), None);
        assert_eq!(lookup_hash(&format!("{}=", &token[1..])), None);
        assert_eq!(lookup_hash(&"é".repeat(21)), None);
    }

    #[test]
    fn links_join_the_public_url_and_path_once() {
        let t = SecretString::from("abc".to_owned());
        let l = link("https://id.example.com/", "/account/reset-password", &t);
        assert_eq!(
            l.expose_secret(),
            "https://id.example.com/account/reset-password?token=abc"
        );
    }
}
