//! Where audio comes from and goes to: sound devices (cpal) and their file and synthetic twins, so a
//! whole call runs headless.
//!
//! | source spec | meaning |
//! |---|---|
//! | `default` | the default microphone |
//! | `device:NAME` | the microphone whose name contains NAME |
//! | `tone:FREQ` | a sine tone at FREQ Hz |
//! | `silence` | silence |
//! | a path ending in `.wav` | the file (any common rate and channel count; resampled to 48 kHz mono), then silence |
//!
//! | sink spec | meaning |
//! |---|---|
//! | `default`, `device:NAME` | a speaker |
//! | `null` | discard |
//! | a path ending in `.wav` | write 48 kHz mono 16-bit WAV |

mod device;
mod wav;

use std::f64::consts::TAU;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use device::{DeviceList, list_devices};
pub use wav::{WavSink, WavSource, read_wav_mono_48k};

use super::codec::opus::{FRAME_SAMPLES, Pcm, SAMPLE_RATE};

/// A source of 20 ms frames (pulled every 20 ms by the call's clock).
pub trait AudioSource: Send {
    /// The next frame.
    fn next_frame(&mut self) -> Pcm;
}

/// A sink of 20 ms frames.
pub trait AudioSink: Send {
    /// Takes a frame.
    fn write_frame(&mut self, pcm: &Pcm);
    /// Flushes (a WAV file's header is completed here).
    fn finish(&mut self) {}
    /// What this sink actually plays, as it plays it (a speaker: once, to one reader). `None`
    /// for sinks that play nothing aloud, or play exactly what they are given.
    fn played_audio(&mut self) -> Option<PlayedAudio> {
        None
    }
}

/// What a speaker played, 48 kHz mono, in the order played (silence where it ran dry), handed
/// over by its audio callback through a lock-free ring: the echo canceller's far end.
pub struct PlayedAudio {
    ring: rtrb::Consumer<i16>,
}

impl std::fmt::Debug for PlayedAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PlayedAudio({} waiting)", self.ring.slots())
    }
}

impl PlayedAudio {
    pub(crate) fn new(ring: rtrb::Consumer<i16>) -> Self {
        PlayedAudio { ring }
    }

    /// Appends everything played since the last call to `out`.
    pub fn drain_into(&mut self, out: &mut Vec<i16>) {
        let n = self.ring.slots();
        if let Ok(chunk) = self.ring.read_chunk(n) {
            out.extend(chunk);
        }
    }
}

/// Why a source or sink could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioIoError {
    /// The spec does not parse.
    #[error("invalid audio {what} {spec:?}: {why}")]
    Spec {
        /// `input` or `output`.
        what: &'static str,
        /// The text.
        spec: String,
        /// What is wrong.
        why: String,
    },
    /// The file cannot be read or written.
    #[error("audio file {path}: {why}")]
    File {
        /// The file.
        path: PathBuf,
        /// What failed.
        why: String,
    },
    /// The device is missing, busy, or refuses the format.
    #[error("audio device {name:?}: {why}")]
    Device {
        /// Which device.
        name: String,
        /// What failed.
        why: String,
    },
}

/// Where audio comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum SourceSpec {
    /// The default microphone.
    DefaultDevice,
    /// A microphone by (part of its) name.
    Device(String),
    /// A sine tone.
    Tone(f64),
    /// Silence.
    Silence,
    /// A WAV file.
    File(PathBuf),
}

/// Where audio goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum SinkSpec {
    /// The default speaker.
    DefaultDevice,
    /// A speaker by (part of its) name.
    Device(String),
    /// Nowhere.
    Null,
    /// A WAV file.
    File(PathBuf),
}

impl std::str::FromStr for SourceSpec {
    type Err = AudioIoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| AudioIoError::Spec { what: "input", spec: s.to_owned(), why: why.to_owned() };
        Ok(match s {
            "default" => SourceSpec::DefaultDevice,
            "silence" => SourceSpec::Silence,
            _ if s.starts_with("tone:") => {
                let f: f64 = s[5..].parse().map_err(|_| bad("the frequency is not a number"))?;
                if !(1.0..=20_000.0).contains(&f) {
                    return Err(bad("the frequency must be 1 to 20000 Hz"));
                }
                SourceSpec::Tone(f)
            }
            _ if s.starts_with("device:") && s.len() > 7 => SourceSpec::Device(s[7..].to_owned()),
            _ if s.to_ascii_lowercase().ends_with(".wav") => SourceSpec::File(PathBuf::from(s)),
            _ => return Err(bad("expected default, device:NAME, tone:FREQ, silence or a .wav file")),
        })
    }
}

impl std::str::FromStr for SinkSpec {
    type Err = AudioIoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "default" => SinkSpec::DefaultDevice,
            "null" => SinkSpec::Null,
            _ if s.starts_with("device:") && s.len() > 7 => SinkSpec::Device(s[7..].to_owned()),
            _ if s.to_ascii_lowercase().ends_with(".wav") => SinkSpec::File(PathBuf::from(s)),
            _ => {
                return Err(AudioIoError::Spec {
                    what: "output",
                    spec: s.to_owned(),
                    why: "expected default, device:NAME, null or a .wav file".into(),
                });
            }
        })
    }
}

impl std::fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceSpec::DefaultDevice => f.write_str("default"),
            SourceSpec::Device(n) => write!(f, "device:{n}"),
            SourceSpec::Tone(hz) => write!(f, "tone:{hz}"),
            SourceSpec::Silence => f.write_str("silence"),
            SourceSpec::File(p) => write!(f, "{}", p.display()),
        }
    }
}

impl std::fmt::Display for SinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkSpec::DefaultDevice => f.write_str("default"),
            SinkSpec::Device(n) => write!(f, "device:{n}"),
            SinkSpec::Null => f.write_str("null"),
            SinkSpec::File(p) => write!(f, "{}", p.display()),
        }
    }
}

impl From<SourceSpec> for String {
    fn from(s: SourceSpec) -> String {
        s.to_string()
    }
}
impl TryFrom<String> for SourceSpec {
    type Error = AudioIoError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}
impl From<SinkSpec> for String {
    fn from(s: SinkSpec) -> String {
        s.to_string()
    }
}
impl TryFrom<String> for SinkSpec {
    type Error = AudioIoError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A sine tone.
#[derive(Debug)]
pub struct ToneSource {
    freq: f64,
    n: u64,
}

impl ToneSource {
    /// A tone at `freq` Hz, at a quarter of full scale.
    pub fn new(freq: f64) -> Self {
        ToneSource { freq, n: 0 }
    }
}

impl AudioSource for ToneSource {
    fn next_frame(&mut self) -> Pcm {
        let mut pcm = [0i16; FRAME_SAMPLES];
        for s in pcm.iter_mut() {
            let t = self.n as f64 / SAMPLE_RATE as f64;
            *s = ((t * self.freq * TAU).sin() * 8192.0) as i16;
            self.n += 1;
        }
        pcm
    }
}

/// Silence.
#[derive(Debug, Default)]
pub struct SilenceSource;

impl AudioSource for SilenceSource {
    fn next_frame(&mut self) -> Pcm {
        [0; FRAME_SAMPLES]
    }
}

/// Discards everything.
#[derive(Debug, Default)]
pub struct NullSink;

impl AudioSink for NullSink {
    fn write_frame(&mut self, _pcm: &Pcm) {}
}

/// Opens a source.
pub fn open_source(spec: &SourceSpec) -> Result<Box<dyn AudioSource>, AudioIoError> {
    Ok(match spec {
        SourceSpec::Tone(f) => Box::new(ToneSource::new(*f)),
        SourceSpec::Silence => Box::new(SilenceSource),
        SourceSpec::File(p) => Box::new(WavSource::open(p)?),
        SourceSpec::DefaultDevice => Box::new(device::DeviceSource::open(None)?),
        SourceSpec::Device(name) => Box::new(device::DeviceSource::open(Some(name))?),
    })
}

/// Opens a sink.
pub fn open_sink(spec: &SinkSpec) -> Result<Box<dyn AudioSink>, AudioIoError> {
    Ok(match spec {
        SinkSpec::Null => Box::new(NullSink),
        SinkSpec::File(p) => Box::new(WavSink::create(p)?),
        SinkSpec::DefaultDevice => Box::new(device::DeviceSink::open(None)?),
        SinkSpec::Device(name) => Box::new(device::DeviceSink::open(Some(name))?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        for s in ["default", "silence", "tone:440", "device:USB Mic", "/tmp/x.wav"] {
            assert_eq!(s.parse::<SourceSpec>().unwrap().to_string(), s);
        }
        for s in ["default", "null", "device:Speakers", "out.WAV"] {
            assert_eq!(s.parse::<SinkSpec>().unwrap().to_string(), s);
        }
        for bad in ["tone:abc", "tone:0", "mic", "device:", ""] {
            assert!(bad.parse::<SourceSpec>().is_err(), "{bad}");
        }
        assert!("speaker".parse::<SinkSpec>().is_err());
    }
}
