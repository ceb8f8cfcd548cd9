//! The verifier against a real (tiny) issuer over HTTP on 127.0.0.1.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::issuer::{key, now, token, wait_until, FeedMode, Issuer, AUDIENCE};
use latchkey_core::clock::ManualClock;
use latchkey_verify::{FailMode, Options, TokenError, Verifier, VerifyError};

const SECOND: Duration = Duration::from_secs(1);

/// Fast feed settings so outages show within a couple of seconds.
fn fast() -> Options {
    Options::default()
        .feed_wait(SECOND)
        .max_staleness(Duration::from_millis(2500))
        .feed_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .http_timeout(Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifies_tokens_of_the_discovered_jwks() {
    let k1 = key("k1");
    let issuer = Issuer::start(&[&k1]).await;
    let v = Verifier::with_options(&issuer.base, AUDIENCE, fast())
        .await
        .expect("verifier");
    assert_eq!(v.key_ids(), vec!["k1".to_owned()]);

    let t = token(&k1, &issuer.base, "s1", "j1");
    let claims = v.verify(&t).expect("valid token");
    assert_eq!(claims.sub, "user-s1");
    assert_eq!(v.verify_async(&t).await.expect("valid").jti, "j1");

    // Same key, other expectations.
    let other = Verifier::with_options(&issuer.base, "other-api", fast().follow_feed(false))
        .await
        .expect("verifier");
    assert!(matches!(
        other.verify(&t),
        Err(VerifyError::Token(TokenError::WrongAudience))
    ));
    let wrong_iss = k1.sign(&crate::issuer::claims("http://elsewhere", now(), "s", "j"));
    assert!(matches!(
        v.verify(&wrong_iss),
        Err(VerifyError::Token(TokenError::WrongIssuer))
    ));

    // A key with the published kid but another secret.
    let impostor = key("k1");
    let forged = token(&impostor, &issuer.base, "s1", "j1");
    assert!(matches!(
        v.verify(&forged),
        Err(VerifyError::Token(TokenError::BadSignature))
    ));
    assert!(matches!(
        v.verify("not.a.jwt"),
        Err(VerifyError::Token(TokenError::Malformed))
    ));
    let expired = k1.sign(&crate::issuer::claims(
        &issuer.base,
        now() - 3600,
        "s1",
        "j1",
    ));
    assert!(matches!(
        v.verify(&expired),
        Err(VerifyError::Token(TokenError::Expired))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_failure_is_an_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let err = Verifier::with_options(&format!("http://{addr}"), AUDIENCE, fast())
        .await
        .expect_err("nothing listens there");
    assert!(matches!(err, VerifyError::Http(_)), "{err:?}");

    let bad = Options::default().feed_wait(Duration::from_secs(31));
    assert!(matches!(
        Verifier::with_options("http://127.0.0.1:1", AUDIENCE, bad).await,
        Err(VerifyError::Config(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_refetch_picks_up_a_rotated_in_key() {
    let k1 = key("k1");
    let issuer = Issuer::start(&[&k1]).await;
    let v = Verifier::with_options(&issuer.base, AUDIENCE, fast())
        .await
        .expect("verifier");

    // Async path: the first token of a new key waits for one refetch.
    let k2 = key("k2");
    issuer.publish(&[&k1, &k2]);
    let t2 = token(&k2, &issuer.base, "s", "j2");
    assert_eq!(v.verify_async(&t2).await.expect("rotated in").jti, "j2");
    assert_eq!(issuer.jwks_hits.load(Ordering::SeqCst), 2);

    // Sync path: refuses now, schedules the refetch, accepts shortly after.
    let sync = Verifier::with_options(
        &issuer.base,
        AUDIENCE,
        fast().refetch_min_interval(Duration::from_millis(100)),
    )
    .await
    .expect("verifier");
    let k3 = key("k3");
    issuer.publish(&[&k1, &k2, &k3]);
    let t3 = token(&k3, &issuer.base, "s", "j3");
    assert!(matches!(
        sync.verify(&t3),
        Err(VerifyError::Token(TokenError::UnknownKey))
    ));
    assert!(wait_until(5 * SECOND, || sync.verify(&t3).is_ok()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refetch_rate_limit_holds_under_a_flood_of_bogus_kids() {
    let k1 = key("k1");
    let issuer = Issuer::start(&[&k1]).await;
    let v = Arc::new(
        Verifier::with_options(&issuer.base, AUDIENCE, fast())
            .await
            .expect("verifier"),
    );
    assert_eq!(issuer.jwks_hits.load(Ordering::SeqCst), 1);

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..400 {
        let bogus = token(&key(&format!("bogus-{i}")), &issuer.base, "s", "j");
        let v = Arc::clone(&v);
        tasks.spawn(async move {
            let sync = v.verify(&bogus);
            let r#async = v.verify_async(&bogus).await;
            matches!(sync, Err(VerifyError::Token(TokenError::UnknownKey)))
                && matches!(r#async, Err(VerifyError::Token(TokenError::UnknownKey)))
        });
    }
    while let Some(ok) = tasks.join_next().await {
        assert!(ok.expect("task"), "a bogus kid was not refused as unknown");
    }
    // Let any background refetch land before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "flood too slow to test the 10 s window"
    );
    // The start-up fetch plus one refetch for the whole flood.
    assert_eq!(issuer.jwks_hits.load(Ordering::SeqCst), 2);
    // Genuine tokens still pass during the flood's aftermath.
    assert!(v.verify(&token(&k1, &issuer.base, "s", "j")).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_removed_from_jwks_stops_verifying_after_refetch() {
    let k1 = key("k1");
    let k2 = key("k2");
    let issuer = Issuer::start(&[&k1, &k2]).await;
    let v = Verifier::with_options(
        &issuer.base,
        AUDIENCE,
        fast().refresh_interval(Duration::from_millis(200)),
    )
    .await
    .expect("verifier");
    let t1 = token(&k1, &issuer.base, "s", "j1");
    let t2 = token(&k2, &issuer.base, "s", "j2");
    assert!(v.verify(&t1).is_ok() && v.verify(&t2).is_ok());

    issuer.publish(&[&k2]);
    // Picked up by the periodic refresh alone.
    assert!(
        wait_until(5 * SECOND, || matches!(
            v.verify(&t1),
            Err(VerifyError::Token(TokenError::UnknownKey))
        ))
        .await
    );
    assert!(v.verify(&t2).is_ok());
    assert_eq!(v.key_ids(), vec!["k2".to_owned()]);

    // And by an explicit refresh.
    let fixed = Verifier::with_options(&issuer.base, AUDIENCE, fast())
        .await
        .expect("verifier");
    assert!(fixed.verify(&t2).is_ok());
    issuer.publish(&[&k1]);
    fixed.refresh_keys().await.expect("refresh");
    assert!(matches!(
        fixed.verify(&t2),
        Err(VerifyError::Token(TokenError::UnknownKey))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_arrive_by_snapshot_and_tail() {
    let k1 = key("k1");
    let issuer = Issuer::start(&[&k1]).await;
    issuer.revoke("sid", "ended-before-start", now() + 600);
    issuer.revoke("jti", "long-gone", now() - 10);
    let v = Verifier::with_options(&issuer.base, AUDIENCE, fast().leeway(Duration::ZERO))
        .await
        .expect("verifier");

    // The snapshot was taken before `new` returned; the expired entry was
    // dropped on arrival.
    let ended = token(&k1, &issuer.base, "ended-before-start", "j0");
    assert!(matches!(
        v.verify(&ended),
        Err(VerifyError::Token(TokenError::Revoked))
    ));
    assert_eq!(v.revocation_count(), 1);
    assert!(v.feed_last_success().is_some());

    let live_sid = token(&k1, &issuer.base, "s1", "j1");
    let live_jti = token(&k1, &issuer.base, "s2", "j2");
    assert!(v.verify(&live_sid).is_ok() && v.verify(&live_jti).is_ok());

    // Tail: each revocation lands within about a second (long-poll wakes).
    let t0 = Instant::now();
    issuer.revoke("sid", "s1", now() + 600);
    assert!(
        wait_until(3 * SECOND, || matches!(
            v.verify(&live_sid),
            Err(VerifyError::Token(TokenError::Revoked))
        ))
        .await
    );
    issuer.revoke("jti", "j2", now() + 600);
    assert!(
        wait_until(3 * SECOND, || matches!(
            v.verify(&live_jti),
            Err(VerifyError::Token(TokenError::Revoked))
        ))
        .await
    );
    assert!(
        t0.elapsed() < 3 * SECOND,
        "revocation took {:?}",
        t0.elapsed()
    );
    assert_eq!(issuer.snapshots.load(Ordering::SeqCst), 1);
    assert!(issuer.tails.load(Ordering::SeqCst) >= 2);

    // Unknown entry kinds are ignored, not fatal.
    issuer.revoke("device", "d1", now() + 600);
    issuer.revoke("jti", "after-unknown", now() + 600);
    let after = token(&k1, &issuer.base, "s3", "after-unknown");
    assert!(
        wait_until(3 * SECOND, || matches!(
            v.verify(&after),
            Err(VerifyError::Token(TokenError::Revoked))
        ))
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_cursor_starts_over_from_a_snapshot_that_replaces_the_set() {
    let k1 = key("k1");
    let issuer = Issuer::start(&[&k1]).await;
    issuer.revoke("sid", "old-a", now() + 600);
    issuer.revoke("jti", "old-b", now() + 600);
    let v = Verifier::with_options(&issuer.base, AUDIENCE, fast())
        .await
        .expect("verifier");
    let a = token(&k1, &issuer.base, "old-a", "x");
    let b = token(&k1, &issuer.base, "s", "old-b");
    let c = token(&k1, &issuer.base, "new-c", "y");
    assert!(matches!(
        v.verify(&a),
        Err(VerifyError::Token(TokenError::Revoked))
    ));
    assert!(matches!(
        v.verify(&b),
        Err(VerifyError::Token(TokenError::Revoked))
    ));
    assert!(v.verify(&c).is_ok());

    // The server forgets its history (and, here, the old entries): the
    // follower's cursor gets 410 and a fresh snapshot must replace the set.
    issuer.compact_to(&[("sid", "new-c", now() + 600)]);
    assert!(
        wait_until(3 * SECOND, || matches!(
            v.verify(&c),
            Err(VerifyError::Token(TokenError::Revoked))
        ))
        .await
    );
    assert!(v.verify(&a).is_ok(), "snapshot was merged, not replaced");
    assert!(v.verify(&b).is_ok(), "snapshot was merged, not replaced");
    assert_eq!(v.revocation_count(), 1);
    assert_eq!(issuer.snapshots.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_entries_expire() {
    let k1 = key("k1");
    let issuer = Issuer::start(&[&k1]).await;
    let start = now();
    let clock = Arc::new(ManualClock::new(start));
    let v = Verifier::with_options(
        &issuer.base,
        AUDIENCE,
        fast().leeway(Duration::from_secs(5)).clock(clock.clone()),
    )
    .await
    .expect("verifier");
    // A token valid for 600 s; its session revoked until start + 100.
    let t = token(&k1, &issuer.base, "s1", "j1");
    issuer.revoke("sid", "s1", start + 100);
    assert!(
        wait_until(3 * SECOND, || matches!(
            v.verify(&t),
            Err(VerifyError::Token(TokenError::Revoked))
        ))
        .await
    );

    // Past the entry's expiry but within leeway: still kept, because the
    // `exp` check of a token it covers would still pass.
    clock.advance(103);
    issuer.revoke("jti", "nudge-1", start + 600);
    assert!(wait_until(3 * SECOND, || v.revocation_count() == 2).await);
    assert!(matches!(
        v.verify(&t),
        Err(VerifyError::Token(TokenError::Revoked))
    ));

    // Past expiry + leeway: the next poll drops it.
    clock.advance(10);
    issuer.revoke("jti", "nudge-2", start + 600);
    assert!(
        wait_until(3 * SECOND, || v.revocation_count() == 2
            && v.verify(&t).is_ok())
        .await
    );
}

/// Fail-open (the default): a feed outage changes nothing until the
/// revocation data is older than `max_staleness`; then every token is
/// refused with `FeedStale` until the feed answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_accepts_until_max_staleness_then_refuses() {
    let k1 = key("k1");
    let issuer = Issuer::start(&[&k1]).await;
    let v = Verifier::with_options(&issuer.base, AUDIENCE, fast())
        .await
        .expect("verifier");
    let t = token(&k1, &issuer.base, "s", "j");
    assert!(v.verify(&t).is_ok());
    assert!(!v.feed_is_stale());

    issuer.set_feed(FeedMode::Down);
    // Within the bound nothing changes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(v.verify(&t).is_ok());
    assert!(wait_until(6 * SECOND, || v.feed_is_stale()).await);
    assert!(matches!(v.verify(&t), Err(VerifyError::FeedStale)));
    assert!(
        v.feed_last_success()
            .is_some_and(|age| age > Duration::from_millis(2500)),
        "refused only past max_staleness"
    );
    // A revoked token is still told apart.
    v.insert_revocation(&latchkey_verify::Revocation {
        kind: latchkey_verify::RevocationKind::Token,
        id: "gone".into(),
        expires_at: now() + 600,
    });
    let gone = token(&k1, &issuer.base, "s", "gone");
    assert!(matches!(
        v.verify(&gone),
        Err(VerifyError::Token(TokenError::Revoked))
    ));

    issuer.set_feed(FeedMode::Up);
    assert!(wait_until(5 * SECOND, || !v.feed_is_stale() && v.verify(&t).is_ok()).await);
}

/// Fail-closed: every token is refused from the first failed feed request,
/// well before `max_staleness`, until the feed answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_refuses_as_soon_as_the_feed_fails() {
    let k1 = key("k1");
    let issuer = Issuer::start(&[&k1]).await;
    let v = Verifier::with_options(&issuer.base, AUDIENCE, fast().fail_mode(FailMode::Closed))
        .await
        .expect("verifier");
    let t = token(&k1, &issuer.base, "s", "j");
    assert!(v.verify(&t).is_ok());

    issuer.set_feed(FeedMode::Down);
    let down = Instant::now();
    assert!(
        wait_until(2 * SECOND, || matches!(
            v.verify(&t),
            Err(VerifyError::FeedStale)
        ))
        .await
    );
    assert!(
        down.elapsed() < Duration::from_millis(2500) && !v.feed_is_stale(),
        "refused before max_staleness"
    );

    issuer.set_feed(FeedMode::Up);
    assert!(wait_until(5 * SECOND, || v.verify(&t).is_ok()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_down_at_start_up_is_retried() {
    let k1 = key("k1");
    let issuer = Issuer::start(&[&k1]).await;
    issuer.revoke("sid", "s1", now() + 600);
    issuer.set_feed(FeedMode::Down);
    let v = Verifier::with_options(&issuer.base, AUDIENCE, fast())
        .await
        .expect("JWKS alone is enough to start");
    let closed = Verifier::with_options(&issuer.base, AUDIENCE, fast().fail_mode(FailMode::Closed))
        .await
        .expect("JWKS alone is enough to start");
    assert!(v.feed_last_success().is_none());
    let t = token(&k1, &issuer.base, "s1", "j");
    // Fail-open: not yet stale (counted from start-up), and the entry is
    // unknown yet. Fail-closed: no revocation data at all yet.
    assert!(v.verify(&t).is_ok());
    assert!(matches!(closed.verify(&t), Err(VerifyError::FeedStale)));
    issuer.set_feed(FeedMode::Up);
    for v in [&v, &closed] {
        assert!(
            wait_until(3 * SECOND, || matches!(
                v.verify(&t),
                Err(VerifyError::Token(TokenError::Revoked))
            ))
            .await
        );
    }
}

/// The snapshot comes in pages (`next`); the verifier reads them all before
/// it replaces its set, then follows from the last page's cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paginated_snapshot_is_read_to_the_end() {
    let k1 = key("k1");
    let issuer = Issuer::start(&[&k1]).await;
    issuer.set_snapshot_page_size(2);
    for i in 0..7 {
        issuer.revoke("sid", &format!("s{i}"), now() + 600);
    }
    let v = Verifier::with_options(&issuer.base, AUDIENCE, fast())
        .await
        .expect("verifier");
    assert_eq!(v.revocation_count(), 7);
    assert_eq!(issuer.snapshots.load(Ordering::SeqCst), 4, "four pages");
    for i in 0..7 {
        let t = token(&k1, &issuer.base, &format!("s{i}"), "j");
        assert!(
            matches!(v.verify(&t), Err(VerifyError::Token(TokenError::Revoked))),
            "s{i}"
        );
    }
    issuer.revoke("sid", "s7", now() + 600);
    assert!(wait_until(3 * SECOND, || v.revocation_count() == 8).await);
}

#[test]
fn from_jwks_needs_no_network_or_runtime() {
    let k1 = key("k1");
    let v = Verifier::from_jwks(
        &crate::issuer::jwks(&[&k1]),
        "http://issuer",
        AUDIENCE,
        Options::default(),
    )
    .expect("verifier");
    let t = token(&k1, "http://issuer", "s", "j");
    assert!(v.verify(&t).is_ok());
    // No issuer to ask: unknown kids are refused, with nothing scheduled.
    let other = token(&key("k2"), "http://issuer", "s", "j");
    assert!(matches!(
        v.verify(&other),
        Err(VerifyError::Token(TokenError::UnknownKey))
    ));
    assert!(!v.feed_is_stale());
    assert!(Verifier::from_jwks("{}", "http://issuer", AUDIENCE, Options::default()).is_err());
}

#[test]
fn tokens_without_a_session_are_checked_by_jti_alone() {
    let k1 = key("k1");
    let v = Verifier::from_jwks(
        &crate::issuer::jwks(&[&k1]),
        "http://issuer",
        AUDIENCE,
        Options::default(),
    )
    .expect("verifier");
    // A client-credentials token carries no `sid`.
    let mut c = crate::issuer::claims("http://issuer", now(), "unused", "cc-1");
    c.sid = None;
    let t = k1.sign(&c);
    assert_eq!(v.verify(&t).expect("valid").sid, None);
    v.insert_revocation(&latchkey_verify::Revocation {
        kind: latchkey_verify::RevocationKind::Session,
        id: "unused".into(),
        expires_at: now() + 600,
    });
    assert!(
        v.verify(&t).is_ok(),
        "a sid entry must not match a token without sid"
    );
    v.insert_revocation(&latchkey_verify::Revocation {
        kind: latchkey_verify::RevocationKind::Token,
        id: "cc-1".into(),
        expires_at: now() + 600,
    });
    assert!(matches!(
        v.verify(&t),
        Err(VerifyError::Token(TokenError::Revoked))
    ));
}

#[test]
fn keys_of_every_core_algorithm_are_read_from_the_jwks() {
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use latchkey_core::access_token::{Algorithm, SigningKey};

    let es_pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .expect("keygen");
    let es = SigningKey::from_pkcs8("es", Algorithm::Es256, es_pkcs8.as_ref()).expect("key");
    let rsa = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("keygen");
    let rs = SigningKey::from_pkcs8(
        "rs",
        Algorithm::Rs256,
        rsa.as_der().expect("pkcs8").as_ref(),
    )
    .expect("key");
    let ed = key("ed");
    let v = Verifier::from_jwks(
        &crate::issuer::jwks(&[&ed, &es, &rs]),
        "http://issuer",
        AUDIENCE,
        Options::default(),
    )
    .expect("verifier");
    assert_eq!(v.key_ids(), vec!["ed", "es", "rs"]);
    for k in [&ed, &es, &rs] {
        let t = token(k, "http://issuer", "s", "j");
        assert!(v.verify(&t).is_ok(), "{}", k.kid());
    }
}
