//! The media part of `hail status`: what a call's audio and video did, as the media task last
//! wrote it down.

use serde::{Deserialize, Serialize};

use super::audio::{ReceiveStats, SendStats};
use super::audio_processing::{AudioProcessingMode, EchoStats};
use super::video::receiver::VideoReceiveStats;
use super::video::sender::VideoSendStats;

/// Bytes of video records a call holds at most (records being read on all its streams, and
/// records waiting for the media task); a stream that would pass it is stopped.
pub const MAX_BUFFERED: usize = 4 * super::video::wire::MAX_RECORD;

/// The audio part of `hail status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioStats {
    /// The source in use.
    pub input: String,
    /// The sink in use.
    pub output: String,
    /// Why the source could not be opened (nothing is sent then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_error: Option<String>,
    /// Why the sink could not be opened (audio is received and discarded then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_error: Option<String>,
    /// Our microphone is muted.
    pub muted: bool,
    /// Echo cancellation, noise suppression and gain control: `auto`, `on` or `off`, as asked.
    #[serde(default)]
    pub processing_mode: AudioProcessingMode,
    /// Whether this call's microphone is processed (`auto`: when it is a sound device).
    #[serde(default)]
    pub processing: bool,
    /// The echo canceller's own statistics, while processing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo: Option<EchoStats>,
    /// Sending.
    pub send: SendStats,
    /// Receiving.
    pub receive: ReceiveStats,
    /// Bitrate sent over the last second, bps.
    pub send_bitrate: u64,
    /// Bitrate received over the last second, bps.
    pub receive_bitrate: u64,
    /// The QUIC path's round-trip time, ms.
    pub rtt_ms: f64,
    /// When the source gave its first 20 ms, µs since the Unix epoch (the capture time it was
    /// stamped with): a file source's sample n was captured n / 48 000 s after this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_started_us: Option<u64>,
    /// When the sink was given its first 20 ms, µs since the Unix epoch: a file sink's sample n
    /// was written n / 48 000 s after this. With the peer's `input_started_us`, a marker found in
    /// both files gives the mouth-to-ear delay end to end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_started_us: Option<u64>,
}

/// The video part of `hail status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VideoStats {
    /// We send video (the user's switch).
    pub sending: bool,
    /// The peer says it sends video; false shows as "video paused".
    pub remote_sending: bool,
    /// The source.
    pub input: String,
    /// The sink.
    pub output: String,
    /// Why the source failed (nothing is sent then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_error: Option<String>,
    /// Why the sink failed (pictures are dropped then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_error: Option<String>,
    /// Video is on but the path has no room for it now (below the controller's minimum).
    pub paused_for_bandwidth: bool,
    /// The peer's video is on but the peer paused it for bandwidth (it said so,
    /// `bandwidth_pause`): no pictures are expected, none asked for.
    #[serde(default)]
    pub remote_paused_for_bandwidth: bool,
    /// The controller's estimate of the path, bps.
    pub estimate_bps: u32,
    /// Sending.
    pub send: VideoSendStats,
    /// Receiving.
    pub receive: VideoReceiveStats,
    /// Frames sent over the last second.
    pub send_fps: u32,
    /// Frames shown over the last second.
    pub receive_fps: u32,
    /// The last picture's glass-to-glass delay as the sink wrote it: from its capture at the peer
    /// (the peer's clock) to the moment our video sink had written it, ms. `receive`'s
    /// `glass_to_glass_ms` is taken when the picture is chosen to be shown, one queue earlier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_glass_to_glass_ms: Option<f64>,
    /// Bits sent over the last second.
    pub send_bitrate: u64,
    /// Bits received over the last second.
    pub receive_bitrate: u64,
    /// Records the path could not take in time (a new GOP was started instead).
    pub send_dropped: u64,
    /// Bytes of the peer's video records held now (being read, or waiting for the decoder), at
    /// most [`MAX_BUFFERED`].
    #[serde(default)]
    pub receive_buffered_bytes: u64,
}

