//! Signing keys over HTTP: the JWKS pre-publishes the next key; a rotation
//! (by the same function `latchkey keys rotate` calls) switches new tokens
//! to it while tokens of the retired key keep verifying until they expire,
//! after which the retired key leaves the JWKS; ES256 and RS256 servers;
//! the ID-token lineage (RS256) published and rotated beside the access one.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_core::access_token::Algorithm;
use latchkey_server::cli::keys::{list_keys, rotate_keys, rotated_answer};
use latchkey_testkit::TestServer;
use serde_json::{json, Value};

async fn jwks(s: &TestServer) -> Vec<Value> {
    let r = s
        .http
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    v["keys"].as_array().expect("keys").clone()
}

fn kids(keys: &[Value]) -> Vec<String> {
    keys.iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

fn header(token: &str) -> Value {
    let h = token.split('.').next().expect("header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).expect("b64")).expect("json")
}

fn kid_of(token: &str) -> String {
    header(token)["kid"].as_str().expect("kid").to_owned()
}

async fn me_status(s: &TestServer, token: &str) -> u16 {
    s.get_bearer("/v1/me", token).await.status().as_u16()
}

#[tokio::test]
async fn jwks_prepublishes_the_next_key_and_rotation_keeps_old_tokens_valid() {
    let s = TestServer::start().await;
    let keys = jwks(&s).await;
    assert_eq!(keys.len(), 2, "current and next published from the start");
    for k in &keys {
        assert_eq!(k["kty"], "OKP");
        assert_eq!(k["alg"], "EdDSA");
        assert_eq!(k["use"], "sig");
        assert!(k.get("d").is_none());
    }
    let [first, next] = [kids(&keys)[0].clone(), kids(&keys)[1].clone()];

    let alice = s.new_session("alice").await;
    assert_eq!(kid_of(&alice.access), first, "the current key signs");

    // What `latchkey keys rotate` does, on the running server's data dir.
    let r = rotate_keys(&s.settings, s.clock.as_ref())
        .await
        .expect("rotate")
        .access
        .expect("rotated");
    assert_eq!(r.retired, first);
    assert_eq!(r.current, next, "the pre-published key starts signing");

    s.maintain_keys().await;
    assert_eq!(
        kids(&jwks(&s).await),
        vec![next.clone(), r.next.clone(), first.clone()],
        "current, new next, retired"
    );
    let bob = s.new_session("bob").await;
    assert_eq!(kid_of(&bob.access), next);
    let refreshed = s.refresh(&alice.refresh).await;
    assert_eq!(refreshed.status(), 200);
    let refreshed: Value = refreshed.json().await.expect("json");
    assert_eq!(
        kid_of(refreshed["access_token"].as_str().expect("token")),
        next
    );

    // Tokens signed before the rotation still verify.
    assert_eq!(me_status(&s, &alice.access).await, 200);
    assert_eq!(me_status(&s, &bob.access).await, 200);

    // Past the old token's lifetime and leeway the retired key is still
    // published for a few seconds (nodes that had not reloaded yet)...
    let ttl = s.settings.policy.access_ttl_seconds;
    let leeway = s.settings.policy.leeway_seconds;
    s.clock.advance(ttl + leeway);
    assert_eq!(me_status(&s, &alice.access).await, 401, "expired");
    assert_eq!(s.maintain_keys().await.removed, 0);
    assert!(kids(&jwks(&s).await).contains(&first));
    let listed = list_keys(&s.settings, s.clock.as_ref())
        .await
        .expect("list");
    let retired = listed
        .iter()
        .find(|k| k["state"] == "retired")
        .expect("retired key listed");
    assert_eq!(retired["kid"], first.as_str());
    let removable_at = retired["removable_at"].as_i64().expect("removable_at");
    assert!(removable_at > retired["retired_at"].as_i64().expect("retired_at") + ttl);

    // ...and then removed.
    s.clock.advance(removable_at + 1 - s_now(&s));
    assert_eq!(s.maintain_keys().await.removed, 1);
    assert_eq!(kids(&jwks(&s).await), vec![next.clone(), r.next.clone()]);
    let listed = list_keys(&s.settings, s.clock.as_ref())
        .await
        .expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["kid"], next.as_str());
    assert_eq!(listed[0]["signing"], true);
    assert_eq!(listed[1]["state"], "next");
    for k in &listed {
        assert!(k.get("sealed_private_key").is_none());
    }
}

fn s_now(s: &TestServer) -> i64 {
    use latchkey_core::clock::Clock as _;
    s.clock.now()
}

/// Without any trigger, the node's periodic reload picks up a rotation made
/// by another process within a few seconds.
#[tokio::test]
async fn nodes_pick_up_a_rotation_by_themselves() {
    let s = TestServer::start().await;
    let next = kids(&jwks(&s).await)[1].clone();
    // Let the node's start-up maintenance pass go by, so what follows is
    // the periodic reload.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = rotate_keys(&s.settings, s.clock.as_ref())
        .await
        .expect("rotate")
        .access
        .expect("rotated");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let published = kids(&jwks(&s).await);
        if published.first() == Some(&next) && published.contains(&r.next) {
            break;
        }
        assert!(Instant::now() < deadline, "no reload: {published:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let carol = s.new_session("carol").await;
    assert_eq!(kid_of(&carol.access), next);
}

/// Two rotations racing on one current key rotate once.
#[tokio::test]
async fn concurrent_rotations_rotate_once() {
    let s = TestServer::start().await;
    let (a, b) = tokio::join!(
        rotate_keys(&s.settings, s.clock.as_ref()),
        rotate_keys(&s.settings, s.clock.as_ref())
    );
    let done = [a.expect("rotate"), b.expect("rotate")];
    s.maintain_keys().await;
    let published = jwks(&s).await;
    let rotations = done.iter().filter(|r| r.access.is_some()).count();
    assert!(rotations >= 1);
    // Each successful rotation retires one key: 2 + rotations keys in all,
    // exactly one of them signing.
    assert_eq!(published.len(), 2 + rotations);
    let listed = list_keys(&s.settings, s.clock.as_ref())
        .await
        .expect("list");
    assert_eq!(listed.iter().filter(|k| k["state"] == "current").count(), 1);
    assert_eq!(listed.iter().filter(|k| k["state"] == "next").count(), 1);
}

#[tokio::test]
async fn es256_and_rs256_servers_issue_tokens_that_verify() {
    for (alg, kty) in [(Algorithm::Es256, "EC"), (Algorithm::Rs256, "RSA")] {
        let s = TestServer::start_with(|st| st.policy.signing_algorithm = alg).await;
        let keys = jwks(&s).await;
        assert_eq!(keys.len(), 2);
        for k in &keys {
            assert_eq!(k["kty"], kty);
            assert_eq!(k["alg"], alg.as_str());
            for private in ["d", "p", "q", "dp", "dq", "qi"] {
                assert!(k.get(private).is_none(), "{private} published");
            }
        }
        if alg == Algorithm::Es256 {
            assert_eq!(keys[0]["crv"], "P-256");
            assert!(keys[0]["x"].is_string() && keys[0]["y"].is_string());
        } else {
            assert_eq!(keys[0]["e"], "AQAB");
            assert!(keys[0]["n"].is_string());
        }
        let t = s.new_session("dave").await;
        assert_eq!(header(&t.access)["alg"], alg.as_str());
        assert_eq!(kid_of(&t.access), kids(&keys)[0]);
        assert_eq!(me_status(&s, &t.access).await, 200, "{alg}");

        // A rotation keeps the algorithm; the old token still verifies.
        rotate_keys(&s.settings, s.clock.as_ref())
            .await
            .expect("rotate")
            .access
            .expect("rotated");
        s.maintain_keys().await;
        let t2 = s.new_session("erin").await;
        assert_eq!(header(&t2.access)["alg"], alg.as_str());
        assert_ne!(kid_of(&t2.access), kid_of(&t.access));
        assert_eq!(me_status(&s, &t2.access).await, 200);
        assert_eq!(me_status(&s, &t.access).await, 200);
    }
}

/// RFC 9864's fully specified name: keys and tokens say `Ed25519`, and
/// the metadata names both names of the scheme, which both verify.
#[tokio::test]
async fn an_ed25519_named_server_issues_tokens_that_verify() {
    let s = TestServer::start_with(|st| st.policy.signing_algorithm = Algorithm::Ed25519).await;
    let keys = jwks(&s).await;
    for k in &keys {
        assert_eq!(
            (&k["kty"], &k["crv"], &k["alg"]),
            (&json!("OKP"), &json!("Ed25519"), &json!("Ed25519"))
        );
    }
    let t = s.new_session("ed").await;
    assert_eq!(header(&t.access)["alg"], "Ed25519");
    assert_eq!(me_status(&s, &t.access).await, 200);
    let m: Value = s
        .http
        .get(s.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    assert_eq!(
        m["access_token_signing_alg_values_supported"],
        json!(["Ed25519", "EdDSA"])
    );
}

/// Switching algorithm is a rotation in the new algorithm: the first one
/// promotes the pre-published key (old algorithm) and publishes one in the
/// new algorithm, which the second rotation promotes.
#[tokio::test]
async fn switching_algorithm_is_a_rotation() {
    let s = TestServer::start().await;
    let old = s.new_session("frank").await;
    let mut es = s.settings.clone();
    es.policy.signing_algorithm = Algorithm::Es256;
    for _ in 0..2 {
        rotate_keys(&es, s.clock.as_ref())
            .await
            .expect("rotate")
            .access
            .expect("rotated");
    }
    s.maintain_keys().await;
    let t = s.new_session("grace").await;
    assert_eq!(header(&t.access)["alg"], "ES256");
    assert_eq!(me_status(&s, &t.access).await, 200);
    assert_eq!(
        me_status(&s, &old.access).await,
        200,
        "EdDSA token still valid"
    );
    let ktys: Vec<String> = jwks(&s)
        .await
        .iter()
        .map(|k| k["kty"].as_str().expect("kty").to_owned())
        .collect();
    assert_eq!(ktys, vec!["EC", "EC", "OKP", "OKP"]);
}

/// The CLI refuses to work on a data directory that does not exist rather
/// than creating a fresh one.
#[tokio::test]
async fn key_commands_need_an_existing_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = latchkey_testkit::test_settings(dir.path().join("missing"));
    let clock = latchkey_core::clock::SystemClock;
    assert!(rotate_keys(&settings, &clock).await.is_err());
    assert!(list_keys(&settings, &clock).await.is_err());
    assert!(!dir.path().join("missing").exists());
}

/// The ID-token lineage exists once a node first needs it: the JWKS then
/// publishes its RS256 keys after the EdDSA ones, `keys list` names each
/// key's purpose, and `keys rotate` rotates both lineages, each once.
#[tokio::test]
async fn the_id_token_lineage_is_published_and_rotated_beside_the_access_keys() {
    let s = TestServer::start().await;
    let none = rotate_keys(&s.settings, s.clock.as_ref())
        .await
        .expect("rotate");
    assert!(!none.id_token_lineage, "not created by a rotation");
    let answer = rotated_answer(&none, Algorithm::EdDsa);
    assert_eq!(
        (&answer["rotated"], &answer["id_token"]),
        (&json!(true), &Value::Null)
    );
    s.maintain_keys().await;
    assert_eq!(jwks(&s).await.len(), 3);

    let started = Instant::now();
    let id_key = s.id_token_key().await;
    eprintln!("creating the ID-token lineage took {:?}", started.elapsed());
    let keys = jwks(&s).await;
    let algs: Vec<&str> = keys
        .iter()
        .map(|k| k["alg"].as_str().expect("alg"))
        .collect();
    assert_eq!(algs, ["EdDSA", "EdDSA", "EdDSA", "RS256", "RS256"]);
    assert_eq!(kids(&keys)[3], id_key.kid());
    for k in &keys[3..] {
        assert_eq!(
            (&k["kty"], &k["use"], &k["e"]),
            (&json!("RSA"), &json!("sig"), &json!("AQAB"))
        );
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(k.get(private).is_none(), "{private} published");
        }
    }
    let listed = list_keys(&s.settings, s.clock.as_ref())
        .await
        .expect("list");
    let columns = |k: &Value| {
        let field = |name: &str| k[name].as_str().expect(name).to_owned();
        (field("purpose"), field("state"), k["signing"].clone())
    };
    let listed: Vec<_> = listed.iter().map(columns).collect();
    let row = |purpose: &str, state: &str, signing: bool| {
        (purpose.to_owned(), state.to_owned(), json!(signing))
    };
    assert_eq!(
        listed,
        [
            row("access", "current", true),
            row("access", "next", false),
            row("access", "retired", false),
            row("id_token", "current", true),
            row("id_token", "next", false),
        ]
    );

    // What `latchkey keys rotate` does: both lineages, each its own
    // compare-and-set.
    let id_next = kids(&keys)[4].clone();
    let r = rotate_keys(&s.settings, s.clock.as_ref())
        .await
        .expect("rotate");
    let access = r.access.clone().expect("access keys rotated");
    let id = r.id_token.clone().expect("ID-token keys rotated");
    assert_eq!(
        (id.retired.as_str(), id.current.as_str()),
        (id_key.kid(), id_next.as_str())
    );
    let answer = rotated_answer(&r, Algorithm::EdDsa);
    assert_eq!(answer["current"], access.current.as_str());
    assert_eq!(answer["algorithm"], "EdDSA");
    assert_eq!(answer["id_token"]["rotated"], true);
    assert_eq!(answer["id_token"]["current"], id.current.as_str());
    assert_eq!(answer["id_token"]["algorithm"], "RS256");
    s.maintain_keys().await;
    let published = kids(&jwks(&s).await);
    assert_eq!(
        &published[..2],
        [access.current.clone(), access.next.clone()]
    );
    // The access lineage: current, next, two retired; then the ID-token
    // lineage: current, next, retired.
    assert_eq!(published.len(), 7);
    assert_eq!(&published[4..6], [id.current.clone(), id.next.clone()]);
    assert_eq!(published[6], id.retired);
    assert_eq!(s.id_token_key().await.kid(), id.current);
    let t = s.new_session("heidi").await;
    assert_eq!(kid_of(&t.access), access.current);
    assert_eq!(me_status(&s, &t.access).await, 200);
}
