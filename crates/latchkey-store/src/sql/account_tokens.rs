//! One-time account tokens (reset and verification links), kept only as
//! hashes: the statements both databases share.

use latchkey_core::model::{AccountTokenPurpose, StoredAccountToken};

use super::{statement, Columns, Sql};

/// Issuing a token voids the user's older ones of the same purpose.
pub(crate) const DELETE_OF_USER: Sql =
    statement!("DELETE FROM account_tokens WHERE user_id = ?1 AND purpose = ?2");

pub(crate) const INSERT: Sql = statement!(
    "INSERT INTO account_tokens (token_hash, user_id, purpose, email, created_at, expires_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
);

/// Single use: the row is deleted as it is read, so of two requests with
/// the same token exactly one gets it.
pub(crate) const TAKE: Sql = statement!(
    "DELETE FROM account_tokens WHERE token_hash = ?1 AND purpose = ?2 AND expires_at > ?3 \
     RETURNING token_hash, user_id, purpose, email, created_at, expires_at"
);

pub(crate) const PRUNE: Sql = statement!(
    "DELETE FROM account_tokens WHERE token_hash IN \
     (SELECT token_hash FROM account_tokens WHERE expires_at <= ?1 LIMIT ?2)"
);

pub(crate) fn account_token<R: Columns>(row: &R) -> Result<StoredAccountToken, R::Error> {
    let hash: Vec<u8> = row.value("token_hash")?;
    let purpose: String = row.value("purpose")?;
    Ok(StoredAccountToken {
        token_hash: hash
            .try_into()
            .map_err(|_| R::invalid("token_hash", "not 32 bytes".into()))?,
        user_id: row.uuid("user_id")?,
        purpose: AccountTokenPurpose::parse(&purpose)
            .ok_or_else(|| R::invalid("purpose", purpose))?,
        email: row.value("email")?,
        created_at: row.value("created_at")?,
        expires_at: row.value("expires_at")?,
    })
}
