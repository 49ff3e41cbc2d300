//! WAV files: any common rate and channel count in (mixed to mono, resampled to 48 kHz), 48 kHz mono
//! 16-bit out.

use std::path::Path;

use super::{AudioIoError, AudioSink, AudioSource};
use crate::media::codec::opus::{FRAME_SAMPLES, Pcm, SAMPLE_RATE};

/// Reads a whole WAV file as 48 kHz mono samples.
pub fn read_wav_mono_48k(path: &Path) -> Result<Vec<i16>, AudioIoError> {
    let err = |why: String| AudioIoError::File { path: path.to_owned(), why };
    let mut reader = hound::WavReader::open(path).map_err(|e| err(e.to_string()))?;
    let spec = reader.spec();
    if spec.channels == 0 || spec.sample_rate < 1000 || spec.sample_rate > 384_000 {
        return Err(err(format!("unsupported format ({} channels at {} Hz)", spec.channels, spec.sample_rate)));
    }
    let samples: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => {
            reader.samples::<f32>().collect::<Result<_, _>>().map_err(|e| err(e.to_string()))?
        }
        (hound::SampleFormat::Int, bits @ 8..=32) => {
            let scale = (1i64 << (bits - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 / scale))
                .collect::<Result<_, _>>()
                .map_err(|e| err(e.to_string()))?
        }
        (f, b) => return Err(err(format!("unsupported sample format {f:?} {b}-bit"))),
    };
    let channels = spec.channels as usize;
    let mono: Vec<f32> = samples.chunks(channels).map(|c| c.iter().sum::<f32>() / c.len() as f32).collect();
    let resampled = resample_linear(&mono, spec.sample_rate, SAMPLE_RATE);
    Ok(resampled.iter().map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16).collect())
}

/// Linear-interpolation resampling (good enough for speech test material and tones).
fn resample_linear(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() {
        return input.to_vec();
    }
    let out_len = (input.len() as u64 * to as u64 / from as u64) as usize;
    let step = from as f64 / to as f64;
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * step;
            let k = pos as usize;
            let frac = (pos - k as f64) as f32;
            let a = input[k.min(input.len() - 1)];
            let b = input[(k + 1).min(input.len() - 1)];
            a + (b - a) * frac
        })
        .collect()
}

/// Plays a WAV file once, then silence.
#[derive(Debug)]
pub struct WavSource {
    samples: Vec<i16>,
    pos: usize,
}

impl WavSource {
    /// Opens and decodes the file.
    pub fn open(path: &Path) -> Result<Self, AudioIoError> {
        Ok(WavSource { samples: read_wav_mono_48k(path)?, pos: 0 })
    }
}

impl AudioSource for WavSource {
    fn next_frame(&mut self) -> Pcm {
        let mut pcm = [0i16; FRAME_SAMPLES];
        let end = (self.pos + FRAME_SAMPLES).min(self.samples.len());
        if self.pos < end {
            pcm[..end - self.pos].copy_from_slice(&self.samples[self.pos..end]);
        }
        self.pos = end;
        pcm
    }
}

/// Writes 48 kHz mono 16-bit WAV.
pub struct WavSink {
    writer: Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>,
}

impl std::fmt::Debug for WavSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WavSink")
    }
}

impl WavSink {
    /// Creates (or replaces) the file.
    pub fn create(path: &Path) -> Result<Self, AudioIoError> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(path, spec)
            .map_err(|e| AudioIoError::File { path: path.to_owned(), why: e.to_string() })?;
        Ok(WavSink { writer: Some(writer) })
    }
}

impl AudioSink for WavSink {
    fn write_frame(&mut self, pcm: &Pcm) {
        if let Some(w) = self.writer.as_mut() {
            for s in pcm {
                if w.write_sample(*s).is_err() {
                    tracing::warn!("cannot write the received audio file; stopping the recording");
                    self.writer = None;
                    return;
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Some(w) = self.writer.take() {
            if let Err(e) = w.finalize() {
                tracing::warn!(error = %e, "cannot finish the received audio file");
            }
        }
    }
}

impl Drop for WavSink {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stereo_44k_file_comes_back_as_48k_mono() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..44_100 {
            let v = ((i as f64 / 44_100.0 * 440.0 * std::f64::consts::TAU).sin() * 10_000.0) as i16;
            w.write_sample(v).unwrap();
            w.write_sample(v).unwrap();
        }
        w.finalize().unwrap();
        let samples = read_wav_mono_48k(&path).unwrap();
        assert!((samples.len() as i64 - 48_000).abs() <= 1, "{}", samples.len());
        let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!((9_000..=10_100).contains(&peak), "{peak}");

        let out = dir.path().join("out.wav");
        let mut sink = WavSink::create(&out).unwrap();
        let mut src = WavSource::open(&path).unwrap();
        for _ in 0..60 {
            sink.write_frame(&src.next_frame());
        }
        sink.finish();
        let back = read_wav_mono_48k(&out).unwrap();
        assert_eq!(back.len(), 60 * FRAME_SAMPLES);
        let n = samples.len();
        let same = back[..n].iter().zip(&samples).all(|(a, b)| (*a as i32 - *b as i32).abs() <= 1);
        assert!(same, "the file comes back sample for sample (within rounding)");
        assert!(back[n..].iter().all(|s| *s == 0), "silence after the file ends");
        assert!(matches!(WavSource::open(&dir.path().join("missing.wav")), Err(AudioIoError::File { .. })));
        std::fs::write(dir.path().join("junk.wav"), b"not a wav").unwrap();
        assert!(WavSource::open(&dir.path().join("junk.wav")).is_err());
    }
}
