//! Email addresses on accounts: a deliberately plain subset of RFC 5321
//! that every mail server delivers to, and the key an address is unique
//! under (the whole address lower-cased: local parts are case-sensitive in
//! theory, in practice no provider treats them so, and two accounts on
//! `Ann@x` and `ann@x` would make password recovery ambiguous).

use crate::AuthError;

/// RFC 5321's limit on a forward path, checked before anything else.
pub const MAX_EMAIL_BYTES: usize = 254;
const MAX_LOCAL_BYTES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// As given, trimmed.
    pub address: String,
    /// Lower-cased: the form accounts are unique under and looked up by.
    pub key: String,
}

impl Email {
    pub fn parse(raw: &str) -> Result<Self, AuthError> {
        if raw.len() > MAX_EMAIL_BYTES {
            return Err(invalid("email must be at most 254 bytes"));
        }
        let address = raw.trim();
        let Some((local, domain)) = address.split_once('@') else {
            return Err(invalid("email must be an address like name@example.com"));
        };
        let local_ok = !local.is_empty()
            && local.len() <= MAX_LOCAL_BYTES
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.bytes().all(is_local_byte);
        // Internationalised domains are accepted in their ASCII (punycode)
        // form, which is what mail servers resolve.
        let domain_ok = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !local_ok || !domain_ok {
            return Err(invalid("email must be an address like name@example.com"));
        }
        Ok(Self {
            address: address.to_owned(),
            key: address.to_ascii_lowercase(),
        })
    }
}

/// RFC 5322 `atext` and the dot: no quoting, no comments, no spaces.
fn is_local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b)
}

fn invalid(message: &str) -> AuthError {
    AuthError::InvalidRequest(message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_addresses_are_accepted_and_keyed_in_lower_case() {
        let e = Email::parse("  Ann.Lee+latchkey@Example.COM ").expect("valid");
        assert_eq!(e.address, "Ann.Lee+latchkey@Example.COM");
        assert_eq!(e.key, "ann.lee+latchkey@example.com");
        assert!(Email::parse("a@xn--bcher-kva.example").is_ok());
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "ann@localhost",
            "ann@@example.com",
            "ann@exa mple.com",
            "an n@example.com",
            "ann\u{0}@example.com",
            "ann@b\u{00fc}cher.example",
            ".ann@example.com",
            "a..b@example.com",
            "ann@-x.example",
            "\"a b\"@example.com",
            "ann@example.com\r\nBcc: x@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
        assert!(Email::parse(&format!("a@{}.com", "b".repeat(300))).is_err());
    }
}
