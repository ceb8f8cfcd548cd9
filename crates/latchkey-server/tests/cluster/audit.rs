//! Request ids on PostgreSQL: the id a client sends to one node is in that
//! node's log lines for the request and in the audit record every node and
//! `latchkey audit` read from the shared database.

use serde_json::{json, Value};

use latchkey_testkit::cluster::*;
use latchkey_testkit::http::*;
use latchkey_testkit::postgres::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_reach_the_shared_audit_log_and_the_nodes_logs() {
    let Some(server) = server_url() else { return };
    let cluster = Cluster::start(env!("CARGO_BIN_EXE_latchkey"), &server, "reqid", &[], None);
    let http = http_client();
    let credentials = json!({"username": "rid", "password": PASSWORD});
    for (node, path, id, expected) in [
        (0, "/v1/sign-up", "pg-sign-up.1", 201),
        (1, "/v1/sign-in", "pg-sign-in.2", 200),
    ] {
        let req = http
            .post(format!("{}{path}", cluster.base(node)))
            .header("x-request-id", id)
            .json(&credentials);
        let (status, body) = send(req).await.expect("request");
        assert_eq!(status, expected, "{path}: {body}");
    }

    let stdout = cluster.operator(&["audit", "--user", "rid"]);
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let id_of = |kind: &str| {
        events
            .iter()
            .find(|e| e["kind"] == kind)
            .map(|e| e["request_id"].clone())
            .unwrap_or_else(|| panic!("no {kind} in {stdout}"))
    };
    assert_eq!(id_of("sign_up"), "pg-sign-up.1");
    assert_eq!(id_of("sign_in"), "pg-sign-in.2");

    // The node that served the sign-in logged its audit line in the
    // request's span.
    let logs = cluster.log_tail(1, 200);
    let line = logs
        .lines()
        .find(|l| l.contains("latchkey::audit") && l.contains("sign_in"))
        .unwrap_or_else(|| panic!("no audit line on node 1:\n{logs}"));
    let v: Value = serde_json::from_str(line).expect("JSON log line");
    assert_eq!(v["span"]["request_id"], "pg-sign-in.2", "{line}");
    assert_eq!(v["span"]["route"], "/v1/sign-in", "{line}");
}
