//! Echo cancellation, noise suppression and their cost, headless: far-end speech played through
//! the simulated room of tests/common/echo_room.rs (a soft-clipping speaker, 40 ms of bulk delay,
//! a seeded decaying impulse response) reaches the microphone with near-end speech and noise, and
//! each configuration of the audio processing is run over it 10 ms at a time, as a call does.
//! Prints one JSON object.
//!
//! `cargo bench --bench echo -- --speech FAR.wav --speech NEAR.wav [--speech FAR2.wav]
//! [--pesq PYTHON] [--out DIR] [--rt60 SECONDS (0.25)] [--drive D (2)] [--echo-gain-db DB (-6)]
//! [--only CONFIG] [--aec3-try CHANGE[,CHANGE…]]`: the far end talks alone over FAR, then FAR2
//! (FAR again if not given) while NEAR talks. Without `--speech`, synthetic speech-like talkers. With `--pesq`,
//! PESQ-WB (PyPI `pesq`, scripts/bench-audio.sh makes its virtualenv) of the near end in double
//! talk, and of noisy speech with and without noise suppression. Under `cargo test` (no `--bench`)
//! a short synthetic scene, failing if the echo is not removed.
//!
//! How the echo is told from the near end (the yardstick). While both talk, the processed
//! microphone holds what is left of the echo and what the processing did to the near end, and
//! only the first is echo. Subtracting a second run without the echo does not separate them: that
//! run's canceller is in another state (it never saw the echo), so the difference also holds how
//! differently the two runs treated the near end, counted as echo. The bench uses phase inversion
//! instead (Hagerman and Olofsson 2004, the standard way to split the output of non-linear
//! hearing-aid processing; ITU-T P.1110 and G.168 likewise measure echo in double talk on the
//! processing state of the mixed signal): each configuration runs on `echo + near` and on
//! `echo - near` (near = talker and noise), the same far end; the canceller's decisions follow
//! powers and the far end, which are the same in both, so half the sum of the two outputs is
//! what it left of the echo *in the state the double talk put it in*, and half the difference
//! what it left of the near end. Near-end damage is then not echo, and shows in the PESQ instead:
//! the drop is measured against the same configuration with nothing played, so a canceller that
//! turns the near end down pays for it there.
//!
//! What is reported, per configuration:
//! - `erle_far_only_db`: the echo's power at the microphone over what is left of it (above),
//!   once the far end has talked alone for 2 s.
//! - `erle_double_talk_db`: the same while both talk.
//! - `pesq_near_alone`: PESQ-WB (against the clean talker) of the double-talk stretch's near end
//!   processed with nothing played and no echo: the configuration's best.
//! - `pesq_double_talk`, `pesq_drop_double_talk`: of the processed microphone while both talk
//!   (echo and all: what the far end hears), and `pesq_near_alone` minus it.
//! - `pesq_double_talk_near_part`: of the near end's part alone (half the difference above).
//! - `pesq_headset`, `pesq_drop_headset`: the far end plays but nothing of it reaches the
//!   microphone (a headset); what the canceller then does to the near end.
//! - `pesq_noise_gain`: PESQ-WB of noisy near-end speech (10 dB SNR, no far end) processed, minus
//!   unprocessed.
//! - `cpu_percent_of_core`: the processing's thread CPU time over the audio's duration.
//!
//! Configurations (`CONFIGS`): hail's Kalman canceller (crates/kalman-echo; `kalman_ns_agc2` is
//! what a call runs), alone and with the noise suppressor and gain control, and ahead of AEC3;
//! AEC3 as hail tuned it (`aec3*`), the same with WebRTC's defaults (`*_defaults`); the high-pass
//! filter only; the noise suppressor only.
//!
//! `--only NAME` runs one configuration; `--drive` sets how hard the speaker clips (0.01: linear),
//! `--echo-gain-db` the room's echo path gain, `--delay-ms` the bulk delay (40), `--drift-ppm` how
//! fast the speaker's clock runs against the microphone's (0); `--aec3-try` applies named changes (see
//! `try_aec3_change`) to a call's AEC3 tuning, in the configurations that run it;
//! `--dump-scene DIR` writes the scene's signals
//! (far, near, echo, mic-plus, mic-minus, mic-headset) there as 48 kHz WAVs.

#[path = "common/args.rs"]
mod args;
#[path = "common/cpu.rs"]
mod cpu;
#[path = "../tests/common/echo_room.rs"]
mod echo_room;
#[path = "../tests/common/speech.rs"]
mod speech;
#[path = "common/speech_quality.rs"]
mod speech_quality;

use std::path::{Path, PathBuf};

use cpu::thread_cpu_seconds;
use echo_room::{RATE, Room, Scene, Separated, noise, power, process};
use hail::media::audio_processing::{AudioProcessor, tuned_aec3_config};
use sonora::config::EchoCanceller3Config;
use serde_json::json;

/// How the echo canceller is tuned in a configuration.
#[derive(Clone, Copy)]
enum Echo {
    /// No echo canceller.
    Off,
    /// AEC3 as hail tuned it (`tuned_aec3_config`; calls ran it before the Kalman canceller).
    Call,
    /// WebRTC's defaults, to compare.
    WebRtcDefaults,
    /// The Kalman canceller (crates/kalman-echo): what a call runs.
    Kalman,
    /// The Kalman canceller, then AEC3 as hail tuned it.
    KalmanThenCall,
}

/// The configurations compared: (name, echo canceller, noise suppressor, gain control).
const CONFIGS: &[(&str, Echo, bool, bool)] = &[
    ("high_pass_only", Echo::Off, false, false),
    ("aec3", Echo::Call, false, false),
    ("aec3_ns", Echo::Call, true, false),
    ("aec3_ns_agc2", Echo::Call, true, true),
    ("kalman", Echo::Kalman, false, false),
    ("kalman_ns", Echo::Kalman, true, false),
    ("kalman_ns_agc2", Echo::Kalman, true, true),
    ("kalman_aec3_ns", Echo::KalmanThenCall, true, false),
    ("ns", Echo::Off, true, false),
    ("aec3_defaults", Echo::WebRtcDefaults, false, false),
    ("aec3_ns_defaults", Echo::WebRtcDefaults, true, false),
    ("aec3_ns_agc2_defaults", Echo::WebRtcDefaults, true, true),
];

/// `--aec3-try NAME[,NAME…]`: changes tried on top of a call's tuning, in the configurations that
/// run it (docs/performance.md, "What was tried"). Each is one idea about the double-talk damage.
fn try_aec3_change(config: &mut EchoCanceller3Config, name: &str) {
    let s = &mut config.suppressor;
    match name {
        // Enter the dominant near-end state (and its more transparent masks) sooner and stay
        // longer: near end above the residual echo (not 4x), 10 dB above the noise (not 30), 6
        // blocks in a row (not 12), held 100 blocks (not 50), judged on the bounded echo.
        "nearend_detection_eager" => {
            let d = &mut s.dominant_nearend_detection;
            (d.enr_threshold, d.snr_threshold, d.trigger_threshold, d.hold_duration) = (1.0, 10.0, 6, 100);
            d.use_unbounded_echo_spectrum = false;
        }
        // The dominant near-end state's masks far looser (echo-to-near-end ratios where the gain
        // starts to fall and reaches its floor: low bands 3/4 instead of 1.09/1.1, high 1/1.5
        // instead of 0.1/0.3), and its gain allowed to rise 4x per block.
        "nearend_tuning_open" => {
            let t = &mut s.nearend_tuning;
            (t.mask_lf.enr_transparent, t.mask_lf.enr_suppress) = (3.0, 4.0);
            (t.mask_hf.enr_transparent, t.mask_hf.enr_suppress) = (1.0, 1.5);
            t.max_inc_factor = 4.0;
        }
        // The bands above 8 kHz: no gain bound during echo, no anti-howling.
        "high_bands_open" => {
            let h = &mut s.high_bands_suppression;
            (h.enr_threshold, h.max_gain_during_echo) = (1e6, 1.0);
            h.anti_howling_activation_threshold = 1e9;
        }
        // The lowest gain a band may jump back to in one block (1e-5): a suppressed band comes
        // back within a block or two after the echo stops, instead of doubling from the floor.
        "floor_first_increase_0.01" => s.floor_first_increase = 0.01,
        "floor_first_increase_0.1" => s.floor_first_increase = 0.1,
        // Echo counted as inaudible up to 10x more power (thresholds 100 instead of 10).
        "echo_audibility_10x" => {
            let a = &mut config.echo_audibility;
            (a.audibility_threshold_lf, a.audibility_threshold_mf, a.audibility_threshold_hf) = (100.0, 100.0, 100.0);
        }
        other => panic!("--aec3-try: unknown change {other:?}"),
    }
}

fn to_i16(x: &[f64]) -> Vec<i16> {
    x.iter().map(|v| v.round().clamp(-32_768.0, 32_767.0) as i16).collect()
}

/// PESQ-WB of `degraded` against `reference` (48 kHz, written at 16 kHz into `dir`).
fn pesq_of(python: &str, dir: &Path, name: &str, reference: &[f64], degraded: &[f64]) -> Option<f64> {
    let (r, d) = (dir.join(format!("{name}-ref16.wav")), dir.join(format!("{name}-deg16.wav")));
    speech_quality::write_16k(&r, &to_i16(reference));
    speech_quality::write_16k(&d, &to_i16(degraded));
    speech_quality::pesq(python, &r, &d)
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn main() {
    let args = args::BenchArgs::from_env(&["--speech", "--pesq", "--out", "--rt60", "--only", "--drive", "--echo-gain-db", "--dump-scene", "--aec3-try", "--delay-ms", "--drift-ppm"]);
    let tried: Vec<&str> = args.value("--aec3-try").map_or(Vec::new(), |v| v.split(',').collect());
    let speech_files: Vec<String> = args.all_values("--speech").map(str::to_owned).collect();
    let python = args.value("--pesq");
    let dir = args.value("--out").map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("hail-echo-bench"));
    std::fs::create_dir_all(&dir).expect("the output directory");
    let read = |p: &str| -> Vec<f64> {
        hail::media::io::read_wav_mono_48k(Path::new(p)).expect("a readable speech WAV").iter().map(|&s| f64::from(s)).collect()
    };
    let (far_alone, near, far_during, source) = match speech_files.as_slice() {
        [] => {
            let secs = if args.bench { (10.0, 8.0) } else { (5.0, 4.0) };
            let far = speech::speech_like_talker(secs.0 + secs.1, 11);
            let split = (secs.0 * RATE as f64) as usize;
            (far[..split].to_vec(), speech::speech_like_talker(secs.1, 23), far[split..].to_vec(), "synthetic")
        }
        [far, near] => (read(far), read(near), read(far), "speech"),
        [far, near, far2, ..] => (read(far), read(near), read(far2), "speech"),
        [_] => panic!("--speech FAR.wav --speech NEAR.wav [--speech FAR2.wav]: two or three files"),
    };
    let rt60: f64 = args.value("--rt60").map_or(echo_room::RT60_S, |s| s.parse().expect("--rt60 SECONDS"));
    let mut room = Room::with_rt60(rt60);
    if let Some(drive) = args.value("--drive") {
        room.drive = drive.parse().expect("--drive NUMBER (> 0)");
    }
    if let Some(ms) = args.value("--delay-ms") {
        room.bulk_delay = ms.parse::<usize>().expect("--delay-ms MILLISECONDS") * RATE / 1000;
    }
    if let Some(db) = args.value("--echo-gain-db") {
        let db: f64 = db.parse().expect("--echo-gain-db DB");
        let scale = (10f64.powf(db / 10.0) / echo_room::ECHO_PATH_GAIN).sqrt();
        room.taps.iter_mut().for_each(|t| t.1 *= scale);
    }
    let mut scene = Scene::new(&room, &far_alone, &far_during, &near, 30.0);
    if let Some(ppm) = args.value("--drift-ppm") {
        // The speaker's clock runs fast by PPM against the microphone's (two devices): the echo,
        // made on the speaker's clock, is read on the microphone's.
        let rate = 1.0 + ppm.parse::<f64>().expect("--drift-ppm PPM") * 1e-6;
        let echo = &scene.echo;
        scene.echo = (0..echo.len())
            .map(|i| {
                let t = i as f64 / rate;
                let (k, frac) = (t as usize, t - t.floor());
                echo[k] * (1.0 - frac) + echo.get(k + 1).copied().unwrap_or(0.0) * frac
            })
            .collect();
    }
    let (mic_plus, mic_minus, mic_headset) =
        (scene.microphone(true), scene.microphone_near_inverted(), scene.microphone(false));
    let nothing_played = vec![0.0; scene.far.len()];
    let converged = scene.far_only.start + 2 * RATE..scene.far_only.end;
    let dt = scene.double_talk.clone();
    // Noisy near-end speech, nothing played: 10 dB below the speech's mean power.
    let noisy_noise = noise(near.len(), (power(&near) / 10.0).sqrt(), 0x7015e);
    let noisy: Vec<f64> = near.iter().zip(&noisy_noise).map(|(s, n)| s + n).collect();
    let silence = vec![0.0; near.len()];
    let pesq_noisy = python.and_then(|py| pesq_of(py, &dir, "noisy-unprocessed", &near, &noisy));
    let only = args.value("--only");
    if let Some(to) = args.value("--dump-scene") {
        // The scene's signals as 48 kHz WAVs, to run another engine over the same scene.
        std::fs::create_dir_all(to).expect("the --dump-scene directory");
        let spec = hound::WavSpec { channels: 1, sample_rate: RATE as u32, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
        for (name, x) in [("far", &scene.far), ("near", &scene.near), ("mic-plus", &mic_plus), ("mic-minus", &mic_minus), ("mic-headset", &mic_headset), ("echo", &scene.echo)] {
            let mut w = hound::WavWriter::create(Path::new(to).join(format!("{name}.wav")), spec).expect("a WAV");
            to_i16(x).into_iter().try_for_each(|s| w.write_sample(s)).expect("WAV samples");
            w.finalize().expect("a WAV");
        }
        eprintln!("scene: far only {:?}, double talk {:?} (samples)", scene.far_only, dt);
    }

    let mut results = Vec::new();
    for &(name, echo, ns, agc) in CONFIGS.iter().filter(|c| only.is_none_or(|o| o == c.0)) {
        let make = || {
            let kalman = matches!(echo, Echo::Kalman | Echo::KalmanThenCall);
            let echo = match echo {
                Echo::Off | Echo::Kalman => None,
                Echo::Call | Echo::KalmanThenCall => {
                    let mut config = tuned_aec3_config();
                    tried.iter().for_each(|change| try_aec3_change(&mut config, change));
                    Some(config)
                }
                Echo::WebRtcDefaults => Some(EchoCanceller3Config::default()),
            };
            if kalman {
                AudioProcessor::with_echo_cancellers(true, echo, ns, agc)
            } else {
                // AEC3 as calls ran it, gain control included (it starts at 15 dB there).
                AudioProcessor::with_echo_canceller(echo, ns, agc)
            }
        };
        let cpu = thread_cpu_seconds();
        let plus = process(&mut make(), &scene.far, &mic_plus);
        let cpu = thread_cpu_seconds() - cpu;
        let separated = Separated::new(&plus, &process(&mut make(), &scene.far, &mic_minus));
        let erle_fe = separated.erle_db(&scene.echo, converged.clone());
        let erle_dt = separated.erle_db(&scene.echo, dt.clone());
        let seconds = scene.far.len() as f64 / RATE as f64;
        let mut row = json!({
            "config": name,
            "erle_far_only_db": round(erle_fe),
            "erle_double_talk_db": round(erle_dt),
            "cpu_percent_of_core": round(cpu / seconds * 100.0),
        });
        if let Some(py) = python {
            let reference = &scene.near[dt.clone()];
            let pesq = |what: &str, processed: &[f64]| pesq_of(py, &dir, &format!("{name}-{what}"), reference, &processed[dt.clone()]);
            let alone = pesq("near-alone", &process(&mut make(), &nothing_played, &mic_headset));
            let headset = pesq("headset", &process(&mut make(), &scene.far, &mic_headset));
            let double_talk = pesq("double-talk", &plus);
            let near_part = pesq("double-talk-near-part", &separated.near);
            let noisy_out = process(&mut make(), &silence, &noisy);
            let denoised = pesq_of(py, &dir, &format!("{name}-noisy"), &near, &noisy_out);
            let drop = |x: Option<f64>| alone.zip(x).map(|(a, b)| round(a - b));
            row["pesq_near_alone"] = json!(alone.map(round));
            row["pesq_headset"] = json!(headset.map(round));
            row["pesq_drop_headset"] = json!(drop(headset));
            row["pesq_double_talk"] = json!(double_talk.map(round));
            row["pesq_drop_double_talk"] = json!(drop(double_talk));
            row["pesq_double_talk_near_part"] = json!(near_part.map(round));
            row["pesq_noisy"] = json!(denoised.map(round));
            row["pesq_noise_gain"] = json!(denoised.zip(pesq_noisy).map(|(a, b)| round(a - b)));
        }
        if !args.bench && (name == "aec3_ns" || name == "kalman_ns") {
            assert!(erle_fe >= 20.0, "smoke run: the echo must be removed: {row}");
        }
        eprintln!("{row}");
        results.push(row);
    }
    let report = json!({
        "bench": "echo",
        "source": source,
        "far_only_s": round(scene.far_only.len() as f64 / RATE as f64),
        "double_talk_s": round(dt.len() as f64 / RATE as f64),
        "room": { "rt60_s": rt60, "ir_length_s": echo_room::IR_LENGTH_S, "echo_path_gain_db": round(10.0 * room.taps.iter().map(|t| t.1 * t.1).sum::<f64>().log10()), "bulk_delay_ms": room.bulk_delay * 1000 / RATE, "speaker_drive": room.drive },
        "pesq_noisy_unprocessed": pesq_noisy.map(round),
        "aec3_tried": tried,
        "goals": { "erle_far_only_db": 25, "erle_double_talk_db": 15, "pesq_drop_double_talk": 0.3, "pesq_noise_gain": 0.3, "cpu_percent_of_core": 5 },
        "configs": results,
    });
    println!("{report}");
}
