//! Where the echo is, coarsely: the delay between what the speaker was given and the echo's
//! strongest arrival at the microphone, up to a second, so that the filters (200 ms long) can be
//! pointed at it when devices add more latency than they cover (some Bluetooth speakers do).
//!
//! A long NLMS filter over both signals decimated by [`DECIMATION`] (to 3 kHz: speech's strong low
//! band, where the echo's timing shows), as WebRTC's AEC3 finds its render delay with matched
//! filters on decimated signals. Its strongest tap is the delay once it stands well above the rest
//! ([`CONFIDENCE`]) and has stayed in place for two looks in a row.

use super::BLOCK;

/// Samples averaged into one (48 kHz to 3 kHz).
pub const DECIMATION: usize = 16;
/// Taps of the decimated filter: one second.
const TAPS: usize = 3_000;
/// The NLMS step.
const STEP: f32 = 0.2;
/// Blocks between two looks at the filter (0.5 s).
const LOOK_EVERY: u32 = 50;
/// The strongest tap's power over the taps' mean power that makes it a delay. (On white noise: an
/// echo 400 ms late stood 500 to 2 600 times above the mean; an unrelated microphone's strongest
/// tap 30 to 250 times.)
const CONFIDENCE: f32 = 100.0;
/// Two looks agree when their delays are within this many decimated samples (2 ms).
const AGREE: usize = 6;
/// A decimated far-end sample quieter than this mean square (-70 dBFS) does not adapt the filter.
const ACTIVE_POWER: f32 = 1e-7;

/// See the module's documentation.
#[derive(Debug, Clone)]
pub struct DelayFinder {
    /// The decimated far end, the last `TAPS` samples in a ring written twice (`2 × TAPS` long), so
    /// that the window is always one slice: `far[pos + 1..pos + 1 + TAPS]`, newest last.
    far: Vec<f32>,
    pos: usize,
    /// Its power over the window (kept as a running sum).
    far_power: f32,
    filter: Vec<f32>,
    blocks: u32,
    /// Decimated samples seen.
    seen: usize,
    /// The last look's strongest tap, if it was confident.
    candidate: Option<usize>,
    /// The delay found, in 48 kHz samples.
    found: Option<usize>,
}

impl Default for DelayFinder {
    fn default() -> Self {
        Self::new()
    }
}

impl DelayFinder {
    /// A finder that has seen nothing.
    pub fn new() -> Self {
        DelayFinder {
            far: vec![0.0; 2 * TAPS],
            pos: TAPS - 1,
            far_power: 0.0,
            filter: vec![0.0; TAPS],
            blocks: 0,
            seen: 0,
            candidate: None,
            found: None,
        }
    }

    /// One block of the far end (as played, not delayed) and the microphone at the same time, full
    /// scale 1.
    pub fn update(&mut self, far: &[f32; BLOCK], mic: &[f32; BLOCK]) {
        for (f, m) in far.chunks_exact(DECIMATION).zip(mic.chunks_exact(DECIMATION)) {
            let x = f.iter().sum::<f32>() / DECIMATION as f32;
            let d = m.iter().sum::<f32>() / DECIMATION as f32;
            let p = (self.pos + 1) % TAPS;
            let oldest = self.far[p];
            (self.far[p], self.far[p + TAPS], self.pos) = (x, x, p);
            let window = &self.far[p + 1..p + 1 + TAPS];
            self.far_power = (self.far_power + x * x - oldest * oldest).max(0.0);
            self.seen = self.seen.saturating_add(1);
            // Not before the window is full: taps over an empty window would learn noise.
            if self.seen < TAPS || self.far_power / (TAPS as f32) < ACTIVE_POWER {
                continue;
            }
            // The filter's tap k weighs the far end k samples ago.
            let y: f32 = self.filter.iter().zip(window.iter().rev()).map(|(h, x)| h * x).sum();
            let step = STEP * (d - y) / (self.far_power + 1e-6);
            for (h, x) in self.filter.iter_mut().zip(window.iter().rev()) {
                *h += step * x;
            }
        }
        self.blocks += 1;
        if self.blocks % LOOK_EVERY == 0 {
            self.look();
        }
    }

    /// The delay found, in 48 kHz samples: where the echo's strongest arrival is.
    pub fn delay(&self) -> Option<usize> {
        self.found
    }

    fn look(&mut self) {
        let (mut peak, mut at) = (0.0f32, 0);
        let mut total = 0.0f32;
        for (k, h) in self.filter.iter().enumerate() {
            let p = h * h;
            total += p;
            if p > peak {
                (peak, at) = (p, k);
            }
        }
        let mean = total / TAPS as f32;
        let confident = mean > 0.0 && peak > CONFIDENCE * mean;
        let now = confident.then_some(at);
        if let (Some(a), Some(b)) = (now, self.candidate) {
            if a.abs_diff(b) <= AGREE {
                self.found = Some(a * DECIMATION);
            }
        }
        self.candidate = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delayed_echo_is_found_and_nothing_is_found_in_silence_or_noise() {
        let mut random = crate::tests::noise(5);
        let far: Vec<f32> = (0..48_000 * 6).map(|_| 0.3 * random()).collect();
        // The echo 400 ms late (19 200 samples), and a weaker reflection.
        let echo: Vec<f32> = (0..far.len())
            .map(|i| 0.5 * far.get(i.wrapping_sub(19_200)).copied().unwrap_or(0.0) * f32::from(i >= 19_200)
                + 0.2 * far.get(i.wrapping_sub(21_000)).copied().unwrap_or(0.0) * f32::from(i >= 21_000))
            .collect();
        let mut finder = DelayFinder::new();
        let mut quiet = DelayFinder::new();
        let mut unrelated = DelayFinder::new();
        let noise: Vec<f32> = (0..far.len()).map(|_| 0.3 * random()).collect();
        for k in 0..far.len() / BLOCK {
            let block = |x: &[f32]| -> [f32; BLOCK] { std::array::from_fn(|i| x[k * BLOCK + i]) };
            finder.update(&block(&far), &block(&echo));
            quiet.update(&[0.0; BLOCK], &block(&echo));
            unrelated.update(&block(&far), &block(&noise));
        }
        let found = finder.delay().expect("the delay is found");
        assert!(found.abs_diff(19_200) <= DECIMATION, "found {found} samples, the echo is 19 200 late");
        assert_eq!(quiet.delay(), None, "nothing played, nothing found");
        assert_eq!(unrelated.delay(), None, "a microphone unrelated to the far end: nothing found");
    }
}
