//! Sign-in throttling (DESIGN.md §6): failed sign-ins are counted per
//! account and per client address in the store, so every node sharing it
//! sees the same counters. After a free allowance, each further failure
//! blocks that key for `min(max_delay, base_delay · 2^(excess − 1))`, where
//! `excess` is how many failures went over the allowance (so the first one
//! over blocks for `base_delay`). While a key is blocked, sign-in answers
//! [`crate::AuthError::Throttled`] without checking the password.
//!
//! Counters decay: a key whose last failure is older than `window` starts
//! again from zero, and a successful sign-in clears the account's counter.
//!
//! A stranger must not be able to lock the owner out. So an account's block
//! does not apply at an address the account already has a live session
//! from (the owner's own devices and networks), where only the address's
//! own counter throttles; elsewhere it lasts at most `max_delay` at a time,
//! and the operator command `latchkey users unlock <name>` clears it at once.
//! Existing sessions are never affected: refresh is not throttled.
//!
//! Everything here is pure: the store applies [`ThrottleRule::schedule`] in
//! one atomic upsert, so this module is the only place the policy lives.

use crate::clock::UnixTime;
use crate::username::Username;

/// One kind of key's allowance and delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRule {
    /// Failures within the window that cost nothing.
    pub free_failures: u32,
    /// A counter whose last failure is this old starts again from zero.
    pub window_seconds: i64,
    /// Block after the first failure over the allowance.
    pub base_delay_seconds: i64,
    /// Longest block one failure can cause.
    pub max_delay_seconds: i64,
}

impl ThrottleRule {
    /// How long the `failures`-th failure within a window blocks the key:
    /// 0 within the allowance, then `base · 2^(excess − 1)` up to the cap.
    pub fn delay_after(&self, failures: u32) -> i64 {
        self.delay_for_excess(failures.saturating_sub(self.free_failures))
    }

    /// The block after the `excess`-th failure over the allowance (0 for 0).
    fn delay_for_excess(&self, excess: u32) -> i64 {
        if excess == 0 {
            return 0;
        }
        let doublings = (excess - 1).min(62);
        self.base_delay_seconds
            .max(0)
            .saturating_mul(1i64 << doublings)
            .min(self.max_delay_seconds.max(0))
    }

    /// What the store needs to apply this rule inside one atomic write,
    /// without knowing the rule.
    pub fn schedule(&self) -> FailureSchedule {
        let mut delays = Vec::new();
        let mut excess = 0u32;
        loop {
            let d = self.delay_for_excess(excess);
            delays.push(d);
            if (excess > 0 && d >= self.max_delay_seconds) || excess >= 64 {
                break;
            }
            excess += 1;
        }
        FailureSchedule {
            window_seconds: self.window_seconds,
            free_failures: self.free_failures,
            delays,
        }
    }
}

/// A [`ThrottleRule`] as the store applies it: a failure makes the count
/// `failures` (restarting at 1 when the previous failure is `window_seconds`
/// old) and blocks the key for `delays[min(max(failures − free_failures,
/// 0), delays.len() − 1)]` seconds; `delays[0]` is 0 and the last entry is
/// the cap, which every later failure keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureSchedule {
    pub window_seconds: i64,
    pub free_failures: u32,
    pub delays: Vec<i64>,
}

impl FailureSchedule {
    /// The delay the store must pick after the `failures`-th failure (the
    /// reference for store implementations and their tests).
    pub fn delay_after(&self, failures: u32) -> i64 {
        let excess = failures.saturating_sub(self.free_failures) as usize;
        let last = self.delays.len().saturating_sub(1);
        self.delays.get(excess.min(last)).copied().unwrap_or(0)
    }
}

/// The throttling policy of sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Off: failures are neither counted nor checked (tests, benchmarks).
    pub enabled: bool,
    /// Per account (normalised username; unknown names alike).
    pub account: ThrottleRule,
    /// Per client address.
    pub address: ThrottleRule,
}

impl Default for ThrottlePolicy {
    /// 5 failures per account and 50 per address free within 15 minutes;
    /// then 1 s, 2 s, 4 s, … up to 15 minutes per failure.
    fn default() -> Self {
        let rule = |free| ThrottleRule {
            free_failures: free,
            window_seconds: 15 * 60,
            base_delay_seconds: 1,
            max_delay_seconds: 15 * 60,
        };
        Self {
            enabled: true,
            account: rule(5),
            address: rule(50),
        }
    }
}

/// A throttling counter as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleEntry {
    pub key: String,
    pub failures: u32,
    pub last_failure_at: UnixTime,
    pub blocked_until: UnixTime,
}

/// Longest stored key: keys of invalid usernames are cut to this many
/// characters, so storage per key stays bounded.
const MAX_KEY_CHARS: usize = 80;

/// The counter key of the account a sign-in names: its normalised username,
/// whether or not such an account exists (so an unknown user and a blocked
/// account look the same). Names that cannot be usernames share the
/// throttling of their lower-cased prefix.
pub fn account_key(raw_username: &str) -> String {
    match Username::parse(raw_username) {
        Ok(name) => format!("user:{}", name.key),
        Err(_) => {
            let folded: String = raw_username
                .chars()
                .flat_map(char::to_lowercase)
                .take(MAX_KEY_CHARS)
                .collect();
            format!("invalid:{folded}")
        }
    }
}

/// The counter key of a client address.
pub fn address_key(ip: &str) -> String {
    let ip: String = ip.chars().take(MAX_KEY_CHARS).collect();
    format!("ip:{ip}")
}

/// The blocks in force on a sign-in, in seconds still to wait (at least 1,
/// for `Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Blocks {
    pub account: Option<i64>,
    pub address: Option<i64>,
}

impl Blocks {
    /// The blocks among `entries` (counters of the account key and of the
    /// address key) at `now`.
    pub fn at(entries: &[ThrottleEntry], account_key: &str, now: UnixTime) -> Self {
        let remaining = |account: bool| {
            entries
                .iter()
                .filter(|e| (e.key == account_key) == account)
                .map(|e| e.blocked_until)
                .max()
                .filter(|until| *until > now)
                .map(|until| (until - now).max(1))
        };
        Self {
            account: remaining(true),
            address: remaining(false),
        }
    }

    /// How long this sign-in must wait, if at all. `known_address`: the
    /// account has a live session from the sign-in's address, which exempts
    /// it from the account's block (see the module documentation).
    pub fn retry_after(&self, known_address: bool) -> Option<i64> {
        let account = self.account.filter(|_| !known_address);
        account.max(self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(free: u32) -> ThrottleRule {
        ThrottleRule {
            free_failures: free,
            window_seconds: 900,
            base_delay_seconds: 1,
            max_delay_seconds: 900,
        }
    }

    #[test]
    fn allowance_is_free_then_delays_double_up_to_the_cap() {
        let r = rule(5);
        for f in 0..=5 {
            assert_eq!(r.delay_after(f), 0, "failure {f}");
        }
        assert_eq!(r.delay_after(6), 1);
        assert_eq!(r.delay_after(7), 2);
        assert_eq!(r.delay_after(8), 4);
        assert_eq!(r.delay_after(15), 512);
        assert_eq!(r.delay_after(16), 900);
        assert_eq!(r.delay_after(u32::MAX), 900);
    }

    #[test]
    fn schedule_matches_the_rule_and_ends_at_the_cap() {
        for free in [0, 1, 5, 50, u32::MAX - 3, u32::MAX] {
            let r = rule(free);
            let schedule = r.schedule();
            assert_eq!(schedule.delays[0], 0);
            assert_eq!(schedule.delays.last(), Some(&900));
            assert!(schedule.delays.len() <= 12, "{free}");
            for f in (0..80u32).map(|k| free.saturating_sub(3).saturating_add(k)) {
                assert_eq!(
                    schedule.delay_after(f),
                    r.delay_after(f),
                    "free {free}, failure {f}"
                );
            }
        }
        // A cap that is never reached still gives a bounded table.
        let r = ThrottleRule {
            max_delay_seconds: i64::MAX,
            ..rule(2)
        };
        assert_eq!(r.schedule().delays.len(), 65);
    }

    #[test]
    fn degenerate_rules_do_not_overflow() {
        let r = ThrottleRule {
            free_failures: 0,
            window_seconds: 1,
            base_delay_seconds: i64::MAX,
            max_delay_seconds: i64::MAX,
        };
        assert_eq!(r.delay_after(100), i64::MAX);
        let r = ThrottleRule {
            base_delay_seconds: -5,
            ..rule(0)
        };
        assert_eq!(r.delay_after(3), 0);
    }

    #[test]
    fn keys_normalise_usernames_and_bound_invalid_ones() {
        assert_eq!(account_key("Alice"), account_key("ＡＬＩＣＥ"));
        assert_eq!(account_key("alice"), "user:alice");
        let long = "x ".repeat(10_000);
        assert!(account_key(&long).starts_with("invalid:"));
        assert!(account_key(&long).chars().count() <= 8 + MAX_KEY_CHARS);
        assert_eq!(address_key("10.0.0.1"), "ip:10.0.0.1");
    }

    #[test]
    fn blocks_are_per_key_and_a_known_address_escapes_only_the_account_block() {
        let e = |key: &str, until| ThrottleEntry {
            key: key.into(),
            failures: 9,
            last_failure_at: 0,
            blocked_until: until,
        };
        let account = "user:alice";
        assert_eq!(Blocks::at(&[], account, 100), Blocks::default());
        assert_eq!(Blocks::default().retry_after(false), None);
        let expired = [e(account, 50), e("ip:10.0.0.1", 100)];
        assert_eq!(Blocks::at(&expired, account, 100).retry_after(false), None);

        let only_account = Blocks::at(&[e(account, 130), e("ip:10.0.0.1", 90)], account, 100);
        assert_eq!(
            only_account,
            Blocks {
                account: Some(30),
                address: None
            }
        );
        assert_eq!(only_account.retry_after(false), Some(30));
        assert_eq!(only_account.retry_after(true), None);

        let both = Blocks::at(&[e(account, 101), e("ip:10.0.0.1", 160)], account, 100);
        assert_eq!(both.retry_after(false), Some(60));
        assert_eq!(both.retry_after(true), Some(60));
        let account_longer = Blocks::at(&[e(account, 900), e("ip:10.0.0.1", 101)], account, 100);
        assert_eq!(account_longer.retry_after(false), Some(800));
        assert_eq!(account_longer.retry_after(true), Some(1));
    }
}
