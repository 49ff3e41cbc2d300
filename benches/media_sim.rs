//! How fast the deterministic simulator (`tests/common/sim.rs`) runs a call: a two-party audio call
//! (real Opus, both directions) through 20 % Gilbert-Elliott burst loss (bursts of 2 on average),
//! 40 ± 10 ms each way. Prints one JSON object: wall time per minute of virtual call, min and median
//! over the runs, and what the call did (identical on every run: the same seeds).
//!
//! `cargo bench --bench media_sim [-- RUNS]` (5 runs of 60 s by default). Under `cargo test` (no
//! `--bench`) it simulates 5 s once as a smoke test.

#[path = "../tests/common/sim.rs"]
mod sim;

#[path = "common/args.rs"]
mod args;

use std::time::{Duration, Instant};

use sim::{AudioParty, Impairment, Sim};

fn call(seconds: u64) -> (Duration, serde_json::Value) {
    let imp = Impairment {
        delay: Duration::from_millis(40),
        jitter: Duration::from_millis(10),
        ..Impairment::bursty(0.20, 2.0)
    };
    let start = Instant::now();
    let mut sim = Sim::pair(AudioParty::new(1, true, start), AudioParty::new(0, false, start), start, imp, (1, 2));
    let wall = Instant::now();
    sim.run_for(Duration::from_secs(seconds));
    let took = wall.elapsed();
    let p = &sim.parties;
    let side = |i: usize| {
        let j = p[i].receive_stats().jitter;
        serde_json::json!({
            "received": j.received, "lost": j.lost, "concealed": j.concealed, "fec_recovered": j.fec_recovered,
            "longest_gap_ms": p[i].longest_gap() * 20, "redundancy": p[i].send_stats().redundancy,
        })
    };
    (took, serde_json::json!({ "alice_hears": side(0), "bob_hears": side(1) }))
}

fn main() {
    let args = args::BenchArgs::from_env(&[]);
    let bench = args.bench;
    let (runs, seconds) = if bench {
        (args.number::<usize>().filter(|n| *n > 0).unwrap_or(5), 60)
    } else {
        (1, 5)
    };
    let mut walls = Vec::new();
    let mut outcome = serde_json::Value::Null;
    for _ in 0..runs {
        let (took, o) = call(seconds);
        assert!(outcome.is_null() || outcome == o, "a run differed from the first: {o} vs {outcome}");
        outcome = o;
        walls.push(took.as_secs_f64());
    }
    walls.sort_by(f64::total_cmp);
    let per_minute = |s: f64| s * 60.0 / seconds as f64;
    println!(
        "{}",
        serde_json::json!({
            "bench": "media_sim",
            "mode": if bench { "bench" } else { "smoke" },
            "what": "two-party audio call (real Opus) in the simulator, 20 % burst loss (mean burst 2), 40 ± 10 ms",
            "virtual_seconds": seconds,
            "runs": runs,
            "wall_seconds_per_virtual_minute": { "min": per_minute(walls[0]), "median": per_minute(walls[walls.len() / 2]) },
            "speedup_over_real_time_median": seconds as f64 / walls[walls.len() / 2],
            "every_run_identical": true,
            "call": outcome,
        })
    );
}
