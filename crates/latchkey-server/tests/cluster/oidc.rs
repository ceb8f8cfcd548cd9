//! The authorization-code flow across nodes on one PostgreSQL database: a
//! person signs in on one node's hosted page, the app exchanges the code
//! on another, the browser session is honoured by every node, a replayed
//! code ends the session everywhere, and logout on a third node ends it
//! all.

use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::header;
use serde_json::Value;

use latchkey_testkit::cluster::*;
use latchkey_testkit::http::*;
use latchkey_testkit::postgres::*;

const CALLBACK: &str = "http://127.0.0.1:9/cb";

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn params(challenge: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", "web".into()),
        ("redirect_uri", CALLBACK.into()),
        ("scope", "openid profile".into()),
        ("state", "st".into()),
        ("nonce", "nn".into()),
        ("code_challenge", challenge.into()),
        ("code_challenge_method", "S256".into()),
    ]
}

fn code_of(r: &reqwest::Response) -> String {
    let location = r.headers()[header::LOCATION].to_str().expect("ascii");
    let query = location.split_once('?').expect("query").1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {location}"))
}

async fn exchange(http: &reqwest::Client, base: &str, code: &str, verifier: &str) -> (u16, Value) {
    let r = http
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "web"),
            ("code", code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .expect("token");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_in_on_one_node_exchange_on_another_and_log_out_on_a_third() {
    let Some(server) = server_url() else { return };
    let cluster = Cluster::start(env!("CARGO_BIN_EXE_latchkey"), &server, "oidc", &[], None);
    cluster.operator(&["clients", "create", "web", "--redirect-uri", CALLBACK]);
    let http = http_client();
    // A client that may use the code flow has a node make the ID-token keys
    // within one client sync; every node publishes them after its next key
    // reload (5 s).
    let since = Instant::now();
    for base in cluster.bases() {
        loop {
            let jwks: Value = http
                .get(format!("{base}/.well-known/jwks.json"))
                .send()
                .await
                .expect("jwks")
                .json()
                .await
                .expect("json");
            let rs256 = jwks["keys"]
                .as_array()
                .is_some_and(|keys| keys.iter().any(|k| k["alg"] == "RS256"));
            if rs256 {
                break;
            }
            assert!(
                since.elapsed() < Duration::from_secs(15),
                "{base} publishes no ID-token key"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!(
        "ID-token keys published by every node {:?} after the client was registered",
        since.elapsed()
    );
    let b = browser();
    let (base0, base1, base2) = (cluster.base(0), cluster.base(1), cluster.base(2));
    account(&http, base0, "olive").await;

    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    let mut form = params(&challenge);
    form.push(("username", "olive".into()));
    form.push(("password", PASSWORD.into()));
    let r = b
        .post(format!("{base0}/oauth/authorize/sign-in"))
        .header("sec-fetch-site", "same-origin")
        .form(&form)
        .send()
        .await
        .expect("sign-in");
    assert_eq!(r.status(), 303, "{}", cluster.log_tail(0, 5));
    let cookie = r
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-latchkey_session="))
        .and_then(|v| v.split(';').next())
        .expect("browser session cookie")
        .to_owned();
    let code = code_of(&r);

    let (status, tokens) = exchange(&http, base1, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = token(&tokens, "access_token");
    let refresh = token(&tokens, "refresh_token");
    let id_token = token(&tokens, "id_token");
    let info = http
        .get(format!("{base2}/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("userinfo");
    assert_eq!(info.status(), 200);

    // Every node honours the browser session (the cookie is MAC'd with the
    // shared server secret, the session is in the shared database).
    for base in cluster.bases() {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params(&challenge))
            .finish();
        let r = b
            .get(format!("{base}/oauth/authorize?{query}"))
            .header(header::COOKIE, &cookie)
            .send()
            .await
            .expect("authorize");
        assert_eq!(
            r.status(),
            303,
            "{base} passes the signed-in person through"
        );
    }

    // The code replayed on a third node: refused, and the session its first
    // use opened ends on every node.
    let (status, body) = exchange(&http, base2, &code, &verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let since = Instant::now();
    for base in cluster.bases() {
        loop {
            let (status, _) = me(&http, &base, &access).await.expect("me");
            if status == 401 {
                break;
            }
            assert!(
                since.elapsed() < Duration::from_secs(10),
                "{base} still accepts"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    eprintln!(
        "replayed code: access token refused on every node within {:?}",
        since.elapsed()
    );
    let (status, _) = refresh_status(&http, base0, &refresh).await;
    assert_eq!(status, 401);

    // Logout on node 2 with the hint ends the browser session for node 0.
    let r = b
        .get(format!("{base2}/oauth/logout?id_token_hint={id_token}"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 200);
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params(&challenge))
        .finish();
    let r = b
        .get(format!("{base0}/oauth/authorize?{query}"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .expect("authorize");
    assert_eq!(r.status(), 200, "signed out: the sign-in page again");
    assert!(cluster.warnings().is_empty(), "{:?}", cluster.warnings());
}

async fn refresh_status(http: &reqwest::Client, base: &str, rt: &str) -> (u16, Value) {
    refresh(http, base, rt).await.expect("refresh")
}
