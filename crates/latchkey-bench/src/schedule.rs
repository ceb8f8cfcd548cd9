//! Weighted round-robin for the `mixed` scenario.
//!
//! Smooth weighted round-robin (the nginx algorithm): every pick adds each
//! item's weight to its running score, takes the highest score and subtracts
//! the total from it. Over any window of `total` picks each item comes up
//! exactly `weight` times, spread out rather than in bursts, and the order is
//! deterministic, so two runs with the same weights do the same work.

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
    fn parses_mix() {
        assert_eq!(parse_mix("1:20:500").unwrap(), [1, 20, 500]);
        assert_eq!(parse_mix("0:1:0").unwrap(), [0, 1, 0]);
        assert_eq!(parse_mix("0:0:0").unwrap_err(), ScheduleError::AllZero);
        assert!(parse_mix("1:2").is_err());
        assert!(parse_mix("1:x:3").is_err());
        assert!(parse_mix("-1:2:3").is_err());
    }
}
