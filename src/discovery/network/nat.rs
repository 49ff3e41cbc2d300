//! Reachability and relay reservations: what AutoNAT says about us, and, while we are private,
//! the circuit relay slots that let invites reach us.

use super::*;

/// What the node knows about its own reachability, and its relay reservations.
#[derive(Debug, Default)]
pub(super) struct NatState {
    pub(super) status: Option<autonat::NatStatus>,
    /// Peers that offer the relay hop protocol, and where they listen.
    pub(super) relays: HashMap<PeerId, Vec<Multiaddr>>,
    /// Our reservations: relay → its circuit listener.
    pub(super) reservations: HashMap<PeerId, ListenerId>,
    /// Relays that refused or failed, with when they may be tried again.
    pub(super) backoff: HashMap<PeerId, Instant>,
    pub(super) next_check: Option<Instant>,
    pub(super) serving: bool,
    /// Relays asked for their call endpoint since we last became private.
    pub(super) asked_reflector: HashSet<PeerId>,
    /// Relays that accepted our reservation.
    pub(super) accepted: HashSet<PeerId>,
    /// Relays' public call endpoints (they answered `/hail/reflector/1`): media relay candidates.
    pub(super) reflectors: HashMap<PeerId, std::net::SocketAddr>,
}

/// Relays we reserve a slot on at once, when behind NAT.
pub(super) const RESERVATIONS: usize = 2;

/// How long a relay that failed us is left alone.
pub(super) const RELAY_BACKOFF: Duration = Duration::from_secs(30);

/// How often reservations are checked while private.
pub(super) const RESERVATION_CHECK: Duration = Duration::from_secs(5);

pub(super) fn is_private(nat: &Option<autonat::NatStatus>) -> bool {
    matches!(nat, Some(autonat::NatStatus::Private))
}

impl Discovery {
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

    /// Whether the node should be reachable through relays: AutoNAT found it private, or it has
    /// not decided yet and nothing says the node is public (no global listen address, nothing
    /// announced, not a relay itself). AutoNAT's verdict on a node behind NAT waits for a dial-back
    /// to time out (about ten seconds): reserving before it makes a new node callable seconds
    /// sooner, and a node found public drops its reservations.
    ///
    /// Calls go by the same test: a node behind NAT brings a media relay candidate to every call
    /// it places, and allocates one for a caller that brought none. A call in a new node's first
    /// ten seconds needs the relay as much as any later one (the NAT bench's start-to-callable
    /// row lost a call whenever the caller's own allocation was refused and the new callee,
    /// still "unknown", allocated none).
    pub fn behind_nat(&self) -> bool {
        match &self.nat.status {
            Some(autonat::NatStatus::Private) => true,
            Some(autonat::NatStatus::Public(_)) => false,
            None | Some(autonat::NatStatus::Unknown) => {
                self.config.relay != RelayMode::On
                    && self.config.external_addresses.is_empty()
                    && !self.swarm.listeners().any(is_global_address)
                    && self.host_ips().iter().any(|ip| !ip.is_loopback())
            }
        }
    }

    /// Behind NAT (or not yet known to be public: [`Discovery::behind_nat`]): ask the
    /// relays for their call endpoints (to learn our reflexive address), and keep [`RESERVATIONS`]
    /// relay reservations (so invites reach us through them). Publicly reachable: none of it.
    pub(super) fn check_reservations(&mut self, now: Instant) {
        if !self.behind_nat() {
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

    pub(super) fn on_autonat(&mut self, event: autonat::Event, now: Instant) {
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

    pub(super) fn on_relay_client(&mut self, event: relay::client::Event) {
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
}
