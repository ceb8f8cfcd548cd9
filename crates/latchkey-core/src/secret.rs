//! The server secret: key material that lives outside the database (a file
//! in the data directory or a mounted secret), from which the refresh-token
//! MAC keys and the key-encryption key are derived with HKDF. A database
//! leak alone therefore forges no refresh token and decrypts no signing key.
//!
//! Also [`Secret`], the type every other secret value held in memory has
//! (the pepper, client secrets, the database password), so that no `Debug`
//! or log line can show one.

use aws_lc_rs::{aead, hkdf, hmac};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use secrecy::{ExposeSecret as _, SecretSlice, SecretString};

use crate::AuthError;

pub const SECRET_BYTES: usize = 32;

/// What `Debug` shows in place of a secret.
pub const REDACTED: &str = "[redacted]";

/// A secret string (a setting such as the pepper, a client secret, a
/// database URL): its `Debug` is `[redacted]`, the value is read only through
/// [`Secret::expose`] where it is used, and its memory is wiped on drop.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(SecretString::from(value))
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(SecretString::from(value))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::from)
    }
}

/// One version of the server secret. Versions let the secret rotate: the
/// newest signs, older ones still verify.
#[derive(Clone)]
pub struct SecretVersion {
    pub version: u8,
    bytes: SecretSlice<u8>,
}

impl std::fmt::Debug for SecretVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretVersion({}, {REDACTED})", self.version)
    }
}

/// All versions of the server secret, newest last.
#[derive(Debug, Clone)]
pub struct ServerSecret {
    versions: Vec<SecretVersion>,
}

impl ServerSecret {
    /// A fresh secret with one version.
    pub fn generate() -> Result<Self, AuthError> {
        let mut bytes = vec![0u8; SECRET_BYTES];
        fill_random(&mut bytes)?;
        Ok(Self {
            versions: vec![SecretVersion {
                version: 1,
                bytes: bytes.into(),
            }],
        })
    }

    /// Parses the file format: one `<version> <base64url bytes>` per line,
    /// `#` comments allowed, the highest version is current.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let bad = |why: &str| AuthError::Internal(format!("server secret: {why}"));
        let mut versions = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (v, b) = line
                .split_once(' ')
                .ok_or_else(|| bad("expected `<version> <base64url>`"))?;
            let version: u8 = v.parse().map_err(|_| bad("version must be 1-255"))?;
            let bytes = URL_SAFE_NO_PAD
                .decode(b.trim())
                .map_err(|_| bad("secret is not base64url"))?;
            if version == 0 || bytes.len() < SECRET_BYTES {
                return Err(bad("each version needs a non-zero number and >= 32 bytes"));
            }
            versions.push(SecretVersion {
                version,
                bytes: bytes.into(),
            });
        }
        versions.sort_by_key(|v| v.version);
        if versions.is_empty() {
            return Err(bad("no secret versions found"));
        }
        if versions.windows(2).any(|w| w[0].version == w[1].version) {
            return Err(bad("duplicate version"));
        }
        Ok(Self { versions })
    }

    pub fn to_file_text(&self) -> String {
        let mut out = String::from(
            "# Latchkey server secret: keep it out of the database and backups of it.\n",
        );
        for v in &self.versions {
            out.push_str(&format!(
                "{} {}\n",
                v.version,
                URL_SAFE_NO_PAD.encode(v.bytes.expose_secret())
            ));
        }
        out
    }

    pub fn versions(&self) -> &[SecretVersion] {
        &self.versions
    }

    pub fn current(&self) -> &SecretVersion {
        // `parse` and `generate` guarantee at least one version.
        &self.versions[self.versions.len() - 1]
    }
}

impl SecretVersion {
    fn prk(&self) -> hkdf::Prk {
        hkdf::Salt::new(hkdf::HKDF_SHA256, b"latchkey server secret")
            .extract(self.bytes.expose_secret())
    }

    pub fn hmac_key(&self, purpose: &'static [u8]) -> Result<hmac::Key, AuthError> {
        let info = [purpose];
        let prk = self.prk();
        let okm = prk
            .expand(&info, hmac::HMAC_SHA256)
            .map_err(|_| AuthError::Internal("hkdf expand".into()))?;
        Ok(hmac::Key::from(okm))
    }

    pub fn aead_key(&self, purpose: &'static [u8]) -> Result<aead::LessSafeKey, AuthError> {
        let info = [purpose];
        let prk = self.prk();
        let okm = prk
            .expand(&info, &aead::AES_256_GCM)
            .map_err(|_| AuthError::Internal("hkdf expand".into()))?;
        Ok(aead::LessSafeKey::new(aead::UnboundKey::from(okm)))
    }
}

pub fn fill_random(buf: &mut [u8]) -> Result<(), AuthError> {
    aws_lc_rs::rand::fill(buf).map_err(|_| AuthError::Internal("system randomness failed".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_round_trip() {
        let s = ServerSecret::generate().expect("rng");
        let back = ServerSecret::parse(&s.to_file_text()).expect("parse");
        assert_eq!(
            back.current().bytes.expose_secret(),
            s.current().bytes.expose_secret()
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let planted = "a pepper nobody may read in a log";
        let secret = Secret::from(planted);
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some([redacted])");
        assert_eq!(secret.expose(), planted);
        let server = ServerSecret::generate().expect("rng");
        let encoded = URL_SAFE_NO_PAD.encode(server.current().bytes.expose_secret());
        assert!(!format!("{server:?}").contains(&encoded));
        assert!(format!("{server:?}").contains(REDACTED));
    }

    #[test]
    fn newest_version_is_current() {
        let a = URL_SAFE_NO_PAD.encode([1u8; 32]);
        let b = URL_SAFE_NO_PAD.encode([2u8; 32]);
        let s = ServerSecret::parse(&format!("2 {b}\n# old\n1 {a}\n")).expect("parse");
        assert_eq!(s.current().version, 2);
        assert_eq!(s.versions().len(), 2);
    }

    #[test]
    fn rejects_short_or_malformed() {
        assert!(ServerSecret::parse("").is_err());
        assert!(ServerSecret::parse("1 c2hvcnQ").is_err());
        assert!(ServerSecret::parse("x abc").is_err());
        let a = URL_SAFE_NO_PAD.encode([1u8; 32]);
        assert!(ServerSecret::parse(&format!("1 {a}\n1 {a}")).is_err());
        assert!(ServerSecret::parse(&format!("0 {a}")).is_err());
    }
}
