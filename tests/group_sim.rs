//! The group-call core (`src/group/`) on a deterministic in-memory network (`common/group_net.rs`):
//! every member a `GroupMember`, every pairwise channel an ordered queue, time a counter.

#[path = "common/group_net.rs"]
mod group_net;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use group_net::{CALL, Net, peer, rng};
use hail::crypto::group_sas::PairDispute;
use hail::crypto::sas::Sas;
use hail::crypto::sender_key::{GroupFrameError, GroupMedia, SenderIndex};
use hail::group::control::{ControlBody, GroupControl, RosterEntry};
use hail::group::keys::FrameRefusal;
use hail::group::topology::Topology;
use hail::group::{Command, GroupConfig, GroupEvent, GroupMember, Input, LeaveReason, Output};
use hail::identity::Identity;
use libp2p_identity::PeerId;
use sha2::{Digest, Sha256};

/// The members in the order of their PeerId bytes (the group's member order).
fn in_member_order(net: &Net) -> Vec<PeerId> {
    let mut ps: Vec<PeerId> = net.members.keys().copied().collect();
    ps.sort_by_key(|p| p.to_bytes());
    ps
}

fn all_agree(net: &Net, members: &[PeerId]) -> Sas {
    let first = net.emoji(&members[0]).expect("emoji agreed");
    for m in members {
        assert_eq!(net.emoji(m), Some(first), "{m} shows other emoji");
        assert_eq!(net.epoch(m), net.epoch(&members[0]));
    }
    first
}

#[test]
fn four_members_reach_the_same_emoji() {
    let net = Net::group(1, &[2, 3, 4]);
    let members: Vec<PeerId> = [1, 2, 3, 4].map(peer).to_vec();
    let sas = all_agree(&net, &members);
    assert_eq!(net.epoch(&members[0]), 3, "three joins, three epochs");
    for m in &members {
        assert_eq!(net.members[m].roster().unwrap().len(), 4);
        assert!(net.saw(m, |e| *e == GroupEvent::Emoji { epoch: 3, sas }));
    }
    // The same run again gives the same emoji: the harness is deterministic.
    assert_eq!(all_agree(&Net::group(1, &[2, 3, 4]), &members), sas);
}

#[test]
fn every_member_opens_every_other_members_frames_once() {
    let mut net = Net::group(1, &[2, 3, 4]);
    let members: Vec<PeerId> = [1, 2, 3, 4].map(peer).to_vec();
    for a in &members {
        let frame = net.member(a).seal(GroupMedia::Audio, a.to_bytes().as_slice()).unwrap();
        for b in members.iter().filter(|b| *b != a) {
            assert_eq!(net.member(b).open(a, &frame).unwrap().payload, a.to_bytes());
            assert_eq!(
                net.member(b).open(a, &frame),
                Err(FrameRefusal::Frame(GroupFrameError::Frame(hail::crypto::frame::FrameError::Replay)))
            );
        }
        // Member c delivering a's frame as its own (a replay of another member's frame) is refused.
        let c = members.iter().find(|c| *c != a).unwrap();
        let d = members.iter().find(|d| *d != a && *d != c).unwrap();
        assert!(matches!(net.member(d).open(c, &frame), Err(FrameRefusal::NotItsOwn { .. })));
        // So is the frame from someone outside the group.
        assert_eq!(net.member(d).open(&peer(99), &frame), Err(FrameRefusal::NotMember(peer(99))));
    }
}

#[test]
fn a_join_changes_every_emoji_and_the_newcomer_opens_nothing_from_before() {
    let mut net = Net::group(1, &[2, 3]);
    let three: Vec<PeerId> = [1, 2, 3].map(peer).to_vec();
    let before = all_agree(&net, &three);
    let old_epoch = net.epoch(&three[0]);
    let old_frame = net.member(&three[1]).seal(GroupMedia::Audio, b"before the join").unwrap();
    let in_flight = net.member(&three[1]).seal(GroupMedia::Audio, b"in flight").unwrap();
    let late = net.member(&three[1]).seal(GroupMedia::Audio, b"late").unwrap();

    net.invite(three[1], 4); // a member that does not sequence invites: it goes through the sequencer
    let four: Vec<PeerId> = [1, 2, 3, 4].map(peer).to_vec();
    let after = all_agree(&net, &four);
    assert_ne!(before, after);
    assert_eq!(net.epoch(&four[0]), old_epoch + 1);
    for m in &three {
        assert!(net.saw(m, |e| *e == GroupEvent::Joined(four[3])));
    }

    let newcomer = four[3];
    assert!(matches!(
        net.member(&newcomer).open(&three[1], &old_frame),
        Err(FrameRefusal::Frame(GroupFrameError::UnknownKey(_)))
    ));
    // Nor with every key it was ever sent.
    assert!(net.captured_keys(&newcomer).open(&old_frame).is_err());
    let new_frame = net.member(&three[1]).seal(GroupMedia::Audio, b"after the join").unwrap();
    assert_eq!(
        hail::crypto::sender_key::GroupFrameHeader::parse(&new_frame).unwrap().0.key_id.epoch(),
        old_epoch + 1,
        "the first frame after the commit is sealed under the new epoch's key"
    );
    assert_eq!(net.member(&newcomer).open(&three[1], &new_frame).unwrap().payload, b"after the join");
    // Frames of the old epoch still in flight open for the others until the grace is over.
    assert!(net.member(&three[0]).open(&three[1], &in_flight).is_ok());
    net.advance(GroupConfig::default().key_grace + Duration::from_millis(100));
    assert!(matches!(
        net.member(&three[0]).open(&three[1], &late),
        Err(FrameRefusal::Frame(GroupFrameError::UnknownKey(_)))
    ));
}

#[test]
fn a_leave_rotates_keys_and_the_departed_members_keys_open_nothing_new() {
    let mut net = Net::group(1, &[2, 3, 4]);
    let members = in_member_order(&net);
    let before = all_agree(&net, &members);
    // The first in member order leaves: it sequenced changes, so the next one must commit its leave.
    let departed = members[0];
    let stays = &members[1..];
    let old_frame = net.member(&stays[0]).seal(GroupMedia::Audio, b"old").unwrap();
    net.command(&departed, Command::Leave).unwrap();
    net.run();
    assert!(net.saw(&departed, |e| *e == GroupEvent::Ended(LeaveReason::Left)));
    assert!(net.member(&departed).seal(GroupMedia::Audio, b"x").is_err());
    let after = all_agree(&net, stays);
    assert_ne!(before, after);
    for m in stays {
        assert!(net.saw(m, |e| *e == GroupEvent::Left(departed, LeaveReason::Left)));
        assert_eq!(net.members[m].roster().unwrap().len(), 3);
    }
    let mut captured = net.captured_keys(&departed);
    assert!(captured.open(&old_frame).is_ok(), "the captured keys are real: they open the old epoch");
    for m in stays {
        let new_frame = net.member(m).seal(GroupMedia::Audio, b"new").unwrap();
        assert!(matches!(captured.open(&new_frame), Err(GroupFrameError::UnknownKey(_))));
        let other = stays.iter().find(|o| *o != m).unwrap();
        assert!(net.member(other).open(m, &new_frame).is_ok());
    }
}

/// A man in the middle of the pair {b, c}: he holds one handshake with b and another with c, so
/// each end holds a different hash for the pair; with `rewrite` he also rewrites what b and c tell
/// each other about their pair, so that neither notices from the other's report.
fn mitm_group(founder: u8, others: &[u8], b: PeerId, c: PeerId, rewrite: bool) -> Net {
    let mut net = Net::new();
    let (hb, hc) = ([0xb0; 32], [0xc0; 32]);
    net.mitm.insert((b, c), hb);
    net.mitm.insert((c, b), hc);
    if rewrite {
        net.rewrite = Some(Box::new(move |from, to, bytes| {
            let Ok(mut msg) = GroupControl::decode(&bytes) else { return bytes };
            if let ControlBody::SasCommit { commit, .. } = &mut msg.body {
                if (from, to) == (b, c) {
                    commit.transcripts.insert(c, hc);
                } else if (from, to) == (c, b) {
                    commit.transcripts.insert(b, hb);
                }
            }
            msg.encode()
        }));
    }
    let f = peer(founder);
    net.members.insert(f, GroupMember::start(CALL, f, GroupConfig::default(), rng(founder), net.now));
    for s in others {
        net.invite(f, *s);
    }
    net
}

/// Who told `who` (itself included) that b and c disagree in `epoch`.
fn told_of_pair(net: &Net, who: &PeerId, epoch: u64, b: PeerId, c: PeerId) -> BTreeSet<PeerId> {
    let events = net.events.get(who).map(Vec::as_slice).unwrap_or_default();
    let named = |e: &&GroupEvent| {
        matches!(e, GroupEvent::HandshakeDisputed { epoch: ep, dispute: PairDispute(x, y), .. }
            if *ep == epoch && BTreeSet::from([*x, *y]) == BTreeSet::from([b, c]))
    };
    let seen_by = |e: &GroupEvent| match e {
        GroupEvent::HandshakeDisputed { seen_by, .. } => *seen_by,
        _ => unreachable!(),
    };
    events.iter().filter(named).map(seen_by).collect()
}

/// Founder `1` and `others` call; a man in the middle of the pair {b, c} (with `rewrite`, he also
/// rewrites their reports of the pair to each other). Of the pair, the one later in member order
/// shows emoji that differ from every other member's, and every other member (the earlier end
/// included) shows the same emoji: reading them aloud, the group hears one odd set out. Every
/// member outside the pair sees the two reports differ and says so to everyone in its reveal, so
/// every member is told in words, b and c included (by themselves too unless he rewrites);
/// nobody's round fails.
fn check_mitm_sets_the_later_end_apart(others: &[u8], b: PeerId, c: PeerId, rewrite: bool) {
    let net = mitm_group(1, others, b, c, rewrite);
    let members = in_member_order(&net);
    let later = if members.iter().position(|m| *m == b) > members.iter().position(|m| *m == c) { b } else { c };
    let epoch = net.epoch(&members[0]);
    let odd = net.emoji(&later).expect("the later end shows emoji");
    let rest: Vec<PeerId> = members.iter().filter(|m| **m != later).copied().collect();
    let group = all_agree(&net, &rest);
    assert_ne!(odd, group, "{later}'s emoji stand out");
    let outside: BTreeSet<PeerId> = members.iter().filter(|m| **m != b && **m != c).copied().collect();
    for m in &members {
        assert!(!net.saw(m, |e| matches!(e, GroupEvent::EmojiFailed { .. })), "{m}'s round went on");
        let mut want = outside.clone();
        if !rewrite {
            want.extend([b, c]);
        }
        assert_eq!(told_of_pair(&net, m, epoch, b, c), want, "who told {m}");
    }
}

#[test]
fn a_man_in_the_middle_of_one_pair_sets_its_later_end_apart_in_a_group_of_three() {
    for (b, c) in [(1, 2), (1, 3), (2, 3)] {
        check_mitm_sets_the_later_end_apart(&[2, 3], peer(b), peer(c), true);
    }
}

#[test]
fn a_man_in_the_middle_of_one_pair_sets_its_later_end_apart_in_a_group_of_four() {
    for (b, c) in [(1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)] {
        for rewrite in [true, false] {
            check_mitm_sets_the_later_end_apart(&[2, 3, 4], peer(b), peer(c), rewrite);
        }
    }
}

#[test]
fn an_honest_group_disputes_nothing() {
    let honest = Net::group(1, &[2, 3, 4]);
    for m in [1, 2, 3, 4].map(peer) {
        assert!(!honest.saw(&m, |e| matches!(e, GroupEvent::HandshakeDisputed { .. })));
    }
}

/// With nobody else to check the pair, his two ends hash different pair hashes: their emoji differ.
#[test]
fn a_man_in_the_middle_of_a_group_of_two_changes_both_ends_emoji() {
    let (b, c) = (peer(2), peer(3));
    let net = mitm_group(2, &[3], b, c, true);
    let (eb, ec) = (net.emoji(&b).expect("b sees emoji"), net.emoji(&c).expect("c sees emoji"));
    assert_ne!(eb, ec, "b and c compare their emoji and see the difference");
    let honest = Net::group(2, &[3]);
    assert_eq!(honest.emoji(&b), honest.emoji(&c));
    assert!(honest.emoji(&b).is_some());
}

#[test]
fn a_silent_member_is_removed_after_the_timeout_and_keys_rotate() {
    let mut net = Net::group(1, &[2, 3, 4]);
    let members = in_member_order(&net);
    let before = all_agree(&net, &members);
    // The silent one is the first in member order: the one that would have sequenced the removal.
    let silent = members[0];
    let rest = &members[1..];
    net.silenced.insert(silent);
    let config = GroupConfig::default();
    net.advance(config.silence_timeout - Duration::from_secs(1));
    for m in rest {
        assert_eq!(net.members[m].roster().unwrap().len(), 4, "not removed before the timeout");
    }
    net.advance(Duration::from_secs(3));
    let after = all_agree(&net, rest);
    assert_ne!(before, after);
    for m in rest {
        assert_eq!(net.members[m].roster().unwrap().len(), 3);
        assert!(net.saw(m, |e| *e == GroupEvent::Left(silent, LeaveReason::Removed)));
    }
    let mut captured = net.captured_keys(&silent);
    let frame = net.member(&rest[0]).seal(GroupMedia::Audio, b"after").unwrap();
    assert!(matches!(captured.open(&frame), Err(GroupFrameError::UnknownKey(_))));
    assert!(net.member(&rest[1]).open(&rest[0], &frame).is_ok());
    // And the group stays: heartbeats keep everyone else in.
    net.advance(Duration::from_secs(30));
    for m in rest {
        assert_eq!(net.members[m].roster().unwrap().len(), 3);
    }
    let _ = net.start;
}

#[test]
fn a_join_flood_is_bounded() {
    let mut net = Net::group(1, &[2]);
    let (founder, other) = (peer(1), peer(2));
    let epoch = net.epoch(&founder);
    // A thousand join requests from strangers nobody invited: refused, no state, no answer.
    for i in 0..1000u32 {
        let stranger = Identity::from_seed(Sha256::digest(i.to_be_bytes()).into()).peer_id();
        let bytes = GroupControl { call_id: CALL, body: ControlBody::JoinRequest }.encode();
        assert!(net.handle(&founder, Input::Control { from: stranger, bytes }).is_err());
    }
    assert!(net.member(&founder).poll_output().is_none());
    assert_eq!(net.member(&founder).refused(), 1000);
    assert_eq!(net.epoch(&founder), epoch);
    // The flood did not use up anything an invited peer needs.
    net.invite(other, 3);
    assert_eq!(net.member(&founder).roster().unwrap().len(), 3);
}

/// A member proposing newcomers as fast as it can gets `join_requests` per window through, and
/// the group never grows past its size (the newcomers never show up: they are removed when silent).
#[test]
fn proposals_are_bounded_per_window() {
    let config = GroupConfig { join_requests: 2, ..GroupConfig::default() };
    let mut net = Net::group_with(config.clone(), 1, &[2, 3]);
    let sequencer = net.member(&peer(1)).roster().unwrap().sequencer(&[]).unwrap();
    let proposer = *net.members.keys().find(|p| **p != sequencer).unwrap();
    let mut next_phantom = 100u8;
    for window in 0..6 {
        let (epoch, len) = (net.epoch(&sequencer), net.member(&sequencer).roster().unwrap().len());
        for _ in 0..20 {
            let body = ControlBody::Propose { epoch, newcomer: peer(next_phantom) };
            next_phantom += 1;
            let bytes = GroupControl { call_id: CALL, body }.encode();
            let _ = net.handle(&sequencer, Input::Control { from: proposer, bytes });
        }
        net.run();
        let grown = net.member(&sequencer).roster().unwrap().len() - len;
        assert!(grown <= config.join_requests, "window {window}: {grown} joined");
        if window == 0 {
            // The bound is a budget, not a wall: the first window lets newcomers in.
            assert!(grown >= 1, "window 0 admits someone");
        }
        assert!(net.member(&sequencer).roster().unwrap().len() <= config.max_members);
        net.advance(config.join_window);
    }
    assert!(net.member(&sequencer).refused() >= 6 * 18, "the rest were refused");
}

#[test]
fn garbage_never_panics_and_changes_nothing() {
    let mut net = Net::group(1, &[2, 3]);
    let members = in_member_order(&net);
    let sas = all_agree(&net, &members);
    let mut messages: Vec<Vec<u8>> = net.delivered.values().flatten().map(|(_, b)| b.clone()).collect();
    messages.sort();
    messages.dedup();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut junk = Vec::new();
    for _ in 0..2000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % 200) as usize;
        junk.push((0..len).map(|i| (state >> (i % 8 * 8)) as u8 ^ i as u8).collect::<Vec<u8>>());
    }
    for m in &messages {
        for cut in 0..m.len() {
            junk.push(m[..cut].to_vec());
        }
        for i in 0..m.len() {
            let mut flipped = m.clone();
            flipped[i] ^= 0x40;
            junk.push(flipped);
        }
    }
    let target = members[1];
    for bytes in junk {
        for from in [members[0], peer(99)] {
            let _ = net.handle(&target, Input::Control { from, bytes: bytes.clone() });
            let _ = net.member(&target).open(&from, &bytes);
        }
    }
    net.run();
    assert_eq!(net.emoji(&target), Some(sas), "garbage leaves the agreed emoji as they were");
    assert_eq!(net.member(&target).roster().unwrap().len(), 3);
    let _ = SenderIndex(0);
}

/// Only the sequencer of a change may commit it, and it may not move or reuse sender indices.
#[test]
fn a_commit_from_anyone_but_the_sequencer_changes_nothing() {
    let mut net = Net::group(1, &[2, 3, 4]);
    let members = in_member_order(&net);
    let sas = all_agree(&net, &members);
    let roster = net.member(&members[0]).roster().unwrap().clone();
    let (sequencer, rogue, victim, target) = (members[0], members[1], members[3], members[2]);
    assert_eq!(roster.sequencer(&[]), Some(sequencer));
    let commit = |from_roster: &hail::group::roster::Roster| ControlBody::Commit {
        epoch: from_roster.epoch(),
        next_index: from_roster.next_index(),
        members: from_roster.entries().to_vec(),
        topology: Topology::Mesh,
    };
    let send = |net: &mut Net, from: PeerId, body: ControlBody| {
        let bytes = GroupControl { call_id: CALL, body }.encode();
        net.handle(&target, Input::Control { from, bytes })
    };
    // The second member removing the fourth: the first stays, so only it may commit that.
    let without_victim = roster.next(&[victim], &[]).unwrap();
    assert!(matches!(send(&mut net, rogue, commit(&without_victim)), Err(hail::group::GroupError::BadCommit(_))));
    // The sequencer itself, but moving a member to another index.
    let mut entries = roster.entries().to_vec();
    let (a, b) = (entries[1].index, entries[2].index);
    entries[1].index = b;
    entries[2].index = a;
    let swapped = ControlBody::Commit {
        epoch: roster.epoch() + 1,
        next_index: roster.next_index(),
        members: entries,
        topology: Topology::Mesh,
    };
    assert!(matches!(send(&mut net, sequencer, swapped), Err(hail::group::GroupError::BadCommit(_))));
    // Or skipping an epoch, or replaying the current one.
    let mut far = commit(&without_victim);
    if let ControlBody::Commit { epoch, .. } = &mut far {
        *epoch += 1;
    }
    assert!(send(&mut net, sequencer, far).is_err());
    assert!(send(&mut net, sequencer, commit(&roster)).is_err());
    assert_eq!(net.member(&target).roster(), Some(&roster));
    assert_eq!(net.emoji(&target), Some(sas));
    // The real sequencer's commit is taken.
    assert!(send(&mut net, sequencer, commit(&without_victim)).is_ok());
    assert_eq!(net.member(&target).roster().unwrap().len(), 3);
}

#[test]
fn the_group_stops_at_eight() {
    let mut net = Net::group(1, &[2, 3, 4, 5, 6, 7, 8]);
    let members = in_member_order(&net);
    all_agree(&net, &members);
    assert_eq!(members.len(), 8);
    for m in &members {
        assert_eq!(net.command(m, Command::Invite(peer(9))), Err(hail::group::GroupError::Full(8)));
    }
}

/// An invitee whose join request is never answered gives up when the invitation would have expired.
#[test]
fn an_invitee_nobody_lets_in_gives_up() {
    let mut net = Net::group(1, &[2]);
    net.command(&peer(1), Command::Invite(peer(3))).unwrap();
    net.run();
    let (from, _, invite) = net.invitations.pop().expect("the invitation");
    let config = GroupConfig::default();
    let mut invitee = GroupMember::accept_invite(peer(3), from, &invite, config.clone(), rng(3), net.now).unwrap();
    assert!(invitee.seal(GroupMedia::Audio, b"x").is_err(), "no key before a commit lets it in");
    // It asks again every heartbeat while it waits, and gives up at the invitation's end.
    assert_eq!(invitee.poll_timeout(), Some(net.now + config.heartbeat));
    let give_up = net.now + config.invite_lifetime;
    invitee.handle_timeout(net.now + config.heartbeat);
    let asked_again = std::iter::from_fn(|| invitee.poll_output()).any(|o| match o {
        Output::Send { to, bytes } => {
            to == from && GroupControl::decode(&bytes).is_ok_and(|m| matches!(m.body, ControlBody::JoinRequest))
        }
        Output::Event(_) => false,
    });
    assert!(asked_again, "a second join request to the inviter");
    invitee.handle_timeout(give_up - Duration::from_millis(1));
    let ended = |m: &mut GroupMember| {
        std::iter::from_fn(|| m.poll_output())
            .any(|o| matches!(o, Output::Event(GroupEvent::Ended(LeaveReason::NotAdmitted))))
    };
    assert!(!ended(&mut invitee));
    invitee.handle_timeout(give_up);
    assert!(ended(&mut invitee));
    assert_eq!(invitee.poll_timeout(), None);
}

/// Epochs are numbers off the wire: past the last one keys exist for (2^56 - 1) an invite, a
/// commit or any message is refused, and nothing wraps or panics (it used to overflow on
/// `epoch + 1` with epoch u64::MAX in a joining member).
#[test]
fn epochs_past_the_last_key_are_refused_not_wrapped() {
    use hail::crypto::sender_key::MAX_EPOCH;
    let start = Instant::now();
    let members = |peers: &[u8]| {
        peers
            .iter()
            .enumerate()
            .map(|(i, p)| RosterEntry { index: SenderIndex(i as u8), peer: peer(*p) })
            .collect::<Vec<_>>()
    };
    let invite = |epoch| GroupControl { call_id: CALL, body: ControlBody::Invite { epoch, members: members(&[1]) } };
    for epoch in [MAX_EPOCH, u64::MAX] {
        let refused =
            GroupMember::accept_invite(peer(2), peer(1), &invite(epoch), GroupConfig::default(), rng(2), start);
        assert!(refused.is_err(), "an invite at epoch {epoch} is refused");
    }
    let mut joining =
        GroupMember::accept_invite(peer(2), peer(1), &invite(3), GroupConfig::default(), rng(2), start).unwrap();
    for epoch in [MAX_EPOCH + 1, u64::MAX] {
        let commit = GroupControl {
            call_id: CALL,
            body: ControlBody::Commit { epoch, next_index: 2, members: members(&[1, 2]), topology: Topology::Mesh },
        };
        assert!(joining.handle(Input::Control { from: peer(1), bytes: commit.encode() }, start).is_err());
        let heartbeat = GroupControl { call_id: CALL, body: ControlBody::Heartbeat { epoch } };
        assert!(joining.handle(Input::Control { from: peer(1), bytes: heartbeat.encode() }, start).is_err());
        joining.handle_timeout(start + Duration::from_secs(1));
    }
    assert!(joining.roster().is_none(), "still waiting to be admitted");
}

/// Two invited at once (`hail call b c`): `b` joins first, and when `b` sequences the next change
/// (it sorts before the founder) the commit that lets `c` in comes from a member `c`'s invitation
/// did not name. The founder's newer invitation (the node sends one on every new epoch to an
/// invitee still waiting) names it, so `c` takes the commit; without it `c` refuses the commit.
#[test]
fn an_invitee_the_group_moved_past_is_let_in_by_a_sequencer_its_first_invitation_did_not_name() {
    for renew in [true, false] {
        // A founder that sorts after the first joiner, so the joiner sequences the next change.
        let founder = (1..=40u8).find(|s| peer(*s).to_bytes() > peer(41).to_bytes()).unwrap();
        let (f, b, c) = (peer(founder), peer(41), peer(42));
        let mut net = Net::new();
        net.members.insert(f, GroupMember::start(CALL, f, net.config.clone(), rng(founder), net.now));
        net.command(&f, Command::Invite(b)).unwrap();
        net.command(&f, Command::Invite(c)).unwrap();
        net.run();
        let take = |net: &mut Net, who: PeerId, epoch: u64| {
            let i = net
                .invitations
                .iter()
                .position(|(_, to, m)| *to == who && matches!(m.body, ControlBody::Invite { epoch: e, .. } if e == epoch))
                .expect("the invitation");
            net.invitations.remove(i)
        };
        let (from, _, invite) = take(&mut net, b, 0);
        let joining = GroupMember::accept_invite(b, from, &invite, net.config.clone(), rng(41), net.now).unwrap();
        net.members.insert(b, joining);
        net.run();
        assert_eq!(net.epoch(&b), 1, "b is in");
        let (from, _, invite) = take(&mut net, c, 0);
        let joining = GroupMember::accept_invite(c, from, &invite, net.config.clone(), rng(42), net.now).unwrap();
        if renew {
            net.command(&f, Command::Invite(c)).unwrap();
            net.run();
            let (from, to, newer) = take(&mut net, c, 1);
            // It travels on the founder's leg, ahead of the commit that follows c's join request.
            net.queue.push_back((from, to, newer.encode()));
        }
        net.members.insert(c, joining);
        net.run();
        assert_eq!(net.members[&c].roster().is_some(), renew, "renew={renew}: c in the call");
        if renew {
            // The founder paired with `c` before epoch 1, which dropped that pairing (`c` was not
            // in it); the node feeds every live leg's pairing again at each new epoch: here, the
            // next message on each pair does.
            net.paired.clear();
            net.advance(Duration::from_secs(3));
            all_agree(&net, &[f, b, c]);
            assert_eq!(net.epoch(&c), 2);
        }
    }
}

/// Two joins in a row reach a member out of order, as they can between daemons: each member's
/// key and emoji commitment for the latest epoch travel on its own leg, the sequencer's commits
/// on another, so they arrive first, two epochs ahead of the member. They wait for their commit:
/// the member opens everyone's frames and the group agrees on its emoji.
#[test]
fn messages_two_epochs_ahead_wait_for_their_commit() {
    let mut net = Net::group(1, &[2, 3]);
    let order = in_member_order(&net);
    // The one that neither sequences (the first in member order) nor invites.
    let late = *order.iter().find(|p| **p != order[0] && **p != peer(1)).unwrap();
    let before = net.epoch(&late);
    net.holding.insert(late);
    net.invite(peer(1), 4);
    net.invite(peer(1), 5);
    net.holding.clear();
    let held = std::mem::take(&mut net.held);
    assert!(net.epoch(&peer(4)) == before + 2, "two joins went on without {late}");
    // Everything but the commits first, then the commits, each kind in its order.
    let commit = |b: &Vec<u8>| matches!(GroupControl::decode(b).map(|m| m.body), Ok(ControlBody::Commit { .. }));
    let (commits, rest): (Vec<_>, Vec<_>) = held.into_iter().partition(|(_, _, b)| commit(b));
    assert!(rest.iter().any(|(_, _, b)| {
        matches!(GroupControl::decode(b).map(|m| m.body), Ok(ControlBody::SenderKey { epoch, .. }) if epoch == before + 2)
    }));
    net.queue.extend(rest);
    net.queue.extend(commits);
    net.run();
    let everyone: Vec<PeerId> = [1, 2, 3, 4, 5].map(peer).to_vec();
    assert_eq!(net.epoch(&late), before + 2);
    // The node feeds every live leg's pairing again at each epoch; here the next message on each
    // pair does (heartbeats).
    net.paired.clear();
    net.advance(Duration::from_secs(3));
    all_agree(&net, &everyone);
    for a in everyone.iter().filter(|a| **a != late) {
        let frame = net.member(a).seal(GroupMedia::Audio, b"after both joins").unwrap();
        assert_eq!(net.member(&late).open(a, &frame).unwrap().payload, b"after both joins", "{late} opens {a}");
    }
}

/// The founder calls several at once and they all answer together: their join requests reach it
/// in one go. Once the first newcomer is in, the sequencer may be that newcomer (the first in
/// member order), so the founder passes the others' requests on as proposals, which can cross
/// the sequencer's next commit. Every invitee still gets in, at one epoch everyone agrees on,
/// whoever sequences (each founder and set of invitees below puts the sequencer elsewhere).
#[test]
fn a_founder_calling_several_at_once_gets_them_all_in_whoever_sequences() {
    for founder in 1..=8u8 {
        let others: Vec<u8> = (1..=8u8).filter(|s| *s != founder).take(5).collect();
        let mut net = Net::new();
        let f = peer(founder);
        net.members.insert(f, GroupMember::start(CALL, f, net.config.clone(), rng(founder), net.now));
        for s in &others {
            net.command(&f, Command::Invite(peer(*s))).unwrap();
        }
        net.run();
        // Everyone answers before any join request is handled.
        for (from, to, invite) in std::mem::take(&mut net.invitations) {
            let seed = others.iter().copied().find(|s| peer(*s) == to).unwrap();
            let joining = GroupMember::accept_invite(to, from, &invite, net.config.clone(), rng(seed), net.now).unwrap();
            net.members.insert(to, joining);
        }
        net.run();
        let everyone = in_member_order(&net);
        assert_eq!(everyone.len(), 6);
        for m in &everyone {
            let roster = net.members[m].roster().unwrap_or_else(|| panic!("founder {founder}: {m} is still joining"));
            assert_eq!(roster.len(), 6, "founder {founder}: {m} sees {} members", roster.len());
        }
        all_agree(&net, &everyone);
        assert!(everyone.iter().all(|m| !net.saw(m, |e| matches!(e, GroupEvent::EmojiFailed { .. }))));
    }
}

/// A join request refused for the inviter's budget is not the end: the invitee asks again every
/// heartbeat while it waits, and is let in once the budget's window has passed; repeats of a
/// request already taken change nothing.
#[test]
fn a_join_request_refused_for_the_budget_is_taken_when_the_invitee_asks_again() {
    let config = GroupConfig { join_requests: 1, ..GroupConfig::default() };
    let mut net = Net { config: config.clone(), ..Net::new() };
    let f = peer(1);
    net.members.insert(f, GroupMember::start(CALL, f, config.clone(), rng(1), net.now));
    for s in [2, 3] {
        net.command(&f, Command::Invite(peer(s))).unwrap();
    }
    net.run();
    for (from, to, invite) in std::mem::take(&mut net.invitations) {
        let seed = if to == peer(2) { 2 } else { 3 };
        net.members.insert(to, GroupMember::accept_invite(to, from, &invite, config.clone(), rng(seed), net.now).unwrap());
    }
    net.run();
    let waiting: Vec<PeerId> = [2, 3].map(peer).into_iter().filter(|p| net.members[p].roster().is_none()).collect();
    assert_eq!(waiting.len(), 1, "one of the two requests is over the budget of 1");
    assert_eq!(net.members[&f].roster().unwrap().len(), 2);
    // Within the window the repeats are refused again; after it, one is taken.
    net.advance(config.join_window / 2);
    assert!(net.members[&waiting[0]].roster().is_none());
    net.advance(config.join_window);
    let everyone = in_member_order(&net);
    for m in &everyone {
        assert_eq!(net.members[m].roster().map(|r| r.len()), Some(3), "{m}");
    }
    all_agree(&net, &everyone);
    // Its repeats after it is in are taken as nothing: no new epoch.
    let epoch = net.epoch(&f);
    net.advance(Duration::from_secs(5));
    assert_eq!(net.epoch(&f), epoch);
}

/// A member that falls behind while six more are let in one after the other (a whole group called
/// at once, seven epochs) gets the others' keys and emoji commitments for the latest epoch before
/// the commits that take it there (its leg to the sequencer is slow, the others' are not): it
/// keeps them, reaches the latest epoch, and everyone agrees on its emoji.
#[test]
fn a_member_six_epochs_behind_keeps_what_comes_early_and_catches_up() {
    let mut net = Net::new();
    let mut seeds: Vec<u8> = (1..=8).collect();
    seeds.sort_by_key(|s| peer(*s).to_bytes());
    // The first in member order founds (and sequences throughout); the second joins, then lags.
    let (founder, behind) = (peer(seeds[0]), peer(seeds[1]));
    net.members.insert(founder, GroupMember::start(CALL, founder, net.config.clone(), rng(seeds[0]), net.now));
    net.invite(founder, seeds[1]);
    net.holding.insert(behind);
    for s in &seeds[2..] {
        net.invite(founder, *s);
    }
    let others: Vec<PeerId> = seeds.iter().map(|s| peer(*s)).filter(|p| *p != behind).collect();
    assert!(others.iter().all(|p| net.epoch(p) == 7), "the others are at epoch 7");
    assert_eq!(net.epoch(&behind), 1);
    // Released: everything but the commits first (they come on the slow leg, last).
    net.holding.remove(&behind);
    let held = std::mem::take(&mut net.held);
    let is_commit = |b: &Vec<u8>| GroupControl::decode(b).is_ok_and(|m| matches!(m.body, ControlBody::Commit { .. }));
    let (commits, rest): (Vec<_>, Vec<_>) = held.into_iter().partition(|(_, _, b)| is_commit(b));
    net.queue.extend(rest);
    net.queue.extend(commits);
    net.run();
    let everyone = in_member_order(&net);
    assert_eq!(net.epoch(&behind), 7);
    all_agree(&net, &everyone);
    assert!(everyone.iter().all(|m| !net.saw(m, |e| matches!(e, GroupEvent::EmojiFailed { .. }))));
}
