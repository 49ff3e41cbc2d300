//! A simulated room for the echo canceller: what the speaker plays goes through a soft-clipping
//! speaker, a bulk delay (the devices' buffers) and a room's impulse response to the microphone,
//! where near-end speech and noise join it. The impulse response is generated from a seed, so it
//! is the same on every machine (tests/audio_processing.rs checks its shape); and the yardsticks:
//! echo return loss enhancement, and what the processing does to the near end.
//! Used by tests/audio_processing.rs and benches/echo.rs (`#[path]`), on 48 kHz samples in i16
//! units held as f64.

#![allow(dead_code)] // each user takes part of it

use std::ops::Range;

use hail::media::audio_processing::{AudioProcessor, FRAME_10MS};

/// Samples per second.
pub const RATE: usize = 48_000;
/// Full scale.
const FULL: f64 = 32_768.0;

/// A speaker in a room.
#[derive(Debug, Clone)]
pub struct Room {
    /// The impulse response, sparse: (delay in samples, gain), sorted by delay.
    pub taps: Vec<(usize, f64)>,
    /// Samples between what is played and its first arrival at the microphone.
    pub bulk_delay: usize,
    /// How hard the speaker clips: `tanh(drive·x)/drive` on full-scale-normalised samples.
    pub drive: f64,
}

/// The standard room's reverberation time (60 dB of decay), seconds: an office.
pub const RT60_S: f64 = 0.25;
/// How long the impulse response is, seconds.
pub const IR_LENGTH_S: f64 = 0.12;
/// The room's echo path gain (the sum of the squared taps): -6 dB, a laptop's speaker and mic.
pub const ECHO_PATH_GAIN: f64 = 0.25;

/// A seeded exponentially decaying impulse response: the direct path, then `reflections`
/// reflections at random delays over [`IR_LENGTH_S`], each with a random sign and a gain that
/// decays by 60 dB every `rt60_s`; scaled so its energy is [`ECHO_PATH_GAIN`].
pub fn impulse_response(seed: u64, reflections: usize, rt60_s: f64) -> Vec<(usize, f64)> {
    let mut random = xorshift(seed);
    let length = (IR_LENGTH_S * RATE as f64) as usize;
    let mut taps = vec![(0usize, 1.0f64)];
    for _ in 0..reflections {
        let at = RATE / 1000 + (random() * (length - RATE / 1000) as f64) as usize;
        let decay = (-6.9 * at as f64 / RATE as f64 / rt60_s).exp();
        let sign = if random() < 0.5 { -1.0 } else { 1.0 };
        taps.push((at, sign * decay * (0.3 + 0.7 * random()) * 0.5));
    }
    taps.sort_by_key(|t| t.0);
    let energy: f64 = taps.iter().map(|t| t.1 * t.1).sum();
    let scale = (ECHO_PATH_GAIN / energy).sqrt();
    taps.iter().map(|&(at, g)| (at, g * scale)).collect()
}

/// Uniform numbers in [0, 1) from `seed` (xorshift64).
pub fn xorshift(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed.max(1);
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Room {
    /// The room every test and the bench use: seed 0x5eed, 300 reflections, [`RT60_S`], 40 ms of
    /// bulk delay, a speaker clipping softly (drive 2: 1.5 dB of compression at the speech's peaks).
    pub fn standard() -> Room {
        Self::with_rt60(RT60_S)
    }

    /// [`Room::standard`] with another reverberation time.
    pub fn with_rt60(rt60_s: f64) -> Room {
        Room { taps: impulse_response(0x5eed, 300, rt60_s), bulk_delay: RATE / 25, drive: 2.0 }
    }

    /// What reaches the microphone when `played` is played.
    pub fn echo(&self, played: &[f64]) -> Vec<f64> {
        let speaker: Vec<f64> = played.iter().map(|x| (self.drive * x / FULL).tanh() / self.drive * FULL).collect();
        let mut out = vec![0.0; played.len()];
        for &(at, gain) in &self.taps {
            let shift = at + self.bulk_delay;
            if shift >= out.len() {
                break;
            }
            for (o, s) in out[shift..].iter_mut().zip(&speaker) {
                *o += gain * s;
            }
        }
        out
    }
}

/// Stationary noise at `rms` (i16 units): white noise through a one-pole low-pass at about
/// 1 kHz, like a fan or a road.
pub fn noise(len: usize, rms: f64, seed: u64) -> Vec<f64> {
    let mut random = xorshift(seed);
    let mut y = 0.0;
    let raw: Vec<f64> = (0..len)
        .map(|_| {
            y = 0.88 * y + 0.12 * (random() - 0.5);
            y
        })
        .collect();
    let level = power(&raw).sqrt().max(1e-12);
    raw.iter().map(|v| v * rms / level).collect()
}

/// Mean square.
pub fn power(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64
}

/// One talk scene: the far end talks alone, then both talk.
#[derive(Debug, Clone)]
pub struct Scene {
    /// What the speaker is given (the far end).
    pub far: Vec<f64>,
    /// The near-end talker at the microphone, alone.
    pub near: Vec<f64>,
    /// The echo at the microphone.
    pub echo: Vec<f64>,
    /// The noise at the microphone.
    pub noise: Vec<f64>,
    /// Where only the far end talks.
    pub far_only: Range<usize>,
    /// Where both talk.
    pub double_talk: Range<usize>,
}

impl Scene {
    /// `far_alone` is played with the near end silent, then `far_during` while `near` talks;
    /// noise at `noise_rms` throughout.
    pub fn new(room: &Room, far_alone: &[f64], far_during: &[f64], near: &[f64], noise_rms: f64) -> Scene {
        let talk = near.len();
        let mut far = far_alone.to_vec();
        far.extend((0..talk).map(|i| far_during[i % far_during.len().max(1)]));
        let mut near_all = vec![0.0; far_alone.len()];
        near_all.extend_from_slice(near);
        let echo = room.echo(&far);
        Scene {
            noise: noise(far.len(), noise_rms, 0x0150),
            far_only: 0..far_alone.len(),
            double_talk: far_alone.len()..far.len(),
            far,
            near: near_all,
            echo,
        }
    }

    /// The microphone: near end, noise and, if `with_echo`, the echo.
    pub fn microphone(&self, with_echo: bool) -> Vec<f64> {
        (0..self.far.len())
            .map(|i| self.near[i] + self.noise[i] + if with_echo { self.echo[i] } else { 0.0 })
            .collect()
    }

    /// The microphone with the near side (talker and noise) inverted: the second input of
    /// [`Separated::new`].
    pub fn microphone_near_inverted(&self) -> Vec<f64> {
        (0..self.far.len()).map(|i| self.echo[i] - self.near[i] - self.noise[i]).collect()
    }
}

/// What processing made of the echo and of the near side (talker and noise) while both were at
/// the microphone, separated by phase inversion (Hagerman and Olofsson, 2004): the processing is
/// run on `echo + near` and on `echo - near`, everything else the same. A canceller's decisions
/// depend on powers and on the far end, which are the same in both runs, so it applies
/// (nearly) the same filter and gains to both; half the sum of the outputs is then what it left
/// of the echo while the near end talked, and half the difference what it left of the near end.
#[derive(Debug, Clone)]
pub struct Separated {
    /// What is left of the echo.
    pub echo: Vec<f64>,
    /// What is left of the near side.
    pub near: Vec<f64>,
}

impl Separated {
    /// From the processed `echo + near` (`plus`) and `echo - near` (`minus`).
    pub fn new(plus: &[f64], minus: &[f64]) -> Separated {
        Separated {
            echo: plus.iter().zip(minus).map(|(p, m)| (p + m) / 2.0).collect(),
            near: plus.iter().zip(minus).map(|(p, m)| (p - m) / 2.0).collect(),
        }
    }

    /// Echo return loss enhancement (dB) over `range`: the echo's power at the microphone over
    /// the power of what is left of it.
    pub fn erle_db(&self, echo: &[f64], range: Range<usize>) -> f64 {
        let end = range.end.min(self.echo.len()).min(echo.len());
        let range = range.start.min(end)..end;
        10.0 * (power(&echo[range.clone()]) / power(&self.echo[range]).max(1e-9)).log10()
    }
}

/// Runs `processor` over a call: each 10 ms, what the speaker plays (`far`), then what the
/// microphone captured (`mic`), as the call's audio path does. Returns the processed microphone.
pub fn process(processor: &mut AudioProcessor, far: &[f64], mic: &[f64]) -> Vec<f64> {
    let to_i16 = |x: &f64| x.round().clamp(-32_768.0, 32_767.0) as i16;
    let mut out = Vec::with_capacity(mic.len());
    // The last frame is padded with silence, and its padding cut off again.
    for (k, m) in mic.chunks(FRAME_10MS).enumerate() {
        let played: [i16; FRAME_10MS] = std::array::from_fn(|i| far.get(k * FRAME_10MS + i).map_or(0, to_i16));
        processor.far_end(&played);
        let mut frame: [i16; FRAME_10MS] = std::array::from_fn(|i| m.get(i).map_or(0, to_i16));
        processor.near_end_10ms(&mut frame);
        out.extend(frame[..m.len()].iter().map(|&s| f64::from(s)));
    }
    out
}

/// Echo return loss enhancement (dB) over `range`: the echo's power at the microphone over the
/// power of what processing left of it, `with_echo - without_echo` (the processed microphone
/// with and without the echo, everything else the same). Whatever the canceller does to the near
/// end because of the echo counts as residual too: this errs low.
pub fn erle_db(echo: &[f64], with_echo: &[f64], without_echo: &[f64], range: Range<usize>) -> f64 {
    let end = range.end.min(with_echo.len()).min(without_echo.len());
    let range = range.start.min(end)..end;
    let residual: Vec<f64> = with_echo[range.clone()].iter().zip(&without_echo[range.clone()]).map(|(a, b)| a - b).collect();
    10.0 * (power(&echo[range]) / power(&residual).max(1e-9)).log10()
}

/// Like [`erle_db`], but the near end's part is taken out frame by frame (10 ms) at its best
/// scale: `with_echo - a * without_echo`, `a` fitted per frame by least squares. A suppressor
/// that turns the whole frame down while both talk is then not counted as echo; what it does to
/// the near end's spectrum still is.
pub fn erle_scaled_db(echo: &[f64], with_echo: &[f64], without_echo: &[f64], range: Range<usize>) -> f64 {
    let end = range.end.min(with_echo.len()).min(without_echo.len());
    let range = range.start.min(end)..end;
    let mut residual = Vec::with_capacity(range.len());
    for (w, n) in with_echo[range.clone()].chunks(FRAME_10MS).zip(without_echo[range.clone()].chunks(FRAME_10MS)) {
        let nn: f64 = n.iter().map(|v| v * v).sum();
        let a = if nn > 0.0 { w.iter().zip(n).map(|(p, q)| p * q).sum::<f64>() / nn } else { 0.0 };
        residual.extend(w.iter().zip(n).map(|(p, q)| p - a * q));
    }
    10.0 * (power(&echo[range]) / power(&residual).max(1e-9)).log10()
}
