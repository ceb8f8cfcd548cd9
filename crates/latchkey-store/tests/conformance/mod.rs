//! The `Store` conformance suite: the contract of every `Store` method,
//! checked against real behaviour, written once for every backend.
//!
//! A backend's test file implements [`Backend`] (how to open *its* database)
//! and invokes [`store_conformance_tests!`], which generates one
//! `#[tokio::test]` per contract, so every backend runs exactly the same
//! list:
//!
//! ```ignore
//! mod conformance;
//! struct MyBackend { /* one isolated database */ }
//! impl conformance::Backend for MyBackend { /* ... */ }
//! conformance::store_conformance_tests!(MyBackend::new());
//! ```
//!
//! Each contract takes a fresh backend (one empty database per test). The
//! durability contracts open that database more than once, dropping every
//! earlier handle first.
//!
//! One contract is not in the macro's list and is called explicitly:
//! [`concurrent_first_opens_share_one_schema`], for several nodes starting
//! at once on one fresh database (required of PostgreSQL by docs/ARCHITECTURE.md, Storage and durability).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use latchkey_core::audit::{AuditEvent, AuditKind, AuditQuery, Outcome};
use latchkey_core::clock::UnixTime;
use latchkey_core::email::Email;
use latchkey_core::model::{
    AccountTokenPurpose, KeyPurpose, KeyState, OutboxKind, OutboxMessage, Session,
    StoredAccountToken, StoredKey, User,
};
use latchkey_core::rotation::RefreshRules;
use latchkey_core::store::{
    Admission, AttemptTakeBack, FeedPage, FeedRead, PruneBefore, Revocation, RevocationKind,
    RotationGuard, SessionLimit, SessionOpening, Store, StoreError, ThrottleEntry, ThrottleRule,
};
use tokio::sync::Barrier;
use uuid::Uuid;

mod admin;
mod authorization;
mod signing_keys;
pub use admin::*;
pub use authorization::*;
pub use signing_keys::*;

/// One isolated database for one test.
pub trait Backend {
    /// Opens this test's database: empty on the first call, the same
    /// database (with everything acknowledged so far) on every later call.
    fn open(&self) -> impl Future<Output = Arc<dyn Store>>;
}

/// Generates one `#[tokio::test]` per contract of this suite (all but
/// [`concurrent_first_opens_share_one_schema`]), each given a fresh backend
/// built by evaluating `$backend`. The module that invokes it must have
/// declared `mod conformance;` at its crate root.
macro_rules! store_conformance_tests {
    ($backend:expr) => {
        $crate::conformance::store_conformance_tests!(@each $backend;
            insert_user_is_unique_by_username_key,
            user_round_trips_every_field,
            set_password_hash_changes_only_the_hash,
            session_round_trips_every_field,
            advance_session_is_compare_and_set,
            advance_session_refuses_revoked_session,
            advance_session_appends_its_audit_row_only_when_it_moves,
            read_and_advance_moves_exactly_when_the_guard_admits,
            count_live_sessions_counts_every_users_unrevoked_unexpired_sessions,
            ping_answers_on_an_open_store,
            concurrent_advance_session_has_exactly_one_winner,
            revoke_session_happens_once,
            concurrent_revoke_session_has_exactly_one_winner,
            live_revocations_excludes_expired_entries,
            live_sessions_of_user_lists_only_that_users_live_sessions,
            has_live_session_from_sees_only_live_sessions_of_that_user_and_address,
            revoke_sessions_of_user_revokes_each_unrevoked_session_once,
            concurrent_revoke_sessions_of_user_never_revokes_twice,
            revocation_feed_snapshot_holds_every_live_entry,
            revocation_feed_pages_return_each_entry_once_in_order,
            revocation_feed_snapshot_pages_miss_nothing_recorded_between_them,
            revocation_feed_refuses_cursor_beyond_newest,
            revocation_feed_refuses_cursor_older_than_pruned,
            revocation_feed_snapshot_and_tail_lose_nothing_under_concurrent_inserts,
            prune_deletes_expired_rows_in_batches,
            prune_leaves_live_rows_alone,
            signing_keys_round_trip_and_kid_is_unique,
            concurrent_mixed_writes_are_all_visible,
            acknowledged_writes_survive_reopen,
            failing_write_fails_alone_in_its_batch,
            reopen_keeps_data_and_schema,
            attempts_are_counted_refused_while_blocked_and_decay,
            a_refused_attempt_counts_under_no_key,
            concurrent_attempts_admit_at_most_the_allowance,
            released_attempts_are_taken_back_with_the_block_they_set,
            sign_in_failures_clear_and_prune,
            attempts_follow_the_rule_core_defines,
            audit_events_round_trip_and_filter,
            audit_events_are_pruned_by_age_in_batches,
            open_session_writes_the_session_its_audit_row_and_gives_the_attempt_back,
            open_session_ends_the_least_recently_used_beyond_the_limit,
            open_session_writes_nothing_when_its_session_cannot_be_inserted,
            concurrent_open_sessions_and_reservations_of_the_same_keys_all_complete,
            clients_round_trip_every_field,
            signing_keys_are_listed_oldest_first_then_by_kid_bytes,
            rotation_promotes_the_oldest_next_key,
            two_key_lineages_coexist_and_each_inserts_one_key_per_state,
            rotating_one_lineage_leaves_the_other_untouched,
            racing_inserts_make_one_key_per_lineage_and_state,
            racing_rotations_rotate_each_lineage_once,
            account_tokens_are_single_use_expire_and_void_older_ones,
            users_are_paged_by_username_key_and_filtered_by_substring,
            update_user_writes_roles_email_and_disabled_and_refuses_a_taken_email,
            delete_user_ends_sessions_then_removes_the_account_and_its_rows,
            invites_are_taken_once_before_they_expire_can_be_given_back_and_are_pruned,
            email_addresses_are_unique_and_verified_only_while_unchanged,
            outbox_claims_are_leases_and_deleted_or_retried_by_their_holder,
            concurrent_outbox_claimers_get_disjoint_messages,
            authorization_codes_are_redeemed_once_and_replays_recognised,
            consents_are_per_user_and_client_and_go_with_the_account,
        );
    };
    (@each $backend:expr; $($contract:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $contract() {
                let backend = $backend;
                $crate::conformance::$contract(&backend).await;
            }
        )*
    };
}
pub(crate) use store_conformance_tests;

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// An arbitrary fixed "now" (2023-11-14T22:13:20Z).
const T0: UnixTime = 1_700_000_000;
const DAY: i64 = 86_400;

fn user(key: &str) -> User {
    User {
        id: Uuid::new_v4(),
        username: format!("Zoë {key}"),
        username_key: key.to_owned(),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdC17a2V5fQ${key}"),
        roles: vec!["user".to_owned()],
        created_at: T0,
        email: None,
        email_verified_at: None,
        disabled_at: None,
    }
}

fn session(user_id: Uuid) -> Session {
    Session {
        id: Uuid::new_v4(),
        user_id,
        client_id: "web".to_owned(),
        audience: "api".to_owned(),
        scope: "read write".to_owned(),
        counter: 0,
        created_at: T0,
        last_refreshed_at: T0,
        expires_at: T0 + 30 * DAY,
        user_agent: Some("Mozilla/5.0 (conformance)".to_owned()),
        ip: Some("192.0.2.7".to_owned()),
        revoked_at: None,
        revoke_reason: None,
    }
}

fn signing_key(kid: &str, state: KeyState) -> StoredKey {
    // NUL and high bytes: the key material must round-trip as bytes.
    let mut sealed = vec![0x00, 0xff, 0x00, 0x80];
    sealed.extend_from_slice(kid.as_bytes());
    let mut public = vec![0xfe, 0x00];
    public.extend_from_slice(kid.as_bytes());
    StoredKey {
        kid: kid.to_owned(),
        alg: "EdDSA".to_owned(),
        state,
        purpose: KeyPurpose::Access,
        sealed_private_key: sealed,
        public_key: public,
        created_at: T0,
        activated_at: (state == KeyState::Current).then_some(T0 + 1),
        retired_at: (state == KeyState::Retired).then_some(T0 + 2),
    }
}

fn sid_entry(session_id: Uuid, expires_at: UnixTime) -> Revocation {
    Revocation {
        kind: RevocationKind::Session,
        id: session_id.to_string(),
        expires_at,
    }
}

/// Revocations in a canonical order, for comparing sets.
/// The audit event a rotation of session `id` at `at` appends.
fn refreshed(id: Uuid, at: UnixTime) -> AuditEvent {
    AuditEvent {
        at,
        kind: AuditKind::Refresh,
        outcome: Outcome::Success,
        user_id: None,
        session_id: Some(id),
        ip: Some("192.0.2.1".into()),
        count: 1,
        request_id: Some(format!("refresh-{id}")),
        actor: None,
    }
}

fn sorted(mut entries: Vec<Revocation>) -> Vec<Revocation> {
    entries.sort_by(|a, b| {
        (a.kind.as_str(), &a.id, a.expires_at).cmp(&(b.kind.as_str(), &b.id, b.expires_at))
    });
    entries
}

fn sorted_keys(mut keys: Vec<StoredKey>) -> Vec<StoredKey> {
    keys.sort_by(|a, b| a.kid.cmp(&b.kid));
    keys
}

async fn must_insert_user(store: &dyn Store, u: &User) {
    assert!(
        store.insert_user(u).await.expect("insert_user"),
        "insert_user of a new username_key must return true"
    );
}

async fn get_session(store: &dyn Store, id: Uuid) -> Session {
    store
        .session(id)
        .await
        .expect("session")
        .expect("session must exist")
}

async fn live(store: &dyn Store, now: UnixTime) -> Vec<Revocation> {
    sorted(store.live_revocations(now).await.expect("live_revocations"))
}

/// Asserts that `result` is a non-retryable error: a write that breaks a
/// constraint will never succeed, so it must not look `Unavailable`.
fn assert_rejected<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Backend(_)) => {}
        other => panic!("{what}: expected Err(StoreError::Backend(_)), got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

/// `insert_user` returns `true` for a new `username_key` and `false` (without
/// touching anything) for one that exists, whatever the new user's id.
pub async fn insert_user_is_unique_by_username_key(backend: &impl Backend) {
    let store = backend.open().await;
    let first = user("alice");
    must_insert_user(&*store, &first).await;

    let mut second = user("alice");
    second.username = "ALICE".to_owned();
    second.password_hash = "$argon2id$other".to_owned();
    second.roles = vec!["admin".to_owned()];
    assert_ne!(first.id, second.id);
    assert!(
        !store.insert_user(&second).await.expect("insert_user"),
        "insert_user of an existing username_key must return false"
    );

    assert_eq!(
        store.user_by_key("alice").await.expect("user_by_key"),
        Some(first.clone()),
        "the existing user must be unchanged"
    );
    assert_eq!(
        store.user_by_id(second.id).await.expect("user_by_id"),
        None,
        "the refused user must not exist under its id"
    );

    // A different key is still accepted.
    must_insert_user(&*store, &user("bob")).await;
}

/// `user_by_key` and `user_by_id` return every field as inserted, including
/// the roles (none, one, several, in order); unknown key or id → `None`.
pub async fn user_round_trips_every_field(backend: &impl Backend) {
    let store = backend.open().await;

    let mut many_roles = user("carol");
    many_roles.username = "Carol Ünïcödé 🙂".to_owned();
    many_roles.roles = vec![
        "user".to_owned(),
        "admin".to_owned(),
        "role with \"quotes\", commas".to_owned(),
    ];
    many_roles.created_at = T0 - 12_345;
    many_roles.email = Some(Email {
        address: "Carol@Example.com".to_owned(),
        key: "carol@example.com".to_owned(),
    });
    many_roles.email_verified_at = Some(T0 - 10);
    many_roles.disabled_at = Some(T0 - 5);
    let mut no_roles = user("dave");
    no_roles.roles = Vec::new();

    for u in [&many_roles, &no_roles] {
        must_insert_user(&*store, u).await;
    }
    for u in [&many_roles, &no_roles] {
        assert_eq!(
            store
                .user_by_key(&u.username_key)
                .await
                .expect("user_by_key"),
            Some(u.clone())
        );
        assert_eq!(
            store.user_by_id(u.id).await.expect("user_by_id"),
            Some(u.clone())
        );
    }

    assert_eq!(
        store.user_by_key("nobody").await.expect("user_by_key"),
        None
    );
    assert_eq!(
        store.user_by_id(Uuid::new_v4()).await.expect("user_by_id"),
        None
    );
    // Lookup by key is exact: the display name is not a key.
    assert_eq!(
        store
            .user_by_key(&many_roles.username)
            .await
            .expect("user_by_key"),
        None
    );
}

/// `set_password_hash` replaces that user's hash and nothing else, and no
/// other user's.
pub async fn set_password_hash_changes_only_the_hash(backend: &impl Backend) {
    let store = backend.open().await;
    let mut target = user("erin");
    target.roles = vec!["user".to_owned(), "admin".to_owned()];
    let bystander = user("frank");
    must_insert_user(&*store, &target).await;
    must_insert_user(&*store, &bystander).await;

    let new_hash = "$argon2id$v=19$m=65536,t=3,p=4$bmV3c2FsdA$bmV3aGFzaA";
    store
        .set_password_hash(target.id, new_hash)
        .await
        .expect("set_password_hash");

    let expected = User {
        password_hash: new_hash.to_owned(),
        ..target.clone()
    };
    assert_eq!(
        store.user_by_id(target.id).await.expect("user_by_id"),
        Some(expected.clone())
    );
    assert_eq!(
        store.user_by_key("erin").await.expect("user_by_key"),
        Some(expected)
    );
    assert_eq!(
        store.user_by_id(bystander.id).await.expect("user_by_id"),
        Some(bystander)
    );

    // For an unknown user it creates nothing (whether it reports an error is
    // left to the backend).
    let ghost = Uuid::new_v4();
    let _ = store.set_password_hash(ghost, new_hash).await;
    assert_eq!(store.user_by_id(ghost).await.expect("user_by_id"), None);
}

// ---------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------

/// `session` and `session_and_user` return every field as inserted, with the
/// optional fields both set and unset; unknown id → `None`.
pub async fn session_round_trips_every_field(backend: &impl Backend) {
    let store = backend.open().await;
    let mut owner = user("grace");
    owner.roles = vec!["user".to_owned(), "support".to_owned()];
    must_insert_user(&*store, &owner).await;

    let mut all_set = session(owner.id);
    all_set.client_id = "cli:tool/1".to_owned();
    all_set.counter = 41;
    all_set.created_at = T0 - 100;
    all_set.last_refreshed_at = T0 - 10;
    all_set.expires_at = T0 + 7 * DAY;
    all_set.user_agent = Some("curl/8.5.0 — ünïcode".to_owned());
    all_set.ip = Some("2001:db8::1".to_owned());
    all_set.revoked_at = Some(T0 - 5);
    all_set.revoke_reason = Some("admin".to_owned());

    let none_set = Session {
        user_agent: None,
        ip: None,
        revoked_at: None,
        revoke_reason: None,
        ..session(owner.id)
    };

    // A large counter must survive too.
    let big_counter = Session {
        counter: u64::from(u32::MAX) + 17,
        ..session(owner.id)
    };

    for s in [&all_set, &none_set, &big_counter] {
        store.insert_session(s).await.expect("insert_session");
    }
    for s in [&all_set, &none_set, &big_counter] {
        assert_eq!(store.session(s.id).await.expect("session"), Some(s.clone()));
        assert_eq!(
            store
                .session_and_user(s.id)
                .await
                .expect("session_and_user"),
            Some((s.clone(), owner.clone()))
        );
    }

    let unknown = Uuid::new_v4();
    assert_eq!(store.session(unknown).await.expect("session"), None);
    assert_eq!(
        store
            .session_and_user(unknown)
            .await
            .expect("session_and_user"),
        None
    );
    // A user id is not a session id.
    assert_eq!(store.session(owner.id).await.expect("session"), None);
}

/// `advance_session` moves the counter by exactly one and stamps
/// `last_refreshed_at`, only from the current counter; any other
/// `from_counter` (or an unknown session) → `false` and nothing changes.
pub async fn advance_session_is_compare_and_set(backend: &impl Backend) {
    let store = backend.open().await;
    let owner = user("heidi");
    must_insert_user(&*store, &owner).await;
    let original = Session {
        counter: 7,
        ..session(owner.id)
    };
    let bystander = Session {
        counter: 7,
        ..session(owner.id)
    };
    store.insert_session(&original).await.expect("insert");
    store.insert_session(&bystander).await.expect("insert");

    for stale in [0, 6, 8, 9, u64::from(u32::MAX)] {
        assert!(
            !store
                .advance_session(original.id, stale, T0 + 1, &refreshed(original.id, T0 + 1))
                .await
                .expect("advance_session"),
            "advance from {stale} must fail while the counter is 7"
        );
    }
    assert_eq!(get_session(&*store, original.id).await, original);

    assert!(store
        .advance_session(original.id, 7, T0 + 60, &refreshed(original.id, T0 + 60))
        .await
        .expect("advance_session"));
    let after_one = Session {
        counter: 8,
        last_refreshed_at: T0 + 60,
        ..original.clone()
    };
    assert_eq!(get_session(&*store, original.id).await, after_one);

    // Replaying the same step fails and changes nothing.
    assert!(!store
        .advance_session(original.id, 7, T0 + 120, &refreshed(original.id, T0 + 120))
        .await
        .expect("advance_session"));
    assert_eq!(get_session(&*store, original.id).await, after_one);

    // The next step works from the new counter.
    assert!(store
        .advance_session(original.id, 8, T0 + 180, &refreshed(original.id, T0 + 180))
        .await
        .expect("advance_session"));
    let after_two = Session {
        counter: 9,
        last_refreshed_at: T0 + 180,
        ..original.clone()
    };
    assert_eq!(get_session(&*store, original.id).await, after_two);
    let (s, u) = store
        .session_and_user(original.id)
        .await
        .expect("session_and_user")
        .expect("exists");
    assert_eq!((s, u), (after_two, owner));

    // Other sessions are untouched; unknown sessions do not advance.
    assert_eq!(get_session(&*store, bystander.id).await, bystander);
    let unknown = Uuid::new_v4();
    assert!(!store
        .advance_session(unknown, 0, T0, &refreshed(unknown, T0))
        .await
        .expect("advance_session"));
    assert_eq!(store.session(unknown).await.expect("session"), None);
}

/// A revoked session never advances, even from its current counter.
pub async fn advance_session_refuses_revoked_session(backend: &impl Backend) {
    let store = backend.open().await;
    let owner = user("ivan");
    must_insert_user(&*store, &owner).await;

    // Revoked through the store...
    let s = Session {
        counter: 3,
        ..session(owner.id)
    };
    store.insert_session(&s).await.expect("insert");
    assert!(store
        .revoke_session(s.id, T0 + 5, "logout", &sid_entry(s.id, T0 + 900))
        .await
        .expect("revoke_session"));
    let revoked = get_session(&*store, s.id).await;
    assert!(!store
        .advance_session(s.id, 3, T0 + 10, &refreshed(s.id, T0 + 10))
        .await
        .expect("advance_session"));
    assert_eq!(get_session(&*store, s.id).await, revoked);
    assert_eq!(revoked.counter, 3);
    assert_eq!(revoked.last_refreshed_at, T0);

    // ...or inserted already revoked.
    let born_revoked = Session {
        counter: 5,
        revoked_at: Some(T0),
        revoke_reason: Some("reuse".to_owned()),
        ..session(owner.id)
    };
    store.insert_session(&born_revoked).await.expect("insert");
    assert!(!store
        .advance_session(
            born_revoked.id,
            5,
            T0 + 10,
            &refreshed(born_revoked.id, T0 + 10)
        )
        .await
        .expect("advance_session"));
    assert_eq!(get_session(&*store, born_revoked.id).await, born_revoked);
}

/// The rotation and its audit row are one write: the row is there exactly
/// when the counter moved, whoever lost the compare-and-set left none.
pub async fn advance_session_appends_its_audit_row_only_when_it_moves(backend: &impl Backend) {
    let store = backend.open().await;
    let owner = user("judy");
    must_insert_user(&*store, &owner).await;
    let s = session(owner.id);
    store.insert_session(&s).await.expect("insert");
    let audited = || async {
        store
            .audit_events(&AuditQuery {
                user_id: None,
                since: None,
                limit: 100,
            })
            .await
            .expect("audit_events")
    };

    assert!(store
        .advance_session(s.id, 0, T0 + 10, &refreshed(s.id, T0 + 10))
        .await
        .expect("advance_session"));
    assert_eq!(audited().await, [refreshed(s.id, T0 + 10)]);

    // A stale counter moves nothing and records nothing.
    assert!(!store
        .advance_session(s.id, 0, T0 + 20, &refreshed(s.id, T0 + 20))
        .await
        .expect("advance_session"));
    assert_eq!(audited().await, [refreshed(s.id, T0 + 10)]);

    assert!(store
        .advance_session(s.id, 1, T0 + 30, &refreshed(s.id, T0 + 30))
        .await
        .expect("advance_session"));
    assert_eq!(
        audited().await,
        [refreshed(s.id, T0 + 10), refreshed(s.id, T0 + 30)]
    );
}

/// 50 concurrent `advance_session` calls from the same counter: exactly one
/// returns `true`, the counter moves by exactly one, and `last_refreshed_at`
/// is the winner's `now`. Repeated over several rounds.
pub async fn concurrent_advance_session_has_exactly_one_winner(backend: &impl Backend) {
    const RACERS: usize = 50;
    const ROUNDS: u64 = 5;
    let store = backend.open().await;
    let owner = user("judy");
    must_insert_user(&*store, &owner).await;
    let s = Session {
        counter: 100,
        ..session(owner.id)
    };
    store.insert_session(&s).await.expect("insert");

    for round in 0..ROUNDS {
        let from = s.counter + round;
        let start = Arc::new(Barrier::new(RACERS));
        let tasks: Vec<_> = (0..RACERS)
            .map(|i| {
                let store = Arc::clone(&store);
                let start = Arc::clone(&start);
                // A distinct `now` per racer tells who won.
                let now = T0 + 1_000 * (round as i64 + 1) + i as i64;
                tokio::spawn(async move {
                    start.wait().await;
                    let won = store
                        .advance_session(s.id, from, now, &refreshed(s.id, now))
                        .await;
                    (now, won)
                })
            })
            .collect();

        let mut winners = Vec::new();
        for task in tasks {
            let (now, won) = task.await.expect("racer task");
            if won.expect("advance_session must not fail under contention") {
                winners.push(now);
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one of {RACERS} concurrent advances from {from} must win, \
             winners at {winners:?}"
        );
        let after = get_session(&*store, s.id).await;
        assert_eq!(after.counter, from + 1, "round {round}");
        assert_eq!(after.last_refreshed_at, winners[0], "round {round}");
    }
    let expected = Session {
        counter: s.counter + ROUNDS,
        last_refreshed_at: get_session(&*store, s.id).await.last_refreshed_at,
        ..s.clone()
    };
    assert_eq!(get_session(&*store, s.id).await, expected);
}

/// `revoke_session`: the first call returns `true`, stamps `revoked_at` and
/// `revoke_reason` (nothing else) and records its entry; a second call
/// returns `false`, keeps the first stamp and records nothing; an unknown
/// session → `false`, nothing recorded.
pub async fn revoke_session_happens_once(backend: &impl Backend) {
    let store = backend.open().await;
    let owner = user("mallory");
    must_insert_user(&*store, &owner).await;
    let s = Session {
        counter: 4,
        last_refreshed_at: T0 + 30,
        ..session(owner.id)
    };
    let bystander = session(owner.id);
    store.insert_session(&s).await.expect("insert");
    store.insert_session(&bystander).await.expect("insert");
    assert_eq!(live(&*store, T0).await, Vec::new());

    let entry = sid_entry(s.id, T0 + 900);
    assert!(store
        .revoke_session(s.id, T0 + 50, "logout", &entry)
        .await
        .expect("revoke_session"));
    let revoked = Session {
        revoked_at: Some(T0 + 50),
        revoke_reason: Some("logout".to_owned()),
        ..s.clone()
    };
    assert_eq!(get_session(&*store, s.id).await, revoked);
    assert_eq!(
        store
            .session_and_user(s.id)
            .await
            .expect("session_and_user"),
        Some((revoked.clone(), owner.clone()))
    );
    assert_eq!(live(&*store, T0 + 50).await, vec![entry.clone()]);

    // Second revocation: refused, first stamp kept, no second entry.
    let second_entry = Revocation {
        expires_at: T0 + 1_800,
        ..entry.clone()
    };
    assert!(!store
        .revoke_session(s.id, T0 + 70, "admin", &second_entry)
        .await
        .expect("revoke_session"));
    assert_eq!(get_session(&*store, s.id).await, revoked);
    assert_eq!(live(&*store, T0 + 70).await, vec![entry.clone()]);

    // Unknown session: refused, nothing recorded.
    let unknown = Uuid::new_v4();
    assert!(!store
        .revoke_session(unknown, T0 + 80, "logout", &sid_entry(unknown, T0 + 900))
        .await
        .expect("revoke_session"));
    assert_eq!(store.session(unknown).await.expect("session"), None);
    assert_eq!(live(&*store, T0 + 80).await, vec![entry]);

    assert_eq!(get_session(&*store, bystander.id).await, bystander);
}

/// 20 concurrent revocations of one session: exactly one wins and exactly one
/// entry is recorded, the winner's.
pub async fn concurrent_revoke_session_has_exactly_one_winner(backend: &impl Backend) {
    const RACERS: usize = 20;
    let store = backend.open().await;
    let owner = user("niaj");
    must_insert_user(&*store, &owner).await;
    let s = session(owner.id);
    store.insert_session(&s).await.expect("insert");

    let start = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            let now = T0 + i as i64;
            let reason = format!("reason-{i}");
            let entry = sid_entry(s.id, T0 + 900 + i as i64);
            tokio::spawn(async move {
                start.wait().await;
                let won = store.revoke_session(s.id, now, &reason, &entry).await;
                (now, reason, entry, won)
            })
        })
        .collect();

    let mut winners = Vec::new();
    for task in tasks {
        let (now, reason, entry, won) = task.await.expect("racer task");
        if won.expect("revoke_session must not fail under contention") {
            winners.push((now, reason, entry));
        }
    }
    assert_eq!(winners.len(), 1, "exactly one revocation must win");
    let (now, reason, entry) = winners.remove(0);
    assert_eq!(
        get_session(&*store, s.id).await,
        Session {
            revoked_at: Some(now),
            revoke_reason: Some(reason),
            ..s.clone()
        }
    );
    assert_eq!(live(&*store, T0).await, vec![entry]);
}

// ---------------------------------------------------------------------------
// Revocation set
// ---------------------------------------------------------------------------

/// `live_revocations(now)` returns exactly the entries with
/// `expires_at > now`, of both kinds, with every field.
pub async fn live_revocations_excludes_expired_entries(backend: &impl Backend) {
    let store = backend.open().await;
    let now = T0 + 1_000;
    assert_eq!(live(&*store, now).await, Vec::new());

    let entry = |kind, id: &str, expires_at| Revocation {
        kind,
        id: id.to_owned(),
        expires_at,
    };
    let long_gone = entry(RevocationKind::Token, "jti-long-gone", now - DAY);
    let just_gone = entry(RevocationKind::Session, "sid-just-gone", now - 1);
    let at_now = entry(RevocationKind::Token, "jti-at-now", now);
    let next_second = entry(RevocationKind::Session, "sid-next-second", now + 1);
    let later = entry(RevocationKind::Token, "jti-later", now + 900);
    // Same id under both kinds, and the same id twice: all are kept.
    let later_sid = entry(RevocationKind::Session, "jti-later", now + 900);
    let later_again = entry(RevocationKind::Token, "jti-later", now + 1_800);
    let all = [
        &long_gone,
        &just_gone,
        &at_now,
        &next_second,
        &later,
        &later_sid,
        &later_again,
    ];
    for e in all {
        store.insert_revocation(e).await.expect("insert_revocation");
    }

    let cases = [
        (now - DAY - 1, all.iter().map(|e| (*e).clone()).collect()),
        (
            now,
            vec![
                next_second.clone(),
                later.clone(),
                later_sid.clone(),
                later_again.clone(),
            ],
        ),
        (
            now + 1,
            vec![later.clone(), later_sid.clone(), later_again.clone()],
        ),
        (now + 900, vec![later_again.clone()]),
        (now + 1_800, Vec::new()),
    ];
    for (at, expected) in cases {
        assert_eq!(
            live(&*store, at).await,
            sorted(expected),
            "live_revocations({at})"
        );
    }
}

// ---------------------------------------------------------------------------
// Sessions of a user
// ---------------------------------------------------------------------------

/// `live_sessions_of_user(user, now)` returns exactly that user's sessions
/// that are not revoked and whose `expires_at > now` (a session ending at
/// `now` is over), every field intact, ordered by `created_at`; other
/// users' sessions never appear, and an unknown user has none.
pub async fn live_sessions_of_user_lists_only_that_users_live_sessions(backend: &impl Backend) {
    let store = backend.open().await;
    let owner = user("ivan");
    let other = user("judith");
    let idle = user("ken");
    for u in [&owner, &other, &idle] {
        must_insert_user(&*store, u).await;
    }
    let now = T0 + DAY;

    // Inserted out of `created_at` order, with distinct `created_at`s.
    let newest = Session {
        created_at: T0 + 300,
        last_refreshed_at: T0 + 300,
        client_id: "newest".to_owned(),
        ..session(owner.id)
    };
    let oldest = Session {
        created_at: T0 - 300,
        last_refreshed_at: T0 + 50,
        counter: 12,
        user_agent: None,
        ip: None,
        client_id: "oldest".to_owned(),
        ..session(owner.id)
    };
    let middle = Session {
        created_at: T0,
        client_id: "middle".to_owned(),
        ..session(owner.id)
    };
    let ends_next_second = Session {
        created_at: T0 + 100,
        expires_at: now + 1,
        client_id: "ends-next-second".to_owned(),
        ..session(owner.id)
    };
    let ends_at_now = Session {
        created_at: T0 + 10,
        expires_at: now,
        ..session(owner.id)
    };
    let ended = Session {
        created_at: T0 - 30 * DAY,
        expires_at: now - DAY,
        ..session(owner.id)
    };
    let revoked = Session {
        created_at: T0 + 20,
        revoked_at: Some(T0 + 30),
        revoke_reason: Some("logout".to_owned()),
        ..session(owner.id)
    };
    let others_live = Session {
        created_at: T0 + 1,
        ..session(other.id)
    };
    for s in [
        &newest,
        &ends_at_now,
        &others_live,
        &oldest,
        &revoked,
        &ends_next_second,
        &ended,
        &middle,
    ] {
        store.insert_session(s).await.expect("insert_session");
    }

    assert_eq!(
        live_sessions(&*store, owner.id, now).await,
        vec![
            oldest.clone(),
            middle.clone(),
            ends_next_second.clone(),
            newest.clone()
        ],
        "live sessions of the owner at now, by created_at"
    );
    assert_eq!(
        live_sessions(&*store, owner.id, now - 1).await,
        vec![
            oldest.clone(),
            middle.clone(),
            ends_at_now.clone(),
            ends_next_second.clone(),
            newest.clone()
        ],
        "a second earlier the session ending at now is still live"
    );
    assert_eq!(
        live_sessions(&*store, owner.id, now + 1).await,
        vec![oldest.clone(), middle.clone(), newest.clone()],
        "a second later the session ending then is over"
    );
    assert_eq!(
        live_sessions(&*store, other.id, now).await,
        vec![others_live.clone()]
    );
    assert_eq!(live_sessions(&*store, idle.id, now).await, Vec::new());
    assert_eq!(
        live_sessions(&*store, Uuid::new_v4(), now).await,
        Vec::new()
    );
    // A session id is not a user id.
    assert_eq!(live_sessions(&*store, middle.id, now).await, Vec::new());

    // Revoking one takes it off the list, and only it.
    assert!(store
        .revoke_session(middle.id, now, "logout", &sid_entry(middle.id, now + 900))
        .await
        .expect("revoke_session"));
    assert_eq!(
        live_sessions(&*store, owner.id, now).await,
        vec![oldest, ends_next_second, newest]
    );
    assert_eq!(
        live_sessions(&*store, other.id, now).await,
        vec![others_live]
    );
}

/// `has_live_session_from(user, ip, now)` is true exactly when that user
/// has a session from exactly that address that is not revoked and whose
/// `expires_at > now`.
pub async fn has_live_session_from_sees_only_live_sessions_of_that_user_and_address(
    backend: &impl Backend,
) {
    let store = backend.open().await;
    let owner = user("lena");
    let other = user("mario");
    for u in [&owner, &other] {
        must_insert_user(&*store, u).await;
    }
    let now = T0 + DAY;
    let from = |ip: &str, expires_at| Session {
        ip: Some(ip.to_owned()),
        expires_at,
        ..session(owner.id)
    };
    let home = from("198.51.100.1", now + DAY);
    let ending = from("198.51.100.2", now + 1);
    let revoked = from("198.51.100.3", now + DAY);
    let others = Session {
        ip: Some("198.51.100.4".to_owned()),
        ..session(other.id)
    };
    let no_address = Session {
        ip: None,
        ..session(owner.id)
    };
    for s in [&home, &ending, &revoked, &others, &no_address] {
        store.insert_session(s).await.expect("insert_session");
    }
    assert!(store
        .revoke_session(revoked.id, now, "logout", &sid_entry(revoked.id, now + 900))
        .await
        .expect("revoke_session"));

    let has = |user_id, ip: &'static str, at| {
        let store = store.clone();
        async move {
            store
                .has_live_session_from(user_id, ip, at)
                .await
                .expect("has_live_session_from")
        }
    };
    assert!(has(owner.id, "198.51.100.1", now).await);
    assert!(has(owner.id, "198.51.100.2", now).await);
    assert!(!has(owner.id, "198.51.100.2", now + 1).await, "ended");
    assert!(!has(owner.id, "198.51.100.3", now).await, "revoked");
    assert!(!has(owner.id, "198.51.100.4", now).await, "another user's");
    assert!(has(other.id, "198.51.100.4", now).await);
    assert!(
        !has(owner.id, "198.51.100.10", now).await,
        "no prefix match"
    );
    assert!(!has(owner.id, "", now).await);
    assert!(!has(Uuid::nil(), "198.51.100.1", now).await, "unknown user");
}

/// `revoke_sessions_of_user(user, except, now, reason, entry_expires_at)`
/// revokes every unrevoked session of the user but `except` (even one whose
/// lifetime has ended: its access tokens may still be live), stamping
/// `revoked_at` and `revoke_reason` only, records exactly one `sid` entry
/// (expiring at `entry_expires_at`) per session it revoked, and returns
/// exactly those ids. Sessions already revoked are neither returned nor
/// given a second entry; other users' sessions are untouched. `None` spares
/// no session; a user with nothing to revoke gets `[]` and no entry.
pub async fn revoke_sessions_of_user_revokes_each_unrevoked_session_once(backend: &impl Backend) {
    let store = backend.open().await;
    let owner = user("laura");
    let other = user("mike");
    let idle = user("nora");
    for u in [&owner, &other, &idle] {
        must_insert_user(&*store, u).await;
    }
    let first = Session {
        counter: 3,
        last_refreshed_at: T0 + 40,
        ..session(owner.id)
    };
    let kept = Session {
        created_at: T0 + 1,
        ..session(owner.id)
    };
    let third = Session {
        created_at: T0 + 2,
        user_agent: None,
        ip: None,
        ..session(owner.id)
    };
    let ended = Session {
        created_at: T0 - 40 * DAY,
        expires_at: T0 - DAY,
        ..session(owner.id)
    };
    let already_revoked = Session {
        revoked_at: Some(T0 - 5),
        revoke_reason: Some("reuse".to_owned()),
        ..session(owner.id)
    };
    let others = [session(other.id), session(other.id)];
    for s in [&first, &kept, &third, &ended, &already_revoked]
        .into_iter()
        .chain(&others)
    {
        store.insert_session(s).await.expect("insert_session");
    }
    let before = snapshot(&*store, T0).await;
    assert_eq!(before.entries, Vec::new());

    // Everything but `kept`.
    let now = T0 + 100;
    let revoked = store
        .revoke_sessions_of_user(owner.id, Some(kept.id), now, "password-change", T0 + 900)
        .await
        .expect("revoke_sessions_of_user");
    assert_eq!(
        sorted_ids(revoked),
        sorted_ids(vec![first.id, third.id, ended.id]),
        "the ids revoked"
    );
    for s in [&first, &third, &ended] {
        assert_eq!(
            get_session(&*store, s.id).await,
            Session {
                revoked_at: Some(now),
                revoke_reason: Some("password-change".to_owned()),
                ..s.clone()
            }
        );
    }
    assert_eq!(get_session(&*store, kept.id).await, kept);
    assert_eq!(
        get_session(&*store, already_revoked.id).await,
        already_revoked
    );
    for s in &others {
        assert_eq!(get_session(&*store, s.id).await, s.clone());
    }
    let (recorded, cursor) = tail_all(&*store, before.cursor, 100, T0).await;
    assert_eq!(
        sorted(recorded),
        sorted(vec![
            sid_entry(first.id, T0 + 900),
            sid_entry(third.id, T0 + 900),
            sid_entry(ended.id, T0 + 900),
        ]),
        "one sid entry per session revoked, and no other"
    );
    assert_eq!(
        live(&*store, T0 + 899).await,
        sorted(vec![
            sid_entry(first.id, T0 + 900),
            sid_entry(third.id, T0 + 900),
            sid_entry(ended.id, T0 + 900),
        ])
    );
    assert_eq!(
        store
            .live_sessions_of_user(owner.id, now)
            .await
            .expect("live_sessions_of_user"),
        vec![kept.clone()]
    );

    // `None`: the one left goes too, and only it is returned and recorded.
    let later = T0 + 200;
    let revoked = store
        .revoke_sessions_of_user(owner.id, None, later, "admin", T0 + 1_800)
        .await
        .expect("revoke_sessions_of_user");
    assert_eq!(revoked, vec![kept.id]);
    assert_eq!(
        get_session(&*store, kept.id).await,
        Session {
            revoked_at: Some(later),
            revoke_reason: Some("admin".to_owned()),
            ..kept.clone()
        }
    );
    assert_eq!(
        get_session(&*store, first.id)
            .await
            .revoke_reason
            .as_deref(),
        Some("password-change"),
        "an earlier revocation keeps its stamp"
    );
    let (recorded, cursor) = tail_all(&*store, cursor, 100, later).await;
    assert_eq!(recorded, vec![sid_entry(kept.id, T0 + 1_800)]);

    // Nothing left to revoke: `[]`, no entry, nothing changes.
    for (user_id, except) in [
        (owner.id, None),
        (owner.id, Some(first.id)),
        (idle.id, None),
        (Uuid::new_v4(), None),
    ] {
        assert_eq!(
            store
                .revoke_sessions_of_user(user_id, except, T0 + 300, "again", T0 + 2_700)
                .await
                .expect("revoke_sessions_of_user"),
            Vec::<Uuid>::new()
        );
    }
    let (recorded, _) = tail_all(&*store, cursor, 100, T0 + 300).await;
    assert_eq!(recorded, Vec::new(), "nothing revoked, nothing recorded");
    assert_eq!(get_session(&*store, kept.id).await.revoked_at, Some(later));
    for s in &others {
        assert_eq!(get_session(&*store, s.id).await, s.clone());
    }
    assert_eq!(
        store
            .live_sessions_of_user(other.id, T0)
            .await
            .expect("live_sessions_of_user")
            .len(),
        others.len()
    );
}

/// 16 concurrent `revoke_sessions_of_user` calls for one user with 30
/// sessions (half sparing one session, half sparing none): every session is
/// revoked by exactly one call, the one that returned it (its stamp is
/// that call's), no call returns the session it spares, and the feed holds
/// exactly one entry per session. Another user's sessions are untouched.
pub async fn concurrent_revoke_sessions_of_user_never_revokes_twice(backend: &impl Backend) {
    const SESSIONS: usize = 30;
    const RACERS: usize = 16;
    let store = backend.open().await;
    let owner = user("olivia");
    let other = user("pat");
    must_insert_user(&*store, &owner).await;
    must_insert_user(&*store, &other).await;
    let sessions: Vec<Session> = (0..SESSIONS)
        .map(|i| Session {
            created_at: T0 + i as i64,
            ..session(owner.id)
        })
        .collect();
    let others: Vec<Session> = (0..3).map(|_| session(other.id)).collect();
    for s in sessions.iter().chain(&others) {
        store.insert_session(s).await.expect("insert_session");
    }
    let before = snapshot(&*store, T0).await;

    let start = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            let except = (i % 2 == 1).then(|| sessions[i].id);
            let owner_id = owner.id;
            let now = T0 + 1_000 + i as i64;
            let reason = format!("racer-{i}");
            tokio::spawn(async move {
                start.wait().await;
                let revoked = store
                    .revoke_sessions_of_user(owner_id, except, now, &reason, T0 + 5_000)
                    .await;
                (except, now, reason, revoked)
            })
        })
        .collect();

    let mut by_session: BTreeMap<Uuid, Vec<(UnixTime, String)>> = BTreeMap::new();
    for task in tasks {
        let (except, now, reason, revoked) = task.await.expect("racer task");
        let revoked = revoked.expect("revoke_sessions_of_user must not fail under contention");
        for id in revoked {
            assert_ne!(
                Some(id),
                except,
                "a call must not revoke the session it spares"
            );
            by_session
                .entry(id)
                .or_default()
                .push((now, reason.clone()));
        }
    }
    let twice: Vec<_> = by_session.iter().filter(|(_, w)| w.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "sessions revoked by more than one call: {twice:?}"
    );
    assert_eq!(
        by_session.keys().copied().collect::<Vec<_>>(),
        sorted_ids(sessions.iter().map(|s| s.id).collect()),
        "every session of the user must be revoked by some call"
    );
    for s in &sessions {
        let (now, reason) = by_session[&s.id][0].clone();
        assert_eq!(
            get_session(&*store, s.id).await,
            Session {
                revoked_at: Some(now),
                revoke_reason: Some(reason),
                ..s.clone()
            },
            "the stamp must be that of the call that returned the session"
        );
    }
    for s in &others {
        assert_eq!(get_session(&*store, s.id).await, s.clone());
    }

    let (recorded, _) = tail_all(&*store, before.cursor, 7, T0).await;
    assert_eq!(
        sorted(recorded),
        sorted(
            sessions
                .iter()
                .map(|s| sid_entry(s.id, T0 + 5_000))
                .collect()
        ),
        "exactly one entry per session"
    );
}

// ---------------------------------------------------------------------------
// Revocation feed
// ---------------------------------------------------------------------------

/// The snapshot (all its pages, whatever `limit`) holds every entry with
/// `expires_at > now` (of both kinds, every field) in feed order, and its
/// last cursor is one from which a tail returns nothing until something new is
/// recorded; then exactly the new entries, oldest first. An empty store has
/// a snapshot too.
pub async fn revocation_feed_snapshot_holds_every_live_entry(backend: &impl Backend) {
    let store = backend.open().await;
    let now = T0 + 1_000;
    let empty = snapshot(&*store, now).await;
    assert_eq!(empty.entries, Vec::new());
    assert_eq!(
        feed(&*store, Some(empty.cursor), now, 10).await,
        Some(FeedPage {
            entries: Vec::new(),
            cursor: empty.cursor,
            more: false,
        }),
        "the snapshot cursor of an empty store must be usable"
    );

    let entry = |kind, id: &str, expires_at| Revocation {
        kind,
        id: id.to_owned(),
        expires_at,
    };
    let gone = entry(RevocationKind::Token, "jti-gone", now - 1);
    let at_now = entry(RevocationKind::Session, "sid-at-now", now);
    let next = entry(RevocationKind::Session, "sid-next", now + 1);
    let later = entry(RevocationKind::Token, "jti-later", now + 900);
    let later_sid = entry(RevocationKind::Session, "jti-later", now + 900);
    let many: Vec<Revocation> = (0..12)
        .map(|i| entry(RevocationKind::Token, &format!("jti-{i:02}"), now + DAY + i))
        .collect();
    let all: Vec<Revocation> = [gone, at_now, next.clone(), later.clone(), later_sid.clone()]
        .into_iter()
        .chain(many.iter().cloned())
        .collect();
    for e in &all {
        store.insert_revocation(e).await.expect("insert_revocation");
    }

    let mut expected = vec![next, later, later_sid];
    expected.extend(many.iter().cloned());
    // `limit` bounds each snapshot page; the pages together hold it all.
    for limit in [1, 5, 1_000] {
        let snap = snapshot_with_limit(&*store, now, limit).await;
        assert_eq!(
            snap.entries, expected,
            "snapshot at {now} with limit {limit}"
        );
    }
    let first = feed(&*store, None, now, 5).await.expect("first page");
    assert_eq!(first.entries, expected[..5].to_vec());
    assert!(first.more, "a full first page says more remain");
    let snap = snapshot(&*store, now).await;
    assert_eq!(
        sorted(snapshot(&*store, now - DAY).await.entries),
        sorted(all.clone()),
        "an earlier `now` sees the expired entries too"
    );
    assert_eq!(
        sorted(snapshot(&*store, now + DAY + 6).await.entries),
        sorted(many[7..].to_vec())
    );

    // From an up-to-date cursor: nothing, same cursor.
    assert_eq!(
        feed(&*store, Some(snap.cursor), now, 10).await,
        Some(FeedPage {
            entries: Vec::new(),
            cursor: snap.cursor,
            more: false,
        })
    );
    // The old empty-store cursor tails every entry, in insertion order.
    // (Read at an earlier `now`, so that whether a tail skips entries that
    // have expired does not matter here.)
    let (from_start, end) = tail_all(&*store, empty.cursor, 100, now - DAY).await;
    assert_eq!(from_start, all);
    assert_eq!(end, snap.cursor, "the tail ends where the snapshot is");

    let fresh = vec![
        entry(RevocationKind::Session, "sid-fresh", now + 60),
        entry(RevocationKind::Token, "jti-fresh", now + 120),
    ];
    for e in &fresh {
        store.insert_revocation(e).await.expect("insert_revocation");
    }
    let page = feed(&*store, Some(snap.cursor), now, 10)
        .await
        .expect("the snapshot cursor must still be valid");
    assert_eq!(page.entries, fresh);
    assert_ne!(
        page.cursor, snap.cursor,
        "the cursor moves past new entries"
    );
    assert_eq!(
        feed(&*store, Some(page.cursor), now, 10).await,
        Some(FeedPage {
            entries: Vec::new(),
            cursor: page.cursor,
            more: false,
        })
    );
    assert_eq!(snapshot(&*store, now).await.cursor, page.cursor);
}

/// Paging through the feed with small limits (1, 2, 3, 7) returns every
/// entry exactly once, in insertion order, at most `limit` per page (and a
/// full page while more remain), each page's cursor being where the next
/// starts; the last page's cursor tails nothing. A limit of `usize::MAX`
/// returns the rest at once.
pub async fn revocation_feed_pages_return_each_entry_once_in_order(backend: &impl Backend) {
    const ENTRIES: i64 = 23;
    let store = backend.open().await;
    let start = snapshot(&*store, T0).await.cursor;
    let all: Vec<Revocation> = (0..ENTRIES)
        .map(|i| Revocation {
            kind: if i % 3 == 0 {
                RevocationKind::Session
            } else {
                RevocationKind::Token
            },
            id: format!("feed-{i:02}"),
            // Not in insertion order: the feed is ordered by insertion.
            expires_at: T0 + DAY + (i * 7919) % 101,
        })
        .collect();
    for e in &all {
        store.insert_revocation(e).await.expect("insert_revocation");
    }

    for limit in [1usize, 2, 3, 7] {
        let mut cursor = start;
        let mut seen = Vec::new();
        loop {
            let page = feed(&*store, Some(cursor), T0, limit)
                .await
                .unwrap_or_else(|| panic!("limit {limit}: cursor {cursor} refused"));
            let remaining = all.len() - seen.len();
            assert_eq!(
                page.entries.len(),
                remaining.min(limit),
                "limit {limit}: page size after {} entries",
                seen.len()
            );
            assert_eq!(
                page.more,
                remaining > limit,
                "limit {limit}: `more` after {} entries",
                seen.len()
            );
            if page.entries.is_empty() {
                assert_eq!(
                    page.cursor, cursor,
                    "limit {limit}: empty page keeps the cursor"
                );
                break;
            }
            assert_ne!(page.cursor, cursor, "limit {limit}: the cursor must move");
            seen.extend(page.entries);
            cursor = page.cursor;
            assert!(seen.len() <= all.len(), "limit {limit}: too many entries");
        }
        assert_eq!(seen, all, "limit {limit}: every entry once, in order");
        assert_eq!(
            cursor,
            snapshot(&*store, T0).await.cursor,
            "limit {limit}: paging ends where a snapshot is"
        );
    }

    let page = feed(&*store, Some(start), T0, usize::MAX)
        .await
        .expect("start cursor");
    assert_eq!(page.entries, all);

    // Resuming from the middle continues from there.
    let first = feed(&*store, Some(start), T0, 10)
        .await
        .expect("start cursor");
    assert_eq!(first.entries, all[..10].to_vec());
    let (rest, _) = tail_all(&*store, first.cursor, 4, T0).await;
    assert_eq!(rest, all[10..].to_vec());
}

/// Paging a snapshot 4 entries at a time while entries are recorded between
/// pages: every page holds at most 4 live entries in feed order and says
/// whether more remain; the pages together hold every entry live at `now`
/// (those recorded between pages too) exactly once, expired ones never;
/// following from the last page's cursor then returns nothing until
/// something new is recorded. A reader that stops after the first page and
/// follows from its cursor instead misses nothing either (it also reads
/// the expired entries).
pub async fn revocation_feed_snapshot_pages_miss_nothing_recorded_between_them(
    backend: &impl Backend,
) {
    const LIMIT: usize = 4;
    let store = backend.open().await;
    let now = T0 + 1_000;
    let entry = |id: String, expires_at| Revocation {
        kind: RevocationKind::Token,
        id,
        expires_at,
    };
    let mut recorded = Vec::new();
    let mut record = |e: Revocation| {
        recorded.push(e.clone());
        e
    };
    // Ten live entries with an expired one after every third.
    for i in 0..10 {
        let e = record(entry(format!("live-{i}"), now + DAY));
        store
            .insert_revocation(&e)
            .await
            .expect("insert_revocation");
        if i % 3 == 2 {
            let e = record(entry(format!("expired-{i}"), now - 1));
            store
                .insert_revocation(&e)
                .await
                .expect("insert_revocation");
        }
    }

    let first = feed(&*store, None, now, LIMIT).await.expect("first page");
    assert!(first.more);
    let mut pages = vec![first.clone()];
    let mut between = 0;
    let mut from = first.cursor;
    while pages.last().is_some_and(|p| p.more) {
        assert!(pages.len() < 100, "the snapshot never ends");
        // Two more entries (one already expired) before each next page.
        for e in [
            entry(format!("between-{between}"), now + DAY),
            entry(format!("between-expired-{between}"), now),
        ] {
            let e = record(e);
            store
                .insert_revocation(&e)
                .await
                .expect("insert_revocation");
        }
        between += 1;
        let page = snapshot_page(&*store, from, now, LIMIT)
            .await
            .unwrap_or_else(|| panic!("snapshot page from {from} refused"));
        assert!(page.entries.len() <= LIMIT);
        if page.more {
            assert_eq!(
                page.entries.len(),
                LIMIT,
                "a page with more after it is full"
            );
            assert!(page.cursor > from, "the cursor must move");
        }
        from = page.cursor;
        pages.push(page);
    }
    let paged: Vec<Revocation> = pages.iter().flat_map(|p| p.entries.clone()).collect();
    let live: Vec<Revocation> = recorded
        .iter()
        .filter(|e| e.expires_at > now)
        .cloned()
        .collect();
    assert_eq!(paged, live, "every live entry once, in feed order");
    assert!(between >= 2, "entries were recorded between pages");

    let last = pages.last().map(|p| p.cursor).unwrap_or_default();
    assert_eq!(snapshot(&*store, now).await.cursor, last);
    assert_eq!(tail_all(&*store, last, 10, now).await.0, Vec::new());
    let after = entry("after-the-snapshot".into(), now + DAY);
    store
        .insert_revocation(&after)
        .await
        .expect("insert_revocation");
    assert_eq!(
        tail_all(&*store, last, 10, now).await.0,
        vec![after.clone()]
    );

    // Stopping after the first page and following from its cursor.
    let (followed, _) = tail_all(&*store, first.cursor, 10, now).await;
    let mut seen = first.entries.clone();
    seen.extend(followed);
    let mut everything = recorded.clone();
    everything.push(after);
    let pos = everything
        .iter()
        .position(|e| Some(e) == first.entries.last())
        .expect("the first page's last entry");
    let mut expected = live[..LIMIT].to_vec();
    expected.extend(everything[pos + 1..].iter().cloned());
    assert_eq!(seen, expected);
}

/// A cursor beyond the newest entry (one the store never handed out) or
/// negative → `Ok(None)`, following or paging a snapshot, on an empty store
/// and on one with entries, so that the reader starts again from a
/// snapshot; the newest cursor itself works.
pub async fn revocation_feed_refuses_cursor_beyond_newest(backend: &impl Backend) {
    let store = backend.open().await;
    let empty = snapshot(&*store, T0).await.cursor;
    for beyond in [empty + 1, empty + 1_000, i64::MAX, -1, i64::MIN] {
        assert_eq!(
            feed(&*store, Some(beyond), T0, 10).await,
            None,
            "cursor {beyond} on an empty store (newest {empty})"
        );
        assert_eq!(
            snapshot_page(&*store, beyond, T0, 10).await,
            None,
            "snapshot page from {beyond} on an empty store (newest {empty})"
        );
    }
    for i in 0..3 {
        store
            .insert_revocation(&Revocation {
                kind: RevocationKind::Token,
                id: format!("jti-{i}"),
                expires_at: T0 + DAY,
            })
            .await
            .expect("insert_revocation");
    }
    let newest = snapshot(&*store, T0).await.cursor;
    for beyond in [newest + 1, newest + 1_000, i64::MAX, -1] {
        assert_eq!(
            feed(&*store, Some(beyond), T0, 10).await,
            None,
            "cursor {beyond} beyond the newest ({newest})"
        );
        assert_eq!(
            snapshot_page(&*store, beyond, T0, 10).await,
            None,
            "snapshot page from {beyond} beyond the newest ({newest})"
        );
    }
    assert_eq!(
        snapshot_page(&*store, newest, T0, 10).await,
        Some(FeedPage {
            entries: Vec::new(),
            cursor: newest,
            more: false,
        }),
        "a snapshot page from the newest cursor is the empty last page"
    );
    assert_eq!(
        feed(&*store, Some(newest), T0, 10).await,
        Some(FeedPage {
            entries: Vec::new(),
            cursor: newest,
            more: false,
        })
    );
}

/// Once `prune` has deleted entries recorded after a cursor, following from
/// that cursor → `Ok(None)` (its reader would silently miss them), while
/// the cursor of a reader that was up to date still works and sees what
/// comes next, a fresh snapshot holds exactly the surviving live entries,
/// and a snapshot page from the old cursor still works (what was pruned had
/// expired, so a snapshot misses nothing by it).
pub async fn revocation_feed_refuses_cursor_older_than_pruned(backend: &impl Backend) {
    let store = backend.open().await;
    let entry = |id: &str, expires_at| Revocation {
        kind: RevocationKind::Token,
        id: id.to_owned(),
        expires_at,
    };
    let kept_early = entry("jti-kept-early", T0 + DAY);
    store
        .insert_revocation(&kept_early)
        .await
        .expect("insert_revocation");
    let old = snapshot(&*store, T0).await.cursor;
    let short = [entry("jti-short-1", T0 + 60), entry("jti-short-2", T0 + 61)];
    let kept = entry("jti-kept", T0 + DAY);
    for e in short.iter().chain([&kept]) {
        store.insert_revocation(e).await.expect("insert_revocation");
    }
    let current = snapshot(&*store, T0).await.cursor;

    let deleted = prune_all(
        &*store,
        PruneBefore {
            revocations: T0 + 61,
            sessions: T0 - DAY,
            batch: 100,
        },
    )
    .await;
    assert_eq!(deleted, 2);

    assert_eq!(
        feed(&*store, Some(old), T0, 10).await,
        None,
        "a cursor older than pruned entries must be refused"
    );
    assert_eq!(
        feed(&*store, Some(current), T0, 10).await,
        Some(FeedPage {
            entries: Vec::new(),
            cursor: current,
            more: false,
        }),
        "the current cursor must still work"
    );
    assert_eq!(
        snapshot_page(&*store, old, T0, 10).await,
        Some(FeedPage {
            entries: vec![kept.clone()],
            cursor: current,
            more: false,
        }),
        "a snapshot page from before the pruned entries"
    );
    let snap = snapshot(&*store, T0).await;
    assert_eq!(sorted(snap.entries), sorted(vec![kept_early, kept]));

    let after = entry("jti-after-prune", T0 + DAY);
    store
        .insert_revocation(&after)
        .await
        .expect("insert_revocation");
    assert_eq!(
        tail_all(&*store, current, 10, T0).await.0,
        vec![after.clone()]
    );
    assert_eq!(tail_all(&*store, snap.cursor, 10, T0).await.0, vec![after]);
    assert_eq!(
        feed(&*store, Some(old), T0, 10).await,
        None,
        "still refused"
    );
}

/// A reader that pages through a snapshot (limit 7) while 8 writers record
/// 200 entries, then keeps tailing (limit 7) from its last cursor until the writers are done and a
/// last tail is empty, ends up with every acknowledged entry (and the ones
/// recorded before) exactly once; the tail returns each writer's entries in
/// the order they were acknowledged. Three rounds, the snapshot taken at a
/// different moment each time.
pub async fn revocation_feed_snapshot_and_tail_lose_nothing_under_concurrent_inserts(
    backend: &impl Backend,
) {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 25;
    let store = backend.open().await;
    let mut everything = Vec::new();
    for i in 0..20 {
        let e = Revocation {
            kind: RevocationKind::Session,
            id: format!("pre-{i:02}"),
            expires_at: T0 + DAY,
        };
        store
            .insert_revocation(&e)
            .await
            .expect("insert_revocation");
        everything.push(e);
    }

    for round in 0..3u64 {
        let start = Arc::new(Barrier::new(WRITERS + 1));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = Arc::clone(&store);
                let start = Arc::clone(&start);
                tokio::spawn(async move {
                    start.wait().await;
                    let mut acknowledged = Vec::new();
                    for k in 0..PER_WRITER {
                        let e = Revocation {
                            kind: if k % 2 == 0 {
                                RevocationKind::Token
                            } else {
                                RevocationKind::Session
                            },
                            id: format!("r{round}-w{w}-{k:03}"),
                            expires_at: T0 + DAY + k as i64,
                        };
                        store.insert_revocation(&e).await?;
                        acknowledged.push(e);
                    }
                    Ok::<_, StoreError>(acknowledged)
                })
            })
            .collect();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                start.wait().await;
                // Let some writes land first, more in each round.
                for _ in 0..round * 5 {
                    tokio::task::yield_now().await;
                }
                // Paged 7 at a time while the writers write.
                let snap = snapshot_with_limit(&*store, T0, 7).await;
                let mut tail = Vec::new();
                let mut cursor = snap.cursor;
                loop {
                    // Read `done` before the tail: an empty tail after the
                    // writers finished means everything has been seen.
                    let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                    let page = store
                        .revocation_feed(FeedRead::After(cursor), T0, 7)
                        .await
                        .expect("revocation_feed")
                        .unwrap_or_else(|| panic!("cursor {cursor} refused mid-tail"));
                    if page.entries.is_empty() {
                        assert_eq!(page.cursor, cursor);
                        if finished {
                            break;
                        }
                        tokio::task::yield_now().await;
                    } else {
                        assert_ne!(
                            page.cursor, cursor,
                            "a page of entries must move the cursor"
                        );
                    }
                    tail.extend(page.entries);
                    assert!(tail.len() <= 10_000, "the tail never ends");
                    cursor = page.cursor;
                }
                (snap.entries, tail)
            })
        };

        let mut acknowledged = Vec::new();
        for w in writers {
            acknowledged.push(
                w.await
                    .expect("writer task")
                    .expect("insert_revocation must not fail"),
            );
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let (snap, tail) = reader.await.expect("reader task");
        everything.extend(acknowledged.iter().flatten().cloned());

        let mut seen = snap.clone();
        seen.extend(tail.iter().cloned());
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for e in &seen {
            *counts.entry(e.id.clone()).or_default() += 1;
        }
        let missing: Vec<&Revocation> = everything
            .iter()
            .filter(|e| !counts.contains_key(&e.id))
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} of {} entries lost by snapshot ({}) + tail ({}): {missing:?}",
            missing.len(),
            everything.len(),
            snap.len(),
            tail.len()
        );
        let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            duplicated.is_empty(),
            "round {round}: entries seen more than once: {duplicated:?}"
        );
        assert_eq!(
            sorted(seen),
            sorted(everything.clone()),
            "round {round}: exactly the entries recorded"
        );
        // Within the tail, each writer's entries come in acknowledgement order.
        for (w, mine) in acknowledged.iter().enumerate() {
            let order: Vec<usize> = tail
                .iter()
                .filter_map(|e| mine.iter().position(|m| m == e))
                .collect();
            assert!(
                order.windows(2).all(|p| p[0] < p[1]),
                "round {round}: writer {w}'s entries out of order in the tail: {order:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Pruning
// ---------------------------------------------------------------------------

/// `prune` deletes revocation entries with `expires_at <= revocations` and
/// sessions with `expires_at <= sessions` (each by its own bound, revoked or
/// not), at most `batch` of each per call, and returns how many rows went;
/// repeated calls finish the job and then return 0. Live rows are left
/// alone, every field intact. Afterwards a pruned session is gone, an old
/// feed cursor is refused while a fresh snapshot works.
pub async fn prune_deletes_expired_rows_in_batches(backend: &impl Backend) {
    const BATCH: usize = 3;
    let store = backend.open().await;
    let owner = user("quinn");
    let other = user("rosa");
    must_insert_user(&*store, &owner).await;
    must_insert_user(&*store, &other).await;
    let rev_cutoff = T0 + 1_000;
    let session_cutoff = T0 + 10 * DAY;
    let old_cursor = snapshot(&*store, T0).await.cursor;

    // Revocations: 7 expired (one exactly at the cutoff), 3 live (one a
    // second after it). Expired ones are mixed with live ones in insertion
    // order.
    let rev = |i: usize, expires_at| Revocation {
        kind: [RevocationKind::Token, RevocationKind::Session][i % 2],
        id: format!("prune-{i:02}"),
        expires_at,
    };
    let mut expired_revs = Vec::new();
    let mut live_revs = Vec::new();
    for i in 0..10 {
        let e = match i {
            0 => rev(i, rev_cutoff),
            3 => rev(i, rev_cutoff + 1),
            6 => rev(i, session_cutoff + DAY),
            8 => rev(i, rev_cutoff + 60),
            _ => rev(i, T0 - i as i64 * 100),
        };
        if e.expires_at <= rev_cutoff {
            expired_revs.push(e.clone());
        } else {
            live_revs.push(e.clone());
        }
        store
            .insert_revocation(&e)
            .await
            .expect("insert_revocation");
    }
    assert_eq!((expired_revs.len(), live_revs.len()), (7, 3));

    // Sessions: 5 ended (one exactly at the cutoff, one revoked, one of the
    // other user), 4 live (one a second after the cutoff, one revoked, one
    // ending before the revocation cutoff would allow).
    let ended = vec![
        Session {
            expires_at: session_cutoff,
            ..session(owner.id)
        },
        Session {
            expires_at: T0 - DAY,
            ..session(owner.id)
        },
        Session {
            expires_at: T0 + DAY,
            revoked_at: Some(T0),
            revoke_reason: Some("logout".to_owned()),
            ..session(owner.id)
        },
        Session {
            expires_at: T0 + 2 * DAY,
            ..session(other.id)
        },
        Session {
            expires_at: rev_cutoff,
            ..session(owner.id)
        },
    ];
    let live_sessions = vec![
        Session {
            expires_at: session_cutoff + 1,
            ..session(owner.id)
        },
        Session {
            expires_at: session_cutoff + 30 * DAY,
            revoked_at: Some(T0),
            revoke_reason: Some("admin".to_owned()),
            ..session(owner.id)
        },
        Session {
            expires_at: session_cutoff + DAY,
            ..session(other.id)
        },
        Session {
            created_at: T0 + 5,
            expires_at: session_cutoff + 2 * DAY,
            ..session(owner.id)
        },
    ];
    for s in ended.iter().chain(&live_sessions) {
        store.insert_session(s).await.expect("insert_session");
    }

    let before = PruneBefore {
        revocations: rev_cutoff,
        sessions: session_cutoff,
        batch: BATCH,
    };
    // Every entry still there, whatever its expiry.
    let everything_before = T0 - 100 * DAY;

    // One call: `batch` of each kind.
    let first = store.prune(before).await.expect("prune");
    assert_eq!(
        first,
        2 * BATCH,
        "the first call deletes a full batch of each"
    );
    assert_eq!(
        live(&*store, everything_before).await.len(),
        expired_revs.len() + live_revs.len() - BATCH
    );
    assert_eq!(
        existing_sessions(&*store, &ended).await,
        ended.len() - BATCH
    );

    // Repeated calls finish the job, each within its batches.
    let mut total = first;
    let mut calls = 1;
    loop {
        let n = store.prune(before).await.expect("prune");
        assert!(n <= 2 * BATCH, "one call deleted {n} rows, batch {BATCH}");
        if n == 0 {
            break;
        }
        total += n;
        calls += 1;
        assert!(calls <= 10, "prune never finishes");
    }
    assert_eq!(
        total,
        expired_revs.len() + ended.len(),
        "rows deleted in all"
    );
    assert_eq!(store.prune(before).await.expect("prune"), 0);

    // Live rows untouched, expired ones gone.
    assert_eq!(
        live(&*store, everything_before).await,
        sorted(live_revs.clone())
    );
    for s in &ended {
        assert_eq!(
            store.session(s.id).await.expect("session"),
            None,
            "a pruned session must be gone"
        );
        assert_eq!(
            store
                .session_and_user(s.id)
                .await
                .expect("session_and_user"),
            None
        );
    }
    for s in &live_sessions {
        assert_eq!(get_session(&*store, s.id).await, s.clone());
    }
    assert_eq!(
        store
            .live_sessions_of_user(owner.id, T0)
            .await
            .expect("live_sessions_of_user"),
        vec![live_sessions[0].clone(), live_sessions[3].clone()]
    );
    // Users are never pruned.
    for u in [&owner, &other] {
        assert_eq!(
            store.user_by_id(u.id).await.expect("user_by_id"),
            Some(u.clone())
        );
    }

    // The feed: the old cursor is refused, a fresh snapshot works.
    assert_eq!(feed(&*store, Some(old_cursor), T0, 10).await, None);
    let snap = snapshot(&*store, T0).await;
    assert_eq!(sorted(snap.entries), sorted(live_revs.clone()));
    assert_eq!(
        feed(&*store, Some(snap.cursor), T0, 10).await,
        Some(FeedPage {
            entries: Vec::new(),
            cursor: snap.cursor,
            more: false,
        })
    );
}

/// `prune` with nothing at or before its bounds returns 0 and changes
/// nothing; each bound applies to its own kind only (a session bound does
/// not delete revocation entries, nor the reverse). Pruning sessions leaves
/// feed cursors valid, and so does pruning entries a cursor had passed.
pub async fn prune_leaves_live_rows_alone(backend: &impl Backend) {
    let store = backend.open().await;
    let owner = user("sam");
    must_insert_user(&*store, &owner).await;
    let s = Session {
        expires_at: T0 + DAY,
        ..session(owner.id)
    };
    store.insert_session(&s).await.expect("insert_session");
    let e = sid_entry(s.id, T0 + DAY);
    store
        .insert_revocation(&e)
        .await
        .expect("insert_revocation");
    let cursor = snapshot(&*store, T0).await.cursor;

    // Nothing ended before T0 + DAY - 1; and each bound only for its kind.
    for before in [
        PruneBefore {
            revocations: T0 + DAY - 1,
            sessions: T0 + DAY - 1,
            batch: 100,
        },
        PruneBefore {
            revocations: T0 - DAY,
            sessions: T0 + DAY - 1,
            batch: 1,
        },
    ] {
        assert_eq!(store.prune(before).await.expect("prune"), 0, "{before:?}");
    }
    assert_eq!(get_session(&*store, s.id).await, s);
    assert_eq!(live(&*store, T0).await, vec![e.clone()]);

    // Session bound reached, revocation bound not: only the session goes.
    assert_eq!(
        store
            .prune(PruneBefore {
                revocations: T0,
                sessions: T0 + DAY,
                batch: 100,
            })
            .await
            .expect("prune"),
        1
    );
    assert_eq!(store.session(s.id).await.expect("session"), None);
    assert_eq!(live(&*store, T0).await, vec![e.clone()]);
    assert_eq!(
        feed(&*store, Some(cursor), T0, 10).await,
        Some(FeedPage {
            entries: Vec::new(),
            cursor,
            more: false,
        }),
        "pruning sessions only does not invalidate feed cursors"
    );

    // Revocation bound reached: the entry goes.
    assert_eq!(
        store
            .prune(PruneBefore {
                revocations: T0 + DAY,
                sessions: T0,
                batch: 100,
            })
            .await
            .expect("prune"),
        1
    );
    assert_eq!(live(&*store, T0 - DAY).await, Vec::new());
    assert_eq!(
        feed(&*store, Some(cursor), T0, 10).await,
        Some(FeedPage {
            entries: Vec::new(),
            cursor,
            more: false,
        }),
        "a reader that had seen every pruned entry keeps its cursor"
    );
}

// ---------------------------------------------------------------------------
// Feed and session helpers
// ---------------------------------------------------------------------------

fn sorted_ids(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

async fn live_sessions(store: &dyn Store, user_id: Uuid, now: UnixTime) -> Vec<Session> {
    store
        .live_sessions_of_user(user_id, now)
        .await
        .expect("live_sessions_of_user")
}

/// How many of `sessions` still exist.
async fn existing_sessions(store: &dyn Store, sessions: &[Session]) -> usize {
    let mut n = 0;
    for s in sessions {
        if store.session(s.id).await.expect("session").is_some() {
            n += 1;
        }
    }
    n
}

/// `after`: following from that cursor; `None`: the first snapshot page.
async fn feed(
    store: &dyn Store,
    after: Option<i64>,
    now: UnixTime,
    limit: usize,
) -> Option<FeedPage> {
    let read = match after {
        Some(cursor) => FeedRead::After(cursor),
        None => FeedRead::Snapshot { from: 0 },
    };
    store
        .revocation_feed(read, now, limit)
        .await
        .expect("revocation_feed")
}

async fn snapshot_page(
    store: &dyn Store,
    from: i64,
    now: UnixTime,
    limit: usize,
) -> Option<FeedPage> {
    store
        .revocation_feed(FeedRead::Snapshot { from }, now, limit)
        .await
        .expect("revocation_feed")
}

/// Every page of a snapshot, `limit` at a time, as one page: the entries in
/// feed order and the cursor of the last page.
async fn snapshot_with_limit(store: &dyn Store, now: UnixTime, limit: usize) -> FeedPage {
    let mut from = 0;
    let mut entries = Vec::new();
    for _ in 0..100_000 {
        let page = snapshot_page(store, from, now, limit)
            .await
            .unwrap_or_else(|| panic!("snapshot page from {from} refused"));
        assert!(
            page.entries.len() <= limit,
            "a snapshot page of {} entries for limit {limit}",
            page.entries.len()
        );
        entries.extend(page.entries);
        if !page.more {
            return FeedPage {
                entries,
                cursor: page.cursor,
                more: false,
            };
        }
        assert!(
            page.cursor > from,
            "a full snapshot page must move the cursor"
        );
        from = page.cursor;
    }
    panic!("the snapshot never ends");
}

async fn snapshot(store: &dyn Store, now: UnixTime) -> FeedPage {
    snapshot_with_limit(store, now, 100).await
}

/// Tails the feed from `cursor`, `limit` at a time, until a page is empty;
/// returns the entries in feed order and the final cursor.
async fn tail_all(
    store: &dyn Store,
    mut cursor: i64,
    limit: usize,
    now: UnixTime,
) -> (Vec<Revocation>, i64) {
    let mut entries = Vec::new();
    loop {
        let page = feed(store, Some(cursor), now, limit)
            .await
            .unwrap_or_else(|| panic!("feed cursor {cursor} refused"));
        assert!(
            page.entries.len() <= limit,
            "a page of {} entries for limit {limit}",
            page.entries.len()
        );
        if page.entries.is_empty() {
            assert_eq!(page.cursor, cursor, "an empty page keeps the cursor");
            return (entries, cursor);
        }
        assert_ne!(
            page.cursor, cursor,
            "a page of entries must move the cursor"
        );
        entries.extend(page.entries);
        assert!(entries.len() <= 100_000, "the feed never ends");
        cursor = page.cursor;
    }
}

/// Prunes until a call deletes nothing; returns the rows deleted in all.
async fn prune_all(store: &dyn Store, before: PruneBefore) -> usize {
    let mut total = 0;
    for _ in 0..1_000 {
        match store.prune(before).await.expect("prune") {
            0 => return total,
            n => total += n,
        }
    }
    panic!("prune never finished");
}

// ---------------------------------------------------------------------------
// Signing keys
// ---------------------------------------------------------------------------

/// `signing_keys` returns every inserted key with all its fields; inserting a
/// `kid` that exists is an error (not a panic, not an overwrite).
pub async fn signing_keys_round_trip_and_kid_is_unique(backend: &impl Backend) {
    let store = backend.open().await;
    assert_eq!(
        store.signing_keys().await.expect("signing_keys"),
        Vec::new()
    );

    let keys = vec![
        signing_key("k-current", KeyState::Current),
        signing_key("k-next", KeyState::Next),
        StoredKey {
            alg: "ES256".to_owned(),
            created_at: T0 - 90 * DAY,
            sealed_private_key: Vec::new(),
            ..signing_key("k-retired", KeyState::Retired)
        },
        StoredKey {
            sealed_private_key: (0..=255u8).collect(),
            public_key: vec![0u8; 4096],
            ..signing_key("k-bytes", KeyState::Next)
        },
    ];
    for k in &keys {
        store
            .insert_signing_key(k)
            .await
            .expect("insert_signing_key");
    }
    assert_eq!(
        sorted_keys(store.signing_keys().await.expect("signing_keys")),
        sorted_keys(keys.clone())
    );

    let clash = StoredKey {
        alg: "RS256".to_owned(),
        state: KeyState::Retired,
        sealed_private_key: b"other".to_vec(),
        public_key: b"other".to_vec(),
        created_at: T0 + 1,
        ..signing_key("k-current", KeyState::Current)
    };
    assert_rejected(
        store.insert_signing_key(&clash).await,
        "insert_signing_key with an existing kid",
    );
    assert_eq!(
        sorted_keys(store.signing_keys().await.expect("signing_keys")),
        sorted_keys(keys.clone()),
        "a refused key must not change the stored ones"
    );

    // The store keeps working after the refusal.
    let extra = signing_key("k-after", KeyState::Next);
    store
        .insert_signing_key(&extra)
        .await
        .expect("insert_signing_key");
    let mut expected = keys;
    expected.push(extra);
    assert_eq!(
        sorted_keys(store.signing_keys().await.expect("signing_keys")),
        sorted_keys(expected)
    );
}

// ---------------------------------------------------------------------------
// Batching, durability, failure isolation
// ---------------------------------------------------------------------------

/// One write of a mixed concurrent workload.
#[derive(Debug, Clone)]
enum Write {
    User(User),
    Session(Session),
    Advance { id: Uuid, from: u64, now: UnixTime },
    Password { user_id: Uuid, phc: String },
    Revocation(Revocation),
    Key(StoredKey),
}

/// Why a write of a workload did not check out.
#[derive(Debug)]
enum Failure {
    /// The store answered with an error.
    Store(StoreError),
    /// The store answered, but not as the contract says.
    Wrong(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Store(e) => write!(f, "{e}"),
            Failure::Wrong(what) => f.write_str(what),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

/// Performs `write`, checks its answer, then checks that the caller's next
/// read sees it (an acknowledged write is visible at once).
async fn apply(store: &dyn Store, write: &Write) -> Result<(), Failure> {
    let fail = |what: &str| Err(Failure::Wrong(format!("{what}: {write:?}")));
    match write {
        Write::User(u) => {
            if !store.insert_user(u).await? {
                return fail("insert_user returned false");
            }
            if store.user_by_key(&u.username_key).await? != Some(u.clone()) {
                return fail("inserted user not visible");
            }
        }
        Write::Session(s) => {
            store.insert_session(s).await?;
            if store.session(s.id).await? != Some(s.clone()) {
                return fail("inserted session not visible");
            }
        }
        Write::Advance { id, from, now } => {
            if !store
                .advance_session(*id, *from, *now, &refreshed(*id, *now))
                .await?
            {
                return fail("advance_session returned false");
            }
            let s = store.session(*id).await?;
            if s.map(|s| (s.counter, s.last_refreshed_at)) != Some((*from + 1, *now)) {
                return fail("advanced session not visible");
            }
        }
        Write::Password { user_id, phc } => {
            store.set_password_hash(*user_id, phc).await?;
            let u = store.user_by_id(*user_id).await?;
            if u.map(|u| u.password_hash) != Some(phc.clone()) {
                return fail("new password hash not visible");
            }
        }
        Write::Revocation(e) => {
            store.insert_revocation(e).await?;
            let live = store.live_revocations(T0).await?;
            if !live.contains(e) {
                return fail("inserted revocation not visible");
            }
        }
        Write::Key(k) => {
            store.insert_signing_key(k).await?;
            let keys = store.signing_keys().await?;
            if !keys.contains(k) {
                return fail("inserted signing key not visible");
            }
        }
    }
    Ok(())
}

/// Runs every write at once (released together by a barrier, so they share
/// the backend's batches) and returns each one's outcome, in order.
async fn run_concurrently(store: &Arc<dyn Store>, writes: &[Write]) -> Vec<Result<(), Failure>> {
    let start = Arc::new(Barrier::new(writes.len()));
    let tasks: Vec<_> = writes
        .iter()
        .cloned()
        .map(|w| {
            let store = Arc::clone(store);
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                apply(&*store, &w).await
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.expect("write task"));
    }
    outcomes
}

/// A mixed workload of at least 200 concurrent writes, of six kinds, and
/// what the store must hold once they are all acknowledged.
struct Workload {
    writes: Vec<Write>,
    users: Vec<User>,
    sessions: Vec<Session>,
    revocations: Vec<Revocation>,
    keys: Vec<StoredKey>,
}

const PER_KIND: usize = 35;

/// Inserts the users and sessions that the workload updates, sequentially,
/// and returns the workload.
async fn prepare_workload(store: &dyn Store) -> Workload {
    let mut users = Vec::new();
    let mut sessions = Vec::new();
    let mut writes = Vec::new();
    let mut revocations = Vec::new();
    let mut keys = Vec::new();

    for j in 0..PER_KIND {
        let j_time = j as i64;
        // Existing rows that the concurrent writes update.
        let base_user = user(&format!("base-{j:03}"));
        must_insert_user(store, &base_user).await;
        let base_session = Session {
            counter: j as u64,
            ..session(base_user.id)
        };
        store
            .insert_session(&base_session)
            .await
            .expect("insert_session");

        let new_user = user(&format!("bulk-{j:03}"));
        let new_session = Session {
            client_id: format!("client-{j}"),
            ..session(base_user.id)
        };
        let phc = format!("$argon2id$rehashed-{j}");
        let entry = Revocation {
            kind: if j % 2 == 0 {
                RevocationKind::Token
            } else {
                RevocationKind::Session
            },
            id: format!("bulk-rev-{j:03}"),
            expires_at: T0 + DAY + j_time,
        };
        let key = signing_key(&format!("bulk-key-{j:03}"), KeyState::Next);

        writes.push(Write::User(new_user.clone()));
        writes.push(Write::Session(new_session.clone()));
        writes.push(Write::Advance {
            id: base_session.id,
            from: base_session.counter,
            now: T0 + 500 + j_time,
        });
        writes.push(Write::Password {
            user_id: base_user.id,
            phc: phc.clone(),
        });
        writes.push(Write::Revocation(entry.clone()));
        writes.push(Write::Key(key.clone()));

        users.push(User {
            password_hash: phc,
            ..base_user
        });
        users.push(new_user);
        sessions.push(Session {
            counter: base_session.counter + 1,
            last_refreshed_at: T0 + 500 + j_time,
            ..base_session
        });
        sessions.push(new_session);
        revocations.push(entry);
        keys.push(key);
    }
    assert!(writes.len() >= 200);
    Workload {
        writes,
        users,
        sessions,
        revocations,
        keys,
    }
}

async fn run_workload(store: &Arc<dyn Store>, workload: &Workload) {
    let outcomes = run_concurrently(store, &workload.writes).await;
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().err().map(Failure::to_string))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} concurrent writes failed: {failures:#?}",
        failures.len(),
        outcomes.len()
    );
}

/// Checks that the store holds exactly what the workload left.
async fn verify_workload(store: &dyn Store, workload: &Workload) {
    for u in &workload.users {
        assert_eq!(
            store.user_by_id(u.id).await.expect("user_by_id").as_ref(),
            Some(u)
        );
        assert_eq!(
            store
                .user_by_key(&u.username_key)
                .await
                .expect("user_by_key")
                .as_ref(),
            Some(u)
        );
    }
    let users_by_id: BTreeMap<Uuid, &User> = workload.users.iter().map(|u| (u.id, u)).collect();
    for s in &workload.sessions {
        let owner = users_by_id[&s.user_id];
        assert_eq!(
            store
                .session_and_user(s.id)
                .await
                .expect("session_and_user"),
            Some((s.clone(), owner.clone()))
        );
    }
    assert_eq!(
        live(store, T0).await,
        sorted(workload.revocations.clone()),
        "live revocations"
    );
    assert_eq!(
        sorted_keys(store.signing_keys().await.expect("signing_keys")),
        sorted_keys(workload.keys.clone()),
        "signing keys"
    );
}

/// 210 concurrent writes of six kinds (new users, new sessions, advances,
/// password changes, revocations, signing keys) are all acknowledged, each
/// visible to its writer's next read, and all visible afterwards.
pub async fn concurrent_mixed_writes_are_all_visible(backend: &impl Backend) {
    let store = backend.open().await;
    let workload = prepare_workload(&*store).await;
    run_workload(&store, &workload).await;
    verify_workload(&*store, &workload).await;
}

/// Everything acknowledged before the store is closed is there after it is
/// opened again on the same database.
pub async fn acknowledged_writes_survive_reopen(backend: &impl Backend) {
    let store = backend.open().await;
    let workload = prepare_workload(&*store).await;
    run_workload(&store, &workload).await;
    assert_eq!(
        Arc::strong_count(&store),
        1,
        "every task must have let go of the store"
    );
    drop(store);

    let reopened = backend.open().await;
    verify_workload(&*reopened, &workload).await;
}

/// A write that breaks a constraint (duplicate signing key `kid`, session of
/// a user that does not exist, duplicate session id) fails alone: it gets an
/// error and leaves no trace, while the good writes running concurrently
/// with it (in the same batches) all succeed.
pub async fn failing_write_fails_alone_in_its_batch(backend: &impl Backend) {
    const GOOD: usize = 60;
    let store = backend.open().await;
    let owner = user("oscar");
    must_insert_user(&*store, &owner).await;
    let existing_key = signing_key("k-existing", KeyState::Current);
    store
        .insert_signing_key(&existing_key)
        .await
        .expect("insert_signing_key");
    let existing_session = session(owner.id);
    store
        .insert_session(&existing_session)
        .await
        .expect("insert_session");

    let mut writes = Vec::new();
    let mut is_bad = Vec::new();
    let mut orphans = Vec::new();
    let mut good_sessions = Vec::new();
    let mut good_keys = vec![existing_key.clone()];
    let mut good_revocations = Vec::new();
    for i in 0..GOOD {
        let good = match i % 3 {
            0 => {
                let s = Session {
                    client_id: format!("good-{i}"),
                    ..session(owner.id)
                };
                good_sessions.push(s.clone());
                Write::Session(s)
            }
            1 => {
                let k = signing_key(&format!("k-good-{i:03}"), KeyState::Next);
                good_keys.push(k.clone());
                Write::Key(k)
            }
            _ => {
                let e = Revocation {
                    kind: RevocationKind::Token,
                    id: format!("jti-good-{i}"),
                    expires_at: T0 + DAY,
                };
                good_revocations.push(e.clone());
                Write::Revocation(e)
            }
        };
        writes.push(good);
        is_bad.push(false);

        // Every third slot is followed by a bad write, of three kinds.
        if i % 3 == 1 {
            let bad = match (i / 3) % 3 {
                0 => Write::Key(StoredKey {
                    alg: format!("bad-{i}"),
                    public_key: b"clash".to_vec(),
                    ..existing_key.clone()
                }),
                1 => {
                    let orphan = session(Uuid::new_v4());
                    orphans.push(orphan.id);
                    Write::Session(orphan)
                }
                _ => Write::Session(Session {
                    client_id: format!("duplicate-{i}"),
                    counter: 99,
                    ..existing_session.clone()
                }),
            };
            writes.push(bad);
            is_bad.push(true);
        }
    }

    let outcomes = run_concurrently(&store, &writes).await;
    for ((write, bad), outcome) in writes.iter().zip(&is_bad).zip(&outcomes) {
        if *bad {
            assert!(
                matches!(outcome, Err(Failure::Store(StoreError::Backend(_)))),
                "a write that breaks a constraint must be refused with \
                 StoreError::Backend: {write:?} → {outcome:?}"
            );
        } else {
            assert!(
                outcome.is_ok(),
                "a good write must succeed beside failing ones: {outcome:?}"
            );
        }
    }

    // The bad writes left nothing behind.
    for id in orphans {
        assert_eq!(store.session(id).await.expect("session"), None);
    }
    assert_eq!(
        get_session(&*store, existing_session.id).await,
        existing_session
    );
    // The good ones are all there.
    for s in &good_sessions {
        assert_eq!(
            store
                .session_and_user(s.id)
                .await
                .expect("session_and_user"),
            Some((s.clone(), owner.clone()))
        );
    }
    assert_eq!(
        sorted_keys(store.signing_keys().await.expect("signing_keys")),
        sorted_keys(good_keys)
    );
    assert_eq!(live(&*store, T0).await, sorted(good_revocations));

    // Each bad kind also fails on its own, with a non-retryable error.
    assert_rejected(
        store.insert_signing_key(&existing_key).await,
        "insert_signing_key with an existing kid",
    );
    assert_rejected(
        store.insert_session(&session(Uuid::new_v4())).await,
        "insert_session for an unknown user",
    );
    assert_rejected(
        store.insert_session(&existing_session).await,
        "insert_session with an existing id",
    );
}

/// Opening an existing database again (schema already migrated) keeps every
/// row and leaves a schema that accepts new writes; a third opening sees
/// the writes of the first two.
pub async fn reopen_keeps_data_and_schema(backend: &impl Backend) {
    let owner = user("peggy");
    let s = session(owner.id);
    let key = signing_key("k-first", KeyState::Current);
    let entry = Revocation {
        kind: RevocationKind::Token,
        id: "jti-first".to_owned(),
        expires_at: T0 + DAY,
    };
    {
        let store = backend.open().await;
        must_insert_user(&*store, &owner).await;
        store.insert_session(&s).await.expect("insert_session");
        store.insert_signing_key(&key).await.expect("insert key");
        store.insert_revocation(&entry).await.expect("insert rev");
    }

    let advanced = Session {
        counter: 1,
        last_refreshed_at: T0 + 60,
        ..s.clone()
    };
    let second_owner = user("quentin");
    let second_key = signing_key("k-second", KeyState::Next);
    {
        let store = backend.open().await;
        assert_eq!(
            store
                .session_and_user(s.id)
                .await
                .expect("session_and_user"),
            Some((s.clone(), owner.clone()))
        );
        assert_eq!(
            store.signing_keys().await.expect("signing_keys"),
            vec![key.clone()]
        );
        assert_eq!(live(&*store, T0).await, vec![entry.clone()]);

        // The schema still enforces its rules after reopening...
        assert!(!store.insert_user(&user("peggy")).await.expect("insert"));
        assert_rejected(
            store.insert_signing_key(&key).await,
            "insert_signing_key with an existing kid after reopening",
        );
        // ...and takes new writes.
        assert!(store
            .advance_session(s.id, 0, T0 + 60, &refreshed(s.id, T0 + 60))
            .await
            .expect("advance_session"));
        must_insert_user(&*store, &second_owner).await;
        store
            .insert_signing_key(&second_key)
            .await
            .expect("insert key");
    }

    let store = backend.open().await;
    assert_eq!(get_session(&*store, s.id).await, advanced);
    for u in [&owner, &second_owner] {
        assert_eq!(
            store
                .user_by_key(&u.username_key)
                .await
                .expect("user_by_key"),
            Some(u.clone())
        );
    }
    assert_eq!(
        sorted_keys(store.signing_keys().await.expect("signing_keys")),
        sorted_keys(vec![key, second_key])
    );
    assert_eq!(live(&*store, T0).await, vec![entry]);
}

/// Several handles opened at the same moment on one fresh database (nodes
/// starting together) all open, agree on one schema, and see each other's
/// writes; the data outlives them all. A race shows only sometimes, so this
/// is repeated on several fresh databases, each made by `make`.
pub async fn concurrent_first_opens_share_one_schema<B: Backend + Sync>(make: impl Fn() -> B) {
    const ROUNDS: usize = 10;
    for round in 0..ROUNDS {
        first_opens_round(&make(), round).await;
    }
}

async fn first_opens_round(backend: &(impl Backend + Sync), round: usize) {
    const NODES: usize = 4;
    let runtime = tokio::runtime::Handle::current();
    let start = std::sync::Barrier::new(NODES);
    // Real threads: opening may block (SQLite opens synchronously).
    let opened: Vec<Option<Arc<dyn Store>>> = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let threads: Vec<_> = (0..NODES)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        runtime.block_on(backend.open())
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().ok()).collect()
        })
    });
    let failed = opened.iter().filter(|s| s.is_none()).count();
    assert_eq!(
        failed, 0,
        "round {round}: {failed} of {NODES} concurrent opens failed"
    );
    let nodes: Vec<Arc<dyn Store>> = opened.into_iter().flatten().collect();

    let owner = user("rupert");
    must_insert_user(&*nodes[0], &owner).await;
    let s = session(owner.id);
    nodes[1].insert_session(&s).await.expect("insert_session");
    for node in &nodes {
        assert_eq!(
            node.session_and_user(s.id).await.expect("session_and_user"),
            Some((s.clone(), owner.clone()))
        );
        assert!(!node.insert_user(&user("rupert")).await.expect("insert"));
    }
    drop(nodes);

    let store = backend.open().await;
    assert_eq!(get_session(&*store, s.id).await, s);
}

// ---------------------------------------------------------------------------
// Sign-in throttling counters
// ---------------------------------------------------------------------------

const WINDOW: i64 = 900;

/// 2 free attempts, then 1, 2, 4 s between attempts, capped at 4.
fn rule(free: u32) -> ThrottleRule {
    ThrottleRule {
        free_failures: free,
        window_seconds: WINDOW,
        base_delay_seconds: 1,
        max_delay_seconds: 4,
    }
}

async fn reserve(store: &dyn Store, keys: &[&str], now: UnixTime) -> Admission {
    let keys: Vec<(String, ThrottleRule)> = keys.iter().map(|k| (k.to_string(), rule(2))).collect();
    store.reserve_attempt(&keys, now).await.expect("reserve")
}

async fn admitted(store: &dyn Store, keys: &[&str], now: UnixTime) -> Vec<ThrottleEntry> {
    match reserve(store, keys, now).await {
        Admission::Admitted(entries) => entries,
        refused => panic!("refused at {now}: {refused:?}"),
    }
}

async fn counters(store: &dyn Store, keys: &[&str]) -> Vec<ThrottleEntry> {
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    let mut entries = store.throttle_entries(&keys).await.expect("read");
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    entries
}

pub async fn attempts_are_counted_refused_while_blocked_and_decay(backend: &impl Backend) {
    let store = backend.open().await;
    assert!(counters(&*store, &["user:zoë"]).await.is_empty());
    let keys = ["user:zoë", "ip:10.0.0.1"];
    let first = admitted(&*store, &keys, T0).await;
    assert_eq!(first.len(), 2);
    for e in &first {
        assert_eq!(
            (e.failures, e.last_failure_at, e.blocked_until),
            (1, T0, T0)
        );
    }
    // The second attempt uses the allowance up: the next must wait 1 s.
    let second = admitted(&*store, &keys, T0).await;
    assert!(second
        .iter()
        .all(|e| (e.failures, e.blocked_until) == (2, T0 + 1)));
    let Admission::Refused(seen) = reserve(&*store, &keys, T0).await else {
        panic!("a blocked key must refuse");
    };
    assert_eq!(counters(&*store, &keys).await.len(), 2);
    assert!(seen.iter().all(|e| e.failures == 2), "{seen:?}");
    assert_eq!(counters(&*store, &keys).await, {
        let mut s = second.clone();
        s.sort_by(|a, b| a.key.cmp(&b.key));
        s
    });
    // Delays double up to the cap.
    let mut now = T0 + 1;
    for expected in [2, 4, 4, 4] {
        let e = admitted(&*store, &["user:zoë"], now).await;
        assert_eq!(e[0].blocked_until, now + expected, "at {now}");
        assert!(matches!(
            reserve(&*store, &["user:zoë"], now + expected - 1).await,
            Admission::Refused(_)
        ));
        now += expected;
    }
    // A whole window after the last attempt, counting starts again.
    let later = now + WINDOW;
    let e = admitted(&*store, &["user:zoë"], later).await;
    assert_eq!((e[0].failures, e[0].blocked_until), (1, later));
}

pub async fn a_refused_attempt_counts_under_no_key(backend: &impl Backend) {
    let store = backend.open().await;
    admitted(&*store, &["ip:10.0.0.2"], T0).await;
    admitted(&*store, &["ip:10.0.0.2"], T0).await;
    // The account is free but the address is blocked: nothing is counted,
    // and no counter appears for the account.
    let Admission::Refused(seen) = reserve(&*store, &["user:ann", "ip:10.0.0.2"], T0).await else {
        panic!("the address is blocked");
    };
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(counters(&*store, &["user:ann"]).await.is_empty());
    assert_eq!(counters(&*store, &["ip:10.0.0.2"]).await[0].failures, 2);
}

pub async fn concurrent_attempts_admit_at_most_the_allowance(backend: &impl Backend) {
    let store = backend.open().await;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            // Half of them also name a second key, in the other order.
            let keys: Vec<(String, ThrottleRule)> = if i % 2 == 0 {
                vec![("user:x".into(), rule(5)), ("ip:10.0.0.9".into(), rule(50))]
            } else {
                vec![("ip:10.0.0.9".into(), rule(50)), ("user:x".into(), rule(5))]
            };
            tokio::spawn(async move { store.reserve_attempt(&keys, T0).await.expect("reserve") })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        if matches!(t.await.expect("task"), Admission::Admitted(_)) {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5);
    let c = counters(&*store, &["ip:10.0.0.9", "user:x"]).await;
    assert_eq!((c[0].failures, c[1].failures), (5, 5), "{c:?}");
}

pub async fn released_attempts_are_taken_back_with_the_block_they_set(backend: &impl Backend) {
    let store = backend.open().await;
    let key = "ip:10.0.0.3";
    let first = admitted(&*store, &[key], T0).await.remove(0);
    let second = admitted(&*store, &[key], T0).await.remove(0);
    assert_eq!((second.failures, second.blocked_until), (2, T0 + 1));
    // The second succeeded: its count and the block it set go with it.
    store.release_attempt(&second).await.expect("release");
    let c = counters(&*store, &[key]).await;
    assert_eq!((c[0].failures, c[0].blocked_until), (1, T0));
    let third = admitted(&*store, &[key], T0).await.remove(0);
    assert_eq!((third.failures, third.blocked_until), (2, T0 + 1));
    // An older attempt taken back after a newer one was counted leaves the
    // newer one's block alone.
    store.release_attempt(&first).await.expect("release");
    let c = counters(&*store, &[key]).await;
    assert_eq!((c[0].failures, c[0].blocked_until), (1, T0 + 1));
    // Never below zero; a key without a counter is left without one.
    for _ in 0..3 {
        store.release_attempt(&first).await.expect("release");
    }
    assert_eq!(counters(&*store, &[key]).await[0].failures, 0);
    let nobody = ThrottleEntry {
        key: "ip:nobody".into(),
        ..first
    };
    store.release_attempt(&nobody).await.expect("release");
    assert!(counters(&*store, &["ip:nobody"]).await.is_empty());
}

pub async fn sign_in_failures_clear_and_prune(backend: &impl Backend) {
    let store = backend.open().await;
    for key in ["user:a", "user:b", "user:c"] {
        admitted(&*store, &[key], T0).await;
        admitted(&*store, &[key], T0).await;
    }
    admitted(&*store, &["user:d"], T0 + 100).await;
    assert!(store.clear_sign_in_failures("user:a").await.expect("clear"));
    assert!(!store.clear_sign_in_failures("user:a").await.expect("clear"));
    // b and c are blocked until T0 + 1; d's attempt was later.
    assert_eq!(
        store
            .prune_sign_in_failures(T0 + 50, T0, 10)
            .await
            .expect("prune"),
        0,
        "still blocked"
    );
    assert_eq!(
        store
            .prune_sign_in_failures(T0 + 50, T0 + 50, 1)
            .await
            .expect("prune"),
        1
    );
    assert_eq!(
        store
            .prune_sign_in_failures(T0 + 50, T0 + 50, 10)
            .await
            .expect("prune"),
        1
    );
    let left = counters(&*store, &["user:a", "user:b", "user:c", "user:d"]).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].key, "user:d");
}

/// The store counts exactly as core's `ThrottleRule::count_attempt` says,
/// for rules at the edges, attempting each time as soon as it is allowed.
pub async fn attempts_follow_the_rule_core_defines(backend: &impl Backend) {
    let store = backend.open().await;
    for (i, free) in [0u32, 1, 5, u32::MAX].into_iter().enumerate() {
        let rule = ThrottleRule {
            free_failures: free,
            window_seconds: WINDOW,
            base_delay_seconds: 3,
            max_delay_seconds: 100,
        };
        let key = format!("user:rule{i}");
        let keys = [(key.clone(), rule)];
        let mut expected: Option<ThrottleEntry> = None;
        let mut now = T0;
        for _ in 0..12 {
            let Admission::Admitted(entries) =
                store.reserve_attempt(&keys, now).await.expect("reserve")
            else {
                panic!("free {free}: refused at {now}");
            };
            let want = rule.count_attempt(&key, expected.as_ref(), now);
            assert_eq!(entries, vec![want.clone()], "free {free}");
            now = want.blocked_until.max(now);
            expected = Some(want);
        }
    }
}

// ---------------------------------------------------------------------------
// Audit log
// ---------------------------------------------------------------------------

pub async fn audit_events_round_trip_and_filter(backend: &impl Backend) {
    use latchkey_core::audit::{AuditEvent, AuditKind, AuditQuery, Outcome};
    let store = backend.open().await;
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let mut written = Vec::new();
    for (i, kind) in AuditKind::ALL.into_iter().enumerate() {
        for (j, outcome) in [Outcome::Success, Outcome::Failure, Outcome::Throttled]
            .into_iter()
            .enumerate()
        {
            let n = (i * 3 + j) as i64;
            let event = AuditEvent {
                at: T0 + n,
                kind,
                outcome,
                user_id: match n % 3 {
                    0 => Some(alice),
                    1 => Some(bob),
                    _ => None,
                },
                session_id: (n % 2 == 0).then(Uuid::new_v4),
                ip: (n % 4 != 0).then(|| format!("10.0.0.{n}")),
                count: 1 + (n % 5) as u32 * 1000,
                // Old rows and aggregated ones have none.
                request_id: (n % 3 != 2).then(|| format!("req-{n}.a_B-9")),
                // Only operators' actions name who acted.
                actor: (n % 2 == 1).then(|| format!("client:ops-{n}")),
            };
            store.insert_audit_event(&event).await.expect("insert");
            written.push(event);
        }
    }
    let query = |user_id, since, limit| AuditQuery {
        user_id,
        since,
        limit,
    };
    let all = store
        .audit_events(&query(None, None, 1000))
        .await
        .expect("read");
    assert_eq!(all, written);
    let last = store
        .audit_events(&query(None, None, 4))
        .await
        .expect("read");
    assert_eq!(last, written[written.len() - 4..].to_vec());
    let alices = store
        .audit_events(&query(Some(alice), None, 1000))
        .await
        .expect("read");
    assert_eq!(
        alices,
        written
            .iter()
            .filter(|e| e.user_id == Some(alice))
            .cloned()
            .collect::<Vec<_>>()
    );
    let recent_bob = store
        .audit_events(&query(Some(bob), Some(T0 + 10), 2))
        .await
        .expect("read");
    let expected: Vec<_> = written
        .iter()
        .filter(|e| e.user_id == Some(bob) && e.at >= T0 + 10)
        .cloned()
        .collect();
    assert_eq!(recent_bob, expected[expected.len() - 2..].to_vec());
}

pub async fn audit_events_are_pruned_by_age_in_batches(backend: &impl Backend) {
    use latchkey_core::audit::{AuditEvent, AuditKind, AuditQuery, Outcome};
    let store = backend.open().await;
    for i in 0..7 {
        let event = AuditEvent {
            at: T0 + i,
            kind: AuditKind::SignIn,
            outcome: Outcome::Throttled,
            user_id: None,
            session_id: None,
            ip: Some("10.0.0.1".into()),
            count: 40,
            request_id: None,
            actor: None,
        };
        store.insert_audit_event(&event).await.expect("insert");
    }
    assert_eq!(store.prune_audit_events(T0 + 5, 3).await.expect("prune"), 3);
    assert_eq!(store.prune_audit_events(T0 + 5, 3).await.expect("prune"), 2);
    assert_eq!(store.prune_audit_events(T0 + 5, 3).await.expect("prune"), 0);
    let left = store
        .audit_events(&AuditQuery {
            user_id: None,
            since: None,
            limit: 100,
        })
        .await
        .expect("read");
    assert_eq!(
        left.iter().map(|e| (e.at, e.count)).collect::<Vec<_>>(),
        vec![(T0 + 5, 40), (T0 + 6, 40)]
    );
}

// ---------------------------------------------------------------------------
// Opening a session (a sign-in's writes)
// ---------------------------------------------------------------------------

/// The audit event of the sign-in that opens `s`.
fn signed_in(s: &Session) -> AuditEvent {
    AuditEvent {
        at: s.created_at,
        kind: AuditKind::SignIn,
        outcome: Outcome::Success,
        user_id: Some(s.user_id),
        session_id: Some(s.id),
        ip: s.ip.clone(),
        count: 1,
        request_id: Some(format!("sign-in-{}", s.id)),
        actor: None,
    }
}

/// `s` opened with its audit event, giving `attempt` back, keeping `keep`
/// live sessions whose ended ones' entries expire at `entries_expire`.
fn opening(
    s: &Session,
    attempt: AttemptTakeBack,
    keep: usize,
    entries_expire: UnixTime,
) -> SessionOpening {
    SessionOpening {
        session: s.clone(),
        audit: signed_in(s),
        attempt,
        limit: SessionLimit {
            keep,
            reason: "session_limit",
            entry_expires_at: entries_expire,
        },
    }
}

pub async fn open_session_writes_the_session_its_audit_row_and_gives_the_attempt_back(
    backend: &impl Backend,
) {
    let store = backend.open().await;
    let owner = user("quinn");
    must_insert_user(&*store, &owner).await;
    let (account, address) = ("user:quinn", "ip:192.0.2.7");
    admitted(&*store, &[account, address], T0).await;
    let counted = admitted(&*store, &[account, address], T0).await;
    let reserved = counted
        .into_iter()
        .find(|e| e.key == address)
        .expect("the address's counter");
    assert_eq!((reserved.failures, reserved.blocked_until), (2, T0 + 1));

    let s = session(owner.id);
    let back = AttemptTakeBack {
        clear: Some(account.into()),
        release: Some(reserved),
    };
    let ended = store
        .open_session(&opening(&s, back, 50, T0 + 900))
        .await
        .expect("open_session");
    assert!(ended.is_empty(), "within the limit: {ended:?}");
    assert_eq!(get_session(&*store, s.id).await, s);
    let own_events = AuditQuery {
        user_id: Some(owner.id),
        since: None,
        limit: 10,
    };
    let events = store.audit_events(&own_events).await.expect("audit");
    assert_eq!(events, vec![signed_in(&s)]);
    // The account's counter is gone; the address has its attempt back, and
    // the block that attempt set with it.
    let c = counters(&*store, &[account, address]).await;
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(
        (c[0].key.as_str(), c[0].failures, c[0].blocked_until),
        (address, 1, T0)
    );

    // Nothing to give back (throttling off): the counters stay.
    let other = session(owner.id);
    let ended = store
        .open_session(&opening(&other, AttemptTakeBack::default(), 50, T0 + 900))
        .await
        .expect("open_session");
    assert!(ended.is_empty());
    assert_eq!(counters(&*store, &[account, address]).await, c);
    assert_eq!(get_session(&*store, other.id).await, other);
    let events = store.audit_events(&own_events).await.expect("audit");
    assert_eq!(events, vec![signed_in(&s), signed_in(&other)]);
    assert!(live(&*store, T0).await.is_empty(), "no session ended");
}

pub async fn open_session_ends_the_least_recently_used_beyond_the_limit(backend: &impl Backend) {
    let store = backend.open().await;
    let owner = user("olga");
    let other = user("pete");
    for u in [&owner, &other] {
        must_insert_user(&*store, u).await;
    }
    // Refreshed at T0 + 0..5; the one refreshed last is the most recent.
    let live: Vec<Session> = (0..5)
        .map(|i| Session {
            last_refreshed_at: T0 + i,
            ..session(owner.id)
        })
        .collect();
    let revoked = Session {
        revoked_at: Some(T0),
        revoke_reason: Some("signed_out".into()),
        ..session(owner.id)
    };
    let expired = Session {
        expires_at: T0 - 1,
        ..session(owner.id)
    };
    for s in live.iter().chain([&revoked, &expired, &session(other.id)]) {
        store.insert_session(s).await.expect("insert_session");
    }
    let now = T0 + 10;
    let signed_in_now = || Session {
        created_at: now,
        last_refreshed_at: now,
        ..session(owner.id)
    };
    // The new session counts: five live and one new are within six.
    let first = signed_in_now();
    let none = store
        .open_session(&opening(&first, AttemptTakeBack::default(), 6, now + 900))
        .await
        .expect("open_session");
    assert!(none.is_empty(), "within the limit: {none:?}");
    // Seven live, five kept: the two least recently refreshed end.
    let second = signed_in_now();
    let ended = store
        .open_session(&opening(&second, AttemptTakeBack::default(), 5, now + 900))
        .await
        .expect("open_session");
    assert_eq!(sorted_ids(ended), sorted_ids(vec![live[0].id, live[1].id]));
    for s in &live[..2] {
        let got = get_session(&*store, s.id).await;
        assert_eq!(got.revoked_at, Some(now));
        assert_eq!(got.revoke_reason.as_deref(), Some("session_limit"));
    }
    for s in live[2..].iter().chain([&first, &second]) {
        assert_eq!(get_session(&*store, s.id).await.revoked_at, None);
    }
    let entries = store.live_revocations(now).await.expect("revocations");
    let mut revoked_ids: Vec<String> = entries
        .iter()
        .filter(|e| e.kind == RevocationKind::Session && e.expires_at == now + 900)
        .map(|e| e.id.clone())
        .collect();
    revoked_ids.sort();
    let mut want = vec![live[0].id.to_string(), live[1].id.to_string()];
    want.sort();
    assert_eq!(revoked_ids, want);
    assert_eq!(entries.len(), 2, "{entries:?}");
    let others = store
        .live_sessions_of_user(other.id, now)
        .await
        .expect("sessions");
    assert_eq!(others.len(), 1, "another user's sessions are untouched");
}

pub async fn open_session_writes_nothing_when_its_session_cannot_be_inserted(
    backend: &impl Backend,
) {
    let store = backend.open().await;
    let owner = user("rhea");
    must_insert_user(&*store, &owner).await;
    let existing: Vec<Session> = (0..3)
        .map(|i| Session {
            last_refreshed_at: T0 + i,
            ..session(owner.id)
        })
        .collect();
    for s in &existing {
        store.insert_session(s).await.expect("insert_session");
    }
    let (account, address) = ("user:rhea", "ip:192.0.2.7");
    let counted = admitted(&*store, &[account, address], T0).await;
    let before = counters(&*store, &[account, address]).await;
    let back = || AttemptTakeBack {
        clear: Some(account.into()),
        release: counted.iter().find(|e| e.key == address).cloned(),
    };
    let now = T0 + 10;
    // Had they been written, the limit would have ended every other session.
    let taken_id = Session {
        created_at: now,
        last_refreshed_at: now,
        ..existing[0].clone()
    };
    let unknown_user = Session {
        created_at: now,
        last_refreshed_at: now,
        ..session(Uuid::new_v4())
    };
    for (s, what) in [
        (&taken_id, "open_session with an existing id"),
        (&unknown_user, "open_session for an unknown user"),
    ] {
        assert_rejected(
            store.open_session(&opening(s, back(), 1, now + 900)).await,
            what,
        );
    }

    for s in &existing {
        assert_eq!(&get_session(&*store, s.id).await, s);
    }
    assert_eq!(store.session(unknown_user.id).await.expect("read"), None);
    assert_eq!(counters(&*store, &[account, address]).await, before);
    let events = store
        .audit_events(&AuditQuery {
            user_id: None,
            since: None,
            limit: 10,
        })
        .await
        .expect("audit");
    assert!(events.is_empty(), "{events:?}");
    assert!(live(&*store, now).await.is_empty());
}

/// Sign-ins giving attempts back and new attempts on the same account and
/// address at once: every one completes (no deadlock between their
/// counter rows).
pub async fn concurrent_open_sessions_and_reservations_of_the_same_keys_all_complete(
    backend: &impl Backend,
) {
    const ROUNDS: usize = 5;
    const TASKS: usize = 40;
    let store = backend.open().await;
    let owner = user("sven");
    must_insert_user(&*store, &owner).await;
    let (account, address) = ("user:sven", "ip:192.0.2.7");
    let generous = rule(1_000);
    let keys = vec![
        (account.to_owned(), generous),
        (address.to_owned(), generous),
    ];
    let released = ThrottleEntry {
        key: address.into(),
        failures: 1,
        last_failure_at: T0,
        blocked_until: T0,
    };
    // A deadlock needs the two to interleave just so: several rounds.
    for _ in 0..ROUNDS {
        let tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                let store = store.clone();
                let keys = keys.clone();
                let s = session(owner.id);
                let back = AttemptTakeBack {
                    clear: Some(account.into()),
                    release: Some(released.clone()),
                };
                tokio::spawn(async move {
                    if i % 2 == 0 {
                        store.reserve_attempt(&keys, T0).await.map(drop)
                    } else {
                        let opening = opening(&s, back, usize::MAX, T0 + 900);
                        store.open_session(&opening).await.map(drop)
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task").expect("every write completes");
        }
    }
    assert_eq!(
        live_sessions(&*store, owner.id, T0).await.len(),
        ROUNDS * TASKS / 2
    );
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

pub async fn clients_round_trip_every_field(backend: &impl Backend) {
    use latchkey_core::client::{Client, ClientKind};
    let store = backend.open().await;
    let resource_server = Client {
        client_id: "rs:orders/1".to_owned(),
        kind: ClientKind::Confidential,
        secret_hash: Some(vec![7; 32]),
        audiences: vec!["orders".to_owned(), "Zoë".to_owned()],
        scopes: vec!["read".to_owned(), "write".to_owned()],
        access_ttl_seconds: Some(300),
        refresh_idle_timeout_seconds: Some(DAY),
        session_lifetime_seconds: Some(30 * DAY),
        introspect_any: true,
        allowed_origins: Vec::new(),
        redirect_uris: Vec::new(),
        post_logout_redirect_uris: Vec::new(),
        third_party: false,
        id_token_algorithm: None,
        created_at: T0,
    };
    let web = Client {
        created_at: T0 + 1,
        allowed_origins: vec![
            "https://app.example.com".to_owned(),
            "http://127.0.0.1:5173".to_owned(),
        ],
        redirect_uris: vec![
            "https://app.example.com/cb?from=zoë".to_owned(),
            "com.example.app:/oauth".to_owned(),
        ],
        post_logout_redirect_uris: vec!["https://app.example.com/".to_owned()],
        third_party: true,
        id_token_algorithm: Some(latchkey_core::access_token::Algorithm::EdDsa),
        ..Client::default_public("web")
    };
    for c in [&resource_server, &web] {
        assert!(store.insert_client(c).await.expect("insert"));
        assert_eq!(
            store.client(&c.client_id).await.expect("read").as_ref(),
            Some(c)
        );
    }
    assert!(!store
        .insert_client(&Client {
            introspect_any: false,
            ..resource_server.clone()
        })
        .await
        .expect("insert existing id"));
    assert_eq!(
        store.clients().await.expect("list"),
        vec![resource_server.clone(), web.clone()]
    );
    assert_eq!(store.client("nobody").await.expect("read"), None);

    // Upsert replaces the whole row, the flag included, both ways.
    let demoted = Client {
        introspect_any: false,
        scopes: Vec::new(),
        ..resource_server.clone()
    };
    store.upsert_client(&demoted).await.expect("upsert");
    assert_eq!(
        store.client(&demoted.client_id).await.expect("read"),
        Some(demoted.clone())
    );
    store.upsert_client(&resource_server).await.expect("upsert");
    assert_eq!(
        store
            .client(&resource_server.client_id)
            .await
            .expect("read"),
        Some(resource_server.clone())
    );

    assert!(store
        .set_client_secret(&resource_server.client_id, &[9; 32])
        .await
        .expect("rotate"));
    assert!(!store
        .set_client_secret("web", &[9; 32])
        .await
        .expect("public client has no secret"));
    let rotated = store
        .client(&resource_server.client_id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(rotated.secret_hash, Some(vec![9; 32]));
    assert!(rotated.introspect_any);

    assert!(store.delete_client("web").await.expect("delete"));
    assert!(!store.delete_client("web").await.expect("delete again"));
    assert_eq!(store.clients().await.expect("list"), vec![rotated]);
}

/// `signing_keys` lists keys in one order on every backend: oldest
/// `created_at` first, then by `kid` byte by byte (not by any collation:
/// upper case before lower case, ASCII before other UTF-8).
pub async fn signing_keys_are_listed_oldest_first_then_by_kid_bytes(backend: &impl Backend) {
    let store = backend.open().await;
    let key = |kid: &str, created_at: UnixTime| StoredKey {
        created_at,
        ..signing_key(kid, KeyState::Retired)
    };
    let inserted = [
        key("b", T0),
        key("\u{e9}", T0),
        key("a", T0 + 10),
        key("B", T0),
        key("z", T0 - 10),
        key("a-1", T0),
    ];
    for k in &inserted {
        store
            .insert_signing_key(k)
            .await
            .expect("insert_signing_key");
    }
    let listed: Vec<(UnixTime, String)> = store
        .signing_keys()
        .await
        .expect("signing_keys")
        .into_iter()
        .map(|k| (k.created_at, k.kid))
        .collect();
    let expected: Vec<(UnixTime, String)> = [
        (T0 - 10, "z"),
        (T0, "B"),
        (T0, "a-1"),
        (T0, "b"),
        (T0, "\u{e9}"),
        (T0 + 10, "a"),
    ]
    .into_iter()
    .map(|(at, kid)| (at, kid.to_owned()))
    .collect();
    assert_eq!(listed, expected);
}

/// Rotation promotes the next key that comes first in that order, retires
/// the current one, inserts the new next key, and changes nothing when the
/// expected current key is no longer current.
pub async fn rotation_promotes_the_oldest_next_key(backend: &impl Backend) {
    let store = backend.open().await;
    let next = |kid: &str, created_at: UnixTime| StoredKey {
        created_at,
        ..signing_key(kid, KeyState::Next)
    };
    for k in [
        signing_key("current", KeyState::Current),
        next("n-late", T0 - 5),
        next("n-b", T0 - 10),
        next("N-a", T0 - 10),
    ] {
        store
            .insert_signing_key(&k)
            .await
            .expect("insert_signing_key");
    }
    let now = T0 + 100;
    assert!(store
        .rotate_signing_keys("current", &next("n-new", now), now)
        .await
        .expect("rotate"));
    let states: Vec<(String, KeyState, Option<UnixTime>, Option<UnixTime>)> = store
        .signing_keys()
        .await
        .expect("signing_keys")
        .into_iter()
        .map(|k| (k.kid, k.state, k.activated_at, k.retired_at))
        .collect();
    assert_eq!(
        states,
        vec![
            ("N-a".to_owned(), KeyState::Current, Some(now), None),
            ("n-b".to_owned(), KeyState::Next, None, None),
            ("n-late".to_owned(), KeyState::Next, None, None),
            (
                "current".to_owned(),
                KeyState::Retired,
                Some(T0 + 1),
                Some(now)
            ),
            ("n-new".to_owned(), KeyState::Next, None, None),
        ]
    );

    let before = store.signing_keys().await.expect("signing_keys");
    assert!(!store
        .rotate_signing_keys("current", &next("n-newer", now + 1), now + 1)
        .await
        .expect("stale rotation"));
    assert_eq!(store.signing_keys().await.expect("signing_keys"), before);
}

/// The refresh's one-step read and rotation, in every state the guard
/// looks at: it moves (and appends the audit row, with the session's user)
/// exactly when `RotationGuard::admits` the session as read, and it returns
/// the session as it was before.
pub async fn read_and_advance_moves_exactly_when_the_guard_admits(backend: &impl Backend) {
    let store = backend.open().await;
    let owner = user("ivan");
    must_insert_user(&*store, &owner).await;
    let rules = RefreshRules {
        grace_seconds: 10,
        idle_timeout_seconds: 100,
    };
    let now = T0 + 50;
    let guard = |counter: u64, client: &str| RotationGuard {
        counter,
        client_id: client.to_owned(),
        now,
        rules,
    };
    let admitted = guard(1, "web");
    let fresh = |edit: &dyn Fn(&mut Session)| {
        let mut s = session(owner.id);
        s.counter = 1;
        edit(&mut s);
        s
    };
    let cases: Vec<(&str, Session, RotationGuard)> = vec![
        ("current token", fresh(&|_| {}), admitted.clone()),
        ("previous token", fresh(&|_| {}), guard(0, "web")),
        ("future token", fresh(&|_| {}), guard(2, "web")),
        ("another client", fresh(&|_| {}), guard(1, "cli")),
        (
            "revoked",
            fresh(&|s| s.revoked_at = Some(T0 + 1)),
            admitted.clone(),
        ),
        ("expired", fresh(&|s| s.expires_at = now), admitted.clone()),
        (
            "idle",
            fresh(&|s| s.last_refreshed_at = now - 100),
            admitted.clone(),
        ),
        (
            "just not idle",
            fresh(&|s| s.last_refreshed_at = now - 99),
            admitted.clone(),
        ),
    ];
    let mut expected_audit = Vec::new();
    for (case, s, guard) in cases {
        store.insert_session(&s).await.expect("insert");
        let (before, read_user, moved) = store
            .read_and_advance(s.id, &guard, &refreshed(s.id, now))
            .await
            .expect("read_and_advance")
            .expect("the session exists");
        assert_eq!(before, s, "{case}: the session as it was");
        assert_eq!(read_user, owner, "{case}: its user");
        assert_eq!(
            moved,
            guard.admits(&s),
            "{case}: moved exactly when admitted"
        );
        let after = get_session(&*store, s.id).await;
        if moved {
            assert_eq!((after.counter, after.last_refreshed_at), (2, now), "{case}");
            expected_audit.push(AuditEvent {
                user_id: Some(owner.id),
                ..refreshed(s.id, now)
            });
        } else {
            assert_eq!(after, s, "{case}: nothing moved");
        }
    }
    assert_eq!(
        expected_audit.len(),
        2,
        "the current token, and just not idle"
    );
    let mut audited = store
        .audit_events(&AuditQuery {
            user_id: None,
            since: None,
            limit: 100,
        })
        .await
        .expect("audit_events");
    audited.sort_by_key(|e| e.session_id);
    expected_audit.sort_by_key(|e| e.session_id);
    assert_eq!(
        audited, expected_audit,
        "one row per rotation, none otherwise"
    );
    assert!(store
        .read_and_advance(Uuid::new_v4(), &admitted, &refreshed(Uuid::nil(), now))
        .await
        .expect("read_and_advance")
        .is_none());
}

// ---------------------------------------------------------------------------
// Health and gauges
// ---------------------------------------------------------------------------

pub async fn count_live_sessions_counts_every_users_unrevoked_unexpired_sessions(
    backend: &impl Backend,
) {
    let store = backend.open().await;
    assert_eq!(store.count_live_sessions(T0).await.expect("count"), 0);
    let (a, b) = (user("lena"), user("mads"));
    for u in [&a, &b] {
        must_insert_user(&*store, u).await;
    }
    let live = [session(a.id), session(a.id), session(b.id)];
    let expired = Session {
        expires_at: T0 + 10,
        ..session(b.id)
    };
    let revoked = session(a.id);
    for s in live.iter().chain([&expired, &revoked]) {
        store.insert_session(s).await.expect("insert session");
    }
    store
        .revoke_session(revoked.id, T0, "test", &sid_entry(revoked.id, T0 + DAY))
        .await
        .expect("revoke");
    assert_eq!(store.count_live_sessions(T0).await.expect("count"), 4);
    // At its `expires_at` a session is no longer live.
    assert_eq!(store.count_live_sessions(T0 + 10).await.expect("count"), 3);
    assert_eq!(
        store
            .count_live_sessions(T0 + 30 * DAY)
            .await
            .expect("count"),
        0
    );
}

pub async fn ping_answers_on_an_open_store(backend: &impl Backend) {
    let store = backend.open().await;
    store.ping().await.expect("ping");
    // Pinging writes nothing: a second one and normal writes still work.
    store.ping().await.expect("second ping");
    must_insert_user(&*store, &user("nils")).await;
}

// ---------------------------------------------------------------------------
// One-time account tokens
// ---------------------------------------------------------------------------

fn account_token(
    user_id: Uuid,
    purpose: AccountTokenPurpose,
    seed: u8,
    expires_at: UnixTime,
) -> StoredAccountToken {
    StoredAccountToken {
        token_hash: [seed; 32],
        user_id,
        purpose,
        email: (purpose == AccountTokenPurpose::EmailVerification)
            .then(|| format!("u{seed}@example.com")),
        created_at: T0,
        expires_at,
    }
}

pub async fn account_tokens_are_single_use_expire_and_void_older_ones(backend: &impl Backend) {
    use AccountTokenPurpose::{EmailVerification, PasswordReset};
    let store = backend.open().await;
    let (ann, bob) = (user("ann"), user("bob"));
    must_insert_user(&*store, &ann).await;
    must_insert_user(&*store, &bob).await;
    let issue = |t: StoredAccountToken| {
        let store = store.clone();
        async move { store.issue_account_token(&t).await.expect("issue") }
    };
    let take = |seed: u8, purpose, now| {
        let store = store.clone();
        async move {
            store
                .take_account_token(&[seed; 32], purpose, now)
                .await
                .expect("take")
        }
    };

    let first = account_token(ann.id, PasswordReset, 1, T0 + 1800);
    issue(first.clone()).await;
    issue(account_token(ann.id, EmailVerification, 2, T0 + DAY)).await;
    issue(account_token(bob.id, PasswordReset, 3, T0 + 1800)).await;
    // A newer reset link voids the older one, not the other purpose's or
    // another user's.
    issue(account_token(ann.id, PasswordReset, 4, T0 + 1800)).await;
    assert_eq!(take(1, PasswordReset, T0).await, None);
    // The wrong purpose takes nothing, and leaves the token.
    assert_eq!(take(2, PasswordReset, T0).await, None);
    let verification = take(2, EmailVerification, T0).await.expect("verification");
    assert_eq!(
        verification,
        account_token(ann.id, EmailVerification, 2, T0 + DAY)
    );
    assert_eq!(take(2, EmailVerification, T0).await, None, "single use");
    // Expired at its `expires_at`.
    assert_eq!(take(3, PasswordReset, T0 + 1800).await, None);
    assert_eq!(
        take(4, PasswordReset, T0 + 1799).await.map(|t| t.user_id),
        Some(ann.id)
    );

    // Of concurrent takers, exactly one gets it.
    issue(account_token(bob.id, PasswordReset, 5, T0 + 1800)).await;
    let takers: Vec<_> = (0..8)
        .map(|_| tokio::spawn(take(5, PasswordReset, T0)))
        .collect();
    let mut got = 0;
    for t in takers {
        got += usize::from(t.await.expect("join").is_some());
    }
    assert_eq!(got, 1);

    // Pruning removes expired ones only, a batch at a time.
    let live = account_token(bob.id, PasswordReset, 6, T0 + 1800);
    issue(live.clone()).await;
    for seed in 10..13 {
        let u = user(&format!("expired{seed}"));
        must_insert_user(&*store, &u).await;
        issue(account_token(u.id, PasswordReset, seed, T0)).await;
    }
    assert_eq!(store.prune_account_tokens(T0, 2).await.expect("prune"), 2);
    assert_eq!(store.prune_account_tokens(T0, 2).await.expect("prune"), 1);
    assert_eq!(store.prune_account_tokens(T0, 2).await.expect("prune"), 0);
    assert_eq!(take(6, PasswordReset, T0).await, Some(live));
}

// ---------------------------------------------------------------------------
// Email addresses and the mail outbox
// ---------------------------------------------------------------------------

pub async fn email_addresses_are_unique_and_verified_only_while_unchanged(backend: &impl Backend) {
    let store = backend.open().await;
    let (ann, bob) = (user("ann"), user("bob"));
    must_insert_user(&*store, &ann).await;
    must_insert_user(&*store, &bob).await;
    let ann_mail = Email::parse("Ann@Example.com").expect("email");
    assert!(store.set_email(ann.id, &ann_mail).await.expect("set"));
    let found = store
        .user_by_email("ann@example.com")
        .await
        .expect("read")
        .expect("found by key");
    assert_eq!(found.id, ann.id);
    assert_eq!(found.email.as_ref(), Some(&ann_mail));
    assert_eq!(found.email_verified_at, None);
    // Another account cannot take it, in any case.
    let upper = Email::parse("ANN@example.COM").expect("email");
    assert!(!store.set_email(bob.id, &upper).await.expect("set"));
    assert_eq!(
        store
            .user_by_id(bob.id)
            .await
            .expect("read")
            .and_then(|u| u.email),
        None
    );
    assert!(!store
        .set_email(Uuid::new_v4(), &Email::parse("x@example.com").expect("e"))
        .await
        .expect("set"));

    // Verified only while the key is the one proved.
    assert!(!store
        .mark_email_verified(ann.id, "other@example.com", T0)
        .await
        .expect("verify"));
    assert!(store
        .mark_email_verified(ann.id, "ann@example.com", T0)
        .await
        .expect("verify"));
    let read = |id| {
        let store = store.clone();
        async move { store.user_by_id(id).await.expect("read").expect("user") }
    };
    assert_eq!(read(ann.id).await.email_verified_at, Some(T0));
    // The same address again keeps its verification; a new one drops it.
    assert!(store.set_email(ann.id, &upper).await.expect("set"));
    assert_eq!(read(ann.id).await.email_verified_at, Some(T0));
    let new = Email::parse("ann@example.org").expect("email");
    assert!(store.set_email(ann.id, &new).await.expect("set"));
    let after = read(ann.id).await;
    assert_eq!(after.email, Some(new));
    assert_eq!(after.email_verified_at, None);
    // The old address is free again.
    assert!(store.set_email(bob.id, &ann_mail).await.expect("set"));
    assert_eq!(
        store
            .user_by_email("nobody@example.com")
            .await
            .expect("read"),
        None
    );
}

fn outbox_message(recipient: &str, due: UnixTime) -> OutboxMessage {
    OutboxMessage {
        id: Uuid::new_v4(),
        kind: OutboxKind::Mail,
        recipient: recipient.to_owned(),
        subject: format!("Hello {recipient}"),
        text_body: "Follow https://id.example.com/x?token=abc".to_owned(),
        html_body: "<p>Zoë</p>".to_owned(),
        created_at: T0,
        attempts: 0,
        next_attempt_at: due,
    }
}

pub async fn outbox_claims_are_leases_and_deleted_or_retried_by_their_holder(
    backend: &impl Backend,
) {
    let store = backend.open().await;
    assert_eq!(store.outbox_depth().await.expect("depth"), 0);
    let first = outbox_message("a@example.com", T0);
    let mut request = outbox_message("ann", T0 + 1);
    request.kind = OutboxKind::PasswordResetRequest;
    let later = outbox_message("c@example.com", T0 + 100);
    for m in [&later, &request, &first] {
        store.enqueue_outbox(m).await.expect("enqueue");
    }
    assert_eq!(store.outbox_depth().await.expect("depth"), 3);

    // Due ones only, oldest due first, each field as written.
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut claimed = store
        .claim_outbox(a, T0 + 1, T0 + 61, 10)
        .await
        .expect("claim");
    // In no particular order (RETURNING has none).
    claimed.sort_by(|x, y| x.recipient.cmp(&y.recipient));
    let mut expected_first = first.clone();
    expected_first.next_attempt_at = T0 + 61;
    let mut expected_request = request.clone();
    expected_request.next_attempt_at = T0 + 61;
    assert_eq!(claimed, vec![expected_first, expected_request]); // "a@…" < "ann"
                                                                 // Held: nobody else gets them while the lease runs.
    assert!(store
        .claim_outbox(b, T0 + 60, T0 + 120, 10)
        .await
        .expect("claim")
        .is_empty());
    // Only the holder deletes or retries.
    assert!(!store.delete_outbox(first.id, b).await.expect("delete"));
    assert!(!store.retry_outbox(first.id, b, T0).await.expect("retry"));
    assert!(store.delete_outbox(first.id, a).await.expect("delete"));
    assert!(
        !store.delete_outbox(first.id, a).await.expect("delete"),
        "once"
    );
    assert!(store
        .retry_outbox(request.id, a, T0 + 30)
        .await
        .expect("retry"));
    assert!(
        !store
            .retry_outbox(request.id, a, T0 + 30)
            .await
            .expect("retry"),
        "released"
    );
    let retried = store
        .claim_outbox(b, T0 + 30, T0 + 90, 10)
        .await
        .expect("claim");
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].id, request.id);
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(retried[0].kind, OutboxKind::PasswordResetRequest);
    // A lapsed lease (its holder died) is claimed again by another.
    let c = Uuid::new_v4();
    let again = store
        .claim_outbox(c, T0 + 100, T0 + 160, 1)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, request.id, "oldest due first, batch bounded");
    assert!(
        !store.delete_outbox(request.id, b).await.expect("delete"),
        "b lost it"
    );
    assert!(store.delete_outbox(request.id, c).await.expect("delete"));
    assert_eq!(store.outbox_depth().await.expect("depth"), 1);

    // Durable: a reopened store still has the waiting message.
    drop(store);
    let store = backend.open().await;
    let left = store
        .claim_outbox(a, T0 + 100, T0 + 160, 10)
        .await
        .expect("claim");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, later.id);
    assert_eq!(left[0].text_body, later.text_body);
}

pub async fn concurrent_outbox_claimers_get_disjoint_messages(backend: &impl Backend) {
    let store = backend.open().await;
    let mut ids = Vec::new();
    for i in 0..40 {
        let m = outbox_message(&format!("u{i}@example.com"), T0);
        ids.push(m.id);
        store.enqueue_outbox(&m).await.expect("enqueue");
    }
    let barrier = Arc::new(Barrier::new(8));
    let claimers: Vec<_> = (0..8)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let claim = Uuid::new_v4();
                let mut got = Vec::new();
                loop {
                    let batch = store
                        .claim_outbox(claim, T0, T0 + 60, 3)
                        .await
                        .expect("claim");
                    if batch.is_empty() {
                        break got;
                    }
                    got.extend(batch.into_iter().map(|m| m.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.expect("join"));
    }
    all.sort();
    ids.sort();
    assert_eq!(all, ids, "every message claimed exactly once");
}
