//! The run's report: a table for people, JSON for machines.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use hdrhistogram::Histogram;

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
    /// Open-loop rate (requests per second in all); absent in the closed loop.
    pub rate: Option<f64>,
    /// The server process whose CPU time is reported.
    pub server_pid: Option<u32>,
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

/// How the open-loop mode (`--rate`) kept to its schedule. The operations'
/// latencies then count from each request's due time.
#[derive(Debug, Clone, Serialize)]
pub struct OpenLoop {
    /// `--rate`: requests per second asked for.
    pub target_rps: f64,
    /// Timed requests sent per second.
    pub achieved_rps: f64,
    /// Requests answered 2xx per second.
    pub ok_rps: f64,
    /// Requests due before the deadline that were never sent (workers behind).
    pub unsent: u64,
    /// Actual send time minus due time (µs): the pacer's wake-up delay and
    /// each worker's wait behind its own earlier answers (both counted in
    /// the latencies).
    pub send_lag_us: Option<Latency>,
}

/// The server's CPU time in the timed phase (`--server-pid`).
#[derive(Debug, Clone, Serialize)]
pub struct ServerCpu {
    /// The server process.
    pub pid: u32,
    /// utime + stime in the timed phase, seconds; absent when unreadable.
    pub cpu_s: Option<f64>,
    /// Timed requests answered 2xx.
    pub ok_requests: u64,
    /// CPU µs per 2xx answer.
    pub cpu_us_per_ok: Option<f64>,
    /// Why the CPU time could not be read (e.g. the server died).
    pub error: Option<String>,
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
    /// Open-loop figures (`--rate`).
    pub open_loop: Option<OpenLoop>,
    /// Server CPU per request (`--server-pid`).
    pub server_cpu: Option<ServerCpu>,
}

fn latency(h: &Histogram<u64>) -> Option<Latency> {
    (!h.is_empty()).then(|| Latency {
        p50: h.value_at_quantile(0.5),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
        mean: h.mean(),
    })
}

fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

fn op_report(name: &str, s: &OpStats, secs: f64) -> OpReport {
    let requests = s.requests();
    OpReport {
        op: name.to_owned(),
        requests,
        throughput_rps: per_sec(requests, secs),
        status: s.statuses.clone(),
        errors: Errors {
            transport: s.transport_errors,
            timeout: s.timeouts,
            bad_response: s.bad_responses,
        },
        latency_us: latency(&s.hist),
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
        let total_stats = out.stats.total();
        let total = op_report("total", &total_stats, secs);
        let ok: u64 = total_stats.statuses.range(200..300).map(|(_, n)| n).sum();
        let open_loop = params.rate.map(|rate| OpenLoop {
            target_rps: rate,
            achieved_rps: total.throughput_rps,
            ok_rps: per_sec(ok, secs),
            unsent: out.stats.schedule.unsent,
            send_lag_us: latency(&out.stats.schedule.send_lag),
        });
        let server_cpu = params
            .server_pid
            .zip(out.server_cpu.as_ref())
            .map(|(pid, cpu)| {
                let cpu_s = cpu.as_ref().ok().map(|d| d.as_secs_f64());
                ServerCpu {
                    pid,
                    cpu_s,
                    ok_requests: ok,
                    cpu_us_per_ok: cpu_s.filter(|_| ok > 0).map(|s| s * 1e6 / ok as f64),
                    error: cpu.as_ref().err().map(|e| e.to_string()),
                }
            });
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
            open_loop,
            server_cpu,
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
        if let Some(ol) = &self.open_loop {
            let lag = ol
                .send_lag_us
                .as_ref()
                .map(|l| {
                    format!(
                        "p50 {} p99 {} max {}",
                        fmt_us(l.p50),
                        fmt_us(l.p99),
                        fmt_us(l.max)
                    )
                })
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                o,
                "open loop: {:.1} req/s asked, {:.1} req/s sent, {:.1} ok/s; \
                 latency from due time; send lag {lag}; unsent at deadline {}",
                ol.target_rps, ol.achieved_rps, ol.ok_rps, ol.unsent
            );
        }
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
        if let Some(c) = &self.server_cpu {
            let _ = match (c.cpu_s, c.cpu_us_per_ok) {
                (Some(cpu), Some(per_ok)) => writeln!(
                    o,
                    "server CPU (pid {}): {cpu:.2} s in the timed phase, {per_ok:.1} µs per ok request ({} ok)",
                    c.pid, c.ok_requests
                ),
                (Some(cpu), None) => writeln!(
                    o,
                    "server CPU (pid {}): {cpu:.2} s in the timed phase, no ok requests",
                    c.pid
                ),
                _ => writeln!(
                    o,
                    "server CPU (pid {}): unknown ({})",
                    c.pid,
                    c.error.as_deref().unwrap_or("not read")
                ),
            };
        }
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
