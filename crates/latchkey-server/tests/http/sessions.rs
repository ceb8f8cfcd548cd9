//! Sessions users control, sign-out scopes and password change, over real
//! HTTP (the revocation feed is in feed.rs).

use latchkey_testkit::{error_code, TestServer, Tokens};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

async fn sign_in_as(s: &TestServer, username: &str, user_agent: &str) -> Tokens {
    let r = s
        .http
        .post(s.url("/v1/sign-in"))
        .header("user-agent", user_agent)
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    Tokens::from(r.json::<Value>().await.expect("json"))
}

async fn sessions(s: &TestServer, access: &str) -> Vec<Value> {
    let r = s.get_bearer("/v1/sessions", access).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    v["sessions"].as_array().expect("sessions").clone()
}

async fn bearer_post(
    s: &TestServer,
    path: &str,
    access: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = s.http.post(s.url(path)).bearer_auth(access);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.expect("request")
}

async fn alive(s: &TestServer, t: &Tokens) -> bool {
    s.get_bearer("/v1/me", &t.access).await.status() == 200
}

#[tokio::test]
async fn lists_live_sessions_with_the_current_one_marked() {
    let s = TestServer::start().await;
    s.sign_up("alice", PASSWORD).await;
    let phone = sign_in_as(&s, "alice", "phone/1.0").await;
    let laptop = sign_in_as(&s, "alice", "laptop/2.0").await;
    let list = sessions(&s, &laptop.access).await;
    assert_eq!(list.len(), 2);
    for item in &list {
        for field in [
            "id",
            "created_at",
            "last_refreshed_at",
            "expires_at",
            "ip",
            "current",
        ] {
            assert!(!item[field].is_null(), "missing {field} in {item}");
        }
    }
    let current: Vec<_> = list.iter().filter(|i| i["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["user_agent"], "laptop/2.0");
    assert_eq!(current[0]["ip"], "127.0.0.1");

    // Revoked sessions are not listed.
    s.post("/v1/tokens/revoke", json!({"refresh_token": phone.refresh}))
        .await;
    assert_eq!(sessions(&s, &laptop.access).await.len(), 1);
}

#[tokio::test]
async fn ending_a_session_is_only_for_its_owner() {
    let s = TestServer::start().await;
    s.sign_up("bob", PASSWORD).await;
    s.sign_up("mallory", PASSWORD).await;
    let bob1 = sign_in_as(&s, "bob", "a").await;
    let bob2 = sign_in_as(&s, "bob", "b").await;
    let mallory = sign_in_as(&s, "mallory", "m").await;
    let bob_sessions = sessions(&s, &bob1.access).await;
    let other_id = bob_sessions
        .iter()
        .find(|i| i["current"] == false)
        .and_then(|i| i["id"].as_str())
        .expect("bob's other session")
        .to_owned();

    let delete = |access: &str, id: &str| {
        s.http
            .delete(s.url(&format!("/v1/sessions/{id}")))
            .bearer_auth(access)
            .send()
    };
    // Another user's session, unknown and malformed ids: all 404 alike.
    for (access, id) in [
        (&mallory.access, other_id.as_str()),
        (&bob1.access, "00000000-0000-0000-0000-000000000000"),
        (&bob1.access, "not-a-uuid"),
    ] {
        let r = delete(access, id).await.expect("request");
        assert_eq!(r.status(), 404, "{id}");
        assert_eq!(error_code(r).await, "not_found");
    }
    assert!(alive(&s, &bob2).await, "mallory must not end bob's session");

    let r = delete(&bob1.access, &other_id).await.expect("request");
    assert_eq!(r.status(), 204);
    assert!(!alive(&s, &bob2).await);
    assert_eq!(s.refresh(&bob2.refresh).await.status(), 401);
    assert!(alive(&s, &bob1).await);
    // Already ended: 404 now.
    assert_eq!(
        delete(&bob1.access, &other_id)
            .await
            .expect("request")
            .status(),
        404
    );
}

#[tokio::test]
async fn sign_out_scopes() {
    let s = TestServer::start().await;
    s.sign_up("carol", PASSWORD).await;
    let a = sign_in_as(&s, "carol", "a").await;
    let b = sign_in_as(&s, "carol", "b").await;
    let c = sign_in_as(&s, "carol", "c").await;

    // Default scope is current; an empty body is fine.
    assert_eq!(
        bearer_post(&s, "/v1/sign-out", &a.access, None)
            .await
            .status(),
        204
    );
    assert!(!alive(&s, &a).await);
    assert_eq!(s.refresh(&a.refresh).await.status(), 401);
    assert!(alive(&s, &b).await && alive(&s, &c).await);

    let r = bearer_post(
        &s,
        "/v1/sign-out",
        &b.access,
        Some(json!({"scope": "others"})),
    )
    .await;
    assert_eq!(r.status(), 204);
    assert!(alive(&s, &b).await);
    assert!(!alive(&s, &c).await);
    assert_eq!(s.refresh(&c.refresh).await.status(), 401);

    let d = sign_in_as(&s, "carol", "d").await;
    let r = bearer_post(&s, "/v1/sign-out", &b.access, Some(json!({"scope": "all"}))).await;
    assert_eq!(r.status(), 204);
    assert!(!alive(&s, &b).await && !alive(&s, &d).await);
    assert_eq!(s.refresh(&d.refresh).await.status(), 401);

    let e = sign_in_as(&s, "carol", "e").await;
    let r = bearer_post(
        &s,
        "/v1/sign-out",
        &e.access,
        Some(json!({"scope": "everything"})),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(alive(&s, &e).await);
}

#[tokio::test]
async fn password_change_keeps_exactly_the_current_session() {
    let s = TestServer::start().await;
    s.sign_up("dave", PASSWORD).await;
    let keep = sign_in_as(&s, "dave", "keep").await;
    let other1 = sign_in_as(&s, "dave", "o1").await;
    let other2 = sign_in_as(&s, "dave", "o2").await;

    let change = |current: &str, new: &str| {
        bearer_post(
            &s,
            "/v1/password",
            &keep.access,
            Some(json!({"current_password": current, "new_password": new})),
        )
    };
    let r = change("wrong password", "brand new password").await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "invalid_grant");
    let r = change(PASSWORD, "short").await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "invalid_request");
    assert!(alive(&s, &other1).await, "failed changes end nothing");

    assert_eq!(change(PASSWORD, "brand new password").await.status(), 204);
    let list = sessions(&s, &keep.access).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["current"], true);
    assert!(!alive(&s, &other1).await && !alive(&s, &other2).await);
    assert_eq!(s.refresh(&other1.refresh).await.status(), 401);
    assert_eq!(s.refresh(&keep.refresh).await.status(), 200);
    assert_eq!(s.sign_in("dave", PASSWORD).await.status(), 401);
    assert_eq!(s.sign_in("dave", "brand new password").await.status(), 200);
}
