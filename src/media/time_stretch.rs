//! Time-stretching of decoded speech, sans-IO: how the jitter buffer brings its delay down
//! without dropping whole frames (WebRTC's NetEQ calls this *accelerate*; its *expand*, growing
//! the delay, is Opus's concealment here: the jitter buffer's stretched tick).
//!
//! Voiced speech repeats itself every pitch period (2.5–10 ms here, voices of 100–400 Hz). Taking
//! one period out with a cross-fade over it shortens the sound without a click and almost without
//! being heard: the pitch stays the same, the sound plays a little faster. Quiet stretches
//! (pauses between words) are shortened by a longer piece at once, since nothing is there to
//! hear. A frame that is neither periodic nor quiet is left alone by [`accelerate`]: the jitter
//! buffer asks again on the next frame.
//!
//! The playout side ([`super::audio::AudioReceiver`]) keeps the decoded samples that a shortened
//! frame leaves over and plays exactly 20 ms per tick, so a frame accelerated by 5 ms makes the
//! next frame due 5 ms sooner: the jitter buffer drains faster, and its delay comes down by
//! itself.
//!
//! Measured before choosing (three espeak voices, 35 events each in 15 s, PESQ-WB against the
//! clean speech): shedding 20 ms by accelerating scored 3.01 / 3.60 / 3.14 where dropping a frame
//! scored 2.84 / 3.02 / 3.38. Growing by 20 ms with periods put in (the same method backwards)
//! scored no better than Opus's concealment, so growth stays a concealed tick.

use std::collections::VecDeque;

use super::codec::opus::{FRAME_SAMPLES, Pcm};

/// The shortest pitch period looked for: 2.5 ms at 48 kHz (400 Hz).
pub const MIN_PERIOD: usize = 120;
/// The longest: 10 ms (100 Hz); two of them fill a 20 ms frame.
pub const MAX_PERIOD: usize = FRAME_SAMPLES / 2;
/// A frame whose two best-matching periods correlate at least this well is periodic enough to take
/// one out. NetEQ asks 0.9 of voiced speech; unvoiced sounds (noise-like) survive a cross-fade
/// well too, so this is lower.
pub const MIN_CORRELATION: f64 = 0.5;
/// Below this RMS (about −50 dBFS) a frame is a pause: [`accelerate`] takes out [`MAX_PERIOD`]
/// whatever its shape.
pub const QUIET_RMS: f64 = 100.0;

/// Quiet frames in a row before the next quiet one may be left out whole
/// ([`Stretch::AccelerateInPause`]): the middle of a pause, not the quiet edge of a word.
pub const PAUSE_DEPTH: u32 = 2;

/// The most audio left out of one pause, frames (80 ms): PESQ-WB takes a change of the delay of
/// up to 100 ms in a pause in its stride (0.00–0.03), and one of 140 ms for 0.2 on two of three
/// speech samples (scripts/pesq-delay-steps.py); what is owed beyond it waits for the next pause.
pub const PAUSE_CUT: u32 = 4;

/// What the jitter buffer asks of a decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stretch {
    /// Play it as it is.
    #[default]
    None,
    /// Play it shorter, if it can be done unheard (the buffer holds too much).
    Accelerate,
    /// Leave it out if it is deep in a pause (quiet, after [`PAUSE_DEPTH`] quiet frames), else
    /// play it as it is: delay that can wait, given back where nobody hears it and in one piece
    /// (each change of the delay costs PESQ-WB about 0.02, even in a pause: 13 pauses shortened
    /// by 10 ms each took 0.26 from a clean call).
    AccelerateInPause,
}

/// The period (in samples) at which `x[..T]` best matches `x[T..2T]`, and their normalised
/// correlation (−1 to 1). `None` when `x` is shorter than two [`MIN_PERIOD`]s or silent.
pub fn best_period(x: &[i16]) -> Option<(usize, f64)> {
    let longest = MAX_PERIOD.min(x.len() / 2);
    if longest < MIN_PERIOD {
        return None;
    }
    let correlations: Vec<f64> = (MIN_PERIOD..=longest)
        .map(|period| {
            let (a, b) = (&x[..period], &x[period..2 * period]);
            let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
            for (&p, &q) in a.iter().zip(b) {
                let (p, q) = (f64::from(p), f64::from(q));
                ab += p * q;
                aa += p * p;
                bb += q * q;
            }
            if aa == 0.0 || bb == 0.0 { f64::NAN } else { ab / (aa * bb).sqrt() }
        })
        .collect();
    let best = correlations.iter().copied().filter(|c| !c.is_nan()).fold(f64::NAN, f64::max);
    if best.is_nan() {
        return None;
    }
    // Multiples of the true period match about as well: take the shortest peak that is nearly
    // the best one.
    let at = |i: usize| correlations.get(i).copied().filter(|c| !c.is_nan()).unwrap_or(f64::NEG_INFINITY);
    (0..correlations.len())
        .find(|&i| {
            let c = at(i);
            c >= best - 0.02 && c >= at(i.wrapping_sub(1)) && c >= at(i + 1)
        })
        .map(|i| (MIN_PERIOD + i, correlations[i]))
}

fn rms(x: &[i16]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

/// `out` (fading from 1 to 0) over `into` (fading from 0 to 1), sample by sample.
fn cross_fade(out: &[i16], into: &[i16]) -> impl Iterator<Item = i16> {
    let n = out.len().min(into.len()) as f64;
    out.iter().zip(into).enumerate().map(move |(i, (&o, &n_))| {
        let w = (i as f64 + 0.5) / n;
        (f64::from(o) * (1.0 - w) + f64::from(n_) * w).round().clamp(-32768.0, 32767.0) as i16
    })
}

/// The frame shortened by one pitch period (or by [`MAX_PERIOD`] when it is quiet), or `None` when
/// it is neither periodic nor quiet enough to shorten unheard.
///
/// The first two periods become one: the first fading out over the second fading in, so the
/// sample before the frame still leads into the first, and the last of the fade into the rest.
pub fn accelerate(x: &[i16]) -> Option<Vec<i16>> {
    if x.len() < 2 * MIN_PERIOD {
        return None;
    }
    let period = if rms(x) < QUIET_RMS {
        MAX_PERIOD.min(x.len() / 2)
    } else {
        match best_period(x) {
            Some((period, c)) if c >= MIN_CORRELATION => period,
            _ => return None,
        }
    };
    let mut y = Vec::with_capacity(x.len() - period);
    y.extend(cross_fade(&x[..period], &x[period..2 * period]));
    y.extend_from_slice(&x[2 * period..]);
    Some(y)
}

/// How much a jitter buffer's playout changed its length by stretching, for `hail status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StretchStats {
    /// Frames played shorter (accelerated).
    pub accelerated: u64,
    /// Ticks concealed to grow the delay (expand: Opus's concealment; the jitter buffer's
    /// `stretched`).
    pub expanded: u64,
    /// Audio taken out by accelerating, ms.
    pub accelerated_ms: f64,
    /// Audio put in by expanding, ms (20 ms a tick).
    pub expanded_ms: f64,
    /// Accelerations the jitter buffer asked for that the frame could not take unheard.
    pub accelerate_refused: u64,
    /// The share of played time that was taken out (accelerate rate, as NetEQ reports it).
    pub accelerate_rate: f64,
    /// The share of played time that was put in (expand rate).
    pub expand_rate: f64,
}

/// The decoded samples waiting to be played: each frame goes in shortened if the jitter buffer
/// asked, and 20 ms come out per tick. What a shortened frame leaves over waits for the next tick,
/// so it holds less than a frame.
#[derive(Debug, Default)]
pub struct Stretcher {
    held: VecDeque<i16>,
    played: u64,
    /// Quiet frames pushed in a row, up to the last one.
    quiet_run: u32,
    /// Frames left out of the current pause.
    cut_in_pause: u32,
    stats: StretchStats,
}

impl Stretcher {
    /// A decoded frame, to play as `stretch` says.
    pub fn push(&mut self, pcm: &[i16], stretch: Stretch) {
        let ms = |samples: usize| samples as f64 / 48.0;
        let quiet = rms(pcm) < QUIET_RMS;
        let deep_in_pause = quiet && self.quiet_run >= PAUSE_DEPTH && self.cut_in_pause < PAUSE_CUT;
        self.quiet_run = if quiet { self.quiet_run.saturating_add(1) } else { 0 };
        if !quiet {
            self.cut_in_pause = 0;
        }
        match stretch {
            Stretch::None => self.held.extend(pcm),
            Stretch::AccelerateInPause if deep_in_pause => {
                self.cut_in_pause += 1;
                self.stats.accelerated += 1;
                self.stats.accelerated_ms += ms(pcm.len());
            }
            Stretch::AccelerateInPause => self.held.extend(pcm),
            Stretch::Accelerate => match accelerate(pcm) {
                Some(shorter) => {
                    self.stats.accelerated += 1;
                    self.stats.accelerated_ms += ms(pcm.len() - shorter.len());
                    self.held.extend(shorter);
                }
                None => {
                    self.stats.accelerate_refused += 1;
                    self.held.extend(pcm);
                }
            },
        }
    }

    /// The next 20 ms to play, once that much is held.
    pub fn next_frame(&mut self) -> Option<Pcm> {
        if self.held.len() < FRAME_SAMPLES {
            return None;
        }
        let mut frame = [0; FRAME_SAMPLES];
        for (slot, sample) in frame.iter_mut().zip(self.held.drain(..FRAME_SAMPLES)) {
            *slot = sample;
        }
        self.played += FRAME_SAMPLES as u64;
        Some(frame)
    }

    /// Samples held, not yet played.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The counters, with the rates over everything played so far; `expanded` ticks are the
    /// jitter buffer's (it conceals them).
    pub fn stats(&self, expanded: u64) -> StretchStats {
        let played_ms = self.played as f64 / 48.0;
        let rate = |ms: f64| if played_ms > 0.0 { ms / played_ms } else { 0.0 };
        let expanded_ms = expanded as f64 * 20.0;
        StretchStats {
            accelerate_rate: rate(self.stats.accelerated_ms),
            expanded,
            expanded_ms,
            expand_rate: rate(expanded_ms),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f64, n: usize, amp: f64) -> Vec<i16> {
        (0..n).map(|i| (amp * (std::f64::consts::TAU * hz * i as f64 / 48_000.0).sin()) as i16).collect()
    }

    /// The largest jump between neighbouring samples: a click shows as a jump far above what the
    /// waveform does by itself.
    fn max_step(x: &[i16]) -> i32 {
        x.windows(2).map(|w| (i32::from(w[1]) - i32::from(w[0])).abs()).max().unwrap_or(0)
    }

    #[test]
    fn the_period_of_a_voice_is_found() {
        for hz in [120.0, 200.0, 300.0] {
            let (period, c) = best_period(&tone(hz, FRAME_SAMPLES, 8000.0)).unwrap();
            let expected = 48_000.0 / hz;
            assert!((period as f64 - expected).abs() <= 1.0, "{hz} Hz: {period} samples, expected {expected}");
            assert!(c > 0.99, "{hz} Hz: correlation {c}");
        }
        assert_eq!(best_period(&[0; FRAME_SAMPLES]), None, "silence has no period");
        assert_eq!(best_period(&[5; 100]), None, "too short");
    }

    #[test]
    fn a_voiced_frame_loses_one_period_without_a_click() {
        let x = tone(200.0, FRAME_SAMPLES, 8000.0);
        let y = accelerate(&x).expect("a clean tone is periodic");
        assert_eq!(y.len(), FRAME_SAMPLES - 240, "one 5 ms period out");
        // The waveform's own steepest step, at 200 Hz and amplitude 8000, is about 210.
        assert!(max_step(&y) <= max_step(&x) + 20, "{} vs {}", max_step(&y), max_step(&x));
        // It joins the sample before (the tone's previous sample) and leads into the next frame.
        let before = tone(200.0, FRAME_SAMPLES + 1, 8000.0);
        assert!((i32::from(y[0]) - i32::from(before[0])).abs() <= 220);
        assert_eq!(y.last(), x.last());
    }

    #[test]
    fn a_pause_is_shortened_and_noise_is_left_alone() {
        let quiet: Vec<i16> = (0..FRAME_SAMPLES).map(|i| ((i * 7919) % 61) as i16 - 30).collect();
        assert_eq!(accelerate(&quiet).map(|y| y.len()), Some(FRAME_SAMPLES - MAX_PERIOD));
        // Loud white-ish noise: no period, not quiet.
        let mut state = 0x2545_f491_u32;
        let noise: Vec<i16> = (0..FRAME_SAMPLES)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 16) as i16 / 4
            })
            .collect();
        assert_eq!(accelerate(&noise), None);
        assert_eq!(accelerate(&[1000; 10]), None, "too short to hold two periods");
    }

    #[test]
    fn the_stretcher_plays_20_ms_a_tick_and_counts_what_it_took_out_and_put_in() {
        let voice = tone(200.0, FRAME_SAMPLES, 8000.0);
        let mut st = Stretcher::default();
        assert_eq!(st.next_frame(), None, "nothing decoded yet");
        st.push(&voice, Stretch::Accelerate);
        assert_eq!(st.held(), FRAME_SAMPLES - 240);
        assert_eq!(st.next_frame(), None, "15 ms do not cover a tick: the next frame is due now");
        st.push(&voice, Stretch::None);
        assert!(st.next_frame().is_some());
        assert_eq!(st.held(), FRAME_SAMPLES - 240);
        st.push(&voice, Stretch::None);
        assert!(st.next_frame().is_some());
        assert_eq!(st.next_frame(), None, "15 ms held: the next frame is due");
        let s = st.stats(1);
        assert_eq!((s.accelerated, s.expanded, s.accelerate_refused), (1, 1, 0));
        assert_eq!((s.accelerated_ms, s.expanded_ms), (5.0, 20.0));
        // 40 ms played: 5 ms taken out, 20 ms put in.
        assert_eq!((s.accelerate_rate, s.expand_rate), (0.125, 0.5));
        st.push(&[0; 10], Stretch::Accelerate);
        assert_eq!(st.stats(0).accelerate_refused, 1, "too short to shorten: played as it is");
    }

    #[test]
    fn delay_that_can_wait_is_taken_out_of_pauses_only() {
        let voice = tone(200.0, FRAME_SAMPLES, 8000.0);
        let pause: Vec<i16> = (0..FRAME_SAMPLES).map(|i| ((i * 7919) % 61) as i16 - 30).collect();
        let mut st = Stretcher::default();
        st.push(&voice, Stretch::AccelerateInPause);
        assert_eq!(st.held(), FRAME_SAMPLES, "a word is played whole");
        for n in 1..=PAUSE_DEPTH as usize {
            st.push(&pause, Stretch::AccelerateInPause);
            assert_eq!(st.held(), (1 + n) * FRAME_SAMPLES, "the edge of a pause is played whole");
        }
        for _ in 0..PAUSE_CUT {
            st.push(&pause, Stretch::AccelerateInPause);
        }
        assert_eq!(st.held(), (1 + PAUSE_DEPTH as usize) * FRAME_SAMPLES, "deep in the pause: left out");
        st.push(&pause, Stretch::AccelerateInPause);
        assert_eq!(st.held(), (2 + PAUSE_DEPTH as usize) * FRAME_SAMPLES, "at most PAUSE_CUT frames from one pause");
        st.push(&voice, Stretch::AccelerateInPause);
        for _ in 0..=PAUSE_DEPTH {
            st.push(&pause, Stretch::AccelerateInPause);
        }
        assert_eq!(st.held(), (3 + 2 * PAUSE_DEPTH as usize) * FRAME_SAMPLES, "the next pause gives again");
        let s = st.stats(0);
        assert_eq!((s.accelerated, s.accelerated_ms, s.accelerate_refused), (5, 100.0, 0), "{s:?}");
    }
}
