//! Sign-in throttling counters on PostgreSQL: an attempt is reserved
//! (checked and counted) in one atomic step and released when it succeeds;
//! the rule itself is core's (`latchkey_core::throttle`).

use std::time::Instant;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use latchkey_core::clock::UnixTime;
use latchkey_core::store::{AttemptTakeBack, SignInAttemptStore, StoreError, ThrottleEntry};
use latchkey_core::throttle::{self, Admission, ThrottleRule};
use tokio_postgres::Statement;

use super::{commit, pg_error, row_count, tx_execute, tx_query, PostgresStore};
use crate::sql::limit;
use crate::sql::sign_in_attempts::{self as sql, counter_columns};

#[async_trait]
impl SignInAttemptStore for PostgresStore {
    async fn throttle_entries(&self, keys: &[String]) -> Result<Vec<ThrottleEntry>, StoreError> {
        self.query(
            concat!(
                "SELECT ",
                counter_columns!(),
                " FROM sign_in_failures WHERE key = ANY($1)"
            ),
            &[&keys],
        )
        .await?
        .iter()
        .map(sql::throttle_entry)
        .collect()
    }

    async fn reserve_attempt(
        &self,
        keys: &[(String, ThrottleRule)],
        now: UnixTime,
    ) -> Result<Admission, StoreError> {
        let mut names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        // Rows are created and locked in key order, so reservations of the
        // same keys queue behind each other instead of deadlocking.
        names.sort_unstable();
        names.dedup();
        let mut client = self.client().await?;
        let started = Instant::now();
        let tx = client.transaction().await.map_err(pg_error)?;
        tx_execute(
            &tx,
            "INSERT INTO sign_in_failures (key, failures, last_failure_at, blocked_until)
             SELECT k, 0, 0, 0 FROM unnest($1::text[]) AS k ORDER BY k
             ON CONFLICT (key) DO NOTHING",
            &[&names],
        )
        .await?;
        let current = tx_query(
            &tx,
            concat!(
                "SELECT ",
                counter_columns!(),
                " FROM sign_in_failures WHERE key = ANY($1) ORDER BY key FOR UPDATE"
            ),
            &[&names],
        )
        .await?
        .iter()
        .map(sql::throttle_entry)
        .collect::<Result<Vec<_>, _>>()?;
        let admission = throttle::admit(keys, &current, now);
        match &admission {
            Admission::Admitted(entries) => {
                let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
                let failures: Vec<i64> = entries.iter().map(|e| i64::from(e.failures)).collect();
                let at: Vec<i64> = entries.iter().map(|e| e.last_failure_at).collect();
                let until: Vec<i64> = entries.iter().map(|e| e.blocked_until).collect();
                tx_execute(
                    &tx,
                    "UPDATE sign_in_failures AS f
                     SET failures = u.failures, last_failure_at = u.at, blocked_until = u.until
                     FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
                         AS u(key, failures, at, until)
                     WHERE f.key = u.key",
                    &[&keys, &failures, &at, &until],
                )
                .await?;
                commit(tx, started).await?;
            }
            // Nothing counted: drop the placeholder rows with the locks.
            Admission::Refused(_) => tx.rollback().await.map_err(pg_error)?,
        }
        Ok(match admission {
            // Placeholders of keys that had no counter are not counters.
            Admission::Refused(entries) => Admission::Refused(
                entries
                    .into_iter()
                    .filter(|e| e.last_failure_at != 0)
                    .collect(),
            ),
            admitted => admitted,
        })
    }

    async fn release_attempt(&self, reserved: &ThrottleEntry) -> Result<(), StoreError> {
        self.execute(
            sql::RELEASE.postgres,
            &[
                &reserved.key,
                &i64::from(reserved.failures),
                &reserved.last_failure_at,
            ],
        )
        .await
        .map(drop)
    }

    async fn clear_sign_in_failures(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.execute(sql::CLEAR.postgres, &[&key]).await? == 1)
    }

    async fn prune_sign_in_failures(
        &self,
        before: UnixTime,
        now: UnixTime,
        batch: usize,
    ) -> Result<usize, StoreError> {
        self.execute(sql::PRUNE.postgres, &[&before, &now, &limit(batch)])
            .await
            .map(row_count)
    }
}

/// One counter write of a successful attempt given back, in a sign-in's
/// transaction.
pub(super) enum TakeBack<'a> {
    /// [`sql::CLEAR`] the key.
    Clear(&'a str),
    /// [`sql::RELEASE`] the attempt.
    Release(&'a ThrottleEntry),
}

impl<'a> TakeBack<'a> {
    /// `back`'s writes in key order, the order `reserve_attempt` locks
    /// counters in, so a sign-in and a reservation of the same keys never
    /// wait for each other's rows in a cycle.
    pub(super) fn in_key_order(back: &'a AttemptTakeBack) -> [Option<Self>; 2] {
        let clear = back.clear.as_deref().map(Self::Clear);
        let release = back.release.as_ref().map(Self::Release);
        match (&clear, &release) {
            (Some(c), Some(r)) if r.key() < c.key() => [release, clear],
            _ => [clear, release],
        }
    }

    fn key(&self) -> &str {
        match self {
            Self::Clear(key) => key,
            Self::Release(e) => &e.key,
        }
    }

    /// Runs `write` with `clear` and `release` prepared from their
    /// statements. Sent when first polled, so writes polled in order run in
    /// that order.
    pub(super) async fn run(
        write: Option<Self>,
        tx: &Transaction<'_>,
        clear: &Statement,
        release: &Statement,
    ) -> Result<u64, tokio_postgres::Error> {
        match write {
            None => Ok(0),
            Some(Self::Clear(key)) => tx.execute(clear, &[&key]).await,
            Some(Self::Release(e)) => {
                tx.execute(
                    release,
                    &[&e.key, &i64::from(e.failures), &e.last_failure_at],
                )
                .await
            }
        }
    }
}
