//! Audio quality, latency and CPU of real calls through the impairing relay, one call per link
//! condition. Prints one JSON object.
//!
//! Usage (the script installs espeak-ng and a PESQ virtualenv, then runs this):
//! `scripts/bench-audio.sh`, or `cargo bench --bench audio_quality -- --speech A.wav [--speech B.wav
//! ...] --out DIR [--pesq PYTHON] [--seeds N (3)] [--only CONDITION]`. Every condition is run with
//! every sample and N relay seeds; each row gives the mean and sample sd of the scores. With
//! `--pesq`, each received recording is scored with ITU-T P.862 wide-band (the PyPI `pesq`
//! package) against its speech at 16 kHz. Under `cargo test` (no `--bench`) it runs
//! a 2-second clean call as a smoke test and fails if no audio arrives.

#[path = "../tests/common/relay.rs"]
mod relay;

#[path = "common/args.rs"]
mod args;
#[path = "common/cpu.rs"]
mod cpu;
#[path = "common/speech_quality.rs"]
mod speech_quality;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hail::home::Home;
use hail::node::{Daemon, DaemonOptions};
use relay::{Impairment, Relay};
use speech_quality::{Condition, marker_lag, mean_sd, pesq, write_16k};

const fn independent(name: &'static str, loss: f64, delay_ms: u64, jitter_ms: u64, goal: f64, sip: f64) -> Condition {
    Condition { name, loss, mean_burst: None, delay_ms, jitter_ms, goal, sip_reference: Some(sip) }
}

/// Issue 14's burst rows: Gilbert-Elliott loss, mean burst 3 packets, both directions.
const fn bursty(name: &'static str, loss: f64, delay_ms: u64, jitter_ms: u64, goal: f64) -> Condition {
    Condition { name, loss, mean_burst: Some(3.0), delay_ms, jitter_ms, goal, sip_reference: None }
}

const CONDITIONS: &[Condition] = &[
    independent("clean", 0.0, 0, 0, 4.1, 3.96),
    independent("loss5_jitter50x10", 0.05, 50, 10, 3.6, 2.16),
    independent("loss10_jitter50x10", 0.10, 50, 10, 3.3, 1.63),
    independent("loss20_jitter100x30", 0.20, 100, 30, 2.8, 1.23),
    bursty("burst3_loss5_jitter50x10", 0.05, 50, 10, 3.8),
    bursty("burst3_loss10_jitter50x10", 0.10, 50, 10, 3.6),
    bursty("burst3_loss20_jitter100x30", 0.20, 100, 30, 3.2),
];

fn options(input: &str, output: &str, advertise: &str) -> DaemonOptions {
    let mut o = DaemonOptions::loopback(input, output);
    o.calls.auto_answer = Some(true);
    o.calls.media_advertise = Some(vec![advertise.into()]);
    o
}

/// One call under one condition: `input` from Alice to Bob, Bob's recording in `received`.
/// Returns the call's numbers (JSON) and the received audio's PESQ-WB when asked.
async fn one_call(c: &Condition, relay_seed: u64, input: &str, received: &Path, python: Option<&str>) -> serde_json::Value {
    let loss_model = match c.mean_burst {
        None => Impairment { loss: c.loss, ..Impairment::clean() },
        Some(burst) => Impairment::bursty(c.loss, burst),
    };
    let imp = Impairment { delay: Duration::from_millis(c.delay_ms), jitter: Duration::from_millis(c.jitter_ms), ..loss_model };
    let (to_alice, to_bob) = (Relay::start(imp, relay_seed).await, Relay::start(imp, relay_seed + 1_000).await);
    let dir = tempfile::tempdir().unwrap();
    let alice =
        Daemon::start(Home::new(dir.path().join("a")), options(input, "null", &to_alice.addr.to_string())).await.unwrap();
    let bob = Daemon::start(
        Home::new(dir.path().join("b")),
        options("silence", &received.display().to_string(), &to_bob.addr.to_string()),
    )
    .await
    .unwrap();
    for (relay, daemon) in [(&to_alice, &alice), (&to_bob, &bob)] {
        let status = daemon.node().status().await.unwrap();
        relay.set_target(status.calls_address.unwrap().parse().unwrap());
    }
    let (a, b) = (alice.node().clone(), bob.node().clone());
    let card_a = a.identity(Some("alice")).await.unwrap().card;
    let card_b = b.identity(Some("bob")).await.unwrap().card;
    a.add_contact("bob", &card_b).await.unwrap();
    b.add_contact("alice", &card_a).await.unwrap();
    // The speech sent (a file), read once: its length, the marker, the PESQ reference.
    let sent = (!input.starts_with("tone:"))
        .then(|| hail::media::io::read_wav_mono_48k(Path::new(input)).expect("a readable speech WAV"));
    let seconds = sent.as_ref().map_or(2.0, |s| s.len() as f64 / 48_000.0);

    let cpu0 = cpu::process_cpu_seconds();
    let wall0 = Instant::now();
    a.call("bob", false).await.expect("the call rings");
    let mut latencies = Vec::new();
    let end = Instant::now() + Duration::from_secs_f64(seconds + 1.5);
    let mut last = None;
    let mut input_started_us = None;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(call) = b.status().await.unwrap().call {
            if let Some(audio) = &call.audio {
                if let Some(l) = audio.receive.latency_ms {
                    latencies.push(l);
                }
            }
            last = Some(call);
        }
        if input_started_us.is_none() {
            input_started_us = a.status().await.unwrap().call.and_then(|c| c.audio).and_then(|a| a.input_started_us);
        }
    }
    let cpu = (cpu::process_cpu_seconds() - cpu0) / wall0.elapsed().as_secs_f64();
    let _ = a.hangup().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    alice.stop().await;
    bob.stop().await;
    latencies.sort_by(f64::total_cmp);
    let audio = last.and_then(|c| c.audio).unwrap_or_default();
    let j = audio.receive.jitter;
    // End to end: a marker (the speech itself) found in both files, placed in time by when each
    // file's first sample was taken and written. Includes framing, codec, network, jitter
    // buffer and the file sink; file sources and sinks have no device buffers.
    let got = hail::media::io::read_wav_mono_48k(received).unwrap_or_default();
    let mouth_to_ear_end_to_end_ms = match (input_started_us, audio.output_started_us, &sent) {
        (Some(i), Some(o), Some(sent)) => {
            marker_lag(sent, &got).map(|lag| (o as f64 - i as f64) / 1000.0 + lag as f64 / 48.0)
        }
        _ => None,
    };
    let mut entry = serde_json::json!({
        "relay_seed": relay_seed,
        "received_frames": j.received, "lost": j.lost, "concealed": j.concealed, "fec_recovered": j.fec_recovered,
        "late": j.late, "buffer_target_ms": j.target_ms,
        "dropped": j.dropped, "stretched": j.stretched, "late_copies": j.late_copies,
        "recovery_delay_ms": j.recovery_delay_ms, "bursts_in": audio.receive.bursts,
        "accelerations": j.accelerations, "stretch": audio.receive.stretch,
        "mouth_to_ear_ms_median": latencies.get(latencies.len() / 2),
        "mouth_to_ear_end_to_end_ms": mouth_to_ear_end_to_end_ms,
        "device_buffers_ms": 0,
        "cpu_percent_of_one_core_per_side": cpu * 100.0 / 2.0,
        "recording": received.display().to_string(),
    });
    if let (Some(python), Some(sent)) = (python, &sent) {
        let stem = received.with_extension("");
        let (r16, d16) = (stem.with_extension("ref16.wav"), stem.with_extension("deg16.wav"));
        write_16k(&r16, sent);
        write_16k(&d16, &got);
        entry["pesq_wb"] = serde_json::json!(pesq(python, &r16, &d16));
    }
    entry
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args::BenchArgs::from_env(&["--out", "--speech", "--seeds", "--only", "--pesq"]);
    let bench = args.bench;
    let value = |flag: &str| args.value(flag).map(str::to_owned);
    let out_dir = value("--out").map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("hail-audio-bench"));
    std::fs::create_dir_all(&out_dir).unwrap();
    // `--speech` may be given several times: every condition is run with every sample.
    let speech: Vec<String> = args.all_values("--speech").map(str::to_owned).collect();
    let seeds: u64 = value("--seeds").map(|s| s.parse().expect("--seeds N")).unwrap_or(if bench { 3 } else { 1 });
    let only = value("--only");
    let python = value("--pesq");
    let inputs: Vec<String> = match (speech.is_empty(), bench) {
        (false, _) => speech.clone(),
        (true, true) => panic!("--speech FILE.wav is required (scripts/bench-audio.sh makes three)"),
        (true, false) => vec!["tone:440".to_owned()],
    };
    let conditions: Vec<(usize, &Condition)> = if bench {
        CONDITIONS.iter().enumerate().filter(|(_, c)| only.as_deref().is_none_or(|o| c.name == o)).collect()
    } else {
        vec![(0, &CONDITIONS[0])]
    };
    if !bench {
        // The marker search finds a known delay in a speech-like signal (bursts of a gliding tone).
        let signal: Vec<i16> = (0..5 * 48_000)
            .map(|n| {
                let t = n as f64 / 48_000.0;
                let on = (t * 3.0).fract() < 0.6;
                if on { (8000.0 * (std::f64::consts::TAU * (200.0 + 150.0 * t) * t).sin()) as i16 } else { 0 }
            })
            .collect();
        let delayed: Vec<i16> = std::iter::repeat_n(0, 5_321).chain(signal.iter().copied()).collect();
        assert_eq!(marker_lag(&signal, &delayed), Some(5_321), "the marker search");
    }
    let mut results = Vec::new();
    for (k, c) in conditions {
        let mut calls = Vec::new();
        for (s, input) in inputs.iter().enumerate() {
            for seed in 0..seeds {
                let received = out_dir.join(format!("{}-s{s}-r{seed}.wav", c.name));
                let call = one_call(c, 10 * (k as u64 + 1) + 100 * seed, input, &received, python.as_deref()).await;
                if !bench {
                    assert!(call["received_frames"].as_u64().unwrap_or(0) > 50, "smoke run: audio must arrive: {call}");
                }
                calls.push(serde_json::json!({ "sample": s, "seed": seed, "call": call }));
            }
        }
        let field = |name: &str| -> Vec<f64> { calls.iter().filter_map(|c| c["call"][name].as_f64()).collect() };
        let summary = |name: &str| {
            mean_sd(&field(name)).map(|(m, sd)| serde_json::json!({ "mean": m, "sd": sd, "n": field(name).len() }))
        };
        results.push(serde_json::json!({
            "condition": c.name,
            "loss": c.loss, "delay_ms": c.delay_ms, "jitter_ms": c.jitter_ms,
            "loss_model": c.loss_model(),
            "samples": inputs.len(), "seeds": seeds,
            "pesq_wb": summary("pesq_wb"),
            "mouth_to_ear_ms_median": summary("mouth_to_ear_ms_median"),
            "mouth_to_ear_end_to_end_ms": summary("mouth_to_ear_end_to_end_ms"),
            "cpu_percent_of_one_core_per_side": summary("cpu_percent_of_one_core_per_side"),
            "concealed": summary("concealed"), "lost": summary("lost"),
            "pesq_goal": c.goal, "sip_phone_reference": c.sip_reference,
            "calls": calls,
        }));
    }
    println!("{}", serde_json::json!({ "bench": "audio_quality", "conditions": results }));
}
