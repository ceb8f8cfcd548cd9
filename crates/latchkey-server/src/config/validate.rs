//! What a configuration must satisfy before anything starts on it.

use std::time::Duration;

use latchkey_core::client::Client;
use latchkey_core::Policy;
use latchkey_store::postgres::connection_string::ConnectionString;

use super::{ConfigError, Settings, MAX_MAX_CONNECTIONS};

/// Shortest pepper accepted (bytes); 32 random bytes are recommended.
pub const MIN_PEPPER_BYTES: usize = 16;

/// Shortest scheduled key-rotation interval accepted.
pub const MIN_KEY_ROTATION_INTERVAL: Duration = Duration::from_secs(600);

impl Settings {
    /// Refuses settings the service cannot keep its promises under.
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
        if p.refresh.idle_timeout_seconds < 1
            || p.session_lifetime_seconds < 1
            || p.browser_session_seconds < 1
        {
            return invalid("session timeouts must be at least 1s");
        }
        if p.issuer.is_empty() || p.audience.is_empty() {
            return invalid("issuer and audience must not be empty");
        }
        if let Some(url) = &p.public_url {
            if !(url.starts_with("https://") || url.starts_with("http://"))
                || url.contains(['?', '#'])
            {
                return invalid("public_url must be an http(s) URL without a query or fragment");
            }
        }
        if let Some(smtp) = &self.smtp {
            crate::mail::validate(smtp).map_err(ConfigError::Invalid)?;
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
        if self
            .metrics_listen
            .is_some_and(|m| m == self.listen && m.port() != 0)
        {
            return invalid("metrics_listen must differ from listen");
        }
        self.network_prefixes
            .validate()
            .map_err(ConfigError::Invalid)?;
        if let Some(url) = &self.database_url {
            // sslmode and sslrootcert are checked here, before any start;
            // the message names keys, never the password.
            ConnectionString::parse(url.expose())
                .map_err(|e| ConfigError::Invalid(format!("database_url: {e}")))?;
        }
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
