//! The call settings: what the config file and flags decide for every call, and what a
//! single call may override.

use super::*;

/// What callers who are not contacts get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnknownCallers {
    /// Their calls ring, marked unknown (the default).
    #[default]
    Ring,
    /// Their calls are refused without ringing.
    Refuse,
}

/// An unknown-callers policy that is neither `ring` nor `refuse`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid unknown-callers policy {0:?}: expected ring or refuse")]
pub struct UnknownCallersError(pub String);

impl FromStr for UnknownCallers {
    type Err = UnknownCallersError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ring" => Ok(UnknownCallers::Ring),
            "refuse" => Ok(UnknownCallers::Refuse),
            other => Err(UnknownCallersError(other.to_owned())),
        }
    }
}

/// How the phone behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSettings {
    /// Answer contacts' calls at once (intercom style; off by default; never for unknown callers).
    pub auto_answer: bool,
    /// What happens with callers who are not contacts.
    pub unknown_callers: UnknownCallers,
    /// The call timers.
    pub timeouts: Timeouts,
    /// Where the QUIC endpoint listens.
    pub media_listen: SocketAddr,
    /// Invite rate limits.
    pub invite_limits: crate::call::rate_limit::InviteLimits,
    /// Where calls' audio comes from and goes to, unless a call says otherwise.
    pub audio: AudioConfig,
    /// Where calls' video comes from and goes to, and the encoder.
    pub video: VideoConfig,
    /// Candidates to advertise instead of the endpoint's own addresses.
    pub advertise: Option<Vec<SocketAddr>>,
    /// How group calls we sequence choose their topology (mesh or a forwarding member).
    pub group_topology: crate::group::topology::TopologyMode,
    /// Our uplink as the user states it, kbit/s (otherwise measured on the group's legs).
    pub group_uplink_kbps: Option<u32>,
}

/// A call's own media choices, over the daemon's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaOverride {
    /// The audio source for this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<SourceSpec>,
    /// The audio sink for this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<SinkSpec>,
    /// The video source for this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_input: Option<VideoSourceSpec>,
    /// The video sink for this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_output: Option<VideoSinkSpec>,
    /// Echo cancellation, noise suppression and gain control for this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing: Option<AudioProcessingMode>,
}

impl MediaOverride {
    pub(super) fn apply(&self, base: &AudioConfig) -> AudioConfig {
        AudioConfig {
            input: self.input.clone().unwrap_or_else(|| base.input.clone()),
            output: self.output.clone().unwrap_or_else(|| base.output.clone()),
            bitrate: base.bitrate,
            processing: self.processing.unwrap_or(base.processing),
        }
    }

    pub(super) fn apply_video(&self, base: &VideoConfig) -> VideoConfig {
        VideoConfig {
            input: self.video_input.clone().unwrap_or_else(|| base.input.clone()),
            output: self.video_output.clone().unwrap_or_else(|| base.output.clone()),
            ..base.clone()
        }
    }
}

impl Default for CallSettings {
    fn default() -> Self {
        CallSettings {
            auto_answer: false,
            unknown_callers: UnknownCallers::Ring,
            timeouts: Timeouts::default(),
            media_listen: "0.0.0.0:0".parse().expect("a valid socket address"),
            invite_limits: Default::default(),
            audio: AudioConfig::default(),
            video: VideoConfig::default(),
            advertise: None,
            group_topology: Default::default(),
            group_uplink_kbps: None,
        }
    }
}
