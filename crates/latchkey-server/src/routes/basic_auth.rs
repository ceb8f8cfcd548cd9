//! Client credentials in `Authorization: Basic` (client_secret_basic, RFC
//! 6749 §2.3.1), as the OAuth endpoints and the revocation feed take them.

use axum::http::HeaderValue;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use latchkey_core::AuthError;

/// A client id and, unless empty, its secret.
pub struct BasicCredentials {
    pub id: String,
    pub secret: Option<String>,
}

impl BasicCredentials {
    /// Parses an `Authorization` header value; any other scheme or a
    /// malformed value is [`AuthError::InvalidClient`].
    pub fn parse(value: &HeaderValue) -> Result<Self, AuthError> {
        let invalid = || AuthError::InvalidClient;
        let value = value.to_str().map_err(|_| invalid())?;
        let (scheme, encoded) = value.split_once(' ').ok_or_else(invalid)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(invalid());
        }
        let decoded = STANDARD.decode(encoded.trim()).map_err(|_| invalid())?;
        let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
        let (id, secret) = decoded.split_once(':').ok_or_else(invalid)?;
        // §2.3.1: both halves are form-urlencoded before base64.
        let unescape = |s: &str| -> String {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let secret = unescape(secret);
        Ok(Self {
            id: unescape(id),
            secret: (!secret.is_empty()).then_some(secret),
        })
    }
}
