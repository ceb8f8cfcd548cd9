//! OpenID Connect ID tokens (Core §2): a JWS with header `typ` `JWT` (or
//! none), never `at+jwt`, so neither kind of token passes for the other.

use serde::{Deserialize, Serialize};

use super::{signed_payload, TokenError, VerifyingKeys, MAX_TOKEN_BYTES};
use crate::clock::UnixTime;

/// The claims of an ID token we issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    /// The user's id.
    pub sub: String,
    /// The client's id.
    pub aud: String,
    pub exp: UnixTime,
    pub iat: UnixTime,
    /// When the user last typed their password.
    pub auth_time: UnixTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The session the tokens issued with it belong to.
    pub sid: String,
    /// With scope `profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// With scope `email`, when the account has an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// An ID token's claims if a key of `keys` signed it for `issuer`. Its
/// times are not checked: a logout's `id_token_hint` may have expired
/// (OpenID Connect RP-Initiated Logout §2).
pub fn verify_signature_and_issuer(
    token: &str,
    keys: &VerifyingKeys,
    issuer: &str,
) -> Result<IdClaims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let id_typ = |typ: Option<&str>| typ.is_none_or(|t| t.eq_ignore_ascii_case("JWT"));
    let payload = signed_payload(token, keys, id_typ)?;
    let claims: IdClaims =
        serde_json::from_slice(&payload).map_err(|_| TokenError::InvalidClaims)?;
    if claims.iss != issuer {
        return Err(TokenError::WrongIssuer);
    }
    Ok(claims)
}
