//! Invite rate limiting: per peer and overall, sans-IO (the caller passes the time).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;

/// At most this many invites per peer per [`PER_PEER_WINDOW`].
pub const PER_PEER_LIMIT: usize = 3;
/// The per-peer window.
pub const PER_PEER_WINDOW: Duration = Duration::from_secs(10);
/// At most this many invites in total per [`OVERALL_WINDOW`].
pub const OVERALL_LIMIT: usize = 20;
/// The overall window.
pub const OVERALL_WINDOW: Duration = Duration::from_secs(60);
/// Most peers tracked (the oldest are forgotten).
const MAX_TRACKED: usize = 1024;

/// How many invites are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InviteLimits {
    /// Per peer per [`PER_PEER_WINDOW`].
    pub per_peer: usize,
    /// In total per [`OVERALL_WINDOW`].
    pub overall: usize,
}

impl Default for InviteLimits {
    fn default() -> Self {
        InviteLimits { per_peer: PER_PEER_LIMIT, overall: OVERALL_LIMIT }
    }
}

/// Sliding-window counters of recent invites.
#[derive(Debug, Default)]
pub struct InviteLimiter {
    limits: InviteLimits,
    per_peer: HashMap<PeerId, VecDeque<Instant>>,
    overall: VecDeque<Instant>,
}

impl InviteLimiter {
    /// A limiter with nothing counted.
    pub fn new(limits: InviteLimits) -> Self {
        InviteLimiter { limits, ..Self::default() }
    }

    /// Counts an invite from `peer` at `now`; `false` when it is over a limit (it is not counted
    /// then, so a flood does not lock out the peer forever).
    pub fn allow(&mut self, peer: PeerId, now: Instant) -> bool {
        prune(&mut self.overall, now, OVERALL_WINDOW);
        if self.overall.len() >= self.limits.overall {
            return false;
        }
        if !self.per_peer.contains_key(&peer) && self.per_peer.len() >= MAX_TRACKED {
            self.per_peer.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < PER_PEER_WINDOW));
            if self.per_peer.len() >= MAX_TRACKED {
                return false;
            }
        }
        let q = self.per_peer.entry(peer).or_default();
        prune(q, now, PER_PEER_WINDOW);
        if q.len() >= self.limits.per_peer {
            return false;
        }
        q.push_back(now);
        self.overall.push_back(now);
        true
    }
}

fn prune(q: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
        q.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_per_peer_and_overall_and_recover() {
        let mut l = InviteLimiter::new(InviteLimits::default());
        let t0 = Instant::now();
        let p = PeerId::random();
        for _ in 0..PER_PEER_LIMIT {
            assert!(l.allow(p, t0));
        }
        assert!(!l.allow(p, t0), "fourth invite in 10 s");
        assert!(l.allow(p, t0 + PER_PEER_WINDOW), "the window slides");
        let mut l = InviteLimiter::new(InviteLimits::default());
        let allowed = (0..100).filter(|_| l.allow(PeerId::random(), t0)).count();
        assert_eq!(allowed, OVERALL_LIMIT);
        assert!(l.allow(PeerId::random(), t0 + OVERALL_WINDOW));
    }
}
