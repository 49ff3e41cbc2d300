//! The DHT's events and the peer records in it: ours (published, republished, debounced) and
//! others' (checked before they are stored).

use super::*;

/// How often the node republishes its peer record.
pub const REPUBLISH_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// Delay between an address change and the record that announces it (changes come in bursts).
pub(super) const PUBLISH_DEBOUNCE: Duration = Duration::from_millis(500);

impl Discovery {
    pub(super) fn on_kad(&mut self, event: kad::Event, now: Instant) {
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
                    QueryResult::PutRecord(result) => {
                        let carried = self.record_puts.remove(&id);
                        match result {
                            Ok(ok) if ok.key == record_key(&self.local_peer_id()) => {
                                self.record_published_ms = Some(now_ms());
                                if let Some(addresses) = carried {
                                    tracing::info!(?addresses, "peer record published");
                                    self.record_published_addresses = addresses;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => tracing::debug!(error = %e, "peer record not published"),
                        }
                    }
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

    /// Checks a record another node asked us to store, and stores it if it is sound and newer.
    pub(super) fn store_inbound_record(&mut self, source: PeerId, mut record: Record, now: Instant) {
        use libp2p::kad::store::RecordStore;
        let verdict = verify_record(record.key.as_ref(), &record.value).and_then(|new| {
            let store = self.swarm.behaviour_mut().kad.store_mut();
            match store.get(&record.key).and_then(|old| verify_record(old.key.as_ref(), &old.value).ok()) {
                Some(old) if old.seq > new.seq => Err(crate::discovery::record::RecordError::Stale),
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

    pub(super) fn schedule_publish(&mut self, at: Instant) {
        self.next_publish = Some(self.next_publish.map_or(at, |t| t.min(at)));
    }

    /// Puts the node's signed peer record into the DHT.
    pub(super) fn publish_record(&mut self, now: Instant) {
        self.next_publish = Some(now + REPUBLISH_INTERVAL);
        let addresses = self.advertised_addresses();
        if addresses.is_empty() {
            return;
        }
        let key = record_key(&self.local_peer_id());
        let value = sign_record(&self.keypair, addresses.clone());
        let mut record = Record::new(key, value);
        record.publisher = Some(self.local_peer_id());
        record.expires = Some(now + RECORD_TTL);
        // Straight to the DHT servers we are connected to (no walk to the closest peers first,
        // which waits for every unreachable peer on the way: seconds), and, for the record's
        // place in the DHT, the walk as well.
        let servers = self.connected_dht_servers();
        let kad = &mut self.swarm.behaviour_mut().kad;
        if !servers.is_empty() {
            let id = kad.put_record_to(record.clone(), servers.into_iter(), Quorum::One);
            self.record_puts.insert(id, addresses.clone());
        }
        match self.swarm.behaviour_mut().kad.put_record(record, Quorum::One) {
            Ok(id) => {
                self.record_puts.insert(id, addresses);
            }
            Err(e) => tracing::debug!(error = %e, "cannot store our own record"),
        }
    }

    /// Peers in the routing table (DHT servers) we have a connection to.
    pub(super) fn connected_dht_servers(&mut self) -> Vec<PeerId> {
        let mut servers = Vec::new();
        for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
            servers.extend(bucket.iter().map(|e| *e.node.key.preimage()));
        }
        servers.retain(|p| self.swarm.is_connected(p));
        servers
    }

    /// Whether others can find us now: our record reached the DHT with the addresses we advertise
    /// now, and one of them is reachable from beyond this host (not loopback only).
    pub fn record_findable(&self) -> bool {
        let now = self.advertised_addresses();
        self.record_published_ms.is_some()
            && !self.record_published_addresses.is_empty()
            && now.iter().all(|a| self.record_published_addresses.contains(a))
            && now.iter().any(|a| !is_loopback(a))
    }

    /// Addresses worth telling others: confirmed external ones, then listen addresses; loopback only
    /// when there is nothing else (a node on a machine of its own, as in tests). With announced
    /// addresses (`--external-address`), those stand for the direct listen addresses (relayed ones
    /// are still told).
    pub fn advertised_addresses(&self) -> Vec<Multiaddr> {
        let mut all: Vec<Multiaddr> = self.swarm.external_addresses().cloned().collect();
        let announced = !self.config.external_addresses.is_empty();
        for a in self.swarm.listeners() {
            let relayed = a.iter().any(|p| matches!(p, Protocol::P2pCircuit));
            if is_dialable(a) && !all.contains(a) && (relayed || !announced) {
                all.push(a.clone());
            }
        }
        if all.iter().any(|a| !is_loopback(a)) {
            all.retain(|a| !is_loopback(a));
        }
        all
    }

    pub(super) fn routing_table_size(&mut self) -> usize {
        self.swarm.behaviour_mut().kad.kbuckets().map(|b| b.num_entries()).sum()
    }
}
