//! Tuning knobs of a [`crate::Verifier`], set builder-style.

use std::sync::Arc;
use std::time::Duration;

use latchkey_wire::authorization::BasicCredentials;
use latchkey_wire::clock::{Clock, SystemClock};
pub use latchkey_wire::feed::MAX_FEED_WAIT;
use reqwest::header::HeaderValue;

/// What `verify` does while the revocation feed cannot be reached but the
/// revocation data is not yet older than [`Options::max_staleness`]. Past
/// that bound every token is refused with [`crate::VerifyError::FeedStale`]
/// in either mode, until the feed answers again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailMode {
    /// Keep accepting tokens that are otherwise valid (a warning is logged
    /// once per outage): revocations published during a short outage are
    /// missed for at most `max_staleness`.
    #[default]
    Open,
    /// Refuse every token with [`crate::VerifyError::FeedStale`] from the
    /// first failed feed request until one succeeds again (and from start-up
    /// until the first snapshot is loaded).
    Closed,
}

/// Options of a [`crate::Verifier`]; `Options::default()` is what
/// [`crate::Verifier::new`] uses.
#[derive(Clone)]
pub struct Options {
    pub(crate) leeway: Duration,
    pub(crate) refetch_min_interval: Duration,
    pub(crate) refresh_interval: Duration,
    pub(crate) follow_feed: bool,
    pub(crate) feed_wait: Duration,
    pub(crate) max_staleness: Duration,
    pub(crate) feed_backoff_min: Duration,
    pub(crate) feed_backoff_max: Duration,
    pub(crate) fail_mode: FailMode,
    pub(crate) http_timeout: Duration,
    pub(crate) client: Option<reqwest::Client>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) expected_issuer: Option<String>,
    pub(crate) client_credentials: Option<ClientCredentials>,
}

/// A confidential client's id and secret, sent as HTTP Basic on feed
/// requests. `Debug` never shows the secret.
#[derive(Clone)]
pub(crate) struct ClientCredentials {
    pub(crate) id: String,
    pub(crate) secret: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("leeway", &self.leeway)
            .field("refetch_min_interval", &self.refetch_min_interval)
            .field("refresh_interval", &self.refresh_interval)
            .field("follow_feed", &self.follow_feed)
            .field("feed_wait", &self.feed_wait)
            .field("max_staleness", &self.max_staleness)
            .field(
                "feed_backoff",
                &(self.feed_backoff_min, self.feed_backoff_max),
            )
            .field("fail_mode", &self.fail_mode)
            .field("http_timeout", &self.http_timeout)
            .field("client_credentials", &self.client_credentials)
            .finish_non_exhaustive()
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            leeway: Duration::from_secs(30),
            refetch_min_interval: Duration::from_secs(10),
            refresh_interval: Duration::from_secs(300),
            follow_feed: true,
            feed_wait: Duration::from_secs(20),
            max_staleness: Duration::from_secs(60),
            feed_backoff_min: Duration::from_millis(200),
            feed_backoff_max: Duration::from_secs(5),
            fail_mode: FailMode::Open,
            http_timeout: Duration::from_secs(10),
            client: None,
            clock: Arc::new(SystemClock),
            expected_issuer: None,
            client_credentials: None,
        }
    }
}

impl Options {
    /// Clock skew tolerated on `exp`, `nbf` and `iat` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Least time between two JWKS refetches caused by an unknown `kid`
    /// (default 10 s), so a flood of tokens with made-up kids costs the
    /// issuer one request per interval.
    pub fn refetch_min_interval(mut self, interval: Duration) -> Self {
        self.refetch_min_interval = interval;
        self
    }

    /// How often the JWKS is fetched regardless (default 5 min): picks up
    /// keys published ahead of use and drops removed ones.
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// Whether to follow the revocation feed (default yes). Without it only
    /// revocations inserted by hand are checked.
    pub fn follow_feed(mut self, follow: bool) -> Self {
        self.follow_feed = follow;
        self
    }

    /// Long-poll duration asked of the feed (default 20 s, at most 30 s).
    pub fn feed_wait(mut self, wait: Duration) -> Self {
        self.feed_wait = wait;
        self
    }

    /// How old the revocation data may get (time since the feed last
    /// answered) before every token is refused with
    /// [`crate::VerifyError::FeedStale`], whatever the [`FailMode`]
    /// (default 60 s). Must exceed `feed_wait`, or a healthy idle long-poll
    /// would look like an outage.
    pub fn max_staleness(mut self, bound: Duration) -> Self {
        self.max_staleness = bound;
        self
    }

    /// The confidential client whose id and secret are sent (HTTP Basic,
    /// RFC 6749 §2.3.1) on every feed request. The issuer serves its feed
    /// only to confidential clients unless it runs with
    /// `public_revocation_feed = true`.
    pub fn client_credentials(mut self, id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.client_credentials = Some(ClientCredentials {
            id: id.into(),
            secret: secret.into(),
        });
        self
    }

    /// Reconnect delay after a feed error: starts at `min`, doubles up to
    /// `max` (defaults 200 ms, 5 s).
    pub fn feed_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.feed_backoff_min = min;
        self.feed_backoff_max = max;
        self
    }

    /// What to do while the feed fails, before `max_staleness` (default
    /// [`FailMode::Open`]).
    pub fn fail_mode(mut self, mode: FailMode) -> Self {
        self.fail_mode = mode;
        self
    }

    /// Timeout of one JWKS request, and the margin added to a feed
    /// long-poll (default 10 s).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// HTTP client to use (proxies, TLS roots, ...). Per-request timeouts are
    /// still applied on top of it.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Source of "now" for `exp`/`nbf`/`iat` and for expiring revocation
    /// entries; tests move it by hand.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The `iss` tokens must carry, when it differs from the URL the issuer
    /// is reached at (e.g. an internal address); by default they are equal.
    pub fn expected_issuer(mut self, iss: impl Into<String>) -> Self {
        self.expected_issuer = Some(iss.into());
        self
    }

    /// The `Authorization` value of feed requests, if credentials are set
    /// (HTTP Basic, RFC 6749 §2.3.1).
    pub(crate) fn feed_authorization(&self) -> Result<Option<HeaderValue>, crate::VerifyError> {
        let Some(c) = &self.client_credentials else {
            return Ok(None);
        };
        let value = BasicCredentials::header_value(&c.id, &c.secret)
            .ok_or_else(|| crate::VerifyError::Config("client credentials".into()))?;
        Ok(Some(value))
    }

    pub(crate) fn validate(&self) -> Result<(), crate::VerifyError> {
        let bad = |why: &str| Err(crate::VerifyError::Config(why.to_owned()));
        // The protocol counts whole seconds, and wait=0 would turn the
        // long-poll into a busy loop against the issuer.
        if self.feed_wait < Duration::from_secs(1) || self.feed_wait > MAX_FEED_WAIT {
            return bad("feed_wait must be between 1 s and 30 s");
        }
        if self.follow_feed && self.max_staleness <= self.feed_wait {
            return bad("max_staleness must exceed feed_wait");
        }
        if self.feed_backoff_min.is_zero() || self.feed_backoff_max < self.feed_backoff_min {
            return bad("feed_backoff needs 0 < min <= max");
        }
        if let Some(c) = &self.client_credentials {
            if c.id.is_empty() || c.secret.is_empty() {
                return bad("client_credentials need a client id and a secret");
            }
        }
        if self.refresh_interval.is_zero() {
            return bad("refresh_interval must be positive");
        }
        if i64::try_from(self.leeway.as_secs()).is_err() {
            return bad("leeway too large");
        }
        Ok(())
    }
}
