//! What a call's audio pipeline tells its video pipeline, shared between their threads: how old the
//! audio playing now is (for lip sync) and what the peer's receiver reports say about the path (for
//! the bitrate controller).

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

/// The shared state (lock-free: written by the audio task, read by the video threads).
#[derive(Debug)]
pub struct MediaFeedback {
    audio_age_us: AtomicI64,
    video_age_us: AtomicI64,
    video_age_at: AtomicU64,
    peer_loss_permille: AtomicU32,
    peer_reports: AtomicU64,
}

impl Default for MediaFeedback {
    fn default() -> Self {
        MediaFeedback {
            audio_age_us: AtomicI64::new(i64::MIN),
            video_age_us: AtomicI64::new(i64::MIN),
            video_age_at: AtomicU64::new(0),
            peer_loss_permille: AtomicU32::new(0),
            peer_reports: AtomicU64::new(0),
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

    /// Decoded pictures are this old when they are ready to show (wall now − the sender's capture
    /// time), as of `now_ms` (wall clock, ms).
    pub fn set_video_age_us(&self, age: i64, now_ms: u64) {
        self.video_age_us.store(age, Ordering::Relaxed);
        self.video_age_at.store(now_ms, Ordering::Relaxed);
    }

    /// How old decoded pictures are, if one was decoded in the 3 s before `now_ms`.
    pub fn video_age_us(&self, now_ms: u64) -> Option<i64> {
        let at = self.video_age_at.load(Ordering::Relaxed);
        let age = self.video_age_us.load(Ordering::Relaxed);
        (age != i64::MIN && now_ms.saturating_sub(at) <= 3000).then_some(age)
    }

    /// A receiver report from the peer arrived.
    pub fn on_peer_report(&self, loss_permille: u16) {
        self.peer_loss_permille.store(u32::from(loss_permille), Ordering::Relaxed);
        self.peer_reports.fetch_add(1, Ordering::Release);
    }

    /// How many reports arrived, and the last one's loss (fraction).
    pub fn peer_reports(&self) -> (u64, f64) {
        let n = self.peer_reports.load(Ordering::Acquire);
        (n, f64::from(self.peer_loss_permille.load(Ordering::Relaxed)) / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_plays_until_told_and_reports_count() {
        let f = MediaFeedback::default();
        assert_eq!(f.audio_age_us(), None);
        f.set_audio_age_us(-5);
        assert_eq!(f.audio_age_us(), Some(-5));
        f.on_peer_report(125);
        assert_eq!(f.peer_reports(), (1, 0.125));
        assert_eq!(f.video_age_us(1000), None);
        f.set_video_age_us(250_000, 1000);
        assert_eq!(f.video_age_us(2500), Some(250_000));
        assert_eq!(f.video_age_us(4500), None, "stale after 3 s: video stopped");
    }
}
