//! Burst loss, as the receiver of a call's audio measures it, sans-IO: runs of consecutive lost
//! primaries (the datagram that first carries a frame; redundant copies do not count), their mean
//! and spread, for the receiver report (so the sender can space its copies beyond the typical
//! burst) and for `hail status`.
//!
//! A sequence number is only judged once [`SETTLE`] newer ones have arrived: a datagram reordered
//! by the network's jitter is late, not lost. A burst is counted when the first primary after it
//! arrives; a jump of more than [`RESTART_JUMP`] (the sender restarted its counter) ends the
//! current run without counting the jump. A run longer than [`MAX_BURST`] is an outage, which no
//! copy can bridge: it is counted as one, not as a burst.

use std::collections::{BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::packet::BurstReport;

/// A sequence number is judged (received or lost) once this many newer ones have arrived.
pub const SETTLE: u32 = 16;
/// Bursts remembered for the "recent" statistics (mean, 90th percentile).
pub const RECENT_BURSTS: usize = 32;
/// A primary lost within this many frames of the newest (5 s) means loss is present now.
pub const LOSS_MEMORY: u32 = 250;
/// A forward jump larger than this is the sender restarting, not a burst.
pub const RESTART_JUMP: u32 = 3000;
/// The longest run counted as a burst (1 s); a longer one is an outage.
pub const MAX_BURST: u32 = 50;

/// What `hail status` shows of the bursts of loss on the way in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BurstStats {
    /// Runs of consecutive lost primaries so far.
    pub bursts: u64,
    /// The longest run so far, datagrams.
    pub longest: u32,
    /// The mean length of the last [`RECENT_BURSTS`] runs, datagrams (0: none yet).
    pub recent_mean: f64,
    /// Their 90th percentile, datagrams.
    pub recent_p90: u32,
    /// Runs longer than [`MAX_BURST`] (outages) so far.
    #[serde(default)]
    pub outages: u64,
}

/// The receiver's burst measurement.
#[derive(Debug, Default)]
pub struct BurstMeter {
    /// The next sequence number to judge.
    next: Option<u32>,
    /// The newest primary seen.
    newest: u32,
    /// Primaries seen at or after `next`, not judged yet.
    pending: BTreeSet<u32>,
    /// The run of lost primaries being judged now.
    run: u32,
    /// The last lost primary of the newest burst.
    last_lost: Option<u32>,
    recent: VecDeque<u32>,
    /// This report interval: bursts ended, their total length, the longest.
    interval: (u32, u64, u32),
    stats: BurstStats,
}

impl BurstMeter {
    /// A meter that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The primary frame `seq` arrived.
    pub fn on_primary(&mut self, seq: u32) {
        let Some(next) = self.next else {
            self.next = Some(seq);
            self.newest = seq;
            self.pending.insert(seq);
            return;
        };
        let ahead = seq.wrapping_sub(next);
        if ahead >= 1 << 31 {
            // Older than what is judged already (it was counted lost: late is lost for playout too).
            return;
        }
        if ahead > RESTART_JUMP {
            self.end_run(next);
            self.pending.clear();
            self.next = Some(seq);
            self.newest = seq;
            self.pending.insert(seq);
            return;
        }
        if seq.wrapping_sub(self.newest) < 1 << 31 {
            self.newest = seq;
        }
        self.pending.insert(seq);
        // Judge everything SETTLE or more behind the newest.
        let mut next = next;
        while self.newest.wrapping_sub(next) >= SETTLE && self.newest.wrapping_sub(next) < 1 << 31 {
            if self.pending.remove(&next) {
                self.end_run(next);
            } else {
                self.run += 1;
            }
            next = next.wrapping_add(1);
        }
        self.next = Some(next);
    }

    /// The run of lost primaries before `received` is over.
    fn end_run(&mut self, received: u32) {
        if self.run == 0 {
            return;
        }
        let run = std::mem::take(&mut self.run);
        if run > MAX_BURST {
            self.stats.outages += 1;
            return;
        }
        self.last_lost = Some(received.wrapping_sub(1));
        self.stats.bursts += 1;
        self.stats.longest = self.stats.longest.max(run);
        let (count, total, longest) = &mut self.interval;
        *count += 1;
        *total += u64::from(run);
        *longest = (*longest).max(run);
        self.recent.push_back(run);
        if self.recent.len() > RECENT_BURSTS {
            self.recent.pop_front();
        }
        let mut sorted: Vec<u32> = self.recent.iter().copied().collect();
        sorted.sort_unstable();
        self.stats.recent_mean = sorted.iter().map(|r| f64::from(*r)).sum::<f64>() / sorted.len() as f64;
        self.stats.recent_p90 = sorted[((sorted.len() - 1) as f64 * 0.9).round() as usize];
    }

    /// Whether a burst of loss ended in the last [`LOSS_MEMORY`] frames (an outage does not count).
    pub fn loss_present(&self) -> bool {
        self.last_lost.is_some_and(|l| self.newest.wrapping_sub(l) <= LOSS_MEMORY)
    }

    /// The counters.
    pub fn stats(&self) -> BurstStats {
        self.stats
    }

    /// What goes into the next receiver report; starts the next interval.
    pub fn report(&mut self) -> BurstReport {
        let (count, total, longest) = std::mem::take(&mut self.interval);
        let centi = |x: f64| (x * 100.0).round().min(f64::from(u16::MAX)) as u16;
        let mean = if count == 0 { 0.0 } else { total as f64 / f64::from(count) };
        let clamp = |x: u32| x.min(u32::from(u16::MAX)) as u16;
        BurstReport {
            bursts: clamp(count),
            mean_centi: centi(mean),
            max: clamp(longest),
            recent_mean_centi: centi(self.stats.recent_mean),
            recent_p90: clamp(self.stats.recent_p90),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds sequence numbers `0..n` except `lost`, then enough to judge them all.
    fn meter(n: u32, lost: impl Fn(u32) -> bool) -> BurstMeter {
        let mut m = BurstMeter::new();
        for seq in (0..n + SETTLE).filter(|s| !lost(*s) || *s >= n) {
            m.on_primary(seq);
        }
        m
    }

    #[test]
    fn runs_of_lost_primaries_are_measured_per_interval_and_over_the_recent_bursts() {
        // Bursts of 1, 3 and 5.
        let mut m = meter(100, |s| s == 10 || (20..23).contains(&s) || (40..45).contains(&s));
        let s = m.stats();
        assert_eq!((s.bursts, s.longest, s.recent_p90), (3, 5, 5));
        assert!((s.recent_mean - 3.0).abs() < 1e-9, "{s:?}");
        assert!(m.loss_present());
        let r = m.report();
        assert_eq!(r, BurstReport { bursts: 3, mean_centi: 300, max: 5, recent_mean_centi: 300, recent_p90: 5 });
        // The next interval starts empty; the recent bursts are still remembered.
        let r = m.report();
        assert_eq!((r.bursts, r.mean_centi, r.max, r.recent_mean_centi), (0, 0, 0, 300));
    }

    #[test]
    fn reordered_primaries_are_not_losses_and_loss_is_forgotten_after_a_while() {
        let mut m = BurstMeter::new();
        // Every fifth datagram arrives three places late.
        let mut order: Vec<u32> = (0..200).collect();
        for i in (0..195).step_by(5) {
            order[i..i + 4].rotate_left(1);
        }
        for seq in order {
            m.on_primary(seq);
        }
        assert_eq!(m.stats().bursts, 0, "late is not lost: {:?}", m.stats());
        assert!(!m.loss_present());
        // One loss, then a clean stretch longer than the memory.
        let mut m = meter(50, |s| s == 5);
        assert!(m.loss_present());
        for seq in 50 + SETTLE..50 + SETTLE + LOSS_MEMORY {
            m.on_primary(seq);
        }
        assert!(!m.loss_present(), "loss stopped 5 s ago");
        // An outage of 2 s is not a burst, and not loss that copies could answer.
        let m = meter(300, |s| (100..200).contains(&s));
        let s = m.stats();
        assert_eq!((s.bursts, s.outages, s.longest), (0, 1, 0), "{s:?}");
        assert!(!m.loss_present());
    }

    #[test]
    fn hostile_or_wrapping_sequence_numbers_neither_panic_nor_count_a_jump_as_a_burst() {
        let mut m = BurstMeter::new();
        for seq in [u32::MAX - 20, u32::MAX - 2, u32::MAX, 0, 5, 30, 2_000_000_000, 7, 1, u32::MAX] {
            m.on_primary(seq);
        }
        let s = m.stats();
        assert!(s.longest < RESTART_JUMP, "{s:?}");
        let _ = m.report();
        // Across the wrap, a burst of 4.
        let mut m = BurstMeter::new();
        for seq in (0..100u32).map(|i| i.wrapping_add(u32::MAX - 50)).filter(|s| !(0..4).contains(s)) {
            m.on_primary(seq);
        }
        assert_eq!((m.stats().bursts, m.stats().longest), (1, 4));
    }
}
