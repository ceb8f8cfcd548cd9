//! Configuration: defaults, then a TOML file, then flags and `LATCHKEY_*`
//! environment variables, each overriding the one before.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use latchkey_core::access_token::Algorithm;
use latchkey_core::client::{validate_client_id, Client, ClientKind};
use latchkey_core::password::Argon2Cost;
use latchkey_core::secret::Secret;
use latchkey_core::throttle::{ThrottlePolicy, ThrottleRule};
use latchkey_core::Policy;
use serde::Deserialize;

use crate::client_address::{NetworkPrefixes, TrustedProxies};
use crate::hashing_pool::DEFAULT_QUEUE_PER_THREAD;
use crate::rate_limit::RateLimits;

mod database_url;

pub use database_url::DatabaseUrl;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./latchkey-data";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Only where and what: TOML's own message quotes the offending line,
    /// which may hold the pepper or the database password.
    #[error("config file {path}: line {line}, column {column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Flags of `latchkey serve`; every one has a `LATCHKEY_*` twin.
#[derive(Debug, Default, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, global = true, env = "LATCHKEY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the database, server secret and keys [default: ./latchkey-data]
    #[arg(long, global = true, env = "LATCHKEY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `iss` of access tokens [default: http://<listen address>]
    #[arg(long, global = true, env = "LATCHKEY_ISSUER")]
    pub issuer: Option<String>,
    /// Access-token lifetime, e.g. `10m` or `600` (seconds) [default: 10m]
    #[arg(long, global = true, env = "LATCHKEY_ACCESS_TTL", value_parser = parse_duration)]
    pub access_ttl: Option<Duration>,
    /// How long a just-rotated refresh token still yields its successor [default: 10s]
    #[arg(long, global = true, env = "LATCHKEY_REFRESH_GRACE", value_parser = parse_duration)]
    pub refresh_grace: Option<Duration>,
    /// A session not refreshed for this long ends [default: 14d]
    #[arg(long, global = true, env = "LATCHKEY_SESSION_IDLE_TIMEOUT", value_parser = parse_duration)]
    pub session_idle_timeout: Option<Duration>,
    /// A session ends this long after sign-in, however active [default: 90d]
    #[arg(long, global = true, env = "LATCHKEY_SESSION_LIFETIME", value_parser = parse_duration)]
    pub session_lifetime: Option<Duration>,
    /// Algorithm of new signing keys: EdDSA, ES256 or RS256; a change takes
    /// effect through key rotation [default: EdDSA]
    #[arg(long, global = true, env = "LATCHKEY_SIGNING_ALGORITHM", value_parser = parse_algorithm)]
    pub signing_algorithm: Option<Algorithm>,
    /// Rotate the signing key when it has signed this long, e.g. `30d` [default: off]
    #[arg(long, global = true, env = "LATCHKEY_KEY_ROTATION_INTERVAL", value_parser = parse_duration)]
    pub key_rotation_interval: Option<Duration>,
    /// PostgreSQL URL (`postgres://user@host/db`) to share one database
    /// between nodes [default: SQLite in the data directory]
    #[arg(long, global = true, env = "LATCHKEY_DATABASE_URL", value_parser = DatabaseUrl::parse_arg)]
    pub database_url: Option<DatabaseUrl>,
    /// Sign-ups per minute per client address on this node; 0: no limit [default: 10]
    #[arg(long, global = true, env = "LATCHKEY_SIGN_UP_RATE_LIMIT")]
    pub sign_up_rate_limit: Option<u32>,
    /// Requests per minute per client address to the refresh, revoke,
    /// token and introspection endpoints on this node; 0: no limit [default: 600]
    #[arg(long, global = true, env = "LATCHKEY_TOKENS_RATE_LIMIT")]
    pub tokens_rate_limit: Option<u32>,
    /// Password-hashing threads [default: one per core but one, at least one]
    #[arg(long, global = true, env = "LATCHKEY_HASHING_THREADS")]
    pub hashing_threads: Option<usize>,
    /// Address or network (CIDR) of a reverse proxy whose `X-Forwarded-For`
    /// names the client; repeat for several, or comma-separate in the
    /// environment variable [default: none: the TCP peer is the client]
    #[arg(
        long = "trusted-proxy",
        value_name = "CIDR",
        global = true,
        env = "LATCHKEY_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,
    /// Let anyone read the revocation feed (`/v1/revocations`), not only
    /// confidential clients [default: false]
    #[arg(
        long,
        global = true,
        env = "LATCHKEY_PUBLIC_REVOCATION_FEED",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub public_revocation_feed: Option<bool>,
    /// Connections served at once; more wait in the listen queue [default: 10000]
    #[arg(long, global = true, env = "LATCHKEY_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// TOML config file
    #[arg(long, global = true, env = "LATCHKEY_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The TOML file: the same settings as the flags, plus a few rarely changed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    issuer: Option<String>,
    audience: Option<String>,
    client_id: Option<String>,
    #[serde(default, with = "humantime_opt")]
    access_ttl: Option<Duration>,
    #[serde(default, with = "humantime_opt")]
    refresh_grace: Option<Duration>,
    #[serde(default, with = "humantime_opt")]
    session_idle_timeout: Option<Duration>,
    #[serde(default, with = "humantime_opt")]
    session_lifetime: Option<Duration>,
    #[serde(default, with = "humantime_opt")]
    leeway: Option<Duration>,
    signing_algorithm: Option<String>,
    #[serde(default, with = "humantime_opt")]
    key_rotation_interval: Option<Duration>,
    argon2: Option<Argon2File>,
    #[serde(default, with = "humantime_opt")]
    max_access_ttl: Option<Duration>,
    #[serde(default)]
    clients: Vec<ClientFile>,
    database_url: Option<DatabaseUrl>,
    /// PostgreSQL pool size of this node.
    database_max_connections: Option<usize>,
    throttle: Option<ThrottleFile>,
    rate_limits: Option<RateLimitsFile>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    trusted_proxies: Option<Vec<String>>,
    hashing_threads: Option<usize>,
    /// Password checks that may wait for a hashing thread [default: 64 per
    /// thread]; beyond it, 503 at once.
    hashing_queue: Option<usize>,
    /// Live sessions per user [default: 50]; a sign-in beyond it ends the
    /// least recently used one.
    max_sessions_per_user: Option<usize>,
    /// How long audit records are kept [default: 90d].
    #[serde(default, with = "humantime_opt")]
    audit_retention: Option<Duration>,
    /// Whether `/v1/revocations` is readable without client credentials.
    public_revocation_feed: Option<bool>,
    /// Prefer `LATCHKEY_PASSWORD_PEPPER`: a secret in a config file tends
    /// to end up in places secrets should not.
    password_pepper: Option<Secret>,
    /// Time a client has to send a request's head.
    #[serde(default, with = "humantime_opt")]
    header_read_timeout: Option<Duration>,
    /// A connection that moves no byte for this long, between requests,
    /// is closed.
    #[serde(default, with = "humantime_opt")]
    idle_timeout: Option<Duration>,
    max_connections: Option<usize>,
    /// Prefix lengths of the networks per-address limits count.
    ipv4_prefix: Option<u8>,
    ipv6_prefix: Option<u8>,
}

/// Shortest pepper accepted (bytes); 32 random bytes are recommended.
pub const MIN_PEPPER_BYTES: usize = 16;

/// `[throttle]`: failed sign-ins (shared by all nodes through the store).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThrottleFile {
    enabled: Option<bool>,
    account_free_failures: Option<u32>,
    address_free_failures: Option<u32>,
    #[serde(default, with = "humantime_opt")]
    window: Option<Duration>,
    #[serde(default, with = "humantime_opt")]
    base_delay: Option<Duration>,
    #[serde(default, with = "humantime_opt")]
    max_delay: Option<Duration>,
}

impl ThrottleFile {
    fn apply(self, t: &mut ThrottlePolicy) {
        if let Some(on) = self.enabled {
            t.enabled = on;
        }
        if let Some(n) = self.account_free_failures {
            t.account.free_failures = n;
        }
        if let Some(n) = self.address_free_failures {
            t.address.free_failures = n;
        }
        let rules: [&mut ThrottleRule; 2] = [&mut t.account, &mut t.address];
        for rule in rules {
            if let Some(d) = self.window {
                rule.window_seconds = secs(d);
            }
            if let Some(d) = self.base_delay {
                rule.base_delay_seconds = secs(d);
            }
            if let Some(d) = self.max_delay {
                rule.max_delay_seconds = secs(d);
            }
        }
    }
}

/// `[rate_limits]`: per-address request limits, per node.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitsFile {
    sign_up_per_minute: Option<u32>,
    tokens_per_minute: Option<u32>,
}

/// A `[[clients]]` entry: clients declared here are (re)written to the
/// store at every start, so the file stays the source of truth for them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    client_id: String,
    /// `public` or `confidential`.
    #[serde(rename = "type")]
    kind: String,
    /// Hex SHA-256 of the secret (`printf %s "$SECRET" | sha256sum`), for
    /// confidential clients; the secret itself never goes in a file.
    secret_sha256: Option<String>,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default, with = "humantime_opt")]
    access_ttl: Option<Duration>,
    #[serde(default, with = "humantime_opt")]
    refresh_idle_timeout: Option<Duration>,
    #[serde(default, with = "humantime_opt")]
    session_lifetime: Option<Duration>,
    /// May introspect tokens issued to any client (resource servers);
    /// confidential clients only.
    #[serde(default)]
    introspect_any: bool,
}

impl ClientFile {
    fn into_client(self) -> Result<Client, ConfigError> {
        let invalid = |m: String| ConfigError::Invalid(format!("client {}: {m}", self.client_id));
        validate_client_id(&self.client_id).map_err(|e| invalid(e.to_string()))?;
        let kind = ClientKind::parse(&self.kind)
            .ok_or_else(|| invalid("type must be \"public\" or \"confidential\"".into()))?;
        let secret_hash = match (&self.secret_sha256, kind) {
            (Some(hex), ClientKind::Confidential) => Some(
                hex::decode(hex.trim())
                    .ok()
                    .filter(|h| h.len() == 32)
                    .ok_or_else(|| invalid("secret_sha256 must be 64 hex digits".into()))?,
            ),
            (None, ClientKind::Confidential) => {
                return Err(invalid("a confidential client needs secret_sha256".into()))
            }
            (Some(_), ClientKind::Public) => {
                return Err(invalid("a public client has no secret".into()))
            }
            (None, ClientKind::Public) => None,
        };
        if self.introspect_any && kind == ClientKind::Public {
            return Err(invalid(
                "introspect_any needs a confidential client (only they may introspect)".into(),
            ));
        }
        Ok(Client {
            client_id: self.client_id,
            kind,
            secret_hash,
            audiences: self.audiences,
            scopes: self.scopes,
            access_ttl_seconds: self.access_ttl.map(secs),
            refresh_idle_timeout_seconds: self.refresh_idle_timeout.map(secs),
            session_lifetime_seconds: self.session_lifetime.map(secs),
            introspect_any: self.introspect_any,
            created_at: 0,
        })
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Argon2File {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
}

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
    /// [`DEFAULT_QUEUE_PER_THREAD`] per thread.
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
    /// Networks per-address limits and the sign-in address throttle count
    /// clients under.
    pub network_prefixes: NetworkPrefixes,
}

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
            public_revocation_feed: false,
            password_pepper: None,
            server_secret: None,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            network_prefixes: NetworkPrefixes::default(),
        }
    }

    pub fn resolve(args: &ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let default_listen: SocketAddr = DEFAULT_LISTEN
            .parse()
            .map_err(|_| ConfigError::Invalid("default listen address".into()))?;
        let listen = args.listen.or(file.listen).unwrap_or(default_listen);
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let mut s = Settings::new(listen, data_dir);
        let p = &mut s.policy;
        if let Some(issuer) = args.issuer.clone().or(file.issuer) {
            p.issuer = issuer;
        }
        if let Some(aud) = file.audience {
            p.audience = aud;
        }
        if let Some(client_id) = file.client_id {
            p.client_id = client_id;
        }
        s.database_url = args.database_url.clone().or(file.database_url);
        if let Some(n) = file.database_max_connections {
            s.database_max_connections = n.max(1);
        }
        s.server_secret = std::env::var("LATCHKEY_SERVER_SECRET")
            .ok()
            .map(Secret::from);
        let p = &mut s.policy;
        if let Some(d) = args.access_ttl.or(file.access_ttl) {
            p.access_ttl_seconds = secs(d);
        }
        if let Some(d) = args.refresh_grace.or(file.refresh_grace) {
            p.refresh.grace_seconds = secs(d);
        }
        if let Some(d) = args.session_idle_timeout.or(file.session_idle_timeout) {
            p.refresh.idle_timeout_seconds = secs(d);
        }
        if let Some(d) = args.session_lifetime.or(file.session_lifetime) {
            p.session_lifetime_seconds = secs(d);
        }
        if let Some(d) = file.leeway {
            p.leeway_seconds = secs(d);
        }
        let file_alg = file
            .signing_algorithm
            .as_deref()
            .map(parse_algorithm)
            .transpose()
            .map_err(ConfigError::Invalid)?;
        if let Some(alg) = args.signing_algorithm.or(file_alg) {
            p.signing_algorithm = alg;
        }
        s.key_rotation_interval = args.key_rotation_interval.or(file.key_rotation_interval);
        if let Some(d) = file.max_access_ttl {
            p.max_access_ttl_seconds = Some(secs(d));
        }
        s.clients = file
            .clients
            .into_iter()
            .map(ClientFile::into_client)
            .collect::<Result<_, _>>()?;
        if let Some(a) = file.argon2 {
            s.argon2 = Argon2Cost {
                memory_kib: a.memory_kib,
                iterations: a.iterations,
                parallelism: a.parallelism,
            };
        }
        s.password_pepper = std::env::var("LATCHKEY_PASSWORD_PEPPER")
            .ok()
            .map(Secret::from)
            .or(file.password_pepper)
            .filter(|p| !p.expose().is_empty());
        if let Some(t) = file.throttle {
            t.apply(&mut s.policy.throttle);
        }
        let limits = file.rate_limits.unwrap_or_default();
        if let Some(n) = args.sign_up_rate_limit.or(limits.sign_up_per_minute) {
            s.rate_limits.sign_up_per_minute = n;
        }
        if let Some(n) = args.tokens_rate_limit.or(limits.tokens_per_minute) {
            s.rate_limits.tokens_per_minute = n;
        }
        if let Some(n) = args.hashing_threads.or(file.hashing_threads) {
            s.hashing_threads = n;
        }
        s.hashing_queue = file.hashing_queue;
        if let Some(n) = file.max_sessions_per_user {
            s.policy.max_sessions_per_user = n;
        }
        if let Some(d) = file.audit_retention {
            s.policy.audit_retention_seconds = secs(d);
        }
        // Flags replace the file's list rather than adding to it.
        let proxies = match (&args.trusted_proxies, file.trusted_proxies) {
            (flags, _) if !flags.is_empty() => flags.clone(),
            (_, from_file) => from_file.unwrap_or_default(),
        };
        s.trusted_proxies = TrustedProxies::parse(&proxies).map_err(ConfigError::Invalid)?;
        if let Some(public) = args.public_revocation_feed.or(file.public_revocation_feed) {
            s.public_revocation_feed = public;
        }
        if let Some(d) = file.header_read_timeout {
            s.header_read_timeout = d;
        }
        if let Some(d) = file.idle_timeout {
            s.idle_timeout = d;
        }
        if let Some(n) = args.max_connections.or(file.max_connections) {
            s.max_connections = n;
        }
        if let Some(n) = file.ipv4_prefix {
            s.network_prefixes.ipv4 = n;
        }
        if let Some(n) = file.ipv6_prefix {
            s.network_prefixes.ipv6 = n;
        }
        s.validate()?;
        Ok(s)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let p = &self.policy;
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if p.access_ttl_seconds < 1 {
            return invalid("access_ttl must be at least 1s");
        }
        if p.refresh.grace_seconds > 60 {
            // A long grace window lets a thief and the owner share a session.
            return invalid("refresh_grace must be at most 60s");
        }
        if p.refresh.idle_timeout_seconds < 1 || p.session_lifetime_seconds < 1 {
            return invalid("session timeouts must be at least 1s");
        }
        if p.issuer.is_empty() || p.audience.is_empty() {
            return invalid("issuer and audience must not be empty");
        }
        for c in &self.clients {
            validate_client_ttl(c, p)?;
        }
        if self
            .password_pepper
            .as_ref()
            .is_some_and(|p| p.expose().len() < MIN_PEPPER_BYTES)
        {
            return invalid(
                "password_pepper must be at least 16 bytes (32 random bytes recommended)",
            );
        }
        for rule in [p.throttle.account, p.throttle.address] {
            if rule.window_seconds < 1 || rule.base_delay_seconds < 1 {
                return invalid("throttle window and base_delay must be at least 1s");
            }
            if rule.max_delay_seconds < rule.base_delay_seconds {
                return invalid("throttle max_delay must be at least base_delay");
            }
        }
        if self.hashing_threads == 0 {
            return invalid("hashing_threads must be at least 1");
        }
        if self.hashing_queue == Some(0) {
            return invalid("hashing_queue must be at least 1");
        }
        if p.max_sessions_per_user == 0 {
            return invalid("max_sessions_per_user must be at least 1");
        }
        if p.audit_retention_seconds < 3600 {
            return invalid("audit_retention must be at least 1h");
        }
        if self
            .key_rotation_interval
            .is_some_and(|d| d < MIN_KEY_ROTATION_INTERVAL)
        {
            // The next key is published one interval before it signs; JWKS
            // caches (ours say max-age=60) must see it before its tokens.
            return invalid("key_rotation_interval must be at least 10m");
        }
        if self.header_read_timeout.is_zero() || self.idle_timeout.is_zero() {
            return invalid("header_read_timeout and idle_timeout must be more than 0s");
        }
        if !(1..=MAX_MAX_CONNECTIONS).contains(&self.max_connections) {
            return invalid("max_connections must be between 1 and 1000000");
        }
        self.network_prefixes
            .validate()
            .map_err(ConfigError::Invalid)?;
        Ok(())
    }
}

/// A client's access tokens may not outlive `max_access_ttl`: revocation
/// entries are kept only that long.
pub fn validate_client_ttl(client: &Client, policy: &Policy) -> Result<(), ConfigError> {
    if client
        .access_ttl_seconds
        .is_some_and(|t| t < 1 || t > policy.max_access_ttl())
    {
        return Err(ConfigError::Invalid(format!(
            "client {}: access_ttl must be between 1s and max_access_ttl ({}s)",
            client.client_id,
            policy.max_access_ttl()
        )));
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| {
        let offset = e.span().map_or(0, |span| span.start.min(text.len()));
        let before = text.get(..offset).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        ConfigError::Parse {
            path: path.to_owned(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
            message: e.message().to_owned(),
        }
    })
}

/// Shortest scheduled key-rotation interval accepted.
pub const MIN_KEY_ROTATION_INTERVAL: Duration = Duration::from_secs(600);

/// A JOSE signing algorithm name: `EdDSA`, `ES256` or `RS256`.
pub fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    Algorithm::parse(s.trim())
        .ok_or_else(|| format!("invalid signing algorithm {s:?}: expected EdDSA, ES256 or RS256"))
}

/// `600` (seconds) or a humantime duration such as `10m`, `14d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.trim().parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

mod humantime_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Option::<Raw>::deserialize(d)? {
            None => Ok(None),
            Some(Raw::Seconds(s)) => Ok(Some(Duration::from_secs(s))),
            Some(Raw::Text(t)) => super::parse_duration(&t)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests;
