//! Invite admission budgets, sans-IO (the caller passes the time).
//!
//! Who is calling is decided **before** any budget is spent: a blocked caller, or an unknown one when
//! unknown callers are refused, is turned away without touching a counter. Then contacts and
//! unknown callers draw on separate budgets, so throw-away PeerIds can exhaust only the unknown
//! callers' budget, never a contact's:
//!
//! | budget | limit (default) |
//! |---|---|
//! | any one PeerId | [`PER_PEER_LIMIT`] per [`PER_PEER_WINDOW`] |
//! | all contacts together | [`CONTACTS_LIMIT`] per [`OVERALL_WINDOW`] |
//! | all unknown callers together | [`OVERALL_LIMIT`] per [`OVERALL_WINDOW`] |
//! | unknown callers from one IP | [`PER_IP_LIMIT`] per [`OVERALL_WINDOW`] |
//!
//! [`RefusedLog`] keeps the call history from growing with refused invites: one record per caller
//! per [`REFUSED_COALESCE`], and at most [`REFUSED_PER_HOUR`] records an hour.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;

/// At most this many invites per peer per [`PER_PEER_WINDOW`].
pub const PER_PEER_LIMIT: usize = 3;
/// The per-peer window.
pub const PER_PEER_WINDOW: Duration = Duration::from_secs(10);
/// At most this many invites from unknown callers in total per [`OVERALL_WINDOW`].
pub const OVERALL_LIMIT: usize = 20;
/// At most this many invites from contacts in total per [`OVERALL_WINDOW`].
pub const CONTACTS_LIMIT: usize = 60;
/// At most this many invites from unknown callers on one IP per [`OVERALL_WINDOW`].
pub const PER_IP_LIMIT: usize = 6;
/// The overall window.
pub const OVERALL_WINDOW: Duration = Duration::from_secs(60);
/// Most peers or IPs tracked per budget (expired ones are forgotten first).
const MAX_TRACKED: usize = 1024;
/// Refused invites from one caller within this time make one history record.
pub const REFUSED_COALESCE: Duration = Duration::from_secs(600);
/// At most this many refused-call records per hour.
pub const REFUSED_PER_HOUR: usize = 30;

/// How many invites are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InviteLimits {
    /// Per peer (contact or not) per [`PER_PEER_WINDOW`].
    pub per_peer: usize,
    /// From unknown callers in total per [`OVERALL_WINDOW`].
    pub overall: usize,
    /// From contacts in total per [`OVERALL_WINDOW`].
    pub contacts: usize,
    /// From unknown callers on one IP per [`OVERALL_WINDOW`].
    pub per_ip: usize,
}

impl Default for InviteLimits {
    fn default() -> Self {
        InviteLimits {
            per_peer: PER_PEER_LIMIT,
            overall: OVERALL_LIMIT,
            contacts: CONTACTS_LIMIT,
            per_ip: PER_IP_LIMIT,
        }
    }
}

/// Who is calling, as far as the budgets care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A contact (not blocked).
    Contact,
    /// Somebody else, reaching us from this IP (`None`: not known, e.g. through a relay circuit).
    Unknown(Option<IpAddr>),
}

/// Which budget turned an invite away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverBudget {
    /// This peer called too often.
    Peer,
    /// Too many invites from this IP.
    Ip,
    /// Too many invites from unknown callers (or from contacts) overall.
    Overall,
}

/// Sliding-window counters of recent invites.
#[derive(Debug, Default)]
pub struct InviteLimiter {
    limits: InviteLimits,
    per_peer: Windows<PeerId>,
    per_ip: Windows<IpAddr>,
    unknown: VecDeque<Instant>,
    contacts: VecDeque<Instant>,
}

impl InviteLimiter {
    /// A limiter with nothing counted.
    pub fn new(limits: InviteLimits) -> Self {
        InviteLimiter { limits, ..Self::default() }
    }

    /// Counts an invite from `peer` at `now`; an error names the budget it is over (it is not
    /// counted then, so a flood does not lock the peer out forever).
    pub fn admit(&mut self, peer: PeerId, caller: Caller, now: Instant) -> Result<(), OverBudget> {
        let (overall, overall_limit) = match caller {
            Caller::Contact => (&mut self.contacts, self.limits.contacts),
            Caller::Unknown(_) => (&mut self.unknown, self.limits.overall),
        };
        prune(overall, now, OVERALL_WINDOW);
        if overall.len() >= overall_limit {
            return Err(OverBudget::Overall);
        }
        if !self.per_peer.has_room(&peer, now, PER_PEER_WINDOW, self.limits.per_peer) {
            return Err(OverBudget::Peer);
        }
        if let Caller::Unknown(Some(ip)) = caller {
            if !self.per_ip.has_room(&ip, now, OVERALL_WINDOW, self.limits.per_ip) {
                return Err(OverBudget::Ip);
            }
            self.per_ip.count(ip, now);
        }
        self.per_peer.count(peer, now);
        overall.push_back(now);
        Ok(())
    }

    /// [`Self::admit`] as a yes/no.
    pub fn allow(&mut self, peer: PeerId, caller: Caller, now: Instant) -> bool {
        self.admit(peer, caller, now).is_ok()
    }
}

/// One sliding window per key, at most [`MAX_TRACKED`] keys.
#[derive(Debug)]
struct Windows<K> {
    map: HashMap<K, VecDeque<Instant>>,
}

impl<K> Default for Windows<K> {
    fn default() -> Self {
        Windows { map: HashMap::new() }
    }
}

impl<K: Hash + Eq + Copy> Windows<K> {
    /// Whether `key` may count one more within `limit` per `window` (and a slot to track it).
    fn has_room(&mut self, key: &K, now: Instant, window: Duration, limit: usize) -> bool {
        if !self.map.contains_key(key) && self.map.len() >= MAX_TRACKED {
            self.map.retain(|_, q| {
                prune(q, now, window);
                !q.is_empty()
            });
            if self.map.len() >= MAX_TRACKED {
                return false;
            }
        }
        match self.map.get_mut(key) {
            Some(q) => {
                prune(q, now, window);
                q.len() < limit
            }
            None => limit > 0,
        }
    }

    fn count(&mut self, key: K, now: Instant) {
        self.map.entry(key).or_default().push_back(now);
    }
}

fn prune(q: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while q.front().is_some_and(|t| now.saturating_duration_since(*t) >= window) {
        q.pop_front();
    }
}

/// Which refused invites make a history record: the first from a caller in
/// [`REFUSED_COALESCE`], and at most [`REFUSED_PER_HOUR`] an hour in all.
#[derive(Debug, Default)]
pub struct RefusedLog {
    last: HashMap<PeerId, Instant>,
    hour: VecDeque<Instant>,
    /// Refused invites not recorded (coalesced or over the hourly cap).
    pub suppressed: u64,
}

impl RefusedLog {
    /// Whether a refused invite from `peer` at `now` gets its own history record.
    pub fn should_record(&mut self, peer: PeerId, now: Instant) -> bool {
        prune(&mut self.hour, now, Duration::from_secs(3600));
        let recent = self.last.get(&peer).is_some_and(|t| now.saturating_duration_since(*t) < REFUSED_COALESCE);
        if recent || self.hour.len() >= REFUSED_PER_HOUR {
            self.suppressed += 1;
            return false;
        }
        if self.last.len() >= MAX_TRACKED {
            self.last.retain(|_, t| now.saturating_duration_since(*t) < REFUSED_COALESCE);
        }
        if self.last.len() >= MAX_TRACKED {
            self.suppressed += 1;
            return false;
        }
        self.last.insert(peer, now);
        self.hour.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(11, 0, 0, 9)));

    fn ip(n: u32) -> Caller {
        Caller::Unknown(Some(IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + n))))
    }

    #[test]
    fn limits_hold_per_peer_and_overall_and_recover() {
        let mut l = InviteLimiter::new(InviteLimits::default());
        let t0 = Instant::now();
        let p = PeerId::random();
        for _ in 0..PER_PEER_LIMIT {
            assert!(l.allow(p, Caller::Contact, t0));
        }
        assert_eq!(l.admit(p, Caller::Contact, t0), Err(OverBudget::Peer), "fourth invite in 10 s");
        assert!(l.allow(p, Caller::Contact, t0 + PER_PEER_WINDOW), "the window slides");
        let mut l = InviteLimiter::new(InviteLimits::default());
        let allowed = (0..100u32).filter(|n| l.allow(PeerId::random(), ip(*n), t0)).count();
        assert_eq!(allowed, OVERALL_LIMIT);
        assert!(l.allow(PeerId::random(), ip(1000), t0 + OVERALL_WINDOW));
    }

    #[test]
    fn throw_away_peer_ids_cannot_lock_contacts_out() {
        let mut l = InviteLimiter::new(InviteLimits::default());
        let t0 = Instant::now();
        // A flood of unknown callers from many IPs spends the unknown callers' budget...
        let unknown_ok = (0..500u32).filter(|n| l.allow(PeerId::random(), ip(*n), t0)).count();
        assert_eq!(unknown_ok, OVERALL_LIMIT);
        // ...and every contact still gets through.
        for _ in 0..10 {
            assert_eq!(l.admit(PeerId::random(), Caller::Contact, t0), Ok(()));
        }
    }

    #[test]
    fn one_ip_with_many_peer_ids_gets_its_share_only() {
        let mut l = InviteLimiter::new(InviteLimits::default());
        let t0 = Instant::now();
        let from_one_ip = (0..50).filter(|_| l.allow(PeerId::random(), Caller::Unknown(IP), t0)).count();
        assert_eq!(from_one_ip, PER_IP_LIMIT);
        assert_eq!(l.admit(PeerId::random(), Caller::Unknown(IP), t0), Err(OverBudget::Ip));
        // Others on other IPs still ring.
        assert!(l.allow(PeerId::random(), ip(77), t0));
    }

    #[test]
    fn refused_invites_are_coalesced_per_caller_and_capped_per_hour() {
        let mut log = RefusedLog::default();
        let t0 = Instant::now();
        let p = PeerId::random();
        assert!(log.should_record(p, t0));
        assert!(!log.should_record(p, t0 + Duration::from_secs(5)), "the same caller again: coalesced");
        assert!(log.should_record(p, t0 + REFUSED_COALESCE), "after the coalescing window: a new record");
        let recorded = (0..1000).filter(|_| log.should_record(PeerId::random(), t0 + REFUSED_COALESCE)).count();
        assert_eq!(recorded, REFUSED_PER_HOUR - 2, "the hourly cap holds");
        assert_eq!(log.suppressed, 1 + 1000 - recorded as u64);
    }
}
