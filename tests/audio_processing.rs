//! The microphone's processing (echo cancellation, noise suppression, gain control) on a
//! deterministic simulated room (tests/common/echo_room.rs): it must remove the echo of what the
//! speaker plays, and let the near-end talker through while both talk. Quality thresholds on a
//! synthetic scene, no timing.

#[path = "common/echo_room.rs"]
mod echo_room;
#[path = "common/speech.rs"]
mod speech;

use echo_room::{Room, Scene, Separated, erle_db, impulse_response, power, process};
use speech::pearson as correlation;
use hail::media::audio_processing::{AudioProcessor, CallAudioProcessing, tuned_aec3_config};
use hail::media::codec::opus::{FRAME_SAMPLES, Pcm};
use sonora::config::EchoCanceller3Config;

#[test]
fn the_rooms_impulse_response_is_seeded_and_decays() {
    let ir = impulse_response(0x5eed, 300, echo_room::RT60_S);
    assert_eq!(ir, impulse_response(0x5eed, 300, echo_room::RT60_S), "the same seed gives the same room");
    assert_ne!(ir, impulse_response(0x5eee, 300, echo_room::RT60_S));
    assert_eq!(ir[0].0, 0, "the direct path comes first");
    let energy: f64 = ir.iter().map(|t| t.1 * t.1).sum();
    assert!((energy - echo_room::ECHO_PATH_GAIN).abs() < 1e-9, "{energy}");
    // 60 dB per RT60: the last 20 ms hold far less energy than the 20 ms after the direct path.
    let window = |from: usize| ir.iter().filter(|t| (from..from + 960).contains(&t.0)).map(|t| t.1 * t.1).sum::<f64>();
    let (early, late) = (window(48), window(ir.last().unwrap().0 - 960));
    assert!(10.0 * (early / late).log10() > 15.0, "early {early} late {late}");
    // The speaker clips softly: a full-scale sample comes out quieter, a quiet one unchanged.
    let room = Room { taps: vec![(0, 1.0)], bulk_delay: 0, drive: 2.0 };
    let out = room.echo(&[30_000.0, 100.0]);
    assert!(out[0] < 25_000.0 && (out[1] - 100.0).abs() < 0.1, "{out:?}");
}

fn scene() -> Scene {
    let far = speech::speech_like_talker(12.0, 11);
    let near = speech::speech_like_talker(6.0, 23);
    Scene::new(&Room::standard(), &far[..8 * echo_room::RATE], &far[8 * echo_room::RATE..], &near, 30.0)
}

/// Echo cancellation (hail's Kalman canceller, what a call runs) and noise suppression, without
/// the gain control: the gain it adds is the near end's level, not the echo's, and would hide in
/// the ERLE.
fn canceller() -> AudioProcessor {
    AudioProcessor::with_parts(true, true, false)
}

/// The same with AEC3 as hail tuned it instead (what calls ran before), to compare.
fn tuned_aec3() -> AudioProcessor {
    AudioProcessor::with_echo_canceller(Some(tuned_aec3_config()), true, false)
}

#[test]
fn the_echo_of_what_the_speaker_played_is_removed() {
    let s = scene();
    let with_echo = process(&mut canceller(), &s.far, &s.microphone(true));
    let without_echo = process(&mut canceller(), &s.far, &s.microphone(false));
    // After 2 s of convergence, far end alone.
    let converged = s.far_only.start + 2 * echo_room::RATE..s.far_only.end;
    let erle = erle_db(&s.echo, &with_echo, &without_echo, converged);
    eprintln!("far-end-only ERLE {erle:.1} dB");
    assert!(erle >= 25.0, "echo return loss enhancement {erle:.1} dB, want >= 25");
    // Off, nothing is removed.
    let off = process(&mut AudioProcessor::with_parts(false, false, false), &s.far, &s.microphone(true));
    let off_without = process(&mut AudioProcessor::with_parts(false, false, false), &s.far, &s.microphone(false));
    let erle_off = erle_db(&s.echo, &off, &off_without, s.far_only.start + 2 * echo_room::RATE..s.far_only.end);
    assert!(erle_off < 3.0, "without the canceller the echo dropped {erle_off:.1} dB");
}

#[test]
fn the_near_end_talks_through_the_echo() {
    let s = scene();
    let with_echo = process(&mut canceller(), &s.far, &s.microphone(true));
    let without_echo = process(&mut canceller(), &s.far, &s.microphone(false));
    let dt = s.double_talk.clone();
    let erle = erle_db(&s.echo, &with_echo, &without_echo, dt.clone());
    // The near end's energy is kept: the processed double talk is about as loud as the processed
    // near end alone, and is mostly it.
    let kept = 10.0 * (power(&with_echo[dt.clone()]) / power(&without_echo[dt.clone()])).log10();
    let like = correlation(&with_echo[dt.clone()], &without_echo[dt.clone()]);
    let unprocessed = correlation(&s.microphone(true)[dt.clone()], &s.near[dt.clone()]);
    eprintln!("double talk: ERLE {erle:.1} dB, near end kept {kept:+.1} dB, correlation {like:.2} (unprocessed {unprocessed:.2})");
    assert!(kept > -3.0, "the near end came out {kept:+.1} dB quieter in double talk");
    assert!(like > 0.6, "double talk correlates only {like:.2} with the near end processed alone");
    // Whatever the canceller does to the near end counts as residual echo here (25.4 dB on this
    // scene; 8.5 with the tuned AEC3, about 2 with WebRTC's defaults; see docs/performance.md):
    // it must not turn the echo up.
    assert!(erle > 0.0, "double talk came out with more echo than went in ({erle:.1} dB)");
    // The echo alone, in the state the double talk put the canceller in (phase inversion, see
    // benches/echo.rs): taken down while both talk.
    let inverted = process(&mut canceller(), &s.far, &s.microphone_near_inverted());
    let separated = Separated::new(&with_echo, &inverted);
    let erle_separated = separated.erle_db(&s.echo, dt.clone());
    let near_kept = correlation(&separated.near[dt.clone()], &without_echo[dt.clone()]);
    eprintln!("double talk, separated: ERLE {erle_separated:.1} dB, near end's part correlates {near_kept:.2}");
    // 28.1 dB on this scene (18.6 with the tuned AEC3, 17.3 with WebRTC's defaults), the issue's
    // goal 15 dB.
    assert!(erle_separated >= 15.0, "double-talk ERLE {erle_separated:.1} dB (separated), want >= 15");
    assert!(near_kept > 0.7, "the near end's part correlates only {near_kept:.2} with it processed alone");
    // What the Kalman canceller is for: the near end comes through double talk nearly untouched,
    // where AEC3's suppressor takes it down with the echo. Measured: the near end's part 29.3 dB
    // above what processing changed in it, the tuned AEC3's 12.4 dB.
    let aec3 = |mic: &[f64]| process(&mut tuned_aec3(), &s.far, mic);
    let aec3_separated = Separated::new(&aec3(&s.microphone(true)), &aec3(&s.microphone_near_inverted()));
    let aec3_alone = aec3(&s.microphone(false));
    // How far the near end's part is from the near end processed alone: its power over the
    // difference's, dB.
    let intact = |part: &[f64], alone: &[f64]| {
        let change: Vec<f64> = part.iter().zip(alone).map(|(p, a)| p - a).collect();
        10.0 * (power(alone) / power(&change).max(1e-9)).log10()
    };
    let kalman_intact = intact(&separated.near[dt.clone()], &without_echo[dt.clone()]);
    let aec3_intact = intact(&aec3_separated.near[dt.clone()], &aec3_alone[dt.clone()]);
    eprintln!("double talk, separated: the near end's part {kalman_intact:.1} dB above its change; the tuned AEC3's {aec3_intact:.1} dB");
    assert!(kalman_intact > 20.0 && kalman_intact > aec3_intact + 6.0, "the near end's part: {kalman_intact:.1} dB above its change, AEC3's {aec3_intact:.1} dB");
    // Half the sum takes out the near end exactly when processing is linear: with the canceller
    // off, nothing of the echo is removed.
    let off = |mic: &[f64]| process(&mut AudioProcessor::with_parts(false, false, false), &s.far, mic);
    let separated_off = Separated::new(&off(&s.microphone(true)), &off(&s.microphone_near_inverted()));
    let erle_off = separated_off.erle_db(&s.echo, dt.clone());
    assert!(erle_off.abs() < 1.0, "without processing, the separated echo is the echo: {erle_off:.1} dB");
}

/// A headset: the far end plays, nothing of it reaches the microphone. What `run` (the far end,
/// the microphone → the processed microphone) makes of the near end while the far end plays,
/// against itself with nothing played: (level kept, dB; correlation).
fn headset_near_end(s: &Scene, mut run: impl FnMut(&[f64], &[f64]) -> Vec<f64>) -> (f64, f64) {
    let headset = run(&s.far, &s.microphone(false));
    let nothing_played = run(&vec![0.0; s.far.len()], &s.microphone(false));
    let dt = s.double_talk.clone();
    let kept = 10.0 * (power(&headset[dt.clone()]) / power(&nothing_played[dt.clone()])).log10();
    (kept, correlation(&headset[dt.clone()], &nothing_played[dt]))
}

/// AEC3 with WebRTC's defaults instead of a call's tuning, with the noise suppressor and, if
/// `gain`, the gain control.
fn webrtc_defaults(gain: bool) -> AudioProcessor {
    AudioProcessor::with_echo_canceller(Some(EchoCanceller3Config::default()), true, gain)
}

#[test]
fn the_near_end_is_kept_when_nothing_of_the_far_end_echoes() {
    let s = scene();
    let (kept, like) = headset_near_end(&s, |far, mic| process(&mut canceller(), far, mic));
    eprintln!("headset: near end kept {kept:+.2} dB, correlation {like:.3} with nothing played");
    // AEC3 with WebRTC's defaults took the near end 2.9 dB down here (correlation 0.79): its
    // filters adapt to what the near end has in common with the far end, and with no usable
    // linear filter it models the echo as the far end at 0 dB (docs/performance.md). These
    // floors were set then and stay; the call's tuning is held to more in the next test.
    assert!(kept > -3.5, "the near end came out {kept:+.1} dB quieter with nothing echoing");
    assert!(like > 0.75, "the near end correlates only {like:.3} with itself processed with nothing played");
}

/// Runs a call's processing over `far` and `mic` as a call does, 20 ms at a time: what was given
/// to the sink, then what the microphone captured.
fn in_call_frames(far: &[f64], mic: &[f64], mut frame: impl FnMut(&Pcm, &mut Pcm)) -> Vec<f64> {
    let to_i16 = |x: Option<&f64>| x.map_or(0, |x| x.round().clamp(-32_768.0, 32_767.0) as i16);
    let mut out = Vec::with_capacity(mic.len());
    for (k, m) in mic.chunks(FRAME_SAMPLES).enumerate() {
        let played: Pcm = std::array::from_fn(|i| to_i16(far.get(k * FRAME_SAMPLES + i)));
        let mut captured: Pcm = std::array::from_fn(|i| to_i16(m.get(i)));
        frame(&played, &mut captured);
        out.extend(captured[..m.len()].iter().map(|&x| f64::from(x)));
    }
    out
}

#[test]
fn a_calls_echo_canceller_keeps_a_headsets_near_end_better_than_webrtcs_defaults() {
    // The call's canceller (Kalman) and AEC3 as hail tuned it (audio_processing::tuned_aec3_config)
    // against AEC3's defaults, each with the noise suppressor. Measured: Kalman +0.01 dB and
    // 0.999, tuned AEC3 -0.28 dB and 0.981, defaults -2.94 dB and 0.789. With the tuning not
    // applied, the tuned AEC3 is the defaults and this fails.
    let s = scene();
    let (kept, like) = headset_near_end(&s, |far, mic| process(&mut canceller(), far, mic));
    let (kept_tuned, like_tuned) = headset_near_end(&s, |far, mic| process(&mut tuned_aec3(), far, mic));
    let (kept_defaults, like_defaults) = headset_near_end(&s, |far, mic| process(&mut webrtc_defaults(false), far, mic));
    eprintln!(
        "headset, a call's canceller: kept {kept:+.2} dB, correlation {like:.3}; tuned AEC3 {kept_tuned:+.2} dB, {like_tuned:.3}; WebRTC's defaults: {kept_defaults:+.2} dB, {like_defaults:.3}"
    );
    for (name, k, l) in [("a call's canceller", kept, like), ("the tuned AEC3", kept_tuned, like_tuned)] {
        assert!(k > kept_defaults + 2.0, "{name}: the near end kept {k:+.2} dB, with the defaults {kept_defaults:+.2} dB");
        assert!(l > like_defaults + 0.15, "{name}: the near end correlates {l:.3}, with the defaults {like_defaults:.3}");
        assert!(k > -1.0 && l > 0.95, "{name}: a headset's near end: {k:+.2} dB, correlation {l:.3}");
    }
    // What a call runs (CallAudioProcessing: gain control too, the far end what the call gave its
    // sink), against AEC3 with WebRTC's defaults as calls ran it before the tuning. Correlation
    // only: the gain control sets the level. Measured: 0.997 (0.974 with the tuned AEC3), with
    // the defaults 0.696.
    let (_, like_call) = headset_near_end(&s, |far, mic| {
        let mut call = CallAudioProcessing::new(None);
        in_call_frames(far, mic, |played, captured| {
            call.given_to_sink(played);
            call.captured(captured);
        })
    });
    let (_, like_call_defaults) = headset_near_end(&s, |far, mic| {
        let mut p = webrtc_defaults(true);
        in_call_frames(far, mic, |played, captured| {
            p.far_end(played);
            p.near_end(captured);
        })
    });
    eprintln!("headset, a call's processing: correlation {like_call:.3}; with WebRTC's defaults {like_call_defaults:.3}");
    assert!(like_call > like_call_defaults + 0.2, "a call's near end correlates {like_call:.3}, with the defaults {like_call_defaults:.3}");
}
