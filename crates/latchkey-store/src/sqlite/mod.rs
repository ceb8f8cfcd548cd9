//! The embedded SQLite store: one file, WAL, `synchronous=FULL` (an
//! acknowledged write survives power loss), one group-committing writer
//! thread and a few read connections.

mod migrations;
mod revocation_feed;
mod sign_in_attempts;
mod writer;

use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use latchkey_core::audit::{AuditEvent, AuditKind, AuditQuery, Outcome};
use latchkey_core::client::{Client, ClientKind};
use latchkey_core::clock::UnixTime;
use latchkey_core::model::{KeyState, Session, StoredKey, User};
use latchkey_core::store::{
    AuditStore, ClientStore, FeedPage, FeedRead, PruneBefore, Revocation, RevocationKind,
    RevocationStore, SessionStore, SignInAttemptStore, SigningKeyStore, StoreError, ThrottleEntry,
    UserStore,
};
use latchkey_core::throttle::{Admission, ThrottleRule};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};
use uuid::Uuid;

use writer::Writer;

/// Read connections. Reads are primary-key lookups served from the page
/// cache in microseconds, so they run inline on the caller's thread:
/// handing them to a blocking pool would cost more than the read.
const READERS: usize = 4;

pub struct SqliteStore {
    writer: Writer,
    readers: Vec<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed, with mode 0600) the database file and
    /// brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        create_private_file(path)
            .map_err(|e| StoreError::Backend(format!("creating {}: {e}", path.display())))?;
        let mut conn = Connection::open(path).map_err(store_error)?;
        configure(&conn).map_err(store_error)?;
        enable_wal(&conn).map_err(store_error)?;
        migrations::migrate(&mut conn).map_err(store_error)?;

        let readers = (0..READERS)
            .map(|_| {
                let c = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure(&c)?;
                Ok(Mutex::new(c))
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(store_error)?;
        let writer = Writer::start(conn)
            .map_err(|e| StoreError::Backend(format!("starting writer thread: {e}")))?;
        Ok(Self { writer, readers })
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        // Take any idle connection; wait on the first one if all are busy.
        let guard = self
            .readers
            .iter()
            .find_map(|m| m.try_lock().ok())
            .unwrap_or_else(|| self.readers[0].lock().unwrap_or_else(|p| p.into_inner()));
        f(&guard).map_err(store_error)
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Switching to WAL needs a moment of exclusive access, which the busy
/// handler does not wait for; retry briefly when another process opening
/// the same new file holds it.
fn enable_wal(conn: &Connection) -> rusqlite::Result<()> {
    let mut attempt = 0;
    loop {
        let mode: rusqlite::Result<String> =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0));
        match mode {
            Ok(_) => return Ok(()),
            Err(e)
                if attempt < 50
                    && e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) =>
            {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(unix)]
fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

#[cfg(not(unix))]
fn create_private_file(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

pub(crate) fn store_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked | CannotOpen | DiskFull | SystemIoFailure) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

fn uuid_col(row: &Row<'_>, idx: &str) -> rusqlite::Result<Uuid> {
    let bytes: Vec<u8> = row.get(idx)?;
    Uuid::from_slice(&bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

fn conversion(msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::<dyn std::error::Error + Send + Sync>::from(msg),
    )
}

const USER_COLUMNS: &str =
    "u.id, u.username, u.username_key, u.password_hash, u.roles, u.created_at";
const SESSION_COLUMNS: &str =
    "s.id AS sid, s.user_id, s.client_id, s.audience, s.scope, s.counter, s.created_at AS s_created_at, \
     s.last_refreshed_at, s.expires_at, s.user_agent, s.ip, s.revoked_at, s.revoke_reason";

fn user_row(row: &Row<'_>) -> rusqlite::Result<User> {
    let roles: String = row.get("roles")?;
    Ok(User {
        id: uuid_col(row, "id")?,
        username: row.get("username")?,
        username_key: row.get("username_key")?,
        password_hash: row.get("password_hash")?,
        roles: serde_json::from_str(&roles).map_err(|e| conversion(e.to_string()))?,
        created_at: row.get("created_at")?,
    })
}

fn session_row(row: &Row<'_>) -> rusqlite::Result<Session> {
    let counter: i64 = row.get("counter")?;
    Ok(Session {
        id: uuid_col(row, "sid")?,
        user_id: uuid_col(row, "user_id")?,
        client_id: row.get("client_id")?,
        audience: row.get("audience")?,
        scope: row.get("scope")?,
        counter: u64::try_from(counter).map_err(|e| conversion(e.to_string()))?,
        created_at: row.get("s_created_at")?,
        last_refreshed_at: row.get("last_refreshed_at")?,
        expires_at: row.get("expires_at")?,
        user_agent: row.get("user_agent")?,
        ip: row.get("ip")?,
        revoked_at: row.get("revoked_at")?,
        revoke_reason: row.get("revoke_reason")?,
    })
}

fn counter_param(c: u64) -> rusqlite::Result<i64> {
    i64::try_from(c).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, user: &User) -> Result<bool, StoreError> {
        let roles =
            serde_json::to_string(&user.roles).map_err(|e| StoreError::Backend(e.to_string()))?;
        let u = user.clone();
        self.writer
            .write(move |c| {
                let n = c.execute(
                    "INSERT INTO users (id, username, username_key, password_hash, roles, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (username_key) DO NOTHING",
                    params![u.id.as_bytes(), u.username, u.username_key, u.password_hash, roles, u.created_at],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn user_by_key(&self, username_key: &str) -> Result<Option<User>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users u WHERE u.username_key = ?1"
            ))?
            .query_row([username_key], user_row)
            .optional()
        })
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?1"
            ))?
            .query_row([id.as_bytes()], user_row)
            .optional()
        })
    }

    async fn set_password_hash(&self, user_id: Uuid, phc: &str) -> Result<(), StoreError> {
        let phc = phc.to_owned();
        self.writer
            .write(move |c| {
                c.execute(
                    "UPDATE users SET password_hash = ?2 WHERE id = ?1",
                    params![user_id.as_bytes(), phc],
                )
                .map(drop)
            })
            .await
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_session(&self, session: &Session) -> Result<(), StoreError> {
        let s = session.clone();
        self.writer
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO sessions (id, user_id, client_id, counter, created_at,
                        last_refreshed_at, expires_at, user_agent, ip, revoked_at, revoke_reason,
                        audience, scope)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )?
                .execute(params![
                    s.id.as_bytes(),
                    s.user_id.as_bytes(),
                    s.client_id,
                    counter_param(s.counter)?,
                    s.created_at,
                    s.last_refreshed_at,
                    s.expires_at,
                    s.user_agent,
                    s.ip,
                    s.revoked_at,
                    s.revoke_reason,
                    s.audience,
                    s.scope
                ])
                .map(drop)
            })
            .await
    }

    async fn session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.id = ?1"
            ))?
            .query_row([id.as_bytes()], session_row)
            .optional()
        })
    }

    async fn session_and_user(&self, id: Uuid) -> Result<Option<(Session, User)>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS}, {USER_COLUMNS}
                 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?1"
            ))?
            .query_row([id.as_bytes()], |r| Ok((session_row(r)?, user_row(r)?)))
            .optional()
        })
    }

    async fn advance_session(
        &self,
        id: Uuid,
        from_counter: u64,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.writer
            .write(move |c| {
                let n = c
                    .prepare_cached(
                        "UPDATE sessions SET counter = counter + 1, last_refreshed_at = ?3
                         WHERE id = ?1 AND counter = ?2 AND revoked_at IS NULL",
                    )?
                    .execute(params![id.as_bytes(), counter_param(from_counter)?, now])?;
                Ok(n == 1)
            })
            .await
    }

    async fn revoke_session(
        &self,
        id: Uuid,
        now: UnixTime,
        reason: &str,
        entry: &Revocation,
    ) -> Result<bool, StoreError> {
        let reason = reason.to_owned();
        let entry = entry.clone();
        self.writer
            .write(move |c| {
                let n = c.execute(
                    "UPDATE sessions SET revoked_at = ?2, revoke_reason = ?3
                     WHERE id = ?1 AND revoked_at IS NULL",
                    params![id.as_bytes(), now, reason],
                )?;
                if n == 1 {
                    insert_revocation(c, &entry)?;
                }
                Ok(n == 1)
            })
            .await
    }

    async fn live_sessions_of_user(
        &self,
        user_id: Uuid,
        now: UnixTime,
    ) -> Result<Vec<Session>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions s
                 WHERE s.user_id = ?1 AND s.revoked_at IS NULL AND s.expires_at > ?2
                 ORDER BY s.created_at"
            ))?
            .query_map(params![user_id.as_bytes(), now], session_row)?
            .collect()
        })
    }

    async fn has_live_session_from(
        &self,
        user_id: Uuid,
        ip: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM sessions
                 WHERE user_id = ?1 AND ip = ?2 AND revoked_at IS NULL AND expires_at > ?3)",
            )?
            .query_row(params![user_id.as_bytes(), ip, now], |r| r.get(0))
        })
    }

    async fn revoke_sessions_of_user(
        &self,
        user_id: Uuid,
        except: Option<Uuid>,
        now: UnixTime,
        reason: &str,
        entry_expires_at: UnixTime,
    ) -> Result<Vec<Uuid>, StoreError> {
        let reason = reason.to_owned();
        self.writer
            .write(move |c| {
                let ids: Vec<Uuid> = c
                    .prepare_cached(
                        "UPDATE sessions SET revoked_at = ?3, revoke_reason = ?4
                         WHERE user_id = ?1 AND revoked_at IS NULL AND id IS NOT ?2
                         RETURNING id AS sid",
                    )?
                    .query_map(
                        params![
                            user_id.as_bytes(),
                            except.as_ref().map(|u| u.as_bytes()),
                            now,
                            reason
                        ],
                        |r| uuid_col(r, "sid"),
                    )?
                    .collect::<rusqlite::Result<_>>()?;
                insert_session_revocations(c, &ids, entry_expires_at)?;
                Ok(ids)
            })
            .await
    }

    async fn revoke_sessions_beyond(
        &self,
        user_id: Uuid,
        keep: usize,
        now: UnixTime,
        reason: &str,
        entry_expires_at: UnixTime,
    ) -> Result<Vec<Uuid>, StoreError> {
        let reason = reason.to_owned();
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        self.writer
            .write(move |c| {
                let ids: Vec<Uuid> = c
                    .prepare_cached(
                        "UPDATE sessions SET revoked_at = ?3, revoke_reason = ?4
                         WHERE id IN (
                             SELECT id FROM sessions
                             WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?3
                             ORDER BY last_refreshed_at DESC, created_at DESC
                             LIMIT -1 OFFSET ?2)
                         RETURNING id AS sid",
                    )?
                    .query_map(params![user_id.as_bytes(), keep, now, reason], |r| {
                        uuid_col(r, "sid")
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                insert_session_revocations(c, &ids, entry_expires_at)?;
                Ok(ids)
            })
            .await
    }

    async fn prune(&self, before: PruneBefore) -> Result<usize, StoreError> {
        let batch = i64::try_from(before.batch).unwrap_or(i64::MAX);
        self.writer
            .write(move |c| {
                let pruned: Vec<i64> = c
                    .prepare_cached(
                        "DELETE FROM revocations WHERE seq IN (
                             SELECT seq FROM revocations WHERE expires_at <= ?1 LIMIT ?2)
                         RETURNING seq",
                    )?
                    .query_map(params![before.revocations, batch], |r| r.get::<_, i64>(0))?
                    .collect::<rusqlite::Result<_>>()?;
                if let Some(seq) = pruned.iter().max() {
                    c.execute(
                        "UPDATE feed_state SET pruned_through = max(pruned_through, ?1) WHERE id = 1",
                        [seq],
                    )?;
                }
                let mut deleted = pruned.len();
                deleted += c.execute(
                    "DELETE FROM sessions WHERE id IN (
                         SELECT id FROM sessions WHERE expires_at <= ?1 LIMIT ?2)",
                    params![before.sessions, batch],
                )?;
                Ok(deleted)
            })
            .await
    }
}

#[async_trait]
impl RevocationStore for SqliteStore {
    async fn insert_revocation(&self, entry: &Revocation) -> Result<(), StoreError> {
        let entry = entry.clone();
        self.writer
            .write(move |c| insert_revocation(c, &entry))
            .await
    }

    async fn live_revocations(&self, now: UnixTime) -> Result<Vec<Revocation>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT kind, id, expires_at FROM revocations WHERE expires_at > ?1")?
                .query_map([now], revocation_row)?
                .collect()
        })
    }

    async fn revocation_feed(
        &self,
        read: FeedRead,
        now: UnixTime,
        limit: usize,
    ) -> Result<Option<FeedPage>, StoreError> {
        self.read_feed(read, now, limit).await
    }
}

#[async_trait]
impl SignInAttemptStore for SqliteStore {
    async fn throttle_entries(&self, keys: &[String]) -> Result<Vec<ThrottleEntry>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT key, failures, last_failure_at, blocked_until
                 FROM sign_in_failures WHERE key = ?1",
            )?;
            let mut entries = Vec::with_capacity(keys.len());
            for key in keys {
                if let Some(e) = stmt.query_row([key], throttle_row).optional()? {
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
        self.reserve(keys, now).await
    }

    async fn release_attempt(&self, reserved: &ThrottleEntry) -> Result<(), StoreError> {
        self.release(reserved).await
    }

    async fn clear_sign_in_failures(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.writer
            .write(move |c| {
                Ok(c.execute("DELETE FROM sign_in_failures WHERE key = ?1", [key])? == 1)
            })
            .await
    }

    async fn prune_sign_in_failures(
        &self,
        before: UnixTime,
        now: UnixTime,
        batch: usize,
    ) -> Result<usize, StoreError> {
        let batch = i64::try_from(batch).unwrap_or(i64::MAX);
        self.writer
            .write(move |c| {
                c.execute(
                    "DELETE FROM sign_in_failures WHERE key IN (
                         SELECT key FROM sign_in_failures
                         WHERE last_failure_at < ?1 AND blocked_until <= ?2 LIMIT ?3)",
                    params![before, now, batch],
                )
            })
            .await
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn insert_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let e = event.clone();
        self.writer
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO audit_events (at, kind, outcome, user_id, session_id, ip, count)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    e.at,
                    e.kind.as_str(),
                    e.outcome.as_str(),
                    e.user_id.as_ref().map(|u| u.as_bytes().to_vec()),
                    e.session_id.as_ref().map(|u| u.as_bytes().to_vec()),
                    e.ip,
                    e.count
                ])
                .map(drop)
            })
            .await
    }

    async fn prune_audit_events(
        &self,
        before: UnixTime,
        batch: usize,
    ) -> Result<usize, StoreError> {
        let batch = i64::try_from(batch).unwrap_or(i64::MAX);
        self.writer
            .write(move |c| {
                c.prepare_cached(
                    "DELETE FROM audit_events WHERE seq IN (
                         SELECT seq FROM audit_events WHERE at < ?1 LIMIT ?2)",
                )?
                .execute(params![before, batch])
            })
            .await
    }

    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let user = query.user_id.map(|u| u.as_bytes().to_vec());
        let mut events = self.read(|c| {
            c.prepare_cached(
                "SELECT at, kind, outcome, user_id, session_id, ip, count FROM audit_events
                 WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR at >= ?2)
                 ORDER BY seq DESC LIMIT ?3",
            )?
            .query_map(params![user, query.since, limit], audit_row)?
            .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        events.reverse();
        Ok(events)
    }
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = ?1"
            ))?
            .query_row([client_id], client_row)
            .optional()
        })
    }

    async fn clients(&self) -> Result<Vec<Client>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {CLIENT_COLUMNS} FROM clients ORDER BY client_id"
            ))?
            .query_map([], client_row)?
            .collect()
        })
    }

    async fn insert_client(&self, client: &Client) -> Result<bool, StoreError> {
        let client = client.clone();
        self.writer
            .write(move |c| write_client(c, &client, "INSERT OR IGNORE"))
            .await
    }

    async fn upsert_client(&self, client: &Client) -> Result<(), StoreError> {
        let client = client.clone();
        self.writer
            .write(move |c| write_client(c, &client, "INSERT OR REPLACE").map(drop))
            .await
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let id = client_id.to_owned();
        self.writer
            .write(move |c| Ok(c.execute("DELETE FROM clients WHERE client_id = ?1", [id])? == 1))
            .await
    }

    async fn set_client_secret(
        &self,
        client_id: &str,
        secret_hash: &[u8],
    ) -> Result<bool, StoreError> {
        let id = client_id.to_owned();
        let hash = secret_hash.to_vec();
        self.writer
            .write(move |c| {
                Ok(c.execute(
                    "UPDATE clients SET secret_hash = ?2 WHERE client_id = ?1 AND kind = 'confidential'",
                    params![id, hash],
                )? == 1)
            })
            .await
    }
}

#[async_trait]
impl SigningKeyStore for SqliteStore {
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT kid, alg, state, sealed_private_key, public_key, created_at,
                        activated_at, retired_at
                 FROM signing_keys",
            )?;
            let rows = stmt.query_map([], |r| {
                let state: String = r.get(2)?;
                Ok(StoredKey {
                    kid: r.get(0)?,
                    alg: r.get(1)?,
                    state: KeyState::parse(&state)
                        .ok_or_else(|| conversion(format!("key state {state}")))?,
                    sealed_private_key: r.get(3)?,
                    public_key: r.get(4)?,
                    created_at: r.get(5)?,
                    activated_at: r.get(6)?,
                    retired_at: r.get(7)?,
                })
            })?;
            rows.collect()
        })
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
                let current_ok: bool = c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM signing_keys WHERE kid = ?1 AND state = 'current')",
                    [&expected],
                    |r| r.get(0),
                )?;
                let promote: Option<String> = c
                    .query_row(
                        "SELECT kid FROM signing_keys WHERE state = 'next'
                         ORDER BY created_at, kid LIMIT 1",
                        [],
                        |r| r.get(0),
                    )
                    .optional()?;
                let (true, Some(promote)) = (current_ok, promote) else {
                    return Ok(false);
                };
                c.execute(
                    "UPDATE signing_keys SET state = 'retired', retired_at = ?1 WHERE state = 'current'",
                    [now],
                )?;
                c.execute(
                    "UPDATE signing_keys SET state = 'current', activated_at = ?2 WHERE kid = ?1",
                    params![promote, now],
                )?;
                insert_signing_key(c, &next, false)?;
                Ok(true)
            })
            .await
    }

    async fn delete_retired_keys_before(&self, before: UnixTime) -> Result<usize, StoreError> {
        self.writer
            .write(move |c| {
                c.execute(
                    "DELETE FROM signing_keys WHERE state = 'retired' AND retired_at < ?1",
                    [before],
                )
            })
            .await
    }
}

const CLIENT_COLUMNS: &str = "client_id, kind, secret_hash, audiences, scopes, access_ttl, \
     refresh_idle_timeout, session_lifetime, created_at, introspect_any";

fn client_row(r: &Row<'_>) -> rusqlite::Result<Client> {
    let kind: String = r.get("kind")?;
    let list = |col: &str| -> rusqlite::Result<Vec<String>> {
        let text: String = r.get(col)?;
        serde_json::from_str(&text).map_err(|e| conversion(e.to_string()))
    };
    Ok(Client {
        client_id: r.get("client_id")?,
        kind: ClientKind::parse(&kind).ok_or_else(|| conversion(format!("client kind {kind}")))?,
        secret_hash: r.get("secret_hash")?,
        audiences: list("audiences")?,
        scopes: list("scopes")?,
        access_ttl_seconds: r.get("access_ttl")?,
        refresh_idle_timeout_seconds: r.get("refresh_idle_timeout")?,
        session_lifetime_seconds: r.get("session_lifetime")?,
        introspect_any: r.get("introspect_any")?,
        created_at: r.get("created_at")?,
    })
}

/// `verb` is `INSERT OR IGNORE` or `INSERT OR REPLACE`; true if a row was written.
fn write_client(c: &Connection, client: &Client, verb: &str) -> rusqlite::Result<bool> {
    let json = |v: &Vec<String>| {
        serde_json::to_string(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    };
    let n = c.execute(
        &format!(
            "{verb} INTO clients ({CLIENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ),
        params![
            client.client_id,
            client.kind.as_str(),
            client.secret_hash,
            json(&client.audiences)?,
            json(&client.scopes)?,
            client.access_ttl_seconds,
            client.refresh_idle_timeout_seconds,
            client.session_lifetime_seconds,
            client.created_at,
            client.introspect_any
        ],
    )?;
    Ok(n == 1)
}

/// With `unless_state_exists`, inserts only if no key is in the new key's
/// state; true if a row was written.
fn insert_signing_key(
    c: &Connection,
    k: &StoredKey,
    unless_state_exists: bool,
) -> rusqlite::Result<bool> {
    let guard = if unless_state_exists {
        " WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE state = ?3)"
    } else {
        ""
    };
    let n = c.execute(
        &format!(
            "INSERT INTO signing_keys (kid, alg, state, sealed_private_key, public_key, created_at,
                                       activated_at, retired_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8{guard}"
        ),
        params![
            k.kid,
            k.alg,
            k.state.as_str(),
            k.sealed_private_key,
            k.public_key,
            k.created_at,
            k.activated_at,
            k.retired_at
        ],
    )?;
    Ok(n == 1)
}

fn revocation_row(r: &Row<'_>) -> rusqlite::Result<Revocation> {
    let kind: String = r.get("kind")?;
    Ok(Revocation {
        kind: RevocationKind::parse(&kind)
            .ok_or_else(|| conversion(format!("revocation kind {kind}")))?,
        id: r.get("id")?,
        expires_at: r.get("expires_at")?,
    })
}

/// A `sid` entry for each session ended, so its access tokens stop too.
fn insert_session_revocations(
    c: &Connection,
    ids: &[Uuid],
    expires_at: UnixTime,
) -> rusqlite::Result<()> {
    for id in ids {
        insert_revocation(
            c,
            &Revocation {
                kind: RevocationKind::Session,
                id: id.to_string(),
                expires_at,
            },
        )?;
    }
    Ok(())
}

fn insert_revocation(c: &Connection, e: &Revocation) -> rusqlite::Result<()> {
    c.prepare_cached("INSERT INTO revocations (kind, id, expires_at) VALUES (?1, ?2, ?3)")?
        .execute(params![e.kind.as_str(), e.id, e.expires_at])
        .map(drop)
}

fn throttle_row(r: &Row<'_>) -> rusqlite::Result<ThrottleEntry> {
    let failures: i64 = r.get("failures")?;
    Ok(ThrottleEntry {
        key: r.get("key")?,
        failures: u32::try_from(failures.max(0)).unwrap_or(u32::MAX),
        last_failure_at: r.get("last_failure_at")?,
        blocked_until: r.get("blocked_until")?,
    })
}

fn audit_row(r: &Row<'_>) -> rusqlite::Result<AuditEvent> {
    let uuid = |col: &str| -> rusqlite::Result<Option<Uuid>> {
        let bytes: Option<Vec<u8>> = r.get(col)?;
        bytes
            .map(|b| Uuid::from_slice(&b).map_err(|e| conversion(e.to_string())))
            .transpose()
    };
    let kind: String = r.get("kind")?;
    let outcome: String = r.get("outcome")?;
    Ok(AuditEvent {
        at: r.get("at")?,
        kind: AuditKind::parse(&kind).ok_or_else(|| conversion(format!("audit kind {kind}")))?,
        outcome: Outcome::parse(&outcome)
            .ok_or_else(|| conversion(format!("audit outcome {outcome}")))?,
        user_id: uuid("user_id")?,
        session_id: uuid("session_id")?,
        ip: r.get("ip")?,
        count: r.get("count")?,
    })
}
