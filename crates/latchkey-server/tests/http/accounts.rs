//! Sign-up, sign-in, `me`, JWKS and bad input, over real HTTP.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_testkit::{error_code, TestServer};
use serde_json::{json, Value};

#[tokio::test]
async fn sign_up_creates_account_and_refuses_look_alikes() {
    let s = TestServer::start().await;
    let r = s.sign_up("Alice", "correct horse battery").await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["username"], "Alice");
    assert!(v["id"].is_string());
    assert!(v["created_at"].is_i64());

    for look_alike in ["alice", "ALICE", "ＡＬＩＣＥ", "Alice"] {
        let r = s.sign_up(look_alike, "another password").await;
        assert_eq!(r.status(), 409, "{look_alike}");
        assert_eq!(error_code(r).await, "username_taken");
    }
    // The fullwidth form signs in to the same account.
    assert_eq!(
        s.sign_in("ＡＬＩＣＥ", "correct horse battery")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn sign_up_policy_errors_name_the_rule() {
    let s = TestServer::start().await;
    for (username, password, needle) in [
        ("bob", "short", "at least 8"),
        ("bob", &"x".repeat(1025), "at most 1024 bytes"),
        ("bo\u{200B}b", "long enough pw", "invisible"),
        ("bo\u{0000}b", "long enough pw", "control"),
        ("", "long enough pw", "empty"),
    ] {
        let r = s.sign_up(username, password).await;
        assert_eq!(r.status(), 400, "{username:?}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["error"], "invalid_request");
        let d = v["error_description"].as_str().expect("description");
        assert!(d.contains(needle), "{d:?} should mention {needle:?}");
    }
}

#[tokio::test]
async fn sign_in_failures_are_indistinguishable() {
    let s = TestServer::start().await;
    s.sign_up("carol", "correct horse battery").await;
    let wrong = s.sign_in("carol", "wrong password!").await;
    let unknown = s.sign_in("nobody", "wrong password!").await;
    let invalid_name = s.sign_in("no body", "wrong password!").await;
    let mut bodies = Vec::new();
    for r in [wrong, unknown, invalid_name] {
        assert_eq!(r.status(), 401);
        assert!(r.headers().contains_key("www-authenticate"));
        bodies.push(r.text().await.expect("body"));
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[1], bodies[2]);
    let v: Value = serde_json::from_str(&bodies[0]).expect("json");
    assert_eq!(v["error"], "invalid_grant");
}

#[tokio::test]
async fn sign_in_returns_a_complete_token_response() {
    let s = TestServer::start().await;
    s.sign_up("dave", "correct horse battery").await;
    let r = s.sign_in("dave", "correct horse battery").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 600);
    assert_eq!(
        v["expires_at"].as_i64(),
        Some(s.clock_now() + 600),
        "expires_at is unix seconds"
    );
    let refresh = v["refresh_token"].as_str().expect("refresh");
    assert!(refresh.starts_with("lkr_"));

    // RFC 9068 header and claims.
    let access = v["access_token"].as_str().expect("access");
    let parts: Vec<&str> = access.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64")).expect("json");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    for claim in ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "sid"] {
        assert!(!claims[claim].is_null(), "missing {claim}");
    }
    assert_eq!(claims["iss"], "http://latchkey.test");

    // The kid is published.
    let jwks: Value = s
        .http
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let keys = jwks["keys"].as_array().expect("keys");
    assert!(keys.iter().any(|k| k["kid"] == header["kid"]));
    for k in keys {
        assert_eq!(k["use"], "sig");
        assert_eq!(k["alg"], "EdDSA");
        assert!(k.get("d").is_none(), "private member published");
    }
}

#[tokio::test]
async fn me_needs_a_valid_bearer_token() {
    let s = TestServer::start().await;
    let t = s.new_session("erin").await;
    let r = s.get_bearer("/v1/me", &t.access).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["username"], "erin");
    assert!(v["roles"].is_array());
    assert!(v["id"].is_string() && v["created_at"].is_i64());

    let r = s.http.get(s.url("/v1/me")).send().await.expect("request");
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .starts_with("Bearer"));

    for bad in ["garbage", "a.b.c", &t.refresh, &format!("{}x", t.access)] {
        let r = s.get_bearer("/v1/me", bad).await;
        assert_eq!(r.status(), 401, "{bad}");
        let challenge = r.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        assert_eq!(error_code(r).await, "invalid_token");
    }
}

#[tokio::test]
async fn forged_access_tokens_are_rejected() {
    let s = TestServer::start().await;
    let t = s.new_session("frank").await;
    let parts: Vec<&str> = t.access.split('.').collect();
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64")).expect("json");
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"));

    // alg none, unsigned
    let none = format!(
        "{}.{}.",
        enc(&json!({"alg":"none","typ":"at+jwt","kid":header["kid"]})),
        parts[1]
    );
    // claims changed, signature kept
    let mut elevated = claims.clone();
    elevated["roles"] = json!(["admin"]);
    let tampered = format!("{}.{}.{}", parts[0], enc(&elevated), parts[2]);
    // plain JWT typ
    let typ = format!(
        "{}.{}.{}",
        enc(&json!({"alg":"EdDSA","typ":"JWT","kid":header["kid"]})),
        parts[1],
        parts[2]
    );
    for forged in [none, tampered, typ] {
        assert_eq!(s.get_bearer("/v1/me", &forged).await.status(), 401);
    }
}

#[tokio::test]
async fn expired_access_token_is_rejected_with_a_useful_message() {
    let s = TestServer::start().await;
    let t = s.new_session("grace").await;
    // 600 s TTL + 30 s leeway
    s.clock.advance(629);
    assert_eq!(s.get_bearer("/v1/me", &t.access).await.status(), 200);
    s.clock.advance(1);
    let r = s.get_bearer("/v1/me", &t.access).await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error_description"], "the access token expired");
}

#[tokio::test]
async fn bad_input_gets_precise_4xx() {
    let s = TestServer::start().await;
    let raw = |path: &str, ct: Option<&str>, body: Vec<u8>| {
        let mut req = s.http.post(s.url(path)).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    let json_ct = Some("application/json");
    let cases: Vec<(&str, Option<&str>, Vec<u8>, u16)> = vec![
        ("/v1/sign-in", json_ct, b"{not json".to_vec(), 400),
        (
            "/v1/sign-in",
            json_ct,
            b"{\"username\":\"a\"}".to_vec(),
            400,
        ),
        (
            "/v1/sign-in",
            json_ct,
            b"{\"username\":1,\"password\":2}".to_vec(),
            400,
        ),
        ("/v1/sign-in", json_ct, b"[]".to_vec(), 400),
        ("/v1/sign-in", json_ct, b"".to_vec(), 400),
        (
            "/v1/sign-in",
            None,
            b"{\"username\":\"a\",\"password\":\"b\"}".to_vec(),
            415,
        ),
        ("/v1/sign-in", Some("text/plain"), b"{}".to_vec(), 415),
        ("/v1/sign-up", json_ct, vec![b' '; 3 * 1024 * 1024], 413),
        // Routes without a password keep the 64 KiB limit.
        ("/v1/tokens/refresh", json_ct, vec![b' '; 100 * 1024], 413),
        (
            "/v1/sign-up",
            json_ct,
            format!("{}{}", "[".repeat(5_000), "]".repeat(5_000)).into_bytes(),
            400,
        ),
        (
            "/v1/tokens/refresh",
            json_ct,
            b"{\"refresh_token\":null}".to_vec(),
            400,
        ),
        (
            "/v1/tokens/refresh",
            json_ct,
            b"{\"refresh_token\":\"\\u0000\"}".to_vec(),
            401,
        ),
    ];
    for (path, ct, body, status) in cases {
        let preview = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
        let r = raw(path, ct, body).await.expect("request");
        assert_eq!(r.status().as_u16(), status, "{path} {ct:?} {preview}");
        error_code(r).await;
    }

    // A password over the rule's 1024 bytes is refused by the rule, before
    // hashing; a body over the password routes' 16 KiB is 413 unread.
    for path in ["/v1/sign-in", "/v1/sign-up"] {
        let r = s
            .post(
                path,
                json!({"username": "someone", "password": "p".repeat(2000)}),
            )
            .await;
        assert_eq!(r.status(), 400, "{path}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["error"], "invalid_request", "{path}");
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(description.contains("at most 1024 bytes"), "{path}: {body}");
    }
    let r = s.sign_in("someone", &"p".repeat(1024 * 1024)).await;
    assert_eq!(r.status(), 413);

    let r = s.http.get(s.url("/v1/nope")).send().await.expect("request");
    assert_eq!(r.status(), 404);
    error_code(r).await;
    let r = s
        .http
        .delete(s.url("/v1/sign-in"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 405);
    error_code(r).await;

    // SQL metacharacters are just characters.
    let r = s
        .sign_up("robert');DROP_TABLE_users;--", "correct horse battery")
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        s.sign_in("robert');DROP_TABLE_users;--", "correct horse battery")
            .await
            .status(),
        200
    );
}
