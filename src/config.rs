//! The node's configuration file, `HOME/config.toml`. Every key is optional; flags given to
//! `hail daemon` override the file. Unknown keys are an error, so a typo is caught rather than ignored.
//!
//! ```toml
//! [network]
//! listen = ["/ip4/0.0.0.0/tcp/0", "/ip6/::/tcp/0"]
//! bootstrap = ["/ip4/198.51.100.7/tcp/4001/p2p/12D3KooW…"]   # or ["ipfs"]
//! mdns = true
//! dht_protocol = "/hail/kad/1.0.0"
//! dht_mode = "auto"                                            # auto | server | client
//! ```

use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::discovery::{ConfigError, DhtMode, NetworkConfig};
use crate::call::Timeouts;
use crate::call::rate_limit::InviteLimits;
use crate::media::config::{AudioConfig, VideoConfig};
use crate::node::{CallSettings, UnknownCallers};

/// What `config.toml` may hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The `[network]` section.
    #[serde(default)]
    pub network: NetworkSection,
    /// The `[calls]` section.
    #[serde(default)]
    pub calls: CallsSection,
    /// The `[audio]` section.
    #[serde(default)]
    pub audio: AudioSection,
    /// The `[video]` section.
    #[serde(default)]
    pub video: VideoSection,
}

/// The `[video]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoSection {
    /// Where calls' video comes from (`pattern`, `camera`, `camera:NAME`, a `.y4m`).
    pub input: Option<String>,
    /// Where received video goes (`null`, a `.y4m`).
    pub output: Option<String>,
    /// `libaom` (the default) or `rav1e`.
    pub encoder: Option<String>,
    /// The best picture to send, `WIDTHxHEIGHT` (default 640x360; the CPU adaptation may go lower).
    pub max_size: Option<String>,
}

impl VideoSection {
    /// Overrides `self` with whatever `flags` sets.
    pub fn overridden_by(self, flags: VideoSection) -> Self {
        VideoSection {
            input: flags.input.or(self.input),
            output: flags.output.or(self.output),
            encoder: flags.encoder.or(self.encoder),
            max_size: flags.max_size.or(self.max_size),
        }
    }

    /// Checks the values: `base` with what this section sets.
    pub fn apply(&self, base: &VideoConfig) -> Result<VideoConfig, SettingError> {
        let (max_width, max_height) = match &self.max_size {
            Some(size) => {
                let bad = || SettingError::MaxSize(size.clone());
                let (w, h) = size.split_once('x').ok_or_else(bad)?;
                let (w, h): (usize, usize) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
                if !(2..=3840).contains(&w) || !(2..=2160).contains(&h) {
                    return Err(bad());
                }
                (w, h)
            }
            None => (base.max_width, base.max_height),
        };
        Ok(VideoConfig {
            input: self.input.as_deref().map(str::parse).transpose().map_err(SettingError::Video)?.unwrap_or_else(|| base.input.clone()),
            output: self.output.as_deref().map(str::parse).transpose().map_err(SettingError::Video)?.unwrap_or_else(|| base.output.clone()),
            encoder: self.encoder.as_deref().map(str::parse).transpose()?.unwrap_or(base.encoder),
            max_width,
            max_height,
            ..base.clone()
        })
    }
}

/// Why a setting in the config file or a flag was refused (the message names the key and what it takes).
#[derive(Debug, thiserror::Error)]
pub enum SettingError {
    /// A video input or output spec.
    #[error(transparent)]
    Video(crate::media::video::source::VideoSpecError),
    /// An audio input or output spec.
    #[error(transparent)]
    Audio(#[from] crate::media::io::AudioIoError),
    /// An audio processing mode.
    #[error(transparent)]
    AudioProcessing(#[from] crate::media::audio_processing::AudioProcessingModeError),
    /// A video encoder name.
    #[error(transparent)]
    Encoder(#[from] crate::media::codec::av1::EncoderKindError),
    /// A video size that is not WIDTHxHEIGHT within 2x2 to 3840x2160.
    #[error("invalid video max_size {0:?}: expected WIDTHxHEIGHT, e.g. 640x360")]
    MaxSize(String),
    /// A number outside its range.
    #[error("{key} {value} is out of range ({min} to {max})")]
    OutOfRange {
        /// The key.
        key: &'static str,
        /// What was given.
        value: u64,
        /// The least allowed.
        min: u64,
        /// The most allowed.
        max: u64,
    },
    /// Not an `ip:port` address.
    #[error("{key} {value:?} is not an ip:port address")]
    NotAnAddress {
        /// The key.
        key: &'static str,
        /// What was given.
        value: String,
    },
}

/// The `[audio]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioSection {
    /// Where calls' audio comes from (`default`, `device:NAME`, `tone:FREQ`, `silence`, a `.wav`).
    pub input: Option<String>,
    /// Where calls' audio goes (`default`, `device:NAME`, `null`, a `.wav`).
    pub output: Option<String>,
    /// Opus bitrate, 16 to 64 (default 32).
    pub bitrate_kbps: Option<u32>,
    /// Echo cancellation, noise suppression and gain control: `auto` (on for a sound device's
    /// microphone; the default), `on`, `off`.
    pub processing: Option<String>,
}

impl AudioSection {
    /// Overrides `self` with whatever `flags` sets.
    pub fn overridden_by(self, flags: AudioSection) -> Self {
        AudioSection {
            input: flags.input.or(self.input),
            output: flags.output.or(self.output),
            bitrate_kbps: flags.bitrate_kbps.or(self.bitrate_kbps),
            processing: flags.processing.or(self.processing),
        }
    }

    /// Checks the values: `base` with what this section sets.
    pub fn apply(&self, base: &AudioConfig) -> Result<AudioConfig, SettingError> {
        let bitrate = match self.bitrate_kbps {
            Some(k) if !(16..=64).contains(&k) => {
                return Err(SettingError::OutOfRange { key: "bitrate_kbps", value: k.into(), min: 16, max: 64 });
            }
            Some(k) => k as i32 * 1000,
            None => base.bitrate,
        };
        Ok(AudioConfig {
            input: self.input.as_deref().map(str::parse).transpose()?.unwrap_or_else(|| base.input.clone()),
            output: self.output.as_deref().map(str::parse).transpose()?.unwrap_or_else(|| base.output.clone()),
            bitrate,
            processing: self
                .processing
                .as_deref()
                .map(str::parse)
                .transpose()?
                .unwrap_or(base.processing),
        })
    }
}

/// The `[calls]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsSection {
    /// Answer contacts' calls at once (never unknown callers). Default off.
    pub auto_answer: Option<bool>,
    /// `ring` (default) or `refuse` calls from people who are not contacts.
    pub unknown_callers: Option<UnknownCallers>,
    /// How long a call rings before it counts as unanswered, in seconds (default 45).
    pub ring_timeout_secs: Option<u64>,
    /// The UDP address of the call endpoint (default `0.0.0.0:0`: all interfaces, a random port).
    pub media_listen: Option<String>,
    /// Invites accepted from one peer per 10 s (default 3).
    pub max_invites_per_peer: Option<usize>,
    /// Invites accepted in total per minute (default 20).
    pub max_invites_total: Option<usize>,
    /// Call addresses to advertise instead of the endpoint's own (`ip:port`; port forwarding).
    pub media_advertise: Option<Vec<String>>,
    /// Group calls this node sequences: `auto` (default: chosen from the members' uplinks),
    /// `mesh`, or `forward` (the best uplink forwards the others' frames).
    pub group_topology: Option<crate::group::topology::TopologyMode>,
    /// This node's uplink in kbit/s, told to group members for the topology (default: measured).
    pub group_uplink_kbps: Option<u32>,
}

impl CallsSection {
    /// Overrides `self` with whatever `flags` sets.
    pub fn overridden_by(self, flags: CallsSection) -> Self {
        CallsSection {
            auto_answer: flags.auto_answer.or(self.auto_answer),
            unknown_callers: flags.unknown_callers.or(self.unknown_callers),
            ring_timeout_secs: flags.ring_timeout_secs.or(self.ring_timeout_secs),
            media_listen: flags.media_listen.or(self.media_listen),
            max_invites_per_peer: flags.max_invites_per_peer.or(self.max_invites_per_peer),
            max_invites_total: flags.max_invites_total.or(self.max_invites_total),
            media_advertise: flags.media_advertise.or(self.media_advertise),
            group_topology: flags.group_topology.or(self.group_topology),
            group_uplink_kbps: flags.group_uplink_kbps.or(self.group_uplink_kbps),
        }
    }

    /// Checks the values and fills in the defaults; calls' audio and video are `audio` and `video`
    /// (from [`AudioSection::apply`] and [`VideoSection::apply`]).
    pub fn apply(&self, audio: AudioConfig, video: VideoConfig) -> Result<CallSettings, SettingError> {
        let defaults = CallSettings::default();
        let ring = match self.ring_timeout_secs {
            Some(secs) if !(1..=600).contains(&secs) => {
                return Err(SettingError::OutOfRange { key: "ring_timeout_secs", value: secs, min: 1, max: 600 });
            }
            Some(secs) => std::time::Duration::from_secs(secs),
            None => defaults.timeouts.ring,
        };
        let advertise = match &self.media_advertise {
            Some(list) => {
                let addrs = list
                    .iter()
                    .map(|a| a.parse().map_err(|_| SettingError::NotAnAddress { key: "media_advertise", value: a.clone() }))
                    .collect::<Result<Vec<std::net::SocketAddr>, SettingError>>()?;
                (!addrs.is_empty()).then_some(addrs)
            }
            None => defaults.advertise.clone(),
        };
        let media_listen = match &self.media_listen {
            Some(addr) => {
                addr.parse().map_err(|_| SettingError::NotAnAddress { key: "media_listen", value: addr.clone() })?
            }
            None => defaults.media_listen,
        };
        Ok(CallSettings {
            auto_answer: self.auto_answer.unwrap_or(false),
            unknown_callers: self.unknown_callers.unwrap_or_default(),
            timeouts: Timeouts { ring, ..defaults.timeouts },
            invite_limits: InviteLimits {
                per_peer: self.max_invites_per_peer.map_or(defaults.invite_limits.per_peer, |n| n.max(1)),
                overall: self.max_invites_total.map_or(defaults.invite_limits.overall, |n| n.max(1)),
                ..defaults.invite_limits
            },
            advertise,
            media_listen,
            audio,
            video,
            group_topology: self.group_topology.unwrap_or_default(),
            group_uplink_kbps: self.group_uplink_kbps,
        })
    }
}

/// The `[network]` section: raw text, checked by [`NetworkSection::apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// Addresses to listen on.
    pub listen: Option<Vec<String>>,
    /// Bootstrap peers (multiaddrs ending in `/p2p/<PeerId>`) or presets (`ipfs`).
    pub bootstrap: Option<Vec<String>>,
    /// mDNS on the LAN.
    pub mdns: Option<bool>,
    /// The Kademlia protocol id.
    pub dht_protocol: Option<String>,
    /// Kademlia server or client mode.
    pub dht_mode: Option<DhtMode>,
    /// Relay for nodes behind NAT: `auto` (when found publicly reachable), `on`, `off`.
    pub relay: Option<crate::discovery::config::RelayMode>,
    /// Multiaddrs announced as where peers reach the node, instead of its listen addresses.
    pub external_addresses: Option<Vec<String>>,
    /// Limits on libp2p connections (`[network.limits]`; keys left out keep their defaults).
    #[serde(default)]
    pub limits: Option<crate::discovery::config::ConnectionLimits>,
}

impl NetworkSection {
    /// Overrides `self` with whatever `flags` sets.
    pub fn overridden_by(mut self, flags: NetworkSection) -> Self {
        if flags.listen.is_some() {
            self.listen = flags.listen;
        }
        if flags.bootstrap.is_some() {
            self.bootstrap = flags.bootstrap;
        }
        self.mdns = flags.mdns.or(self.mdns);
        self.dht_protocol = flags.dht_protocol.or(self.dht_protocol);
        self.dht_mode = flags.dht_mode.or(self.dht_mode);
        self.relay = flags.relay.or(self.relay);
        if flags.external_addresses.is_some() {
            self.external_addresses = flags.external_addresses;
        }
        self.limits = flags.limits.or(self.limits);
        self
    }

    /// Checks every value and fills in the defaults.
    pub fn apply(&self) -> Result<NetworkConfig, ConfigError> {
        let config = NetworkConfig::from_text(
            self.listen.as_deref(),
            self.bootstrap.as_deref(),
            self.mdns,
            self.dht_protocol.as_deref(),
            self.dht_mode,
        )?;
        let external_addresses = crate::discovery::config::parse_external_addresses(
            self.external_addresses.as_deref().unwrap_or(&[]),
        )?;
        Ok(NetworkConfig {
            relay: self.relay.unwrap_or(config.relay),
            external_addresses,
            limits: self.limits.unwrap_or(config.limits),
            ..config
        })
    }
}

/// Why the configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is not valid TOML, or has unknown keys or wrong types.
    #[error("{path} is not a valid hail configuration: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the parser said (with line and column).
        message: String,
    },
}

impl ConfigFile {
    /// Reads the file; a missing file is the empty configuration.
    pub fn load(path: &Path) -> Result<Self, ConfigFileError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
            Err(source) => return Err(ConfigFileError::Io { path: path.to_owned(), source }),
        };
        toml::from_str(&text).map_err(|e| {
            // One line: "line L, column C: what", for a one-line error on stderr.
            let at = e.span().map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!("line {line}, column {column}: ")
            });
            let what = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
            ConfigFileError::Syntax { path: path.to_owned(), message: format!("{}{what}", at.unwrap_or_default()) }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_wrong_types_are_refused_with_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[network]\nmdsn = false\n").unwrap();
        let e = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("mdsn"), "{e}");
        std::fs::write(&path, "[network]\nmdns = \"yes\"\n").unwrap();
        assert!(ConfigFile::load(&path).is_err());
        std::fs::write(&path, "[network]\nmdns = false\ndht_mode = \"server\"\n").unwrap();
        let c = ConfigFile::load(&path).unwrap();
        assert_eq!(c.network.mdns, Some(false));
        assert_eq!(c.network.dht_mode, Some(DhtMode::Server));
        assert_eq!(ConfigFile::load(&dir.path().join("absent.toml")).unwrap(), ConfigFile::default());
    }

    #[test]
    fn flags_override_the_file() {
        let file =
            NetworkSection { mdns: Some(true), listen: Some(vec!["/ip4/0.0.0.0/tcp/1".into()]), ..Default::default() };
        // (The limits table is read partially too: see `connection_limits_come_from_the_config_file`.)
        let flags = NetworkSection { mdns: Some(false), ..Default::default() };
        let merged = file.overridden_by(flags);
        assert_eq!(merged.mdns, Some(false));
        assert_eq!(merged.listen.unwrap(), ["/ip4/0.0.0.0/tcp/1"]);
    }

    #[test]
    fn connection_limits_come_from_the_config_file() {
        let text = "[network]\n[network.limits]\nmax_incoming_per_ip = 2\nmax_memory_bytes = 1000000\n";
        let file: ConfigFile = toml::from_str(text).unwrap();
        let limits = file.network.apply().unwrap().limits;
        assert_eq!((limits.max_incoming_per_ip, limits.max_memory_bytes), (2, Some(1_000_000)));
        assert_eq!(limits.max_established, crate::discovery::config::ConnectionLimits::default().max_established);
        let bad: Result<ConfigFile, _> = toml::from_str("[network.limits]\nmax_conections = 3\n");
        assert!(bad.is_err(), "a misspelt limit is refused, not ignored");
        assert_eq!(NetworkSection::default().apply().unwrap().limits, Default::default());
    }

    #[test]
    fn audio_processing_comes_from_the_file_and_the_flag_wins() {
        use crate::media::audio_processing::AudioProcessingMode;
        let file: ConfigFile = toml::from_str("[audio]\nprocessing = \"off\"\n").unwrap();
        let base = AudioConfig::default();
        assert_eq!(base.processing, AudioProcessingMode::Auto);
        assert_eq!(file.audio.apply(&base).unwrap().processing, AudioProcessingMode::Off);
        let flags = AudioSection { processing: Some("on".into()), ..Default::default() };
        assert_eq!(file.audio.overridden_by(flags).apply(&base).unwrap().processing, AudioProcessingMode::On);
        let bad = AudioSection { processing: Some("loud".into()), ..Default::default() };
        assert!(matches!(bad.apply(&base), Err(SettingError::AudioProcessing(_))));
    }
}
