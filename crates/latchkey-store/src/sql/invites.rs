//! Invite codes for sign-up by invitation, kept only as hashes: the
//! statements both databases share (the roles list is JSON text in SQLite
//! and `jsonb` in PostgreSQL, so the insert lives with each backend).

use latchkey_core::model::StoredInvite;

use super::{statement, Columns, Sql};

/// Single use: the row is deleted as it is read, so of two sign-ups with
/// the same code exactly one gets it.
pub(crate) const TAKE: Sql = statement!(
    "DELETE FROM invites WHERE code_hash = ?1 AND expires_at > ?2 \
     RETURNING code_hash, CAST(roles AS TEXT) AS roles, created_by, created_at, expires_at"
);

pub(crate) const PRUNE: Sql = statement!(
    "DELETE FROM invites WHERE code_hash IN \
     (SELECT code_hash FROM invites WHERE expires_at <= ?1 LIMIT ?2)"
);

pub(crate) fn invite<R: Columns>(row: &R) -> Result<StoredInvite, R::Error> {
    let hash: Vec<u8> = row.value("code_hash")?;
    Ok(StoredInvite {
        code_hash: hash
            .try_into()
            .map_err(|_| R::invalid("code_hash", "not 32 bytes".into()))?,
        roles: row.string_list("roles")?,
        created_by: row.value("created_by")?,
        created_at: row.value("created_at")?,
        expires_at: row.value("expires_at")?,
    })
}
