//! Speech-like test audio and how to compare what was received with it: a deterministic
//! synthetic talker, and the log-spectral distance between what was sent and what was heard.
//! Used by tests/audio.rs (real daemons) and tests/media_sim.rs (the simulator).

#![allow(dead_code)] // each test binary uses part of it

/// Samples in a 20 ms frame at 48 kHz.
pub const FRAME: usize = 960;

/// Loudness per 20 ms frame.
pub fn envelope(x: &[f64]) -> Vec<f64> {
    x.chunks(FRAME).map(rms).collect()
}

pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    if n < 2 {
        return 0.0;
    }
    let (a, b) = (&a[..n], &b[..n]);
    let (ma, mb) = (a.iter().sum::<f64>() / n as f64, b.iter().sum::<f64>() / n as f64);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    if va * vb > 0.0 { cov / (va * vb).sqrt() } else { 0.0 }
}

pub fn rms(frame: &[f64]) -> f64 {
    (frame.iter().map(|x| x * x).sum::<f64>() / frame.len().max(1) as f64).sqrt()
}

/// A deterministic speech-like signal (48 kHz): words of one to three syllables with pauses
/// between them; each syllable a glottal pulse train (pitch gliding between 100 and 190 Hz)
/// through three formant resonators that glide from the last vowel to the next, so the spectrum
/// changes all the time as in speech, unlike a tone that concealment can simply continue.
pub fn speech_like(seconds: f64) -> Vec<f64> {
    speech_like_talker(seconds, 0x2545_f491_4f6c_dd1d)
}

/// [`speech_like`] by another talker: `seed` picks the words, vowels and pitch.
pub fn speech_like_talker(seconds: f64, seed: u64) -> Vec<f64> {
    const VOWELS: [[f64; 3]; 6] =
        [[730.0, 1090.0, 2440.0], [270.0, 2290.0, 3010.0], [300.0, 870.0, 2240.0], [530.0, 1840.0, 2480.0], [570.0, 840.0, 2410.0], [440.0, 1020.0, 2240.0]];
    let mut seed = seed.max(1);
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let n = (seconds * 48_000.0) as usize;
    let mut out = vec![0.0; n];
    let (mut at, mut formants) = (4_800usize, VOWELS[0]);
    let mut state = [[0.0f64; 2]; 3];
    while at < n {
        for _ in 0..1 + (random() * 3.0) as usize {
            let target = VOWELS[(random() * VOWELS.len() as f64) as usize % VOWELS.len()];
            let len = ((0.12 + random() * 0.14) * 48_000.0) as usize;
            let (f0_start, f0_end) = (100.0 + random() * 90.0, 100.0 + random() * 90.0);
            let from = formants;
            let mut phase = 0.0;
            for i in 0..len.min(n.saturating_sub(at)) {
                let t = i as f64 / len as f64;
                let glide = (i as f64 / 1_920.0).min(1.0); // 40 ms from the last vowel to this one
                let f0 = f0_start + (f0_end - f0_start) * t;
                phase += f0 / 48_000.0;
                let pulse = if phase >= 1.0 {
                    phase -= 1.0;
                    1.0
                } else {
                    0.0
                };
                let mut x = pulse + (random() - 0.5) * 0.02;
                for (k, s) in state.iter_mut().enumerate() {
                    let f = from[k] + (target[k] - from[k]) * glide;
                    let r = (-std::f64::consts::PI * (60.0 + 30.0 * k as f64) / 48_000.0).exp();
                    let (a1, a2) = (2.0 * r * (std::f64::consts::TAU * f / 48_000.0).cos(), -r * r);
                    let y = (1.0 - r) * x + a1 * s[0] + a2 * s[1];
                    (s[1], s[0]) = (s[0], y);
                    x = y;
                }
                out[at + i] = x * (std::f64::consts::PI * t).sin();
            }
            formants = target;
            at += len;
        }
        at += ((0.08 + random() * 0.25) * 48_000.0) as usize; // a pause between words
    }
    let peak = out.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    out.iter().map(|x| (x / peak * 12_000.0).round()).collect()
}

/// Log band energies (dB) of the 20 ms frame at `x[at..]`: 16 bands, log-spaced from 150 Hz to
/// 4 kHz, each the sum of the DFT's 50 Hz bins in it (Hann window).
pub fn band_levels(x: &[f64], at: usize) -> [f64; 16] {
    let frame: Vec<f64> = x[at..at + FRAME]
        .iter()
        .enumerate()
        .map(|(i, v)| v * (0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / FRAME as f64).cos()))
        .collect();
    let mut levels = [0.0; 16];
    let edge = |b: usize| 150.0 * (4_000.0f64 / 150.0).powf(b as f64 / 16.0);
    for (b, level) in levels.iter_mut().enumerate() {
        let mut energy = 1.0; // a floor: silence is 0 dB, not -inf
        for bin in (edge(b) / 50.0).ceil() as usize..=(edge(b + 1) / 50.0).floor() as usize {
            let c = 2.0 * (std::f64::consts::TAU * bin as f64 / FRAME as f64).cos();
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            for v in &frame {
                (s2, s1) = (s1, v + c * s1 - s2);
            }
            energy += (s1 * s1 + s2 * s2 - c * s1 * s2) / (FRAME * FRAME) as f64;
        }
        *level = 10.0 * energy.log10();
    }
    levels
}

/// Log-spectral distance (dB) between two frames' band levels.
pub fn spectral_distance(a: &[f64; 16], b: &[f64; 16]) -> f64 {
    (a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / 16.0).sqrt()
}

/// How far what was received is from what was sent, spectrally: the log-spectral distance of each
/// voiced 20 ms frame of `source` (within 30 dB of its loudest) in `from_s..to_s` seconds to the
/// received audio at that frame's half-second window's best delay (searched in 5 ms steps, around
/// the delay that best matches the loudness contours; the jitter buffer may have shifted what
/// follows). Returns the distances, sorted.
pub fn spectral_distances(source: &[f64], received: &[f64], from_s: f64, to_s: f64) -> Vec<f64> {
    const STEP: usize = FRAME / 4;
    let (s_env, r_env) = (envelope(source), envelope(received));
    let contour_lag = (0..100usize)
        .filter(|lag| r_env.len() > lag + 50)
        .max_by(|a, b| pearson(&s_env, &r_env[*a..]).total_cmp(&pearson(&s_env, &r_env[*b..])))
        .unwrap_or(0);
    let loudest = source.chunks(FRAME).map(rms).fold(0.0, f64::max);
    let first = (from_s * 50.0) as usize;
    let last = ((to_s * 50.0) as usize).min(source.len() / FRAME);
    let mut cache = std::collections::HashMap::new();
    let mut received_levels =
        |at: usize| (at + FRAME <= received.len()).then(|| *cache.entry(at).or_insert_with(|| band_levels(received, at)));
    let mut distances = Vec::new();
    for window in (first..last).collect::<Vec<_>>().chunks(25) {
        let voiced: Vec<(usize, [f64; 16])> = window
            .iter()
            .filter(|&&k| rms(&source[k * FRAME..(k + 1) * FRAME]) > loudest / 31.6)
            .map(|&k| (k, band_levels(source, k * FRAME)))
            .collect();
        let best = (0..=32usize)
            .filter_map(|step| (contour_lag * FRAME + step * STEP).checked_sub(16 * STEP))
            .filter_map(|lag| {
                let d: Option<Vec<f64>> = voiced
                    .iter()
                    .map(|(k, levels)| received_levels(k * FRAME + lag).map(|r| spectral_distance(levels, &r)))
                    .collect();
                d.filter(|d| !d.is_empty())
            })
            .min_by(|a, b| (a.iter().sum::<f64>()).total_cmp(&b.iter().sum::<f64>()));
        distances.extend(best.unwrap_or_default());
    }
    distances.sort_by(f64::total_cmp);
    distances
}


/// The `q` quantile (0 to 1) of sorted `values` (NaN when empty).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted.get(((sorted.len().saturating_sub(1)) as f64 * q) as usize).copied().unwrap_or(f64::NAN)
}

/// A source that plays `samples` once, then silence: the simulator's talker.
pub struct SpeechSource {
    samples: Vec<f64>,
    at: usize,
}

impl SpeechSource {
    /// Plays `samples` (48 kHz).
    pub fn new(samples: Vec<f64>) -> Self {
        SpeechSource { samples, at: 0 }
    }
}

impl hail::media::io::AudioSource for SpeechSource {
    fn next_frame(&mut self) -> hail::media::codec::opus::Pcm {
        let pcm = std::array::from_fn(|i| self.samples.get(self.at + i).map_or(0, |s| *s as i16));
        self.at += FRAME;
        pcm
    }
}
