//! The limiter of a group call's mix, sans-IO: the sum of the senders' frames, brought under full
//! scale without clipping.
//!
//! Four people talking at once sum to up to four times full scale; clamping that to 16 bits is
//! harsh distortion. The limiter looks at the whole 20 ms frame before playing any of it (the
//! frame is its look-ahead, so it adds no delay): the frame's gain is at most
//! `CEILING / peak`, reached by a ramp over [`ATTACK_SAMPLES`] that never lets a sample past
//! [`CEILING`], and recovers towards unity with a [`RELEASE`] time constant once the sum is
//! quieter. A sum that stays under the ceiling with the gain back at unity passes bit-exactly:
//! a lone talker (or a quiet room) sounds exactly as its decoder gave it.

use super::codec::opus::{FRAME_SAMPLES, Pcm};

/// The highest sample the mix plays: −0.5 dBFS, headroom for the sink's own conversions.
pub const CEILING: i32 = 30_934;
/// The gain comes down to a louder frame's over this many samples (1 ms), never slower than a
/// sample needs to stay under [`CEILING`].
pub const ATTACK_SAMPLES: usize = 48;
/// Time constant of the gain's recovery towards unity, seconds.
pub const RELEASE: f64 = 0.15;
/// A gain this close to unity is unity (so the recovery ends, and quiet sums pass bit-exactly).
const UNITY_SNAP: f64 = 1.0 - 1e-4;

/// The limiter's state: the gain it ended the last frame with.
#[derive(Debug, Clone)]
pub struct Limiter {
    gain: f64,
    release_step: f64,
    limited_frames: u64,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Limiter {
    /// A limiter at unity gain.
    pub fn new() -> Self {
        let release_step = 1.0 - (-1.0 / (RELEASE * f64::from(super::codec::opus::SAMPLE_RATE))).exp();
        Limiter { gain: 1.0, release_step, limited_frames: 0 }
    }

    /// The gain the last frame ended with (1.0: unity).
    pub fn gain(&self) -> f64 {
        self.gain
    }

    /// Frames played below unity gain so far.
    pub fn limited_frames(&self) -> u64 {
        self.limited_frames
    }

    /// One frame of the summed mix (any magnitude), limited to 16 bits under [`CEILING`].
    pub fn process(&mut self, sum: &[i32; FRAME_SAMPLES]) -> Pcm {
        let peak = sum.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        let frame_limit = if peak as i64 > i64::from(CEILING) { f64::from(CEILING) / f64::from(peak) } else { 1.0 };
        let mut out = [0i16; FRAME_SAMPLES];
        if self.gain == 1.0 && frame_limit == 1.0 {
            // Unity: the sum fits, bit-exactly.
            for (o, s) in out.iter_mut().zip(sum) {
                *o = *s as i16;
            }
            return out;
        }
        self.limited_frames += 1;
        let start = self.gain;
        let attack_step = (start - frame_limit).max(0.0) / ATTACK_SAMPLES as f64;
        let mut gain = start;
        for (i, (o, &s)) in out.iter_mut().zip(sum).enumerate() {
            if gain > frame_limit {
                // Attack: down to the frame's limit over the first millisecond...
                gain = (start - attack_step * (i + 1) as f64).max(frame_limit);
            } else {
                // ...or release towards unity, never past what the frame allows.
                gain = (gain + (1.0 - gain) * self.release_step).min(frame_limit);
            }
            // ...and never so slowly that this sample would pass the ceiling.
            let magnitude = f64::from(s.unsigned_abs());
            let g = if magnitude * gain > f64::from(CEILING) { f64::from(CEILING) / magnitude } else { gain };
            *o = (f64::from(s) * g).round().clamp(-f64::from(CEILING), f64::from(CEILING)) as i16;
        }
        self.gain = if gain >= UNITY_SNAP { 1.0 } else { gain };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, amplitude: f64, frame: usize) -> [i32; FRAME_SAMPLES] {
        std::array::from_fn(|i| {
            let t = (frame * FRAME_SAMPLES + i) as f64 / 48_000.0;
            (amplitude * (t * freq * std::f64::consts::TAU).sin()).round() as i32
        })
    }

    #[test]
    fn a_sum_under_the_ceiling_passes_bit_exactly() {
        let mut limiter = Limiter::new();
        for frame in 0..50 {
            let sum = tone(440.0, 30_000.0, frame);
            let out = limiter.process(&sum);
            assert!(out.iter().zip(&sum).all(|(o, s)| i32::from(*o) == *s), "frame {frame} changed");
        }
        assert_eq!(limiter.limited_frames(), 0);
    }

    #[test]
    fn four_times_full_scale_stays_under_the_ceiling_and_recovers_to_unity() {
        let mut limiter = Limiter::new();
        for frame in 0..50 {
            let sum = tone(300.0, 4.0 * 32_767.0, frame);
            let out = limiter.process(&sum);
            let peak = out.iter().map(|s| i32::from(*s).abs()).max().unwrap();
            assert!(peak <= CEILING, "frame {frame} peaks at {peak}");
            if frame > 0 {
                assert!(peak >= CEILING - 200, "frame {frame} only reaches {peak}: too quiet");
            }
        }
        assert!(limiter.gain() < 0.3);
        // The talkers stop: a quiet sum brings the gain back to unity and then passes unchanged.
        for frame in 0..100 {
            limiter.process(&tone(300.0, 1000.0, frame));
        }
        assert_eq!(limiter.gain(), 1.0);
        let quiet = tone(300.0, 1000.0, 7);
        assert!(limiter.process(&quiet).iter().zip(&quiet).all(|(o, s)| i32::from(*o) == *s));
    }

    #[test]
    fn extreme_sums_never_panic() {
        let mut limiter = Limiter::new();
        for v in [i32::MAX, i32::MIN, 0, -1, CEILING + 1] {
            let out = limiter.process(&[v; FRAME_SAMPLES]);
            assert!(out.iter().all(|s| i32::from(*s).abs() <= CEILING));
        }
    }
}
