//! Floods against a node in a call: for each flood, three real `hail daemon` processes on loopback
//! (alice and carol are bob's contacts, bob answers contacts at once and refuses unknown callers),
//! alice calls bob, and while the call runs this process floods bob (or a media relay) for a
//! bounded time:
//!
//! - `invites`: 1000 invites/s from 50 throw-away PeerIds (`/hail/invite/1` over real libp2p);
//! - `initials`: 1000 QUIC Initials/s to bob's call endpoint, from 256 UDP sockets that never
//!   complete a handshake;
//! - `connections`: 500 libp2p connections to bob (TCP, noise, yamux), held open;
//! - `relay`: 100 media relay allocation requests/s from 50 throw-away PeerIds, to a media relay
//!   node (the relay service behind libp2p, in this process: a daemon on loopback does not serve
//!   media relay, its call address is not public). The call does not pass through the relay.
//!
//! Measured for each: the call's audio frames lost during the flood (both directions), its
//! jitter-buffer target (max over the flood, both sides), whether bob still takes a QUIC connection
//! right after the flood, whether carol (a contact) can call bob right after (alice hangs up
//! first), bob's RSS before, right after and at its peak, bob's CPU during the flood, his call
//! history and home size before and after, and whether any daemon panicked or died. Prints one JSON
//! object with the goals beside the numbers; `goals_met` holds the four goals and, marked
//! `extra_`, whether bob's call endpoint still took a QUIC connection (carol's call can succeed
//! without that: bob dials her too).
//!
//! Usage: `cargo bench --bench floods [-- SECONDS] [invites|initials|connections|relay …]`
//! (default 10 s per flood, all four). Under `cargo test` (no `--bench`) it runs each flood for 1 s
//! at a tenth of the rate as a smoke test: it fails only if a daemon panics or dies, or if the
//! harness itself breaks (no call before the flood), never on a timing.

#[path = "floods/attack.rs"]
mod attack;

#[path = "common/args.rs"]
mod args;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use attack::{Counters, RelayNode};
use hail::control::Client;
use hail::home::Home;
use libp2p::{Multiaddr, PeerId};
use serde_json::{Value, json};

const HAIL: &str = env!("CARGO_BIN_EXE_hail");

/// The goals of issue 11, printed beside the numbers.
const GOAL_AUDIO_LOSS_PERCENT: f64 = 1.0;
const GOAL_JITTER_TARGET_MS: f64 = 60.0;
const GOAL_RSS_RATIO: f64 = 2.0;

const FLOODS: &[&str] = &["invites", "initials", "connections", "relay"];

/// How hard and how long.
#[derive(Clone, Copy)]
struct Plan {
    seconds: f64,
    /// 1.0 in the bench; a tenth in the smoke run.
    scale: f64,
    /// Time for the call to settle (jitter buffer, first bitrate steps) before the flood.
    settle: Duration,
}

impl Plan {
    fn n(&self, full: usize) -> usize {
        ((full as f64 * self.scale).round() as usize).max(1)
    }
}

/// A `hail daemon` child process (loopback only, mDNS off); killed when dropped.
struct Daemon {
    name: &'static str,
    home: PathBuf,
    log: PathBuf,
    child: Child,
}

impl Daemon {
    async fn start(dir: &Path, name: &'static str, extra: &[&str]) -> Daemon {
        let home = dir.join(name);
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(HAIL)
            .arg("--home")
            .arg(&home)
            .args(["daemon", "--log", "info", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .args(["--media-listen", "127.0.0.1:0", "--audio-in", "tone:440", "--audio-out", "null"])
            .args(extra)
            .env_remove("HAIL_HOME")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create the daemon log"))
            .spawn()
            .expect("spawn hail daemon");
        let mut d = Daemon { name, home, log, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("daemon {name} exited at start ({status}):\n{}", d.log_text());
            }
            if Client::connect(&d.socket()).await.is_ok() {
                return d;
            }
            assert!(Instant::now() < deadline, "daemon {name} did not answer in 30 s:\n{}", d.log_text());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn socket(&self) -> PathBuf {
        Home::new(&self.home).socket_path()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Lines of its log that report a panic.
    fn panics(&self) -> Vec<String> {
        self.log_text().lines().filter(|l| l.contains("panicked at")).map(|l| format!("{}: {l}", self.name)).collect()
    }

    async fn client(&self) -> Client {
        let mut c = Client::connect(&self.socket()).await.unwrap_or_else(|e| panic!("connect to {}: {e}", self.name));
        c.set_timeout(Duration::from_secs(10));
        c
    }

    /// SIGTERM, then SIGKILL if it has not exited within 10 s.
    async fn stop(mut self) {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.alive() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A control command from its JSON form (robust to new optional fields).
fn command(v: Value) -> hail::control::Command {
    serde_json::from_value(v).expect("a control command")
}

async fn status(c: &mut Client) -> Value {
    c.request(&command(json!({"cmd": "status"}))).await.unwrap_or(Value::Null)
}

fn call_state(s: &Value) -> &str {
    s["call"]["state"].as_str().unwrap_or("none")
}

/// (received, lost, concealed) audio frames so far on this side's jitter buffer.
fn audio_counts(s: &Value) -> (u64, u64, u64) {
    let j = &s["call"]["audio"]["receive"]["jitter"];
    let n = |k: &str| j[k].as_u64().unwrap_or(0);
    (n("received"), n("lost"), n("concealed"))
}

/// CPU seconds a process has used (user + system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) / hz
}

/// Bytes under `dir` (the daemon's database grows with what it records).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// How many call records bob's history holds (counted up to 1000).
async fn history_len(c: &mut Client) -> u64 {
    let v = c.request(&command(json!({"cmd": "history", "limit": 1000}))).await.unwrap_or(Value::Null);
    v.as_array().map_or(0, |a| a.len() as u64)
}

fn rss_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
        .unwrap_or(0)
}

/// Polls `client` until `pred` holds on its status, at most `limit`; the last status either way.
async fn wait_status(c: &mut Client, limit: Duration, pred: impl Fn(&Value) -> bool) -> (bool, Value) {
    let deadline = Instant::now() + limit;
    loop {
        let s = status(c).await;
        if pred(&s) {
            return (true, s);
        }
        if Instant::now() > deadline {
            return (false, s);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn card(c: &mut Client, name: &str) -> String {
    let v = c.request(&command(json!({"cmd": "id", "set_name": name}))).await.expect("id");
    v["card"].as_str().expect("a card").to_owned()
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn loss_percent(before: (u64, u64, u64), after: (u64, u64, u64)) -> Option<f64> {
    let received = after.0.saturating_sub(before.0);
    let lost = after.1.saturating_sub(before.1);
    (received + lost > 0).then(|| round(lost as f64 * 100.0 / (received + lost) as f64))
}

/// Does bob's call endpoint still take a QUIC connection? A reflect request (any node answers it)
/// from a fresh endpoint, bounded at 5 s.
async fn quic_accepts(calls: std::net::SocketAddr) -> Result<f64, String> {
    let endpoint = hail::transport::endpoint::bind("127.0.0.1:0".parse().unwrap()).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(5), hail::transport::reflect::reflect(&endpoint, calls)).await;
    endpoint.close(0u32.into(), b"");
    match r {
        Ok(Ok(_)) => Ok(round(t.elapsed().as_secs_f64() * 1000.0)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer in 5 s".into()),
    }
}

/// Runs one flood against a fresh trio of daemons; returns its report.
async fn flood(kind: &str, plan: Plan, attackers: &tokio::runtime::Handle) -> Value {
    let dir = tempfile::tempdir().expect("a temp dir");
    let alice = Daemon::start(dir.path(), "alice", &[]).await;
    let bob = Daemon::start(dir.path(), "bob", &["--auto-answer", "--refuse-unknown"]).await;
    let carol = Daemon::start(dir.path(), "carol", &[]).await;
    let (mut ca, mut cb, mut cc) = (alice.client().await, bob.client().await, carol.client().await);
    let (card_a, card_b, card_c) =
        (card(&mut ca, "alice").await, card(&mut cb, "bob").await, card(&mut cc, "carol").await);
    let add = |name: &str, card: &str| command(json!({"cmd": "contacts.add", "name": name, "contact": card}));
    ca.request(&add("bob", &card_b)).await.expect("alice adds bob");
    cb.request(&add("alice", &card_a)).await.expect("bob adds alice");
    cb.request(&add("carol", &card_c)).await.expect("bob adds carol");
    cc.request(&add("bob", &card_b)).await.expect("carol adds bob");
    let (ok, s) =
        wait_status(&mut cb, Duration::from_secs(10), |s| s["network"]["listen_addresses"][0].is_string()).await;
    assert!(ok, "bob has no listen address: {s}");
    let bob_id: PeerId = s["peer_id"].as_str().unwrap().parse().unwrap();
    let bob_addr: Multiaddr = s["network"]["listen_addresses"][0].as_str().unwrap().parse().unwrap();
    let bob_calls: std::net::SocketAddr = s["calls_address"].as_str().expect("bob's calls address").parse().unwrap();
    let relay = (kind == "relay").then(RelayNode::start);

    // The call under attack.
    ca.request(&command(json!({"cmd": "call", "peer": "bob"}))).await.expect("alice's call rings");
    for (c, who) in [(&mut ca, "alice"), (&mut cb, "bob")] {
        let (ok, s) = wait_status(c, Duration::from_secs(20), |s| call_state(s) == "active").await;
        assert!(ok, "harness: the call is not active on {who} before the flood: {s}");
    }
    tokio::time::sleep(plan.settle).await;
    let rss_before = rss_kb(bob.pid(), "VmRSS:");
    let (history0, db0) = (history_len(&mut cb).await, dir_bytes(&bob.home));
    let (a0, b0) = (audio_counts(&status(&mut ca).await), audio_counts(&status(&mut cb).await));
    let (cpu0, wall0) = (cpu_seconds(bob.pid()), Instant::now());

    // The flood, on the attackers' runtime.
    let seconds = plan.seconds;
    let until = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    let mut task = None;
    let mut thread = None;
    let (rate, what) = match kind {
        "invites" => {
            let (peers, per_peer) = (plan.n(50), 20.0);
            task = Some(attackers.spawn(attack::invites(bob_id, bob_addr.clone(), peers, per_peer, until, c)));
            (peers as f64 * per_peer, format!("{peers} throw-away PeerIds, {per_peer}/s each"))
        }
        "initials" => {
            let rate = 1000.0 * plan.scale;
            let deadline = Instant::now() + Duration::from_secs_f64(seconds);
            thread = Some(std::thread::spawn(move || attack::initials(bob_calls, rate, 256, deadline, &c)));
            (rate, "fresh Initials (new connection id each) from 256 UDP sockets on 127.0.0.1".to_owned())
        }
        "connections" => {
            let n = plan.n(500);
            task = Some(attackers.spawn(attack::connections(bob_id, bob_addr.clone(), n, until, c)));
            (n as f64, format!("{n} throw-away PeerIds, one connection each, held until the end"))
        }
        "relay" => {
            let r = relay.as_ref().unwrap();
            let (peers, per_peer) = (plan.n(50), 2.0);
            task = Some(attackers.spawn(attack::relay_requests(r.peer_id, r.addr.clone(), peers, per_peer, until, c)));
            (peers as f64 * per_peer, format!("{peers} throw-away PeerIds, {per_peer}/s each, to the relay node"))
        }
        other => panic!("unknown flood {other:?}: expected one of {FLOODS:?}"),
    };

    // Watch the call while the flood runs.
    let (mut target_max, mut status_ms_max, mut states) = (0f64, 0f64, std::collections::BTreeSet::new());
    let mut rss_flood_max = rss_before;
    while tokio::time::Instant::now() < until {
        for c in [&mut ca, &mut cb] {
            let t = Instant::now();
            let s = status(c).await;
            status_ms_max = status_ms_max.max(t.elapsed().as_secs_f64() * 1000.0);
            target_max = target_max.max(s["call"]["audio"]["receive"]["jitter"]["target_ms"].as_f64().unwrap_or(0.0));
            states.insert(call_state(&s).to_owned());
        }
        rss_flood_max = rss_flood_max.max(rss_kb(bob.pid(), "VmRSS:"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (a1, b1) = (audio_counts(&status(&mut ca).await), audio_counts(&status(&mut cb).await));
    let bob_cpu = round((cpu_seconds(bob.pid()) - cpu0) / wall0.elapsed().as_secs_f64() * 100.0);
    let rss_after = rss_kb(bob.pid(), "VmRSS:");
    let rss_peak = rss_kb(bob.pid(), "VmHWM:");
    let call_survived = call_state(&status(&mut ca).await) == "active";
    // The attackers stop at the deadline and close their sockets; a panic there is the harness's.
    if let Some(task) = task {
        match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("harness: the {kind} attack failed: {e}"),
            Err(_) => panic!("harness: the {kind} attack did not stop within 10 s of its deadline"),
        }
    }
    if let Some(thread) = thread {
        thread.join().unwrap_or_else(|_| panic!("harness: the {kind} attack thread panicked"));
    }

    // Right after: alice hangs up, then bob's call endpoint and carol's call.
    let _ = ca.request(&command(json!({"cmd": "hangup"}))).await;
    let (bob_free, _) =
        wait_status(&mut cb, Duration::from_secs(10), |s| !matches!(call_state(s), "active" | "ending")).await;
    let quic_after = quic_accepts(bob_calls).await;
    let t = Instant::now();
    let contact_call = match cc.request(&command(json!({"cmd": "call", "peer": "bob"}))).await {
        Err(e) => Err(format!("refused at once: {e}")),
        Ok(_) => {
            let (ok, s) =
                wait_status(&mut cc, Duration::from_secs(20), |s| matches!(call_state(s), "active" | "ended")).await;
            if ok && call_state(&s) == "active" {
                Ok(round(t.elapsed().as_secs_f64() * 1000.0))
            } else {
                Err(format!("ended as {}", s["call"]["end_reason"]))
            }
        }
    };
    let _ = cc.request(&command(json!({"cmd": "hangup"}))).await;
    let relay_after = match &relay {
        Some(r) => Some(attack::one_allocation(r.peer_id, r.addr.clone(), bob_id).await),
        None => None,
    };
    let rss_end = rss_kb(bob.pid(), "VmRSS:");
    let (history1, db1) = (history_len(&mut cb).await, dir_bytes(&bob.home));

    let mut daemons = [alice, bob, carol];
    let dead: Vec<&str> = daemons.iter_mut().filter_map(|d| (!d.alive()).then_some(d.name)).collect();
    let panics: Vec<String> = daemons.iter().flat_map(Daemon::panics).collect();
    let [alice, bob, carol] = daemons;
    for d in [alice, bob, carol] {
        d.stop().await;
    }

    let loss_ab = loss_percent(b0, b1);
    let loss_ba = loss_percent(a0, a1);
    let loss_max = loss_ab.into_iter().chain(loss_ba).fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    let ratio = (rss_before > 0).then(|| round(rss_flood_max.max(rss_after) as f64 / rss_before as f64));
    let mut report = json!({
        "flood": kind,
        "attack": { "rate_per_second": rate, "how": what, "seconds": seconds, "counters": counters.json() },
        "audio_loss_percent": { "alice_to_bob": loss_ab, "bob_to_alice": loss_ba, "max": loss_max },
        "audio_frames_during_flood": {
            "bob_received": b1.0.saturating_sub(b0.0), "bob_lost": b1.1.saturating_sub(b0.1),
            "bob_concealed": b1.2.saturating_sub(b0.2),
            "alice_received": a1.0.saturating_sub(a0.0), "alice_lost": a1.1.saturating_sub(a0.1),
            "alice_concealed": a1.2.saturating_sub(a0.2),
        },
        "bob_cpu_percent_during_flood": bob_cpu,
        "bob_history_records": { "before": history0, "after": history1, "counted_up_to": 1000 },
        "bob_home_bytes": { "before": db0, "after": db1 },
        "jitter_target_ms_max": round(target_max),
        "call_states_seen": states,
        "call_still_active_after_flood": call_survived,
        "control_status_ms_max": round(status_ms_max),
        "bob_free_after_hangup": bob_free,
        "quic_accepts_after": match &quic_after { Ok(ms) => json!({"ok": true, "ms": ms}), Err(e) => json!({"ok": false, "error": e}) },
        "contact_can_call_after": contact_call.is_ok(),
        "contact_call": match &contact_call { Ok(ms) => json!({"active_after_ms": ms}), Err(e) => json!({"error": e}) },
        "bob_rss_kb": {
            "before": rss_before, "during_max": rss_flood_max, "after": rss_after, "peak_hwm": rss_peak,
            "after_contact_call": rss_end, "ratio_max_to_before": ratio,
        },
        "daemons_exited": dead,
        "panics": panics,
    });
    if let (Some(r), Some(after)) = (&relay, &relay_after) {
        report["relay"] = json!({
            "stats": r.stats(),
            "legitimate_allocation_after": match after { Ok(()) => json!({"ok": true}), Err(e) => json!({"ok": false, "error": e}) },
        });
    }
    let goals = json!({
        "audio_loss": loss_max.is_some_and(|l| l <= GOAL_AUDIO_LOSS_PERCENT),
        "jitter_target": target_max <= GOAL_JITTER_TARGET_MS,
        "contact_can_call_after": contact_call.is_ok(),
        "rss": ratio.is_some_and(|r| r <= GOAL_RSS_RATIO),
        "extra_bob_takes_quic_after": quic_after.is_ok(),
        "no_panic_no_crash": report["panics"].as_array().is_some_and(Vec::is_empty) && report["daemons_exited"].as_array().is_some_and(Vec::is_empty),
    });
    report["goals_met"] = goals;
    report
}

fn main() {
    let args = args::BenchArgs::from_env(&[]);
    let bench = args.bench;
    let seconds = if bench { args.number::<f64>().filter(|s| *s > 0.0) } else { None };
    let plan = if bench {
        Plan { seconds: seconds.unwrap_or(10.0).min(600.0), scale: 1.0, settle: Duration::from_secs(2) }
    } else {
        Plan { seconds: 1.0, scale: 0.1, settle: Duration::from_millis(500) }
    };
    let chosen: Vec<&str> = FLOODS.iter().copied().filter(|f| args.has_word(f)).collect();
    let floods = if bench && !chosen.is_empty() { chosen } else { FLOODS.to_vec() };

    // The attackers get their own runtime so the measurements here are not queued behind them.
    let attackers = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let main_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mut results = Vec::new();
    for kind in floods {
        eprintln!("[floods] {kind}: {} s at {}x the full rate", plan.seconds, plan.scale);
        let r = main_rt.block_on(flood(kind, plan, attackers.handle()));
        eprintln!("{r}");
        results.push(r);
    }
    let report = json!({
        "bench": "floods",
        "mode": if bench { "bench" } else { "smoke" },
        "seconds_per_flood": plan.seconds,
        "rate_scale": plan.scale,
        "setup": "three hail daemon processes on 127.0.0.1 (alice, bob --auto-answer --refuse-unknown, carol); \
                  alice<->bob audio call (tone:440 both ways) under attack; carol calls bob after",
        "goals": {
            "audio_loss_percent_max": GOAL_AUDIO_LOSS_PERCENT,
            "jitter_target_ms_max": GOAL_JITTER_TARGET_MS,
            "contact_can_call_after": true,
            "rss_ratio_max": GOAL_RSS_RATIO,
            "panics": 0,
        },
        "floods": results,
    });
    println!("{report}");
    attackers.shutdown_timeout(Duration::from_secs(2));
    // Smoke run: only a panic or a dead daemon fails (the harness's own breakage panicked above).
    if !bench {
        for r in report["floods"].as_array().unwrap() {
            assert!(
                r["panics"].as_array().unwrap().is_empty(),
                "a daemon panicked under the {} flood: {}",
                r["flood"],
                r["panics"]
            );
            assert!(
                r["daemons_exited"].as_array().unwrap().is_empty(),
                "a daemon died under the {} flood: {}",
                r["flood"],
                r["daemons_exited"]
            );
        }
    }
}
