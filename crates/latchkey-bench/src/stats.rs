//! Per-worker counters and latency histograms, merged at the end of a run.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

/// One kind of timed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// Sign in with username and password.
    SignIn,
    /// Rotate the refresh token.
    Refresh,
    /// Authenticated read.
    Me,
}

impl Op {
    /// All operations, in report order.
    pub const ALL: [Op; 3] = [Op::SignIn, Op::Refresh, Op::Me];

    /// Report name.
    pub fn name(self) -> &'static str {
        match self {
            Op::SignIn => "sign-in",
            Op::Refresh => "refresh",
            Op::Me => "me",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Latencies are recorded in microseconds, 1 µs to 1 hour, 3 significant digits.
const HIST_MAX_US: u64 = 3_600_000_000;

/// Counters for one operation.
#[derive(Debug, Clone)]
pub struct OpStats {
    /// Latency of answered requests, µs.
    pub hist: Histogram<u64>,
    /// Answered requests by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Connection failed or broke while the request was out.
    pub transport_errors: u64,
    /// No answer within the request timeout.
    pub timeouts: u64,
    /// Answered 200 but without the expected tokens.
    pub bad_responses: u64,
}

fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid histogram bounds")
}

fn record_us(hist: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    hist.saturating_record(us);
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            hist: latency_histogram(),
            statuses: BTreeMap::new(),
            transport_errors: 0,
            timeouts: 0,
            bad_responses: 0,
        }
    }
}

impl OpStats {
    /// An answered request.
    pub fn answered(&mut self, status: u16, latency: Duration) {
        *self.statuses.entry(status).or_default() += 1;
        record_us(&mut self.hist, latency);
    }

    /// Requests sent (answered or not).
    pub fn requests(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.transport_errors + self.timeouts
    }

    /// Adds another worker's counters.
    pub fn merge(&mut self, other: &OpStats) {
        self.hist
            .add(&other.hist)
            .expect("histograms with the same bounds merge");
        for (s, n) in &other.statuses {
            *self.statuses.entry(*s).or_default() += n;
        }
        self.transport_errors += other.transport_errors;
        self.timeouts += other.timeouts;
        self.bad_responses += other.bad_responses;
    }
}

/// How far the open-loop mode kept to its schedule.
#[derive(Debug, Clone)]
pub struct ScheduleStats {
    /// Actual send time minus due time of every timed request, µs.
    pub send_lag: Histogram<u64>,
    /// Requests due before the deadline but not sent when the run ended.
    pub unsent: u64,
}

impl Default for ScheduleStats {
    fn default() -> Self {
        ScheduleStats {
            send_lag: latency_histogram(),
            unsent: 0,
        }
    }
}

impl ScheduleStats {
    /// A request sent `lag` after it was due.
    pub fn sent(&mut self, lag: Duration) {
        record_us(&mut self.send_lag, lag);
    }

    /// Adds another worker's figures.
    pub fn merge(&mut self, other: &ScheduleStats) {
        self.send_lag
            .add(&other.send_lag)
            .expect("histograms with the same bounds merge");
        self.unsent += other.unsent;
    }
}

/// Everything one worker counted.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    ops: [OpStats; 3],
    /// Untimed requests sent inside the timed phase (re-sign-in after a failed refresh).
    pub untimed_requests: u64,
    /// Connections opened (beyond the first of each worker).
    pub reconnects: u64,
    /// Connection attempts that failed.
    pub connect_errors: u64,
    /// Open-loop mode only: lateness against the schedule.
    pub schedule: ScheduleStats,
}

impl Stats {
    /// Counters of one operation.
    pub fn op(&self, op: Op) -> &OpStats {
        &self.ops[op.index()]
    }

    /// Mutable counters of one operation.
    pub fn op_mut(&mut self, op: Op) -> &mut OpStats {
        &mut self.ops[op.index()]
    }

    /// All operations merged into one.
    pub fn total(&self) -> OpStats {
        let mut t = OpStats::default();
        for o in &self.ops {
            t.merge(o);
        }
        t
    }

    /// Adds another worker's counters.
    pub fn merge(&mut self, other: &Stats) {
        for (a, b) in self.ops.iter_mut().zip(&other.ops) {
            a.merge(b);
        }
        self.untimed_requests += other.untimed_requests;
        self.reconnects += other.reconnects;
        self.connect_errors += other.connect_errors;
        self.schedule.merge(&other.schedule);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_percentiles() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        for i in 1..=100 {
            a.op_mut(Op::Me)
                .answered(200, Duration::from_micros(i * 10));
        }
        b.op_mut(Op::Me).answered(401, Duration::from_millis(50));
        b.op_mut(Op::Refresh).transport_errors += 1;
        a.merge(&b);
        let me = a.op(Op::Me);
        assert_eq!(me.requests(), 101);
        assert_eq!(me.statuses[&200], 100);
        assert_eq!(me.statuses[&401], 1);
        assert!((490..=510).contains(&me.hist.value_at_quantile(0.5)));
        assert!(me.hist.max() >= 49_900);
        assert_eq!(a.total().requests(), 102);
    }
}
