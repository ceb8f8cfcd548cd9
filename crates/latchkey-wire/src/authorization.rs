//! The `Authorization` header: bearer access tokens (RFC 6750 §2.1) and
//! client credentials in HTTP Basic (client_secret_basic, RFC 6749
//! §2.3.1), read alike by the issuer and by resource servers.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

/// Why no bearer token could be taken from a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// No `Authorization` header, several of them, or another scheme: no
    /// bearer token was presented (answered without an error code, RFC 6750
    /// §3.1).
    #[error("missing bearer token")]
    Missing,
    /// The `Bearer` scheme with no token, or with one that is not a
    /// `b64token`.
    #[error("malformed bearer token")]
    Malformed,
}

/// The token of the single `Authorization: Bearer` header, unverified.
/// Query strings and bodies are never searched.
///
/// The rule is RFC 6750 §2.1's: `Bearer 1*SP b64token`, the scheme
/// case-insensitive (RFC 9110 §11.1), where a b64token is
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
/// Whitespace around the value is not part of it.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, BearerError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        // None, or several: refusing to pick one avoids a confused deputy.
        return Err(BearerError::Missing);
    };
    let value = value.to_str().map_err(|_| BearerError::Malformed)?;
    let value = value.trim_matches([' ', '\t']);
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Missing);
    }
    let token = token.trim_start_matches(' ');
    if !is_b64token(token) {
        return Err(BearerError::Malformed);
    }
    Ok(token)
}

fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// A client id and, unless empty, its secret.
#[derive(PartialEq, Eq)]
pub struct BasicCredentials {
    pub id: String,
    pub secret: Option<String>,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("id", &self.id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl BasicCredentials {
    /// Parses an `Authorization` header value; `None` for any other scheme
    /// or a malformed value.
    pub fn parse(value: &HeaderValue) -> Option<Self> {
        let value = value.to_str().ok()?;
        let (scheme, encoded) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = STANDARD.decode(encoded.trim()).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        // §2.3.1: both halves are form-urlencoded before base64.
        let unescape = |s: &str| -> String {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let secret = unescape(secret);
        Some(Self {
            id: unescape(id),
            secret: (!secret.is_empty()).then_some(secret),
        })
    }

    /// The `Authorization` value carrying `id` and `secret`: both halves
    /// form-urlencoded, then base64 (RFC 6749 §2.3.1). Marked sensitive so
    /// HTTP libraries keep it out of their logs.
    pub fn header_value(id: &str, secret: &str) -> Option<HeaderValue> {
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = STANDARD.encode(format!("{}:{}", encode(id), encode(secret)));
        let mut value = HeaderValue::try_from(format!("Basic {basic}")).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(values: &[&str]) -> Result<String, BearerError> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(AUTHORIZATION, HeaderValue::from_str(v).expect("value"));
        }
        bearer_token(&headers).map(str::to_owned)
    }

    #[test]
    fn bearer_follows_rfc_6750() {
        for ok in [
            "Bearer a.b-c_d~e+f/g==",
            "bearer abc",
            "BEARER abc",
            "Bearer  abc  ",
        ] {
            assert!(bearer(&[ok]).is_ok(), "{ok}");
        }
        assert_eq!(bearer(&["Bearer  abc "]).as_deref(), Ok("abc"));
        for missing in [
            &[][..],
            &["Basic YTpi"],
            &["Token abc"],
            &["Bearer:abc"],
            &["abc"],
        ] {
            assert_eq!(bearer(missing), Err(BearerError::Missing), "{missing:?}");
        }
        assert_eq!(bearer(&["Bearer a", "Bearer a"]), Err(BearerError::Missing));
        for malformed in [
            "Bearer",
            "Bearer ",
            "Bearer abc def",
            "Bearer abc,def",
            "Bearer Bearer abc",
            "Bearer =abc",
            "Bearer ab=c",
            "Bearer \"abc\"",
        ] {
            assert_eq!(
                bearer(&[malformed]),
                Err(BearerError::Malformed),
                "{malformed}"
            );
        }
        let mut headers = HeaderMap::new();
        let latin1 = HeaderValue::from_bytes(b"Bearer abc\xe9").expect("obs-text");
        headers.insert(AUTHORIZATION, latin1);
        assert_eq!(bearer_token(&headers), Err(BearerError::Malformed));
    }

    #[test]
    fn basic_round_trips_through_form_encoding() {
        for (id, secret) in [("svc", "lkc_x+y"), ("a:b", "p%c&d=é"), ("web", "")] {
            let value = BasicCredentials::header_value(id, secret).expect("header");
            assert!(value.is_sensitive());
            let parsed = BasicCredentials::parse(&value).expect("parses");
            assert_eq!(parsed.id, id);
            assert_eq!(parsed.secret.as_deref().unwrap_or_default(), secret);
        }
        for bad in ["Bearer abc", "Basic !!", "Basic YWJj", "Basic"] {
            let value = HeaderValue::from_static(bad);
            assert!(BasicCredentials::parse(&value).is_none(), "{bad}");
        }
        let debug = format!(
            "{:?}",
            BasicCredentials::parse(
                &BasicCredentials::header_value("svc", "hunter2").expect("header"),
            )
        );
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
