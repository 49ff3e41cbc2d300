//! [`Discovery`]: the libp2p swarm and everything the node knows about other peers. Owned by the
//! node loop, which feeds it swarm events and timer ticks; it answers `find` lookups and reports
//! what it sees.

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

/// How long a `find` may take before it reports "not found".
pub const FIND_TIMEOUT: Duration = Duration::from_secs(10);
/// Most `find` lookups in flight at once.
pub const MAX_LOOKUPS: usize = 32;
/// How often the node republishes its peer record.
pub const REPUBLISH_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Most non-hail LAN peers remembered (so they are not dialed again).
const MAX_FOREIGN: usize = 256;
/// Delay between an address change and the record that announces it (changes come in bursts).
const PUBLISH_DEBOUNCE: Duration = Duration::from_millis(500);

/// A peer that was found, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundPeer {
    /// Who.
    #[serde(with = "crate::store::contact::peer_id_text")]
    pub peer_id: PeerId,
    /// Where it is reachable (the address that connected first).
    #[serde(with = "crate::store::contact::multiaddrs_text")]
    pub addresses: Vec<Multiaddr>,
    /// Where the address came from.
    pub via: Source,
    /// How many DHT peers were asked.
    pub asked: u32,
    /// How long the lookup took.
    pub elapsed_ms: u64,
}

/// Why a lookup failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FindError {
    /// Nobody knew where the peer is, or no address of it answered.
    #[error(
        "is {}not found in the DHT (asked {asked} peers in {:.1} s)",
        if *.mdns { "not on this LAN and was " } else { "" },
        *.waited_ms as f64 / 1000.0
    )]
    NotFound {
        /// How many DHT peers were asked.
        asked: u32,
        /// How long the lookup ran.
        waited_ms: u64,
        /// Whether mDNS was on (so "not on this LAN" is meaningful).
        mdns: bool,
    },
    /// The node knows no DHT peer to ask and has no address for the peer.
    #[error(
        "is {}unknown, and this node knows no DHT peers to ask: add bootstrap peers (hail bootstrap ADDRESS) or add the contact from a card with addresses",
        if *.mdns { "not on this LAN and otherwise " } else { "" }
    )]
    NoPeersToAsk {
        /// Whether mDNS was on.
        mdns: bool,
    },
    /// Too many lookups are running.
    #[error("cannot be looked up now: {MAX_LOOKUPS} lookups are running; try again in a moment")]
    Busy,
    /// That is this node.
    #[error("is this node itself")]
    Myself,
}

/// Where to send a lookup's answer.
pub type FindReply = oneshot::Sender<Result<FoundPeer, FindError>>;

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

/// Invite traffic (`/hail/invite/1`): the swarm is shared by discovery and call signalling.
#[derive(Debug)]
pub enum InviteEvent {
    /// Someone invites us to a call; answer through [`Discovery::reply_invite`].
    Received {
        /// Who (authenticated by the libp2p connection).
        peer: PeerId,
        /// The IP of the peer's direct connection (`None` through a relay circuit): unknown
        /// callers' invites are budgeted per IP.
        remote_ip: Option<std::net::IpAddr>,
        /// The invite, as the JSON it came in (the call layer reads it; dropping `channel`
        /// unanswered closes the stream).
        invite: serde_json::Value,
        /// Where the reply goes.
        channel: ResponseChannel<serde_json::Value>,
    },
    /// The callee answered our invite.
    Replied {
        /// Which invite.
        request: OutboundRequestId,
        /// The answer, as the JSON it came in.
        reply: serde_json::Value,
    },
    /// Our invite could not be delivered or answered.
    Failed {
        /// Which invite.
        request: OutboundRequestId,
        /// Why.
        reason: String,
    },
}

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
    /// The media relay's counters, on a node that has served one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_relay: Option<crate::relay::RelayStats>,
}

fn default_relay_mode() -> RelayMode {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryKind {
    Closest,
    Record,
}

/// One `find` in progress.
#[derive(Debug)]
struct Lookup {
    started: Instant,
    deadline: Instant,
    closest: Option<QueryId>,
    record: Option<QueryId>,
    dials: usize,
    tried: HashSet<Multiaddr>,
    /// Where each address came from, to report `via`.
    origins: HashMap<Multiaddr, Source>,
    asked: u32,
    /// Whether DHT queries were started (the routing table was not empty).
    used_dht: bool,
    waiters: Vec<FindReply>,
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
}

/// What the node knows about its own reachability, and its relay reservations.
#[derive(Debug, Default)]
struct NatState {
    status: Option<autonat::NatStatus>,
    /// Peers that offer the relay hop protocol, and where they listen.
    relays: HashMap<PeerId, Vec<Multiaddr>>,
    /// Our reservations: relay → its circuit listener.
    reservations: HashMap<PeerId, ListenerId>,
    /// Relays that refused or failed, with when they may be tried again.
    backoff: HashMap<PeerId, Instant>,
    next_check: Option<Instant>,
    serving: bool,
    /// Relays asked for their call endpoint since we last became private.
    asked_reflector: HashSet<PeerId>,
    /// Relays that accepted our reservation.
    accepted: HashSet<PeerId>,
    /// Relays' public call endpoints (they answered `/hail/reflector/1`): media relay candidates.
    reflectors: HashMap<PeerId, std::net::SocketAddr>,
}

/// Where a media relay answer goes.
pub type RelayReply = oneshot::Sender<Result<crate::relay::RelayResponse, RelayRequestError>>;

/// Why a media relay request got no answer from the relay.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RelayRequestError {
    /// Our own cap on requests in flight.
    #[error("too many relay requests in flight")]
    TooManyInFlight,
    /// The request could not be delivered or answered (the failure, on one line).
    #[error("the relay did not answer: {0}")]
    NoAnswer(String),
    /// The node dropped the request (it is stopping).
    #[error("the relay request was dropped")]
    Dropped,
    /// No answer in time.
    #[error("the relay did not answer in time")]
    TimedOut,
}

/// Relays we reserve a slot on at once, when behind NAT.
const RESERVATIONS: usize = 2;
/// How long a relay that failed us is left alone.
const RELAY_BACKOFF: Duration = Duration::from_secs(30);
/// How often reservations are checked while private.
const RESERVATION_CHECK: Duration = Duration::from_secs(5);

fn is_private(nat: &Option<autonat::NatStatus>) -> bool {
    matches!(nat, Some(autonat::NatStatus::Private))
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
            nat: NatState::default(),
            calls_address: None,
            media_relay: None,
            relay_requests: HashMap::new(),
            peer_ips: PeerIps::default(),
            connections_refused: 0,
            config,
        };
        let peers = discovery.config.bootstrap.clone();
        discovery.add_bootstrap(&peers);
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
        self.lookups.values().map(|l| l.deadline).chain(self.next_publish).chain(self.nat.next_check).min()
    }

    /// Expires lookups and publishes the peer record when due.
    pub fn on_timeout(&mut self, now: Instant) {
        let expired: Vec<PeerId> = self.lookups.iter().filter(|(_, l)| l.deadline <= now).map(|(p, _)| *p).collect();
        for peer in expired {
            self.fail_lookup(peer, now);
        }
        if self.next_publish.is_some_and(|t| t <= now) {
            self.publish_record(now);
        }
        if self.nat.next_check.is_some_and(|t| t <= now) {
            self.nat.next_check = None;
            self.check_reservations(now);
        }
    }

    /// Our call endpoint's address, if it is public: peers behind NAT may ask us for it.
    pub fn set_calls_address(&mut self, address: Option<std::net::SocketAddr>) {
        self.calls_address = address.filter(|a| is_global_address(&Multiaddr::from(a.ip())));
    }

    /// A media relay we could ask for an allocation: one that holds our reservation and has a public
    /// call endpoint.
    pub fn media_relay_peer(&self) -> Option<PeerId> {
        self.nat
            .reservations
            .keys()
            .find(|p| {
                self.nat.accepted.contains(p) && self.nat.reflectors.contains_key(p) && self.swarm.is_connected(p)
            })
            .copied()
    }

    /// Whether AutoNAT found us behind NAT.
    pub fn is_private(&self) -> bool {
        is_private(&self.nat.status)
    }

    /// Sends a media relay request to `relay`; the answer (or why there is none) goes to `reply`.
    pub fn relay_request(&mut self, relay: PeerId, request: crate::relay::RelayRequest, reply: RelayReply) {
        if self.relay_requests.len() >= 64 {
            let _ = reply.send(Err(RelayRequestError::TooManyInFlight));
            return;
        }
        let id = self.swarm.behaviour_mut().media_relay.send_request(&relay, request);
        self.relay_requests.insert(id, reply);
    }

    /// The media relay service's counters, on a node that runs it.
    pub fn media_relay_stats(&mut self) -> Option<crate::relay::RelayStats> {
        self.media_relay.as_mut().map(crate::relay::MediaRelay::stats)
    }

    fn on_media_relay(
        &mut self,
        event: request_response::Event<crate::relay::RelayRequest, crate::relay::RelayResponse>,
    ) {
        use crate::relay::{MediaRelay, RelayLimits, RelayResponse};
        match event {
            request_response::Event::Message {
                peer,
                message: request_response::Message::Request { request, channel, .. },
                ..
            } => {
                // Only a node that relays, with a public call endpoint, serves media.
                let serving = self.nat.serving || self.config.relay == RelayMode::On;
                let response = match (serving, self.calls_address) {
                    (true, Some(calls)) => {
                        let relay =
                            self.media_relay.get_or_insert_with(|| MediaRelay::new(calls.ip(), RelayLimits::default()));
                        let from_ip = self.peer_ips.get(&peer);
                        relay.handle(peer, from_ip, request)
                    }
                    _ => RelayResponse::Err { reason: "this node does not relay media".into() },
                };
                let _ = self.swarm.behaviour_mut().media_relay.send_response(channel, response);
            }
            request_response::Event::Message {
                message: request_response::Message::Response { request_id, response },
                ..
            } => {
                if let Some(reply) = self.relay_requests.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            request_response::Event::OutboundFailure { request_id, error, .. } => {
                if let Some(reply) = self.relay_requests.remove(&request_id) {
                    let _ = reply.send(Err(RelayRequestError::NoAnswer(one_line(&error.to_string()))));
                }
            }
            _ => {}
        }
    }

    fn on_reflector(&mut self, event: request_response::Event<ReflectorQuery, ReflectorInfo>) {
        match event {
            request_response::Event::Message {
                message: request_response::Message::Request { channel, .. }, ..
            } => {
                let info = ReflectorInfo { calls_address: self.calls_address.map(|a| a.to_string()) };
                let _ = self.swarm.behaviour_mut().reflector.send_response(channel, info);
            }
            request_response::Event::Message {
                peer,
                message: request_response::Message::Response { response, .. },
                ..
            } => {
                let address = response.calls_address.and_then(|a| a.parse::<std::net::SocketAddr>().ok());
                match address {
                    Some(address) if is_global_address(&Multiaddr::from(address.ip())) => {
                        if self.nat.reflectors.len() < 64 {
                            self.nat.reflectors.insert(peer, address);
                        }
                        self.events.push(DiscoveryEvent::Reflector { peer_id: peer, address });
                    }
                    _ => tracing::debug!(%peer, "the peer has no public call endpoint"),
                }
            }
            request_response::Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "reflector query failed");
            }
            _ => {}
        }
    }

    /// Behind NAT: ask the relays for their call endpoints (to learn our reflexive address), and
    /// keep [`RESERVATIONS`] relay reservations (so invites reach us through them). Publicly
    /// reachable: none of it.
    fn check_reservations(&mut self, now: Instant) {
        if !is_private(&self.nat.status) {
            return;
        }
        let to_ask: Vec<PeerId> = self
            .nat
            .relays
            .keys()
            .filter(|p| !self.nat.asked_reflector.contains(p) && self.swarm.is_connected(p))
            .copied()
            .collect();
        let room = 4usize.saturating_sub(self.nat.asked_reflector.len());
        for peer in to_ask.into_iter().take(room) {
            self.nat.asked_reflector.insert(peer);
            self.swarm.behaviour_mut().reflector.send_request(&peer, ReflectorQuery {});
        }
        self.nat.backoff.retain(|_, until| *until > now);
        let mut candidates: Vec<(PeerId, Vec<Multiaddr>)> = self
            .nat
            .relays
            .iter()
            .filter(|(p, _)| !self.nat.reservations.contains_key(p) && !self.nat.backoff.contains_key(p))
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        // Bootstrap peers first: the user chose them.
        candidates.sort_by_key(|(p, _)| !self.bootstrap.iter().any(|(b, _)| b.peer_id == *p));
        for (relay, addresses) in candidates {
            if self.nat.reservations.len() >= RESERVATIONS {
                break;
            }
            let Some(address) = addresses.iter().find(|a| !is_loopback(a) || addresses.iter().all(is_loopback)) else {
                continue;
            };
            let circuit = without_peer_id(address).with(Protocol::P2p(relay)).with(Protocol::P2pCircuit);
            match self.swarm.listen_on(circuit.clone()) {
                Ok(id) => {
                    tracing::info!(%relay, %circuit, "reserving a relay slot (we are behind NAT)");
                    self.nat.reservations.insert(relay, id);
                }
                Err(e) => {
                    tracing::debug!(%relay, error = %e, "cannot listen through this relay");
                    self.nat.backoff.insert(relay, now + RELAY_BACKOFF);
                }
            }
        }
        self.nat.next_check = Some(now + RESERVATION_CHECK);
    }

    fn on_autonat(&mut self, event: autonat::Event, now: Instant) {
        let autonat::Event::StatusChanged { old, new } = event else { return };
        tracing::info!(?old, ?new, "reachability changed");
        let public = matches!(new, autonat::NatStatus::Public(_));
        if self.config.dht_mode == DhtMode::Auto {
            self.swarm.behaviour_mut().kad.set_mode(Some(if public { kad::Mode::Server } else { kad::Mode::Client }));
        }
        if self.config.relay == RelayMode::Auto {
            if let Some(server) = self.swarm.behaviour_mut().relay_server.as_mut() {
                server.set_status(Some(if public { relay::Status::Enable } else { relay::Status::Disable }));
            }
        }
        self.nat.status = Some(new);
        self.events.push(DiscoveryEvent::Reachability { private: !public });
        if public {
            // Reachable directly: the reservations are not needed any more.
            for (_, id) in self.nat.reservations.drain() {
                self.swarm.remove_listener(id);
            }
            self.nat.accepted.clear();
        } else {
            // Private (again): the NAT may have changed; ask for the reflexive address anew.
            self.nat.asked_reflector.clear();
            self.check_reservations(now);
        }
        self.schedule_publish(now + PUBLISH_DEBOUNCE);
    }

    fn on_relay_client(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted { relay_peer_id, renewal, .. } => {
                self.nat.accepted.insert(relay_peer_id);
                if !renewal {
                    tracing::info!(relay = %relay_peer_id, "reachable through a relay");
                }
            }
            other => tracing::debug!(?other, "relay client"),
        }
    }

    /// What happened since the last call, for the node.
    pub fn drain_events(&mut self) -> Vec<DiscoveryEvent> {
        std::mem::take(&mut self.events)
    }

    /// Starts finding `target`; the answer goes to `reply`.
    pub fn find(&mut self, target: PeerId, now: Instant, reply: FindReply) {
        if target == self.local_peer_id() {
            let _ = reply.send(Err(FindError::Myself));
            return;
        }
        // Connected and its listen addresses known: answered at once. Connected but identify has
        // not told us where it listens yet: a lookup, which identify answers (`on_identify`).
        let known = self.peers.get(&target).is_some_and(|e| !e.addresses.is_empty());
        if self.swarm.is_connected(&target) && known {
            let entry = self.peers.get(&target);
            let found = FoundPeer {
                peer_id: target,
                addresses: entry.map(|e| e.addresses.clone()).unwrap_or_default(),
                via: entry.and_then(|e| e.sources.iter().next().copied()).unwrap_or(Source::Connected),
                asked: 0,
                elapsed_ms: 0,
            };
            self.events.push(DiscoveryEvent::Found(found.clone()));
            let _ = reply.send(Ok(found));
            return;
        }
        if let Some(lookup) = self.lookups.get_mut(&target) {
            lookup.waiters.push(reply);
            return;
        }
        if self.lookups.len() >= MAX_LOOKUPS {
            let _ = reply.send(Err(FindError::Busy));
            return;
        }
        let mut lookup = Lookup {
            started: now,
            deadline: now + FIND_TIMEOUT,
            closest: None,
            record: None,
            dials: 0,
            tried: HashSet::new(),
            origins: HashMap::new(),
            asked: 0,
            used_dht: false,
            waiters: vec![reply],
        };
        // The DHT, in parallel with what we already know (mDNS, contact hints, routing table).
        let routing_peers = self.routing_table_size();
        if routing_peers > 0 {
            let kad = &mut self.swarm.behaviour_mut().kad;
            let closest = kad.get_closest_peers(target);
            let record = kad.get_record(record_key(&target));
            lookup.closest = Some(closest);
            lookup.record = Some(record);
            lookup.used_dht = true;
            self.queries.insert(closest, (target, QueryKind::Closest));
            self.queries.insert(record, (target, QueryKind::Record));
        }
        self.lookups.insert(target, lookup);
        if let Some(entry) = self.peers.get(&target).cloned() {
            let via = [Source::Mdns, Source::ContactHint, Source::Dht, Source::Bootstrap]
                .into_iter()
                .find(|s| entry.sources.contains(s))
                .unwrap_or(Source::Dht);
            self.dial_for_lookup(target, &entry.addresses, via);
        }
        self.settle(target, now);
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
                if self.config.relay == RelayMode::On && is_global_address(&address) {
                    // Configured as a public node: its global addresses are reachable (the relay
                    // serves only with a confirmed external address).
                    self.swarm.add_external_address(address);
                }
                self.schedule_publish(now + PUBLISH_DEBOUNCE);
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

    fn on_kad(&mut self, event: kad::Event, now: Instant) {
        match event {
            kad::Event::RoutingUpdated { peer, addresses, .. } => {
                let addresses: Vec<Multiaddr> = addresses.iter().cloned().collect();
                self.peers.observe(peer, &addresses, Source::Dht, now_ms());
                if self.next_publish.is_none() {
                    // First DHT peer: tell the DHT where we are.
                    self.schedule_publish(now + PUBLISH_DEBOUNCE);
                }
            }
            kad::Event::InboundRequest {
                request: kad::InboundRequest::PutRecord { source, record: Some(record), .. },
            } => {
                self.store_inbound_record(source, record, now);
            }
            kad::Event::OutboundQueryProgressed { id, result, stats, step } => {
                let asked = stats.num_requests();
                match result {
                    QueryResult::GetClosestPeers(result) => {
                        let peers = match result {
                            Ok(GetClosestPeersOk { peers, .. }) => peers,
                            Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                        };
                        let target = self.queries.get(&id).map(|(t, _)| *t);
                        for info in peers {
                            self.peers.observe(info.peer_id, &info.addrs, Source::Dht, now_ms());
                            if Some(info.peer_id) == target {
                                self.dial_for_lookup(info.peer_id, &info.addrs, Source::Dht);
                            }
                        }
                    }
                    QueryResult::GetRecord(Ok(GetRecordOk::FoundRecord(found))) => {
                        match verify_record(found.record.key.as_ref(), &found.record.value) {
                            Ok(verified) => {
                                self.peers.observe(verified.peer_id, &verified.addresses, Source::Dht, now_ms());
                                self.dial_for_lookup(verified.peer_id, &verified.addresses, Source::Dht);
                            }
                            Err(e) => {
                                self.records_rejected += 1;
                                tracing::debug!(from = ?found.peer, error = %e, "ignored a bad peer record");
                            }
                        }
                    }
                    QueryResult::PutRecord(result) => match result {
                        Ok(ok) if ok.key == record_key(&self.local_peer_id()) => {
                            self.record_published_ms = Some(now_ms());
                            tracing::debug!("peer record published");
                        }
                        Ok(_) => {}
                        Err(e) => tracing::debug!(error = %e, "peer record not published"),
                    },
                    QueryResult::Bootstrap(Ok(ok)) if ok.num_remaining == 0 => {
                        tracing::info!(routing_table = self.routing_table_size(), "joined the DHT");
                    }
                    QueryResult::Bootstrap(Err(e)) => tracing::debug!(error = %e, "DHT bootstrap step failed"),
                    _ => {}
                }
                if step.last {
                    if let Some((target, kind)) = self.queries.remove(&id) {
                        if let Some(lookup) = self.lookups.get_mut(&target) {
                            lookup.asked += asked;
                            match kind {
                                QueryKind::Closest => lookup.closest = None,
                                QueryKind::Record => lookup.record = None,
                            }
                        }
                        self.settle(target, now);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_invite(&mut self, event: request_response::Event<serde_json::Value, serde_json::Value>) {
        use request_response::{Event, Message};
        let out = match event {
            Event::Message { peer, message: Message::Request { request, channel, .. }, .. } => {
                let remote_ip = self.peer_ips.get(&peer);
                InviteEvent::Received { peer, remote_ip, invite: request, channel }
            }
            Event::Message { message: Message::Response { request_id, response }, .. } => {
                InviteEvent::Replied { request: request_id, reply: response }
            }
            Event::OutboundFailure { request_id, error, .. } => {
                InviteEvent::Failed { request: request_id, reason: one_line(&error.to_string()) }
            }
            Event::InboundFailure { peer, error, .. } => {
                // A malformed or oversized invite ends up here: logged, nothing else happens.
                tracing::info!(%peer, %error, "refused an invite that could not be read");
                return;
            }
            Event::ResponseSent { .. } => return,
        };
        self.events.push(DiscoveryEvent::Invite(out));
    }

    /// Sends an invite to `peer` (over the connection a lookup made, or a new one).
    pub fn send_invite(&mut self, peer: PeerId, invite: serde_json::Value) -> OutboundRequestId {
        self.swarm.behaviour_mut().invite.send_request(&peer, invite)
    }

    /// Answers an invite.
    pub fn reply_invite(&mut self, channel: ResponseChannel<serde_json::Value>, reply: serde_json::Value) {
        if self.swarm.behaviour_mut().invite.send_response(channel, reply).is_err() {
            tracing::debug!("the caller left before the invite was answered");
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

    fn on_mdns(&mut self, event: mdns::Event) {
        match event {
            mdns::Event::Discovered(list) => {
                let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
                for (peer, address) in list {
                    by_peer.entry(peer).or_default().push(address);
                }
                for (peer, addresses) in by_peer {
                    tracing::debug!(%peer, ?addresses, "seen on the LAN");
                    self.peers.observe(peer, &addresses, Source::Mdns, now_ms());
                    for a in &addresses {
                        self.swarm.behaviour_mut().kad.add_address(&peer, a.clone());
                    }
                    self.events.push(DiscoveryEvent::SeenOnLan { peer_id: peer, addresses: addresses.clone() });
                    if self.lookups.contains_key(&peer) {
                        self.dial_for_lookup(peer, &addresses, Source::Mdns);
                    } else if !self.foreign.contains(&peer) && !self.swarm.is_connected(&peer) {
                        // Say hello: mDNS only tells the newcomer about us, the connection (and
                        // identify on it) tells us about the newcomer. Non-hail libp2p nodes on the
                        // LAN are dropped after identify and not dialed again.
                        let opts = DialOpts::peer_id(peer)
                            .addresses(addresses)
                            .condition(PeerCondition::DisconnectedAndNotDialing)
                            .build();
                        let _ = self.swarm.dial(opts);
                    }
                }
            }
            mdns::Event::Expired(list) => {
                for (peer, _) in list {
                    if !self.swarm.behaviour().mdns.as_ref().is_some_and(|m| m.discovered_nodes().any(|p| *p == peer)) {
                        self.peers.forget_source(&peer, Source::Mdns);
                    }
                }
            }
        }
    }

    fn on_identify(&mut self, event: identify::Event) {
        if let identify::Event::Received { peer_id, info, .. } = event {
            if info.protocol_version != IDENTIFY_PROTOCOL
                && self.peers.get(&peer_id).is_some_and(|e| e.sources.contains(&Source::Mdns))
            {
                tracing::debug!(%peer_id, version = %info.protocol_version, "not a hail node; leaving it alone");
                if self.foreign.len() < MAX_FOREIGN {
                    self.foreign.insert(peer_id);
                }
                let _ = self.swarm.disconnect_peer_id(peer_id);
                return;
            }
            let listen: Vec<Multiaddr> = info.listen_addrs.into_iter().filter(is_dialable).collect();
            if info.protocols.contains(&relay::HOP_PROTOCOL_NAME) {
                let direct: Vec<Multiaddr> =
                    listen.iter().filter(|a| !a.iter().any(|p| matches!(p, Protocol::P2pCircuit))).cloned().collect();
                if !direct.is_empty() && self.nat.relays.len() < 64 {
                    self.nat.relays.insert(peer_id, direct);
                    if is_private(&self.nat.status) && self.nat.reservations.len() < RESERVATIONS {
                        self.nat.next_check = Some(Instant::now());
                    }
                }
            } else {
                self.nat.relays.remove(&peer_id);
            }
            self.peers.observe(peer_id, &listen, Source::Connected, now_ms());
            if let Some(lookup) = self.lookups.remove(&peer_id) {
                self.finish_lookup(peer_id, lookup, Ok((listen.clone(), Source::Connected)), Instant::now());
            }
            if info.protocols.contains(&self.config.dht_protocol) {
                for a in listen {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, a);
                }
            }
        }
    }

    /// Checks a record another node asked us to store, and stores it if it is sound and newer.
    fn store_inbound_record(&mut self, source: PeerId, mut record: Record, now: Instant) {
        use libp2p::kad::store::RecordStore;
        let verdict = verify_record(record.key.as_ref(), &record.value).and_then(|new| {
            let store = self.swarm.behaviour_mut().kad.store_mut();
            match store.get(&record.key).and_then(|old| verify_record(old.key.as_ref(), &old.value).ok()) {
                Some(old) if old.seq > new.seq => Err(super::record::RecordError::Stale),
                _ => Ok(new),
            }
        });
        match verdict {
            Ok(_) => {
                record.expires = Some(record.expires.map_or(now + RECORD_TTL, |e| e.min(now + RECORD_TTL)));
                if let Err(e) = self.swarm.behaviour_mut().kad.store_mut().put(record) {
                    tracing::debug!(%source, error = %e, "record not stored");
                }
            }
            Err(e) => {
                self.records_rejected += 1;
                tracing::info!(%source, error = %e, "refused a peer record");
            }
        }
    }

    fn dial_for_lookup(&mut self, target: PeerId, addresses: &[Multiaddr], via: Source) {
        let Some(lookup) = self.lookups.get_mut(&target) else { return };
        let fresh: Vec<Multiaddr> =
            addresses.iter().filter(|a| is_dialable(a) && !lookup.tried.contains(*a)).cloned().collect();
        if fresh.is_empty() {
            return;
        }
        for a in &fresh {
            lookup.tried.insert(a.clone());
            lookup.origins.entry(a.clone()).or_insert(via);
        }
        let opts = DialOpts::peer_id(target).addresses(fresh).condition(PeerCondition::Always).build();
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                lookup.dials += 1;
                self.dials.insert(id, target);
            }
            Err(e) => tracing::debug!(%target, error = %e, "could not dial"),
        }
    }

    /// Ends a lookup that has nothing left to wait for.
    fn settle(&mut self, target: PeerId, now: Instant) {
        let done = self.lookups.get(&target).is_some_and(|l| l.closest.is_none() && l.record.is_none() && l.dials == 0);
        if done {
            self.fail_lookup(target, now);
        }
    }

    fn fail_lookup(&mut self, target: PeerId, now: Instant) {
        let Some(lookup) = self.lookups.remove(&target) else { return };
        if self.swarm.is_connected(&target) {
            // The peer reached us while we looked for it. Its listen addresses arrive with
            // identify (`on_identify` answers then); only at the deadline answer without them.
            let addresses = self.peers.get(&target).map(|e| e.addresses.clone()).unwrap_or_default();
            if addresses.is_empty() && now < lookup.deadline {
                self.lookups.insert(target, lookup);
            } else {
                self.finish_lookup(target, lookup, Ok((addresses, Source::Connected)), now);
            }
            return;
        }
        for id in [lookup.closest, lookup.record].into_iter().flatten() {
            self.queries.remove(&id);
            if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                q.finish();
            }
        }
        let mdns = self.config.mdns;
        let error = if !lookup.used_dht && lookup.tried.is_empty() {
            FindError::NoPeersToAsk { mdns }
        } else {
            FindError::NotFound { asked: lookup.asked, waited_ms: (now - lookup.started).as_millis() as u64, mdns }
        };
        self.finish_lookup(target, lookup, Err(error), now);
    }

    fn finish_lookup(
        &mut self,
        target: PeerId,
        lookup: Lookup,
        result: Result<(Vec<Multiaddr>, Source), FindError>,
        now: Instant,
    ) {
        for id in [lookup.closest, lookup.record].into_iter().flatten() {
            self.queries.remove(&id);
        }
        let result = result.map(|(addresses, via)| {
            let mut addresses = addresses;
            if let Some(entry) = self.peers.get(&target) {
                for a in &entry.addresses {
                    if !addresses.contains(a) {
                        addresses.push(a.clone());
                    }
                }
            }
            FoundPeer {
                peer_id: target,
                addresses,
                via,
                asked: lookup.asked,
                elapsed_ms: (now - lookup.started).as_millis() as u64,
            }
        });
        if let Ok(found) = &result {
            self.events.push(DiscoveryEvent::Found(found.clone()));
        }
        for waiter in lookup.waiters {
            let _ = waiter.send(result.clone());
        }
    }

    fn schedule_publish(&mut self, at: Instant) {
        self.next_publish = Some(self.next_publish.map_or(at, |t| t.min(at)));
    }

    /// Puts the node's signed peer record into the DHT.
    fn publish_record(&mut self, now: Instant) {
        self.next_publish = Some(now + REPUBLISH_INTERVAL);
        let addresses = self.advertised_addresses();
        if addresses.is_empty() {
            return;
        }
        let key = record_key(&self.local_peer_id());
        let value = sign_record(&self.keypair, addresses);
        let mut record = Record::new(key, value);
        record.publisher = Some(self.local_peer_id());
        record.expires = Some(now + RECORD_TTL);
        if let Err(e) = self.swarm.behaviour_mut().kad.put_record(record, Quorum::One) {
            tracing::debug!(error = %e, "cannot store our own record");
        }
    }

    /// Addresses worth telling others: confirmed external ones, then listen addresses; loopback only
    /// when there is nothing else (a node on a machine of its own, as in tests).
    pub fn advertised_addresses(&self) -> Vec<Multiaddr> {
        let mut all: Vec<Multiaddr> = self.swarm.external_addresses().cloned().collect();
        for a in self.swarm.listeners() {
            if is_dialable(a) && !all.contains(a) {
                all.push(a.clone());
            }
        }
        if all.iter().any(|a| !is_loopback(a)) {
            all.retain(|a| !is_loopback(a));
        }
        all
    }

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

    fn routing_table_size(&mut self) -> usize {
        self.swarm.behaviour_mut().kad.kbuckets().map(|b| b.num_entries()).sum()
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
            reachability: match &self.nat.status {
                None | Some(autonat::NatStatus::Unknown) => "unknown".into(),
                Some(autonat::NatStatus::Public(_)) => "public".into(),
                Some(autonat::NatStatus::Private) => "private".into(),
            },
            relayed_via: self
                .nat
                .reservations
                .keys()
                .filter(|p| self.nat.accepted.contains(p))
                .map(ToString::to_string)
                .collect(),
            relay: self.config.relay,
            relay_serving: self.nat.serving,
            media_relay: self.media_relay.as_mut().map(crate::relay::MediaRelay::stats),
        }
    }

    fn set_bootstrap_state(&mut self, peer: &PeerId, state: String) {
        for (p, s) in &mut self.bootstrap {
            if p.peer_id == *peer {
                *s = state.clone();
            }
        }
    }
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
