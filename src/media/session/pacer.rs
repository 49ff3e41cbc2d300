//! The video pacer (sans-IO): the encoder hands over a whole picture at once, and a keyframe is
//! many packets; written to QUIC in one go it leaves in one burst, and a policer with a small
//! bucket (a few packets) drops most of it, which costs the GOP and asks for another keyframe.
//! The pacer holds the video's records and releases their bytes to the IO layer in pieces of at
//! most [`PIECE`] bytes, at [`PACING_FACTOR`] × the rate loop's estimate (the video budget and
//! what audio may need: audio sends less, so the video's backlog drains), with a burst
//! allowance of [`BURST`] of that rate (at least one piece). Audio datagrams never wait behind it:
//! they are [`Output::Transmit`](super::Output::Transmit)ted at once, and QUIC sends datagrams
//! before stream bytes.
//!
//! A record that opens a new GOP drops what is still held of the old one (its stream is reset
//! anyway). How long the held bytes take to leave ([`Pacer::backlog`]) is what the frame tick
//! reads to skip a capture rather than let pictures queue (as WebRTC's encoder drops frames when
//! its pacer queue is long).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::media::video::sender::Outgoing;

/// The largest piece released at once: under one QUIC packet's payload (1200 bytes less headers).
pub const PIECE: usize = 1000;
/// The burst allowance, as time at the pacing rate.
pub const BURST: Duration = Duration::from_millis(20);
/// The pacing rate over the estimate (the video budget plus `rate::AUDIO_NEED`).
pub const PACING_FACTOR: f64 = 1.0;

/// Holds the video's records and releases them at the pacing rate (see the module docs).
#[derive(Debug)]
pub(super) struct Pacer {
    /// Bytes per second.
    rate: f64,
    /// Bytes that may go now (at most the burst allowance).
    tokens: f64,
    last: Instant,
    pieces: VecDeque<Outgoing>,
    held: usize,
}

impl Pacer {
    /// A pacer for a video budget of `video_bps`, its bucket full at `now`.
    pub(super) fn new(video_bps: u32, now: Instant) -> Self {
        let mut pacer = Pacer { rate: 0.0, tokens: 0.0, last: now, pieces: VecDeque::new(), held: 0 };
        pacer.set_budget(video_bps, now);
        pacer.tokens = pacer.burst();
        pacer
    }

    fn burst(&self) -> f64 {
        (self.rate * BURST.as_secs_f64()).max(PIECE as f64)
    }

    /// The video budget changed (0: video paused, what is held is dropped); the pace is the
    /// estimate it came from.
    pub(super) fn set_budget(&mut self, video_bps: u32, now: Instant) {
        self.refill(now);
        self.rate = if video_bps == 0 { 0.0 } else { f64::from(video_bps + crate::media::rate::AUDIO_NEED) * PACING_FACTOR / 8.0 };
        if video_bps == 0 {
            self.clear();
        }
    }

    /// Drops everything held.
    pub(super) fn clear(&mut self) {
        self.pieces.clear();
        self.held = 0;
    }

    /// A record to send, cut into pieces; one that opens a GOP drops what is held of the last.
    pub(super) fn push(&mut self, record: Outgoing) {
        if record.new_gop {
            self.clear();
        }
        let Outgoing { gop, new_gop, record, frame } = record;
        self.held += record.len();
        for (i, piece) in record.chunks(PIECE).enumerate() {
            self.pieces.push_back(Outgoing { gop, new_gop: new_gop && i == 0, record: piece.to_vec(), frame });
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst());
        self.last = self.last.max(now);
    }

    /// The pieces that may go at `now`, in order.
    pub(super) fn release(&mut self, now: Instant) -> impl Iterator<Item = Outgoing> + '_ {
        self.refill(now);
        std::iter::from_fn(move || {
            let len = self.pieces.front()?.record.len();
            if self.tokens < len as f64 {
                return None;
            }
            self.tokens -= len as f64;
            self.held -= len;
            self.pieces.pop_front()
        })
    }

    /// When the next piece may go (`None`: nothing held, or no rate to send it at).
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let len = self.pieces.front()?.record.len() as f64;
        if self.rate <= 0.0 {
            return None;
        }
        let wait = ((len - self.tokens).max(0.0) / self.rate).min(3600.0);
        // Rounded up to the microsecond, so the refill at that time covers the piece.
        Some(self.last + Duration::from_micros((wait * 1e6).ceil() as u64))
    }

    /// How long what is held takes to leave at the pacing rate.
    pub(super) fn backlog(&self) -> Duration {
        if self.held == 0 || self.rate <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(((self.held as f64 - self.tokens).max(0.0) / self.rate).min(3600.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn record(gop: u32, new_gop: bool, frame: u32, len: usize) -> Outgoing {
        Outgoing { gop, new_gop, record: vec![frame as u8; len], frame }
    }

    #[test]
    fn a_keyframe_leaves_in_pieces_at_the_pacing_rate_not_in_one_burst() {
        let t0 = Instant::now();
        // 200 kbps of video (280 kbps with audio's share): 35 KB/s paced, a burst of 700 bytes,
        // so one 1000-byte piece.
        let mut p = Pacer::new(200_000, t0);
        p.push(record(1, true, 0, 5_500));
        let first: Vec<_> = p.release(t0).collect();
        assert_eq!(first.len(), 1, "one piece at once");
        assert!(first[0].new_gop && first[0].record.len() == PIECE);
        let mut sent = vec![(t0, first[0].record.len())];
        let mut now = t0;
        while let Some(at) = p.poll_timeout() {
            assert!(at > now, "the pacer's timeout moves on");
            now = at;
            for piece in p.release(now) {
                assert!(!piece.new_gop, "only the first piece opens the GOP");
                sent.push((now, piece.record.len()));
            }
        }
        assert_eq!(sent.iter().map(|(_, l)| l).sum::<usize>(), 5_500);
        assert_eq!(sent.len(), 6);
        // The rest left at the rate: 4500 bytes in 4500 / 27500 s.
        let took = sent.last().unwrap().0 - t0;
        assert!((took.as_secs_f64() - 4_500.0 / 35_000.0).abs() < 0.001, "{took:?}");
        // No 20 ms window carried more than the burst allowance and one piece.
        for (at, _) in &sent {
            let window: usize = sent.iter().filter(|(t, _)| *t >= *at && *t < *at + 20 * MS).map(|(_, l)| l).sum();
            assert!(window <= 2 * PIECE, "{window} bytes within 20 ms of {at:?}");
        }
    }

    #[test]
    fn a_new_gop_drops_the_held_tail_of_the_old_and_the_backlog_says_how_long_the_rest_takes() {
        let t0 = Instant::now();
        let mut p = Pacer::new(80_000, t0); // 160 kbps with audio's share: 20 KB/s
        p.push(record(1, true, 0, 3_000));
        assert_eq!(p.release(t0).count(), 1);
        p.push(record(1, false, 1, 2_000));
        let backlog = p.backlog();
        // 4000 bytes held, no tokens left: 4000 / 20000 s.
        assert!((backlog.as_secs_f64() - 0.2).abs() < 0.001, "{backlog:?}");
        p.push(record(2, true, 2, 500));
        let backlog = p.backlog().as_secs_f64();
        assert!((backlog - 500.0 / 20_000.0).abs() < 0.001, "only the new GOP is held: {backlog}");
        let later: Vec<_> = p.release(t0 + 100 * MS).collect();
        assert_eq!(later.len(), 1);
        assert!(later[0].new_gop && later[0].gop == 2);
        // Paused: nothing held, nothing due.
        p.push(record(2, false, 3, 5_000));
        p.set_budget(0, t0 + 100 * MS);
        assert_eq!((p.poll_timeout(), p.backlog()), (None, Duration::ZERO));
    }
}
