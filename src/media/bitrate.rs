//! The send-rate controller (sans-IO): one estimate of what the path carries, split between audio
//! (served first, in full, because a call without sound is no call) and video (the rest, within its
//! bounds). Fed by the receiver's reports (loss before recovery) and by QUIC's path stats (RTT and
//! congestion window); in the spirit of WebRTC's loss- and delay-based controllers, simplified:
//!
//! - loss above [`HIGH_LOSS`]: cut by half the loss fraction (unless a cut in the second the report
//!   covers already answered that loss);
//! - loss below [`LOW_LOSS`]: grow 8 % per report (reports come about once a second), or only
//!   [`CEILING_GROWTH`] within [`NEAR_CEILING`] of the rate the last loss cut came down from;
//! - loss in between that came as the rate grew past the last clean one: the rate's doing (a
//!   policer, a small buffer), back to that rate. Otherwise steady moderate loss is the path's own
//!   (Wi-Fi, radio: what FEC and redundancy are for): probe up [`PROBE_GROWTH`] per report while
//!   the delay is stable (RTT within [`STABLE_DELAY`] of the lowest seen), hold while it is not (as
//!   WebRTC's loss-based controller v2 tells inherent loss from loss that rises with the rate;
//!   v1's plain hold never grows back after a cut);
//! - QUIC's sent and lost bytes ([`BitrateController::on_delivery`]): loss over [`HIGH_LOSS`]
//!   brings the estimate to what got through;
//! - RTT more than [`QUEUE_DELAY`] above the lowest seen: a queue is building on the bottleneck, cut
//!   15 % (at most once per [`CUT_GAP`]), whatever the loss says;
//! - never above what the congestion window lets through (cwnd / RTT), nor outside the bounds.

use std::time::{Duration, Instant};

/// Loss (before recovery) above which the estimate is cut.
pub const HIGH_LOSS: f64 = 0.10;
/// Loss below which the estimate grows.
pub const LOW_LOSS: f64 = 0.02;
/// RTT growth over the minimum that means a queue.
pub const QUEUE_DELAY: Duration = Duration::from_millis(60);
/// The least time between two delay-based cuts (a cut needs an RTT to show).
pub const CUT_GAP: Duration = Duration::from_millis(500);
/// Growth per report under moderate loss (between [`LOW_LOSS`] and [`HIGH_LOSS`]) with a stable
/// delay: under half the low-loss growth, so a probe past a policer's rate overshoots it by a few
/// percent before its loss crosses [`HIGH_LOSS`] and cuts (as GCC grows slowly near capacity).
pub const PROBE_GROWTH: f64 = 1.03;
/// Within this fraction of the rate the last loss cut came down from, clean reports grow the
/// estimate only [`CEILING_GROWTH`]: the path's limit is near, and finding it again costs loss
/// (GCC's additive increase near its link capacity estimate).
pub const NEAR_CEILING: f64 = 0.85;
/// Growth per clean report near the ceiling.
pub const CEILING_GROWTH: f64 = 1.01;
/// RTT growth over the minimum under which the delay counts as stable (half of [`QUEUE_DELAY`]).
pub const STABLE_DELAY: Duration = Duration::from_millis(30);
/// What a receiver report covers: a cut within this long before it already answered its loss.
pub const REPORT_SPAN: Duration = Duration::from_secs(1);

/// The bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Where the estimate starts, bits per second.
    pub start: u32,
    /// The floor of the total estimate.
    pub min_total: u32,
    /// The most video gets.
    pub max_video: u32,
    /// Below this, video is not worth sending (the sender pauses it; its status shows
    /// `paused_for_bandwidth`).
    pub min_video: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits { start: 600_000, min_total: 40_000, max_video: 1_500_000, min_video: 60_000 }
    }
}

/// How the budget is split now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// For audio (all of what it asked for when the path has it).
    pub audio: u32,
    /// For video; 0 when there is not enough for [`RateLimits::min_video`].
    pub video: u32,
}

/// The controller.
#[derive(Debug)]
pub struct BitrateController {
    limits: RateLimits,
    estimate: f64,
    min_rtt: Option<Duration>,
    /// The latest smoothed RTT.
    rtt: Option<Duration>,
    cwnd_cap: Option<f64>,
    last_cut: Option<Instant>,
    /// The estimate a loss cut last came down from: near it, growth is slow.
    ceiling: Option<f64>,
    /// When a loss cut last set the ceiling.
    ceiling_at: Option<Instant>,
    /// The estimate at the last report with loss under [`LOW_LOSS`].
    clean_rate: Option<f64>,
    /// The latest time handed in (reports carry none of their own).
    now: Option<Instant>,
    /// The previous delivery window (sent, lost bytes, length), until a cut answers its loss.
    previous_window: Option<(u64, u64, Duration)>,
}

impl BitrateController {
    /// A controller within `limits`.
    pub fn new(limits: RateLimits) -> Self {
        BitrateController {
            limits,
            estimate: f64::from(limits.start),
            min_rtt: None,
            rtt: None,
            cwnd_cap: None,
            last_cut: None,
            clean_rate: None,
            ceiling: None,
            ceiling_at: None,
            now: None,
            previous_window: None,
        }
    }

    /// The total estimate, bits per second.
    pub fn estimate(&self) -> u32 {
        self.estimate as u32
    }

    /// A receiver report: `loss` is the fraction of packets lost before recovery (0..=1) over the
    /// last [`REPORT_SPAN`].
    pub fn on_report(&mut self, loss: f64) {
        let loss = loss.clamp(0.0, 1.0);
        if loss > HIGH_LOSS {
            // A cut in the span the report covers (QUIC's delivery window, or a queue) already
            // answered this loss: a blackout's losses, counted by both, must not cut twice.
            let answered = self.now.zip(self.last_cut).is_some_and(|(now, cut)| now.saturating_duration_since(cut) < REPORT_SPAN);
            if !answered {
                self.remember_ceiling();
                self.estimate *= 1.0 - 0.5 * loss;
            }
        } else if loss < LOW_LOSS {
            self.clean_rate = Some(self.estimate);
            let near_ceiling = self.ceiling.is_some_and(|c| self.estimate >= NEAR_CEILING * c);
            self.estimate *= if near_ceiling { CEILING_GROWTH } else { 1.08 };
        } else if let Some(clean) = self.clean_rate.filter(|clean| self.estimate > *clean) {
            // The loss came as the rate grew past the last one that was clean: the rate's own
            // doing (a policer, a small buffer), so back to where it was clean.
            self.remember_ceiling();
            self.estimate = clean;
        } else if self.delay_is_stable() {
            self.estimate *= PROBE_GROWTH;
        }
        self.clamp();
    }

    /// A loss cut comes down from the estimate now: that is the path's ceiling, unless another cut
    /// came within [`REPORT_SPAN`] before. Then both answer the same episode (a report that lags the
    /// rate, QUIC's loss counted a window late, a delay cut), and the ceiling stays the rate the
    /// first came down from. Taking the already-cut estimate as the ceiling held a call that had
    /// just paused its video at a stale "ceiling" of 127 kbps on a 300 kbps link, growing 1 % a
    /// second, for 25 s.
    fn remember_ceiling(&mut self) {
        let cuts = [self.last_cut, self.ceiling_at];
        let cascade = self.now.is_some_and(|now| {
            cuts.into_iter().flatten().any(|cut| now.saturating_duration_since(cut) < REPORT_SPAN)
        });
        self.ceiling = Some(match self.ceiling {
            Some(c) if cascade => c.max(self.estimate),
            _ => self.estimate,
        });
        self.ceiling_at = self.now;
    }

    /// The RTT is known and within [`STABLE_DELAY`] of the lowest seen: no queue is building.
    fn delay_is_stable(&self) -> bool {
        self.rtt.zip(self.min_rtt).is_some_and(|(rtt, min)| rtt <= min + STABLE_DELAY)
    }

    /// QUIC's own accounting over the last `interval`: bytes sent, and bytes it declared lost. Loss
    /// above [`HIGH_LOSS`] there (a policer, a queue that drops rather than grows) means the path
    /// carries about what got through: the estimate drops to 90 % of that delivered rate at once (at
    /// most once per [`CUT_GAP`]) instead of shrinking a few percent per report. Unless almost
    /// nothing got through (under a fifth of the estimate): that is an outage, not a narrow path,
    /// and the estimate only halves, so a second of total loss does not drop it to the floor and
    /// pause the video. The rate a loss cut came down from is remembered as the path's ceiling.
    ///
    /// QUIC declares a packet lost only when a later one is acknowledged, so a blackout's losses
    /// are all counted in the window after it, against what was sent once the path was back (the
    /// window they were sent in counted them as neither). Loss and delivered rate are therefore
    /// taken over this window and the previous one together, until a cut answers them: a
    /// policer's steady loss reads the same, and a blackout's late count no longer reads as a
    /// path a fifth as wide.
    pub fn on_delivery(&mut self, now: Instant, sent_bytes: u64, lost_bytes: u64, interval: Duration) {
        self.now = Some(now);
        if interval.is_zero() {
            return;
        }
        let (sent, lost, span) = match self.previous_window {
            Some((s, l, i)) => (s + sent_bytes, l + lost_bytes, i + interval),
            None => (sent_bytes, lost_bytes, interval),
        };
        self.previous_window = Some((sent_bytes, lost_bytes, interval));
        if sent < 3000 {
            return;
        }
        let lost = lost.min(sent);
        let loss = lost as f64 / sent as f64;
        if loss > HIGH_LOSS && self.last_cut.is_none_or(|t| now.saturating_duration_since(t) >= CUT_GAP) {
            let delivered = (sent - lost) as f64 * 8.0 / span.as_secs_f64();
            let outage = delivered < 0.2 * self.estimate;
            let cut = if outage { 0.5 * self.estimate } else { 0.9 * delivered };
            // What QUIC sent includes its retransmissions: what got through can be above the
            // estimate while the loss is high. That is no cut, and answers no report.
            if cut < self.estimate {
                self.remember_ceiling();
                self.estimate = cut;
                self.last_cut = Some(now);
                self.previous_window = None;
            }
        }
        self.clamp();
    }

    /// QUIC's path stats at `now`: smoothed RTT and the congestion window in bytes.
    pub fn on_path(&mut self, now: Instant, rtt: Duration, cwnd: u64) {
        self.now = Some(now);
        let min = self.min_rtt.map_or(rtt, |m| m.min(rtt));
        self.min_rtt = Some(min);
        self.rtt = Some(rtt);
        let rtt_s = rtt.as_secs_f64().max(0.001);
        self.cwnd_cap = Some(cwnd as f64 * 8.0 / rtt_s);
        if rtt > min + QUEUE_DELAY
            && self.last_cut.is_none_or(|t| now.saturating_duration_since(t) >= CUT_GAP)
        {
            self.estimate *= 0.85;
            self.last_cut = Some(now);
        }
        self.clamp();
    }

    /// The split when audio wants `audio_need` bits per second (its codec rate plus redundancy).
    pub fn budget(&self, audio_need: u32) -> Budget {
        let total = self.estimate as u32;
        let audio = audio_need.min(total);
        let rest = total - audio;
        let video = if rest < self.limits.min_video { 0 } else { rest.min(self.limits.max_video) };
        Budget { audio, video }
    }

    fn clamp(&mut self) {
        let mut max = f64::from(self.limits.max_video) + 200_000.0;
        if let Some(cap) = self.cwnd_cap {
            max = max.min(cap);
        }
        self.estimate = self.estimate.min(max).max(f64::from(self.limits.min_total));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUDIO: u32 = 64_000; // Opus plus one redundant copy

    /// A bottleneck of `capacity` bits per second with `base` RTT: what the sender sends above the
    /// capacity queues, and the queue shows as RTT; loss is `loss` plus what overflows a 200 ms buffer.
    fn simulate(c: &mut BitrateController, seconds: u32, capacity: f64, base: Duration, loss: f64) -> Vec<u32> {
        let mut now = Instant::now();
        let mut queue_bits = 0.0f64;
        let mut trace = Vec::new();
        for _ in 0..seconds * 10 {
            now += Duration::from_millis(100);
            let b = c.budget(AUDIO);
            let sending = f64::from(b.audio + b.video);
            queue_bits = (queue_bits + (sending - capacity) * 0.1).max(0.0);
            let overflow = (queue_bits - capacity * 0.2).max(0.0);
            queue_bits -= overflow;
            let rtt = base + Duration::from_secs_f64(queue_bits / capacity);
            c.on_path(now, rtt, 1_000_000);
            trace.push(c.estimate());
            if trace.len() % 10 == 0 {
                // One report per second.
                let overflow_loss = if sending > 0.0 { overflow * 10.0 / sending } else { 0.0 };
                c.on_report(loss + overflow_loss);
            }
        }
        trace
    }

    #[test]
    fn a_clean_fast_link_ramps_video_to_its_maximum() {
        let mut c = BitrateController::new(RateLimits::default());
        simulate(&mut c, 60, 10_000_000.0, Duration::from_millis(20), 0.0);
        assert_eq!(c.budget(AUDIO), Budget { audio: AUDIO, video: 1_500_000 });
    }

    #[test]
    fn a_300_kbps_link_brings_the_total_under_it_and_audio_keeps_its_share() {
        let mut c = BitrateController::new(RateLimits::default());
        let trace = simulate(&mut c, 40, 300_000.0, Duration::from_millis(20), 0.0);
        let tail = &trace[trace.len() - 100..];
        let mean = tail.iter().map(|&e| f64::from(e)).sum::<f64>() / tail.len() as f64;
        assert!(mean < 330_000.0 && mean > 120_000.0, "settles near the link rate: {mean:.0}");
        let b = c.budget(AUDIO);
        assert_eq!(b.audio, AUDIO, "audio is served in full");
        assert_eq!(b.video, c.estimate() - AUDIO, "video takes the rest");
        let peak = tail.iter().max().unwrap();
        assert!(*peak < 400_000, "the sawtooth stays near the link: peak {peak}");
    }

    #[test]
    fn heavy_loss_cuts_and_light_loss_does_not() {
        let mut heavy = BitrateController::new(RateLimits::default());
        for _ in 0..5 {
            heavy.on_report(0.20);
        }
        // Each 20 % report takes 10 % off: 0.9^5 of the start.
        assert_eq!(heavy.estimate(), 354_294);
        let mut light = BitrateController::new(RateLimits::default());
        for _ in 0..5 {
            light.on_report(0.05);
        }
        assert_eq!(light.estimate(), 600_000, "5 % is what FEC and redundancy are for");
    }

    #[test]
    fn on_a_starved_path_video_pauses_before_audio_suffers() {
        let mut c = BitrateController::new(RateLimits::default());
        for _ in 0..30 {
            c.on_report(0.5);
        }
        assert_eq!(c.estimate(), 40_000, "the floor");
        assert_eq!(c.budget(AUDIO), Budget { audio: 40_000, video: 0 });
        assert_eq!(c.budget(24_000), Budget { audio: 24_000, video: 0 }, "16 kbps left is no video");
    }

    #[test]
    fn a_growing_rtt_cuts_before_any_loss_at_most_twice_a_second() {
        let mut c = BitrateController::new(RateLimits::default());
        let t0 = Instant::now();
        c.on_path(t0, Duration::from_millis(20), 1_000_000);
        c.on_path(t0 + Duration::from_millis(100), Duration::from_millis(70), 1_000_000);
        assert_eq!(c.estimate(), 600_000, "50 ms over the minimum is jitter, not a queue");
        c.on_path(t0 + Duration::from_millis(200), Duration::from_millis(100), 1_000_000);
        assert_eq!(c.estimate(), 510_000, "80 ms over: a queue, cut 15 %");
        c.on_path(t0 + Duration::from_millis(400), Duration::from_millis(120), 1_000_000);
        assert_eq!(c.estimate(), 510_000, "the cut has not had an RTT to show yet");
        c.on_path(t0 + Duration::from_millis(700), Duration::from_millis(120), 1_000_000);
        assert_eq!(c.estimate(), 433_500, "still queueing after 500 ms: cut again");
    }

    #[test]
    fn a_policed_link_brings_the_estimate_to_what_gets_through_within_a_second() {
        // 300 kbps policer: what is sent above the rate is dropped, nothing queues (no RTT signal).
        let mut c = BitrateController::new(RateLimits::default());
        let mut now = Instant::now();
        let tick = Duration::from_millis(500);
        let capacity = 300_000.0;
        let mut history = Vec::new();
        for i in 0..40 {
            now += tick;
            let rate = f64::from(c.estimate());
            let sent = rate * tick.as_secs_f64() / 8.0;
            let delivered = rate.min(capacity) * tick.as_secs_f64() / 8.0;
            c.on_path(now, Duration::from_millis(40), 1_000_000);
            c.on_delivery(now, sent as u64, (sent - delivered) as u64, tick);
            if i % 2 == 1 {
                c.on_report(1.0 - rate.min(capacity) / rate);
            }
            history.push(c.estimate());
        }
        assert!(history[1] <= 300_000, "under the rate within a second: {history:?}");
        let tail = &history[10..];
        assert!(tail.iter().all(|e| *e >= 200_000), "and it uses most of the link: {tail:?}");
        assert!(tail.iter().all(|e| *e <= 340_000), "without overshooting far: {tail:?}");
        // A 600 ms outage (nothing delivered) halves the estimate once or twice, no more: video
        // keeps going at a lower rate instead of pausing.
        let mut out = BitrateController::new(RateLimits::default());
        let before = out.estimate();
        for k in 1..=2 {
            out.on_delivery(now + tick * k, 20_000, 20_000, tick);
        }
        assert!(out.estimate() >= before / 4, "{} after an outage from {before}", out.estimate());
        assert!(out.budget(80_000).video > 0, "video is not paused by a short outage");
        // Light loss on a wide link is not a cut.
        let mut wide = BitrateController::new(RateLimits::default());
        wide.on_delivery(now, 100_000, 1_000, tick);
        assert_eq!(wide.estimate(), 600_000);
    }

    #[test]
    fn steady_moderate_loss_probes_up_while_the_delay_is_stable_and_holds_while_it_grows() {
        let t0 = Instant::now();
        let mut stable = BitrateController::new(RateLimits { start: 200_000, ..RateLimits::default() });
        let mut queueing = BitrateController::new(RateLimits { start: 200_000, ..RateLimits::default() });
        queueing.on_path(t0, Duration::from_millis(40), 1_000_000);
        for k in 1..=10u32 {
            let at = t0 + Duration::from_secs(u64::from(k));
            stable.on_path(at, Duration::from_millis(40), 1_000_000);
            // 40 ms over the minimum: under a queue's cut, over a stable delay.
            queueing.on_path(at, Duration::from_millis(80), 1_000_000);
            stable.on_report(0.05);
            queueing.on_report(0.05);
        }
        // 3 % a report, ten reports: 1.03^10 of the start.
        assert_eq!(stable.estimate(), 268_783, "5 % random loss on a quiet path is the path's own");
        assert_eq!(queueing.estimate(), 200_000, "with the delay up, 5 % loss may be a queue's: hold");
    }

    #[test]
    fn a_blackouts_losses_counted_late_cut_once_and_leave_room_for_video() {
        // The simulator's trace of a 600 ms blackout on a 600 kbps call (tests/media_sim.rs
        // `after_a_blackout_video_keeps_flowing_whatever_the_seed`): the window the blackout began
        // in declared nothing lost (no acknowledgements, no verdicts); the next one declared the
        // blackout's packets lost against what went out once the path was back; the receiver's
        // report then counted the same blackout again.
        let t0 = Instant::now();
        let mut c = BitrateController::new(RateLimits::default());
        let window = Duration::from_millis(600);
        c.on_path(t0, Duration::from_millis(40), 1_000_000);
        c.on_delivery(t0, 48_401, 0, window);
        c.on_delivery(t0 + window, 62_722, 51_093, window);
        // Over both windows 60 KB of 111 KB got through in 1.2 s: 400 kbps, cut to 90 % of it
        // (over the last window alone it read 155 kbps, and the estimate fell to 140 kbps).
        assert_eq!(c.estimate(), 360_180);
        c.on_report(0.58);
        assert_eq!(c.estimate(), 360_180, "the report's loss is the same blackout's: answered already");
        assert!(c.budget(AUDIO).video >= 200_000, "{:?}", c.budget(AUDIO));
        // The window after is counted alone: the cut answered the one before.
        c.on_delivery(t0 + window * 2, 27_000, 1_300, window);
        assert_eq!(c.estimate(), 360_180);
        // A report a second after the cut is news: 30 % loss cuts 15 %.
        c.on_path(t0 + window * 2 + REPORT_SPAN, Duration::from_millis(40), 1_000_000);
        c.on_report(0.30);
        assert_eq!(c.estimate(), 306_153);
    }

    #[test]
    fn loss_that_comes_with_growth_steps_back_and_growth_near_the_last_cut_is_slow() {
        let t0 = Instant::now();
        let mut c = BitrateController::new(RateLimits { start: 200_000, ..RateLimits::default() });
        c.on_path(t0, Duration::from_millis(40), 1_000_000);
        c.on_report(0.0);
        assert_eq!(c.estimate(), 216_000, "clean: grow 8 %");
        c.on_report(0.05);
        assert_eq!(c.estimate(), 200_000, "the loss came with the growth: back to the clean rate");
        // QUIC sent 300 kbps over the second (its retransmissions on top of the media) and lost a
        // fifth: 240 kbps got through, above the estimate. No cut, so the report is still news.
        c.on_delivery(t0 + Duration::from_secs(1), 37_500, 7_500, Duration::from_secs(1));
        assert_eq!(c.estimate(), 200_000);
        c.on_report(0.30);
        assert_eq!(c.estimate(), 170_000, "30 % loss cuts 15 %");
        // 170 kbps is within 85 % of the 200 kbps the cut came down from: grow 1 %, not 8 %.
        c.on_report(0.0);
        assert_eq!(c.estimate(), 171_700);
    }

    #[test]
    fn the_congestion_window_caps_the_estimate() {
        let mut c = BitrateController::new(RateLimits::default());
        // 12 KB per 100 ms = 960 kbps.
        c.on_path(Instant::now(), Duration::from_millis(100), 12_000);
        for _ in 0..30 {
            c.on_report(0.0);
        }
        assert_eq!(c.estimate(), 960_000);
    }
}
