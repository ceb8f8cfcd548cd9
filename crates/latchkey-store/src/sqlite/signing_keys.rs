//! Signing keys on SQLite.

use async_trait::async_trait;
use latchkey_core::clock::UnixTime;
use latchkey_core::model::StoredKey;
use latchkey_core::store::{SigningKeyStore, StoreError};
use rusqlite::{params, Connection};

use super::SqliteStore;
use crate::sql::signing_keys::{self as sql, key_columns};
use crate::sql::Columns;

#[async_trait]
impl SigningKeyStore for SqliteStore {
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.read(|c| {
            c.prepare_cached(sql::ALL.sqlite)?
                .query_map([], |r| sql::stored_key(r))?
                .collect()
        })
        .map(sql::in_order)
    }

    async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let k = key.clone();
        self.writer
            .write(move |c| insert_signing_key(c, &k, false).map(drop))
            .await
    }

    async fn insert_signing_key_if_none(&self, key: &StoredKey) -> Result<bool, StoreError> {
        let k = key.clone();
        self.writer
            .write(move |c| insert_signing_key(c, &k, true))
            .await
    }

    async fn rotate_signing_keys(
        &self,
        expected_current_kid: &str,
        new_next: &StoredKey,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let expected = expected_current_kid.to_owned();
        let next = new_next.clone();
        // One writer step, so the check and the three writes are atomic.
        self.writer
            .write(move |c| {
                // The lineage is the new key's: only a current key of that
                // lineage is expected, only its next keys are promoted.
                let purpose = next.purpose.as_str();
                let current_ok: bool = c
                    .prepare_cached(sql::IS_CURRENT.sqlite)?
                    .query_row([expected.as_str(), purpose], |r| r.value("current"))?;
                let waiting = c
                    .prepare_cached(sql::NEXT.sqlite)?
                    .query_map([purpose], |r| sql::stored_key(r))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let (true, Some(promote)) = (current_ok, sql::oldest(waiting)) else {
                    return Ok(false);
                };
                c.prepare_cached(sql::RETIRE_CURRENT.sqlite)?
                    .execute(params![now, purpose])?;
                c.prepare_cached(sql::PROMOTE.sqlite)?
                    .execute(params![promote.kid, now])?;
                insert_signing_key(c, &next, false)?;
                Ok(true)
            })
            .await
    }

    async fn delete_retired_keys_before(&self, before: UnixTime) -> Result<usize, StoreError> {
        self.writer
            .write(move |c| {
                c.prepare_cached(sql::DELETE_RETIRED_BEFORE.sqlite)?
                    .execute([before])
            })
            .await
    }
}

macro_rules! insert_key {
    () => {
        concat!(
            "INSERT INTO signing_keys (",
            key_columns!(),
            ") SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9"
        )
    };
}

const INSERT: &str = insert_key!();
/// Only if no key of the new key's lineage (`?9`) is in its state (`?3`).
const INSERT_UNLESS_STATE_EXISTS: &str = concat!(
    insert_key!(),
    " WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE state = ?3 AND purpose = ?9)"
);

/// With `unless_state_exists`, inserts only if no key of the new key's
/// lineage is in its state; true if a row was written.
fn insert_signing_key(
    c: &Connection,
    k: &StoredKey,
    unless_state_exists: bool,
) -> rusqlite::Result<bool> {
    let statement = if unless_state_exists {
        INSERT_UNLESS_STATE_EXISTS
    } else {
        INSERT
    };
    let n = c.prepare_cached(statement)?.execute(params![
        k.kid,
        k.alg,
        k.state.as_str(),
        k.sealed_private_key,
        k.public_key,
        k.created_at,
        k.activated_at,
        k.retired_at,
        k.purpose.as_str()
    ])?;
    Ok(n == 1)
}
