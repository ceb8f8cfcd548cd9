//! Hostile and malformed input on every body-taking route, over real HTTP:
//! oversized and deeply nested bodies, NUL bytes and SQL metacharacters in
//! every field, wrong content types and wrong methods. Each gets a precise
//! 4xx in the standard error shape, never a 5xx, and nothing leaks into
//! other accounts.

use std::time::{Duration, Instant};

use latchkey_testkit::{error_code, TestServer, Tokens};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

/// Values that have broken parsers, C strings and SQL built by string
/// concatenation.
const HOSTILE: &[&str] = &[
    "\u{0}",
    "alice\u{0}",
    "\u{0}alice",
    "pass\u{0}word-long-enough",
    "' OR 1=1 --",
    "alice'--",
    "'; DROP TABLE users; --",
    "\" OR \"\"=\"",
    "admin\"/*",
    "%00",
    "\\x00\\'",
    "1; SELECT * FROM sessions",
    "`whoami`",
];

async fn status_and_code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    assert!(status < 500, "server error {status}: {text}");
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status >= 400 {
        assert!(
            v["error"].is_string() && v["error_description"].is_string(),
            "{status} without the error shape: {text:.300}"
        );
    }
    (status, v["error"].as_str().unwrap_or_default().to_owned())
}

async fn post_json(s: &TestServer, path: &str, bearer: Option<&str>, body: Value) -> (u16, String) {
    let mut req = s.http.post(s.url(path)).json(&body);
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    status_and_code(req.send().await.expect("request")).await
}

/// Every route taking a JSON body, and whether it needs a bearer token.
const JSON_ROUTES: &[(&str, bool)] = &[
    ("/v1/sign-up", false),
    ("/v1/sign-in", false),
    ("/v1/tokens/refresh", false),
    ("/v1/tokens/revoke", false),
    ("/v1/sign-out", true),
    ("/v1/password", true),
    ("/v1/password/forgot", false),
    ("/v1/password/reset", false),
    ("/v1/email", true),
    ("/v1/email/verify", false),
];

const FORM_ROUTES: &[&str] = &["/oauth/token", "/oauth/revoke", "/oauth/introspect"];

/// 10 MB bodies are cut off at the body limit (64 KiB, 16 KiB on the
/// password routes) with 413, quickly (the server does not read, buffer or
/// parse them).
#[tokio::test]
async fn ten_megabyte_bodies_get_413_fast() {
    let s = TestServer::start().await;
    let t = s.new_session("alice").await;
    let big = format!(r#"{{"username":"{}"}}"#, "a".repeat(10 * 1024 * 1024));
    let big_form = format!(
        "grant_type=refresh_token&refresh_token={}",
        "a".repeat(10 * 1024 * 1024)
    );
    let mut cases: Vec<(&str, &str, &str)> = JSON_ROUTES
        .iter()
        .map(|(path, _)| (*path, "application/json", big.as_str()))
        .collect();
    for path in FORM_ROUTES {
        cases.push((path, "application/x-www-form-urlencoded", big_form.as_str()));
    }
    for (path, content_type, body) in cases {
        let started = Instant::now();
        let r = s
            .http
            .post(s.url(path))
            .bearer_auth(&t.access)
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await;
        let elapsed = started.elapsed();
        match r {
            Ok(r) => {
                let (status, code) = status_and_code(r).await;
                assert_eq!((status, code.as_str()), (413, "invalid_request"), "{path}");
            }
            // The server may answer 413 and close before the client has
            // finished sending; reqwest then reports the broken write.
            Err(e) => panic!("{path}: no response to a 10 MB body: {e}"),
        }
        assert!(
            elapsed < Duration::from_secs(2),
            "{path}: 10 MB body took {elapsed:?}"
        );
    }
    // Just under each limit is read (and refused for what it says); just
    // over it is 413 in the standard shape.
    let post = |path: &'static str, body: String| {
        s.http
            .post(s.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let sign_up = |name_bytes: usize| {
        format!(
            r#"{{"username":"{}","password":"x"}}"#,
            "a".repeat(name_bytes)
        )
    };
    let refresh =
        |token_bytes: usize| format!(r#"{{"refresh_token":"{}"}}"#, "a".repeat(token_bytes));
    for (path, body, expected) in [
        ("/v1/sign-up", sign_up(15 * 1024), (400, "invalid_request")),
        ("/v1/sign-up", sign_up(16 * 1024), (413, "invalid_request")),
        (
            "/v1/tokens/refresh",
            refresh(60 * 1024),
            (401, "invalid_grant"),
        ),
        (
            "/v1/tokens/refresh",
            refresh(64 * 1024),
            (413, "invalid_request"),
        ),
    ] {
        let (status, code) = status_and_code(post(path, body).await.expect("request")).await;
        assert_eq!((status, code.as_str()), expected, "{path}");
    }
}

/// The password routes take 16 KiB: a password just over the password
/// rule's 1024 bytes gets the rule's precise 400 (before any hashing); a
/// body over 16 KiB, whatever it holds, is 413.
#[tokio::test]
async fn password_routes_refuse_long_passwords_precisely_and_large_bodies_with_413() {
    let s = TestServer::start().await;
    let t = s.new_session("alice").await;
    let long = "p".repeat(1025);
    let huge = "p".repeat(17 * 1024);
    for (path, field, bearer) in [
        ("/v1/sign-up", "password", false),
        ("/v1/sign-in", "password", false),
        ("/v1/password", "new_password", true),
        ("/v1/password/reset", "new_password", false),
    ] {
        let body = |password: &str| {
            json!({
                "token": "not a token",
                "username": "someone",
                "password": password,
                "current_password": "correct horse battery",
                field: password,
            })
        };
        let send = |password: String| {
            let mut r = s.http.post(s.url(path)).json(&body(&password));
            if bearer {
                r = r.bearer_auth(&t.access);
            }
            r.send()
        };
        let r = send(long.clone()).await.expect("request");
        assert_eq!(r.status(), 400, "{path}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["error"], "invalid_request", "{path}");
        let description = v["error_description"].as_str().unwrap_or_default();
        assert!(description.contains("at most 1024 bytes"), "{path}: {v}");

        let (status, code) = status_and_code(send(huge.clone()).await.expect("request")).await;
        assert_eq!((status, code.as_str()), (413, "invalid_request"), "{path}");
    }
}

/// 2 500 levels of nesting (as deep as fits in the password routes' 16 KiB):
/// the nesting check answers, no stack overflow; 400 on every JSON route.
#[tokio::test]
async fn deeply_nested_json_gets_400() {
    let s = TestServer::start().await;
    let t = s.new_session("alice").await;
    let depth = 2_500;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    for (path, _) in JSON_ROUTES {
        // A field the route reads, so the value is really deserialised.
        let field = match *path {
            "/v1/sign-up" | "/v1/sign-in" => "username",
            "/v1/tokens/refresh" | "/v1/tokens/revoke" => "refresh_token",
            "/v1/sign-out" => "scope",
            _ => "current_password",
        };
        let objects = format!(
            r#"{{"{field}":{}1{}"#,
            r#"{"":"#.repeat(depth - 1),
            "}".repeat(depth)
        );
        let in_field = format!(r#"{{"{field}":{arrays}}}"#);
        for body in [&arrays, &objects, &in_field] {
            assert!(body.len() < 64 * 1024);
            let r = s
                .http
                .post(s.url(path))
                .bearer_auth(&t.access)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .expect("request");
            let (status, code) = status_and_code(r).await;
            assert_eq!(
                (status, code.as_str()),
                (400, "invalid_request"),
                "{path} {body:.30}"
            );
        }
    }
    // Still alive.
    assert_eq!(s.get_bearer("/v1/me", &t.access).await.status(), 200);
}

/// The same 2 500-deep value in a field the route does not know: serde
/// skips unknown fields without its recursion limit, so the extractor's own
/// nesting check over the whole body is what answers 400 here.
#[tokio::test]
async fn deeply_nested_json_in_an_unknown_field_gets_400() {
    let s = TestServer::start().await;
    let depth = 2_500;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let mut accepted = Vec::new();
    for (path, _) in JSON_ROUTES {
        // A fresh, otherwise valid request for each route.
        let t = s.new_session("alice").await;
        let mut body = match *path {
            "/v1/sign-up" => {
                json!({"username": format!("u{}", accepted.len()), "password": PASSWORD})
            }
            "/v1/sign-in" => json!({"username": "alice", "password": PASSWORD}),
            "/v1/tokens/refresh" | "/v1/tokens/revoke" => json!({"refresh_token": t.refresh}),
            "/v1/sign-out" => json!({"scope": "current"}),
            _ => json!({"current_password": PASSWORD, "new_password": PASSWORD}),
        }
        .to_string();
        body.pop();
        body.push_str(&format!(r#","x":{nested}}}"#));
        let r = s
            .http
            .post(s.url(path))
            .bearer_auth(&t.access)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let (status, _) = status_and_code(r).await;
        if status != 400 {
            accepted.push(format!("{path} -> {status}"));
        }
    }
    assert!(
        accepted.is_empty(),
        "2 500-deep JSON in an unknown field accepted: {accepted:?}"
    );
}

/// NUL bytes and SQL metacharacters in every field of sign-up, sign-in,
/// refresh, revoke, sign-out and password change.
#[tokio::test]
async fn nul_bytes_and_sql_metacharacters_in_every_field() {
    // Hundreds of failed sign-ins from one address: throttling (tested in
    // throttle.rs, including hostile usernames as counter keys) would turn
    // them into 429s.
    let s = TestServer::start_with(|s| s.policy.throttle.enabled = false).await;
    let alice = s.new_session("alice").await;

    // --- sign-up ---
    let mut registered = Vec::new();
    for (i, v) in HOSTILE.iter().enumerate() {
        let (status, code) = post_json(
            &s,
            "/v1/sign-up",
            None,
            json!({"username": v, "password": PASSWORD}),
        )
        .await;
        if v.contains('\u{0}') || v.contains(' ') {
            // Control characters and spaces are not allowed in usernames.
            assert_eq!(
                (status, code.as_str()),
                (400, "invalid_request"),
                "username {v:?}"
            );
        } else {
            assert_eq!(status, 201, "username {v:?}: {code}");
            registered.push(*v);
        }
        let name = format!("user{i}");
        let (status, code) = post_json(
            &s,
            "/v1/sign-up",
            None,
            json!({"username": name, "password": v}),
        )
        .await;
        if v.chars().count() < 8 {
            assert_eq!(
                (status, code.as_str()),
                (400, "invalid_request"),
                "password {v:?}"
            );
        } else {
            // A long enough password is any text, NUL included: stored hashed.
            assert_eq!(status, 201, "password {v:?}: {code}");
            let (status, _) = post_json(
                &s,
                "/v1/sign-in",
                None,
                json!({"username": name, "password": v}),
            )
            .await;
            assert_eq!(status, 200, "sign-in with password {v:?}");
            let (status, _) = post_json(
                &s,
                "/v1/sign-in",
                None,
                json!({"username": name, "password": format!("{v}' OR '1'='1")}),
            )
            .await;
            assert_ne!(status, 200, "password {v:?} matched another");
        }
    }
    // Each odd username is its own account, exactly as typed.
    for v in &registered {
        let r = s.sign_in(v, PASSWORD).await;
        assert_eq!(r.status(), 200, "sign-in as {v:?}");
        let t = Tokens::from(r.json::<Value>().await.expect("json"));
        let me: Value = s
            .get_bearer("/v1/me", &t.access)
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(me["username"], *v);
    }

    // --- sign-in: no injected name or password gets in as alice ---
    for v in HOSTILE {
        for body in [
            json!({"username": v, "password": PASSWORD}),
            json!({"username": "alice", "password": v}),
            json!({"username": format!("alice{v}"), "password": PASSWORD}),
            json!({"username": "alice", "password": format!("{PASSWORD}{v}")}),
            json!({"username": "alice", "password": PASSWORD, "client_id": v}),
            json!({"username": "alice", "password": PASSWORD, "client_secret": v}),
            json!({"username": "alice", "password": PASSWORD, "scope": v}),
            json!({"username": "alice", "password": PASSWORD, "audience": v}),
        ] {
            let (status, code) = post_json(&s, "/v1/sign-in", None, body.clone()).await;
            let registered_name = registered.contains(v)
                && body["password"] == PASSWORD
                && body.get("client_id").is_none();
            if !registered_name || body["username"] != *v {
                assert!(
                    (400..500).contains(&status),
                    "sign-in {body}: {status} {code}"
                );
            }
        }
    }

    // --- refresh ---
    for v in HOSTILE {
        let (status, code) =
            post_json(&s, "/v1/tokens/refresh", None, json!({"refresh_token": v})).await;
        assert_eq!(
            (status, code.as_str()),
            (401, "invalid_grant"),
            "refresh_token {v:?}"
        );
        let forged = format!("{}{v}", alice.refresh);
        let (status, code) = post_json(
            &s,
            "/v1/tokens/refresh",
            None,
            json!({"refresh_token": forged}),
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (401, "invalid_grant"),
            "refresh_token +{v:?}"
        );
        let (status, code) = post_json(
            &s,
            "/v1/tokens/refresh",
            None,
            json!({"refresh_token": alice.refresh, "client_id": v}),
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (401, "invalid_client"),
            "client_id {v:?}"
        );
        let (status, code) = post_json(
            &s,
            "/v1/tokens/refresh",
            None,
            json!({"refresh_token": alice.refresh, "client_secret": v}),
        )
        .await;
        assert!(
            (400..500).contains(&status),
            "client_secret {v:?}: {status} {code}"
        );
        let (status, code) = post_json(
            &s,
            "/v1/tokens/refresh",
            None,
            json!({"refresh_token": alice.refresh, "scope": v}),
        )
        .await;
        assert!(
            (400..500).contains(&status) || status == 200,
            "scope {v:?}: {status} {code}"
        );
    }

    // --- revoke: 204 for anything, and alice's session survives ---
    for v in HOSTILE {
        let r = s
            .http
            .post(s.url("/v1/tokens/revoke"))
            .json(&json!({"refresh_token": v}))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 204, "revoke {v:?}");
    }
    assert_eq!(s.get_bearer("/v1/me", &alice.access).await.status(), 200);

    // --- sign-out: scope must be one of three words ---
    for v in HOSTILE {
        let (status, code) =
            post_json(&s, "/v1/sign-out", Some(&alice.access), json!({"scope": v})).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "invalid_request"),
            "sign-out scope {v:?}"
        );
    }
    assert_eq!(s.get_bearer("/v1/me", &alice.access).await.status(), 200);

    // --- password change ---
    let mut current = PASSWORD.to_owned();
    for v in HOSTILE {
        let (status, code) = post_json(
            &s,
            "/v1/password",
            Some(&alice.access),
            json!({"current_password": v, "new_password": "a new long passphrase"}),
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (400, "invalid_grant"),
            "current_password {v:?}"
        );
        let (status, code) = post_json(
            &s,
            "/v1/password",
            Some(&alice.access),
            json!({"current_password": current, "new_password": v}),
        )
        .await;
        if v.chars().count() < 8 {
            assert_eq!(
                (status, code.as_str()),
                (400, "invalid_request"),
                "new_password {v:?}"
            );
        } else {
            assert_eq!(status, 204, "new_password {v:?}: {code}");
            current = (*v).to_owned();
        }
    }
    assert_eq!(s.sign_in("alice", &current).await.status(), 200);
    assert_eq!(s.sign_in("alice", PASSWORD).await.status(), 401);

    // --- the OAuth form endpoints ---
    for v in HOSTILE {
        for form in [
            vec![("grant_type", *v)],
            vec![("grant_type", "refresh_token"), ("refresh_token", v)],
            vec![("grant_type", "client_credentials"), ("client_id", v)],
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", alice.refresh.as_str()),
                ("client_id", v),
            ],
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", alice.refresh.as_str()),
                ("scope", v),
            ],
        ] {
            let r = s
                .http
                .post(s.url("/oauth/token"))
                .form(&form)
                .send()
                .await
                .expect("request");
            let (status, code) = status_and_code(r).await;
            assert!(
                (400..500).contains(&status) || status == 200,
                "/oauth/token {form:?}: {status} {code}"
            );
        }
        for path in ["/oauth/revoke", "/oauth/introspect"] {
            let r = s
                .http
                .post(s.url(path))
                .form(&[("token", *v), ("client_id", *v)])
                .send()
                .await
                .expect("request");
            let (status, code) = status_and_code(r).await;
            assert_eq!(
                (status, code.as_str()),
                (401, "invalid_client"),
                "{path} {v:?}"
            );
        }
    }

    // A raw NUL byte inside a JSON string is not JSON.
    let r = s
        .http
        .post(s.url("/v1/sign-in"))
        .header("content-type", "application/json")
        .body(b"{\"username\":\"alice\x00\",\"password\":\"x\"}".to_vec())
        .send()
        .await
        .expect("request");
    let (status, code) = status_and_code(r).await;
    assert_eq!((status, code.as_str()), (400, "invalid_request"));
    // Invalid UTF-8 neither.
    let r = s
        .http
        .post(s.url("/v1/sign-in"))
        .header("content-type", "application/json")
        .body(b"{\"username\":\"\xff\xfe\",\"password\":\"xxxxxxxxxx\"}".to_vec())
        .send()
        .await
        .expect("request");
    let (status, code) = status_and_code(r).await;
    assert_eq!((status, code.as_str()), (400, "invalid_request"));
}

/// JSON routes refuse other media types with 415; the OAuth form routes
/// refuse anything but a form with 400 invalid_request (RFC 6749 §5.2).
#[tokio::test]
async fn wrong_content_types() {
    let s = TestServer::start().await;
    let t = s.new_session("alice").await;
    let json_body = json!({"username": "alice", "password": PASSWORD, "refresh_token": t.refresh,
                           "current_password": PASSWORD, "new_password": "a new long passphrase",
                           "scope": "current"})
    .to_string();
    for (path, _) in JSON_ROUTES {
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/xml"),
            Some("text/json"),
            Some("application/jsonp"),
            Some(""),
            // Without a content type, sign-out reads the body as absent
            // (its body is optional) and would succeed; tested below.
            None,
        ] {
            if content_type.is_none() && *path == "/v1/sign-out" {
                continue;
            }
            let mut req = s
                .http
                .post(s.url(path))
                .bearer_auth(&t.access)
                .body(json_body.clone());
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            let (status, code) = status_and_code(req.send().await.expect("request")).await;
            assert_eq!(
                (status, code.as_str()),
                (415, "invalid_request"),
                "{path} with {content_type:?}"
            );
        }
    }
    for path in FORM_ROUTES {
        let form = format!(
            "grant_type=refresh_token&refresh_token={}&token={}",
            t.refresh, t.refresh
        );
        for content_type in [
            Some("application/json"),
            Some("text/plain"),
            Some("multipart/form-data; boundary=x"),
            Some("application/x-www-form-urlencodedx"),
            None,
        ] {
            let body = if content_type == Some("application/json") {
                json!({"grant_type": "refresh_token", "refresh_token": t.refresh, "token": t.refresh}).to_string()
            } else {
                form.clone()
            };
            let mut req = s.http.post(s.url(path)).body(body);
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            let (status, code) = status_and_code(req.send().await.expect("request")).await;
            assert_eq!(
                (status, code.as_str()),
                (400, "invalid_request"),
                "{path} with {content_type:?}"
            );
        }
    }
    // Nothing above did anything: the session and its tokens are intact.
    assert_eq!(s.get_bearer("/v1/me", &t.access).await.status(), 200);
    assert_eq!(s.refresh(&t.refresh).await.status(), 200);
}

/// Every route with every wrong method: 405 in the JSON error shape.
#[tokio::test]
async fn wrong_methods_get_405() {
    let s = TestServer::start().await;
    let post_routes = [
        "/v1/sign-up",
        "/v1/sign-in",
        "/v1/tokens/refresh",
        "/v1/tokens/revoke",
        "/v1/tokens/cancel",
        "/v1/sign-out",
        "/v1/password",
        "/oauth/token",
        "/oauth/revoke",
        "/oauth/introspect",
    ];
    let get_routes = [
        "/v1/me",
        "/v1/sessions",
        "/v1/revocations",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
        "/healthz",
        "/readyz",
        "/metrics",
    ];
    let mut cases: Vec<(&str, &str)> = Vec::new();
    for path in post_routes {
        for m in ["GET", "PUT", "DELETE", "PATCH"] {
            cases.push((m, path));
        }
    }
    for path in get_routes {
        for m in ["POST", "PUT", "DELETE", "PATCH"] {
            cases.push((m, path));
        }
    }
    for m in ["GET", "POST", "PUT", "PATCH"] {
        cases.push((m, "/v1/sessions/00000000-0000-0000-0000-000000000000"));
    }
    for (method, path) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let r = s
            .http
            .request(method.clone(), s.url(path))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(error_code(r).await, "method_not_allowed", "{method} {path}");
    }
}
