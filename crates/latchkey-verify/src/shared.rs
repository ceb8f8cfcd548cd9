//! The state a [`crate::Verifier`] shares with its background tasks (the
//! JWKS refresher and the feed follower): the cached key set, the
//! revocation set and the feed's health, and the hot-path check over them.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use latchkey_wire::jwk::{parse_jwks, KeySet};
use latchkey_wire::jws::{self, AccessClaims, Expectations};
use latchkey_wire::revocation::RevocationSet;
use latchkey_wire::TokenError;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::options::{FailMode, Options};
use crate::VerifyError;

/// State shared between the verifier and its background tasks.
pub(crate) struct Shared {
    pub(crate) expect: Expectations,
    pub(crate) opts: Options,
    /// `None` when built from a fixed JWKS: nothing to refetch.
    pub(crate) jwks_url: Option<String>,
    pub(crate) feed_url: String,
    /// HTTP Basic with the client credentials, sent on feed requests.
    pub(crate) feed_authorization: Option<reqwest::header::HeaderValue>,
    /// `None` without network (`from_jwks`): building a client would load
    /// TLS roots for nothing.
    pub(crate) client: Option<reqwest::Client>,
    pub(crate) runtime: Option<Handle>,

    pub(crate) keys: RwLock<Arc<KeySet>>,
    /// Bumped on every key-set replacement, so a waiter can tell whether a
    /// refetch it waited for changed anything.
    pub(crate) keys_generation: AtomicU64,
    /// Serialises JWKS fetches; a caller that lost the refetch race waits on
    /// it for the in-flight fetch to land.
    pub(crate) fetch_lock: tokio::sync::Mutex<()>,
    /// Milliseconds since `started` of the last refetch caused by an unknown
    /// kid; the rate limit is a compare-and-swap on it.
    pub(crate) last_refetch_ms: AtomicI64,

    pub(crate) revoked: RwLock<Arc<RevocationSet>>,
    pub(crate) started: Instant,
    /// Milliseconds since `started` of the last successful feed response
    /// (the age of the revocation data); 0 until the first one, so
    /// staleness is then counted from start-up.
    pub(crate) last_feed_ok_ms: AtomicU64,
    /// Whether the last feed request failed (or none succeeded yet).
    pub(crate) feed_failing: AtomicBool,
    pub(crate) feed_ever_ok: AtomicBool,
    pub(crate) stale_warned: AtomicBool,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        issuer: &str,
        audience: &str,
        jwks_url: Option<String>,
        feed_url: String,
        feed_authorization: Option<reqwest::header::HeaderValue>,
        client: Option<reqwest::Client>,
        runtime: Option<Handle>,
        keys: KeySet,
        opts: Options,
    ) -> Self {
        Shared {
            expect: Expectations {
                issuer: opts
                    .expected_issuer
                    .clone()
                    .unwrap_or_else(|| issuer.to_owned()),
                audience: Some(audience.to_owned()),
                // validate() checked that it fits.
                leeway: i64::try_from(opts.leeway.as_secs()).unwrap_or(i64::MAX),
            },
            opts,
            jwks_url,
            feed_url,
            feed_authorization,
            client,
            runtime,
            keys: RwLock::new(Arc::new(keys)),
            keys_generation: AtomicU64::new(0),
            fetch_lock: tokio::sync::Mutex::new(()),
            // Far enough in the past that the first unknown kid may refetch.
            last_refetch_ms: AtomicI64::new(i64::MIN / 2),
            revoked: RwLock::new(Arc::new(RevocationSet::default())),
            started: Instant::now(),
            last_feed_ok_ms: AtomicU64::new(0),
            feed_failing: AtomicBool::new(true),
            feed_ever_ok: AtomicBool::new(false),
            stale_warned: AtomicBool::new(false),
        }
    }

    /// The hot path: one snapshot load, the wire crate's verification, two
    /// hash lookups.
    pub(crate) fn check(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let keys = self.key_set();
        let claims = jws::verify(token, &keys.keys, &self.expect, self.opts.clock.now())?;
        if self
            .revocations()
            .is_revoked(claims.sid.as_deref(), &claims.jti)
        {
            return Err(TokenError::Revoked.into());
        }
        if self.feed_refuses() {
            return Err(VerifyError::FeedStale);
        }
        Ok(claims)
    }

    pub(crate) fn key_set(&self) -> Arc<KeySet> {
        // A poisoned lock only means a writer panicked mid-swap of an Arc,
        // which leaves the old, consistent value in place.
        Arc::clone(&self.keys.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn revocations(&self) -> Arc<RevocationSet> {
        Arc::clone(&self.revoked.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn replace_revocations(&self, set: RevocationSet) {
        *self.revoked.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
    }

    pub(crate) fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn mark_feed_ok(&self) {
        // max(1, ..) so a success in the very first millisecond still differs
        // from "never".
        self.last_feed_ok_ms
            .store(self.elapsed_ms().max(1), Ordering::Release);
        self.feed_ever_ok.store(true, Ordering::Release);
        self.feed_failing.store(false, Ordering::Release);
        if self.stale_warned.swap(false, Ordering::AcqRel) {
            tracing::info!(url = %self.feed_url, "revocation feed reachable again");
        }
    }

    pub(crate) fn mark_feed_failed(&self) {
        self.feed_failing.store(true, Ordering::Release);
    }

    /// Whether the revocation data is older than `max_staleness`.
    pub(crate) fn feed_stale(&self) -> bool {
        if !self.opts.follow_feed {
            return false;
        }
        let last = self.last_feed_ok_ms.load(Ordering::Acquire);
        let bound = u64::try_from(self.opts.max_staleness.as_millis()).unwrap_or(u64::MAX);
        self.elapsed_ms().saturating_sub(last) > bound
    }

    /// Whether tokens are refused for want of current revocation data: past
    /// `max_staleness` in any mode, while the feed fails when fail-closed.
    pub(crate) fn feed_refuses(&self) -> bool {
        self.opts.follow_feed
            && (self.feed_stale()
                || (self.opts.fail_mode == FailMode::Closed
                    && self.feed_failing.load(Ordering::Acquire)))
    }

    /// Takes the refetch slot if the rate limit allows one now.
    pub(crate) fn claim_refetch(&self) -> bool {
        if self.jwks_url.is_none() {
            return false;
        }
        let now = i64::try_from(self.elapsed_ms()).unwrap_or(i64::MAX);
        let interval =
            i64::try_from(self.opts.refetch_min_interval.as_millis()).unwrap_or(i64::MAX);
        let last = self.last_refetch_ms.load(Ordering::Acquire);
        now.saturating_sub(last) >= interval
            && self
                .last_refetch_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Runs a JWKS fetch on the runtime, detached from the caller.
    pub(crate) fn spawn_fetch(self: &Arc<Self>) -> Option<JoinHandle<()>> {
        let runtime = Handle::try_current().ok().or_else(|| self.runtime.clone());
        let Some(runtime) = runtime else {
            tracing::warn!("unknown kid but no tokio runtime to refetch the JWKS on");
            return None;
        };
        let shared = Arc::clone(self);
        Some(runtime.spawn(async move {
            // fetch_keys logs its own failures.
            let _ = shared.fetch_keys().await;
        }))
    }

    /// Fetches the JWKS and replaces the key set. On failure the old set
    /// stays: better to keep accepting known keys than to refuse everything
    /// because the issuer blinked.
    pub(crate) async fn fetch_keys(&self) -> Result<(), VerifyError> {
        let Some(url) = &self.jwks_url else {
            return Ok(());
        };
        let _guard = self.fetch_lock.lock().await;
        let result = self.fetch_key_set(url).await;
        match result {
            Ok(set) => {
                tracing::debug!(kids = ?set.kids, "JWKS loaded");
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
                self.keys_generation.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(%url, error = %e, "JWKS fetch failed; keeping the cached keys");
                Err(e)
            }
        }
    }

    pub(crate) async fn fetch_key_set(&self, url: &str) -> Result<KeySet, VerifyError> {
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| VerifyError::Config("no HTTP client".into()))?;
        let response = client
            .get(url)
            .timeout(self.opts.http_timeout)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(VerifyError::Discovery(format!(
                "{url} answered {}",
                response.status()
            )));
        }
        let body = response.bytes().await?;
        parse_discovered_jwks(&body)
    }

    pub(crate) async fn refresh_loop(&self) {
        let mut tick = tokio::time::interval(self.opts.refresh_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick fires at once; the keys were just fetched.
        tick.tick().await;
        loop {
            tick.tick().await;
            let _ = self.fetch_keys().await;
        }
    }
}

/// A JWKS document that is not a key set fails discovery; unusable keys in
/// it are skipped.
pub(crate) fn parse_discovered_jwks(json: &[u8]) -> Result<KeySet, VerifyError> {
    parse_jwks(json).map_err(|e| VerifyError::Discovery(format!("JWKS is not a key set: {e}")))
}
