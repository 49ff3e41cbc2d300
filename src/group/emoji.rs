//! One epoch's group emoji as a member runs it: [`GroupSasRound`] (`protocols/group-sas-v1.md`)
//! plus what a network adds: the round starts only once this member holds the handshake hash of
//! its channel with every other member, commitments and reveals that come before it can use them
//! wait (bounded: one of each per member), and the round has a deadline.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;

use super::control::ControlBody;
use super::roster::Roster;
use crate::crypto::group_sas::{GroupEpoch, GroupSasCommit, GroupSasError, GroupSasReveal, GroupSasRound, PairDispute};
use crate::crypto::sas::Sas;

/// Why an epoch has no group emoji.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmojiFailure {
    /// The round itself failed (a mismatch, a cheat, a member that did not answer).
    #[error(transparent)]
    Round(#[from] GroupSasError),
    /// The deadline passed before this member had a channel (and so a handshake hash) with these.
    #[error("no secure channel with {0:?} in time")]
    NoChannel(Vec<PeerId>),
}

/// What the round asks of its member.
#[derive(Debug, Clone)]
pub enum EmojiStep {
    /// Send this to every other member of the epoch.
    Broadcast(ControlBody),
    /// Two members' reports of their own handshake differ: someone may be in the middle between
    /// them. Tell the user now; the round goes on, and its emoji then show the pair apart.
    Disputed {
        /// The pair.
        dispute: PairDispute,
        /// Who saw both reports differ: this member, or the member whose reveal reported it.
        seen_by: PeerId,
    },
    /// The round is over: this member's emoji (the group's, unless someone is in the middle of a
    /// pair: then they differ between members, which comparing them aloud shows).
    Agreed(Sas),
    /// The round is over without emoji.
    Failed(EmojiFailure),
}

enum Early {
    Commit(GroupSasCommit),
    Reveal(GroupSasReveal),
}

/// One member's group emoji round for one epoch.
pub struct EmojiRound {
    epoch: GroupEpoch,
    round: Option<GroupSasRound>,
    early: Vec<(PeerId, Early)>,
    deadline: Instant,
    /// How many of the round's disputes have been handed out as [`EmojiStep::Disputed`].
    disputes_told: usize,
    outcome: Option<Result<Sas, EmojiFailure>>,
}

impl std::fmt::Debug for EmojiRound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmojiRound").field("epoch", &self.epoch.epoch()).field("outcome", &self.outcome).finish()
    }
}

impl EmojiRound {
    /// The round of `roster`'s epoch, ending at `now + timeout` at the latest. `None` for a group of
    /// one, which has nobody to verify.
    pub fn new(call_id: [u8; 16], roster: &Roster, now: Instant, timeout: Duration) -> Option<EmojiRound> {
        let epoch = GroupEpoch::new(call_id, roster.epoch(), roster.peers()).ok()?;
        Some(EmojiRound {
            epoch,
            round: None,
            early: Vec::new(),
            deadline: now + timeout,
            disputes_told: 0,
            outcome: None,
        })
    }

    /// The epoch number.
    pub fn epoch(&self) -> u64 {
        self.epoch.epoch()
    }

    /// `None` while it runs; then the emoji or why there are none.
    pub fn outcome(&self) -> Option<&Result<Sas, EmojiFailure>> {
        self.outcome.as_ref()
    }

    /// When the round gives up, while it runs.
    pub fn deadline(&self) -> Option<Instant> {
        self.outcome.is_none().then_some(self.deadline)
    }

    /// The other members this member has no handshake hash with yet.
    fn missing_channels(&self, me: &PeerId, handshakes: &BTreeMap<PeerId, [u8; 32]>) -> Vec<PeerId> {
        self.epoch.members().iter().filter(|p| *p != me && !handshakes.contains_key(p)).copied().collect()
    }

    /// Starts this member's side once it holds a handshake hash with every other member (does
    /// nothing before, or once started): its commitment goes to everyone, then what waited is taken.
    pub fn try_start(
        &mut self,
        me: PeerId,
        nonce: [u8; 32],
        handshakes: &BTreeMap<PeerId, [u8; 32]>,
    ) -> Vec<EmojiStep> {
        if self.round.is_some() || self.outcome.is_some() || !self.missing_channels(&me, handshakes).is_empty() {
            return Vec::new();
        }
        let transcripts = self.epoch.members().iter().filter(|p| **p != me).map(|p| (*p, handshakes[p])).collect();
        let (round, commit) = match GroupSasRound::new(self.epoch.clone(), me, nonce, transcripts) {
            Ok(started) => started,
            Err(e) => return self.fail(EmojiFailure::Round(e)),
        };
        self.round = Some(round);
        let mut steps = vec![EmojiStep::Broadcast(ControlBody::SasCommit { epoch: self.epoch(), commit })];
        steps.extend(self.replay());
        steps
    }

    /// `from`'s commitment. Refused (and dropped) if `from` is not a member of the epoch, or
    /// already sent one that waits.
    pub fn offer_commit(&mut self, from: PeerId, commit: GroupSasCommit) -> Vec<EmojiStep> {
        self.offer(from, Early::Commit(commit))
    }

    /// `from`'s reveal, likewise.
    pub fn offer_reveal(&mut self, from: PeerId, reveal: GroupSasReveal) -> Vec<EmojiStep> {
        self.offer(from, Early::Reveal(reveal))
    }

    fn offer(&mut self, from: PeerId, message: Early) -> Vec<EmojiStep> {
        if self.outcome.is_some() || !self.epoch.members().contains(&from) {
            return Vec::new();
        }
        if self.round.is_none() {
            self.wait(from, message);
            return Vec::new();
        }
        let mut steps = self.apply(from, message);
        steps.extend(self.replay());
        steps
    }

    /// Keeps at most one commitment and one reveal per member waiting.
    fn wait(&mut self, from: PeerId, message: Early) {
        let same_kind = |e: &Early| {
            matches!((e, &message), (Early::Commit(_), Early::Commit(_)) | (Early::Reveal(_), Early::Reveal(_)))
        };
        if !self.early.iter().any(|(p, e)| *p == from && same_kind(e)) {
            self.early.push((from, message));
        }
    }

    /// Feeds one message to the running round and returns what to do. A reveal that overtook a
    /// commitment waits; a refused duplicate leaves the round as it was.
    fn apply(&mut self, from: PeerId, message: Early) -> Vec<EmojiStep> {
        let Some(round) = self.round.as_mut() else { return Vec::new() };
        let mut steps = Vec::new();
        match message {
            Early::Commit(commit) => {
                if let Ok(Some(reveal)) = round.add_commitment(from, commit) {
                    steps.push(EmojiStep::Broadcast(ControlBody::SasReveal { epoch: self.epoch.epoch(), reveal }));
                }
            }
            Early::Reveal(reveal) => {
                if let Err(GroupSasError::RevealBeforeAllCommitments(_)) = round.add_reveal(from, reveal.clone()) {
                    self.wait(from, Early::Reveal(reveal));
                    return steps;
                }
            }
        }
        let learnt = &round.disputes()[self.disputes_told..];
        self.disputes_told += learnt.len();
        let told = learnt.iter().map(|(seen_by, dispute)| EmojiStep::Disputed { dispute: *dispute, seen_by: *seen_by });
        // Before the reveal that carries them and before the emoji: the warning comes first.
        steps.splice(0..0, told);
        if let Some(outcome) = round.result() {
            steps.extend(self.finish(outcome.map_err(EmojiFailure::Round)));
        }
        steps
    }

    /// Offers what waited again, until nothing more moves (at most one commitment and one reveal
    /// per member wait, so this ends).
    fn replay(&mut self) -> Vec<EmojiStep> {
        let mut steps = Vec::new();
        loop {
            let waiting = std::mem::take(&mut self.early);
            let before = waiting.len();
            for (from, message) in waiting {
                steps.extend(self.apply(from, message));
            }
            if before == 0 || self.early.len() >= before || self.outcome.is_some() {
                return steps;
            }
        }
    }

    /// The deadline passed at `now`: ends the round naming who is missing.
    pub fn time_out(&mut self, me: &PeerId, handshakes: &BTreeMap<PeerId, [u8; 32]>, now: Instant) -> Vec<EmojiStep> {
        if self.outcome.is_some() || now < self.deadline {
            return Vec::new();
        }
        let outcome = match self.round.as_mut() {
            Some(round) => round.time_out().map_err(EmojiFailure::Round),
            None => Err(EmojiFailure::NoChannel(self.missing_channels(me, handshakes))),
        };
        self.finish(outcome)
    }

    fn fail(&mut self, failure: EmojiFailure) -> Vec<EmojiStep> {
        self.finish(Err(failure))
    }

    fn finish(&mut self, outcome: Result<Sas, EmojiFailure>) -> Vec<EmojiStep> {
        if self.outcome.is_some() {
            return Vec::new();
        }
        self.early.clear();
        self.outcome = Some(outcome.clone());
        vec![match outcome {
            Ok(sas) => EmojiStep::Agreed(sas),
            Err(e) => EmojiStep::Failed(e),
        }]
    }
}
