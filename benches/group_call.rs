//! What a group call's audio costs each member, mesh and forwarded, in one process: N members
//! (`media::group_call::GroupCallMedia`, real `GroupMember` keys, a real QUIC connection on
//! loopback between every two, each sending a tone and writing its mix to a WAV file), run in
//! real time. Audio only, in-process: every member shares this machine's cores. Each size runs
//! twice: a mesh, then forwarded (the group forced to `forward`: the first member in member order
//! forwards the others' sealed frames; every other member sends to it alone).
//! Prints one JSON object.
//!
//! `cargo bench --bench group_call [-- SECONDS (8)] [--speech A.wav --speech B.wav --speech
//! C.wav --speech D.wav --pesq PYTHON [--out DIR] [quality-only]]`. Under `cargo test` (no `--bench`) a 1 s
//! run per size, failing if a member sent or received nothing.
//!
//! With four `--speech` samples, also `quality`: PESQ-WB of every pair at 4 members, clean and
//! at 5 % loss (independent, and Gilbert-Elliott in bursts of 3 on average; 50 ± 10 ms delay
//! under loss), every member's outgoing datagrams on every link through
//! `tests/common/group_mesh.rs`'s `ImpairedLink`. The scene takes turns: after a lead-in, member
//! `i` speaks its sample (its first 8 s) in slot `i` while the others are silent, so the mix each
//! other member hears in that slot is that one talker's path, and is scored against the sample
//! (aligned per pair with `speech_quality::marker_lag`, scored by `speech_quality::pesq`, both
//! shared with the 1:1 `audio_quality` bench). Per condition: the 12 scores, their mean and
//! minimum, what each member ends up sending (copies, FEC, bitrate), the payload per member, and
//! the ticks concealed and frames lost and late over every stream (concealment with nothing lost
//! or late is the machine stalling, not the link).
//!
//! Reported per member count (3, 4, 6, 8) and `topology` (`mesh`, `forward`):
//! - `cpu_percent_per_member`: the process's CPU time (user and system, every thread: Opus
//!   encode and decodes, sealing and opening, QUIC, the mix) over the run, per member, as a share
//!   of one core.
//! - `payload_up_kbps` / `payload_down_kbps`: the sealed datagrams a member sends (one frame to
//!   each of N − 1 links) and receives, per member.
//! - `udp_up_kbps` / `udp_down_kbps`: the UDP bytes of a member's QUIC connections (datagram
//!   and QUIC framing, acknowledgements), per member.
//! - `refused`, `concealed_ticks`: over every member, to tell a run that kept up from one that
//!   did not.
//! - `roles` (forwarded): the same bandwidths for the forwarder alone (`forwarder_*`) and as the
//!   mean of the others (`others_*`); null in a mesh, where every member's are the same.
//! - `authenticator_payload_kbps_per_signer` (forwarded): the sealed frame authenticators each
//!   member but the forwarder sends (`protocols/group-media-v1.md`, "Frame authenticators"; part
//!   of `payload_up_kbps`); `relayed_verified` / `relayed_forged` / `relayed_unverified`: how the
//!   frames the forwarder relayed were judged over the whole run, every member (none forged, or
//!   the run fails).
//!
//! With `video` (or `video-only`: nothing else), `video`: per member count (2, 3, 4) and
//! `topology` (`mesh`; `forward` from 3: every member's video through the first), every member
//! also sends the test pattern's video at the group's 320x180 (`media::group_call`, libaom in two
//! temporal layers, 300 kbps target, one encode per member, one dav1d decoder per other member,
//! sinks null): `cpu_percent_per_member` (everything: audio and video), `video_up_kbps` (the
//! records a member seals, times the links each goes on, plus those it forwards) and
//! `video_down_kbps` (the records it receives), per member, and in a forwarded row `roles` (the
//! forwarder's and the mean of the others'), `udp_up_kbps` / `udp_down_kbps` (audio and video
//! with QUIC's framing), the frame rate each member sends and shows of each other (mean and
//! least), keyframes, records dropped for a member whose queue was full, enhancement-layer records
//! sent and thinned (thinning on loopback means a link did not keep up), and the audio's concealed
//! ticks over every stream meanwhile (audio goes first: video must not starve it). At the largest
//! size one more forwarded row, `thinned`: the forwarder's link to one member reports a 200 ms
//! queue (`QueuedLink`) from 1 s before the measurement: the frame rate that member shows of each
//! other and its video down, against the other members'. The smoke run does 3 members for 2 s,
//! mesh, forwarded and forwarded with a slow member, and fails unless every member decoded
//! pictures from every other.
//!
//! With `join` (or `join-only`: nothing else), `join`: per member count, real daemons in this
//! process (`common/group_join.rs`): the start (`hail call` of all but one) and 10 joins of the
//! last member (`hail add`), each timed until it is a member everywhere, until everyone shows
//! the same emoji, and until every member hears every other (`join_ms`, p50 / p90 / max). The
//! smoke run times one join into a group of 3 and fails if it does not complete. `join-only 6 8`
//! measures those group sizes only (with `join`, the first number is also the cost rows' seconds).

#[path = "common/args.rs"]
mod args;
#[path = "common/cpu.rs"]
mod cpu;
#[path = "common/group_join.rs"]
mod group_join;
#[path = "../tests/common/group_mesh.rs"]
mod group_mesh;
#[path = "../tests/common/group_net.rs"]
mod group_net;
#[path = "../tests/common/quic.rs"]
mod quic;
#[path = "common/speech_quality.rs"]
mod speech_quality;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cpu::process_cpu_seconds;
use group_mesh::{
    Impairment, Party, forwarded, forwarded_video, forwarded_video_queued, mesh, mesh_impaired, mesh_video,
};
use hail::media::io::{SourceSpec, read_wav_mono_48k};
use serde_json::json;
use speech_quality::{Condition, marker_lag, mean_sd, pesq, write_16k};

const MEMBERS: [usize; 4] = [3, 4, 6, 8];

/// Sent and received: payload bytes (the media's counters, forwarded frames included) and UDP
/// bytes (QUIC's), per member.
fn bytes(parties: &[Party]) -> Vec<[u64; 4]> {
    parties
        .iter()
        .map(|p| {
            let mut b = [0u64; 4];
            for other in p.stats().participants {
                b[0] += other.sent_bytes;
                b[1] += other.bytes;
            }
            for (_, conn) in &p.conns {
                let s = conn.stats();
                b[2] += s.udp_tx.bytes;
                b[3] += s.udp_rx.bytes;
            }
            b
        })
        .collect()
}

/// `Mesh`, or `Forward`: the first member forwards the others' frames; `ForwardSlow` (video
/// only): forwarded, and the forwarder's link to one member reports a 200 ms queue.
#[derive(Clone, Copy, PartialEq)]
enum Topology {
    Mesh,
    Forward,
    ForwardSlow,
}

async fn measure(members: usize, seconds: f64, topology: Topology) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sources = (0..members).map(|i| SourceSpec::Tone(300.0 + 170.0 * i as f64)).collect();
    let (_net, mut parties) = match topology {
        Topology::Mesh => mesh(dir.path(), sources).await,
        Topology::Forward | Topology::ForwardSlow => forwarded(dir.path(), sources).await,
    };
    // Let the jitter buffers fill before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = bytes(&parties);
    let signed = |parties: &[Party]| -> u64 { parties.iter().map(|p| p.stats().send.authenticator_bytes).sum() };
    let signed_before = signed(&parties);
    let (cpu0, t0) = (process_cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let (cpu, elapsed) = (process_cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    let after = bytes(&parties);
    let signed_bytes = signed(&parties) - signed_before;
    let each: Vec<[u64; 4]> =
        after.iter().zip(&before).map(|(a, b)| [a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3]]).collect();
    let kbps = |b: u64, n: usize| (b as f64 * 8.0 / elapsed / n as f64 / 1000.0 * 10.0).round() / 10.0;
    let sum =
        |k: usize, who: &dyn Fn(usize) -> bool| -> u64 { (0..members).filter(|i| who(*i)).map(|i| each[i][k]).sum() };
    let per_member_kbps = |k: usize| kbps(sum(k, &|_| true), members);
    // The forwarder: the party the media says forwards (the first in member order).
    let forwarder = parties.iter().position(|p| p.stats().send.forwarded_frames > 0);
    let roles = forwarder.map(|f| {
        json!({
            "forwarder_payload_up_kbps": kbps(each[f][0], 1),
            "forwarder_payload_down_kbps": kbps(each[f][1], 1),
            "forwarder_udp_up_kbps": kbps(each[f][2], 1),
            "forwarder_udp_down_kbps": kbps(each[f][3], 1),
            "others_payload_up_kbps": kbps(sum(0, &|i| i != f), members - 1),
            "others_payload_down_kbps": kbps(sum(1, &|i| i != f), members - 1),
            "others_udp_up_kbps": kbps(sum(2, &|i| i != f), members - 1),
            "others_udp_down_kbps": kbps(sum(3, &|i| i != f), members - 1),
        })
    });
    assert_eq!(forwarder.is_some(), topology == Topology::Forward, "{members} members: the forwarder forwards");
    let (mut refused, mut concealed) = (0, 0);
    let (mut verified, mut forged, mut unverified) = (0, 0, 0);
    for p in &parties {
        let s = p.stats();
        assert!(s.send.frames > 0, "{members} members: {} sent nothing", p.id);
        for other in &s.participants {
            assert!(other.jitter.received > 0, "{members} members: {} heard nothing from {}", p.id, other.member);
            refused += other.refused;
            concealed += other.concealed_ticks;
            verified += other.authenticity.verified;
            forged += other.authenticity.forged;
            unverified += other.authenticity.unverified;
        }
    }
    assert_eq!(forged, 0, "{members} members: an honest call forged nothing");
    for p in &mut parties {
        p.finish().await;
    }
    json!({
        "members": members,
        "topology": if topology == Topology::Mesh { "mesh" } else { "forward" },
        "roles": roles,
        "seconds": (elapsed * 10.0).round() / 10.0,
        "cpu_percent_per_member": (cpu * 100.0 / elapsed / members as f64 * 10.0).round() / 10.0,
        "cpu_percent_all_members": (cpu * 100.0 / elapsed * 10.0).round() / 10.0,
        "payload_up_kbps": per_member_kbps(0),
        "payload_down_kbps": per_member_kbps(1),
        "udp_up_kbps": per_member_kbps(2),
        "udp_down_kbps": per_member_kbps(3),
        "refused": refused,
        "concealed_ticks": concealed,
        // Frame authenticators (forwarded): what each signing member (all but the forwarder)
        // sends for them, and how every relayed frame was judged over the whole run.
        "authenticator_payload_kbps_per_signer": if forwarder.is_some() { kbps(signed_bytes, members - 1) } else { 0.0 },
        "relayed_verified": verified,
        "relayed_forged": forged,
        "relayed_unverified": unverified,
    })
}

/// Group sizes of the video rows (the issue asks for video up to 4 members).
const VIDEO_MEMBERS: [usize; 3] = [2, 3, 4];

/// Per member: video records sealed (each counted once), forwarded (once per receiver) and
/// received.
fn video_bytes(parties: &[Party]) -> Vec<[u64; 3]> {
    parties
        .iter()
        .map(|p| {
            let v = p.media().video_stats();
            [v.send.bytes, v.forwarded_bytes, v.participants.iter().map(|o| o.bytes).sum::<u64>()]
        })
        .collect()
}

async fn measure_video(members: usize, seconds: f64, topology: Topology) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sources = (0..members).map(|i| SourceSpec::Tone(300.0 + 170.0 * i as f64)).collect();
    let video = hail::media::config::VideoConfig {
        input: hail::media::video::source::VideoSourceSpec::Pattern,
        output: hail::media::video::source::VideoSinkSpec::Null,
        ..Default::default()
    };
    let (_net, mut parties) = match topology {
        Topology::Mesh => mesh_video(dir.path(), sources, video).await,
        Topology::Forward => forwarded_video(dir.path(), sources, video).await,
        Topology::ForwardSlow => forwarded_video_queued(dir.path(), sources, video).await,
    };
    // The first keyframes, decoders opened, jitter buffers filled.
    tokio::time::sleep(Duration::from_secs(1)).await;
    // ForwardSlow: the member after the forwarder is slow from here on (what was on its way
    // arrives in the next second).
    let slow = (topology == Topology::ForwardSlow).then(|| {
        let f = parties.iter().position(|p| p.media().video_stats().forwarded_records > 0).expect("a forwarder");
        let slow = (f + 1) % members;
        parties[f].queues[&parties[slow].id].store(200, std::sync::atomic::Ordering::Relaxed);
        slow
    });
    if slow.is_some() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let udp = |parties: &[Party]| bytes(parties).iter().fold((0, 0), |(up, down), b| (up + b[2], down + b[3]));
    let (udp_up0, udp_down0) = udp(&parties);
    let video0 = video_bytes(&parties);
    let shown0: Vec<Vec<u64>> = parties
        .iter()
        .map(|p| p.media().video_stats().participants.iter().map(|o| o.receive.frames_rendered).collect())
        .collect();
    let sent0: Vec<u64> = parties.iter().map(|p| p.media().video_stats().send.frames).collect();
    let concealed = |parties: &[Party]| -> u64 {
        parties.iter().flat_map(|p| p.stats().participants).map(|o| o.concealed_ticks).sum()
    };
    let concealed0 = concealed(&parties);
    let (cpu0, t0) = (process_cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let (cpu, elapsed) = (process_cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    let (udp_up, udp_down) = udp(&parties);
    let video1 = video_bytes(&parties);
    // The forwarder (forwarded rows): the member that forwarded records.
    let forwarder = (0..members).find(|i| video1[*i][1] > video0[*i][1]);
    // What each member put on its links: its own records on every link (a mesh, or the
    // forwarder) or on the forwarder's alone, and the records it forwarded; what it received.
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for i in 0..members {
        let links = if topology == Topology::Mesh || forwarder == Some(i) { members as u64 - 1 } else { 1 };
        up.push((video1[i][0] - video0[i][0]) * links + video1[i][1] - video0[i][1]);
        down.push(video1[i][2] - video0[i][2]);
    }
    let audio_concealed = concealed(&parties) - concealed0;
    let per_member_kbps = |b: u64| (b as f64 * 8.0 / elapsed / members as f64 / 1000.0 * 10.0).round() / 10.0;
    let round1 = |x: f64| (x * 10.0).round() / 10.0;
    let (mut shown_fps, mut sent_fps, mut keyframes, mut dropped, mut decoded) = (Vec::new(), Vec::new(), 0, 0, true);
    let (mut enhancement_sent, mut enhancement_thinned) = (0, 0);
    // ForwardSlow: what the slow member shows of each other, and the others of each other.
    let (mut slow_fps, mut fast_fps) = (Vec::new(), Vec::new());
    for (i, p) in parties.iter().enumerate() {
        let v = p.media().video_stats();
        sent_fps.push((v.send.frames - sent0[i]) as f64 / elapsed);
        keyframes += v.send.keyframes;
        for (k, o) in v.participants.iter().enumerate() {
            let before = shown0[i].get(k).copied().unwrap_or(0);
            let fps = o.receive.frames_rendered.saturating_sub(before) as f64 / elapsed;
            shown_fps.push(fps);
            if slow == Some(i) {
                slow_fps.push(fps);
            } else {
                fast_fps.push(fps);
            }
            decoded &= o.receive.frames_decoded > 0;
            dropped += o.send_dropped;
            enhancement_sent += o.thinning.enhancement_sent;
            enhancement_thinned += o.thinning.enhancement_thinned;
        }
    }
    for p in &mut parties {
        p.finish().await;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let least = |v: &[f64]| v.iter().copied().fold(f64::MAX, f64::min);
    let one_kbps = |b: u64| (b as f64 * 8.0 / elapsed / 1000.0 * 10.0).round() / 10.0;
    let roles = forwarder.map(|f| {
        let others = members as u64 - 1;
        let sum_others = |v: &[u64]| v.iter().enumerate().filter(|(i, _)| *i != f).map(|(_, b)| *b).sum::<u64>();
        json!({
            "forwarder_video_up_kbps": one_kbps(up[f]),
            "forwarder_video_down_kbps": one_kbps(down[f]),
            "others_video_up_kbps": one_kbps(sum_others(&up) / others),
            "others_video_down_kbps": one_kbps(sum_others(&down) / others),
        })
    });
    let thinned = slow.map(|s| {
        let others = members as u64 - 1;
        let fast_down = (0..members).filter(|i| *i != s).map(|i| down[i]).sum::<u64>() / others;
        json!({
            "slow_member_shown_fps": round1(mean(&slow_fps)),
            "slow_member_video_down_kbps": one_kbps(down[s]),
            "others_shown_fps": round1(mean(&fast_fps)),
            "others_video_down_kbps": one_kbps(fast_down),
        })
    });
    json!({
        "members": members,
        "topology": match topology {
            Topology::Mesh => "mesh",
            Topology::Forward => "forward",
            Topology::ForwardSlow => "forward, one member's link from the forwarder queued 200 ms",
        },
        "thinned": thinned,
        "format": "320x180 test pattern, libaom L1T2, 300 kbps target",
        "seconds": round1(elapsed),
        "cpu_percent_per_member": round1(cpu * 100.0 / elapsed / members as f64),
        "cpu_percent_all_members": round1(cpu * 100.0 / elapsed),
        "video_up_kbps": per_member_kbps(up.iter().sum()),
        "video_down_kbps": per_member_kbps(down.iter().sum()),
        "roles": roles,
        "enhancement_records_sent": enhancement_sent,
        "enhancement_records_thinned": enhancement_thinned,
        "udp_up_kbps": per_member_kbps(udp_up - udp_up0),
        "udp_down_kbps": per_member_kbps(udp_down - udp_down0),
        "send_fps": { "mean": round1(mean(&sent_fps)), "least": round1(least(&sent_fps)) },
        "shown_fps": { "mean": round1(mean(&shown_fps)), "least": round1(least(&shown_fps)) },
        "keyframes": keyframes,
        "records_dropped": dropped,
        "every_member_decoded_every_other": decoded,
        "audio_concealed_ticks": audio_concealed,
    })
}

/// The quality scene's links (every direction of every pair).
const CONDITIONS: [Condition; 3] = [
    Condition { name: "clean", loss: 0.0, mean_burst: None, delay_ms: 0, jitter_ms: 0, goal: 4.0, sip_reference: None },
    Condition {
        name: "loss5_jitter50x10",
        loss: 0.05,
        mean_burst: None,
        delay_ms: 50,
        jitter_ms: 10,
        goal: 3.5,
        sip_reference: None,
    },
    Condition {
        name: "burst3_loss5_jitter50x10",
        loss: 0.05,
        mean_burst: Some(3.0),
        delay_ms: 50,
        jitter_ms: 10,
        goal: 3.5,
        sip_reference: None,
    },
];

/// Members in the quality scene, one speech sample each.
const TALKERS: usize = 4;
/// Before the first slot: the reports settle what each member sends.
const LEAD: f64 = 3.0;
/// Each talker's slot (its sample's first seconds) and the silence after it.
const SLOT: f64 = 8.0;
const GAP: f64 = 1.0;

fn samples_at(seconds: f64) -> usize {
    (seconds * 48_000.0) as usize
}

fn write_48k(path: &Path, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("a WAV file");
    for s in samples {
        w.write_sample(*s).expect("written");
    }
    w.finalize().expect("finished");
}

/// The 4-member scene under `c`: every pair's PESQ-WB (with `python`), what the members send.
async fn quality(c: &Condition, speech: &[Vec<i16>], python: Option<&str>, out: &Path, seed: u64) -> serde_json::Value {
    let dir = out.join(format!("group-{}", c.name));
    std::fs::create_dir_all(&dir).expect("the output directory");
    let slot = samples_at(SLOT);
    let start = |i: usize| samples_at(LEAD) + i * samples_at(SLOT + GAP);
    let total = start(TALKERS);
    let references: Vec<Vec<i16>> = speech.iter().map(|s| s[..slot.min(s.len())].to_vec()).collect();
    let mut sources = Vec::new();
    for (i, reference) in references.iter().enumerate() {
        let mut talk = vec![0i16; total];
        talk[start(i)..start(i) + reference.len()].copy_from_slice(reference);
        let path = dir.join(format!("talker-{i}.wav"));
        write_48k(&path, &talk);
        sources.push(SourceSpec::File(path));
    }
    let model = match c.mean_burst {
        None => Impairment { loss: c.loss, ..Impairment::clean() },
        Some(burst) => Impairment::bursty(c.loss, burst),
    };
    let imp =
        Impairment { delay: Duration::from_millis(c.delay_ms), jitter: Duration::from_millis(c.jitter_ms), ..model };
    let (_net, mut parties) = mesh_impaired(&dir, sources, (c.loss > 0.0).then_some((imp, seed))).await;
    tokio::time::sleep(Duration::from_secs_f64(LEAD)).await;
    let up0: u64 = bytes(&parties).iter().map(|b| b[0]).sum();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(total as f64 / 48_000.0 - LEAD + 1.0)).await;
    let up: u64 = bytes(&parties).iter().map(|b| b[0]).sum();
    let up_kbps = (up - up0) as f64 * 8.0 / t0.elapsed().as_secs_f64() / TALKERS as f64 / 1000.0;
    let sending: Vec<_> = parties
        .iter()
        .map(|p| {
            let s = p.stats().send;
            json!({ "copy_distances": s.copy_distances, "expected_loss_percent": s.expected_loss_percent,
                    "bitrate": s.bitrate, "reports_sent": s.reports })
        })
        .collect();
    // Concealed ticks with nothing lost or late are the machine's stalls, not the link's.
    let heard: Vec<_> = parties.iter().flat_map(|p| p.stats().participants).collect();
    let concealed: u64 = heard.iter().map(|o| o.concealed_ticks).sum();
    let lost: u64 = heard.iter().map(|o| o.jitter.lost).sum();
    let late: u64 = heard.iter().map(|o| o.jitter.late).sum();
    let mut mixes = Vec::new();
    for p in &mut parties {
        mixes.push(p.finish().await);
    }
    let mut pairs = Vec::new();
    for (talker, reference) in references.iter().enumerate() {
        for (listener, mix) in mixes.iter().enumerate().filter(|(l, _)| *l != talker) {
            // The talker's slot in the listener's mix, a second either side: where the sample is.
            let from = start(talker) - samples_at(1.0);
            let window = &mix[from.min(mix.len())..(start(talker) + slot + samples_at(1.0)).min(mix.len())];
            let Some(lag) = marker_lag(reference, window) else { continue };
            let at = from + lag as usize;
            let heard = &mix[at.min(mix.len())..(at + reference.len()).min(mix.len())];
            let score = python.and_then(|python| {
                let (r16, d16) =
                    (dir.join(format!("ref-{talker}.wav")), dir.join(format!("deg-{talker}-{listener}.wav")));
                write_16k(&r16, reference);
                write_16k(&d16, heard);
                pesq(python, &r16, &d16)
            });
            pairs.push(json!({ "talker": talker, "listener": listener,
                               "lag_ms": (lag as f64 / 48.0 - 1000.0).round(), "pesq_wb": score }));
        }
    }
    let scores: Vec<f64> = pairs.iter().filter_map(|p| p["pesq_wb"].as_f64()).collect();
    let min = scores.iter().copied().reduce(f64::min);
    json!({
        "condition": c.name, "members": TALKERS,
        "loss": c.loss, "delay_ms": c.delay_ms, "jitter_ms": c.jitter_ms,
        "loss_model": c.loss_model(),
        "pesq_wb": mean_sd(&scores).map(|(m, sd)| json!({ "mean": m, "sd": sd, "min": min, "n": scores.len() })),
        "pesq_goal": c.goal,
        "payload_up_kbps_per_member": (up_kbps * 10.0).round() / 10.0,
        "sending": sending,
        "concealed_ticks": concealed, "lost_frames": lost, "late_frames": late,
        "pairs": pairs,
    })
}

fn main() {
    let args = args::BenchArgs::from_env(&["--speech", "--pesq", "--out"]);
    if let Ok(filter) = std::env::var("HAIL_BENCH_LOG") {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter)).with_writer(std::io::stderr).init();
    }
    let seconds: f64 = args.number().unwrap_or(if args.bench { 8.0 } else { 1.0 });
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
    let speech: Vec<Vec<i16>> =
        args.all_values("--speech").map(|p| read_wav_mono_48k(Path::new(p)).expect("a readable speech WAV")).collect();
    assert!(speech.is_empty() || speech.len() == TALKERS, "--speech takes {TALKERS} samples, one per member");
    let out = args.value("--out").map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("hail-audio-bench"));
    let python = args.value("--pesq");
    // `quality-only`: the quality scene without the cost rows.
    let only = args.has_word("quality-only") || args.has_word("join-only") || args.has_word("video-only");
    let rows: Vec<_> = if only {
        Vec::new()
    } else {
        // Mesh and forwarded, at each size.
        MEMBERS
            .iter()
            .flat_map(|n| [(*n, Topology::Mesh), (*n, Topology::Forward)])
            .map(|(n, t)| runtime.block_on(measure(n, seconds, t)))
            .collect()
    };
    // `join`: start and join times between real daemons (`common/group_join.rs`); `join-only`:
    // nothing else. A smoke run (no `--bench`) times one join into a group of 3.
    let join_rows: Vec<_> = if args.has_word("join") || args.has_word("join-only") || !args.bench {
        // `join-only 6`: that group size only.
        let asked: Vec<usize> = args.numbers().into_iter().filter(|n| MEMBERS.contains(n)).collect();
        let (sizes, samples): (&[usize], usize) = match (args.bench, asked.is_empty()) {
            (true, true) => (&MEMBERS, 10),
            (true, false) => (&asked, 10),
            (false, _) => (&[3], 1),
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        let rows: Vec<_> = sizes.iter().map(|n| runtime.block_on(group_join::measure(dir.path(), *n, samples))).collect();
        if !args.bench {
            assert!(rows.iter().all(|r| r["joined"] == samples), "every join completed: {rows:?}");
        }
        rows
    } else {
        Vec::new()
    };
    // `video`: the same mesh with every member's video; `video-only`: nothing else. A smoke run
    // does 3 members for 2 s.
    let video_rows: Vec<_> = if args.has_word("video") || args.has_word("video-only") || !args.bench {
        let (sizes, seconds): (&[usize], f64) = if args.bench { (&VIDEO_MEMBERS, seconds) } else { (&[3], 2.0) };
        // Mesh at each size, forwarded from 3 members (at 2 there is nothing to forward), and at
        // the largest forwarded with one slow member.
        let largest = sizes.iter().copied().max().unwrap_or(0);
        let rows: Vec<_> = sizes
            .iter()
            .flat_map(|n| [(*n, Topology::Mesh), (*n, Topology::Forward), (*n, Topology::ForwardSlow)])
            .filter(|(n, t)| match t {
                Topology::Mesh => true,
                Topology::Forward => *n >= 3,
                Topology::ForwardSlow => *n >= 3 && *n == largest,
            })
            .map(|(n, t)| runtime.block_on(measure_video(n, seconds, t)))
            .collect();
        if !args.bench {
            assert!(rows.iter().all(|r| r["every_member_decoded_every_other"] == true), "video flowed: {rows:?}");
        }
        rows
    } else {
        Vec::new()
    };
    let quality: Vec<_> = if speech.is_empty() {
        Vec::new()
    } else {
        CONDITIONS
            .iter()
            .enumerate()
            .map(|(k, c)| runtime.block_on(quality(c, &speech, python, &out, 10 * k as u64 + 1)))
            .collect()
    };
    let profile = if cfg!(debug_assertions) { "dev" } else { "release" };
    let out = json!({
        "profile": profile,
        "what": "group call audio and video (mesh and forwarded by one member), every member in this one process on loopback QUIC",
        "group_call": rows,
        "video": video_rows,
        "quality": quality,
        "join": join_rows,
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("json"));
}
