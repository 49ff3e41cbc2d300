//! Sound devices through cpal. A cpal stream is not `Send`, so each device gets a thread that owns
//! its stream; samples cross through a bounded ring buffer. Devices at other rates are resampled
//! to and from 48 kHz mono (nearest-sample: adequate for a voice path's last hop).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use serde::{Deserialize, Serialize};

use super::{AudioIoError, AudioSink, AudioSource};
use crate::media::codec::opus::{FRAME_SAMPLES, Pcm, SAMPLE_RATE};

/// At most this much audio waits in a device buffer (200 ms); older samples are dropped.
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
    ring: Arc<Mutex<VecDeque<i16>>>,
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
        let ring = Arc::new(Mutex::new(VecDeque::with_capacity(RING_LIMIT)));
        let feed = ring.clone();
        let stop = spawn_stream(label, move || {
            let mut phase = 0.0f64;
            let step = SAMPLE_RATE as f64 / rate as f64;
            device
                .build_input_stream::<f32, _, _>(
                    config.config(),
                    move |data: &[f32], _| {
                        let mut ring = feed.lock().unwrap_or_else(|p| p.into_inner());
                        for frame in data.chunks(channels) {
                            let mono = frame.iter().sum::<f32>() / channels as f32;
                            phase += step;
                            while phase >= 1.0 {
                                ring.push_back((mono.clamp(-1.0, 1.0) * 32767.0) as i16);
                                phase -= 1.0;
                            }
                        }
                        while ring.len() > RING_LIMIT {
                            ring.pop_front();
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
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        for s in pcm.iter_mut() {
            match ring.pop_front() {
                Some(v) => *s = v,
                None => break,
            }
        }
        pcm
    }
}

/// A speaker.
pub struct DeviceSink {
    ring: Arc<Mutex<VecDeque<i16>>>,
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
        let ring = Arc::new(Mutex::new(VecDeque::with_capacity(RING_LIMIT)));
        let drain = ring.clone();
        let stop = spawn_stream(label, move || {
            let mut phase = 0.0f64;
            let step = SAMPLE_RATE as f64 / rate as f64;
            let mut current = 0i16;
            device
                .build_output_stream::<f32, _, _>(
                    config.config(),
                    move |data: &mut [f32], _| {
                        let mut ring = drain.lock().unwrap_or_else(|p| p.into_inner());
                        for frame in data.chunks_mut(channels) {
                            phase += step;
                            while phase >= 1.0 {
                                current = ring.pop_front().unwrap_or(0);
                                phase -= 1.0;
                            }
                            frame.fill(current as f32 / 32768.0);
                        }
                    },
                    |e| tracing::warn!(error = %e, "speaker error"),
                    None,
                )
        })?;
        Ok(DeviceSink { ring, _stop: stop })
    }
}

impl AudioSink for DeviceSink {
    fn write_frame(&mut self, pcm: &Pcm) {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.extend(pcm.iter().copied());
        while ring.len() > RING_LIMIT {
            ring.pop_front();
        }
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
