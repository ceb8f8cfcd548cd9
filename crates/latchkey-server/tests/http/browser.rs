//! What browser apps rely on: the refresh token in the HttpOnly
//! `__Host-latchkey_refresh` cookie, the checks that keep other sites from
//! spending it, and CORS for allowed origins only.

use latchkey_testkit::{error_code, TestServer};
use reqwest::header::{self, HeaderMap};
use reqwest::Method;
use serde_json::{json, Value};

/// The test server's own origin (its issuer, which is its public URL).
const OWN: &str = "http://latchkey.test";
const APP: &str = "http://127.0.0.1:5173";
const EVIL: &str = "http://127.0.0.1:6666";

async fn server() -> TestServer {
    TestServer::start_with(|s| s.cors_allowed_origins = vec![APP.into()]).await
}

/// The refresh cookie a response sets: its value and its attributes.
fn set_cookie(headers: &HeaderMap) -> Option<(String, Vec<String>)> {
    let line = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-latchkey_refresh="))?;
    let mut parts = line.split(';').map(|p| p.trim().to_owned());
    let value = parts.next()?.split_once('=')?.1.to_owned();
    Some((value, parts.collect()))
}

async fn cookie_sign_in(s: &TestServer, user: &str) -> (Value, String, Vec<String>) {
    s.sign_up(user, latchkey_testkit::http::PASSWORD).await;
    let r = s
        .http
        .post(s.url("/v1/sign-in"))
        .json(
            &json!({"username": user, "password": latchkey_testkit::http::PASSWORD,
            "token_delivery": "cookie"}),
        )
        .send()
        .await
        .expect("sign-in");
    assert_eq!(r.status(), 200);
    let (cookie, attributes) = set_cookie(r.headers()).expect("a refresh cookie");
    (r.json().await.expect("json"), cookie, attributes)
}

/// `POST path` with `body`, the refresh cookie, and the `Origin` given.
async fn with_cookie(
    s: &TestServer,
    path: &str,
    cookie: &str,
    origin: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut req = s
        .http
        .post(s.url(path))
        .header(
            header::COOKIE,
            format!("theme=dark; __Host-latchkey_refresh={cookie}"),
        )
        .json(&body);
    if let Some(origin) = origin {
        req = req.header(header::ORIGIN, origin);
    }
    req.send().await.expect("request")
}

#[tokio::test]
async fn cookie_delivery_keeps_the_refresh_token_out_of_the_body() {
    let s = server().await;
    let (body, cookie, attributes) = cookie_sign_in(&s, "cookie-ann").await;
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body["access_token"].is_string());
    assert!(cookie.starts_with("lkr_"), "{cookie}");
    for a in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(attributes.iter().any(|x| x == a), "{a} in {attributes:?}");
    }
    assert!(!attributes.iter().any(|x| x.starts_with("Domain")));
    // Max-Age: the session's remaining absolute lifetime (90 days).
    let max_age: i64 = attributes
        .iter()
        .find_map(|a| a.strip_prefix("Max-Age="))
        .and_then(|v| v.parse().ok())
        .expect("Max-Age");
    assert_eq!(max_age, 90 * 24 * 3600);

    // The cookie refreshes, from the page's own origin, with `{}`.
    let r = with_cookie(&s, "/v1/tokens/refresh", &cookie, Some(OWN), json!({})).await;
    assert_eq!(r.status(), 200);
    let (next, _) = set_cookie(r.headers()).expect("the successor cookie");
    assert_ne!(next, cookie);
    let body: Value = r.json().await.expect("json");
    assert!(body.get("refresh_token").is_none(), "{body}");
    let me = s
        .get_bearer("/v1/me", body["access_token"].as_str().expect("at"))
        .await;
    assert_eq!(me.status(), 200);

    // And from an allowed origin, asking for cookie delivery explicitly.
    let r = with_cookie(
        &s,
        "/v1/tokens/refresh",
        &next,
        Some(APP),
        json!({"token_delivery": "cookie"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(set_cookie(r.headers()).is_some());
}

#[tokio::test]
async fn a_body_token_can_move_into_the_cookie_and_a_cookie_into_the_body() {
    let s = server().await;
    let t = s.new_session("cookie-bob").await;
    let r = s
        .http
        .post(s.url("/v1/tokens/refresh"))
        .json(&json!({"refresh_token": t.refresh, "token_delivery": "cookie"}))
        .send()
        .await
        .expect("refresh");
    assert_eq!(r.status(), 200);
    let (cookie, _) = set_cookie(r.headers()).expect("cookie");
    let body: Value = r.json().await.expect("json");
    assert!(body.get("refresh_token").is_none());
    let r = with_cookie(
        &s,
        "/v1/tokens/refresh",
        &cookie,
        Some(OWN),
        json!({"token_delivery": "body"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(set_cookie(r.headers()).is_none());
    let body: Value = r.json().await.expect("json");
    assert!(body["refresh_token"].is_string());
}

#[tokio::test]
async fn a_cookie_from_another_site_spends_nothing() {
    let s = server().await;
    let (_, cookie, _) = cookie_sign_in(&s, "cookie-cat").await;
    for origin in [
        None,
        Some(EVIL),
        Some("null"),
        Some("http://latchkey.test.evil.example"),
    ] {
        let r = with_cookie(&s, "/v1/tokens/refresh", &cookie, origin, json!({})).await;
        assert_eq!(r.status(), 403, "{origin:?}");
        assert!(set_cookie(r.headers()).is_none());
        assert_eq!(error_code(r).await, "invalid_request");
        let r = with_cookie(&s, "/v1/tokens/revoke", &cookie, origin, json!({})).await;
        assert_eq!(r.status(), 403, "{origin:?}");
    }
    // A form or text/plain post (no preflight needed) is refused even from
    // a trusted origin, before its body is read.
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let r = s
            .http
            .post(s.url("/v1/tokens/refresh"))
            .header(header::COOKIE, format!("__Host-latchkey_refresh={cookie}"))
            .header(header::ORIGIN, OWN)
            .header(header::CONTENT_TYPE, content_type)
            .body("{}")
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 403, "{content_type}");
    }
    // Nothing moved: the cookie still refreshes once from the right place.
    let r = with_cookie(&s, "/v1/tokens/refresh", &cookie, Some(OWN), json!({})).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_failed_refresh_sign_out_and_revoke_clear_the_cookie() {
    let s = server().await;
    let cleared = |h: &HeaderMap| {
        set_cookie(h).is_some_and(|(v, a)| v.is_empty() && a.iter().any(|x| x == "Max-Age=0"))
    };
    // No token anywhere.
    let r = s.post("/v1/tokens/refresh", json!({})).await;
    assert_eq!(r.status(), 400);

    let (body, cookie, _) = cookie_sign_in(&s, "cookie-dan").await;
    let r = s
        .http
        .post(s.url("/v1/sign-out"))
        .bearer_auth(body["access_token"].as_str().expect("at"))
        .send()
        .await
        .expect("sign-out");
    assert_eq!(r.status(), 204);
    assert!(cleared(r.headers()));
    let r = with_cookie(&s, "/v1/tokens/refresh", &cookie, Some(OWN), json!({})).await;
    assert_eq!(r.status(), 401);
    assert!(cleared(r.headers()), "a dead cookie is cleared");

    let (_, cookie, _) = cookie_sign_in(&s, "cookie-dan").await;
    let r = with_cookie(&s, "/v1/tokens/revoke", &cookie, Some(APP), json!({})).await;
    assert_eq!(r.status(), 204);
    assert!(cleared(r.headers()));
    let r = with_cookie(&s, "/v1/tokens/refresh", &cookie, Some(OWN), json!({})).await;
    assert_eq!(r.status(), 401, "revoked through the cookie");

    // Signing the others out keeps this session's cookie.
    let (body, _, _) = cookie_sign_in(&s, "cookie-dan").await;
    let r = s
        .http
        .post(s.url("/v1/sign-out"))
        .bearer_auth(body["access_token"].as_str().expect("at"))
        .json(&json!({"scope": "others"}))
        .send()
        .await
        .expect("sign-out");
    assert_eq!(r.status(), 204);
    assert!(set_cookie(r.headers()).is_none());
}

async fn preflight(s: &TestServer, origin: &str) -> reqwest::Response {
    s.http
        .request(Method::OPTIONS, s.url("/v1/sign-in"))
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
        .send()
        .await
        .expect("preflight")
}

#[tokio::test]
async fn cors_answers_allowed_origins_only() {
    let s = server().await;
    let r = preflight(&s, APP).await;
    assert_eq!(r.status(), 204);
    let h = r.headers();
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], APP);
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    let methods = h[header::ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .expect("ascii");
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let headers = h[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .expect("ascii");
    assert!(
        headers.contains("content-type") && headers.contains("authorization"),
        "{headers}"
    );
    assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "600");

    for origin in [EVIL, OWN, "null", "http://127.0.0.1:5173.evil.example"] {
        let r = preflight(&s, origin).await;
        let allow: Vec<_> = r
            .headers()
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-allow-"))
            .collect();
        assert!(allow.is_empty(), "{origin}: {allow:?}");
    }
    // Actual requests: errors too are readable by an allowed origin.
    let r = s
        .http
        .get(s.url("/v1/me"))
        .header(header::ORIGIN, APP)
        .send()
        .await
        .expect("me");
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], APP);
    let r = s
        .http
        .get(s.url("/v1/me"))
        .header(header::ORIGIN, EVIL)
        .send()
        .await
        .expect("me");
    assert!(r
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());
    // Requests without an Origin skip CORS; the cacheable answers still
    // say they vary by it, so no cache hands a browser an answer without
    // its CORS headers.
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
    ] {
        let r = s.http.get(s.url(path)).send().await.expect("cacheable");
        assert_eq!(r.headers()[header::VARY], "origin", "{path}");
        assert!(r
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none());
        let r = s
            .http
            .get(s.url(path))
            .header(header::ORIGIN, APP)
            .send()
            .await
            .expect("cors");
        assert_eq!(
            r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            APP,
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_account_page_and_every_module_it_imports_are_served_under_a_strict_policy() {
    let s = server().await;
    let r = s.http.get(s.url("/account")).send().await.expect("page");
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .expect("ascii")
        .starts_with("text/html"));
    let csp = h[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii");
    assert!(
        csp.starts_with("default-src 'none'; script-src 'self';"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
    let page = r.text().await.expect("text");
    assert!(
        !page.contains("http:") && !page.contains("https:"),
        "no other server"
    );

    // Follow every script, style and relative import from the page.
    let mut queue: Vec<String> = page
        .split('"')
        .filter(|p| p.starts_with("/account/"))
        .map(str::to_owned)
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(path) = queue.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let r = s.http.get(s.url(&path)).send().await.expect("file");
        assert_eq!(r.status(), 200, "{path}");
        let text = r.text().await.expect("text");
        let dir = &path[..path.rfind('/').expect("a directory") + 1];
        for import in text
            .split(['"', '\''])
            .filter(|p| p.starts_with("./") && p.ends_with(".js"))
        {
            queue.push(format!("{dir}{}", &import[2..]));
        }
    }
    assert!(seen.contains("/account/client/client.js"), "{seen:?}");
    assert!(seen.len() >= 6, "{seen:?}");
    let r = s
        .http
        .get(s.url("/account/index.html"))
        .send()
        .await
        .expect("index");
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_clients_allowed_origins_are_allowed_too_and_new_ones_arrive_within_seconds() {
    use latchkey_core::client::Client;
    use latchkey_server::cli::clients::{
        self as client_admin, ClientsAction, ClientsArgs, CreateArgs, Kind,
    };
    use latchkey_server::config::DataArgs;

    let declared = "https://declared.example";
    let s = TestServer::start_with(|s| {
        s.clients.push(Client {
            allowed_origins: vec![declared.into()],
            ..Client::default_public("web")
        })
    })
    .await;
    let allowed = |r: &reqwest::Response| {
        r.headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .map(|v| v.to_str().unwrap_or("").to_owned())
    };
    assert_eq!(
        allowed(&preflight(&s, declared).await).as_deref(),
        Some(declared)
    );

    let registered = "http://127.0.0.1:7001";
    assert_eq!(allowed(&preflight(&s, registered).await), None);
    let created = client_admin::run(ClientsArgs {
        location: DataArgs {
            data_dir: Some(s.settings.data_dir.clone()),
            ..DataArgs::default()
        },
        action: ClientsAction::Create(CreateArgs {
            client_id: "spa".into(),
            kind: Kind::Public,
            audiences: Vec::new(),
            scopes: Vec::new(),
            access_ttl: None,
            refresh_idle_timeout: None,
            session_lifetime: None,
            introspect_any: false,
            allowed_origins: vec![format!("{registered}/")],
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            third_party: false,
            id_token_algorithm: None,
        }),
    })
    .await
    .expect("create");
    assert_eq!(created["allowed_origins"], json!([registered]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(12);
    loop {
        if allowed(&preflight(&s, registered).await).as_deref() == Some(registered) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new client's origin never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
