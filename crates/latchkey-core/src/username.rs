//! Username normalisation in the spirit of RFC 8265 (UsernameCaseMapped):
//! look-alikes must collide at sign-up, invisible characters are refused.

use unicode_normalization::UnicodeNormalization;

use crate::AuthError;

pub const MAX_USERNAME_CHARS: usize = 64;
/// Longest raw input looked at, in bytes, checked before normalising: NFKC
/// can grow a string 18-fold and costs time per character, so an
/// attacker's megabyte must be refused before it is normalised. A 64
/// character name fits in 256 bytes even at 4 bytes a character.
pub const MAX_USERNAME_BYTES: usize = 256;

/// A username as the user typed it (NFKC-normalised, for display) and the
/// key it is unique under (NFKC + case fold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username {
    pub display: String,
    pub key: String,
}

impl Username {
    pub fn parse(raw: &str) -> Result<Self, AuthError> {
        if raw.len() > MAX_USERNAME_BYTES {
            return Err(invalid("username must be at most 64 characters"));
        }
        let display: String = raw.nfkc().collect();
        if display.is_empty() {
            return Err(invalid("username must not be empty"));
        }
        if display.chars().count() > MAX_USERNAME_CHARS {
            return Err(invalid("username must be at most 64 characters"));
        }
        if display.chars().any(is_forbidden) {
            return Err(invalid(
                "username must not contain spaces, control or invisible characters",
            ));
        }
        Ok(Self {
            key: fold(&display),
            display,
        })
    }
}

/// The form a search for `raw` compares with usernames' keys (and, being
/// lower-case, with emails' keys): NFKC and case fold, nothing refused.
/// Callers bound its length first.
pub fn search_key(raw: &str) -> String {
    fold(&raw.nfkc().collect::<String>())
}

/// Full case folding approximated by upper- then lower-casing, which maps
/// e.g. `ß` to `ss` and final sigma to sigma, then NFKC again because case
/// mapping can denormalise.
fn fold(s: &str) -> String {
    s.to_uppercase().to_lowercase().nfkc().collect()
}

fn is_forbidden(c: char) -> bool {
    c.is_control()
        || c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'                 // soft hyphen
            | '\u{034F}'               // combining grapheme joiner
            | '\u{061C}'               // arabic letter mark
            | '\u{115F}' | '\u{1160}'  // hangul fillers
            | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'  // mongolian variation selectors, vowel separator
            | '\u{200B}'..='\u{200F}'  // zero-width space/joiners, direction marks
            | '\u{202A}'..='\u{202E}'  // bidi embeddings and overrides
            | '\u{2060}'..='\u{206F}'  // word joiner, invisible operators, bidi isolates
            | '\u{3164}' | '\u{FFA0}'  // hangul fillers
            | '\u{FE00}'..='\u{FE0F}'  // variation selectors
            | '\u{FEFF}'               // BOM / zero-width no-break space
            | '\u{FFF0}'..='\u{FFFF}'
            | '\u{E0000}'..='\u{E0FFF}' // tags, variation selectors supplement
        )
        || ('\u{E000}'..='\u{F8FF}').contains(&c) // private use
}

fn invalid(msg: &str) -> AuthError {
    AuthError::InvalidRequest(msg.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        Username::parse(s).expect("valid").key
    }

    #[test]
    fn look_alikes_collide() {
        assert_eq!(key("Admin"), "admin");
        assert_eq!(key("ＡＤＭＩＮ"), "admin");
        assert_eq!(key("ADMIN"), "admin");
        // decomposed é (e + combining acute) and precomposed é
        assert_eq!(key("Jose\u{0301}"), key("Jos\u{00E9}"));
        assert_eq!(key("STRASSE"), key("straße"));
    }

    #[test]
    fn invisible_and_control_characters_are_refused() {
        for bad in [
            "ad\u{200B}min",
            "ad\u{200D}min",
            "admin\u{FEFF}",
            "ad\u{0000}min",
            "ad min",
            "\u{202E}nimda",
            "",
            "a\u{00AD}b",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn display_keeps_case() {
        let u = Username::parse("Alice").expect("valid");
        assert_eq!(u.display, "Alice");
        assert_eq!(u.key, "alice");
    }

    #[test]
    fn length_is_bounded() {
        assert!(Username::parse(&"a".repeat(64)).is_ok());
        assert!(Username::parse(&"a".repeat(65)).is_err());
        // 64 four-byte characters are the most a name can take.
        assert!(Username::parse(&"𝒶".repeat(64)).is_ok());
        // Refused by its byte length before normalising, although NFKC
        // would shrink it ("ﷺ" expands, "ｶﾞ" would merge).
        assert!(Username::parse(&"\u{FDFA}".repeat(1 << 20)).is_err());
        assert!(Username::parse(&"a".repeat(MAX_USERNAME_BYTES + 1)).is_err());
    }
}
