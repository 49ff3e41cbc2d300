//! Whole video calls on loopback: two real daemons in this process (libp2p invite, QUIC, Noise,
//! Opus, AV1 both ways), one call per encoder and top resolution. For each: the format the sender
//! sustained, the frame rates sent and shown, the bitrate, CPU per call side (this process's CPU
//! time over the call, halved: both sides run here), glass-to-glass latency read from the stamp
//! burned into each picture (capture at the sender to render at the receiver, one clock), lip sync,
//! freezes. Prints one JSON object.
//!
//! One more row (`policed_300kbps`, under `--bench`): the default encoder at 640x360 with each
//! direction through the impairing relay (`tests/common/relay.rs`) as a 300 kbps policer with a
//! small bucket (100 ms of the rate), 20 ms each way: the same measures plus the audio lost or
//! concealed, measured after 5 s for the rate loop to come down from its 600 kbps start.
//!
//! Usage: `cargo bench --bench video_call [-- SECONDS]` (default 10 per call); `-- SECONDS policed
//! --runs N [--bucket-ms MS]` makes only the policed call, N times (default 1), its policer's
//! bucket holding MS of the rate (default 100). With `HAIL_BENCH_TIMELINE=1` set,
//! each call also prints a line to stderr every 50 ms from the call's start: the receiver's
//! pictures shown, their glass-to-glass, keyframes and requests; the sender's estimate, video
//! target and rate, frames, keyframes and drops (how the policed runs were diagnosed). Under `cargo test`
//! (no `--bench`) it makes one 2-second libaom call as a smoke test and fails if no picture arrives.

#[path = "common/args.rs"]
mod args;
#[path = "common/cpu.rs"]
mod cpu;
#[path = "common/call.rs"]
mod call;
#[path = "../tests/common/relay.rs"]
mod relay;

use std::time::{Duration, Instant};

use hail::home::Home;
use hail::node::{Daemon, DaemonOptions};
use relay::{Impairment, Relay};

fn options(encoder: &str, size: &str, auto_answer: bool) -> DaemonOptions {
    let mut o = DaemonOptions::loopback("tone:440", "null");
    o.calls.auto_answer = Some(auto_answer);
    o.calls.max_invites_per_peer = Some(1000);
    o.video.encoder = Some(encoder.into());
    o.video.max_size = Some(size.into());
    o
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len().max(1) - 1) as f64).round() as usize;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}

/// A call's media path: straight on loopback, or each direction through an impairing relay.
enum Path {
    Loopback,
    Impaired(Impairment),
}

/// Prints the call's timeline (see the module docs) until aborted.
async fn timeline(a: hail::node::Node, b: hail::node::Node) {
    let start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let video = |s: Result<hail::node::StatusInfo, _>| s.ok().and_then(|s| s.call).and_then(|c| c.video_stats);
        let (Some(sa), Some(sb)) = (video(a.status().await), video(b.status().await)) else { continue };
        let r = &sb.receive;
        eprintln!(
            "{:6} ms | shown {:4} g2g {:>5} keyframes {:2} requests {:2} | estimate {:4} target {:4}{} sent {:4} kbps frames {:4} keyframes {:2} dropped {}",
            start.elapsed().as_millis(),
            r.frames_rendered,
            r.glass_to_glass_ms.unwrap_or(-1.0),
            r.keyframes,
            r.keyframe_requests,
            sa.estimate_bps / 1000,
            sa.send.target_bitrate / 1000,
            // The target is the last one the encoder had: while paused, it is not used.
            if sa.paused_for_bandwidth { " (paused)" } else { "" },
            sa.send_bitrate / 1000,
            sa.send.frames,
            sa.send.keyframes,
            sa.send_dropped,
        );
    }
}

async fn one_call(encoder: &str, size: &str, seconds: u64, path: Path) -> serde_json::Value {
    let bucket_ms = match path {
        Path::Impaired(imp) => Some(imp.bucket.as_millis() as u64),
        Path::Loopback => None,
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut oa, mut ob) = (options(encoder, size, false), options(encoder, size, true));
    let (settle, relays) = match path {
        Path::Loopback => (Duration::from_secs(1), None),
        Path::Impaired(imp) => {
            let (to_alice, to_bob) = (Relay::start(imp, 11).await, Relay::start(imp, 12).await);
            oa.calls.media_advertise = Some(vec![to_alice.addr.to_string()]);
            ob.calls.media_advertise = Some(vec![to_bob.addr.to_string()]);
            (Duration::from_secs(5), Some((to_alice, to_bob)))
        }
    };
    let alice = Daemon::start(Home::new(dir.path().join("alice")), oa).await.unwrap();
    let bob = Daemon::start(Home::new(dir.path().join("bob")), ob).await.unwrap();
    let (a, b) = (alice.node().clone(), bob.node().clone());
    if let Some((to_alice, to_bob)) = &relays {
        let calls = |s: hail::node::StatusInfo| s.calls_address.expect("a call endpoint").parse().unwrap();
        to_alice.set_target(calls(a.status().await.unwrap()));
        to_bob.set_target(calls(b.status().await.unwrap()));
    }
    call::call_until_active(&alice, &bob).await;
    let timeline = std::env::var_os("HAIL_BENCH_TIMELINE").map(|_| tokio::spawn(timeline(a.clone(), b.clone())));
    // One second to settle (first keyframes, the jitter buffer; five through a relay, for the
    // rate loop), then measure.
    tokio::time::sleep(settle).await;
    // Packets the policer dropped, both directions (the policed row has no random loss, so every
    // drop is the bucket's).
    let policed = || relays.as_ref().map(|(x, y)| x.stats.lock().unwrap().dropped + y.stats.lock().unwrap().dropped);
    let dropped0 = policed();
    let (cpu0, t0) = (cpu::process_cpu_seconds(), Instant::now());
    let first = b.status().await.unwrap().call.and_then(|c| c.video_stats).unwrap();
    let audio = |s: &hail::node::StatusInfo| {
        let j = &s.call.as_ref().expect("in a call").audio.as_ref().expect("audio runs").receive.jitter;
        (j.received, j.lost + j.concealed)
    };
    let audio0 = audio(&b.status().await.unwrap());
    let mut g2g = Vec::new();
    let mut written = Vec::new();
    let mut sync = Vec::new();
    let mut per_poll = Vec::new();
    let (mut rendered, mut g2g_stale_polls, mut paused_polls) = (first.receive.frames_rendered, 0u32, 0u32);
    let end = t0 + Duration::from_secs(seconds);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(v) = b.status().await.unwrap().call.and_then(|c| c.video_stats) {
            // Glass-to-glass is a property of a picture: sample it only when a new picture was
            // shown since the last poll. Status reports the latest picture's value, so sampling
            // every poll would count one picture shown before a freeze once per poll of the
            // freeze (a 2 s pause = 20 samples of the same stale value). Freezes are counted on
            // their own below.
            per_poll.extend(v.receive.glass_to_glass_ms);
            if v.receive.frames_rendered > rendered {
                rendered = v.receive.frames_rendered;
                g2g.extend(v.receive.glass_to_glass_ms);
                written.extend(v.written_glass_to_glass_ms);
            } else {
                g2g_stale_polls += 1;
            }
            sync.extend(v.receive.av_sync_ms.map(f64::abs));
            // A sender paused for bandwidth shows nothing and the receiver counts no freeze
            // (it was told): without this count only a low shown_fps would tell.
            paused_polls += u32::from(v.remote_paused_for_bandwidth);
        }
    }
    let (cpu, wall) = (cpu::process_cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    let policed_whole = policed();
    let policer_dropped = policed_whole.zip(dropped0).map(|(b, a)| b - a);
    let sender = a.status().await.unwrap().call.and_then(|c| c.video_stats).unwrap();
    let bob_status = b.status().await.unwrap();
    let audio1 = audio(&bob_status);
    let last = bob_status.call.and_then(|c| c.video_stats).unwrap();
    if let Some(t) = timeline {
        t.abort();
    }
    a.hangup().await.unwrap();
    alice.stop().await;
    bob.stop().await;

    g2g.sort_by(f64::total_cmp);
    written.sort_by(f64::total_cmp);
    per_poll.sort_by(f64::total_cmp);
    sync.sort_by(f64::total_cmp);
    let shown = last.receive.frames_rendered - first.receive.frames_rendered;
    let round = |x: f64| (x * 10.0).round() / 10.0;
    let (heard, lost) = (audio1.0 - audio0.0, audio1.1 - audio0.1);
    serde_json::json!({
        "path": if relays.is_some() { "policed_300kbps" } else { "loopback" },
        "audio_lost_or_concealed_percent": round(lost as f64 * 100.0 / heard.max(1) as f64),
        "encoder": encoder,
        "max_size": size,
        "seconds": round(wall),
        "sent_format": format!("{}x{}@{}", sender.send.width, sender.send.height, sender.send.target_fps),
        "cpu_adaptations": sender.send.cpu_adaptations,
        "encode_usage": sender.send.encode_usage.map(|u| (u * 100.0).round() / 100.0),
        "shown_fps": round(shown as f64 / wall),
        "send_kbps": sender.send_bitrate / 1000,
        "target_kbps": sender.send.target_bitrate / 1000,
        "cpu_per_call_side_percent": round(cpu / wall / 2.0 * 100.0),
        "glass_to_glass_ms": { "p50": percentile(&g2g, 50.0), "p95": percentile(&g2g, 95.0), "samples": g2g.len() },
        "polls_without_new_picture": g2g_stale_polls,
        "policer_bucket_ms": bucket_ms,
        "policer_dropped_packets": policer_dropped,
        // The same from the call's first packet: the start (600 kbps offered to the 300 kbps
        // link) is where a burst meets an empty bucket.
        "policer_dropped_packets_whole_call": policed_whole,
        "polls_with_video_paused_for_bandwidth": paused_polls,
        // The former statistic, kept beside the real one: the latest picture's glass-to-glass at
        // every poll, a freeze's stale value counted once per poll.
        "last_picture_glass_to_glass_per_poll_ms": { "p50": percentile(&per_poll, 50.0), "p95": percentile(&per_poll, 95.0) },
        "glass_to_glass_written_ms": { "p50": percentile(&written, 50.0), "p95": percentile(&written, 95.0), "samples": written.len() },
        "av_sync_abs_ms": { "p50": round(percentile(&sync, 50.0)), "p95": round(percentile(&sync, 95.0)) },
        "freezes": last.receive.freezes - first.receive.freezes,
        "frozen_ms": last.receive.frozen_ms - first.receive.frozen_ms,
        "keyframe_requests": last.receive.keyframe_requests,
        "skipped": last.receive.frames_skipped,
        "receive": &last.receive,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args::BenchArgs::from_env(&["--runs", "--bucket-ms"]);
    let bench = args.bench;
    let seconds: u64 = args.number().unwrap_or(if bench { 10 } else { 2 });
    let bucket = match args.value("--bucket-ms").map(|b| b.parse::<u64>()) {
        None => Duration::from_millis(100),
        Some(Ok(ms)) if ms > 0 => Duration::from_millis(ms),
        Some(_) => {
            eprintln!("video_call: --bucket-ms takes the policer's bucket in whole milliseconds, over 0");
            std::process::exit(2);
        }
    };
    let policed = Impairment { delay: Duration::from_millis(20), rate: 300_000 / 8, bucket, ..Impairment::clean() };
    let encoder = if cfg!(feature = "libaom") { "libaom" } else { "rav1e" };
    if bench && args.has_word("policed") {
        let runs: usize = match args.value("--runs").map(|r| r.parse()) {
            None => 1,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                eprintln!("video_call: --runs takes a whole number of calls");
                std::process::exit(2);
            }
        };
        let mut results = Vec::new();
        for _ in 0..runs {
            let r = one_call(encoder, "640x360", seconds, Path::Impaired(policed)).await;
            eprintln!("{r}");
            results.push(r);
        }
        println!("{}", serde_json::json!({ "bench": "video_call", "results": results }));
        return;
    }
    let mut cases = Vec::new();
    if cfg!(feature = "libaom") {
        cases.push("libaom");
    }
    if bench || cases.is_empty() {
        cases.push("rav1e");
    }
    let sizes: &[&str] = if bench { &["640x360", "480x270", "320x180"] } else { &["320x180"] };
    let mut results = Vec::new();
    for encoder in cases {
        for size in sizes {
            let r = one_call(encoder, size, seconds, Path::Loopback).await;
            eprintln!("{r}");
            if !bench {
                assert!(r["shown_fps"].as_f64().unwrap() > 5.0, "pictures arrive: {r}");
                assert!(r["glass_to_glass_ms"]["samples"].as_u64().unwrap() > 0, "stamps read back: {r}");
            }
            results.push(r);
        }
    }
    if bench {
        let r = one_call(encoder, "640x360", seconds, Path::Impaired(policed)).await;
        eprintln!("{r}");
        results.push(r);
    }
    println!("{}", serde_json::json!({ "bench": "video_call", "results": results }));
}
