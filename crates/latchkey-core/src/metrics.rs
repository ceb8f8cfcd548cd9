//! Every Prometheus metric Latchkey exports: its name, its labels and its
//! description, in this one place (docs/OPERATIONS.md, Metrics and health,
//! lists the same).
//!
//! Recording goes through the `metrics` facade, which is neither HTTP nor
//! SQL: without an installed recorder every call is a no-op, so this crate
//! and `latchkey-store` record where an outcome is *decided* (a sign-in's
//! result, a refresh's rotation decision, a group commit) instead of the
//! server guessing it back from status codes. The server installs the
//! Prometheus recorder, renders it at `/metrics` and records what only it
//! sees (HTTP requests, the hashing pool, feed lag, gauges it refreshes in
//! its upkeep task).

use ::metrics::{counter, describe_counter, describe_gauge, describe_histogram, Unit};

/// Requests answered, by `route` (the route template, or `unmatched`),
/// `method` and `status`.
pub const HTTP_REQUESTS: &str = "latchkey_http_requests_total";
/// Time from a request reaching the router to its response head, same labels.
pub const HTTP_REQUEST_DURATION: &str = "latchkey_http_request_duration_seconds";
/// Password sign-ins by `outcome`: `success`, `failure` (wrong credentials)
/// or `throttled` (refused before the password was checked).
pub const SIGN_INS: &str = "latchkey_sign_ins_total";
/// Refresh-token presentations by `outcome`: `rotated`, `reissued_in_grace`,
/// `reuse_detected` or `refused`.
pub const REFRESHES: &str = "latchkey_refreshes_total";
/// Password hashes waiting for a hashing thread.
pub const HASH_QUEUE_DEPTH: &str = "latchkey_password_hash_queue_depth";
/// Time a password hash waited in the queue before a thread took it.
pub const HASH_WAIT: &str = "latchkey_password_hash_wait_seconds";
/// Writes per committed transaction (SQLite: per group commit; PostgreSQL:
/// 1 per multi-statement transaction).
pub const STORE_COMMIT_BATCH_SIZE: &str = "latchkey_store_commit_batch_size";
/// Time of a write transaction, from its start to its durable commit.
pub const STORE_COMMIT: &str = "latchkey_store_commit_seconds";
/// Time since this node last read the store's revocation feed to its end.
pub const REVOCATION_FEED_LAG: &str = "latchkey_revocation_feed_lag_seconds";
/// Sessions neither revoked nor past their absolute lifetime, store-wide.
pub const LIVE_SESSIONS: &str = "latchkey_live_sessions";
/// How long the current signing key has been signing.
pub const SIGNING_KEY_AGE: &str = "latchkey_signing_key_age_seconds";

/// Messages (and password-reset requests) waiting in the mail outbox,
/// store-wide.
pub const OUTBOX_DEPTH: &str = "latchkey_mail_outbox_depth";
/// Mails handed to the SMTP server.
pub const MAILS_SENT: &str = "latchkey_mails_sent_total";
/// Mails that could not be sent, by `final`: `false` (to be tried again)
/// or `true` (given up).
pub const MAILS_FAILED: &str = "latchkey_mails_failed_total";

/// Histogram buckets of the `_seconds` histograms: 100 µs to 10 s, covering
/// a cached bearer check as well as a sign-in queued behind Argon2.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Buckets of [`STORE_COMMIT_BATCH_SIZE`], up to the SQLite writer's 512.
pub const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Registers every description with the installed recorder; call once
/// after installing it.
pub fn describe() {
    describe_gauge!(
        OUTBOX_DEPTH,
        "Messages and password-reset requests waiting in the mail outbox."
    );
    describe_counter!(MAILS_SENT, "Mails handed to the SMTP server.");
    describe_counter!(
        MAILS_FAILED,
        "Mail attempts that failed, by final: false (to be retried), true (given up)."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template, method and status."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request, by route template, method and status."
    );
    describe_counter!(
        SIGN_INS,
        "Password sign-ins by outcome: success, failure, throttled."
    );
    describe_counter!(
        REFRESHES,
        "Refresh-token presentations by outcome: rotated, reissued_in_grace, reuse_detected, refused."
    );
    describe_gauge!(
        HASH_QUEUE_DEPTH,
        "Password hashes waiting for a hashing thread."
    );
    describe_histogram!(
        HASH_WAIT,
        Unit::Seconds,
        "Time a password hash waited for a hashing thread."
    );
    describe_histogram!(
        STORE_COMMIT_BATCH_SIZE,
        Unit::Count,
        "Writes per committed store transaction (SQLite group commit; PostgreSQL 1)."
    );
    describe_histogram!(
        STORE_COMMIT,
        Unit::Seconds,
        "Time of a store write transaction, from its start to its durable commit."
    );
    describe_gauge!(
        REVOCATION_FEED_LAG,
        Unit::Seconds,
        "Time since this node last read the store's revocation feed to its end."
    );
    describe_gauge!(
        LIVE_SESSIONS,
        "Sessions neither revoked nor expired, store-wide."
    );
    describe_gauge!(
        SIGNING_KEY_AGE,
        Unit::Seconds,
        "How long the current signing key has been signing."
    );
}

/// How a sign-in ended, as [`SIGN_INS`] counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInOutcome {
    Success,
    Failure,
    Throttled,
}

pub fn sign_in(outcome: SignInOutcome) {
    match outcome {
        SignInOutcome::Success => counter!(SIGN_INS, "outcome" => "success").increment(1),
        SignInOutcome::Failure => counter!(SIGN_INS, "outcome" => "failure").increment(1),
        SignInOutcome::Throttled => counter!(SIGN_INS, "outcome" => "throttled").increment(1),
    }
}

/// How a refresh ended, as [`REFRESHES`] counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    Rotated,
    ReissuedInGrace,
    ReuseDetected,
    Refused,
}

pub fn refresh(outcome: RefreshOutcome) {
    match outcome {
        RefreshOutcome::Rotated => counter!(REFRESHES, "outcome" => "rotated").increment(1),
        RefreshOutcome::ReissuedInGrace => {
            counter!(REFRESHES, "outcome" => "reissued_in_grace").increment(1)
        }
        RefreshOutcome::ReuseDetected => {
            counter!(REFRESHES, "outcome" => "reuse_detected").increment(1)
        }
        RefreshOutcome::Refused => counter!(REFRESHES, "outcome" => "refused").increment(1),
    }
}

/// A mail was handed to the SMTP server.
pub fn mail_sent() {
    counter!(MAILS_SENT).increment(1);
}

/// A mail attempt failed; `given_up`: it will not be tried again.
pub fn mail_failed(given_up: bool) {
    counter!(MAILS_FAILED, "final" => if given_up { "true" } else { "false" }).increment(1);
}
