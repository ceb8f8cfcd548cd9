//! Weighted round-robin for the `mixed` scenario, and the constant-rate
//! arrival schedule of the open-loop mode (`--rate`).
//!
//! ## Weighted round-robin
//!
//! Smooth weighted round-robin (the nginx algorithm): every pick adds each
//! item's weight to its running score, takes the highest score and subtracts
//! the total from it. Over any window of `total` picks each item comes up
//! exactly `weight` times, spread out rather than in bursts, and the order is
//! deterministic, so two runs with the same weights do the same work.

use std::time::{Duration, Instant};

/// Why a weight list was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    /// Every weight is zero.
    #[error("at least one weight must be positive")]
    AllZero,
    /// The `A:B:C` text did not parse.
    #[error("invalid weights {0:?}: expected SIGN_IN:REFRESH:ME, e.g. 1:20:500")]
    Syntax(String),
}

/// A deterministic weighted round-robin over `T`.
#[derive(Debug, Clone)]
pub struct WeightedRoundRobin<T> {
    items: Vec<(T, i64, i64)>,
    total: i64,
}

impl<T: Copy> WeightedRoundRobin<T> {
    /// Items with weight 0 are dropped; all zero is an error.
    pub fn new(weighted: impl IntoIterator<Item = (T, u32)>) -> Result<Self, ScheduleError> {
        let items: Vec<(T, i64, i64)> = weighted
            .into_iter()
            .filter(|(_, w)| *w > 0)
            .map(|(t, w)| (t, i64::from(w), 0))
            .collect();
        if items.is_empty() {
            return Err(ScheduleError::AllZero);
        }
        let total = items.iter().map(|(_, w, _)| w).sum();
        Ok(WeightedRoundRobin { items, total })
    }

    /// Length of one full cycle (sum of the weights).
    pub fn cycle_len(&self) -> u64 {
        self.total as u64
    }

    /// The next item.
    pub fn next_item(&mut self) -> T {
        let mut best = 0;
        for i in 0..self.items.len() {
            self.items[i].2 += self.items[i].1;
            if self.items[i].2 > self.items[best].2 {
                best = i;
            }
        }
        self.items[best].2 -= self.total;
        self.items[best].0
    }

    /// Advances by `n` picks (to put workers at different points of the cycle).
    pub fn skip(&mut self, n: u64) {
        for _ in 0..n % self.cycle_len() {
            self.next_item();
        }
    }
}

/// The open-loop schedule of one worker: `rate` requests per second in all,
/// spread evenly over `workers`, so that the workers' requests interleave
/// into one arrival every `1/rate` seconds. Worker `w`'s `k`-th request is
/// due at `(k * workers + w) / rate` seconds after the start of the timed
/// phase; each offset is computed from `k` directly, so no error accumulates.
#[derive(Debug, Clone)]
pub struct ArrivalSchedule {
    rate: f64,
    workers: u64,
    worker: u64,
    next: u64,
}

impl ArrivalSchedule {
    /// `rate` must be positive and finite (checked by the CLI); `worker < workers`.
    pub fn new(rate: f64, workers: usize, worker: usize) -> Self {
        ArrivalSchedule {
            rate,
            workers: workers.max(1) as u64,
            worker: worker as u64,
            next: 0,
        }
    }

    /// When this worker's `k`-th request is due, after the start.
    pub fn offset_of(&self, k: u64) -> Duration {
        let slot = k.saturating_mul(self.workers).saturating_add(self.worker);
        Duration::try_from_secs_f64(slot as f64 / self.rate).unwrap_or(Duration::MAX)
    }

    /// When the next request is due, after the start.
    pub fn due_offset(&self) -> Duration {
        self.offset_of(self.next)
    }

    /// Marks the next request as handed out.
    pub fn advance(&mut self) {
        self.next += 1;
    }

    /// The next request's due offset, handed out; every call moves on by
    /// one, so a late worker gets its overdue requests one after another,
    /// none skipped.
    pub fn next_offset(&mut self) -> Duration {
        let due = self.due_offset();
        self.advance();
        due
    }

    /// Requests of this worker due before `horizon` that [`Self::next_offset`]
    /// has not handed out yet (what was left unsent when the run ended).
    pub fn unsent_before(&self, horizon: Duration) -> u64 {
        // Due before horizon: k * workers + worker < horizon * rate.
        let slots = (horizon.as_nanos() as f64 * self.rate / 1e9).ceil() as u64;
        let due = slots.saturating_sub(self.worker).div_ceil(self.workers);
        due.saturating_sub(self.next)
    }
}

/// Latency counted from when a request was due rather than when it was
/// sent, so that a late send (the harness or the connection held up by
/// an earlier slow answer) does not hide the wait (coordinated omission).
pub fn latency_from_due(due: Instant, answered: Instant) -> Duration {
    answered.saturating_duration_since(due)
}

/// Parses `A:B:C` (sign-in : refresh : me weights).
pub fn parse_mix(text: &str) -> Result<[u32; 3], ScheduleError> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 3 {
        return Err(ScheduleError::Syntax(text.to_owned()));
    }
    let mut out = [0u32; 3];
    for (slot, part) in out.iter_mut().zip(parts) {
        *slot = part
            .trim()
            .parse()
            .map_err(|_| ScheduleError::Syntax(text.to_owned()))?;
    }
    if out.iter().all(|w| *w == 0) {
        return Err(ScheduleError::AllZero);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_proportions_per_cycle() {
        let mut rr = WeightedRoundRobin::new([('s', 1), ('r', 20), ('m', 500)]).unwrap();
        assert_eq!(rr.cycle_len(), 521);
        for _cycle in 0..3 {
            let mut counts = [0; 3];
            for _ in 0..521 {
                match rr.next_item() {
                    's' => counts[0] += 1,
                    'r' => counts[1] += 1,
                    _ => counts[2] += 1,
                }
            }
            assert_eq!(counts, [1, 20, 500]);
        }
    }

    #[test]
    fn smooth_not_bursty() {
        // 1:1:3 interleaves instead of "ccc" then "a" then "b".
        let mut rr = WeightedRoundRobin::new([('a', 1), ('b', 1), ('c', 3)]).unwrap();
        let seq: String = (0..10).map(|_| rr.next_item()).collect();
        assert_eq!(seq, "cacbccacbc");
        // refreshes among 1:20:500 are spread (gap ~26 picks), never bunched.
        let mut rr = WeightedRoundRobin::new([(0, 1), (1, 20), (2, 500)]).unwrap();
        let picks: Vec<i32> = (0..521).map(|_| rr.next_item()).collect();
        let pos: Vec<usize> = picks
            .iter()
            .enumerate()
            .filter(|(_, p)| **p == 1)
            .map(|(i, _)| i)
            .collect();
        let max_gap = pos.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        let min_gap = pos.windows(2).map(|w| w[1] - w[0]).min().unwrap();
        assert!(
            max_gap <= 40 && min_gap >= 20,
            "refresh gaps {min_gap}..{max_gap}"
        );
    }

    #[test]
    fn zero_weights() {
        let mut rr = WeightedRoundRobin::new([('x', 0), ('y', 2)]).unwrap();
        assert!((0..10).all(|_| rr.next_item() == 'y'));
        assert_eq!(
            WeightedRoundRobin::new([('x', 0)]).unwrap_err(),
            ScheduleError::AllZero
        );
    }

    #[test]
    fn skip_shifts_phase() {
        let mut a = WeightedRoundRobin::new([(0, 1), (1, 2)]).unwrap();
        let mut b = a.clone();
        b.skip(1);
        a.next_item();
        assert_eq!(a.next_item(), b.next_item());
        let mut c = a.clone();
        c.skip(3 * 1000); // whole cycles: no change
        assert_eq!(a.next_item(), c.next_item());
    }

    #[test]
    fn arrivals_interleave_at_the_total_rate() {
        // 1000/s over 4 workers: one arrival per ms in all, 4 ms apart per worker.
        let mut all: Vec<Duration> = (0..4)
            .flat_map(|w| {
                let mut s = ArrivalSchedule::new(1000.0, 4, w);
                (0..250).map(move |_| s.next_offset())
            })
            .collect();
        all.sort();
        for (i, due) in all.iter().enumerate() {
            assert_eq!(*due, Duration::from_millis(i as u64), "arrival {i}");
        }
        let s = ArrivalSchedule::new(1000.0, 4, 3);
        assert_eq!(s.offset_of(0), Duration::from_millis(3));
        assert_eq!(s.offset_of(1), Duration::from_millis(7));
    }

    #[test]
    fn no_drift_over_long_runs() {
        // 3 per second: 1/3 s is not exact in binary; the millionth is still on time.
        let s = ArrivalSchedule::new(3.0, 1, 0);
        let due = s.offset_of(3_000_000);
        assert!(due.abs_diff(Duration::from_secs(1_000_000)) < Duration::from_micros(1));
    }

    #[test]
    fn late_requests_are_kept_not_skipped() {
        // A worker that hands out due times only after falling behind still
        // gets every slot, in order.
        let mut s = ArrivalSchedule::new(100.0, 1, 0);
        let dues: Vec<Duration> = (0..5).map(|_| s.next_offset()).collect();
        let want: Vec<Duration> = (0..5).map(|k| Duration::from_millis(10 * k)).collect();
        assert_eq!(dues, want);
    }

    #[test]
    fn counts_what_was_left_unsent() {
        // 10/s over 2 workers for 1 s: worker 1 is due at 0.1, 0.3, 0.5, 0.7, 0.9 s.
        let mut s = ArrivalSchedule::new(10.0, 2, 1);
        assert_eq!(s.unsent_before(Duration::from_secs(1)), 5);
        s.next_offset();
        s.next_offset();
        assert_eq!(s.unsent_before(Duration::from_secs(1)), 3);
        assert_eq!(s.unsent_before(Duration::from_millis(300)), 0);
        assert_eq!(s.unsent_before(Duration::from_millis(500)), 0);
        assert_eq!(s.unsent_before(Duration::from_millis(501)), 1);
        for _ in 0..10 {
            s.next_offset();
        }
        assert_eq!(s.unsent_before(Duration::from_secs(1)), 0);
    }

    #[test]
    fn latency_counts_from_the_due_time() {
        let due = Instant::now();
        // Sent 3 ms late, answered 1 ms after sending: 4 ms, not 1 ms.
        let answered = due + Duration::from_millis(4);
        assert_eq!(latency_from_due(due, answered), Duration::from_millis(4));
        // Answered "before" due cannot happen, but must not underflow.
        assert_eq!(latency_from_due(answered, due), Duration::ZERO);
    }

    #[test]
    fn parses_mix() {
        assert_eq!(parse_mix("1:20:500").unwrap(), [1, 20, 500]);
        assert_eq!(parse_mix("0:1:0").unwrap(), [0, 1, 0]);
        assert_eq!(parse_mix("0:0:0").unwrap_err(), ScheduleError::AllZero);
        assert!(parse_mix("1:2").is_err());
        assert!(parse_mix("1:x:3").is_err());
        assert!(parse_mix("-1:2:3").is_err());
    }
}
