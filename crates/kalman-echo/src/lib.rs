//! An acoustic echo canceller that keeps learning while both sides talk, and leaves the near end
//! alone while it does: hail's echo canceller (WebRTC's AEC3 is the anchor it was measured against,
//! docs/performance.md, "Echo cancellation").
//!
//! The echo path is modelled as a sum of two filters over the far end: one on the far end itself
//! (the room), one on its cube made orthogonal to it (a loudspeaker driven into saturation: an
//! odd, memoryless non-linearity ahead of the room, the "power filter" Hammerstein model of
//! Kuech and Kellermann, *Orthogonalized power filters for nonlinear acoustic echo cancellation*,
//! Signal Processing 86, 2006). Both filters are partitioned overlap-save filters in the frequency
//! domain, adapted together by a diagonal frequency-domain Kalman filter (Enzner and Vary,
//! *Frequency-domain adaptive Kalman filter for acoustic echo control in hands-free telephones*,
//! Signal Processing 86, 2006): each frequency bin of each partition carries the variance of its
//! own error, and its step is that variance over the variance of what the microphone shows, the
//! near end included. While the near end talks its power enters the denominator and the filters
//! barely move; an NLMS filter, with one step for all, must either stop (a double-talk detector)
//! or be pulled off by the near end. The gradient is constrained (made causal and one partition
//! long) for one partition per block in turn, as Speex's MDF does, which costs two FFTs a block
//! instead of eighty.
//!
//! Kept this still, the filters would take minutes to follow a room that changes. A shadow filter
//! (linear only, with a thousand times the process noise) follows the far end quickly; when it
//! has done clearly better than the filters for a quarter of a second, they take its linear
//! coefficients (and stay as still as they were); when it has done clearly worse (the near end
//! pulled it), it takes theirs. Speex's and AEC3's foreground and background filters do the same.
//!
//! After the filters, a gate ([`ResidualGate`]) turns down what is left wherever it is no louder
//! than the echo the filters are expected to have missed: between the near end's words, and while
//! only the far end talks.
//!
//! Kept still, the filters would also lose the echo to clock drift (a speaker and a microphone on
//! two devices, a few to a hundred ppm apart: the echo path slides a sample every few seconds). A
//! loop follows the slide: in blocks where what is left is mostly echo, the error's phase against
//! the echo estimate, bin by bin, says how far it moved, and every coefficient is slid by a share
//! of that (a phase ramp), with an integrator for the steady rate of a drift.
//!
//! Devices may add more latency than the filters reach (some Bluetooth speakers, 200 to 500 ms): a
//! coarse delay finder ([`DelayFinder`], up to a second) locates the echo's strongest arrival, and
//! when it is later than [`REACH`] the far end reaches the filters that much later, and they start
//! over.
//!
//! Sans-IO, and allocation-free after construction as long as the far end arrives in pieces of up
//! to 200 ms: [`KalmanEchoCanceller::far_end`] takes what the speaker played, [`KalmanEchoCanceller::process`] takes one block of the microphone and leaves
//! it without the echo. Mono, 48 kHz, blocks of [`BLOCK`] samples (10 ms), filters [`PARTITIONS`]
//! blocks long (200 ms: device delay and room together).

use std::collections::VecDeque;

use sonora_fft::fft4g::Fft4g;

mod delay;

pub use delay::DelayFinder;

/// Samples in one block: 10 ms at 48 kHz, the audio path's frame.
pub const BLOCK: usize = 480;
/// Partitions of each filter: the echo path it can model is `PARTITIONS × BLOCK` samples long.
pub const PARTITIONS: usize = 20;
/// The FFT: one block of new samples and `FFT - BLOCK` of history (overlap-save; a partition is
/// one block long, and `BLOCK + BLOCK - 1 <= FFT`).
const FFT: usize = 1024;
/// Frequency bins, DC to Nyquist.
const BINS: usize = FFT / 2 + 1;
/// Filters: the far end, and its orthogonalized cube.
const BRANCHES: usize = 2;
/// How much of a coefficient's own size becomes new uncertainty each block: the Kalman filter's
/// process noise, `1 - A²` for the state transition `A`. This small (A = 0.9999999) the filters
/// stay put while both talk; larger values track a changing room sooner but let the near end pull
/// the filters (docs/performance.md, "Echo cancellation": 2e-5 cost the near end 0.35 PESQ in
/// double talk). The shadow filter follows a changing room meanwhile.
const PROCESS_NOISE: f32 = 2e-7;
/// The shadow filter's process noise.
const SHADOW_PROCESS_NOISE: f32 = 2e-4;
/// The shadow's observation noise weight, 2 / its partitions: it takes a large error for a filter
/// gone wrong rather than for a near end talking (the filters, the other way round), so it
/// follows a changed room at once, and a near end pulls it (it then takes the filters' back).
const SHADOW_OBSERVATION_WEIGHT: f32 = 2.0 / PARTITIONS as f32;
/// The Kalman filter's initial error variance of every coefficient.
const INITIAL_VARIANCE: f32 = 1.0;
/// The observation noise's weight in the Kalman gain's denominator: the smoothed error power of a
/// zero-padded block against spectra of whole FFT frames (Enzner and Vary's overlap-save
/// formulation; 2 / partitions, a common simplification, lets the near end pull the filters).
const OBSERVATION_WEIGHT: f32 = 2.0;
/// Smoothing of the observation noise (the microphone's error power) from block to block.
const ERROR_SMOOTHING: f32 = 0.5;
/// Smoothing of the far end's moments behind the orthogonal cube, per active block (~5 s).
const MOMENT_SMOOTHING: f32 = 0.998;
/// A far-end block quieter than this mean square (-70 dBFS) does not move the moments.
const ACTIVE_POWER: f32 = 1e-7;
/// Smoothing of the two filters' error powers compared (about 100 ms).
const COMPARE_SMOOTHING: f32 = 0.9;
/// The shadow is clearly better (or worse) when its error power is this far below (above) the
/// filters' (3 dB)...
const CLEARLY: f32 = 2.0;
/// ... for this many blocks in a row (250 ms).
const CLEARLY_FOR: u32 = 25;
/// The far end heard this long (5 s), the filters are grown up: see [`YOUNG_OVERESTIMATE`].
const YOUNG_BLOCKS: u32 = 500;
/// While the filters are young the gate counts the residual up to this many times more (falling
/// to none over [`YOUNG_BLOCKS`]): AEC3 likewise suppresses harder in its initial state. On the
/// test scene (tests/audio_processing.rs), far-end-only ERLE from 2 to 8 s: 19.1 dB without, 32.7
/// with (before the drift loop; 29.9 with it); a near end that talks over the far end in a call's
/// first seconds is turned down with it.
const YOUNG_OVERESTIMATE: f32 = 30.0;
/// An echo whose strongest arrival is later than this (150 ms) gets the far end delayed to it: the
/// filters reach 200 ms, and a room's reverberation follows its strongest arrival.
const REACH: usize = 7_200;
/// ... delayed so that the strongest arrival sits this far (40 ms) into the filters.
const LEAD: usize = 1_920;
/// The far end's delay changes only when the finder moves by more than this (20 ms).
const REALIGN: usize = 960;
/// Smoothing of the drift estimate's sums from block to block (about 200 ms).
const DRIFT_SMOOTHING: f32 = 0.95;
/// The share of the estimated slide taken each block (the loop's proportional gain)...
const DRIFT_GAIN: f32 = 0.05;
/// ... and how much of it goes into the drift's rate (its integral gain: a clock drift is a steady
/// slide, which a proportional loop alone would trail).
const DRIFT_RATE_GAIN: f32 = 0.001;
/// The drift is estimated only from blocks whose error is this far below the echo estimate (7 dB):
/// what is left is then mostly echo, not a near end, whose words would push the loop about. (On
/// the bench: 0.3 let double talk cost 0.03 PESQ more; 0.1 starved the loop at 20 ppm.)
const DRIFT_QUIET: f32 = 0.2;
/// Far-end samples held beyond the block the microphone is at before the oldest are dropped (the
/// speaker ran ahead of the microphone by more than 200 ms: a device hiccup; the filters relearn).
const MAX_FAR_BACKLOG: usize = PARTITIONS * BLOCK;

/// Spectra, bin by bin, slot after slot.
#[derive(Debug, Clone)]
struct Spectra {
    re: Vec<f32>,
    im: Vec<f32>,
}

impl Spectra {
    fn zeros(slots: usize) -> Self {
        Spectra { re: vec![0.0; slots * BINS], im: vec![0.0; slots * BINS] }
    }
}

/// The far end's recent blocks in the frequency domain, per branch: the filters' input.
#[derive(Debug, Clone)]
struct FarSpectra {
    /// The newest `PARTITIONS` blocks of each branch in a ring (`head` = newest).
    x: Spectra,
    /// Their powers.
    power: Vec<f32>,
    head: usize,
}

impl FarSpectra {
    /// The slot of the block `age` blocks old in `branch`.
    fn slot(&self, branch: usize, age: usize) -> usize {
        branch * PARTITIONS + (self.head + age) % PARTITIONS
    }
}

/// Partitioned filters over the first `branches` branches and their Kalman state.
#[derive(Debug, Clone)]
struct Filters {
    branches: usize,
    process_noise: f32,
    /// The observation noise's weight (see [`OBSERVATION_WEIGHT`]).
    observation_weight: f32,
    /// The coefficients, slot `branch × PARTITIONS + age`.
    h: Spectra,
    /// Each coefficient's error variance (the Kalman filter's state covariance, diagonal).
    variance: Vec<f32>,
    /// The microphone's error power, smoothed (the observation noise: near end and what is left).
    error_power: Vec<f32>,
    /// The slot whose gradient is constrained next.
    next_constrained: usize,
}

impl Filters {
    /// The filters whose estimate leaves the microphone: linear and cube, kept still.
    fn main() -> Self {
        Self::new(BRANCHES, PROCESS_NOISE, OBSERVATION_WEIGHT)
    }

    /// The shadow: linear, quick to follow.
    fn shadow() -> Self {
        Self::new(1, SHADOW_PROCESS_NOISE, SHADOW_OBSERVATION_WEIGHT)
    }

    fn new(branches: usize, process_noise: f32, observation_weight: f32) -> Self {
        let slots = branches * PARTITIONS;
        Filters {
            branches,
            process_noise,
            observation_weight,
            h: Spectra::zeros(slots),
            variance: vec![INITIAL_VARIANCE; slots * BINS],
            error_power: vec![0.0; BINS],
            next_constrained: 0,
        }
    }

    /// The filters' output for the newest far-end block: Σ H·X, back in time, its last block.
    fn estimate(&self, far: &FarSpectra, fft: &Fft4g, frame: &mut [f32]) -> [f32; BLOCK] {
        let (mut yr, mut yi) = ([0.0f32; BINS], [0.0f32; BINS]);
        for branch in 0..self.branches {
            for age in 0..PARTITIONS {
                let (xs, hs) = (far.slot(branch, age) * BINS, (branch * PARTITIONS + age) * BINS);
                let (xr, xi) = (&far.x.re[xs..xs + BINS], &far.x.im[xs..xs + BINS]);
                let (hr, hi) = (&self.h.re[hs..hs + BINS], &self.h.im[hs..hs + BINS]);
                for k in 0..BINS {
                    yr[k] += hr[k] * xr[k] - hi[k] * xi[k];
                    yi[k] += hr[k] * xi[k] + hi[k] * xr[k];
                }
            }
        }
        inverse(fft, &yr, &yi, frame);
        let mut y = [0.0f32; BLOCK];
        y.copy_from_slice(&frame[FFT - BLOCK..]);
        y
    }

    /// One Kalman step on the error spectrum `e` (of the zero-padded block the microphone minus
    /// these filters' estimate), then the gradient constraint for one slot.
    fn adapt(&mut self, far: &FarSpectra, e: &Spectra, fft: &Fft4g, frame: &mut [f32]) {
        let (er, ei) = (&e.re[..BINS], &e.im[..BINS]);
        // What the error is expected to be: the filters' own uncertainty seen through the far end,
        // plus the observation noise (the near end and the unmodelled rest).
        let mut expected = [0.0f32; BINS];
        for (k, p) in self.error_power.iter_mut().enumerate() {
            *p = ERROR_SMOOTHING * *p + (1.0 - ERROR_SMOOTHING) * (er[k] * er[k] + ei[k] * ei[k]);
            expected[k] = self.observation_weight * *p;
        }
        for branch in 0..self.branches {
            for age in 0..PARTITIONS {
                let (xs, vs) = (far.slot(branch, age) * BINS, (branch * PARTITIONS + age) * BINS);
                for k in 0..BINS {
                    expected[k] += self.variance[vs + k] * far.power[xs + k];
                }
            }
        }
        let mut inverse_expected = [0.0f32; BINS];
        for (i, v) in inverse_expected.iter_mut().zip(expected) {
            *i = 1.0 / (v + 1e-12);
        }
        let keep = 1.0 - self.process_noise;
        for branch in 0..self.branches {
            for age in 0..PARTITIONS {
                let (xs, hs) = (far.slot(branch, age) * BINS, (branch * PARTITIONS + age) * BINS);
                for k in 0..BINS {
                    let (x, v) = (xs + k, hs + k);
                    // The Kalman gain (its diagonal) and the step: H += gain · conj(X) · E.
                    let gain = self.variance[v] * inverse_expected[k];
                    let (xr, xi) = (far.x.re[x], far.x.im[x]);
                    let (hr, hi) = (self.h.re[v], self.h.im[v]);
                    self.variance[v] = keep * (1.0 - 0.5 * gain * far.power[x]) * self.variance[v]
                        + self.process_noise * (hr * hr + hi * hi);
                    let (gr, gi) = (gain * xr, -gain * xi);
                    self.h.re[v] = hr + gr * er[k] - gi * ei[k];
                    self.h.im[v] = hi + gr * ei[k] + gi * er[k];
                }
            }
        }
        // The gradient constraint, one slot per block: back in time, the partition's own block
        // kept, the circular wrap-around cut, forward again.
        let slot = self.next_constrained;
        self.next_constrained = (slot + 1) % (self.branches * PARTITIONS);
        let at = slot * BINS;
        let (mut re, mut im) = ([0.0f32; BINS], [0.0f32; BINS]);
        re.copy_from_slice(&self.h.re[at..at + BINS]);
        im.copy_from_slice(&self.h.im[at..at + BINS]);
        inverse(fft, &re, &im, frame);
        frame[BLOCK..].fill(0.0);
        forward(fft, frame, &mut self.h, slot);
    }

    /// Takes `other`'s linear filter coefficients; its own variances stay (the filters, taking the
    /// shadow's, stay as still as they were: the shadow goes on following, and is taken again if
    /// it does better again; the shadow, taking the filters', stays as quick). A cube filter starts
    /// over from nothing, as still as it was: it was learnt against the linear filter just
    /// replaced (and, the filters doing worse than a linear filter, it was doing harm); opening its
    /// variances again would let a near end that starts talking now pull it.
    fn take_linear(&mut self, other: &Filters) {
        let linear = PARTITIONS * BINS;
        self.h.re[..linear].copy_from_slice(&other.h.re[..linear]);
        self.h.im[..linear].copy_from_slice(&other.h.im[..linear]);
        self.h.re[linear..].fill(0.0);
        self.h.im[linear..].fill(0.0);
    }
}

/// The echo canceller: see the crate's documentation.
#[derive(Debug, Clone)]
pub struct KalmanEchoCanceller {
    fft: Fft4g,
    /// What the speaker played, not yet matched with a microphone block, full scale = 1.
    far: VecDeque<f32>,
    /// The last `FFT` samples of each branch's input.
    history: [Vec<f32>; BRANCHES],
    /// Mean x², x⁴, x⁶ of the far end (the cube is made orthogonal to it with these).
    moments: [f32; 3],
    spectra: FarSpectra,
    /// The filters whose estimate is taken out of the microphone.
    filters: Filters,
    /// The shadow filter: linear, quick to follow a change.
    shadow: Filters,
    /// The filters' and the shadow's error powers, smoothed, and how many blocks in a row the
    /// shadow has been clearly better (> 0) or clearly worse (< 0).
    compare: (f32, f32, i32),
    /// Times the filters took the shadow's coefficients ([`Self::relearned`]).
    relearned: u32,
    /// Blocks in which the far end was heard.
    heard: u32,
    gate: ResidualGate,
    /// Where the echo is, up to a second: when it is beyond [`REACH`], the far end is delayed by
    /// `shift` samples on its way to the filters (through `aligned`) so that they cover it.
    finder: DelayFinder,
    aligned: VecDeque<f32>,
    shift: usize,
    /// The drift follower: the smoothed sums behind the fractional slide estimate (numerator,
    /// denominator), and how far the filters have been slid in all, in samples.
    slide: (f32, f32),
    slid: f32,
    /// The drift's rate, samples a block (the loop's integrator).
    rate: f32,
    /// Scratch: the echo estimate's block spectrum.
    echo_block: Spectra,
    /// Scratch: one FFT frame, one error spectrum.
    frame: Vec<f32>,
    error: Spectra,
}

impl Default for KalmanEchoCanceller {
    fn default() -> Self {
        Self::new()
    }
}

impl KalmanEchoCanceller {
    /// A canceller that has learnt nothing yet.
    pub fn new() -> Self {
        KalmanEchoCanceller {
            fft: Fft4g::new(FFT),
            far: VecDeque::with_capacity(MAX_FAR_BACKLOG + 2 * BLOCK),
            history: [vec![0.0; FFT], vec![0.0; FFT]],
            moments: [0.0; 3],
            spectra: FarSpectra {
                x: Spectra::zeros(BRANCHES * PARTITIONS),
                power: vec![0.0; BRANCHES * PARTITIONS * BINS],
                head: 0,
            },
            filters: Filters::main(),
            shadow: Filters::shadow(),
            compare: (0.0, 0.0, 0),
            relearned: 0,
            heard: 0,
            gate: ResidualGate::new(),
            finder: DelayFinder::new(),
            aligned: VecDeque::with_capacity(48_000 + BLOCK),
            shift: 0,
            slide: (0.0, 0.0),
            slid: 0.0,
            rate: 0.0,
            echo_block: Spectra::zeros(1),
            frame: vec![0.0; FFT],
            error: Spectra::zeros(1),
        }
    }

    /// What the speaker played, in order, any length (16-bit samples).
    pub fn far_end(&mut self, played: &[i16]) {
        self.far.extend(played.iter().map(|&s| f32::from(s) / 32_768.0));
        let excess = self.far.len().saturating_sub(MAX_FAR_BACKLOG + BLOCK);
        self.far.drain(..excess);
    }

    /// One block the microphone captured, in place: the echo estimate is taken out of it and what
    /// is left gated, and the filters learn. Pairs it with the oldest block of the far end not yet
    /// used (silence if the speaker has played less).
    pub fn process(&mut self, mic: &mut [i16; BLOCK]) {
        let mut played = [0.0f32; BLOCK];
        for f in played.iter_mut() {
            *f = self.far.pop_front().unwrap_or(0.0);
        }
        let heard_at_mic: [f32; BLOCK] = std::array::from_fn(|i| f32::from(mic[i]) / 32_768.0);
        self.finder.update(&played, &heard_at_mic);
        self.align();
        self.aligned.extend(played);
        let mut far = [0.0f32; BLOCK];
        for f in far.iter_mut() {
            *f = self.aligned.pop_front().unwrap_or(0.0);
        }
        self.push_far_block(&far);
        let echo = self.filters.estimate(&self.spectra, &self.fft, &mut self.frame);
        let shadow_echo = self.shadow.estimate(&self.spectra, &self.fft, &mut self.frame);
        let (mut error, mut shadow_error) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
        for i in 0..BLOCK {
            let d = f32::from(mic[i]) / 32_768.0;
            error[i] = d - echo[i];
            shadow_error[i] = d - shadow_echo[i];
        }
        // Until the filters have heard [`YOUNG_BLOCKS`] blocks of the far end, the gate counts on
        // far more residual than the ratio says: the ratio falls as fast as the filters converge,
        // and the gate's minimum lags the truth most then.
        let young = 1.0 - (self.heard as f32 / YOUNG_BLOCKS as f32).min(1.0);
        let gains = self.gate.gains(&echo, &error, 1.0 + YOUNG_OVERESTIMATE * young);
        for ((m, e), g) in mic.iter_mut().zip(&error).zip(gains) {
            *m = (e * g * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16;
        }
        self.error_spectrum(&error);
        let heard = mean_square(&far) > ACTIVE_POWER;
        if heard && mean_square(&error) < DRIFT_QUIET * mean_square(&echo) {
            self.follow_drift(&echo);
        }
        self.filters.adapt(&self.spectra, &self.error, &self.fft, &mut self.frame);
        self.error_spectrum(&shadow_error);
        self.shadow.adapt(&self.spectra, &self.error, &self.fft, &mut self.frame);
        if heard {
            self.heard += 1;
            self.compare(&error, &shadow_error);
        }
    }

    /// How much the filters take off the echo, dB, as the gate sees it (its residual ratio).
    pub fn erle_db(&self) -> f32 {
        -10.0 * self.gate.ratio.max(1e-9).log10()
    }

    /// Times the filters took the shadow's coefficients: the echo path changed.
    pub fn relearned(&self) -> u32 {
        self.relearned
    }

    /// Where the linear filter's strongest tap is, in samples: the delay between what the speaker
    /// was given and the echo's loudest arrival (device buffers and the room's direct path).
    pub fn delay_samples(&mut self) -> usize {
        let (mut best, mut at) = (0.0f32, self.shift);
        let (mut re, mut im) = ([0.0f32; BINS], [0.0f32; BINS]);
        for age in 0..PARTITIONS {
            let slot = age * BINS;
            re.copy_from_slice(&self.filters.h.re[slot..slot + BINS]);
            im.copy_from_slice(&self.filters.h.im[slot..slot + BINS]);
            inverse(&self.fft, &re, &im, &mut self.frame);
            for (i, v) in self.frame[..BLOCK].iter().enumerate() {
                if v.abs() > best {
                    (best, at) = (v.abs(), self.shift + age * BLOCK + i);
                }
            }
        }
        at
    }

    /// Points the filters at the echo: if the delay finder puts its strongest arrival beyond
    /// [`REACH`], the far end reaches the filters late enough for it to sit [`LEAD`] into them.
    fn align(&mut self) {
        let Some(delay) = self.finder.delay() else { return };
        let target = if delay > REACH { delay - LEAD } else { 0 };
        if target.abs_diff(self.shift) <= REALIGN {
            return;
        }
        if target > self.shift {
            for _ in self.shift..target {
                self.aligned.push_front(0.0);
            }
        } else {
            let drop = (self.shift - target).min(self.aligned.len());
            self.aligned.drain(..drop);
        }
        self.shift = target;
        // What the filters learnt was for another alignment: they start over, young.
        (self.filters, self.shadow) = (Filters::main(), Filters::shadow());
        self.compare = (0.0, 0.0, 0);
        self.heard = 0;
        self.gate = ResidualGate::new();
    }

    /// How late the far end reaches the filters, in samples (see [`DelayFinder`]).
    pub fn alignment(&self) -> usize {
        self.shift
    }

    /// Follows a slowly sliding echo path (the speaker's clock against the microphone's): a slide
    /// of δ samples leaves an error E ≈ -jωδ·Y in each bin (Y the echo estimate), so the least
    /// squares δ over the bins, smoothed over blocks (the near end in E averages out), says how far
    /// the echo has moved; the filters are slid by a fraction of it each block (a phase ramp on
    /// every coefficient), a loop that locks on the drift's rate.
    fn follow_drift(&mut self, echo: &[f32; BLOCK]) {
        self.frame[..FFT - BLOCK].fill(0.0);
        self.frame[FFT - BLOCK..].copy_from_slice(echo);
        forward(&self.fft, &mut self.frame, &mut self.echo_block, 0);
        let (mut num, mut den) = (0.0f32, 0.0f32);
        for k in 1..BINS - 1 {
            let w = std::f32::consts::TAU * k as f32 / FFT as f32;
            let (yr, yi, er, ei) = (self.echo_block.re[k], self.echo_block.im[k], self.error.re[k], self.error.im[k]);
            // Im(conj(Y)·E)
            let cross = yr * ei - yi * er;
            num += w * cross;
            den += w * w * (yr * yr + yi * yi);
        }
        let a = DRIFT_SMOOTHING;
        self.slide = (a * self.slide.0 + (1.0 - a) * num, a * self.slide.1 + (1.0 - a) * den);
        if self.slide.1 <= 0.0 {
            return;
        }
        let error = -(self.slide.0 / self.slide.1);
        self.rate += DRIFT_RATE_GAIN * error;
        // At most 0.05 samples a block: 100 ppm is 0.048.
        let delta = (DRIFT_GAIN * error + self.rate).clamp(-0.05, 0.05);
        self.slid += delta;
        // H(ω) · e^{-jωδ}: every coefficient of the filters (and the shadow) slid by δ.
        let mut rotation = [(0.0f32, 0.0f32); BINS];
        for (k, r) in rotation.iter_mut().enumerate() {
            let phase = -std::f32::consts::TAU * k as f32 / FFT as f32 * delta;
            *r = (phase.cos(), phase.sin());
        }
        for filters in [&mut self.filters, &mut self.shadow] {
            for slot in 0..filters.branches * PARTITIONS {
                let at = slot * BINS;
                for (k, &(c, s)) in rotation.iter().enumerate() {
                    let (hr, hi) = (filters.h.re[at + k], filters.h.im[at + k]);
                    filters.h.re[at + k] = hr * c - hi * s;
                    filters.h.im[at + k] = hr * s + hi * c;
                }
            }
        }
    }

    /// The spectrum of a zero-padded error block, into `self.error`.
    fn error_spectrum(&mut self, e: &[f32; BLOCK]) {
        self.frame[..FFT - BLOCK].fill(0.0);
        self.frame[FFT - BLOCK..].copy_from_slice(e);
        forward(&self.fft, &mut self.frame, &mut self.error, 0);
    }

    /// The filters against the shadow (while the far end is heard): the better one's coefficients
    /// go to the other when it has been clearly better for [`CLEARLY_FOR`] blocks.
    fn compare(&mut self, error: &[f32; BLOCK], shadow_error: &[f32; BLOCK]) {
        let a = COMPARE_SMOOTHING;
        let (mine, theirs, run) = &mut self.compare;
        *mine = a * *mine + (1.0 - a) * mean_square(error);
        *theirs = a * *theirs + (1.0 - a) * mean_square(shadow_error);
        *run = if *theirs * CLEARLY < *mine {
            (*run).max(0) + 1
        } else if *theirs > CLEARLY * *mine {
            (*run).min(0) - 1
        } else {
            0
        };
        if *run >= CLEARLY_FOR as i32 {
            self.filters.take_linear(&self.shadow);
            self.relearned += 1;
            self.compare = (0.0, 0.0, 0);
        } else if *run <= -(CLEARLY_FOR as i32) {
            self.shadow.take_linear(&self.filters);
            self.compare = (0.0, 0.0, 0);
        }
    }

    /// The branches' inputs for one far-end block, into the histories and the spectra ring.
    fn push_far_block(&mut self, far: &[f32; BLOCK]) {
        let n = BLOCK as f32;
        let block = [
            mean_square(far),
            far.iter().map(|x| x.powi(4)).sum::<f32>() / n,
            far.iter().map(|x| x.powi(6)).sum::<f32>() / n,
        ];
        if block[0] > ACTIVE_POWER {
            for (m, b) in self.moments.iter_mut().zip(block) {
                *m = if *m == 0.0 { b } else { MOMENT_SMOOTHING * *m + (1.0 - MOMENT_SMOOTHING) * b };
            }
        }
        // x³ - c·x is orthogonal to x for c = E[x⁴]/E[x²]; scaled to x's power.
        let [m2, m4, m6] = self.moments;
        let c = if m2 > 0.0 { m4 / m2 } else { 0.0 };
        let cube_power = m6 - 2.0 * c * m4 + c * c * m2;
        let scale = if cube_power > 0.0 { (m2 / cube_power).sqrt() } else { 0.0 };
        let spectra = &mut self.spectra;
        spectra.head = (spectra.head + PARTITIONS - 1) % PARTITIONS;
        for branch in 0..BRANCHES {
            let history = &mut self.history[branch];
            history.copy_within(BLOCK.., 0);
            for (h, &x) in history[FFT - BLOCK..].iter_mut().zip(far) {
                *h = if branch == 0 { x } else { scale * (x * x * x - c * x) };
            }
            self.frame.copy_from_slice(history);
            let slot = branch * PARTITIONS + spectra.head;
            forward(&self.fft, &mut self.frame, &mut spectra.x, slot);
            for k in slot * BINS..(slot + 1) * BINS {
                spectra.power[k] = spectra.x.re[k] * spectra.x.re[k] + spectra.x.im[k] * spectra.x.im[k];
            }
        }
    }
}

/// The echo the filters leave, gated: wherever what is left of the microphone is no louder than
/// the echo the filters are expected to have missed, it is turned down, and wherever it is louder
/// (the near end talks) it passes. The expected residual is the echo estimate's power times the
/// filters' recent best echo-to-residual ratio (a minimum that follows lower ratios at once and
/// rises by [`Self::RISE`] a block), counted [`Self::OVERESTIMATE`] times over. One gain per
/// block, ramped across it from the last one, so it adds no delay and no spectral artefacts.
#[derive(Debug, Clone)]
struct ResidualGate {
    /// The residual's power over the echo estimate's, at best, lately.
    ratio: f32,
    /// The last block's gain.
    gain: f32,
}

impl ResidualGate {
    /// How much the residual ratio may rise each block (0.03 dB: 3 dB a second).
    const RISE: f32 = 1.007;
    /// The lowest gain (-20 dB).
    const FLOOR: f32 = 0.1;
    /// The residual ratio is a minimum over blocks, lower than a typical block's: the residual is
    /// counted this many times over. (On the bench's room, 1.5 / 2 / 3 gave far-end-only ERLE
    /// 27.2 / 27.7 / 28.7 dB and a double-talk PESQ drop of 0.26 / 0.29 / 0.30, with the noise
    /// suppressor.)
    const OVERESTIMATE: f32 = 2.0;
    /// An echo estimate quieter than this mean square (-60 dBFS) leaves the gate open.
    const ACTIVE: f32 = 1e-6;

    fn new() -> Self {
        ResidualGate { ratio: 1.0, gain: 1.0 }
    }

    /// This block's gains, sample by sample, from the echo estimate and what is left.
    /// `over`: how many times more residual to count on than usual (the filters are young).
    fn gains(&mut self, echo: &[f32; BLOCK], left: &[f32; BLOCK], over: f32) -> [f32; BLOCK] {
        let n = BLOCK as f32;
        let (echo_power, left_power) = (mean_square(echo), mean_square(left));
        let target = if echo_power > Self::ACTIVE {
            self.ratio = (self.ratio * Self::RISE).min(left_power / echo_power).min(1.0);
            let residual = over * Self::OVERESTIMATE * self.ratio * echo_power;
            ((left_power - residual) / left_power.max(1e-12)).clamp(Self::FLOOR, 1.0)
        } else {
            1.0
        };
        let from = self.gain;
        self.gain = target;
        std::array::from_fn(|i| from + (target - from) * (i + 1) as f32 / n)
    }
}

/// The mean square of a block.
fn mean_square(x: &[f32]) -> f32 {
    x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32
}

/// The real FFT of `frame` (destroyed) into `into`'s slot `slot`, bins 0..=FFT/2.
fn forward(fft: &Fft4g, frame: &mut [f32], into: &mut Spectra, slot: usize) {
    fft.rdft(frame);
    let at = slot * BINS;
    into.re[at] = frame[0];
    into.im[at] = 0.0;
    into.re[at + BINS - 1] = frame[1];
    into.im[at + BINS - 1] = 0.0;
    for k in 1..BINS - 1 {
        into.re[at + k] = frame[2 * k];
        into.im[at + k] = frame[2 * k + 1];
    }
}

/// The inverse of [`forward`]: bins 0..=FFT/2 back to `FFT` samples, scaled.
fn inverse(fft: &Fft4g, re: &[f32], im: &[f32], frame: &mut [f32]) {
    frame[0] = re[0];
    frame[1] = re[BINS - 1];
    for k in 1..BINS - 1 {
        frame[2 * k] = re[k];
        frame[2 * k + 1] = im[k];
    }
    fft.irdft(frame);
    let scale = 2.0 / FFT as f32;
    frame.iter_mut().for_each(|v| *v *= scale);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uniform numbers in [-1, 1) from a seed (xorshift64).
    pub(crate) fn noise(seed: u64) -> impl FnMut() -> f32 {
        let mut s = seed;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    #[test]
    fn forward_and_inverse_are_a_round_trip_and_a_product_is_a_convolution() {
        let fft = Fft4g::new(FFT);
        let mut random = noise(7);
        let signal: Vec<f32> = (0..FFT).map(|_| random()).collect();
        let mut frame = signal.clone();
        let mut spectra = Spectra::zeros(2);
        forward(&fft, &mut frame, &mut spectra, 1);
        let mut back = vec![0.0; FFT];
        inverse(&fft, &spectra.re[BINS..], &spectra.im[BINS..], &mut back);
        for (a, b) in signal.iter().zip(&back) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // A filter that is a delay of 3 samples and half the gain, as a spectrum.
        let mut delay = vec![0.0; FFT];
        delay[3] = 0.5;
        forward(&fft, &mut delay, &mut spectra, 0);
        let (mut re, mut im) = (vec![0.0; BINS], vec![0.0; BINS]);
        for k in 0..BINS {
            let (hr, hi, xr, xi) = (spectra.re[k], spectra.im[k], spectra.re[BINS + k], spectra.im[BINS + k]);
            re[k] = hr * xr - hi * xi;
            im[k] = hr * xi + hi * xr;
        }
        inverse(&fft, &re, &im, &mut back);
        for i in 3..FFT {
            assert!((back[i] - 0.5 * signal[i - 3]).abs() < 1e-5, "sample {i}");
        }
    }

    /// A room of a few reflections and a speaker that clips softly, over white noise.
    fn room(far: &[f32], drive: f32) -> Vec<f32> {
        let taps = [(200usize, 0.6f32), (350, -0.3), (900, 0.2), (2400, 0.1), (5000, -0.05)];
        let speaker: Vec<f32> = far.iter().map(|x| (drive * x).tanh() / drive).collect();
        let mut out = vec![0.0; far.len()];
        for &(at, g) in &taps {
            for i in at..far.len() {
                out[i] += g * speaker[i - at];
            }
        }
        out
    }

    /// Runs the canceller over `far` and `mic` (full scale 1); returns what it left.
    fn cancel(canceller: &mut KalmanEchoCanceller, far: &[f32], mic: &[f32]) -> Vec<f32> {
        let q = |x: f32| (x * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16;
        let mut out = Vec::new();
        for (f, m) in far.chunks_exact(BLOCK).zip(mic.chunks_exact(BLOCK)) {
            let played: Vec<i16> = f.iter().map(|&x| q(x)).collect();
            canceller.far_end(&played);
            let mut block: [i16; BLOCK] = std::array::from_fn(|i| q(m[i]));
            canceller.process(&mut block);
            out.extend(block.iter().map(|&s| f32::from(s) / 32_768.0));
        }
        out
    }

    use super::mean_square as power;

    fn db(a: f32, b: f32) -> f32 {
        10.0 * (a / b).log10()
    }

    #[test]
    fn a_linear_echo_is_cancelled_and_the_cube_takes_a_clipping_speakers_part() {
        let mut random = noise(11);
        let far: Vec<f32> = (0..48_000 * 6).map(|_| 0.3 * random()).collect();
        let tail = 48_000 * 4..48_000 * 6;
        let linear = room(&far, 1e-3);
        let left = cancel(&mut KalmanEchoCanceller::new(), &far, &linear);
        let erle_linear = db(power(&linear[tail.clone()]), power(&left[tail.clone()]));
        assert!(erle_linear > 30.0, "a linear echo: ERLE {erle_linear} dB");
        // A speaker that saturates: the cube branch is what gets it below the non-linear part.
        let clipped = room(&far, 3.0);
        let left = cancel(&mut KalmanEchoCanceller::new(), &far, &clipped);
        let erle_clipped = db(power(&clipped[tail.clone()]), power(&left[tail.clone()]));
        // How far a linear model alone can go: the clipped echo minus its best linear fit.
        let fit = clipped[tail.clone()].iter().zip(&linear[tail.clone()]).map(|(c, l)| c * l).sum::<f32>()
            / linear[tail.clone()].iter().map(|l| l * l).sum::<f32>();
        let nonlinear: Vec<f32> = clipped.iter().zip(&linear).map(|(c, l)| c - fit * l).collect();
        let linear_bound = db(power(&clipped[tail.clone()]), power(&nonlinear[tail.clone()]));
        assert!(
            erle_clipped > linear_bound + 6.0,
            "a clipping speaker: ERLE {erle_clipped} dB, a linear model's bound {linear_bound} dB"
        );
    }

    #[test]
    fn the_near_end_passes_while_both_talk_and_nothing_is_touched_without_a_far_end() {
        let mut random = noise(13);
        let far: Vec<f32> = (0..48_000 * 8).map(|_| 0.3 * random()).collect();
        let mut other = noise(17);
        // The near end talks (here: noise bursts) in the last 3 s, 6 dB above the echo.
        let near: Vec<f32> = (0..far.len()).map(|i| if i >= 48_000 * 5 { 0.3 * other() } else { 0.0 }).collect();
        let echo = room(&far, 1e-3);
        let mic: Vec<f32> = echo.iter().zip(&near).map(|(e, n)| e + n).collect();
        let minus: Vec<f32> = echo.iter().zip(&near).map(|(e, n)| e - n).collect();
        let (plus_out, minus_out) =
            (cancel(&mut KalmanEchoCanceller::new(), &far, &mic), cancel(&mut KalmanEchoCanceller::new(), &far, &minus));
        let dt = 48_000 * 5..far.len();
        // Phase inversion: half the sum is the echo left, half the difference the near end left.
        let echo_left: Vec<f32> = plus_out[dt.clone()].iter().zip(&minus_out[dt.clone()]).map(|(p, m)| (p + m) / 2.0).collect();
        let near_left: Vec<f32> = plus_out[dt.clone()].iter().zip(&minus_out[dt.clone()]).map(|(p, m)| (p - m) / 2.0).collect();
        let erle_dt = db(power(&echo[dt.clone()]), power(&echo_left));
        assert!(erle_dt > 25.0, "double talk: ERLE {erle_dt} dB");
        let damage: Vec<f32> = near_left.iter().zip(&near[dt.clone()]).map(|(a, b)| a - b).collect();
        let near_snr = db(power(&near[dt.clone()]), power(&damage));
        eprintln!("double talk: ERLE {erle_dt:.1} dB, the near end {near_snr:.1} dB above its change");
        // Measured 31.6 and 22.9 dB when written (the gate included).
        assert!(near_snr > 20.0, "double talk: the near end is changed, only {near_snr} dB above the change");
        // Nothing played: the microphone passes bit for bit.
        let mut quiet = KalmanEchoCanceller::new();
        let out = cancel(&mut quiet, &vec![0.0; near.len()], &near);
        let q: Vec<f32> = near.iter().map(|&x| f32::from((x * 32_768.0).round() as i16) / 32_768.0).collect();
        assert_eq!(out, q);
    }

    #[test]
    fn when_the_room_changes_the_filters_relearn() {
        let mut random = noise(19);
        let far: Vec<f32> = (0..48_000 * 14).map(|_| 0.3 * random()).collect();
        let before = room(&far, 1e-3);
        // Another room: the speaker moved (a longer delay, other reflections).
        let taps = [(700usize, -0.5f32), (1300, 0.4), (3000, -0.2), (6000, 0.1)];
        let mut after = vec![0.0; far.len()];
        for &(at, g) in &taps {
            for i in at..far.len() {
                after[i] += g * far[i - at];
            }
        }
        let change = 48_000 * 5;
        let echo: Vec<f32> = (0..far.len()).map(|i| if i < change { before[i] } else { after[i] }).collect();
        let mut c = KalmanEchoCanceller::new();
        let mut left = cancel(&mut c, &far[..change], &echo[..change]);
        let before_change = c.relearned();
        left.extend(cancel(&mut c, &far[change..], &echo[change..]));
        let settled = db(power(&echo[48_000 * 3..change]), power(&left[48_000 * 3..change]));
        let end = 48_000 * 12..far.len();
        let relearnt = db(power(&echo[end.clone()]), power(&left[end]));
        assert!(c.relearned() > before_change, "the filters took the shadow's after the change");
        assert!(settled > 30.0 && relearnt > 30.0, "before the change {settled} dB, 7 s after it {relearnt} dB");
        eprintln!("before the change {settled:.1} dB, 7 s after it {relearnt:.1} dB");
        assert!((690..710).contains(&c.delay_samples()), "the new room's strongest tap (700): {}", c.delay_samples());
    }

    #[test]
    fn a_speaker_whose_clock_drifts_from_the_microphones_is_followed() {
        // Speech-band noise (a one-pole low-pass at about 1 kHz) and a speaker clock 20 ppm fast
        // against the microphone's: the echo path slides by a sample every 1.04 s, 11 over 11 s.
        let mut random = noise(29);
        let mut y = 0.0f32;
        let far: Vec<f32> = (0..48_000 * 11)
            .map(|_| {
                y = 0.88 * y + 0.12 * random();
                2.0 * y
            })
            .collect();
        let on_speaker_clock = room(&far, 1e-3);
        let drift = 1.0 + 20e-6;
        let echo: Vec<f32> = (0..far.len())
            .map(|i| {
                let t = i as f64 / drift;
                let (k, frac) = (t as usize, (t - t.floor()) as f32);
                on_speaker_clock[k] * (1.0 - frac) + on_speaker_clock.get(k + 1).copied().unwrap_or(0.0) * frac
            })
            .collect();
        let mut c = KalmanEchoCanceller::new();
        let left = cancel(&mut c, &far, &echo);
        let end = 48_000 * 9..far.len();
        let erle = db(power(&echo[end.clone()]), power(&left[end]));
        eprintln!("a speaker 20 ppm fast: ERLE {erle:.1} dB at 9 to 11 s, the filters slid {:.2} samples", c.slid);
        assert!(erle > 25.0, "a speaker 20 ppm fast: ERLE {erle:.1} dB at 9 to 11 s");
        // The echo reads the speaker's signal ever earlier: 11 s × 20 ppm = 10.6 samples less delay.
        assert!((c.slid + 10.56).abs() < 3.0, "the filters slid {:.2} samples, the echo -10.56", c.slid);
    }

    #[test]
    fn an_echo_later_than_the_filters_reach_is_found_and_cancelled() {
        let mut random = noise(23);
        let far: Vec<f32> = (0..48_000 * 10).map(|_| 0.3 * random()).collect();
        // A speaker 400 ms late (a Bluetooth speaker's latency), then the room.
        let late = 19_200;
        let room_echo = room(&far, 1e-3);
        let echo: Vec<f32> = (0..far.len()).map(|i| if i >= late { room_echo[i - late] } else { 0.0 }).collect();
        let mut c = KalmanEchoCanceller::new();
        let left = cancel(&mut c, &far, &echo);
        // The room's strongest arrival is 200 samples in: 19 400 in all, put LEAD into the filters.
        assert!(c.alignment().abs_diff(19_400 - LEAD) <= 2 * delay::DECIMATION, "aligned by {}", c.alignment());
        let end = 48_000 * 8..far.len();
        let erle = db(power(&echo[end.clone()]), power(&left[end]));
        eprintln!("an echo 400 ms late: aligned by {} samples, ERLE {erle:.1} dB at 8 to 10 s", c.alignment());
        assert!(erle > 30.0, "an echo 400 ms late: ERLE {erle:.1} dB");
        assert!(c.delay_samples().abs_diff(19_400) <= 2 * delay::DECIMATION, "the delay reported: {}", c.delay_samples());
    }

    #[test]
    fn far_end_before_the_microphone_is_held_and_a_runaway_speaker_is_bounded() {
        let mut c = KalmanEchoCanceller::new();
        c.far_end(&[1000; 3 * BLOCK]);
        assert_eq!(c.far.len(), 3 * BLOCK);
        let mut block = [0i16; BLOCK];
        c.process(&mut block);
        assert_eq!(c.far.len(), 2 * BLOCK);
        c.far_end(&vec![1000; 10 * MAX_FAR_BACKLOG]);
        assert_eq!(c.far.len(), MAX_FAR_BACKLOG + BLOCK);
        // The microphone ahead of the speaker: silence stands in, and nothing breaks.
        let mut c = KalmanEchoCanceller::new();
        let mut block = [500i16; BLOCK];
        c.process(&mut block);
        assert_eq!(block, [500i16; BLOCK]);
    }
}
