//! The client's real address behind a reverse proxy. A proxy (nginx terminating TLS, say) connects to the
//! hub itself, so every request seems to come from the proxy's address; the proxy names the real client in
//! an `X-Forwarded-For` or a `Forwarded` (RFC 7239) header. Anyone can write those headers, so they are
//! believed only from the `trusted_proxies`, and a request that carries one from anywhere else is never
//! given this machine's privileges (anonymous Poussr v1 publishing, `/metrics` without a token, the
//! dashboard), even when it comes over loopback.
//!
//! Only **one** of the two headers is read (`trusted_proxy_header`, `X-Forwarded-For` by default): a proxy
//! writes one and passes the other through from the client untouched (nginx's usual configuration does that
//! with `Forwarded`), so reading whichever is present would let a client name itself.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

/// An address or a network: `10.1.2.3`, `10.0.0.0/8`, `::1`, `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Reads `addr` or `addr/prefix`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an address or a network (as in 10.0.0.5 or 10.0.0.0/8)"))?;
        let net = net.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("{text:?}: the prefix length must be 0 to {max}")),
            },
        };
        Ok(Cidr { net, prefix })
    }

    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Where a request comes from, as the hub uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The client: the connection's peer, or the address a trusted proxy named (port 0 when it named none).
    pub addr: SocketAddr,
    /// The trusted proxy the request came through, if it did.
    pub proxy: Option<IpAddr>,
    /// Whether the request has this machine's privileges: it comes from loopback, and neither carries a
    /// forwarding header nobody vouches for nor names a client elsewhere.
    pub local: bool,
}

impl ClientAddr {
    /// A connection's peer, taken as it is (no header was looked at).
    pub fn direct(addr: SocketAddr) -> Self {
        ClientAddr { addr, proxy: None, local: addr.ip().to_canonical().is_loopback() }
    }
}

/// Which forwarding header the trusted proxies write (`trusted_proxy_header`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …` (nginx, HAProxy, Caddy, Traefik, most load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

impl ForwardedHeader {
    fn name(self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        }
    }
}

/// The configured `trusted_proxies`, and the header they write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    proxies: Vec<Cidr>,
    header: ForwardedHeader,
}

/// How many hops of a forwarding header are looked at, from the nearest: a longer chain is not a real one.
const MAX_HOPS: usize = 32;

impl TrustedProxies {
    /// The valid entries of `list` (the configuration's check has refused the others already), which write
    /// `header`.
    pub fn new(list: &[String], header: ForwardedHeader) -> Self {
        TrustedProxies { proxies: list.iter().filter_map(|e| Cidr::parse(e).ok()).collect(), header }
    }

    /// Whether requests from `ip` have their forwarding headers believed.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.proxies.iter().any(|c| c.contains(ip))
    }

    /// The client of a request from `peer` with `headers`. From a trusted proxy, the hops its header names
    /// are walked from the nearest: the first one that is not itself a trusted proxy is the client. A hop
    /// that names no address (`unknown`, an obfuscated name), or a header that names no hop at all, ends
    /// the walk: the client is then the proxy that wrote it, without local privileges.
    ///
    /// A forwarded request has this machine's privileges only when it never left this machine: the peer
    /// and every hop up to and including the client are loopback addresses. (`127.0.0.1` named by a proxy
    /// on another machine is that machine's loopback.)
    pub fn resolve(&self, peer: SocketAddr, headers: &HeaderMap) -> ClientAddr {
        let carries_any = headers.contains_key("x-forwarded-for") || headers.contains_key("forwarded");
        if !carries_any {
            return ClientAddr::direct(peer);
        }
        // Nothing is parsed for a peer nobody vouches for: any client can send these headers.
        if !self.trusts(peer.ip()) || !headers.contains_key(self.header.name()) {
            // A forwarding header nobody vouches for (or not the one the proxy writes): the peer is the
            // client, and not a local one, since a proxy on this machine may be passing on a request from
            // anywhere.
            return ClientAddr { addr: peer, proxy: None, local: false };
        }
        let proxy = Some(peer.ip());
        let hops = nearest_hops(headers, self.header);
        if hops.is_empty() {
            return ClientAddr { addr: peer, proxy, local: false };
        }
        let mut nearest = peer;
        let mut on_this_machine = peer.ip().to_canonical().is_loopback();
        for hop in &hops {
            match hop {
                Some(addr) => {
                    on_this_machine &= addr.ip().to_canonical().is_loopback();
                    nearest = SocketAddr::new(addr.ip().to_canonical(), addr.port());
                    if !self.trusts(addr.ip()) {
                        return ClientAddr { addr: nearest, proxy, local: on_this_machine };
                    }
                }
                None => return ClientAddr { addr: nearest, proxy, local: false },
            }
        }
        // Every hop looked at is a trusted proxy: the farthest of them is the client.
        ClientAddr { addr: nearest, proxy, local: on_this_machine && hops.len() <= MAX_HOPS }
    }
}

/// At most `MAX_HOPS + 1` hops that `which` header names, **nearest first** (the end of the last header
/// line first); `None` for a hop without an address. Only the end of the header is read: a long header
/// costs no more than a short one.
fn nearest_hops(headers: &HeaderMap, which: ForwardedHeader) -> Vec<Option<SocketAddr>> {
    let mut hops = Vec::new();
    for value in headers.get_all(which.name()).iter().rev() {
        let text = String::from_utf8_lossy(value.as_bytes());
        for element in text.rsplit(',') {
            if hops.len() > MAX_HOPS {
                return hops;
            }
            match which {
                ForwardedHeader::XForwardedFor => hops.push(parse_node(element)),
                ForwardedHeader::Forwarded => {
                    let node = element.split(';').find_map(|pair| {
                        let (key, value) = pair.split_once('=')?;
                        key.trim().eq_ignore_ascii_case("for").then(|| value.trim())
                    });
                    // An element without `for=` says nothing about the client: it names no hop.
                    if let Some(node) = node {
                        hops.push(parse_node(node));
                    }
                }
            }
        }
    }
    hops
}

/// One node: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`, quoted or not.
fn parse_node(node: &str) -> Option<SocketAddr> {
    let node = node.trim().trim_matches('"');
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => 0,
            None => return None,
        };
        return Some(SocketAddr::new(ip.parse().ok()?, port));
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 0));
    }
    node.parse::<SocketAddr>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40_000)
    }

    #[test]
    fn networks_contain_their_addresses() {
        let lan = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(lan.contains("10.1.200.3".parse().unwrap()));
        assert!(lan.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(!lan.contains("10.2.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(!Cidr::parse("fd00::/8").unwrap().contains("10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").unwrap_err().contains("0 to 32"));
        assert!(Cidr::parse("nginx").unwrap_err().contains("not an address"));
    }

    #[test]
    fn no_header_means_the_peer_itself() {
        let trusted = TrustedProxies::new(&["127.0.0.1".into()], ForwardedHeader::XForwardedFor);
        assert_eq!(trusted.resolve(peer("127.0.0.1"), &HeaderMap::new()), ClientAddr::direct(peer("127.0.0.1")));
        assert!(ClientAddr::direct(peer("127.0.0.1")).local);
        assert!(!ClientAddr::direct(peer("10.0.0.1")).local);
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let trusted = TrustedProxies::new(&["127.0.0.1".into(), "10.9.0.0/16".into()], ForwardedHeader::XForwardedFor);
        let got = trusted.resolve(peer("127.0.0.1"), &headers(&[("x-forwarded-for", "192.168.1.50")]));
        assert_eq!(got.addr, "192.168.1.50:0".parse().unwrap());
        assert_eq!(got.proxy, Some("127.0.0.1".parse().unwrap()));
        assert!(!got.local);
        // A spoofed first hop is skipped: the nearest untrusted hop is the client.
        let got = trusted.resolve(peer("127.0.0.1"), &headers(&[("x-forwarded-for", "127.0.0.1, 192.168.1.50")]));
        assert_eq!(got.addr.ip(), "192.168.1.50".parse::<IpAddr>().unwrap());
        // A chain of trusted proxies is walked through.
        let got = trusted.resolve(
            peer("127.0.0.1"),
            &headers(&[("x-forwarded-for", "192.168.1.7"), ("x-forwarded-for", "10.9.1.1")]),
        );
        assert_eq!(got.addr.ip(), "192.168.1.7".parse::<IpAddr>().unwrap());
        // A browser on this machine through the proxy keeps its local privileges.
        assert!(trusted.resolve(peer("127.0.0.1"), &headers(&[("x-forwarded-for", "127.0.0.1")])).local);
        // 127.0.0.1 named by a proxy on another machine is that machine's loopback, not this one's.
        let got = trusted.resolve(peer("10.9.0.5"), &headers(&[("x-forwarded-for", "127.0.0.1")]));
        assert_eq!((got.addr.ip(), got.local), ("127.0.0.1".parse().unwrap(), false));
        let got = trusted.resolve(peer("127.0.0.1"), &headers(&[("x-forwarded-for", "127.0.0.1, 10.9.0.5")]));
        assert!(!got.local, "a hop through another machine");
        // An empty header names nobody: the proxy, not local.
        let got = trusted.resolve(peer("127.0.0.1"), &headers(&[("x-forwarded-for", "")]));
        assert_eq!((got.addr, got.local), (peer("127.0.0.1"), false));
    }

    #[test]
    fn a_huge_header_is_read_from_its_end_only() {
        let trusted = TrustedProxies::new(&["127.0.0.1".into()], ForwardedHeader::XForwardedFor);
        let long = format!("{}192.168.7.7", "10.0.0.1, ".repeat(50_000));
        let mut map = HeaderMap::new();
        map.insert("x-forwarded-for", long.parse().unwrap());
        assert_eq!(nearest_hops(&map, ForwardedHeader::XForwardedFor).len(), MAX_HOPS + 1);
        assert_eq!(trusted.resolve(peer("127.0.0.1"), &map).addr.ip(), "192.168.7.7".parse::<IpAddr>().unwrap());
        // A chain of more trusted hops than are looked at is not this machine's.
        let all_local = vec!["127.0.0.1"; MAX_HOPS + 5].join(", ");
        map.insert("x-forwarded-for", all_local.parse().unwrap());
        assert!(!trusted.resolve(peer("127.0.0.1"), &map).local);
    }

    #[test]
    fn only_the_configured_header_is_read() {
        // nginx writes X-Forwarded-For and passes a client's own Forwarded through: it must not count.
        let xff = TrustedProxies::new(&["127.0.0.1".into()], ForwardedHeader::XForwardedFor);
        let spoof = headers(&[("forwarded", "for=127.0.0.1"), ("x-forwarded-for", "192.168.1.50")]);
        let got = xff.resolve(peer("127.0.0.1"), &spoof);
        assert_eq!((got.addr.ip(), got.local), ("192.168.1.50".parse().unwrap(), false));
        // The other header alone: the proxy named nobody, so nobody is local.
        let got = xff.resolve(peer("127.0.0.1"), &headers(&[("forwarded", "for=127.0.0.1")]));
        assert_eq!((got.addr, got.proxy, got.local), (peer("127.0.0.1"), None, false));
        let fwd = TrustedProxies::new(&["127.0.0.1".into()], ForwardedHeader::Forwarded);
        let got = fwd.resolve(peer("127.0.0.1"), &headers(&[("x-forwarded-for", "127.0.0.1")]));
        assert!(!got.local);
    }

    #[test]
    fn the_standard_header_forms_are_read() {
        let trusted = TrustedProxies::new(&["127.0.0.1".into()], ForwardedHeader::Forwarded);
        for (value, want) in [
            ("for=192.0.2.60;proto=https;by=203.0.113.43", "192.0.2.60:0"),
            ("For=\"[2001:db8:cafe::17]:4711\"", "[2001:db8:cafe::17]:4711"),
            ("for=192.0.2.43:47011, for=127.0.0.1", "192.0.2.43:47011"),
        ] {
            let got = trusted
                .resolve(peer("127.0.0.1"), &headers(&[("forwarded", value), ("x-forwarded-for", "198.51.100.1")]));
            assert_eq!(got.addr, want.parse().unwrap(), "{value}");
        }
        let got = trusted.resolve(peer("127.0.0.1"), &headers(&[("forwarded", "for=unknown")]));
        assert_eq!((got.addr, got.local), (peer("127.0.0.1"), false), "an unknown client is not local");
        for nobody in ["proto=https", "by=10.0.0.1;proto=https", ""] {
            let got = trusted.resolve(peer("127.0.0.1"), &headers(&[("forwarded", nobody)]));
            assert_eq!((got.addr, got.local), (peer("127.0.0.1"), false), "{nobody:?} names no client");
        }
    }

    #[test]
    fn headers_from_anyone_else_are_ignored_and_never_local() {
        let trusted = TrustedProxies::new(&["10.0.0.1".into()], ForwardedHeader::XForwardedFor);
        let got = trusted.resolve(peer("127.0.0.1"), &headers(&[("x-forwarded-for", "127.0.0.1")]));
        assert_eq!(got, ClientAddr { addr: peer("127.0.0.1"), proxy: None, local: false });
        let none = TrustedProxies::default();
        let got = none.resolve(peer("192.168.1.9"), &headers(&[("forwarded", "for=127.0.0.1")]));
        assert_eq!((got.addr, got.local), (peer("192.168.1.9"), false));
    }
}
