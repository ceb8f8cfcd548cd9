//! Per-address request limits for sign-up and the token endpoints: a GCRA
//! bucket (the `governor` crate) per client network (the address for IPv4,
//! its /64 for IPv6; see [`crate::client_address`]), **in the memory of each
//! node** (a cluster of N nodes behind a balancer lets a network make up to
//! N times the limit). That is enough for their purpose, keeping one client
//! from flooding the node; sign-in failures, where guessing is the threat,
//! are throttled in the shared store instead (see `latchkey_core::throttle`).
//!
//! The table of networks is bounded: when it is full, networks whose
//! buckets have refilled (unused for a while) are evicted, at most once per
//! [`EVICT_AT_MOST_EVERY`]; networks that still find it full share one
//! overflow bucket. Known networks keep their own buckets throughout, so a
//! flood from very many addresses slows newcomers but never resets anyone.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::{HashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::Quota;
use ipnet::IpNet;

use crate::client_address::{ClientAddress, ClientNetwork};
use crate::error::ApiError;

/// Most networks with a bucket of their own.
const MAX_TRACKED: usize = 100_000;
/// A full table is swept for refilled buckets at most this often, so a
/// flood of new networks cannot make every request pay for a sweep.
pub const EVICT_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// Requests per minute per client network for each limited group of
/// routes; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// `POST /v1/sign-up`.
    pub sign_up_per_minute: u32,
    /// `/v1/tokens/refresh`, `/v1/tokens/revoke`, `/oauth/token`,
    /// `/oauth/revoke`, `/oauth/introspect`.
    pub tokens_per_minute: u32,
    /// `POST /v1/password/forgot`, `/v1/password/reset`, `/v1/email` and
    /// `/v1/email/verify` (a limited forgot still answers 202).
    pub recovery_per_minute: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            sign_up_per_minute: 10,
            tokens_per_minute: 600,
            recovery_per_minute: 10,
        }
    }
}

/// Buckets per network, at most `max_tracked` of them; networks arriving
/// when it is full draw from the one `overflow` bucket.
pub struct BoundedTable {
    table: HashMapStateStore<IpNet>,
    overflow: InMemoryState,
    max_tracked: usize,
}

impl BoundedTable {
    fn new(max_tracked: usize) -> Self {
        Self {
            table: HashMapStateStore::new(HashMap::new()),
            overflow: InMemoryState::default(),
            max_tracked,
        }
    }
}

impl StateStore for BoundedTable {
    type Key = IpNet;

    fn measure_and_replace<T, F, E>(&self, key: &IpNet, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut table = self.table.lock();
        if let Some(state) = table.get(key) {
            return state.measure_and_replace(&NotKeyed::NonKey, f);
        }
        if table.len() < self.max_tracked {
            return table
                .entry(*key)
                .or_default()
                .measure_and_replace(&NotKeyed::NonKey, f);
        }
        drop(table);
        self.overflow.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

impl ShrinkableKeyedStateStore<IpNet> for BoundedTable {
    fn retain_recent(&self, drop_below: Nanos) {
        self.table.retain_recent(drop_below);
    }

    fn shrink_to_fit(&self) {
        self.table.shrink_to_fit();
    }

    fn len(&self) -> usize {
        ShrinkableKeyedStateStore::len(&self.table)
    }

    fn is_empty(&self) -> bool {
        ShrinkableKeyedStateStore::is_empty(&self.table)
    }
}

/// A bucket per network: holds up to a minute's allowance (so a burst of
/// that size passes) and refills continuously.
pub struct RateLimiter<C: Clock = DefaultClock> {
    buckets: governor::RateLimiter<IpNet, BoundedTable, C, NoOpMiddleware<C::Instant>>,
    max_tracked: usize,
    last_eviction: Mutex<Option<C::Instant>>,
}

impl RateLimiter {
    /// `None` for 0 (no limit).
    pub fn per_minute(limit: u32) -> Option<Arc<Self>> {
        Self::with_clock(limit, MAX_TRACKED, DefaultClock::default()).map(Arc::new)
    }
}

impl<C: Clock> RateLimiter<C> {
    /// `per_minute` with a table of `max_tracked` networks and `clock`.
    pub fn with_clock(limit: u32, max_tracked: usize, clock: C) -> Option<Self> {
        let limit = NonZeroU32::new(limit)?;
        Some(Self {
            buckets: governor::RateLimiter::new(
                Quota::per_minute(limit),
                BoundedTable::new(max_tracked),
                clock,
            ),
            max_tracked,
            last_eviction: Mutex::new(None),
        })
    }

    /// Takes one request's allowance for `network`; `Err(seconds)` to wait
    /// when there is none.
    pub fn check(&self, network: &IpNet) -> Result<(), u64> {
        if self.buckets.len() >= self.max_tracked {
            self.evict_refilled();
        }
        self.buckets.check_key(network).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.buckets.clock().now());
            // Whole seconds for `Retry-After`, rounded up, at least 1.
            wait.as_secs()
                .saturating_add(u64::from(wait.subsec_nanos() > 0))
                .max(1)
        })
    }

    /// Networks with a bucket of their own.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Forgets networks whose buckets are full again (unused for a while),
    /// unless that was done less than [`EVICT_AT_MOST_EVERY`] ago.
    fn evict_refilled(&self) {
        let now = self.buckets.clock().now();
        {
            let mut last = self
                .last_eviction
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if last.is_some_and(|at| Duration::from(now.duration_since(at)) < EVICT_AT_MOST_EVERY) {
                return;
            }
            *last = Some(now);
        }
        self.buckets.retain_recent();
        self.buckets.shrink_to_fit();
    }
}

/// Middleware: 429 `slow_down` with `Retry-After` once the caller's network
/// has used its allowance.
pub async fn limit(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let network = request
        .extensions()
        .get::<ClientNetwork>()
        .map(|ClientNetwork(net)| *net);
    if let Some(network) = network {
        if let Err(retry_after_seconds) = limiter.check(&network) {
            let ip = request
                .extensions()
                .get::<ClientAddress>()
                .map(|ClientAddress(ip)| *ip);
            tracing::info!(ip = ?ip, %network, path = request.uri().path(), "rate limited");
            return ApiError::RateLimited {
                retry_after_seconds,
            }
            .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("network")
    }

    #[test]
    fn bucket_allows_a_burst_then_refills() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(3, 100, clock.clone()).expect("limit");
        let (a, b) = (net("10.0.0.1/32"), net("10.0.0.2/32"));
        for _ in 0..3 {
            assert_eq!(limiter.check(&a), Ok(()));
        }
        assert_eq!(limiter.check(&a), Err(20));
        assert_eq!(limiter.check(&b), Ok(()), "networks are apart");
        clock.advance(Duration::from_secs(10));
        assert_eq!(limiter.check(&a), Err(10));
        clock.advance(Duration::from_secs(11));
        assert_eq!(limiter.check(&a), Ok(()));
        assert!(limiter.check(&a).is_err());
        assert!(RateLimiter::per_minute(0).is_none());
    }

    #[test]
    fn a_full_table_sends_newcomers_to_the_overflow_bucket_and_keeps_the_rest() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(2, 4, clock.clone()).expect("limit");
        let known = net("10.0.0.1/32");
        assert_eq!(limiter.check(&known), Ok(()));
        for i in 2..=4u8 {
            assert_eq!(limiter.check(&net(&format!("10.0.0.{i}/32"))), Ok(()));
        }
        assert_eq!(limiter.tracked(), 4);
        // Full, and nothing has refilled: newcomers share one bucket of 2.
        assert_eq!(limiter.check(&net("10.0.1.1/32")), Ok(()));
        assert_eq!(limiter.check(&net("10.0.1.2/32")), Ok(()));
        assert!(limiter.check(&net("10.0.1.3/32")).is_err());
        assert_eq!(limiter.tracked(), 4, "the table never grows past its bound");
        // A known network still has its own bucket (one request left).
        assert_eq!(limiter.check(&known), Ok(()));
        assert!(limiter.check(&known).is_err(), "and was not reset");
    }

    #[test]
    fn refilled_buckets_are_evicted_by_age_when_the_table_is_full() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(60, 3, clock.clone()).expect("limit");
        let (old, busy) = (net("10.0.0.1/32"), net("10.0.0.2/32"));
        assert_eq!(limiter.check(&old), Ok(()));
        clock.advance(Duration::from_secs(5));
        for _ in 0..30 {
            assert_eq!(limiter.check(&busy), Ok(()));
        }
        assert_eq!(limiter.check(&net("10.0.0.3/32")), Ok(()));
        assert_eq!(limiter.tracked(), 3);
        // One request's allowance refills per second: `old` (one used 8 s
        // ago by then) and the third (one used 3 s ago) are full again;
        // `busy` (30 used) is not, and keeps its bucket.
        clock.advance(Duration::from_secs(3));
        assert_eq!(limiter.check(&net("10.0.0.4/32")), Ok(()));
        assert_eq!(limiter.tracked(), 2, "busy and the newcomer");
        let allowed = (0..60).filter(|_| limiter.check(&busy).is_ok()).count();
        assert!(allowed < 40, "busy's bucket was kept, not reset: {allowed}");
    }

    #[test]
    fn a_flood_of_networks_keeps_the_table_bounded() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(1, 1000, clock.clone()).expect("limit");
        for i in 0..20_000u32 {
            let _ = limiter.check(&IpNet::from(std::net::IpAddr::from(i.to_be_bytes())));
            if i % 1000 == 0 {
                clock.advance(Duration::from_millis(300));
            }
        }
        assert!(limiter.tracked() <= 1000, "{}", limiter.tracked());
        // Once their buckets have refilled, the flood's networks age out.
        clock.advance(Duration::from_secs(180));
        assert_eq!(limiter.check(&net("192.0.2.1/32")), Ok(()));
        assert_eq!(limiter.tracked(), 1);
    }
}
