//! Contracts of the store methods operators' work uses: the account list,
//! account updates and deletion, and invite codes.

use latchkey_core::email::Email;
use latchkey_core::model::{StoredInvite, UserQuery};
use latchkey_core::store::UserUpdate;

use super::*;

fn email(address: &str) -> Option<Email> {
    Some(Email {
        address: address.to_owned(),
        key: address.to_ascii_lowercase(),
    })
}

fn page(contains: &str, after: Option<&str>, limit: usize) -> UserQuery {
    UserQuery {
        contains: contains.to_owned(),
        after: after.map(str::to_owned),
        limit,
    }
}

async fn keys(store: &dyn Store, q: UserQuery) -> Vec<String> {
    store
        .users(&q)
        .await
        .expect("users")
        .into_iter()
        .map(|u| u.username_key)
        .collect()
}

pub async fn users_are_paged_by_username_key_and_filtered_by_substring(backend: &impl Backend) {
    let store = backend.open().await;
    // Inserted out of order; `%` and `_` in a name must match literally.
    // (Names whose order is the same under every collation: PostgreSQL
    // sorts by the database's.)
    for key in ["mia", "ann", "boz_x", "bobby", "zed%", "carl"] {
        let mut u = user(key);
        if key == "carl" {
            u.email = email("Carl.Bob@Example.com");
        }
        must_insert_user(&*store, &u).await;
    }
    let all = keys(&*store, page("", None, 100)).await;
    assert_eq!(all, ["ann", "bobby", "boz_x", "carl", "mia", "zed%"]);
    // Walking pages of two, each after the last key of the one before,
    // meets every account once.
    let mut walked = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let got = keys(&*store, page("", after.as_deref(), 2)).await;
        if got.is_empty() {
            break;
        }
        after = got.last().cloned();
        walked.extend(got);
    }
    assert_eq!(walked, all);
    // A substring of the username key or of the email key.
    assert_eq!(
        keys(&*store, page("bob", None, 100)).await,
        ["bobby", "carl"]
    );
    assert_eq!(
        keys(&*store, page("example.com", None, 100)).await,
        ["carl"]
    );
    assert_eq!(
        keys(&*store, page("b_b", None, 100)).await,
        Vec::<String>::new()
    );
    assert_eq!(keys(&*store, page("z_x", None, 100)).await, ["boz_x"]);
    assert_eq!(keys(&*store, page("d%", None, 100)).await, ["zed%"]);
    assert_eq!(keys(&*store, page("bob", Some("bobby"), 1)).await, ["carl"]);
}

pub async fn update_user_writes_roles_email_and_disabled_and_refuses_a_taken_email(
    backend: &impl Backend,
) {
    let store = backend.open().await;
    let mut ann = user("ann");
    ann.email = email("ann@example.com");
    ann.email_verified_at = Some(T0);
    let mut bob = user("bob");
    bob.email = email("bob@example.com");
    must_insert_user(&*store, &ann).await;
    must_insert_user(&*store, &bob).await;

    let mut changed = ann.clone();
    changed.roles = vec!["admin".into(), "ops".into()];
    changed.email = email("Ann.New@Example.com");
    changed.email_verified_at = None;
    changed.disabled_at = Some(T0 + 5);
    // Nothing else is written, whatever the value says.
    let mut sent = changed.clone();
    sent.password_hash = "other".into();
    sent.username = "other".into();
    assert_eq!(
        store.update_user(&sent).await.expect("update"),
        UserUpdate::Updated
    );
    assert_eq!(
        store.user_by_id(ann.id).await.expect("read"),
        Some(changed.clone())
    );

    // Bob's address (in any case) is his.
    let mut clash = changed.clone();
    clash.email = email("BOB@example.com");
    assert_eq!(
        store.update_user(&clash).await.expect("update"),
        UserUpdate::EmailTaken
    );
    assert_eq!(
        store.user_by_id(ann.id).await.expect("read"),
        Some(changed.clone())
    );
    // Keeping one's own address is no clash; removing it frees it.
    assert_eq!(
        store.update_user(&changed).await.expect("update"),
        UserUpdate::Updated
    );
    let mut no_email = changed.clone();
    no_email.email = None;
    no_email.disabled_at = None;
    assert_eq!(
        store.update_user(&no_email).await.expect("update"),
        UserUpdate::Updated
    );
    assert_eq!(
        store.user_by_id(ann.id).await.expect("read"),
        Some(no_email)
    );
    let mut gone = user("nobody");
    gone.email = email("nobody@example.com");
    assert_eq!(
        store.update_user(&gone).await.expect("update"),
        UserUpdate::NotFound
    );

    // An insert colliding on the email inserts nothing.
    let mut copy = user("carl");
    copy.email = email("Bob@Example.com");
    assert!(!store.insert_user(&copy).await.expect("insert"));
    assert_eq!(store.user_by_key("carl").await.expect("read"), None);
}

pub async fn delete_user_ends_sessions_then_removes_the_account_and_its_rows(
    backend: &impl Backend,
) {
    let store = backend.open().await;
    let (ann, bob) = (user("ann"), user("bob"));
    must_insert_user(&*store, &ann).await;
    must_insert_user(&*store, &bob).await;
    let (s1, s2, ended_before, theirs) = (
        session(ann.id),
        session(ann.id),
        session(ann.id),
        session(bob.id),
    );
    for s in [&s1, &s2, &ended_before, &theirs] {
        store.insert_session(s).await.expect("session");
    }
    store
        .revoke_session(
            ended_before.id,
            T0,
            "signed_out",
            &sid_entry(ended_before.id, T0 + 700),
        )
        .await
        .expect("revoke");
    store
        .issue_account_token(&StoredAccountToken {
            token_hash: [7; 32],
            user_id: ann.id,
            purpose: AccountTokenPurpose::PasswordReset,
            email: None,
            created_at: T0,
            expires_at: T0 + 1800,
        })
        .await
        .expect("token");
    let rule = ThrottleRule {
        free_failures: 5,
        window_seconds: 900,
        base_delay_seconds: 1,
        max_delay_seconds: 900,
    };
    store
        .reserve_attempt(
            &[("user:ann".to_owned(), rule), ("user:bob".to_owned(), rule)],
            T0,
        )
        .await
        .expect("attempt");

    let mut ended = store
        .delete_user(ann.id, "user:ann", T0 + 10, T0 + 640)
        .await
        .expect("delete")
        .expect("ann existed");
    ended.sort();
    let mut expected = vec![s1.id, s2.id];
    expected.sort();
    assert_eq!(ended, expected, "only the live sessions are ended");
    let live_entries = live(&*store, T0 + 10).await;
    for id in [s1.id, s2.id] {
        assert!(
            live_entries.contains(&sid_entry(id, T0 + 640)),
            "{id} revoked"
        );
    }
    assert_eq!(store.user_by_id(ann.id).await.expect("read"), None);
    assert_eq!(store.session(s1.id).await.expect("read"), None);
    assert_eq!(store.session(ended_before.id).await.expect("read"), None);
    assert_eq!(
        store
            .take_account_token(&[7; 32], AccountTokenPurpose::PasswordReset, T0)
            .await
            .expect("take"),
        None
    );
    let counters = store
        .throttle_entries(&["user:ann".to_owned(), "user:bob".to_owned()])
        .await
        .expect("entries");
    assert_eq!(
        counters.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
        ["user:bob"]
    );
    // Bob is untouched; a second delete finds no one.
    assert_eq!(get_session(&*store, theirs.id).await, theirs);
    assert!(store.user_by_id(bob.id).await.expect("read").is_some());
    assert_eq!(
        store
            .delete_user(ann.id, "user:ann", T0 + 11, T0 + 640)
            .await
            .expect("delete"),
        None
    );
    // The name is free again.
    must_insert_user(&*store, &user("ann")).await;
}

fn invite(seed: u8, expires_at: UnixTime) -> StoredInvite {
    StoredInvite {
        code_hash: [seed; 32],
        roles: vec!["beta".into(), "quote\"d".into()],
        created_by: "client:ops".into(),
        created_at: T0,
        expires_at,
    }
}

pub async fn invites_are_taken_once_before_they_expire_can_be_given_back_and_are_pruned(
    backend: &impl Backend,
) {
    let store = backend.open().await;
    let take = |seed: u8, now| {
        let store = store.clone();
        async move { store.take_invite(&[seed; 32], now).await.expect("take") }
    };
    store
        .insert_invite(&invite(1, T0 + 60))
        .await
        .expect("insert");
    store
        .insert_invite(&invite(2, T0 + 60))
        .await
        .expect("insert");
    assert_eq!(take(9, T0).await, None);
    assert_eq!(take(1, T0 + 60).await, None, "expired at its expires_at");
    let got = take(2, T0 + 59).await.expect("live");
    assert_eq!(got, invite(2, T0 + 60), "round-trips every field");
    assert_eq!(take(2, T0).await, None, "single use");
    // Given back, it can be taken again.
    store.insert_invite(&got).await.expect("give back");
    assert_eq!(take(2, T0).await, Some(got));

    // Of concurrent takers, exactly one gets it.
    store
        .insert_invite(&invite(3, T0 + 60))
        .await
        .expect("insert");
    let takers: Vec<_> = (0..8).map(|_| tokio::spawn(take(3, T0))).collect();
    let mut winners = 0;
    for t in takers {
        winners += usize::from(t.await.expect("join").is_some());
    }
    assert_eq!(winners, 1);

    // Pruning removes expired ones only, a batch at a time.
    for seed in 10..13 {
        store
            .insert_invite(&invite(seed, T0 + 30))
            .await
            .expect("insert");
    }
    store
        .insert_invite(&invite(20, T0 + 31))
        .await
        .expect("insert");
    assert_eq!(store.prune_invites(T0 + 30, 2).await.expect("prune"), 2);
    assert_eq!(store.prune_invites(T0 + 30, 2).await.expect("prune"), 1);
    assert_eq!(store.prune_invites(T0 + 30, 2).await.expect("prune"), 0);
    assert!(take(20, T0).await.is_some(), "a live invite stays");
}
