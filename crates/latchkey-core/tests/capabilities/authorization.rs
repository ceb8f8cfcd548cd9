//! The authorization-code flow's rules: what a client may ask for, the
//! browser session, consent, and codes (single use, bound, PKCE, a replay
//! ends the first use's session).

use aws_lc_rs::digest;
use latchkey_core::service::{AuthorizationGrant, CodeRequest};
use secrecy::ExposeSecret as _;

use crate::*;

const CALLBACK: &str = "https://app.example/cb";

fn app(third_party: bool) -> Client {
    Client {
        redirect_uris: vec![CALLBACK.into()],
        scopes: vec!["orders:read".into()],
        third_party,
        ..Client::default_public("app")
    }
}

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, VERIFIER.as_bytes()))
}

async fn code(w: &World, client: &Client, grant: &AuthorizationGrant) -> String {
    let user = w
        .store
        .user_by_key("alice")
        .await
        .expect("read")
        .expect("alice");
    let challenge = challenge();
    let request = CodeRequest {
        client,
        redirect_uri: CALLBACK,
        grant,
        code_challenge: &challenge,
        nonce: Some("n"),
    };
    let code = w
        .authority
        .issue_code(&request, &user, w.now())
        .await
        .expect("code");
    code.expose_secret().to_owned()
}

#[tokio::test]
async fn openid_scopes_are_the_users_to_grant_api_scopes_the_clients() {
    let w = World::new().await;
    let grant = |scope| w.authority.authorization_grant(&app(false), scope);
    let g = grant(Some("openid email orders:read")).expect("grant");
    assert_eq!(g.scope, "openid email orders:read");
    assert_eq!(g.audience, "latchkey");
    assert!(matches!(
        grant(Some("openid admin")),
        Err(AuthError::InvalidScope)
    ));
    assert_eq!(grant(None).expect("grant").scope, "orders:read");
}

#[tokio::test]
async fn the_browser_session_is_a_session_that_no_token_endpoint_takes() {
    let w = World::new().await;
    w.sign_up("alice").await;
    let before = w.verifications();
    let signed = w
        .authority
        .browser_sign_in("alice", PASSWORD, from(HOME))
        .await
        .expect("sign in");
    assert_eq!(w.verifications(), before + 1);
    assert_eq!(signed.session.client_id, "latchkey:browser");
    assert_eq!(signed.max_age_seconds, 12 * 3600);
    let (session, user) = w
        .authority
        .browser_session(&signed.cookie)
        .await
        .expect("read")
        .expect("live");
    assert_eq!(
        (session.id, user.username.as_str()),
        (signed.session.id, "alice")
    );
    // Its cookie is no refresh token.
    let client = w.default_client().await;
    assert!(matches!(
        w.authority
            .refresh(&signed.cookie, &client, None, &from(HOME))
            .await,
        Err(AuthError::InvalidGrant)
    ));
    // A wrong password opens nothing, in the one answer.
    assert!(matches!(
        w.authority
            .browser_sign_in("alice", "wrong password", from(HOME))
            .await,
        Err(AuthError::InvalidCredentials)
    ));
    // Ended like any session, and expired after its lifetime.
    w.authority
        .end_browser_session(&signed.cookie)
        .await
        .expect("end");
    assert!(w
        .authority
        .browser_session(&signed.cookie)
        .await
        .expect("read")
        .is_none());
    let again = w
        .authority
        .browser_sign_in("alice", PASSWORD, from(HOME))
        .await
        .expect("sign in");
    w.clock.advance(12 * 3600);
    assert!(w
        .authority
        .browser_session(&again.cookie)
        .await
        .expect("read")
        .is_none());
}

#[tokio::test]
async fn the_hosted_page_shares_the_password_grants_throttle_and_its_cost() {
    let w = World::new().await;
    w.sign_up("alice").await;
    // An unknown name costs the one verification a wrong password costs.
    let before = w.verifications();
    assert!(matches!(
        w.authority
            .browser_sign_in("nobody", PASSWORD, from(ELSEWHERE))
            .await,
        Err(AuthError::InvalidCredentials)
    ));
    assert_eq!(w.verifications(), before + 1);
    // Five failures on the hosted page block the account for the password
    // grant too (from an address without a session of the account).
    for _ in 0..5 {
        assert!(matches!(
            w.authority
                .browser_sign_in("alice", "wrong password", from(ELSEWHERE))
                .await,
            Err(AuthError::InvalidCredentials)
        ));
    }
    assert!(matches!(
        w.sign_in_from("alice", PASSWORD, ELSEWHERE).await,
        Err(AuthError::Throttled { .. })
    ));
    assert!(matches!(
        w.authority
            .browser_sign_in("alice", PASSWORD, from(ELSEWHERE))
            .await,
        Err(AuthError::Throttled { .. })
    ));
    let failures = w.audited(AuditKind::SignIn).await;
    assert!(
        failures
            .iter()
            .filter(|e| e.outcome == Outcome::Failure)
            .count()
            >= 6
    );
}

#[tokio::test]
async fn consent_is_asked_of_third_parties_once_per_scope_and_remembered() {
    let w = World::new().await;
    let alice = w.sign_up("alice").await;
    let partner = app(true);
    let needs = |scope: &'static str| {
        let (w, partner) = (&w, &partner);
        async move {
            w.authority
                .needs_consent(partner, alice.id, scope)
                .await
                .expect("read")
        }
    };
    assert!(!w
        .authority
        .needs_consent(&app(false), alice.id, "openid")
        .await
        .expect("read"));
    assert!(needs("openid").await);
    w.authority
        .grant_consent(&partner, alice.id, "openid profile", &from(HOME))
        .await
        .expect("consent");
    w.authority
        .grant_consent(&partner, alice.id, "email", &from(HOME))
        .await
        .expect("consent");
    assert!(
        !needs("profile openid email").await,
        "the union is remembered"
    );
    assert!(needs("openid orders:read").await);
    assert_eq!(w.audited(AuditKind::ConsentGranted).await.len(), 2);
}

#[tokio::test]
async fn a_code_is_redeemed_once_and_a_replay_ends_its_session() {
    let w = World::new().await;
    w.sign_up("alice").await;
    let client = app(false);
    let grant = w
        .authority
        .authorization_grant(&client, Some("openid orders:read"))
        .expect("grant");
    let c = code(&w, &client, &grant).await;
    let tokens = w
        .authority
        .exchange_code(&c, &client, CALLBACK, VERIFIER, &from(HOME))
        .await
        .expect("exchange");
    assert!(tokens.id_token.is_some(), "scope openid: an ID token");
    assert_eq!(tokens.scope, "openid orders:read");
    let session = w.session(&tokens).await;
    assert_eq!(session.client_id, "app");
    assert!(matches!(
        w.authority
            .exchange_code(&c, &client, CALLBACK, VERIFIER, &from(HOME))
            .await,
        Err(AuthError::InvalidCode)
    ));
    assert!(
        w.authority.authenticate(&tokens.access_token).is_err(),
        "revoked"
    );
    assert_eq!(w.audited(AuditKind::CodeReuse).await.len(), 1);

    // Bound to its redirect URI and verifier, and to 60 s.
    let c = code(&w, &client, &grant).await;
    assert!(w
        .authority
        .exchange_code(
            &c,
            &client,
            "https://app.example/other",
            VERIFIER,
            &from(HOME)
        )
        .await
        .is_err());
    let c = code(&w, &client, &grant).await;
    w.clock.advance(61);
    assert!(matches!(
        w.authority
            .exchange_code(&c, &client, CALLBACK, VERIFIER, &from(HOME))
            .await,
        Err(AuthError::InvalidCode)
    ));
}
