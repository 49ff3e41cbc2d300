//! The group's four emoji (`protocols/group-sas-v1.md`): one set for the whole group per epoch,
//! from a commit-then-reveal of a nonce by every member, bound to the call, the epoch, the sorted
//! membership and every pairwise handshake. Sans-IO: a [`GroupSasRound`] is fed the other members'
//! commitments and reveals (which travel over the pairwise Noise channels) and says when to reveal
//! and what the emoji are.
//!
//! ```text
//! commitment(i) = SHA-256("hail group sas commitment v1" || call id || epoch || u16be(len(id_i)) || id_i || n_i)
//! sas           = SHA-256(sas_input)[..4]
//! sas_input     = "hail group sas v1" || call id (16) || epoch (8) || n (1)
//!                 || n × (u16be(len(id)) || id)            members sorted by their PeerId bytes
//!                 || n(n-1)/2 × handshake hash (32)         pairs (a, b), a < b, in member order
//!                 || n × nonce (32)                         in member order
//! ```
//!
//! Each member hashes **its own view** of every pair: for a pair it is in, the handshake hash it
//! holds itself; for any other pair (a, b), a < b, the hash a reported. In an honest group every
//! view is the same, so everyone shows the same emoji. A man in the middle of the pair (a, b)
//! leaves a and b holding different hashes, so a's and b's emoji differ from each other, and b's
//! differ from every member outside the pair (who hash a's report, which reached them over a
//! channel he is not on): comparing the emoji aloud catches him. A member that sees the two
//! reports of a pair differ records a [`PairDispute`], lists it in its reveal (so the pair's own
//! members hear of it from a member he is not between) and goes on, so the emoji still come out.
//!
//! Nobody can steer the result: every member reveals its nonce only once it holds every other
//! member's commitment, so each member's emoji depend on its own fresh nonce, which is unknown to
//! everyone else until every other input is fixed. A member who withholds its reveal or reveals
//! something else only aborts the round, and the abort names it.

// Errors name the members involved; a round runs once per epoch, so their size is no cost.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;

use libp2p_identity::PeerId;
use sha2::{Digest, Sha256};

use super::sas::Sas;

const COMMIT_LABEL: &[u8] = b"hail group sas commitment v1";
const SAS_LABEL: &[u8] = b"hail group sas v1";
/// Most members a group may have for its emoji (the pairs grow as n²: 64 members are 2016 pairs).
pub const MAX_MEMBERS: usize = 64;
/// Most disputes a reveal carries: every pair of a group call's eight members (one is enough to
/// warn; a sender that finds more reports the first in PeerId order).
pub const MAX_REPORTED_DISPUTES: usize = 28;

/// Why a group's emoji could not be agreed, or a message was refused.
///
/// Whether a refusal ends the round is said on each variant: the ones that do are evidence of a
/// member that cheats or of someone in the middle of a pair; the others refuse one message and
/// leave the round as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupSasError {
    /// A group needs at least two members. (Refuses the membership.)
    #[error("a group needs at least two members")]
    TooFewMembers,
    /// More members than [`MAX_MEMBERS`]. (Refuses the membership.)
    #[error("a group has at most {MAX_MEMBERS} members")]
    TooManyMembers,
    /// The membership names a peer twice. (Refuses the membership.)
    #[error("{0} is listed twice in the group")]
    DuplicateMember(PeerId),
    /// A message from (or our own handshake with) a peer that is not a member of this epoch.
    /// (Refuses the message; the round goes on.)
    #[error("{0} is not a member of this group epoch")]
    UnknownMember(PeerId),
    /// A second commitment from a member; the first one stays. (Refuses the message.)
    #[error("{0} already committed in this epoch")]
    DuplicateCommitment(PeerId),
    /// A second reveal from a member; the first one stays. (Refuses the message.)
    #[error("{0} already revealed in this epoch")]
    DuplicateReveal(PeerId),
    /// A reveal arrived while some commitment is still missing. Each pairwise channel is ordered,
    /// so this is a reveal overtaking a third member's commitment: the driver offers it again
    /// once [`GroupSasRound::waiting_for`] is empty. (Refuses the message; the round goes on.)
    #[error("{0} revealed before every commitment was in; offer it again later")]
    RevealBeforeAllCommitments(PeerId),
    /// A commitment does not list exactly one handshake hash per other member. (Ends the round.)
    #[error("{0} sent a commitment without one handshake hash per other member")]
    MalformedCommitment(PeerId),
    /// A reveal's disputes name a non-member, or a pair out of member order, or are more than
    /// [`MAX_REPORTED_DISPUTES`]. (Ends the round.)
    #[error("{0} sent a reveal whose disputes do not name pairs of this group")]
    MalformedReveal(PeerId),
    /// A member's nonce does not match its commitment. (Ends the round.)
    #[error("{0} revealed a nonce that does not match its commitment")]
    CommitmentMismatch(PeerId),
    /// The deadline passed before these members committed. (Ends the round.)
    #[error("no commitment from {0:?} in time")]
    MissingCommitments(Vec<PeerId>),
    /// The deadline passed before these members revealed. (Ends the round.)
    #[error("no reveal from {0:?} in time")]
    MissingReveals(Vec<PeerId>),
    /// The round has already ended with an error: [`GroupSasRound::result`] says which.
    #[error("the group emoji round for this epoch has already failed")]
    Aborted,
}

/// Two members whose reports of their own pair's handshake hash differ: someone may be in the
/// middle between them (or one of them lies). Not an error: the round goes on, and each member
/// hashes its own view of the pair, so the pair's emoji differ from each other's and the later
/// member's from everyone else's. The two members, in member order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, thiserror::Error)]
#[error("{0} and {1} disagree on their handshake: someone may be in the middle between them")]
pub struct PairDispute(pub PeerId, pub PeerId);

/// One epoch of a group call: the call, the epoch number (it changes with every join and leave)
/// and the members, sorted by their PeerId bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEpoch {
    call_id: [u8; 16],
    epoch: u64,
    members: Vec<PeerId>,
}

impl GroupEpoch {
    /// The epoch `epoch` of call `call_id` with these members (in any order).
    pub fn new(
        call_id: [u8; 16],
        epoch: u64,
        members: impl IntoIterator<Item = PeerId>,
    ) -> Result<GroupEpoch, GroupSasError> {
        let mut members: Vec<PeerId> = members.into_iter().collect();
        members.sort_by_key(|p| p.to_bytes());
        if let Some(w) = members.windows(2).find(|w| w[0] == w[1]) {
            return Err(GroupSasError::DuplicateMember(w[0]));
        }
        match members.len() {
            0 | 1 => Err(GroupSasError::TooFewMembers),
            n if n > MAX_MEMBERS => Err(GroupSasError::TooManyMembers),
            _ => Ok(GroupEpoch { call_id, epoch, members }),
        }
    }

    /// The call.
    pub fn call_id(&self) -> [u8; 16] {
        self.call_id
    }

    /// The epoch number.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The members, sorted by their PeerId bytes (the order every list of the round follows).
    pub fn members(&self) -> &[PeerId] {
        &self.members
    }

    fn index(&self, peer: &PeerId) -> Option<usize> {
        self.members.iter().position(|m| m == peer)
    }

    /// The pair {a, b} in member order.
    fn dispute(&self, a: PeerId, b: PeerId) -> PairDispute {
        if self.index(&a) < self.index(&b) { PairDispute(a, b) } else { PairDispute(b, a) }
    }

    /// `member`'s commitment to `nonce`, bound to the call, the epoch and the member.
    pub fn commitment(&self, member: &PeerId, nonce: &[u8; 32]) -> [u8; 32] {
        let mut h = Sha256::new().chain_update(COMMIT_LABEL).chain_update(self.call_id);
        h.update(self.epoch.to_be_bytes());
        h.update(length_prefixed(member));
        h.chain_update(nonce).finalize().into()
    }

    /// The bytes the emoji are hashed from: `pair_hashes` holds the handshake hash of every pair
    /// (i, j), i < j, as the member who hashes sees it (its own for a pair it is in, else i's
    /// report), in member order ((0,1), (0,2), …, (1,2), …); `nonces` one nonce per member,
    /// in member order. `None` if either list has the wrong length.
    pub fn sas_input(&self, pair_hashes: &[[u8; 32]], nonces: &[[u8; 32]]) -> Option<Vec<u8>> {
        let n = self.members.len();
        if pair_hashes.len() != n * (n - 1) / 2 || nonces.len() != n {
            return None;
        }
        let mut out = Vec::with_capacity(SAS_LABEL.len() + 25 + n * (40 + 32) + pair_hashes.len() * 32);
        out.extend_from_slice(SAS_LABEL);
        out.extend_from_slice(&self.call_id);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.push(n as u8);
        for m in &self.members {
            out.extend_from_slice(&length_prefixed(m));
        }
        pair_hashes.iter().chain(nonces).for_each(|h| out.extend_from_slice(h));
        Some(out)
    }

    /// The group's emoji from [`GroupEpoch::sas_input`]: the first four bytes of its SHA-256.
    pub fn sas(&self, pair_hashes: &[[u8; 32]], nonces: &[[u8; 32]]) -> Option<Sas> {
        let digest = Sha256::digest(self.sas_input(pair_hashes, nonces)?);
        Some(Sas([digest[0], digest[1], digest[2], digest[3]]))
    }
}

fn length_prefixed(peer: &PeerId) -> Vec<u8> {
    let bytes = peer.to_bytes();
    [&(bytes.len() as u16).to_be_bytes()[..], &bytes].concat()
}

/// What a member sends every other member first: its commitment, and the final handshake hash of
/// its pairwise handshake with each other member (so that every member hashes every pair, and a
/// man in the middle of one pair shows up to every member outside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSasCommit {
    /// `commitment(sender, nonce)`.
    pub commitment: [u8; 32],
    /// The sender's handshake hash with each other member, by member.
    pub transcripts: BTreeMap<PeerId, [u8; 32]>,
}

/// What a member sends every other member once it holds every commitment: its nonce, and the
/// pairs it saw disagree (so that the members of a pair whose reports a man in the middle
/// rewrites are told in words too, by a member he is not between).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSasReveal {
    /// The nonce the sender committed to.
    pub nonce: [u8; 32],
    /// The pairs whose two reports the sender saw differ, at most [`MAX_REPORTED_DISPUTES`], in
    /// ascending order (each pair in member order). Only the sender's word: a warning, never an
    /// input to the emoji.
    pub disputes: Vec<PairDispute>,
}

impl GroupSasReveal {
    /// A reveal of `nonce` that reports no dispute.
    pub fn of(nonce: [u8; 32]) -> GroupSasReveal {
        GroupSasReveal { nonce, disputes: Vec::new() }
    }
}

/// One member's view of one epoch's commit-then-reveal.
///
/// Drive it like this: [`GroupSasRound::new`] gives the commitment to send to every other member;
/// feed each member's commitment to [`GroupSasRound::add_commitment`], which hands back this
/// member's reveal (to send to everyone) once the last one is in; feed each reveal to
/// [`GroupSasRound::add_reveal`]; [`GroupSasRound::result`] then holds the emoji. Give the round a
/// deadline of your own and call [`GroupSasRound::time_out`] when it passes: the error names who
/// did not answer. A round that ends in an error stays ended: new emoji need a new epoch.
#[derive(Debug)]
pub struct GroupSasRound {
    epoch: GroupEpoch,
    me: PeerId,
    nonce: [u8; 32],
    commits: BTreeMap<PeerId, GroupSasCommit>,
    nonces: BTreeMap<PeerId, [u8; 32]>,
    disputes: Vec<(PeerId, PairDispute)>,
    outcome: Option<Result<Sas, GroupSasError>>,
}

impl GroupSasRound {
    /// Starts `me`'s round for `epoch` with a fresh random `nonce` and `me`'s final handshake hash
    /// with every other member. Returns the round and the commitment to send to every other member.
    pub fn new(
        epoch: GroupEpoch,
        me: PeerId,
        nonce: [u8; 32],
        transcripts: BTreeMap<PeerId, [u8; 32]>,
    ) -> Result<(GroupSasRound, GroupSasCommit), GroupSasError> {
        if epoch.index(&me).is_none() {
            return Err(GroupSasError::UnknownMember(me));
        }
        if let Some(stranger) = transcripts.keys().find(|p| **p == me || epoch.index(p).is_none()) {
            return Err(GroupSasError::UnknownMember(*stranger));
        }
        if transcripts.len() != epoch.members.len() - 1 {
            return Err(GroupSasError::MalformedCommitment(me));
        }
        let commit = GroupSasCommit { commitment: epoch.commitment(&me, &nonce), transcripts };
        let commits = BTreeMap::from([(me, commit.clone())]);
        let round =
            GroupSasRound { epoch, me, nonce, commits, nonces: BTreeMap::new(), disputes: Vec::new(), outcome: None };
        Ok((round, commit))
    }

    /// The epoch this round is for.
    pub fn epoch(&self) -> &GroupEpoch {
        &self.epoch
    }

    /// Takes `from`'s commitment. Checks `from`'s handshake hashes against ours and against every
    /// other member's report of the same pair: a difference is recorded (see
    /// [`GroupSasRound::disputes`]) and the round goes on. Returns our reveal, to send to every
    /// other member, when this was the last commitment missing.
    pub fn add_commitment(
        &mut self,
        from: PeerId,
        commit: GroupSasCommit,
    ) -> Result<Option<GroupSasReveal>, GroupSasError> {
        self.check_open(&from)?;
        if self.commits.contains_key(&from) {
            return Err(GroupSasError::DuplicateCommitment(from));
        }
        let others_listed = commit.transcripts.keys().all(|p| *p != from && self.epoch.index(p).is_some());
        if !others_listed || commit.transcripts.len() != self.epoch.members.len() - 1 {
            return Err(self.abort(GroupSasError::MalformedCommitment(from)));
        }
        // Every pair is reported by both of its members: a difference is someone in the middle.
        // Each pair's two reports meet once, when the second of them comes in.
        for (member, earlier) in &self.commits {
            if earlier.transcripts.get(&from) != commit.transcripts.get(member) {
                self.disputes.push((self.me, self.epoch.dispute(*member, from)));
            }
        }
        self.commits.insert(from, commit);
        if self.commits.len() < self.epoch.members.len() {
            return Ok(None);
        }
        self.nonces.insert(self.me, self.nonce);
        self.finish_if_complete();
        let mut disputes: Vec<PairDispute> = self.disputes.iter().map(|(_, d)| *d).collect();
        disputes.sort_by_key(|d| (d.0.to_bytes(), d.1.to_bytes()));
        disputes.truncate(MAX_REPORTED_DISPUTES);
        Ok(Some(GroupSasReveal { nonce: self.nonce, disputes }))
    }

    /// Takes `from`'s reveal and checks it against `from`'s commitment; the disputes it reports
    /// join [`GroupSasRound::disputes`], as seen by `from`.
    pub fn add_reveal(&mut self, from: PeerId, reveal: GroupSasReveal) -> Result<(), GroupSasError> {
        self.check_open(&from)?;
        if self.commits.len() < self.epoch.members.len() {
            return Err(GroupSasError::RevealBeforeAllCommitments(from));
        }
        if self.nonces.contains_key(&from) {
            return Err(GroupSasError::DuplicateReveal(from));
        }
        if self.epoch.commitment(&from, &reveal.nonce) != self.commits[&from].commitment {
            return Err(self.abort(GroupSasError::CommitmentMismatch(from)));
        }
        let in_order =
            |d: &PairDispute| matches!((self.epoch.index(&d.0), self.epoch.index(&d.1)), (Some(a), Some(b)) if a < b);
        if reveal.disputes.len() > MAX_REPORTED_DISPUTES || !reveal.disputes.iter().all(in_order) {
            return Err(self.abort(GroupSasError::MalformedReveal(from)));
        }
        self.disputes.extend(reveal.disputes.iter().map(|d| (from, *d)));
        self.nonces.insert(from, reveal.nonce);
        self.finish_if_complete();
        Ok(())
    }

    /// The deadline passed: ends the round, naming who did not commit or reveal (or returns the
    /// emoji, if they were complete after all).
    pub fn time_out(&mut self) -> Result<Sas, GroupSasError> {
        if let Some(outcome) = &self.outcome {
            return outcome.clone();
        }
        let missing = self.waiting_for();
        let error = if self.commits.len() < self.epoch.members.len() {
            GroupSasError::MissingCommitments(missing)
        } else {
            GroupSasError::MissingReveals(missing)
        };
        Err(self.abort(error))
    }

    /// `None` while the round waits; then the group's emoji, or why there are none.
    pub fn result(&self) -> Option<Result<Sas, GroupSasError>> {
        self.outcome.clone()
    }

    /// The pairs whose two members' reports of their handshake differ, each with who saw it: this
    /// member (it held both reports) or the member whose reveal reported it, in the order learnt.
    /// Someone may be in the middle of each: tell the user, whatever the emoji. (A pair this
    /// member is in looks fine to it when the man in the middle rewrites the other end's report;
    /// then the others' reveals, and the emoji, show it.)
    pub fn disputes(&self) -> &[(PeerId, PairDispute)] {
        &self.disputes
    }

    /// Whom the round waits for: the members whose commitment is missing, or once they are all in,
    /// those whose reveal is. Empty once the round has ended.
    pub fn waiting_for(&self) -> Vec<PeerId> {
        if self.outcome.is_some() {
            return Vec::new();
        }
        let have: &dyn Fn(&PeerId) -> bool = if self.commits.len() < self.epoch.members.len() {
            &|p| self.commits.contains_key(p)
        } else {
            &|p| self.nonces.contains_key(p)
        };
        self.epoch.members.iter().filter(|p| !have(p)).copied().collect()
    }

    fn check_open(&self, from: &PeerId) -> Result<(), GroupSasError> {
        if self.outcome.is_some() {
            return Err(GroupSasError::Aborted);
        }
        if self.epoch.index(from).is_none() {
            return Err(GroupSasError::UnknownMember(*from));
        }
        Ok(())
    }

    fn abort(&mut self, error: GroupSasError) -> GroupSasError {
        self.outcome = Some(Err(error.clone()));
        error
    }

    fn finish_if_complete(&mut self) {
        if self.nonces.len() < self.epoch.members.len() {
            return;
        }
        let members = &self.epoch.members;
        let mut pairs = Vec::with_capacity(members.len() * (members.len() - 1) / 2);
        for (i, a) in members.iter().enumerate() {
            for b in &members[i + 1..] {
                // This member's view of the pair: its own hash for a pair it is in, else the report
                // of the pair's first member. Where the two ends agree, that is everyone's view.
                let view =
                    if *b == self.me { &self.commits[b].transcripts[a] } else { &self.commits[a].transcripts[b] };
                pairs.push(*view);
            }
        }
        let nonces: Vec<[u8; 32]> = members.iter().map(|m| self.nonces[m]).collect();
        self.outcome = self.epoch.sas(&pairs, &nonces).map(Ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    const CALL: [u8; 16] = [0x44; 16];

    fn peers(n: u8) -> Vec<PeerId> {
        (1..=n).map(|s| Identity::from_seed([s; 32]).peer_id()).collect()
    }

    /// The handshake hash of the pair {a, b}, as both of its members hold it.
    fn pair_hash(a: &PeerId, b: &PeerId) -> [u8; 32] {
        let (a, b) = if a.to_bytes() < b.to_bytes() { (a, b) } else { (b, a) };
        Sha256::new().chain_update(a.to_bytes()).chain_update(b.to_bytes()).finalize().into()
    }

    fn transcripts(me: &PeerId, members: &[PeerId]) -> BTreeMap<PeerId, [u8; 32]> {
        members.iter().filter(|p| *p != me).map(|p| (*p, pair_hash(me, p))).collect()
    }

    fn nonce(p: &PeerId) -> [u8; 32] {
        Sha256::digest(p.to_bytes()).into()
    }

    struct Group {
        rounds: Vec<GroupSasRound>,
        commits: Vec<GroupSasCommit>,
        members: Vec<PeerId>,
    }

    fn start(epoch: u64, members: &[PeerId]) -> Group {
        let e = GroupEpoch::new(CALL, epoch, members.iter().copied()).unwrap();
        let members = e.members().to_vec();
        let (rounds, commits) = members
            .iter()
            .map(|m| GroupSasRound::new(e.clone(), *m, nonce(m), transcripts(m, &members)).unwrap())
            .unzip();
        Group { rounds, commits, members }
    }

    /// Every member gets every commitment, then every reveal; returns each member's emoji.
    fn run(mut g: Group) -> Vec<Sas> {
        let mut reveals = vec![None; g.members.len()];
        for (i, round) in g.rounds.iter_mut().enumerate() {
            for (j, commit) in g.commits.iter().enumerate() {
                if i != j {
                    if let Some(r) = round.add_commitment(g.members[j], commit.clone()).unwrap() {
                        reveals[i] = Some(r);
                    }
                }
            }
        }
        for (i, round) in g.rounds.iter_mut().enumerate() {
            for (j, reveal) in reveals.iter().enumerate() {
                if i != j {
                    round.add_reveal(g.members[j], reveal.clone().unwrap()).unwrap();
                }
            }
        }
        assert!(g.rounds.iter().all(|r| r.disputes().is_empty()), "an honest group has no dispute");
        g.rounds.iter().map(|r| r.result().unwrap().unwrap()).collect()
    }

    #[test]
    fn every_member_sees_the_same_emoji() {
        let sas = run(start(1, &peers(4)));
        assert!(sas.windows(2).all(|w| w[0] == w[1]), "{sas:?}");
    }

    #[test]
    fn the_emoji_change_with_the_epoch_and_the_membership() {
        let three = run(start(1, &peers(3)))[0];
        assert_ne!(three, run(start(2, &peers(3)))[0], "same members and nonces, next epoch");
        assert_ne!(three, run(start(2, &peers(4)))[0], "a member joined");
        assert_ne!(three, run(start(2, &peers(2)))[0], "a member left");
    }

    #[test]
    fn the_membership_is_sorted_and_checked() {
        let p = peers(3);
        let e = GroupEpoch::new(CALL, 0, [p[2], p[0], p[1]]).unwrap();
        assert_eq!(e, GroupEpoch::new(CALL, 0, p.clone()).unwrap());
        assert!(e.members().windows(2).all(|w| w[0].to_bytes() < w[1].to_bytes()));
        assert_eq!(GroupEpoch::new(CALL, 0, [p[0]]), Err(GroupSasError::TooFewMembers));
        assert_eq!(GroupEpoch::new(CALL, 0, [p[0], p[1], p[0]]), Err(GroupSasError::DuplicateMember(p[0])));
        let many = (0..=MAX_MEMBERS as u8).map(|s| Identity::from_seed([s; 32]).peer_id());
        assert_eq!(GroupEpoch::new(CALL, 0, many), Err(GroupSasError::TooManyMembers));
    }

    #[test]
    fn a_stranger_cannot_take_part() {
        let p = peers(4);
        let mut g = start(1, &p[..3]);
        let stranger = p[3];
        let commit = GroupSasCommit { commitment: [0; 32], transcripts: transcripts(&stranger, &p) };
        assert_eq!(g.rounds[0].add_commitment(stranger, commit), Err(GroupSasError::UnknownMember(stranger)));
        assert_eq!(
            g.rounds[0].add_reveal(stranger, GroupSasReveal::of([0; 32])),
            Err(GroupSasError::UnknownMember(stranger))
        );
        assert_eq!(g.rounds[0].result(), None, "the round goes on");
        let e = g.rounds[0].epoch().clone();
        assert_eq!(
            GroupSasRound::new(e, stranger, [0; 32], BTreeMap::new()).unwrap_err(),
            GroupSasError::UnknownMember(stranger)
        );
    }

    #[test]
    fn duplicates_are_refused_and_the_first_message_stays() {
        let mut g = start(1, &peers(2));
        let (a, b) = (g.members[0], g.members[1]);
        let reveal = g.rounds[0].add_commitment(b, g.commits[1].clone()).unwrap().unwrap();
        let mut other = g.commits[1].clone();
        other.commitment = [9; 32];
        assert_eq!(g.rounds[0].add_commitment(b, other), Err(GroupSasError::DuplicateCommitment(b)));
        assert_eq!(g.rounds[0].add_commitment(a, g.commits[0].clone()), Err(GroupSasError::DuplicateCommitment(a)));
        g.rounds[1].add_commitment(a, g.commits[0].clone()).unwrap();
        g.rounds[1].add_reveal(a, reveal.clone()).unwrap();
        assert_eq!(g.rounds[1].add_reveal(a, reveal.clone()), Err(GroupSasError::Aborted), "the round is over");
        let b_reveal = GroupSasReveal::of(nonce(&b));
        assert_eq!(g.rounds[0].add_reveal(a, reveal), Err(GroupSasError::DuplicateReveal(a)), "our own");
        g.rounds[0].add_reveal(b, b_reveal).unwrap();
        assert_eq!(g.rounds[0].result(), g.rounds[1].result());
    }

    #[test]
    fn a_reveal_before_every_commitment_is_in_is_refused_without_ending_the_round() {
        let mut g = start(1, &peers(3));
        let (b, c) = (g.members[1], g.members[2]);
        g.rounds[0].add_commitment(b, g.commits[1].clone()).unwrap();
        let early = GroupSasReveal::of(nonce(&b));
        assert_eq!(g.rounds[0].add_reveal(b, early.clone()), Err(GroupSasError::RevealBeforeAllCommitments(b)));
        assert_eq!(g.rounds[0].waiting_for(), [c]);
        assert!(g.rounds[0].add_commitment(c, g.commits[2].clone()).unwrap().is_some());
        assert_eq!(g.rounds[0].add_reveal(b, early), Ok(()), "offered again, it counts");
    }

    #[test]
    fn a_reveal_that_does_not_match_its_commitment_ends_the_round_naming_the_member() {
        let mut g = start(1, &peers(3));
        let (b, c) = (g.members[1], g.members[2]);
        g.rounds[0].add_commitment(b, g.commits[1].clone()).unwrap();
        g.rounds[0].add_commitment(c, g.commits[2].clone()).unwrap();
        let mut ground = nonce(&c);
        ground[0] ^= 1;
        assert_eq!(g.rounds[0].add_reveal(c, GroupSasReveal::of(ground)), Err(GroupSasError::CommitmentMismatch(c)));
        assert_eq!(g.rounds[0].result(), Some(Err(GroupSasError::CommitmentMismatch(c))));
        assert_eq!(g.rounds[0].add_reveal(b, GroupSasReveal::of(nonce(&b))), Err(GroupSasError::Aborted));
    }

    #[test]
    fn a_reveal_whose_disputes_name_no_pair_of_the_group_ends_the_round() {
        let p = peers(4);
        for disputes in [
            vec![PairDispute(p[0], p[3])], // a stranger (p[3] is not in the group)
            vec![PairDispute(p[1], p[1])], // a member with itself
            vec![PairDispute(p[0], p[1]); MAX_REPORTED_DISPUTES + 1],
        ] {
            let mut g = start(1, &p[..3]);
            let (b, c) = (g.members[1], g.members[2]);
            let disputes = disputes.iter().map(|d| g.rounds[0].epoch().dispute(d.0, d.1)).collect();
            g.rounds[0].add_commitment(b, g.commits[1].clone()).unwrap();
            g.rounds[0].add_commitment(c, g.commits[2].clone()).unwrap();
            let reveal = GroupSasReveal { nonce: nonce(&b), disputes };
            assert_eq!(g.rounds[0].add_reveal(b, reveal), Err(GroupSasError::MalformedReveal(b)));
        }
        // Out of member order.
        let mut g = start(1, &p[..3]);
        let (a, b, c) = (g.members[0], g.members[1], g.members[2]);
        g.rounds[0].add_commitment(b, g.commits[1].clone()).unwrap();
        g.rounds[0].add_commitment(c, g.commits[2].clone()).unwrap();
        let reveal = GroupSasReveal { nonce: nonce(&b), disputes: vec![PairDispute(c, a)] };
        assert_eq!(g.rounds[0].add_reveal(b, reveal), Err(GroupSasError::MalformedReveal(b)));
        // A well-formed report is taken, as the reporter's word.
        let mut g = start(1, &p[..3]);
        g.rounds[0].add_commitment(b, g.commits[1].clone()).unwrap();
        g.rounds[0].add_commitment(c, g.commits[2].clone()).unwrap();
        let reveal = GroupSasReveal { nonce: nonce(&b), disputes: vec![PairDispute(a, c)] };
        g.rounds[0].add_reveal(b, reveal).unwrap();
        assert_eq!(g.rounds[0].disputes(), [(b, PairDispute(a, c))]);
    }

    #[test]
    fn the_commitment_binds_call_epoch_and_member() {
        let p = peers(2);
        let e = GroupEpoch::new(CALL, 1, p.clone()).unwrap();
        let c = e.commitment(&p[0], &[7; 32]);
        assert_ne!(c, e.commitment(&p[1], &[7; 32]), "another member");
        assert_ne!(c, GroupEpoch::new(CALL, 2, p.clone()).unwrap().commitment(&p[0], &[7; 32]), "another epoch");
        assert_ne!(c, GroupEpoch::new([0; 16], 1, p.clone()).unwrap().commitment(&p[0], &[7; 32]), "another call");
        // So a commitment replayed from another epoch fails at the reveal.
        let old = GroupEpoch::new(CALL, 0, p.clone()).unwrap();
        let mut g = start(1, &p);
        let b = g.members[1];
        let replayed = GroupSasCommit { commitment: old.commitment(&b, &nonce(&b)), transcripts: transcripts(&b, &p) };
        g.rounds[0].add_commitment(b, replayed).unwrap();
        assert_eq!(g.rounds[0].add_reveal(b, GroupSasReveal::of(nonce(&b))), Err(GroupSasError::CommitmentMismatch(b)));
    }

    #[test]
    fn missing_messages_end_the_round_at_the_deadline_naming_who() {
        let mut g = start(1, &peers(3));
        let (b, c) = (g.members[1], g.members[2]);
        g.rounds[0].add_commitment(b, g.commits[1].clone()).unwrap();
        assert_eq!(g.rounds[0].time_out(), Err(GroupSasError::MissingCommitments(vec![c])));
        assert_eq!(g.rounds[0].waiting_for(), Vec::<PeerId>::new());

        let mut g = start(1, &peers(3));
        g.rounds[0].add_commitment(b, g.commits[1].clone()).unwrap();
        g.rounds[0].add_commitment(c, g.commits[2].clone()).unwrap();
        g.rounds[0].add_reveal(c, GroupSasReveal::of(nonce(&c))).unwrap();
        assert_eq!(g.rounds[0].waiting_for(), [b]);
        assert_eq!(g.rounds[0].time_out(), Err(GroupSasError::MissingReveals(vec![b])));
        assert_eq!(g.rounds[0].add_reveal(b, GroupSasReveal::of(nonce(&b))), Err(GroupSasError::Aborted));
    }

    #[test]
    fn a_commitment_without_every_pair_ends_the_round() {
        let mut g = start(1, &peers(3));
        let (b, c) = (g.members[1], g.members[2]);
        let mut short = g.commits[1].clone();
        short.transcripts.remove(&c);
        assert_eq!(g.rounds[0].add_commitment(b, short), Err(GroupSasError::MalformedCommitment(b)));
        let mut g = start(1, &peers(3));
        let mut selfish = g.commits[1].clone();
        selfish.transcripts.remove(&c);
        selfish.transcripts.insert(b, [0; 32]);
        assert_eq!(g.rounds[0].add_commitment(b, selfish), Err(GroupSasError::MalformedCommitment(b)));
    }

    /// A group in which a man in the middle of the pair (m[x], m[y]), x < y, ran one handshake with
    /// each end (so they hold different hashes for the pair) and, with `rewrite`, rewrites each
    /// end's report of the pair to what the other end holds, so that neither notices from the
    /// other's report. He passes everything else between them on unchanged; every other channel
    /// is end to end. Every commitment to everyone, then every reveal: each member's emoji.
    fn run_with_mitm(n: u8, x: usize, y: usize, rewrite: bool) -> (Vec<PeerId>, Vec<GroupSasRound>, Vec<Sas>) {
        let e = GroupEpoch::new(CALL, 1, peers(n)).unwrap();
        let m = e.members().to_vec();
        let (hx, hy) = ([0xA0; 32], [0xB0; 32]);
        let mut t: Vec<BTreeMap<PeerId, [u8; 32]>> = m.iter().map(|p| transcripts(p, &m)).collect();
        t[x].insert(m[y], hx);
        t[y].insert(m[x], hy);
        let (mut rounds, commits): (Vec<_>, Vec<_>) = m
            .iter()
            .enumerate()
            .map(|(i, p)| GroupSasRound::new(e.clone(), *p, nonce(p), t[i].clone()).unwrap())
            .unzip();
        let mut reveals = vec![None; m.len()];
        for (i, round) in rounds.iter_mut().enumerate() {
            for (j, commit) in commits.iter().enumerate().filter(|(j, _)| *j != i) {
                let mut commit = commit.clone();
                if rewrite && (i, j) == (x, y) {
                    commit.transcripts.insert(m[x], hx);
                } else if rewrite && (i, j) == (y, x) {
                    commit.transcripts.insert(m[y], hy);
                }
                if let Some(r) = round.add_commitment(m[j], commit).unwrap() {
                    reveals[i] = Some(r);
                }
            }
        }
        for (i, round) in rounds.iter_mut().enumerate() {
            for (j, reveal) in reveals.iter().enumerate().filter(|(j, _)| *j != i) {
                round.add_reveal(m[j], reveal.clone().unwrap()).unwrap();
            }
        }
        let sas = rounds.iter().map(|r| r.result().unwrap().unwrap()).collect();
        (m, rounds, sas)
    }

    /// The later end of the attacked pair hashes its own view of the pair, everyone else the
    /// earlier end's: its emoji differ from everyone's, the others' are all the same. Every member
    /// outside the pair is told who disagrees; the pair's ends only when he does not rewrite.
    #[test]
    fn a_man_in_the_middle_of_one_pair_sets_its_later_end_apart() {
        let pairs = |n: u8| (0..n as usize).flat_map(move |x| (x + 1..n as usize).map(move |y| (n, x, y)));
        for (n, x, y) in pairs(3).chain(pairs(4)) {
            for rewrite in [true, false] {
                let (m, rounds, sas) = run_with_mitm(n, x, y, rewrite);
                let dispute = PairDispute(m[x], m[y]);
                for (i, round) in rounds.iter().enumerate() {
                    if i == y {
                        assert!(sas.iter().enumerate().all(|(j, s)| j == y || *s != sas[y]), "{n} {x} {y}: {sas:?}");
                    } else {
                        assert_eq!(sas[i], sas[x], "{n} {x} {y}: member {i} shows the earlier end's emoji");
                    }
                    // Who told this member: itself when it held both reports, and every member
                    // that did, in its reveal (so the pair's ends learn it from the others).
                    let saw_both = i != x && i != y || !rewrite;
                    let witnesses: Vec<PeerId> =
                        (0..m.len()).filter(|&j| j != i && (j != x && j != y || !rewrite)).map(|j| m[j]).collect();
                    let mine = round.disputes().iter().filter(|(by, _)| *by == m[i]).count();
                    assert_eq!(mine, usize::from(saw_both), "{n} {x} {y} {rewrite}: member {i} saw it");
                    let told_by: Vec<PeerId> =
                        round.disputes().iter().filter(|(by, _)| *by != m[i]).map(|(by, _)| *by).collect();
                    assert_eq!(told_by, witnesses, "{n} {x} {y} {rewrite}: member {i} was told");
                    assert!(round.disputes().iter().all(|(_, d)| *d == dispute));
                }
            }
        }
    }

    /// He sits on every pair of one member (the victim, say a newcomer nobody has verified) and
    /// shows each side a world consistent with its own view: the others a victim whose reports
    /// match theirs (with a nonce of his), the victim others whose reports match its own. Nobody
    /// sees two reports of a pair differ, so nobody is told in words; the emoji still catch it:
    /// the victim's differ from everyone's, and the others agree among themselves.
    fn run_isolating(n: u8, v: usize) -> (Vec<GroupSasRound>, Vec<Sas>) {
        let e = GroupEpoch::new(CALL, 1, peers(n)).unwrap();
        let m = e.members().to_vec();
        let others: Vec<usize> = (0..m.len()).filter(|&j| j != v).collect();
        let mut t: Vec<BTreeMap<PeerId, [u8; 32]>> = m.iter().map(|p| transcripts(p, &m)).collect();
        for &j in &others {
            t[v].insert(m[j], [0xA0 + j as u8; 32]);
            t[j].insert(m[v], [0xC0 + j as u8; 32]);
        }
        let (mut rounds, commits): (Vec<_>, Vec<_>) = m
            .iter()
            .enumerate()
            .map(|(i, p)| GroupSasRound::new(e.clone(), *p, nonce(p), t[i].clone()).unwrap())
            .unzip();
        // The victim as he shows it to the others, and each other member as he shows it to the victim.
        let victim_view: BTreeMap<PeerId, [u8; 32]> = others.iter().map(|&j| (m[j], t[j][&m[v]])).collect();
        let (mut fake_victim, fake_victim_commit) = GroupSasRound::new(e.clone(), m[v], [0x66; 32], victim_view).unwrap();
        let mut fakes: BTreeMap<usize, (GroupSasRound, GroupSasCommit)> = others
            .iter()
            .map(|&j| {
                let mut tj = t[j].clone();
                tj.insert(m[v], t[v][&m[j]]);
                (j, GroupSasRound::new(e.clone(), m[j], [0x70 + j as u8; 32], tj).unwrap())
            })
            .collect();
        let fake_commits: BTreeMap<usize, GroupSasCommit> = fakes.iter().map(|(j, (_, c))| (*j, c.clone())).collect();
        let mut reveals = vec![None; m.len()];
        let mut fake_victim_reveal = None;
        let mut fake_reveals = BTreeMap::new();
        for &j in &others {
            if let Some(r) = fake_victim.add_commitment(m[j], commits[j].clone()).unwrap() {
                fake_victim_reveal = Some(r);
            }
            let fake = &mut fakes.get_mut(&j).unwrap().0;
            for (l, commit) in fake_commits.iter().filter(|(l, _)| **l != j) {
                let _ = fake.add_commitment(m[*l], commit.clone()).unwrap();
            }
            if let Some(r) = fake.add_commitment(m[v], commits[v].clone()).unwrap() {
                fake_reveals.insert(j, r);
            }
        }
        for (i, round) in rounds.iter_mut().enumerate() {
            for j in (0..m.len()).filter(|&j| j != i) {
                let commit = match (i == v, j == v) {
                    (true, _) => fake_commits[&j].clone(),
                    (false, true) => fake_victim_commit.clone(),
                    (false, false) => commits[j].clone(),
                };
                if let Some(r) = round.add_commitment(m[j], commit).unwrap() {
                    reveals[i] = Some(r);
                }
            }
        }
        for (i, round) in rounds.iter_mut().enumerate() {
            for j in (0..m.len()).filter(|&j| j != i) {
                let reveal = match (i == v, j == v) {
                    (true, _) => fake_reveals[&j].clone(),
                    (false, true) => fake_victim_reveal.clone().unwrap(),
                    (false, false) => reveals[j].clone().unwrap(),
                };
                round.add_reveal(m[j], reveal).unwrap();
            }
        }
        let sas = rounds.iter().map(|r| r.result().unwrap().unwrap()).collect();
        (rounds, sas)
    }

    #[test]
    fn a_man_in_the_middle_of_every_pair_of_one_member_sets_it_apart_unnamed() {
        for n in [3u8, 4] {
            for v in 0..n as usize {
                let (rounds, sas) = run_isolating(n, v);
                let first_other = if v == 0 { 1 } else { 0 };
                for i in 0..n as usize {
                    if i == v {
                        assert!((0..n as usize).all(|j| j == v || sas[j] != sas[v]), "{n} {v}: {sas:?}");
                    } else {
                        assert_eq!(sas[i], sas[first_other], "{n} {v}: member {i} agrees with the other non-victims");
                    }
                    assert!(rounds[i].disputes().is_empty(), "{n} {v}: member {i} was shown consistent reports");
                }
            }
        }
    }

    #[test]
    fn the_sas_input_has_one_hash_per_pair_and_one_nonce_per_member() {
        let e = GroupEpoch::new(CALL, 1, peers(3)).unwrap();
        assert!(e.sas_input(&[[0; 32]; 3], &[[0; 32]; 3]).is_some());
        assert!(e.sas_input(&[[0; 32]; 2], &[[0; 32]; 3]).is_none());
        assert!(e.sas_input(&[[0; 32]; 3], &[[0; 32]; 2]).is_none());
    }
}
