//! Common passwords are refused at sign-up and password change with a 400
//! that names the rule; accounts are never created or changed by them.

use latchkey_testkit::{error_code, TestServer};
use serde_json::{json, Value};

#[tokio::test]
async fn common_passwords_are_refused_at_sign_up_and_password_change() {
    let t = TestServer::start().await;
    for p in ["password1", "PASSWORD123", "Sunshine", "qwerty123"] {
        let r = t.sign_up("alice", p).await;
        assert_eq!(r.status(), 400, "{p}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["error"], "invalid_request");
        assert!(
            v["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("too common")),
            "{v}"
        );
    }
    let tokens = t.new_session("alice").await;
    let r = t
        .http
        .post(t.url("/v1/password"))
        .bearer_auth(&tokens.access)
        .json(&json!({"current_password": "correct horse battery", "new_password": "iloveyou1"}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "invalid_request");
    assert_eq!(
        t.sign_in("alice", "correct horse battery").await.status(),
        200
    );
}

/// Turning a pepper on keeps existing accounts working (their hashes are
/// re-made with the pepper at the next sign-in); taking it away locks out
/// everyone whose hash was peppered, which is why it must never go.
#[tokio::test]
async fn a_pepper_can_be_added_to_a_running_installation() {
    use latchkey_core::secret::Secret;
    let mut t = TestServer::start().await;
    t.new_session("alice").await;
    t.settings.password_pepper = Some(Secret::from("a pepper of thirty-two bytes...."));
    let mut t = t.restart().await;
    assert_eq!(
        t.sign_in("alice", "correct horse battery").await.status(),
        200
    );
    assert_eq!(t.sign_in("alice", "wrong password").await.status(), 401);
    t.new_session("bob").await;
    t = t.restart().await;
    for user in ["alice", "bob"] {
        assert_eq!(
            t.sign_in(user, "correct horse battery").await.status(),
            200,
            "{user}"
        );
    }
    t.settings.password_pepper = None;
    let t = t.restart().await;
    for user in ["alice", "bob"] {
        assert_eq!(
            t.sign_in(user, "correct horse battery").await.status(),
            401,
            "{user}"
        );
    }
}
