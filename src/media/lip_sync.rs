//! Lip sync (sans-IO): how old a call's sound and pictures are when they are ready, and the delay
//! the audio jitter buffer must add so that sound waits for a picture that arrives late (an encoder
//! that holds frames back).
//!
//! An *age* is wall now − the sender's capture time, in µs ([`super::capture_age_us`]). Sound and
//! picture are aged against the same sender clock, so the offset between the two machines' clocks
//! cancels when they are compared; but capture times come off the wire, so an age can be anything.
//!
//! Drive it with the ages as they happen ([`LipSync::handle_audio_played`] on every playout tick
//! that played a frame from the network, [`LipSync::handle_video_decoded`] when a picture is
//! decoded) and ask [`LipSync::sync_delay`] about once a second; give its answer to the jitter
//! buffer. It reads no clock: `wall_us` is always handed in.

use std::time::Duration;

use super::jitter::MAX_SYNC_DELAY;

/// How far the picture must be behind the sound before lip sync delays the sound at all; once it
/// has, it follows the picture both ways until the picture is no longer behind.
pub const SYNC_THRESHOLD: Duration = Duration::from_millis(20);
/// A picture decoded longer ago than this says nothing about the video now (it stopped).
pub const VIDEO_AGE_STALE: Duration = Duration::from_secs(3);

/// The lip-sync state of one call's receiving side.
#[derive(Debug, Clone, Default)]
pub struct LipSync {
    /// The age of the audio playing now, once audio from the network has played.
    audio_age_us: Option<i64>,
    /// The age of the last decoded picture, and the wall time (µs) it was decoded at.
    video: Option<(u64, i64)>,
    /// The delay last asked of the jitter buffer is not zero.
    engaged: bool,
}

impl LipSync {
    /// No audio played, no picture decoded, no delay asked.
    pub fn new() -> Self {
        LipSync::default()
    }

    /// The audio playing now was captured `age_us` ago (the receiver's playout age).
    pub fn handle_audio_played(&mut self, age_us: i64) {
        self.audio_age_us = Some(age_us);
    }

    /// The age of the audio playing now, if audio plays: pictures wait until they are this old.
    pub fn audio_age_us(&self) -> Option<i64> {
        self.audio_age_us
    }

    /// A picture was decoded at `wall_us` (µs since the Unix epoch) when it was `age_us` old.
    pub fn handle_video_decoded(&mut self, wall_us: u64, age_us: i64) {
        self.video = Some((wall_us, age_us));
    }

    /// How old decoded pictures are at `wall_us`, if one was decoded within [`VIDEO_AGE_STALE`].
    pub fn video_age_us(&self, wall_us: u64) -> Option<i64> {
        let (at, age) = self.video?;
        (wall_us.saturating_sub(at) <= VIDEO_AGE_STALE.as_micros() as u64).then_some(age)
    }

    /// The delay the jitter buffer should hold audio at `wall_us`, given its `target` delay now
    /// (jitter and the previous sync delay together). Zero when there is no audio or no recent
    /// picture to keep in step with. Call it about once a second, and give every answer to the
    /// jitter buffer: whether it holds a delay now decides whether a small lag is followed.
    pub fn sync_delay(&mut self, wall_us: u64, target: Duration) -> Duration {
        let delay = match (self.video_age_us(wall_us), self.audio_age_us) {
            (Some(video), Some(audio)) => delay_for(video, audio, target, self.engaged),
            _ => Duration::ZERO,
        };
        self.engaged = !delay.is_zero();
        delay
    }
}

/// The delay lip sync asks of the jitter buffer, from how old pictures and sound are when they are
/// ready (`video_age_us`, `audio_age_us`: any value), the buffer's `target` now, and whether a sync
/// delay is `engaged`. Only act when the picture is clearly behind ([`SYNC_THRESHOLD`]), then
/// follow it both ways; a picture further behind than the most audio may wait
/// ([`MAX_SYNC_DELAY`]) is not worth delaying speech for at all.
fn delay_for(video_age_us: i64, audio_age_us: i64, target: Duration, engaged: bool) -> Duration {
    let behind = video_age_us.saturating_sub(audio_age_us);
    let target = i64::try_from(target.as_micros()).unwrap_or(i64::MAX);
    let want = target.saturating_add(behind);
    let threshold = SYNC_THRESHOLD.as_micros() as i64;
    let want = if (behind > threshold || engaged) && want <= MAX_SYNC_DELAY.as_micros() as i64 { want } else { 0 };
    Duration::from_micros(want.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1000;
    const TARGET: Duration = Duration::from_millis(40);
    const WALL: u64 = 1_000_000_000;

    #[test]
    fn lip_sync_follows_a_late_picture_and_ignores_absurd_ages() {
        let target = TARGET;
        assert_eq!(delay_for(100_000, 20_000, target, false), Duration::from_millis(120));
        assert_eq!(delay_for(30_000, 20_000, target, false), Duration::ZERO, "10 ms behind: in step");
        assert_eq!(delay_for(30_000, 20_000, target, true), Duration::from_millis(50), "followed once active");
        assert_eq!(delay_for(900_000, 0, target, false), Duration::ZERO, "too far behind to wait for");
        // Ages from the peer's capture times can be anything.
        for (video, audio) in [(i64::MAX, i64::MIN + 1), (-i64::MAX, i64::MAX), (i64::MAX, 0), (0, i64::MAX)] {
            for active in [false, true] {
                assert!(delay_for(video, audio, target, active) <= MAX_SYNC_DELAY, "{video} {audio}");
            }
        }
        assert_eq!(delay_for(0, 0, Duration::MAX, true), Duration::ZERO);
    }

    #[test]
    fn a_picture_exactly_twenty_ms_behind_is_in_step_and_a_microsecond_more_is_not() {
        assert_eq!(delay_for(120 * MS, 100 * MS, TARGET, false), Duration::ZERO);
        assert_eq!(delay_for(120 * MS + 1, 100 * MS, TARGET, false), Duration::from_micros(60_001));
    }

    #[test]
    fn sound_waits_up_to_the_most_lip_sync_may_add_and_not_a_microsecond_more() {
        let max = MAX_SYNC_DELAY.as_micros() as i64;
        let behind = max - TARGET.as_micros() as i64;
        assert_eq!(delay_for(behind, 0, TARGET, false), MAX_SYNC_DELAY);
        assert_eq!(delay_for(behind + 1, 0, TARGET, false), Duration::ZERO);
        assert_eq!(delay_for(behind + 1, 0, TARGET, true), Duration::ZERO, "also when engaged");
    }

    #[test]
    fn nothing_is_delayed_until_both_sound_and_a_picture_are_known() {
        let mut sync = LipSync::new();
        assert_eq!(sync.audio_age_us(), None);
        assert_eq!(sync.video_age_us(WALL), None);
        assert_eq!(sync.sync_delay(WALL, TARGET), Duration::ZERO);
        sync.handle_video_decoded(WALL, 200 * MS);
        assert_eq!(sync.sync_delay(WALL, TARGET), Duration::ZERO, "no sound plays");
        sync.handle_audio_played(-5);
        assert_eq!(sync.audio_age_us(), Some(-5), "ages are signed: the clocks differ");
        let mut sync = LipSync::new();
        sync.handle_audio_played(100 * MS);
        assert_eq!(sync.sync_delay(WALL, TARGET), Duration::ZERO, "no picture decoded");
    }

    #[test]
    fn once_engaged_a_small_lag_is_followed_and_a_picture_in_step_releases_the_sound() {
        let mut sync = LipSync::new();
        sync.handle_audio_played(100 * MS);
        sync.handle_video_decoded(WALL, 110 * MS);
        assert_eq!(sync.sync_delay(WALL, TARGET), Duration::ZERO, "10 ms behind: in step");
        sync.handle_video_decoded(WALL, 200 * MS);
        assert_eq!(sync.sync_delay(WALL, TARGET), Duration::from_millis(140));
        // The buffer now holds 140 ms; the picture catches up to 10 ms behind: follow it down.
        sync.handle_audio_played(190 * MS);
        assert_eq!(sync.sync_delay(WALL, Duration::from_millis(140)), Duration::from_millis(150));
        sync.handle_audio_played(200 * MS);
        sync.handle_video_decoded(WALL, 150 * MS);
        assert_eq!(sync.sync_delay(WALL, Duration::from_millis(150)), Duration::from_millis(100), "ahead: less");
        sync.handle_video_decoded(WALL, 0);
        assert_eq!(sync.sync_delay(WALL, Duration::from_millis(100)), Duration::ZERO, "far ahead: released");
        sync.handle_video_decoded(WALL, 210 * MS);
        assert_eq!(sync.sync_delay(WALL, TARGET), Duration::ZERO, "released: 10 ms behind is in step again");
    }

    #[test]
    fn a_picture_decoded_more_than_three_seconds_ago_says_video_stopped() {
        let mut sync = LipSync::new();
        sync.handle_audio_played(0);
        sync.handle_video_decoded(WALL, 250 * MS);
        let stale = VIDEO_AGE_STALE.as_micros() as u64;
        assert_eq!(sync.video_age_us(WALL + stale), Some(250 * MS));
        assert_eq!(sync.sync_delay(WALL + stale, TARGET), Duration::from_millis(290));
        assert_eq!(sync.video_age_us(WALL + stale + 1), None);
        assert_eq!(sync.sync_delay(WALL + stale + 1, TARGET), Duration::ZERO, "video stopped: sound goes on");
        assert_eq!(sync.video_age_us(WALL - 1), Some(250 * MS), "a clock step back is not staleness");
    }
}
