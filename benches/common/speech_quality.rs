//! Speech quality yardsticks the benches share: PESQ-WB through the PyPI `pesq` package (at 16
//! kHz), the resampling it needs, and where a recording's speech sits in time against its source.
//! Included by benches with `#[path = "common/speech_quality.rs"] mod speech_quality;`.

#![allow(dead_code)] // each bench uses part of it

use std::path::Path;

/// 48 kHz → 16 kHz: a windowed-sinc low-pass (7.2 kHz) then every third sample.
pub fn to_16k(x: &[i16]) -> Vec<i16> {
    const TAPS: isize = 31;
    let fc = 7200.0 / 48_000.0;
    let h: Vec<f64> = (0..TAPS)
        .map(|i| {
            let n = (i - TAPS / 2) as f64;
            let sinc =
                if n == 0.0 { 2.0 * fc } else { (std::f64::consts::TAU * fc * n).sin() / (std::f64::consts::PI * n) };
            let w = 0.54 - 0.46 * (std::f64::consts::TAU * i as f64 / (TAPS - 1) as f64).cos();
            sinc * w
        })
        .collect();
    (0..x.len() / 3)
        .map(|k| {
            let c = (k * 3) as isize;
            let v: f64 = (0..TAPS)
                .map(|i| h[i as usize] * x.get((c + i - TAPS / 2).max(0) as usize).copied().unwrap_or(0) as f64)
                .sum();
            v.clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

pub fn write_16k(path: &Path, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in to_16k(samples) {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

pub fn pesq(python: &str, reference: &Path, degraded: &Path) -> Option<f64> {
    let script = "import sys,wave,numpy as np\nfrom pesq import pesq\n\
def r(p):\n w=wave.open(p); return np.frombuffer(w.readframes(w.getnframes()),dtype=np.int16).astype(np.float32)\n\
a=r(sys.argv[1]); b=r(sys.argv[2]); n=min(len(a),len(b)); print(pesq(16000,a[:n],b[:n],'wb'))";
    let out = std::process::Command::new(python).args(["-c", script]).arg(reference).arg(degraded).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The delay (in samples) at which `output` best matches `input`: first on 4 kHz envelopes over
/// up to 2 s, then exactly at 48 kHz on the loudest second of the input. `None` if nothing matches.
pub fn marker_lag(input: &[i16], output: &[i16]) -> Option<i64> {
    const STEP: usize = 12;
    let env = |x: &[i16]| -> Vec<f64> {
        x.chunks(STEP).map(|c| c.iter().map(|s| f64::from(*s).abs()).sum::<f64>() / c.len() as f64).collect()
    };
    let (a, b) = (env(input), env(output));
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (ma, mb) = (mean(&a), mean(&b));
    let (a, b): (Vec<f64>, Vec<f64>) = (a.iter().map(|v| v - ma).collect(), b.iter().map(|v| v - mb).collect());
    let coarse = (0..(2 * 48_000 / STEP).min(b.len()))
        .map(|lag| (lag, a.iter().zip(&b[lag..]).map(|(x, y)| x * y).sum::<f64>()))
        .max_by(|x, y| x.1.total_cmp(&y.1))?
        .0 as i64
        * STEP as i64;
    // The loudest second of the input, matched sample by sample around the coarse lag.
    let second = 48_000usize;
    let start = (0..input.len().saturating_sub(second))
        .step_by(4_800)
        .max_by_key(|&s| input[s..s + second].iter().map(|v| i64::from(*v).abs()).sum::<i64>())?;
    let segment = &input[start..start + second];
    (coarse - 2 * STEP as i64..=coarse + 2 * STEP as i64)
        .filter(|lag| *lag >= 0 && start as i64 + lag + second as i64 <= output.len() as i64)
        .map(|lag| {
            let o = &output[(start as i64 + lag) as usize..];
            (lag, segment.iter().zip(o).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum::<f64>())
        })
        .max_by(|x, y| x.1.total_cmp(&y.1))
        .map(|(lag, _)| lag)
}

/// Mean and sample standard deviation.
pub fn mean_sd(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    Some((mean, var.sqrt()))
}

/// A link condition a speech-quality bench runs a call under, and the PESQ-WB it aims for.
pub struct Condition {
    /// The row's name in the JSON.
    pub name: &'static str,
    /// The mean loss.
    pub loss: f64,
    /// `None`: independent loss; `Some(n)`: Gilbert-Elliott loss in bursts of `n` packets on
    /// average (`loss` is then the mean over both states).
    pub mean_burst: Option<f64>,
    /// One-way delay, and its uniform jitter (±), ms.
    pub delay_ms: u64,
    pub jitter_ms: u64,
    /// The PESQ-WB goal.
    pub goal: f64,
    /// What a SIP phone scores on this link, where measured.
    pub sip_reference: Option<f64>,
}

impl Condition {
    /// How the JSON names the loss model.
    pub fn loss_model(&self) -> String {
        match self.mean_burst {
            None => "independent".to_owned(),
            Some(b) => format!("gilbert-elliott, mean burst {b}"),
        }
    }
}
