//! Refresh-token wire format: `lkr_` + base64url(version ‖ session id ‖
//! counter ‖ HMAC-SHA256).
//!
//! Nothing of the token is stored: the session row holds only the counter, and
//! the token for (session, counter) is recomputed from the server secret. A
//! leaked database therefore yields no usable token, storage per session is
//! constant however often it rotates, and the grace window can hand a second
//! tab the very same successor token. One MAC key (per secret version) is
//! enough because the session id is inside the MACed message.

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use uuid::Uuid;

use crate::secret::ServerSecret;
use crate::AuthError;

pub const PREFIX: &str = "lkr_";
const MAC_LEN: usize = 32;
const BODY_LEN: usize = 1 + 16 + 8;
const RAW_LEN: usize = BODY_LEN + MAC_LEN;
/// Length of the whole token string: prefix plus unpadded base64 of 57 bytes.
pub const TOKEN_LEN: usize = 4 + 76;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshTokenClaims {
    pub session_id: Uuid,
    pub counter: u64,
}

/// The cookie of a browser sign-in session (the hosted sign-in page's) is
/// the same construction under its own prefix and MAC key, so neither kind
/// of token is ever accepted as the other.
pub const BROWSER_SESSION_PREFIX: &str = "lkb_";

pub struct RefreshTokenCodec {
    /// (secret version, MAC key); the last one mints new tokens.
    keys: Vec<(u8, hmac::Key)>,
    /// Four characters.
    prefix: &'static str,
}

impl RefreshTokenCodec {
    pub fn new(secret: &ServerSecret) -> Result<Self, AuthError> {
        Self::with_purpose(secret, b"latchkey refresh-token mac v1", PREFIX)
    }

    /// The codec of browser sign-in session cookies.
    pub fn browser_sessions(secret: &ServerSecret) -> Result<Self, AuthError> {
        Self::with_purpose(
            secret,
            b"latchkey browser-session mac v1",
            BROWSER_SESSION_PREFIX,
        )
    }

    fn with_purpose(
        secret: &ServerSecret,
        purpose: &'static [u8],
        prefix: &'static str,
    ) -> Result<Self, AuthError> {
        let keys = secret
            .versions()
            .iter()
            .map(|v| Ok((v.version, v.hmac_key(purpose)?)))
            .collect::<Result<Vec<_>, AuthError>>()?;
        Ok(Self { keys, prefix })
    }

    pub fn encode(&self, session_id: Uuid, counter: u64) -> String {
        // `new` always has at least one key because ServerSecret does.
        let (version, key) = &self.keys[self.keys.len() - 1];
        let mut raw = [0u8; RAW_LEN];
        raw[0] = *version;
        raw[1..17].copy_from_slice(session_id.as_bytes());
        raw[17..BODY_LEN].copy_from_slice(&counter.to_be_bytes());
        let tag = hmac::sign(key, &raw[..BODY_LEN]);
        raw[BODY_LEN..].copy_from_slice(tag.as_ref());
        let mut out = String::with_capacity(TOKEN_LEN);
        out.push_str(self.prefix);
        URL_SAFE_NO_PAD.encode_string(raw, &mut out);
        out
    }

    /// The session and counter a token names, if and only if its MAC is
    /// valid under a known secret version (checked in constant time).
    pub fn decode(&self, token: &str) -> Option<RefreshTokenClaims> {
        let body = token.strip_prefix(self.prefix)?;
        if token.len() != TOKEN_LEN {
            return None;
        }
        let mut raw = [0u8; RAW_LEN];
        let n = URL_SAFE_NO_PAD.decode_slice(body, &mut raw).ok()?;
        if n != RAW_LEN {
            return None;
        }
        let (_, key) = self.keys.iter().find(|(v, _)| *v == raw[0])?;
        hmac::verify(key, &raw[..BODY_LEN], &raw[BODY_LEN..]).ok()?;
        let session_id = Uuid::from_slice(&raw[1..17]).ok()?;
        let counter = u64::from_be_bytes(raw[17..BODY_LEN].try_into().ok()?);
        Some(RefreshTokenClaims {
            session_id,
            counter,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn codec() -> RefreshTokenCodec {
        RefreshTokenCodec::new(&ServerSecret::generate().expect("rng")).expect("codec")
    }

    #[test]
    fn round_trip_and_shape() {
        let c = codec();
        let sid = Uuid::new_v4();
        let t = c.encode(sid, 42);
        assert!(t.starts_with("lkr_"));
        assert_eq!(t.len(), TOKEN_LEN);
        assert_eq!(
            c.decode(&t),
            Some(RefreshTokenClaims {
                session_id: sid,
                counter: 42
            })
        );
    }

    #[test]
    fn browser_session_cookies_and_refresh_tokens_never_pass_for_each_other() {
        let secret = ServerSecret::generate().expect("rng");
        let refresh = RefreshTokenCodec::new(&secret).expect("codec");
        let browser = RefreshTokenCodec::browser_sessions(&secret).expect("codec");
        let sid = Uuid::new_v4();
        let cookie = browser.encode(sid, 0);
        assert!(cookie.starts_with(BROWSER_SESSION_PREFIX));
        assert_eq!(browser.decode(&cookie).map(|c| c.session_id), Some(sid));
        assert_eq!(refresh.decode(&cookie), None);
        // Same body under the other prefix: the MAC key differs too.
        assert_eq!(refresh.decode(&cookie.replacen("lkb_", "lkr_", 1)), None);
        assert_eq!(browser.decode(&refresh.encode(sid, 0)), None);
    }

    #[test]
    fn other_secret_rejects() {
        let t = codec().encode(Uuid::new_v4(), 1);
        assert_eq!(codec().decode(&t), None);
    }

    #[test]
    fn garbage_is_rejected() {
        let c = codec();
        for t in ["", "lkr_", "lkr_====", "eyJhbGciOi.x.y", &"lkr_".repeat(20)] {
            assert_eq!(c.decode(t), None);
        }
    }

    proptest! {
        #[test]
        fn any_single_character_change_is_rejected(pos in 4usize..TOKEN_LEN, replacement in "[A-Za-z0-9_-]") {
            let c = codec();
            let t = c.encode(Uuid::new_v4(), 7);
            let mut chars: Vec<char> = t.chars().collect();
            let r = replacement.chars().next().unwrap_or('A');
            prop_assume!(chars[pos] != r);
            chars[pos] = r;
            let forged: String = chars.into_iter().collect();
            // 57 bytes encode to exactly 76 characters, so every character
            // carries MACed bits.
            prop_assert_eq!(c.decode(&forged), None);
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,200}") {
            let _ = codec().decode(&s);
        }
    }
}
