//! Judging a recording by its tones: the Goertzel power at one frequency, and which of a set of
//! tones a stretch carries.
#![allow(dead_code)]

use std::f64::consts::TAU;

use hail::media::codec::opus::SAMPLE_RATE;

/// Goertzel: the power of `x` at `freq`, dB relative to full scale (a full-scale sine is −3 dB).
pub fn tone_db(x: &[i16], freq: f64) -> f64 {
    let w = TAU * freq / f64::from(SAMPLE_RATE);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = f64::from(v) / 32768.0 + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (x.len() as f64).powi(2) * 2.0;
    10.0 * power.max(1e-12).log10()
}

/// The tones `x` carries: those within 20 dB of the loudest of `tones`, and at most −40 dBFS
/// below it nothing (so "absent" is 20 dB under the quietest one heard).
pub fn heard(x: &[i16], tones: &[f64]) -> Vec<f64> {
    let db: Vec<f64> = tones.iter().map(|f| tone_db(x, *f)).collect();
    let loudest = db.iter().copied().fold(f64::MIN, f64::max);
    tones.iter().zip(&db).filter(|(_, d)| **d > loudest - 20.0 && **d > -40.0).map(|(f, _)| *f).collect()
}

/// The WAV at `path`, once the daemon has finished it (when its member left the call).
pub fn read_finished_wav(path: &std::path::Path) -> Vec<i16> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if let Ok(samples) = hail::media::io::read_wav_mono_48k(path)
            && !samples.is_empty()
        {
            return samples;
        }
        assert!(std::time::Instant::now() < deadline, "{} never became a readable WAV", path.display());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
