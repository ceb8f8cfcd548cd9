//! The schema's history, written once for both databases: migration `n`
//! (from 1) is the `n`-th entry of [`MIGRATIONS`], in words that
//! [`ColumnTypes::render`] turns into each database's types. Each backend
//! records and applies versions its own way (see its `migrations`), and
//! both refuse a database whose version is past the end of this list.

use latchkey_core::store::StoreError;

/// What the placeholders of [`MIGRATIONS`] stand for in one database.
pub(crate) struct ColumnTypes {
    /// `{uuid}`: a UUID.
    pub uuid: &'static str,
    /// `{int}`: a 64-bit integer.
    pub int: &'static str,
    /// `{bytes}`: a byte string.
    pub bytes: &'static str,
    /// `{json}`: a JSON document.
    pub json: &'static str,
    /// `{bool}` and `{false}`: a boolean and its false value.
    pub bool: &'static str,
    pub false_value: &'static str,
    /// `{seq}`: an increasing integer primary key that is never reused.
    pub seq: &'static str,
    /// `{table}`: how a table ends.
    pub table: &'static str,
    /// `{keyed_table}`: how a table ends whose rows are found by a primary
    /// key that is not an integer.
    pub keyed_table: &'static str,
}

impl ColumnTypes {
    /// Every migration in this database's words, in order.
    pub(crate) fn render(&self) -> impl Iterator<Item = String> + '_ {
        MIGRATIONS.iter().map(|sql| {
            sql.replace("{uuid}", self.uuid)
                .replace("{int}", self.int)
                .replace("{bytes}", self.bytes)
                .replace("{json}", self.json)
                .replace("{bool}", self.bool)
                .replace("{false}", self.false_value)
                .replace("{seq}", self.seq)
                .replace("{table}", self.table)
                .replace("{keyed_table}", self.keyed_table)
        })
    }
}

/// Refuses a database that a newer binary has migrated (`found` is its
/// recorded version): its tables may mean something this binary does not
/// know, so it must not read or write them.
pub(crate) fn refuse_newer(found: i64) -> Result<(), StoreError> {
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    Ok(())
}

const MIGRATIONS: &[&str] = &[
    // 1: accounts, sessions, revocation set, signing keys.
    r#"
    CREATE TABLE users (
        id            {uuid} PRIMARY KEY,
        username      TEXT NOT NULL,
        username_key  TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        roles         {json} NOT NULL DEFAULT '[]',
        created_at    {int} NOT NULL
    ){keyed_table};

    -- One row per sign-in, updated in place on every refresh: storage per
    -- session is constant however often it rotates.
    CREATE TABLE sessions (
        id                {uuid} PRIMARY KEY,
        user_id           {uuid} NOT NULL REFERENCES users(id),
        client_id         TEXT NOT NULL,
        counter           {int} NOT NULL,
        created_at        {int} NOT NULL,
        last_refreshed_at {int} NOT NULL,
        expires_at        {int} NOT NULL,
        user_agent        TEXT,
        ip                TEXT,
        revoked_at        {int},
        revoke_reason     TEXT
    ){keyed_table};
    CREATE INDEX sessions_by_user ON sessions(user_id);

    -- seq is the cursor of the revocation feed. In PostgreSQL every
    -- transaction that inserts here holds the feed advisory lock, so seq
    -- order is commit order.
    CREATE TABLE revocations (
        seq        {seq},
        kind       TEXT NOT NULL,
        id         TEXT NOT NULL,
        expires_at {int} NOT NULL
    ){table};
    CREATE INDEX revocations_by_expiry ON revocations(expires_at);

    CREATE TABLE signing_keys (
        kid                TEXT PRIMARY KEY,
        alg                TEXT NOT NULL,
        state              TEXT NOT NULL,
        sealed_private_key {bytes} NOT NULL,
        public_key         {bytes} NOT NULL,
        created_at         {int} NOT NULL
    ){table};
    "#,
    // 2: revocation-feed bookkeeping and session pruning.
    r#"
    -- Highest feed cursor whose entry was pruned: older cursors may have
    -- missed entries and must start again from a snapshot.
    CREATE TABLE feed_state (
        id             INTEGER PRIMARY KEY CHECK (id = 1),
        pruned_through {int} NOT NULL
    ){table};
    INSERT INTO feed_state (id, pruned_through) VALUES (1, 0);
    CREATE INDEX sessions_by_expiry ON sessions(expires_at);
    "#,
    // 3: OAuth clients; what each session was granted.
    r#"
    CREATE TABLE clients (
        client_id            TEXT PRIMARY KEY,
        kind                 TEXT NOT NULL,
        secret_hash          {bytes},
        audiences            {json} NOT NULL,
        scopes               {json} NOT NULL,
        access_ttl           {int},
        refresh_idle_timeout {int},
        session_lifetime     {int},
        created_at           {int} NOT NULL
    ){table};
    ALTER TABLE sessions ADD COLUMN audience TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN scope TEXT NOT NULL DEFAULT '';
    "#,
    // 4: signing-key lifecycle: when a key started and stopped signing.
    r#"
    ALTER TABLE signing_keys ADD COLUMN activated_at {int};
    ALTER TABLE signing_keys ADD COLUMN retired_at {int};
    "#,
    // 5: failed sign-in counters, per account and per client address.
    r#"
    CREATE TABLE sign_in_failures (
        key             TEXT PRIMARY KEY,
        failures        {int} NOT NULL,
        last_failure_at {int} NOT NULL,
        blocked_until   {int} NOT NULL
    ){keyed_table};
    CREATE INDEX sign_in_failures_by_time ON sign_in_failures(last_failure_at);
    "#,
    // 6: the audit log (never a secret or a token).
    r#"
    CREATE TABLE audit_events (
        seq        {seq},
        at         {int} NOT NULL,
        kind       TEXT NOT NULL,
        outcome    TEXT NOT NULL,
        user_id    {uuid},
        session_id {uuid},
        ip         TEXT
    ){table};
    CREATE INDEX audit_events_by_user ON audit_events(user_id, seq);
    CREATE INDEX audit_events_by_time ON audit_events(at);
    "#,
    // 7: aggregated audit rows (throttled attempts: one row per address and
    // minute with how many there were).
    r#"
    ALTER TABLE audit_events ADD COLUMN count {int} NOT NULL DEFAULT 1;
    "#,
    // 8: clients that may introspect any client's tokens (resource servers).
    r#"
    ALTER TABLE clients ADD COLUMN introspect_any {bool} NOT NULL DEFAULT {false};
    "#,
    // 9: a user's live sessions without their ended ones, which stay until
    // they expire: the session limit on every sign-in, the session list and
    // sign-out everywhere read only these (a user with thousands of ended
    // sessions made each sign-in scan them all).
    r#"
    CREATE INDEX sessions_live_by_user ON sessions(user_id) WHERE revoked_at IS NULL;
    "#,
    // 10: the id of the request an audit event came from, to find its log
    // lines (NULL for older rows and for aggregated throttled attempts).
    r#"
    ALTER TABLE audit_events ADD COLUMN request_id TEXT;
    "#,
    // 11: accounts people can run: an optional email (unique in its
    // lower-cased form; NULLs do not collide), disabled accounts, and the
    // one-time tokens of reset and verification links, kept only as hashes.
    r#"
    ALTER TABLE users ADD COLUMN email TEXT;
    ALTER TABLE users ADD COLUMN email_key TEXT;
    ALTER TABLE users ADD COLUMN email_verified_at {int};
    ALTER TABLE users ADD COLUMN disabled_at {int};
    CREATE UNIQUE INDEX users_by_email ON users(email_key);
    CREATE TABLE account_tokens (
        token_hash {bytes} PRIMARY KEY,
        user_id    {uuid} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        purpose    TEXT NOT NULL,
        email      TEXT,
        created_at {int} NOT NULL,
        expires_at {int} NOT NULL
    ){keyed_table};
    CREATE INDEX account_tokens_by_user ON account_tokens(user_id, purpose);
    CREATE INDEX account_tokens_by_expiry ON account_tokens(expires_at);
    "#,
    // 12: web origins a client's pages call from (CORS, the refresh cookie).
    r#"
    ALTER TABLE clients ADD COLUMN allowed_origins {json} NOT NULL DEFAULT '[]';
    "#,
    // 13: operators' accounts work: who acted in each audit event (NULL
    // for a user's own actions), and invite codes for sign-up by
    // invitation, kept only as hashes.
    r#"
    ALTER TABLE audit_events ADD COLUMN actor TEXT;
    CREATE TABLE invites (
        code_hash  {bytes} PRIMARY KEY,
        roles      {json} NOT NULL DEFAULT '[]',
        created_by TEXT NOT NULL,
        created_at {int} NOT NULL,
        expires_at {int} NOT NULL
    ){keyed_table};
    CREATE INDEX invites_by_expiry ON invites(expires_at);
    "#,
    // 14: the mail outbox. A row is a message waiting for a node's mail
    // worker (its bodies hold a link, a secret: deleted once sent) or a
    // password-reset request the worker resolves. `claim` is the worker holding it, until `next_attempt_at`.
    r#"
    CREATE TABLE outbox (
        id              {uuid} PRIMARY KEY,
        kind            TEXT NOT NULL,
        recipient       TEXT NOT NULL,
        subject         TEXT NOT NULL,
        text_body       TEXT NOT NULL,
        html_body       TEXT NOT NULL,
        created_at      {int} NOT NULL,
        attempts        {int} NOT NULL,
        next_attempt_at {int} NOT NULL,
        claim           {uuid}
    ){keyed_table};
    CREATE INDEX outbox_by_due ON outbox(next_attempt_at);
    "#,
    // 15: a second signing-key lineage, for OpenID Connect ID tokens (RS256),
    // beside the access-token one that every existing key belongs to. Each
    // lineage has its own current and next key and rotates apart; writes
    // stay serialised as before (SQLite's writer, PostgreSQL's keys lock),
    // so no constraint is needed to keep one current key per lineage.
    r#"
    ALTER TABLE signing_keys ADD COLUMN purpose TEXT NOT NULL DEFAULT 'access';
    "#,
    // 16: the authorization-code flow: codes (hashes only, kept a while
    // after use so a replay is recognised), users' consents to third-party
    // clients, and the clients' redirect URIs and whether they are
    // third-party.
    r#"
    CREATE TABLE authorization_codes (
        code_hash      {bytes} PRIMARY KEY,
        client_id      TEXT NOT NULL,
        redirect_uri   TEXT NOT NULL,
        code_challenge TEXT NOT NULL,
        user_id        {uuid} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        session_id     {uuid} NOT NULL,
        scope          TEXT NOT NULL,
        audience       TEXT NOT NULL,
        nonce          TEXT,
        auth_time      {int} NOT NULL,
        created_at     {int} NOT NULL,
        expires_at     {int} NOT NULL,
        redeemed_at    {int}
    ){keyed_table};
    CREATE INDEX authorization_codes_by_expiry ON authorization_codes(expires_at);
    CREATE TABLE consents (
        user_id    {uuid} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        client_id  TEXT NOT NULL,
        scope      TEXT NOT NULL,
        granted_at {int} NOT NULL,
        PRIMARY KEY (user_id, client_id)
    ){keyed_table};
    ALTER TABLE clients ADD COLUMN redirect_uris {json} NOT NULL DEFAULT '[]';
    ALTER TABLE clients ADD COLUMN post_logout_redirect_uris {json} NOT NULL DEFAULT '[]';
    ALTER TABLE clients ADD COLUMN third_party {bool} NOT NULL DEFAULT {false};
    ALTER TABLE clients ADD COLUMN id_token_alg TEXT;
    "#,
];
