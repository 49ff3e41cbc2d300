//! Group control messages (`src/group/control.rs`, `protocols/group-control-v1.md`): what a member
//! reads from another member's pairwise channel, and what the member's state machine does with it.
//!
//! The input is the message as received. Checks: a message that decodes encodes back to exactly its
//! bytes (one encoding per message); a two-member group (seeds 01..01 and 02..02) fed the input
//! from its other member and from a stranger never panics, and a stranger never changes its roster.
#![no_main]

use std::time::{Duration, Instant};

use hail::group::control::GroupControl;
use hail::group::{Command, GroupConfig, GroupMember, Input, Output};
use hail::identity::Identity;
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use rand::rngs::StdRng;

const CALL: [u8; 16] = [0x13; 16];

/// Founder `a` invites `b`, who accepts; every message is delivered until none is left.
fn two_members(now: Instant) -> (GroupMember, GroupMember) {
    let (a, b) = (Identity::from_seed([1; 32]).peer_id(), Identity::from_seed([2; 32]).peer_id());
    let mut first = GroupMember::start(CALL, a, GroupConfig::default(), StdRng::seed_from_u64(1), now);
    first.command(Command::Invite(b), now).expect("room for one");
    let invite = sent(&mut first).pop().expect("the invite");
    let invite = GroupControl::decode(&invite).expect("an invite");
    let mut second = GroupMember::accept_invite(b, a, &invite, GroupConfig::default(), StdRng::seed_from_u64(2), now)
        .expect("valid");
    for (m, other) in [(&mut first, b), (&mut second, a)] {
        m.handle(Input::Paired { peer: other, handshake_hash: [7; 32] }, now).expect("paired");
    }
    loop {
        let (to_second, to_first) = (sent(&mut first), sent(&mut second));
        if to_second.is_empty() && to_first.is_empty() {
            return (first, second);
        }
        for bytes in to_second {
            let _ = second.handle(Input::Control { from: a, bytes }, now);
        }
        for bytes in to_first {
            let _ = first.handle(Input::Control { from: b, bytes }, now);
        }
    }
}

/// What `member` sends (there is one other member).
fn sent(member: &mut GroupMember) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| member.poll_output())
        .filter_map(|out| match out {
            Output::Send { bytes, .. } => Some(bytes),
            Output::Event(_) => None,
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = GroupControl::decode(data) {
        assert_eq!(message.encode(), data);
    }
    let now = Instant::now();
    let (first, mut second) = two_members(now);
    let a = first.me();
    assert!(second.emoji().is_some() && second.emoji() == first.emoji());
    let roster = second.roster().cloned();
    let stranger = Identity::from_seed([9; 32]).peer_id();
    let _ = second.handle(Input::Control { from: stranger, bytes: data.to_vec() }, now);
    assert_eq!(second.roster().cloned(), roster, "a stranger changes nothing");
    let _ = second.handle(Input::Control { from: a, bytes: data.to_vec() }, now);
    second.handle_timeout(now + Duration::from_secs(30));
    let _ = second.open(&a, data);
    while second.poll_output().is_some() {}
});
