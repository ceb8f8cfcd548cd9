//! The OAuth 2.0 surface over real HTTP: token endpoint grants and errors
//! (RFC 6749), revocation (RFC 7009), introspection (RFC 7662), metadata
//! (RFC 8414), clients, scopes and audiences.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use latchkey_core::client::{generate_secret, Client, ClientKind};
use latchkey_server::cli::clients::{
    self as client_admin, ClientsAction, ClientsArgs, CreateArgs, Kind,
};
use latchkey_server::config::DataArgs;
use latchkey_testkit::TestServer;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

struct Fixture {
    s: TestServer,
    svc_secret: String,
    other_secret: String,
    rs_secret: String,
}

/// A server with a public client `web` (scopes read, write; audiences api,
/// latchkey), a confidential client `svc` (scope jobs; audience jobs-api),
/// a third-party confidential client `other`, and a resource server `rs`
/// registered with `introspect_any`.
async fn fixture() -> Fixture {
    let (svc_secret, hash) = generate_secret().expect("rng");
    let (other_secret, other_hash) = generate_secret().expect("rng");
    let (rs_secret, rs_hash) = generate_secret().expect("rng");
    let s = TestServer::start_with(|settings| {
        settings.clients.push(Client {
            kind: ClientKind::Confidential,
            secret_hash: Some(other_hash),
            ..Client::default_public("other")
        });
        settings.clients.push(Client {
            kind: ClientKind::Confidential,
            secret_hash: Some(rs_hash),
            introspect_any: true,
            ..Client::default_public("rs")
        });
        settings.clients.push(Client {
            audiences: vec!["api".into(), "latchkey".into()],
            scopes: vec!["read".into(), "write".into()],
            ..Client::default_public("web")
        });
        settings.clients.push(Client {
            kind: ClientKind::Confidential,
            secret_hash: Some(hash),
            audiences: vec!["jobs-api".into()],
            scopes: vec!["jobs".into()],
            ..Client::default_public("svc")
        });
    })
    .await;
    Fixture {
        s,
        svc_secret,
        other_secret,
        rs_secret,
    }
}

impl Fixture {
    async fn form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> reqwest::Response {
        let mut req = self.s.http.post(self.s.url(path)).form(form);
        if let Some((id, secret)) = basic {
            req = req.header(
                "authorization",
                format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
            );
        }
        req.send().await.expect("request")
    }

    fn svc(&self) -> Option<(&str, &str)> {
        Some(("svc", self.svc_secret.as_str()))
    }

    fn other(&self) -> Option<(&str, &str)> {
        Some(("other", self.other_secret.as_str()))
    }

    fn rs(&self) -> Option<(&str, &str)> {
        Some(("rs", self.rs_secret.as_str()))
    }

    /// `token` introspected by `caller`: status, headers (but the
    /// per-response `date` and `x-request-id`) and the body's bytes.
    async fn introspect(&self, token: &str, caller: Option<(&str, &str)>) -> Answer {
        let r = self
            .form("/oauth/introspect", &[("token", token)], caller)
            .await;
        let status = r.status().as_u16();
        let mut headers: Vec<(String, String)> = r
            .headers()
            .iter()
            .filter(|(name, _)| !["date", "x-request-id"].contains(&name.as_str()))
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        headers.sort();
        let body = r.bytes().await.expect("body").to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn sign_in(&self, extra: Value) -> Value {
        self.s.sign_up("alice", PASSWORD).await;
        let mut body = json!({"username": "alice", "password": PASSWORD});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let r = self.s.post("/v1/sign-in", body).await;
        assert_eq!(r.status(), 200);
        r.json().await.expect("json")
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json")
    }
}

fn claims(access_token: &str) -> Value {
    let payload = access_token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

async fn error_of(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.expect("json");
    (status, v["error"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn metadata_matches_the_tokens() {
    let f = fixture().await;
    let t = f.sign_in(json!({})).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let m: Value =
            f.s.http
                .get(f.s.url(path))
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
        assert_eq!(
            m["issuer"],
            claims(t["access_token"].as_str().expect("at"))["iss"]
        );
        assert_eq!(m["token_endpoint"], "http://latchkey.test/oauth/token");
        assert_eq!(m["jwks_uri"], "http://latchkey.test/.well-known/jwks.json");
        assert_eq!(
            m["grant_types_supported"],
            json!(["authorization_code", "refresh_token", "client_credentials"])
        );
        assert!(m["access_token_signing_alg_values_supported"]
            .as_array()
            .is_some_and(|a| !a.is_empty()));
    }
}

#[tokio::test]
async fn refresh_grant_rotates_with_the_same_rules() {
    let f = fixture().await;
    let t = f.sign_in(json!({})).await;
    let rt = t["refresh_token"].as_str().expect("rt");
    let r = f
        .form(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    let next: Value = r.json().await.expect("json");
    assert_eq!(next["token_type"], "Bearer");
    assert_ne!(next["refresh_token"], t["refresh_token"]);

    // Reuse after the grace window: invalid_grant, 400 on this endpoint,
    // and the whole session is gone.
    f.s.clock.advance(11);
    let r = f
        .form(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
            None,
        )
        .await;
    assert_eq!(error_of(r).await, (400, "invalid_grant".into()));
    let next_rt = next["refresh_token"].as_str().expect("rt");
    let r = f
        .form(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", next_rt)],
            None,
        )
        .await;
    assert_eq!(error_of(r).await, (400, "invalid_grant".into()));
}

#[tokio::test]
async fn scopes_audiences_and_client_binding() {
    let f = fixture().await;
    let t = f
        .sign_in(json!({"client_id": "web", "audience": "latchkey"}))
        .await;
    assert_eq!(t["scope"], "read write");
    let c = claims(t["access_token"].as_str().expect("at"));
    assert_eq!(
        (c["client_id"].as_str(), c["aud"].as_str()),
        (Some("web"), Some("latchkey"))
    );
    assert_eq!(c["scope"], "read write");
    let rt = t["refresh_token"].as_str().expect("rt");

    // Narrowing works for one access token; widening is refused.
    let r = f
        .form(
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("client_id", "web"),
                ("scope", "read"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let narrowed: Value = r.json().await.expect("json");
    assert_eq!(
        claims(narrowed["access_token"].as_str().expect("at"))["scope"],
        "read"
    );
    let rt = narrowed["refresh_token"].as_str().expect("rt");
    let r = f
        .form(
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("client_id", "web"),
                ("scope", "read admin"),
            ],
            None,
        )
        .await;
    assert_eq!(error_of(r).await, (400, "invalid_scope".into()));

    // A refresh token presented by another client is refused.
    let r = f
        .form(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
            None,
        )
        .await;
    assert_eq!(error_of(r).await, (400, "invalid_grant".into()));
    let r = f.s.refresh(rt).await;
    assert_eq!(r.status(), 401);

    // Asking for a scope or audience the client may not have.
    let r = f.s.post("/v1/sign-in", json!({"username": "alice", "password": PASSWORD, "client_id": "web", "scope": "admin"})).await;
    assert_eq!(error_of(r).await, (400, "invalid_scope".into()));
    let r = f.s.post("/v1/sign-in", json!({"username": "alice", "password": PASSWORD, "client_id": "web", "audience": "jobs-api"})).await;
    assert_eq!(error_of(r).await, (400, "invalid_target".into()));
    let r =
        f.s.post(
            "/v1/sign-in",
            json!({"username": "alice", "password": PASSWORD, "client_id": "nope"}),
        )
        .await;
    assert_eq!(error_of(r).await, (401, "invalid_client".into()));

    // A token for another audience does not open Latchkey's own API.
    let t =
        f.s.post(
            "/v1/sign-in",
            json!({"username": "alice", "password": PASSWORD, "client_id": "web"}),
        )
        .await;
    let t: Value = t.json().await.expect("json");
    assert_eq!(
        claims(t["access_token"].as_str().expect("at"))["aud"],
        "api"
    );
    assert_eq!(
        f.s.get_bearer("/v1/me", t["access_token"].as_str().expect("at"))
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn client_credentials_without_any_client_authentication_is_invalid_client() {
    let f = fixture().await;
    let r = f
        .form(
            "/oauth/token",
            &[("grant_type", "client_credentials")],
            None,
        )
        .await;
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .starts_with("Basic"));
    assert_eq!(error_of(r).await, (401, "invalid_client".into()));
    // A public client that names itself is still the wrong kind of client.
    let r = f
        .form(
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("client_id", "web")],
            None,
        )
        .await;
    assert_eq!(error_of(r).await, (400, "unauthorized_client".into()));
}

#[tokio::test]
async fn client_credentials_for_confidential_clients_only() {
    let f = fixture().await;
    for basic in [true, false] {
        let r = if basic {
            f.form(
                "/oauth/token",
                &[("grant_type", "client_credentials")],
                f.svc(),
            )
            .await
        } else {
            f.form(
                "/oauth/token",
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "svc"),
                    ("client_secret", &f.svc_secret),
                ],
                None,
            )
            .await
        };
        assert_eq!(r.status(), 200);
        let t: Value = r.json().await.expect("json");
        assert!(t.get("refresh_token").is_none());
        assert_eq!(t["scope"], "jobs");
        let c = claims(t["access_token"].as_str().expect("at"));
        assert_eq!(
            (c["sub"].as_str(), c["aud"].as_str()),
            (Some("client:svc"), Some("jobs-api"))
        );
        assert!(c.get("sid").is_none());
    }
    let r = f
        .form(
            "/oauth/token",
            &[("grant_type", "client_credentials")],
            Some(("svc", "lkc_wrong")),
        )
        .await;
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(error_of(r).await, (401, "invalid_client".into()));
    assert!(challenge.is_some_and(|c| c.starts_with("Basic")));
    let r = f
        .form(
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("client_id", "svc")],
            None,
        )
        .await;
    assert_eq!(error_of(r).await, (401, "invalid_client".into()));
    let r = f
        .form(
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("client_id", "web")],
            None,
        )
        .await;
    assert_eq!(error_of(r).await, (400, "unauthorized_client".into()));
    // Two authentication methods at once.
    let r = f
        .form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", &f.svc_secret),
            ],
            f.svc(),
        )
        .await;
    assert_eq!(error_of(r).await, (400, "invalid_request".into()));
}

#[tokio::test]
async fn token_endpoint_request_errors() {
    let f = fixture().await;
    let r = f
        .form(
            "/oauth/token",
            &[
                ("grant_type", "password"),
                ("username", "a"),
                ("password", "b"),
            ],
            None,
        )
        .await;
    assert_eq!(error_of(r).await, (400, "unsupported_grant_type".into()));
    let r = f
        .form("/oauth/token", &[("refresh_token", "x")], None)
        .await;
    assert_eq!(error_of(r).await, (400, "invalid_request".into()));
    let r = f
        .form(
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("grant_type", "refresh_token"),
            ],
            None,
        )
        .await;
    assert_eq!(error_of(r).await, (400, "invalid_request".into()));
    let r = f
        .form("/oauth/token", &[("grant_type", "refresh_token")], None)
        .await;
    assert_eq!(error_of(r).await, (400, "invalid_request".into()));
    let r =
        f.s.post("/oauth/token", json!({"grant_type": "refresh_token"}))
            .await;
    assert_eq!(error_of(r).await, (400, "invalid_request".into()));
    let r = f
        .form(
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", "lkr_garbage"),
            ],
            None,
        )
        .await;
    assert_eq!(error_of(r).await, (400, "invalid_grant".into()));
}

#[tokio::test]
async fn revocation_endpoint() {
    let f = fixture().await;
    let t = f.sign_in(json!({})).await;
    let (at, rt) = (
        t["access_token"].as_str().expect("at"),
        t["refresh_token"].as_str().expect("rt"),
    );

    let r = f
        .form(
            "/oauth/revoke",
            &[("token", at), ("token_type_hint", "refresh_token")],
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(f.s.get_bearer("/v1/me", at).await.status(), 401);
    assert_eq!(
        f.s.refresh(rt).await.status(),
        200,
        "revoking the access token leaves the session"
    );

    let t =
        f.s.sign_in("alice", PASSWORD)
            .await
            .json::<Value>()
            .await
            .expect("json");
    let rt = t["refresh_token"].as_str().expect("rt");
    let r = f
        .form(
            "/oauth/revoke",
            &[("token", rt), ("token_type_hint", "access_token")],
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(f.s.refresh(rt).await.status(), 401);

    for unknown in ["garbage", "lkr_AAAA", "a.b.c"] {
        assert_eq!(
            f.form("/oauth/revoke", &[("token", unknown)], None)
                .await
                .status(),
            200
        );
    }
    // Another client's token, refresh or access, is refused (RFC 7009
    // §2.1: `unauthorized_client`) and left alone.
    let t =
        f.s.sign_in("alice", PASSWORD)
            .await
            .json::<Value>()
            .await
            .expect("json");
    let rt = t["refresh_token"].as_str().expect("rt");
    let at = t["access_token"].as_str().expect("at");
    for token in [rt, at] {
        let r = f
            .form(
                "/oauth/revoke",
                &[("token", token), ("client_id", "web")],
                None,
            )
            .await;
        assert_eq!(error_of(r).await, (400, "unauthorized_client".into()));
    }
    assert_eq!(f.s.get_bearer("/v1/me", at).await.status(), 200);
    let t: Value = f.s.refresh(rt).await.json().await.expect("json");
    let rt = t["refresh_token"].as_str().expect("rt");
    // Confidential clients must authenticate.
    let r = f
        .form(
            "/oauth/revoke",
            &[("token", rt), ("client_id", "svc")],
            None,
        )
        .await;
    assert_eq!(error_of(r).await, (401, "invalid_client".into()));
}

#[tokio::test]
async fn introspection_endpoint() {
    let f = fixture().await;
    let t = f
        .sign_in(json!({"client_id": "svc", "client_secret": f.svc_secret}))
        .await;
    let (at, rt) = (
        t["access_token"].as_str().expect("at"),
        t["refresh_token"].as_str().expect("rt"),
    );

    let r = f.form("/oauth/introspect", &[("token", at)], None).await;
    assert_eq!(error_of(r).await, (401, "invalid_client".into()));
    let r = f
        .form(
            "/oauth/introspect",
            &[("token", at), ("client_id", "web")],
            None,
        )
        .await;
    assert_eq!(error_of(r).await, (401, "invalid_client".into()));

    let v = f.introspect(at, f.svc()).await.json();
    assert_eq!(v["active"], true);
    assert_eq!(v["token_type"], "Bearer");
    for field in ["sub", "client_id", "exp", "iat", "iss", "jti", "sid", "aud"] {
        assert!(!v[field].is_null(), "missing {field}");
    }
    let v = f.introspect(rt, f.svc()).await.json();
    // RFC 7662 §2.2: `token_type` names an access token's type; a refresh
    // token's answer has none.
    assert_eq!(v["active"].as_bool(), Some(true));
    assert!(v.get("token_type").is_none(), "{v}");
    assert_eq!(v["username"], "alice");

    let r = f.form("/oauth/revoke", &[("token", rt)], f.svc()).await;
    assert_eq!(r.status(), 200);
    for token in [at, rt, "garbage", ""] {
        let r = f
            .form("/oauth/introspect", &[("token", token)], f.svc())
            .await;
        if token.is_empty() {
            assert_eq!(r.status(), 400);
            continue;
        }
        let v: Value = r.json().await.expect("json");
        assert_eq!(v, json!({"active": false}), "{token}");
    }
}

/// Introspection tells a client only about tokens issued to it, unless it
/// is registered with `introspect_any`: a third party learns nothing about
/// alice's tokens (not even that they are live), in an answer identical to
/// the one for garbage. Every introspection is in the audit log, with the
/// user only when the caller could be told about the token.
#[tokio::test]
async fn introspection_is_scoped_to_the_issuing_client_and_audited() {
    let f = fixture().await;
    let via_svc = f
        .sign_in(json!({"client_id": "svc", "client_secret": f.svc_secret}))
        .await;
    let via_default: Value =
        f.s.sign_in("alice", PASSWORD)
            .await
            .json()
            .await
            .expect("json");
    let svc_own: Value = f
        .form(
            "/oauth/token",
            &[("grant_type", "client_credentials")],
            f.svc(),
        )
        .await
        .json()
        .await
        .expect("json");
    let token = |v: &Value, name: &str| v[name].as_str().expect(name).to_owned();
    let (svc_at, svc_rt) = (
        token(&via_svc, "access_token"),
        token(&via_svc, "refresh_token"),
    );
    let (default_at, default_rt) = (
        token(&via_default, "access_token"),
        token(&via_default, "refresh_token"),
    );
    let svc_cc = token(&svc_own, "access_token");
    let alice = claims(&svc_at)["sub"].as_str().expect("sub").to_owned();
    let svc_sid = claims(&svc_at)["sid"].as_str().expect("sid").to_owned();
    let default_sid = claims(&default_at)["sid"].as_str().expect("sid").to_owned();

    let inactive = f.introspect("garbage", f.other()).await;
    assert_eq!(inactive.status, 200);
    assert_eq!(inactive.json(), json!({"active": false}));
    // (outcome, user_id, session_id) of each introspection, in order.
    let mut expected = vec![("failure", Value::Null, Value::Null)];

    // The issuing client and the resource server get the full answer.
    for (caller, name) in [(f.svc(), "svc"), (f.rs(), "rs")] {
        let v = f.introspect(&svc_at, caller).await.json();
        assert_eq!(
            (
                v["active"].as_bool(),
                v["sub"].as_str(),
                v["client_id"].as_str()
            ),
            (Some(true), Some(alice.as_str()), Some("svc")),
            "{name}: {v}"
        );
        let v = f.introspect(&svc_rt, caller).await.json();
        assert_eq!(
            (
                v["active"].as_bool(),
                v["username"].as_str(),
                v["sid"].as_str()
            ),
            (Some(true), Some("alice"), Some(svc_sid.as_str())),
            "{name}: {v}"
        );
        let v = f.introspect(&svc_cc, caller).await.json();
        assert_eq!(
            (v["active"].as_bool(), v["sub"].as_str()),
            (Some(true), Some("client:svc")),
            "{name}: {v}"
        );
        for _ in 0..2 {
            expected.push(("success", json!(alice), json!(svc_sid)));
        }
        expected.push(("success", Value::Null, Value::Null));
    }
    // The resource server sees the default client's tokens too.
    for t in [&default_at, &default_rt] {
        let v = f.introspect(t, f.rs()).await.json();
        assert_eq!(v["active"], true, "{v}");
        assert_eq!(v["sub"], alice.as_str());
        expected.push(("success", json!(alice), json!(default_sid)));
    }

    // Anyone else's token: exactly the garbage answer, live or not.
    let cases = [
        (f.other(), &svc_at),
        (f.other(), &svc_rt),
        (f.other(), &svc_cc),
        (f.other(), &default_at),
        (f.other(), &default_rt),
        (f.svc(), &default_at),
        (f.svc(), &default_rt),
    ];
    for (caller, t) in cases {
        assert_eq!(f.introspect(t, caller).await, inactive, "{caller:?}");
        expected.push(("failure", Value::Null, Value::Null));
    }

    // Revoked: inactive for everyone; the issuer's failure is still its own.
    let r = f
        .form("/oauth/revoke", &[("token", &svc_rt)], f.svc())
        .await;
    assert_eq!(r.status(), 200);
    for (caller, t) in [
        (f.svc(), &svc_rt),
        (f.other(), &svc_rt),
        (f.svc(), &svc_at),
        (f.other(), &svc_at),
    ] {
        assert_eq!(f.introspect(t, caller).await, inactive, "{caller:?}");
        let seen = caller == f.svc();
        expected.push((
            "failure",
            if seen { json!(alice) } else { Value::Null },
            if seen { json!(svc_sid) } else { Value::Null },
        ));
    }

    let events = f.s.audit_events(None, None, 1000).await;
    let introspections: Vec<_> = events
        .iter()
        .filter(|e| e["kind"] == "introspect")
        .map(|e| {
            (
                e["outcome"].as_str().expect("outcome"),
                e["user_id"].clone(),
                e["session_id"].clone(),
            )
        })
        .collect();
    assert_eq!(introspections, expected);
    assert!(events
        .iter()
        .filter(|e| e["kind"] == "introspect")
        .all(|e| e["ip"] == "127.0.0.1"));
}

/// `latchkey clients create --introspect-any` registers a resource server,
/// `clients show` and `list` say so, and the running server honours it.
#[tokio::test]
async fn clients_cli_registers_introspect_any() {
    let f = fixture().await;
    let t = f.sign_in(json!({})).await;
    let at = t["access_token"].as_str().expect("at");
    let location = || DataArgs {
        data_dir: Some(f.s.settings.data_dir.clone()),
        ..DataArgs::default()
    };
    let create = |id: &str, kind: Kind, introspect_any: bool| ClientsArgs {
        location: location(),
        action: ClientsAction::Create(CreateArgs {
            client_id: id.to_owned(),
            kind,
            audiences: Vec::new(),
            scopes: Vec::new(),
            access_ttl: None,
            refresh_idle_timeout: None,
            session_lifetime: None,
            introspect_any,
            allowed_origins: Vec::new(),
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            third_party: false,
            id_token_algorithm: None,
        }),
    };
    assert!(client_admin::run(create("spa", Kind::Public, true))
        .await
        .is_err());
    let created = client_admin::run(create("billing", Kind::Confidential, false))
        .await
        .expect("create");
    assert_eq!(created["introspect_any"], false);
    let created = client_admin::run(create("gateway", Kind::Confidential, true))
        .await
        .expect("create");
    assert_eq!(created["introspect_any"], true);
    let secret = created["client_secret"].as_str().expect("secret");
    let shown = client_admin::run(ClientsArgs {
        location: location(),
        action: ClientsAction::Show {
            client_id: "gateway".into(),
        },
    })
    .await
    .expect("show");
    assert_eq!(shown["introspect_any"], true);
    assert!(shown.get("client_secret").is_none());
    let listed = client_admin::run(ClientsArgs {
        location: location(),
        action: ClientsAction::List,
    })
    .await
    .expect("list");
    let flags: Vec<(&str, bool)> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|c| {
            (
                c["client_id"].as_str().expect("id"),
                c["introspect_any"].as_bool().expect("flag"),
            )
        })
        .collect();
    assert!(flags.contains(&("gateway", true)) && flags.contains(&("billing", false)));

    let v = f.introspect(at, Some(("gateway", secret))).await.json();
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["client_id"], "default");
}
