//! DHT lookup latency over a loopback network of real hail daemons (in one process, mDNS off),
//! bootstrapped through one node. Prints one JSON object: all lookups, those of a peer the asker had
//! no connection to when it started, and a newcomer's lookups, each with its count and failures
//! (failed lookups count in `count`, not in the percentiles).
//!
//! Usage: `cargo bench --bench dht_lookup [-- NODES LOOKUPS_PER_NODE]` (default 50 nodes, 10 lookups
//! each, to targets chosen by a fixed-seed shuffle). Under `cargo test` (no `--bench` argument) it
//! runs a 5-node smoke version and fails if any lookup fails, so the bench cannot rot unseen.

#[path = "common/args.rs"]
mod args;

use std::time::{Duration, Instant};

use hail::home::Home;
use hail::node::{Daemon, DaemonOptions};

fn options(bootstrap: Vec<String>) -> DaemonOptions {
    let mut o = DaemonOptions::loopback("silence", "null");
    o.network.bootstrap = Some(bootstrap);
    o.network.dht_mode = Some("server".parse().unwrap());
    o
}

async fn listen_address(d: &Daemon) -> String {
    loop {
        let status = d.node().status().await.unwrap();
        if let Some(a) = status.network.listen_addresses.first() {
            return format!("{a}/p2p/{}", d.peer_id());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args::BenchArgs::from_env(&[]);
    let bench = args.bench;
    let args: Vec<usize> = args.numbers();
    let nodes = args.first().copied().unwrap_or(if bench { 50 } else { 5 }).max(2);
    let per_node = args.get(1).copied().unwrap_or(if bench { 10 } else { 2 }).min(nodes - 1);
    let dir = tempfile::tempdir().unwrap();

    let first = Daemon::start(Home::new(dir.path().join("n0")), options(vec![])).await.unwrap();
    let bootstrap = listen_address(&first).await;
    let mut daemons = vec![first];
    for i in 1..nodes {
        daemons.push(
            Daemon::start(Home::new(dir.path().join(format!("n{i}"))), options(vec![bootstrap.clone()])).await.unwrap(),
        );
    }
    // Let every node join (routing table non-empty).
    for d in &daemons {
        while d.node().status().await.unwrap().network.routing_table_peers == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let ids: Vec<String> = daemons.iter().map(|d| d.peer_id().to_base58()).collect();

    // A fixed-seed shuffle of targets per node (xorshift), so runs are comparable.
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut latencies = Vec::new();
    // Lookups of a peer that had no connection to the asker when the lookup started: these pay for
    // a dial, and often a DHT query; the rest are answered from an open connection.
    let mut cold = Vec::new();
    let mut via_counts = std::collections::BTreeMap::<String, usize>::new();
    // Failed lookups: of all, and of those not connected before.
    let (mut failures, mut cold_failures) = (0usize, 0usize);
    for (i, d) in daemons.iter().enumerate() {
        let mut targets: Vec<usize> = (0..nodes).filter(|j| *j != i).collect();
        for k in (1..targets.len()).rev() {
            targets.swap(k, (next() % (k as u64 + 1)) as usize);
        }
        for &j in targets.iter().take(per_node) {
            let connected =
                d.node().peers().await.unwrap().iter().any(|p| p.peer_id.to_base58() == ids[j] && p.connected);
            let started = Instant::now();
            match d.node().find(&ids[j]).await {
                Ok(found) => {
                    let ms = started.elapsed().as_secs_f64() * 1000.0;
                    latencies.push(ms);
                    if !connected {
                        cold.push(ms);
                    }
                    let via = serde_json::to_value(found.found.via).unwrap().as_str().unwrap().to_owned();
                    *via_counts.entry(via).or_default() += 1;
                }
                Err(_) => {
                    failures += 1;
                    cold_failures += usize::from(!connected);
                }
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    cold.sort_by(f64::total_cmp);

    // Newcomers: a fresh node joins through node 0 and looks up a peer it has no connection to, so
    // every one of these is a real DHT lookup plus a dial.
    let mut newcomer = Vec::new();
    // A newcomer already connected to every node it drew has no cold target: skipped, counted.
    let (mut newcomer_failures, mut newcomer_skipped) = (0usize, 0usize);
    for k in 0..(if bench { 30 } else { 2 }) {
        let joined =
            Daemon::start(Home::new(dir.path().join(format!("newcomer{k}"))), options(vec![bootstrap.clone()]))
                .await
                .unwrap();
        while joined.node().status().await.unwrap().network.routing_table_peers == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let peers = joined.node().peers().await.unwrap();
        let target = (0..nodes)
            .map(|_| (next() % nodes as u64) as usize)
            .find(|j| !peers.iter().any(|p| p.peer_id.to_base58() == ids[*j] && p.connected));
        if let Some(j) = target {
            let started = Instant::now();
            match joined.node().find(&ids[j]).await {
                Ok(_) => newcomer.push(started.elapsed().as_secs_f64() * 1000.0),
                Err(_) => newcomer_failures += 1,
            }
        } else {
            newcomer_skipped += 1;
        }
        joined.stop().await;
    }
    newcomer.sort_by(f64::total_cmp);
    let summary = |v: &[f64], failures: usize| {
        serde_json::json!({
            "count": v.len() + failures,
            "failures": failures,
            "p50_ms": percentile(v, 50.0),
            "p95_ms": percentile(v, 95.0),
            "max_ms": v.last().copied().unwrap_or(f64::NAN),
        })
    };
    let mut newcomers = summary(&newcomer, newcomer_failures);
    newcomers["skipped"] = newcomer_skipped.into();
    let report = serde_json::json!({
        "bench": "dht_lookup",
        "nodes": nodes,
        "lookups": latencies.len() + failures,
        "failures": failures,
        "p50_ms": percentile(&latencies, 50.0),
        "p95_ms": percentile(&latencies, 95.0),
        "max_ms": latencies.last().copied().unwrap_or(f64::NAN),
        "via": via_counts,
        "not_connected_before": summary(&cold, cold_failures),
        "newcomer_lookups": newcomers,
        "goal_p95_ms": 300,
    });
    println!("{report}");
    for d in daemons {
        d.stop().await;
    }
    if !bench && failures + newcomer_failures > 0 {
        eprintln!("smoke run: {} lookups failed", failures + newcomer_failures);
        std::process::exit(1);
    }
}
