//! Configuration: defaults, then a TOML file, then flags and `LATCHKEY_*`
//! environment variables, each overriding the one before.
//!
//! `flags` holds the command-line flags, `file` the TOML format, `resolve`
//! the layering of the two over the defaults into [`Settings`] (`settings`),
//! and `validate` what they must satisfy.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use latchkey_core::access_token::Algorithm;
use latchkey_core::service::SignUpMode;

mod database_url;
mod file;
mod flags;
mod resolve;
mod settings;
mod show;
mod validate;

pub use database_url::DatabaseUrl;
pub use flags::{DataArgs, ServeArgs};
pub use settings::{
    default_hashing_threads, Settings, DEFAULT_DATA_DIR, DEFAULT_HEADER_READ_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_LISTEN, DEFAULT_MAX_CONNECTIONS, MAX_MAX_CONNECTIONS,
};
pub use validate::{validate_client_ttl, MIN_KEY_ROTATION_INTERVAL, MIN_PEPPER_BYTES};

/// Why a configuration cannot be used.
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

/// A JOSE signing algorithm name: `EdDSA`, `Ed25519` (RFC 9864), `ES256` or `RS256`.
pub fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    Algorithm::parse(s.trim()).ok_or_else(|| {
        format!("invalid signing algorithm {s:?}: expected EdDSA, Ed25519, ES256 or RS256")
    })
}

/// `sign_up`: `open`, `invite` or `closed`.
pub fn parse_sign_up(s: &str) -> Result<SignUpMode, String> {
    SignUpMode::parse(s.trim())
        .ok_or_else(|| format!("invalid sign_up {s:?}: expected open, invite or closed"))
}

/// A listen address: an IP address and port (`127.0.0.1:8080`,
/// `[::1]:8080`), or `localhost:PORT`, which resolves to the machine's
/// loopback addresses (the first one is used). Other host names are
/// refused: which interface a name should bind is for the operator to say.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!(
            "invalid listen address {s:?}: expected an IP address and port, \
             e.g. 127.0.0.1:8080 or [::1]:8080"
        ));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("invalid listen address {s:?}: {port:?} is not a port number"))?;
    if !host.eq_ignore_ascii_case("localhost") {
        return Err(format!(
            "invalid listen address {s:?}: {host:?} is a host name; listen takes an IP \
             address (0.0.0.0 or [::] for every interface, 127.0.0.1 for this machine only) \
             or localhost"
        ));
    }
    // Resolved, not assumed: some hosts map localhost to ::1 only.
    ("localhost", port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.find(|a| a.ip().is_loopback()))
        .ok_or_else(|| format!("invalid listen address {s:?}: localhost does not resolve to a loopback address here"))
}

/// `600` (seconds) or a humantime duration such as `10m`, `14d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.trim().parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Whole seconds of `d`, as the policy counts them (saturating).
pub(crate) fn whole_seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
