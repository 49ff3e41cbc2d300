//! What `hail peers` and `hail status` show of the network.

use super::*;

/// A visible peer, as `hail peers` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisiblePeer {
    /// Who.
    #[serde(with = "crate::store::contact::peer_id_text")]
    pub peer_id: PeerId,
    /// Its contact name, if it is a contact (filled in by the node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<crate::name::Name>,
    /// Known addresses, newest first.
    #[serde(with = "crate::store::contact::multiaddrs_text")]
    pub addresses: Vec<Multiaddr>,
    /// How it was found.
    pub sources: Vec<Source>,
    /// Whether it is connected now.
    pub connected: bool,
    /// When it was last seen, ms since the Unix epoch.
    pub last_seen_ms: u64,
}

impl VisiblePeer {
    /// The same peer, named as the contact it is (or as none).
    pub fn with_contact(self, contact: Option<crate::name::Name>) -> Self {
        VisiblePeer { contact, ..self }
    }
}

/// The network part of `hail status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// Addresses the node listens on.
    pub listen_addresses: Vec<String>,
    /// Addresses it advertises (in its card and peer record).
    pub advertised_addresses: Vec<String>,
    /// Peers connected now.
    pub connected_peers: usize,
    /// Peers visible (see `hail peers`).
    pub visible_peers: usize,
    /// Peers in the DHT routing table.
    pub routing_table_peers: usize,
    /// Whether mDNS runs.
    pub mdns: bool,
    /// The DHT protocol id.
    pub dht_protocol: String,
    /// `auto`, `server` or `client`, as configured.
    pub dht_mode: DhtMode,
    /// Whether the DHT is answering as a server right now.
    pub dht_serving: bool,
    /// Each bootstrap peer and how reaching it went.
    pub bootstrap: Vec<BootstrapStatus>,
    /// Peer records stored for others.
    pub records_stored: usize,
    /// Peer records refused (malformed, forged, stale).
    pub records_rejected: u64,
    /// Peer records dropped to make room for newer ones (the store was full).
    #[serde(default)]
    pub records_evicted: u64,
    /// Inbound libp2p connections refused by a connection limit.
    #[serde(default)]
    pub connections_refused: u64,
    /// When this node's own peer record last reached the DHT, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_published_at_ms: Option<u64>,
    /// Whether others can find this node now: its record reached the DHT carrying the addresses
    /// it advertises now.
    #[serde(default)]
    pub record_findable: bool,
    /// What AutoNAT found: `unknown`, `public` or `private` (behind NAT or a firewall).
    #[serde(default)]
    pub reachability: String,
    /// Relays that hold a reservation for us (reachable through them), as PeerIds.
    #[serde(default)]
    pub relayed_via: Vec<String>,
    /// `auto`, `on` or `off`, as configured.
    #[serde(default = "default_relay_mode")]
    pub relay: RelayMode,
    /// Whether this node relays for others right now.
    #[serde(default)]
    pub relay_serving: bool,
    /// Why this node does not relay (connections or media) now, in words that say what to change
    /// (absent: it relays, or relaying is off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_not_serving: Option<String>,
    /// The media relay's counters, on a node that has served one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_relay: Option<crate::relay::RelayStats>,
}

pub(super) fn default_relay_mode() -> RelayMode {
    RelayMode::Auto
}

/// A bootstrap peer's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapStatus {
    /// Its full address.
    pub address: String,
    /// `connecting`, `connected`, or `unreachable: <reason>`.
    pub state: String,
}

impl Discovery {
    /// Every visible peer.
    pub fn visible_peers(&self) -> Vec<VisiblePeer> {
        self.peers
            .list()
            .into_iter()
            .map(|(peer_id, e)| VisiblePeer {
                peer_id,
                contact: None,
                connected: self.swarm.is_connected(&peer_id),
                sources: e.sources.iter().copied().filter(|s| *s != Source::Connected).collect(),
                addresses: e.addresses,
                last_seen_ms: e.last_seen_ms,
            })
            .collect()
    }

    /// The network part of `hail status`.
    pub fn status(&mut self) -> NetworkStatus {
        use libp2p::kad::store::RecordStore;
        let own_key = record_key(&self.local_peer_id());
        let records_stored = self.swarm.behaviour_mut().kad.store_mut().records().filter(|r| r.key != own_key).count();
        NetworkStatus {
            listen_addresses: self.swarm.listeners().map(ToString::to_string).collect(),
            advertised_addresses: self.advertised_addresses().iter().map(ToString::to_string).collect(),
            connected_peers: self.swarm.connected_peers().count(),
            visible_peers: self.peers.len(),
            routing_table_peers: self.routing_table_size(),
            mdns: self.config.mdns,
            dht_protocol: self.config.dht_protocol.to_string(),
            dht_mode: self.config.dht_mode,
            dht_serving: self.swarm.behaviour().kad.mode() == kad::Mode::Server,
            bootstrap: self
                .bootstrap
                .iter()
                .map(|(p, state)| BootstrapStatus {
                    address: p.address.clone().with(Protocol::P2p(p.peer_id)).to_string(),
                    state: state.clone(),
                })
                .collect(),
            records_stored,
            records_rejected: self.records_rejected,
            records_evicted: self.swarm.behaviour_mut().kad.store_mut().evicted(),
            connections_refused: self.connections_refused,
            record_published_at_ms: self.record_published_ms,
            record_findable: self.record_findable(),
            reachability: self.reachability_text().into(),
            relayed_via: self
                .nat
                .reservations
                .keys()
                .filter(|p| self.nat.accepted.contains(p))
                .map(ToString::to_string)
                .collect(),
            relay: self.config.relay,
            relay_serving: self.nat.serving && self.calls_address.is_some(),
            relay_not_serving: self.relay_not_serving(),
            media_relay: self.media_relay.as_mut().map(crate::relay::MediaRelay::stats),
        }
    }

    /// What AutoNAT found: `unknown`, `public` or `private`.
    pub(super) fn reachability_text(&self) -> &'static str {
        match &self.nat.status {
            None | Some(autonat::NatStatus::Unknown) => "unknown",
            Some(autonat::NatStatus::Public(_)) => "public",
            Some(autonat::NatStatus::Private) => "private",
        }
    }

    pub(super) fn set_bootstrap_state(&mut self, peer: &PeerId, state: String) {
        for (p, s) in &mut self.bootstrap {
            if p.peer_id == *peer {
                *s = state.clone();
            }
        }
    }
}
