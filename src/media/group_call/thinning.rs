//! Per-receiver thinning of video temporal layers (`protocols/group-media-v1.md`, "Thinning"):
//! a member sends (or forwards) a receiver the enhancement layer only while that receiver's link
//! keeps up; the base layer always goes, whatever the link. One slow receiver then gets half the
//! frame rate and everyone else the whole of it, without anyone re-encoding or decrypting.
//!
//! **The signal: the link's queueing delay**, its smoothed RTT above the lowest RTT seen on it
//! (over the last [`MIN_RTT_WINDOW`]), and records that did not fit in the link's send queue.
//! When the link carries less than is sent on it, a queue builds at its bottleneck and every
//! packet on it (audio's datagrams too) waits in it: the RTT, measured by QUIC on every
//! acknowledgement, grows by exactly that wait. It needs nothing from the receiver (its reports
//! come once a second, too late for a queue that grows 100 ms in a few frames) and it measures what
//! hurts the audio that shares the link. Not the congestion window: a call's window has a floor
//! (`transport::congestion`, 48 KB) far above what a slow link carries in an RTT, so cwnd / RTT
//! says nothing about a 300 kbit/s link; and not the send queue alone: QUIC buffers megabytes
//! before a write waits.
//!
//! - Queueing delay at or above [`QUEUE_HIGH`], or a record dropped at the link's queue: the
//!   enhancement layer stops at once (the next enhancement record is not sent).
//! - It comes back when the delay has stayed at or under [`QUEUE_LOW`] for the **hold** time, at
//!   first [`CALM`]; a link that has to be thinned again within [`RELAPSE`] of coming back doubles
//!   the hold (up to [`MAX_CALM`]), so a link that carries the base layer but not the whole stream
//!   is not probed every two seconds; a link that stays good for [`RELAPSE`] resets it.
//!
//! Sans-IO: fed `now` and the link's RTT, asked per record.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Queueing delay at which a receiver's enhancement layer stops.
pub const QUEUE_HIGH: Duration = Duration::from_millis(100);
/// Queueing delay under which the link counts as calm.
pub const QUEUE_LOW: Duration = Duration::from_millis(30);
/// How long a link must be calm before its enhancement layer comes back, at first.
pub const CALM: Duration = Duration::from_secs(2);
/// The longest hold.
pub const MAX_CALM: Duration = Duration::from_secs(32);
/// Thinned again this soon after coming back: the hold doubles; good this long: it resets.
pub const RELAPSE: Duration = Duration::from_secs(10);
/// The lowest RTT is the lowest over this long (a path that changed gets a new baseline).
pub const MIN_RTT_WINDOW: Duration = Duration::from_secs(30);

/// What a receiver's gate did, for `hail status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThinningStats {
    /// The temporal layers it is sent now (2: everything; 1: the base layer only).
    pub layers: u8,
    /// The link's queueing delay at the last RTT sample, ms.
    pub queue_ms: u32,
    /// Base-layer records let through.
    pub base_sent: u64,
    /// Enhancement-layer records let through.
    pub enhancement_sent: u64,
    /// Enhancement-layer records left out for this receiver.
    pub enhancement_thinned: u64,
    /// Times its enhancement layer was stopped.
    pub thinnings: u64,
}

/// One receiver's gate.
#[derive(Debug, Clone)]
pub struct LayerGate {
    min_rtt: Option<(Duration, Instant)>,
    thinned: bool,
    calm_since: Option<Instant>,
    hold: Duration,
    restored_at: Option<Instant>,
    stats: ThinningStats,
}

impl Default for LayerGate {
    fn default() -> Self {
        LayerGate {
            min_rtt: None,
            thinned: false,
            calm_since: None,
            hold: CALM,
            restored_at: None,
            stats: ThinningStats { layers: 2, ..Default::default() },
        }
    }
}

impl LayerGate {
    /// A gate that lets everything through until its link says otherwise.
    pub fn new() -> Self {
        Self::default()
    }

    /// The link's smoothed RTT at `now`.
    pub fn on_rtt(&mut self, now: Instant, rtt: Duration) {
        let min = match self.min_rtt {
            Some((min, at)) if rtt >= min && now.saturating_duration_since(at) < MIN_RTT_WINDOW => min,
            _ => {
                self.min_rtt = Some((rtt, now));
                rtt
            }
        };
        let queue = rtt.saturating_sub(min);
        self.stats.queue_ms = queue.as_millis().min(u128::from(u32::MAX)) as u32;
        if !self.thinned {
            if queue >= QUEUE_HIGH {
                self.thin(now);
            } else if self.restored_at.is_some_and(|t| now.saturating_duration_since(t) >= RELAPSE) {
                self.hold = CALM;
                self.restored_at = None;
            }
            return;
        }
        if queue > QUEUE_LOW {
            self.calm_since = None;
            return;
        }
        let since = *self.calm_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.hold {
            self.thinned = false;
            self.calm_since = None;
            self.restored_at = Some(now);
            self.stats.layers = 2;
        }
    }

    /// A record for this receiver did not fit in its link's queue at `now`: it does not keep up.
    pub fn on_dropped(&mut self, now: Instant) {
        if self.thinned {
            self.calm_since = None;
        } else {
            self.thin(now);
        }
    }

    fn thin(&mut self, now: Instant) {
        if self.restored_at.is_some_and(|t| now.saturating_duration_since(t) < RELAPSE) {
            self.hold = (self.hold * 2).min(MAX_CALM);
        }
        self.thinned = true;
        self.calm_since = None;
        self.stats.layers = 1;
        self.stats.thinnings += 1;
    }

    /// Whether a record of temporal layer `layer` goes to this receiver (counted either way).
    /// The base layer always does.
    pub fn admit(&mut self, layer: u8) -> bool {
        if layer == 0 {
            self.stats.base_sent += 1;
            true
        } else if self.thinned {
            self.stats.enhancement_thinned += 1;
            false
        } else {
            self.stats.enhancement_sent += 1;
            true
        }
    }

    /// Whether the enhancement layer is left out now.
    pub fn thinned(&self) -> bool {
        self.thinned
    }

    /// The counters.
    pub fn stats(&self) -> ThinningStats {
        self.stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(40);

    /// Feeds `gate` an RTT sample every 100 ms from `from` for `ms`, and a record of each layer;
    /// returns the enhancement records let through.
    fn run(gate: &mut LayerGate, t0: Instant, from: u64, ms: u64, rtt: Duration) -> u64 {
        let mut through = 0;
        for t in (from..from + ms).step_by(100) {
            gate.on_rtt(t0 + Duration::from_millis(t), rtt);
            assert!(gate.admit(0), "the base layer always goes");
            through += u64::from(gate.admit(1));
        }
        through
    }

    #[test]
    fn a_queue_stops_the_enhancement_layer_and_a_calm_link_gets_it_back_after_the_hold() {
        let t0 = Instant::now();
        let mut g = LayerGate::new();
        assert_eq!(run(&mut g, t0, 0, 1_000, RTT), 10, "a fast link gets everything");
        // A queue of 90 ms: not yet; 100 ms: thinned at once.
        assert_eq!(run(&mut g, t0, 1_000, 500, RTT + Duration::from_millis(90)), 5);
        assert_eq!(run(&mut g, t0, 1_500, 1_000, RTT + Duration::from_millis(150)), 0);
        assert_eq!((g.stats().layers, g.stats().queue_ms), (1, 150));
        // Calm but under the hold (2 s): still base only; then everything again.
        assert_eq!(run(&mut g, t0, 2_500, 2_000, RTT + Duration::from_millis(10)), 0);
        assert_eq!(run(&mut g, t0, 4_500, 1_000, RTT), 10);
        let s = g.stats();
        assert_eq!((s.layers, s.thinnings, s.enhancement_thinned, s.base_sent), (2, 1, 30, 55));
    }

    #[test]
    fn a_queue_coming_back_during_the_hold_starts_it_again() {
        let t0 = Instant::now();
        let mut g = LayerGate::new();
        g.on_rtt(t0, RTT);
        g.on_dropped(t0);
        assert!(g.thinned(), "a record that did not fit thins at once");
        run(&mut g, t0, 0, 1_500, RTT);
        run(&mut g, t0, 1_500, 100, RTT + Duration::from_millis(50));
        assert_eq!(run(&mut g, t0, 1_600, 1_900, RTT), 0, "calm again for 1.9 s only");
        assert_eq!(run(&mut g, t0, 3_500, 200, RTT), 1, "back at 3.6 s");
    }

    #[test]
    fn a_link_that_relapses_waits_longer_each_time_and_a_good_one_resets() {
        let t0 = Instant::now();
        let mut g = LayerGate::new();
        let slow = RTT + Duration::from_millis(200);
        // Thinned at 0.1 s; back at 2.2 s; thinned again at 2.3 s: the hold is now 4 s.
        run(&mut g, t0, 0, 100, RTT);
        run(&mut g, t0, 100, 100, slow);
        run(&mut g, t0, 200, 2_100, RTT);
        assert!(!g.thinned(), "back after 2 s of calm");
        run(&mut g, t0, 2_300, 300, slow);
        assert!(g.thinned());
        assert_eq!(run(&mut g, t0, 2_600, 3_900, RTT), 0, "4 s now");
        assert_eq!(run(&mut g, t0, 6_500, 200, RTT), 1, "back at 6.6 s");
        // Good for 10 s: the hold is back to 2 s.
        run(&mut g, t0, 6_700, 10_000, RTT);
        run(&mut g, t0, 16_700, 100, slow);
        assert_eq!(run(&mut g, t0, 16_800, 1_900, RTT), 0);
        assert_eq!(run(&mut g, t0, 18_700, 200, RTT), 1, "2 s again");
        assert_eq!(g.stats().thinnings, 3);
    }

    #[test]
    fn the_baseline_is_the_lowest_rtt_of_the_last_30_seconds() {
        let t0 = Instant::now();
        let mut g = LayerGate::new();
        run(&mut g, t0, 0, 1_000, RTT);
        // The path changed: 200 ms more, for good. Thinned, then after 30 s a new baseline.
        run(&mut g, t0, 1_000, 30_000, RTT + Duration::from_millis(200));
        assert!(g.thinned());
        assert!(run(&mut g, t0, 31_000, 3_000, RTT + Duration::from_millis(200)) > 0);
    }
}
