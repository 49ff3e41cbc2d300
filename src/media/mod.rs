//! Media: the call's sans-IO [`session::MediaSession`] and its pieces (the jitter buffer, lip sync,
//! the packet format, the rate loop, burst measurement and redundancy, the senders' and receivers'
//! state), a group call's mixed audio and active speakers, the microphone's echo cancellation and noise suppression, the codecs, the sources and
//! sinks, and the thin IO layer that drives a session on a link ([`driver`]).

pub mod active_speaker;
pub mod audio;
pub mod audio_processing;
pub mod bitrate;
pub mod burst;
pub mod codec;
pub mod config;
pub mod driver;
pub mod group_audio;
pub mod group_call;
pub mod io;
pub mod jitter;
pub mod limiter;
pub mod loss_meter;
pub mod lip_sync;
pub mod packet;
pub mod rate;
pub mod redundancy;
pub mod session;
pub mod stats;
pub mod time_stretch;
pub mod video;
pub mod view;

/// Why a call's media could not start.
#[derive(Debug, thiserror::Error)]
pub enum MediaStartError {
    /// The Opus encoder or decoder refused its settings.
    #[error("audio codec: {0}")]
    Audio(#[from] codec::opus::CodecError),
    /// The AV1 decoder could not be made.
    #[error("video codec: {0}")]
    Video(#[from] codec::av1::VideoCodecError),
    /// The system would not give us a thread.
    #[error("cannot start the video {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
}

/// How long before `wall_us` the peer captured what it stamped `capture_us` (both µs since the
/// Unix epoch; the capture by the sender's clock): `wall − capture`, signed because the two clocks
/// differ. The capture time comes off the wire, so the difference saturates instead of
/// overflowing: it is bounded to `-i64::MAX..=i64::MAX` (`i64::MIN` stays free to mean "none").
pub fn capture_age_us(wall_us: u64, capture_us: u64) -> i64 {
    let age = i128::from(wall_us) - i128::from(capture_us);
    age.clamp(-i128::from(i64::MAX), i128::from(i64::MAX)) as i64
}

#[cfg(test)]
mod tests {
    #[test]
    fn capture_ages_saturate_at_the_ends() {
        use super::capture_age_us as age;
        assert_eq!(age(10, 4), 6);
        assert_eq!(age(4, 10), -6);
        assert_eq!(age(u64::MAX, 0), i64::MAX);
        assert_eq!(age(0, u64::MAX), -i64::MAX);
        assert_eq!(age(0, 1 << 63), -i64::MAX);
        assert_eq!(age(1 << 63, 0), i64::MAX);
        assert_eq!(age(u64::MAX, u64::MAX), 0);
    }
}
