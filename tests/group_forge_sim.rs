//! A forwarding member that forges a frame under another member's sender index
//! (`protocols/group-media-v1.md`, "Frame authenticators"), on a deterministic simulated network:
//! every member is a real `GroupMember` (real sender keys, real SFrame sealing) on the in-memory
//! control net of `common/group_net.rs` and a real `GroupAudioSession` (real Opus) signing its
//! frames with its real identity key; simulated time, every datagram carried at once.

#[path = "common/group_net.rs"]
mod group_net;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use group_net::{Net, peer};
use hail::crypto::frame_auth::{FrameAuthenticator, FrameList};
use hail::crypto::sender_key::{GroupFrameHeader, GroupMedia, KeyId, OpenedFrame, SenderKey};
use hail::group::GroupConfig;
use hail::group::control::{ControlBody, GroupControl};
use hail::group::topology::TopologyMode;
use hail::identity::Identity;
use hail::media::codec::opus::{FRAME_SAMPLES, OpusDecoder, OpusEncoder};
use hail::media::group_call::{
    Forgery, FrameCryptoError, GroupAudioEvent, GroupAudioSession, GroupFrameCrypto, Output, Route,
};
use libp2p_identity::{Keypair, PeerId};

/// A member's keys as the node holds them: its `GroupMember` on the shared net, and its identity.
struct SimCrypto {
    net: Arc<Mutex<Net>>,
    me: PeerId,
    identity: Keypair,
}

impl GroupFrameCrypto for SimCrypto {
    fn seal(&self, media: GroupMedia, payload: &[u8]) -> Result<Vec<u8>, FrameCryptoError> {
        self.net.lock().unwrap().member(&self.me).seal(media, payload).map_err(|e| FrameCryptoError(e.to_string()))
    }

    fn open(&self, from: &PeerId, frame: &[u8]) -> Result<OpenedFrame, FrameCryptoError> {
        self.net.lock().unwrap().member(&self.me).open(from, frame).map_err(|e| FrameCryptoError(e.to_string()))
    }

    fn sign_frames(&self, list: FrameList) -> Result<FrameAuthenticator, FrameCryptoError> {
        let call_id = self.net.lock().unwrap().member(&self.me).call_id();
        FrameAuthenticator::sign(list, &call_id, &self.identity).map_err(|e| FrameCryptoError(e.to_string()))
    }

    fn verify_frames(&self, signer: &PeerId, authenticator: &FrameAuthenticator) -> Result<(), FrameCryptoError> {
        let call_id = self.net.lock().unwrap().member(&self.me).call_id();
        authenticator.verify(&call_id, signer).map_err(|e| FrameCryptoError(e.to_string()))
    }
}

/// What the forwarder does to a frame it forwards to a member (`None`: forwards it unchanged).
type Hook<'a> = dyn FnMut(&[u8], &PeerId) -> Option<Vec<u8>> + 'a;

struct Call {
    members: Vec<PeerId>,
    forwarder: PeerId,
    sessions: BTreeMap<PeerId, GroupAudioSession<OpusDecoder>>,
    encoders: BTreeMap<PeerId, OpusEncoder>,
    /// Per member, the members its own frames went to (from when `count_own` was set), and the
    /// events it told.
    own_to: BTreeMap<PeerId, BTreeMap<PeerId, u64>>,
    events: BTreeMap<PeerId, Vec<GroupAudioEvent>>,
    net: Arc<Mutex<Net>>,
    /// The forwarder sends every frame it forwards twice (a copy that also came another way).
    twice: bool,
}

impl Call {
    /// Four members (seeds 1–4), forwarding forced: each member's media on its real keys, routed
    /// as its member says.
    fn new() -> Call {
        let config = GroupConfig { topology: TopologyMode::Forward, ..GroupConfig::default() };
        let net = Net::group_with(config, 1, &[2, 3, 4]);
        let mut members: Vec<PeerId> = net.members.keys().copied().collect();
        members.sort_by_key(|p| p.to_bytes());
        let now = net.now;
        let forwarder = net.members[&members[0]].forwarder(now).expect("a forwarder");
        let roster = net.members[&forwarder].roster().unwrap().clone();
        let net = Arc::new(Mutex::new(net));
        let mut sessions = BTreeMap::new();
        for (seed, me) in (1..=4u8).map(|s| (s, peer(s))) {
            let identity = Identity::from_seed([seed; 32]).keypair().clone();
            let crypto = Arc::new(SimCrypto { net: net.clone(), me, identity });
            let mut s = GroupAudioSession::new(crypto, 32_000, false, OpusDecoder::new, now);
            for other in members.iter().filter(|p| **p != me) {
                s.add_member(*other, roster.index_of(other).unwrap()).unwrap();
            }
            s.set_route(if me == forwarder { Route::Forwarder } else { Route::Via(forwarder) });
            sessions.insert(me, s);
        }
        let encoders = members.iter().map(|p| (*p, OpusEncoder::new(32_000).unwrap())).collect();
        Call {
            members,
            forwarder,
            sessions,
            encoders,
            own_to: BTreeMap::new(),
            events: BTreeMap::new(),
            net,
            twice: false,
        }
    }

    /// Runs `from_ms..to_ms` of simulated time in 10 ms steps, every member sending a tone of its
    /// own; what the forwarder forwards passes `hook`.
    fn run(&mut self, from_ms: u64, to_ms: u64, count_own: bool, hook: &mut Hook<'_>) {
        let t0 = self.net.lock().unwrap().now;
        for ms in (from_ms..to_ms).step_by(10) {
            let now = t0 + Duration::from_millis(ms);
            let mut deliveries: Vec<(PeerId, PeerId, Vec<u8>)> = Vec::new();
            for (i, me) in self.members.clone().into_iter().enumerate() {
                let s = self.sessions.get_mut(&me).unwrap();
                s.handle_timeout(now, 0);
                loop {
                    match s.poll_output() {
                        Output::Timeout(_) => break,
                        Output::CaptureAudio { capture_us } => {
                            let pcm: [i16; FRAME_SAMPLES] = std::array::from_fn(|n| {
                                let t = (ms as f64 / 1000.0) + n as f64 / 48_000.0;
                                (8000.0 * (2.0 * std::f64::consts::PI * (300.0 + 200.0 * i as f64) * t).sin()) as i16
                            });
                            s.captured(Some(pcm), capture_us);
                        }
                        Output::EncodeAudio(job) => {
                            let opus = job.encode_with(self.encoders.get_mut(&me).unwrap());
                            s.encoded(&job, opus);
                        }
                        Output::Transmit { to, frame } => {
                            for p in to {
                                if count_own {
                                    *self.own_to.entry(me).or_default().entry(p).or_default() += 1;
                                }
                                deliveries.push((me, p, frame.clone()));
                            }
                        }
                        Output::Forward { to, frame } => {
                            for p in to {
                                let bytes = hook(&frame, &p).unwrap_or_else(|| frame.clone());
                                deliveries.push((me, p, bytes));
                                if self.twice {
                                    deliveries.push((me, p, frame.clone()));
                                }
                            }
                        }
                        Output::Report { to, frame } => deliveries.push((me, to, frame)),
                        Output::Event(e) => self.events.entry(me).or_default().push(e),
                        Output::PlayAudio(_) => {}
                    }
                }
            }
            for (from, to, frame) in deliveries {
                self.sessions.get_mut(&to).unwrap().datagram(&from, &frame, now);
            }
        }
    }

    fn forged_events(&self, p: &PeerId) -> Vec<&GroupAudioEvent> {
        self.events.get(p).into_iter().flatten().filter(|e| matches!(e, GroupAudioEvent::Forged { .. })).collect()
    }
}

/// `victim`'s sender key as member `holder` was sent it (every member holds every key).
fn key_of(net: &Net, holder: &PeerId, victim: &PeerId) -> SenderKey {
    let epoch = net.members[holder].roster().unwrap().epoch();
    net.delivered[holder]
        .iter()
        .find_map(|(from, bytes)| match GroupControl::decode(bytes).ok()?.body {
            ControlBody::SenderKey { epoch: e, sender, base_key } if from == victim && e == epoch => {
                Some(SenderKey::new(KeyId::new(e, sender).unwrap(), &base_key))
            }
            _ => None,
        })
        .expect("the holder was sent the victim's key")
}

#[test]
fn an_honest_forwarded_call_verifies_every_relayed_frame_and_forges_none() {
    let mut call = Call::new();
    call.run(0, 2000, false, &mut |_, _| None);
    for p in &call.members {
        let stats = call.sessions[p].stats();
        assert_eq!(stats.distrusted_forwarder, None);
        assert!(call.forged_events(p).is_empty(), "{p}");
        if *p == call.forwarder {
            assert_eq!(stats.send.authenticators, 0, "the forwarder does not sign");
            continue;
        }
        // 100 frames in 2 s: 12 full lists, sealed, sent to the forwarder and forwarded on.
        assert!(stats.send.authenticators >= 12 && stats.send.sign_failures == 0, "{p}: {:?}", stats.send);
        for other in stats.participants.iter().filter(|o| o.member != call.forwarder) {
            let a = other.authenticity;
            assert!(a.verified >= 90 && a.forged == 0 && a.unverified == 0, "{p} on {}: {a:?}", other.member);
            assert!(other.in_mix);
        }
    }
}

#[test]
fn a_frame_the_forwarder_forges_under_a_members_index_is_detected_by_every_other_member_who_then_sends_directly() {
    let mut call = Call::new();
    let forwarder = call.forwarder;
    let others: Vec<PeerId> = call.members.iter().filter(|p| **p != forwarder).copied().collect();
    let victim = others[0];
    let witnesses: Vec<PeerId> = others[1..].to_vec();
    call.run(0, 1000, false, &mut |_, _| None);
    // The forwarder takes the victim's key (it holds it, as a member) and, at frame 60, forwards
    // a frame of its own making in place of the victim's: the same KID and counter, sealed under
    // the victim's real key, so every witness opens it and plays it.
    let mut key = key_of(&call.net.lock().unwrap(), &forwarder, &victim);
    let victim_kid = key.key_id();
    let mut forged = None;
    for _ in 0..=60 {
        forged = Some(key.seal(GroupMedia::Audio, b"not an audio packet the victim sent"));
    }
    let forged = forged.unwrap();
    assert_eq!(GroupFrameHeader::parse(&forged).unwrap().0.counter, 60);
    let mut forged_to = Vec::new();
    call.run(1000, 1600, false, &mut |frame, to| {
        let (h, _) = GroupFrameHeader::parse(frame).ok()?;
        (h.key_id == victim_kid && h.counter == 60 && h.media == GroupMedia::Audio).then(|| {
            forged_to.push(*to);
            forged.clone()
        })
    });
    assert_eq!(forged_to.len(), 2, "forged once to each witness");
    call.run(1600, 2600, true, &mut |_, _| None);
    for w in &witnesses {
        let stats = call.sessions[w].stats();
        let of_victim = stats.participants.iter().find(|p| p.member == victim).unwrap().authenticity;
        assert_eq!(of_victim.forged, 1, "{w} detected it: {of_victim:?}");
        assert!(of_victim.verified >= 50, "{of_victim:?}");
        match call.forged_events(w).as_slice() {
            [GroupAudioEvent::Forged { member, delivered_by, counter, why, distrusted }] => {
                assert_eq!(
                    (*member, *delivered_by, *counter, *why, *distrusted),
                    (Some(victim), forwarder, Some(60), Forgery::Digest, true)
                );
            }
            other => panic!("{w} told {other:?}"),
        }
        // The protective action: the forwarder is distrusted, and the witness's own frames go to
        // every member directly.
        assert_eq!(stats.distrusted_forwarder, Some(forwarder));
        let mut to: Vec<PeerId> = call.own_to[w].keys().copied().collect();
        let mut all: Vec<PeerId> = call.members.iter().filter(|p| *p != w).copied().collect();
        to.sort();
        all.sort();
        assert_eq!(to, all, "{w} sends to every member directly");
        // The witnesses still hear each other (directly now).
        let other_witness = witnesses.iter().find(|x| *x != w).unwrap();
        assert!(stats.participants.iter().find(|p| p.member == *other_witness).unwrap().in_mix);
    }
    // The victim was not shown the forgery: it still sends through the forwarder.
    assert!(call.forged_events(&victim).is_empty());
    assert_eq!(call.own_to[&victim].keys().copied().collect::<Vec<_>>(), vec![forwarder]);
}

#[test]
fn a_frame_that_reaches_a_member_twice_is_opened_and_judged_once() {
    // Every frame the forwarder relays comes twice (as one that came directly and forwarded
    // would): the key ring's replay window opens the first copy only, so lists judge each frame
    // once — no frame verified twice, none taken for a forgery.
    let mut call = Call::new();
    call.twice = true;
    call.run(0, 2000, false, &mut |_, _| None);
    for p in call.members.iter().filter(|p| **p != call.forwarder) {
        let stats = call.sessions[p].stats();
        assert!(call.forged_events(p).is_empty(), "{p}");
        for other in &stats.participants {
            let a = other.authenticity;
            if other.member == call.forwarder {
                // The second copies, refused against the link that brought them.
                assert!(other.refused >= 180, "{p}: {} refused from the forwarder", other.refused);
                continue;
            }
            let sent = call.sessions[&other.member].stats().send.frames;
            assert!(a.verified >= 90 && a.verified <= sent, "{p} on {}: {a:?}, {sent} sent", other.member);
            assert_eq!((a.forged, a.unverified), (0, 0), "{p} on {}", other.member);
        }
    }
}
