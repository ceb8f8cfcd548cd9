//! The verifier: a cached key set, a revocation set and the background tasks
//! that keep both fresh.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use latchkey_core::access_token::{self, AccessClaims, Expectations, TokenError};
use latchkey_core::revocation::RevocationSet;
use latchkey_core::store::Revocation;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::jwks::{self, KeySet};
use crate::options::{FailMode, Options};
use crate::{feed, VerifyError};

/// Verifies Latchkey access tokens locally. Cheap to share: wrap it in an
/// `Arc` and hand it to every request handler. Dropping it stops its
/// background tasks.
pub struct Verifier {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.shared.expect.issuer)
            .field("audience", &self.shared.expect.audience)
            .field("kids", &self.key_ids())
            .field("revocations", &self.revocation_count())
            .finish()
    }
}

/// State shared between the verifier and its background tasks.
pub(crate) struct Shared {
    pub(crate) expect: Expectations,
    pub(crate) opts: Options,
    /// `None` when built from a fixed JWKS: nothing to refetch.
    jwks_url: Option<String>,
    pub(crate) feed_url: String,
    /// HTTP Basic with the client credentials, sent on feed requests.
    pub(crate) feed_authorization: Option<reqwest::header::HeaderValue>,
    /// `None` without network (`from_jwks`): building a client would load
    /// TLS roots for nothing.
    pub(crate) client: Option<reqwest::Client>,
    runtime: Option<Handle>,

    keys: RwLock<Arc<KeySet>>,
    /// Bumped on every key-set replacement, so a waiter can tell whether a
    /// refetch it waited for changed anything.
    keys_generation: AtomicU64,
    /// Serialises JWKS fetches; a caller that lost the refetch race waits on
    /// it for the in-flight fetch to land.
    fetch_lock: tokio::sync::Mutex<()>,
    /// Milliseconds since `started` of the last refetch caused by an unknown
    /// kid; the rate limit is a compare-and-swap on it.
    last_refetch_ms: AtomicI64,

    revoked: RwLock<Arc<RevocationSet>>,
    started: Instant,
    /// Milliseconds since `started` of the last successful feed response
    /// (the age of the revocation data); 0 until the first one, so
    /// staleness is then counted from start-up.
    last_feed_ok_ms: AtomicU64,
    /// Whether the last feed request failed (or none succeeded yet).
    feed_failing: AtomicBool,
    pub(crate) feed_ever_ok: AtomicBool,
    pub(crate) stale_warned: AtomicBool,
}

impl Verifier {
    /// Discovers the issuer's JWKS at `{issuer_url}/.well-known/jwks.json`
    /// and starts following its revocation feed, with default options.
    ///
    /// `issuer_url` must be exactly the `iss` the tokens carry (unless
    /// [`Options::expected_issuer`] says otherwise); `audience` must be one
    /// of their `aud` values.
    pub async fn new(issuer_url: &str, audience: &str) -> Result<Verifier, VerifyError> {
        Self::with_options(issuer_url, audience, Options::default()).await
    }

    /// [`Verifier::new`] with options. Fails if the JWKS cannot be fetched:
    /// a verifier without keys would refuse everything. An unreachable
    /// revocation feed is not fatal; it is retried in the background and
    /// governed by the fail mode.
    pub async fn with_options(
        issuer_url: &str,
        audience: &str,
        opts: Options,
    ) -> Result<Verifier, VerifyError> {
        opts.validate()?;
        let feed_authorization = opts.feed_authorization()?;
        let base = issuer_url.trim_end_matches('/');
        let client = match &opts.client {
            Some(c) => c.clone(),
            None => reqwest::Client::builder()
                .connect_timeout(opts.http_timeout)
                .build()?,
        };
        let shared = Arc::new(Shared::new(
            issuer_url,
            audience,
            Some(format!("{base}/.well-known/jwks.json")),
            format!("{base}/v1/revocations"),
            feed_authorization,
            Some(client),
            Handle::try_current().ok(),
            KeySet::empty(),
            opts,
        ));
        shared.fetch_keys().await?;

        let mut tasks = Vec::new();
        let refresher = Arc::clone(&shared);
        tasks.push(tokio::spawn(async move { refresher.refresh_loop().await }));
        if shared.opts.follow_feed {
            // One snapshot before returning, so a fresh verifier does not
            // accept tokens revoked before it started; failure is left to
            // the follower's retries.
            let mut cursor = feed::first_snapshot(&shared).await;
            let follower = Arc::clone(&shared);
            tasks.push(tokio::spawn(async move {
                feed::follow(&follower, cursor.take()).await
            }));
        }
        Ok(Verifier { shared, tasks })
    }

    /// A verifier over a fixed key set, with no network at all: no refetch,
    /// no refresh, no feed (revocations only through
    /// [`Verifier::insert_revocation`]). For tests, benchmarks and
    /// deployments that ship keys out of band.
    pub fn from_jwks(
        jwks_json: &str,
        issuer: &str,
        audience: &str,
        opts: Options,
    ) -> Result<Verifier, VerifyError> {
        let opts = opts.follow_feed(false);
        opts.validate()?;
        let keys = jwks::parse(jwks_json.as_bytes())?;
        let client = opts.client.clone();
        let shared = Arc::new(Shared::new(
            issuer,
            audience,
            None,
            String::new(),
            None,
            client,
            None,
            keys,
            opts,
        ));
        Ok(Verifier {
            shared,
            tasks: Vec::new(),
        })
    }

    /// Verifies signature, header, registered claims and revocation against
    /// the cached state, without waiting on the network. An unknown `kid`
    /// schedules a (rate-limited) JWKS refetch in the background and answers
    /// [`VerifyError::UnknownKey`]; a retry a moment later may succeed.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let result = self.shared.check(token);
        if matches!(result, Err(VerifyError::UnknownKey)) && self.shared.claim_refetch() {
            self.shared.spawn_fetch();
        }
        result
    }

    /// Like [`Verifier::verify`], but on an unknown `kid` waits for one
    /// JWKS refetch (started here or already in flight) and tries again, so
    /// the first token signed by a freshly rotated-in key is accepted.
    pub async fn verify_async(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let generation = self.shared.keys_generation.load(Ordering::Acquire);
        let result = self.shared.check(token);
        if !matches!(result, Err(VerifyError::UnknownKey)) || self.shared.jwks_url.is_none() {
            return result;
        }
        if self.shared.claim_refetch() {
            // Awaiting a spawned task rather than the fetch itself keeps the
            // refetch going if this request is cancelled; the rate-limit slot
            // is spent either way.
            if let Some(handle) = self.shared.spawn_fetch() {
                let _ = handle.await;
            }
        } else {
            drop(self.shared.fetch_lock.lock().await);
        }
        if self.shared.keys_generation.load(Ordering::Acquire) == generation {
            return result;
        }
        self.shared.check(token)
    }

    /// Fetches the JWKS now, outside the rate limit.
    pub async fn refresh_keys(&self) -> Result<(), VerifyError> {
        self.shared.fetch_keys().await
    }

    /// Adds a revocation by hand (e.g. learned from a message bus). The feed
    /// replaces the whole set when it has to start over from a snapshot.
    pub fn insert_revocation(&self, entry: &Revocation) {
        self.shared.revocations().insert(entry);
    }

    /// The `kid`s currently accepted.
    pub fn key_ids(&self) -> Vec<String> {
        self.shared.key_set().kids.clone()
    }

    /// Entries in the revocation set.
    pub fn revocation_count(&self) -> usize {
        self.shared.revocations().len()
    }

    /// Time since the revocation feed last answered, `None` if it never has
    /// (or is not followed).
    pub fn feed_last_success(&self) -> Option<Duration> {
        if !self.shared.feed_ever_ok.load(Ordering::Acquire) {
            return None;
        }
        let last = self.shared.last_feed_ok_ms.load(Ordering::Acquire);
        Some(Duration::from_millis(
            self.shared.elapsed_ms().saturating_sub(last),
        ))
    }

    /// Whether the revocation data is older than
    /// [`Options::max_staleness`] right now (every token is refused).
    pub fn feed_is_stale(&self) -> bool {
        self.shared.feed_stale()
    }

    pub fn issuer(&self) -> &str {
        &self.shared.expect.issuer
    }

    pub fn audience(&self) -> &str {
        self.shared.expect.audience.as_deref().unwrap_or_default()
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl KeySet {
    fn empty() -> Self {
        KeySet {
            keys: Default::default(),
            kids: Vec::new(),
        }
    }
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    fn new(
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

    /// The hot path: one snapshot load, core's verification, two hash
    /// lookups.
    fn check(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let keys = self.key_set();
        let claims = access_token::verify(token, &keys.keys, &self.expect, self.opts.clock.now())
            .map_err(|e: TokenError| VerifyError::from(e))?;
        if self
            .revocations()
            .is_revoked(claims.sid.as_deref(), &claims.jti)
        {
            return Err(VerifyError::Revoked);
        }
        if self.feed_refuses() {
            return Err(VerifyError::FeedStale);
        }
        Ok(claims)
    }

    fn key_set(&self) -> Arc<KeySet> {
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

    fn elapsed_ms(&self) -> u64 {
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
    fn claim_refetch(&self) -> bool {
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
    fn spawn_fetch(self: &Arc<Self>) -> Option<JoinHandle<()>> {
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

    async fn fetch_key_set(&self, url: &str) -> Result<KeySet, VerifyError> {
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
        jwks::parse(&body)
    }

    async fn refresh_loop(&self) {
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
