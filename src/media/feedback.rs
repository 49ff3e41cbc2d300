//! What a call's audio pipeline tells its video pipeline and back, shared between their threads: how
//! old the audio playing now and the last decoded picture are, and what the peer's receiver reports
//! say about the path (for the bitrate controller). It only carries values; what they mean for lip
//! sync is decided by [`super::lip_sync::LipSync`].

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

/// The shared state (lock-free: written by the audio task, read by the video threads).
#[derive(Debug)]
pub struct MediaFeedback {
    audio_age_us: AtomicI64,
    video_age_us: AtomicI64,
    video_age_at: AtomicU64,
    /// The latest receiver report's loss (‰) not yet taken, or [`NO_REPORT`].
    peer_report: AtomicU32,
}

/// No receiver report arrived since the last was taken.
const NO_REPORT: u32 = u32::MAX;

impl Default for MediaFeedback {
    fn default() -> Self {
        MediaFeedback {
            audio_age_us: AtomicI64::new(i64::MIN),
            video_age_us: AtomicI64::new(i64::MIN),
            video_age_at: AtomicU64::new(0),
            peer_report: AtomicU32::new(NO_REPORT),
        }
    }
}

impl MediaFeedback {
    /// The audio playing now was captured this long ago (wall now − the sender's capture time).
    pub fn set_audio_age_us(&self, age: i64) {
        self.audio_age_us.store(age, Ordering::Relaxed);
    }

    /// The age of the audio playing now, if audio plays.
    pub fn audio_age_us(&self) -> Option<i64> {
        Some(self.audio_age_us.load(Ordering::Relaxed)).filter(|a| *a != i64::MIN)
    }

    /// A picture decoded at `wall_us` (µs since the Unix epoch) was `age` old (wall now − the
    /// sender's capture time).
    pub fn set_video_age_us(&self, wall_us: u64, age: i64) {
        self.video_age_us.store(age, Ordering::Relaxed);
        self.video_age_at.store(wall_us, Ordering::Relaxed);
    }

    /// When the last picture was decoded (wall µs) and how old it was then, if one was; whether
    /// that is recent enough to matter is [`super::lip_sync::LipSync::video_age_us`]'s call.
    pub fn last_video_age(&self) -> Option<(u64, i64)> {
        let at = self.video_age_at.load(Ordering::Relaxed);
        let age = self.video_age_us.load(Ordering::Relaxed);
        (age != i64::MIN).then_some((at, age))
    }

    /// A receiver report from the peer arrived: `loss_permille` of our audio was lost.
    pub fn on_peer_report(&self, loss_permille: u16) {
        self.peer_report.store(u32::from(loss_permille), Ordering::Relaxed);
    }

    /// The loss (‰) of the latest receiver report since the last call, if one arrived.
    pub fn take_peer_report(&self) -> Option<u16> {
        let loss = self.peer_report.swap(NO_REPORT, Ordering::Relaxed);
        (loss != NO_REPORT).then_some(loss as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_carried_until_told_and_a_report_is_taken_once() {
        let f = MediaFeedback::default();
        assert_eq!(f.audio_age_us(), None);
        f.set_audio_age_us(-5);
        assert_eq!(f.audio_age_us(), Some(-5));
        assert_eq!(f.take_peer_report(), None);
        f.on_peer_report(125);
        f.on_peer_report(250);
        assert_eq!(f.take_peer_report(), Some(250), "the latest");
        assert_eq!(f.take_peer_report(), None, "taken once");
        assert_eq!(f.last_video_age(), None);
        f.set_video_age_us(1_000_000, 250_000);
        assert_eq!(f.last_video_age(), Some((1_000_000, 250_000)));
    }
}
