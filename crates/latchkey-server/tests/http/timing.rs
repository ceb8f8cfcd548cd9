//! Unknown user and wrong password must take the same time over HTTP, at
//! the real (default, OWASP) Argon2 cost: otherwise response times tell an
//! attacker which usernames exist, whatever the error body says.
//!
//! Sign-ins of both kinds are interleaved (alternating which goes first) so
//! that load from elsewhere on the machine affects both alike, and the
//! medians must be within 5 % of each other. Throttling stays on, with the
//! allowances raised out of reach, so both paths do their real store work
//! (the throttle read and the two failure upserts) without being blocked.
//!
//! Dependencies are optimised even in debug builds (`[profile.dev.package."*"]
//! opt-level = 2`), so Argon2 costs about the same here as in release and
//! this runs in seconds with plain `cargo test`. For figures that match
//! production, `cargo test --release -p latchkey-server --test http
//! timing:: -- --nocapture`.

use std::time::{Duration, Instant};

use latchkey_core::password::Argon2Cost;
use latchkey_testkit::TestServer;

const PER_KIND: usize = 200;
const WARM_UP: usize = 10;

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    let n = samples.len();
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2
    }
}

async fn timed_failure(t: &TestServer, user: &str) -> Duration {
    let started = Instant::now();
    let r = t.sign_in(user, "not the password at all").await;
    let took = started.elapsed();
    assert_eq!(r.status(), 401, "{user}");
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_and_wrong_password_take_the_same_time() {
    let t = TestServer::start_with(|s| {
        s.argon2 = Argon2Cost::default();
        s.policy.throttle.account.free_failures = u32::MAX;
        s.policy.throttle.address.free_failures = u32::MAX;
    })
    .await;
    assert_eq!(
        t.sign_up("alice", "correct horse battery").await.status(),
        201
    );

    let mut unknown = Vec::with_capacity(PER_KIND);
    let mut wrong = Vec::with_capacity(PER_KIND);
    for i in 0..(WARM_UP + PER_KIND) {
        let ghost = format!("ghost{i}");
        let (u, w) = if i % 2 == 0 {
            let u = timed_failure(&t, &ghost).await;
            (u, timed_failure(&t, "alice").await)
        } else {
            let w = timed_failure(&t, "alice").await;
            (timed_failure(&t, &ghost).await, w)
        };
        if i >= WARM_UP {
            unknown.push(u);
            wrong.push(w);
        }
    }
    let (mu, mw) = (median(&mut unknown), median(&mut wrong));
    let ratio = mu.as_secs_f64() / mw.as_secs_f64();
    eprintln!(
        "sign-in failures over HTTP, {PER_KIND} each, default Argon2: \
         unknown user median {mu:?} (p10 {:?}, p90 {:?}), \
         wrong password median {mw:?} (p10 {:?}, p90 {:?}); ratio {ratio:.4}",
        unknown[PER_KIND / 10],
        unknown[PER_KIND * 9 / 10],
        wrong[PER_KIND / 10],
        wrong[PER_KIND * 9 / 10],
    );
    assert!(
        (0.95..=1.0 / 0.95).contains(&ratio),
        "medians differ by more than 5 %: unknown {mu:?}, wrong password {mw:?}"
    );
}

/// `latchkey users <action>` on the server's data directory.
async fn operator(t: &TestServer, action: latchkey_server::cli::users::UsersAction) {
    use latchkey_server::cli::users::{self, Format, UsersArgs};
    users::run(UsersArgs {
        location: latchkey_server::config::DataArgs {
            data_dir: Some(t.settings.data_dir.clone()),
            ..Default::default()
        },
        format: Format::Json,
        action,
    })
    .await
    .expect("users command");
}

/// A disabled account's right password, an account with no password yet
/// and a wrong password are refused alike and in the same time: each is
/// one Argon2 verification and the same store writes, so neither kind of
/// account can be told from outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_and_passwordless_accounts_are_refused_in_a_wrong_passwords_time() {
    use latchkey_server::cli::users::UsersAction;
    const PASSWORD: &str = "correct horse battery";
    const PER_KIND: usize = 100;
    let t = TestServer::start_with(|s| {
        s.argon2 = Argon2Cost::default();
        s.policy.throttle.account.free_failures = u32::MAX;
        s.policy.throttle.address.free_failures = u32::MAX;
    })
    .await;
    for name in ["alice", "dora"] {
        assert_eq!(t.sign_up(name, PASSWORD).await.status(), 201);
    }
    operator(
        &t,
        UsersAction::Disable {
            user: "dora".into(),
        },
    )
    .await;
    operator(
        &t,
        UsersAction::Create {
            username: "nell".into(),
            password_stdin: false,
            email: None,
            roles: Vec::new(),
        },
    )
    .await;

    async fn refused(t: &TestServer, user: &str, password: &str) -> Duration {
        let started = Instant::now();
        let r = t.sign_in(user, password).await;
        let took = started.elapsed();
        assert_eq!(r.status(), 401, "{user}");
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["error"], "invalid_grant");
        took
    }
    let mut samples: [Vec<Duration>; 3] = Default::default();
    for i in 0..(WARM_UP + PER_KIND) {
        let tries = [
            ("alice", "not the password"),
            ("dora", PASSWORD),
            ("nell", PASSWORD),
        ];
        for k in 0..3 {
            // Rotate which kind goes first.
            let j = (i + k) % 3;
            let took = refused(&t, tries[j].0, tries[j].1).await;
            if i >= WARM_UP {
                samples[j].push(took);
            }
        }
    }
    // Each round's three were measured back to back, so their ratio is
    // about the server, not about what else the machine did meanwhile;
    // the median ratio over the rounds must be within 5 % of 1.
    let ratio_to_wrong = |kind: &[Duration]| {
        let mut ratios: Vec<f64> = kind
            .iter()
            .zip(&samples[0])
            .map(|(k, w)| k.as_secs_f64() / w.as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        ratios[ratios.len() / 2]
    };
    let (disabled, passwordless) = (ratio_to_wrong(&samples[1]), ratio_to_wrong(&samples[2]));
    let [mut wrong, mut d, mut p] = samples;
    eprintln!(
        "sign-in refusals, {PER_KIND} rounds, default Argon2: medians wrong password {:?}, \
         disabled account (right password) {:?}, no password yet {:?}; median per-round ratio \
         to the wrong password: disabled {disabled:.4}, no password {passwordless:.4}",
        median(&mut wrong),
        median(&mut d),
        median(&mut p),
    );
    for (what, ratio) in [("disabled", disabled), ("passwordless", passwordless)] {
        assert!(
            (0.95..=1.0 / 0.95).contains(&ratio),
            "{what}: median per-round ratio to a wrong password {ratio:.4}"
        );
    }
}
async fn timed_forgot(t: &TestServer, body: serde_json::Value) -> Duration {
    let started = Instant::now();
    let r = t.post("/v1/password/forgot", body).await;
    let took = started.elapsed();
    assert_eq!(r.status(), 202);
    took
}

/// `POST /v1/password/forgot` for an account with a verified address and
/// for no account at all: the request only queues itself, the same store
/// write on both paths, so the medians are within 5 %. (The mail worker
/// answers both in the background; the account's mail allowance keeps it
/// from mailing more than one link.) A request takes well under a
/// millisecond, so other tests running at once in this binary can swamp a
/// round: up to [`FORGOT_ROUNDS`] rounds of 200 each, and one within 5 %
/// passes; a real difference between the paths fails every round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_takes_the_same_time_for_known_and_unknown_accounts() {
    use latchkey_testkit::smtp::SmtpSink;
    if !SmtpSink::available("forgot timing") {
        return;
    }
    let sink = SmtpSink::start();
    let t = super::recovery::server_with_mail(&sink).await;
    super::recovery::verified_account(&t, &sink, "alice", "alice@example.com", 0).await;

    let mut ratios = Vec::new();
    for round in 0..FORGOT_ROUNDS {
        let mut unknown = Vec::with_capacity(PER_KIND);
        let mut known = Vec::with_capacity(PER_KIND);
        for i in 0..(WARM_UP + PER_KIND) {
            let ghost = serde_json::json!({ "username": format!("ghost{round}-{i}") });
            let alice = serde_json::json!({ "username": "alice" });
            let (u, k) = if i % 2 == 0 {
                let u = timed_forgot(&t, ghost).await;
                (u, timed_forgot(&t, alice).await)
            } else {
                let k = timed_forgot(&t, alice).await;
                (timed_forgot(&t, ghost).await, k)
            };
            if i >= WARM_UP {
                unknown.push(u);
                known.push(k);
            }
        }
        let (mu, mk) = (median(&mut unknown), median(&mut known));
        let ratio = mu.as_secs_f64() / mk.as_secs_f64();
        eprintln!(
            "forgot over HTTP, round {round}, {PER_KIND} each: unknown account median {mu:?} \
             (p10 {:?}, p90 {:?}), verified account median {mk:?} (p10 {:?}, p90 {:?}); \
             ratio {ratio:.4}",
            unknown[PER_KIND / 10],
            unknown[PER_KIND * 9 / 10],
            known[PER_KIND / 10],
            known[PER_KIND * 9 / 10],
        );
        if (0.95..=1.0 / 0.95).contains(&ratio) {
            return;
        }
        ratios.push(ratio);
    }
    panic!("medians differ by more than 5 % in every round: ratios {ratios:?}");
}

/// Rounds of the forgot timing test at most.
const FORGOT_ROUNDS: usize = 3;
