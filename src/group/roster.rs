//! Who is in the group call: the roster of an epoch (members sorted by PeerId bytes, each with its
//! sender index), when each member was last heard from, and the budget for join requests.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;

use super::control::RosterEntry;
use crate::crypto::sender_key::SenderIndex;

/// One epoch's membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    epoch: u64,
    next_index: u16,
    members: Vec<RosterEntry>,
}

/// Why a roster was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    /// The same member or sender index twice.
    #[error("a roster names a member or a sender index twice")]
    Duplicate,
    /// A sender index at or above the roster's own counter of given-out indices.
    #[error("sender index {0} was never given out")]
    IndexNotGivenOut(u8),
    /// More members than the group allows.
    #[error("a roster of {0} members is larger than the group allows")]
    TooLarge(usize),
    /// Every one of the 256 sender indices has been given out in this call.
    #[error("every sender index of this call has been given out")]
    IndicesExhausted,
}

impl Roster {
    /// A roster from its wire form: the members are sorted by PeerId bytes; every index must be
    /// below `next_index`, and no member or index may appear twice.
    pub fn new(epoch: u64, next_index: u16, mut members: Vec<RosterEntry>) -> Result<Roster, RosterError> {
        members.sort_by_key(|m| m.peer.to_bytes());
        for (i, m) in members.iter().enumerate() {
            if members[..i].iter().any(|o| o.peer == m.peer || o.index == m.index) {
                return Err(RosterError::Duplicate);
            }
            if u16::from(m.index.0) >= next_index {
                return Err(RosterError::IndexNotGivenOut(m.index.0));
            }
        }
        Ok(Roster { epoch, next_index, members })
    }

    /// The first roster of a call: `members` (the one who starts it among them) get indices 0, 1, …
    /// in member order.
    pub fn founding(members: impl IntoIterator<Item = PeerId>) -> Result<Roster, RosterError> {
        let mut peers: Vec<PeerId> = members.into_iter().collect();
        peers.sort_by_key(|p| p.to_bytes());
        peers.dedup();
        if peers.len() > 256 {
            return Err(RosterError::TooLarge(peers.len()));
        }
        let members =
            peers.iter().enumerate().map(|(i, p)| RosterEntry { index: SenderIndex(i as u8), peer: *p }).collect();
        Roster::new(0, peers.len() as u16, members)
    }

    /// The next epoch's roster: without `leaving`, with `joining` (each given the next fresh index).
    pub fn next(&self, leaving: &[PeerId], joining: &[PeerId]) -> Result<Roster, RosterError> {
        let mut next_index = self.next_index;
        let mut members: Vec<RosterEntry> =
            self.members.iter().filter(|m| !leaving.contains(&m.peer)).copied().collect();
        for peer in joining {
            if members.iter().any(|m| m.peer == *peer) {
                continue;
            }
            let index = u8::try_from(next_index).map_err(|_| RosterError::IndicesExhausted)?;
            members.push(RosterEntry { index: SenderIndex(index), peer: *peer });
            next_index += 1;
        }
        Roster::new(self.epoch + 1, next_index, members)
    }

    /// The epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The lowest sender index not yet given out in the call (256: none left).
    pub fn next_index(&self) -> u16 {
        self.next_index
    }

    /// The members, sorted by PeerId bytes.
    pub fn entries(&self) -> &[RosterEntry] {
        &self.members
    }

    /// The members' PeerIds, sorted by their bytes.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.members.iter().map(|m| m.peer)
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the roster is empty (never, for a roster in use).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether `peer` is a member.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.index_of(peer).is_some()
    }

    /// `peer`'s sender index.
    pub fn index_of(&self, peer: &PeerId) -> Option<SenderIndex> {
        self.members.iter().find(|m| m.peer == *peer).map(|m| m.index)
    }

    /// The sequencer of a change that removes `leaving`: the first member (in member order) who
    /// stays. Only it may commit the change; every member checks a commit against this.
    pub fn sequencer(&self, leaving: &[PeerId]) -> Option<PeerId> {
        self.peers().find(|p| !leaving.contains(p))
    }
}

/// When each member was last heard from: a member silent for longer than the timeout is taken
/// for gone.
#[derive(Debug, Default)]
pub struct Liveness {
    heard: BTreeMap<PeerId, Instant>,
}

impl Liveness {
    /// Forgets everyone but `members`, and counts the new ones as heard from `now` (they get a
    /// whole timeout to speak up).
    pub fn track(&mut self, members: impl IntoIterator<Item = PeerId>, now: Instant) {
        let members: Vec<PeerId> = members.into_iter().collect();
        self.heard.retain(|p, _| members.contains(p));
        for p in members {
            self.heard.entry(p).or_insert(now);
        }
    }

    /// `peer` said something at `now` (only tracked members count).
    pub fn heard(&mut self, peer: &PeerId, now: Instant) {
        if let Some(at) = self.heard.get_mut(peer) {
            *at = (*at).max(now);
        }
    }

    /// The members not heard from for longer than `timeout` at `now`.
    pub fn silent(&self, now: Instant, timeout: Duration) -> Vec<PeerId> {
        self.heard.iter().filter(|(_, at)| now.saturating_duration_since(**at) > timeout).map(|(p, _)| *p).collect()
    }

    /// When the next member goes silent, if nobody speaks before.
    pub fn next_deadline(&self, timeout: Duration) -> Option<Instant> {
        self.heard.values().min().map(|at| *at + timeout)
    }
}

/// A sliding-window budget: at most `limit` requests in any `window`.
#[derive(Debug)]
pub struct JoinBudget {
    limit: usize,
    window: Duration,
    taken: VecDeque<Instant>,
}

impl JoinBudget {
    /// At most `limit` requests in any `window`.
    pub fn new(limit: usize, window: Duration) -> JoinBudget {
        JoinBudget { limit, window, taken: VecDeque::with_capacity(limit) }
    }

    /// Takes one request at `now` if the budget has room.
    pub fn admit(&mut self, now: Instant) -> bool {
        while self.taken.front().is_some_and(|t| now.saturating_duration_since(*t) >= self.window) {
            self.taken.pop_front();
        }
        if self.taken.len() >= self.limit {
            return false;
        }
        self.taken.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn peer(seed: u8) -> PeerId {
        Identity::from_seed([seed; 32]).peer_id()
    }

    #[test]
    fn indices_are_kept_and_never_given_out_twice() {
        let r0 = Roster::founding([peer(1), peer(2)]).unwrap();
        assert_eq!((r0.epoch(), r0.next_index()), (0, 2));
        let r1 = r0.next(&[peer(2)], &[peer(3)]).unwrap();
        assert_eq!(r1.index_of(&peer(1)), r0.index_of(&peer(1)));
        assert_eq!(r1.index_of(&peer(3)), Some(SenderIndex(2)), "2's index 1 is not reused");
        let r2 = r1.next(&[], &[peer(2)]).unwrap();
        assert_eq!(r2.index_of(&peer(2)), Some(SenderIndex(3)), "coming back is joining anew");
        assert_eq!((r2.epoch(), r2.next_index()), (2, 4));
    }

    #[test]
    fn the_sequencer_is_the_first_member_who_stays() {
        let r = Roster::founding([peer(1), peer(2), peer(3)]).unwrap();
        let order: Vec<PeerId> = r.peers().collect();
        assert_eq!(r.sequencer(&[]), Some(order[0]));
        assert_eq!(r.sequencer(&[order[0]]), Some(order[1]));
        assert_eq!(r.sequencer(&order), None);
    }

    #[test]
    fn bad_rosters_are_refused() {
        let (a, b) = (peer(1), peer(2));
        let e = |i, p| RosterEntry { index: SenderIndex(i), peer: p };
        assert_eq!(Roster::new(1, 2, vec![e(0, a), e(0, b)]), Err(RosterError::Duplicate));
        assert_eq!(Roster::new(1, 2, vec![e(0, a), e(1, a)]), Err(RosterError::Duplicate));
        assert_eq!(Roster::new(1, 1, vec![e(0, a), e(1, b)]), Err(RosterError::IndexNotGivenOut(1)));
        let full = Roster::new(1, 256, vec![e(255, a)]).unwrap();
        assert_eq!(full.next(&[], &[b]), Err(RosterError::IndicesExhausted));
    }

    #[test]
    fn silence_and_the_join_budget_follow_now() {
        let t = Instant::now();
        let mut l = Liveness::default();
        l.track([peer(1), peer(2)], t);
        l.heard(&peer(2), t + Duration::from_secs(5));
        l.heard(&peer(3), t + Duration::from_secs(5));
        assert!(l.silent(t + Duration::from_secs(10), Duration::from_secs(10)).is_empty());
        assert_eq!(l.silent(t + Duration::from_millis(10_001), Duration::from_secs(10)), [peer(1)]);
        assert_eq!(l.next_deadline(Duration::from_secs(10)), Some(t + Duration::from_secs(10)));
        let mut budget = JoinBudget::new(2, Duration::from_secs(10));
        assert!(budget.admit(t) && budget.admit(t) && !budget.admit(t + Duration::from_secs(9)));
        assert!(budget.admit(t + Duration::from_secs(10)));
    }
}
