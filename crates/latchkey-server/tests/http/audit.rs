//! The audit log over HTTP: every kind of authentication event is recorded
//! with time, user, session, address and outcome, never a secret or a token,
//! and `latchkey audit` reads it back with its filters.

use latchkey_testkit::{TestServer, Tokens};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";
const NEW_PASSWORD: &str = "a brand new passphrase";

async fn audit(t: &TestServer, user: Option<&str>, since: Option<u64>, limit: usize) -> Vec<Value> {
    t.audit_events(user, since, limit).await
}

/// (kind, outcome) of each event.
fn kinds(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().expect("kind").to_owned(),
                e["outcome"].as_str().expect("outcome").to_owned(),
            )
        })
        .collect()
}

fn pair(kind: &str, outcome: &str) -> (String, String) {
    (kind.to_owned(), outcome.to_owned())
}

async fn sign_in(t: &TestServer, user: &str, password: &str) -> Tokens {
    let r = t.sign_in(user, password).await;
    assert_eq!(r.status(), 200);
    Tokens::from(r.json::<Value>().await.expect("json"))
}

#[tokio::test]
async fn every_authentication_event_is_recorded_without_secrets() {
    let t = TestServer::start_with(|s| s.policy.throttle.account.free_failures = 1).await;
    let mut secrets = vec![PASSWORD.to_owned(), NEW_PASSWORD.to_owned()];

    assert_eq!(t.sign_up("alice", PASSWORD).await.status(), 201);
    assert_eq!(t.sign_up("ALICE", PASSWORD).await.status(), 409);
    let first = sign_in(&t, "alice", PASSWORD).await;
    let me: Value = t
        .get_bearer("/v1/me", &first.access)
        .await
        .json()
        .await
        .expect("json");
    let alice = me["id"].as_str().expect("id").to_owned();
    // One attempt each is the allowance: the first uses it up.
    assert_eq!(t.sign_in("nobody", "wrong password").await.status(), 401);
    assert_eq!(t.sign_in("alice", "wrong password").await.status(), 401);
    // Alice has a session from this address, so her account's block does
    // not apply here (see throttle.rs); the unknown user's does.
    assert_eq!(t.sign_in("alice", "wrong password").await.status(), 401);
    assert_eq!(t.sign_in("nobody", "wrong password").await.status(), 429);
    assert_eq!(t.sign_in("nobody", PASSWORD).await.status(), 429);
    // Throttled attempts are tallied: one record per address and minute.
    t.flush_audit().await;
    t.clock.advance(1);

    // Refresh, a failed one, then reuse of the first token outside the grace.
    let r = t.refresh(&first.refresh).await;
    assert_eq!(r.status(), 200);
    let second = Tokens::from(r.json::<Value>().await.expect("json"));
    assert_eq!(t.refresh("lkr_forged").await.status(), 401);
    t.clock.advance(60);
    assert_eq!(t.refresh(&first.refresh).await.status(), 401);

    // Revocations: a refresh token, an access token, through OAuth.
    let a = sign_in(&t, "alice", PASSWORD).await;
    let r = t
        .post("/v1/tokens/revoke", json!({"refresh_token": a.refresh}))
        .await;
    assert_eq!(r.status(), 204);
    let b = sign_in(&t, "alice", PASSWORD).await;
    let r = t
        .http
        .post(t.url("/v1/tokens/cancel"))
        .bearer_auth(&b.access)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 204);
    let c = sign_in(&t, "alice", PASSWORD).await;
    let r = t
        .http
        .post(t.url("/oauth/revoke"))
        .form(&[("token", c.refresh.as_str()), ("client_id", "default")])
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);

    // Sign-out, ending a session by id, password changes.
    let d = sign_in(&t, "alice", PASSWORD).await;
    let e = sign_in(&t, "alice", PASSWORD).await;
    let sessions: Value = t
        .get_bearer("/v1/sessions", &d.access)
        .await
        .json()
        .await
        .expect("json");
    let e_id = sessions["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|s| s["current"] == false)
        .expect("another session")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = t
        .http
        .delete(t.url(&format!("/v1/sessions/{e_id}")))
        .bearer_auth(&d.access)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 204);
    let change = |current: &str| json!({"current_password": current, "new_password": NEW_PASSWORD});
    // A wrong guess that uses up the allowance also ends the session.
    let r = t
        .http
        .post(t.url("/v1/password"))
        .bearer_auth(&d.access)
        .json(&change("not it"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 400);
    assert_eq!(t.get_bearer("/v1/me", &d.access).await.status(), 401);
    let f = sign_in(&t, "alice", PASSWORD).await;
    // The block that guess earned covers password changes too; it passes.
    t.clock.advance(2);
    let r = t
        .http
        .post(t.url("/v1/password"))
        .bearer_auth(&f.access)
        .json(&change(PASSWORD))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 204);
    let r = t
        .http
        .post(t.url("/v1/sign-out"))
        .bearer_auth(&f.access)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 204);
    for tokens in [&first, &second, &a, &b, &c, &d, &e, &f] {
        secrets.push(tokens.access.clone());
        secrets.push(tokens.refresh.clone());
    }

    let events = audit(&t, None, None, 1000).await;
    assert_eq!(
        kinds(&events),
        vec![
            pair("sign_up", "success"),
            pair("sign_up", "failure"),
            pair("sign_in", "success"),
            pair("sign_in", "failure"),
            pair("lockout", "throttled"),
            pair("sign_in", "failure"),
            pair("lockout", "throttled"),
            pair("sign_in", "failure"),
            pair("sign_in", "throttled"),
            pair("refresh", "success"),
            pair("refresh", "failure"),
            pair("reuse_detected", "success"),
            pair("sign_in", "success"),
            pair("revoke", "success"),
            pair("sign_in", "success"),
            pair("revoke", "success"),
            pair("sign_in", "success"),
            pair("revoke", "success"),
            pair("sign_in", "success"),
            pair("sign_in", "success"),
            pair("sign_out", "success"),
            pair("lockout", "throttled"),
            pair("password_change", "failure"),
            pair("sign_in", "success"),
            pair("password_change", "success"),
            pair("sign_out", "success"),
        ]
    );
    for e in &events {
        assert_eq!(e["ip"], "127.0.0.1", "{e}");
        assert!(e["at"].as_i64().is_some(), "{e}");
    }
    // Who: alice when she is known; nobody for the unknown user.
    assert_eq!(events[0]["user_id"], alice.as_str());
    assert_eq!(events[1]["user_id"], Value::Null);
    assert_eq!(events[3]["user_id"], Value::Null, "unknown user");
    assert_eq!(events[4]["user_id"], Value::Null, "unknown user's lockout");
    assert_eq!(events[5]["user_id"], alice.as_str(), "wrong password");
    assert_eq!(events[6]["user_id"], alice.as_str(), "alice's lockout");
    assert_eq!(events[8]["count"], 2, "two throttled attempts, one record");
    assert_eq!(events[7]["count"], 1);
    assert_eq!(events[2]["session_id"], events[9]["session_id"]);
    assert!(events[2]["session_id"].is_string());
    assert_eq!(events[11]["session_id"], events[2]["session_id"]);
    assert_eq!(events[20]["session_id"], e_id.as_str());
    assert_eq!(events[21]["user_id"], alice.as_str(), "alice's lockout");
    for i in [9, 11, 13, 15, 17, 20, 22, 23, 24, 25] {
        assert_eq!(events[i]["user_id"], alice.as_str(), "event {i}");
        assert!(events[i]["session_id"].is_string(), "event {i}");
    }
    // Never a secret.
    let text = serde_json::to_string(&events).expect("json");
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "audit log holds a secret");
    }

    // Filters: by user (normalised), newest N, since.
    let mine = audit(&t, Some("ALICE"), None, 1000).await;
    assert_eq!(mine.len(), events.len() - 5);
    assert!(mine.iter().all(|e| e["user_id"] == alice.as_str()));
    assert!(audit(&t, Some("nobody"), None, 10).await.is_empty());
    let last = audit(&t, None, None, 2).await;
    assert_eq!(last, events[events.len() - 2..].to_vec());
    t.clock.advance(3600);
    assert!(audit(&t, None, Some(60), 10).await.is_empty());
    assert_eq!(audit(&t, None, Some(7200), 1000).await.len(), events.len());
}
