//! The run's report: a table for people, JSON for machines.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::run::RunOutcome;
use crate::stats::{Op, OpStats};

/// The run's parameters, echoed in every report.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// Target URL.
    pub target: String,
    /// Profile name.
    pub profile: String,
    /// Scenario name.
    pub scenario: &'static str,
    /// Workers (connections).
    pub workers: usize,
    /// Requested timed-phase length, seconds.
    pub duration_s: f64,
    /// Request cap.
    pub max_requests: u64,
    /// sign-in : refresh : me weights (mixed only).
    pub mix: Option<[u32; 3]>,
    /// Load-generator runtime threads.
    pub threads: usize,
    /// Run id (username prefix).
    pub run_id: String,
    /// Per-request timeout, seconds.
    pub request_timeout_s: f64,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Maximum.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

/// Errors that are not HTTP statuses.
#[derive(Debug, Clone, Serialize)]
pub struct Errors {
    /// Connection broke while a request was out.
    pub transport: u64,
    /// No answer within the timeout.
    pub timeout: u64,
    /// 200 without the expected tokens.
    pub bad_response: u64,
}

/// One operation's (or the total's) figures.
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    /// `sign-in`, `refresh`, `me` or `total`.
    pub op: String,
    /// Timed requests sent.
    pub requests: u64,
    /// Requests per second of the timed phase.
    pub throughput_rps: f64,
    /// Answered requests by status code.
    pub status: BTreeMap<u16, u64>,
    /// Unanswered requests and bad bodies.
    pub errors: Errors,
    /// Latency of answered requests (µs); absent when none were answered.
    pub latency_us: Option<Latency>,
}

/// Achieved sign-ins per second against the server's password-hash bound.
#[derive(Debug, Clone, Serialize)]
pub struct HashBound {
    /// `--argon2-bound-per-sec`.
    pub bound_per_sec: f64,
    /// Sign-ins answered 200 per second.
    pub achieved_per_sec: f64,
    /// achieved / bound.
    pub ratio: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Parameters.
    pub params: Params,
    /// Users set up.
    pub users: usize,
    /// Workers whose setup failed (first few errors).
    pub setup_failures: Vec<String>,
    /// Setup requests (untimed).
    pub setup_requests: u64,
    /// Setup length, seconds.
    pub setup_s: f64,
    /// Timed phase length, seconds.
    pub elapsed_s: f64,
    /// Per operation that was sent at least once.
    pub operations: Vec<OpReport>,
    /// All operations together.
    pub total: OpReport,
    /// Untimed re-sign-ins inside the timed phase.
    pub untimed_requests: u64,
    /// Connections re-opened.
    pub reconnects: u64,
    /// Failed connection attempts.
    pub connect_errors: u64,
    /// Workers by the reason they stopped.
    pub stop_reasons: BTreeMap<String, u64>,
    /// Sign-in rate against the hash bound, when asked for.
    pub hash_bound: Option<HashBound>,
}

fn op_report(name: &str, s: &OpStats, secs: f64) -> OpReport {
    let requests = s.requests();
    let h = &s.hist;
    OpReport {
        op: name.to_owned(),
        requests,
        throughput_rps: if secs > 0.0 {
            requests as f64 / secs
        } else {
            0.0
        },
        status: s.statuses.clone(),
        errors: Errors {
            transport: s.transport_errors,
            timeout: s.timeouts,
            bad_response: s.bad_responses,
        },
        latency_us: (!h.is_empty()).then(|| Latency {
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }),
    }
}

impl Report {
    /// Builds the report of a finished run.
    pub fn new(params: Params, out: &RunOutcome, argon2_bound: Option<f64>) -> Report {
        let secs = out.elapsed.as_secs_f64();
        let operations: Vec<OpReport> = Op::ALL
            .iter()
            .filter(|op| out.stats.op(**op).requests() > 0)
            .map(|op| op_report(op.name(), out.stats.op(*op), secs))
            .collect();
        let total = op_report("total", &out.stats.total(), secs);
        let hash_bound = argon2_bound.map(|bound| {
            let ok = out
                .stats
                .op(Op::SignIn)
                .statuses
                .get(&200)
                .copied()
                .unwrap_or(0);
            let achieved = if secs > 0.0 { ok as f64 / secs } else { 0.0 };
            HashBound {
                bound_per_sec: bound,
                achieved_per_sec: achieved,
                ratio: if bound > 0.0 { achieved / bound } else { 0.0 },
            }
        });
        Report {
            params,
            users: out.users,
            setup_failures: out.setup_failures.iter().take(5).cloned().collect(),
            setup_requests: out.setup_requests,
            setup_s: out.setup_elapsed.as_secs_f64(),
            elapsed_s: secs,
            operations,
            total,
            untimed_requests: out.stats.untimed_requests,
            reconnects: out.stats.reconnects,
            connect_errors: out.stats.connect_errors,
            stop_reasons: out.stop_reasons.clone(),
            hash_bound,
        }
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let p = &self.params;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "latchkey-bench  scenario={} profile={} target={}",
            p.scenario, p.profile, p.target
        );
        let mix = p
            .mix
            .map(|m| format!(" mix={}:{}:{}", m[0], m[1], m[2]))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "workers={} duration={}s max-requests={} threads={} run-id={}{mix}",
            p.workers, p.duration_s, p.max_requests, p.threads, p.run_id
        );
        let _ = writeln!(
            o,
            "setup: {} users, {} requests, {:.2} s{}",
            self.users,
            self.setup_requests,
            self.setup_s,
            if self.setup_failures.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} workers failed: {})",
                    p.workers - self.users,
                    self.setup_failures[0]
                )
            }
        );
        let _ = writeln!(o, "timed phase: {:.3} s", self.elapsed_s);
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{:<8} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9}  {:<22} errors (transport/timeout/bad body)",
            "op",
            "requests",
            "req/s",
            "p50",
            "p99",
            "p99.9",
            "max",
            "status",
        );
        let mut rows: Vec<&OpReport> = self.operations.iter().collect();
        if self.operations.len() != 1 {
            rows.push(&self.total);
        }
        for r in rows {
            let lat = |f: fn(&Latency) -> u64| {
                r.latency_us
                    .as_ref()
                    .map(|l| fmt_us(f(l)))
                    .unwrap_or_else(|| "-".into())
            };
            let status: Vec<String> = r.status.iter().map(|(s, n)| format!("{s}:{n}")).collect();
            let _ = writeln!(
                o,
                "{:<8} {:>9} {:>10.1} {:>9} {:>9} {:>9} {:>9}  {:<22} {}/{}/{}",
                r.op,
                r.requests,
                r.throughput_rps,
                lat(|l| l.p50),
                lat(|l| l.p99),
                lat(|l| l.p999),
                lat(|l| l.max),
                status.join(" "),
                r.errors.transport,
                r.errors.timeout,
                r.errors.bad_response
            );
        }
        let _ = writeln!(o);
        let reasons: Vec<String> = self
            .stop_reasons
            .iter()
            .map(|(r, n)| format!("{r} x{n}"))
            .collect();
        let _ = writeln!(
            o,
            "untimed re-sign-ins: {}  reconnects: {}  connect errors: {}  workers stopped: {}",
            self.untimed_requests,
            self.reconnects,
            self.connect_errors,
            reasons.join(", ")
        );
        if let Some(h) = &self.hash_bound {
            let _ = writeln!(
                o,
                "sign-in vs hash bound: {:.1}/s achieved of {:.1}/s bound = {:.2}",
                h.achieved_per_sec, h.bound_per_sec, h.ratio
            );
        }
        o
    }
}

/// Formats microseconds as µs, ms or s.
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::fmt_us;

    #[test]
    fn formats_latency() {
        assert_eq!(fmt_us(812), "812µs");
        assert_eq!(fmt_us(4_120), "4.12ms");
        assert_eq!(fmt_us(1_230_000), "1.23s");
    }
}
