//! The send-rate loop (sans-IO): what feeds the [`BitrateController`] and when the video encoder
//! hears about it.
//!
//! Every [`RATE_TICK`] it takes one [`PathSample`] of the QUIC path (RTT, congestion window, and the
//! connection's *cumulative* sent and lost bytes), turns the byte counters into deltas over a
//! [`DELIVERY_WINDOW`], applies the peer's latest receiver report if one arrived since the last
//! tick, and splits the estimate: audio first ([`AUDIO_NEED`]), video the rest, 0 below the
//! controller's minimum (video pauses). The encoder is told a new video rate only when it moves by
//! more than [`HYSTERESIS`] of the last one it was told, or crosses zero: a new target can cost a
//! keyframe, so jitter in the estimate must not reach it.
//!
//! Drive contract: call [`RateLoop::handle_tick`] when [`RateLoop::poll_timeout`] has passed, with
//! the path as it is then; hand each receiver report to [`RateLoop::handle_report`] as it arrives.
//! Nothing here reads a clock.

use std::time::{Duration, Instant};

use super::bitrate::{BitrateController, Delivery, RateLimits};

/// What audio needs from the budget: Opus at 32 kbps with up to one redundant copy, plus headers.
pub const AUDIO_NEED: u32 = 80_000;
/// The window over which QUIC's sent and lost bytes are compared.
pub const DELIVERY_WINDOW: Duration = Duration::from_millis(500);
/// How often the loop runs.
pub const RATE_TICK: Duration = Duration::from_millis(200);
/// The encoder is told a new video rate when it differs from the last one told by more than this
/// fraction of it (or one of them is zero).
pub const HYSTERESIS: f64 = 0.05;

pub use crate::media_link::PathSample;

/// The delivery window open now: since when, and the counters then.
#[derive(Debug, Clone, Copy)]
struct Window {
    since: Instant,
    sent_bytes: u64,
    lost_bytes: u64,
    acked_bytes: Option<u64>,
}

impl Window {
    fn at(now: Instant, path: &PathSample) -> Self {
        Window { since: now, sent_bytes: path.sent_bytes, lost_bytes: path.lost_bytes, acked_bytes: path.acked_bytes }
    }
}

/// One call's send-rate loop over a [`BitrateController`].
#[derive(Debug)]
pub struct RateLoop {
    controller: BitrateController,
    next_tick: Instant,
    window: Option<Window>,
    /// The latest receiver report's loss (‰) since the last tick.
    report: Option<u16>,
    /// The last video rate the encoder was told.
    told: Option<u32>,
}

impl RateLoop {
    /// A loop within `limits`, whose first tick is due at `now`.
    pub fn new(limits: RateLimits, now: Instant) -> Self {
        RateLoop { controller: BitrateController::new(limits), next_tick: now, window: None, report: None, told: None }
    }

    /// When the next tick is due. Ticks keep to a fixed grid: one that comes late does not move
    /// the ones after it, so a loop that fell behind catches up.
    pub fn poll_timeout(&self) -> Instant {
        self.next_tick
    }

    /// A receiver report from the peer: `loss_permille` of our audio was lost before recovery.
    /// Several between two ticks count once, as the latest.
    pub fn handle_report(&mut self, loss_permille: u16) {
        self.report = Some(loss_permille);
    }

    /// The tick at `now` with the path as it is: returns the video bitrate to give the encoder
    /// (bits per second; 0 pauses video), or `None` when the encoder keeps what it has.
    #[must_use]
    pub fn handle_tick(&mut self, now: Instant, path: PathSample) -> Option<u32> {
        self.next_tick += RATE_TICK;
        self.controller.on_path(now, path.rtt, path.cwnd);
        match self.window {
            None => self.window = Some(Window::at(now, &path)),
            Some(w) if now.saturating_duration_since(w.since) >= DELIVERY_WINDOW => {
                let delivery = Delivery {
                    sent_bytes: path.sent_bytes.saturating_sub(w.sent_bytes),
                    lost_bytes: path.lost_bytes.saturating_sub(w.lost_bytes),
                    acked_bytes: path.acked_bytes.zip(w.acked_bytes).map(|(now, then)| now.saturating_sub(then)),
                    interval: now - w.since,
                };
                self.controller.on_delivery(now, delivery);
                self.window = Some(Window::at(now, &path));
            }
            Some(_) => {}
        }
        if let Some(loss) = self.report.take() {
            self.controller.on_report(f64::from(loss) / 1000.0);
        }
        let video = self.controller.budget(AUDIO_NEED).video;
        let tell = self.told.is_none_or(|g| {
            (g == 0) != (video == 0) || (f64::from(video) - f64::from(g)).abs() > HYSTERESIS * f64::from(g.max(1))
        });
        tell.then(|| {
            self.told = Some(video);
            video
        })
    }

    /// The controller's estimate of the path now, bits per second (audio and video together).
    pub fn estimate(&self) -> u32 {
        self.controller.estimate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A path with room: 20 ms and a window that caps nothing, nothing sent yet.
    fn clean() -> PathSample {
        PathSample { rtt: 20 * MS, cwnd: 1_000_000, sent_bytes: 0, lost_bytes: 0, acked_bytes: None }
    }

    /// A path whose congestion window caps the estimate at `cwnd` × 16 bits per second (500 ms RTT).
    fn capped(cwnd: u64) -> PathSample {
        PathSample { rtt: 500 * MS, cwnd, sent_bytes: 0, lost_bytes: 0, acked_bytes: None }
    }

    /// A loop whose first tick, at `t0` on `path`, told the encoder the default start less audio.
    fn started(t0: Instant, path: PathSample) -> RateLoop {
        let mut rate = RateLoop::new(RateLimits::default(), t0);
        assert_eq!(rate.handle_tick(t0, path), Some(600_000 - AUDIO_NEED));
        rate
    }

    #[test]
    fn the_first_tick_gives_the_encoder_the_estimate_less_what_audio_needs() {
        let t0 = Instant::now();
        let mut rate = RateLoop::new(RateLimits::default(), t0);
        assert_eq!(rate.handle_tick(t0, clean()), Some(600_000 - AUDIO_NEED));
        assert_eq!(rate.estimate(), 600_000);
        assert_eq!(rate.handle_tick(t0 + RATE_TICK, clean()), None, "nothing moved: nothing to tell");
    }

    #[test]
    fn ticks_keep_to_their_grid_and_a_late_one_is_caught_up() {
        let t0 = Instant::now();
        let mut rate = RateLoop::new(RateLimits::default(), t0);
        assert_eq!(rate.poll_timeout(), t0, "the first tick is due at once");
        let _ = rate.handle_tick(t0, clean());
        assert_eq!(rate.poll_timeout(), t0 + RATE_TICK);
        let _ = rate.handle_tick(t0 + 350 * MS, clean());
        assert_eq!(rate.poll_timeout(), t0 + 2 * RATE_TICK, "late: the next is due at once");
    }

    #[test]
    fn a_move_of_exactly_five_percent_is_not_told_and_a_little_more_is() {
        let t0 = Instant::now();
        let mut rate = started(t0, capped(1_000_000));
        // 574 000 total: video 494 000, exactly 5 % (26 000) under what the encoder has.
        assert_eq!(rate.handle_tick(t0 + RATE_TICK, capped(35_875)), None);
        assert_eq!(rate.estimate(), 574_000);
        // 16 bps less: over 5 %.
        assert_eq!(rate.handle_tick(t0 + 2 * RATE_TICK, capped(35_874)), Some(493_984));
        // The next move is measured from what was told, not from the first rate.
        assert_eq!(rate.handle_tick(t0 + 3 * RATE_TICK, capped(35_000)), None, "−2.8 %");
        assert_eq!(rate.handle_tick(t0 + 4 * RATE_TICK, capped(33_000)), Some(448_000), "−9.3 %");
    }

    #[test]
    fn video_pauses_once_under_its_minimum_and_resumes_when_there_is_room() {
        let t0 = Instant::now();
        let mut rate = started(t0, capped(1_000_000));
        // 90 kbps: 10 kbps left after audio, under the 30 kbps minimum.
        assert_eq!(rate.handle_tick(t0 + RATE_TICK, capped(5_625)), Some(0), "paused");
        assert_eq!(rate.handle_tick(t0 + 2 * RATE_TICK, capped(5_625)), None, "told once");
        // The congestion window opens; clean reports grow the estimate 8 % a tick until video fits again.
        let mut told = Vec::new();
        for k in 3..8 {
            rate.handle_report(0);
            told.push(rate.handle_tick(t0 + k * RATE_TICK, capped(1_000_000)));
        }
        assert_eq!(told[..2], [None, None], "still under the minimum: {told:?}");
        assert!(told[2].is_some_and(|v| v >= RateLimits::default().min_video), "resumed: {told:?}");
    }

    #[test]
    fn quic_loss_counts_over_half_second_windows_of_the_cumulative_counters() {
        let path = |sent_bytes, lost_bytes| PathSample { sent_bytes, lost_bytes, ..clean() };
        let t0 = Instant::now();
        // The first tick opens the window.
        let mut rate = started(t0, path(1_000_000, 900_000));
        // Half of what was sent lost, but the window is not 500 ms old yet.
        assert_eq!(rate.handle_tick(t0 + 400 * MS, path(1_040_000, 920_000)), None);
        assert_eq!(rate.estimate(), 600_000);
        // Over the first second: 100 000 sent, 50 000 lost: 400 kbps got through, the estimate
        // drops to 90 % of it.
        assert_eq!(rate.handle_tick(t0 + 1000 * MS, path(1_100_000, 950_000)), Some(280_000));
        assert_eq!(rate.estimate(), 360_000);
        // The next window starts there: 60 000 sent and 30 000 lost over the second after it. That
        // is the same congestion event (within a second and two round trips of the cut): no cut.
        assert_eq!(rate.handle_tick(t0 + 2000 * MS, path(1_160_000, 980_000)), None);
        assert_eq!(rate.estimate(), 360_000);
        // Half lost again in the second after that: a new event, cut to 90 % of what got through.
        assert_eq!(rate.handle_tick(t0 + 3000 * MS, path(1_220_000, 1_010_000)), Some(136_000));
        assert_eq!(rate.estimate(), 216_000);
        // Counters that go backwards (a new path) are no delivery at all.
        assert_eq!(rate.handle_tick(t0 + 4000 * MS, path(0, 0)), None);
        assert_eq!(rate.estimate(), 216_000);
    }

    #[test]
    fn the_window_takes_what_got_through_from_the_acknowledged_counter_when_there_is_one() {
        let path = |sent_bytes, lost_bytes, acked| PathSample { sent_bytes, lost_bytes, acked_bytes: Some(acked), ..clean() };
        let t0 = Instant::now();
        let mut rate = started(t0, path(1_000_000, 900_000, 50_000));
        // Over 500 ms: 40 000 sent, 20 000 declared lost, 25 000 acknowledged (400 kbps): the cut
        // is to 90 % of the acknowledged 400 kbps, not of the 320 kbps of sent − lost.
        assert_eq!(rate.handle_tick(t0 + 500 * MS, path(1_040_000, 920_000, 75_000)), Some(360_000 - AUDIO_NEED));
        assert_eq!(rate.estimate(), 360_000);
    }

    #[test]
    fn reports_between_two_ticks_count_once_as_the_latest() {
        let t0 = Instant::now();
        let mut rate = started(t0, clean());
        rate.handle_report(0);
        rate.handle_report(500);
        let _ = rate.handle_tick(t0 + RATE_TICK, clean());
        assert_eq!(rate.estimate(), 450_000, "one 50 % report: cut by a quarter");
        let _ = rate.handle_tick(t0 + 2 * RATE_TICK, clean());
        assert_eq!(rate.estimate(), 450_000, "and not again on the next tick");
    }
}
