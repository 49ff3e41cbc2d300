//! A group call's media plane (`media::group_call::GroupCallMedia`), audio, in one process: every
//! member a real `GroupMember` (on the in-memory control net of `common/group_net.rs`, so the keys
//! are the group's real keys) behind the `GroupFrameCrypto` port, every pair of members a real QUIC
//! connection (`transport::media_port::QuicMediaPort`), every member sending a tone of its own and
//! writing its mix to a WAV file. What each hears is judged by its spectrum. And two video cases:
//! thinning at a forwarder, and at a mesh sender, whose link to a member reports a queue.

#[path = "common/group_mesh.rs"]
mod group_mesh;
#[path = "common/group_net.rs"]
mod group_net;
#[path = "common/quic.rs"]
mod quic;
#[path = "common/tones.rs"]
mod tones;

use std::f64::consts::TAU;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use group_mesh::{Capture, Party, connect, mesh, mesh_tapped};
use group_net::{Net, peer};
use hail::crypto::sender_key::{GroupFrameHeader, GroupMedia, SenderIndex, SenderKeyRing};
use hail::group::Command;
use hail::media::codec::opus::{FRAME_SAMPLES, Pcm, SAMPLE_RATE};
use hail::media::group_call::GroupAudioEvent;
use hail::media::io::{AudioSink, SourceSpec, WavSink};
use hail::media::limiter::CEILING;
use hail::media::packet::AudioPacket;
use hail::transport::media_port::QuicMediaPort;
use libp2p_identity::PeerId;
use tones::{heard, tone_db};

/// One tone per member, none a harmonic of another.
const TONES: [f64; 5] = [440.0, 650.0, 910.0, 1230.0, 1570.0];


/// The last `seconds` of `x`.
fn tail(x: &[i16], seconds: f64) -> &[i16] {
    let n = (seconds * f64::from(SAMPLE_RATE)) as usize;
    assert!(x.len() > n, "only {} samples played", x.len());
    &x[x.len() - n..]
}


/// Every party hears exactly every other party's tone.
fn assert_each_hears_the_others(parties: &[Party], mixes: &[Vec<i16>], tones: &[f64]) {
    for (i, (party, mix)) in parties.iter().zip(mixes).enumerate() {
        let x = tail(mix, 0.6);
        let want: Vec<f64> = tones.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, f)| *f).collect();
        let levels: Vec<String> = tones.iter().map(|f| format!("{f} Hz {:.1} dB", tone_db(x, *f))).collect();
        assert_eq!(heard(x, tones), want, "member {} ({}) hears the wrong tones: {levels:?}", i + 1, party.id);
        assert!(tone_db(x, tones[i]) < tone_db(x, want[0]) - 30.0, "member {} hears itself: {levels:?}", i + 1);
    }
}

async fn run_for(d: Duration) {
    tokio::time::sleep(d).await;
}

/// Waits until `done` holds, polling every 50 ms; fails after 15 s (a condition that needs a
/// second of real time on an idle machine, given room on a loaded one).
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "not within 15 s: {what}");
        run_for(Duration::from_millis(50)).await;
    }
}

async fn each_member_hears_the_others(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let sources = TONES[..n].iter().map(|f| SourceSpec::Tone(*f)).collect();
    let (_net, mut parties) = mesh(dir.path(), sources).await;
    until("every member has sent and heard 20 frames, and had a report", || {
        parties.iter().all(|p| {
            let s = p.stats();
            s.send.frames > 20 && s.participants.iter().all(|o| o.datagrams > 20 && o.sent_datagrams > 20 && o.reports >= 1)
        })
    })
    .await;
    run_for(Duration::from_millis(300)).await;
    for p in &parties {
        let s = p.stats();
        assert_eq!(s.participants.len(), n - 1);
        assert!(s.send.frames > 20, "{} sent {} frames", p.id, s.send.frames);
        for other in &s.participants {
            assert!(other.datagrams > 20 && other.in_mix, "{} from {}: {other:?}", p.id, other.member);
            assert_eq!(other.refused, 0, "{} refused {}'s frames: {other:?}", p.id, other.member);
            // Sealed once, sent to every member: each link carried every frame we sealed since it
            // was added (the links are added within a few ms of the start: a frame or two may be
            // sealed before; 5 is 100 ms).
            assert!(other.sent_datagrams > 20 && other.send_failures == 0);
            assert!(
                s.send.frames.saturating_sub(other.sent_datagrams) <= 5,
                "{} sealed {} frames, sent {} to {}",
                p.id,
                s.send.frames,
                other.sent_datagrams,
                other.member
            );
            // Its receiver reports on our audio came over the same link: nothing lost on loopback.
            assert!(
                other.reports >= 1 && other.reported_loss_permille == Some(0),
                "{} from {}: {other:?}",
                p.id,
                other.member
            );
        }
        // So every receiver's link is clean: the redundant copy a call starts with is gone.
        assert_eq!((s.send.redundancy, s.send.expected_loss_percent), (0, 0), "{}: {:?}", p.id, s.send);
    }
    let mut mixes = Vec::new();
    for p in &mut parties {
        mixes.push(p.finish().await);
    }
    assert_each_hears_the_others(&parties, &mixes, &TONES[..n]);
    // Every other member's tone made it speak, and someone became the dominant speaker.
    for p in &mut parties {
        let mut events = Vec::new();
        while let Ok(e) = p.events.try_recv() {
            events.push(e);
        }
        for other in p.conns.iter().map(|(o, _)| *o) {
            assert!(
                events.contains(&GroupAudioEvent::Speaking { member: other, speaking: true }),
                "{} never heard {other} speak: {events:?}",
                p.id
            );
        }
        assert!(events.iter().any(|e| matches!(e, GroupAudioEvent::Dominant { member: Some(_) })), "{events:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_each_hear_the_other_two_and_not_themselves() {
    each_member_hears_the_others(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_members_each_hear_the_other_three_and_not_themselves() {
    each_member_hears_the_others(4).await;
}

/// What `mix` played from `from` to `to`, the file having been completed at `end`.
fn between(mix: &[i16], end: Instant, from: Instant, to: Instant) -> &[i16] {
    let sample = |t: Instant| {
        let back = (end.saturating_duration_since(t).as_secs_f64() * f64::from(SAMPLE_RATE)) as usize;
        mix.len().saturating_sub(back)
    };
    &mix[sample(from)..sample(to)]
}

fn received_from(party: &Party, member: &PeerId) -> u64 {
    party.stats().participants.iter().find(|p| p.member == *member).map_or(0, |p| p.jitter.received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_leaves_the_mix_at_once_and_the_rest_go_on_after_the_rekey() {
    let dir = tempfile::tempdir().unwrap();
    let sources = TONES[..3].iter().map(|f| SourceSpec::Tone(*f)).collect();
    let (net, mut parties) = mesh(dir.path(), sources).await;
    let (m1, m2, m3) = (parties[0].id, parties[1].id, parties[2].id);
    run_for(Duration::from_millis(1200)).await;

    // Member 1's node removes member 3 from its media while 3 still sends to everyone.
    let removed = Instant::now();
    parties[0].media().remove_member(m3);
    let from_3_at_2 = received_from(&parties[1], &m3);
    until("member 3 went on sending", || received_from(&parties[1], &m3) > from_3_at_2 + 25).await;
    run_for(Duration::from_millis(500)).await;
    let s = parties[0].stats();
    assert_eq!(s.participants.iter().map(|p| p.member).collect::<Vec<_>>(), [m2], "{s:?}");

    // Then 3 leaves the group: the control plane commits the next epoch (new keys for 1 and 2),
    // and 2's node removes 3 too.
    let left = Instant::now();
    {
        let mut net = net.lock().unwrap();
        let epoch = net.members[&m1].roster().unwrap().epoch();
        let now = net.now;
        net.member(&m3).command(Command::Leave, now).unwrap();
        net.run();
        for p in [m1, m2] {
            assert_eq!(net.members[&p].roster().unwrap().epoch(), epoch + 1, "the leave was committed");
        }
    }
    parties[1].media().remove_member(m3);
    let from_2_at_1 = received_from(&parties[0], &m2);
    until("2's frames under the new keys open at 1", || received_from(&parties[0], &m2) > from_2_at_1 + 25).await;
    run_for(Duration::from_millis(500)).await;
    assert!(parties[0].stats().participants.iter().all(|p| p.refused == 0));

    let end = Instant::now();
    let mix_1 = parties[0].finish().await;
    let mix_2 = parties[1].finish().await;
    parties[2].finish().await;
    let ms = Duration::from_millis;
    // At 1: 2 and 3 before the removal, only 2 after it (while 3 still sent), and after the rekey.
    assert_eq!(heard(between(&mix_1, end, removed - ms(600), removed - ms(100)), &TONES[..3]), [TONES[1], TONES[2]]);
    assert_eq!(heard(between(&mix_1, end, removed + ms(200), left - ms(100)), &TONES[..3]), [TONES[1]]);
    assert_eq!(heard(between(&mix_1, end, left + ms(300), end - ms(50)), &TONES[..3]), [TONES[1]]);
    // At 2: 1 and 3 until 3 left, then 1 alone.
    assert_eq!(heard(between(&mix_2, end, removed + ms(200), left - ms(100)), &TONES[..3]), [TONES[0], TONES[2]]);
    assert_eq!(heard(between(&mix_2, end, left + ms(300), end - ms(50)), &TONES[..3]), [TONES[0]]);
}

/// The audio frames members 1 and 2 sent each other under `epoch`, as captured inside their QUIC
/// connection.
fn frames_between(capture: &Capture, a: PeerId, b: PeerId, epoch: u64) -> Vec<bytes::Bytes> {
    capture
        .lock()
        .unwrap()
        .iter()
        .filter(|(from, to, _)| (*from, *to) == (a, b) || (*from, *to) == (b, a))
        .filter(|(_, _, f)| {
            GroupFrameHeader::parse(f).is_ok_and(|(h, _)| h.media == GroupMedia::Audio && h.key_id.epoch() == epoch)
        })
        .map(|(_, _, f)| f.clone())
        .collect()
}

/// How many of `frames` `ring` opens.
fn opened(mut ring: SenderKeyRing, frames: &[bytes::Bytes]) -> usize {
    frames.iter().filter(|f| ring.open(f).is_ok()).count()
}

/// Join and leave rekey the media (issue 13): every audio frame members 1 and 2 send each other
/// over real QUIC is captured inside the connection, and tried with every key a member was given
/// (what a member who keeps everything holds). A newcomer's keys open nothing sent before it
/// joined and everything after; a departed member's keys open everything from its time and
/// nothing sent after it left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomers_keys_open_nothing_from_before_and_a_departed_members_nothing_from_after() {
    let dir = tempfile::tempdir().unwrap();
    let sources = TONES[..3].iter().map(|f| SourceSpec::Tone(*f)).collect();
    let (net, mut parties, capture) = mesh_tapped(dir.path(), sources).await;
    let (m1, m2, m3, m4) = (parties[0].id, parties[1].id, parties[2].id, peer(4));
    let epoch_0 = net.lock().unwrap().epoch(&m1);
    run_for(Duration::from_millis(1000)).await;

    // A fourth member joins (on the control plane only: it takes no part in this media): the
    // next epoch, new keys for everyone.
    {
        let mut net = net.lock().unwrap();
        net.invite(m1, 4);
        for p in [m1, m2, m3, m4] {
            assert_eq!(net.epoch(&p), epoch_0 + 1, "the join was committed at {p}");
        }
    }
    let from_2_at_1 = received_from(&parties[0], &m2);
    until("2's frames under the join's keys open at 1", || received_from(&parties[0], &m2) > from_2_at_1 + 25).await;
    run_for(Duration::from_millis(300)).await;

    // Member 3 leaves: the next epoch, without it.
    {
        let mut net = net.lock().unwrap();
        let now = net.now;
        net.member(&m3).command(Command::Leave, now).unwrap();
        net.run();
        for p in [m1, m2, m4] {
            assert_eq!(net.epoch(&p), epoch_0 + 2, "the leave was committed at {p}");
        }
    }
    parties[0].media().remove_member(m3);
    parties[1].media().remove_member(m3);
    let from_2_at_1 = received_from(&parties[0], &m2);
    until("2's frames under the leave's keys open at 1", || received_from(&parties[0], &m2) > from_2_at_1 + 25).await;
    run_for(Duration::from_millis(300)).await;
    for p in &mut parties {
        p.finish().await;
    }

    let before = frames_between(&capture, m1, m2, epoch_0);
    let during = frames_between(&capture, m1, m2, epoch_0 + 1);
    let after = frames_between(&capture, m1, m2, epoch_0 + 2);
    for (name, frames) in [("before the join", &before), ("between", &during), ("after the leave", &after)] {
        assert!(frames.len() >= 40, "{} frames between 1 and 2 {name}", frames.len());
    }
    let keys = |p: &PeerId| net.lock().unwrap().captured_keys(p);
    // The newcomer: nothing from before it joined, everything since.
    assert_eq!(opened(keys(&m4), &before), 0, "the newcomer opens frames sent before it joined");
    assert_eq!(opened(keys(&m4), &during), during.len());
    assert_eq!(opened(keys(&m4), &after), after.len());
    // The departed member: everything from its time, nothing sent after it left.
    assert_eq!(opened(keys(&m3), &before), before.len());
    assert_eq!(opened(keys(&m3), &during), during.len());
    assert_eq!(opened(keys(&m3), &after), 0, "the departed member opens frames sent after it left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_link_stops_only_that_pair() {
    let dir = tempfile::tempdir().unwrap();
    let sources = TONES[..3].iter().map(|f| SourceSpec::Tone(*f)).collect();
    let (_net, mut parties) = mesh(dir.path(), sources).await;
    let (m1, m3) = (parties[0].id, parties[2].id);
    run_for(Duration::from_millis(800)).await;
    let failed = Instant::now();
    parties[0].conn_to(&m3).close(0u32.into(), b"gone");
    // The judged stretch starts 1.1 s after the failure (the receivers' sender timeout is 1 s)
    // and is 1.3 s long.
    run_for(Duration::from_millis(2450)).await;
    let end = Instant::now();
    for (party, other) in [(0, m3), (2, m1)] {
        let mut events = Vec::new();
        while let Ok(e) = parties[party].events.try_recv() {
            events.push(e);
        }
        assert!(
            events.iter().any(|e| matches!(e, GroupAudioEvent::LinkFailed { member, .. } if *member == other)),
            "{events:?}"
        );
        let s = parties[party].stats();
        assert!(s.participants.iter().find(|p| p.member == other).unwrap().link_error.is_some());
    }
    let mut mixes = Vec::new();
    for p in &mut parties {
        mixes.push(p.finish().await);
    }
    let after = |mix| between(mix, end, failed + Duration::from_millis(1100), end - Duration::from_millis(50));
    assert_eq!(heard(after(&mixes[0]), &TONES[..3]), [TONES[1]]);
    assert_eq!(heard(after(&mixes[1]), &TONES[..3]), [TONES[0], TONES[2]], "member 2 hears both as before");
    assert_eq!(heard(after(&mixes[2]), &TONES[..3]), [TONES[1]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_frames_and_a_members_replay_of_anothers_are_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let sources = TONES[..3].iter().map(|f| SourceSpec::Tone(*f)).collect();
    let (net, mut parties) = mesh(dir.path(), sources).await;
    // A stranger (not in the group) is reached on a link of its own: a node that wrongly let it
    // in. Its frames are sealed under its own group's key.
    let stranger_net = Arc::new(Mutex::new(Net::group(40, &[41])));
    let stranger = peer(40);
    let (ep, _, _) = quic::node();
    let (_ep_1, addr, mut inbound) = quic::node();
    let (to_member_1, at_member_1) = connect(&ep, (addr, &mut inbound)).await;
    parties[0].media().add_member(stranger, SenderIndex(200), Arc::new(QuicMediaPort::new(at_member_1))).await.unwrap();
    run_for(Duration::from_millis(300)).await;
    let packet =
        |seq: u32| AudioPacket { seq, capture_us: 0, flags: 0, frames: vec![(seq, vec![0xF8, 0xFF, 0xFE])] }.encode();
    let (m2, m3) = (parties[1].id, parties[2].id);
    for seq in 0..5 {
        let frame = stranger_net.lock().unwrap().member(&stranger).seal(GroupMedia::Audio, &packet(seq)).unwrap();
        to_member_1.send_datagram(frame.into()).unwrap();
        // Member 3's frame (really sealed by 3), delivered by member 2.
        let frame = net.lock().unwrap().member(&m3).seal(GroupMedia::Audio, &packet(1000 + seq)).unwrap();
        parties[1].conn_to(&parties[0].id).send_datagram(frame.into()).unwrap();
    }
    run_for(Duration::from_millis(600)).await;
    let s = parties[0].stats();
    let of = |p: &PeerId| s.participants.iter().find(|x| x.member == *p).unwrap().clone();
    assert_eq!(of(&stranger).datagrams, 5);
    assert_eq!(of(&stranger).refused, 5, "every frame of the stranger is refused");
    assert!(!of(&stranger).in_mix);
    assert_eq!(of(&m2).refused, 5, "every frame of 3 that 2 delivered is refused: {:?}", of(&m2));
    assert_eq!(of(&m3).refused, 0);
    assert!(of(&m2).in_mix && of(&m3).in_mix, "the members' own frames still play");
    // The other members saw none of it.
    assert_eq!(parties[1].stats().participants.iter().map(|p| p.refused).sum::<u64>(), 0);
    let mix = parties[0].finish().await;
    assert_eq!(heard(tail(&mix, 0.6), &TONES[..3]), [TONES[1], TONES[2]]);
}

/// A WAV file of a sine at full scale.
fn full_scale_tone(path: &Path, freq: f64, seconds: f64) {
    let mut sink = WavSink::create(path).unwrap();
    let frames = (seconds * f64::from(SAMPLE_RATE)) as usize / FRAME_SAMPLES;
    for n in 0..frames {
        let pcm: Pcm = std::array::from_fn(|i| {
            let t = (n * FRAME_SAMPLES + i) as f64 / f64::from(SAMPLE_RATE);
            (32767.0 * (t * freq * TAU).sin()).round() as i16
        });
        sink.write_frame(&pcm);
    }
    sink.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_talkers_at_full_scale_do_not_clip_the_fifth_members_mix() {
    let dir = tempfile::tempdir().unwrap();
    let mut sources = Vec::new();
    for f in &TONES[..4] {
        let path = dir.path().join(format!("loud-{f}.wav"));
        full_scale_tone(&path, *f, 10.0);
        sources.push(SourceSpec::File(path));
    }
    sources.push(SourceSpec::Silence);
    let (_net, mut parties) = mesh(dir.path(), sources).await;
    run_for(Duration::from_millis(1800)).await;
    let limited = parties[4].stats().limited_frames;
    let mix = parties[4].finish().await;
    let x = tail(&mix, 0.8);
    let peak = x.iter().map(|s| i32::from(*s).abs()).max().unwrap();
    assert!(peak <= CEILING, "the mix peaks at {peak}, over the ceiling {CEILING}");
    assert!(limited > 0, "four full-scale talkers sum past full scale: the limiter must have worked");
    assert_eq!(heard(x, &TONES[..4]), TONES[..4], "all four are heard");
    for p in &mut parties[..4] {
        p.finish().await;
    }
}

/// A link that is dead from the start: its reader reports the failure at once.
struct DeadLink;

impl hail::media_link::MediaLink for DeadLink {
    fn send_datagram(&self, _: bytes::Bytes) -> Result<(), hail::media_link::LinkError> {
        Err(hail::media_link::LinkError::Closed("dead".into()))
    }
    fn read_datagram(&self) -> futures::future::BoxFuture<'_, Result<bytes::Bytes, hail::media_link::LinkError>> {
        Box::pin(async { Err(hail::media_link::LinkError::Closed("dead".into())) })
    }
    fn open_stream(
        &self,
        _: i32,
    ) -> futures::future::BoxFuture<'_, Result<Box<dyn hail::media_link::OutStream>, hail::media_link::LinkError>> {
        Box::pin(async { Err(hail::media_link::LinkError::Closed("dead".into())) })
    }
    fn accept_stream(
        &self,
    ) -> futures::future::BoxFuture<'_, Result<Box<dyn hail::media_link::InStream>, hail::media_link::LinkError>> {
        Box::pin(async { Err(hail::media_link::LinkError::Closed("dead".into())) })
    }
    fn path(&self) -> hail::media_link::PathSample {
        hail::media_link::PathSample { rtt: Duration::from_millis(1), cwnd: 0, sent_bytes: 0, lost_bytes: 0, acked_bytes: None }
    }
    fn is_closed(&self) -> bool {
        true
    }
}

/// A member added again with a good link, right after a link whose failure is already on its way
/// to the task: the old link's failure must not take the new link down (the task takes commands
/// before link messages, so the failure is usually handled after the second add).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_links_late_failure_leaves_the_new_link_alone() {
    let dir = tempfile::tempdir().unwrap();
    let sources = TONES[..2].iter().map(|f| SourceSpec::Tone(*f)).collect();
    let (net, parties) = mesh(dir.path(), sources).await;
    let (a, b) = (parties[0].id, parties[1].id);
    let index = group_mesh::sender_index(&net, &a, &b);
    for _ in 0..5 {
        parties[0].media().add_member(b, index, Arc::new(DeadLink)).await.unwrap();
        let good = Arc::new(QuicMediaPort::new(parties[0].conn_to(&b).clone()));
        parties[0].media().add_member(b, index, good).await.unwrap();
    }
    let of_b = || parties[0].stats().participants.into_iter().find(|x| x.member == b).unwrap();
    // Any stale failure is handled within a few ticks; then a must still send to and hear b.
    run_for(Duration::from_millis(200)).await;
    let before = of_b();
    assert_eq!(before.link_error, None, "{before:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = of_b();
        assert_eq!(now.link_error, None, "{now:?}");
        if now.sent_datagrams > before.sent_datagrams + 10 && now.datagrams > before.datagrams + 10 {
            break;
        }
        assert!(Instant::now() < deadline, "a stopped sending to or hearing b: {before:?} then {now:?}");
        run_for(Duration::from_millis(100)).await;
    }
}

/// Waits until `done` holds, polling every 50 ms; fails after 60 s (video: three members encode
/// and decode on this shared machine).
async fn until_video(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "not within 60 s: {what}");
        run_for(Duration::from_millis(50)).await;
    }
}

/// What `at` receives of `from`'s video.
fn video_from(at: &Party, from: &PeerId) -> hail::media::group_call::ParticipantVideoStats {
    at.media().video_stats().participants.into_iter().find(|o| o.member == *from).expect("a member")
}

/// Real codecs (libaom in two layers, dav1d) and real QUIC, three members forwarded by one: the
/// forwarder's link to one member reports a queue (its RTT 200 ms over the connection's); that
/// member then gets the base layer only, decodes on and asks for no keyframe, while the third
/// still gets both layers; once the queue is gone it gets both again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_forwarder_a_member_whose_link_queues_gets_the_base_layer_only_until_it_calms() {
    use std::sync::atomic::Ordering;

    use hail::media::config::VideoConfig;
    use hail::media::video::source::{VideoSinkSpec, VideoSourceSpec};

    let dir = tempfile::tempdir().unwrap();
    let sources = (0..3).map(|i| SourceSpec::Tone(TONES[i])).collect();
    let video = VideoConfig { input: VideoSourceSpec::Pattern, output: VideoSinkSpec::Null, ..Default::default() };
    let (_net, mut parties) = group_mesh::forwarded_video_queued(dir.path(), sources, video).await;
    until_video("every member decodes every other's video", || {
        parties.iter().all(|p| {
            let v = p.media().video_stats();
            v.participants.len() == 2 && v.participants.iter().all(|o| o.receive.frames_decoded > 10)
        })
    })
    .await;
    let f = parties.iter().position(|p| p.media().video_stats().forwarded_records > 0).expect("a forwarder");
    let (slow, fast) = ((f + 1) % 3, (f + 2) % 3);
    let (slow_id, fast_id) = (parties[slow].id, parties[fast].id);
    let layers_to = |p: &Party, to: &PeerId| video_from(p, to).thinning.layers;
    assert_eq!(layers_to(&parties[f], &slow_id), 2, "loopback keeps up: both layers");

    parties[f].queues[&slow_id].store(200, Ordering::Relaxed);
    until_video("the forwarder thins the queued member's video", || layers_to(&parties[f], &slow_id) == 1).await;
    // What was on its way before arrives first: 15 more frames of the third member's.
    let decoded = video_from(&parties[slow], &fast_id).receive.frames_decoded;
    until_video("frames go on", || video_from(&parties[slow], &fast_id).receive.frames_decoded >= decoded + 15).await;
    let (slow_then, fast_then) =
        (video_from(&parties[slow], &fast_id).receive, video_from(&parties[fast], &slow_id).receive);
    until_video("30 more frames at the queued member", || {
        video_from(&parties[slow], &fast_id).receive.frames_decoded >= slow_then.frames_decoded + 30
    })
    .await;
    let (slow_now, fast_now) =
        (video_from(&parties[slow], &fast_id).receive, video_from(&parties[fast], &slow_id).receive);
    assert_eq!(slow_now.enhancement_received, slow_then.enhancement_received, "the base layer only: {slow_now:?}");
    assert_eq!(slow_now.keyframe_requests, slow_then.keyframe_requests, "no keyframe asked: {slow_now:?}");
    assert_eq!(slow_now.undecodable, slow_then.undecodable, "no gap: {slow_now:?}");
    assert!(fast_now.enhancement_received > fast_then.enhancement_received, "the other gets both: {fast_now:?}");
    assert_eq!(layers_to(&parties[f], &fast_id), 2);

    parties[f].queues[&slow_id].store(0, Ordering::Relaxed);
    until_video("both layers again once the queue is gone", || {
        video_from(&parties[slow], &fast_id).receive.enhancement_received > slow_now.enhancement_received
    })
    .await;
    let thinning = video_from(&parties[f], &slow_id).thinning;
    assert_eq!((thinning.layers, thinning.thinnings), (2, 1), "{thinning:?}");
    assert!(thinning.enhancement_thinned > 0, "{thinning:?}");
    for p in &mut parties {
        p.finish().await;
    }
}

/// The same in a mesh: member 0's link to member 1 reports a queue; member 0 sends member 1 its
/// base layer only (and no keyframe is asked), member 2 everything, and member 1's own links are
/// not touched: it still gets member 2's video whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_mesh_a_sender_thins_only_the_link_that_queues() {
    use std::sync::atomic::Ordering;

    use hail::media::config::VideoConfig;
    use hail::media::video::source::{VideoSinkSpec, VideoSourceSpec};

    let dir = tempfile::tempdir().unwrap();
    let sources = (0..3).map(|i| SourceSpec::Tone(TONES[i])).collect();
    let video = VideoConfig { input: VideoSourceSpec::Pattern, output: VideoSinkSpec::Null, ..Default::default() };
    let (_net, mut parties) = group_mesh::mesh_video_queued(dir.path(), sources, video).await;
    until_video("every member decodes every other's video", || {
        parties.iter().all(|p| {
            let v = p.media().video_stats();
            v.participants.len() == 2 && v.participants.iter().all(|o| o.receive.frames_decoded > 10)
        })
    })
    .await;
    let ids: Vec<PeerId> = parties.iter().map(|p| p.id).collect();
    parties[0].queues[&ids[1]].store(200, Ordering::Relaxed);
    until_video("member 0 thins its video to member 1", || video_from(&parties[0], &ids[1]).thinning.layers == 1).await;
    let decoded = video_from(&parties[1], &ids[0]).receive.frames_decoded;
    until_video("frames go on", || video_from(&parties[1], &ids[0]).receive.frames_decoded >= decoded + 15).await;
    let then = [
        video_from(&parties[1], &ids[0]).receive,
        video_from(&parties[2], &ids[0]).receive,
        video_from(&parties[1], &ids[2]).receive,
    ];
    until_video("30 more frames of member 0's at member 1", || {
        video_from(&parties[1], &ids[0]).receive.frames_decoded >= then[0].frames_decoded + 30
    })
    .await;
    let now = [
        video_from(&parties[1], &ids[0]).receive,
        video_from(&parties[2], &ids[0]).receive,
        video_from(&parties[1], &ids[2]).receive,
    ];
    assert_eq!(now[0].enhancement_received, then[0].enhancement_received, "1 gets 0's base only: {:?}", now[0]);
    assert_eq!(now[0].keyframe_requests, then[0].keyframe_requests, "and asks no keyframe: {:?}", now[0]);
    assert!(now[1].enhancement_received > then[1].enhancement_received, "2 gets 0's both: {:?}", now[1]);
    assert!(now[2].enhancement_received > then[2].enhancement_received, "1 gets 2's both: {:?}", now[2]);
    for p in &mut parties {
        p.finish().await;
    }
}
