//! How much audio redundancy to send, and how far apart: the sender's answer to the loss its peer
//! reports.
//!
//! Each datagram carries its new frame and copies of older ones. *How many* copies follows the
//! loss rate ([`redundancy_for`]). *Which* older frames follows the bursts ([`copy_distances`]):
//! a copy in the very next datagram is lost with its frame when losses come in runs, so under
//! bursts the copies are spaced beyond the typical run. Opus's in-band FEC (each frame carries a
//! low-rate copy of the one before) is the distance-1 protection that is always there.

use super::packet::BurstReport;

/// The most copies a datagram carries (the packet holds four frames).
pub const MAX_COPIES: usize = 3;
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

#[cfg(test)]
mod tests {
    use super::*;

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
