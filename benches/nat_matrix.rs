//! The NAT matrix: for each pairing of home networks in the namespace lab (same LAN, cone/cone,
//! cone/symmetric, symmetric/symmetric, public/cone, a home behind carrier-grade NAT, two nodes
//! behind one NAT without mDNS (hairpin), and cone/cone with delay, jitter and burst loss on every
//! home link through NFQUEUE), the time from `hail call` to both sides
//! having a secure channel and the call active (the callee auto-answers), and the path chosen.
//! Real daemons, real iptables NAT, a public hail node as bootstrap, relay and reflector. Needs
//! root (network namespaces). Prints one JSON object.
//!
//! Then "node start → a peer can call it": a node behind a cone NAT starts (a new identity each
//! time) and a peer in another cone home calls it at once (as soon as the new node's card is in its
//! contacts): the time from starting the daemon to the call being active, and to the node's own
//! status saying its record is findable.
//!
//! Usage: `sudo cargo bench --bench nat_matrix [-- CALLS] [callable]` (default 5 calls per row;
//! `callable`: only the start-to-callable row; `speech --speech S.wav [--speech …] --pesq PYTHON
//! [--out DIR]`: speech through the lab instead, clean and with delay, jitter and burst loss on
//! both home links, scored with PESQ-WB). Under `cargo test` (no `--bench`) it makes one
//! cone/cone call as a smoke test and fails if it does not connect directly.

#[path = "../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;
#[path = "../tests/common/natlab.rs"]
mod natlab;
#[path = "../tests/common/netns.rs"]
mod netns;
#[path = "common/speech_quality.rs"]
mod speech_quality;

#[path = "common/args.rs"]
mod args;

use std::path::Path;
use std::time::{Duration, Instant};

use common::TestDaemon;
use natlab::nfqueue::Impairment;
use natlab::{Lab, Nat, PUBLIC_IP};
use netns::Netns;
use serde_json::{Value, json};

fn daemon(ns: &Netns, home: &Path, flags: &[&str]) -> TestDaemon {
    std::fs::create_dir_all(home).unwrap();
    // Many calls in a row between the same two peers: lift the anti-spam limits.
    std::fs::write(home.join("config.toml"), "[calls]\nmax_invites_per_peer = 1000\nmax_invites_total = 1000\n").unwrap();
    let mut all = vec!["--audio-in", "silence", "--audio-out", "null", "--video-out", "null"];
    all.extend_from_slice(flags);
    TestDaemon::try_start_cmd(home, &ns.exec(), &all).unwrap_or_else(|log| panic!("daemon in {}: {log}", ns.name))
}

fn status(d: &TestDaemon) -> Value {
    d.hail(&["--json", "status"]).json()["ok"].clone()
}

fn wait(d: &TestDaemon, what: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let s = status(d);
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}: {s}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ready_behind_nat(s: &Value) -> bool {
    s["network"]["reachability"] == "private"
        && s["network"]["relayed_via"].as_array().is_some_and(|r| !r.is_empty())
        && s["network"]["advertised_addresses"].to_string().contains("p2p-circuit")
        && s["calls_reflexive"].is_string()
        && s["network"]["record_published_at_ms"].is_u64()
}

/// The lab's public node (bootstrap, DHT server, relay, reflector), serving, and its bootstrap
/// address.
fn public_relay(lab: &Lab, dir: &Path) -> (TestDaemon, String) {
    let relay = daemon(
        &lab.public,
        &dir.join("relay"),
        &["--no-mdns", "--listen", &format!("/ip4/{PUBLIC_IP}/tcp/4001"), "--media-listen", &format!("{PUBLIC_IP}:5001"), "--relay", "on", "--dht-mode", "server"],
    );
    let relay_id = status(&relay)["peer_id"].as_str().unwrap().to_owned();
    wait(&relay, "relay", Duration::from_secs(10), |s| s["network"]["relay_serving"] == true);
    (relay, format!("/ip4/{PUBLIC_IP}/tcp/4001/p2p/{relay_id}"))
}

#[derive(Clone, Copy)]
enum Place {
    Public,
    Home(Nat),
    /// On the same LAN as the other side (mDNS).
    SameLan,
    /// Behind the same cone NAT as the other side, mDNS off: what the DHT says is all they know
    /// (the hairpin row).
    SameNat,
}

/// Delay, jitter and burst loss on every home's internet link, each way (NFQUEUE): 25 ± 5 ms and
/// 5 % Gilbert-Elliott loss in bursts of 3.
fn bad_link() -> Impairment {
    Impairment { delay: Duration::from_millis(25), jitter: Duration::from_millis(5), ..Impairment::bursty(0.05, 3.0) }
}

fn row(name: &str, caller: Place, callee: Place, calls: usize, link: Option<Impairment>) -> Value {
    let mut lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let (relay, bootstrap) = public_relay(&lab, dir.path());
    let home_flags = ["--no-mdns", "--listen", "/ip4/0.0.0.0/tcp/0", "--media-listen", "0.0.0.0:0", "--bootstrap", &bootstrap];
    let lan_flags = ["--listen", "/ip4/0.0.0.0/tcp/0", "--media-listen", "0.0.0.0:0"];
    let mut start = |place: Place, who: &str, port: u16, extra: &[&str]| -> TestDaemon {
        let home = dir.path().join(who);
        match place {
            Place::Public => {
                let (listen, media) = (format!("/ip4/{PUBLIC_IP}/tcp/{port}"), format!("{PUBLIC_IP}:0"));
                let base = ["--no-mdns", "--listen", &listen, "--media-listen", &media, "--bootstrap", &bootstrap, "--relay", "off"];
                let flags = [&base[..], extra].concat();
                daemon(&lab.public, &home, &flags)
            }
            Place::Home(nat) => {
                let h = lab.add_home(nat);
                let d = daemon(&lab.homes[h].host, &home, &[&home_flags[..], extra].concat());
                wait(&d, "behind NAT and ready", Duration::from_secs(30), ready_behind_nat);
                d
            }
            Place::SameNat => {
                let h = if lab.homes.is_empty() { lab.add_home(Nat::Cone) } else { 0 };
                let d = if who == "alice" {
                    daemon(&lab.homes[h].host, &home, &[&home_flags[..], extra].concat())
                } else {
                    let o = lab.add_host(h);
                    daemon(&lab.homes[h].others[o].0, &home, &[&home_flags[..], extra].concat())
                };
                wait(&d, "behind NAT and ready", Duration::from_secs(30), ready_behind_nat);
                d
            }
            Place::SameLan => {
                let h = if lab.homes.is_empty() { lab.add_home(Nat::Cone) } else { 0 };
                if lab.homes[h].others.is_empty() && who == "alice" {
                    daemon(&lab.homes[h].host, &home, &[&lan_flags[..], extra].concat())
                } else {
                    let o = lab.add_host(h);
                    daemon(&lab.homes[h].others[o].0, &home, &[&lan_flags[..], extra].concat())
                }
            }
        }
    };
    let alice = start(caller, "alice", 4002, &[]);
    let bob = start(callee, "bob", 4003, &["--auto-answer"]);
    let _impaired: Vec<_> =
        link.map_or(Vec::new(), |l| (0..lab.homes.len()).map(|h| lab.impair_link(h, l, 100 + 2 * h as u64)).collect());
    let card = |d: &TestDaemon, n: &str| d.hail(&["--json", "id", "--name", n]).json()["ok"]["card"].as_str().unwrap().to_owned();
    let (ca, cb) = (card(&alice, "alice"), card(&bob, "bob"));
    alice.hail(&["contacts", "add", "bob", &cb]).ok();
    bob.hail(&["contacts", "add", "alice", &ca]).ok();
    if matches!(callee, Place::SameLan) {
        wait(&alice, "bob on the LAN", Duration::from_secs(20), |s| s["network"]["visible_peers"].as_u64().unwrap_or(0) >= 1);
    }

    let mut times = Vec::new();
    let mut paths = Vec::new();
    let mut failures = 0;
    for _ in 0..calls {
        let t0 = Instant::now();
        let out = alice.hail(&["--json", "call", "bob", "--detach"]);
        if !out.status.success() {
            failures += 1;
            continue;
        }
        let s = wait(&alice, "active", Duration::from_secs(30), |s| s["call"]["state"] == "active" || s["call"]["end_reason"].is_object());
        if s["call"]["state"] != "active" {
            failures += 1;
            continue;
        }
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        paths.push(s["call"]["path"]["kind"].as_str().unwrap_or("?").to_owned());
        alice.hail(&["hangup"]).ok();
        wait(&bob, "ended", Duration::from_secs(10), |s| s["call"].is_null() || s["call"]["end_reason"].is_object());
        std::thread::sleep(Duration::from_millis(300));
    }
    drop((alice, bob, relay));
    drop(lab);
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times.get(((times.len().max(1) - 1) as f64 * p).round() as usize).map(|t| t.round());
    let mut counts = std::collections::BTreeMap::new();
    for p in &paths {
        *counts.entry(p.clone()).or_insert(0) += 1;
    }
    json!({
        "row": name,
        "calls": calls,
        "connected": times.len(),
        "failed": failures,
        "setup_ms": { "p50": pct(0.5), "max": pct(1.0) },
        "paths": counts,
    })
}

/// The lab's public relay and two cone homes (nobody in them yet). Fields drop in order: the relay
/// before the namespaces it runs in.
struct TwoConeHomes {
    _relay: TestDaemon,
    lab: Lab,
    dir: tempfile::TempDir,
    bootstrap: String,
    homes: (usize, usize),
}

impl TwoConeHomes {
    fn new() -> TwoConeHomes {
        let mut lab = Lab::new();
        let dir = tempfile::tempdir().unwrap();
        let (relay, bootstrap) = public_relay(&lab, dir.path());
        let homes = (lab.add_home(Nat::Cone), lab.add_home(Nat::Cone));
        TwoConeHomes { _relay: relay, lab, dir, bootstrap, homes }
    }

    /// A node at home `h` (0 or 1) named `who`, without mDNS, bootstrapped by the relay, plus `extra`.
    fn node(&self, h: usize, who: &str, extra: &[&str]) -> TestDaemon {
        let home = if h == 0 { self.homes.0 } else { self.homes.1 };
        let flags = ["--no-mdns", "--listen", "/ip4/0.0.0.0/tcp/0", "--media-listen", "0.0.0.0:0", "--bootstrap", &self.bootstrap];
        daemon(&self.lab.homes[home].host, &self.dir.path().join(who), &[&flags[..], extra].concat())
    }
}

/// "Node start → a peer can call it", `samples` times: a fresh node starts behind a cone NAT and a
/// ready peer in another cone home calls it at once.
fn callable_after_start(samples: usize) -> Value {
    let lab = TwoConeHomes::new();
    let alice = lab.node(0, "alice", &[]);
    wait(&alice, "alice ready", Duration::from_secs(30), ready_behind_nat);
    let (mut callable, mut findable, mut failures) = (Vec::new(), Vec::new(), 0);
    for n in 0..samples {
        let name = format!("bob{n}");
        let t0 = Instant::now();
        let t0_wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let bob = lab.node(1, &name, &["--auto-answer"]);
        let card = bob.hail(&["--json", "id", "--name", &name]).json()["ok"]["card"].as_str().unwrap().to_owned();
        let alice_card = alice.hail(&["--json", "id", "--name", "alice"]).json()["ok"]["card"].as_str().unwrap().to_owned();
        alice.hail(&["contacts", "add", &name, &card]).ok();
        bob.hail(&["contacts", "add", "alice", &alice_card]).ok();
        let out = alice.hail(&["--json", "call", &name, "--detach"]);
        let s = if out.status.success() {
            wait(&alice, "active", Duration::from_secs(90), |s| s["call"]["state"] == "active" || s["call"]["end_reason"].is_object())
        } else {
            Value::Null
        };
        if s["call"]["state"] == "active" {
            callable.push(t0.elapsed().as_secs_f64() * 1000.0);
        } else {
            failures += 1;
            eprintln!("{name}: not callable: {} {s}", out.stdout);
        }
        // When its record with its relayed address went out (it is findable through the DHT from
        // then on), by the record's own timestamp (same machine's clock).
        let b = wait(&bob, "findable with its relayed address", Duration::from_secs(30), |s| {
            s["network"]["record_findable"] == true && s["network"]["advertised_addresses"].to_string().contains("p2p-circuit")
        });
        if let Some(at) = b["network"]["record_published_at_ms"].as_u64() {
            findable.push(at.saturating_sub(t0_wall) as f64);
        }
        let a = status(&alice);
        if a["call"]["end_reason"].is_object() {
            eprintln!("{name}: the call ended early: {}", a["call"]);
        } else {
            alice.hail(&["hangup"]).ok();
        }
        wait(&alice, "ended", Duration::from_secs(10), |s| s["call"].is_null() || s["call"]["state"] == "ended");
        drop(bob);
    }
    drop(alice);
    drop(lab);
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v.get(((v.len().max(1) - 1) as f64 * p).round() as usize).map(|t| t.round())
    };
    json!({
        "row": "node start -> callable (cone/cone)",
        "samples": samples,
        "failed": failures,
        "start_to_call_active_ms": { "p50": pct(&mut callable, 0.5), "max": pct(&mut callable, 1.0) },
        "start_to_relayed_record_out_ms": { "p50": pct(&mut findable, 0.5), "max": pct(&mut findable, 1.0) },
    })
}

/// Speech through the lab, scored with PESQ-WB: for each link condition (clean, and
/// [`bad_link`] on both home links: about 10 % loss in bursts and 50 ± 10 ms one way, end to end),
/// one call per sample from a cone home to another, the callee's recording against the speech.
/// The same yardstick as `audio_quality`'s in-process rows, through real namespaces and NAT.
fn speech_rows(speech: &[String], python: &str, out: &Path) -> Vec<Value> {
    let mut rows = Vec::new();
    for (name, link) in [("lab cone/cone, clean", None), ("lab cone/cone, 25±5 ms and 5 % bursts of 3 per home link", Some(bad_link()))] {
        let lab = TwoConeHomes::new();
        let (alice, bob) = (lab.node(0, "alice", &[]), lab.node(1, "bob", &[]));
        for d in [&alice, &bob] {
            wait(d, "behind NAT and ready", Duration::from_secs(30), ready_behind_nat);
        }
        let card = |d: &TestDaemon, n: &str| d.hail(&["--json", "id", "--name", n]).json()["ok"]["card"].as_str().unwrap().to_owned();
        let (ca, cb) = (card(&alice, "alice"), card(&bob, "bob"));
        alice.hail(&["contacts", "add", "bob", &cb]).ok();
        bob.hail(&["contacts", "add", "alice", &ca]).ok();
        let _impaired: Vec<_> =
            link.map_or(Vec::new(), |l| vec![lab.lab.impair_link(lab.homes.0, l, 200), lab.lab.impair_link(lab.homes.1, l, 300)]);
        let mut calls = Vec::new();
        for (k, sample) in speech.iter().enumerate() {
            let slug: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
            let received = out.join(format!("{slug}-s{k}.wav"));
            let _ = std::fs::remove_file(&received);
            let reference = hail::media::io::read_wav_mono_48k(Path::new(sample)).ok();
            let seconds = reference.as_ref().map_or(0.0, |x| x.len() as f64 / 48_000.0);
            alice.hail(&["--json", "call", "bob", "--detach", "--audio-in", sample]).ok();
            wait(&bob, "ringing", Duration::from_secs(30), |s| s["call"]["state"] == "ringing");
            bob.hail(&["answer", "--audio-out", &received.display().to_string()]).ok();
            wait(&bob, "active", Duration::from_secs(30), |s| s["call"]["state"] == "active");
            std::thread::sleep(Duration::from_secs_f64(seconds + 1.5));
            let s = status(&bob);
            alice.hail(&["hangup"]).ok();
            wait(&bob, "ended", Duration::from_secs(10), |s| s["call"].is_null() || s["call"]["end_reason"].is_object());
            let (r16, d16) = (received.with_extension("ref16.wav"), received.with_extension("deg16.wav"));
            let pesq = reference.zip(hail::media::io::read_wav_mono_48k(&received).ok()).and_then(
                |(reference, degraded)| {
                    speech_quality::write_16k(&r16, &reference);
                    speech_quality::write_16k(&d16, &degraded);
                    speech_quality::pesq(python, &r16, &d16)
                },
            );
            let j = &s["call"]["audio"]["receive"]["jitter"];
            eprintln!("{name}, sample {k}: PESQ-WB {pesq:?}, path {}, jitter {j}", s["call"]["path"]["kind"]);
            calls.push(json!({ "sample": k, "pesq_wb": pesq, "path": s["call"]["path"]["kind"], "lost": j["lost"], "concealed": j["concealed"],
                "received": j["received"], "rtt_ms": s["call"]["audio"]["rtt_ms"], "mouth_to_ear_ms": s["call"]["audio"]["receive"]["latency_ms"] }));
        }
        drop((alice, bob));
        drop(lab);
        let scores: Vec<f64> = calls.iter().filter_map(|c| c["pesq_wb"].as_f64()).collect();
        let summary = speech_quality::mean_sd(&scores).map(|(m, sd)| json!({ "mean": m, "sd": sd, "n": scores.len() }));
        rows.push(json!({ "row": name, "loss_model": if link.is_some() { "gilbert-elliott, mean burst 3, per home link (NFQUEUE)" } else { "none" },
            "pesq_wb": summary, "calls": calls }));
    }
    rows
}

fn main() {
    let args = args::BenchArgs::from_env(&["--speech", "--pesq", "--out"]);
    let bench = args.bench;
    let calls: usize = args.number().unwrap_or(if bench { 5 } else { 1 });
    if bench && args.has_word("speech") {
        let speech: Vec<String> = args.all_values("--speech").map(str::to_owned).collect();
        let python = args.value("--pesq").expect("--pesq PYTHON (scripts/bench-audio.sh makes the venv)");
        let out = std::path::PathBuf::from(args.value("--out").unwrap_or("/tmp/hail-lab-speech"));
        std::fs::create_dir_all(&out).unwrap();
        println!("{}", json!({ "bench": "nat_matrix", "results": speech_rows(&speech, python, &out) }));
        return;
    }
    if bench && args.has_word("callable") {
        let r = callable_after_start(calls);
        println!("{}", json!({ "bench": "nat_matrix", "results": [r] }));
        return;
    }
    let mut rows = vec![("cone/cone", Place::Home(Nat::Cone), Place::Home(Nat::Cone))];
    if bench {
        rows = vec![
            ("same LAN", Place::SameLan, Place::SameLan),
            ("cone/cone", Place::Home(Nat::Cone), Place::Home(Nat::Cone)),
            ("cone/symmetric", Place::Home(Nat::Cone), Place::Home(Nat::Symmetric)),
            ("symmetric/symmetric", Place::Home(Nat::Symmetric), Place::Home(Nat::Symmetric)),
            ("public/cone", Place::Public, Place::Home(Nat::Cone)),
            ("carrier-grade NAT/cone", Place::Home(Nat::CarrierCone), Place::Home(Nat::Cone)),
            ("same NAT, no mDNS (hairpin)", Place::SameNat, Place::SameNat),
            ("cone/cone, 25±5 ms, 5 % bursts of 3 per home link", Place::Home(Nat::Cone), Place::Home(Nat::Cone)),
        ];
    }
    let mut results = Vec::new();
    for (name, a, b) in rows {
        let link = name.contains("bursts").then(bad_link);
        let r = row(name, a, b, calls, link);
        eprintln!("{r}");
        if !bench {
            assert_eq!(r["connected"], calls, "every call connects: {r}");
            assert_eq!(r["paths"]["direct_punched"], calls, "cone/cone is punched: {r}");
        }
        results.push(r);
    }
    if bench {
        let r = callable_after_start(calls);
        eprintln!("{r}");
        results.push(r);
    }
    println!("{}", json!({ "bench": "nat_matrix", "results": results }));
}
