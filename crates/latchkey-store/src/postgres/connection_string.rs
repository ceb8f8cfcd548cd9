//! The connection string as Latchkey reads it. libpq's TLS parameters
//! (`sslmode`, `sslrootcert`) are taken out and read here, because
//! tokio-postgres knows only `disable`, `prefer` and `require` and refuses
//! `sslrootcert`; everything else is left to tokio-postgres. Also how a
//! connection's target is named in errors (host and port, never the
//! password).

use std::path::PathBuf;

use tokio_postgres::config::{Host, SslMode as DriverSslMode};
use tokio_postgres::Config;

/// libpq's `sslmode`, less `allow` (plain first, TLS only if refused),
/// which tokio-postgres cannot do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain connections only.
    Disable,
    /// TLS if the server offers it, else plain; the certificate is checked
    /// only when `sslrootcert` is given. libpq's default, and so ours.
    Prefer,
    /// TLS or nothing; the certificate is checked only when `sslrootcert`
    /// is given (then as `verify-ca`).
    Require,
    /// TLS, the server's chain verified against `sslrootcert`; any host name.
    VerifyCa,
    /// TLS, the chain verified and the certificate valid for the host name.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, ConnectionStringError> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            "allow" => return Err(ConnectionStringError::AllowUnsupported),
            other => return Err(ConnectionStringError::UnknownSslMode(other.to_owned())),
        })
    }
}

/// Where the certificates that a server's chain must end in come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCertificates {
    /// A PEM file of one or more CA certificates.
    File(PathBuf),
    /// The platform's trust store (`sslrootcert=system`, as in libpq 16).
    System,
}

/// How a connection uses TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root_certificates: Option<RootCertificates>,
}

/// A connection string that cannot be used; names keys, never values that
/// could hold a password.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionStringError {
    #[error("invalid PostgreSQL connection string: {0}")]
    Syntax(String),
    #[error("sslmode={0} is not one of disable, prefer, require, verify-ca, verify-full")]
    UnknownSslMode(String),
    #[error("sslmode=allow is not supported: use prefer, require or verify-full")]
    AllowUnsupported,
    #[error(
        "sslmode={0} verifies the server's certificate and needs sslrootcert=<PEM file of the CA> \
         (or sslrootcert=system for the platform's trusted CAs)"
    )]
    NoRootCertificates(&'static str),
}

/// A connection string split into what tokio-postgres reads and what the
/// TLS connector reads.
#[derive(Debug, Clone)]
pub struct ConnectionString {
    pub config: Config,
    pub tls: TlsSettings,
}

impl ConnectionString {
    /// Reads a `postgres://` URL or a libpq key-value string.
    pub fn parse(s: &str) -> Result<Self, ConnectionStringError> {
        let mut mode = None;
        let mut root = None;
        let mut take = |key: &str, value: &str| -> Result<bool, ConnectionStringError> {
            match key {
                "sslmode" => mode = Some(SslMode::parse(value)?),
                "sslrootcert" => {
                    root = Some(if value == "system" {
                        RootCertificates::System
                    } else {
                        RootCertificates::File(PathBuf::from(value))
                    })
                }
                _ => return Ok(false),
            }
            Ok(true)
        };
        let rest = if is_url(s) {
            without_url_params(s, &mut take)?
        } else {
            without_key_value_params(s, &mut take)?
        };
        let mut config: Config = rest.parse().map_err(|e: tokio_postgres::Error| {
            // The driver quotes the character it did not expect, which may
            // be one of the password's: keep only where it was.
            let chain = error_chain(&e);
            let shown = match chain.split_once(": expected `") {
                Some((before, _)) => before.to_owned(),
                None => chain,
            };
            ConnectionStringError::Syntax(shown)
        })?;
        let mode = mode.unwrap_or(SslMode::Prefer);
        if root.is_none() {
            match mode {
                SslMode::VerifyCa => {
                    return Err(ConnectionStringError::NoRootCertificates("verify-ca"))
                }
                SslMode::VerifyFull => {
                    return Err(ConnectionStringError::NoRootCertificates("verify-full"))
                }
                _ => {}
            }
        }
        config.ssl_mode(match mode {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
        });
        Ok(Self {
            config,
            tls: TlsSettings {
                mode,
                root_certificates: root,
            },
        })
    }
}

fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// The URL without the parameters `take` claims (it gets them decoded).
fn without_url_params(
    url: &str,
    take: &mut impl FnMut(&str, &str) -> Result<bool, ConnectionStringError>,
) -> Result<String, ConnectionStringError> {
    // The query starts after the user info, which may hold a `?` of its own.
    let after_user_info = url.find('@').map_or(0, |at| at + 1);
    let Some(q) = url[after_user_info..]
        .find('?')
        .map(|q| q + after_user_info)
    else {
        return Ok(url.to_owned());
    };
    let mut kept = Vec::new();
    for param in url[q + 1..].split('&').filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        if !take(key, &percent_decode(value)?)? {
            kept.push(param);
        }
    }
    let mut out = url[..q].to_owned();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, ConnectionStringError> {
    let bad = || ConnectionStringError::Syntax("invalid percent-encoding in a parameter".into());
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// The key-value string without the parameters `take` claims; the others
/// are written back quoted.
fn without_key_value_params(
    s: &str,
    take: &mut impl FnMut(&str, &str) -> Result<bool, ConnectionStringError>,
) -> Result<String, ConnectionStringError> {
    let mut kept = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(ConnectionStringError::Syntax(format!(
                "expected `=` after `{key}`"
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(ConnectionStringError::Syntax(format!(
                            "unterminated quoted value of `{key}`"
                        )))
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        if !take(&key, &value)? {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push(format!("{key}='{quoted}'"));
        }
    }
    Ok(kept.join(" "))
}

/// Where a connection goes, for errors: `host:port` for each host (the
/// socket directory for Unix sockets).
pub fn target(config: &Config) -> String {
    let ports = config.get_ports();
    let port = |i: usize| match ports {
        [] => 5432,
        [one] => *one,
        many => many.get(i).copied().unwrap_or(5432),
    };
    let mut hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| match host {
            Host::Tcp(name) if name.contains(':') => format!("[{name}]:{}", port(i)),
            Host::Tcp(name) => format!("{name}:{}", port(i)),
            #[cfg(unix)]
            Host::Unix(dir) => format!("{}:{}", dir.display(), port(i)),
        })
        .collect();
    if hosts.is_empty() {
        hosts = config
            .get_hostaddrs()
            .iter()
            .enumerate()
            .map(|(i, addr)| std::net::SocketAddr::new(*addr, port(i)).to_string())
            .collect();
    }
    if hosts.is_empty() {
        return format!("localhost:{}", port(0));
    }
    hosts.join(",")
}

/// An error with its causes, `outer: inner: innermost`, leaving out a
/// cause whose text the message already holds.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_a_url() {
        let parsed = ConnectionString::parse(
            "postgres://me:p%3Fw@db.example:6432/auth?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        )
        .expect("parses");
        assert_eq!(parsed.tls.mode, SslMode::VerifyFull);
        assert_eq!(
            parsed.tls.root_certificates,
            Some(RootCertificates::File("/etc/ca.pem".into()))
        );
        assert_eq!(parsed.config.get_ssl_mode(), DriverSslMode::Require);
        assert_eq!(parsed.config.get_application_name(), Some("x"));
        assert_eq!(target(&parsed.config), "db.example:6432");
    }

    #[test]
    fn tls_parameters_are_taken_out_of_a_key_value_string() {
        let parsed = ConnectionString::parse(
            "host=127.0.0.1 port=5443 password='a b\\'c' sslmode = verify-ca sslrootcert='/tmp/my ca.pem' dbname=x",
        )
        .expect("parses");
        assert_eq!(parsed.tls.mode, SslMode::VerifyCa);
        assert_eq!(
            parsed.tls.root_certificates,
            Some(RootCertificates::File("/tmp/my ca.pem".into()))
        );
        assert_eq!(parsed.config.get_password(), Some(&b"a b'c"[..]));
        assert_eq!(parsed.config.get_dbname(), Some("x"));
        assert_eq!(target(&parsed.config), "127.0.0.1:5443");
    }

    #[test]
    fn defaults_and_refusals() {
        let plain = ConnectionString::parse("postgres://h/db").expect("parses");
        assert_eq!(plain.tls.mode, SslMode::Prefer);
        assert_eq!(target(&plain.config), "h:5432");
        for (s, wanted) in [
            (
                "postgres://h/db?sslmode=strict",
                "sslmode=strict is not one of",
            ),
            (
                "postgres://h/db?sslmode=allow",
                "sslmode=allow is not supported",
            ),
            ("postgres://h/db?sslmode=verify-full", "needs sslrootcert"),
            ("host=h sslmode=verify-ca", "needs sslrootcert"),
            (
                "postgres://u:hunter2@h/db?nonsense=1",
                "unknown option `nonsense`",
            ),
        ] {
            let e = ConnectionString::parse(s).expect_err(s).to_string();
            assert!(e.contains(wanted), "{s}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        let system = ConnectionString::parse("postgres://h/db?sslmode=require&sslrootcert=system")
            .expect("parses");
        assert_eq!(system.tls.root_certificates, Some(RootCertificates::System));
    }
}
