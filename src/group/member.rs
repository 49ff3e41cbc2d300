//! One member's group call, sans-IO: [`GroupMember`] is fed messages from other members, the
//! handshake hashes of its pairwise channels, local commands and `now`, and says what to send to
//! whom and what happened. It never reads the clock, draws randomness only from the generator it
//! is given, and does no IO. Drive it like the 1:1 call's `CallSession`: feed [`GroupMember::handle`] and [`GroupMember::handle_timeout`] (when
//! [`GroupMember::poll_timeout`] says), then drain [`GroupMember::poll_output`].
//!
//! Membership has no host: any member may invite, nobody can end the call for the others. Changes
//! are *sequenced* by one member, the first in member order among those who stay (the
//! [`Roster::sequencer`]): it alone commits a new epoch (joins it was asked for, members who left or
//! went silent), and every member checks that a commit comes from the sequencer of that change.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;
use rand::RngCore;
use rand::rngs::StdRng;

use super::control::{ControlBody, GroupControl};
use super::emoji::{EmojiFailure, EmojiRound, EmojiStep};
use super::keys::{FrameRefusal, KeyRefusal, MediaKeys};
use super::roster::{JoinBudget, Liveness, Roster};
use super::topology::{AUDIO_STREAM_KBPS, Candidate, Topology, TopologyMode};
use crate::crypto::group_sas::PairDispute;
use crate::crypto::sas::Sas;
use crate::crypto::sender_key::MAX_EPOCH;
use crate::crypto::sender_key::{GroupMedia, KeyId, OpenedFrame};

/// The group call's timers and bounds.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Most members at once.
    pub max_members: usize,
    /// How often a member says it is still here.
    pub heartbeat: Duration,
    /// A member not heard from for this long is removed (by the sequencer).
    pub silence_timeout: Duration,
    /// How long an epoch's emoji round may take, from the epoch's start.
    pub emoji_timeout: Duration,
    /// How long the previous epoch's keys still open frames in flight after a change.
    pub key_grace: Duration,
    /// How long an invitation waits for its answer.
    pub invite_lifetime: Duration,
    /// At most this many join requests (and proposals) are taken per `join_window`: enough for a
    /// whole group called at once, few enough that a member cannot churn epochs faster.
    pub join_requests: usize,
    /// The window of `join_requests`.
    pub join_window: Duration,
    /// How this member chooses the topology when it sequences a change.
    pub topology: TopologyMode,
    /// In `auto`, how long the reported uplinks must ask for another topology before the epoch's
    /// sequencer changes it within the epoch (so a passing dip does not flap the media's routes).
    pub topology_settle: Duration,
}

impl Default for GroupConfig {
    fn default() -> GroupConfig {
        GroupConfig {
            max_members: 8,
            heartbeat: Duration::from_secs(2),
            silence_timeout: Duration::from_secs(10),
            emoji_timeout: Duration::from_secs(20),
            key_grace: Duration::from_secs(2),
            invite_lifetime: Duration::from_secs(60),
            join_requests: 8,
            join_window: Duration::from_secs(10),
            topology: TopologyMode::Auto,
            topology_settle: Duration::from_secs(10),
        }
    }
}

/// What the driver feeds in.
#[derive(Debug, Clone)]
pub enum Input {
    /// Bytes `from` sent on its pairwise channel with this member.
    Control {
        /// The member (or peer) whose channel delivered them.
        from: PeerId,
        /// The message.
        bytes: Vec<u8>,
    },
    /// The pairwise channel with `peer` is up; its final handshake hash (the same at both ends,
    /// unless someone is in the middle).
    Paired {
        /// The other end.
        peer: PeerId,
        /// The handshake hash (`protocols/handshake-v1.md`, after message 3).
        handshake_hash: [u8; 32],
    },
}

/// What this member asks of the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Invite a contact into the call.
    Invite(PeerId),
    /// Leave the call (it goes on for the others).
    Leave,
}

/// Why a member is no longer in the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// It said it leaves.
    Left,
    /// It was removed (silent for longer than the timeout, or gone without a word).
    Removed,
    /// It accepted an invitation, but no commit let it in before the invitation's lifetime ran out.
    NotAdmitted,
}

/// Something the user (or status) should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// A new epoch: its members (this member's view), sorted.
    EpochStarted {
        /// The epoch.
        epoch: u64,
        /// Its members.
        members: Vec<PeerId>,
    },
    /// A member joined.
    Joined(PeerId),
    /// A member left or was removed.
    Left(PeerId, LeaveReason),
    /// A member's media key for an epoch is installed: its frames open.
    KeyInstalled {
        /// The member.
        from: PeerId,
        /// Which key.
        key_id: KeyId,
    },
    /// Two members' reports of their own pairwise handshake differ in an epoch's emoji round:
    /// someone may be in the middle between them. The round goes on; the emoji that follow differ
    /// between members (protocols/group-sas-v1.md), so comparing them aloud shows it too.
    HandshakeDisputed {
        /// The epoch.
        epoch: u64,
        /// The two members, in member order.
        dispute: PairDispute,
        /// Who saw their reports differ: this member, or the member whose emoji reveal said so
        /// (that member's word; reported so that the pair's own members learn it too).
        seen_by: PeerId,
    },
    /// This member's emoji for an epoch: every member shows the same, unless someone cheats or
    /// is in the middle of a pair.
    Emoji {
        /// The epoch.
        epoch: u64,
        /// The four emoji.
        sas: Sas,
    },
    /// An epoch has no emoji, and why.
    EmojiFailed {
        /// The epoch.
        epoch: u64,
        /// Why.
        failure: EmojiFailure,
    },
    /// This member is out of the call (it left, or a commit left it out).
    Ended(LeaveReason),
    /// How the media flows changed: a commit chose another topology, or the forwarder left or
    /// went silent (a mesh until the commit that removes it).
    TopologyChanged {
        /// The topology now.
        topology: Topology,
        /// The forwarding member, if any.
        forwarder: Option<PeerId>,
    },
}

/// What the driver must do.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send `bytes` to `to` on the pairwise channel (setting it up first if there is none).
    Send {
        /// The member or invitee.
        to: PeerId,
        /// A group control message.
        bytes: Vec<u8>,
    },
    /// Tell the user.
    Event(GroupEvent),
}

/// Why a command or a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The bytes are not a group control message.
    #[error(transparent)]
    Malformed(#[from] super::control::ControlError),
    /// A message for another call.
    #[error("a message for another call")]
    OtherCall,
    /// A message from a peer that is not a member (and nothing this member waits for from it).
    #[error("{0} is not a member of the group")]
    NotMember(PeerId),
    /// A message for an epoch that is over (or too far ahead).
    #[error("a message for epoch {got} while the group is in epoch {current}")]
    WrongEpoch {
        /// The message's epoch.
        got: u64,
        /// This member's.
        current: u64,
    },
    /// A commit from someone who may not sequence that change, or that changes what it may not.
    #[error("commit refused: {0}")]
    BadCommit(&'static str),
    /// An invitation that cannot be accepted.
    #[error("invitation refused: {0}")]
    BadInvite(&'static str),
    /// A key refused.
    #[error(transparent)]
    Key(#[from] KeyRefusal),
    /// A join request nobody invited, or over the budget.
    #[error("join request refused: {0}")]
    JoinRefused(&'static str),
    /// The message makes no sense in this member's state.
    #[error("unexpected {0} message")]
    Unexpected(&'static str),
    /// The group is full (with the invitations out).
    #[error("the group is full ({0} members at most)")]
    Full(usize),
    /// This member is not (or no longer) in the call.
    #[error("not in the call")]
    NotInCall,
}

#[derive(Debug)]
enum Phase {
    /// Invited by `inviter`: waits for the commit that lists it, asking again every heartbeat.
    Joining { inviter: PeerId, after_epoch: u64, known: Vec<PeerId>, give_up: Instant },
    /// In the call.
    Member,
    /// Out of the call.
    Out,
}

/// How many epochs ahead of its own a member keeps messages for: several joins at once move the
/// group on by one epoch each, and a member's key and emoji commitment for the latest can reach us
/// on its own leg before the sequencer's commits of the epochs between do on another. A whole
/// group called at once moves on by up to 7 (8 members at most), and a member busy elsewhere can
/// fall that far behind.
const EARLY_EPOCHS: u64 = 7;
/// How many messages for epochs this member has not reached yet it keeps: three per member and
/// epoch (a key, a commitment, a reveal) for three epochs of the largest group a round allows —
/// more than a full group of 8 needs for all seven.
const EARLY_MESSAGES: usize = 3 * crate::crypto::group_sas::MAX_MEMBERS * 3;
/// Pairwise handshakes remembered at most (members, newcomers on their way, a few more).
const MAX_HANDSHAKES: usize = 4 * crate::crypto::group_sas::MAX_MEMBERS;

/// One member of a group call.
pub struct GroupMember {
    call_id: [u8; 16],
    me: PeerId,
    config: GroupConfig,
    rng: StdRng,
    phase: Phase,
    roster: Option<Roster>,
    handshakes: BTreeMap<PeerId, [u8; 32]>,
    liveness: Liveness,
    next_heartbeat: Instant,
    leaving: BTreeSet<PeerId>,
    invites: BTreeMap<PeerId, Instant>,
    proposals: BTreeSet<PeerId>,
    /// Newcomers whose join requests this member passed on to another sequencer, and since when:
    /// proposed again at every epoch whose commit leaves them out, until their invitation expires
    /// (a proposal can cross a commit, or its sequencer can leave).
    proposed: BTreeMap<PeerId, Instant>,
    join_budget: JoinBudget,
    keys: MediaKeys,
    emoji: Option<EmojiRound>,
    early: Vec<(PeerId, ControlBody)>,
    refused: u64,
    /// The epoch's topology, as committed.
    topology: Topology,
    /// The topology last told (the committed one, or a mesh once its forwarder is gone).
    told_topology: Topology,
    /// Our measured uplink, kbit/s.
    own_uplink: Option<u32>,
    /// The members' last reported uplinks, kbit/s.
    uplinks: BTreeMap<PeerId, u32>,
    /// As the epoch's sequencer: another topology the uplinks ask for, and since when.
    wanted_topology: Option<(Topology, Instant)>,
    outputs: VecDeque<Output>,
}

impl std::fmt::Debug for GroupMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMember")
            .field("me", &self.me)
            .field("phase", &self.phase)
            .field("roster", &self.roster)
            .finish_non_exhaustive()
    }
}

impl GroupMember {
    fn blank(call_id: [u8; 16], me: PeerId, config: GroupConfig, rng: StdRng, phase: Phase, now: Instant) -> Self {
        let join_budget = JoinBudget::new(config.join_requests, config.join_window);
        GroupMember {
            call_id,
            me,
            next_heartbeat: now + config.heartbeat,
            config,
            rng,
            phase,
            roster: None,
            handshakes: BTreeMap::new(),
            liveness: Liveness::default(),
            leaving: BTreeSet::new(),
            invites: BTreeMap::new(),
            proposals: BTreeSet::new(),
            proposed: BTreeMap::new(),
            join_budget,
            keys: MediaKeys::new(),
            emoji: None,
            early: Vec::new(),
            refused: 0,
            topology: Topology::Mesh,
            told_topology: Topology::Mesh,
            own_uplink: None,
            uplinks: BTreeMap::new(),
            wanted_topology: None,
            outputs: VecDeque::new(),
        }
    }

    /// Starts call `call_id` with `me` alone in epoch 0; [`Command::Invite`] brings the others in.
    pub fn start(call_id: [u8; 16], me: PeerId, config: GroupConfig, rng: StdRng, now: Instant) -> GroupMember {
        let mut member = GroupMember::blank(call_id, me, config, rng, Phase::Member, now);
        let roster = Roster::founding([me]).expect("a roster of one");
        member.adopt(roster, Topology::Mesh, now);
        member
    }

    /// Accepts `invite` from `inviter` (the driver decoded it and the user said yes): answers the
    /// inviter and waits for the commit that lists `me`.
    pub fn accept_invite(
        me: PeerId,
        inviter: PeerId,
        invite: &GroupControl,
        config: GroupConfig,
        rng: StdRng,
        now: Instant,
    ) -> Result<GroupMember, GroupError> {
        let ControlBody::Invite { epoch, members } = &invite.body else {
            return Err(GroupError::BadInvite("not an invitation"));
        };
        if *epoch >= MAX_EPOCH {
            // The epoch that admits us must still have keys (and its number must not wrap).
            return Err(GroupError::BadInvite("an epoch past the last one keys exist for"));
        }
        if !members.iter().any(|m| m.peer == inviter) || members.iter().any(|m| m.peer == me) {
            return Err(GroupError::BadInvite("an invite must list its inviter and not the invitee"));
        }
        let known = members.iter().map(|m| m.peer).collect();
        let phase = Phase::Joining { inviter, after_epoch: *epoch, known, give_up: now + config.invite_lifetime };
        let mut member = GroupMember::blank(invite.call_id, me, config, rng, phase, now);
        member.send(inviter, ControlBody::JoinRequest);
        Ok(member)
    }

    /// This member.
    pub fn me(&self) -> PeerId {
        self.me
    }

    /// The call.
    pub fn call_id(&self) -> [u8; 16] {
        self.call_id
    }

    /// The current epoch's roster (none while joining).
    pub fn roster(&self) -> Option<&Roster> {
        self.roster.as_ref().filter(|_| matches!(self.phase, Phase::Member))
    }

    /// The current epoch's emoji, once agreed.
    pub fn emoji(&self) -> Option<Sas> {
        self.emoji.as_ref().and_then(|e| e.outcome()?.as_ref().ok().copied())
    }

    /// How the media flows now: the epoch's committed topology, or a mesh once its forwarder has
    /// left or gone silent (until the commit that removes it chooses again).
    pub fn topology(&self, now: Instant) -> Topology {
        let Some(roster) = self.roster() else { return Topology::Mesh };
        match self.topology.forwarder() {
            Some(f) => {
                let peer = roster.entries().iter().find(|m| m.index == f).map(|m| m.peer);
                match peer {
                    Some(p) if !self.gone(now).contains(&p) => self.topology,
                    _ => Topology::Mesh,
                }
            }
            None => Topology::Mesh,
        }
    }

    /// The forwarding member now, if any ([`GroupMember::topology`]).
    pub fn forwarder(&self, now: Instant) -> Option<PeerId> {
        let f = self.topology(now).forwarder()?;
        self.roster()?.entries().iter().find(|m| m.index == f).map(|m| m.peer)
    }

    /// Our measured uplink (kbit/s): told to every member with each heartbeat, for the topology.
    pub fn set_uplink(&mut self, kbps: Option<u32>) {
        self.own_uplink = kbps;
    }

    /// Every member's uplink as last reported (ours as measured), kbit/s.
    pub fn uplinks(&self) -> BTreeMap<PeerId, u32> {
        let mut all = self.uplinks.clone();
        if let Some(own) = self.own_uplink {
            all.insert(self.me, own);
        }
        all
    }

    /// How many messages were refused (from strangers, malformed, over budget, out of place).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// The next output, until `None`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`GroupMember::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Member => {}
            Phase::Joining { give_up, .. } => return Some(give_up.min(self.next_heartbeat)),
            Phase::Out => return None,
        }
        [
            Some(self.next_heartbeat),
            self.liveness.next_deadline(self.config.silence_timeout).map(|t| t + Duration::from_millis(1)),
            self.emoji.as_ref().and_then(EmojiRound::deadline),
            self.keys.retire_deadline(),
            self.invites.values().min().map(|t| *t + self.config.invite_lifetime),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Seals one of this member's frames under its key of the current epoch. Refused while
    /// joining and once out: there is no key then, and never the key of an epoch that is over.
    pub fn seal(&mut self, media: GroupMedia, payload: &[u8]) -> Result<Vec<u8>, GroupError> {
        match self.phase {
            Phase::Member => self.keys.seal(media, payload).ok_or(GroupError::NotInCall),
            _ => Err(GroupError::NotInCall),
        }
    }

    /// Opens a frame that came on member `from`'s link: its own, or (from the epoch's forwarder)
    /// any other member's.
    pub fn open(&mut self, from: &PeerId, frame: &[u8]) -> Result<OpenedFrame, FrameRefusal> {
        let forwarder = self
            .topology
            .forwarder()
            .and_then(|f| self.roster.as_ref()?.entries().iter().find(|m| m.index == f).map(|m| m.peer));
        match (&self.phase, &self.roster) {
            (Phase::Member, Some(roster)) if forwarder == Some(*from) && *from != self.me => {
                match crate::crypto::sender_key::GroupFrameHeader::parse(frame) {
                    Ok((h, _)) if roster.index_of(from) != Some(h.key_id.sender()) => {
                        self.keys.open_forwarded(roster, &self.me, from, frame)
                    }
                    _ => self.keys.open(roster, from, frame),
                }
            }
            (Phase::Member, Some(roster)) => self.keys.open(roster, from, frame),
            _ => Err(FrameRefusal::NotMember(*from)),
        }
    }

    /// A local command.
    pub fn command(&mut self, command: Command, now: Instant) -> Result<(), GroupError> {
        let Some(roster) = self.roster().cloned() else { return Err(GroupError::NotInCall) };
        match command {
            Command::Invite(peer) => {
                if roster.contains(&peer) {
                    return Ok(());
                }
                if roster.len() + self.invites.len() + self.proposals.len() >= self.config.max_members {
                    return Err(GroupError::Full(self.config.max_members));
                }
                self.invites.insert(peer, now);
                self.send(peer, ControlBody::Invite { epoch: roster.epoch(), members: roster.entries().to_vec() });
            }
            Command::Leave => {
                self.send_to_others(&roster, ControlBody::Leave { epoch: roster.epoch() });
                self.end(LeaveReason::Left);
            }
        }
        Ok(())
    }

    /// An input at `now`. A refused message changes nothing but the refusal count.
    pub fn handle(&mut self, input: Input, now: Instant) -> Result<(), GroupError> {
        let result = match input {
            Input::Paired { peer, handshake_hash } => {
                if self.handshakes.len() >= MAX_HANDSHAKES && !self.handshakes.contains_key(&peer) {
                    // Links to peers outside the roster are forgotten first; the roster's are kept.
                    let roster = self.roster.clone();
                    self.handshakes.retain(|p, _| roster.as_ref().is_some_and(|r| r.contains(p)));
                }
                self.handshakes.insert(peer, handshake_hash);
                self.start_emoji();
                Ok(())
            }
            Input::Control { from, bytes } => self.receive(from, &bytes, now),
        };
        if result.is_err() {
            self.refused += 1;
        }
        self.sequence(now);
        self.tell_topology(now);
        result
    }

    /// Time passed: heartbeats, silent members, the emoji deadline, the old keys' grace; for an
    /// invitee, the end of its wait for a commit that lists it.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Member => {}
            Phase::Joining { give_up, .. } if now >= give_up => return self.end(LeaveReason::NotAdmitted),
            Phase::Joining { inviter, .. } => {
                // The request again: one refused for the inviter's budget, or lost with a link,
                // is taken later (a repeat of one taken already changes nothing).
                if now >= self.next_heartbeat {
                    self.send(inviter, ControlBody::JoinRequest);
                    self.next_heartbeat = now + self.config.heartbeat;
                }
                return;
            }
            Phase::Out => return,
        }
        let Some(roster) = self.roster.clone() else { return };
        if now >= self.next_heartbeat {
            self.send_to_others(&roster, ControlBody::Heartbeat { epoch: roster.epoch() });
            if let Some(kbps) = self.own_uplink {
                self.send_to_others(&roster, ControlBody::Uplink { epoch: roster.epoch(), kbps });
            }
            self.next_heartbeat = now + self.config.heartbeat;
        }
        self.keys.tick(now);
        let lifetime = self.config.invite_lifetime;
        self.invites.retain(|_, at| now < *at + lifetime);
        if let Some(round) = self.emoji.as_mut() {
            let steps = round.time_out(&self.me, &self.handshakes, now);
            self.emoji_steps(steps);
        }
        self.sequence(now);
        self.reconsider_topology(now);
        self.tell_topology(now);
    }

    /// The topology the members' reported uplinks ask for in `roster` (the sequencer's choice).
    fn choose_topology(&self, roster: &Roster) -> Topology {
        let uplinks = self.uplinks();
        let candidates: Vec<Candidate> = roster
            .entries()
            .iter()
            .map(|m| Candidate { index: m.index, uplink_kbps: uplinks.get(&m.peer).copied() })
            .collect();
        super::topology::choose(self.config.topology, &candidates, AUDIO_STREAM_KBPS)
    }

    /// As the epoch's sequencer, in `auto`: when the uplinks members report have asked for
    /// another topology than the epoch's for [`GroupConfig::topology_settle`], tells every member
    /// (`0x0B`) and takes it. Membership, keys and the emoji stay: only the routes change.
    fn reconsider_topology(&mut self, now: Instant) {
        let Some(roster) = self.roster.clone() else { return };
        let sequencer = roster.sequencer(&[]) == Some(self.me);
        if !matches!(self.phase, Phase::Member) || !sequencer || self.config.topology != TopologyMode::Auto {
            self.wanted_topology = None;
            return;
        }
        let wanted = self.choose_topology(&roster);
        if wanted == self.topology {
            self.wanted_topology = None;
            return;
        }
        match self.wanted_topology {
            Some((w, since)) if w == wanted => {
                if now >= since + self.config.topology_settle {
                    self.send_to_others(&roster, ControlBody::Topology { epoch: roster.epoch(), topology: wanted });
                    self.topology = wanted;
                    self.wanted_topology = None;
                }
            }
            _ => self.wanted_topology = Some((wanted, now)),
        }
    }

    /// Tells the driver when the topology in force changed.
    fn tell_topology(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Member) {
            return;
        }
        let topology = self.topology(now);
        if topology != self.told_topology {
            self.told_topology = topology;
            let forwarder = self.forwarder(now);
            self.event(GroupEvent::TopologyChanged { topology, forwarder });
        }
    }

    fn receive(&mut self, from: PeerId, bytes: &[u8], now: Instant) -> Result<(), GroupError> {
        let message = GroupControl::decode(bytes)?;
        if message.call_id != self.call_id {
            return Err(GroupError::OtherCall);
        }
        if let Some(epoch) = message.body.epoch().filter(|e| *e > MAX_EPOCH) {
            // No key exists past MAX_EPOCH; refusing here also keeps every `epoch + 1` below from
            // wrapping on a number off the wire.
            return Err(GroupError::WrongEpoch { got: epoch, current: self.roster.as_ref().map_or(0, Roster::epoch) });
        }
        if let ControlBody::JoinRequest = message.body {
            return self.join_request(from, now);
        }
        if let (ControlBody::Invite { epoch, members }, Phase::Joining { .. }) = (&message.body, &self.phase) {
            return self.newer_invite(from, *epoch, members);
        }
        let epoch = message.body.epoch().unwrap_or_default();
        let (current, known) = match (&self.phase, &self.roster) {
            (Phase::Out, _) => return Err(GroupError::NotInCall),
            (Phase::Joining { after_epoch, known, .. }, _) => {
                // Everything of an epoch after the invite waits for the commit that lists us.
                if epoch <= *after_epoch || !matches!(message.body, ControlBody::Commit { .. }) {
                    return self.keep_early(from, epoch, *after_epoch + 1, message.body);
                }
                (*after_epoch, known.contains(&from))
            }
            (Phase::Member, Some(roster)) => (roster.epoch(), roster.contains(&from)),
            (Phase::Member, None) => return Err(GroupError::NotInCall),
        };
        if epoch > current && !matches!(message.body, ControlBody::Commit { .. }) {
            // A member of a later epoch (maybe a newcomer) may speak before its commit reaches us:
            // commits come from the sequencer, other messages on each member's own leg.
            return self.keep_early(from, epoch, current + 1, message.body);
        }
        if !known {
            return Err(GroupError::NotMember(from));
        }
        self.liveness.heard(&from, now);
        match message.body {
            ControlBody::Commit { epoch, next_index, members, topology } => {
                self.commit(from, epoch, next_index, members, topology, now)
            }
            // A current member's proposal that crossed a commit still stands: the newcomer was
            // invited all the same (the proposer proposes again at each epoch anyway).
            ControlBody::Propose { newcomer, .. } => self.propose(newcomer, now),
            _ if epoch != current => Err(GroupError::WrongEpoch { got: epoch, current }),
            ControlBody::Heartbeat { .. } => Ok(()),
            ControlBody::Uplink { kbps, .. } => {
                self.uplinks.insert(from, kbps);
                Ok(())
            }
            ControlBody::Leave { .. } => {
                self.leaving.insert(from);
                Ok(())
            }
            ControlBody::Topology { topology, .. } => {
                let roster = self.roster.as_ref().ok_or(GroupError::NotInCall)?;
                if roster.sequencer(&[]) != Some(from) {
                    return Err(GroupError::BadCommit("a topology change from a member that does not sequence"));
                }
                if topology.forwarder().is_some_and(|f| !roster.entries().iter().any(|m| m.index == f)) {
                    return Err(GroupError::BadCommit("a forwarder that is not a member"));
                }
                self.topology = topology;
                Ok(())
            }
            ControlBody::SenderKey { sender, base_key, .. } => {
                let roster = self.roster.as_ref().ok_or(GroupError::NotInCall)?;
                let key_id = self.keys.install(roster, &from, sender.0, &base_key)?;
                self.event(GroupEvent::KeyInstalled { from, key_id });
                Ok(())
            }
            ControlBody::SasCommit { commit, .. } => {
                let steps = self.emoji.as_mut().map(|r| r.offer_commit(from, commit)).unwrap_or_default();
                self.emoji_steps(steps);
                Ok(())
            }
            ControlBody::SasReveal { reveal, .. } => {
                let steps = self.emoji.as_mut().map(|r| r.offer_reveal(from, reveal)).unwrap_or_default();
                self.emoji_steps(steps);
                Ok(())
            }
            ControlBody::Invite { .. } => Err(GroupError::Unexpected("invite")),
            ControlBody::JoinRequest => Err(GroupError::Unexpected("join request")),
        }
    }

    /// While joining, a newer invitation from a member the first one named: the group moved on (a
    /// join) before a commit let us in, and the sequencer of our admission may be a member the
    /// first invitation did not name. We take that epoch's members as the ones whose commit may
    /// let us in; the join request already sent stands. Messages kept for an epoch now passed are
    /// dropped.
    fn newer_invite(&mut self, from: PeerId, epoch: u64, members: &[super::control::RosterEntry]) -> Result<(), GroupError> {
        let me = self.me;
        let max_members = self.config.max_members;
        let Phase::Joining { after_epoch, known, .. } = &mut self.phase else {
            return Err(GroupError::Unexpected("invite"));
        };
        if !known.contains(&from) {
            return Err(GroupError::NotMember(from));
        }
        if epoch <= *after_epoch || epoch >= MAX_EPOCH {
            return Err(GroupError::WrongEpoch { got: epoch, current: *after_epoch });
        }
        if !members.iter().any(|m| m.peer == from) || members.iter().any(|m| m.peer == me) || members.len() > max_members {
            return Err(GroupError::BadInvite("an invite must list its inviter and not the invitee"));
        }
        *after_epoch = epoch;
        *known = members.iter().map(|m| m.peer).collect();
        self.early.retain(|(_, body)| body.epoch().is_some_and(|e| e > epoch));
        Ok(())
    }

    /// Keeps a message of epoch `epoch` for when this member reaches it, if that is `next` (the
    /// epoch after its own) or up to [`EARLY_EPOCHS`] after, and there is room (three per sender
    /// and epoch; a heartbeat is not kept).
    /// Peers not (yet) known to be members share half of the room, so a flood from peers with a
    /// channel but no place in the group (a past invitee, a removed member) cannot crowd out the
    /// members' own messages; a newcomer invited by another member is such a peer until its
    /// commit arrives.
    fn keep_early(&mut self, from: PeerId, epoch: u64, next: u64, body: ControlBody) -> Result<(), GroupError> {
        let current = next - 1;
        // An uplink report likewise: it comes with every heartbeat, and the next one will do.
        if matches!(body, ControlBody::Heartbeat { .. } | ControlBody::Uplink { .. }) {
            // Says only "alive", and liveness starts at the commit anyway: kept, a heartbeat every
            // 2 s would fill the sender's three places while the commit is on its way (a mesh leg
            // being dialed), and its key or emoji commitment that follows would be dropped.
            return Ok(());
        }
        // Per sender and epoch: its key, its emoji commitment and reveal.
        let from_them = self.early.iter().filter(|(p, b)| *p == from && b.epoch() == Some(epoch)).count();
        let known = |p: &PeerId| match &self.phase {
            Phase::Joining { known, .. } => known.contains(p),
            _ => self.roster.as_ref().is_some_and(|r| r.contains(p)),
        };
        let strangers = self.early.iter().filter(|(p, _)| !known(p)).count();
        let stranger_full = !known(&from) && strangers >= EARLY_MESSAGES / 2;
        let ahead = epoch.checked_sub(next).is_none_or(|d| d >= EARLY_EPOCHS);
        if ahead || self.early.len() >= EARLY_MESSAGES || from_them >= 3 || stranger_full {
            return Err(GroupError::WrongEpoch { got: epoch, current });
        }
        self.early.push((from, body));
        Ok(())
    }

    fn join_request(&mut self, from: PeerId, now: Instant) -> Result<(), GroupError> {
        // A repeat of a request already taken (passed on, waiting for a commit, or in).
        if self.proposals.contains(&from) || self.proposed.contains_key(&from) || self.roster.as_ref().is_some_and(|r| r.contains(&from)) {
            return Ok(());
        }
        // Strangers are refused before they cost anything (and before they use up the budget that
        // invited peers need).
        let Some(invited_at) = self.invites.get(&from).copied() else {
            return Err(GroupError::JoinRefused("not invited by this member"));
        };
        if now >= invited_at + self.config.invite_lifetime {
            self.invites.remove(&from);
            return Err(GroupError::JoinRefused("the invitation expired"));
        }
        if !self.join_budget.admit(now) {
            return Err(GroupError::JoinRefused("too many join requests"));
        }
        self.invites.remove(&from);
        let roster = self.roster.clone().ok_or(GroupError::NotInCall)?;
        match roster.sequencer(&self.gone(now)) {
            Some(s) if s == self.me => {
                self.proposals.insert(from);
            }
            Some(s) => {
                self.proposed.insert(from, now);
                self.send(s, ControlBody::Propose { epoch: roster.epoch(), newcomer: from });
            }
            None => return Err(GroupError::NotInCall),
        }
        Ok(())
    }

    fn propose(&mut self, newcomer: PeerId, now: Instant) -> Result<(), GroupError> {
        let roster = self.roster.clone().ok_or(GroupError::NotInCall)?;
        if roster.sequencer(&self.gone(now)) != Some(self.me) {
            return Err(GroupError::Unexpected("proposal to a member that does not sequence"));
        }
        if roster.contains(&newcomer) || self.proposals.contains(&newcomer) {
            // Already in, or already waiting for the next commit: a proposal sent again.
            return Ok(());
        }
        if roster.len() + self.proposals.len() >= self.config.max_members {
            return Err(GroupError::Full(self.config.max_members));
        }
        if !self.join_budget.admit(now) {
            return Err(GroupError::JoinRefused("too many join requests"));
        }
        self.proposals.insert(newcomer);
        Ok(())
    }

    /// The members this member counts as gone: those who said they leave and those silent too long.
    fn gone(&self, now: Instant) -> Vec<PeerId> {
        let mut gone: Vec<PeerId> = self.leaving.iter().copied().collect();
        gone.extend(self.liveness.silent(now, self.config.silence_timeout));
        gone.retain(|p| *p != self.me);
        gone.sort();
        gone.dedup();
        gone
    }

    /// If this member sequences the pending change (joins it was asked for, members gone), commits
    /// it: the new roster goes to every member old and new, and this member moves to it.
    fn sequence(&mut self, now: Instant) {
        let Some(roster) = self.roster().cloned() else { return };
        let gone: Vec<PeerId> = self.gone(now).into_iter().filter(|p| roster.contains(p)).collect();
        if (gone.is_empty() && self.proposals.is_empty()) || roster.sequencer(&gone) != Some(self.me) {
            return;
        }
        let room = self.config.max_members.saturating_sub(roster.len() - gone.len());
        let joining: Vec<PeerId> = std::mem::take(&mut self.proposals).into_iter().take(room).collect();
        let Ok(next) = roster.next(&gone, &joining) else { return };
        let topology = self.choose_topology(&next);
        let commit = ControlBody::Commit {
            epoch: next.epoch(),
            next_index: next.next_index(),
            members: next.entries().to_vec(),
            topology,
        };
        let to: BTreeSet<PeerId> = roster.peers().chain(next.peers()).filter(|p| *p != self.me).collect();
        for peer in to {
            self.send(peer, commit.clone());
        }
        self.adopt(next, topology, now);
    }

    fn commit(
        &mut self,
        from: PeerId,
        epoch: u64,
        next_index: u16,
        members: Vec<super::control::RosterEntry>,
        topology: Topology,
        now: Instant,
    ) -> Result<(), GroupError> {
        let next = Roster::new(epoch, next_index, members).map_err(|_| GroupError::BadCommit("invalid roster"))?;
        if !next.contains(&from) {
            return Err(GroupError::BadCommit("the sequencer must stay in the epoch it commits"));
        }
        if next.len() > self.config.max_members {
            return Err(GroupError::BadCommit("more members than the group allows"));
        }
        match (&self.phase, &self.roster) {
            (Phase::Joining { after_epoch, .. }, _) => {
                if epoch <= *after_epoch {
                    return Err(GroupError::WrongEpoch { got: epoch, current: *after_epoch });
                }
                if !next.contains(&self.me) {
                    return Err(GroupError::BadCommit("a commit that does not list the invitee"));
                }
                self.phase = Phase::Member;
            }
            (Phase::Member, Some(roster)) => {
                if epoch != roster.epoch() + 1 {
                    return Err(GroupError::WrongEpoch { got: epoch, current: roster.epoch() });
                }
                let leaving: Vec<PeerId> = roster.peers().filter(|p| !next.contains(p)).collect();
                if roster.sequencer(&leaving) != Some(from) {
                    return Err(GroupError::BadCommit("not from the member that sequences this change"));
                }
                let kept = roster.entries().iter().all(|m| next.index_of(&m.peer).is_none_or(|i| i == m.index));
                let fresh = next
                    .entries()
                    .iter()
                    .all(|m| roster.contains(&m.peer) || u16::from(m.index.0) >= roster.next_index());
                if !kept || !fresh || next.next_index() < roster.next_index() {
                    return Err(GroupError::BadCommit("sender indices must be kept and never reused"));
                }
                if !next.contains(&self.me) {
                    self.end(LeaveReason::Removed);
                    return Ok(());
                }
            }
            _ => return Err(GroupError::NotInCall),
        }
        self.adopt(next, topology, now);
        Ok(())
    }

    /// Moves to `next`: events for who came and went, new keys to everyone, a new emoji round,
    /// and what waited for this epoch.
    fn adopt(&mut self, next: Roster, topology: Topology, now: Instant) {
        self.topology = topology;
        self.wanted_topology = None;
        let previous = self.roster.take();
        let old: Vec<PeerId> = previous.as_ref().map(|r| r.peers().collect()).unwrap_or_default();
        let me = self.me;
        let joined: Vec<PeerId> = next.peers().filter(|p| !old.contains(p) && *p != me && previous.is_some()).collect();
        for peer in joined {
            self.event(GroupEvent::Joined(peer));
        }
        for peer in old.iter().filter(|p| !next.contains(p)) {
            let reason = if self.leaving.contains(peer) { LeaveReason::Left } else { LeaveReason::Removed };
            self.event(GroupEvent::Left(*peer, reason));
        }
        self.event(GroupEvent::EpochStarted { epoch: next.epoch(), members: next.peers().collect() });
        self.leaving.retain(|p| next.contains(p));
        self.uplinks.retain(|p, _| next.contains(p));
        self.proposals.retain(|p| !next.contains(p));
        self.invites.retain(|p, _| !next.contains(p));
        let lifetime = self.config.invite_lifetime;
        self.proposed.retain(|p, at| !next.contains(p) && now < *at + lifetime);
        if matches!(self.phase, Phase::Member) && next.contains(&me) && previous.is_some() {
            // Our invitees this commit left out learn the new epoch and its members (the commit
            // that lets them in may come from a member their first invitation did not name), and
            // those whose requests we passed on are proposed again, to this epoch's sequencer.
            let waiting: BTreeSet<PeerId> = self.invites.keys().chain(self.proposed.keys()).copied().collect();
            for peer in waiting {
                self.send(peer, ControlBody::Invite { epoch: next.epoch(), members: next.entries().to_vec() });
            }
            let again: Vec<PeerId> = self.proposed.keys().copied().collect();
            match next.sequencer(&[]) {
                Some(s) if s == me => self.proposals.extend(again),
                Some(s) => {
                    for newcomer in again {
                        self.send(s, ControlBody::Propose { epoch: next.epoch(), newcomer });
                    }
                }
                None => {}
            }
        }
        self.handshakes.retain(|p, _| next.contains(p) || *p == self.me);
        self.liveness.track(next.peers().filter(|p| *p != self.me), now);
        if let Some(base) = self.keys.start_epoch(&next, &self.me, now + self.config.key_grace, &mut self.rng) {
            let sender = next.index_of(&self.me).expect("a member of the epoch it adopts");
            self.send_to_others(&next, ControlBody::SenderKey { epoch: next.epoch(), sender, base_key: base });
        }
        self.emoji = EmojiRound::new(self.call_id, &next, now, self.config.emoji_timeout);
        let epoch = next.epoch();
        self.roster = Some(next);
        self.start_emoji();
        for (from, body) in std::mem::take(&mut self.early) {
            if body.epoch().is_some_and(|e| e > epoch) {
                // For an epoch after this one (its commit is on its way): it waits on.
                self.early.push((from, body));
            } else if body.epoch() == Some(epoch) {
                let bytes = GroupControl { call_id: self.call_id, body }.encode();
                // A refusal here is counted like any other.
                if self.receive(from, &bytes, now).is_err() {
                    self.refused += 1;
                }
            }
        }
    }

    fn start_emoji(&mut self) {
        let mut nonce = [0u8; 32];
        self.rng.fill_bytes(&mut nonce);
        let steps = match self.emoji.as_mut() {
            Some(round) if matches!(self.phase, Phase::Member) => round.try_start(self.me, nonce, &self.handshakes),
            _ => Vec::new(),
        };
        self.emoji_steps(steps);
    }

    fn emoji_steps(&mut self, steps: Vec<EmojiStep>) {
        let Some(roster) = self.roster.clone() else { return };
        for step in steps {
            match step {
                EmojiStep::Broadcast(body) => {
                    self.send_to_others(&roster, body);
                }
                EmojiStep::Disputed { dispute, seen_by } => {
                    self.event(GroupEvent::HandshakeDisputed { epoch: roster.epoch(), dispute, seen_by })
                }
                EmojiStep::Agreed(sas) => self.event(GroupEvent::Emoji { epoch: roster.epoch(), sas }),
                EmojiStep::Failed(failure) => self.event(GroupEvent::EmojiFailed { epoch: roster.epoch(), failure }),
            }
        }
    }

    fn end(&mut self, reason: LeaveReason) {
        self.phase = Phase::Out;
        self.keys = MediaKeys::new();
        self.emoji = None;
        self.early.clear();
        self.event(GroupEvent::Ended(reason));
    }

    /// Sends `body` to every member of `roster` but this one.
    fn send_to_others(&mut self, roster: &Roster, body: ControlBody) {
        let bytes = GroupControl { call_id: self.call_id, body }.encode();
        for to in roster.peers().filter(|p| *p != self.me) {
            self.outputs.push_back(Output::Send { to, bytes: bytes.clone() });
        }
    }

    fn send(&mut self, to: PeerId, body: ControlBody) {
        let bytes = GroupControl { call_id: self.call_id, body }.encode();
        self.outputs.push_back(Output::Send { to, bytes });
    }

    fn event(&mut self, event: GroupEvent) {
        self.outputs.push_back(Output::Event(event));
    }
}
