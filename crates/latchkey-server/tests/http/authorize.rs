//! The authorization-code flow with PKCE through the hosted pages, over
//! real HTTP: sign-in, the browser session, consent, the code exchange, ID
//! tokens, userinfo, logout, and every misuse of a code or a redirect URI.

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_core::access_token::VerifyingKeys;
use latchkey_core::client::Client;
use latchkey_core::keys::public_key_from_jwk;
use latchkey_core::service::IdClaims;
use latchkey_testkit::http::error_code;
use latchkey_testkit::TestServer;
use reqwest::header;
use serde_json::Value;

const ISSUER: &str = "http://latchkey.test";
const CALLBACK: &str = "http://127.0.0.1:9/cb";
const PARTNER_CALLBACK: &str = "https://partner.example/cb";
const AFTER_LOGOUT: &str = "http://127.0.0.1:9/bye";

async fn server() -> TestServer {
    let t = TestServer::start_with(|s| {
        s.clients.push(Client {
            redirect_uris: vec![CALLBACK.into()],
            post_logout_redirect_uris: vec![AFTER_LOGOUT.into()],
            scopes: vec!["orders:read".into()],
            ..Client::default_public("web")
        });
        s.clients.push(Client {
            redirect_uris: vec![PARTNER_CALLBACK.into()],
            third_party: true,
            ..Client::default_public("partner")
        });
        s.clients.push(Client {
            redirect_uris: vec![CALLBACK.into()],
            id_token_algorithm: Some(latchkey_core::access_token::Algorithm::EdDsa),
            ..Client::default_public("edwards")
        });
    })
    .await;
    let r = t.sign_up("alice", "correct horse battery").await;
    assert_eq!(r.status(), 201);
    t
}

/// A browser: no redirects followed, cookies kept by hand (the session
/// cookie is `Secure`, which reqwest's jar would not send over http).
struct Browser {
    http: reqwest::Client,
    cookie: Option<String>,
}

struct Pkce {
    verifier: String,
    challenge: String,
}

fn pkce() -> Pkce {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

fn request(
    client: &str,
    redirect: &str,
    pkce: &Pkce,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", redirect),
        ("scope", "openid profile orders:read"),
        ("state", "s-123"),
        ("nonce", "n-456"),
        ("code_challenge", &pkce.challenge),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        params.retain(|(name, _)| name != k);
        if !v.is_empty() {
            params.push((k.to_string(), v.to_string()));
        }
    }
    params
}

fn query(params: &[(String, String)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    q.finish()
}

/// The parameters of a redirect's query.
fn redirect_params(r: &reqwest::Response) -> Vec<(String, String)> {
    let location = r
        .headers()
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .expect("a Location");
    let query = location.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookie: None,
        }
    }

    fn keep_cookie(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap_or("");
            if let Some(rest) = v.strip_prefix("__Host-latchkey_session=") {
                let value = rest.split(';').next().unwrap_or("");
                self.cookie = (!value.is_empty()).then(|| value.to_owned());
            }
        }
    }

    async fn get(&mut self, t: &TestServer, path: &str) -> reqwest::Response {
        let mut req = self.http.get(t.url(path));
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, format!("__Host-latchkey_session={c}"));
        }
        let r = req.send().await.expect("get");
        self.keep_cookie(&r);
        r
    }

    async fn authorize(
        &mut self,
        t: &TestServer,
        params: &[(String, String)],
    ) -> reqwest::Response {
        self.get(t, &format!("/oauth/authorize?{}", query(params)))
            .await
    }

    async fn post_form(
        &mut self,
        t: &TestServer,
        path: &str,
        params: &[(String, String)],
        origin: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.http.post(t.url(path)).form(params);
        if let Some(o) = origin {
            req = req.header(header::ORIGIN, o);
        }
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, format!("__Host-latchkey_session={c}"));
        }
        let r = req.send().await.expect("post");
        self.keep_cookie(&r);
        r
    }

    /// Posts the hosted sign-in form as our page does.
    async fn sign_in(
        &mut self,
        t: &TestServer,
        params: &[(String, String)],
        password: &str,
    ) -> reqwest::Response {
        let mut form = params.to_vec();
        form.push(("username".into(), "alice".into()));
        form.push(("password".into(), password.into()));
        self.post_form(t, "/oauth/authorize/sign-in", &form, Some(ISSUER))
            .await
    }
}

async fn exchange(
    t: &TestServer,
    client: &str,
    code: &str,
    redirect: &str,
    verifier: &str,
) -> reqwest::Response {
    t.http
        .post(t.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", client),
            ("code", code),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .expect("token")
}

/// A code for `web`: through the hosted sign-in page, or straight back if
/// the browser is signed in already.
async fn code_for(t: &TestServer, b: &mut Browser, pkce: &Pkce) -> String {
    let params = request("web", CALLBACK, pkce, &[]);
    let mut r = b.authorize(t, &params).await;
    if r.status() == 200 {
        r = b.sign_in(t, &params, "correct horse battery").await;
    }
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    let back = redirect_params(&r);
    param(&back, "code").expect("code").to_owned()
}

/// A code for `web` and the tokens it was exchanged for; the code comes
/// with its verifier, for a replay.
async fn signed_in_tokens(t: &TestServer, b: &mut Browser) -> ((String, String), Value) {
    let p = pkce();
    let code = code_for(t, b, &p).await;
    let tokens: Value = exchange(t, "web", &code, CALLBACK, &p.verifier)
        .await
        .json()
        .await
        .expect("json");
    ((code, p.verifier), tokens)
}

async fn id_claims(t: &TestServer, id_token: &str) -> IdClaims {
    let jwks: Value = t
        .http
        .get(t.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let mut keys = VerifyingKeys::default();
    for jwk in jwks["keys"].as_array().expect("keys") {
        let (kid, alg, public) = public_key_from_jwk(jwk).expect("jwk");
        keys.insert(&kid, alg, &public).expect("key");
    }
    latchkey_wire::jws::id_token::verify_signature_and_issuer(id_token, &keys, ISSUER)
        .expect("a valid ID token")
}

#[tokio::test]
async fn the_code_flow_signs_in_once_and_passes_through_after() {
    let t = server().await;
    let mut b = Browser::new();
    let p = pkce();
    let params = request("web", CALLBACK, &p, &[]);

    let page = b.authorize(&t, &params).await;
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.headers()[header::X_FRAME_OPTIONS].to_str().ok(),
        Some("DENY")
    );
    let html = page.text().await.expect("html");
    assert!(
        html.contains("action=\"/oauth/authorize/sign-in\""),
        "{html}"
    );

    let wrong = b.sign_in(&t, &params, "wrong password!").await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong
        .text()
        .await
        .expect("html")
        .contains("invalid username or password"));
    assert!(
        b.cookie.is_none(),
        "no browser session for a wrong password"
    );

    let r = b.sign_in(&t, &params, "correct horse battery").await;
    assert_eq!(r.status(), 303);
    let back = redirect_params(&r);
    let location = r.headers()[header::LOCATION].to_str().expect("ascii");
    assert!(location.starts_with(&format!("{CALLBACK}?")), "{location}");
    assert_eq!(param(&back, "state"), Some("s-123"));
    assert_eq!(param(&back, "iss"), Some(ISSUER), "RFC 9207");
    assert!(b.cookie.is_some(), "a browser session");
    let code = param(&back, "code").expect("code");

    let r = exchange(&t, "web", code, CALLBACK, &p.verifier).await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.expect("json");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid profile orders:read");
    let access = tokens["access_token"].as_str().expect("access");
    let refresh = tokens["refresh_token"].as_str().expect("refresh");
    let id_token = tokens["id_token"].as_str().expect("id_token");
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(id_token.split('.').next().expect("header"))
            .expect("base64"),
    )
    .expect("json");
    assert_eq!(
        (header["alg"].as_str(), header["typ"].as_str()),
        (Some("RS256"), Some("JWT"))
    );
    assert_eq!(
        t.get_bearer("/v1/me", id_token).await.status(),
        401,
        "no access token"
    );
    let metadata: Value = t
        .http
        .get(t.url("/.well-known/openid-configuration"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        metadata["access_token_signing_alg_values_supported"],
        serde_json::json!(["Ed25519", "EdDSA"]),
        "the ID-token key signs no access token"
    );
    let id = id_claims(&t, id_token).await;
    assert_eq!(id.aud, "web");
    assert_eq!(id.nonce.as_deref(), Some("n-456"));
    assert_eq!(id.preferred_username.as_deref(), Some("alice"));
    assert!(id.auth_time <= id.iat && id.exp > id.iat);

    // The ID token's session is the tokens' session, listed with the others.
    let sessions: Value = t
        .get_bearer("/v1/sessions", access)
        .await
        .json()
        .await
        .expect("json");
    let listed: Vec<&str> = sessions["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(listed.contains(&id.sid.as_str()), "{sessions}");

    let info: Value = t
        .get_bearer("/userinfo", access)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(info["sub"].as_str(), Some(id.sub.as_str()));
    assert_eq!(info["preferred_username"], "alice");
    assert!(info.get("email").is_none(), "no email scope, no email");

    let r = t
        .http
        .post(t.url("/oauth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "web"),
            ("refresh_token", refresh),
        ])
        .send()
        .await
        .expect("refresh");
    assert_eq!(r.status(), 200, "the code's session refreshes like any");

    // Signed in: the next request passes through without the password.
    let p2 = pkce();
    let r = b.authorize(&t, &request("web", CALLBACK, &p2, &[])).await;
    assert_eq!(r.status(), 303);
    let code = redirect_params(&r);
    let code = param(&code, "code").expect("code");
    let r = exchange(&t, "web", code, CALLBACK, &p2.verifier).await;
    let again: Value = r.json().await.expect("json");
    let id2 = id_claims(&t, again["id_token"].as_str().expect("id")).await;
    assert_eq!(id2.auth_time, id.auth_time, "no new sign-in");

    // prompt=login and an exceeded max_age ask for the password again;
    // prompt=none without a session answers login_required.
    let login = request("web", CALLBACK, &p2, &[("prompt", "login")]);
    let r = b.authorize(&t, &login).await;
    assert_eq!(r.status(), 200);
    let old_cookie = b.cookie.clone();
    let r = b.sign_in(&t, &login, "correct horse battery").await;
    assert_eq!(r.status(), 303);
    assert_ne!(b.cookie, old_cookie, "a new browser session");
    let mut replaced = Browser::new();
    replaced.cookie = old_cookie;
    let r = replaced
        .authorize(&t, &request("web", CALLBACK, &p2, &[]))
        .await;
    assert_eq!(r.status(), 200, "the replaced session ended");
    t.clock.advance(5);
    let r = b
        .authorize(&t, &request("web", CALLBACK, &p2, &[("max_age", "3")]))
        .await;
    assert_eq!(r.status(), 200);
    let r = b
        .authorize(&t, &request("web", CALLBACK, &p2, &[("max_age", "60")]))
        .await;
    assert_eq!(r.status(), 303);
    let mut stranger = Browser::new();
    let r = stranger
        .authorize(&t, &request("web", CALLBACK, &p2, &[("prompt", "none")]))
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(param(&redirect_params(&r), "error"), Some("login_required"));
}

#[tokio::test]
async fn codes_are_single_use_bound_and_short_lived() {
    let t = server().await;
    let mut b = Browser::new();

    // A second use is refused and ends the session of the first.
    let (code, first) = signed_in_tokens(&t, &mut b).await;
    let access = first["access_token"].as_str().expect("access");
    let r = exchange(&t, "web", &code.0, CALLBACK, &code.1).await;
    assert_eq!(
        (r.status().as_u16(), error_code(r).await.as_str()),
        (400, "invalid_grant")
    );
    assert_eq!(
        t.get_bearer("/v1/me", access).await.status(),
        401,
        "first use's tokens revoked"
    );
    let r = t
        .refresh(first["refresh_token"].as_str().expect("refresh"))
        .await;
    assert_eq!(r.status(), 401);

    // Wrong verifier, wrong client, wrong redirect URI: refused, and the
    // code is spent all the same.
    for (client, redirect, verifier) in [
        ("web", CALLBACK, "x".repeat(43)),
        ("partner", CALLBACK, String::new()),
        ("web", "http://127.0.0.1:9/other", String::new()),
    ] {
        let p = pkce();
        let code = code_for(&t, &mut b, &p).await;
        let verifier = if verifier.is_empty() {
            p.verifier.clone()
        } else {
            verifier
        };
        let r = exchange(&t, client, &code, redirect, &verifier).await;
        assert_eq!(error_code(r).await, "invalid_grant", "{client} {redirect}");
        let r = exchange(&t, "web", &code, CALLBACK, &p.verifier).await;
        assert_eq!(error_code(r).await, "invalid_grant", "spent");
    }

    // A missing verifier is a malformed request.
    let p = pkce();
    let code = code_for(&t, &mut b, &p).await;
    let r = t
        .http
        .post(t.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "web"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(
        (r.status().as_u16(), error_code(r).await.as_str()),
        (400, "invalid_request")
    );

    // Expired after 60 s.
    let p = pkce();
    let code = code_for(&t, &mut b, &p).await;
    t.clock.advance(61);
    let r = exchange(&t, "web", &code, CALLBACK, &p.verifier).await;
    assert_eq!(error_code(r).await, "invalid_grant");

    // Junk and forged codes.
    for junk in ["", "x", &"A".repeat(43), &"é".repeat(5000)] {
        let r = exchange(&t, "web", junk, CALLBACK, &p.verifier).await;
        assert_eq!(r.status(), 400, "{junk:.20}");
    }
}

#[tokio::test]
async fn bad_requests_are_shown_or_returned_but_never_redirected_elsewhere() {
    let t = server().await;
    let mut b = Browser::new();
    let p = pkce();
    // Before the redirect URI is trusted: a page, no Location.
    for (client, redirect) in [
        ("web", "http://127.0.0.1:9/cb/../evil"),
        ("web", "http://127.0.0.1:10/cb"),
        ("web", "http://127.0.0.1:9/cb@evil.example"),
        ("web", "https://evil.example/cb"),
        ("web", ""),
        ("nobody", CALLBACK),
        ("default", CALLBACK),
    ] {
        let r = b.authorize(&t, &request(client, redirect, &p, &[])).await;
        assert_eq!(r.status(), 400, "{client} {redirect}");
        assert!(
            r.headers().get(header::LOCATION).is_none(),
            "{client} {redirect}"
        );
    }
    // After: returned to the client with state and iss.
    for (extra, error) in [
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge_method", "")], "invalid_request"),
        (vec![("code_challenge", "")], "invalid_request"),
        (vec![("code_challenge", "short")], "invalid_request"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("response_type", "")], "invalid_request"),
        (vec![("scope", "openid admin")], "invalid_scope"),
        (vec![("prompt", "none login")], "invalid_request"),
        (vec![("max_age", "-1")], "invalid_request"),
        (vec![("request", "eyJ")], "request_not_supported"),
    ] {
        let r = b.authorize(&t, &request("web", CALLBACK, &p, &extra)).await;
        assert_eq!(r.status(), 303, "{extra:?}");
        let back = redirect_params(&r);
        assert_eq!(param(&back, "error"), Some(error), "{extra:?}");
        assert_eq!(param(&back, "state"), Some("s-123"));
        assert_eq!(param(&back, "iss"), Some(ISSUER));
    }
    // Repeated parameters are refused (RFC 6749 §3.1).
    let r = b
        .get(
            &t,
            &format!(
                "/oauth/authorize?{}&client_id=web",
                query(&request("web", CALLBACK, &p, &[]))
            ),
        )
        .await;
    assert_eq!(r.status(), 400);
    // The largest query read, and one byte more.
    let long = request("web", CALLBACK, &p, &[("state", &"s".repeat(9000))]);
    let r = b.authorize(&t, &long).await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn forms_from_other_sites_are_refused() {
    let t = server().await;
    let p = pkce();
    let params = request("web", CALLBACK, &p, &[]);
    let mut form = params.clone();
    form.push(("username".into(), "alice".into()));
    form.push(("password".into(), "correct horse battery".into()));
    // The largest hostile form: over the password routes' 16 KiB, unread.
    let mut huge = form.clone();
    huge.push(("password".into(), "p".repeat(20 * 1024)));
    huge.retain(|(k, v)| k != "password" || v.len() > 100);
    let mut b = Browser::new();
    let r = b
        .post_form(&t, "/oauth/authorize/sign-in", &huge, Some(ISSUER))
        .await;
    assert_eq!(r.status(), 413);
    // A password over the rule's 1024 bytes: its precise refusal, no hashing.
    let mut long = form.clone();
    long.retain(|(k, _)| k != "password");
    long.push(("password".into(), "p".repeat(1025)));
    let r = b
        .post_form(&t, "/oauth/authorize/sign-in", &long, Some(ISSUER))
        .await;
    assert_eq!(r.status(), 400);
    for origin in [None, Some("https://evil.example"), Some("null")] {
        let mut b = Browser::new();
        let r = b
            .post_form(&t, "/oauth/authorize/sign-in", &form, origin)
            .await;
        assert_eq!(r.status(), 403, "{origin:?}");
        assert!(b.cookie.is_none());
    }
}

#[tokio::test]
async fn third_party_clients_ask_for_consent_once_and_it_can_be_withdrawn() {
    let t = server().await;
    let mut b = Browser::new();
    let p = pkce();
    let params = request(
        "partner",
        PARTNER_CALLBACK,
        &p,
        &[("scope", "openid profile")],
    );
    b.authorize(&t, &params).await;
    let r = b.sign_in(&t, &params, "correct horse battery").await;
    assert_eq!(r.status(), 200, "the consent page");
    let html = r.text().await.expect("html");
    assert!(
        html.contains("See your username") && html.contains("partner"),
        "{html}"
    );

    let mut deny = params.clone();
    deny.push(("decision".into(), "deny".into()));
    let r = b
        .post_form(&t, "/oauth/authorize/consent", &deny, Some(ISSUER))
        .await;
    assert_eq!(param(&redirect_params(&r), "error"), Some("access_denied"));

    let mut allow = params.clone();
    allow.push(("decision".into(), "allow".into()));
    let r = b
        .post_form(
            &t,
            "/oauth/authorize/consent",
            &allow,
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(
        r.status(),
        403,
        "consent cannot be forced from another site"
    );
    let r = b
        .post_form(&t, "/oauth/authorize/consent", &allow, Some(ISSUER))
        .await;
    assert_eq!(r.status(), 303);
    let code = param(&redirect_params(&r), "code")
        .expect("code")
        .to_owned();
    let tokens: Value = exchange(&t, "partner", &code, PARTNER_CALLBACK, &p.verifier)
        .await
        .json()
        .await
        .expect("json");
    let access = tokens["access_token"].as_str().expect("access");

    // Remembered: no page the second time, for the same scopes or fewer.
    let r = b
        .authorize(
            &t,
            &request("partner", PARTNER_CALLBACK, &p, &[("scope", "openid")]),
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(param(&redirect_params(&r), "code").is_some());
    // prompt=none cannot skip a consent that was never given.
    let r = b
        .authorize(
            &t,
            &request(
                "partner",
                PARTNER_CALLBACK,
                &p,
                &[("scope", "openid email"), ("prompt", "none")],
            ),
        )
        .await;
    assert_eq!(
        param(&redirect_params(&r), "error"),
        Some("consent_required")
    );

    let listed: Value = t
        .get_bearer("/v1/consents", access)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed["consents"][0]["client_id"], "partner");
    assert_eq!(listed["consents"][0]["scope"], "openid profile");
    let r = t
        .http
        .delete(t.url("/v1/consents/partner"))
        .bearer_auth(access)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    assert_eq!(
        t.get_bearer("/userinfo", access).await.status(),
        401,
        "its sessions ended"
    );
    let r = b
        .authorize(
            &t,
            &request("partner", PARTNER_CALLBACK, &p, &[("scope", "openid")]),
        )
        .await;
    assert_eq!(r.status(), 200, "asked again");
}

#[tokio::test]
async fn logout_ends_the_browser_session_and_the_token_session() {
    let t = server().await;
    let mut b = Browser::new();
    let (_, tokens) = signed_in_tokens(&t, &mut b).await;
    let hint = tokens["id_token"].as_str().expect("id");

    // Unregistered destination: refused, nothing ended.
    let bad = format!(
        "/oauth/logout?id_token_hint={hint}&post_logout_redirect_uri={}",
        "https%3A%2F%2Fevil.example%2F"
    );
    assert_eq!(b.get(&t, &bad).await.status(), 400);
    // No hint: a confirmation page, nothing ended yet.
    let r = b.get(&t, "/oauth/logout").await;
    assert_eq!(r.status(), 200);
    assert!(b.cookie.is_some());

    t.clock.advance(3600); // the hint has expired; it still names the session
    let r = b
        .get(
            &t,
            &format!(
                "/oauth/logout?id_token_hint={hint}&post_logout_redirect_uri={}&state=bye-1",
                "http%3A%2F%2F127.0.0.1%3A9%2Fbye"
            ),
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()[header::LOCATION],
        "http://127.0.0.1:9/bye?state=bye-1"
    );
    assert!(
        b.cookie.is_none(),
        "the browser session's cookie is cleared"
    );
    let r = t
        .refresh(tokens["refresh_token"].as_str().expect("refresh"))
        .await;
    assert_eq!(r.status(), 401, "the token session ended");
}

#[tokio::test]
async fn a_client_may_have_its_id_tokens_signed_with_the_access_algorithm() {
    let t = server().await;
    let mut b = Browser::new();
    let p = pkce();
    let params = request("edwards", CALLBACK, &p, &[("scope", "openid")]);
    b.authorize(&t, &params).await;
    let r = b.sign_in(&t, &params, "correct horse battery").await;
    let code = param(&redirect_params(&r), "code")
        .expect("code")
        .to_owned();
    let tokens: Value = exchange(&t, "edwards", &code, CALLBACK, &p.verifier)
        .await
        .json()
        .await
        .expect("json");
    let id_token = tokens["id_token"].as_str().expect("id_token");
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(id_token.split('.').next().expect("header"))
            .expect("base64"),
    )
    .expect("json");
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(id_claims(&t, id_token).await.aud, "edwards");
}

#[tokio::test]
async fn discovery_describes_an_openid_provider() {
    let t = server().await;
    let doc: Value = t
        .http
        .get(t.url("/.well-known/openid-configuration"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{ISSUER}/oauth/authorize")
    );
    assert_eq!(doc["userinfo_endpoint"], format!("{ISSUER}/userinfo"));
    assert_eq!(
        doc["end_session_endpoint"],
        format!("{ISSUER}/oauth/logout")
    );
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        doc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256", "EdDSA", "Ed25519"])
    );
}
