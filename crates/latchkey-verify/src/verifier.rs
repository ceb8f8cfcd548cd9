//! The verifier: a cached key set, a revocation set and the background tasks
//! that keep both fresh.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use latchkey_wire::jwk::KeySet;
use latchkey_wire::jws::AccessClaims;
use latchkey_wire::revocation::Revocation;
use latchkey_wire::TokenError;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::options::Options;
use crate::shared::{parse_discovered_jwks, Shared};
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
        let keys = parse_discovered_jwks(jwks_json.as_bytes())?;
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
    /// [`TokenError::UnknownKey`]; a retry a moment later may succeed.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let result = self.shared.check(token);
        if matches!(result, Err(VerifyError::Token(TokenError::UnknownKey)))
            && self.shared.claim_refetch()
        {
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
        if !matches!(result, Err(VerifyError::Token(TokenError::UnknownKey)))
            || self.shared.jwks_url.is_none()
        {
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
