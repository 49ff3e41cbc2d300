//! Call setup time on loopback: from `call` to both sides active, with auto-answer on the callee.
//! Two real daemons in one process (libp2p invite, QUIC, Noise handshake, control stream). Prints one
//! JSON object.
//!
//! Usage: `cargo bench --bench call_setup [-- CALLS]` (default 50). Under `cargo test` (no `--bench`)
//! it runs 3 calls as a smoke test and fails if one does not connect.

#[path = "common/args.rs"]
mod args;

use std::time::{Duration, Instant};

use hail::call::CallState;
use hail::home::Home;
use hail::node::{Daemon, DaemonOptions, NodeEvent};
use tokio::sync::broadcast;

fn options(auto_answer: bool) -> DaemonOptions {
    let mut o = DaemonOptions::loopback("silence", "null");
    o.calls.auto_answer = Some(auto_answer);
    // Many calls in a row between the same two peers: lift the anti-spam limits.
    o.calls.max_invites_per_peer = Some(100_000);
    o.calls.max_invites_total = Some(100_000);
    o
}

async fn until(events: &mut broadcast::Receiver<NodeEvent>, pred: impl Fn(&NodeEvent) -> bool) {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(e) = events.recv().await {
                if pred(&e) {
                    return;
                }
            }
        }
    })
    .await
    .expect("the call progressed within 20 s");
}

fn active(e: &NodeEvent) -> bool {
    matches!(e, NodeEvent::CallState { call } if call.state == CallState::Active)
}

fn ended(e: &NodeEvent) -> bool {
    matches!(e, NodeEvent::CallEnded { .. })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len().max(1) - 1) as f64).round() as usize;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args::BenchArgs::from_env(&[]);
    let bench = args.bench;
    let calls: usize = args.number().unwrap_or(if bench { 50 } else { 3 });
    let dir = tempfile::tempdir().unwrap();
    let alice = Daemon::start(Home::new(dir.path().join("alice")), options(false)).await.unwrap();
    let bob = Daemon::start(Home::new(dir.path().join("bob")), options(true)).await.unwrap();
    let (a, b) = (alice.node().clone(), bob.node().clone());
    let card_a = a.identity(Some("alice")).await.unwrap().card;
    let card_b = b.identity(Some("bob")).await.unwrap().card;
    a.add_contact("bob", &card_b).await.unwrap();
    b.add_contact("alice", &card_a).await.unwrap();

    let mut setup_ms = Vec::new();
    let mut ringing_ms = Vec::new();
    for _ in 0..calls {
        let (mut ev_a, mut ev_b) = (a.subscribe(), b.subscribe());
        let started = Instant::now();
        a.call("bob", false).await.expect("the call rings");
        ringing_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let (_, _) = tokio::join!(until(&mut ev_a, active), until(&mut ev_b, active));
        setup_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        a.hangup().await.unwrap();
        let (_, _) = tokio::join!(until(&mut ev_a, ended), until(&mut ev_b, ended));
    }
    let first = setup_ms[0];
    let mut steady: Vec<f64> = setup_ms[1..].to_vec();
    steady.sort_by(f64::total_cmp);
    let mut all = setup_ms.clone();
    all.sort_by(f64::total_cmp);
    ringing_ms.sort_by(f64::total_cmp);
    let report = serde_json::json!({
        "bench": "call_setup",
        "calls": calls,
        "first_call_ms": first,
        "p50_ms": percentile(&all, 50.0),
        "p95_ms": percentile(&all, 95.0),
        "max_ms": all.last(),
        "after_first": { "p50_ms": percentile(&steady, 50.0), "p95_ms": percentile(&steady, 95.0) },
        "to_ringing": { "p50_ms": percentile(&ringing_ms, 50.0), "p95_ms": percentile(&ringing_ms, 95.0) },
        "goal_ms": 30,
    });
    println!("{report}");
    alice.stop().await;
    bob.stop().await;
}
