//! The send-rate controller (sans-IO): one estimate of what the path carries, split between audio
//! (served first, in full, because a call without sound is no call) and video (the rest, within its
//! bounds). Fed by the receiver's reports (loss before recovery) and by QUIC's path stats (RTT and
//! congestion window); in the spirit of WebRTC's loss- and delay-based controllers, simplified:
//!
//! - loss above [`HIGH_LOSS`]: cut by half the loss fraction; below [`LOW_LOSS`]: grow
//!   [`GROWTH`] per report (reports come about once a second), or [`NEAR_GROWTH`] while what gets
//!   through is near the capacity the last loss cut measured; in between: hold;
//! - RTT more than [`QUEUE_DELAY`] above the lowest seen: a queue is building on the bottleneck, cut
//!   15 % (at most once per [`CUT_GAP`]), whatever the loss says;
//! - QUIC's own loss over a window above [`HIGH_LOSS`]: down to what got through (what the peer
//!   acknowledged), and down by the share that did not, once per congestion event ([`RECOVERY`]);
//! - never above what the congestion window lets through (cwnd / RTT), nor outside the bounds.

use std::time::{Duration, Instant};

/// Loss (before recovery) above which the estimate is cut.
pub const HIGH_LOSS: f64 = 0.10;
/// Loss below which the estimate grows.
pub const LOW_LOSS: f64 = 0.02;
/// RTT growth over the minimum that means a queue.
pub const QUEUE_DELAY: Duration = Duration::from_millis(60);
/// After a loss cut, the losses of the next second and two round trips belong to the same
/// congestion event and cut no more: QUIC declares some of an overload's losses in the window
/// after it, and a receiver report describes the second before it and takes a trip to come. Each
/// of them cut again before, and one overload took the estimate from the path's rate to the floor.
pub const RECOVERY: Duration = Duration::from_secs(1);
/// The least time between two delay-based cuts (a cut needs an RTT to show).
pub const CUT_GAP: Duration = Duration::from_millis(500);
/// Growth per clean report far from the path's known capacity.
pub const GROWTH: f64 = 0.08;
/// Growth per clean report while what gets through is [`NEAR_CAPACITY`] or more of the capacity
/// the last loss cut measured (after WebRTC's AIMD controller, which grows additively near the link
/// capacity it last saw). At 8 % a report, the estimate went from the cut back past a 300 kbps
/// policed link in two or three seconds, and every crossing cost a frozen picture while QUIC
/// resent the video lost there.
pub const NEAR_GROWTH: f64 = 0.01;
/// How close to the measured capacity what gets through must be for growth to slow to
/// [`NEAR_GROWTH`].
pub const NEAR_CAPACITY: f64 = 0.9;
/// A clean window that got this much more through than the measured capacity shows the capacity
/// was low (a cut measured in a disturbed window, or the path widened): it is forgotten and growth
/// is [`GROWTH`] again. A quarter: forgetting at a ninth more sent the estimate up 8 % a report
/// past a 300 kbps policed link whose capacity had been measured at 250 kbps, into an overload
/// that froze the picture for three seconds.
pub const FORGET_CAPACITY: f64 = 1.25;

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
    /// `paused_for_bandwidth`). 30 kbps, WebRTC's default minimum: on a 300 kbps policed link
    /// the loss cuts' dips took the estimate under 60 kbps of video for seconds at a time, and a
    /// poor moving picture beats a paused one (docs/performance.md, "Policed link").
    pub min_video: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits { start: 600_000, min_total: 40_000, max_video: 1_500_000, min_video: 30_000 }
    }
}

/// QUIC's accounting over one window, for [`BitrateController::on_delivery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// UDP bytes sent in the window.
    pub sent_bytes: u64,
    /// Bytes declared lost in the window (of packets sent in it or before).
    pub lost_bytes: u64,
    /// Bytes the peer acknowledged in the window, when the transport counts them.
    pub acked_bytes: Option<u64>,
    /// How long the window was.
    pub interval: Duration,
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
    cwnd_cap: Option<f64>,
    last_cut: Option<Instant>,
    /// When the last loss cut came.
    loss_cut: Option<Instant>,
    /// As of the last path sample, losses still belong to the event the last loss cut answered.
    recovering: bool,
    /// What got through, bits per second, in the window of the last loss cut (not an outage):
    /// what the path is known to carry.
    capacity: Option<f64>,
    /// What got through in the last delivery window, bits per second (measured as the capacity
    /// is: acknowledged bytes, or sent − lost without them).
    delivered: Option<f64>,
}

impl BitrateController {
    /// A controller within `limits`.
    pub fn new(limits: RateLimits) -> Self {
        BitrateController {
            limits,
            estimate: f64::from(limits.start),
            min_rtt: None,
            cwnd_cap: None,
            last_cut: None,
            loss_cut: None,
            recovering: false,
            capacity: None,
            delivered: None,
        }
    }

    /// The total estimate, bits per second.
    pub fn estimate(&self) -> u32 {
        self.estimate as u32
    }

    /// A receiver report: `loss` is the fraction of packets lost before recovery (0..=1). Loss
    /// within [`RECOVERY`] of a loss cut describes what that cut answered: it holds. Clean
    /// reports grow the estimate by [`GROWTH`], or by [`NEAR_GROWTH`] while what gets through is
    /// near the capacity the last loss cut measured.
    pub fn on_report(&mut self, loss: f64) {
        let loss = loss.clamp(0.0, 1.0);
        if loss > HIGH_LOSS {
            if !self.recovering {
                self.estimate *= 1.0 - 0.5 * loss;
            }
        } else if loss < LOW_LOSS {
            self.estimate *= 1.0 + if self.near_capacity() { NEAR_GROWTH } else { GROWTH };
        }
        self.clamp();
    }

    /// Whether the last window got within [`NEAR_CAPACITY`] of the known capacity through.
    fn near_capacity(&self) -> bool {
        matches!((self.capacity, self.delivered), (Some(c), Some(d)) if d >= NEAR_CAPACITY * c)
    }

    /// QUIC's own accounting over the last `interval`: bytes sent, bytes it declared lost, and
    /// bytes the peer acknowledged (when the transport counts them). Loss above [`HIGH_LOSS`]
    /// there (a policer, a queue that drops rather than grows) means the path carries about what
    /// got through: the estimate drops to 90 % of that delivered rate at once instead of shrinking
    /// a few percent per report. What got through is what was acknowledged: "sent − declared
    /// lost" over one window reads losses declared now of packets sent in the window before, and
    /// on a 300 kbps policed link it read 160–200 kbps after the first cut, so each cut went under
    /// the path and the next loss cut deeper (600 → 368 → 215 → 122 kbps in a real call). Without
    /// an acknowledged count, "sent − lost" is the fallback. And the estimate drops by half the
    /// share that did not get through, if that is lower: the call can put well more on the wire
    /// than its estimate (QUIC resending a video stream's lost bytes, audio's copies), and a cut
    /// to 90 % of what got through then left an estimate the path already carried while the wire
    /// overran it, and the loss went on. Once per congestion event: no loss cut comes within
    /// [`RECOVERY`] of the last (plus two round trips), nor within [`CUT_GAP`] of a delay cut.
    /// Unless almost nothing got through (under a fifth of the estimate): that is an outage, not a
    /// narrow path, and the estimate only halves, so a second of total loss does not drop it to
    /// the floor and pause the video.
    pub fn on_delivery(&mut self, now: Instant, window: Delivery) {
        let Delivery { sent_bytes, lost_bytes, acked_bytes, interval } = window;
        if sent_bytes < 3000 || interval.is_zero() {
            return;
        }
        let lost = lost_bytes.min(sent_bytes);
        let loss = lost as f64 / sent_bytes as f64;
        let got_through = acked_bytes.unwrap_or(sent_bytes - lost);
        let delivered = got_through as f64 * 8.0 / interval.as_secs_f64();
        self.delivered = Some(delivered);
        if loss < LOW_LOSS && self.capacity.is_some_and(|c| delivered > FORGET_CAPACITY * c) {
            self.capacity = None;
        }
        if loss > HIGH_LOSS
            && !self.recovering
            && self.last_cut.is_none_or(|t| now.saturating_duration_since(t) >= CUT_GAP)
        {
            let outage = delivered < 0.2 * self.estimate;
            let floor = if outage { 0.5 * self.estimate } else { 0.0 };
            let cut = (0.9 * delivered).min((1.0 - 0.5 * loss) * self.estimate);
            self.estimate = self.estimate.min(cut.max(floor));
            if !outage {
                self.capacity = Some(delivered);
            }
            self.last_cut = Some(now);
            self.loss_cut = Some(now);
            self.recovering = true;
        }
        self.clamp();
    }

    /// QUIC's path stats at `now`: smoothed RTT and the congestion window in bytes.
    pub fn on_path(&mut self, now: Instant, rtt: Duration, cwnd: u64) {
        let min = self.min_rtt.map_or(rtt, |m| m.min(rtt));
        self.min_rtt = Some(min);
        let rtt_s = rtt.as_secs_f64().max(0.001);
        self.cwnd_cap = Some(cwnd as f64 * 8.0 / rtt_s);
        self.recovering = self.loss_cut.is_some_and(|t| now.saturating_duration_since(t) < RECOVERY + 2 * rtt);
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

    /// A window without an acknowledged count: what got through is "sent − lost".
    fn window(sent_bytes: u64, lost_bytes: u64, interval: Duration) -> Delivery {
        Delivery { sent_bytes, lost_bytes, acked_bytes: None, interval }
    }

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
    fn a_wire_that_overran_the_estimate_is_cut_by_the_share_it_lost() {
        // The estimate is 300 kbps, but QUIC resent lost video and audio sent copies: the wire
        // carried 500 kbps for 500 ms, 30 % of it lost. 350 kbps got through, so "90 % of what got
        // through" (315 kbps) would leave the estimate where the loss came from; half the lost
        // share comes off instead.
        let start = RateLimits { start: 300_000, ..RateLimits::default() };
        let mut c = BitrateController::new(start);
        let now = Instant::now();
        c.on_path(now, Duration::from_millis(40), 1_000_000);
        c.on_delivery(now, window(31_250, 9_375, Duration::from_millis(500)));
        assert_eq!(c.estimate(), 255_000, "300 000 × (1 − 0.15)");
        // When the wire sent what the estimate said, the cut is to 90 % of what got through, as
        // before: 600 kbps sent, 50 % lost.
        let mut d = BitrateController::new(RateLimits::default());
        d.on_path(now, Duration::from_millis(40), 1_000_000);
        d.on_delivery(now, window(37_500, 18_750, Duration::from_millis(500)));
        assert_eq!(d.estimate(), 270_000);
    }

    #[test]
    fn the_losses_of_one_overload_cut_once() {
        let mut c = BitrateController::new(RateLimits::default());
        let rtt = Duration::from_millis(40);
        let t0 = Instant::now();
        let half = Duration::from_millis(500);
        c.on_path(t0, rtt, 1_000_000);
        // 600 kbps sent, half lost: cut to 90 % of the 300 that got through.
        c.on_delivery(t0, window(37_500, 18_750, half));
        assert_eq!(c.estimate(), 270_000);
        // The next window's losses (QUIC declared them late), and the receiver's report of the
        // second that held the overload, are the same event: they hold.
        let t1 = t0 + half;
        c.on_path(t1, rtt, 1_000_000);
        c.on_delivery(t1, window(16_875, 8_000, half));
        assert_eq!(c.estimate(), 270_000, "a late declaration of the same overload");
        c.on_report(0.4);
        assert_eq!(c.estimate(), 270_000, "the report of the overload's second");
        // A second and two round trips after the cut, loss is news: a second event cuts.
        let t2 = t0 + RECOVERY + 2 * rtt;
        c.on_path(t2, rtt, 1_000_000);
        c.on_report(0.4);
        assert_eq!(c.estimate(), 216_000, "270 000 × (1 − 0.2)");
        c.on_delivery(t2, window(16_875, 3_375, half));
        assert_eq!(c.estimate(), 194_400, "216 000 × (1 − 0.1), which is also 90 % of what got through");
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
            c.on_delivery(now, window(sent as u64, (sent - delivered) as u64, tick));
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
            out.on_delivery(now + tick * k, window(20_000, 20_000, tick));
        }
        assert!(out.estimate() >= before / 4, "{} after an outage from {before}", out.estimate());
        assert!(out.budget(80_000).video > 0, "video is not paused by a short outage");
        // Light loss on a wide link is not a cut.
        let mut wide = BitrateController::new(RateLimits::default());
        wide.on_delivery(now, window(100_000, 1_000, tick));
        assert_eq!(wide.estimate(), 600_000);
    }

    #[test]
    fn a_cut_goes_to_what_was_acknowledged_not_to_what_was_sent_less_late_declared_losses() {
        // 368 kbps on a 300 kbps policed link. In this 500 ms window 18 750 bytes left (300
        // kbps: the sender already backed off), the path carried all of them (acknowledged), and
        // QUIC declared 9 000 bytes lost that had left in the window before. "Sent − lost" reads
        // 156 kbps and would cut under half the path; the acknowledged bytes say 300 kbps.
        let start = RateLimits { start: 368_000, ..RateLimits::default() };
        let now = Instant::now();
        let half = Duration::from_millis(500);
        let mut acked = BitrateController::new(start);
        acked.on_path(now, Duration::from_millis(40), 1_000_000);
        acked.on_delivery(now, Delivery { acked_bytes: Some(18_750), ..window(18_750, 9_000, half) });
        assert_eq!(acked.estimate(), 270_000, "90 % of the 300 kbps acknowledged");
        let mut fallback = BitrateController::new(start);
        fallback.on_path(now, Duration::from_millis(40), 1_000_000);
        fallback.on_delivery(now, window(18_750, 9_000, half));
        assert_eq!(fallback.estimate(), 140_400, "90 % of the 156 kbps of sent − lost");
        // Nothing acknowledged at all is an outage, as before: the estimate halves.
        let mut out = BitrateController::new(start);
        out.on_path(now, Duration::from_millis(40), 1_000_000);
        out.on_delivery(now, Delivery { acked_bytes: Some(0), ..window(18_750, 18_750, half) });
        assert_eq!(out.estimate(), 184_000);
    }

    #[test]
    fn near_the_capacity_a_loss_cut_measured_the_estimate_grows_one_percent_a_report() {
        let now = Instant::now();
        let half = Duration::from_millis(500);
        let mut c = BitrateController::new(RateLimits::default());
        c.on_path(now, Duration::from_millis(40), 1_000_000);
        // 600 kbps on the wire, 300 kbps acknowledged: cut to 270 kbps, capacity 300 kbps.
        c.on_delivery(now, Delivery { acked_bytes: Some(18_750), ..window(37_500, 18_750, half) });
        assert_eq!(c.estimate(), 270_000);
        // 280 kbps now gets through (the estimate plus headers), over 90 % of the capacity: a
        // clean report grows the estimate 1 %, not 8 %.
        let later = now + RECOVERY + Duration::from_millis(500);
        c.on_path(later, Duration::from_millis(40), 1_000_000);
        c.on_delivery(later, Delivery { acked_bytes: Some(17_500), ..window(17_500, 0, half) });
        c.on_report(0.0);
        assert_eq!(c.estimate(), 272_700);
        // Under 90 % of the capacity getting through: the usual rate.
        c.on_delivery(later + half, Delivery { acked_bytes: Some(15_000), ..window(15_000, 0, half) });
        c.on_report(0.0);
        assert_eq!(c.estimate(), 294_516);
        // A clean window that got 360 kbps through (a fifth over the capacity) still counts as near
        // it: 1 %.
        c.on_delivery(later + 2 * half, Delivery { acked_bytes: Some(22_500), ..window(22_500, 0, half) });
        c.on_report(0.0);
        assert_eq!(c.estimate(), 297_461);
        // One that got 390 kbps through, over a quarter more: the path has more room now, the
        // capacity is forgotten, and growth is 8 % again however busy the path.
        c.on_delivery(later + 3 * half, Delivery { acked_bytes: Some(24_375), ..window(24_375, 0, half) });
        c.on_report(0.0);
        assert_eq!(c.estimate(), 321_258);
        // Without any loss cut, there is no capacity: 8 %.
        let mut fresh = BitrateController::new(RateLimits::default());
        fresh.on_delivery(now, Delivery { acked_bytes: Some(37_500), ..window(37_500, 0, half) });
        fresh.on_report(0.0);
        assert_eq!(fresh.estimate(), 648_000);
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
