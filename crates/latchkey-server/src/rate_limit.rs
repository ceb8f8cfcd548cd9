//! Per-address request limits for sign-up and the token endpoints: a token
//! bucket per client address, **in the memory of each node** (a cluster of
//! N nodes behind a balancer lets an address make up to N times the limit).
//! That is enough for their purpose, keeping one address from flooding the
//! node; sign-in failures, where guessing is the threat, are throttled in
//! the shared store instead (see `latchkey_core::throttle`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::client_address::ClientAddress;
use crate::error::ApiError;

/// Above this many tracked addresses, full buckets are forgotten; if that
/// is not enough (a flood from very many addresses), all are, so memory
/// stays bounded whatever arrives.
const MAX_TRACKED: usize = 100_000;

/// Requests per minute per address for each limited group of routes; 0
/// turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// `POST /v1/sign-up`.
    pub sign_up_per_minute: u32,
    /// `/v1/tokens/refresh`, `/v1/tokens/revoke`, `/oauth/token`,
    /// `/oauth/revoke`, `/oauth/introspect`.
    pub tokens_per_minute: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            sign_up_per_minute: 10,
            tokens_per_minute: 600,
        }
    }
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// A token bucket per address: holds up to a minute's allowance (so a
/// burst of that size passes) and refills continuously.
pub struct RateLimiter {
    capacity: f64,
    per_second: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// `None` for 0 (no limit).
    pub fn per_minute(limit: u32) -> Option<Arc<Self>> {
        (limit > 0).then(|| {
            Arc::new(Self {
                capacity: f64::from(limit),
                per_second: f64::from(limit) / 60.0,
                buckets: Mutex::new(HashMap::new()),
            })
        })
    }

    /// Takes one token for `ip`; `Err(seconds)` to wait when there is none.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            let (capacity, per_second) = (self.capacity, self.per_second);
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * per_second
                    < capacity
            });
            if buckets.len() >= MAX_TRACKED {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: self.capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

/// Middleware: 429 `slow_down` with `Retry-After` once the caller's address
/// has used its allowance.
pub async fn limit(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let ip = request
        .extensions()
        .get::<ClientAddress>()
        .map(|ClientAddress(ip)| *ip);
    if let Some(ip) = ip {
        if let Err(retry_after_seconds) = limiter.check(ip, Instant::now()) {
            tracing::info!(%ip, path = request.uri().path(), "rate limited");
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
    use std::time::Duration;

    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_refills() {
        let limiter = RateLimiter::per_minute(3).expect("limit");
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(a, t0), Ok(()));
        }
        assert!(matches!(limiter.check(a, t0), Err(20 | 21)));
        assert_eq!(limiter.check(b, t0), Ok(()), "addresses are apart");
        assert!(matches!(
            limiter.check(a, t0 + Duration::from_secs(10)),
            Err(10 | 11)
        ));
        assert_eq!(limiter.check(a, t0 + Duration::from_secs(21)), Ok(()));
        assert!(limiter.check(a, t0 + Duration::from_secs(21)).is_err());
        assert!(RateLimiter::per_minute(0).is_none());
    }

    #[test]
    fn tracked_addresses_stay_bounded() {
        let limiter = RateLimiter::per_minute(1).expect("limit");
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            let _ = limiter.check(IpAddr::from(i.to_be_bytes()), t0);
        }
        let tracked = limiter.buckets.lock().expect("lock").len();
        assert!(tracked <= MAX_TRACKED, "{tracked}");
    }
}
