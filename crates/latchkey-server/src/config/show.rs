//! The resolved settings as TOML, in the config file's own key names (what
//! `check-config` prints): an operator can compare it with a file, or use
//! it as one. Secrets are never in it: the pepper and the database
//! password show as `[redacted]`, a client's secret hash not at all.

use std::time::Duration;

use latchkey_core::client::Client;
use latchkey_core::secret::REDACTED;
use toml::{Table, Value};

use super::Settings;

/// `d` as a file would write it, in the largest unit that divides it:
/// `90d`, `10m`, `90s` (whole seconds, as settings count them).
fn duration(d: Duration) -> Value {
    let secs = d.as_secs();
    let (n, unit) = [(86_400, "d"), (3_600, "h"), (60, "m")]
        .into_iter()
        .find(|(size, _)| secs >= *size && secs.is_multiple_of(*size))
        .map_or((secs, "s"), |(size, unit)| (secs / size, unit));
    Value::String(format!("{n}{unit}"))
}

fn seconds(s: i64) -> Value {
    duration(Duration::from_secs(u64::try_from(s).unwrap_or(0)))
}

fn count(n: impl TryInto<i64>) -> Value {
    Value::Integer(n.try_into().unwrap_or(i64::MAX))
}

fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}

fn client(c: &Client) -> Value {
    let mut t = Table::new();
    t.insert("client_id".into(), c.client_id.clone().into());
    t.insert("type".into(), c.kind.as_str().into());
    t.insert("audiences".into(), strings(&c.audiences));
    t.insert("scopes".into(), strings(&c.scopes));
    let ttls = [
        ("access_ttl", c.access_ttl_seconds),
        ("refresh_idle_timeout", c.refresh_idle_timeout_seconds),
        ("session_lifetime", c.session_lifetime_seconds),
    ];
    for (key, ttl) in ttls {
        if let Some(s) = ttl {
            t.insert(key.into(), seconds(s));
        }
    }
    t.insert("introspect_any".into(), c.introspect_any.into());
    t.insert("allowed_origins".into(), strings(&c.allowed_origins));
    Value::Table(t)
}

impl Settings {
    /// The settings as a TOML document with the config file's key names.
    pub fn to_toml(&self) -> String {
        let p = &self.policy;
        let mut t = Table::new();
        let mut put = |key: &str, value: Value| {
            t.insert(key.to_owned(), value);
        };
        put("listen", self.listen.to_string().into());
        put("data_dir", self.data_dir.display().to_string().into());
        put("issuer", p.issuer.clone().into());
        put("public_url", p.public_url().to_owned().into());
        put("audience", p.audience.clone().into());
        put("client_id", p.client_id.clone().into());
        put("access_ttl", seconds(p.access_ttl_seconds));
        put("refresh_grace", seconds(p.refresh.grace_seconds));
        put(
            "session_idle_timeout",
            seconds(p.refresh.idle_timeout_seconds),
        );
        put("session_lifetime", seconds(p.session_lifetime_seconds));
        put(
            "browser_session_lifetime",
            seconds(p.browser_session_seconds),
        );
        put("leeway", seconds(p.leeway_seconds));
        if let Some(s) = p.max_access_ttl_seconds {
            put("max_access_ttl", seconds(s));
        }
        put("signing_algorithm", p.signing_algorithm.as_str().into());
        put("sign_up", p.sign_up.as_str().into());
        if let Some(d) = self.key_rotation_interval {
            put("key_rotation_interval", duration(d));
        }
        if let Some(url) = &self.database_url {
            put("database_url", url.redacted().into());
        }
        put(
            "database_max_connections",
            count(self.database_max_connections),
        );
        put("hashing_threads", count(self.hashing_threads));
        put("hashing_queue", count(self.hashing_queue()));
        put("max_sessions_per_user", count(p.max_sessions_per_user));
        put("audit_retention", seconds(p.audit_retention_seconds));
        put("public_revocation_feed", self.public_revocation_feed.into());
        let proxies: Vec<String> = self
            .trusted_proxies
            .networks()
            .iter()
            .map(ToString::to_string)
            .collect();
        put("trusted_proxies", strings(&proxies));
        put("cors_allowed_origins", strings(&self.cors_allowed_origins));
        if self.password_pepper.is_some() {
            put("password_pepper", REDACTED.into());
        }
        if let Some(smtp) = &self.smtp {
            put(
                "smtp_url",
                crate::mail::redacted_url(smtp.url.expose()).into(),
            );
            put("smtp_from", smtp.from.clone().into());
            put("smtp_timeout", duration(smtp.timeout));
        }
        put("header_read_timeout", duration(self.header_read_timeout));
        put("idle_timeout", duration(self.idle_timeout));
        put("max_connections", count(self.max_connections));
        if let Some(metrics_listen) = self.metrics_listen {
            put("metrics_listen", metrics_listen.to_string().into());
        }
        put("ipv4_prefix", count(self.network_prefixes.ipv4));
        put("ipv6_prefix", count(self.network_prefixes.ipv6));

        let mut argon2 = Table::new();
        argon2.insert("memory_kib".into(), count(self.argon2.memory_kib));
        argon2.insert("iterations".into(), count(self.argon2.iterations));
        argon2.insert("parallelism".into(), count(self.argon2.parallelism));
        put("argon2", Value::Table(argon2));

        // The file sets one window and delay pair for both rules.
        let th = &p.throttle;
        let mut throttle = Table::new();
        throttle.insert("enabled".into(), th.enabled.into());
        throttle.insert(
            "account_free_failures".into(),
            count(th.account.free_failures),
        );
        throttle.insert(
            "address_free_failures".into(),
            count(th.address.free_failures),
        );
        throttle.insert("window".into(), seconds(th.account.window_seconds));
        throttle.insert("base_delay".into(), seconds(th.account.base_delay_seconds));
        throttle.insert("max_delay".into(), seconds(th.account.max_delay_seconds));
        put("throttle", Value::Table(throttle));

        let mut limits = Table::new();
        limits.insert(
            "sign_up_per_minute".into(),
            count(self.rate_limits.sign_up_per_minute),
        );
        limits.insert(
            "tokens_per_minute".into(),
            count(self.rate_limits.tokens_per_minute),
        );
        limits.insert(
            "recovery_per_minute".into(),
            count(self.rate_limits.recovery_per_minute),
        );
        put("rate_limits", Value::Table(limits));
        if !self.clients.is_empty() {
            put(
                "clients",
                Value::Array(self.clients.iter().map(client).collect()),
            );
        }
        // The server secret is no file setting, but whether one came from
        // the environment is worth seeing.
        let from_env = match self.server_secret {
            Some(_) => format!(
                "# server_secret = \"{REDACTED}\" (from LATCHKEY_SERVER_SECRET, not a file key)\n"
            ),
            None => String::new(),
        };
        format!("{from_env}{t}")
    }

    /// Why the issuer tokens would carry is of no use to a verifier, if it
    /// is not: the default issuer names the listen address, and an
    /// unspecified one (`0.0.0.0`, `[::]`) is nowhere anyone can reach.
    pub fn unusable_issuer_warning(&self) -> Option<String> {
        let derived = format!("http://{}", self.listen);
        (self.listen.ip().is_unspecified() && self.policy.issuer == derived).then(|| {
            format!(
                "listening on {} without --issuer (issuer in the config file): tokens will \
                 carry the issuer {derived}, which no resource server can reach or expect; \
                 set --issuer to the public URL of this service",
                self.listen
            )
        })
    }
}
