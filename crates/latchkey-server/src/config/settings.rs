//! The resolved settings and their defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use latchkey_core::client::Client;
use latchkey_core::password::Argon2Cost;
use latchkey_core::secret::Secret;
use latchkey_core::Policy;

use super::DatabaseUrl;
use crate::client_address::{NetworkPrefixes, TrustedProxies};
use crate::hashing_pool::DEFAULT_QUEUE_PER_THREAD;
pub use crate::mail::SmtpSettings;
use crate::rate_limit::RateLimits;

/// Everything the server needs to start, fully resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub policy: Policy,
    pub argon2: Argon2Cost,
    /// Password hashes computed at once; see [`default_hashing_threads`].
    pub hashing_threads: usize,
    /// Password checks that may wait for a hashing thread; `None`:
    /// the hashing pool's `DEFAULT_QUEUE_PER_THREAD` per thread.
    pub hashing_queue: Option<usize>,
    /// Clients declared in the config file.
    pub clients: Vec<Client>,
    /// Scheduled signing-key rotation; `None`: only by `latchkey keys rotate`.
    pub key_rotation_interval: Option<Duration>,
    /// `Some`: PostgreSQL (a cluster of nodes); `None`: SQLite in `data_dir`.
    pub database_url: Option<DatabaseUrl>,
    pub database_max_connections: usize,
    /// Per-address request limits of this node.
    pub rate_limits: RateLimits,
    /// Proxies whose `X-Forwarded-For` names the client address.
    pub trusted_proxies: TrustedProxies,
    /// Web origins whose pages may call the API with credentials (CORS)
    /// and use the refresh cookie, as browsers send them.
    pub cors_allowed_origins: Vec<String>,
    /// Whether anyone may read the revocation feed; by default only
    /// confidential clients (resource servers) may, since it tells session
    /// ids, per-user session counts and sign-out times.
    pub public_revocation_feed: bool,
    /// Secret mixed into every new password hash (HMAC-SHA256 of the
    /// password before Argon2), from `LATCHKEY_PASSWORD_PEPPER` or the
    /// file's `password_pepper`. Once set, never change or drop it.
    pub password_pepper: Option<Secret>,
    /// The server secret itself (file format), from `LATCHKEY_SERVER_SECRET`,
    /// for platforms that hand secrets over as environment variables; it
    /// takes the place of `<data_dir>/server-secret`.
    pub server_secret: Option<Secret>,
    /// Time a client has to send a request's head, from when the server
    /// waits for one (also between requests on a kept-alive connection).
    pub header_read_timeout: Duration,
    /// A connection on which no byte moved for this long, with no request
    /// in progress, is closed, whatever the HTTP layer is waiting for.
    pub idle_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel's
    /// listen queue until one closes, costing this process nothing.
    pub max_connections: usize,
    /// `Some`: `/metrics` is served on this address only, not on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// Networks per-address limits and the sign-in address throttle count
    /// clients under.
    pub network_prefixes: NetworkPrefixes,
    /// The mail server for reset and verification links; `None`: no mail.
    pub smtp: Option<SmtpSettings>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./latchkey-data";
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Far above any file-descriptor limit; keeps the count a `u32`.
pub const MAX_MAX_CONNECTIONS: usize = 1_000_000;

/// One hashing thread per core but one (at least one). Even at the lowest
/// scheduling priority, Argon2 on every core slows request handling during
/// a sign-in flood (preemption, shared caches, memory bandwidth) past the
/// 2× p99 budget in some runs; a core left free of it keeps sessions fast,
/// at the price of peak sign-in throughput on small machines
/// (BENCHMARKS.md has the runs).
pub fn default_hashing_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .saturating_sub(1)
        .max(1)
}

impl Settings {
    /// The hashing queue's capacity in force.
    pub fn hashing_queue(&self) -> usize {
        self.hashing_queue.unwrap_or_else(|| {
            self.hashing_threads
                .saturating_mul(DEFAULT_QUEUE_PER_THREAD)
        })
    }

    /// Defaults for a server on `listen` keeping its data in `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            data_dir: data_dir.into(),
            policy: Policy::new(format!("http://{listen}")),
            argon2: Argon2Cost::default(),
            hashing_threads: default_hashing_threads(),
            hashing_queue: None,
            clients: Vec::new(),
            key_rotation_interval: None,
            database_url: None,
            database_max_connections: 16,
            rate_limits: RateLimits::default(),
            trusted_proxies: TrustedProxies::default(),
            cors_allowed_origins: Vec::new(),
            public_revocation_feed: false,
            password_pepper: None,
            server_secret: None,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            network_prefixes: NetworkPrefixes::default(),
            metrics_listen: None,
            smtp: None,
        }
    }
}
