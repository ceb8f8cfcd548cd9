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
//! at once on one fresh database (required of PostgreSQL by DESIGN.md §5).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use latchkey_core::clock::UnixTime;
use latchkey_core::store::{
    KeyState, Revocation, RevocationKind, Session, Store, StoreError, StoredKey, User,
};
use tokio::sync::Barrier;
use uuid::Uuid;

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
            concurrent_advance_session_has_exactly_one_winner,
            revoke_session_happens_once,
            concurrent_revoke_session_has_exactly_one_winner,
            live_revocations_excludes_expired_entries,
            signing_keys_round_trip_and_kid_is_unique,
            concurrent_mixed_writes_are_all_visible,
            acknowledged_writes_survive_reopen,
            failing_write_fails_alone_in_its_batch,
            reopen_keeps_data_and_schema,
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
                .advance_session(original.id, stale, T0 + 1)
                .await
                .expect("advance_session"),
            "advance from {stale} must fail while the counter is 7"
        );
    }
    assert_eq!(get_session(&*store, original.id).await, original);

    assert!(store
        .advance_session(original.id, 7, T0 + 60)
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
        .advance_session(original.id, 7, T0 + 120)
        .await
        .expect("advance_session"));
    assert_eq!(get_session(&*store, original.id).await, after_one);

    // The next step works from the new counter.
    assert!(store
        .advance_session(original.id, 8, T0 + 180)
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
        .advance_session(unknown, 0, T0)
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
        .advance_session(s.id, 3, T0 + 10)
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
        .advance_session(born_revoked.id, 5, T0 + 10)
        .await
        .expect("advance_session"));
    assert_eq!(get_session(&*store, born_revoked.id).await, born_revoked);
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
                    let won = store.advance_session(s.id, from, now).await;
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
            if !store.advance_session(*id, *from, *now).await? {
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
            .advance_session(s.id, 0, T0 + 60)
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
