//! What a call's media uses: where its audio and video come from and go to, and how they are
//! encoded (the daemon's settings and a call's overrides fill these in).

use serde::{Deserialize, Serialize};

use super::audio_processing::AudioProcessingMode;
use super::codec::av1::EncoderKind;
use super::codec::opus::DEFAULT_BITRATE;
use super::io::{SinkSpec, SourceSpec};
use super::video::cpu_adaptation::{LADDER, VideoFormat};
use super::video::sender::SenderConfig;
use super::video::source::{VideoSinkSpec, VideoSourceSpec};

/// Where a call's audio comes from and goes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioConfig {
    /// The source.
    pub input: SourceSpec,
    /// The sink.
    pub output: SinkSpec,
    /// The Opus bitrate, bps.
    pub bitrate: i32,
    /// Echo cancellation, noise suppression and gain control on the microphone.
    #[serde(default)]
    pub processing: AudioProcessingMode,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            input: SourceSpec::DefaultDevice,
            output: SinkSpec::DefaultDevice,
            bitrate: DEFAULT_BITRATE,
            processing: AudioProcessingMode::Auto,
        }
    }
}

/// Where a call's video comes from and goes to, and how it is encoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoConfig {
    /// The source.
    pub input: VideoSourceSpec,
    /// The sink.
    pub output: VideoSinkSpec,
    /// The encoder.
    pub encoder: EncoderKind,
    /// The best format to send.
    pub max_width: usize,
    /// The best format to send.
    pub max_height: usize,
    /// The best frame rate to send.
    pub max_fps: u32,
    /// Encoder threads.
    pub threads: usize,
}

impl Default for VideoConfig {
    fn default() -> Self {
        let top = LADDER[0];
        VideoConfig {
            input: VideoSourceSpec::Pattern,
            output: VideoSinkSpec::Null,
            encoder: EncoderKind::default(),
            max_width: top.width,
            max_height: top.height,
            max_fps: top.fps,
            // Encoder threads: the cores there are (tiles let two work on one frame), at most 4.
            threads: std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
        }
    }
}

impl VideoConfig {
    fn max_format(&self) -> VideoFormat {
        VideoFormat { width: self.max_width, height: self.max_height, fps: self.max_fps }
    }


    /// What the video sender is configured with.
    pub fn sender_config(&self) -> SenderConfig {
        SenderConfig { encoder: self.encoder, threads: self.threads.max(1), max_format: self.max_format() }
    }
}
