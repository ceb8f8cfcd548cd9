//! The layering: defaults, then the TOML file, then flags and `LATCHKEY_*`
//! environment variables, each overriding the one before.

use std::net::SocketAddr;
use std::path::PathBuf;

use latchkey_core::password::Argon2Cost;
use latchkey_core::secret::Secret;

use super::file::{read_file, ClientFile, FileConfig};
use super::{
    parse_algorithm, parse_listen, parse_sign_up, whole_seconds, ConfigError, ServeArgs, Settings,
    DEFAULT_DATA_DIR, DEFAULT_LISTEN,
};
use crate::client_address::TrustedProxies;
use crate::mail::{SmtpSettings, DEFAULT_SMTP_TIMEOUT};

impl Settings {
    /// The settings `args` (flags and environment) and the config file they
    /// name make, over the defaults; validated.
    pub fn resolve(args: &ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let default_listen: SocketAddr = DEFAULT_LISTEN
            .parse()
            .map_err(|_| ConfigError::Invalid("default listen address".into()))?;
        let file_listen = parse_from_file(file.listen.as_deref(), parse_listen)?;
        let listen = args.listen.or(file_listen).unwrap_or(default_listen);
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
        p.public_url = args.public_url.clone().or(file.public_url);
        if let Some(url) = args.smtp_url.clone().or(file.smtp_url) {
            s.smtp = Some(SmtpSettings {
                url,
                from: args
                    .smtp_from
                    .clone()
                    .or(file.smtp_from)
                    .unwrap_or_default(),
                timeout: file.smtp_timeout.unwrap_or(DEFAULT_SMTP_TIMEOUT),
            });
        }
        s.policy.mail_enabled = s.smtp.is_some();
        let config_dir = args.config.as_deref().and_then(std::path::Path::parent);
        s.policy.mail_templates = crate::mail::load_templates(config_dir)?;
        let p = &mut s.policy;
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
            p.access_ttl_seconds = whole_seconds(d);
        }
        if let Some(d) = args.refresh_grace.or(file.refresh_grace) {
            p.refresh.grace_seconds = whole_seconds(d);
        }
        if let Some(d) = args.session_idle_timeout.or(file.session_idle_timeout) {
            p.refresh.idle_timeout_seconds = whole_seconds(d);
        }
        if let Some(d) = args.session_lifetime.or(file.session_lifetime) {
            p.session_lifetime_seconds = whole_seconds(d);
        }
        if let Some(d) = args
            .browser_session_lifetime
            .or(file.browser_session_lifetime)
        {
            p.browser_session_seconds = whole_seconds(d);
        }
        if let Some(d) = file.leeway {
            p.leeway_seconds = whole_seconds(d);
        }
        let file_alg = parse_from_file(file.signing_algorithm.as_deref(), parse_algorithm)?;
        if let Some(alg) = args.signing_algorithm.or(file_alg) {
            p.signing_algorithm = alg;
        }
        let file_sign_up = parse_from_file(file.sign_up.as_deref(), parse_sign_up)?;
        if let Some(mode) = args.sign_up.or(file_sign_up) {
            p.sign_up = mode;
        }
        s.key_rotation_interval = args.key_rotation_interval.or(file.key_rotation_interval);
        if let Some(d) = file.max_access_ttl {
            p.max_access_ttl_seconds = Some(whole_seconds(d));
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
        if let Some(n) = limits.recovery_per_minute {
            s.rate_limits.recovery_per_minute = n;
        }
        if let Some(n) = args.hashing_threads.or(file.hashing_threads) {
            s.hashing_threads = n;
        }
        s.hashing_queue = file.hashing_queue;
        if let Some(n) = file.max_sessions_per_user {
            s.policy.max_sessions_per_user = n;
        }
        if let Some(d) = file.audit_retention {
            s.policy.audit_retention_seconds = whole_seconds(d);
        }
        // Flags replace the file's list rather than adding to it.
        let proxies = match (&args.trusted_proxies, file.trusted_proxies) {
            (flags, _) if !flags.is_empty() => flags.clone(),
            (_, from_file) => from_file.unwrap_or_default(),
        };
        s.trusted_proxies = TrustedProxies::parse(&proxies).map_err(ConfigError::Invalid)?;
        let origins = match (&args.cors_allowed_origins, file.cors_allowed_origins) {
            (flags, _) if !flags.is_empty() => flags.clone(),
            (_, from_file) => from_file.unwrap_or_default(),
        };
        s.cors_allowed_origins = origins
            .iter()
            .map(|o| crate::browser::parse_origin(o.trim()))
            .collect::<Result<_, _>>()
            .map_err(ConfigError::Invalid)?;
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
        let file_metrics_listen = parse_from_file(file.metrics_listen.as_deref(), parse_listen)?;
        s.metrics_listen = args.metrics_listen.or(file_metrics_listen);
        s.validate()?;
        Ok(s)
    }
}

/// A config-file value parsed as its flag is, its error naming the value.
fn parse_from_file<T>(
    value: Option<&str>,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    value.map(parse).transpose().map_err(ConfigError::Invalid)
}
