//! The loopback guard: a load tool must never send traffic to another machine.
//!
//! A target is accepted only when its host is a literal address in
//! 127.0.0.0/8, the literal `::1`, or the name `localhost` — which is mapped to
//! `127.0.0.1` and `::1` here without asking any resolver, so no hosts file or
//! DNS answer can point the load elsewhere. Every connection checks its
//! address once more before it is opened ([`ensure_loopback`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::Uri;

/// Why a target was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// Not a URL at all.
    #[error("invalid target URL {url:?}: {reason}")]
    Invalid {
        /// The URL as given.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
    /// Only plain `http://` is spoken.
    #[error("target {0:?}: only http:// targets are supported")]
    Scheme(String),
    /// The host is not loopback.
    #[error("refusing target host {0:?}: only 127.0.0.0/8, ::1 and localhost may be loaded")]
    NotLoopback(String),
}

/// A checked target: where to connect and what to put in `Host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Loopback addresses to try, in order.
    pub addrs: Vec<SocketAddr>,
    /// The `Host` header value (`host[:port]` as given).
    pub authority: String,
    /// Path prefix prepended to every profile path (no trailing slash).
    pub base_path: String,
}

/// Whether `ip` is one we may load: IPv4 127.0.0.0/8 or IPv6 `::1` exactly.
pub fn is_loopback_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[0] == 127,
        IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
    }
}

/// Refuses any socket address that is not loopback (checked before every connect).
pub fn ensure_loopback(addr: SocketAddr) -> Result<(), TargetError> {
    if is_loopback_ip(addr.ip()) {
        Ok(())
    } else {
        Err(TargetError::NotLoopback(addr.ip().to_string()))
    }
}

/// Parses and checks a target URL such as `http://127.0.0.1:8080`.
pub fn parse_target(url: &str) -> Result<Target, TargetError> {
    let invalid = |reason: &str| TargetError::Invalid {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(_) => return Err(TargetError::Scheme(url.to_owned())),
        None => return Err(invalid("missing scheme (use http://HOST:PORT)")),
    }
    let authority = uri.authority().ok_or_else(|| invalid("missing host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("user info is not allowed"));
    }
    let host = authority.host();
    let port = uri.port_u16().unwrap_or(80);
    let ips: Vec<IpAddr> =
        if host.eq_ignore_ascii_case("localhost") || host.eq_ignore_ascii_case("localhost.") {
            vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]
        } else {
            let literal = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            // Only literal addresses in canonical dotted/colon form; names other
            // than localhost are never resolved.
            let ip: IpAddr = literal
                .parse()
                .map_err(|_| TargetError::NotLoopback(host.to_owned()))?;
            vec![ip]
        };
    let mut addrs = Vec::with_capacity(ips.len());
    for ip in ips {
        if !is_loopback_ip(ip) {
            return Err(TargetError::NotLoopback(host.to_owned()));
        }
        addrs.push(SocketAddr::new(ip, port));
    }
    if uri.query().is_some() {
        return Err(invalid("a query string is not allowed"));
    }
    Ok(Target {
        addrs,
        authority: authority.as_str().to_owned(),
        base_path: uri.path().trim_end_matches('/').to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> bool {
        matches!(parse_target(url), Err(TargetError::NotLoopback(_)))
    }

    #[test]
    fn accepts_loopback_forms() {
        let t = parse_target("http://127.0.0.1:18181").unwrap();
        assert_eq!(t.addrs, vec!["127.0.0.1:18181".parse().unwrap()]);
        assert_eq!(t.authority, "127.0.0.1:18181");
        assert_eq!(t.base_path, "");
        assert!(parse_target("http://127.255.3.4:1/").is_ok());
        let t = parse_target("http://[::1]:9000/prefix/").unwrap();
        assert_eq!(t.addrs, vec!["[::1]:9000".parse().unwrap()]);
        assert_eq!(t.base_path, "/prefix");
        let t = parse_target("http://LocalHost:8080").unwrap();
        assert_eq!(t.addrs.len(), 2);
        assert!(t.addrs.iter().all(|a| a.ip().is_loopback()));
        assert_eq!(
            parse_target("http://127.0.0.1").unwrap().addrs[0].port(),
            80
        );
    }

    #[test]
    fn refuses_everything_else() {
        for url in [
            "http://10.0.0.1:8080",
            "http://192.168.1.10",
            "http://172.16.0.1",
            "http://8.8.8.8",
            "http://0.0.0.0:8080",
            "http://128.0.0.1",
            "http://[::]:8080",
            "http://[::2]:8080",
            "http://[::ffff:127.0.0.1]:8080",
            "http://[fe80::1]:8080",
            "http://example.com",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
            "http://2130706433", // 127.0.0.1 as a number: not a literal we accept
            "http://0x7f.0.0.1",
        ] {
            assert!(refused(url), "{url} should be refused");
        }
    }

    #[test]
    fn refuses_bad_urls() {
        assert!(matches!(
            parse_target("https://127.0.0.1"),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            parse_target("127.0.0.1:80"),
            Err(TargetError::Invalid { .. })
        ));
        assert!(matches!(
            parse_target("http://user@127.0.0.1"),
            Err(TargetError::Invalid { .. })
        ));
        assert!(matches!(
            parse_target("http://127.0.0.1/?x=1"),
            Err(TargetError::Invalid { .. })
        ));
    }

    #[test]
    fn connect_time_check() {
        assert!(ensure_loopback("127.0.0.9:1".parse().unwrap()).is_ok());
        assert!(ensure_loopback("[::1]:1".parse().unwrap()).is_ok());
        assert!(ensure_loopback("10.1.2.3:1".parse().unwrap()).is_err());
    }
}
