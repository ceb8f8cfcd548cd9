//! Sign-in throttling counters on SQLite: an attempt is reserved (checked
//! and counted) in one atomic step and released when it succeeds; the rule
//! itself is core's (`latchkey_core::throttle`).

use async_trait::async_trait;
use latchkey_core::clock::UnixTime;
use latchkey_core::store::{AttemptTakeBack, SignInAttemptStore, StoreError, ThrottleEntry};
use latchkey_core::throttle::{self, Admission, ThrottleRule};
use rusqlite::{params, Connection, OptionalExtension};

use super::SqliteStore;
use crate::sql::limit;
use crate::sql::sign_in_attempts::{self as sql, counter_columns};

const BY_KEY: &str = concat!(
    "SELECT ",
    counter_columns!(),
    " FROM sign_in_failures WHERE key = ?1"
);

#[async_trait]
impl SignInAttemptStore for SqliteStore {
    async fn throttle_entries(&self, keys: &[String]) -> Result<Vec<ThrottleEntry>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(BY_KEY)?;
            let mut entries = Vec::with_capacity(keys.len());
            for key in keys {
                if let Some(e) = stmt
                    .query_row([key], |r| sql::throttle_entry(r))
                    .optional()?
                {
                    entries.push(e);
                }
            }
            Ok(entries)
        })
    }

    async fn reserve_attempt(
        &self,
        keys: &[(String, ThrottleRule)],
        now: UnixTime,
    ) -> Result<Admission, StoreError> {
        let keys = keys.to_vec();
        // The writer runs one step at a time: reading and counting here is
        // as atomic as one statement.
        self.writer
            .write(move |c| {
                let mut current = Vec::with_capacity(keys.len());
                let mut read = c.prepare_cached(BY_KEY)?;
                for (key, _) in &keys {
                    if let Some(e) = read.query_row([key], |r| sql::throttle_entry(r)).optional()? {
                        current.push(e);
                    }
                }
                let admission = throttle::admit(&keys, &current, now);
                if let Admission::Admitted(entries) = &admission {
                    let mut write = c.prepare_cached(
                        "INSERT INTO sign_in_failures (key, failures, last_failure_at, blocked_until)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (key) DO UPDATE SET failures = excluded.failures,
                             last_failure_at = excluded.last_failure_at,
                             blocked_until = excluded.blocked_until",
                    )?;
                    for e in entries {
                        write.execute(params![e.key, e.failures, e.last_failure_at, e.blocked_until])?;
                    }
                }
                Ok(admission)
            })
            .await
    }

    async fn release_attempt(&self, reserved: &ThrottleEntry) -> Result<(), StoreError> {
        let e = reserved.clone();
        self.writer.write(move |c| release_attempt(c, &e)).await
    }

    async fn clear_sign_in_failures(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.writer
            .write(move |c| clear_sign_in_failures(c, &key))
            .await
    }

    async fn prune_sign_in_failures(
        &self,
        before: UnixTime,
        now: UnixTime,
        batch: usize,
    ) -> Result<usize, StoreError> {
        let batch = limit(batch);
        self.writer
            .write(move |c| {
                c.prepare_cached(sql::PRUNE.sqlite)?
                    .execute(params![before, now, batch])
            })
            .await
    }
}

/// Gives a successful attempt back within the writer's current transaction.
pub(super) fn take_back_attempt(c: &Connection, back: &AttemptTakeBack) -> rusqlite::Result<()> {
    if let Some(key) = &back.clear {
        clear_sign_in_failures(c, key)?;
    }
    if let Some(reserved) = &back.release {
        release_attempt(c, reserved)?;
    }
    Ok(())
}

fn release_attempt(c: &Connection, e: &ThrottleEntry) -> rusqlite::Result<()> {
    c.prepare_cached(sql::RELEASE.sqlite)?
        .execute(params![e.key, e.failures, e.last_failure_at])
        .map(drop)
}

fn clear_sign_in_failures(c: &Connection, key: &str) -> rusqlite::Result<bool> {
    Ok(c.prepare_cached(sql::CLEAR.sqlite)?.execute([key])? == 1)
}
