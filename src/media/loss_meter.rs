//! What the receiver of one sender's audio measures of its loss, sans-IO: the network's loss per
//! report interval (before redundancy and FEC), its bursts ([`BurstMeter`]), and how far back the
//! sender's copies reach, so that while loss lasts the jitter buffer holds enough audio for the
//! farthest copy to arrive in time. A 1:1 call's `media::audio::AudioReceiver` keeps one for its
//! peer; a group call's `media::group_audio::GroupAudioReceiver` one per sender.

use super::burst::{BurstMeter, BurstStats};
use super::jitter::{FRAME, JitterBuffer};
use super::packet::{AudioPacket, ReceiverReport};
use super::redundancy::MAX_DISTANCE;

/// Datagrams over which the receiver looks for how far back the sender's copies reach (a minute:
/// the sender's redundancy follows each second's loss, which swings around its thresholds, and
/// every frame the recovery delay adds or gives back costs a stretch or a dropped frame; when the
/// loss stops, the delay comes down regardless).
const COPY_WINDOW: u32 = 3000;

/// One sender's loss as its receiver measures it.
#[derive(Debug, Default)]
pub struct LossMeter {
    /// The first and highest primary sequence numbers seen, and how many datagrams carried their
    /// own primary frame (redundant copies do not count).
    first_seq: Option<u32>,
    highest_seq: Option<u32>,
    primaries: u64,
    /// Expected and primaries at the last report.
    last_report: (u64, u64),
    bursts: BurstMeter,
    /// For each distance up to [`MAX_DISTANCE`] (index 0 unused), the newest datagram that carried
    /// a copy that far back.
    copy_seen: [Option<u32>; MAX_DISTANCE as usize + 1],
    /// How far back the copies reach, as the jitter buffer was told (frames).
    recovery_frames: u32,
}

impl LossMeter {
    /// A meter that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bursts of loss so far.
    pub fn bursts(&self) -> BurstStats {
        self.bursts.stats()
    }

    /// `packet` arrived (before its frames go into `jitter`): counted, and if its copies reach
    /// farther than `jitter` holds while loss lasts, `jitter` holds more at once.
    pub fn on_packet(&mut self, packet: &AudioPacket, jitter: &mut JitterBuffer) {
        self.first_seq.get_or_insert(packet.seq);
        self.highest_seq = Some(self.highest_seq.map_or(packet.seq, |h| h.max(packet.seq)));
        self.primaries += 1;
        self.bursts.on_primary(packet.seq);
        for (seq, _) in packet.frames.iter().skip(1) {
            if let Some(seen) = self.copy_seen.get_mut(packet.seq.wrapping_sub(*seq) as usize) {
                *seen = Some(packet.seq);
            }
        }
        // More delay for the copies at once; less one frame per report (see `report`).
        if self.wanted_recovery() > self.recovery_frames {
            self.set_recovery(self.wanted_recovery(), jitter);
        }
    }

    /// How many frames the jitter buffer should hold beyond the jitter so that the farthest copy the
    /// sender carries arrives in time: none without recent loss (the copies are not needed), at
    /// most [`MAX_DISTANCE`] (a farther copy is not waited for).
    fn wanted_recovery(&self) -> u32 {
        if !self.bursts.loss_present() {
            return 0;
        }
        let newest = self.highest_seq.unwrap_or(0);
        let recent = |seen: &Option<u32>| seen.is_some_and(|s| newest.wrapping_sub(s) < COPY_WINDOW);
        self.copy_seen.iter().rposition(recent).unwrap_or(0) as u32
    }

    fn set_recovery(&mut self, frames: u32, jitter: &mut JitterBuffer) {
        self.recovery_frames = frames;
        jitter.set_copy_reach(FRAME * frames);
    }

    /// A report about the sender's audio as it arrives into `jitter`. The loss is the network's,
    /// over the interval since the last report, before redundancy and FEC: datagrams expected (by
    /// the highest sequence number) that did not arrive. Residual loss after recovery would fall to
    /// zero as soon as redundancy works, and redundancy would then switch off again. The bursts go
    /// in only `with_bursts` (a parser from before the extension refuses the whole report). The
    /// recovery delay comes down a frame per report once the loss or the copies stop.
    pub fn report(&mut self, jitter: &mut JitterBuffer, rtt_ms: u16, with_bursts: bool) -> ReceiverReport {
        let j = jitter.stats();
        let expected = match (self.first_seq, self.highest_seq) {
            (Some(f), Some(h)) => u64::from(h.saturating_sub(f)) + 1,
            _ => 0,
        };
        let (prev_expected, prev_primaries) = self.last_report;
        let (de, dp) = (expected.saturating_sub(prev_expected), self.primaries.saturating_sub(prev_primaries));
        self.last_report = (expected, self.primaries);
        let loss_permille = (de.saturating_sub(dp) * 1000).checked_div(de).unwrap_or(0).min(1000) as u16;
        let wanted = self.wanted_recovery();
        if wanted < self.recovery_frames {
            self.set_recovery(self.recovery_frames - 1, jitter);
        }
        let bursts = self.bursts.report();
        ReceiverReport {
            highest_seq: self.highest_seq.unwrap_or(0),
            received: j.received as u32,
            lost: j.lost as u32,
            loss_permille,
            jitter_us: (j.jitter_ms * 1000.0) as u32,
            buffered_ms: j.buffered_ms as u16,
            rtt_ms,
            bursts: with_bursts.then_some(bursts),
        }
    }
}
