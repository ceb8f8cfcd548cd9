//! Three nodes, each with its mail worker, on one outbox: every mail is
//! sent exactly once, also when the mail server was down and all three
//! retry the same messages (claims are leases; PostgreSQL's `SKIP LOCKED`
//! keeps claimers apart). A loopback aiosmtpd sink receives them.

use std::collections::BTreeSet;
use std::time::Duration;

use latchkey_testkit::cluster::Cluster;
use latchkey_testkit::postgres::server_url;
use latchkey_testkit::smtp::{link_token, SmtpSink};
use serde_json::json;

const USERS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_mail_goes_out_once_from_three_nodes() {
    let Some(server) = server_url() else { return };
    if !SmtpSink::available("cluster mail") {
        return;
    }
    let mut sink = SmtpSink::start();
    let url = sink.url();
    // Down while the mails are queued: every node's worker fails them and
    // they are all due again together.
    sink.stop();
    let cluster = Cluster::start(
        env!("CARGO_BIN_EXE_latchkey"),
        &server,
        "mail",
        &["--smtp-url", &url, "--smtp-from", "noreply@latchkey.test"],
        None,
    );
    let http = reqwest::Client::new();
    let bases = cluster.bases();
    for i in 0..USERS {
        let r = http
            .post(format!("{}/v1/sign-up", bases[i % bases.len()]))
            .json(&json!({
                "username": format!("user{i}"),
                "password": "correct horse battery",
                "email": format!("user{i}@example.com"),
            }))
            .send()
            .await
            .expect("sign up");
        assert_eq!(r.status(), 201);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    sink.resume();
    let mails = sink.wait_for(USERS, Duration::from_secs(60)).await;
    // Time for any duplicate to arrive: a poll and then some.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mails_now = sink.messages();
    let recipients: Vec<String> = mails_now
        .iter()
        .map(|m| m["to"][0].as_str().unwrap_or_default().to_owned())
        .collect();
    let distinct: BTreeSet<&String> = recipients.iter().collect();
    assert_eq!(
        (mails_now.len(), distinct.len()),
        (USERS, USERS),
        "each mail once: {recipients:?}"
    );
    // Each link verifies on another node than the one that took the sign-up.
    for (i, mail) in mails.iter().enumerate() {
        let token = link_token(mail, "/account/verify-email");
        let r = http
            .post(format!("{}/v1/email/verify", bases[(i + 1) % bases.len()]))
            .json(&json!({ "token": token }))
            .send()
            .await
            .expect("verify");
        assert_eq!(r.status(), 204);
    }
}
