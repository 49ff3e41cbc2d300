//! Who is visible right now: every peer the node has heard of, how, where, and when. Sans-IO and
//! bounded: the caller passes the time, the table evicts the stalest peer when full.

use std::collections::{BTreeSet, HashMap};

use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

/// Most peers remembered.
pub const MAX_PEERS: usize = 1024;
/// Most addresses remembered per peer (newest first).
pub const MAX_ADDRESSES: usize = 16;

/// How a peer came to be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Announced on the LAN by mDNS.
    Mdns,
    /// Learned from the DHT (routing table or a lookup).
    Dht,
    /// A contact's last seen addresses.
    ContactHint,
    /// A configured bootstrap peer.
    Bootstrap,
    /// It has a connection with us right now.
    Connected,
}

/// What the table knows of one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEntry {
    /// Addresses, newest first.
    pub addresses: Vec<Multiaddr>,
    /// Every way it was learned.
    pub sources: BTreeSet<Source>,
    /// When it was last heard of, ms since the Unix epoch.
    pub last_seen_ms: u64,
}

/// The bounded table of visible peers.
#[derive(Debug, Default)]
pub struct PeerTable {
    peers: HashMap<PeerId, PeerEntry>,
}

impl PeerTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `peer` was seen through `source`, at `addresses` (may be empty).
    pub fn observe(&mut self, peer: PeerId, addresses: &[Multiaddr], source: Source, now_ms: u64) {
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_PEERS {
            self.evict_stalest();
        }
        let entry = self.peers.entry(peer).or_insert_with(|| PeerEntry {
            addresses: Vec::new(),
            sources: BTreeSet::new(),
            last_seen_ms: now_ms,
        });
        for a in addresses.iter().rev() {
            let a = without_peer_id(a);
            entry.addresses.retain(|x| *x != a);
            entry.addresses.insert(0, a);
        }
        entry.addresses.truncate(MAX_ADDRESSES);
        entry.sources.insert(source);
        entry.last_seen_ms = entry.last_seen_ms.max(now_ms);
    }

    /// Forgets one way a peer was known (an mDNS record expired, a connection closed). A peer with
    /// no source left stays listed, so `last seen` keeps its meaning, until it is evicted.
    pub fn forget_source(&mut self, peer: &PeerId, source: Source) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.sources.remove(&source);
        }
    }

    /// Drops an address that failed.
    pub fn forget_address(&mut self, peer: &PeerId, address: &Multiaddr) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.addresses.retain(|a| a != address);
        }
    }

    /// What is known of `peer`.
    pub fn get(&self, peer: &PeerId) -> Option<&PeerEntry> {
        self.peers.get(peer)
    }

    /// Every peer, most recently seen first.
    pub fn list(&self) -> Vec<(PeerId, PeerEntry)> {
        let mut all: Vec<_> = self.peers.iter().map(|(p, e)| (*p, e.clone())).collect();
        all.sort_by(|a, b| b.1.last_seen_ms.cmp(&a.1.last_seen_ms).then(a.0.cmp(&b.0)));
        all
    }

    /// How many peers are known.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is known.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    fn evict_stalest(&mut self) {
        // Connected peers are kept; among the rest the one heard of longest ago goes.
        let victim = self
            .peers
            .iter()
            .filter(|(_, e)| !e.sources.contains(&Source::Connected))
            .min_by_key(|(_, e)| e.last_seen_ms)
            .or_else(|| self.peers.iter().min_by_key(|(_, e)| e.last_seen_ms))
            .map(|(p, _)| *p);
        if let Some(p) = victim {
            self.peers.remove(&p);
        }
    }
}

/// `addr` without a trailing `/p2p/<PeerId>`: the table is keyed by PeerId already.
pub(crate) fn without_peer_id(addr: &Multiaddr) -> Multiaddr {
    let mut a = addr.clone();
    if matches!(a.iter().last(), Some(libp2p::multiaddr::Protocol::P2p(_))) {
        a.pop();
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
    }

    #[test]
    fn sources_and_addresses_accumulate_newest_first() {
        let mut t = PeerTable::new();
        let p = PeerId::random();
        t.observe(p, &[addr(1)], Source::Mdns, 10);
        let with_id = addr(2).with(libp2p::multiaddr::Protocol::P2p(p));
        t.observe(p, &[with_id, addr(1)], Source::Dht, 20);
        let e = t.get(&p).unwrap();
        assert_eq!(e.addresses, [addr(2), addr(1)]);
        assert_eq!(e.sources, [Source::Mdns, Source::Dht].into_iter().collect());
        assert_eq!(e.last_seen_ms, 20);
        t.forget_source(&p, Source::Mdns);
        t.forget_address(&p, &addr(2));
        let e = t.get(&p).unwrap();
        assert_eq!(e.sources, [Source::Dht].into_iter().collect());
        assert_eq!(e.addresses, [addr(1)]);
    }

    #[test]
    fn the_table_is_bounded_and_keeps_connected_peers() {
        let mut t = PeerTable::new();
        let connected = PeerId::random();
        t.observe(connected, &[], Source::Connected, 0);
        for i in 0..(MAX_PEERS as u64 + 10) {
            t.observe(PeerId::random(), &[addr(1)], Source::Dht, i + 1);
        }
        assert_eq!(t.len(), MAX_PEERS);
        assert!(t.get(&connected).is_some(), "the oldest but connected peer stays");
        let p = PeerId::random();
        let many: Vec<_> = (0..40).map(addr).collect();
        t.observe(p, &many, Source::Dht, 1 << 40);
        assert_eq!(t.get(&p).unwrap().addresses.len(), MAX_ADDRESSES);
        assert_eq!(t.list()[0].0, p, "most recently seen first");
    }
}
