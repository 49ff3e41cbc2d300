//! Finding a peer: a lookup asks the DHT for the peer's signed record and its closest peers,
//! dials what it learns, and answers the caller of [`Discovery::find`] once a connection stands
//! or the lookup gives up.

use super::*;

/// How long a `find` may take before it reports "not found" (a call looks for as long as it would
/// ring: [`Discovery::find_within`]).
pub const FIND_TIMEOUT: Duration = Duration::from_secs(10);

/// The pause before a lookup's second round; each later round waits twice as long as the one
/// before, up to [`MAX_ROUND_PAUSE`]. A peer that has just started publishes its record within a
/// second or two: the first rounds come quickly.
pub const FIRST_ROUND_PAUSE: Duration = Duration::from_millis(250);
/// The longest pause between two rounds of a lookup.
pub const MAX_ROUND_PAUSE: Duration = Duration::from_secs(4);

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
        "is {}not found in the DHT (asked {asked} peers in {:.1} s, {rounds} {}; {})",
        if *.mdns { "not on this LAN and was " } else { "" },
        *.waited_ms as f64 / 1000.0,
        if *.rounds == 1 { "round" } else { "rounds" },
        tried_text(*.addresses, *.relayed)
    )]
    NotFound {
        /// How many DHT peers were asked.
        asked: u32,
        /// How long the lookup ran.
        waited_ms: u64,
        /// Whether mDNS was on (so "not on this LAN" is meaningful).
        mdns: bool,
        /// Rounds of asking and dialing.
        rounds: u32,
        /// Distinct addresses of the peer dialed (the DHT's, the contact card's, the LAN's).
        addresses: u32,
        /// How many of them go through a relay.
        relayed: u32,
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

/// What the dialing part of a lookup tried, for people.
fn tried_text(addresses: u32, relayed: u32) -> String {
    match (addresses, relayed) {
        (0, _) => "no address of it was known".into(),
        (n, 0) => format!("dialed {n} known address{}, none answered", if n == 1 { "" } else { "es" }),
        (n, r) => format!("dialed {n} known address{} ({r} through a relay), none answered", if n == 1 { "" } else { "es" }),
    }
}

/// The pause after round `rounds` of a lookup (1-based) before the next.
pub(super) fn round_pause(rounds: u32) -> Duration {
    FIRST_ROUND_PAUSE.saturating_mul(1 << rounds.saturating_sub(1).min(8)).min(MAX_ROUND_PAUSE)
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
    /// Every address dialed, in any round.
    pub(super) tried: HashSet<Multiaddr>,
    /// Addresses dialed in this round (each round dials every known address again).
    pub(super) dialed_this_round: HashSet<Multiaddr>,
    /// Rounds started (the first with the lookup).
    pub(super) rounds: u32,
    /// When the next round starts, while the lookup waits between rounds.
    pub(super) next_round: Option<Instant>,
    /// Where each address came from, to report `via`.
    pub(super) origins: HashMap<Multiaddr, Source>,
    pub(super) asked: u32,
    /// Whether DHT queries were started (the routing table was not empty).
    pub(super) used_dht: bool,
    pub(super) waiters: Vec<FindReply>,
}

impl Discovery {
    /// Whether this node has a DHT to ask: bootstrap peers, or a connection to a peer in its
    /// routing table (contacts' last seen addresses go into the table too: those alone are no DHT).
    pub fn has_dht(&mut self) -> bool {
        !self.bootstrap.is_empty() || !self.connected_dht_servers().is_empty()
    }

    /// Starts finding `target`, for at most [`FIND_TIMEOUT`]; the answer goes to `reply`.
    pub fn find(&mut self, target: PeerId, now: Instant, reply: FindReply) {
        self.find_within(target, now, FIND_TIMEOUT, reply);
    }

    /// Starts finding `target`; the answer goes to `reply`. The lookup runs in rounds (the DHT's
    /// record and closest peers, and every known address of the peer: the LAN's, the contact
    /// card's, relayed ones), with growing pauses between them ([`round_pause`]), until the peer
    /// answers or `patience` has passed: a peer that has just started is found once its record is
    /// out. A node with nobody to ask and no address of the peer answers at once.
    pub fn find_within(&mut self, target: PeerId, now: Instant, patience: Duration, reply: FindReply) {
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
            lookup.deadline = lookup.deadline.max(now + patience);
            lookup.waiters.push(reply);
            return;
        }
        if self.lookups.len() >= MAX_LOOKUPS {
            let _ = reply.send(Err(FindError::Busy));
            return;
        }
        let lookup = Lookup {
            started: now,
            deadline: now + patience,
            closest: None,
            record: None,
            dials: 0,
            tried: HashSet::new(),
            dialed_this_round: HashSet::new(),
            rounds: 0,
            next_round: None,
            origins: HashMap::new(),
            asked: 0,
            used_dht: false,
            waiters: vec![reply],
        };
        self.lookups.insert(target, lookup);
        self.start_round(target, now);
    }

    /// Starts the next round of the lookup for `target`: the DHT, in parallel with what we already
    /// know (mDNS, contact hints, the routing table, earlier rounds).
    pub(super) fn start_round(&mut self, target: PeerId, now: Instant) {
        let routing_peers = self.routing_table_size();
        let Some(lookup) = self.lookups.get_mut(&target) else { return };
        lookup.rounds += 1;
        lookup.next_round = None;
        lookup.dialed_this_round.clear();
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
            addresses.iter().filter(|a| is_dialable(a) && !lookup.dialed_this_round.contains(*a)).cloned().collect();
        if fresh.is_empty() {
            return;
        }
        for a in &fresh {
            lookup.dialed_this_round.insert(a.clone());
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

    /// A lookup whose round has nothing left to wait for: the next round after a pause, or, when
    /// its patience would run out first (or there is nobody to ask and nothing to dial), the end.
    pub(super) fn settle(&mut self, target: PeerId, now: Instant) {
        let nobody_to_ask = self.bootstrap.is_empty();
        let Some(lookup) = self.lookups.get_mut(&target) else { return };
        let idle = lookup.closest.is_none() && lookup.record.is_none() && lookup.dials == 0;
        if !idle || lookup.next_round.is_some() {
            return;
        }
        let next = now + round_pause(lookup.rounds);
        let hopeless = !lookup.used_dht && lookup.tried.is_empty() && nobody_to_ask;
        if next < lookup.deadline && !hopeless && !self.swarm.is_connected(&target) {
            tracing::debug!(%target, round = lookup.rounds, "not found yet; looking again");
            lookup.next_round = Some(next);
        } else {
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
            FindError::NotFound {
                asked: lookup.asked,
                waited_ms: (now - lookup.started).as_millis() as u64,
                mdns,
                rounds: lookup.rounds,
                addresses: lookup.tried.len() as u32,
                relayed: lookup.tried.iter().filter(|a| a.iter().any(|p| matches!(p, Protocol::P2pCircuit))).count() as u32,
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_come_quickly_then_back_off_to_the_cap() {
        let pauses: Vec<u64> = (1..=8).map(|r| round_pause(r).as_millis() as u64).collect();
        assert_eq!(pauses, [250, 500, 1000, 2000, 4000, 4000, 4000, 4000]);
        assert_eq!(round_pause(u32::MAX), MAX_ROUND_PAUSE);
    }

    #[test]
    fn not_found_says_what_was_tried() {
        let e = FindError::NotFound { asked: 4, waited_ms: 45_000, mdns: false, rounds: 14, addresses: 3, relayed: 1 };
        assert_eq!(
            e.to_string(),
            "is not found in the DHT (asked 4 peers in 45.0 s, 14 rounds; dialed 3 known addresses (1 through a relay), none answered)"
        );
        let e = FindError::NotFound { asked: 0, waited_ms: 100, mdns: true, rounds: 1, addresses: 0, relayed: 0 };
        assert_eq!(e.to_string(), "is not on this LAN and was not found in the DHT (asked 0 peers in 0.1 s, 1 round; no address of it was known)");
    }
}
