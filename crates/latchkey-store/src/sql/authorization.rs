//! The authorization-code flow's records: codes (hashes only) and consents,
//! in statements both databases share.

use latchkey_core::model::{Consent, StoredAuthorizationCode};

use super::{statement, Columns, Sql};

macro_rules! code_columns {
    () => {
        "code_hash, client_id, redirect_uri, code_challenge, user_id, session_id, scope, \
         audience, nonce, auth_time, created_at, expires_at, redeemed_at"
    };
}

pub(crate) const INSERT_CODE: Sql = statement!(
    "INSERT INTO authorization_codes (",
    code_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, NULL)"
);

/// Redeems a code not redeemed before; returns nothing if it was (or is
/// unknown), which [`CODE_BY_HASH`] then tells apart.
pub(crate) const REDEEM_CODE: Sql = statement!(
    "UPDATE authorization_codes SET redeemed_at = ?2 \
     WHERE code_hash = ?1 AND redeemed_at IS NULL RETURNING ",
    code_columns!()
);

pub(crate) const CODE_BY_HASH: Sql = statement!(
    "SELECT ",
    code_columns!(),
    " FROM authorization_codes WHERE code_hash = ?1"
);

pub(crate) const PRUNE_CODES: Sql = statement!(
    "DELETE FROM authorization_codes WHERE code_hash IN \
     (SELECT code_hash FROM authorization_codes WHERE expires_at <= ?1 LIMIT ?2)"
);

pub(crate) const CONSENT: Sql = statement!(
    "SELECT user_id, client_id, scope, granted_at FROM consents \
     WHERE user_id = ?1 AND client_id = ?2"
);

/// The same upsert on both databases.
pub(crate) const SAVE_CONSENT: Sql = statement!(
    "INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, \
     granted_at = excluded.granted_at"
);

pub(crate) const CONSENTS_OF_USER: Sql =
    statement!("SELECT user_id, client_id, scope, granted_at FROM consents WHERE user_id = ?1");

pub(crate) const WITHDRAW_CONSENT: Sql =
    statement!("DELETE FROM consents WHERE user_id = ?1 AND client_id = ?2");

pub(crate) fn authorization_code<R: Columns>(row: &R) -> Result<StoredAuthorizationCode, R::Error> {
    let hash: Vec<u8> = row.value("code_hash")?;
    Ok(StoredAuthorizationCode {
        code_hash: hash
            .try_into()
            .map_err(|_| R::invalid("code_hash", "not 32 bytes".into()))?,
        client_id: row.value("client_id")?,
        redirect_uri: row.value("redirect_uri")?,
        code_challenge: row.value("code_challenge")?,
        user_id: row.uuid("user_id")?,
        session_id: row.uuid("session_id")?,
        scope: row.value("scope")?,
        audience: row.value("audience")?,
        nonce: row.value("nonce")?,
        auth_time: row.value("auth_time")?,
        created_at: row.value("created_at")?,
        expires_at: row.value("expires_at")?,
        redeemed_at: row.value("redeemed_at")?,
    })
}

pub(crate) fn consent<R: Columns>(row: &R) -> Result<Consent, R::Error> {
    Ok(Consent {
        user_id: row.uuid("user_id")?,
        client_id: row.value("client_id")?,
        scope: row.value("scope")?,
        granted_at: row.value("granted_at")?,
    })
}

/// Consents by client id, byte by byte (the same on both databases).
pub(crate) fn in_order(mut consents: Vec<Consent>) -> Vec<Consent> {
    consents.sort_unstable_by(|a, b| a.client_id.cmp(&b.client_id));
    consents
}
