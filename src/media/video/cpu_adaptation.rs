//! CPU-overuse adaptation for the video sender (sans-IO). The sender reports how long each frame
//! took to encode (timed by the [`EncodeWorker`](super::encoder::EncodeWorker) that ran it); when the encoder cannot keep up with the frame interval, the sender steps down a
//! ladder of formats (640x360 → 480x270 → 320x180 at 30 fps, then 320x180 at 15 fps), and steps back
//! up when there is headroom. In the style of WebRTC's overuse detector: decisions are made on the
//! share of the frame interval spent encoding, averaged over a window, never on a single frame.
//!
//! Hysteresis: a step down needs one window over [`OVERUSE`]; a step up needs [`UP_HOLD`] of windows
//! all under [`UNDERUSE`], and a step up that is followed by overuse within [`UP_HOLD`] doubles the
//! hold before the next try (so a format that does not fit is not retried every few seconds).

use std::time::{Duration, Instant};

/// One rung of the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFormat {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Frames per second.
    pub fps: u32,
}

impl VideoFormat {
    /// The time between frames.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(1) / self.fps.max(1)
    }
}

/// The ladder, best first. The default format is its top.
pub const LADDER: [VideoFormat; 4] = [
    VideoFormat { width: 640, height: 360, fps: 30 },
    VideoFormat { width: 480, height: 270, fps: 30 },
    VideoFormat { width: 320, height: 180, fps: 30 },
    VideoFormat { width: 320, height: 180, fps: 15 },
];

/// The share of the frame interval above which the encoder is overused.
pub const OVERUSE: f64 = 0.85;
/// The share below which the rung above is worth a try (the next rung costs ~1.8x).
pub const UNDERUSE: f64 = 0.40;
/// The averaging window.
pub const WINDOW: Duration = Duration::from_secs(1);
/// How long usage must stay low before stepping up (doubled after each failed step up, up to 8x).
pub const UP_HOLD: Duration = Duration::from_secs(5);

/// What the adaptation decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adaptation {
    /// Switch to this (lower) format.
    Down(VideoFormat),
    /// Switch to this (higher) format.
    Up(VideoFormat),
}

/// The detector: feed it encode times, follow its decisions.
#[derive(Debug)]
pub struct CpuAdaptation {
    rung: usize,
    top: usize,
    window_start: Option<Instant>,
    busy: Duration,
    frames: u32,
    low_since: Option<Instant>,
    hold: Duration,
    last_up: Option<Instant>,
    usage: Option<f64>,
    /// The source's own rate (rounded up): no rung runs faster.
    max_fps: Option<u32>,
}

impl Default for CpuAdaptation {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuAdaptation {
    /// Starts at the top of the ladder.
    pub fn new() -> Self {
        Self::capped(LADDER[0])
    }

    /// Starts at, and never climbs above, the best rung within `max` (size and frame rate); the
    /// bottom rung when none fits.
    pub fn capped(max: VideoFormat) -> Self {
        let top = LADDER
            .iter()
            .position(|f| f.width <= max.width && f.height <= max.height && f.fps <= max.fps)
            .unwrap_or(LADDER.len() - 1);
        CpuAdaptation {
            rung: top,
            top,
            window_start: None,
            busy: Duration::ZERO,
            frames: 0,
            low_since: None,
            hold: UP_HOLD,
            last_up: None,
            usage: None,
            max_fps: None,
        }
    }

    /// The format to capture and encode now: the rung, at no more than the source's rate.
    pub fn format(&self) -> VideoFormat {
        let f = LADDER[self.rung];
        VideoFormat { fps: self.max_fps.map_or(f.fps, |m| f.fps.min(m)), ..f }
    }

    /// The source has a rate of its own (a 25 fps file): every rung runs at no more than `fps`, and
    /// the encoder's share is of that rate's (longer) frame interval.
    pub fn limit_fps(&mut self, fps: u32) {
        self.max_fps = Some(fps.max(1));
    }

    /// The encoder's share of the frame interval over the last complete window (for stats).
    pub fn usage(&self) -> Option<f64> {
        self.usage
    }

    /// One frame was encoded at `now` and took `encode_time`. Returns a switch when one is due; the
    /// caller applies it from the next frame (a new format means a new encoder and a keyframe).
    pub fn on_frame_encoded(&mut self, now: Instant, encode_time: Duration) -> Option<Adaptation> {
        let start = *self.window_start.get_or_insert(now);
        self.busy += encode_time;
        self.frames += 1;
        if now.saturating_duration_since(start) < WINDOW {
            return None;
        }
        let usage = self.busy.as_secs_f64() / (self.format().interval().as_secs_f64() * f64::from(self.frames));
        self.usage = Some(usage);
        self.window_start = Some(now);
        self.busy = Duration::ZERO;
        self.frames = 0;

        if usage > OVERUSE {
            self.low_since = None;
            if let Some(up) = self.last_up.take() {
                if now.saturating_duration_since(up) < self.hold {
                    // The last step up did not fit: wait longer before the next one.
                    self.hold = (self.hold * 2).min(UP_HOLD * 8);
                }
            }
            if self.rung + 1 < LADDER.len() {
                self.rung += 1;
                return Some(Adaptation::Down(self.format()));
            }
            return None;
        }
        if usage < UNDERUSE && self.rung > self.top {
            let since = *self.low_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= self.hold {
                self.rung -= 1;
                self.low_since = None;
                self.last_up = Some(now);
                return Some(Adaptation::Up(self.format()));
            }
        } else {
            self.low_since = None;
        }
        if let Some(up) = self.last_up {
            if now.saturating_duration_since(up) >= self.hold {
                // The step up held: forget the failures.
                self.last_up = None;
                self.hold = UP_HOLD;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `seconds` of frames at the current format, each taking `share` of the interval (or the
    /// time `cost(format)` returns); collects the decisions with their times.
    fn run(
        a: &mut CpuAdaptation,
        now: &mut Instant,
        seconds: u32,
        cost: impl Fn(VideoFormat) -> Duration,
    ) -> Vec<(Duration, Adaptation)> {
        let t0 = *now;
        let end = *now + Duration::from_secs(seconds.into());
        let mut out = Vec::new();
        while *now < end {
            let f = a.format();
            *now += f.interval();
            if let Some(d) = a.on_frame_encoded(*now, cost(f)) {
                out.push((*now - t0, d));
            }
        }
        out
    }

    /// An encoder whose cost is proportional to pixels per second: `ms_at_360p` per 640x360 frame.
    fn encoder(ms_at_360p: f64) -> impl Fn(VideoFormat) -> Duration {
        move |f| Duration::from_secs_f64(ms_at_360p / 1000.0 * (f.width * f.height) as f64 / (640.0 * 360.0))
    }

    #[test]
    fn a_cap_sets_the_start_and_the_ceiling() {
        let mut a = CpuAdaptation::capped(VideoFormat { width: 480, height: 270, fps: 30 });
        assert_eq!(a.format(), LADDER[1]);
        let mut now = Instant::now();
        let decisions = run(&mut a, &mut now, 30, |_| Duration::from_millis(1));
        assert!(decisions.is_empty(), "never above the cap: {decisions:?}");
        assert_eq!(CpuAdaptation::capped(VideoFormat { width: 100, height: 100, fps: 5 }).format(), LADDER[3]);
    }

    #[test]
    fn a_source_at_25_fps_caps_every_rung_and_its_longer_interval_is_the_budget() {
        // 30 ms a frame: 90 % of a 30 fps interval (over), 75 % of a 25 fps one (fits).
        let mut a = CpuAdaptation::new();
        a.limit_fps(25);
        assert_eq!(a.format(), VideoFormat { fps: 25, ..LADDER[0] });
        let mut now = Instant::now();
        assert_eq!(run(&mut a, &mut now, 5, |_| Duration::from_millis(30)), vec![]);
        let u = a.usage().unwrap();
        assert!((0.70..0.80).contains(&u), "30 ms of 40 ms: {u}");
        let mut uncapped = CpuAdaptation::new();
        assert!(!run(&mut uncapped, &mut now, 5, |_| Duration::from_millis(30)).is_empty(), "at 30 fps it is over");
        // The bottom rung's 15 fps stays below the cap.
        let mut slow = CpuAdaptation::capped(LADDER[3]);
        slow.limit_fps(25);
        assert_eq!(slow.format(), LADDER[3]);
    }

    #[test]
    fn a_fast_encoder_stays_at_the_top() {
        let mut a = CpuAdaptation::new();
        let mut now = Instant::now();
        assert_eq!(run(&mut a, &mut now, 30, encoder(7.0)), vec![]);
        assert_eq!(a.format(), LADDER[0]);
        let u = a.usage().unwrap();
        assert!((0.15..0.30).contains(&u), "7 ms of 33 ms is ~21 %: {u}");
    }

    #[test]
    fn a_slow_encoder_steps_down_until_it_fits_and_no_further() {
        // 60 ms per 360p frame (slower than rav1e on two cores): 480x270 costs ~34 ms of 33 (over),
        // 320x180 15 ms (45 %, fits but leaves too little to climb): it settles at 320x180@30.
        let mut a = CpuAdaptation::new();
        let mut now = Instant::now();
        let steps = run(&mut a, &mut now, 20, encoder(60.0));
        let formats: Vec<_> = steps.iter().map(|(_, d)| *d).collect();
        assert_eq!(formats, vec![Adaptation::Down(LADDER[1]), Adaptation::Down(LADDER[2])]);
        assert!(steps[0].0 <= Duration::from_millis(1100), "overuse acted on within a window: {:?}", steps[0].0);
        assert!(steps[1].0 - steps[0].0 >= WINDOW, "one step per window");
        assert_eq!(a.format(), LADDER[2]);
    }

    #[test]
    fn when_the_cpu_frees_up_it_climbs_back_after_the_hold() {
        let mut a = CpuAdaptation::new();
        let mut now = Instant::now();
        run(&mut a, &mut now, 10, encoder(120.0)); // a busy machine: even 180p30 costs 90 %
        assert_eq!(a.format(), LADDER[3], "all the way down, frame rate included");
        // The load goes away: ~6 ms per 360p frame.
        let steps = run(&mut a, &mut now, 30, encoder(6.0));
        let ups: Vec<_> = steps.iter().map(|(_, d)| *d).collect();
        assert_eq!(ups, vec![Adaptation::Up(LADDER[2]), Adaptation::Up(LADDER[1]), Adaptation::Up(LADDER[0])]);
        assert!(steps[0].0 >= UP_HOLD, "no step up before the hold: {:?}", steps[0].0);
        for w in steps.windows(2) {
            assert!(w[1].0 - w[0].0 >= UP_HOLD, "steps up are a hold apart: {steps:?}");
        }
    }

    #[test]
    fn a_rung_that_does_not_fit_is_retried_ever_more_slowly() {
        // 360p costs 32 ms of 33 (over), 480x270 10 ms (30 %, under): every window at 480x270 says
        // "climb", every window at 360p says "come down". The tries must grow apart.
        let cost = |f: VideoFormat| {
            if f.width == 640 { Duration::from_millis(32) } else { Duration::from_millis(10) }
        };
        let mut a = CpuAdaptation::new();
        let mut now = Instant::now();
        let steps = run(&mut a, &mut now, 60, cost);
        let ups: Vec<Duration> =
            steps.iter().filter(|(_, d)| matches!(d, Adaptation::Up(_))).map(|(t, _)| *t).collect();
        let downs = steps.iter().filter(|(_, d)| matches!(d, Adaptation::Down(_))).count();
        assert!(ups.len() >= 2, "it tries again: {steps:?}");
        assert_eq!(downs, ups.len() + 1, "every try fails and comes back down: {steps:?}");
        let gaps: Vec<Duration> = ups.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.windows(2).all(|g| g[1] > g[0]), "the wait grows: {gaps:?}");
        assert!(gaps[0] >= UP_HOLD * 2, "the first retry already waits twice the hold: {gaps:?}");
    }
}
