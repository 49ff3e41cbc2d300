//! The group-call core (`src/group/`) on a deterministic in-memory network, for `tests/group_sim.rs`
//! and `tests/group_media.rs`: every member a `GroupMember`, every pairwise channel an ordered
//! queue, time a counter. What a member sends reaches its peer in order; a channel's handshake hash
//! is reported to both ends when it is first used (or a different one to each end, for a man in
//! the middle).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use hail::crypto::sas::Sas;
use hail::crypto::sender_key::{KeyId, SenderKeyRing};
use hail::group::control::{ControlBody, GroupControl};
use hail::group::{Command, GroupConfig, GroupEvent, GroupMember, Input, Output};
use hail::identity::Identity;
use libp2p_identity::PeerId;
use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};

pub const CALL: [u8; 16] = [0x13; 16];

pub fn peer(seed: u8) -> PeerId {
    Identity::from_seed([seed; 32]).peer_id()
}

/// The handshake hash both ends of the pair {a, b} hold.
pub fn pair_hash(a: &PeerId, b: &PeerId) -> [u8; 32] {
    let (a, b) = if a.to_bytes() < b.to_bytes() { (a, b) } else { (b, a) };
    Sha256::new().chain_update(a.to_bytes()).chain_update(b.to_bytes()).finalize().into()
}

/// What a man in the middle of a pair does to a message on it.
pub type Rewrite = Box<dyn FnMut(PeerId, PeerId, Vec<u8>) -> Vec<u8> + Send>;

pub struct Net {
    pub start: Instant,
    pub now: Instant,
    pub members: BTreeMap<PeerId, GroupMember>,
    /// Messages in flight, in order.
    pub queue: VecDeque<(PeerId, PeerId, Vec<u8>)>,
    /// Invitations that reached someone who is not running a member yet.
    pub invitations: Vec<(PeerId, PeerId, GroupControl)>,
    pub paired: BTreeSet<(PeerId, PeerId)>,
    /// Each end's handshake hash for a pair someone is in the middle of.
    pub mitm: BTreeMap<(PeerId, PeerId), [u8; 32]>,
    pub rewrite: Option<Rewrite>,
    /// Members cut off: nothing reaches them or leaves them, and they get no ticks.
    pub silenced: BTreeSet<PeerId>,
    /// Members whose incoming messages are held back (in `held`) until the test releases them.
    pub holding: BTreeSet<PeerId>,
    pub held: Vec<(PeerId, PeerId, Vec<u8>)>,
    /// Every message delivered to each peer (what it could keep).
    pub delivered: BTreeMap<PeerId, Vec<(PeerId, Vec<u8>)>>,
    pub events: BTreeMap<PeerId, Vec<GroupEvent>>,
    /// Every member's configuration.
    pub config: GroupConfig,
}

impl Net {
    pub fn new() -> Net {
        let start = Instant::now();
        Net {
            start,
            now: start,
            members: BTreeMap::new(),
            queue: VecDeque::new(),
            invitations: Vec::new(),
            paired: BTreeSet::new(),
            mitm: BTreeMap::new(),
            rewrite: None,
            silenced: BTreeSet::new(),
            holding: BTreeSet::new(),
            held: Vec::new(),
            delivered: BTreeMap::new(),
            events: BTreeMap::new(),
            config: GroupConfig::default(),
        }
    }

    /// A group founded by `founder`, with `others` invited and joined one after the other.
    pub fn group(founder: u8, others: &[u8]) -> Net {
        Net::group_with(GroupConfig::default(), founder, others)
    }

    pub fn group_with(config: GroupConfig, founder: u8, others: &[u8]) -> Net {
        let mut net = Net { config, ..Net::new() };
        let f = peer(founder);
        net.members.insert(f, GroupMember::start(CALL, f, net.config.clone(), rng(founder), net.now));
        for s in others {
            net.invite(f, *s);
        }
        net
    }

    pub fn member(&mut self, p: &PeerId) -> &mut GroupMember {
        self.members.get_mut(p).expect("a member")
    }

    /// Hands `to` an input now, past the network.
    pub fn handle(&mut self, to: &PeerId, input: Input) -> Result<(), hail::group::GroupError> {
        let now = self.now;
        self.member(to).handle(input, now)
    }

    pub fn command(&mut self, p: &PeerId, command: Command) -> Result<(), hail::group::GroupError> {
        let now = self.now;
        self.member(p).command(command, now)
    }

    /// `inviter` invites `seed`'s peer, which accepts; runs until the network is quiet.
    pub fn invite(&mut self, inviter: PeerId, seed: u8) {
        let newcomer = peer(seed);
        self.command(&inviter, Command::Invite(newcomer)).unwrap();
        self.run();
        let i = self.invitations.iter().position(|(_, to, _)| *to == newcomer).expect("the invitation arrived");
        let (from, _, invite) = self.invitations.remove(i);
        let joining = GroupMember::accept_invite(newcomer, from, &invite, self.config.clone(), rng(seed), self.now)
            .expect("a valid invitation");
        self.members.insert(newcomer, joining);
        self.run();
    }

    /// Reports the pair's handshake hash to each end that runs a member and has not had it yet.
    pub fn pair(&mut self, a: PeerId, b: PeerId) {
        for (me, other) in [(a, b), (b, a)] {
            let handshake_hash = self.mitm.get(&(me, other)).copied().unwrap_or_else(|| pair_hash(&a, &b));
            if let Some(m) = self.members.get_mut(&me)
                && self.paired.insert((me, other))
            {
                let _ = m.handle(Input::Paired { peer: other, handshake_hash }, self.now);
            }
        }
    }

    pub fn collect(&mut self) {
        loop {
            let mut repair = Vec::new();
            for (p, m) in &mut self.members {
                while let Some(out) = m.poll_output() {
                    match out {
                        Output::Send { to, bytes } => self.queue.push_back((*p, to, bytes)),
                        Output::Event(e) => {
                            // As the node does (`node::calls::group`, `EpochStarted`): a pairing
                            // fed before its peer was a member was dropped at an epoch without it,
                            // so every pair's handshake goes in again at each new epoch.
                            if let GroupEvent::EpochStarted { members, .. } = &e {
                                repair.extend(members.iter().filter(|o| self.paired.contains(&(*p, **o))).map(|o| (*p, *o)));
                            }
                            self.events.entry(*p).or_default().push(e);
                        }
                    }
                }
            }
            if repair.is_empty() {
                return;
            }
            for (me, other) in repair {
                let handshake_hash = self.mitm.get(&(me, other)).copied().unwrap_or_else(|| pair_hash(&me, &other));
                let now = self.now;
                if let Some(m) = self.members.get_mut(&me) {
                    let _ = m.handle(Input::Paired { peer: other, handshake_hash }, now);
                }
            }
        }
    }

    /// Delivers until nothing is in flight.
    pub fn run(&mut self) {
        self.collect();
        let mut steps = 0;
        while let Some((from, to, bytes)) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "the group does not settle");
            if self.silenced.contains(&from) || self.silenced.contains(&to) {
                continue;
            }
            if self.holding.contains(&to) {
                self.held.push((from, to, bytes));
                continue;
            }
            self.pair(from, to);
            let bytes = match self.rewrite.as_mut() {
                Some(rewrite) => rewrite(from, to, bytes),
                None => bytes,
            };
            self.delivered.entry(to).or_default().push((from, bytes.clone()));
            match self.members.get_mut(&to) {
                Some(m) => {
                    let _ = m.handle(Input::Control { from, bytes }, self.now);
                }
                None => {
                    if let Ok(msg @ GroupControl { body: ControlBody::Invite { .. }, .. }) =
                        GroupControl::decode(&bytes)
                    {
                        self.invitations.push((from, to, msg));
                    }
                }
            }
            self.collect();
        }
    }

    /// Lets `d` pass in steps of 100 ms, ticking every member that is due.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(100);
            let now = self.now;
            let due: Vec<PeerId> = self
                .members
                .iter()
                .filter(|(p, m)| !self.silenced.contains(p) && m.poll_timeout().is_some_and(|t| t <= now))
                .map(|(p, _)| *p)
                .collect();
            for p in due {
                self.member(&p).handle_timeout(now);
            }
            self.run();
        }
    }

    pub fn emoji(&self, p: &PeerId) -> Option<Sas> {
        self.members[p].emoji()
    }

    pub fn epoch(&self, p: &PeerId) -> u64 {
        self.members[p].roster().expect("in the call").epoch()
    }

    pub fn saw(&self, p: &PeerId, want: impl Fn(&GroupEvent) -> bool) -> bool {
        self.events.get(p).is_some_and(|es| es.iter().any(want))
    }

    /// Every key `p` was sent, as a key ring: what a member who keeps everything it got holds.
    pub fn captured_keys(&self, p: &PeerId) -> SenderKeyRing {
        let mut ring = SenderKeyRing::new();
        for (_, bytes) in &self.delivered[p] {
            if let Ok(GroupControl { body: ControlBody::SenderKey { epoch, sender, base_key }, .. }) =
                GroupControl::decode(bytes)
            {
                let _ = ring.install(KeyId::new(epoch, sender).unwrap(), &base_key);
            }
        }
        ring
    }
}

pub fn rng(seed: u8) -> StdRng {
    StdRng::seed_from_u64(u64::from(seed))
}
