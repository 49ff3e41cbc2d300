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

/// How far back a call's first copies reach before any report (frames): the sender starts ready
/// for bursts (`redundancy::LossResponse::new`, copies 3 and 6 back), and the receiver holds
/// that much from its first frame, so that a burst in the first second finds its copies in time.
/// A first second found clean gives it back at once, in the next pause of the speech.
pub const START_REACH: u32 = MAX_DISTANCE;
/// Datagrams after the first report during which the sender may still send what it started
/// with (the report's way there and the sender's answer, 500 ms): their copies say nothing about
/// what the sender answered.
const START_IN_FLIGHT: u32 = 25;

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
    /// From this primary sequence number on, the copies are the sender's answer to our reports
    /// (`None`: no report yet); before it, the call's start ([`START_REACH`]).
    answered_from: Option<u32>,
    /// Made by [`LossMeter::ready_for_bursts`].
    ready_for_bursts: bool,
}

impl LossMeter {
    /// A meter that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// A meter that has seen nothing, for a sender that starts ready for bursts: `jitter` holds
    /// [`START_REACH`] from the first frame until the reports say what the link needs.
    pub fn ready_for_bursts(jitter: &mut JitterBuffer) -> Self {
        let mut meter = Self { ready_for_bursts: true, ..Self::default() };
        meter.set_recovery(START_REACH, jitter);
        meter
    }

    /// Whether the copies arriving are still those a call that starts ready for bursts starts
    /// with, sent before the sender heard a report.
    fn starting(&self) -> bool {
        if !self.ready_for_bursts {
            return false;
        }
        match (self.answered_from, self.highest_seq) {
            (Some(from), Some(h)) => h < from,
            _ => true,
        }
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
        // The starting copies do not count as what the sender answered: a clean call would
        // otherwise hold their reach for a minute.
        let answered = !self.starting();
        for (seq, _) in packet.frames.iter().skip(1).filter(|_| answered) {
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
        let seen = self.copy_seen.iter().rposition(recent).unwrap_or(0) as u32;
        // Loss while the starting copies still come: they are what there is, hold for them.
        if self.starting() { seen.max(START_REACH) } else { seen }
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
        let first = self.answered_from.is_none();
        if first {
            self.answered_from = Some(self.highest_seq.unwrap_or(0).wrapping_add(START_IN_FLIGHT));
        }
        let wanted = self.wanted_recovery();
        if first && self.ready_for_bursts && !self.bursts.loss_present() {
            // A first second without loss: the start's hold goes at once, to be given back in
            // one piece in the next pause (not a frame a report: each change of the delay is
            // heard).
            self.set_recovery(0, jitter);
        } else if wanted < self.recovery_frames {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Datagram `seq` with copies `back` frames before it (those at or after frame 0).
    fn packet(seq: u32, back: &[u32]) -> AudioPacket {
        let copies = back.iter().filter_map(|b| seq.checked_sub(*b)).map(|s| (s, vec![0]));
        AudioPacket { seq, capture_us: 0, flags: 0, frames: std::iter::once((seq, vec![0])).chain(copies).collect() }
    }

    /// Feeds datagrams `seqs` (those `lost` says are lost never arrive), with copies `back`.
    fn feed(m: &mut LossMeter, jb: &mut JitterBuffer, seqs: std::ops::Range<u32>, back: &[u32], lost: impl Fn(u32) -> bool) {
        for seq in seqs.filter(|s| !lost(*s)) {
            m.on_packet(&packet(seq, back), jb);
        }
    }

    #[test]
    fn a_call_holds_the_starting_copies_reach_until_its_first_report_says_what_the_link_needs() {
        let start_delay = FRAME * START_REACH - crate::media::jitter::MARGIN;
        // A clean first second: the hold goes at the first report, all at once.
        let mut jb = JitterBuffer::new();
        let mut m = LossMeter::ready_for_bursts(&mut jb);
        assert_eq!(jb.stats().recovery_delay_ms, start_delay.as_secs_f64() * 1000.0, "from the first frame");
        feed(&mut m, &mut jb, 0..50, &[3, 6], |_| false);
        m.report(&mut jb, 10, true);
        assert_eq!(jb.stats().recovery_delay_ms, 0.0);

        // Bursts in the first second: the hold stays while the starting copies still come, and
        // the copies seen before the sender answered do not count afterwards: an answer of one
        // copy in the next datagram (independent loss) brings the reach down to 1, a frame a
        // report.
        let mut jb = JitterBuffer::new();
        let mut m = LossMeter::ready_for_bursts(&mut jb);
        let lost = |s: u32| s % 25 < 3 && s > 0;
        feed(&mut m, &mut jb, 0..50, &[3, 6], lost);
        m.report(&mut jb, 10, true);
        assert_eq!(jb.stats().recovery_delay_ms, start_delay.as_secs_f64() * 1000.0, "loss: held");
        // The sender's answer comes 25 datagrams after the report at the latest.
        feed(&mut m, &mut jb, 50..74, &[3, 6], lost);
        let mut reaches = Vec::new();
        for second in 0..8u32 {
            let from = 74 + second * 50;
            feed(&mut m, &mut jb, from..from + 50, &[1], |s| s % 20 == 0);
            m.report(&mut jb, 10, true);
            reaches.push(jb.stats().recovery_delay_ms.round());
        }
        // Reach 1 frame: 20 ms less the jitter target's 15 ms margin.
        assert_eq!(reaches, [85.0, 65.0, 45.0, 25.0, 5.0, 5.0, 5.0, 5.0], "down to the answered copies' reach");

        // A meter made with `new` (no starting hold) counts every copy from the first datagram.
        let mut jb = JitterBuffer::new();
        let mut m = LossMeter::new();
        assert_eq!(jb.stats().recovery_delay_ms, 0.0, "nothing held from the start");
        feed(&mut m, &mut jb, 0..50, &[3, 6], lost);
        assert_eq!(jb.stats().recovery_delay_ms, start_delay.as_secs_f64() * 1000.0, "copies 6 back seen under loss");
    }
}
