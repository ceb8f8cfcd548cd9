//! What the domain needs from persistence. Implementations live in
//! `latchkey-store`; every method is one atomic step, and every rule that
//! involves concurrency is expressed as a conditional write here (no
//! check-then-act across two calls).

use async_trait::async_trait;
use thiserror::Error;
use uuid::Uuid;

pub use crate::audit::{AuditEvent, AuditQuery};
use crate::client::Client;
use crate::clock::UnixTime;
use crate::email::Email;
use crate::model::{
    AccountTokenPurpose, CodeRedemption, Consent, OutboxMessage, Session, StoredAccountToken,
    StoredAuthorizationCode, StoredInvite, StoredKey, User, UserQuery,
};
pub use crate::revocation::{Revocation, RevocationKind};
pub use crate::rotation::RotationGuard;
pub use crate::throttle::{Admission, AttemptTakeBack, ThrottleEntry, ThrottleRule};

#[derive(Debug, Clone, Error)]
pub enum StoreError {
    /// The database cannot be reached right now; the request may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else the backend reported; for logs, never for clients.
    #[error("store error: {0}")]
    Backend(String),
    /// The database was migrated by a newer Latchkey: this binary would
    /// misread it, so it refuses to touch it.
    #[error(
        "the database schema is version {found}, this binary knows up to {known}: upgrade latchkey"
    )]
    SchemaTooNew { found: i64, known: i64 },
}

/// Where a read of the revocation feed starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedRead {
    /// A page of the snapshot of live entries: those recorded after `from`
    /// (0 for the first page, else the `cursor` of the previous page) that
    /// have not expired. Entries recorded while a reader pages through are
    /// in a later page, so nothing between pages is missed.
    Snapshot { from: i64 },
    /// Following the feed: every entry recorded after this cursor, expired
    /// or not, oldest first.
    After(i64),
}

/// One page of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPage {
    pub entries: Vec<Revocation>,
    /// Where the next page starts: read on from here with the same kind of
    /// read while `more`, then follow with [`FeedRead::After`].
    pub cursor: i64,
    /// Whether entries past `cursor` were left out because the page was full.
    pub more: bool,
}

impl FeedPage {
    /// The page of `rows` (`(seq, entry)` in feed order, up to `limit + 1`
    /// of them: an extra row only tells that more remain); `newest` is the
    /// cursor of the newest entry the read saw, where a complete page ends.
    pub fn from_rows(mut rows: Vec<(i64, Revocation)>, limit: usize, newest: i64) -> Self {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let cursor = match rows.last() {
            Some((seq, _)) if more => *seq,
            _ => newest,
        };
        Self {
            entries: rows.into_iter().map(|(_, entry)| entry).collect(),
            cursor,
            more,
        }
    }
}

/// What background pruning may delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneBefore {
    /// Revocation entries that expired by this time (`expires_at` at or
    /// before it).
    pub revocations: UnixTime,
    /// Sessions whose absolute lifetime ended by this time.
    pub sessions: UnixTime,
    /// How many rows of each kind one call deletes at most, so the writer is
    /// never held for long.
    pub batch: usize,
}

/// Everything a successful sign-in writes, in one transaction
/// ([`SessionStore::open_session`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOpening {
    pub session: Session,
    /// The sign-in's audit event.
    pub audit: AuditEvent,
    /// The password attempt the sign-in gives back to the throttle.
    pub attempt: AttemptTakeBack,
    /// The cap on the user's live sessions.
    pub limit: SessionLimit,
}

/// How many live sessions a user keeps when one more opens, and how the
/// others end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimit {
    /// Live sessions kept, the new one included: the most recently
    /// refreshed, the newest sign-in first among equals.
    pub keep: usize,
    /// Why the others ended (their `revoke_reason`).
    pub reason: &'static str,
    /// When the `sid` revocation entry of each ended session expires.
    pub entry_expires_at: UnixTime,
}

/// Accounts: users and their password hashes.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts the user unless its `username_key` exists; `false` if it did.
    async fn insert_user(&self, user: &User) -> Result<bool, StoreError>;

    async fn user_by_key(&self, username_key: &str) -> Result<Option<User>, StoreError>;

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError>;

    async fn set_password_hash(&self, user_id: Uuid, phc: &str) -> Result<(), StoreError>;

    /// Accounts matching `query`, ordered by `username_key` (the
    /// database's own ordering of text, the same one `after` compares
    /// with, so pages neither repeat nor skip).
    async fn users(&self, query: &UserQuery) -> Result<Vec<User>, StoreError>;

    /// Writes what an operator may change of an account: `roles`, `email`,
    /// `email_verified_at` and `disabled_at`, as `user` has them.
    async fn update_user(&self, user: &User) -> Result<UserUpdate, StoreError>;

    /// Ends the user's unrevoked sessions (recording a `sid` revocation
    /// entry expiring at `entry_expires_at` for each), then deletes the
    /// account with its sessions, account tokens and the throttle counter
    /// under `throttle_key`, in one transaction. The ended ids, or `None`
    /// if there was no such user.
    async fn delete_user(
        &self,
        user_id: Uuid,
        throttle_key: &str,
        now: UnixTime,
        entry_expires_at: UnixTime,
    ) -> Result<Option<Vec<Uuid>>, StoreError>;
}

/// What [`UserStore::update_user`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserUpdate {
    Updated,
    NotFound,
    /// Another account has the email's key; nothing changed.
    EmailTaken,
}

/// Invite codes for sign-up by invitation, kept only as hashes.
#[async_trait]
pub trait InviteStore: Send + Sync {
    /// Inserts an invite (also how a taken one is given back).
    async fn insert_invite(&self, invite: &StoredInvite) -> Result<(), StoreError>;

    /// Deletes and returns the invite with this hash if it has not expired
    /// at `now`: of any number of concurrent takers, one gets it.
    async fn take_invite(
        &self,
        code_hash: &[u8; 32],
        now: UnixTime,
    ) -> Result<Option<StoredInvite>, StoreError>;

    /// Deletes up to `batch` invites that expired by `before`; returns how
    /// many went.
    async fn prune_invites(&self, before: UnixTime, batch: usize) -> Result<usize, StoreError>;
}

/// One-time account tokens (password-reset and email-verification links),
/// kept only as hashes.
#[async_trait]
pub trait AccountTokenStore: Send + Sync {
    /// Inserts `token`, deleting the user's other tokens of its purpose in
    /// the same transaction: a newer link voids older ones.
    async fn issue_account_token(&self, token: &StoredAccountToken) -> Result<(), StoreError>;

    /// Deletes and returns the token with this hash and purpose if it has
    /// not expired at `now`: of any number of concurrent takers, one gets
    /// it.
    async fn take_account_token(
        &self,
        token_hash: &[u8; 32],
        purpose: AccountTokenPurpose,
        now: UnixTime,
    ) -> Result<Option<StoredAccountToken>, StoreError>;

    /// Deletes up to `batch` tokens that expired by `before`; returns how
    /// many went.
    async fn prune_account_tokens(
        &self,
        before: UnixTime,
        batch: usize,
    ) -> Result<usize, StoreError>;
}

/// The email address of an account and its verification.
#[async_trait]
pub trait AccountEmailStore: Send + Sync {
    /// Sets the account's address, unverified unless it is the one already
    /// verified; `false` if another account has it (or no account has
    /// `user_id`).
    async fn set_email(&self, user_id: Uuid, email: &Email) -> Result<bool, StoreError>;

    /// Marks the account's address verified at `at` if its key is still
    /// `email_key`; `false` if it is not (changed since, or no account).
    async fn mark_email_verified(
        &self,
        user_id: Uuid,
        email_key: &str,
        at: UnixTime,
    ) -> Result<bool, StoreError>;

    async fn user_by_email(&self, email_key: &str) -> Result<Option<User>, StoreError>;
}

/// The mail outbox: messages (and password-reset requests) waiting for a
/// node's mail worker, so a request never waits for a mail server and a
/// restart loses nothing. Several nodes may work one outbox: a claim is a
/// lease, and a message is held by at most one claim at a time.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    async fn enqueue_outbox(&self, message: &OutboxMessage) -> Result<(), StoreError>;

    /// Claims up to `batch` messages due at `now` (oldest due first) for
    /// `claim`: they are not due again until `lease_until`, when a claim
    /// whose holder died lapses. Concurrent claimers get disjoint messages.
    async fn claim_outbox(
        &self,
        claim: Uuid,
        now: UnixTime,
        lease_until: UnixTime,
        batch: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError>;

    /// Deletes a message `claim` holds (sent, or given up); `false` if the
    /// claim no longer holds it.
    async fn delete_outbox(&self, id: Uuid, claim: Uuid) -> Result<bool, StoreError>;

    /// Releases a message `claim` holds for another attempt at
    /// `next_attempt_at`, counting a failed attempt; `false` if the claim no
    /// longer holds it.
    async fn retry_outbox(
        &self,
        id: Uuid,
        claim: Uuid,
        next_attempt_at: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Messages in the outbox, claimed or not.
    async fn outbox_depth(&self) -> Result<u64, StoreError>;
}

/// Sessions: the rows refresh tokens rotate on, and their ending.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Inserts a session on its own; a sign-in opens one with
    /// [`SessionStore::open_session`].
    async fn insert_session(&self, session: &Session) -> Result<(), StoreError>;

    /// A sign-in's writes as one transaction, so one durable commit:
    /// inserts `opening.session`, appends `opening.audit`, gives the
    /// attempt back as [`SignInAttemptStore::clear_sign_in_failures`] and
    /// [`SignInAttemptStore::release_attempt`] do, and ends the user's live
    /// sessions beyond the `limit.keep` most recently refreshed (the newest
    /// sign-in first among equals) at the session's `created_at`, recording
    /// a `sid` revocation entry for each. Returns the ids it ended. If any
    /// step fails (e.g. the session's id exists), nothing is written.
    async fn open_session(&self, opening: &SessionOpening) -> Result<Vec<Uuid>, StoreError>;

    async fn session(&self, id: Uuid) -> Result<Option<Session>, StoreError>;

    /// The session and its user in one read: everything a refresh needs.
    async fn session_and_user(&self, id: Uuid) -> Result<Option<(Session, User)>, StoreError>;

    /// Compare-and-set rotation: moves the counter from `from_counter` to
    /// `from_counter + 1` and stamps `last_refreshed_at`, only if the session
    /// is not revoked and its counter is still `from_counter`; if it moved,
    /// appends `audit` to the audit log in the same transaction (one durable
    /// commit per rotation). `true` if it moved.
    async fn advance_session(
        &self,
        id: Uuid,
        from_counter: u64,
        now: UnixTime,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// The refresh's read and its rotation in one step where the backend
    /// can (PostgreSQL: one statement, one round trip): reads the session
    /// and its user and, if `guard` admits the session as read, advances
    /// it as [`Self::advance_session`] would, appending `audit` with the
    /// session's user as its `user_id`. Returns the session and user as
    /// they were before, and whether it moved. The default reads, then
    /// advances.
    async fn read_and_advance(
        &self,
        id: Uuid,
        guard: &RotationGuard,
        audit: &AuditEvent,
    ) -> Result<Option<(Session, User, bool)>, StoreError> {
        let Some((session, user)) = self.session_and_user(id).await? else {
            return Ok(None);
        };
        let moved = guard.admits(&session) && {
            let audit = AuditEvent {
                user_id: Some(session.user_id),
                ..audit.clone()
            };
            self.advance_session(id, guard.counter, guard.now, &audit)
                .await?
        };
        Ok(Some((session, user, moved)))
    }

    /// Marks the session revoked (if it is not already) and records the
    /// revocation entry for its access tokens, in one transaction. `true` if
    /// this call revoked it.
    async fn revoke_session(
        &self,
        id: Uuid,
        now: UnixTime,
        reason: &str,
        entry: &Revocation,
    ) -> Result<bool, StoreError>;

    /// The user's sessions that are neither revoked nor past `expires_at`.
    async fn live_sessions_of_user(
        &self,
        user_id: Uuid,
        now: UnixTime,
    ) -> Result<Vec<Session>, StoreError>;

    /// How many sessions, of all users, are neither revoked nor past
    /// `expires_at` at `now`: for the live-sessions gauge, read
    /// periodically, never per request.
    async fn count_live_sessions(&self, now: UnixTime) -> Result<u64, StoreError>;

    /// Whether the user has a session from `ip` that is neither revoked nor
    /// past `expires_at` (sign-in throttling spares such an address).
    async fn has_live_session_from(
        &self,
        user_id: Uuid,
        ip: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Revokes every unrevoked session of the user except `except`, recording
    /// a `sid` revocation entry expiring at `entry_expires_at` for each, in
    /// one transaction. Returns the ids revoked.
    async fn revoke_sessions_of_user(
        &self,
        user_id: Uuid,
        except: Option<Uuid>,
        now: UnixTime,
        reason: &str,
        entry_expires_at: UnixTime,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// Deletes expired revocation entries and ended sessions, a batch at a
    /// time; returns how many rows went.
    async fn prune(&self, before: PruneBefore) -> Result<usize, StoreError>;
}

/// The revocation set and the feed other nodes and resource servers follow.
#[async_trait]
pub trait RevocationStore: Send + Sync {
    async fn insert_revocation(&self, entry: &Revocation) -> Result<(), StoreError>;

    /// Entries that have not yet expired at `now`.
    async fn live_revocations(&self, now: UnixTime) -> Result<Vec<Revocation>, StoreError>;

    /// Up to `limit` (at least 1) entries of the revocation feed in feed
    /// order, with the cursor to go on from, read consistently.
    /// [`FeedRead::Snapshot`] pages hold only entries live at `now`; their
    /// last page's cursor is where following starts, and any page's cursor
    /// can be followed from instead (a reader that stops paging misses
    /// nothing, it reads expired entries too). `Ok(None)` when a
    /// cursor is negative or beyond the newest entry, or (following only)
    /// older than what pruning kept: the reader must take a new snapshot
    /// rather than silently miss entries.
    async fn revocation_feed(
        &self,
        read: FeedRead,
        now: UnixTime,
        limit: usize,
    ) -> Result<Option<FeedPage>, StoreError>;
}

/// Sign-in throttling counters.
#[async_trait]
pub trait SignInAttemptStore: Send + Sync {
    /// The sign-in throttling counters of those `keys` that have one.
    async fn throttle_entries(&self, keys: &[String]) -> Result<Vec<ThrottleEntry>, StoreError>;

    /// Throttling as one atomic step, never check-then-act: if no key of
    /// `keys` is blocked at `now`, counts one attempt under each as its
    /// rule says ([`ThrottleRule::count_attempt`]) and answers `Admitted`
    /// with the counters after; otherwise counts nothing and answers
    /// `Refused` with the counters as they are.
    async fn reserve_attempt(
        &self,
        keys: &[(String, ThrottleRule)],
        now: UnixTime,
    ) -> Result<Admission, StoreError>;

    /// Takes back the attempt `reserved` counted (it succeeded): the count
    /// drops by one; if no attempt was counted under the key since, the
    /// block `reserved` set is lifted too (the block in force before it had
    /// ended, or the attempt would not have been admitted), else blocks stay.
    async fn release_attempt(&self, reserved: &ThrottleEntry) -> Result<(), StoreError>;

    /// Deletes `key`'s counter; `true` if there was one.
    async fn clear_sign_in_failures(&self, key: &str) -> Result<bool, StoreError>;

    /// Deletes up to `batch` counters whose last failure was before `before`
    /// and whose block ended by `now`; returns how many went.
    async fn prune_sign_in_failures(
        &self,
        before: UnixTime,
        now: UnixTime,
        batch: usize,
    ) -> Result<usize, StoreError>;
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an event to the audit log.
    async fn insert_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// Deletes up to `batch` audit events older than `before`; returns how
    /// many went.
    async fn prune_audit_events(&self, before: UnixTime, batch: usize)
        -> Result<usize, StoreError>;

    /// The newest `query.limit` events matching `query`, oldest first.
    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError>;
}

/// OAuth clients.
#[async_trait]
pub trait ClientStore: Send + Sync {
    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError>;

    async fn clients(&self) -> Result<Vec<Client>, StoreError>;

    /// Inserts a client unless its id exists; `false` if it did.
    async fn insert_client(&self, client: &Client) -> Result<bool, StoreError>;

    /// Inserts or replaces a client (clients declared in the config file).
    async fn upsert_client(&self, client: &Client) -> Result<(), StoreError>;

    /// `false` if there was no such client.
    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError>;

    /// `false` if there was no such client.
    async fn set_client_secret(
        &self,
        client_id: &str,
        secret_hash: &[u8],
    ) -> Result<bool, StoreError>;
}

/// Signing keys and their rotation, in two lineages (`StoredKey::purpose`)
/// whose states are kept apart.
#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Every key of both lineages.
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError>;

    async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), StoreError>;

    /// Inserts the key unless its lineage (`purpose`) already has a key in
    /// the same state (so nodes starting at once, or creating the ID-token
    /// lineage at once, create one current and one next key of it between
    /// them); `false` if it had.
    async fn insert_signing_key_if_none(&self, key: &StoredKey) -> Result<bool, StoreError>;

    /// Rotation of `new_next`'s lineage (`purpose`) as one compare-and-set:
    /// only if `expected_current_kid` is still that lineage's current key
    /// and the lineage has a next key, every current key of the lineage
    /// becomes retired (`retired_at = now`), its oldest next key becomes
    /// current (`activated_at = now`) and `new_next` is inserted as next.
    /// The other lineage is untouched. `false`, changing nothing, if the
    /// expectation failed (someone else rotated, or the kid is not a
    /// current key of this lineage).
    async fn rotate_signing_keys(
        &self,
        expected_current_kid: &str,
        new_next: &StoredKey,
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Deletes retired keys (of either lineage) retired before `before`;
    /// returns how many went.
    async fn delete_retired_keys_before(&self, before: UnixTime) -> Result<usize, StoreError>;
}

/// The authorization-code flow's records: codes (hashes only) and users'
/// consents to third-party clients.
#[async_trait]
pub trait AuthorizationStore: Send + Sync {
    async fn insert_authorization_code(
        &self,
        code: &StoredAuthorizationCode,
    ) -> Result<(), StoreError>;
    /// Marks the code redeemed at `now` in one atomic step: of two requests
    /// presenting it, exactly one gets [`CodeRedemption::First`].
    async fn redeem_authorization_code(
        &self,
        code_hash: &[u8; 32],
        now: UnixTime,
    ) -> Result<CodeRedemption, StoreError>;
    /// Deletes up to `batch` codes that expired before `before`.
    async fn prune_authorization_codes(
        &self,
        before: UnixTime,
        batch: usize,
    ) -> Result<usize, StoreError>;
    async fn consent(&self, user_id: Uuid, client_id: &str) -> Result<Option<Consent>, StoreError>;
    /// Inserts or replaces the user's consent to the client.
    async fn save_consent(&self, consent: &Consent) -> Result<(), StoreError>;
    /// Ordered by client id.
    async fn consents_of_user(&self, user_id: Uuid) -> Result<Vec<Consent>, StoreError>;
    async fn withdraw_consent(&self, user_id: Uuid, client_id: &str) -> Result<bool, StoreError>;
}

/// Whether the database can serve requests, for the readiness probe.
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Succeeds if the database answers and accepts writes now: SQLite
    /// takes the write lock through its writer and commits nothing;
    /// PostgreSQL runs `SELECT 1` on a pooled connection. The caller bounds
    /// the wait.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Everything a server needs: one database behind every capability. Code
/// that needs only some capabilities takes only their traits, so a test
/// store implements only what its test uses.
pub trait Store:
    UserStore
    + AccountTokenStore
    + InviteStore
    + AccountEmailStore
    + OutboxStore
    + SessionStore
    + RevocationStore
    + SignInAttemptStore
    + AuditStore
    + ClientStore
    + SigningKeyStore
    + AuthorizationStore
    + HealthStore
{
}

impl<T> Store for T where
    T: UserStore
        + AccountTokenStore
        + InviteStore
        + AccountEmailStore
        + OutboxStore
        + SessionStore
        + RevocationStore
        + SignInAttemptStore
        + AuditStore
        + ClientStore
        + SigningKeyStore
        + AuthorizationStore
        + HealthStore
{
}
