//! A group call's receiving audio, sans-IO and deterministic: senders' tones through real Opus,
//! into `media::group_audio::GroupAudioReceiver`, mixed per 20 ms tick in simulated time.

use std::f64::consts::TAU;
use std::time::{Duration, Instant};

use hail::crypto::sender_key::SenderIndex;
use hail::media::active_speaker::SpeakerEvent;
use hail::media::codec::opus::{DEFAULT_BITRATE, FRAME_SAMPLES, OpusDecoder, OpusEncoder, Pcm, SAMPLE_RATE};
use hail::media::group_audio::{GroupAudioError, GroupAudioReceiver, MAX_OPUS_FRAME, MAX_SENDERS, MixedFrame};
use hail::media::limiter::CEILING;
use hail::media::packet::AudioPacket;

const TICK: Duration = Duration::from_millis(20);

/// Goertzel: the power of `x` at `freq`, dB (relative, for comparisons).
fn tone_power_db(x: &[i16], freq: f64) -> f64 {
    let w = TAU * freq / f64::from(SAMPLE_RATE);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    10.0 * (power.max(1e-9) / (x.len() as f64).powi(2)).log10()
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

fn tone_frame(freq: f64, amplitude: f64, n: u32) -> Pcm {
    std::array::from_fn(|i| {
        let t = (n as usize * FRAME_SAMPLES + i) as f64 / f64::from(SAMPLE_RATE);
        (amplitude * (t * freq * TAU).sin()).round().clamp(-32_768.0, 32_767.0) as i16
    })
}

/// One sender: a real Opus encoder and its sequence numbers.
struct Talker {
    index: SenderIndex,
    freq: f64,
    encoder: OpusEncoder,
    seq: u32,
}

impl Talker {
    fn new(index: u8, freq: f64) -> Self {
        Talker { index: SenderIndex(index), freq, encoder: OpusEncoder::new(DEFAULT_BITRATE).unwrap(), seq: 0 }
    }

    /// The next 20 ms at `amplitude` (0: silence), as the packet the group frame carries.
    fn next(&mut self, amplitude: f64) -> AudioPacket {
        let pcm = tone_frame(self.freq, amplitude, self.seq);
        let opus = self.encoder.encode(&pcm).unwrap();
        let packet = AudioPacket { seq: self.seq, capture_us: 0, flags: 0, frames: vec![(self.seq, opus)] };
        self.seq += 1;
        packet
    }
}

fn receiver(talkers: &[Talker]) -> GroupAudioReceiver<OpusDecoder> {
    let mut rx = GroupAudioReceiver::new(OpusDecoder::new);
    for t in talkers {
        rx.admit(t.index).unwrap();
    }
    rx
}

/// Runs `ticks` ticks: each sender's frame `n` is made at tick `n` and, if `send(sender, n)`
/// gives `(amplitude, delay)`, arrives `delay` ticks later (`None`: lost), before that tick plays.
fn run(
    rx: &mut GroupAudioReceiver<OpusDecoder>,
    talkers: &mut [Talker],
    ticks: u32,
    t0: Instant,
    mut send: impl FnMut(usize, u32) -> Option<(f64, u32)>,
) -> Vec<MixedFrame> {
    let mut in_flight: Vec<(u32, usize, AudioPacket)> = Vec::new();
    (0..ticks)
        .map(|n| {
            let now = t0 + TICK * n;
            for (i, t) in talkers.iter_mut().enumerate() {
                match send(i, n) {
                    Some((amplitude, delay)) => in_flight.push((n + delay, i, t.next(amplitude))),
                    None => t.seq += 1,
                }
            }
            for (_, i, p) in in_flight.extract_if(.., |(at, _, _)| *at <= n) {
                rx.on_packet(talkers[i].index, p, now).unwrap();
            }
            rx.tick(now)
        })
        .collect()
}

fn samples(frames: &[MixedFrame]) -> Vec<i16> {
    frames.iter().flat_map(|f| f.pcm).collect()
}

const FREQS: [f64; 4] = [350.0, 620.0, 1_040.0, 1_710.0];

fn four_talkers() -> Vec<Talker> {
    FREQS.iter().enumerate().map(|(i, f)| Talker::new(i as u8 + 1, *f)).collect()
}

#[test]
fn four_senders_are_each_heard_in_the_mix() {
    let mut talkers = four_talkers();
    let mut rx = receiver(&talkers);
    let amplitude = 6_000.0;
    let mix = run(&mut rx, &mut talkers, 100, Instant::now(), |_, _| Some((amplitude, 0)));
    let tail = samples(&mix[50..]);
    // A lone tone of that amplitude, for the budget.
    let reference: Vec<i16> = (50..100).flat_map(|n| tone_frame(FREQS[0], amplitude, n)).collect();
    let expected = tone_power_db(&reference, FREQS[0]);
    for f in FREQS {
        let got = tone_power_db(&tail, f);
        assert!((got - expected).abs() < 1.5, "the {f} Hz tone at {got:.1} dB, expected {expected:.1}");
    }
    // Between the tones: nothing much.
    for f in [480.0, 2_500.0] {
        assert!(tone_power_db(&tail, f) < expected - 30.0, "{f} Hz at {:.1} dB", tone_power_db(&tail, f));
    }
    assert!(mix[50..].iter().all(|m| m.levels.len() == 4 && m.levels.iter().all(|l| !l.concealed)));
    assert_eq!(rx.limiter().limited_frames(), 0, "four tones at 6000 sum under the ceiling");
}

#[test]
fn four_full_scale_senders_never_clip_and_stay_loud() {
    let mut talkers = four_talkers();
    let mut rx = receiver(&talkers);
    let mix = run(&mut rx, &mut talkers, 150, Instant::now(), |_, _| Some((32_767.0, 0)));
    let tail = samples(&mix[10..]);
    let peak = tail.iter().map(|s| i32::from(*s).abs()).max().unwrap();
    assert!(peak <= CEILING, "the mix peaks at {peak}, over the ceiling {CEILING}");
    assert!(rx.limiter().limited_frames() > 100);
    // Loud: within 6 dB of one full-scale sender alone (−3 dBFS).
    let one: Vec<i16> = (0..50).flat_map(|n| tone_frame(FREQS[0], 32_767.0, n)).collect();
    let loss_db = 20.0 * (rms(&one) / rms(&tail)).log10();
    assert!(loss_db < 6.0, "the mix is {loss_db:.1} dB quieter than one talker");
    // Every tone still there, none crushed by the others (within 3 dB of each other), and no
    // distortion products between them.
    let powers: Vec<f64> = FREQS.iter().map(|f| tone_power_db(&tail, *f)).collect();
    let (lo, hi) = powers.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(*p), hi.max(*p)));
    assert!(hi - lo < 3.0, "tone powers {powers:?}");
    assert!(tone_power_db(&tail, 2_500.0) < lo - 25.0, "distortion at 2500 Hz: {:.1} dB", tone_power_db(&tail, 2_500.0));
}

#[test]
fn one_talker_plays_unchanged() {
    let mut talkers = vec![Talker::new(7, 440.0)];
    let mut rx = receiver(&talkers);
    // What a decoder of its own makes of the same frames.
    let mut sent = Vec::new();
    let t0 = Instant::now();
    let mut mix = Vec::new();
    for n in 0..100u32 {
        let now = t0 + TICK * n;
        let p = talkers[0].next(25_000.0);
        sent.push(p.frames[0].1.clone());
        rx.on_packet(talkers[0].index, p, now).unwrap();
        mix.push(rx.tick(now).pcm);
    }
    let mut decoder = OpusDecoder::new().unwrap();
    let decoded: Vec<Pcm> = sent.iter().map(|f| decoder.decode(f)).collect();
    let start = mix.iter().position(|f| f.iter().any(|s| *s != 0)).unwrap();
    assert!(mix[..start].iter().all(|f| f.iter().all(|s| *s == 0)));
    for (i, frame) in mix[start..].iter().enumerate() {
        assert_eq!(frame, &decoded[i], "tick {} differs from the decoder's frame {i}", start + i);
    }
    assert_eq!(rx.limiter().limited_frames(), 0);
}

#[test]
fn a_late_or_lost_frame_conceals_only_its_sender() {
    let t0 = Instant::now();
    let (mut clean_talkers, mut lossy_talkers) = (four_talkers(), four_talkers());
    let (mut clean_rx, mut lossy_rx) = (receiver(&clean_talkers), receiver(&lossy_talkers));
    let clean = run(&mut clean_rx, &mut clean_talkers, 100, t0, |_, _| Some((6_000.0, 0)));
    // Sender 3's frame 40 is lost and its frames 60 to 62 come 180 ms late: an underflow, since
    // the buffer holds 145 ms (40 ms, and the reach of the copies a call starts with; nothing
    // here reports, so the hold stays).
    let impaired = |n: u32| match n {
        40 => None,
        60..=62 => Some((6_000.0, 9)),
        _ => Some((6_000.0, 0)),
    };
    let lossy = run(&mut lossy_rx, &mut lossy_talkers, 100, t0, |i, n| if i == 2 { impaired(n) } else { Some((6_000.0, 0)) });
    for (n, (c, l)) in clean.iter().zip(&lossy).enumerate() {
        for level in &l.levels {
            if level.sender != SenderIndex(3) {
                assert!(!level.concealed, "tick {n}: sender {:?} concealed", level.sender);
            }
        }
        if n < 40 {
            assert_eq!(c.pcm, l.pcm, "tick {n}, before the loss");
        }
    }
    let concealed: Vec<usize> = (0..lossy.len())
        .filter(|n| lossy[*n].levels.iter().any(|l| l.sender == SenderIndex(3) && l.concealed))
        .collect();
    assert!(concealed.iter().any(|n| (40..60).contains(n)), "the loss was not concealed: {concealed:?}");
    assert!(concealed.iter().any(|n| *n >= 60), "the late frames were not waited for: {concealed:?}");
    // The difference is sender 3's alone: exactly what the same loss does to sender 3 mixed by
    // itself (the sum stays under the limiter's ceiling, so the mix is the plain sum).
    let alone = |lost: bool| {
        let mut talker = vec![Talker::new(3, FREQS[2])];
        let mut rx = receiver(&talker);
        samples(&run(&mut rx, &mut talker, 100, t0, |_, n| if lost { impaired(n) } else { Some((6_000.0, 0)) }))
    };
    let (alone_clean, alone_lossy) = (alone(false), alone(true));
    let (clean, lossy) = (samples(&clean), samples(&lossy));
    assert_ne!(alone_clean, alone_lossy, "the loss changed nothing");
    for i in 0..clean.len() {
        let mix_diff = i32::from(lossy[i]) - i32::from(clean[i]);
        let own_diff = i32::from(alone_lossy[i]) - i32::from(alone_clean[i]);
        assert_eq!(mix_diff, own_diff, "sample {i}: the loss changed more than sender 3");
    }
}

#[test]
fn a_sender_that_stops_leaves_the_mix_and_comes_back_fresh() {
    let mut talkers = four_talkers();
    let mut rx = receiver(&talkers);
    let t0 = Instant::now();
    // Sender 2 stops after frame 50 (1 s), and is back at frame 150.
    let mix = run(&mut rx, &mut talkers, 250, t0, |i, n| (i != 1 || !(50..150).contains(&n)).then_some((6_000.0, 0)));
    let out = mix.iter().position(|m| m.timed_out.contains(&SenderIndex(2))).expect("sender 2 timed out");
    // Its last frame came at tick 49; the timeout is 1 s (50 ticks).
    assert_eq!(out, 99);
    assert!(mix[out..150].iter().all(|m| m.levels.iter().all(|l| l.sender != SenderIndex(2))));
    let gone = samples(&mix[out..150]);
    let present = tone_power_db(&gone, FREQS[0]);
    assert!(tone_power_db(&gone, FREQS[1]) < present - 40.0, "sender 2's tone lingers after it left");
    // Back: mixed again from its new frames on.
    let back = samples(&mix[200..]);
    assert!((tone_power_db(&back, FREQS[1]) - tone_power_db(&back, FREQS[0])).abs() < 1.5);
    assert!(mix[200..].iter().all(|m| m.levels.len() == 4));
}

#[test]
fn the_dominant_speaker_follows_the_conversation_without_flapping() {
    let (a, b, c) = (0, 1, 2);
    let mut talkers = vec![Talker::new(1, 300.0), Talker::new(2, 700.0), Talker::new(3, 1_200.0)];
    let mut rx = receiver(&talkers);
    let ms = |n: u32| n * 20;
    // The script, in ms: who speaks how loud.
    let script = |who: usize, t: u32| -> f64 {
        let talking = match who {
            // A talks 0–5 s.
            0 => t < 5_000,
            // B says "yeah" at 3 s (400 ms, louder than A), then talks 5–8.5 s.
            1 => (3_000..3_400).contains(&t) || (5_000..8_500).contains(&t),
            // C coughs at 7 s (500 ms), then talks from 9.5 s after a pause.
            _ => (7_000..7_500).contains(&t) || t >= 9_500,
        };
        let loud = (who == b && t < 3_400) || (who == c && t < 7_500);
        match (talking, loud) {
            (false, _) => 0.0,
            (true, true) => 20_000.0,
            (true, false) => 6_000.0,
        }
    };
    let mix = run(&mut rx, &mut talkers, 600, Instant::now(), |who, n| Some((script(who, ms(n)), 0)));
    let switches: Vec<(u32, Option<SenderIndex>)> = mix
        .iter()
        .enumerate()
        .flat_map(|(n, m)| {
            m.events.iter().filter_map(move |e| match e {
                SpeakerEvent::Dominant(d) => Some((ms(n as u32), *d)),
                SpeakerEvent::Speaking(..) => None,
            })
        })
        .collect();
    let who: Vec<Option<SenderIndex>> = switches.iter().map(|(_, d)| *d).collect();
    assert_eq!(who, [Some(talkers[a].index), Some(talkers[b].index), Some(talkers[c].index)], "switches {switches:?}");
    // A at once; B about 1 s after A stopped (5 s + the 300 ms level, + 1 s); C likewise after 9.5 s.
    assert!(switches[0].0 < 300, "{switches:?}");
    assert!((6_000..6_800).contains(&switches[1].0), "{switches:?}");
    assert!((10_500..11_300).contains(&switches[2].0), "{switches:?}");
    // The interjection and the cough did show as speaking.
    let spoke = |sender: SenderIndex, from: u32, to: u32| {
        mix[(from / 20) as usize..(to / 20) as usize].iter().any(|m| m.levels.iter().any(|l| l.sender == sender && l.speaking))
    };
    assert!(spoke(talkers[b].index, 3_000, 3_500));
    assert!(spoke(talkers[c].index, 7_000, 7_600));
    assert!(!spoke(talkers[c].index, 8_500, 9_500), "C speaking in the pause");
}

#[test]
fn bad_senders_and_garbage_never_panic() {
    let mut talkers = vec![Talker::new(1, 440.0)];
    let mut rx = receiver(&talkers);
    let t0 = Instant::now();
    let p = talkers[0].next(8_000.0);
    assert_eq!(rx.on_packet(SenderIndex(200), p.clone(), t0), Err(GroupAudioError::UnknownSender(200)));
    assert!(matches!(rx.on_plaintext(SenderIndex(1), &[0xff; 3], t0), Err(GroupAudioError::Packet(_))));
    let huge = AudioPacket { seq: 1, capture_us: 0, flags: 0, frames: vec![(1, vec![0; MAX_OPUS_FRAME + 1])] };
    assert_eq!(rx.on_packet(SenderIndex(1), huge, t0), Err(GroupAudioError::FrameTooLarge(MAX_OPUS_FRAME + 1)));
    assert_eq!(rx.refused(), 3);
    assert_eq!(rx.mixing().count(), 0, "nothing refused started a stream");
    for i in 2..=MAX_SENDERS as u8 {
        rx.admit(SenderIndex(i)).unwrap();
    }
    assert_eq!(rx.admit(SenderIndex(250)), Err(GroupAudioError::TooManySenders));
    rx.admit(SenderIndex(1)).unwrap();
    // Random packets from random senders: garbage Opus, wild sequence numbers, empty frame lists.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for n in 0..400u32 {
        let now = t0 + TICK * n;
        for _ in 0..4 {
            let r = random();
            let sender = SenderIndex((r % 256) as u8);
            let seq = match r % 5 {
                0 => u32::MAX - (r >> 40) as u32 % 3,
                1 => 0,
                _ => (r >> 32) as u32,
            };
            let len = (r >> 8) as usize % 80;
            let frames = if r % 7 == 0 { vec![] } else { vec![(seq, (0..len).map(|_| random() as u8).collect())] };
            let _ = rx.on_packet(sender, AudioPacket { seq, capture_us: r, flags: r as u8, frames }, now);
            let bytes: Vec<u8> = (0..len).map(|_| random() as u8).collect();
            let _ = rx.on_plaintext(sender, &bytes, now);
        }
        let mixed = rx.tick(now);
        assert!(mixed.pcm.iter().all(|s| i32::from(*s).abs() <= CEILING));
    }
    rx.remove(SenderIndex(1));
    assert_eq!(rx.on_packet(SenderIndex(1), talkers[0].next(1.0), t0), Err(GroupAudioError::UnknownSender(1)));
}
