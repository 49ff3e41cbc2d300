//! What mDNS and identify tell us about other peers: addresses on the LAN, listen addresses,
//! protocols.

use super::*;

/// Most non-hail LAN peers remembered (so they are not dialed again).
pub(super) const MAX_FOREIGN: usize = 256;

impl Discovery {
    pub(super) fn on_mdns(&mut self, event: mdns::Event) {
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

    pub(super) fn on_identify(&mut self, event: identify::Event) {
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
                    if self.behind_nat() && self.nat.reservations.len() < RESERVATIONS {
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
}
