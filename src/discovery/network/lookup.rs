//! Finding a peer: a lookup asks the DHT for the peer's signed record and its closest peers,
//! dials what it learns, and answers the caller of [`Discovery::find`] once a connection stands
//! or the lookup gives up.

use super::*;

/// How long a `find` may take before it reports "not found".
pub const FIND_TIMEOUT: Duration = Duration::from_secs(10);

/// Most `find` lookups in flight at once.
pub const MAX_LOOKUPS: usize = 32;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum QueryKind {
    Closest,
    Record,
}

/// One `find` in progress.
#[derive(Debug)]
pub(super) struct Lookup {
    pub(super) started: Instant,
    pub(super) deadline: Instant,
    pub(super) closest: Option<QueryId>,
    pub(super) record: Option<QueryId>,
    pub(super) dials: usize,
    pub(super) tried: HashSet<Multiaddr>,
    /// Where each address came from, to report `via`.
    pub(super) origins: HashMap<Multiaddr, Source>,
    pub(super) asked: u32,
    /// Whether DHT queries were started (the routing table was not empty).
    pub(super) used_dht: bool,
    pub(super) waiters: Vec<FindReply>,
}

impl Discovery {
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

    pub(super) fn dial_for_lookup(&mut self, target: PeerId, addresses: &[Multiaddr], via: Source) {
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
    pub(super) fn settle(&mut self, target: PeerId, now: Instant) {
        let done = self.lookups.get(&target).is_some_and(|l| l.closest.is_none() && l.record.is_none() && l.dials == 0);
        if done {
            self.fail_lookup(target, now);
        }
    }

    pub(super) fn fail_lookup(&mut self, target: PeerId, now: Instant) {
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

    pub(super) fn finish_lookup(
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
}
