//! Video quality on natural content (issue 14, honest numbers): a real camera clip (Y4M), encoded
//! with hail's libaom settings (src/media/codec/aom.rs: realtime usage, cpu-used 10, CBR, no lag,
//! cyclic-refresh AQ, 2 threads) at 300, 500 and 800 kbps and decoded with dav1d, scored against the
//! source as PSNR (luma) and SSIM (luma, 8x8 windows) averaged over the frames; beside each, the
//! anchor: ffmpeg's `libaom-av1` with the same settings on the same clip, decoded to Y4M by ffmpeg
//! and scored by the same code. Then a call: two real daemons, the clip as the sender's camera
//! (`video.input`), the receiver writing what it shows (`video.output`), and the PSNR of each
//! written picture against the source frame it best matches in a small window after the previous
//! match (the clip plays at its own rate and loops; the call may skip or repeat pictures). The
//! sender fits every picture into its format (640x360 at the top) keeping its shape, with black
//! bars, so the picture area of each written frame is cut out and scaled back to the clip's size to
//! compare, and the PSNR of that scaling alone (no coding) is reported beside as the ceiling.
//! Prints one JSON object.
//!
//! Usage (scripts/bench-video-quality.sh fetches the clip and ffmpeg):
//! `cargo bench --bench video_quality -- --clip CLIP.y4m [--ffmpeg ffmpeg] [--out DIR] [SECONDS]`
//! (SECONDS of call, default 10). Under `cargo test` (no `--bench`) it writes a small generated Y4M
//! and checks that the scoring gives known answers (identical frames, a known noise, the frame
//! matching), that the generated clip survives the libaom → dav1d round trip at 300 kbps, and that
//! the ffmpeg anchor's command line carries hail's settings.

#[path = "common/args.rs"]
mod args;
#[path = "common/call.rs"]
mod call;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hail::media::codec::av1::{Dav1dDecoder, VideoEncoder};
use hail::media::video::clock::FrameRate;
use hail::media::video::pattern::{self, Stamp};
use hail::media::video::y4m::{Y4mReader, Y4mWriter};
use hail::media::video::Frame;
use hail::node::DaemonOptions;

/// The encoder threads in a call (src/media/video/encoder.rs runs libaom on 2).
const THREADS: usize = 2;
/// The target bitrates compared, kbps.
const BITRATES_KBPS: [u32; 3] = [300, 500, 800];
/// How far after the previous match a written picture is looked for in the source (frames).
const MATCH_WINDOW: std::ops::RangeInclusive<isize> = -2..=8;

/// A clip in memory: its frames and its rate.
struct Clip {
    frames: Vec<Frame>,
    rate: FrameRate,
}

impl Clip {
    fn read(path: &Path) -> Result<Clip, String> {
        let mut r = Y4mReader::open(path).map_err(|e| e.to_string())?;
        let rate = r.frame_rate();
        let mut frames = Vec::new();
        while let Some(f) = r.next_frame().map_err(|e| e.to_string())? {
            frames.push(f);
        }
        if frames.is_empty() {
            return Err(format!("{}: no frames", path.display()));
        }
        Ok(Clip { frames, rate })
    }

    fn size(&self) -> (usize, usize) {
        (self.frames[0].width, self.frames[0].height)
    }

    /// Whole frames per second, as the encoder's time base takes it.
    fn fps(&self) -> u64 {
        u64::from(self.rate.ceil_fps())
    }
}

/// Mean luma PSNR (dB, 99 for identical frames) and SSIM of `decoded` against `source`, frame by
/// frame in order; `None` when the counts or sizes differ.
fn score(decoded: &[Frame], source: &[Frame]) -> Option<(f64, f64)> {
    if decoded.len() != source.len() || decoded.is_empty() {
        return None;
    }
    let (mut psnr, mut ssim) = (0.0, 0.0);
    for (d, s) in decoded.iter().zip(source) {
        psnr += d.psnr(s)?;
        ssim += d.ssim(s)?;
    }
    let n = decoded.len() as f64;
    Some((psnr / n, ssim / n))
}

/// Each written picture's best-matching source frame (by luma PSNR): the first searched over the
/// whole clip, each next one in [`MATCH_WINDOW`] after the previous match, wrapping at the clip's
/// end (the source loops). Returns (source index, PSNR) per written picture of the source's size.
fn match_written(written: &[Frame], source: &[Frame]) -> Vec<(usize, f64)> {
    let n = source.len() as isize;
    let mut matches: Vec<(usize, f64)> = Vec::new();
    for w in written {
        let candidates: Vec<usize> = match matches.last() {
            None => (0..source.len()).collect(),
            Some(&(prev, _)) => MATCH_WINDOW.map(|d| (prev as isize + d).rem_euclid(n) as usize).collect(),
        };
        let best = candidates
            .into_iter()
            .filter_map(|i| w.psnr(&source[i]).map(|p| (i, p)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some(m) = best {
            matches.push(m);
        }
    }
    matches
}

fn round(x: f64, places: i32) -> f64 {
    let k = 10f64.powi(places);
    (x * k).round() / k
}

fn quality_json(kbps: f64, scored: Option<(f64, f64)>) -> serde_json::Value {
    let (psnr, ssim) = scored.map_or((f64::NAN, f64::NAN), |s| s);
    serde_json::json!({ "actual_kbps": kbps.round(), "psnr_y_db": round(psnr, 2), "ssim_y": round(ssim, 4) })
}

/// hail's encoder (libaom with hail's realtime settings) at `kbps`, decoded by dav1d.
#[cfg(feature = "libaom")]
fn hail_encode(clip: &Clip, kbps: u32) -> serde_json::Value {
    let (w, h) = clip.size();
    let mut enc = hail::media::codec::aom::AomEncoder::new(w, h, clip.fps(), kbps * 1000, THREADS).expect("libaom");
    let mut units = Vec::new();
    let start = Instant::now();
    for f in &clip.frames {
        units.extend(enc.encode(f, false).expect("encode"));
    }
    units.extend(enc.flush().expect("flush"));
    let encode_s = start.elapsed().as_secs_f64();
    let bytes: usize = units.iter().map(|u| u.data.len()).sum();
    let mut dec = Dav1dDecoder::new(THREADS as u32).unwrap();
    let mut decoded = Vec::new();
    for u in &units {
        decoded.extend(dec.decode(&u.data).expect("dav1d decodes the stream"));
    }
    assert_eq!(decoded.len(), clip.frames.len(), "every frame decodes");
    let seconds = clip.frames.len() as f64 * f64::from(clip.rate.den()) / f64::from(clip.rate.num());
    let mut r = quality_json((bytes * 8) as f64 / seconds / 1000.0, score(&decoded, &clip.frames));
    r["encode_fps"] = round(clip.frames.len() as f64 / encode_s, 1).into();
    r
}

/// `-g` for the anchor: more frames than any clip has (hours at 25 fps).
const NO_AUTOMATIC_KEYFRAMES: u64 = 100_000;

/// ffmpeg's arguments for the anchor: `libaom-av1` with hail's settings (src/media/codec/aom.rs).
/// cpu-used 10 and the keyframe cap (`MAX_INTRA_BITRATE_PERCENT`) go through `-aom-params` (ffmpeg's
/// own `-cpu-used` stops at 8 and it has no option for the cap); ffmpeg derives the
/// buffer's optimal level from its size (5/6 of 1 s, hail sets 0.6 s) and has no option for it.
fn ffmpeg_anchor_args(clip: &Path, kbps: u32, out: &Path) -> Vec<String> {
    let rate = format!("{kbps}k");
    let initial = format!("{}k", kbps * 6 / 10); // rc_buf_initial_sz 600 ms
    let mut a: Vec<String> = ["-v", "error", "-y", "-i"].map(String::from).into();
    a.push(clip.display().to_string());
    for s in [
        "-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8", "-aom-params", "cpu-used=10:max-intra-rate=300",
        "-b:v", &rate, "-minrate", &rate, "-maxrate", &rate, // CBR
        "-bufsize", &rate, "-rc_init_occupancy", &initial, // rc_buf_sz 1000 ms, initial 600 ms
        "-undershoot-pct", "50", "-overshoot-pct", "50", "-qmin", "2", "-qmax", "52",
        "-lag-in-frames", "0", "-error-resilience", "0", "-drop-threshold", "0",
        "-threads", "2", "-tile-columns", "1", "-aq-mode", "3",
    ] {
        a.push(s.to_owned());
    }
    // Keyframes: none of libaom's own (hail sets kf_mode disabled, which ffmpeg has no option
    // for): a maximum distance beyond any clip's length makes none in the clip either.
    a.extend(["-g".into(), NO_AUTOMATIC_KEYFRAMES.to_string(), "-keyint_min".into(), "0".into()]);
    a.push(out.display().to_string());
    a
}

/// The anchor at `kbps`: ffmpeg encodes to IVF, ffmpeg decodes that to Y4M, this scores it.
fn ffmpeg_anchor(ffmpeg: &str, clip_path: &Path, clip: &Clip, kbps: u32, work: &Path) -> serde_json::Value {
    let ivf = work.join(format!("anchor-{kbps}.ivf"));
    let y4m = work.join(format!("anchor-{kbps}.y4m"));
    let run = |args: Vec<String>| {
        let status = Command::new(ffmpeg).args(&args).status().unwrap_or_else(|e| panic!("{ffmpeg}: {e}"));
        assert!(status.success(), "{ffmpeg} {args:?} failed");
    };
    let start = Instant::now();
    run(ffmpeg_anchor_args(clip_path, kbps, &ivf));
    let encode_s = start.elapsed().as_secs_f64();
    let decode = ["-v", "error", "-y", "-i"].iter().map(|s| s.to_string());
    run(decode.chain([ivf.display().to_string(), "-pix_fmt".into(), "yuv420p".into(), y4m.display().to_string()]).collect());
    let decoded = Clip::read(&y4m).expect("ffmpeg's decode reads back");
    // IVF: a 32-byte file header, then a 12-byte header per frame.
    let bytes = std::fs::metadata(&ivf).unwrap().len() as f64 - 32.0 - 12.0 * decoded.frames.len() as f64;
    let seconds = clip.frames.len() as f64 * f64::from(clip.rate.den()) / f64::from(clip.rate.num());
    let mut r = quality_json(bytes * 8.0 / seconds / 1000.0, score(&decoded.frames, &clip.frames));
    r["encode_fps"] = round(clip.frames.len() as f64 / encode_s, 1).into();
    r
}

/// A call of `seconds` with the clip as alice's camera; bob writes what he shows to `work/call-out.y4m`.

async fn clip_call(clip_path: &Path, clip: &Clip, seconds: u64, work: &Path) -> serde_json::Value {
    let out = work.join("call-out.y4m");
    // A file left by an earlier run must not stand in for a call that wrote nothing.
    let _ = std::fs::remove_file(&out);
    let options = |input: &str, output: &str, auto_answer: bool| {
        let mut o = DaemonOptions::loopback("tone:440", "null");
        o.calls.auto_answer = Some(auto_answer);
        o.video.encoder = Some("libaom".into());
        o.video.input = Some(input.into());
        o.video.output = Some(output.into());
        o
    };
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = call::active_call(
        dir.path(),
        options(&clip_path.display().to_string(), "null", false),
        options("pattern", &out.display().to_string(), true),
    )
    .await;
    let a = alice.node().clone();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let sender = a.status().await.unwrap().call.and_then(|c| c.video_stats).unwrap();
    a.hangup().await.unwrap();
    alice.stop().await;
    bob.stop().await;

    let written = Clip::read(&out).map(|c| c.frames).unwrap_or_default();
    let written_size = written.first().map(|f| (f.width, f.height));
    // The sender sends its format's size (the clip fitted into it, black bars where the shapes
    // differ): the picture area, back to the clip's size, to compare.
    let (w, h) = clip.size();
    let unfit = |f: &Frame| -> Option<Frame> {
        if (f.width, f.height) == (w, h) {
            return Some(f.clone());
        }
        f.cropped(f.fit((w, h)))?.scaled(w, h)
    };
    let written: Vec<Frame> = written.iter().filter_map(unfit).collect();
    let matches = match_written(&written, &clip.frames);
    let psnrs: Vec<f64> = matches.iter().map(|m| m.1).collect();
    let mean = psnrs.iter().sum::<f64>() / psnrs.len().max(1) as f64;
    let mut sorted = psnrs.clone();
    sorted.sort_by(f64::total_cmp);
    let p10 = sorted.get(sorted.len() / 10).copied().unwrap_or(f64::NAN);
    // The ceiling the scaling alone sets: every source frame to the written size and back, uncoded.
    let resampled: Option<Vec<Frame>> = written_size
        .filter(|&s| s != (w, h))
        .map(|(sw, sh)| clip.frames.iter().filter_map(|f| unfit(&f.fitted(sw, sh)?)).collect());
    let resample_psnr = resampled.and_then(|r| score(&r, &clip.frames)).map_or(99.0, |s| s.0);
    serde_json::json!({
        "seconds": seconds,
        "sent_format": format!("{}x{}@{}", sender.send.width, sender.send.height, sender.send.target_fps),
        "send_kbps": sender.send_bitrate / 1000,
        "target_kbps": sender.send.target_bitrate / 1000,
        "written_size": written_size.map(|(sw, sh)| format!("{sw}x{sh}")),
        "resample_only_psnr_y_db": round(resample_psnr, 2),
        "written_frames": written.len(),
        "scored_frames": matches.len(),
        "psnr_y_db": { "mean": round(mean, 2), "p10": round(p10, 2) },
    })
}

/// The smoke run: known answers from the scoring, and the generated clip through hail's encoder.
fn smoke() -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("generated.y4m");
    let (w, h) = (320, 180);
    let rate = FrameRate::new(25, 1).unwrap();
    let mut writer = Y4mWriter::create(&path, w, h, rate).unwrap();
    let source: Vec<Frame> =
        (0..12).map(|n| pattern::draw(w, h, Stamp { counter: n, capture_ms: n * 40 }).unwrap()).collect();
    for f in &source {
        writer.write(f).unwrap();
    }
    writer.finish(rate).unwrap();
    let clip = Clip::read(&path).unwrap();
    assert_eq!(clip.frames, source, "the generated Y4M reads back");
    // A wide picture fitted into the sending format and cut back out is the same picture.
    let wide = pattern::draw(320, 136, Stamp { counter: 5, capture_ms: 0 }).unwrap();
    let sent = wide.fitted(320, 180).unwrap();
    assert_eq!(sent.cropped(sent.fit((320, 136))), Some(wide), "letterbox and crop undo each other");
    assert_eq!(clip.fps(), 25);

    // Identical frames: SSIM 1, PSNR at its cap.
    assert_eq!(score(&clip.frames, &source), Some((99.0, 1.0)));
    // A known noise: ±4 on every other luma sample (towards mid-grey, so never clipped) is a mean
    // squared error of 8, so 10·log10(255²/8) dB.
    let noisy: Vec<Frame> = source
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f.y.iter_mut().step_by(2).for_each(|p| *p = if *p < 128 { *p + 4 } else { *p - 4 });
            f
        })
        .collect();
    let expected = 10.0 * (255.0f64 * 255.0 / 8.0).log10();
    let (psnr, ssim) = score(&noisy, &source).unwrap();
    assert!((psnr - expected).abs() < 1e-9, "noise: {psnr} dB, expected {expected}");
    assert!(ssim < 1.0 && ssim > 0.9, "noise: SSIM {ssim}");
    assert_eq!(score(&noisy[1..], &source), None, "a lost frame is no score");

    // Matching: pictures 3, 4, 4 (repeated), 6 (5 skipped), 11, then 0 (the source looped).
    let written: Vec<Frame> = [3, 4, 4, 6, 11, 0].iter().map(|&i| noisy[i].clone()).collect();
    let matches = match_written(&written, &source);
    assert_eq!(matches.iter().map(|m| m.0).collect::<Vec<_>>(), vec![3, 4, 4, 6, 11, 0]);
    assert!(matches.iter().all(|m| (m.1 - expected).abs() < 1e-9), "{matches:?}");
    // A picture of another size is not scored.
    assert!(match_written(&[Frame::black(160, 90).unwrap()], &source).is_empty());

    // The anchor's command line carries hail's settings.
    let args = ffmpeg_anchor_args(&path, 300, &dir.path().join("a.ivf")).join(" ");
    for setting in [
        "-usage realtime",
        "cpu-used=10:max-intra-rate=300",
        "-b:v 300k -minrate 300k -maxrate 300k",
        "-bufsize 300k -rc_init_occupancy 180k",
        "-lag-in-frames 0",
        "-threads 2",
        "-aq-mode 3",
        "-g 100000 -keyint_min 0",
    ] {
        assert!(args.contains(setting), "{setting} missing from: {args}");
    }

    #[cfg(feature = "libaom")]
    {
        let cap = format!("max-intra-rate={}", hail::media::codec::aom::MAX_INTRA_BITRATE_PERCENT);
        assert!(args.contains(&cap), "the anchor's keyframe cap is hail's ({cap}): {args}");
        let r = hail_encode(&clip, 300);
        assert!(r["psnr_y_db"].as_f64().unwrap() > 25.0, "the pattern survives 300 kbps: {r}");
        r
    }
    #[cfg(not(feature = "libaom"))]
    serde_json::json!({ "encode": "no libaom" })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args::BenchArgs::from_env(&["--clip", "--ffmpeg", "--out"]);
    if !args.bench {
        let r = smoke();
        println!("{}", serde_json::json!({ "bench": "video_quality", "smoke": r }));
        return;
    }
    let Some(clip_path) = args.value("--clip").map(PathBuf::from) else {
        eprintln!("video_quality: --clip FILE.y4m is required (scripts/bench-video-quality.sh fetches one)");
        std::process::exit(2);
    };
    let clip = Clip::read(&clip_path).unwrap_or_else(|e| {
        eprintln!("video_quality: {e}");
        std::process::exit(2);
    });
    let ffmpeg = args.value("--ffmpeg").unwrap_or("ffmpeg");
    let work = args.value("--out").map_or_else(|| std::env::temp_dir().join("hail-video-quality"), PathBuf::from);
    std::fs::create_dir_all(&work).expect("the output directory");
    let seconds: u64 = args.number().unwrap_or(10);
    let (w, h) = clip.size();
    let mut encodes = Vec::new();
    for kbps in BITRATES_KBPS {
        #[cfg(feature = "libaom")]
        let hail = hail_encode(&clip, kbps);
        #[cfg(not(feature = "libaom"))]
        let hail = serde_json::Value::Null;
        let anchor = ffmpeg_anchor(ffmpeg, &clip_path, &clip, kbps, &work);
        let r = serde_json::json!({ "target_kbps": kbps, "hail": hail, "ffmpeg_libaom": anchor });
        eprintln!("{r}");
        encodes.push(r);
    }
    let call = clip_call(&clip_path, &clip, seconds, &work).await;
    eprintln!("{call}");
    println!(
        "{}",
        serde_json::json!({
            "bench": "video_quality",
            "clip": { "file": clip_path.display().to_string(), "size": format!("{w}x{h}"), "fps": clip.fps(), "frames": clip.frames.len() },
            "encodes": encodes,
            "call": call,
        })
    );
}
