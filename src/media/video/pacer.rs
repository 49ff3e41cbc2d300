//! The video pacer, sans-IO: when each piece of a video record may go onto the link.
//!
//! An encoder's output comes in bursts: a keyframe is several packets at once, and QUIC sends what
//! a stream holds as fast as its window and its own pacer allow (quinn's pacer lets at least ten
//! packets go back to back, `quinn-proto` `pacing.rs`). A policer with a small bucket drops the
//! tail of such a burst although the call's average rate is under the limit, and QUIC then resends
//! it, late. So the IO layer cuts each record into pieces of at most [`PIECE`] bytes (one packet
//! each) and gives a piece to QUIC only when the [`PacedQueue`] says: pieces leave at
//! [`PACING_FACTOR`] times the bitrate the record was encoded at (the controller's video estimate
//! then), back to back, with no credit saved up while idle. A frame of the target's average size
//! goes at once; a keyframe three times that size leaves over about two frame intervals instead
//! of in one burst.
//!
//! An encoder misses its target frame by frame, so a pacer at the target alone falls behind after
//! each large frame, and a run of them queues frames behind frames. As in WebRTC's paced sender,
//! a backlog that would take longer than [`QUEUE_LIMIT`] to leave leaves faster; a new
//! GOP drops what is left of the old one (its stream is reset anyway); and past [`MAX_BACKLOG`]
//! records the GOP's backlog is dropped (the next frame starts a new GOP). Audio is not paced: its
//! datagrams are one small packet every 20 ms.
//!
//! Nothing here reads the clock: the caller passes `now`.

use std::time::{Duration, Instant};

use super::sender::Outgoing;

/// The most bytes given to QUIC at once: with QUIC's headers one packet at the smallest MTU QUIC
/// allows (1200 bytes).
pub const PIECE: usize = 1100;
/// Pieces leave at this multiple of the bitrate their record was encoded at: a little over it, so
/// that a frame somewhat over the average still leaves before the next one comes.
pub const PACING_FACTOR: f64 = 1.25;
/// The lowest pacing rate, bps: at a very low target (a paused video's first keyframe) the pacer
/// must not hold a record for longer than the receiver waits for it.
pub const MIN_PACING_RATE: u32 = 100_000;

/// When the pieces of a call's video may go onto the link.
#[derive(Debug, Clone, Default)]
pub struct Pacer {
    /// The pacer is busy until then with what it let go.
    free_at: Option<Instant>,
}

impl Pacer {
    /// A pacer with nothing sent.
    pub fn new() -> Self {
        Pacer::default()
    }

    /// When the next piece may go: `now`, or later while the pieces before it are still leaving
    /// at their rate.
    pub fn next_send(&self, now: Instant) -> Instant {
        self.free_at.map_or(now, |f| f.max(now))
    }

    /// A piece of `bytes` went at `at` (the time [`Pacer::next_send`] gave, or later), paced at
    /// `rate` bps (`None`: not paced).
    pub fn sent(&mut self, at: Instant, bytes: usize, rate: Option<u32>) {
        let start = self.next_send(at);
        self.free_at = Some(start + transmit_time(bytes, rate));
    }
}

/// A backlog leaves at no less than its size per this time: when what is queued would take longer
/// at the pacing rate, it leaves faster (after WebRTC's pacer, whose queue time limit raises the
/// rate the same way). The rate is recomputed piece by piece from what is left, so it falls as
/// the backlog does and never jumps to a burst (a rule aiming at a deadline, as WebRTC's does,
/// sends all that is left at once when the deadline is near: on the simulator's 40 ms-bucket
/// link that flooded the start and paused video for 16 s).
pub const QUEUE_LIMIT: Duration = Duration::from_millis(100);

/// Records queued for the link at most: past this the writer is far behind the encoder (about
/// 270 ms at 30 fps), and the GOP's backlog is dropped (the next frame starts a new GOP).
pub const MAX_BACKLOG: usize = 8;

/// A piece of a record to give QUIC now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The GOP (stream) it belongs to.
    pub gop: u32,
    /// It begins a GOP's first record: open the GOP's stream first (and reset the previous one).
    pub opens_gop: bool,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// What the queue has for the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A piece to write now.
    Piece(Piece),
    /// The next piece may go at this time.
    Wait(Instant),
    /// Nothing is queued.
    Empty,
}

/// What became of a record given to [`PacedQueue::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// It waits its turn.
    Queued,
    /// Its GOP is being dropped (an earlier overflow or failed stream): it waits for a new GOP.
    Skipped,
    /// The backlog was over [`MAX_BACKLOG`]: the GOP's queued records and this one are dropped;
    /// reset the GOP's stream and start a new GOP.
    Overflow,
}

/// The video records waiting for the link, handed out a [`PIECE`] at a time at the [`Pacer`]'s
/// pace. A new GOP drops whatever is left of the old one (its stream is reset when the new one
/// opens, so nothing queued for it could arrive anyway): a writer that fell behind catches up at
/// the next keyframe instead of queueing keyframes behind keyframes.
#[derive(Debug, Default)]
pub struct PacedQueue {
    pending: std::collections::VecDeque<Outgoing>,
    /// Bytes of the front record already handed out.
    offset: usize,
    pacer: Pacer,
    /// The GOP whose records are dropped until a new GOP starts.
    dropping: Option<u32>,
}

impl PacedQueue {
    /// An empty queue.
    pub fn new() -> Self {
        PacedQueue::default()
    }

    /// A record from the sender.
    pub fn push(&mut self, record: Outgoing) -> Queued {
        if record.new_gop {
            self.pending.clear();
            self.offset = 0;
            self.dropping = None;
        } else if self.dropping == Some(record.gop) {
            return Queued::Skipped;
        } else if self.pending.len() >= MAX_BACKLOG {
            self.drop_gop(record.gop);
            return Queued::Overflow;
        }
        self.pending.push_back(record);
        Queued::Queued
    }

    /// Drops what is queued of `gop`, and its records until a new GOP starts (its stream failed).
    pub fn drop_gop(&mut self, gop: u32) {
        self.pending.clear();
        self.offset = 0;
        self.dropping = Some(gop);
    }

    /// Records queued (the one being written included).
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// What to do at `now`: write a piece (its time is taken from the pacer as it is handed
    /// out), wait, or nothing.
    pub fn poll(&mut self, now: Instant) -> Next {
        let Some(front) = self.pending.front() else { return Next::Empty };
        let at = self.pacer.next_send(now);
        if at > now {
            return Next::Wait(at);
        }
        let end = (self.offset + PIECE).min(front.record.len());
        let piece = Piece {
            gop: front.gop,
            opens_gop: self.offset == 0 && front.new_gop,
            bytes: front.record[self.offset..end].to_vec(),
        };
        // A backlog drains at no less than its size per QUEUE_LIMIT, however low its rate.
        let backlog = self.pending.iter().map(|r| r.record.len()).sum::<usize>() - self.offset;
        let draining = (backlog as f64 * 8.0 / QUEUE_LIMIT.as_secs_f64()).min(f64::from(u32::MAX)) as u32;
        let rate = pacing_rate(front.bitrate).map(|r| r.max(draining));
        self.pacer.sent(now, piece.bytes.len(), rate);
        self.offset = end;
        if end == front.record.len() {
            self.pending.pop_front();
            self.offset = 0;
        }
        Next::Piece(piece)
    }
}

/// The rate pieces of a record encoded at `bitrate` bps leave at, bps; `None` when the record is
/// not paced (`bitrate` 0: its encoder's rate is not known here, as at a group call's forwarder).
pub fn pacing_rate(bitrate: u32) -> Option<u32> {
    (bitrate > 0).then(|| ((f64::from(bitrate) * PACING_FACTOR) as u32).max(MIN_PACING_RATE))
}

/// How long `bytes` take at `rate` bps (no time when not paced).
fn transmit_time(bytes: usize, rate: Option<u32>) -> Duration {
    rate.map_or(Duration::ZERO, |r| Duration::from_secs_f64(bytes as f64 * 8.0 / f64::from(r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_idle_pacer_lets_a_piece_go_at_once_and_saves_no_credit() {
        let t0 = Instant::now();
        let mut p = Pacer::new();
        assert_eq!(p.next_send(t0), t0);
        // 1000 bytes at 200 kbps × 1.25 = 250 kbps: 32 ms.
        p.sent(t0, 1000, pacing_rate(200_000));
        assert_eq!(p.next_send(t0), t0 + ms(32));
        assert_eq!(p.next_send(t0 + ms(40)), t0 + ms(40), "free again after 32 ms");
        // A second idle: the next burst is not let through on the strength of it.
        let t1 = t0 + ms(2000);
        p.sent(t1, 1000, pacing_rate(200_000));
        p.sent(p.next_send(t1), 1000, pacing_rate(200_000));
        assert_eq!(p.next_send(t1), t1 + ms(64), "two pieces take their time, whatever the idle before");
    }

    #[test]
    fn a_keyframe_leaves_over_its_time_at_the_rate_it_was_encoded_at() {
        // A 3300-byte keyframe at 220 kbps (three times a 30 fps frame's share): three pieces.
        let t0 = Instant::now();
        let mut p = Pacer::new();
        let mut departures = Vec::new();
        for piece in [PIECE, PIECE, PIECE] {
            let at = p.next_send(t0);
            departures.push(at.duration_since(t0).as_micros());
            p.sent(at, piece, pacing_rate(220_000));
        }
        // 1100 bytes at 275 kbps: 32 ms apart.
        assert_eq!(departures, vec![0, 32_000, 64_000]);
    }

    #[test]
    fn a_low_target_is_paced_at_the_floor_and_an_unknown_one_not_at_all() {
        assert_eq!(pacing_rate(30_000), Some(MIN_PACING_RATE));
        assert_eq!(pacing_rate(400_000), Some(500_000));
        assert_eq!(pacing_rate(0), None);
        let t0 = Instant::now();
        let mut p = Pacer::new();
        p.sent(t0, PIECE, pacing_rate(0));
        assert_eq!(p.next_send(t0), t0, "a forwarded record is not held");
    }

    fn outgoing(gop: u32, new_gop: bool, len: usize, bitrate: u32) -> Outgoing {
        Outgoing { gop, new_gop, record: vec![gop as u8; len], frame: 0, layer: 0, bitrate }
    }

    /// Everything the queue hands out from `t0`, sleeping whenever it says wait: (ms since `t0`,
    /// rounded to the nearest, the piece).
    fn drain(q: &mut PacedQueue, t0: Instant) -> Vec<(u128, Piece)> {
        let (mut now, mut out) = (t0, Vec::new());
        loop {
            match q.poll(now) {
                Next::Piece(p) => out.push(((now.duration_since(t0).as_micros() + 500) / 1000, p)),
                Next::Wait(at) => now = at,
                Next::Empty => return out,
            }
        }
    }

    #[test]
    fn a_record_is_handed_out_in_pieces_at_the_pace_of_its_bitrate() {
        let t0 = Instant::now();
        let mut q = PacedQueue::new();
        assert_eq!(q.push(outgoing(0, true, 2 * PIECE + 100, 275_000)), Queued::Queued);
        assert_eq!(q.push(outgoing(0, false, 500, 275_000)), Queued::Queued);
        let out = drain(&mut q, t0);
        let shape: Vec<(u128, bool, usize)> = out.iter().map(|(t, p)| (*t, p.opens_gop, p.bytes.len())).collect();
        // 1100 bytes at 275 kbps × 1.25: 25.6 ms; 100 bytes: 2.3 ms.
        assert_eq!(shape, vec![(0, true, PIECE), (26, false, PIECE), (51, false, 100), (54, false, 500)]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_backlog_drains_at_its_size_per_queue_limit_whatever_its_rate() {
        // Ten pieces encoded at 100 kbps: 704 ms at the pacing rate alone. Each piece leaves
        // QUEUE_LIMIT × (its share of what is left) after the one before: 10 ms, then 11.1 ms
        // (1/9 of 100), … 50 ms (1/2), so the last leaves 100 × (1/10 + … + 1/2) = 193 ms in.
        let t0 = Instant::now();
        let mut q = PacedQueue::new();
        q.push(outgoing(0, true, 10 * PIECE, 100_000));
        let times: Vec<u128> = drain(&mut q, t0).iter().map(|(t, _)| *t).collect();
        assert_eq!(times, vec![0, 10, 21, 34, 48, 65, 85, 110, 143, 193]);
    }

    #[test]
    fn a_new_gop_drops_what_is_left_of_the_old_one() {
        let t0 = Instant::now();
        let mut q = PacedQueue::new();
        q.push(outgoing(0, true, 3 * PIECE, 200_000));
        q.push(outgoing(0, false, 800, 200_000));
        let Next::Piece(first) = q.poll(t0) else { panic!("the first piece goes at once") };
        assert_eq!((first.gop, first.opens_gop), (0, true));
        // A keyframe comes while the old keyframe is still leaving: the old GOP's rest is gone.
        q.push(outgoing(1, true, 900, 200_000));
        assert_eq!(q.len(), 1);
        let rest = drain(&mut q, t0);
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].1.gop, rest[0].1.opens_gop, rest[0].1.bytes.len()), (1, true, 900));
        assert!(rest[0].0 > 0, "the new GOP still waits for the piece before it to have left");
    }

    #[test]
    fn a_backlog_over_the_limit_drops_the_gop_until_a_new_one() {
        let t0 = Instant::now();
        let mut q = PacedQueue::new();
        assert_eq!(q.push(outgoing(4, true, 3000, 100_000)), Queued::Queued);
        for _ in 1..MAX_BACKLOG {
            assert_eq!(q.push(outgoing(4, false, 1000, 100_000)), Queued::Queued);
        }
        assert_eq!(q.push(outgoing(4, false, 1000, 100_000)), Queued::Overflow);
        assert!(q.is_empty(), "the GOP's backlog is dropped");
        assert_eq!(q.poll(t0), Next::Empty);
        assert_eq!(q.push(outgoing(4, false, 1000, 100_000)), Queued::Skipped, "the rest of that GOP too");
        assert_eq!(q.push(outgoing(5, true, 1000, 100_000)), Queued::Queued);
        assert_eq!(q.push(outgoing(5, false, 1000, 100_000)), Queued::Queued, "a new GOP is taken again");
        assert_eq!(drain(&mut q, t0).len(), 2);
    }
}
