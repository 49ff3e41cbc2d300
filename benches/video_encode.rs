//! AV1 encoders on the moving test pattern: sustained encode speed, size and quality after a dav1d
//! decode, per encoder and resolution, at a fixed target bitrate on 2 threads. Prints one JSON object.
//!
//! Usage: `cargo bench --bench video_encode [-- FRAMES]` (default 150 = 5 s at 30 fps). Under
//! `cargo test` (no `--bench`) it encodes 4 frames per case as a smoke test and fails if a frame is
//! lost or the stamp does not read back.

#[path = "common/args.rs"]
mod args;

use std::time::Instant;

use hail::media::codec::av1::{Dav1dDecoder, Rav1eEncoder, VideoEncoder};
use hail::media::video::pattern::{self, Stamp};

const FPS: u64 = 30;
const THREADS: usize = 2;

fn encoder(name: &str, w: usize, h: usize, bitrate: u32) -> Box<dyn VideoEncoder> {
    match name {
        "rav1e" => Box::new(Rav1eEncoder::new(w, h, FPS, bitrate as i32, THREADS).expect("rav1e")),
        #[cfg(feature = "libaom")]
        "libaom" => Box::new(hail::media::codec::aom::AomEncoder::new(w, h, FPS, bitrate, THREADS).expect("libaom")),
        other => panic!("unknown encoder {other}"),
    }
}

fn run(name: &str, (w, h): (usize, usize), bitrate: u32, frames: u32) -> serde_json::Value {
    let sources: Vec<_> =
        (0..frames).map(|n| pattern::draw(w, h, Stamp { counter: n, capture_ms: n * 33 }).unwrap()).collect();
    let mut enc = encoder(name, w, h, bitrate);
    let mut units = Vec::new();
    let start = Instant::now();
    for src in &sources {
        units.extend(enc.encode(src, false).expect("encode"));
    }
    units.extend(enc.flush().expect("flush"));
    let encode_s = start.elapsed().as_secs_f64();
    let bytes: usize = units.iter().map(|u| u.data.len()).sum();

    let mut dec = Dav1dDecoder::new(THREADS as u32).unwrap();
    let start = Instant::now();
    let (mut psnr_sum, mut ssim_sum) = (0.0, 0.0);
    let mut decoded = 0u32;
    for u in &units {
        for pic in dec.decode(&u.data).expect("dav1d decodes the stream") {
            let stamp = pattern::read(&pic).expect("the stamp reads back");
            let source = &sources[stamp.counter as usize];
            psnr_sum += pic.psnr(source).unwrap_or(99.0);
            ssim_sum += pic.ssim(source).unwrap_or(0.0);
            decoded += 1;
        }
    }
    let decode_s = start.elapsed().as_secs_f64();
    assert_eq!(decoded, frames, "{name} {w}x{h}: every frame decodes");
    serde_json::json!({
        "encoder": name,
        "resolution": format!("{w}x{h}"),
        "target_kbps": bitrate / 1000,
        "frames": frames,
        "threads": THREADS,
        "encode_fps": (frames as f64 / encode_s * 10.0).round() / 10.0,
        "decode_fps": (frames as f64 / decode_s * 10.0).round() / 10.0,
        "actual_kbps": ((bytes * 8) as f64 / (frames as f64 / FPS as f64) / 1000.0).round(),
        "psnr_db": (psnr_sum / decoded as f64 * 100.0).round() / 100.0,
        "ssim": (ssim_sum / decoded as f64 * 10000.0).round() / 10000.0,
    })
}

fn main() {
    let args = args::BenchArgs::from_env(&[]);
    let bench = args.bench;
    let frames: u32 = if bench { args.number().unwrap_or(150) } else { 4 };
    let mut encoders = vec!["rav1e"];
    if cfg!(feature = "libaom") {
        encoders.push("libaom");
    }
    let mut results = Vec::new();
    for name in encoders {
        for (size, kbps) in [((640, 360), 500), ((480, 270), 500), ((320, 180), 500)] {
            results.push(run(name, size, kbps * 1000, frames));
        }
    }
    println!("{}", serde_json::json!({ "bench": "video_encode", "results": results }));
}
