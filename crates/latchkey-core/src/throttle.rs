//! Sign-in throttling (docs/ARCHITECTURE.md, Passwords, accounts and
//! holding under attack): sign-in attempts are counted per account and per
//! client network in the store, so every node sharing it sees the same
//! counters.
//!
//! An attempt is counted *before* the password is checked, in the same
//! atomic store step that checks the key is not blocked
//! ([`crate::store::SignInAttemptStore::reserve_attempt`]): concurrent
//! guesses cannot all slip in under one allowance, and a client that
//! abandons its request has still spent an attempt. A successful attempt is taken back
//! afterwards (the account's counter is cleared, the address's drops by
//! one), so only failures accumulate.
//!
//! After `n` attempts within a window, the key is blocked until the next
//! one is allowed: at once within the allowance (the first `free_failures`
//! attempts), then `base_delay` after the first attempt over it, doubling
//! with each further one up to `max_delay`. So at most `free_failures`
//! attempts are ever in flight for one key. While a key is blocked, sign-in
//! answers [`crate::AuthError::Throttled`] without checking the password.
//! Counters decay: a key whose last attempt is older than `window` starts
//! again from zero.
//!
//! A stranger must not be able to lock the owner out. So an account's block
//! does not apply at an address the account already has a live session
//! from (the owner's own devices and networks), where only the address's
//! own counter throttles; elsewhere it lasts at most `max_delay` at a time,
//! and the operator command `latchkey users unlock <name>` clears it at once.
//! Existing sessions are never affected: refresh is not throttled.
//!
//! Everything here is pure: the stores apply [`ThrottleRule::count_attempt`]
//! inside their atomic step, so this module is the only place the policy
//! lives.

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
    /// How long a key stays blocked after its `attempts`-th attempt within
    /// a window: 0 within the allowance, then `base · 2^(excess − 1)` up to
    /// the cap, where `excess` is how far the *next* attempt would go over it.
    pub fn delay_after(&self, attempts: u32) -> i64 {
        let excess = attempts
            .saturating_add(1)
            .saturating_sub(self.free_failures);
        if excess == 0 {
            return 0;
        }
        let doublings = (excess - 1).min(62);
        self.base_delay_seconds
            .max(0)
            .saturating_mul(1i64 << doublings)
            .min(self.max_delay_seconds.max(0))
    }

    /// The counter of `key` after one more attempt at `now`, given what it
    /// was (`None`: no counter yet). The caller has checked it is not
    /// blocked.
    pub fn count_attempt(
        &self,
        key: &str,
        before: Option<&ThrottleEntry>,
        now: UnixTime,
    ) -> ThrottleEntry {
        let attempts = match before {
            Some(e) if e.last_failure_at.saturating_add(self.window_seconds) > now => {
                e.failures.saturating_add(1)
            }
            _ => 1,
        };
        let blocked_until = before.map_or(0, |e| e.blocked_until);
        ThrottleEntry {
            key: key.to_owned(),
            failures: attempts,
            last_failure_at: now,
            blocked_until: blocked_until.max(now.saturating_add(self.delay_after(attempts))),
        }
    }
}

/// The throttling policy of sign-in and password change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Off: attempts are neither counted nor checked (tests, benchmarks).
    pub enabled: bool,
    /// Per account (normalised username; unknown names alike).
    pub account: ThrottleRule,
    /// Per client address.
    pub address: ThrottleRule,
}

impl Default for ThrottlePolicy {
    /// 5 attempts per account and 50 per address free within 15 minutes;
    /// then 1 s, 2 s, 4 s, … up to 15 minutes between attempts.
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
    /// Attempts counted within the window (successes are taken back).
    pub failures: u32,
    /// The last attempt counted.
    pub last_failure_at: UnixTime,
    pub blocked_until: UnixTime,
}

impl ThrottleEntry {
    /// Seconds still to wait at `now` (at least 1, for `Retry-After`).
    pub fn blocked_for(&self, now: UnixTime) -> Option<i64> {
        (self.blocked_until > now).then(|| (self.blocked_until - now).max(1))
    }
}

/// What a successful attempt gives back: the account's counter is cleared
/// (the owner proved themselves) and the address gets its attempt back
/// ([`crate::store::SignInAttemptStore::release_attempt`]). Either may be
/// absent: the known-address exemption leaves the account's counter alone,
/// and an attempt whose client network is unknown counted no address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptTakeBack {
    /// The counter to delete.
    pub clear: Option<String>,
    /// The attempt to take back, as it was counted.
    pub release: Option<ThrottleEntry>,
}

/// The decision of [`crate::store::SignInAttemptStore::reserve_attempt`],
/// which every store takes inside its atomic step on the counters of `keys`
/// as they are (`current`; keys without a counter are absent).
pub fn admit(
    keys: &[(String, ThrottleRule)],
    current: &[ThrottleEntry],
    now: UnixTime,
) -> Admission {
    // Time never runs backwards for a counter: a request that read the clock
    // before another was counted (queued behind it, or on a node whose clock
    // is a little behind) decides at that attempt's time. Otherwise the
    // zero-length "block" of an admitted attempt (`blocked_until` = its
    // time) would refuse a correct password for a second.
    let now = current
        .iter()
        .map(|e| e.last_failure_at)
        .fold(now, UnixTime::max);
    let counter = |key: &str| current.iter().find(|e| e.key == key);
    let blocked = keys
        .iter()
        .filter_map(|(key, _)| counter(key))
        .any(|e| e.blocked_for(now).is_some());
    if blocked {
        return Admission::Refused(current.to_vec());
    }
    Admission::Admitted(
        keys.iter()
            .map(|(key, rule)| rule.count_attempt(key, counter(key), now))
            .collect(),
    )
}

/// The answer of [`crate::store::SignInAttemptStore::reserve_attempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Counted under every key; the counters after counting.
    Admitted(Vec<ThrottleEntry>),
    /// Some key is blocked; nothing was counted. The counters as they are
    /// (of the keys that have one).
    Refused(Vec<ThrottleEntry>),
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
        Ok(name) => user_key(&name.key),
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

/// The counter key of an existing account, from its normalised name: the
/// same key [`account_key`] gives a sign-in naming it.
pub fn user_key(username_key: &str) -> String {
    format!("user:{username_key}")
}

/// The counter key of a client address (its network, see
/// `Origin::network`).
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
                .filter_map(|e| e.blocked_for(now))
                .max()
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
        for n in 0..5 {
            assert_eq!(r.delay_after(n), 0, "after attempt {n}");
        }
        // The fifth attempt uses the allowance up: the sixth waits.
        assert_eq!(r.delay_after(5), 1);
        assert_eq!(r.delay_after(6), 2);
        assert_eq!(r.delay_after(7), 4);
        assert_eq!(r.delay_after(14), 512);
        assert_eq!(r.delay_after(15), 900);
        assert_eq!(r.delay_after(u32::MAX), 900);
        assert_eq!(
            rule(0).delay_after(0),
            1,
            "no allowance: every attempt waits"
        );
    }

    #[test]
    fn counting_restarts_after_the_window_and_blocks_never_shrink() {
        let r = rule(2);
        let first = r.count_attempt("k", None, 100);
        assert_eq!((first.failures, first.blocked_until), (1, 100));
        let second = r.count_attempt("k", Some(&first), 101);
        assert_eq!((second.failures, second.blocked_until), (2, 102));
        assert_eq!(second.blocked_for(101), Some(1));
        assert_eq!(second.blocked_for(102), None);
        let third = r.count_attempt("k", Some(&second), 102);
        assert_eq!((third.failures, third.blocked_until), (3, 104));
        // A long block stays although the count restarts.
        let long = ThrottleEntry {
            blocked_until: 100 + 2000,
            ..third.clone()
        };
        let later = r.count_attempt("k", Some(&long), 102 + 900);
        assert_eq!((later.failures, later.blocked_until), (1, 2100));
    }

    #[test]
    fn an_attempt_that_read_the_clock_earlier_is_not_refused_by_a_later_one() {
        let keys = [("ip:a".to_owned(), rule(5))];
        // Admitted at 101 (within the allowance: blocked until 101, i.e. not).
        let Admission::Admitted(after) = admit(&keys, &[], 101) else {
            panic!("first attempt refused")
        };
        // A request that read 100 before that commit reaches the counter after it.
        match admit(&keys, &after, 100) {
            Admission::Admitted(entries) => assert_eq!(entries[0].failures, 2),
            refused => panic!("refused by a zero-length block: {refused:?}"),
        }
        // A real block still refuses.
        let blocked = [ThrottleEntry {
            key: "ip:a".to_owned(),
            failures: 5,
            last_failure_at: 101,
            blocked_until: 102,
        }];
        assert!(matches!(admit(&keys, &blocked, 100), Admission::Refused(_)));
    }

    #[test]
    fn at_most_the_allowance_is_admitted_back_to_back() {
        // What a store does for concurrent attempts: each sees the counter
        // the one before left.
        let r = rule(5);
        let mut entry: Option<ThrottleEntry> = None;
        let mut admitted = 0;
        for _ in 0..60 {
            if entry.as_ref().and_then(|e| e.blocked_for(1000)).is_some() {
                continue;
            }
            admitted += 1;
            entry = Some(r.count_attempt("k", entry.as_ref(), 1000));
        }
        assert_eq!(admitted, 5);
    }

    #[test]
    fn degenerate_rules_do_not_overflow() {
        let r = ThrottleRule {
            free_failures: 0,
            window_seconds: 1000,
            base_delay_seconds: i64::MAX,
            max_delay_seconds: i64::MAX,
        };
        assert_eq!(r.delay_after(100), i64::MAX);
        let e = r.count_attempt("k", None, i64::MAX - 5);
        assert_eq!(e.blocked_until, i64::MAX);
        let e = r.count_attempt("k", Some(&e), i64::MAX - 4);
        assert_eq!(e.failures, 2);
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
