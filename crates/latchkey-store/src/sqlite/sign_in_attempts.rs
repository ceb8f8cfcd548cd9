//! Sign-in throttling counters: an attempt is reserved (checked and
//! counted) in one atomic step and released when it succeeds; the rule
//! itself is core's (`latchkey_core::throttle`).

use latchkey_core::throttle;

use super::*;

impl SqliteStore {
    pub(super) async fn reserve(
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
                let mut read = c.prepare_cached(
                    "SELECT key, failures, last_failure_at, blocked_until
                     FROM sign_in_failures WHERE key = ?1",
                )?;
                for (key, _) in &keys {
                    if let Some(e) = read.query_row([key], throttle_row).optional()? {
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

    pub(super) async fn release(&self, reserved: &ThrottleEntry) -> Result<(), StoreError> {
        let e = reserved.clone();
        self.writer
            .write(move |c| {
                // Every SET expression sees the row as it was.
                c.prepare_cached(
                    "UPDATE sign_in_failures SET failures = max(failures - 1, 0),
                         blocked_until = CASE WHEN failures = ?2 AND last_failure_at = ?3
                                              THEN min(blocked_until, ?3)
                                              ELSE blocked_until END
                     WHERE key = ?1",
                )?
                .execute(params![e.key, e.failures, e.last_failure_at])
                .map(drop)
            })
            .await
    }
}
