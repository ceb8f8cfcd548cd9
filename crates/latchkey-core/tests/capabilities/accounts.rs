//! Accounts: sign-up, the caller's account, password change.

use latchkey_core::access_token::TokenError;

use crate::*;

const NEW_PASSWORD: &str = "a brand new passphrase";

#[tokio::test]
async fn sign_up_stores_the_normalised_name_and_an_argon2id_hash() {
    let w = World::new().await;
    // Fullwidth "Ａ" is NFKC-normalised for display; the key is case-folded.
    let user = w
        .authority
        .sign_up("Ａlice", PASSWORD, None, None, &from(HOME))
        .await
        .expect("sign up");
    assert_eq!(user.username, "Alice");
    assert_eq!(user.username_key, "alice");
    assert_eq!(user.created_at, START);

    let stored = w
        .store
        .user_by_key("alice")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored, user);
    assert!(stored.password_hash.starts_with("$argon2id$"));
    assert!(!stored.password_hash.contains(PASSWORD));

    let signed_up = w.audited(AuditKind::SignUp).await;
    assert_eq!(outcomes(&signed_up), [Outcome::Success]);
    assert_eq!(signed_up[0].user_id, Some(user.id));
}

#[tokio::test]
async fn a_name_differing_only_in_case_or_width_is_taken() {
    let w = World::new().await;
    let first = w.sign_up("alice").await;
    for look_alike in ["ALICE", "ａｌｉｃｅ", "Alice"] {
        let taken = w
            .authority
            .sign_up(look_alike, PASSWORD, None, None, &from(HOME))
            .await;
        assert!(
            matches!(taken, Err(AuthError::UsernameTaken)),
            "{look_alike}: {taken:?}"
        );
    }
    let stored = w.store.user_by_key("alice").await.expect("read");
    assert_eq!(stored.map(|u| u.id), Some(first.id));
    assert_eq!(
        outcomes(&w.audited(AuditKind::SignUp).await),
        [
            Outcome::Success,
            Outcome::Failure,
            Outcome::Failure,
            Outcome::Failure
        ]
    );
}

#[tokio::test]
async fn passwords_against_the_policy_and_bad_names_store_nothing() {
    let w = World::new().await;
    let too_long = "x".repeat(1025);
    for (username, password) in [
        ("alice", "short"),
        ("alice", "password"),
        ("alice", too_long.as_str()),
        ("two words", PASSWORD),
        ("", PASSWORD),
    ] {
        let refused = w
            .authority
            .sign_up(username, password, None, None, &from(HOME))
            .await;
        assert!(
            matches!(refused, Err(AuthError::InvalidRequest(_))),
            "{username:?}/{}: {refused:?}",
            password.len()
        );
    }
    assert_eq!(w.store.user_by_key("alice").await.expect("read"), None);
}

#[tokio::test]
async fn the_callers_account_is_the_tokens_user_and_a_client_token_has_none() {
    let w = World::new().await;
    let user = w.sign_up("alice").await;
    let tokens = w.sign_in("alice", PASSWORD).await.expect("sign in");
    let me = w.authority.user(&w.claims(&tokens)).await.expect("me");
    assert_eq!(me, user);

    let (service, _) = w
        .register("reports", ClientKind::Confidential, |_| {})
        .await;
    let own = w
        .authority
        .client_credentials(&service, &Default::default())
        .expect("client credentials");
    let claims = w.claims(&own);
    assert_eq!(claims.sub, "client:reports");
    let refused = w.authority.user(&claims).await;
    assert!(matches!(refused, Err(AuthError::InvalidToken(r)) if r == TokenError::NoUser));
}

#[tokio::test]
async fn a_password_change_ends_every_other_session_and_keeps_the_callers() {
    let w = World::new().await;
    w.sign_up("alice").await;
    let here = w.sign_in("alice", PASSWORD).await.expect("sign in");
    let there = w.sign_in("alice", PASSWORD).await.expect("sign in");

    w.authority
        .change_password(&w.claims(&here), PASSWORD, NEW_PASSWORD, &from(HOME))
        .await
        .expect("change password");

    let ended = w.session(&there).await;
    assert!(ended.revoked_at.is_some());
    assert_eq!(ended.revoke_reason.as_deref(), Some("password_changed"));
    assert_eq!(w.session(&here).await.revoked_at, None);
    assert!(refused_for(
        w.authority.authenticate(&there.access_token),
        TokenError::Revoked
    ));
    w.claims(&here);
    assert!(matches!(
        w.refresh(&there).await,
        Err(AuthError::InvalidGrant)
    ));

    let old = w.sign_in("alice", PASSWORD).await;
    assert!(matches!(old, Err(AuthError::InvalidCredentials)));
    w.sign_in("alice", NEW_PASSWORD)
        .await
        .expect("new password works");
    assert_eq!(
        outcomes(&w.audited(AuditKind::PasswordChange).await),
        [Outcome::Success]
    );
}

#[tokio::test]
async fn a_wrong_current_password_changes_nothing() {
    let w = World::new().await;
    let user = w.sign_up("alice").await;
    let here = w.sign_in("alice", PASSWORD).await.expect("sign in");
    let there = w.sign_in("alice", PASSWORD).await.expect("sign in");

    let wrong = w
        .authority
        .change_password(
            &w.claims(&here),
            "not my password",
            NEW_PASSWORD,
            &from(HOME),
        )
        .await;
    assert!(matches!(wrong, Err(AuthError::WrongCurrentPassword)));

    let stored = w
        .store
        .user_by_id(user.id)
        .await
        .expect("read")
        .expect("user");
    assert_eq!(stored.password_hash, user.password_hash);
    assert_eq!(w.session(&there).await.revoked_at, None);
    assert_eq!(
        outcomes(&w.audited(AuditKind::PasswordChange).await),
        [Outcome::Failure]
    );
}

#[tokio::test]
async fn guessing_the_current_password_past_the_allowance_ends_the_session() {
    let w = World::with(|p| p.throttle.account.free_failures = 2).await;
    let user = w.sign_up("alice").await;
    let stolen = w.sign_in("alice", PASSWORD).await.expect("sign in");
    let claims = w.claims(&stolen);

    let guess = || async {
        w.authority
            .change_password(&claims, "a guess", NEW_PASSWORD, &from(ELSEWHERE))
            .await
    };
    assert!(matches!(
        guess().await,
        Err(AuthError::WrongCurrentPassword)
    ));
    assert_eq!(w.session(&stolen).await.revoked_at, None);
    // The guess that uses up the allowance ends the session that made it.
    assert!(matches!(
        guess().await,
        Err(AuthError::WrongCurrentPassword)
    ));
    let ended = w.session(&stolen).await;
    assert_eq!(ended.revoke_reason.as_deref(), Some("password_attempts"));
    assert!(refused_for(
        w.authority.authenticate(&stolen.access_token),
        TokenError::Revoked
    ));
    let lockouts = w.audited(AuditKind::Lockout).await;
    assert_eq!(lockouts.len(), 1);
    assert_eq!(lockouts[0].user_id, Some(user.id));
    assert_eq!(lockouts[0].outcome, Outcome::Throttled);
}
