//! Sound devices for real: cpal on ALSA, with an asoundrc (in a throw-away HOME) whose default
//! device is ALSA's `file` plugin over `null`, on named pipes this test paces at 48 kHz. cpal's
//! capture and playback threads, its buffer sizes, hail's ring buffers and resampling all run as
//! with a sound card; the pipes stand in for the card's clock. What hail's microphone source
//! yields must be what ALSA captured, and what hail's speaker sink is given must come out of the
//! "speaker" as the same tone, at its pitch. The microphone's processing (echo cancellation, noise
//! suppression, gain control) runs on that path too, its far end what the speaker reports it
//! played.
//!
//! One test in its own binary: ALSA reads its configuration once per process, from `$HOME`.

use std::f64::consts::TAU;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hail::media::audio_processing::CallAudioProcessing;
use hail::media::codec::opus::Pcm;
use hail::media::io::{SinkSpec, SourceSpec, open_sink, open_source};

const RATE: usize = 48_000;
/// 20 ms at 48 kHz, 16-bit mono: what each pipe moves per tick.
const TICK_BYTES: usize = RATE / 50 * 2;
/// Nine whole periods in a 20 ms frame, so a frame of the tone is all at one frequency bin.
const TONE_HZ: f64 = 450.0;

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

/// Runs `tick` every 20 ms (absolute deadlines, so the pace is 48 kHz on average) until `stop`.
fn paced(stop: &AtomicBool, mut tick: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) && tick() {
        n += 1;
        if let Some(wait) = (start + Duration::from_millis(20) * n).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

/// The microphone's samples: a continuous tone into a pipe, as fast as ALSA takes it (its pace is
/// set by the microphone's clock pipe). ALSA may open the pipe more than once (cpal asks for the
/// device's formats before it opens the stream): each opening gets the tone from its start.
fn feed_microphone(pipe: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let period: Vec<u8> =
        (0..960).flat_map(|i| (((i as f64 / RATE as f64 * TONE_HZ * TAU).sin() * 8000.0) as i16).to_le_bytes()).collect();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Ok(mut w) = std::fs::OpenOptions::new().write(true).open(&pipe) else { return };
            while !stop.load(Ordering::Relaxed) && w.write_all(&period).is_ok() {}
        }
    })
}

/// A device's pipe, drained at 48 kHz: its clock. Returns every sample that went through.
fn drain(pipe: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<i16>> {
    std::thread::spawn(move || {
        let mut played = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Ok(mut r) = std::fs::File::open(&pipe) else { break };
            let mut buf = vec![0u8; TICK_BYTES];
            paced(&stop, || match r.read(&mut buf) {
                Ok(0) | Err(_) => false,
                Ok(n) => {
                    played.extend(buf[..n & !1].chunks(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
                    true
                }
            });
        }
        played
    })
}

/// The share of `x`'s power at `hz` (Goertzel): 1 for a tone at `hz` with whole periods in `x`,
/// about 0.2 for one 8 % off (44.1 kHz audio played as 48 kHz), 0 for silence.
fn tone_share(x: &[i16], hz: f64) -> f64 {
    let w = TAU * hz / RATE as f64;
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s = v as f64 + 2.0 * w.cos() * s1 - s2;
        (s2, s1) = (s1, s);
    }
    let power = (s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2) / (x.len() as f64).powi(2) * 2.0;
    let total = x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len() as f64;
    if total > 0.0 { power / total } else { 0.0 }
}

#[test]
fn microphone_and_speaker_carry_a_tone_through_cpal_and_alsa() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mic, mic_clock, speaker) = (d.join("microphone.pipe"), d.join("microphone-clock.pipe"), d.join("speaker.pipe"));
    mkfifo(&mic);
    mkfifo(&mic_clock);
    mkfifo(&speaker);
    // Each side: `plug` (converts whatever cpal asks for to 48 kHz mono S16) over `file` over `null`.
    // The microphone reads its samples from one pipe and writes what it captured to another, which
    // paces it (`null` alone would capture as fast as the CPU goes); the speaker writes to a pipe.
    let asoundrc = format!(
        r#"
pcm.!default {{ type asym playback.pcm "hail_speaker" capture.pcm "hail_microphone" }}
pcm.hail_speaker {{ type plug slave {{ pcm "hail_speaker_pipe" format S16_LE rate 48000 channels 1 }} }}
pcm.hail_speaker_pipe {{ type file slave.pcm "null" file "{speaker}" format "raw" }}
pcm.hail_microphone {{ type plug slave {{ pcm "hail_microphone_pipe" format S16_LE rate 48000 channels 1 }} }}
pcm.hail_microphone_pipe {{ type file slave.pcm "null" file "{mic_clock}" infile "{mic}" format "raw" }}
"#,
        speaker = speaker.display(),
        mic = mic.display(),
        mic_clock = mic_clock.display(),
    );
    std::fs::write(d.join(".asoundrc"), asoundrc).unwrap();
    // SAFETY: the only test in this binary, before any thread of its own or ALSA call.
    unsafe { std::env::set_var("HOME", d) };

    let stop = Arc::new(AtomicBool::new(false));
    let microphone = feed_microphone(mic.clone(), stop.clone());
    let microphone_clock = drain(mic_clock.clone(), stop.clone());
    let speaker_clock = drain(speaker.clone(), stop.clone());

    let list = hail::media::io::list_devices();
    assert!(list.inputs.iter().any(|n| n == "hail_microphone"), "{list:?}");
    let mut source = open_source(&SourceSpec::DefaultDevice).expect("the asoundrc's microphone opens");
    let mut sink = open_sink(&SinkSpec::DefaultDevice).expect("the asoundrc's speaker opens");
    let mut processing = CallAudioProcessing::new(sink.played_audio());
    assert!(sink.played_audio().is_none(), "what the speaker played has one reader");

    // The call's clock: every 20 ms a frame from the microphone, and a frame of the tone to the speaker.
    let tone: Pcm = std::array::from_fn(|i| ((i as f64 / RATE as f64 * TONE_HZ * TAU).sin() * 8000.0) as i16);
    let mut heard = Vec::new();
    let start = Instant::now();
    for n in 1..=150u32 {
        let frame = source.next_frame();
        heard.push(frame);
        // As the call's media task does: the microphone's frame processed (a copy here: the
        // frames themselves are checked against what ALSA captured below), the speaker fed.
        let mut processed = frame;
        processing.captured(&mut processed);
        processing.given_to_sink(&tone);
        sink.write_frame(&tone);
        if let Some(wait) = (start + Duration::from_millis(20) * n).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    drop(source);
    drop(sink);
    stop.store(true, Ordering::Relaxed);
    // Unblock a thread still waiting in open() for the other end.
    for pipe in [&mic, &mic_clock, &speaker] {
        let _ = std::fs::OpenOptions::new().read(true).write(true).open(pipe);
    }
    microphone.join().unwrap();
    let captured = microphone_clock.join().unwrap();
    let played = speaker_clock.join().unwrap();

    // The microphone: ALSA's `file` plugin (alsa-lib 1.2.8) does not hand the pipe's tone on intact
    // (every 480 samples it jumps), so the reference is what ALSA captured, as the plugin wrote it
    // to the clock pipe. After half a second of start-up, most frames hail's source yields must be
    // a stretch of that, sample for sample (±2 for the float round trip through cpal): a frame that
    // is silent, padded, resampled, or mixed wrongly matches nowhere.
    let mut from = 0;
    let mut matching = 0;
    for frame in &heard[25..] {
        let found = (from..captured.len().saturating_sub(960))
            .find(|&at| frame.iter().zip(&captured[at..]).all(|(a, b)| (*a as i32 - *b as i32).abs() <= 2));
        if let Some(at) = found {
            (from, matching) = (at + 960, matching + 1);
        }
    }
    // The canceller's far end: what the speaker played, as it played it (about 3 s; silence
    // counts where the ring ran dry), not nothing and not more than went through the speaker.
    let far = processing.far_end_samples() as usize;
    eprintln!("the canceller was given {far} samples the speaker played ({} went through the speaker)", played.len());
    assert!(far >= 2 * RATE, "the canceller was given only {far} samples of what the speaker played");
    assert!(far <= played.len() + RATE / 2, "the canceller was given {far} samples, the speaker played {}", played.len());
    // The speaker: the tone, at its pitch.
    let played_frames = played.len().saturating_sub(RATE / 2) / 960;
    let played_tone = played.get(RATE / 2..).unwrap_or_default().chunks_exact(960).filter(|f| tone_share(f, TONE_HZ) > 0.8).count();
    eprintln!("microphone: {matching} of 125 frames are what ALSA captured; speaker: {played_tone} of {played_frames} frames are the tone");
    assert!(matching >= 125 / 2, "the microphone source yields what ALSA captured in only {matching} of 125 frames");
    assert!(played_frames >= 50, "the speaker played only {} samples in 3 s", played.len());
    assert!(played_tone >= played_frames / 2, "the speaker played the tone in only {played_tone} of {played_frames} frames");
}
