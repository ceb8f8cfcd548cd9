//! Password policy and Argon2id hashing.
//!
//! Hashing is deliberately slow, so the [`PasswordHasher`] trait is async:
//! the server runs [`Argon2Hashing`]'s synchronous work on a bounded pool and
//! a burst of sign-ins cannot starve other requests.

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use async_trait::async_trait;
use unicode_normalization::UnicodeNormalization;

use crate::AuthError;

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A password that passed the length policy, NFC-normalised (RFC 8265
/// OpaqueString) so the same password typed on two keyboards matches.
/// Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// Applies the policy for a new password. The byte limit is checked
    /// before anything else touches the input, so a 1 MB "password" costs
    /// nothing; passwords are never truncated.
    pub fn new_for_account(raw: &str) -> Result<Self, AuthError> {
        let p = Self::for_check(raw)?;
        if p.0.chars().count() < MIN_PASSWORD_CHARS {
            return Err(AuthError::InvalidRequest(format!(
                "password must be at least {MIN_PASSWORD_CHARS} characters"
            )));
        }
        if is_common(&p.0) {
            return Err(AuthError::InvalidRequest(
                "password is too common: it is one of the 10000 most used passwords".into(),
            ));
        }
        Ok(p)
    }

    /// A password presented at sign-in: only the byte limit applies, so an
    /// account created under an older, laxer policy can still sign in.
    pub fn for_check(raw: &str) -> Result<Self, AuthError> {
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(AuthError::InvalidRequest(format!(
                "password must be at most {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        Ok(Self(raw.nfc().collect()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// The 10 000 most common passwords, most common first, lower-cased: the
/// head of the list Django ships (`django/contrib/auth/common-passwords.txt.gz`,
/// compiled by Royce Williams from breach corpora). Only entries of at least
/// [`MIN_PASSWORD_CHARS`] characters (3 905 of them) can matter here.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// Whether `password` (compared case-insensitively) is on the list.
pub fn is_common(password: &str) -> bool {
    static SET: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    let set = SET.get_or_init(|| COMMON_PASSWORDS.lines().collect());
    set.contains(password.to_lowercase().as_str())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    Match { needs_rehash: bool },
    Mismatch,
}

#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// A PHC string for a new password.
    async fn hash(&self, password: Password) -> Result<String, AuthError>;

    /// Checks `password` against `phc`; with `None` (unknown user) it checks
    /// against a dummy hash of the same cost and reports a mismatch, so the
    /// two cases take the same time.
    async fn verify(
        &self,
        password: Password,
        phc: Option<String>,
    ) -> Result<PasswordCheck, AuthError>;
}

/// Argon2id cost parameters; the default is OWASP's (m = 19 MiB, t = 2, p = 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Cost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Cost {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Marks a stored hash whose input was `HMAC-SHA256(pepper, password)`
/// rather than the password itself.
pub const PEPPERED_PREFIX: &str = "pepper1:";

/// The synchronous Argon2id work behind [`PasswordHasher`].
///
/// With a pepper (a secret kept outside the database), new hashes are of
/// `HMAC-SHA256(pepper, password)` and stored as [`PEPPERED_PREFIX`] + PHC,
/// so a stolen database cannot be attacked offline without the pepper too.
/// Hashes without the prefix (made before the pepper was set) still verify
/// and are re-hashed with the pepper at the next sign-in. Once set, the
/// pepper must never change or go: peppered hashes cannot be checked
/// without it, and their owners would have to reset their passwords.
#[derive(Debug, Clone)]
pub struct Argon2Hashing {
    cost: Argon2Cost,
    argon: Argon2<'static>,
    pepper: Option<aws_lc_rs::hmac::Key>,
    /// A hash of a random password at `cost`, for unknown users.
    dummy_phc: String,
}

impl Argon2Hashing {
    pub fn new(cost: Argon2Cost) -> Result<Self, AuthError> {
        Self::with_pepper(cost, None)
    }

    /// As [`Self::new`], peppering new hashes when `pepper` is given.
    pub fn with_pepper(cost: Argon2Cost, pepper: Option<&[u8]>) -> Result<Self, AuthError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| AuthError::Internal(format!("argon2 parameters: {e}")))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut hashing = Self {
            cost,
            argon,
            pepper: pepper.map(|p| aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, p)),
            dummy_phc: String::new(),
        };
        let mut random = [0u8; 32];
        crate::secret::fill_random(&mut random)?;
        hashing.dummy_phc = hashing.hash(&Password(hex(&random)))?;
        Ok(hashing)
    }

    /// A PHC string for a new password, working in fresh memory.
    pub fn hash(&self, password: &Password) -> Result<String, AuthError> {
        self.hash_in(password, &mut Argon2Memory::default())
    }

    /// As [`Self::hash`], working in `memory`.
    pub fn hash_in(
        &self,
        password: &Password,
        memory: &mut Argon2Memory,
    ) -> Result<String, AuthError> {
        let mut salt = [0u8; 16];
        crate::secret::fill_random(&mut salt)?;
        let (input, prefix) = match &self.pepper {
            Some(key) => (
                aws_lc_rs::hmac::sign(key, password.as_bytes())
                    .as_ref()
                    .to_vec(),
                PEPPERED_PREFIX,
            ),
            None => (password.as_bytes().to_vec(), ""),
        };
        let internal = |e: &dyn std::fmt::Display| AuthError::Internal(format!("argon2 hash: {e}"));
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        let params = self.argon.params();
        self.argon
            .hash_password_into_with_memory(&input, &salt, &mut out, memory.blocks(params))
            .map_err(|e| internal(&e))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| internal(&e))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(params).map_err(|e| internal(&e))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(|e| internal(&e))?),
        };
        Ok(format!("{prefix}{phc}"))
    }

    /// Checks `password` against `phc` (the dummy hash for `None`), working
    /// in fresh memory.
    pub fn verify(&self, password: &Password, phc: Option<&str>) -> PasswordCheck {
        self.verify_in(password, phc, &mut Argon2Memory::default())
    }

    /// As [`Self::verify`], working in `memory`.
    pub fn verify_in(
        &self,
        password: &Password,
        phc: Option<&str>,
        memory: &mut Argon2Memory,
    ) -> PasswordCheck {
        let (phc, known) = match phc {
            Some(p) => (p, true),
            None => (self.dummy_phc.as_str(), false),
        };
        let (phc, input, upgrade) = match (phc.strip_prefix(PEPPERED_PREFIX), &self.pepper) {
            (Some(phc), Some(key)) => (
                phc,
                aws_lc_rs::hmac::sign(key, password.as_bytes())
                    .as_ref()
                    .to_vec(),
                false,
            ),
            (Some(_), None) => {
                tracing::error!("a peppered password hash, but no pepper is configured");
                if known {
                    let _ = self.verify_in(password, None, memory);
                }
                return PasswordCheck::Mismatch;
            }
            // Made before the pepper was set: re-hash with it on success.
            (None, pepper) => (phc, password.as_bytes().to_vec(), pepper.is_some()),
        };
        let Ok(parsed) = PasswordHash::new(phc) else {
            // A corrupt stored hash: still spend the time, then refuse.
            if known {
                let _ = self.verify_in(password, None, memory);
            }
            return PasswordCheck::Mismatch;
        };
        if matches(&input, &parsed, memory) && known {
            PasswordCheck::Match {
                needs_rehash: upgrade || !self.is_current(&parsed),
            }
        } else {
            PasswordCheck::Mismatch
        }
    }

    fn is_current(&self, parsed: &PasswordHash<'_>) -> bool {
        parsed.algorithm.as_str() == "argon2id"
            && Params::try_from(parsed).is_ok_and(|p| {
                p.m_cost() == self.cost.memory_kib
                    && p.t_cost() == self.cost.iterations
                    && p.p_cost() == self.cost.parallelism
            })
    }
}

/// Whether Argon2 of `input` with `parsed`'s algorithm, version, parameters
/// and salt gives `parsed`'s output (compared in constant time): what
/// `PasswordVerifier::verify_password` does, but in `memory`.
fn matches(input: &[u8], parsed: &PasswordHash<'_>, memory: &mut Argon2Memory) -> bool {
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(version), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        parsed
            .version
            .map_or(Ok(Version::default()), Version::try_from),
        Params::try_from(parsed),
    ) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params);
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = &mut out[..expected.len()];
    argon
        .hash_password_into_with_memory(input, salt, out, memory.blocks(argon.params()))
        .is_ok()
        && Output::new(out).is_ok_and(|computed| computed == *expected)
}

/// Argon2's working memory (`m` KiB), for a thread that hashes again and
/// again: allocated per hash, it is mapped and zeroed by the kernel every
/// time, which perf showed as about a quarter of a sign-in's CPU time.
#[derive(Default)]
pub struct Argon2Memory(Vec<Block>);

impl Argon2Memory {
    fn blocks(&mut self, params: &Params) -> &mut [Block] {
        let needed = params.block_count();
        if self.0.len() < needed {
            self.0.resize(needed, Block::default());
        }
        &mut self.0[..needed]
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2Hashing {
        Argon2Hashing::new(Argon2Cost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .expect("params")
    }

    #[test]
    fn hashes_are_standard_phc_and_memory_is_reused_across_costs() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let p = Password::new_for_account("correct horse battery").expect("policy");
        let wrong = Password::new_for_account("not the password").expect("policy");
        let small = cheap();
        let big = Argon2Hashing::new(Argon2Cost {
            memory_kib: 256,
            iterations: 2,
            parallelism: 2,
        })
        .expect("params");
        let mut memory = Argon2Memory::default();
        // Ours, checked by the argon2 crate's own verifier ...
        let ours = big.hash_in(&p, &mut memory).expect("hash");
        let parsed = PasswordHash::new(&ours).expect("phc");
        assert!(Argon2::default()
            .verify_password(p.as_bytes(), &parsed)
            .is_ok());
        assert!(ours.starts_with("$argon2id$v=19$m=256,t=2,p=2$"), "{ours}");
        // ... and the crate's, checked by ours, in memory a bigger hash used.
        let salt = SaltString::encode_b64(b"sixteen byte slt").expect("salt");
        let theirs = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).expect("params"),
        )
        .hash_password(p.as_bytes(), &salt)
        .expect("hash")
        .to_string();
        let matched = PasswordCheck::Match {
            needs_rehash: false,
        };
        assert_eq!(small.verify_in(&p, Some(&theirs), &mut memory), matched);
        assert_eq!(
            small.verify_in(&wrong, Some(&theirs), &mut memory),
            PasswordCheck::Mismatch
        );
        assert_eq!(
            big.verify_in(&p, Some(&ours), &mut memory),
            matched,
            "after a smaller hash used the same memory"
        );
        // Another cost verifies and asks for a rehash; tampered output fails.
        assert_eq!(
            small.verify(&p, Some(&ours)),
            PasswordCheck::Match { needs_rehash: true }
        );
        let mut tampered = ours.clone();
        let last = tampered.pop().expect("char");
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(big.verify(&p, Some(&tampered)), PasswordCheck::Mismatch);
    }

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        for p in [
            "password",
            "PassWord1",
            "12345678",
            "iloveyou",
            "qwertyuiop",
        ] {
            let e = Password::new_for_account(p).expect_err(p);
            assert!(e.to_string().contains("too common"), "{p}: {e}");
        }
        assert!(Password::new_for_account("correct horse battery").is_ok());
        // Sign-in still takes them (accounts from before the list).
        assert!(Password::for_check("password").is_ok());
        assert_eq!(COMMON_PASSWORDS.lines().count(), 10_000);
    }

    #[test]
    fn pepper_hashes_verify_and_old_hashes_upgrade() {
        let cost = Argon2Cost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let plain = Argon2Hashing::new(cost).expect("hashing");
        let peppered = Argon2Hashing::with_pepper(cost, Some(b"pepper pepper pepper")).expect("h");
        let other = Argon2Hashing::with_pepper(cost, Some(b"another pepper......")).expect("h");
        let p = Password::new_for_account("correct horse battery").expect("policy");
        let wrong = Password::new_for_account("not the password").expect("policy");

        let new = peppered.hash(&p).expect("hash");
        assert!(new.starts_with(PEPPERED_PREFIX));
        assert_eq!(
            peppered.verify(&p, Some(&new)),
            PasswordCheck::Match {
                needs_rehash: false
            }
        );
        assert_eq!(peppered.verify(&wrong, Some(&new)), PasswordCheck::Mismatch);
        // Another pepper, or none, cannot check it.
        assert_eq!(other.verify(&p, Some(&new)), PasswordCheck::Mismatch);
        assert_eq!(plain.verify(&p, Some(&new)), PasswordCheck::Mismatch);
        // A hash from before the pepper still verifies, and asks for a rehash.
        let old = plain.hash(&p).expect("hash");
        assert_eq!(
            peppered.verify(&p, Some(&old)),
            PasswordCheck::Match { needs_rehash: true }
        );
        assert_eq!(peppered.verify(&wrong, Some(&old)), PasswordCheck::Mismatch);
        assert_eq!(peppered.verify(&p, None), PasswordCheck::Mismatch);
    }

    #[test]
    fn policy_bounds() {
        assert!(Password::new_for_account("short").is_err());
        assert!(Password::new_for_account("eight ch").is_ok());
        assert!(Password::new_for_account(&"x".repeat(1024)).is_ok());
        assert!(Password::new_for_account(&"x".repeat(1025)).is_err());
        assert!(Password::for_check(&"x".repeat(1_000_000)).is_err());
        // 8 characters, more than 8 bytes
        assert!(Password::new_for_account("пароль12").is_ok());
    }

    #[test]
    fn hash_and_verify() {
        let h = cheap();
        let pw = Password::new_for_account("correct horse").expect("valid");
        let phc = h.hash(&pw).expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        assert_eq!(
            h.verify(&pw, Some(&phc)),
            PasswordCheck::Match {
                needs_rehash: false
            }
        );
        let wrong = Password::for_check("correct horsE").expect("valid");
        assert_eq!(h.verify(&wrong, Some(&phc)), PasswordCheck::Mismatch);
        assert_eq!(h.verify(&pw, None), PasswordCheck::Mismatch);
        assert_eq!(h.verify(&pw, Some("garbage")), PasswordCheck::Mismatch);
    }

    #[test]
    fn long_passwords_are_not_truncated() {
        let h = cheap();
        let a = "a".repeat(1000);
        let pw = Password::new_for_account(&a).expect("valid");
        let phc = h.hash(&pw).expect("hash");
        let b = Password::for_check(&format!("{}b", &a[..999])).expect("valid");
        assert_eq!(h.verify(&b, Some(&phc)), PasswordCheck::Mismatch);
    }

    #[test]
    fn changed_cost_asks_for_rehash() {
        let old = cheap();
        let pw = Password::new_for_account("correct horse").expect("valid");
        let phc = old.hash(&pw).expect("hash");
        let new = Argon2Hashing::new(Argon2Cost {
            memory_kib: 128,
            iterations: 1,
            parallelism: 1,
        })
        .expect("params");
        assert_eq!(
            new.verify(&pw, Some(&phc)),
            PasswordCheck::Match { needs_rehash: true }
        );
    }

    #[test]
    fn unicode_forms_match() {
        let h = cheap();
        let composed = Password::new_for_account("caf\u{e9}-latte").expect("valid");
        let phc = h.hash(&composed).expect("hash");
        let decomposed = Password::for_check("cafe\u{301}-latte").expect("valid");
        assert!(matches!(
            h.verify(&decomposed, Some(&phc)),
            PasswordCheck::Match { .. }
        ));
    }
}
