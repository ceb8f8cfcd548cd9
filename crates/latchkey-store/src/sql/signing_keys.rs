//! Signing keys: the key row, the statements both databases share and the
//! one order keys are listed and promoted in. Inserting differs
//! (PostgreSQL must be told the parameters' types) and lives with each
//! backend, as does how a rotation is made atomic. Every statement on
//! states works within one lineage (`purpose`): the lineages rotate apart.

use std::cmp::Ordering;

use latchkey_core::model::{KeyPurpose, KeyState, StoredKey};

use super::{statement, Columns, Sql};

/// The columns [`stored_key`] reads, and a key is written to in the order
/// of its parameters.
macro_rules! key_columns {
    () => {
        "kid, alg, state, sealed_private_key, public_key, created_at, activated_at, retired_at, purpose"
    };
}
pub(crate) use key_columns;

/// Every key, in no particular order (see [`in_order`]).
pub(crate) const ALL: Sql = statement!("SELECT ", key_columns!(), " FROM signing_keys");

/// Keys of lineage `?1` waiting to become current; rotation promotes the
/// [`oldest`].
pub(crate) const NEXT: Sql = statement!(
    "SELECT ",
    key_columns!(),
    " FROM signing_keys WHERE state = 'next' AND purpose = ?1"
);

/// Whether `?1` is the current key of lineage `?2`.
pub(crate) const IS_CURRENT: Sql = statement!(
    "SELECT EXISTS (SELECT 1 FROM signing_keys",
    " WHERE kid = ?1 AND state = 'current' AND purpose = ?2) AS current"
);

/// Every current key of lineage `?2` stops signing at `?1`.
pub(crate) const RETIRE_CURRENT: Sql = statement!(
    "UPDATE signing_keys SET state = 'retired', retired_at = ?1",
    " WHERE state = 'current' AND purpose = ?2"
);

/// Key `?1` starts signing at `?2`.
pub(crate) const PROMOTE: Sql =
    statement!("UPDATE signing_keys SET state = 'current', activated_at = ?2 WHERE kid = ?1");

pub(crate) const DELETE_RETIRED_BEFORE: Sql =
    statement!("DELETE FROM signing_keys WHERE state = 'retired' AND retired_at < ?1");

pub(crate) fn stored_key<R: Columns>(row: &R) -> Result<StoredKey, R::Error> {
    let state: String = row.value("state")?;
    let purpose: String = row.value("purpose")?;
    Ok(StoredKey {
        kid: row.value("kid")?,
        alg: row.value("alg")?,
        state: KeyState::parse(&state)
            .ok_or_else(|| R::invalid("state", format!("key state {state}")))?,
        purpose: KeyPurpose::parse(&purpose)
            .ok_or_else(|| R::invalid("purpose", format!("key purpose {purpose}")))?,
        sealed_private_key: row.value("sealed_private_key")?,
        public_key: row.value("public_key")?,
        created_at: row.value("created_at")?,
        activated_at: row.value("activated_at")?,
        retired_at: row.value("retired_at")?,
    })
}

/// The one order of keys, on both databases: oldest first, then by `kid`
/// byte by byte (whatever PostgreSQL's collation).
fn order(a: &StoredKey, b: &StoredKey) -> Ordering {
    (a.created_at, a.kid.as_bytes()).cmp(&(b.created_at, b.kid.as_bytes()))
}

pub(crate) fn in_order(mut keys: Vec<StoredKey>) -> Vec<StoredKey> {
    keys.sort_unstable_by(order);
    keys
}

/// The key rotation promotes among `keys`.
pub(crate) fn oldest(keys: Vec<StoredKey>) -> Option<StoredKey> {
    keys.into_iter().min_by(order)
}
