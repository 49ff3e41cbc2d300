//! The clocks pictures carry (sans-IO): a source's own frame rate ([`FrameRate`]), the
//! [`SourceClock`] that plays a file at that rate whatever rate it is asked at, and the
//! [`RateEstimate`] a sink makes from the capture times of the pictures it shows (the rate the
//! pictures came at, written into a Y4M file's header).

/// Frames per second as a fraction (`num / den`, both > 0): 25/1, 30000/1001.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRate {
    num: u32,
    den: u32,
}

impl FrameRate {
    /// 30 frames per second.
    pub const THIRTY: FrameRate = FrameRate { num: 30, den: 1 };

    /// `num / den` frames per second; `None` when either is 0.
    pub fn new(num: u32, den: u32) -> Option<Self> {
        (num > 0 && den > 0).then_some(FrameRate { num, den })
    }

    /// The numerator.
    pub fn num(self) -> u32 {
        self.num
    }

    /// The denominator.
    pub fn den(self) -> u32 {
        self.den
    }

    /// The whole frames per second at or above this rate (29.97 → 30): a tick this often never
    /// misses one of the source's frames.
    pub fn ceil_fps(self) -> u32 {
        self.num.div_ceil(self.den)
    }

    /// When frame `n` is due, µs after frame 0.
    pub fn frame_time_us(self, n: u64) -> u64 {
        (u128::from(n) * 1_000_000 * u128::from(self.den) / u128::from(self.num)).min(u128::from(u64::MAX)) as u64
    }

    /// The last frame due `elapsed_us` after frame 0.
    pub fn frame_at(self, elapsed_us: u64) -> u64 {
        (u128::from(elapsed_us) * u128::from(self.num) / (1_000_000 * u128::from(self.den))) as u64
    }

    /// The usual rate nearest to one frame every `interval_us`: a whole number of frames per
    /// second, or an NTSC rate (n × 1000/1001) when that is nearer, and within 0.1 %. `None` for 0.
    pub fn from_interval_us(interval_us: u64) -> Option<Self> {
        if interval_us == 0 {
            return None;
        }
        let fps = 1e6 / interval_us as f64;
        let ntsc = (fps * 1.001).round();
        let (off_ntsc, off_whole) = ((ntsc / 1.001 - fps).abs(), (fps.round() - fps).abs());
        if ntsc >= 1.0 && off_ntsc / fps < 0.001 && off_ntsc < off_whole {
            return FrameRate::new(ntsc as u32 * 1000, 1001);
        }
        FrameRate::new((fps.round() as u32).max(1), 1)
    }
}

impl std::fmt::Display for FrameRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.num, self.den)
    }
}

/// Plays a source that has its own rate in real time: asked at any moment (the encoder's frame
/// ticks), it names the frame due then, how many to skip to reach it, and that frame's own
/// capture time. Frame 0 is due at the first request.
#[derive(Debug, Clone)]
pub struct SourceClock {
    rate: FrameRate,
    origin_us: Option<u64>,
    /// The next frame not yet delivered.
    next: u64,
}

/// What a [`SourceClock`] says at a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDue {
    /// Frames to read past without showing (the ticks came slower than the source).
    pub skip: u64,
    /// The due frame's capture time, µs since the Unix epoch.
    pub capture_us: u64,
}

impl SourceClock {
    /// A clock for a source at `rate`.
    pub fn new(rate: FrameRate) -> Self {
        SourceClock { rate, origin_us: None, next: 0 }
    }

    /// The source's rate.
    pub fn rate(&self) -> FrameRate {
        self.rate
    }

    /// Asked for a picture at `now_us`: the frame due, or `None` when the last one delivered is
    /// still the newest (the ticks came faster than the source).
    pub fn due(&mut self, now_us: u64) -> Option<FrameDue> {
        let origin = *self.origin_us.get_or_insert(now_us);
        let current = self.rate.frame_at(now_us.saturating_sub(origin));
        if current < self.next {
            return None;
        }
        let skip = current - self.next;
        self.next = current + 1;
        Some(FrameDue { skip, capture_us: origin + self.rate.frame_time_us(current) })
    }
}

/// The rate pictures came at, from their capture times: the time they span over the number of
/// frame intervals in it, where a gap counts as as many intervals as the median gap fits in it
/// (a dropped picture does not slow the rate; a late one is made up by the next). Keeps at most
/// [`RateEstimate::GAPS`] gaps.
#[derive(Debug, Clone, Default)]
pub struct RateEstimate {
    last_us: Option<u64>,
    gaps: Vec<u64>,
}

impl RateEstimate {
    /// Gaps kept (the first ten seconds at 30 fps).
    pub const GAPS: usize = 300;

    /// A picture captured at `capture_us` was shown.
    pub fn push(&mut self, capture_us: u64) {
        if let Some(last) = self.last_us.replace(capture_us)
            && capture_us > last
            && self.gaps.len() < Self::GAPS
        {
            self.gaps.push(capture_us - last);
        }
    }

    /// The rate, once two pictures with distinct capture times came.
    pub fn rate(&self) -> Option<FrameRate> {
        let mut gaps = self.gaps.clone();
        if gaps.is_empty() {
            return None;
        }
        let mid = gaps.len() / 2;
        let median = (*gaps.select_nth_unstable(mid).1).max(1);
        let span: u64 = gaps.iter().sum();
        let intervals: u64 = gaps.iter().map(|g| ((g + median / 2) / median).max(1)).sum();
        FrameRate::from_interval_us(span / intervals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_25_fps_clock_asked_at_30_fps_gives_25_frames_a_second_on_its_own_grid() {
        let mut clock = SourceClock::new(FrameRate::new(25, 1).unwrap());
        let start = 1_000_000_000;
        let tick = 1_000_000 / 30;
        let due: Vec<FrameDue> = (0..30).filter_map(|i| clock.due(start + i * tick)).collect();
        assert_eq!(due.len(), 25, "one second of ticks, 25 frames");
        for (n, d) in due.iter().enumerate() {
            assert_eq!(d.capture_us, start + n as u64 * 40_000, "frame {n} carries its own time");
            assert_eq!(d.skip, 0);
        }
        // Asked at 15 fps, the same clock skips frames to stay in real time.
        let mut clock = SourceClock::new(FrameRate::new(25, 1).unwrap());
        let due: Vec<FrameDue> = (0..15).filter_map(|i| clock.due(start + i * 1_000_000 / 15)).collect();
        assert_eq!(due.len(), 15);
        assert_eq!(due.iter().map(|d| d.skip + 1).sum::<u64>(), 24, "frames 0..=23 in 14/15 s");
    }

    #[test]
    fn the_estimate_names_the_usual_rate_despite_drops_and_jitter() {
        let mut e = RateEstimate::default();
        assert_eq!(e.rate(), None);
        for n in [0u64, 1, 2, 4, 5, 6, 7, 9, 10] {
            e.push(n * 40_000 + (n % 3) * 1000);
        }
        assert_eq!(e.rate(), FrameRate::new(25, 1));
        let mut e = RateEstimate::default();
        for n in 0..10u64 {
            e.push(n * 1_001_000 / 30);
        }
        assert_eq!(e.rate(), FrameRate::new(30000, 1001));
        assert_eq!(FrameRate::from_interval_us(33_333), FrameRate::new(30, 1));
        assert_eq!(FrameRate::from_interval_us(0), None);
        assert_eq!(FrameRate::from_interval_us(u64::MAX), FrameRate::new(1, 1));
        assert_eq!(FrameRate::new(30000, 1001).unwrap().ceil_fps(), 30);
        assert_eq!(FrameRate::new(0, 1), None);
    }
}
