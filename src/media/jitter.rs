//! The adaptive jitter buffer, sans-IO: frames go in with their arrival time, one frame comes out
//! per 20 ms tick of the playout clock.
//!
//! - **Target delay** follows the measured jitter: the spread between the 98th percentile and the
//!   minimum of the recent transit times (arrival − media time), plus a small margin, bounded to
//!   [`MIN_TARGET`]–[`MAX_TARGET`]. As the window slides past a burst of jitter, the target shrinks
//!   again.
//! - **Underflow** (the next frame has not arrived, and nothing after it has either: the network is
//!   late, not lossy) pauses playout for one tick with concealment: the delay grows by itself, up
//!   to [`MAX_TARGET`]. An underflow longer than that is an outage: playout keeps the sender's pace,
//!   counting what does not come as lost, so the first frames after it play at once.
//! - **Loss** (the next frame is missing but later ones are here) is concealed: with Opus in-band FEC
//!   from the following frame when it is here, else with the decoder's PLC.
//! - **Merge** (NetEQ's word): an underflow that ends in lost frames has already concealed ticks
//!   in their place. A lost frame that no copy can still bring and no FEC can recover gets no tick
//!   of its own, one per tick waited: the gap is concealed once, not twice, and the delay grows
//!   only by the ticks waited beyond the lost frames.
//! - **Overflow** (more buffered than the target plus two frames) asks for the next frames to be
//!   played shorter ([`Stretch::Accelerate`]: a pitch period taken out, see
//!   [`super::time_stretch`]) until the depth is back near the target; this also absorbs a sender
//!   clock that runs fast. Only far beyond the target ([`DROP_BEYOND`] frames more) are frames
//!   dropped whole.
//! - Duplicates are ignored, late frames (already played or concealed) are counted and dropped.
//! - **Lip sync**: when the call's video arrives later than its audio (an encoder that holds frames
//!   back), the receiver asks for a *sync delay*; the target becomes at least that, and the buffer
//!   grows towards it by stretching (one concealed tick in place of playout: Opus's concealment
//!   carries the voice on; at most every [`STRETCH_EVERY`] ticks, so the added frames are spread
//!   out), and shrinks by the overflow rule.
//! - **Recovery delay**: while there is loss, the sender's redundant copies of a frame come up to
//!   d frames after it; a copy is only useful if the buffer holds d × 20 ms more than the jitter
//!   needs. The receiver tells the buffer how far the copies reach; the buffer adds that, less the
//!   margin its target already has above the measured spread, as a *recovery delay* to the
//!   jitter's target (at most [`MAX_TARGET`] together). Under bursts the buffer mostly gets there
//!   by itself (a burst at the head of the buffer is an underflow: playout waits), and the target
//!   keeps the overflow rule from dropping it back. Beyond that it grows one frame at a time, only
//!   once a copy has come after its frame was due (`late_copies`): playout waits a tick for a lost
//!   frame that would be concealed anyway, or else stretches, at most every [`STRETCH_EVERY`]
//!   ticks. Where the copies arrive in time as it is (independent loss, copies in the next
//!   datagrams), nothing is stretched. When the delay comes down, the frames it added are given
//!   back in the next pause of the speech (quiet frames played shorter,
//!   [`Stretch::AccelerateInPause`]); if none comes within [`PAUSE_PATIENCE`], spread out by
//!   accelerating.
//!
//! The buffer's caller plays 20 ms per tick and asks for the next frame whenever what it has
//! decoded does not cover the tick: a frame played shorter makes the next one due sooner, one
//! played longer covers the next tick too. That is how stretching moves the delay.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use super::time_stretch::Stretch;

/// One frame's duration.
pub const FRAME: Duration = Duration::from_millis(20);
/// Lowest target delay.
pub const MIN_TARGET: Duration = Duration::from_millis(20);
/// Highest target delay.
pub const MAX_TARGET: Duration = Duration::from_millis(200);
/// Most frames held (1 s of audio).
pub const CAPACITY: usize = 50;
/// Transit samples kept for the jitter estimate (~2 s).
const WINDOW: usize = 100;
/// Added to the measured spread.
pub const MARGIN: Duration = Duration::from_millis(15);
/// The most delay lip sync may add (beyond it, sound would wait too long for a picture).
pub const MAX_SYNC_DELAY: Duration = Duration::from_millis(400);
/// Stretch at most once in this many ticks.
pub const STRETCH_EVERY: u32 = 5;
/// Frames held beyond the target plus two before frames are dropped whole rather than played
/// shorter (accelerating sheds a pitch period, 2.5–10 ms, per frame).
pub const DROP_BEYOND: usize = 5;
/// Ticks (10 s) that delay the recovery no longer needs may wait for pauses in the speech to be
/// given back unheard ([`Stretch::AccelerateInPause`], at most
/// [`PAUSE_CUT`](super::time_stretch::PAUSE_CUT) frames a pause) before frames are played shorter
/// inside words. Speech pauses every few seconds; a tone or music never does.
pub const PAUSE_PATIENCE: u32 = 500;
/// A sequence jump larger than this restarts the buffer (the sender restarted).
const RESET_JUMP: u32 = 250;
/// Lost frames remembered to recognise a copy that came too late (the farthest copy is 6 back).
const RECENTLY_LOST: usize = 16;

/// What to play for one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Nothing yet (the buffer is filling): play silence.
    Silence,
    /// Decode this frame.
    Frame {
        /// Its sequence number.
        seq: u32,
        /// The Opus bytes.
        data: Vec<u8>,
        /// Play it as it is, shorter or longer ([`super::time_stretch`]).
        stretch: Stretch,
    },
    /// The frame is lost, but the next one is here: decode its in-band FEC.
    Fec {
        /// The sequence number being recovered.
        seq: u32,
        /// The *next* frame's Opus bytes.
        next: Vec<u8>,
    },
    /// Conceal (Opus PLC).
    Conceal,
}

/// Counters and the current delay, for `hail status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct JitterStats {
    /// Frames received (each sequence number once).
    pub received: u64,
    /// Copies of frames already held or played (redundancy and network duplicates).
    pub duplicates: u64,
    /// Frames that arrived after their turn.
    pub late: u64,
    /// Ticks concealed with PLC.
    pub concealed: u64,
    /// Frames recovered with FEC.
    pub fec_recovered: u64,
    /// Frames dropped whole: far too much buffered ([`DROP_BEYOND`]), or the buffer was full.
    pub dropped: u64,
    /// Frames the buffer asked to be played shorter, to bring the delay down.
    #[serde(default)]
    pub accelerations: u64,
    /// Frames never received by the time they were due.
    pub lost: u64,
    /// Lost frames given no tick of their own: an underflow had already concealed ticks in their
    /// place (the *merge*: waiting for a frame that turned out lost stands in for it).
    #[serde(default)]
    pub merged: u64,
    /// Times the delay was grown by a frame for lip sync or for redundant copies: the next frame
    /// asked to be played 20 ms longer, or a tick concealed when it was not there.
    #[serde(default)]
    pub stretched: u64,
    /// Redundant copies that came after their frame was due (it was recovered with FEC or
    /// concealed).
    #[serde(default)]
    pub late_copies: u64,
    /// The delay lip sync asks for, ms (0: none).
    #[serde(default)]
    pub sync_delay_ms: f64,
    /// The delay added so that redundant copies arrive in time, ms (0: no loss, or no copies).
    #[serde(default)]
    pub recovery_delay_ms: f64,
    /// Interarrival jitter (RFC 3550 estimator), ms.
    pub jitter_ms: f64,
    /// The delay the buffer aims for, ms.
    pub target_ms: f64,
    /// What it holds ahead of playout now, ms.
    pub buffered_ms: f64,
}

/// The buffer.
#[derive(Debug)]
pub struct JitterBuffer {
    frames: BTreeMap<u32, Vec<u8>>,
    next: Option<u32>,
    highest: Option<u32>,
    first_arrival: Option<Instant>,
    /// Transit times (arrival − seq × 20 ms), relative to the first frame, in µs.
    transits: VecDeque<i64>,
    epoch: Option<(Instant, u32)>,
    last_transit: Option<i64>,
    jitter_us: f64,
    target: Duration,
    jitter_target: Duration,
    sync_delay: Duration,
    recovery_delay: Duration,
    /// Frames the recovery delay still has to add (stretches owed), or to give back (negative:
    /// drops owed).
    recovery_owed: i32,
    /// A copy came after its frame was due since the last stretch for the recovery delay.
    copy_was_late: bool,
    /// Frames recently given up as lost (FEC or concealment), newest last.
    recently_lost: VecDeque<u32>,
    since_stretch: u32,
    /// Ticks the recovery delay's give-back has waited for a pause.
    giving_back_for: u32,
    /// When the current underflow began, and the frame playout was waiting for then.
    underflow: Option<(Instant, u32)>,
    /// Ticks an underflow concealed that no lost frame has stood in for yet: the frames it was
    /// waiting for may turn out lost, and then these ticks were their concealment.
    waited: u32,
    /// How far back the redundant copies reach, frames ([`JitterBuffer::set_copy_reach`]).
    copy_reach: u32,
    stats: JitterStats,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl JitterBuffer {
    /// An empty buffer aiming for [`MIN_TARGET`] until it has measured something.
    pub fn new() -> Self {
        JitterBuffer {
            frames: BTreeMap::new(),
            next: None,
            highest: None,
            first_arrival: None,
            transits: VecDeque::new(),
            epoch: None,
            last_transit: None,
            jitter_us: 0.0,
            target: MIN_TARGET * 2,
            jitter_target: MIN_TARGET * 2,
            sync_delay: Duration::ZERO,
            recovery_delay: Duration::ZERO,
            recovery_owed: 0,
            copy_was_late: false,
            recently_lost: VecDeque::new(),
            since_stretch: 0,
            giving_back_for: 0,
            underflow: None,
            waited: 0,
            copy_reach: 0,
            stats: JitterStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> JitterStats {
        let mut s = self.stats;
        s.jitter_ms = self.jitter_us / 1000.0;
        s.target_ms = self.target.as_secs_f64() * 1000.0;
        s.sync_delay_ms = self.sync_delay.as_secs_f64() * 1000.0;
        s.recovery_delay_ms = self.recovery_delay.as_secs_f64() * 1000.0;
        s.buffered_ms = self.depth() as f64 * FRAME.as_secs_f64() * 1000.0;
        s
    }

    /// Lip sync: hold audio at least `delay` (capped at [`MAX_SYNC_DELAY`]); zero lifts it.
    pub fn set_sync_delay(&mut self, delay: Duration) {
        self.sync_delay = delay.min(MAX_SYNC_DELAY);
        self.update_target();
    }

    /// Redundant copies come up to `reach` after their frames (zero: none, or no loss): hold that
    /// much more than the jitter needs. The target's margin above the measured spread ([`MARGIN`])
    /// already covers that much of it, so the *recovery delay* added is `reach − MARGIN`, and
    /// jitter and recovery together at most [`MAX_TARGET`].
    pub fn set_copy_reach(&mut self, reach: Duration) {
        let delay = reach.saturating_sub(MARGIN).min(MAX_TARGET);
        let frames = |d: Duration| (d.as_micros() / FRAME.as_micros()) as i32;
        self.copy_reach = u32::try_from(reach.as_micros().div_ceil(FRAME.as_micros())).unwrap_or(u32::MAX);
        // Before playout starts, the start waits out the whole target: nothing is owed.
        if self.next.is_some() {
            let bound = frames(MAX_TARGET);
            self.recovery_owed =
                (self.recovery_owed + frames(delay) - frames(self.recovery_delay)).clamp(-bound, bound);
        }
        self.recovery_delay = delay;
        self.update_target();
    }

    /// The sender restarted: start over, keeping the counters and the recovery delay (the loss
    /// and the copies are the link's, not the sender's).
    fn restart(&mut self) {
        *self = JitterBuffer {
            stats: self.stats,
            recovery_delay: self.recovery_delay,
            copy_reach: self.copy_reach,
            ..JitterBuffer::new()
        };
        self.update_target();
    }

    /// What the network asks for: the jitter's target and the recovery delay, at most
    /// [`MAX_TARGET`] (or the jitter's alone, if that is more).
    fn network_target(&self) -> Duration {
        (self.jitter_target + self.recovery_delay).min(MAX_TARGET).max(self.jitter_target)
    }

    fn update_target(&mut self) {
        self.target = self.network_target().max(self.sync_delay);
    }

    /// The current target delay.
    pub fn target(&self) -> Duration {
        self.target
    }

    /// Frames ready ahead of playout: the run starting at the next sequence number, or everything
    /// held before playout starts.
    fn depth(&self) -> usize {
        match self.next {
            None => self.frames.len(),
            Some(next) => self.frames.range(next..).count(),
        }
    }

    /// A frame arrived at `now`.
    pub fn insert(&mut self, seq: u32, data: Vec<u8>, now: Instant) {
        if let Some(next) = self.next {
            if seq.saturating_sub(next) > RESET_JUMP && seq > next {
                // The sender jumped far ahead (restarted): start over.
                self.restart();
            } else if seq < next {
                if next - seq <= RESET_JUMP {
                    self.stats.late += 1;
                    return;
                }
                self.restart();
            }
        }
        if self.frames.contains_key(&seq) {
            self.stats.duplicates += 1;
            return;
        }
        self.stats.received += 1;
        self.measure(seq, now);
        self.first_arrival.get_or_insert(now);
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        self.frames.insert(seq, data);
        while self.frames.len() > CAPACITY {
            let Some((evicted, _)) = self.frames.pop_first() else { break };
            self.stats.dropped += 1;
            // An overflow ahead of playout (its clock stalled while frames kept coming): playout
            // skips what was dropped. Waiting for a frame that is gone would conceal one tick per
            // arrival forever, each arrival evicting the next frame playout needs.
            if self.next.is_some_and(|next| evicted >= next) {
                self.next = Some(evicted.wrapping_add(1));
            }
        }
    }

    /// A copy of an older frame carried as redundancy: kept if it is still useful, never counted as
    /// a new arrival for the jitter estimate.
    pub fn insert_redundant(&mut self, seq: u32, data: Vec<u8>) {
        if self.next.is_some_and(|n| seq < n) && self.recently_lost.contains(&seq) {
            self.recently_lost.retain(|s| *s != seq);
            self.stats.late_copies += 1;
            self.copy_was_late = true;
        }
        if self.next.is_some_and(|n| seq < n) || self.frames.contains_key(&seq) {
            self.stats.duplicates += 1;
            return;
        }
        if self.highest.is_some_and(|h| h >= seq) {
            self.stats.received += 1;
            self.frames.insert(seq, data);
        }
    }

    fn measure(&mut self, seq: u32, now: Instant) {
        let (t0, s0) = *self.epoch.get_or_insert((now, seq));
        let arrival = now.saturating_duration_since(t0).as_micros() as i64;
        let media = (seq as i64 - s0 as i64) * FRAME.as_micros() as i64;
        let transit = arrival - media;
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs() as f64;
            self.jitter_us += (d - self.jitter_us) / 16.0;
        }
        self.last_transit = Some(transit);
        self.transits.push_back(transit);
        if self.transits.len() > WINDOW {
            self.transits.pop_front();
        }
        self.retarget();
    }

    fn retarget(&mut self) {
        if self.transits.len() < 2 {
            return;
        }
        let mut sorted: Vec<i64> = self.transits.iter().copied().collect();
        sorted.sort_unstable();
        let min = sorted[0];
        // The 98th percentile: each frame that misses its turn costs a concealed frame now and a
        // dropped one later, and both are audible; a few ms more delay are not.
        let p98 = sorted[((sorted.len() - 1) as f64 * 0.98).round() as usize];
        let spread = Duration::from_micros((p98 - min).max(0) as u64);
        self.jitter_target = (spread + MARGIN).clamp(MIN_TARGET, MAX_TARGET);
        self.update_target();
    }

    fn target_frames(&self) -> usize {
        self.target.as_micros().div_ceil(FRAME.as_micros()) as usize
    }

    /// The playout clock ticked (every 20 ms): what to play now.
    pub fn pop(&mut self, now: Instant) -> Playout {
        let Some(next) = self.next else {
            // Start once the first frame has waited out the target delay.
            match (self.first_arrival, self.frames.keys().next()) {
                (Some(first), Some(&lowest)) if now.saturating_duration_since(first) >= self.target => {
                    self.next = Some(lowest);
                    return self.pop(now);
                }
                _ => return Playout::Silence,
            }
        };
        // Lip sync wants more delay than the network needs, or the recovery delay grew and a copy
        // came too late: stretch, spread out.
        self.since_stretch = self.since_stretch.saturating_add(1);
        let spaced = self.since_stretch >= STRETCH_EVERY;
        let sync_wants = self.sync_delay > self.network_target() && self.depth() + 1 < self.target_frames();
        let recovery_wants = self.recovery_owed > 0 && self.copy_was_late;
        if spaced && (recovery_wants || sync_wants) {
            self.since_stretch = 0;
            if recovery_wants {
                self.recovery_owed -= 1;
                self.copy_was_late = false;
            }
            self.stats.stretched += 1;
            return Playout::Conceal;
        }
        // The recovery delay came down: give its frames back in a pause, where shortening is not
        // heard (each frame asks to be left out if it is deep in a pause), for up to
        // [`PAUSE_PATIENCE`] ticks; what the buffer holds above its target tells what is still
        // owed. After that, as any overflow: frames played shorter, spread out.
        if self.recovery_owed < 0 && self.depth() <= self.target_frames() {
            self.recovery_owed = 0;
        }
        self.giving_back_for = if self.recovery_owed < 0 { self.giving_back_for.saturating_add(1) } else { 0 };
        let in_pause = self.recovery_owed < 0 && self.giving_back_for <= PAUSE_PATIENCE;
        // What waits for a pause does not count as too much while it may still wait.
        let waiting = if in_pause { self.recovery_owed.unsigned_abs() as usize } else { 0 };
        // Far too much buffered (a stall, a burst of late frames): drop a frame whole.
        if self.depth() > self.target_frames() + 2 + DROP_BEYOND + waiting && self.frames.remove(&next).is_some() {
            self.stats.dropped += 1;
            let after = next.wrapping_add(1);
            self.next = Some(after);
            return self.pop_one(after, now);
        }
        let give_back = spaced && self.recovery_owed < 0 && !in_pause;
        if give_back {
            self.since_stretch = 0;
            self.recovery_owed += 1;
        }
        // Too much buffered: play the next frame shorter.
        let deep = self.depth() > self.target_frames() + 2 + waiting || (give_back && self.depth() > self.target_frames());
        match self.pop_one(next, now) {
            Playout::Frame { seq, data, .. } if deep => {
                self.stats.accelerations += 1;
                Playout::Frame { seq, data, stretch: Stretch::Accelerate }
            }
            Playout::Frame { seq, data, .. } if in_pause => {
                Playout::Frame { seq, data, stretch: Stretch::AccelerateInPause }
            }
            playout => playout,
        }
    }

    fn pop_one(&mut self, seq: u32, now: Instant) -> Playout {
        // Sequence numbers come from the peer and wrap like the sender's counter.
        let after = seq.wrapping_add(1);
        if let Some(data) = self.frames.remove(&seq) {
            self.next = Some(after);
            self.underflow = None;
            self.waited = 0;
            return Playout::Frame { seq, data, stretch: Stretch::None };
        }
        let nothing_later = self.highest.is_none_or(|h| h < seq);
        if nothing_later {
            // Underflow: the network is late. Wait a tick (concealed); the delay grows. But only
            // up to MAX_TARGET, the most delay the buffer ever aims for: beyond that the path is
            // down, not late, and playout keeps the sender's pace (the frame counts as lost), so
            // that when the path comes back its frames play at once, not after the whole outage
            // replayed as concealment.
            // Time, not ticks: a playout clock that stalled and catches up runs many ticks at one
            // instant, and the sender has not moved on meanwhile.
            self.stats.concealed += 1;
            self.waited = self.waited.saturating_add(1);
            let (since, from) = *self.underflow.get_or_insert((now, seq));
            let waited = now.saturating_duration_since(since);
            if waited >= MAX_TARGET {
                // Every frame due since the underflow began, this tick's included, is lost.
                let due = u32::try_from(waited.as_micros() / FRAME.as_micros()).unwrap_or(u32::MAX).saturating_add(1);
                let caught_up = from.wrapping_add(due);
                let skip = caught_up.wrapping_sub(seq);
                if (skip as i32) > 0 {
                    self.next = Some(caught_up);
                    self.stats.lost += u64::from(skip);
                    // Playout keeps the sender's pace: the ticks waited stood in for these frames.
                    self.waited = 0;
                }
            }
            return Playout::Conceal;
        }
        self.underflow = None;
        let fec = self.frames.get(&after).cloned();
        // Merge: the underflow that just ended was waiting for frames that turned out lost, and
        // its concealed ticks have played in their place. A lost frame that no copy can still
        // bring (the farthest copy rides in a datagram at or before the newest one here) and no
        // FEC can recover gets no tick of its own: playout goes on to the next frame, instead of
        // concealing the same gap twice and keeping the wait as extra delay that then has to be
        // played away. The frames after it are here (`nothing_later` is false), so this ends.
        let hopeless = self.highest.is_some_and(|h| seq.wrapping_add(self.copy_reach) <= h);
        if self.waited > 0 && fec.is_none() && hopeless {
            self.waited -= 1;
            self.next = Some(after);
            self.stats.lost += 1;
            self.stats.merged += 1;
            self.recently_lost.push_back(seq);
            if self.recently_lost.len() > RECENTLY_LOST {
                self.recently_lost.pop_front();
            }
            return self.pop_one(after, now);
        }
        if fec.is_none() && self.recovery_owed > 0 && self.copy_was_late {
            // The recovery delay is owed, copies have come too late, and this tick is concealed
            // anyway: wait for the frame's copy instead of giving it up (the delay grows by this
            // tick).
            self.recovery_owed -= 1;
            self.copy_was_late = false;
            self.stats.stretched += 1;
            return Playout::Conceal;
        }
        self.next = Some(after);
        self.stats.lost += 1;
        self.recently_lost.push_back(seq);
        if self.recently_lost.len() > RECENTLY_LOST {
            self.recently_lost.pop_front();
        }
        if let Some(next) = fec {
            self.stats.fec_recovered += 1;
            self.waited = 0;
            return Playout::Fec { seq, next };
        }
        self.stats.concealed += 1;
        Playout::Conceal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The receiver's playout as the buffer sees it: 20 ms a tick, the next frame asked for
    /// whenever what was decoded does not cover the tick; a frame played shorter counts 15 ms (a
    /// 5 ms pitch period out).
    #[derive(Default)]
    struct Player {
        held_us: i64,
    }

    impl Player {
        fn tick(&mut self, jb: &mut JitterBuffer, now: Instant) -> Vec<Playout> {
            let mut out = Vec::new();
            while self.held_us < 20_000 {
                let p = jb.pop(now);
                self.held_us += match &p {
                    Playout::Frame { stretch: Stretch::Accelerate, .. } => 15_000,
                    _ => 20_000,
                };
                out.push(p);
            }
            self.held_us -= 20_000;
            out
        }
    }

    /// A simulated link: frame `s` is sent at `t0 + s × 20 ms` and arrives after `delay(s)`
    /// (`None`: lost). The playout clock ticks every 20 ms. Returns what was played per tick.
    fn run(frames: u32, delay: impl Fn(u32) -> Option<Duration>, jb: &mut JitterBuffer) -> Vec<Playout> {
        run_with(frames, delay, jb, |_, _| {})
    }

    /// [`run`], calling `each_tick` with the tick's number before each tick.
    fn run_with(
        frames: u32,
        delay: impl Fn(u32) -> Option<Duration>,
        jb: &mut JitterBuffer,
        mut each_tick: impl FnMut(u32, &mut JitterBuffer),
    ) -> Vec<Playout> {
        let t0 = Instant::now();
        let mut arrivals: Vec<(Instant, u32)> =
            (0..frames).filter_map(|s| delay(s).map(|d| (t0 + FRAME * s + d, s))).collect();
        arrivals.sort();
        let mut out = Vec::new();
        let mut i = 0;
        let end = t0 + FRAME * (frames + 20);
        let mut tick = t0 + Duration::from_millis(5);
        let mut player = Player::default();
        let mut n = 0;
        while tick < end {
            each_tick(n, jb);
            n += 1;
            while i < arrivals.len() && arrivals[i].0 <= tick {
                jb.insert(arrivals[i].1, vec![arrivals[i].1 as u8], arrivals[i].0);
                i += 1;
            }
            out.extend(player.tick(jb, tick));
            tick += FRAME;
            // The sender stopped and everything it sent has played: what follows would be
            // underflow after the end of the stream.
            if i == arrivals.len() && jb.frames.is_empty() {
                break;
            }
        }
        out
    }

    #[test]
    fn a_sync_delay_grows_the_buffer_by_spread_out_stretches_and_lifting_it_shrinks_it_back() {
        let mut jb = JitterBuffer::new();
        let t0 = Instant::now();
        let mut tick = t0 + Duration::from_millis(5);
        let mut seq = 0u32;
        let mut player = Player::default();
        let mut step = |jb: &mut JitterBuffer, ticks: u32, out: &mut Vec<Playout>| {
            for _ in 0..ticks {
                // A clean link: frame `seq` arrives 10 ms after it was sent.
                while t0 + FRAME * seq + Duration::from_millis(10) <= tick {
                    jb.insert(seq, vec![seq as u8], t0 + FRAME * seq + Duration::from_millis(10));
                    seq += 1;
                }
                out.extend(player.tick(jb, tick));
                tick += FRAME;
            }
        };
        let mut out = Vec::new();
        step(&mut jb, 100, &mut out);
        assert!(jb.stats().buffered_ms <= 40.0, "{:?}", jb.stats());
        jb.set_sync_delay(Duration::from_millis(200));
        out.clear();
        step(&mut jb, 100, &mut out);
        let s = jb.stats();
        assert!(s.buffered_ms >= 160.0, "grew towards 200 ms: {s:?}");
        assert!((7..=10).contains(&s.stretched), "by about (200 - 20) / 20 stretches: {s:?}");
        // Spread out: never two stretched ticks within STRETCH_EVERY.
        let concealed: Vec<usize> =
            out.iter().enumerate().filter(|(_, p)| **p == Playout::Conceal).map(|(i, _)| i).collect();
        assert_eq!(concealed.len() as u64, s.stretched, "{out:?}");
        assert!(concealed.windows(2).all(|w| w[1] - w[0] >= STRETCH_EVERY as usize), "{concealed:?}");
        // Nothing was lost or skipped: stretching plays every frame, later.
        let frames = played(&out);
        assert!(frames.windows(2).all(|w| w[1] == w[0] + 1), "{frames:?}");
        jb.set_sync_delay(Duration::from_secs(9));
        assert_eq!(jb.stats().sync_delay_ms, MAX_SYNC_DELAY.as_secs_f64() * 1000.0, "capped");
        jb.set_sync_delay(Duration::ZERO);
        out.clear();
        step(&mut jb, 100, &mut out);
        assert!(jb.stats().buffered_ms <= 80.0, "back down: {:?}", jb.stats());
    }

    #[test]
    fn a_recovery_delay_grows_the_buffer_once_copies_come_too_late_and_lifting_it_shrinks_it_back() {
        let mut jb = JitterBuffer::new();
        let t0 = Instant::now();
        // 28 s at 5–45 ms each way (so the buffer holds a few frames), playout ticks every 20 ms.
        // Datagram `seq` carries copies of frames seq − 3 and seq − 6. From 4 s to 12 s, bursts of
        // 5 primaries are lost (their copies arrive; the first frame's only 6 frames later).
        let lost = |seq: u32| (200..600).contains(&seq) && (10..15).contains(&(seq % 25));
        let transit = |seq: u32| Duration::from_millis(5 + u64::from(seq * 7 % 5) * 10);
        let mut arrivals: Vec<(Instant, u32)> =
            (0..1400).filter(|s| !lost(*s)).map(|s| (t0 + FRAME * s + transit(s), s)).collect();
        arrivals.sort();
        let mut arrivals = arrivals.into_iter().peekable();
        let mut out = Vec::new();
        let mut at = Vec::new();
        let mut before = jb.stats();
        let mut player = Player::default();
        let mut marks = Vec::new();
        for tick in 0..1400 {
            let now = t0 + FRAME * tick + Duration::from_millis(10);
            while let Some((at, seq)) = arrivals.next_if(|(at, _)| *at <= now) {
                jb.insert(seq, vec![seq as u8], at);
                for copy in [3, 6].into_iter().filter_map(|back| seq.checked_sub(back)) {
                    jb.insert_redundant(copy, vec![copy as u8]);
                }
            }
            if tick % 200 == 0 {
                at.push(jb.stats());
                marks.push(out.len());
            }
            match tick {
                100 => {
                    before = jb.stats();
                    jb.set_copy_reach(Duration::from_secs(5));
                    assert_eq!(jb.target(), MAX_TARGET, "bounded");
                    jb.set_copy_reach(Duration::from_millis(120));
                    // The margin (15 ms) covers part of the copies' reach (120 ms).
                    assert_eq!(jb.stats().target_ms, before.target_ms + 105.0, "on top of the jitter's");
                }
                600 => jb.set_copy_reach(Duration::ZERO),
                _ => {}
            }
            out.extend(player.tick(&mut jb, now));
        }
        let [_, clean, grown, lossy_end, waiting, ..] = at[..] else { unreachable!("seven snapshots") };
        // While the copies are not needed (no loss), nothing is stretched.
        assert_eq!((clean.stretched, clean.lost, clean.late_copies), (0, 0, 0), "{clean:?}");
        // Bursts of 5: copies come too late at first and the buffer grows; then every burst is
        // filled by its copies, in time, and every tick plays a frame.
        assert!(grown.late_copies > 0 && grown.stretched > 0, "{grown:?}");
        assert_eq!((lossy_end.lost, lossy_end.late_copies), (grown.lost, grown.late_copies), "{lossy_end:?}");
        let lossy = &out[marks[2]..marks[3]];
        assert_eq!(played(lossy).len(), lossy.len(), "{lossy_end:?}");
        assert!(lossy.len() >= 200, "{lossy_end:?}");
        // The target holds what the copies need: nothing is dropped as "too deep".
        assert_eq!(lossy_end.dropped, 0, "{lossy_end:?}");
        // Lifted: the frames it added wait for a pause to be given back unheard (these frames
        // are not sound: the player never finds one) ...
        let stretches = |out: &[Playout], wanted: Stretch| {
            out.iter().filter(|p| matches!(p, Playout::Frame { stretch, .. } if *stretch == wanted)).count()
        };
        let patient = &out[marks[3]..marks[3] + PAUSE_PATIENCE as usize - 10];
        assert!(stretches(patient, Stretch::AccelerateInPause) > 100, "{waiting:?}");
        assert_eq!(stretches(patient, Stretch::Accelerate), 0, "{waiting:?}");
        assert!(waiting.buffered_ms > before.buffered_ms + 40.0, "still waiting: {before:?} {waiting:?}");
        // ... and then are given back by playing frames shorter.
        assert!(jb.stats().buffered_ms <= before.buffered_ms + 40.0, "back down: {before:?} {:?}", jb.stats());
        assert!(jb.stats().accelerations > 0, "{:?}", jb.stats());
    }

    fn played(out: &[Playout]) -> Vec<u32> {
        out.iter()
            .filter_map(|p| match p {
                Playout::Frame { seq, .. } | Playout::Fec { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect()
    }

    /// 20 frames played on a clean path, then a 3 s stall of the playout clock while 150 more
    /// arrive (the first frame's arrival is `t0`).
    fn clean_start_then_a_stall(jb: &mut JitterBuffer, t0: Instant) {
        for seq in 0..20u32 {
            jb.insert(seq, vec![seq as u8], t0 + FRAME * seq);
            jb.pop(t0 + FRAME * seq);
        }
        for seq in 20..170u32 {
            jb.insert(seq, vec![seq as u8], t0 + FRAME * seq);
        }
    }

    /// Found by the one-hour soak: the playout clock stalled (the machine was loaded) while frames
    /// kept arriving, the buffer overflowed and evicted the frame playout was waiting for, and from
    /// then on every arrival evicted the lowest frame while playout concealed one "lost" frame a
    /// tick behind it: audio never came back. Playout must skip what an overflow drops.
    #[test]
    fn playout_recovers_after_a_stall_that_overflowed_the_buffer() {
        let mut jb = JitterBuffer::new();
        let t0 = Instant::now();
        let tick = |i: u32| t0 + FRAME * i;
        clean_start_then_a_stall(&mut jb, t0);
        // Playout resumes; the network carries on as before.
        let mut out = Vec::new();
        let mut player = Player::default();
        for seq in 170..470u32 {
            jb.insert(seq, vec![seq as u8], tick(seq));
            out.extend(player.tick(&mut jb, tick(seq)));
        }
        let last_second = &out[out.len() - 50..];
        assert_eq!(played(last_second).len(), 50, "every tick of the last second plays a frame: {:?}", jb.stats());
        assert!(jb.stats().buffered_ms <= jb.stats().target_ms + 60.0, "the delay came back down: {:?}", jb.stats());
    }

    /// Found by the simulator (tests/media_sim.rs): after an outage shorter than a reset, playout
    /// waited where it stopped and walked through the missing frames one tick at a time, so the
    /// first second of audio after the path came back was silence, and then a second of audio
    /// played late while the buffer shrank.
    #[test]
    fn after_an_outage_the_first_frames_back_play_at_once() {
        // 1 s of a clean path, 2 s of nothing (100 frames), then clean again.
        let out = run(200, |s| (!(50..150).contains(&s)).then_some(Duration::from_millis(5)), &mut JitterBuffer::new());
        let first_back = out.iter().position(|p| matches!(p, Playout::Frame { seq, .. } if *seq >= 150)).unwrap();
        // Frame 150 arrives at tick ~150; it plays within the target delay (two ticks), not a
        // second later.
        assert!(first_back <= 153, "the first frame after the outage played at tick {first_back}");
        let after: Vec<u32> = played(&out[first_back..]);
        assert_eq!(after, (150..200).collect::<Vec<_>>(), "then every frame, in order");
    }

    /// Also found by the simulator: a playout clock that stalled catches up with many ticks at one
    /// instant (tokio's burst behaviour); those ticks underflow once the buffer is empty, and
    /// counting them as time made playout run ahead of the sender, every later frame "late".
    #[test]
    fn catch_up_ticks_at_one_instant_do_not_run_ahead_of_the_sender() {
        let mut jb = JitterBuffer::new();
        let t0 = Instant::now();
        let tick = |i: u32| t0 + FRAME * i;
        // Playout stalls for 3 s while 150 frames arrive, then runs the 150 missed ticks at once.
        clean_start_then_a_stall(&mut jb, t0);
        let mut player = Player::default();
        for _ in 0..150 {
            player.tick(&mut jb, tick(170));
        }
        // Then the clock and the network go on together.
        let mut out = Vec::new();
        for seq in 170..470u32 {
            jb.insert(seq, vec![seq as u8], tick(seq));
            out.extend(player.tick(&mut jb, tick(seq)));
        }
        let played = played(&out);
        assert!(played.len() >= 295, "after the catch-up, frames play again: {} of 300, {:?}", played.len(), jb.stats());
        assert!(jb.stats().late <= 5, "{:?}", jb.stats());
    }

    #[test]
    fn a_clean_link_plays_every_frame_in_order_at_a_small_delay() {
        let mut jb = JitterBuffer::new();
        let out = run(200, |_| Some(Duration::from_millis(5)), &mut jb);
        assert_eq!(played(&out), (0..200).collect::<Vec<_>>());
        let s = jb.stats();
        assert_eq!((s.lost, s.late, s.dropped), (0, 0, 0));
        assert!(s.target_ms <= 20.0, "{s:?}");
    }

    #[test]
    fn reordering_and_duplicates_are_absorbed() {
        let mut jb = JitterBuffer::new();
        // Every 5th frame arrives 30 ms late, after its successor.
        let out = run(300, |s| Some(Duration::from_millis(if s % 5 == 0 { 35 } else { 5 })), &mut jb);
        let p = played(&out);
        assert_eq!(p, (0..300).collect::<Vec<_>>(), "in order, none lost");
        let t0 = Instant::now();
        jb.insert(299, vec![1], t0);
        jb.insert(299, vec![1], t0);
        assert!(jb.stats().late + jb.stats().duplicates >= 2);
    }

    #[test]
    fn burst_loss_is_concealed_and_single_losses_use_fec() {
        let mut jb = JitterBuffer::new();
        let out = run(
            200,
            |s| if (100..105).contains(&s) || s == 50 { None } else { Some(Duration::from_millis(5)) },
            &mut jb,
        );
        let s = jb.stats();
        assert_eq!(s.lost, 6);
        assert!(out.iter().any(|p| matches!(p, Playout::Fec { seq: 50, .. })), "frame 50 from 51's FEC");
        assert!(s.fec_recovered >= 2, "the last frame of each gap is recovered by FEC: {s:?}");
        let p = played(&out);
        assert!(p.windows(2).all(|w| w[0] < w[1]));
        assert!(p.contains(&199));
    }

    /// The ticks not heard between frame 99 and the next frame played.
    fn gap_at_100(out: &[Playout]) -> Vec<&'static str> {
        let start = out.iter().position(|p| matches!(p, Playout::Frame { seq: 99, .. })).map_or(out.len(), |i| i + 1);
        out[start..]
            .iter()
            .take_while(|p| !matches!(p, Playout::Frame { .. }))
            .map(|p| if matches!(p, Playout::Fec { .. }) { "fec" } else { "conceal" })
            .collect()
    }

    #[test]
    fn a_wait_that_ends_in_lost_frames_stands_in_for_them_unless_a_copy_can_still_come() {
        // Frames 100–104 lost in one burst at the head of the buffer: playout waits (concealed)
        // until 105 arrives, and those ticks were the lost frames' concealment: each lost frame
        // that nothing can recover plays no second tick, and the delay does not grow.
        let burst = |s: u32| if (100..105).contains(&s) { None } else { Some(Duration::from_millis(5)) };
        let mut jb = JitterBuffer::new();
        let out = run(200, burst, &mut jb);
        let s = jb.stats();
        assert_eq!(gap_at_100(&out), ["conceal", "conceal", "conceal", "conceal", "fec"], "{s:?}");
        assert_eq!((s.lost, s.merged, s.fec_recovered, s.accelerations, s.dropped), (5, 4, 1, 0, 0), "{s:?}");
        assert_eq!(played(&out), (0..200).filter(|s| !(100..104).contains(s)).collect::<Vec<_>>(), "104 from FEC");

        // The same burst once the sender's copies reach 6 frames back (told mid-call, so the buffer
        // is still shallow): 100's copy may still come in 106, so the wait is kept as delay for it,
        // and each lost frame is concealed in turn.
        let mut jb = JitterBuffer::new();
        let out = run_with(200, burst, &mut jb, |tick, jb| {
            if tick == 50 {
                jb.set_copy_reach(FRAME * 6);
            }
        });
        let s = jb.stats();
        assert_eq!(s.merged, 0, "{s:?}");
        let gap = gap_at_100(&out);
        assert!(gap.len() > 5 && gap.last() == Some(&"fec"), "waited, then each lost frame concealed: {gap:?} {s:?}");
    }

    #[test]
    fn a_delay_spike_grows_the_delay_then_it_shrinks_when_the_network_calms() {
        let mut jb = JitterBuffer::new();
        // 50 ± 20 ms jitter for 10 s, then 5 ms flat for 10 s.
        let jitter = |s: u32| {
            let pseudo = (s.wrapping_mul(2654435761) >> 7) % 41; // 0..40, fixed
            if s < 500 { Duration::from_millis(30 + pseudo as u64) } else { Duration::from_millis(5) }
        };
        let out = run(1000, |s| Some(jitter(s)), &mut jb);
        let s = jb.stats();
        assert!(s.target_ms <= 30.0, "after calm the target shrank again: {s:?}");
        // It came down by playing frames shorter, never by dropping one.
        assert!(s.buffered_ms <= s.target_ms + 40.0, "{s:?}");
        assert!(s.accelerations > 0 && s.dropped == 0, "{s:?}");
        // During the jittery half the target rose to cover the spread (about 40 ms).
        let mut jb2 = JitterBuffer::new();
        run(500, |s| Some(jitter(s)), &mut jb2);
        assert!(jb2.stats().target_ms >= 40.0, "{:?}", jb2.stats());
        // And few frames were late once it had adapted.
        assert!(jb2.stats().late < 25, "{:?}", jb2.stats());
        assert!(played(&out).len() > 900);
    }

    #[test]
    fn a_sender_clock_that_runs_fast_or_slow_does_not_grow_or_starve_the_buffer() {
        // Sender 1% fast: frames every 19.8 ms.
        for factor in [0.99f64, 1.01] {
            let mut jb = JitterBuffer::new();
            let t0 = Instant::now();
            let mut tick = t0;
            let mut sent = 0u32;
            let mut played_count = 0;
            let mut player = Player::default();
            for _ in 0..3000 {
                while t0 + FRAME.mul_f64(factor * sent as f64) <= tick {
                    jb.insert(sent, vec![0], t0 + FRAME.mul_f64(factor * sent as f64) + Duration::from_millis(5));
                    sent += 1;
                }
                played_count += player.tick(&mut jb, tick).iter().filter(|p| matches!(p, Playout::Frame { .. })).count();
                tick += FRAME;
            }
            let s = jb.stats();
            assert!(s.buffered_ms <= 100.0, "factor {factor}: the buffer stays bounded: {s:?}");
            assert!(played_count > 2900, "factor {factor}: nearly everything played: {played_count} {s:?}");
        }
    }

    #[test]
    fn redundant_copies_fill_gaps_and_hostile_sequence_numbers_are_harmless() {
        let mut jb = JitterBuffer::new();
        let t0 = Instant::now();
        jb.insert(0, vec![0], t0);
        jb.insert(2, vec![2], t0 + FRAME * 2);
        jb.insert_redundant(1, vec![1]);
        let mut out = Vec::new();
        for k in 0..6 {
            out.push(jb.pop(t0 + Duration::from_millis(60) + FRAME * k));
        }
        assert_eq!(played(&out)[..3], [0, 1, 2]);
        // A huge jump restarts instead of allocating or stalling.
        jb.insert(u32::MAX - 5, vec![9], t0 + FRAME * 10);
        jb.insert(7, vec![9], t0 + FRAME * 11);
        assert!(jb.stats().buffered_ms <= CAPACITY as f64 * 20.0);
    }

    #[test]
    fn the_last_sequence_numbers_play_without_overflow() {
        // A peer may start (or end) its sequence at u32::MAX: playing it must not overflow.
        for first in [u32::MAX, u32::MAX - 1] {
            let mut jb = JitterBuffer::new();
            let t0 = Instant::now();
            jb.insert(first, vec![1], t0);
            if first < u32::MAX {
                jb.insert(u32::MAX, vec![2], t0);
            }
            let mut out = Vec::new();
            for k in 0..6 {
                out.push(jb.pop(t0 + Duration::from_millis(100) + FRAME * k));
            }
            assert_eq!(played(&out).first(), Some(&first), "{out:?}");
        }
        let mut jb = JitterBuffer::new();
        let t0 = Instant::now();
        jb.insert(u32::MAX, vec![1], t0);
        jb.insert(0, vec![2], t0 + FRAME);
        jb.insert(u32::MAX - 3, vec![3], t0 + FRAME);
        let mut out = Vec::new();
        for k in 0..6 {
            out.push(jb.pop(t0 + Duration::from_millis(100) + FRAME * k));
        }
        assert!(!played(&out).is_empty());
    }
}
