//! The administration API (`/admin/v1`) over real HTTP: who may call it,
//! every route with its answers, and what operators' actions do to the
//! accounts' sessions, tokens and sign-ins; sign-up modes and invite codes.

use std::collections::BTreeSet;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use latchkey_core::account_token::lookup_hash;
use latchkey_core::client::{generate_secret, Client, ClientKind};
use latchkey_core::model::AccountTokenPurpose;
use latchkey_core::service::SignUpMode;
use latchkey_core::store::AccountTokenStore;
use latchkey_testkit::TestServer;
use reqwest::Method;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

/// A server with a confidential client `ops` holding `latchkey:admin` and
/// a confidential client `svc` without it, and `ops`' access token.
struct Admin {
    s: TestServer,
    token: String,
    svc_token: String,
}

async fn admin_server(mode: SignUpMode) -> Admin {
    let (ops_secret, ops_hash) = generate_secret().expect("rng");
    let (svc_secret, svc_hash) = generate_secret().expect("rng");
    let s = TestServer::start_with(|settings| {
        settings.policy.sign_up = mode;
        settings.clients.push(Client {
            kind: ClientKind::Confidential,
            secret_hash: Some(ops_hash),
            scopes: vec!["latchkey:admin".into()],
            ..Client::default_public("ops")
        });
        settings.clients.push(Client {
            kind: ClientKind::Confidential,
            secret_hash: Some(svc_hash),
            scopes: vec!["jobs".into()],
            ..Client::default_public("svc")
        });
    })
    .await;
    let token = client_token(&s, "ops", &ops_secret).await;
    let svc_token = client_token(&s, "svc", &svc_secret).await;
    Admin {
        s,
        token,
        svc_token,
    }
}

async fn client_token(s: &TestServer, id: &str, secret: &str) -> String {
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .header(
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    body["access_token"].as_str().expect("token").to_owned()
}

fn claims(access_token: &str) -> Value {
    let payload = access_token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

impl Admin {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
        call(&self.s, method, path, Some(&self.token), body).await
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>, status: u16) -> Value {
        let r = self.call(method.clone(), path, body).await;
        assert_eq!(r.status(), status, "{method} {path}");
        if status == 204 {
            return Value::Null;
        }
        r.json().await.expect("json")
    }

    async fn create(&self, body: Value) -> Value {
        self.ok(Method::POST, "/admin/v1/users", Some(body), 201)
            .await
    }
}

async fn call(
    s: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = s.http.request(method, s.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.expect("request")
}

/// Status and error code of an error answer.
async fn error_of(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.expect("json");
    assert!(v["error_description"].is_string(), "{v}");
    (status, v["error"].as_str().expect("error").to_owned())
}

fn refused() -> (u16, String) {
    (401, "invalid_grant".to_owned())
}

#[tokio::test]
async fn only_a_clients_own_token_with_the_admin_scope_may_administer() {
    let a = admin_server(SignUpMode::Open).await;
    let user = a.s.new_session("alice").await;
    let id = claims(&user.access)["sub"]
        .as_str()
        .expect("sub")
        .to_owned();
    let routes = [
        (Method::GET, "/admin/v1/users".to_owned(), None),
        (
            Method::POST,
            "/admin/v1/users".to_owned(),
            Some(json!({"username": "mallory", "password": PASSWORD})),
        ),
        (Method::GET, format!("/admin/v1/users/{id}"), None),
        (
            Method::PATCH,
            format!("/admin/v1/users/{id}"),
            Some(json!({"disabled": true})),
        ),
        (Method::DELETE, format!("/admin/v1/users/{id}"), None),
        (Method::GET, format!("/admin/v1/users/{id}/sessions"), None),
        (
            Method::DELETE,
            format!("/admin/v1/users/{id}/sessions"),
            None,
        ),
        (
            Method::POST,
            format!("/admin/v1/users/{id}/password-reset"),
            None,
        ),
        (
            Method::POST,
            "/admin/v1/invites".to_owned(),
            Some(json!({})),
        ),
    ];
    for (method, path, body) in &routes {
        let what = format!("{method} {path}");
        let r = call(&a.s, method.clone(), path, None, body.clone()).await;
        assert_eq!(
            r.headers()["www-authenticate"],
            r#"Bearer realm="latchkey""#
        );
        assert_eq!(error_of(r).await, (401, "invalid_token".into()), "{what}");
        let r = call(&a.s, method.clone(), path, Some("not.a.jwt"), body.clone()).await;
        assert_eq!(error_of(r).await, (401, "invalid_token".into()), "{what}");
        for token in [&user.access, &a.svc_token] {
            let r = call(&a.s, method.clone(), path, Some(token), body.clone()).await;
            let challenge = r.headers()["www-authenticate"].to_str().expect("ascii");
            assert!(
                challenge.contains(r#"error="insufficient_scope""#)
                    && challenge.contains(r#"scope="latchkey:admin""#),
                "{what}: {challenge}"
            );
            assert_eq!(
                error_of(r).await,
                (403, "insufficient_scope".into()),
                "{what}"
            );
        }
    }
    // Nothing happened: alice is still signed in, mallory does not exist.
    assert_eq!(a.s.get_bearer("/v1/me", &user.access).await.status(), 200);
    assert_eq!(a.s.sign_in("mallory", PASSWORD).await.status(), 401);
}

#[tokio::test]
async fn accounts_are_listed_a_page_at_a_time_without_repeats_or_gaps() {
    let a = admin_server(SignUpMode::Open).await;
    let mut created = BTreeSet::new();
    for i in 0..7 {
        let email = format!("person{i}@example.com");
        let u = a
            .create(json!({"username": format!("User{i}"), "password": PASSWORD, "email": email}))
            .await;
        created.insert(u["id"].as_str().expect("id").to_owned());
    }
    a.create(json!({"username": "zed", "password": PASSWORD, "email": "Other@Example.org"}))
        .await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/admin/v1/users?query=USER&limit=3&cursor={c}"),
            None => "/admin/v1/users?query=USER&limit=3".to_owned(),
        };
        let page = a.ok(Method::GET, &path, None, 200).await;
        pages += 1;
        for u in page["users"].as_array().expect("users") {
            seen.push(u["username"].as_str().expect("name").to_owned());
            created.remove(u["id"].as_str().expect("id"));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (0..7).map(|i| format!("User{i}")).collect::<Vec<_>>());
    assert!(created.is_empty(), "every account listed once");

    // The email matches too; no query lists everyone, 50 by default.
    let page = a
        .ok(Method::GET, "/admin/v1/users?query=example.org", None, 200)
        .await;
    assert_eq!(page["users"][0]["username"], "zed");
    assert_eq!(page["users"][0]["email"], "Other@Example.org");
    assert!(page.get("next_cursor").is_none());
    let all = a.ok(Method::GET, "/admin/v1/users", None, 200).await;
    assert_eq!(all["users"].as_array().expect("users").len(), 8);

    let long_query = format!("query={}", "a".repeat(300));
    for bad in [
        "limit=0",
        "limit=201",
        "limit=x",
        "cursor=%21%21",
        &long_query,
    ] {
        let r = a
            .call(Method::GET, &format!("/admin/v1/users?{bad}"), None)
            .await;
        assert_eq!(error_of(r).await, (400, "invalid_request".into()), "{bad}");
    }
}

#[tokio::test]
async fn accounts_are_created_under_the_sign_up_rules() {
    let a = admin_server(SignUpMode::Open).await;
    let u = a
        .create(
            json!({"username": "Alice", "password": PASSWORD, "email": "alice@example.com",
                       "roles": ["admin", "ops", "admin"]}),
        )
        .await;
    assert_eq!(u["username"], "Alice");
    assert_eq!(u["roles"], json!(["admin", "ops"]));
    assert_eq!(u["disabled"], false);
    assert!(u.get("set_password_link").is_none());
    let id = u["id"].as_str().expect("id");
    let shown = a
        .ok(Method::GET, &format!("/admin/v1/users/{id}"), None, 200)
        .await;
    assert_eq!(shown["email"], "alice@example.com");
    let r = a.s.sign_in("alice", PASSWORD).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.expect("json");
    assert_eq!(
        claims(t["access_token"].as_str().expect("at"))["roles"],
        json!(["admin", "ops"])
    );

    let refusals = [
        (
            json!({"username": "ALICE", "password": PASSWORD}),
            409,
            "username_taken",
        ),
        (
            json!({"username": "alice2", "password": PASSWORD, "email": "ALICE@example.com"}),
            409,
            "email_taken",
        ),
        (
            json!({"username": "bob", "password": "short"}),
            400,
            "invalid_request",
        ),
        (
            json!({"username": "bob", "password": "password123"}),
            400,
            "invalid_request",
        ),
        (
            json!({"username": "bob", "email": "not-an-address"}),
            400,
            "invalid_request",
        ),
        (
            json!({"username": "bob", "roles": ["has space"]}),
            400,
            "invalid_request",
        ),
        (
            json!({"username": "bob", "roles": [""]}),
            400,
            "invalid_request",
        ),
        (json!({"username": "b o b"}), 400, "invalid_request"),
        (json!({"password": PASSWORD}), 400, "invalid_request"),
    ];
    for (body, status, code) in refusals {
        let r = a
            .call(Method::POST, "/admin/v1/users", Some(body.clone()))
            .await;
        assert_eq!(error_of(r).await, (status, code.to_owned()), "{body}");
    }
    assert_eq!(a.s.sign_in("bob", PASSWORD).await.status(), 401);

    // Body limits and media type.
    let r =
        a.s.http
            .post(a.s.url("/admin/v1/users"))
            .bearer_auth(&a.token)
            .header("content-type", "text/plain")
            .body(r#"{"username":"bob"}"#)
            .send()
            .await
            .expect("request");
    assert_eq!(error_of(r).await, (415, "invalid_request".into()));
    let huge = json!({"username": "bob", "password": "x".repeat(70 * 1024)});
    let r = a.call(Method::POST, "/admin/v1/users", Some(huge)).await;
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn an_account_created_without_a_password_gets_a_link_and_no_sign_in() {
    let a = admin_server(SignUpMode::Open).await;
    let u = a.create(json!({"username": "carol"})).await;
    let link = u["set_password_link"].as_str().expect("link");
    let now = a.s.clock_now();
    let expires = u["set_password_link_expires_at"].as_i64().expect("expiry");
    assert!((now + 7 * 86_400 - 5..=now + 7 * 86_400 + 5).contains(&expires));
    let token = link
        .strip_prefix("http://latchkey.test/account/reset-password?token=")
        .expect("a reset link on the public URL");
    // No password works, and the refusal is a wrong password's.
    for guess in [PASSWORD, "", token] {
        assert_eq!(error_of(a.s.sign_in("carol", guess).await).await, refused());
    }
    // The link's token is a stored password-reset token of carol's (the
    // page that spends it is the recovery feature's).
    let store = latchkey_store::SqliteStore::open(&a.s.settings.data_dir.join("latchkey.db"))
        .expect("open the server's database");
    let taken = store
        .take_account_token(
            &lookup_hash(token).expect("well-formed"),
            AccountTokenPurpose::PasswordReset,
            now,
        )
        .await
        .expect("take")
        .expect("stored");
    assert_eq!(taken.user_id.to_string(), u["id"].as_str().expect("id"));
}

#[tokio::test]
async fn new_roles_reach_the_next_refresh_and_nothing_ends() {
    let a = admin_server(SignUpMode::Open).await;
    let tokens = a.s.new_session("dave").await;
    let id = claims(&tokens.access)["sub"]
        .as_str()
        .expect("sub")
        .to_owned();
    assert!(claims(&tokens.access).get("roles").is_none());
    let path = format!("/admin/v1/users/{id}");
    let u = a
        .ok(
            Method::PATCH,
            &path,
            Some(json!({"roles": ["editor", "beta"]})),
            200,
        )
        .await;
    assert_eq!(u["roles"], json!(["editor", "beta"]));
    // The access token issued before still works (nothing was ended) ...
    let me: Value =
        a.s.get_bearer("/v1/me", &tokens.access)
            .await
            .json()
            .await
            .expect("json");
    assert_eq!(me["roles"], json!(["editor", "beta"]));
    // ... and the next refresh carries the new roles.
    let r = a.s.refresh(&tokens.refresh).await;
    assert_eq!(r.status(), 200);
    let next: Value = r.json().await.expect("json");
    assert_eq!(
        claims(next["access_token"].as_str().expect("at"))["roles"],
        json!(["editor", "beta"])
    );

    // Email: set (unverified), taken by another, removed.
    a.create(json!({"username": "erin", "password": PASSWORD, "email": "erin@example.com"}))
        .await;
    let u = a
        .ok(
            Method::PATCH,
            &path,
            Some(json!({"email": "Dave@Example.com"})),
            200,
        )
        .await;
    assert_eq!(
        (u["email"].as_str(), u["email_verified_at"].is_null()),
        (Some("Dave@Example.com"), true)
    );
    let r = a
        .call(
            Method::PATCH,
            &path,
            Some(json!({"email": "ERIN@example.com"})),
        )
        .await;
    assert_eq!(error_of(r).await, (409, "email_taken".into()));
    let u = a
        .ok(Method::PATCH, &path, Some(json!({"email": ""})), 200)
        .await;
    assert!(u["email"].is_null());

    let bad = [
        (
            path.clone(),
            json!({"roles": ["x".repeat(65)]}),
            400,
            "invalid_request",
        ),
        (
            path.clone(),
            json!({"roles": (0..33).map(|i| format!("r{i}")).collect::<Vec<_>>()}),
            400,
            "invalid_request",
        ),
        (
            path.clone(),
            json!({"email": "nope"}),
            400,
            "invalid_request",
        ),
        (
            path.clone(),
            json!({"disabled": "yes"}),
            400,
            "invalid_request",
        ),
        (
            "/admin/v1/users/not-a-uuid".to_owned(),
            json!({}),
            400,
            "invalid_request",
        ),
        (
            format!("/admin/v1/users/{}", uuid_nil()),
            json!({}),
            404,
            "not_found",
        ),
    ];
    for (p, body, status, code) in bad {
        let r = a.call(Method::PATCH, &p, Some(body.clone())).await;
        assert_eq!(error_of(r).await, (status, code.to_owned()), "{p} {body}");
    }
    let r =
        a.s.http
            .patch(a.s.url(&path))
            .bearer_auth(&a.token)
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .expect("request");
    assert_eq!(r.status(), 415);
    let huge = json!({"roles": ["x".repeat(70 * 1024)]});
    assert_eq!(a.call(Method::PATCH, &path, Some(huge)).await.status(), 413);
    // Refresh still works: no change above ended anything.
    assert_eq!(
        a.s.refresh(next["refresh_token"].as_str().expect("rt"))
            .await
            .status(),
        200
    );
}

fn uuid_nil() -> &'static str {
    "00000000-0000-4000-8000-000000000000"
}

#[tokio::test]
async fn disabling_ends_every_session_at_once_and_sign_in_is_refused_like_a_wrong_password() {
    let a = admin_server(SignUpMode::Open).await;
    let first = a.s.new_session("frank").await;
    let second = a.s.new_session("frank").await;
    let id = claims(&first.access)["sub"]
        .as_str()
        .expect("sub")
        .to_owned();
    let path = format!("/admin/v1/users/{id}");
    let u = a
        .ok(Method::PATCH, &path, Some(json!({"disabled": true})), 200)
        .await;
    assert_eq!(u["disabled"], true);
    assert!(u["disabled_at"].is_i64());
    for t in [&first, &second] {
        let r = a.s.get_bearer("/v1/me", &t.access).await;
        assert_eq!(error_of(r).await, (401, "invalid_token".into()));
        assert_eq!(error_of(a.s.refresh(&t.refresh).await).await, refused());
    }
    // The right password is refused in a wrong one's words.
    assert_eq!(
        error_of(a.s.sign_in("frank", PASSWORD).await).await,
        refused()
    );
    assert_eq!(
        error_of(a.s.sign_in("frank", "wrong password").await).await,
        refused()
    );
    let sessions = a
        .ok(Method::GET, &format!("{path}/sessions"), None, 200)
        .await;
    assert_eq!(sessions["sessions"], json!([]));

    let u = a
        .ok(Method::PATCH, &path, Some(json!({"disabled": false})), 200)
        .await;
    assert_eq!(
        (u["disabled"].as_bool(), u["disabled_at"].is_null()),
        (Some(false), true)
    );
    assert_eq!(a.s.sign_in("frank", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn a_deleted_account_is_gone_with_its_sessions() {
    let a = admin_server(SignUpMode::Open).await;
    let t = a.s.new_session("gina").await;
    let id = claims(&t.access)["sub"].as_str().expect("sub").to_owned();
    let path = format!("/admin/v1/users/{id}");
    a.ok(Method::DELETE, &path, None, 204).await;
    assert_eq!(
        error_of(a.s.get_bearer("/v1/me", &t.access).await).await.0,
        401
    );
    assert_eq!(error_of(a.s.refresh(&t.refresh).await).await, refused());
    assert_eq!(
        error_of(a.s.sign_in("gina", PASSWORD).await).await,
        refused()
    );
    for (method, p, status, code) in [
        (Method::GET, path.clone(), 404, "not_found"),
        (Method::DELETE, path.clone(), 404, "not_found"),
        (
            Method::GET,
            "/admin/v1/users/nope".to_owned(),
            400,
            "invalid_request",
        ),
        (
            Method::DELETE,
            "/admin/v1/users/nope".to_owned(),
            400,
            "invalid_request",
        ),
    ] {
        let r = a.call(method.clone(), &p, None).await;
        assert_eq!(error_of(r).await, (status, code.to_owned()), "{method} {p}");
    }
    // The name is free again.
    assert_eq!(a.s.sign_up("gina", PASSWORD).await.status(), 201);
}

#[tokio::test]
async fn an_accounts_sessions_are_listed_and_ended_and_reset_links_issued() {
    let a = admin_server(SignUpMode::Open).await;
    let first = a.s.new_session("hal").await;
    let second = a.s.new_session("hal").await;
    let id = claims(&first.access)["sub"]
        .as_str()
        .expect("sub")
        .to_owned();
    let sessions_path = format!("/admin/v1/users/{id}/sessions");
    let listed = a.ok(Method::GET, &sessions_path, None, 200).await;
    let listed = listed["sessions"].as_array().expect("sessions").clone();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|s| s["current"] == false));
    let ended = a.ok(Method::DELETE, &sessions_path, None, 200).await;
    assert_eq!(ended, json!({"ended": 2}));
    for t in [&first, &second] {
        assert_eq!(a.s.get_bearer("/v1/me", &t.access).await.status(), 401);
    }
    let ended = a.ok(Method::DELETE, &sessions_path, None, 200).await;
    assert_eq!(ended, json!({"ended": 0}));

    let reset = a
        .ok(
            Method::POST,
            &format!("/admin/v1/users/{id}/password-reset"),
            None,
            200,
        )
        .await;
    assert!(reset["link"]
        .as_str()
        .expect("link")
        .starts_with("http://latchkey.test/account/reset-password?token="));
    assert_eq!(reset["expires_at"].as_i64(), Some(a.s.clock_now() + 1800));

    let unknown = uuid_nil();
    for (method, suffix) in [
        (Method::GET, "sessions"),
        (Method::DELETE, "sessions"),
        (Method::POST, "password-reset"),
    ] {
        let r = a
            .call(
                method.clone(),
                &format!("/admin/v1/users/{unknown}/{suffix}"),
                None,
            )
            .await;
        assert_eq!(
            error_of(r).await,
            (404, "not_found".into()),
            "{method} {suffix}"
        );
        let r = a
            .call(method.clone(), &format!("/admin/v1/users/x/{suffix}"), None)
            .await;
        assert_eq!(
            error_of(r).await,
            (400, "invalid_request".into()),
            "{method} {suffix}"
        );
    }
}

#[tokio::test]
async fn every_admin_action_is_audited_with_its_actor() {
    let a = admin_server(SignUpMode::Invite).await;
    let u = a
        .create(json!({"username": "ivy", "password": PASSWORD}))
        .await;
    let id = u["id"].as_str().expect("id").to_owned();
    let path = format!("/admin/v1/users/{id}");
    a.ok(
        Method::PATCH,
        &path,
        Some(json!({"roles": ["x"], "disabled": true})),
        200,
    )
    .await;
    a.ok(Method::PATCH, &path, Some(json!({"disabled": false})), 200)
        .await;
    a.ok(Method::DELETE, &format!("{path}/sessions"), None, 200)
        .await;
    a.ok(Method::POST, &format!("{path}/password-reset"), None, 200)
        .await;
    a.ok(Method::POST, "/admin/v1/invites", None, 201).await;
    a.ok(Method::DELETE, &path, None, 204).await;
    let events = a.s.audit_events(None, None, 100).await;
    let admin: Vec<(String, Option<String>, Option<String>)> = events
        .iter()
        .filter(|e| e["kind"].as_str().is_some_and(|k| k.starts_with("admin_")))
        .map(|e| {
            (
                e["kind"].as_str().expect("kind").to_owned(),
                e["user_id"].as_str().map(str::to_owned),
                e["actor"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let by_ops = |kind: &str, user: Option<&str>| {
        (
            kind.to_owned(),
            user.map(str::to_owned),
            Some("client:ops".to_owned()),
        )
    };
    assert_eq!(
        admin,
        vec![
            by_ops("admin_user_created", Some(&id)),
            by_ops("admin_user_updated", Some(&id)),
            by_ops("admin_user_disabled", Some(&id)),
            by_ops("admin_user_enabled", Some(&id)),
            by_ops("admin_sessions_ended", Some(&id)),
            by_ops("admin_reset_link", Some(&id)),
            by_ops("admin_invite_created", None),
            by_ops("admin_user_deleted", Some(&id)),
        ]
    );
    // A user's own actions name no actor.
    let sign_in = events.iter().find(|e| e["kind"] == "sign_in");
    assert!(sign_in.is_none_or(|e| e["actor"].is_null()));
}

#[tokio::test]
async fn sign_up_is_open_by_invitation_or_closed() {
    let open = admin_server(SignUpMode::Open).await;
    assert_eq!(open.s.sign_up("jo", PASSWORD).await.status(), 201);

    let closed = admin_server(SignUpMode::Closed).await;
    let r = closed.s.sign_up("jo", PASSWORD).await;
    assert_eq!(error_of(r).await, (403, "sign_up_disabled".into()));
    // Operators still create accounts.
    closed
        .create(json!({"username": "jo", "password": PASSWORD}))
        .await;
    assert_eq!(closed.s.sign_in("jo", PASSWORD).await.status(), 200);

    let a = admin_server(SignUpMode::Invite).await;
    let invite = a
        .ok(
            Method::POST,
            "/admin/v1/invites",
            Some(json!({"roles": ["beta"], "expires_in": 3600})),
            201,
        )
        .await;
    assert_eq!(invite["roles"], json!(["beta"]));
    assert_eq!(invite["expires_at"].as_i64(), Some(a.s.clock_now() + 3600));
    let code = invite["code"].as_str().expect("code").to_owned();
    let sign_up = |username: &str, code: Option<&str>| {
        let mut body = json!({"username": username, "password": PASSWORD});
        if let Some(c) = code {
            body["invite"] = c.into();
        }
        a.s.post("/v1/sign-up", body)
    };
    let unknown = "A".repeat(43);
    for wrong in [None, Some("not-a-code"), Some(unknown.as_str())] {
        let r = sign_up("kim", wrong).await;
        assert_eq!(
            error_of(r).await,
            (403, "invalid_invite".into()),
            "{wrong:?}"
        );
    }
    let r = sign_up("kim", Some(&code)).await;
    assert_eq!(r.status(), 201);
    let r = a.s.sign_in("kim", PASSWORD).await;
    let t: Value = r.json().await.expect("json");
    assert_eq!(
        claims(t["access_token"].as_str().expect("at"))["roles"],
        json!(["beta"])
    );
}

#[tokio::test]
async fn an_invite_code_is_spent_once_even_by_concurrent_sign_ups() {
    let a = admin_server(SignUpMode::Invite).await;
    let new_code = |body: Option<Value>| a.ok(Method::POST, "/admin/v1/invites", body, 201);
    let code = new_code(Some(json!({"roles": ["beta"]}))).await["code"]
        .as_str()
        .expect("code")
        .to_owned();
    let sign_up = |username: String, code: String| {
        let s = &a.s;
        async move {
            s.post(
                "/v1/sign-up",
                json!({"username": username, "password": PASSWORD, "invite": code}),
            )
            .await
        }
    };
    // Taken username: 409, and the code survives it.
    a.create(json!({"username": "taken", "password": PASSWORD}))
        .await;
    let r = sign_up("taken".into(), code.clone()).await;
    assert_eq!(error_of(r).await, (409, "username_taken".into()));
    // A bad password is refused before the code is touched.
    let r =
        a.s.post(
            "/v1/sign-up",
            json!({"username": "lee", "password": "short", "invite": code}),
        )
        .await;
    assert_eq!(error_of(r).await, (400, "invalid_request".into()));

    let (one, two) = tokio::join!(
        sign_up("lee".into(), code.clone()),
        sign_up("max".into(), code.clone())
    );
    let mut statuses = vec![one.status().as_u16(), two.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 403]);
    let winner = if one.status() == 201 { "lee" } else { "max" };
    let r = a.s.sign_in(winner, PASSWORD).await;
    let t: Value = r.json().await.expect("json");
    assert_eq!(
        claims(t["access_token"].as_str().expect("at"))["roles"],
        json!(["beta"])
    );
    let r = sign_up("ned".into(), code.clone()).await;
    assert_eq!(error_of(r).await, (403, "invalid_invite".into()), "used");

    // An expired code; an empty body takes the defaults (7 days).
    let short = new_code(Some(json!({"expires_in": 60}))).await;
    a.s.clock.advance(61);
    let r = sign_up("ola".into(), short["code"].as_str().expect("code").into()).await;
    assert_eq!(error_of(r).await, (403, "invalid_invite".into()), "expired");
    let default = new_code(None).await;
    assert_eq!(
        default["expires_at"].as_i64(),
        Some(a.s.clock_now() + 7 * 86_400)
    );
    assert_eq!(default["roles"], json!([]));

    for body in [
        json!({"expires_in": 59}),
        json!({"expires_in": 91 * 86_400}),
        json!({"roles": [" "]}),
    ] {
        let r = a
            .call(Method::POST, "/admin/v1/invites", Some(body.clone()))
            .await;
        assert_eq!(error_of(r).await, (400, "invalid_request".into()), "{body}");
    }
    let r =
        a.s.http
            .post(a.s.url("/admin/v1/invites"))
            .bearer_auth(&a.token)
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .expect("request");
    assert_eq!(r.status(), 415);
    let huge = json!({"roles": ["x".repeat(70 * 1024)]});
    assert_eq!(
        a.call(Method::POST, "/admin/v1/invites", Some(huge))
            .await
            .status(),
        413
    );
}
