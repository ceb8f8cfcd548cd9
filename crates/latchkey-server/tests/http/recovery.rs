//! Password recovery and the account's email address over real SMTP: a
//! loopback aiosmtpd sink (`tests/smtp/sink.py`, see
//! [`latchkey_testkit::smtp`]) receives what the mail worker sends, and the
//! tests follow the links in it.

use std::time::Duration;

use latchkey_core::secret::Secret;
use latchkey_server::mail::SmtpSettings;
use latchkey_testkit::exposition::Exposition;
use latchkey_testkit::smtp::{link_token, SmtpSink};
use latchkey_testkit::{error_code, TestServer, Tokens};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";
const NEW_PASSWORD: &str = "a brand new passphrase";
const MAIL_WAIT: Duration = Duration::from_secs(15);
const RESET: &str = "/account/reset-password";
const VERIFY: &str = "/account/verify-email";

pub(crate) async fn server_with_mail(sink: &SmtpSink) -> TestServer {
    let url = sink.url();
    TestServer::start_with(move |s| {
        s.smtp = Some(SmtpSettings {
            url: Secret::from(url),
            from: "Latchkey <noreply@latchkey.test>".to_owned(),
            timeout: Duration::from_secs(5),
        });
    })
    .await
}

async fn sign_up_with_email(s: &TestServer, username: &str, email: &str) -> Value {
    let r = s
        .post(
            "/v1/sign-up",
            json!({"username": username, "password": PASSWORD, "email": email}),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json().await.expect("json")
}

async fn scrape(s: &TestServer) -> Exposition {
    let r = s.http.get(s.url("/metrics")).send().await.expect("scrape");
    let text = r.text().await.expect("body");
    Exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

async fn me(s: &TestServer, access: &str) -> Value {
    let r = s.get_bearer("/v1/me", access).await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

async fn sign_in(s: &TestServer, username: &str, password: &str) -> Tokens {
    let r = s.sign_in(username, password).await;
    assert_eq!(r.status(), 200);
    Tokens::from(r.json::<Value>().await.expect("json"))
}

/// An account whose address is verified (through its mailed link); the
/// sink then holds `already + 1` messages.
pub(crate) async fn verified_account(
    s: &TestServer,
    sink: &SmtpSink,
    username: &str,
    email: &str,
    already: usize,
) {
    sign_up_with_email(s, username, email).await;
    let mails = sink.wait_for(already + 1, MAIL_WAIT).await;
    let token = link_token(&mails[already], VERIFY);
    let r = s.post("/v1/email/verify", json!({"token": token})).await;
    assert_eq!(r.status(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_verify_forget_and_reset_through_mailed_links() {
    if !SmtpSink::available("recovery flow") {
        return;
    }
    let sink = SmtpSink::start();
    let s = server_with_mail(&sink).await;

    let created = sign_up_with_email(&s, "ann", "Ann@Example.com").await;
    assert_eq!(created["email"], "Ann@Example.com");
    assert_eq!(created["email_verified"], false);
    let mails = sink.wait_for(1, MAIL_WAIT).await;
    let verification = &mails[0];
    assert_eq!(verification["to"], json!(["Ann@Example.com"]));
    assert_eq!(verification["from"], "noreply@latchkey.test");
    assert_eq!(verification["subject"], "Confirm your email address");
    let text = verification["text"].as_str().expect("text");
    assert!(
        text.contains("http://latchkey.test/account/verify-email?token="),
        "{text}"
    );
    assert!(text.contains("Hello ann,"), "{text}");
    let html = verification["html"].as_str().expect("html");
    assert!(html.contains("<a href=\"http://latchkey.test/account/verify-email?token="));
    let token = link_token(verification, VERIFY);
    assert_eq!(token.len(), 43, "256 bits in base64url");

    let old = sign_in(&s, "ann", PASSWORD).await;
    assert_eq!(me(&s, &old.access).await["email_verified"], false);
    let r = s.post("/v1/email/verify", json!({"token": token})).await;
    assert_eq!(r.status(), 204);
    let r = s.post("/v1/email/verify", json!({"token": token})).await;
    assert_eq!(
        (r.status().as_u16(), error_code(r).await.as_str()),
        (400, "invalid_grant"),
        "single use"
    );
    let account = me(&s, &old.access).await;
    assert_eq!(account["email"], "Ann@Example.com");
    assert_eq!(account["email_verified"], true);

    // Forgot, by username: a reset link to the verified address (a minute
    // after the last mail to the account: at most one a minute).
    s.clock.advance(61);
    let r = s
        .post("/v1/password/forgot", json!({"username": "ANN"}))
        .await;
    assert_eq!(r.status(), 202);
    let mails = sink.wait_for(2, MAIL_WAIT).await;
    let reset = &mails[1];
    assert_eq!(reset["to"], json!(["Ann@Example.com"]));
    assert_eq!(reset["subject"], "Reset your password");
    assert!(reset["text"]
        .as_str()
        .is_some_and(|t| t.contains("within 30 minutes")));
    let token = link_token(reset, RESET);

    // A weak password is refused and leaves the token usable.
    for weak in ["short", "password123"] {
        let r = s
            .post(
                "/v1/password/reset",
                json!({"token": token, "new_password": weak}),
            )
            .await;
        assert_eq!(
            (r.status().as_u16(), error_code(r).await.as_str()),
            (400, "invalid_request"),
            "{weak}"
        );
    }
    let r = s
        .post(
            "/v1/password/reset",
            json!({"token": token, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let r = s
        .post(
            "/v1/password/reset",
            json!({"token": token, "new_password": "yet another passphrase"}),
        )
        .await;
    assert_eq!(
        (r.status().as_u16(), error_code(r).await.as_str()),
        (400, "invalid_grant"),
        "single use"
    );

    // Every old session ended: its refresh token and access token refused.
    assert_eq!(s.refresh(&old.refresh).await.status(), 401);
    assert_eq!(s.get_bearer("/v1/me", &old.access).await.status(), 401);
    assert_eq!(s.sign_in("ann", PASSWORD).await.status(), 401);
    let new = sign_in(&s, "ann", NEW_PASSWORD).await;
    assert_eq!(me(&s, &new.access).await["username"], "ann");
    // The verification and the reset are in ann's audit trail.
    s.flush_audit().await;
    let kinds: Vec<String> = s
        .audit_events(Some("ann"), None, 100)
        .await
        .iter()
        .filter(|e| e["outcome"] == "success")
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    for kind in ["email_verified", "password_reset"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }

    // Unknown accounts and addresses get the same 202, and no mail.
    for body in [
        json!({"username": "nobody"}),
        json!({"email": "nobody@example.com"}),
        json!({"email": "not an address"}),
    ] {
        let r = s.post("/v1/password/forgot", body).await;
        assert_eq!(r.status(), 202);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sink.messages().len(), 2, "nothing for unknown accounts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_links_go_only_to_verified_addresses_and_once_a_minute() {
    if !SmtpSink::available("recovery allowance") {
        return;
    }
    let sink = SmtpSink::start();
    let s = server_with_mail(&sink).await;
    verified_account(&s, &sink, "ann", "ann@example.com", 0).await;
    // Bob's address is not verified: no reset link to it.
    sign_up_with_email(&s, "bob", "bob@example.com").await;
    sink.wait_for(2, MAIL_WAIT).await;
    s.clock.advance(61);

    for body in [
        json!({"email": "ANN@example.com"}),
        json!({"username": "ann"}),
        json!({"email": "bob@example.com"}),
        json!({"username": "bob"}),
    ] {
        let r = s.post("/v1/password/forgot", body).await;
        assert_eq!(r.status(), 202);
    }
    let mails = sink.wait_for(3, MAIL_WAIT).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mails_now = sink.messages();
    assert_eq!(
        mails_now.len(),
        3,
        "one reset mail, to ann only: {mails_now:#?}"
    );
    assert_eq!(mails[2]["to"], json!(["ann@example.com"]));
    let first = link_token(&mails[2], RESET);

    // A minute later another may go; the newer link voids the older.
    s.clock.advance(61);
    let r = s
        .post("/v1/password/forgot", json!({"username": "ann"}))
        .await;
    assert_eq!(r.status(), 202);
    let mails = sink.wait_for(4, MAIL_WAIT).await;
    let second = link_token(&mails[3], RESET);
    assert_ne!(first, second);
    let reset = |token: String| {
        s.post(
            "/v1/password/reset",
            json!({"token": token, "new_password": NEW_PASSWORD}),
        )
    };
    assert_eq!(reset(first).await.status(), 400, "voided by the newer");
    // Expired after 30 minutes.
    s.clock.advance(30 * 60);
    assert_eq!(reset(second).await.status(), 400, "expired");

    // Setting a new address needs the allowance too: 429 within a minute
    // of the last mail, and nothing changes.
    let tokens = sign_in(&s, "bob", PASSWORD).await;
    let set = |email: &'static str| {
        s.http
            .post(s.url("/v1/email"))
            .bearer_auth(&tokens.access)
            .json(&json!({"email": email}))
            .send()
    };
    let r = set("bob@example.org").await.expect("request");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["email"], "bob@example.org");
    assert_eq!(body["email_verified"], false);
    let mails = sink.wait_for(5, MAIL_WAIT).await;
    assert_eq!(mails[4]["to"], json!(["bob@example.org"]));
    let r = set("bob@example.net").await.expect("request");
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(error_code(r).await, "slow_down");
    assert_eq!(me(&s, &tokens.access).await["email"], "bob@example.org");
    // The older address's link no longer verifies anything.
    let stale = link_token(&mails[1], VERIFY);
    let r = s.post("/v1/email/verify", json!({"token": stale})).await;
    assert_eq!(r.status(), 400);
    let fresh = link_token(&mails[4], VERIFY);
    let r = s.post("/v1/email/verify", json!({"token": fresh})).await;
    assert_eq!(r.status(), 204);
    assert_eq!(me(&s, &tokens.access).await["email_verified"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_waits_out_a_mail_server_outage_and_a_server_restart() {
    if !SmtpSink::available("mail outage") {
        return;
    }
    let mut sink = SmtpSink::start();
    let s = server_with_mail(&sink).await;
    verified_account(&s, &sink, "ann", "ann@example.com", 0).await;
    s.clock.advance(61);

    // The mail server goes away: the request does not notice.
    sink.stop();
    let r = s
        .post("/v1/password/forgot", json!({"username": "ann"}))
        .await;
    assert_eq!(r.status(), 202);
    // The worker tries, fails, and backs off (counted as a failure to be
    // retried; the recorder is process-wide, so "at least").
    let deadline = std::time::Instant::now() + MAIL_WAIT;
    while scrape(&s)
        .await
        .sum("latchkey_mails_failed_total", &[("final", "false")])
        < 1.0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no failed attempt counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sink.resume();
    s.clock.advance(60);
    let mails = sink.wait_for(2, MAIL_WAIT).await;
    assert_eq!(mails[1]["subject"], "Reset your password");

    // Down again, a mail queued, the server restarted: nothing is lost.
    s.clock.advance(61);
    sink.stop();
    let tokens = sign_in(&s, "ann", PASSWORD).await;
    let r = s
        .http
        .post(s.url("/v1/email"))
        .bearer_auth(&tokens.access)
        .json(&json!({"email": "ann@example.org"}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = s.restart().await;
    sink.resume();
    // Past any backoff and any claim the stopped worker held.
    s.clock.advance(300);
    let mails = sink.wait_for(3, MAIL_WAIT).await;
    assert_eq!(mails[2]["to"], json!(["ann@example.org"]));
    let metrics = scrape(&s).await;
    assert_eq!(
        metrics
            .types
            .get("latchkey_mails_sent_total")
            .map(String::as_str),
        Some("counter")
    );
    assert!(metrics.sum("latchkey_mails_sent_total", &[]) >= 1.0);
    let r = s
        .post(
            "/v1/email/verify",
            json!({"token": link_token(&mails[2], VERIFY)}),
        )
        .await;
    assert_eq!(r.status(), 204);
}

/// Without SMTP: forgot is still 202 and nothing else breaks; addresses
/// can be set (unverified) and are unique.
#[tokio::test]
async fn without_mail_forgot_is_accepted_and_addresses_are_unique() {
    let s = TestServer::start().await;
    let r = s
        .post(
            "/v1/sign-up",
            json!({"username": "ann", "password": PASSWORD, "email": "ann@example.com"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = s
        .post(
            "/v1/sign-up",
            json!({"username": "bob", "password": PASSWORD, "email": "ANN@example.com"}),
        )
        .await;
    assert_eq!(
        (r.status().as_u16(), error_code(r).await.as_str()),
        (409, "email_taken")
    );
    let r = s
        .post(
            "/v1/sign-up",
            json!({"username": "bob", "password": PASSWORD, "email": "bob@"}),
        )
        .await;
    assert_eq!(
        (r.status().as_u16(), error_code(r).await.as_str()),
        (400, "invalid_request")
    );
    let bob = s.new_session("bob").await;
    let set = |email: &'static str| {
        s.http
            .post(s.url("/v1/email"))
            .bearer_auth(&bob.access)
            .json(&json!({"email": email}))
            .send()
    };
    let r = set("Ann@example.com").await.expect("request");
    assert_eq!(
        (r.status().as_u16(), error_code(r).await.as_str()),
        (409, "email_taken")
    );
    let r = set("not an address").await.expect("request");
    assert_eq!(r.status(), 400);
    let r = set("bob@example.com").await.expect("request");
    assert_eq!(r.status(), 200);
    let r = s
        .http
        .post(s.url("/v1/email"))
        .json(&json!({"email": "x@example.com"}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
    let account = me(&s, &bob.access).await;
    assert_eq!(account["email"], "bob@example.com");
    assert_eq!(account["email_verified"], false);

    for body in [
        json!({"username": "ann"}),
        json!({"email": "ann@example.com"}),
    ] {
        assert_eq!(s.post("/v1/password/forgot", body).await.status(), 202);
    }
    for body in [
        json!({}),
        json!({"username": "ann", "email": "ann@example.com"}),
        json!({"username": ""}),
        json!({"username": "a".repeat(300)}),
    ] {
        let r = s.post("/v1/password/forgot", body.clone()).await;
        assert_eq!(
            (r.status().as_u16(), error_code(r).await.as_str()),
            (400, "invalid_request"),
            "{body}"
        );
    }
}

/// Tokens that are not tokens, or no longer are, get one answer.
#[tokio::test]
async fn bad_tokens_are_refused_alike() {
    let s = TestServer::start().await;
    let unknown = "A".repeat(43);
    for token in [
        "",
        "x",
        unknown.as_str(),
        &"é".repeat(30),
        &"a".repeat(5000),
    ] {
        let r = s.post("/v1/email/verify", json!({"token": token})).await;
        assert_eq!(
            (r.status().as_u16(), error_code(r).await.as_str()),
            (400, "invalid_grant"),
            "{token}"
        );
        let r = s
            .post(
                "/v1/password/reset",
                json!({"token": token, "new_password": NEW_PASSWORD}),
            )
            .await;
        assert_eq!(
            (r.status().as_u16(), error_code(r).await.as_str()),
            (400, "invalid_grant"),
            "{token}"
        );
    }
    let r = s
        .post("/v1/password/reset", json!({"token": unknown}))
        .await;
    assert_eq!(
        (r.status().as_u16(), error_code(r).await.as_str()),
        (400, "invalid_request")
    );
}

/// Per-address limits, one allowance for all the recovery routes: forgot
/// still answers 202 over it (and does nothing); the others answer 429.
#[tokio::test]
async fn recovery_routes_are_limited_per_address() {
    let s = TestServer::start_with(|s| s.rate_limits.recovery_per_minute = 2).await;
    let token = "A".repeat(43);
    let mut statuses = Vec::new();
    for path in [
        "/v1/email/verify",
        "/v1/password/reset",
        "/v1/email/verify",
        "/v1/password/reset",
        "/v1/password/forgot",
    ] {
        let r = s
            .post(
                path,
                json!({"token": token, "new_password": NEW_PASSWORD, "username": "ann"}),
            )
            .await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [400, 400, 429, 429, 202]);
}

/// The pages the links open: served from the binary, under a CSP that
/// allows only their own script and style, without a referrer.
#[tokio::test]
async fn the_link_pages_are_served_with_a_strict_policy() {
    let s = TestServer::start().await;
    for (path, posts_to, label) in [
        (
            "/account/reset-password?token=abc",
            "/v1/password/reset",
            "<label for=\"password\">",
        ),
        (
            "/account/verify-email?token=abc",
            "/v1/email/verify",
            "<button type=\"submit\">",
        ),
    ] {
        let r = s.http.get(s.url(path)).send().await.expect("request");
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        let csp = h["content-security-policy"].to_str().expect("csp");
        assert!(
            csp.starts_with("default-src 'none'; script-src 'self';"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let page = r.text().await.expect("body");
        assert!(page.contains(label), "{path}");
        assert!(page.contains("<script src=\"/account/recovery.js\" defer>"));
        assert!(!page.contains("<script>"), "no inline script");
        assert!(!page.contains("http"), "nothing from elsewhere: {path}");
        let script = s
            .http
            .get(s.url("/account/recovery.js"))
            .send()
            .await
            .expect("request");
        assert_eq!(script.status(), 200);
        assert_eq!(
            script.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert!(script.text().await.expect("js").contains(posts_to));
    }
    let css = s
        .http
        .get(s.url("/account/account.css"))
        .send()
        .await
        .expect("request");
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
}
