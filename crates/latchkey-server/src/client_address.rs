//! Which address a request comes from, for sign-in throttling, rate limits,
//! the session list and the audit log. It is the TCP peer, unless the peer
//! is a configured trusted proxy: then it is the nearest address in
//! `X-Forwarded-For` that is not a trusted proxy, read from the right, since
//! only the entries our own proxies appended can be believed. Without
//! trusted proxies the header is ignored, so a client cannot pick the
//! address its failures are counted against.
//!
//! Per-address limits count the address's network rather than the address:
//! an IPv6 client typically holds a whole /64 and could otherwise spray its
//! requests over as many addresses as it likes.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The resolved client address, put in each request's extensions by
/// [`resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// The network per-address limits count the client under, put in each
/// request's extensions by [`resolve`] next to its [`ClientAddress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientNetwork(pub IpNet);

impl fmt::Display for ClientNetwork {
    /// `2001:db8:1:2::/64`; a whole address (IPv4 at /32) without the
    /// prefix length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            write!(f, "{}", self.0.addr())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// Prefix lengths of the networks clients are counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkPrefixes {
    pub ipv4: u8,
    pub ipv6: u8,
}

impl Default for NetworkPrefixes {
    /// The whole IPv4 address; the /64 of IPv6, the smallest network
    /// providers hand out (RFC 6177), so one subscriber is one client.
    fn default() -> Self {
        Self { ipv4: 32, ipv6: 64 }
    }
}

impl NetworkPrefixes {
    /// Refuses lengths longer than the address or of zero (which would make
    /// every client one).
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=32).contains(&self.ipv4) {
            return Err("ipv4_prefix must be between 1 and 32".into());
        }
        if !(1..=128).contains(&self.ipv6) {
            return Err("ipv6_prefix must be between 1 and 128".into());
        }
        Ok(())
    }

    /// The network `ip` is counted under; an IPv4-mapped IPv6 address is
    /// its IPv4 self.
    pub fn network_of(&self, ip: IpAddr) -> ClientNetwork {
        // Lengths past the address's are clamped, not refused: `validate`
        // keeps them out of configurations, and this runs per request.
        let net = match ip.to_canonical() {
            IpAddr::V4(v4) => {
                IpNet::V4(Ipv4Net::new(v4, self.ipv4.min(32)).unwrap_or_else(|_| Ipv4Net::from(v4)))
            }
            IpAddr::V6(v6) => IpNet::V6(
                Ipv6Net::new(v6, self.ipv6.min(128)).unwrap_or_else(|_| Ipv6Net::from(v6)),
            ),
        };
        ClientNetwork(net.trunc())
    }
}

/// Networks whose connections may say, in `X-Forwarded-For`, whom they
/// forward.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// Most `X-Forwarded-For` entries looked at; a longer chain is cut, so a
/// hostile header costs bounded work.
const MAX_HOPS: usize = 32;

impl TrustedProxies {
    /// Parses networks (`10.0.0.0/8`) and single addresses (`10.0.0.7`).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| {
                let e = e.as_ref().trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| format!("trusted proxy {e:?} is not an address or a network"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The trusted networks, as configured.
    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`; see the module documentation.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        // All X-Forwarded-For headers form one list, in order; walk it from
        // the right while the address at hand is one of our proxies.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev().take(MAX_HOPS) {
            // Garbage our proxy passed on: keep the last address we believe.
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = ip.to_canonical();
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// How [`resolve`] finds a request's client and its network.
#[derive(Debug, Clone, Default)]
pub struct AddressResolution {
    pub proxies: TrustedProxies,
    pub prefixes: NetworkPrefixes,
}

/// Middleware: resolves the client address and its network once per
/// request.
pub async fn resolve(
    State(resolution): State<Arc<AddressResolution>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let Some(peer) = peer {
        let client = resolution.proxies.client_address(peer, request.headers());
        let network = resolution.prefixes.network_of(client);
        request.extensions_mut().insert(ClientAddress(client));
        request.extensions_mut().insert(network);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = TrustedProxies::default();
        let h = forwarded(&["198.51.100.1"]);
        assert_eq!(
            none.client_address(ip("203.0.113.9"), &h),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client() {
        let p = TrustedProxies::parse(&["10.0.0.0/8", "192.0.2.1"]).expect("parse");
        // Client-supplied entries left of the real client are ignored.
        let h = forwarded(&["1.1.1.1, 198.51.100.7", "10.1.2.3"]);
        assert_eq!(p.client_address(ip("10.0.0.2"), &h), ip("198.51.100.7"));
        // A peer that is not a proxy of ours cannot forge an address.
        assert_eq!(p.client_address(ip("203.0.113.9"), &h), ip("203.0.113.9"));
        // Only proxies all the way: the leftmost one.
        let h = forwarded(&["10.9.9.9, 192.0.2.1"]);
        assert_eq!(p.client_address(ip("10.0.0.2"), &h), ip("10.9.9.9"));
        // No header: the proxy itself.
        assert_eq!(
            p.client_address(ip("10.0.0.2"), &HeaderMap::new()),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_believable_address() {
        let p = TrustedProxies::parse(&["10.0.0.0/8"]).expect("parse");
        let h = forwarded(&["198.51.100.7, not-an-ip, 10.0.0.5"]);
        assert_eq!(p.client_address(ip("10.0.0.2"), &h), ip("10.0.0.5"));
        let long = vec!["10.0.0.1"; 10_000].join(",");
        let h = forwarded(&[&long]);
        assert_eq!(p.client_address(ip("10.0.0.2"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn mapped_ipv6_addresses_are_their_ipv4_selves() {
        let p = TrustedProxies::parse(&["127.0.0.1"]).expect("parse");
        let h = forwarded(&["::ffff:198.51.100.7"]);
        assert_eq!(
            p.client_address(ip("::ffff:127.0.0.1"), &h),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_and_ipv4_by_address() {
        let p = NetworkPrefixes::default();
        let net = |s: &str| p.network_of(ip(s)).to_string();
        assert_eq!(net("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(net("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64");
        assert_eq!(net("2001:db8:1:3::1"), "2001:db8:1:3::/64");
        assert_eq!(net("198.51.100.7"), "198.51.100.7");
        assert_eq!(net("::ffff:198.51.100.7"), "198.51.100.7");
        assert_eq!(
            p.network_of(ip("2001:db8:1:2::1")),
            p.network_of(ip("2001:db8:1:2::2"))
        );
        let wide = NetworkPrefixes { ipv4: 24, ipv6: 48 };
        assert_eq!(
            wide.network_of(ip("198.51.100.7")).to_string(),
            "198.51.100.0/24"
        );
        assert_eq!(
            wide.network_of(ip("2001:db8:1:2::1")).to_string(),
            "2001:db8:1::/48"
        );
        let whole = NetworkPrefixes {
            ipv4: 32,
            ipv6: 128,
        };
        assert_eq!(
            whole.network_of(ip("2001:db8::7")).to_string(),
            "2001:db8::7"
        );
        // Out-of-range lengths never panic; validation refuses them.
        let bad = NetworkPrefixes {
            ipv4: 40,
            ipv6: 200,
        };
        assert!(bad.validate().is_err());
        assert_eq!(bad.network_of(ip("10.1.2.3")).to_string(), "10.1.2.3");
        assert!(NetworkPrefixes { ipv4: 0, ipv6: 64 }.validate().is_err());
        assert!(p.validate().is_ok());
    }

    #[test]
    fn parse_refuses_what_is_not_a_network() {
        assert!(TrustedProxies::parse(&["10.0.0.0/33"]).is_err());
        assert!(TrustedProxies::parse(&["proxy.local"]).is_err());
        let p = TrustedProxies::parse(&[" 10.1.2.3/8 ", "::1"]).expect("parse");
        assert!(p.trusts(ip("10.200.0.1")) && p.trusts(ip("::1")));
    }
}
