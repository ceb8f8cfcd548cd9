//! Signing keys on PostgreSQL.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use latchkey_core::clock::UnixTime;
use latchkey_core::model::StoredKey;
use latchkey_core::store::{SigningKeyStore, StoreError};

use super::{keys_writer, pg_error, row_count, tx_execute, tx_query, PostgresStore};
use crate::sql::signing_keys::{self as sql, key_columns};
use crate::sql::Columns;

#[async_trait]
impl SigningKeyStore for PostgresStore {
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.query(sql::ALL.postgres, &[])
            .await?
            .iter()
            .map(sql::stored_key)
            .collect::<Result<_, _>>()
            .map(sql::in_order)
    }

    async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = keys_writer(&mut client).await?;
        insert_signing_key(&tx, key, false).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn insert_signing_key_if_none(&self, key: &StoredKey) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = keys_writer(&mut client).await?;
        let inserted = insert_signing_key(&tx, key, true).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(inserted)
    }

    async fn rotate_signing_keys(
        &self,
        expected_current_kid: &str,
        new_next: &StoredKey,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        // Under the keys lock, so the check and the three writes are atomic
        // with respect to every other node's key writes.
        let tx = keys_writer(&mut client).await?;
        // The lineage is the new key's: only a current key of that lineage
        // is expected, only its next keys are promoted.
        let purpose = new_next.purpose.as_str();
        let current_ok = match tx_query(
            &tx,
            sql::IS_CURRENT.postgres,
            &[&expected_current_kid, &purpose],
        )
        .await?
        .first()
        {
            Some(row) => row.value("current")?,
            None => false,
        };
        let waiting = tx_query(&tx, sql::NEXT.postgres, &[&purpose])
            .await?
            .iter()
            .map(sql::stored_key)
            .collect::<Result<Vec<_>, _>>()?;
        let (true, Some(promote)) = (current_ok, sql::oldest(waiting)) else {
            // Nothing written: ends the transaction (and the lock) at once.
            tx.rollback().await.map_err(pg_error)?;
            return Ok(false);
        };
        tx_execute(&tx, sql::RETIRE_CURRENT.postgres, &[&now, &purpose]).await?;
        tx_execute(&tx, sql::PROMOTE.postgres, &[&promote.kid, &now]).await?;
        insert_signing_key(&tx, new_next, false).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(true)
    }

    async fn delete_retired_keys_before(&self, before: UnixTime) -> Result<usize, StoreError> {
        self.execute(sql::DELETE_RETIRED_BEFORE.postgres, &[&before])
            .await
            .map(row_count)
    }
}

/// With `unless_state_exists`, inserts only if no key of the new key's
/// lineage is in its state; `true` if a row was written. The parameters'
/// types are spelt out: in `INSERT ... SELECT` PostgreSQL cannot infer them.
async fn insert_signing_key(
    tx: &Transaction<'_>,
    k: &StoredKey,
    unless_state_exists: bool,
) -> Result<bool, StoreError> {
    let guard = if unless_state_exists {
        " WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE state = $3 AND purpose = $9)"
    } else {
        ""
    };
    let n = tx_execute(
        tx,
        &format!(
            "INSERT INTO signing_keys ({})
             SELECT $1::text, $2::text, $3::text, $4::bytea, $5::bytea, $6::bigint,
                    $7::bigint, $8::bigint, $9::text{guard}",
            key_columns!()
        ),
        &[
            &k.kid,
            &k.alg,
            &k.state.as_str(),
            &k.sealed_private_key,
            &k.public_key,
            &k.created_at,
            &k.activated_at,
            &k.retired_at,
            &k.purpose.as_str(),
        ],
    )
    .await?;
    Ok(n == 1)
}
