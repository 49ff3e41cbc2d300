//! Sound devices through cpal. A cpal stream is not `Send`, so each device gets a thread that owns
//! its stream; samples cross through lock-free single-producer single-consumer rings (`rtrb`), so
//! the audio callbacks never wait for a lock. Devices at other rates are resampled to and from
//! 48 kHz mono (nearest-sample: adequate for a voice path's last hop). A speaker also hands back
//! what it played, in order ([`PlayedAudio`]): the echo canceller's far end.

use std::sync::mpsc;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use serde::{Deserialize, Serialize};

use super::{AudioIoError, AudioSink, AudioSource, PlayedAudio};
use crate::media::codec::opus::{FRAME_SAMPLES, Pcm, SAMPLE_RATE};

/// At most this much audio waits in a device's ring (200 ms); what does not fit is dropped.
const RING_LIMIT: usize = SAMPLE_RATE as usize / 5;

/// The devices the host reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceList {
    /// The audio host (e.g. ALSA).
    pub host: String,
    /// Microphones.
    pub inputs: Vec<String>,
    /// Speakers.
    pub outputs: Vec<String>,
    /// The default microphone's name, if any.
    pub default_input: Option<String>,
    /// The default speaker's name, if any.
    pub default_output: Option<String>,
}

fn name_of(d: &cpal::Device) -> String {
    d.description().map(|desc| desc.name().to_owned()).unwrap_or_else(|_| "(unnamed)".into())
}

/// Lists the host's devices (an empty list when there are none; never panics).
pub fn list_devices() -> DeviceList {
    let host = cpal::default_host();
    let inputs = host.input_devices().map(|it| it.map(|d| name_of(&d)).collect()).unwrap_or_default();
    let outputs = host.output_devices().map(|it| it.map(|d| name_of(&d)).collect()).unwrap_or_default();
    DeviceList {
        host: format!("{:?}", host.id()),
        inputs,
        outputs,
        default_input: host.default_input_device().map(|d| name_of(&d)),
        default_output: host.default_output_device().map(|d| name_of(&d)),
    }
}

fn find(input: bool, name: Option<&str>) -> Result<cpal::Device, AudioIoError> {
    let host = cpal::default_host();
    let label = name.unwrap_or("default").to_owned();
    let missing = |why: &str| AudioIoError::Device { name: label.clone(), why: why.to_owned() };
    match name {
        None => if input { host.default_input_device() } else { host.default_output_device() }
            .ok_or_else(|| missing("no default device (see `hail devices`)")),
        Some(wanted) => {
            let devices = if input { host.input_devices() } else { host.output_devices() }
                .map_err(|e| missing(&e.to_string()))?;
            let mut devices = devices;
            devices.find(|d| name_of(d).contains(wanted)).ok_or_else(|| missing("no such device (see `hail devices`)"))
        }
    }
}

/// Runs `build` on a thread that keeps the stream alive until `stop` is dropped; reports whether
/// the stream started.
fn spawn_stream(
    label: String,
    build: impl FnOnce() -> Result<cpal::Stream, cpal::Error> + Send + 'static,
) -> Result<mpsc::Sender<()>, AudioIoError> {
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), cpal::Error>>();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name(format!("hail-audio-{label}"))
        .spawn(move || match build().and_then(|s| s.play().map(|_| s)) {
            Ok(stream) => {
                let _ = ready_tx.send(Ok(()));
                let _ = stop_rx.recv();
                drop(stream);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        })
        .map_err(|e| AudioIoError::Device { name: label.clone(), why: e.to_string() })?;
    match ready_rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(())) => Ok(stop_tx),
        Ok(Err(why)) => Err(AudioIoError::Device { name: label, why: why.to_string() }),
        Err(_) => Err(AudioIoError::Device { name: label, why: "the device did not start within 5 s".into() }),
    }
}

/// A microphone.
pub struct DeviceSource {
    ring: rtrb::Consumer<i16>,
    _stop: mpsc::Sender<()>,
}

impl std::fmt::Debug for DeviceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceSource")
    }
}

impl DeviceSource {
    /// Opens the default microphone, or the one whose name contains `name`.
    pub fn open(name: Option<&str>) -> Result<Self, AudioIoError> {
        let device = find(true, name)?;
        let label = name_of(&device);
        let config = device
            .default_input_config()
            .map_err(|e| AudioIoError::Device { name: label.clone(), why: e.to_string() })?;
        let (channels, rate) = (config.channels().max(1) as usize, config.sample_rate());
        let (mut feed, ring) = rtrb::RingBuffer::new(RING_LIMIT);
        let stop = spawn_stream(label, move || {
            let mut phase = 0.0f64;
            let step = SAMPLE_RATE as f64 / rate as f64;
            device
                .build_input_stream::<f32, _, _>(
                    config.config(),
                    move |data: &[f32], _| {
                        // Lock-free: a full ring (nobody reads) drops the newest samples.
                        for frame in data.chunks(channels) {
                            let mono = frame.iter().sum::<f32>() / channels as f32;
                            phase += step;
                            while phase >= 1.0 {
                                let _ = feed.push((mono.clamp(-1.0, 1.0) * 32767.0) as i16);
                                phase -= 1.0;
                            }
                        }
                    },
                    |e| tracing::warn!(error = %e, "microphone error"),
                    None,
                )
        })?;
        Ok(DeviceSource { ring, _stop: stop })
    }
}

impl AudioSource for DeviceSource {
    fn next_frame(&mut self) -> Pcm {
        let mut pcm = [0i16; FRAME_SAMPLES];
        for s in pcm.iter_mut() {
            match self.ring.pop() {
                Ok(v) => *s = v,
                Err(_) => break,
            }
        }
        pcm
    }
}

/// A speaker.
pub struct DeviceSink {
    ring: rtrb::Producer<i16>,
    played: Option<PlayedAudio>,
    _stop: mpsc::Sender<()>,
}

impl std::fmt::Debug for DeviceSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceSink")
    }
}

impl DeviceSink {
    /// Opens the default speaker, or the one whose name contains `name`.
    pub fn open(name: Option<&str>) -> Result<Self, AudioIoError> {
        let device = find(false, name)?;
        let label = name_of(&device);
        let config = device
            .default_output_config()
            .map_err(|e| AudioIoError::Device { name: label.clone(), why: e.to_string() })?;
        let (channels, rate) = (config.channels().max(1) as usize, config.sample_rate());
        let (ring, mut drain) = rtrb::RingBuffer::new(RING_LIMIT);
        let (mut played_tx, played) = rtrb::RingBuffer::new(RING_LIMIT);
        let stop = spawn_stream(label, move || {
            let mut phase = 0.0f64;
            let step = SAMPLE_RATE as f64 / rate as f64;
            let mut current = 0i16;
            device
                .build_output_stream::<f32, _, _>(
                    config.config(),
                    move |data: &mut [f32], _| {
                        // Lock-free. Every 48 kHz sample played (silence when the ring ran dry) is
                        // also handed back, in order; a full hand-back ring (nobody reads) drops it.
                        for frame in data.chunks_mut(channels) {
                            phase += step;
                            while phase >= 1.0 {
                                current = drain.pop().unwrap_or(0);
                                let _ = played_tx.push(current);
                                phase -= 1.0;
                            }
                            frame.fill(current as f32 / 32768.0);
                        }
                    },
                    |e| tracing::warn!(error = %e, "speaker error"),
                    None,
                )
        })?;
        Ok(DeviceSink { ring, played: Some(PlayedAudio::new(played)), _stop: stop })
    }
}

impl AudioSink for DeviceSink {
    fn write_frame(&mut self, pcm: &Pcm) {
        // What does not fit (the device is 200 ms behind) is dropped.
        for &s in pcm {
            if self.ring.push(s).is_err() {
                break;
            }
        }
    }

    fn played_audio(&mut self) -> Option<PlayedAudio> {
        self.played.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opening real devices, and what they carry, is tests/audio_device.rs (ALSA on pipes).
    #[test]
    fn a_missing_device_fails_clearly() {
        assert!(!list_devices().host.is_empty());
        match DeviceSource::open(Some("no device is called this 7f3a")) {
            Err(AudioIoError::Device { why, .. }) => assert!(why.contains("no such device"), "{why}"),
            other => panic!("expected a missing device, got {:?}", other.map(|_| ())),
        }
        assert!(DeviceSink::open(Some("no device is called this 7f3a")).is_err());
    }
}
