//! [`PeerIps`]: where each connected peer's direct libp2p connection comes from, as the media relay
//! needs it (a relay allocation accepts packets only from the IP of the requester's connection).
//! Bounded: when full, the least recently used peer is forgotten, never the whole table.

use std::net::IpAddr;

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};

use super::lru::LruMap;

/// Most peers remembered.
pub const MAX_PEER_IPS: usize = 4096;

/// The IP of each connected peer's direct connection.
#[derive(Debug, Clone)]
pub struct PeerIps {
    ips: LruMap<PeerId, IpAddr>,
}

impl Default for PeerIps {
    fn default() -> Self {
        Self::with_capacity(MAX_PEER_IPS)
    }
}

impl PeerIps {
    /// A table holding at most `capacity` peers.
    pub fn with_capacity(capacity: usize) -> Self {
        PeerIps { ips: LruMap::new(capacity) }
    }

    /// A connection with `peer` came up at `remote`: remembers its IP, unless the connection is
    /// relayed (then the IP is the relay's, not the peer's).
    pub fn connected(&mut self, peer: PeerId, remote: &Multiaddr) {
        if let Some(ip) = direct_ip(remote) {
            self.ips.insert(peer, ip);
        }
    }

    /// The IP of `peer`'s direct connection (a use: it keeps the peer from eviction).
    pub fn get(&mut self, peer: &PeerId) -> Option<IpAddr> {
        self.ips.get(peer).copied()
    }

    /// `peer` has no connection left.
    pub fn forget(&mut self, peer: &PeerId) {
        self.ips.remove(peer);
    }

    /// How many peers it holds.
    pub fn len(&self) -> usize {
        self.ips.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.ips.is_empty()
    }
}

/// The remote IP of a direct connection at `remote`; `None` for a relayed one (`/p2p-circuit`).
pub fn direct_ip(remote: &Multiaddr) -> Option<IpAddr> {
    if remote.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
        return None;
    }
    remote.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u32) -> Multiaddr {
        format!("/ip4/10.{}.{}.{}/tcp/4001", i >> 16 & 0xff, i >> 8 & 0xff, i & 0xff).parse().unwrap()
    }

    #[test]
    fn a_flood_of_new_peers_evicts_the_stalest_not_the_peer_in_use() {
        let mut table = PeerIps::default();
        let caller = PeerId::random();
        table.connected(caller, &"/ip4/11.0.0.7/tcp/4001".parse().unwrap());
        let mut others = Vec::new();
        for i in 0..MAX_PEER_IPS as u32 + 100 {
            let peer = PeerId::random();
            table.connected(peer, &addr(i));
            others.push(peer);
            // The caller keeps using its entry (it asks the relay for allocations).
            if i % 1000 == 0 {
                assert!(table.get(&caller).is_some(), "after {i} newcomers");
            }
        }
        assert_eq!(table.len(), MAX_PEER_IPS, "bounded");
        assert_eq!(table.get(&caller), Some("11.0.0.7".parse().unwrap()), "the peer in use survived the flood");
        // The newest newcomers are all there; only the least recently used went.
        for peer in &others[others.len() - (MAX_PEER_IPS - 1)..] {
            assert!(table.get(peer).is_some());
        }
        assert!(table.get(&others[0]).is_none());
    }

    #[test]
    fn relayed_connections_have_no_peer_ip_and_closed_ones_are_forgotten() {
        let mut table = PeerIps::default();
        let peer = PeerId::random();
        let relay = PeerId::random();
        let circuit: Multiaddr = format!("/ip4/11.0.0.1/tcp/4001/p2p/{relay}/p2p-circuit").parse().unwrap();
        table.connected(peer, &circuit);
        assert!(table.is_empty(), "a relayed connection's IP is the relay's");
        table.connected(peer, &"/ip6/2001:db8::1/tcp/4001".parse().unwrap());
        assert_eq!(table.get(&peer), Some("2001:db8::1".parse().unwrap()));
        table.forget(&peer);
        assert_eq!(table.get(&peer), None);
    }
}
