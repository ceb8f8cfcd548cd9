//! Operators' account work: disabling, roles, deletion and invites, as
//! the administration API and the CLI call them.

use latchkey_core::service::administration::{AccountChange, NewAccount};
use latchkey_core::service::SignUpMode;
use latchkey_core::store::UserStore;
use secrecy::ExposeSecret;

use super::*;

#[tokio::test]
async fn a_session_that_outlived_its_accounts_disabling_is_ended_at_its_next_refresh() {
    let w = World::new().await;
    let user = w.sign_up("alice").await;
    let tokens = w.sign_in("alice", PASSWORD).await.expect("sign in");
    let second = w.sign_in("alice", PASSWORD).await.expect("sign in");
    // The account is disabled under the sessions' feet, as when a sign-in
    // raced the operator's disabling and opened its session after the
    // others were ended.
    let mut disabled = user.clone();
    disabled.disabled_at = Some(w.now());
    w.store.update_user(&disabled).await.expect("update");

    // The one-step rotation and the read-then-decide path (a narrowed
    // scope) both refuse and end the session.
    assert!(matches!(
        w.refresh(&tokens).await,
        Err(AuthError::InvalidGrant)
    ));
    let client = w.default_client().await;
    let narrowed = w
        .authority
        .refresh(refresh_token(&second), &client, Some(""), &from(HOME))
        .await;
    assert!(
        matches!(narrowed, Err(AuthError::InvalidGrant)),
        "{narrowed:?}"
    );
    for t in [&tokens, &second] {
        let s = w.session(t).await;
        assert_eq!(s.revoke_reason.as_deref(), Some("account_disabled"));
        assert!(matches!(
            w.authority.authenticate(&t.access_token),
            Err(AuthError::InvalidToken(TokenError::Revoked))
        ));
    }
    assert!(matches!(
        w.sign_in("alice", PASSWORD).await,
        Err(AuthError::InvalidCredentials)
    ));
}

#[tokio::test]
async fn disabling_through_the_authority_ends_sessions_and_enabling_restores_sign_in() {
    let w = World::new().await;
    let user = w.sign_up("bob").await;
    let tokens = w.sign_in("bob", PASSWORD).await.expect("sign in");
    let disable = AccountChange {
        disabled: Some(true),
        roles: Some(vec!["ops".into()]),
        ..AccountChange::default()
    };
    let changed = w
        .authority
        .admin_update_user(&user, disable, "cli", &from(HOME))
        .await
        .expect("disable");
    assert!(changed.disabled_at.is_some());
    assert_eq!(changed.roles, ["ops"]);
    assert!(w.authority.authenticate(&tokens.access_token).is_err());
    assert!(matches!(
        w.refresh(&tokens).await,
        Err(AuthError::InvalidGrant)
    ));
    let before = w.verifications();
    assert!(matches!(
        w.sign_in("bob", PASSWORD).await,
        Err(AuthError::InvalidCredentials)
    ));
    assert_eq!(
        w.verifications(),
        before + 1,
        "the password was verified first"
    );

    let enable = AccountChange {
        disabled: Some(false),
        ..AccountChange::default()
    };
    w.authority
        .admin_update_user(&changed, enable, "cli", &from(HOME))
        .await
        .expect("enable");
    let again = w.sign_in("bob", PASSWORD).await.expect("sign in");
    assert_eq!(w.claims(&again).roles, ["ops"]);
    let actors: Vec<_> = w
        .audit()
        .await
        .into_iter()
        .filter_map(|e| e.actor.map(|a| (e.kind, a)))
        .collect();
    assert_eq!(
        actors,
        [
            (AuditKind::AdminUserUpdated, "cli".to_owned()),
            (AuditKind::AdminUserDisabled, "cli".to_owned()),
            (AuditKind::AdminUserEnabled, "cli".to_owned()),
        ]
    );
}

#[tokio::test]
async fn an_account_without_a_password_takes_none_until_its_link_is_used() {
    let w = World::new().await;
    let created = w
        .authority
        .admin_create_user(
            NewAccount {
                username: "carol",
                ..NewAccount::default()
            },
            "client:ops",
            &from(HOME),
        )
        .await
        .expect("create");
    let link = created.set_password_link.expect("a link");
    assert!(link
        .link
        .expose_secret()
        .starts_with("https://latchkey.test/account/reset-password?token="));
    assert_eq!(link.expires_at, w.now() + 7 * 86_400);
    for guess in [PASSWORD, "", link.link.expose_secret()] {
        assert!(matches!(
            w.sign_in("carol", guess).await,
            Err(AuthError::InvalidCredentials)
        ));
    }
}

#[tokio::test]
async fn an_invite_is_given_back_when_its_account_cannot_be_created() {
    let w = World::with(|p| p.sign_up = SignUpMode::Invite).await;
    w.authority
        .admin_create_user(
            NewAccount {
                username: "taken",
                password: Some(PASSWORD),
                ..NewAccount::default()
            },
            "cli",
            &from(HOME),
        )
        .await
        .expect("create");
    let invite = w
        .authority
        .create_invite(Some(3600), vec!["beta".into()], "cli", &from(HOME))
        .await
        .expect("invite");
    let code = invite.code.expose_secret().to_owned();
    let sign_up = |name: &'static str, code: Option<String>| {
        let w = &w;
        async move {
            w.authority
                .sign_up(name, PASSWORD, code.as_deref(), None, &from(HOME))
                .await
        }
    };
    assert!(matches!(
        sign_up("taken", Some(code.clone())).await,
        Err(AuthError::UsernameTaken)
    ));
    assert!(matches!(
        sign_up("dora", None).await,
        Err(AuthError::InvalidInvite)
    ));
    let dora = sign_up("dora", Some(code.clone())).await.expect("invited");
    assert_eq!(dora.roles, ["beta"]);
    assert!(matches!(
        sign_up("erin", Some(code)).await,
        Err(AuthError::InvalidInvite)
    ));
}
