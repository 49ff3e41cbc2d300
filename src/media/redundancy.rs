//! How much audio redundancy to send, and how far apart: the sender's answer to the loss its peer
//! reports.
//!
//! Each datagram carries its new frame and copies of older ones. *How many* copies follows the
//! loss rate ([`redundancy_for`]). *Which* older frames follows the bursts ([`copy_distances`]):
//! a copy in the very next datagram is lost with its frame when losses come in runs, so under
//! bursts the copies are spaced beyond the typical run. Opus's in-band FEC (each frame carries a
//! low-rate copy of the one before) is the distance-1 protection that is always there.

use super::audio::CLEAN_REPORTS_FOR_BOOST;
use super::packet::{BurstReport, ReceiverReport};

/// The most copies a datagram carries (the packet holds four frames).
pub const MAX_COPIES: usize = 3;
/// Reports in a row that must ask for fewer copies before one is taken away. Loss that comes in
/// bursts leaves whole report intervals clean (bursts of 3 at 5 % are 0.8 a second: 44 % of the
/// seconds have none), and a sender that dropped its copies after such a second met the next
/// burst without them.
pub const STEP_DOWN_AFTER: u32 = 5;
/// The burst a call starts ready for, datagrams, before the first report says what the link
/// does (the mean burst of Wi-Fi and mobile loss models: Gilbert-Elliott with bursts of 3).
pub const START_BURST: u32 = 3;
/// The farthest copy, in frames (120 ms): the receiver must hold this much more audio to use it,
/// so it bounds what burst protection adds to the delay. At mean bursts of 3 datagrams, copies
/// at 2, 4 and 6 frames leave about a third of the residual loss copies at 1, 2 and 3 do.
pub const MAX_DISTANCE: u32 = 6;

/// How many older frames ride along with each new one, for a loss rate (per mille) the receiver
/// reported: none on a clean link, one from 2 %, two from 8 %, three from 15 % (audio is cheap: each
/// copy costs ~32 kbps at most, and a frame is then lost only when four datagrams carrying it are).
pub fn redundancy_for(loss_permille: u16) -> usize {
    match loss_permille {
        0..20 => 0,
        20..80 => 1,
        80..150 => 2,
        _ => 3,
    }
}

/// The typical burst the peer reports: the mean of its recent bursts, rounded down unless it is
/// within a quarter of the next whole number, at least 1 (a peer that reports no bursts, or an
/// older one that cannot, gets 1: independent loss). Not plain rounding: independent 20 % loss
/// makes runs of 1.25 on average, and the mean of 32 of them reaches 1.5 by chance now and then.
pub fn typical_burst(report: Option<&BurstReport>) -> u32 {
    let centi = report.map_or(0, |b| u32::from(b.recent_mean_centi));
    ((centi + 25) / 100).max(1)
}

/// The distances (in frames, nearest first) of `copies` older frames to carry, for bursts of
/// `typical_burst` datagrams.
///
/// - Independent loss (bursts of 1): the previous `copies` frames, 1, 2, 3.
/// - Bursts: one copy more than the loss rate asks for (FEC saves only the last frame of each
///   burst), spread evenly up to `copies × typical_burst`, at most [`MAX_DISTANCE`]: the farthest
///   copy escapes all but the longest bursts; the nearer ones cover a copy lost to another burst.
///   Bursts of 3: one copy → 3 and 6; two or three → 2, 4, 6.
pub fn copy_distances(copies: usize, typical_burst: u32) -> Vec<u32> {
    let copies = copies.min(MAX_COPIES) as u32;
    if copies == 0 || typical_burst <= 1 {
        return (1..=copies).collect();
    }
    let copies = (copies + 1).min(MAX_COPIES as u32);
    let farthest = (copies * typical_burst).min(MAX_DISTANCE).max(copies);
    let mut distances: Vec<u32> = (1..=copies).map(|k| (k * farthest).div_ceil(copies)).collect();
    distances.dedup();
    distances
}

/// What a sender does about one receiver's reports, as a 1:1 call's [`super::audio::AudioSender`]
/// and a group call's sender (`media::group_call`, per receiver, then [`LossResponse::worst`])
/// both decide it: how many copies (up at once, down one step after [`STEP_DOWN_AFTER`] reports
/// in a row asked for fewer), spaced for the receiver's bursts, the loss Opus sizes its in-band
/// FEC for, and whether the link has been calm long enough for the clean-link bitrate boost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LossResponse {
    copies: usize,
    typical_burst: u32,
    expected_loss_percent: i32,
    calm_reports: u32,
    /// Reports in a row that asked for fewer copies than are sent.
    asking_fewer: u32,
    /// A report has come: the copies are an answer to measured loss, no longer the guess a call
    /// starts with (which the first report replaces at once).
    reported: bool,
}

impl Default for LossResponse {
    fn default() -> Self {
        Self::new()
    }
}

impl LossResponse {
    /// Before any report: ready for bursts, one copy spaced for bursts of [`START_BURST`] (3 and
    /// 6 frames back; the first second of a call is as lossy as the rest, and a burst takes a copy
    /// in the next datagram with its frame; the receiver holds for them,
    /// `loss_meter::START_REACH`), no FEC asked for, no boost.
    pub fn new() -> Self {
        LossResponse {
            copies: 1,
            typical_burst: START_BURST,
            expected_loss_percent: 0,
            calm_reports: 0,
            asking_fewer: 0,
            reported: false,
        }
    }

    /// The receiver reported how our audio arrives.
    pub fn on_report(&mut self, report: &ReceiverReport) {
        let wanted = redundancy_for(report.loss_permille);
        if wanted >= self.copies || !self.reported {
            self.copies = wanted;
            self.asking_fewer = 0;
        } else {
            self.asking_fewer += 1;
            if self.asking_fewer >= STEP_DOWN_AFTER {
                self.copies -= 1;
                self.asking_fewer = 0;
            }
        }
        self.reported = true;
        self.typical_burst = typical_burst(report.bursts.as_ref());
        // In-band FEC takes bits from the primary encoding: ask for it only when there is loss.
        self.expected_loss_percent = (i32::from(report.loss_permille) + 9) / 10;
        // "Clean enough": random loss under 15 % with low jitter is not congestion that more bits
        // would worsen, and the boost is what keeps speech quality up under loss.
        let calm = report.loss_permille < 150 && report.jitter_us < 30_000;
        self.calm_reports = if calm { self.calm_reports.saturating_add(1) } else { 0 };
    }

    /// How far back the copies reach, frames, nearest first ([`copy_distances`]).
    pub fn distances(&self) -> Vec<u32> {
        copy_distances(self.copies, self.typical_burst)
    }

    /// The loss the encoder sizes its in-band FEC for, percent.
    pub fn expected_loss_percent(&self) -> i32 {
        self.expected_loss_percent
    }

    /// Whether the link has been calm for [`CLEAN_REPORTS_FOR_BOOST`] reports in a row.
    pub fn calm(&self) -> bool {
        self.calm_reports >= CLEAN_REPORTS_FOR_BOOST
    }

    /// What one sender sending the same packets to every receiver does: the most copies any
    /// receiver asks for, spaced for the longest typical burst among the receivers that ask for
    /// copies, FEC for the highest loss, calm only when every receiver is. No receiver: as
    /// [`LossResponse::new`].
    pub fn worst<'a>(receivers: impl IntoIterator<Item = &'a LossResponse>) -> LossResponse {
        let mut worst: Option<LossResponse> = None;
        for r in receivers {
            let w = worst.get_or_insert(LossResponse {
                copies: 0,
                typical_burst: 1,
                expected_loss_percent: 0,
                calm_reports: u32::MAX,
                asking_fewer: 0,
                reported: true,
            });
            w.copies = w.copies.max(r.copies);
            if r.copies > 0 {
                w.typical_burst = w.typical_burst.max(r.typical_burst);
            }
            w.expected_loss_percent = w.expected_loss_percent.max(r.expected_loss_percent);
            w.calm_reports = w.calm_reports.min(r.calm_reports);
        }
        worst.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(loss_permille: u16, mean_burst: f64) -> ReceiverReport {
        ReceiverReport { loss_permille, bursts: Some(burst(mean_burst)), ..Default::default() }
    }

    #[test]
    fn the_worst_receiver_sets_the_copies_their_spacing_the_fec_and_the_boost() {
        let mut clean = LossResponse::new();
        let mut lossy = LossResponse::new();
        let mut bursty_but_light = LossResponse::new();
        for _ in 0..3 {
            clean.on_report(&report(0, 0.0));
            lossy.on_report(&report(50, 1.0));
            bursty_but_light.on_report(&report(10, 3.0));
        }
        assert_eq!((clean.distances(), clean.calm()), (vec![], true), "a clean link: no copy, boosted");
        assert_eq!(bursty_but_light.distances(), Vec::<u32>::new());
        let worst = LossResponse::worst([&clean, &lossy, &bursty_but_light]);
        assert_eq!(worst.distances(), [1], "5 % independent loss at one receiver: one copy for all");
        assert_eq!(worst.expected_loss_percent(), 5);
        assert!(worst.calm(), "5 % is calm: every receiver is");
        let mut bursty = LossResponse::new();
        bursty.on_report(&report(50, 3.0));
        let worst = LossResponse::worst([&clean, &bursty]);
        assert_eq!(worst.distances(), [3, 6], "spaced for the bursty receiver");
        assert!(!worst.calm(), "one receiver has not been calm long enough");
        assert_eq!(LossResponse::worst([&clean]), clean);
        assert_eq!(LossResponse::worst([]), LossResponse::new(), "nobody reported: what a call starts with");
    }

    #[test]
    fn copies_come_down_only_after_several_reports_ask_for_fewer() {
        // The first report replaces the guess a call starts with, at once.
        let mut clean = LossResponse::new();
        assert_eq!(clean.distances(), [3, 6], "a call starts ready for bursts");
        clean.on_report(&report(0, 0.0));
        assert_eq!(clean.distances(), Vec::<u32>::new(), "a clean link drops the starting copy at once");
        // Bursts of 3 at 10 %, with clean seconds between them: the copies stay.
        let mut bursty = LossResponse::new();
        bursty.on_report(&report(100, 3.0));
        assert_eq!(bursty.distances(), [2, 4, 6]);
        for clean_seconds in 1..STEP_DOWN_AFTER {
            bursty.on_report(&report(0, 3.0));
            assert_eq!(bursty.distances(), [2, 4, 6], "after {clean_seconds} clean reports");
        }
        // A report that asks for as many as are sent starts the count again.
        bursty.on_report(&report(100, 3.0));
        for _ in 1..STEP_DOWN_AFTER {
            bursty.on_report(&report(0, 3.0));
        }
        assert_eq!(bursty.distances(), [2, 4, 6]);
        // Five clean reports in a row: one step down (two copies wanted → one, spaced: 3 and 6),
        // five more: another; then none.
        bursty.on_report(&report(0, 3.0));
        assert_eq!(bursty.distances(), [3, 6]);
        for _ in 0..STEP_DOWN_AFTER {
            bursty.on_report(&report(0, 3.0));
        }
        assert_eq!(bursty.distances(), Vec::<u32>::new());
        // And up at once.
        bursty.on_report(&report(200, 3.0));
        assert_eq!(bursty.distances(), [2, 4, 6]);
    }

    fn burst(mean: f64) -> BurstReport {
        BurstReport { recent_mean_centi: (mean * 100.0) as u16, ..Default::default() }
    }

    #[test]
    fn independent_loss_keeps_the_nearest_copies_and_bursts_spread_them() {
        assert_eq!(typical_burst(None), 1, "an older peer reports no bursts");
        assert_eq!(typical_burst(Some(&burst(1.25))), 1, "independent 20 % loss: runs of 1.25 on average");
        assert_eq!(typical_burst(Some(&burst(1.6))), 1, "independent 20 % loss, an unlucky window");
        assert_eq!(typical_burst(Some(&burst(1.8))), 2);
        assert_eq!(typical_burst(Some(&burst(2.8))), 3);
        assert_eq!(typical_burst(Some(&burst(3.1))), 3);
        for copies in 0..=3 {
            assert_eq!(copy_distances(copies, 1), (1..=copies as u32).collect::<Vec<_>>());
        }
        assert_eq!(copy_distances(0, 3), Vec::<u32>::new(), "no loss, no copies, whatever the bursts");
        assert_eq!(copy_distances(1, 3), [3, 6]);
        assert_eq!(copy_distances(2, 3), [2, 4, 6]);
        assert_eq!(copy_distances(3, 3), [2, 4, 6]);
        assert_eq!(copy_distances(1, 2), [2, 4]);
        assert_eq!(copy_distances(3, 2), [2, 4, 6]);
        assert_eq!(copy_distances(1, 50), [3, 6], "an outage does not push copies past the bound");
        for copies in 0..=5 {
            for b in 1..=300 {
                let d = copy_distances(copies, b);
                assert!(
                    d.len() <= MAX_COPIES && d.iter().all(|d| (1..=MAX_DISTANCE).contains(d)),
                    "{copies} {b}: {d:?}"
                );
                assert!(d.windows(2).all(|w| w[0] < w[1]), "{copies} {b}: {d:?}");
            }
        }
    }
}
