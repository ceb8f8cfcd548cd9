//! The OpenAPI document (`/openapi.json`) and the docs page (`/docs`), and
//! the drift test: the router answers exactly the paths and methods the
//! document lists, and routes are registered only where their descriptions
//! are (`routes!` with `#[utoipa::path]`).

use std::path::Path;

use latchkey_core::client::{generate_secret, Client, ClientKind};
use latchkey_server::rate_limit::RateLimits;
use latchkey_testkit::TestServer;
use reqwest::Method;
use serde_json::{json, Value};

use crate::documented_answers::{
    documented_pairs, query, Holder, AFTER_LOGOUT, CALLBACK, OWNER_EMAIL, PASSWORD,
};

async fn document(s: &TestServer) -> Value {
    let r = s
        .http
        .get(s.url("/openapi.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json().await.expect("json")
}

#[tokio::test]
async fn the_document_describes_the_api_and_its_security() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc,
        latchkey_server::openapi_document(),
        "the served document is the router's"
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["client_basic"]["scheme"], "basic");

    let paths = doc["paths"].as_object().expect("paths");
    for form_route in ["/oauth/token", "/oauth/revoke", "/oauth/introspect"] {
        let content = &paths[form_route]["post"]["requestBody"]["content"];
        assert!(
            content.get("application/x-www-form-urlencoded").is_some(),
            "{form_route} takes a form: {content}"
        );
    }
    assert_eq!(
        paths["/v1/me"]["get"]["security"],
        serde_json::json!([{"bearer": []}])
    );
    assert_eq!(
        paths["/v1/revocations"]["get"]["security"],
        serde_json::json!([{"client_basic": []}])
    );
    // Every error answer has the one error shape, but for answers listed
    // here as "METHOD /path STATUS" (e.g. a probe's own report), and the
    // hosted pages', which are pages for a person (HTML, said so).
    const OWN_SHAPES: &[&str] = &[];
    const HOSTED_PAGES: &[&str] = &[
        "/oauth/authorize",
        "/oauth/authorize/sign-in",
        "/oauth/authorize/consent",
        "/oauth/logout",
    ];
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            for (status, response) in op["responses"].as_object().expect("responses") {
                let answer = format!("{} {path} {status}", method.to_uppercase());
                let error = status.starts_with('4') || status.starts_with('5');
                if error && HOSTED_PAGES.contains(&path.as_str()) {
                    let content = response["content"].as_object();
                    assert!(
                        content.is_some_and(|c| c.contains_key("text/html")),
                        "{answer}: a hosted page's error is a page: {response}"
                    );
                } else if error && !OWN_SHAPES.contains(&answer.as_str()) {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    // An optional body: absent, or the object (not `null`).
    let sign_out = &paths["/v1/sign-out"]["post"]["requestBody"];
    assert!(
        sign_out.get("required").is_none_or(|r| r == false),
        "{sign_out}"
    );
    assert_eq!(
        sign_out["content"]["application/json"]["schema"],
        serde_json::json!({"$ref": "#/components/schemas/SignOutBody"})
    );
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().expect("path item").values())
        .map(|op| op["operationId"].as_str().expect("operationId"))
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids are unique: {ids:?}");
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(
        error["required"],
        serde_json::json!(["error", "error_description"])
    );
}

#[tokio::test]
async fn the_docs_page_is_served_from_the_binary_under_a_strict_policy() {
    let s = TestServer::start().await;
    let r = s.http.get(s.url("/docs")).send().await.expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'self';"),
        "{csp}"
    );
    let page = r.text().await.expect("text");
    assert!(!page.contains("http:") && !page.contains("https:") && !page.contains("//cdn"));

    // Everything the page links to is here.
    let linked: Vec<&str> = page
        .split(['"', '\''])
        .filter(|part| part.starts_with("/docs/"))
        .collect();
    assert!(linked.len() >= 4, "{linked:?}");
    for link in linked {
        let r = s.http.get(s.url(link)).send().await.expect("request");
        assert_eq!(r.status(), 200, "{link}");
    }
    let init = s
        .http
        .get(s.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .expect("request");
    let init = init.text().await.expect("text");
    assert!(init.contains("\"url\": \"/openapi.json\""), "{init}");
    assert!(init.contains("\"validatorUrl\": \"none\""), "{init}");

    let missing = s
        .http
        .get(s.url("/docs/nothing.js"))
        .send()
        .await
        .expect("request");
    assert_eq!(missing.status(), 404);
}

/// Whether the router itself (not a handler) refused `method` on `path`:
/// the fallbacks' 404 "no such route" and 405.
async fn router_refuses(s: &TestServer, method: &Method, path: &str) -> bool {
    let r = s
        .http
        .request(method.clone(), s.url(path))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    status == 405 || (status == 404 && body["error_description"] == "no such route")
}

#[tokio::test]
async fn the_router_answers_exactly_what_the_document_lists() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    assert!(router_refuses(&s, &Method::GET, "/v1/not-a-route").await);
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    for (template, item) in doc["paths"].as_object().expect("paths") {
        // A path parameter's example where there is one (a handler's own
        // 404 for a made-up file would look like the router's).
        let mut path = template.clone();
        for op in item.as_object().expect("path item").values() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let value = p["example"].as_str().unwrap_or("x");
                path = path.replace(&format!("{{{}}}", p["name"].as_str().expect("name")), value);
            }
        }
        for method in &methods {
            let documented = item.get(method.as_str().to_lowercase()).is_some();
            assert_eq!(
                router_refuses(&s, method, &path).await,
                !documented,
                "{method} {path}: documented {documented}"
            );
        }
    }
}

/// A route can only be added without its description by registering it
/// directly on a router; the route table registers each with `routes!`
/// (which needs the handler's `#[utoipa::path]`). So no source file of the
/// server may register a route any other way.
#[test]
fn routes_are_registered_only_with_their_descriptions() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read");
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                let registers = [
                    ".route(",
                    ".route_service(",
                    ".nest(",
                    ".nest_service(",
                    "axum::routing",
                ]
                .iter()
                .any(|p| code.contains(p));
                if registers {
                    offenders.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "routes registered without an OpenAPI description (use `#[utoipa::path]` on the \
         handler and `.routes(routes!(handler))` in routes/mod.rs):\n{}",
        offenders.join("\n")
    );
}

/// The clients [`Holder`] needs: a confidential one (its secret's hash
/// given), and a third-party one.
fn holder_clients(settings: &mut latchkey_server::Settings, secret_hash: Vec<u8>) {
    settings.clients.push(Client {
        kind: ClientKind::Confidential,
        secret_hash: Some(secret_hash),
        // Its own token administers (the administration API's answers).
        scopes: vec!["latchkey:admin".into()],
        redirect_uris: vec![CALLBACK.into()],
        post_logout_redirect_uris: vec![AFTER_LOGOUT.into()],
        ..Client::default_public("answers")
    });
    settings.clients.push(Client {
        redirect_uris: vec![CALLBACK.into()],
        third_party: true,
        ..Client::default_public("answers-partner")
    });
}

/// Every `(operation, status)` pair the document lists is an answer the
/// server really gives: each 2xx to [`Holder::success`], each error (and
/// each redirect of the hosted pages) to a request made for it here; the 503s (a store that does not answer) are
/// `cluster_outage.rs`'s, sent while PostgreSQL is down. A pair without a
/// request here fails the test, so a newly documented answer comes with
/// its proof.
#[tokio::test]
async fn every_documented_answer_is_given() {
    let (secret, hash) = generate_secret().expect("rng");
    let s = TestServer::start_with(|settings| holder_clients(settings, hash.clone())).await;
    // Per-address limits low enough to reach, on a server of their own.
    let limited = TestServer::start_with(|settings| {
        holder_clients(settings, hash.clone());
        settings.rate_limits = RateLimits {
            sign_up_per_minute: 1,
            tokens_per_minute: 2,
            recovery_per_minute: 2,
        };
    })
    .await;
    let doc = document(&s).await;
    let mut h = Holder::prepare(
        &s.http,
        &s.url(""),
        "answers",
        "answers",
        &secret,
        "answers-partner",
    )
    .await;
    // The owner's address (unverified: no mail here) and real link tokens.
    let r = s
        .http
        .post(s.url("/v1/email"))
        .bearer_auth(&h.reader)
        .json(&json!({ "email": OWNER_EMAIL }))
        .send()
        .await
        .expect("set email");
    assert_eq!(r.status(), 200);
    h.verify_token = s.verification_token(&h.owner_id).await;
    h.reset_token = s.reset_token(&h.resetter_id).await;
    let mut wrong = Vec::new();
    let mut given = 0;
    for (op, status) in documented_pairs(&doc) {
        if status == 503 {
            // Sent by `cluster_outage.rs` while PostgreSQL is down.
            if h.success(&op).is_none() {
                wrong.push(format!(
                    "{op} 503: no request for it in documented_answers.rs"
                ));
            }
            continue;
        }
        let (method, path) = operation_route(&doc, &op);
        let got = if (200..300).contains(&status) {
            match h.success(&op) {
                Some(req) => Some(req.send().await.expect("request").status().as_u16()),
                None => None,
            }
        } else if HOSTED_OPERATIONS.contains(&op.as_str()) {
            hosted_answer(&s, &limited, &h, &op, status).await
        } else {
            error_answer(&s, &limited, &h, &op, &method, &path, status).await
        };
        match got {
            Some(got) if got == status => given += 1,
            Some(got) => wrong.push(format!("{op} {status}: answered {got}")),
            None => wrong.push(format!("{op} {status}: no request for it in this test")),
        }
    }
    assert!(
        wrong.is_empty(),
        "documented answers not given:\n{}",
        wrong.join("\n")
    );
    assert!(given > 50, "only {given} answers checked");
}

/// The method and concrete path (parameters from their examples) of `op`.
fn operation_route(doc: &Value, op: &str) -> (Method, String) {
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if operation["operationId"] == op {
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
                return (method, template.clone());
            }
        }
    }
    panic!("no operation {op}")
}

/// Whether `op` takes a form body (the OAuth endpoints) rather than JSON.
fn takes_form(op: &str) -> bool {
    matches!(op, "token" | "oauth_revoke" | "introspect")
}

/// Makes the server answer `op` with the error `status`; the status it
/// gave, or `None` if there is no request here for that pair.
async fn error_answer(
    s: &TestServer,
    limited: &TestServer,
    h: &Holder,
    op: &str,
    method: &Method,
    path: &str,
    status: u16,
) -> Option<u16> {
    let http = &s.http;
    let at = |path: &str| http.request(method.clone(), s.url(path));
    let sent = |req: reqwest::RequestBuilder| async move {
        req.send().await.expect("request").status().as_u16()
    };
    let client =
        |req: reqwest::RequestBuilder| req.basic_auth(&h.client_id, Some(&h.client_secret));
    let admin_op = path.starts_with("/admin/");
    // A path's `{id}`: an account that is there, else one that is not.
    let path = &path.replace("{id}", &h.owner_id);
    let admin = |req: reqwest::RequestBuilder| req.bearer_auth(&h.admin);
    const NO_ACCOUNT: &str = "6f1c1d1e-1b7a-4c55-9f53-1f1e5b4c9a02";
    let req = match (status, op) {
        // The administration API checks its caller before the body.
        (413, _) if admin_op => admin(at(path)).json(&json!({ "filler": "x".repeat(70 * 1024) })),
        (415, _) if admin_op => admin(at(path))
            .header("content-type", "text/plain")
            .body("{}"),
        (400, "list_users") => admin(at("/admin/v1/users?limit=0")),
        (400, "create_user") => admin(at(path)).json(&json!({"username": "b o b"})),
        (400, "patch_user") => admin(at(path)).json(&json!({"roles": [""]})),
        (400, "create_invite") => admin(at(path)).json(&json!({"expires_in": 1})),
        (400, _) if admin_op => admin(at(&path.replace(&h.owner_id, "not-a-uuid"))),
        // A user's token (whatever its roles) or a client's without the scope.
        (403, _) if admin_op => at(path).bearer_auth(&h.reader).json(&json!({})),
        (404, _) if admin_op => admin(at(&path.replace(&h.owner_id, NO_ACCOUNT))).json(&json!({})),
        (403, "sign_up") => {
            // Sign-up closed (`invalid_invite` is the invite-only server's,
            // tests/http/admin.rs).
            let closed = TestServer::start_with(|settings| {
                settings.policy.sign_up = latchkey_core::service::SignUpMode::Closed;
            })
            .await;
            let req = closed
                .http
                .post(closed.url(path))
                .json(&json!({"username": "latecomer", "password": PASSWORD}));
            return Some(sent(req).await);
        }
        (409, "create_user") => admin(at(path)).json(&json!({"username": h.username})),
        (409, "patch_user") => {
            // Another account's address.
            let managed = format!("/admin/v1/users/{}", h.managed_id);
            let email = json!({"email": "documented@example.com"});
            assert_eq!(sent(admin(at(&managed)).json(&email)).await, 200);
            admin(at(path)).json(&email)
        }
        // Whatever the route, a body over the limit is refused unread.
        (413, _) => {
            let big = "x".repeat(70 * 1024);
            if takes_form(op) {
                client(at(path)).form(&[("token", big.as_str())])
            } else {
                at(path)
                    .bearer_auth(&h.reader)
                    .json(&json!({ "filler": big }))
            }
        }
        (415, _) => at(path)
            .bearer_auth(&h.reader)
            .header("content-type", "text/plain")
            .body("{}"),
        (400, "sign_up") => at(path).json(&json!({"username": "weak", "password": "short"})),
        (400, "sign_in" | "refresh" | "revoke") => {
            at(path).json(&json!({"username": 5, "refresh_token": 5}))
        }
        (400, "sign_out") => at(path)
            .bearer_auth(&h.reader)
            .json(&json!({"scope": "nowhere"})),
        (400, "change_password") => at(path)
            .bearer_auth(&h.reader)
            .json(&json!({"current_password": PASSWORD, "new_password": "short"})),
        (400, "token") => client(at(path)).form(&[("grant_type", "password")]),
        (400, "oauth_revoke" | "introspect") => client(at(path)).form(&[("token_type_hint", "x")]),
        (400, "revocations") => client(at("/v1/revocations?page=1&after=1")),
        (400, "forgot") => at(path).json(&json!({})),
        (400, "reset" | "verify_email") => {
            at(path).json(&json!({"token": "x", "new_password": "documented answers 5"}))
        }
        (400, "set_email") => at(path)
            .bearer_auth(&h.reader)
            .json(&json!({"email": "not an address"})),
        // The owner has the address.
        (409, "set_email") => at(path)
            .bearer_auth(&h.changing.1)
            .json(&json!({ "email": OWNER_EMAIL })),
        (401, "sign_in") => {
            at(path).json(&json!({"username": h.username, "password": "wrong password"}))
        }
        (401, "refresh") => at(path).json(&json!({"refresh_token": "lkr_forged"})),
        (401, "token" | "oauth_revoke" | "introspect") => at(path)
            .basic_auth(&h.client_id, Some("not the secret"))
            .form(&[("grant_type", "client_credentials"), ("token", "x")]),
        (401, "revocations") => at(path),
        // Every other 401 is a bearer route's, refusing a missing token.
        (401, _) => at(path),
        // The refresh cookie, sent from a page on another site.
        (403, "refresh" | "revoke") => at(path)
            .header("cookie", "__Host-latchkey_refresh=lkr_x")
            .header("origin", "http://127.0.0.1:6666")
            .json(&json!({})),
        (404, "end") => at(&format!(
            "/v1/sessions/{}",
            "6f1c1d1e-1b7a-4c55-9f53-1f1e5b4c9a01"
        ))
        .bearer_auth(&h.reader),
        (403, "userinfo" | "userinfo_post") => at(path).bearer_auth(&h.reader),
        // The owner never consented to the partner (only saw the page).
        (404, "withdraw_consent") => http
            .delete(s.url(&format!("/v1/consents/{}", h.partner_id)))
            .bearer_auth(&h.reader),
        (404, "docs_file") => at("/docs/nothing.js"),
        (404, "account_file") => at("/account/nothing.js"),
        (404, "account_client_module") => at("/account/client/nothing.js"),
        (409, "sign_up") => at(path).json(&json!({"username": h.username, "password": PASSWORD})),
        (410, "revocations") => client(at("/v1/revocations?after=999999999")),
        (429, "sign_in") => {
            // An unknown name: no live session spares its address.
            let mut last = 0;
            for _ in 0..20 {
                last = sent(
                    at(path).json(&json!({"username": "nobody-guessed", "password": "guess"})),
                )
                .await;
                if last == 429 {
                    break;
                }
            }
            return Some(last);
        }
        (429, "change_password") => {
            // Wrong current passwords from one session use up the account's
            // allowance (and end that session); the next change from
            // another session of the account is refused unchecked.
            let guessing = s.new_session("answers-blocked").await.access;
            let blocked = s.new_session("answers-blocked").await.access;
            for _ in 0..20 {
                let r = sent(at(path).bearer_auth(&guessing).json(
                    &json!({"current_password": "wrong password", "new_password": "documented answers 3"}),
                ))
                .await;
                if r != 400 {
                    break;
                }
            }
            at(path).bearer_auth(blocked).json(
                &json!({"current_password": latchkey_testkit::http::PASSWORD, "new_password": "documented answers 3"}),
            )
        }
        // The per-address limits of sign-up and the token endpoints.
        (429, _) => {
            let mut last = 0;
            for i in 0..10 {
                let req = limited.http.request(method.clone(), limited.url(path));
                let req = if takes_form(op) {
                    req.form(&[("token", "x")])
                } else {
                    req.json(&json!({"username": format!("limited{i}"), "password": PASSWORD, "refresh_token": "x"}))
                };
                last = sent(req).await;
                if last == 429 {
                    break;
                }
            }
            return Some(last);
        }
        _ => return None,
    };
    Some(sent(req).await)
}

/// The operations of the hosted pages, whose answers other than 200 are
/// redirects and HTML pages.
const HOSTED_OPERATIONS: &[&str] = &[
    "authorize_get",
    "authorize_post",
    "sign_in_form",
    "consent_form",
    "logout_get",
    "logout_post",
];

/// Makes a hosted page answer `op` with `status` (a redirect or an error
/// page), as a browser would be answered: redirects not followed. A
/// redirect must go where the client registered, an error be a page.
async fn hosted_answer(
    s: &TestServer,
    limited: &TestServer,
    h: &Holder,
    op: &str,
    status: u16,
) -> Option<u16> {
    let browser = &h.browser;
    let valid = h.authorization(&h.client_id, &[]);
    let partner = h.authorization(&h.partner_id, &[]);
    let unknown_client = h.authorization("nobody", &[]);
    let with = |form: &[(String, String)], extra: &[(&str, &str)]| {
        let mut form = form.to_vec();
        form.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        form
    };
    let authorize = |params: &[(String, String)]| {
        browser.get(s.url(&format!("/oauth/authorize?{}", query(params))))
    };
    let owner: &[(&str, &str)] = &[("username", &h.username), ("password", PASSWORD)];
    let req = match (op, status) {
        // Signed in: straight back with a code.
        ("authorize_get", 303) => h.signed_in(authorize(&valid)),
        ("authorize_post", 303) => {
            h.signed_in(browser.post(s.url("/oauth/authorize")).form(&valid))
        }
        // Nowhere trusted to send the browser back to.
        ("authorize_get", 400) => authorize(&unknown_client),
        ("authorize_post", 400) => browser
            .post(s.url("/oauth/authorize"))
            .form(&unknown_client),
        ("sign_in_form", 303) => h.hosted_post("/oauth/authorize/sign-in", &with(&valid, owner)),
        ("sign_in_form", 400) => {
            h.hosted_post("/oauth/authorize/sign-in", &with(&unknown_client, owner))
        }
        ("sign_in_form", 401) => h.hosted_post(
            "/oauth/authorize/sign-in",
            &with(
                &valid,
                &[("username", &h.username), ("password", "wrong password")],
            ),
        ),
        ("sign_in_form", 413) => h.hosted_post(
            "/oauth/authorize/sign-in",
            &with(&valid, &[("filler", &"x".repeat(17 * 1024))]),
        ),
        // Posted by another site's page: a browser says so.
        ("sign_in_form", 403) => browser
            .post(s.url("/oauth/authorize/sign-in"))
            .header("sec-fetch-site", "cross-site")
            .header("origin", "https://evil.example")
            .form(&with(&valid, owner)),
        ("sign_in_form", 429) => {
            // The password throttle, on a server of its own (this one's
            // address must stay unblocked): an unknown name's guesses.
            let guess = with(
                &valid,
                &[("username", "nobody-guessed"), ("password", "guess")],
            );
            let mut last = 0;
            for _ in 0..20 {
                let r = browser
                    .post(limited.url("/oauth/authorize/sign-in"))
                    .header("sec-fetch-site", "same-origin")
                    .form(&guess)
                    .send()
                    .await
                    .expect("request");
                last = page(r);
                if last == 429 {
                    break;
                }
            }
            return Some(last);
        }
        // The owner declines the partner.
        ("consent_form", 303) => h.signed_in(h.hosted_post(
            "/oauth/authorize/consent",
            &with(&partner, &[("decision", "deny")]),
        )),
        ("consent_form", 400) => h.signed_in(h.hosted_post(
            "/oauth/authorize/consent",
            &with(&unknown_client, &[("decision", "allow")]),
        )),
        ("consent_form", 403) => h.signed_in(
            browser
                .post(s.url("/oauth/authorize/consent"))
                .header("sec-fetch-site", "cross-site")
                .form(&with(&partner, &[("decision", "allow")])),
        ),
        ("logout_get", 303) => browser.get(s.url(&format!(
            "/oauth/logout?{}",
            query(&with(
                &[],
                &[
                    ("id_token_hint", &h.id_token_hint),
                    ("post_logout_redirect_uri", AFTER_LOGOUT),
                    ("state", "documented"),
                ]
            ))
        ))),
        // Confirmed on our own page: no hint needed.
        ("logout_post", 303) => h.hosted_post(
            "/oauth/logout",
            &with(
                &[],
                &[
                    ("client_id", &h.client_id),
                    ("post_logout_redirect_uri", AFTER_LOGOUT),
                    ("confirm", "yes"),
                ],
            ),
        ),
        ("logout_get", 400) => browser.get(s.url("/oauth/logout?id_token_hint=not-an-id-token")),
        ("logout_post", 400) => browser
            .post(s.url("/oauth/logout"))
            .form(&[("id_token_hint", "not-an-id-token")]),
        _ => return None,
    };
    let r = req.send().await.expect("request");
    if r.status().is_redirection() {
        let location = r.headers()["location"].to_str().expect("ascii").to_owned();
        assert!(
            location.starts_with(CALLBACK) || location.starts_with(AFTER_LOGOUT),
            "{op} {status}: redirected to {location}"
        );
        return Some(r.status().as_u16());
    }
    Some(page(r))
}

/// The status of a hosted page's answer, which must be a page.
fn page(r: reqwest::Response) -> u16 {
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        content_type.starts_with("text/html"),
        "{} {}: {content_type}",
        r.url(),
        r.status()
    );
    r.status().as_u16()
}
