//! A hostile forwarder with real media (`protocols/group-media-v1.md`, "Frame authenticators"):
//! four members in one process, each a real `GroupMember`'s keys behind the crypto port, a real
//! `GroupCallMedia` (Opus, its task, real Ed25519 signing) and real QUIC connections on loopback
//! (`common/group_mesh.rs`), the group forced to forward. The forwarder's links to the two
//! *witnesses* forge: in place of one of the *victim*'s audio frames it sends a frame of its own
//! making, sealed under the victim's real key with the same counter. Both witnesses open and play
//! it, then detect it when the victim's signed list comes, tell it (`GroupAudioEvent::Forged`),
//! stop trusting the forwarder and send their audio to every member directly.
//!
//! No wall-clock thresholds: the test waits (bounded) for what must happen.

#[path = "common/group_mesh.rs"]
mod group_mesh;
#[path = "common/group_net.rs"]
mod group_net;
#[path = "common/quic.rs"]
mod quic;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use group_mesh::{Party, forwarded_wrapped};
use group_net::{Net, peer};
use hail::crypto::sender_key::{GroupFrameHeader, GroupMedia, KeyId, SenderKey};
use hail::group::control::{ControlBody, GroupControl};
use hail::media::group_call::{Forgery, GroupAudioEvent};
use hail::media::io::SourceSpec;
use hail::media_link::{LinkError, MediaLink};
use libp2p_identity::PeerId;

/// Forge the victim's first audio frame from this counter on.
const FORGE_FROM: u64 = 100;
/// Forged frames are ready for this many counters from `FORGE_FROM` (reports share the counter).
const FORGE_SPAN: u64 = 20;

/// The victim's key and the forged frames, one per counter from `FORGE_FROM`.
type Forgeries = (KeyId, Arc<Vec<Vec<u8>>>);

/// The forwarder's link to a witness: passes everything on, but the victim's first audio frame
/// with a counter in `FORGE_FROM..FORGE_FROM + FORGE_SPAN`, which it replaces by its own.
struct ForgingLink {
    inner: Arc<dyn MediaLink>,
    victim: KeyId,
    /// A forged frame per counter from `FORGE_FROM`, each sealed under the victim's key.
    forged: Arc<Vec<Vec<u8>>>,
    done: AtomicBool,
}

impl MediaLink for ForgingLink {
    fn send_datagram(&self, datagram: Bytes) -> Result<(), LinkError> {
        if let Ok((h, _)) = GroupFrameHeader::parse(&datagram)
            && h.key_id == self.victim
            && h.media == GroupMedia::Audio
            && (FORGE_FROM..FORGE_FROM + FORGE_SPAN).contains(&h.counter)
            && !self.done.swap(true, Ordering::SeqCst)
        {
            let forged = self.forged[(h.counter - FORGE_FROM) as usize].clone();
            return self.inner.send_datagram(Bytes::from(forged));
        }
        self.inner.send_datagram(datagram)
    }
    crate::pass_to_inner!(read_datagram, open_stream, accept_stream, path, is_closed);
}

/// `victim`'s sender key in the current epoch, as `holder` was sent it (every member holds it).
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

/// The events `p` told so far, kept in `seen`.
fn drain_events(p: &mut Party, seen: &mut Vec<GroupAudioEvent>) {
    while let Ok(e) = p.events.try_recv() {
        seen.push(e);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_forwarders_forgery_is_detected_by_both_witnesses_who_then_send_directly() {
    let dir = tempfile::tempdir().unwrap();
    let sources = [440.0, 650.0, 910.0, 1230.0].iter().map(|f| SourceSpec::Tone(*f)).collect();
    // Seeds 1–4; the forwarder is the first in member order (no uplink reported). Which seed that
    // is depends on the PeerIds: read it from the net inside the wrapper.
    let mut members: Vec<PeerId> = (1..=4u8).map(peer).collect();
    members.sort_by_key(|p| p.to_bytes());
    let forwarder = members[0];
    let victim = members[1];
    let witnesses = [members[2], members[3]];
    let forged_frames: Mutex<Option<Forgeries>> = Mutex::new(None);
    let wrap = |net: &Mutex<Net>, me: PeerId, to: PeerId, link: Arc<dyn MediaLink>| -> Arc<dyn MediaLink> {
        if me != forwarder || !witnesses.contains(&to) {
            return link;
        }
        let mut forged = forged_frames.lock().unwrap();
        let (victim_kid, frames) = forged
            .get_or_insert_with(|| {
                let mut key = key_of(&net.lock().unwrap(), &forwarder, &victim);
                let frames: Vec<Vec<u8>> = (0..FORGE_FROM + FORGE_SPAN)
                    .map(|_| key.seal(GroupMedia::Audio, b"the forwarder's words, not the victim's"))
                    .skip(FORGE_FROM as usize)
                    .collect();
                (key.key_id(), Arc::new(frames))
            })
            .clone();
        Arc::new(ForgingLink { inner: link, victim: victim_kid, forged: frames, done: AtomicBool::new(false) })
    };
    let (_net, mut parties) = forwarded_wrapped(dir.path(), sources, &wrap).await;
    let index = |p: &PeerId| parties.iter().position(|x| x.id == *p).unwrap();
    let (f, v, w) = (index(&forwarder), index(&victim), witnesses.map(|p| index(&p)));
    assert_eq!(parties[f].stats().send.forwarded_frames, 0, "nothing forwarded yet");

    // Both witnesses detect it (the victim's frame ~100 comes about 2 s in).
    let mut events: Vec<Vec<GroupAudioEvent>> = vec![Vec::new(); 4];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for (i, p) in parties.iter_mut().enumerate() {
            drain_events(p, &mut events[i]);
        }
        let told = |i: usize| events[i].iter().any(|e| matches!(e, GroupAudioEvent::Forged { .. }));
        if w.iter().all(|i| told(*i)) {
            break;
        }
        assert!(Instant::now() < deadline, "the witnesses did not detect the forgery: {events:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (n, i) in w.iter().enumerate() {
        let forged: Vec<&GroupAudioEvent> =
            events[*i].iter().filter(|e| matches!(e, GroupAudioEvent::Forged { .. })).collect();
        match forged.as_slice() {
            [GroupAudioEvent::Forged { member, delivered_by, counter, why, distrusted }] => {
                assert_eq!(
                    (*member, *delivered_by, *why, *distrusted),
                    (Some(victim), forwarder, Forgery::Digest, true)
                );
                assert!(counter.is_some_and(|c| (FORGE_FROM..FORGE_FROM + FORGE_SPAN).contains(&c)), "{counter:?}");
            }
            other => panic!("witness {n} told {other:?}"),
        }
        // (The stats the media writes down every 100 ms catch up.)
        let deadline = Instant::now() + Duration::from_secs(5);
        while parties[*i].stats().distrusted_forwarder.is_none() {
            assert!(Instant::now() < deadline, "witness {n}'s status does not show the distrusted forwarder");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let stats = parties[*i].stats();
        assert_eq!(stats.distrusted_forwarder, Some(forwarder));
        let of_victim = stats.participants.iter().find(|p| p.member == victim).unwrap().authenticity;
        assert_eq!(of_victim.forged, 1, "{of_victim:?}");
        assert!(of_victim.verified > 0, "{of_victim:?}");
    }

    // The protective action: each witness now sends its audio to the other witness directly
    // (before, that link carried a receiver report a second; audio is 50 frames a second).
    let sent_to = |from: usize, to: usize| {
        parties[from].stats().participants.iter().find(|p| p.member == parties[to].id).unwrap().sent_datagrams
    };
    let before = [sent_to(w[0], w[1]), sent_to(w[1], w[0])];
    let deadline = Instant::now() + Duration::from_secs(30);
    while sent_to(w[0], w[1]) < before[0] + 100 || sent_to(w[1], w[0]) < before[1] + 100 {
        assert!(Instant::now() < deadline, "the witnesses do not send to each other directly");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And they hear each other (directly), and nothing more is counted forged.
    let frames_of = |at: usize, of: usize| {
        parties[at].stats().participants.iter().find(|p| p.member == parties[of].id).unwrap().jitter.received
    };
    let heard = frames_of(w[0], w[1]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while frames_of(w[0], w[1]) < heard + 50 {
        assert!(Instant::now() < deadline, "witness 0 does not hear witness 1 any more");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in w {
        let stats = parties[i].stats();
        let forged: u64 = stats.participants.iter().map(|p| p.authenticity.forged).sum();
        assert_eq!(forged, 1, "one forgery, counted once");
    }
    // The victim was shown nothing forged and still trusts the forwarder.
    drain_events(&mut parties[v], &mut events[v]);
    assert!(!events[v].iter().any(|e| matches!(e, GroupAudioEvent::Forged { .. })));
    assert_eq!(parties[v].stats().distrusted_forwarder, None);
    for p in &mut parties {
        p.finish().await;
    }
}
