//! Schema migrations, applied in order at start-up; `PRAGMA user_version`
//! records how many have run.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: accounts, sessions, revocation set, signing keys.
    r#"
    CREATE TABLE users (
        id            BLOB PRIMARY KEY,
        username      TEXT NOT NULL,
        username_key  TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        roles         TEXT NOT NULL DEFAULT '[]',
        created_at    INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;

    -- One row per sign-in, updated in place on every refresh: storage per
    -- session is constant however often it rotates.
    CREATE TABLE sessions (
        id                BLOB PRIMARY KEY,
        user_id           BLOB NOT NULL REFERENCES users(id),
        client_id         TEXT NOT NULL,
        counter           INTEGER NOT NULL,
        created_at        INTEGER NOT NULL,
        last_refreshed_at INTEGER NOT NULL,
        expires_at        INTEGER NOT NULL,
        user_agent        TEXT,
        ip                TEXT,
        revoked_at        INTEGER,
        revoke_reason     TEXT
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX sessions_by_user ON sessions(user_id);

    -- seq is the cursor of the revocation feed.
    CREATE TABLE revocations (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        kind       TEXT NOT NULL,
        id         TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX revocations_by_expiry ON revocations(expires_at);

    CREATE TABLE signing_keys (
        kid                TEXT PRIMARY KEY,
        alg                TEXT NOT NULL,
        state              TEXT NOT NULL,
        sealed_private_key BLOB NOT NULL,
        public_key         BLOB NOT NULL,
        created_at         INTEGER NOT NULL
    ) STRICT;
    "#,
    // 2: revocation-feed bookkeeping and session pruning.
    r#"
    -- Highest feed cursor whose entry was pruned: older cursors may have
    -- missed entries and must start again from a snapshot.
    CREATE TABLE feed_state (
        id             INTEGER PRIMARY KEY CHECK (id = 1),
        pruned_through INTEGER NOT NULL
    ) STRICT;
    INSERT INTO feed_state (id, pruned_through) VALUES (1, 0);
    CREATE INDEX sessions_by_expiry ON sessions(expires_at);
    "#,
    // 3: OAuth clients; what each session was granted.
    r#"
    CREATE TABLE clients (
        client_id            TEXT PRIMARY KEY,
        kind                 TEXT NOT NULL,
        secret_hash          BLOB,
        audiences            TEXT NOT NULL,
        scopes               TEXT NOT NULL,
        access_ttl           INTEGER,
        refresh_idle_timeout INTEGER,
        session_lifetime     INTEGER,
        created_at           INTEGER NOT NULL
    ) STRICT;
    ALTER TABLE sessions ADD COLUMN audience TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN scope TEXT NOT NULL DEFAULT '';
    "#,
    // 4: signing-key lifecycle: when a key started and stopped signing.
    r#"
    ALTER TABLE signing_keys ADD COLUMN activated_at INTEGER;
    ALTER TABLE signing_keys ADD COLUMN retired_at INTEGER;
    "#,
    // 5: failed sign-in counters, per account and per client address.
    r#"
    CREATE TABLE sign_in_failures (
        key             TEXT PRIMARY KEY,
        failures        INTEGER NOT NULL,
        last_failure_at INTEGER NOT NULL,
        blocked_until   INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX sign_in_failures_by_time ON sign_in_failures(last_failure_at);
    "#,
    // 6: the audit log (never a secret or a token).
    r#"
    CREATE TABLE audit_events (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        at         INTEGER NOT NULL,
        kind       TEXT NOT NULL,
        outcome    TEXT NOT NULL,
        user_id    BLOB,
        session_id BLOB,
        ip         TEXT
    ) STRICT;
    CREATE INDEX audit_events_by_user ON audit_events(user_id, seq);
    CREATE INDEX audit_events_by_time ON audit_events(at);
    "#,
    // 7: aggregated audit rows (throttled attempts: one row per address and
    // minute with how many there were).
    r#"
    ALTER TABLE audit_events ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
    "#,
    // 8: clients that may introspect any client's tokens (resource servers).
    r#"
    ALTER TABLE clients ADD COLUMN introspect_any INTEGER NOT NULL DEFAULT 0;
    "#,
];

/// Each migration runs in its own IMMEDIATE transaction that re-reads the
/// version under the write lock, so several processes opening one new file
/// at once apply each migration exactly once.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    for (version, sql) in (1i64..).zip(MIGRATIONS) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let done: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if done < version {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", version)?;
        }
        tx.commit()?;
    }
    Ok(())
}
