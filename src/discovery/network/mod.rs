//! [`Discovery`]: the libp2p swarm and everything the node knows about other peers. Owned by the
//! node loop, which feeds it swarm events and timer ticks; it answers `find` lookups and reports
//! what it sees. This file holds the swarm's lifecycle and the dispatch of its events; each concern
//! has its own file, all of them `impl Discovery` blocks over the one state:
//!
//! - `lookup`: finding a peer (DHT record, closest peers, dialing) for [`Discovery::find`];
//! - `dht`: the DHT's events, our peer record and others';
//! - `nat`: reachability (AutoNAT) and circuit relay reservations;
//! - `peer_info`: what mDNS and identify say about peers;
//! - `invites`, `media_relay`, `calls_address`: the hail protocols the swarm also carries
//!   (`/hail/invite/1`, `/hail/media-relay/1`, `/hail/reflector/1`);
//! - `status`: what `hail peers` and `hail status` show.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::identity::Keypair;
use libp2p::kad::{self, GetClosestPeersOk, GetRecordOk, QueryId, QueryResult, Quorum, Record};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, autonat, identify, mdns, relay};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::ip_scope::IpScope;

use super::behaviour::{Behaviour, BehaviourEvent, BuildError, IDENTIFY_PROTOCOL, RECORD_TTL, build_swarm};
use super::config::{BootstrapPeer, DhtMode, NetworkConfig, RelayMode};
use super::peer_ips::PeerIps;
use super::peer_table::{PeerTable, Source, without_peer_id};
use super::record::{record_key, sign_record, verify_record};
use super::reflector::{ReflectorInfo, ReflectorQuery};

mod calls_address;
mod dht;
mod invites;
mod lookup;
mod media_relay;
mod nat;
mod peer_info;
mod status;

use self::dht::PUBLISH_DEBOUNCE;
pub use self::dht::REPUBLISH_INTERVAL;
pub use self::invites::InviteEvent;
pub use self::lookup::{FIND_TIMEOUT, FIRST_ROUND_PAUSE, FindError, MAX_ROUND_PAUSE, FindReply, FoundPeer, MAX_LOOKUPS};
use self::lookup::{Lookup, QueryKind};
pub use self::media_relay::{RelayReply, RelayRequestError};
use self::nat::{NatState, RELAY_BACKOFF, RESERVATION_CHECK, RESERVATIONS};
pub use self::status::{BootstrapStatus, NetworkStatus, VisiblePeer};

/// What discovery tells the node.
#[derive(Debug)]
pub enum DiscoveryEvent {
    /// Call signalling arrived on the shared swarm.
    Invite(InviteEvent),
    /// A lookup succeeded: the node remembers the addresses of contacts.
    Found(FoundPeer),
    /// A public peer's call endpoint, to learn our reflexive address from (we are behind NAT).
    Reflector {
        /// Who.
        peer_id: PeerId,
        /// Its call endpoint.
        address: std::net::SocketAddr,
    },
    /// AutoNAT changed its mind about our reachability.
    Reachability {
        /// Behind NAT (or a firewall).
        private: bool,
    },
    /// A peer was announced on the LAN.
    SeenOnLan {
        /// Who.
        peer_id: PeerId,
        /// Where.
        addresses: Vec<Multiaddr>,
    },
}

/// Why the network could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The swarm could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A listen address could not be used.
    #[error("cannot listen on {address}: {reason}")]
    Listen {
        /// The address.
        address: Multiaddr,
        /// What the transport said.
        reason: String,
    },
}

/// The swarm and the node's knowledge of other peers.
pub struct Discovery {
    swarm: Swarm<Behaviour>,
    keypair: Keypair,
    config: NetworkConfig,
    peers: PeerTable,
    lookups: HashMap<PeerId, Lookup>,
    queries: HashMap<QueryId, (PeerId, QueryKind)>,
    dials: HashMap<ConnectionId, PeerId>,
    bootstrap: Vec<(BootstrapPeer, String)>,
    records_rejected: u64,
    next_publish: Option<Instant>,
    events: Vec<DiscoveryEvent>,
    /// LAN peers that turned out not to be hail nodes: not dialed again.
    foreign: HashSet<PeerId>,
    record_published_ms: Option<u64>,
    /// The addresses the last record that reached the DHT carried.
    record_published_addresses: Vec<Multiaddr>,
    /// Our record's puts in flight, with the addresses each carries.
    record_puts: HashMap<QueryId, Vec<Multiaddr>>,
    nat: NatState,
    /// Our call endpoint's public address, told to peers that ask (`/hail/reflector/1`).
    calls_address: Option<std::net::SocketAddr>,
    /// The media relay service, on public nodes that relay.
    media_relay: Option<crate::relay::MediaRelay>,
    /// Media relay requests in flight.
    relay_requests: HashMap<request_response::OutboundRequestId, RelayReply>,
    /// Where each connected peer's direct connection comes from (the media relay's permissions).
    peer_ips: PeerIps,
    /// Inbound connections refused by a limit since the start.
    connections_refused: u64,
    /// Our call endpoint's address as the node set it (public or not), for `relay_not_serving`.
    calls_endpoint: Option<std::net::SocketAddr>,
    /// Why the relay does not serve, as last logged (the log says it once per change).
    relay_reason_logged: Option<String>,
}

/// Whether `a` is at a global (publicly routable) IP address ([`IpScope`]) and not a relay circuit.
fn is_global_address(a: &Multiaddr) -> bool {
    a.iter().any(|p| match p {
        Protocol::Ip4(ip) => IpScope::of(ip.into()).is_global(),
        Protocol::Ip6(ip) => IpScope::of(ip.into()).is_global(),
        _ => false,
    }) && !a.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery").field("peer_id", self.swarm.local_peer_id()).finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    crate::wall_clock::unix_ms(SystemTime::now())
}

fn is_dialable(a: &Multiaddr) -> bool {
    !a.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

fn is_loopback(a: &Multiaddr) -> bool {
    a.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Discovery {
    /// Builds the swarm, starts listening, and dials the bootstrap peers.
    pub fn start(keypair: &Keypair, config: NetworkConfig) -> Result<Self, NetworkError> {
        let mut swarm = build_swarm(keypair, &config)?;
        for address in &config.listen {
            swarm
                .listen_on(address.clone())
                .map_err(|e| NetworkError::Listen { address: address.clone(), reason: e.to_string() })?;
        }
        let mut discovery = Discovery {
            swarm,
            keypair: keypair.clone(),
            peers: PeerTable::new(),
            lookups: HashMap::new(),
            queries: HashMap::new(),
            dials: HashMap::new(),
            bootstrap: Vec::new(),
            records_rejected: 0,
            next_publish: None,
            events: Vec::new(),
            foreign: HashSet::new(),
            record_published_ms: None,
            record_published_addresses: Vec::new(),
            record_puts: HashMap::new(),
            nat: NatState::default(),
            calls_address: None,
            media_relay: None,
            relay_requests: HashMap::new(),
            peer_ips: PeerIps::default(),
            connections_refused: 0,
            calls_endpoint: None,
            relay_reason_logged: None,
            config,
        };
        if discovery.config.relay == RelayMode::Auto {
            // Off until AutoNAT finds the node public (`on_autonat`): libp2p's own rule would
            // turn it on with any confirmed external address, and a node behind NAT may hold a
            // relayed one before AutoNAT's verdict (it reserves early: `behind_nat`).
            if let Some(server) = discovery.swarm.behaviour_mut().relay_server.as_mut() {
                server.set_status(Some(relay::Status::Disable));
            }
        }
        for address in discovery.config.external_addresses.clone() {
            tracing::info!(%address, "announcing an external address (as configured)");
            discovery.swarm.add_external_address(address);
        }
        let peers = discovery.config.bootstrap.clone();
        discovery.add_bootstrap(&peers);
        discovery.check_relay_service();
        Ok(discovery)
    }

    /// The node's PeerId.
    pub fn local_peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Adds bootstrap peers (from the config or at run time) and starts joining the DHT.
    pub fn add_bootstrap(&mut self, peers: &[BootstrapPeer]) {
        for peer in peers {
            if peer.peer_id == self.local_peer_id() {
                continue;
            }
            self.swarm.behaviour_mut().kad.add_address(&peer.peer_id, peer.address.clone());
            // The user chose it: it may tell us whether we are reachable even when it sits on a
            // private or carrier-grade NAT network (AutoNAT otherwise asks only peers it sees at
            // public addresses).
            self.swarm.behaviour_mut().autonat.add_server(peer.peer_id, Some(peer.address.clone()));
            self.peers.observe(peer.peer_id, std::slice::from_ref(&peer.address), Source::Bootstrap, now_ms());
            let full = peer.address.clone().with(Protocol::P2p(peer.peer_id));
            self.bootstrap.retain(|(p, _)| p != peer);
            self.bootstrap.push((peer.clone(), "connecting".into()));
            if let Err(e) = self.swarm.dial(full) {
                self.set_bootstrap_state(&peer.peer_id, format!("unreachable: {e}"));
            }
        }
        if !peers.is_empty() {
            let _ = self.swarm.behaviour_mut().kad.bootstrap();
        }
    }

    /// Contacts' last seen addresses: extra ways into the DHT, and first guesses for lookups.
    pub fn add_hints(&mut self, hints: &[(PeerId, Vec<Multiaddr>)]) {
        for (peer, addresses) in hints {
            if addresses.is_empty() || *peer == self.local_peer_id() {
                continue;
            }
            self.peers.observe(*peer, addresses, Source::ContactHint, 0);
            for a in addresses {
                self.swarm.behaviour_mut().kad.add_address(peer, a.clone());
            }
        }
    }

    /// The next swarm event. Cancel-safe.
    pub async fn next_event(&mut self) -> SwarmEvent<BehaviourEvent> {
        self.swarm.select_next_some().await
    }

    /// When [`Discovery::on_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.lookups
            .values()
            .flat_map(|l| [Some(l.deadline), l.next_round])
            .flatten()
            .chain(self.next_publish)
            .chain(self.nat.next_check)
            .min()
    }

    /// Expires lookups and publishes the peer record when due.
    pub fn on_timeout(&mut self, now: Instant) {
        let expired: Vec<PeerId> = self.lookups.iter().filter(|(_, l)| l.deadline <= now).map(|(p, _)| *p).collect();
        for peer in expired {
            self.fail_lookup(peer, now);
        }
        let again: Vec<PeerId> =
            self.lookups.iter().filter(|(_, l)| l.next_round.is_some_and(|t| t <= now)).map(|(p, _)| *p).collect();
        for peer in again {
            self.start_round(peer, now);
        }
        if self.next_publish.is_some_and(|t| t <= now) {
            self.publish_record(now);
        }
        if self.nat.next_check.is_some_and(|t| t <= now) {
            self.nat.next_check = None;
            self.check_reservations(now);
        }
    }

    /// What happened since the last call, for the node.
    pub fn drain_events(&mut self) -> Vec<DiscoveryEvent> {
        std::mem::take(&mut self.events)
    }

    /// Handles one swarm event.
    pub fn handle_event(&mut self, event: SwarmEvent<BehaviourEvent>, now: Instant) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.on_kad(e, now),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(e)) => self.on_mdns(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => self.on_identify(e),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(_)) => {}
            SwarmEvent::Behaviour(BehaviourEvent::Invite(e)) => self.on_invite(e),
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(e)) => self.on_autonat(e, now),
            SwarmEvent::Behaviour(BehaviourEvent::Reflector(e)) => self.on_reflector(e),
            SwarmEvent::Behaviour(BehaviourEvent::MediaRelay(e)) => self.on_media_relay(e),
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(e)) => self.on_relay_client(e),
            SwarmEvent::Behaviour(BehaviourEvent::RelayServer(e)) => {
                if let relay::Event::StatusChanged { status } = e {
                    self.nat.serving = status == relay::Status::Enable;
                    tracing::info!(?status, "relay service");
                    self.check_relay_service();
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(e)) => match e.result {
                Ok(_) => tracing::info!(peer = %e.remote_peer_id, "hole punched: direct connection"),
                Err(err) => tracing::debug!(peer = %e.remote_peer_id, error = %err, "hole punch failed"),
            },
            SwarmEvent::ListenerClosed { listener_id, .. } => {
                let lost: Vec<PeerId> =
                    self.nat.reservations.iter().filter(|(_, id)| **id == listener_id).map(|(p, _)| *p).collect();
                for relay in lost {
                    tracing::info!(%relay, "relay reservation ended");
                    self.nat.reservations.remove(&relay);
                    self.nat.accepted.remove(&relay);
                    self.nat.backoff.insert(relay, now + RELAY_BACKOFF);
                    self.nat.next_check = Some(now + RESERVATION_CHECK);
                }
                self.schedule_publish(now + PUBLISH_DEBOUNCE);
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, connection_id, .. } => {
                self.dials.remove(&connection_id);
                self.peer_ips.connected(peer_id, endpoint.get_remote_address());
                let address = match &endpoint {
                    ConnectedPoint::Dialer { address, .. } => Some(without_peer_id(address)),
                    ConnectedPoint::Listener { .. } => None,
                };
                let addresses: Vec<Multiaddr> = address.iter().cloned().collect();
                self.peers.observe(peer_id, &addresses, Source::Connected, now_ms());
                self.set_bootstrap_state(&peer_id, "connected".into());
                // A connection we dialed answers a lookup at once. One the peer opened towards us
                // answers it when identify tells us where the peer listens (see `on_identify`).
                if let Some(address) = address {
                    if let Some(lookup) = self.lookups.remove(&peer_id) {
                        let via = lookup.origins.get(&address).copied().unwrap_or(Source::Dht);
                        self.finish_lookup(peer_id, lookup, Ok((addresses, via)), now);
                    }
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                self.peers.forget_source(&peer_id, Source::Connected);
                self.peer_ips.forget(&peer_id);
            }
            SwarmEvent::OutgoingConnectionError { connection_id, peer_id: Some(peer), error } => {
                tracing::debug!(%peer, %error, "dial failed");
                if self.bootstrap.iter().any(|(b, s)| b.peer_id == peer && s != "connected") {
                    tracing::warn!(%peer, %error, "bootstrap peer unreachable");
                    self.set_bootstrap_state(&peer, format!("unreachable: {}", one_line(&error.to_string())));
                }
                if self.dials.remove(&connection_id).is_some() {
                    if let Some(lookup) = self.lookups.get_mut(&peer) {
                        lookup.dials = lookup.dials.saturating_sub(1);
                    }
                    self.settle(peer, now);
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                let relayed = address.iter().any(|p| matches!(p, Protocol::P2pCircuit));
                if self.config.relay == RelayMode::On && is_global_address(&address) {
                    // Configured as a public node: its global addresses are reachable (the relay
                    // serves only with a confirmed external address).
                    self.swarm.add_external_address(address);
                }
                // A relayed address is what makes a node behind NAT callable: out at once.
                self.schedule_publish(if relayed { now } else { now + PUBLISH_DEBOUNCE });
                self.check_relay_service();
            }
            SwarmEvent::ExternalAddrConfirmed { .. } | SwarmEvent::ExpiredListenAddr { .. } => {
                self.schedule_publish(now + PUBLISH_DEBOUNCE);
            }
            SwarmEvent::ListenerError { error, .. } => tracing::warn!(%error, "listener error"),
            SwarmEvent::IncomingConnectionError {
                error: libp2p::swarm::ListenError::Denied { cause },
                send_back_addr,
                ..
            } => {
                self.connections_refused += 1;
                tracing::debug!(from = %send_back_addr, %cause, "inbound connection refused by a limit");
            }
            _ => {}
        }
    }

    /// The IP addresses of this host that the node listens on (for QUIC candidates): non-loopback
    /// ones, or loopback only when there is nothing else.
    pub fn host_ips(&self) -> Vec<std::net::IpAddr> {
        let mut ips: Vec<std::net::IpAddr> = Vec::new();
        for a in self.swarm.listeners() {
            if a.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
                // A relay's address, not ours.
                continue;
            }
            for p in a.iter() {
                let ip = match p {
                    Protocol::Ip4(ip) => std::net::IpAddr::V4(ip),
                    Protocol::Ip6(ip) => std::net::IpAddr::V6(ip),
                    _ => continue,
                };
                if !ip.is_unspecified() && !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
        if ips.iter().any(|ip| !ip.is_loopback()) {
            ips.retain(|ip| !ip.is_loopback());
        }
        ips
    }
}
