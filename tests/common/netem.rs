//! A seeded network emulator, sans-IO (this kernel has no netem): fed the time a packet is sent and
//! its length, it says when each copy arrives, or that it is lost. The impairing UDP relay
//! (`relay.rs`) runs it on real sockets in real time; the simulator (`sim.rs`) in virtual time.
//!
//! What a link does, in this order: a bottleneck (a policer that drops what exceeds its bucket, 100 ms by default,
//! or a rate-limited drop-tail queue that delays), Gilbert-Elliott burst loss and independent loss,
//! duplication, delay with uniform jitter (which reorders), and an explicit extra delay for some
//! packets (reordering on a link without jitter). The random draws come from one seeded generator,
//! so the same seed and the same sends give the same fate to every packet.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the link does to packets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Uniform jitter added to the delay: ± this much.
    pub jitter: Duration,
    /// Chance a packet is lost (in the good state).
    pub loss: f64,
    /// Chance to enter the bad (bursty, every packet lost) state after a packet.
    pub burst_enter: f64,
    /// Chance to leave the bad state.
    pub burst_leave: f64,
    /// Chance a packet is duplicated.
    pub duplicate: f64,
    /// Chance a packet is held back by [`Impairment::reorder_delay`] more than the others.
    pub reorder: f64,
    /// How much longer a reordered packet takes.
    pub reorder_delay: Duration,
    /// Bytes per second through the bottleneck (0: unlimited).
    pub rate: u64,
    /// The bottleneck's queue in bytes. 0: no queue, a policer (packets over its bucket are
    /// dropped); more: packets wait their turn at `rate`, and those that find it full are dropped.
    pub queue_bytes: usize,
    /// How much of the rate a policer's bucket holds (100 ms unless said otherwise): the largest
    /// burst it lets through.
    pub bucket: Duration,
}

impl Impairment {
    /// A clean link.
    pub fn clean() -> Self {
        Impairment {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            burst_enter: 0.0,
            burst_leave: 1.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            rate: 0,
            queue_bytes: 0,
            bucket: Duration::from_millis(100),
        }
    }

    /// Gilbert-Elliott burst loss with a mean loss of `mean` in bursts of `mean_burst` packets on
    /// average (the bad state loses everything; the good state nothing).
    pub fn bursty(mean: f64, mean_burst: f64) -> Self {
        let leave = 1.0 / mean_burst;
        // Stationary share of the bad state: enter / (enter + leave) = mean.
        let enter = mean * leave / (1.0 - mean);
        Impairment { burst_enter: enter, burst_leave: leave, ..Impairment::clean() }
    }
}

/// What a link did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NetemStats {
    /// Packets offered.
    pub sent: u64,
    /// Copies delivered (a duplicated packet counts twice).
    pub delivered: u64,
    /// Lost to random or burst loss.
    pub lost: u64,
    /// Dropped by the bottleneck (policer or full queue).
    pub dropped: u64,
    /// Packets duplicated.
    pub duplicated: u64,
    /// Packets held back (reordered).
    pub reordered: u64,
}

/// One direction of a link.
#[derive(Debug)]
pub struct Netem {
    rng: StdRng,
    bad: bool,
    budget: f64,
    last: Option<Instant>,
    free_at: Option<Instant>,
    stats: NetemStats,
}

impl Netem {
    /// A link whose random choices follow `seed`.
    pub fn new(seed: u64) -> Self {
        Netem {
            rng: StdRng::seed_from_u64(seed),
            bad: false,
            budget: f64::INFINITY,
            last: None,
            free_at: None,
            stats: NetemStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> NetemStats {
        self.stats
    }

    /// A `len`-byte packet sent at `now` through `imp`: when each copy arrives (none: lost).
    pub fn send(&mut self, imp: &Impairment, now: Instant, len: usize) -> Vec<Instant> {
        self.stats.sent += 1;
        let Some(departs) = self.bottleneck(imp, now, len) else {
            self.stats.dropped += 1;
            return Vec::new();
        };
        self.bad = if self.bad {
            !self.rng.gen_bool(imp.burst_leave.clamp(0.0, 1.0))
        } else {
            self.rng.gen_bool(imp.burst_enter.clamp(0.0, 1.0))
        };
        if self.bad || self.rng.gen_bool(imp.loss.clamp(0.0, 1.0)) {
            self.stats.lost += 1;
            return Vec::new();
        }
        let copies = if self.rng.gen_bool(imp.duplicate.clamp(0.0, 1.0)) { 2 } else { 1 };
        if copies == 2 {
            self.stats.duplicated += 1;
        }
        let mut arrivals: Vec<Instant> = (0..copies)
            .map(|_| {
                let j = imp.jitter.as_secs_f64();
                let offset = if j > 0.0 { self.rng.gen_range(-j..=j) } else { 0.0 };
                departs + Duration::from_secs_f64((imp.delay.as_secs_f64() + offset).max(0.0))
            })
            .collect();
        // Drawn only when asked for, so a link without reordering draws what it always drew.
        if imp.reorder > 0.0 && self.rng.gen_bool(imp.reorder.clamp(0.0, 1.0)) {
            self.stats.reordered += 1;
            for a in &mut arrivals {
                *a += imp.reorder_delay;
            }
        }
        self.stats.delivered += arrivals.len() as u64;
        arrivals
    }

    /// When the packet leaves the bottleneck, or `None` if the bottleneck drops it.
    fn bottleneck(&mut self, imp: &Impairment, now: Instant, len: usize) -> Option<Instant> {
        if imp.rate == 0 {
            return Some(now);
        }
        let rate = imp.rate as f64;
        if imp.queue_bytes == 0 {
            // A policer: a token bucket holding `bucket` of the rate.
            let elapsed = self.last.map_or(0.0, |l| now.saturating_duration_since(l).as_secs_f64());
            self.budget = (self.budget + elapsed * rate).min(rate * imp.bucket.as_secs_f64());
            self.last = Some(now);
            if self.budget < len as f64 {
                return None;
            }
            self.budget -= len as f64;
            return Some(now);
        }
        // A drop-tail queue served at `rate`.
        let start = self.free_at.map_or(now, |f| f.max(now));
        let backlog = start.saturating_duration_since(now).as_secs_f64() * rate;
        if backlog + len as f64 > imp.queue_bytes as f64 {
            return None;
        }
        let done = start + Duration::from_secs_f64(len as f64 / rate);
        self.free_at = Some(done);
        Some(done)
    }
}
