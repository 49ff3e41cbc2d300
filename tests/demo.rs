//! `hail demo`, the README's first command, as a user runs it: both sides print the same four
//! emoji, the call carries audio and video both ways, and the files it leaves behind decode: each
//! WAV is the other side's tone, each Y4M the moving test pattern, every picture in it whole.

use std::f64::consts::TAU;
use std::process::Command;

use hail::media::video::pattern;
use hail::media::video::y4m::Y4mReader;

const HAIL: &str = env!("CARGO_BIN_EXE_hail");

/// The text after `prefix` on the line that starts with it.
fn line_after<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{text}"))
        .trim()
}

/// The share of `x`'s power at `hz` (Goertzel over the whole of `x`): near 1 for a tone at `hz`.
fn tone_share(x: &[i16], hz: f64) -> f64 {
    let c = 2.0 * (TAU * hz / 48_000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        (s2, s1) = (s1, v as f64 + c * s1 - s2);
    }
    let power = (s1 * s1 + s2 * s2 - c * s1 * s2) * 2.0 / (x.len() as f64).powi(2);
    let total = x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len() as f64;
    if total > 0.0 { power / total } else { 0.0 }
}

/// The first number in `text` after `word`, e.g. `number_after("sent 47 frames", "sent")`.
fn number_after(text: &str, word: &str) -> u64 {
    let rest = &text[text.find(word).unwrap_or_else(|| panic!("no {word:?} in {text:?}")) + word.len()..];
    rest.split(|c: char| !c.is_ascii_digit()).find(|w| !w.is_empty()).and_then(|w| w.parse().ok()).unwrap()
}

#[test]
fn demo_shows_the_same_emoji_on_both_sides_and_writes_files_that_decode() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(HAIL).args(["demo", "--seconds", "2"]).current_dir(dir.path()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "hail demo failed:\n{text}{}", String::from_utf8_lossy(&out.stderr));

    // The emoji each side derived from its own end of the handshake: four, and the same.
    let (alice, bob) = (line_after(&text, "alice sees:"), line_after(&text, "bob sees:"));
    assert_eq!(alice, bob, "{text}");
    assert_eq!(alice.split("  ").filter(|w| !w.trim().is_empty()).count(), 4, "four emoji: {alice:?}");
    assert!(text.contains("identical: nobody is in the middle"), "{text}");

    // Both sides sent audio and video, at a rate that is not zero.
    let stats: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with("audio: sent")).collect();
    assert_eq!(stats.len(), 2, "{text}");
    for line in stats {
        assert!(number_after(line, "sent") > 0 && number_after(line, "frames (") > 0, "{line}");
    }
    let video: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with("video: sent")).collect();
    assert_eq!(video.len(), 2, "{text}");
    for line in &video {
        // "sent 640x360 30 fps 349 kbps": the rate sent, then the bitrate.
        assert!(number_after(line, "640x360") > 0 && number_after(line, " fps") > 0, "{line}");
    }

    // What each side heard: the other side's tone (alice sends 440 Hz, bob 660 Hz), not silence.
    for (file, tone, other) in [("hail-demo-alice-heard.wav", 660.0, 440.0), ("hail-demo-bob-heard.wav", 440.0, 660.0)] {
        let samples = hail::media::io::read_wav_mono_48k(&dir.path().join(file)).expect(file);
        assert!(samples.len() >= 48_000, "{file}: {} samples for a 2 s call", samples.len());
        let rms = (samples.iter().map(|s| (*s as f64).powi(2)).sum::<f64>() / samples.len() as f64).sqrt();
        assert!(rms > 500.0, "{file} is (nearly) silent: rms {rms:.0}");
        // The middle half second, well after start-up.
        let middle = &samples[samples.len() / 2 - 12_000..samples.len() / 2 + 12_000];
        let (share, wrong) = (tone_share(middle, tone), tone_share(middle, other));
        assert!(share > 0.5 && wrong < 0.05, "{file}: {tone} Hz has {share:.2} of the power, {other} Hz {wrong:.2}");
    }

    // What each side saw: a Y4M whose every picture is whole and is the test pattern, as many as the
    // demo says that side showed (it read them before the hang-up; more may follow).
    for (file, stats) in [("hail-demo-alice-seen.y4m", video[0]), ("hail-demo-bob-seen.y4m", video[1])] {
        let path = dir.path().join(file);
        let mut reader = Y4mReader::open(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(reader.size(), (640, 360), "{file}");
        let mut frames = 0u64;
        let mut counters = Vec::new();
        loop {
            match reader.next_frame() {
                Ok(Some(f)) => {
                    frames += 1;
                    counters.push(pattern::read(&f).unwrap_or_else(|| panic!("{file}: picture {frames} is not the pattern")).counter);
                }
                Ok(None) => break,
                Err(e) => panic!("{file}: picture {} does not decode: {e}", frames + 1),
            }
        }
        // "received 640x360 30 fps, 58 frames shown"
        let shown = number_after(&stats[stats.find("received").unwrap()..], "fps,");
        assert!(shown > 0 && frames >= shown, "{file}: {frames} pictures, but the demo said {shown} were shown");
        assert!(counters.windows(2).all(|w| w[1] > w[0]), "{file}: the pattern does not move forward: {counters:?}");
    }
}
