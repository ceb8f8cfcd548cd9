//! The flags: the settings flags of `serve` and `check-config`, each with
//! its `LATCHKEY_*` environment twin, and the few that locate the data
//! (all the operator commands take).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use latchkey_core::access_token::Algorithm;
use latchkey_core::service::SignUpMode;

use latchkey_core::secret::Secret;

use super::{
    parse_algorithm, parse_duration, parse_listen, parse_sign_up, ConfigError, DatabaseUrl,
    Settings,
};

/// The settings flags: those of `latchkey serve`, which `check-config`
/// takes too. Every one has a `LATCHKEY_*` twin.
#[derive(Debug, Default, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on: an IP address and port, or `localhost:PORT`
    /// [default: 127.0.0.1:8080]
    #[arg(long, env = "LATCHKEY_LISTEN", value_parser = parse_listen)]
    pub listen: Option<SocketAddr>,
    /// Directory for the database, server secret and keys [default: ./latchkey-data]
    #[arg(long, env = "LATCHKEY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `iss` of access tokens [default: http://<listen address>]
    #[arg(long, env = "LATCHKEY_ISSUER")]
    pub issuer: Option<String>,
    /// Where people reach this service in a browser: the base of the links
    /// in reset and verification emails [default: the issuer]
    #[arg(long, env = "LATCHKEY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Mail server for reset and verification links: `smtps://user:pass@host`,
    /// `smtp://host:587?tls=starttls`, or plain `smtp://host:port` (loopback
    /// only) [default: no mail]
    #[arg(long, env = "LATCHKEY_SMTP_URL", hide_env_values = true, value_parser = parse_secret)]
    pub smtp_url: Option<Secret>,
    /// Sender of those mails, e.g. `Latchkey <noreply@example.com>`
    #[arg(long, env = "LATCHKEY_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// Access-token lifetime, e.g. `10m` or `600` (seconds) [default: 10m]
    #[arg(long, env = "LATCHKEY_ACCESS_TTL", value_parser = parse_duration)]
    pub access_ttl: Option<Duration>,
    /// How long a just-rotated refresh token still yields its successor [default: 10s]
    #[arg(long, env = "LATCHKEY_REFRESH_GRACE", value_parser = parse_duration)]
    pub refresh_grace: Option<Duration>,
    /// A session not refreshed for this long ends [default: 14d]
    #[arg(long, env = "LATCHKEY_SESSION_IDLE_TIMEOUT", value_parser = parse_duration)]
    pub session_idle_timeout: Option<Duration>,
    /// A session ends this long after sign-in, however active [default: 90d]
    #[arg(long, env = "LATCHKEY_SESSION_LIFETIME", value_parser = parse_duration)]
    pub session_lifetime: Option<Duration>,
    /// The hosted sign-in page lets a signed-in person through without
    /// their password for this long [default: 12h]
    #[arg(long, env = "LATCHKEY_BROWSER_SESSION_LIFETIME", value_parser = parse_duration)]
    pub browser_session_lifetime: Option<Duration>,
    /// Algorithm of new signing keys: EdDSA, Ed25519 (the same keys under RFC 9864's name), ES256 or RS256; a change takes
    /// effect through key rotation [default: EdDSA]
    #[arg(long, env = "LATCHKEY_SIGNING_ALGORITHM", value_parser = parse_algorithm)]
    pub signing_algorithm: Option<Algorithm>,
    /// Who may sign up: `open` (anyone), `invite` (with an operator's
    /// invite code) or `closed` [default: open]
    #[arg(long, env = "LATCHKEY_SIGN_UP", value_parser = parse_sign_up)]
    pub sign_up: Option<SignUpMode>,
    /// Rotate the signing key when it has signed this long, e.g. `30d` [default: off]
    #[arg(long, env = "LATCHKEY_KEY_ROTATION_INTERVAL", value_parser = parse_duration)]
    pub key_rotation_interval: Option<Duration>,
    /// PostgreSQL URL (`postgres://user@host/db`) to share one database
    /// between nodes [default: SQLite in the data directory]
    #[arg(long, env = "LATCHKEY_DATABASE_URL", value_parser = DatabaseUrl::parse_arg)]
    pub database_url: Option<DatabaseUrl>,
    /// Sign-ups per minute per client address on this node; 0: no limit [default: 10]
    #[arg(long, env = "LATCHKEY_SIGN_UP_RATE_LIMIT")]
    pub sign_up_rate_limit: Option<u32>,
    /// Requests per minute per client address to the refresh, revoke,
    /// token and introspection endpoints on this node; 0: no limit [default: 600]
    #[arg(long, env = "LATCHKEY_TOKENS_RATE_LIMIT")]
    pub tokens_rate_limit: Option<u32>,
    /// Password-hashing threads [default: one per core but one, at least one]
    #[arg(long, env = "LATCHKEY_HASHING_THREADS")]
    pub hashing_threads: Option<usize>,
    /// Address or network (CIDR) of a reverse proxy whose `X-Forwarded-For`
    /// names the client; repeat for several, or comma-separate in the
    /// environment variable [default: none: the TCP peer is the client]
    #[arg(
        long = "trusted-proxy",
        value_name = "CIDR",
        env = "LATCHKEY_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,
    /// Web origin (e.g. `https://app.example.com`) whose pages may call the
    /// API with credentials (CORS); repeat for several, or comma-separate in
    /// the environment variable [default: none]
    #[arg(
        long = "cors-allowed-origin",
        value_name = "ORIGIN",
        env = "LATCHKEY_CORS_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_allowed_origins: Vec<String>,
    /// Let anyone read the revocation feed (`/v1/revocations`), not only
    /// confidential clients [default: false]
    #[arg(
        long,
        env = "LATCHKEY_PUBLIC_REVOCATION_FEED",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub public_revocation_feed: Option<bool>,
    /// Connections served at once; more wait in the listen queue [default: 10000]
    #[arg(long, env = "LATCHKEY_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Serve `/metrics` on this address (loopback or a private network)
    /// instead of the main listener; an IP address and port, or
    /// `localhost:PORT` [default: on the main listener]
    #[arg(long, env = "LATCHKEY_METRICS_LISTEN", value_parser = parse_listen)]
    pub metrics_listen: Option<SocketAddr>,
    /// TOML config file
    #[arg(long, env = "LATCHKEY_CONFIG")]
    pub config: Option<PathBuf>,
}

/// What locates the data an operator command works on, and nothing else:
/// server settings such as `--access-ttl` are neither accepted nor read
/// from the environment, so none can end up in what a command stores.
/// Each may come from its `LATCHKEY_*` variable, as for `serve`, so a
/// command run where the server runs finds the same data.
#[derive(Debug, Default, Clone, Args)]
pub struct DataArgs {
    /// Directory of the database, server secret and keys [default: the
    /// config file's `data_dir`, else ./latchkey-data]
    #[arg(long, global = true, env = "LATCHKEY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The server's TOML config file, for `data_dir`, `database_url` and the
    /// policy the command must respect (e.g. `max_access_ttl`)
    #[arg(long, global = true, env = "LATCHKEY_CONFIG")]
    pub config: Option<PathBuf>,
    /// PostgreSQL URL of the shared database [default: the config file's
    /// `database_url`, else SQLite in the data directory]
    #[arg(long, global = true, env = "LATCHKEY_DATABASE_URL", value_parser = DatabaseUrl::parse_arg)]
    pub database_url: Option<DatabaseUrl>,
}

impl DataArgs {
    /// The settings of the data these args locate: the config file over the
    /// defaults, with these three flags on top; no other flag or variable.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        Settings::resolve(&ServeArgs {
            data_dir: self.data_dir.clone(),
            config: self.config.clone(),
            database_url: self.database_url.clone(),
            ..ServeArgs::default()
        })
    }
}

/// A secret flag's value, kept out of `Debug` from the start.
fn parse_secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::from(s))
}
