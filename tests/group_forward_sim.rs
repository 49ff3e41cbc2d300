//! Forwarding in a group call (an SFU-in-a-peer) on the deterministic in-memory network of
//! `common/group_net.rs`: the sequencer commits the topology with the epoch, every member agrees on
//! it, the forwarder forwards sealed frames it cannot be made to relabel, and when it goes the call
//! falls back to a mesh and the next commit chooses again.

#[path = "common/group_net.rs"]
mod group_net;

use std::collections::BTreeMap;
use std::time::Duration;

use group_net::{Net, peer};
use hail::crypto::sender_key::{GroupFrameHeader, GroupMedia, KeyId, SenderKey};
use hail::group::control::{ControlBody, GroupControl};
use hail::group::keys::FrameRefusal;
use hail::group::topology::{Topology, TopologyMode};
use hail::group::{Command, GroupConfig, GroupEvent, LeaveReason};
use hail::media::group_call::{ForwardFilter, ForwardRefusal};
use libp2p_identity::PeerId;

fn config(topology: TopologyMode) -> GroupConfig {
    GroupConfig { topology, ..GroupConfig::default() }
}

fn in_member_order(net: &Net) -> Vec<PeerId> {
    let mut ps: Vec<PeerId> = net.members.keys().copied().collect();
    ps.sort_by_key(|p| p.to_bytes());
    ps
}

/// The forwarder every member in `members` sees now (they must agree).
fn agreed_forwarder(net: &Net, members: &[PeerId]) -> Option<PeerId> {
    let first = net.members[&members[0]].forwarder(net.now);
    for m in members {
        assert_eq!(net.members[m].forwarder(net.now), first, "{m} sees another topology");
        assert_eq!(net.members[m].topology(net.now), net.members[&members[0]].topology(net.now));
    }
    first
}

#[test]
fn forced_forwarding_delivers_every_senders_frames_to_every_member_once() {
    let mut net = Net::group_with(config(TopologyMode::Forward), 1, &[2, 3, 4]);
    let members = in_member_order(&net);
    let forwarder = agreed_forwarder(&net, &members).expect("a forwarder");
    // No uplink measured: the first in member order.
    assert_eq!(forwarder, members[0]);
    assert!(
        net.saw(
            &members[1],
            |e| matches!(e, GroupEvent::TopologyChanged { forwarder: Some(f), .. } if *f == forwarder)
        )
    );
    let index = |net: &Net, p: &PeerId| net.members[&forwarder].roster().unwrap().index_of(p).unwrap();
    let mut filter = ForwardFilter::default();
    // What each member opened, by sender index.
    let mut heard: BTreeMap<PeerId, Vec<u8>> = BTreeMap::new();
    for round in 0..3u8 {
        for sender in &members {
            let frame = net.member(sender).seal(GroupMedia::Audio, &[round]).unwrap();
            if *sender == forwarder {
                // The forwarder's own frames go to everyone directly.
                for to in members.iter().filter(|m| *m != sender) {
                    net.member(to).open(sender, &frame).unwrap();
                    heard.entry(*to).or_default().push(index(&net, sender).0);
                }
                continue;
            }
            // Others send theirs to the forwarder only: it opens it as a member, and forwards it
            // unchanged (a second copy that reaches it, a duplicate, is not forwarded again).
            assert_eq!(net.member(&forwarder).open(sender, &frame).unwrap().payload, vec![round]);
            heard.entry(forwarder).or_default().push(index(&net, sender).0);
            filter.check(index(&net, sender), &frame).unwrap();
            assert_eq!(filter.check(index(&net, sender), &frame), Err(ForwardRefusal::Duplicate));
            for to in members.iter().filter(|m| *m != sender && **m != forwarder) {
                let opened = net.member(to).open(&forwarder, &frame).unwrap();
                assert_eq!(opened.header.key_id.sender(), index(&net, sender));
                assert_eq!(opened.payload, vec![round]);
                heard.entry(*to).or_default().push(index(&net, sender).0);
            }
        }
    }
    for m in &members {
        let mut got = heard[m].clone();
        got.sort();
        let mut want: Vec<u8> = members.iter().filter(|s| *s != m).flat_map(|s| [index(&net, s).0; 3]).collect();
        want.sort();
        assert_eq!(got, want, "{m} hears every other member three times, once each");
    }
}

#[test]
fn the_forwarder_cannot_be_used_to_forge_another_members_sender_index() {
    let mut net = Net::group_with(config(TopologyMode::Forward), 1, &[2, 3, 4]);
    let members = in_member_order(&net);
    let forwarder = agreed_forwarder(&net, &members).unwrap();
    let (c, d) = (members[1], members[2]);
    let roster = net.members[&forwarder].roster().unwrap().clone();
    let (ci, di) = (roster.index_of(&c).unwrap(), roster.index_of(&d).unwrap());
    // Member c holds d's key (every member holds every key) and seals a frame as d.
    let d_key = net.delivered[&c]
        .iter()
        .find_map(|(from, bytes)| match GroupControl::decode(bytes).ok()?.body {
            ControlBody::SenderKey { epoch, sender, base_key } if *from == d && epoch == roster.epoch() => {
                Some(SenderKey::new(KeyId::new(epoch, sender).unwrap(), &base_key))
            }
            _ => None,
        })
        .expect("c was sent d's key");
    let mut d_key = d_key;
    let forged = d_key.seal(GroupMedia::Audio, b"d never said this");
    assert_eq!(GroupFrameHeader::parse(&forged).unwrap().0.key_id.sender(), di);
    // On c's link to the forwarder: dropped unforwarded, and the forwarder does not open it.
    let mut filter = ForwardFilter::default();
    assert_eq!(filter.check(ci, &forged), Err(ForwardRefusal::NotItsOwn { got: di.0, link: ci.0 }));
    assert!(matches!(net.member(&forwarder).open(&c, &forged), Err(FrameRefusal::NotItsOwn { .. })));
    // Sent by c straight to another member (not the forwarder): refused there too.
    let other = members[3];
    assert!(matches!(net.member(&other).open(&c, &forged), Err(FrameRefusal::NotItsOwn { .. })));
    // d's own frame, replayed by c on its link, is not forwarded either.
    let genuine = net.member(&d).seal(GroupMedia::Audio, b"d").unwrap();
    assert!(matches!(filter.check(ci, &genuine), Err(ForwardRefusal::NotItsOwn { .. })));
    assert!(filter.check(di, &genuine).is_ok());
    // A frame under the receiver's own index, from the forwarder's link, is refused (ours never
    // comes back).
    let mine = net.member(&other).seal(GroupMedia::Audio, b"me").unwrap();
    assert!(net.member(&d).open(&forwarder, &mine).is_ok());
    assert!(matches!(net.member(&other).open(&forwarder, &mine), Err(FrameRefusal::NotItsOwn { .. })));
    // A member who is not the forwarder cannot deliver others' frames at all.
    let cs = net.member(&c).seal(GroupMedia::Audio, b"c").unwrap();
    assert!(matches!(net.member(&other).open(&d, &cs), Err(FrameRefusal::NotItsOwn { .. })));
}

#[test]
fn a_forwarder_that_leaves_falls_back_to_a_mesh_then_the_next_commit_chooses_another() {
    let mut net = Net::group_with(config(TopologyMode::Forward), 1, &[2, 3, 4]);
    let members = in_member_order(&net);
    let forwarder = agreed_forwarder(&net, &members).unwrap();
    let stays: Vec<PeerId> = members.iter().copied().filter(|m| *m != forwarder).collect();
    net.command(&forwarder, Command::Leave).unwrap();
    net.run();
    assert!(net.saw(&forwarder, |e| *e == GroupEvent::Ended(LeaveReason::Left)));
    // The next sequencer (the first that stays) commits the leave at once, choosing again; every
    // other member fell back to the mesh the moment it heard the leave, until that commit came.
    for m in &stays[1..] {
        let events = &net.events[m];
        let changes: Vec<&GroupEvent> =
            events.iter().filter(|e| matches!(e, GroupEvent::TopologyChanged { .. })).collect();
        let n = changes.len();
        assert!(n >= 2, "{changes:?}");
        assert!(matches!(changes[n - 2], GroupEvent::TopologyChanged { topology: Topology::Mesh, forwarder: None }));
        assert!(matches!(changes[n - 1], GroupEvent::TopologyChanged { forwarder: Some(f), .. } if *f == stays[0]));
    }
    let next = agreed_forwarder(&net, &stays).expect("three members: forwarding again");
    assert_ne!(next, forwarder);
    assert_eq!(next, stays[0]);
}

#[test]
fn a_silent_forwarder_is_a_mesh_once_silent_and_replaced_at_its_removal() {
    let mut net = Net::group_with(config(TopologyMode::Forward), 1, &[2, 3, 4, 5]);
    let members = in_member_order(&net);
    let forwarder = agreed_forwarder(&net, &members).unwrap();
    let stays: Vec<PeerId> = members.iter().copied().filter(|m| *m != forwarder).collect();
    net.silenced.insert(forwarder);
    net.advance(Duration::from_secs(5));
    assert_eq!(agreed_forwarder(&net, &stays), Some(forwarder), "not silent yet");
    net.advance(Duration::from_secs(8));
    for m in &stays {
        assert_eq!(net.members[m].roster().unwrap().len(), 4, "{m}: the forwarder was removed");
        assert!(net.saw(m, |e| *e == GroupEvent::Left(forwarder, LeaveReason::Removed)));
    }
    assert_eq!(agreed_forwarder(&net, &stays), Some(stays[0]));
}

#[test]
fn auto_chooses_the_best_reported_uplink_when_one_member_cannot_carry_the_mesh() {
    let mut net = Net::group_with(config(TopologyMode::Auto), 1, &[2, 3]);
    let members = in_member_order(&net);
    assert_eq!(agreed_forwarder(&net, &members), None, "three unmeasured members: a mesh");
    // Member 2 reports a thin uplink (less than the two streams a mesh of three asks); member 3
    // an ample one.
    let uplinks = [(members[0], 300), (members[1], 100), (members[2], 5000)];
    for (m, kbps) in uplinks {
        net.member(&m).set_uplink(Some(kbps));
    }
    net.advance(Duration::from_secs(3));
    for m in &members {
        let seen = net.members[m].uplinks();
        for (p, kbps) in uplinks {
            assert_eq!(seen.get(&p), Some(&kbps), "{m} knows {p}'s uplink");
        }
    }
    // The topology changes with the next commit (a join): four members, one whose uplink cannot
    // carry a mesh's three streams: the best uplink forwards.
    net.invite(members[0], 4);
    let all = in_member_order(&net);
    assert_eq!(agreed_forwarder(&net, &all), Some(members[2]));
}

#[test]
fn mesh_mode_never_forwards() {
    let mut net = Net::group_with(config(TopologyMode::Mesh), 1, &[2, 3, 4, 5]);
    for m in in_member_order(&net) {
        net.member(&m).set_uplink(Some(10));
    }
    net.advance(Duration::from_secs(3));
    net.invite(peer(1), 6);
    let all = in_member_order(&net);
    assert_eq!(agreed_forwarder(&net, &all), None);
}

/// Uplink reports come with every heartbeat: one of an epoch the receiver has not reached is
/// dropped, not kept, so a newcomer's reports cannot crowd its key and emoji messages out of the
/// room kept for early messages.
#[test]
fn uplink_reports_of_a_later_epoch_are_not_kept() {
    let mut net = Net::group_with(config(TopologyMode::Auto), 1, &[2, 3]);
    let members = in_member_order(&net);
    let epoch = net.epoch(&members[0]);
    let later = GroupControl { call_id: group_net::CALL, body: ControlBody::Uplink { epoch: epoch + 1, kbps: 9 } };
    for _ in 0..10 {
        net.handle(&members[0], hail::group::Input::Control { from: members[1], bytes: later.encode() }).unwrap();
    }
    // A key of that epoch from the same member still finds room (three per sender and epoch).
    let key = GroupControl {
        call_id: group_net::CALL,
        body: ControlBody::SenderKey {
            epoch: epoch + 1,
            sender: hail::crypto::sender_key::SenderIndex(1),
            base_key: hail::crypto::sender_key::SenderBaseKey::from_bytes([5; 32]),
        },
    };
    assert!(net.handle(&members[0], hail::group::Input::Control { from: members[1], bytes: key.encode() }).is_ok());
    assert!(!net.members[&members[0]].uplinks().contains_key(&members[1]), "nothing was taken from the future");
}

/// In `auto`, the uplinks members report move the topology within an epoch once they have asked
/// for another for `topology_settle` (10 s): the sequencer tells everyone (0x0B), and the epoch,
/// keys and emoji stay. A dip shorter than that changes nothing; when the thin uplink recovers,
/// the call goes back to a mesh the same way. A topology change from a member that does not
/// sequence is refused.
#[test]
fn reported_uplinks_move_the_topology_within_the_epoch_once_they_have_asked_long_enough() {
    let mut net = Net::group_with(config(TopologyMode::Auto), 1, &[2, 3]);
    let members = in_member_order(&net);
    let (epoch, emoji) = (net.epoch(&members[0]), net.emoji(&members[0]));
    assert!(emoji.is_some());
    let set = |net: &mut Net, thin: u32| {
        for (m, kbps) in [(members[0], 300), (members[1], thin), (members[2], 5000)] {
            net.member(&m).set_uplink(Some(kbps));
        }
    };
    // Member 1 thin (100 kbit/s: less than the 2 × 64 a mesh of three asks of it) for 6 s, then
    // fine again: the routes stay.
    set(&mut net, 100);
    net.advance(Duration::from_secs(6));
    assert_eq!(agreed_forwarder(&net, &members), None, "a dip shorter than the settle time");
    set(&mut net, 300);
    net.advance(Duration::from_secs(12));
    assert_eq!(agreed_forwarder(&net, &members), None);

    // Thin for longer: the best uplink (member 2) forwards, in the same epoch, with the same emoji.
    set(&mut net, 100);
    net.advance(Duration::from_secs(14));
    assert_eq!(agreed_forwarder(&net, &members), Some(members[2]));
    for m in &members {
        assert_eq!(net.epoch(m), epoch, "no new epoch at {m}");
        assert_eq!(net.emoji(m), emoji, "the same emoji at {m}");
    }
    assert!(net.saw(&members[1], |e| matches!(e, GroupEvent::TopologyChanged { forwarder: Some(f), .. } if *f == members[2])));

    // A member that does not sequence cannot move it.
    let forged = GroupControl { call_id: group_net::CALL, body: ControlBody::Topology { epoch, topology: Topology::Mesh } };
    assert!(net.handle(&members[2], hail::group::Input::Control { from: members[1], bytes: forged.encode() }).is_err());
    assert_eq!(net.members[&members[2]].forwarder(net.now), Some(members[2]));

    // Member 1 recovers: back to a mesh after the settle time.
    set(&mut net, 300);
    net.advance(Duration::from_secs(14));
    assert_eq!(agreed_forwarder(&net, &members), None);
    assert_eq!(net.epoch(&members[0]), epoch);
}
