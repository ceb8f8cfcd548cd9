//! The TOML config file's format and reading it. A file never echoes its
//! text back in an error: it may hold the pepper or the database password.

use std::path::{Path, PathBuf};
use std::time::Duration;

use latchkey_core::client::{validate_client_id, validate_redirect_uris, Client, ClientKind};
use latchkey_core::secret::Secret;
use latchkey_core::throttle::{ThrottlePolicy, ThrottleRule};
use serde::Deserialize;

use super::{whole_seconds, ConfigError, DatabaseUrl};

/// The TOML file: the same settings as the flags, plus a few rarely changed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    /// Parsed as the `--listen` flag is (see [`super::parse_listen`]).
    pub(super) listen: Option<String>,
    pub(super) data_dir: Option<PathBuf>,
    pub(super) issuer: Option<String>,
    pub(super) public_url: Option<String>,
    /// Prefer `LATCHKEY_SMTP_URL`: it may hold the mail server's password.
    pub(super) smtp_url: Option<Secret>,
    pub(super) smtp_from: Option<String>,
    #[serde(default, with = "humantime_opt")]
    pub(super) smtp_timeout: Option<Duration>,
    pub(super) audience: Option<String>,
    pub(super) client_id: Option<String>,
    #[serde(default, with = "humantime_opt")]
    pub(super) access_ttl: Option<Duration>,
    #[serde(default, with = "humantime_opt")]
    pub(super) refresh_grace: Option<Duration>,
    #[serde(default, with = "humantime_opt")]
    pub(super) session_idle_timeout: Option<Duration>,
    #[serde(default, with = "humantime_opt")]
    pub(super) session_lifetime: Option<Duration>,
    #[serde(default, with = "humantime_opt")]
    pub(super) browser_session_lifetime: Option<Duration>,
    #[serde(default, with = "humantime_opt")]
    pub(super) leeway: Option<Duration>,
    pub(super) signing_algorithm: Option<String>,
    pub(super) sign_up: Option<String>,
    #[serde(default, with = "humantime_opt")]
    pub(super) key_rotation_interval: Option<Duration>,
    pub(super) argon2: Option<Argon2File>,
    #[serde(default, with = "humantime_opt")]
    pub(super) max_access_ttl: Option<Duration>,
    #[serde(default)]
    pub(super) clients: Vec<ClientFile>,
    pub(super) database_url: Option<DatabaseUrl>,
    /// PostgreSQL pool size of this node.
    pub(super) database_max_connections: Option<usize>,
    pub(super) throttle: Option<ThrottleFile>,
    pub(super) rate_limits: Option<RateLimitsFile>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub(super) trusted_proxies: Option<Vec<String>>,
    pub(super) cors_allowed_origins: Option<Vec<String>>,
    pub(super) hashing_threads: Option<usize>,
    /// Password checks that may wait for a hashing thread [default: 64 per
    /// thread]; beyond it, 503 at once.
    pub(super) hashing_queue: Option<usize>,
    /// Live sessions per user [default: 50]; a sign-in beyond it ends the
    /// least recently used one.
    pub(super) max_sessions_per_user: Option<usize>,
    /// How long audit records are kept [default: 90d].
    #[serde(default, with = "humantime_opt")]
    pub(super) audit_retention: Option<Duration>,
    /// Whether `/v1/revocations` is readable without client credentials.
    pub(super) public_revocation_feed: Option<bool>,
    /// Prefer `LATCHKEY_PASSWORD_PEPPER`: a secret in a config file tends
    /// to end up in places secrets should not.
    pub(super) password_pepper: Option<Secret>,
    /// Time a client has to send a request's head.
    #[serde(default, with = "humantime_opt")]
    pub(super) header_read_timeout: Option<Duration>,
    /// A connection that moves no byte for this long, between requests,
    /// is closed.
    #[serde(default, with = "humantime_opt")]
    pub(super) idle_timeout: Option<Duration>,
    pub(super) max_connections: Option<usize>,
    /// Where `/metrics` is served instead of the main listener; parsed as
    /// `listen` is.
    pub(super) metrics_listen: Option<String>,
    /// Prefix lengths of the networks per-address limits count.
    pub(super) ipv4_prefix: Option<u8>,
    pub(super) ipv6_prefix: Option<u8>,
}

/// `[throttle]`: failed sign-ins (shared by all nodes through the store).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ThrottleFile {
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
    pub(super) fn apply(self, t: &mut ThrottlePolicy) {
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
                rule.window_seconds = whole_seconds(d);
            }
            if let Some(d) = self.base_delay {
                rule.base_delay_seconds = whole_seconds(d);
            }
            if let Some(d) = self.max_delay {
                rule.max_delay_seconds = whole_seconds(d);
            }
        }
    }
}

/// `[rate_limits]`: per-address request limits, per node.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RateLimitsFile {
    pub(super) sign_up_per_minute: Option<u32>,
    pub(super) tokens_per_minute: Option<u32>,
    pub(super) recovery_per_minute: Option<u32>,
}

/// A `[[clients]]` entry: clients declared here are (re)written to the
/// store at every start, so the file stays the source of truth for them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClientFile {
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
    /// Web origins whose pages may call the API with credentials.
    #[serde(default)]
    allowed_origins: Vec<String>,
    /// Where the authorization endpoint may send codes (exact match).
    #[serde(default)]
    redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser back to.
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    /// People are asked to consent to its scopes.
    #[serde(default)]
    third_party: bool,
    /// Its ID tokens' algorithm: RS256 (default) or the access tokens'.
    id_token_algorithm: Option<String>,
}

impl ClientFile {
    pub(super) fn into_client(self) -> Result<Client, ConfigError> {
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
        let allowed_origins = self
            .allowed_origins
            .iter()
            .map(|o| crate::browser::parse_origin(o.trim()))
            .collect::<Result<_, _>>()
            .map_err(&invalid)?;
        validate_redirect_uris(&self.redirect_uris)
            .and_then(|()| validate_redirect_uris(&self.post_logout_redirect_uris))
            .map_err(|e| invalid(e.to_string()))?;
        let id_token_algorithm = self
            .id_token_algorithm
            .as_deref()
            .map(super::parse_algorithm)
            .transpose()
            .map_err(&invalid)?;
        Ok(Client {
            client_id: self.client_id,
            kind,
            secret_hash,
            audiences: self.audiences,
            scopes: self.scopes,
            access_ttl_seconds: self.access_ttl.map(whole_seconds),
            refresh_idle_timeout_seconds: self.refresh_idle_timeout.map(whole_seconds),
            session_lifetime_seconds: self.session_lifetime.map(whole_seconds),
            introspect_any: self.introspect_any,
            allowed_origins,
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            third_party: self.third_party,
            id_token_algorithm,
            created_at: 0,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Argon2File {
    pub(super) memory_kib: u32,
    pub(super) iterations: u32,
    pub(super) parallelism: u32,
}

pub(super) fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
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
            Some(Raw::Text(t)) => crate::config::parse_duration(&t)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}
