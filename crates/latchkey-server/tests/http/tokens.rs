//! Refresh rotation, reuse detection, the grace window, revocation,
//! cancellation, session expiry and restart, over real HTTP.

use std::collections::HashSet;

use latchkey_testkit::{error_code, TestServer, Tokens};
use serde_json::{json, Value};

async fn tokens(r: reqwest::Response) -> Tokens {
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    Tokens::from(r.json::<Value>().await.expect("json"))
}

#[tokio::test]
async fn refresh_rotates_and_old_token_dies_after_grace() {
    let s = TestServer::start().await;
    let first = s.new_session("alice").await;
    let second = tokens(s.refresh(&first.refresh).await).await;
    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access, first.access);
    assert_eq!(s.get_bearer("/v1/me", &second.access).await.status(), 200);

    // Inside the grace window the old token yields the same successor.
    s.clock.advance(9);
    let again = tokens(s.refresh(&first.refresh).await).await;
    assert_eq!(again.refresh, second.refresh);

    // After it, the old token is reuse: the session ends for everyone.
    s.clock.advance(1);
    let r = s.refresh(&first.refresh).await;
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(r).await, "invalid_grant");
    assert_eq!(s.refresh(&second.refresh).await.status(), 401);
    assert_eq!(s.get_bearer("/v1/me", &second.access).await.status(), 401);
}

#[tokio::test]
async fn replaying_an_older_token_revokes_the_session() {
    let s = TestServer::start().await;
    let t0 = s.new_session("bob").await;
    let t1 = tokens(s.refresh(&t0.refresh).await).await;
    let t2 = tokens(s.refresh(&t1.refresh).await).await;
    // t0 is two generations old: reuse even inside the grace window.
    assert_eq!(s.refresh(&t0.refresh).await.status(), 401);
    assert_eq!(s.refresh(&t2.refresh).await.status(), 401);
    assert_eq!(s.get_bearer("/v1/me", &t2.access).await.status(), 401);
    // Other sessions of the same user are untouched.
    let other = s.sign_in("bob", "correct horse battery").await;
    let other = tokens(other).await;
    assert_eq!(s.refresh(&other.refresh).await.status(), 200);
}

#[tokio::test]
async fn twenty_parallel_refreshes_converge_on_one_successor() {
    let s = TestServer::start().await;
    let t = s.new_session("carol").await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let http = s.http.clone();
        let url = s.url("/v1/tokens/refresh");
        let body = json!({"refresh_token": t.refresh});
        tasks.push(tokio::spawn(async move {
            let r = http.post(url).json(&body).send().await.expect("request");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }));
    }
    let mut successors = HashSet::new();
    for task in tasks {
        let (status, body) = task.await.expect("task");
        assert_eq!(status, 200, "{body}");
        successors.insert(body["refresh_token"].as_str().expect("token").to_owned());
    }
    assert_eq!(successors.len(), 1, "all tabs must get the same successor");
    let successor = successors.into_iter().next().expect("one");
    assert_ne!(successor, t.refresh);
    assert_eq!(s.refresh(&successor).await.status(), 200);
}

#[tokio::test]
async fn revoke_ends_the_session_and_accepts_garbage() {
    let s = TestServer::start().await;
    let t = s.new_session("dave").await;
    let r = s
        .post("/v1/tokens/revoke", json!({"refresh_token": t.refresh}))
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(s.refresh(&t.refresh).await.status(), 401);
    assert_eq!(s.get_bearer("/v1/me", &t.access).await.status(), 401);
    // Revoking again, or revoking nonsense, is not an error (RFC 7009).
    for token in [t.refresh.as_str(), "garbage", "lkr_AAAA", ""] {
        let r = s
            .post("/v1/tokens/revoke", json!({"refresh_token": token}))
            .await;
        assert_eq!(r.status(), 204, "{token}");
    }
}

#[tokio::test]
async fn cancel_kills_one_access_token_only() {
    let s = TestServer::start().await;
    let t = s.new_session("erin").await;
    let next = tokens(s.refresh(&t.refresh).await).await;
    let r = s
        .http
        .post(s.url("/v1/tokens/cancel"))
        .bearer_auth(&t.access)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 204);
    assert_eq!(s.get_bearer("/v1/me", &t.access).await.status(), 401);
    // Same session, other token: still fine; refresh still works.
    assert_eq!(s.get_bearer("/v1/me", &next.access).await.status(), 200);
    assert_eq!(s.refresh(&next.refresh).await.status(), 200);
    // Cancelling needs a valid token.
    let r = s
        .http
        .post(s.url("/v1/tokens/cancel"))
        .bearer_auth(&t.access)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn tokens_are_not_interchangeable() {
    let s = TestServer::start().await;
    let t = s.new_session("frank").await;
    // access token as refresh token
    assert_eq!(s.refresh(&t.access).await.status(), 401);
    // refresh token as bearer
    assert_eq!(s.get_bearer("/v1/me", &t.refresh).await.status(), 401);
}

#[tokio::test]
async fn idle_timeout_is_enforced_at_refresh() {
    let s = TestServer::start_with(|c| {
        c.policy.refresh.idle_timeout_seconds = 100;
    })
    .await;
    let t = s.new_session("gina").await;
    s.clock.advance(99);
    let t = tokens(s.refresh(&t.refresh).await).await;
    s.clock.advance(100);
    assert_eq!(s.refresh(&t.refresh).await.status(), 401);
}

#[tokio::test]
async fn absolute_lifetime_is_enforced_at_refresh() {
    let s = TestServer::start_with(|c| {
        c.policy.refresh.idle_timeout_seconds = 100;
        c.policy.session_lifetime_seconds = 250;
    })
    .await;
    let mut t = s.new_session("hank").await;
    for _ in 0..2 {
        s.clock.advance(90);
        t = tokens(s.refresh(&t.refresh).await).await;
    }
    // 180 s in; active, but the session ends at 250 s regardless.
    s.clock.advance(70);
    assert_eq!(s.refresh(&t.refresh).await.status(), 401);
}

#[tokio::test]
async fn sessions_keys_and_revocations_survive_restart() {
    let s = TestServer::start().await;
    let t = s.new_session("ivy").await;
    let revoked = s.new_session("jack").await;
    s.post(
        "/v1/tokens/revoke",
        json!({"refresh_token": revoked.refresh}),
    )
    .await;
    let jwks_before: Value = s
        .http
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");

    let s = s.restart().await;
    let jwks_after: Value = s
        .http
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    assert_eq!(jwks_before, jwks_after, "same signing key after restart");
    assert_eq!(s.get_bearer("/v1/me", &t.access).await.status(), 200);
    assert_eq!(s.refresh(&t.refresh).await.status(), 200);
    // The revocation set was reloaded: the revoked session's access token
    // stays dead, and its refresh token too.
    assert_eq!(s.get_bearer("/v1/me", &revoked.access).await.status(), 401);
    assert_eq!(s.refresh(&revoked.refresh).await.status(), 401);
    assert_eq!(
        s.sign_in("ivy", "correct horse battery").await.status(),
        200
    );
}
