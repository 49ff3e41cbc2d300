//! What kind of network an IP address belongs to: the one rule every layer uses to tell a LAN or
//! loopback address from a public one (discovery: which addresses are worth publishing; the call:
//! whether its path is on the LAN; connection limits and the media relay: what counts as one
//! source). IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are judged as the IPv4 address they carry.

use std::net::{IpAddr, Ipv4Addr};

/// The scope of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpScope {
    /// `0.0.0.0`, `::`: not an address anyone is at.
    Unspecified,
    /// `127/8`, `::1`: this machine.
    Loopback,
    /// `169.254/16`, `fe80::/10`: this link only.
    LinkLocal,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`) and IPv6 unique local addresses (`fc00::/7`).
    Private,
    /// Carrier-grade NAT space (`100.64/10`, RFC 6598): behind an ISP's NAT.
    SharedNat,
    /// Broadcast and documentation ranges: never a peer's real address.
    Special,
    /// Anything else: publicly routable, as far as we know.
    Global,
}

impl IpScope {
    /// The scope of `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match canonical(ip) {
            IpAddr::V4(v4) => {
                if v4.is_unspecified() {
                    IpScope::Unspecified
                } else if v4.is_loopback() {
                    IpScope::Loopback
                } else if v4.is_link_local() {
                    IpScope::LinkLocal
                } else if v4.is_private() {
                    IpScope::Private
                } else if v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 {
                    IpScope::SharedNat
                } else if v4.is_broadcast() || v4.is_documentation() {
                    IpScope::Special
                } else {
                    IpScope::Global
                }
            }
            IpAddr::V6(v6) => {
                let first = v6.segments()[0];
                if v6.is_unspecified() {
                    IpScope::Unspecified
                } else if v6.is_loopback() {
                    IpScope::Loopback
                } else if first & 0xffc0 == 0xfe80 {
                    IpScope::LinkLocal
                } else if first & 0xfe00 == 0xfc00 {
                    IpScope::Private
                } else {
                    IpScope::Global
                }
            }
        }
    }

    /// Publicly routable: worth telling the world (in a peer record, as an external address).
    pub fn is_global(self) -> bool {
        self == IpScope::Global
    }

    /// On this machine or a network behind a NAT (loopback, link-local, private, carrier-grade NAT):
    /// a path to such an address is a LAN path, and a peer that advertises one is behind a NAT.
    pub fn is_local_network(self) -> bool {
        matches!(self, IpScope::Loopback | IpScope::LinkLocal | IpScope::Private | IpScope::SharedNat)
    }
}

/// `ip`, with an IPv4-mapped IPv6 address turned into the IPv4 address it carries.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Where a connection comes from, as far as per-source limits are concerned: one IPv4 address, or
/// one IPv6 /64 (what one host or household is given; counting single IPv6 addresses would let one
/// host open connections from 2^64 of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceNetwork {
    /// An IPv4 address (IPv4-mapped IPv6 addresses count here too).
    V4(Ipv4Addr),
    /// The first 64 bits of an IPv6 address.
    V6Prefix([u16; 4]),
}

impl std::fmt::Display for SourceNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceNetwork::V4(ip) => write!(f, "{ip}"),
            SourceNetwork::V6Prefix(s) => write!(f, "{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]),
        }
    }
}

impl SourceNetwork {
    /// The network of `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match canonical(ip) {
            IpAddr::V4(v4) => SourceNetwork::V4(v4),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                SourceNetwork::V6Prefix([s[0], s[1], s[2], s[3]])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(text: &str) -> IpScope {
        IpScope::of(text.parse().unwrap())
    }

    #[test]
    fn every_range_has_its_scope() {
        use IpScope::*;
        for (ip, want) in [
            ("0.0.0.0", Unspecified),
            ("::", Unspecified),
            ("127.0.0.1", Loopback),
            ("127.255.0.9", Loopback),
            ("::1", Loopback),
            ("169.254.3.4", LinkLocal),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.2", Private),
            ("fc00::1", Private),
            ("fd12:3456::1", Private),
            ("100.64.0.1", SharedNat),
            ("100.127.255.255", SharedNat),
            ("255.255.255.255", Special),
            ("192.0.2.7", Special),
            ("198.51.100.7", Special),
            ("203.0.113.7", Special),
            ("11.0.0.1", Global),
            ("8.8.8.8", Global),
            ("172.32.0.1", Global),
            ("100.128.0.1", Global),
            ("100.63.255.255", Global),
            ("2001:4860::8888", Global),
            ("fec0::1", Global),
        ] {
            assert_eq!(scope(ip), want, "{ip}");
        }
    }

    #[test]
    fn mapped_ipv4_is_judged_as_ipv4() {
        assert_eq!(scope("::ffff:192.168.1.2"), IpScope::Private);
        assert_eq!(scope("::ffff:127.0.0.1"), IpScope::Loopback);
        assert_eq!(scope("::ffff:11.0.0.1"), IpScope::Global);
        assert_eq!(
            SourceNetwork::of("::ffff:10.0.0.1".parse().unwrap()),
            SourceNetwork::V4(Ipv4Addr::new(10, 0, 0, 1))
        );
    }

    #[test]
    fn global_and_local_network_split_the_scopes() {
        use IpScope::*;
        for s in [Unspecified, Loopback, LinkLocal, Private, SharedNat, Special, Global] {
            assert_eq!(s.is_global(), s == Global, "{s:?}");
            let local = matches!(s, Loopback | LinkLocal | Private | SharedNat);
            assert_eq!(s.is_local_network(), local, "{s:?}");
        }
    }
}
