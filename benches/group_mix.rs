//! What mixing a group call's audio costs a receiver: N senders' speech-like talk (everyone at
//! once, the worst case: every frame decoded, the limiter working), encoded beforehand with real
//! Opus, through `media::group_audio::GroupAudioReceiver` (a jitter buffer and an Opus decoder
//! per sender, the sum, the limiter, active-speaker detection), 20 ms per tick in simulated time.
//! Prints one JSON object.
//!
//! `cargo bench --bench group_mix [-- SECONDS (30)]`. Under `cargo test` (no `--bench`) a 2 s
//! run, failing if the mix is silent or clips.
//!
//! Reported per sender count (3, 4, 6, 8):
//! - `cpu_ms_per_mixed_second`: this thread's CPU time for feeding the packets in and ticking,
//!   over the seconds of mix it made (encoding is the senders' and is not counted).
//! - `cpu_percent_of_core`: the same as a share of one core.
//! - `limited_percent`: ticks the limiter played below unity gain.
//! - `peak`: the mix's highest sample (never over `limiter::CEILING`).

#[path = "common/args.rs"]
mod args;
#[path = "common/cpu.rs"]
mod cpu;
#[path = "../tests/common/speech.rs"]
mod speech;

use std::time::{Duration, Instant};

use cpu::thread_cpu_seconds;
use hail::crypto::sender_key::SenderIndex;
use hail::media::codec::opus::{DEFAULT_BITRATE, FRAME_SAMPLES, OpusDecoder, OpusEncoder, Pcm};
use hail::media::group_audio::GroupAudioReceiver;
use hail::media::limiter::CEILING;
use hail::media::packet::AudioPacket;
use serde_json::json;

const SENDERS: [usize; 4] = [3, 4, 6, 8];

/// `senders` talkers' packets, `frames` each, encoded as their senders would.
fn packets(senders: usize, frames: usize) -> Vec<Vec<AudioPacket>> {
    (0..senders)
        .map(|i| {
            let talk = speech::speech_like_talker(frames as f64 * 0.02, 0x51 + i as u64 * 0x1_0001);
            let peak = talk.iter().fold(1.0f64, |m, s| m.max(s.abs()));
            let mut encoder = OpusEncoder::new(DEFAULT_BITRATE).expect("an Opus encoder");
            (0..frames)
                .map(|n| {
                    let pcm: Pcm = std::array::from_fn(|k| {
                        let s = talk.get(n * FRAME_SAMPLES + k).copied().unwrap_or(0.0);
                        (s / peak * 24_000.0).round() as i16
                    });
                    let seq = n as u32;
                    let opus = encoder.encode(&pcm).expect("encodes");
                    AudioPacket { seq, capture_us: 0, flags: 0, frames: vec![(seq, opus)] }
                })
                .collect()
        })
        .collect()
}

fn main() {
    let args = args::BenchArgs::from_env(&[]);
    let seconds: f64 = args.number().unwrap_or(if args.bench { 30.0 } else { 2.0 });
    let frames = (seconds / 0.02) as usize;
    let mut rows = Vec::new();
    for senders in SENDERS {
        let streams = packets(senders, frames);
        let mut rx = GroupAudioReceiver::new(OpusDecoder::new);
        for i in 0..senders {
            rx.admit(SenderIndex(i as u8 + 1)).expect("admitted");
        }
        let t0 = Instant::now();
        let (mut peak, mut energy) = (0i32, 0.0f64);
        let cpu = thread_cpu_seconds();
        for n in 0..frames {
            let now = t0 + Duration::from_millis(20) * n as u32;
            for (i, stream) in streams.iter().enumerate() {
                rx.on_packet(SenderIndex(i as u8 + 1), stream[n].clone(), now).expect("a member's packet");
            }
            let mixed = rx.tick(now);
            for s in mixed.pcm {
                peak = peak.max(i32::from(s).abs());
                energy += f64::from(s) * f64::from(s);
            }
        }
        let cpu = thread_cpu_seconds() - cpu;
        let rms = (energy / (frames * FRAME_SAMPLES) as f64).sqrt();
        assert!(peak <= CEILING, "{senders} senders: the mix peaks at {peak}");
        assert!(rms > 1_000.0, "{senders} senders: the mix is near silent (rms {rms:.0})");
        rows.push(json!({
            "senders": senders,
            "mixed_seconds": seconds,
            "cpu_ms_per_mixed_second": cpu * 1000.0 / seconds,
            "cpu_percent_of_core": cpu * 100.0 / seconds,
            "limited_percent": rx.limiter().limited_frames() as f64 * 100.0 / frames as f64,
            "peak": peak,
            "rms": rms.round(),
        }));
    }
    let profile = if cfg!(debug_assertions) { "dev" } else { "release" };
    println!("{}", serde_json::to_string_pretty(&json!({ "profile": profile, "group_mix": rows })).expect("json"));
}
