//! Calls across the NAT lab (root; CI runs as root): real daemons in namespaces behind iptables
//! routers, a public hail node as bootstrap, DHT server, relay and reflector. A node behind a NAT
//! learns it is not reachable (AutoNAT), reserves a slot on the public relay and advertises the
//! relayed address, so invites reach it; it learns its call endpoint's public mapping from the
//! public node (reflect over QUIC) and advertises it as a candidate, so two nodes behind cone NATs
//! punch a direct path by dialing each other at once.

mod common;
#[path = "common/natlab.rs"]
mod natlab;
#[path = "common/netns.rs"]
mod netns;
#[path = "common/group_daemons.rs"]
mod group_daemons;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Background, TestDaemon};
use natlab::nfqueue::Impairment;
use natlab::{Lab, Nat, PUBLIC_IP};
use netns::Netns;
use serde_json::Value;

fn daemon(ns: &Netns, home: &Path, flags: &[&str]) -> TestDaemon {
    let mut all = vec!["--no-mdns"];
    all.extend_from_slice(flags);
    daemon_mdns(ns, home, &all)
}

/// A daemon with mDNS on (unless `flags` turn it off).
fn daemon_mdns(ns: &Netns, home: &Path, flags: &[&str]) -> TestDaemon {
    let mut all = vec!["--audio-in", "tone:440", "--audio-out", "null", "--video-out", "null"];
    all.extend_from_slice(flags);
    TestDaemon::try_start_cmd(home, &ns.exec(), &all).unwrap_or_else(|log| panic!("daemon in {}: {log}", ns.name))
}

fn status(d: &TestDaemon) -> Value {
    d.hail(&["--json", "status"]).json()["ok"].clone()
}

#[track_caller]
fn wait_for(d: &TestDaemon, what: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let s = status(d);
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}: {s}\n--- log ---\n{}", d.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn befriend(a: &TestDaemon, a_name: &str, b: &TestDaemon, b_name: &str) {
    let card = |d: &TestDaemon, name: &str| d.hail(&["--json", "id", "--name", name]).json()["ok"]["card"].as_str().unwrap().to_owned();
    let (ca, cb) = (card(a, a_name), card(b, b_name));
    a.hail(&["contacts", "add", b_name, &cb]).ok();
    b.hail(&["contacts", "add", a_name, &ca]).ok();
}

#[test]
fn a_public_caller_reaches_a_callee_behind_a_cone_nat_through_the_relay() {
    let mut lab = Lab::new();
    let home = lab.add_home(Nat::Cone);
    let dir = tempfile::tempdir().unwrap();

    // The public node: bootstrap, DHT server, relay.
    let (relay, bootstrap) = public_node(&lab, dir.path());
    let relay_id = status(&relay)["peer_id"].as_str().unwrap().to_owned();

    // Bob, at home behind the cone NAT.
    let bob = daemon(
        &lab.homes[home].host,
        &dir.path().join("bob"),
        &["--listen", "/ip4/0.0.0.0/tcp/0", "--media-listen", "0.0.0.0:0", "--bootstrap", &bootstrap],
    );
    // Alice, public, on the internet segment.
    let alice = public_caller(&lab, dir.path(), &bootstrap, 0);
    befriend(&alice, "alice", &bob, "bob");

    // Bob learns he is behind NAT and becomes reachable through the relay.
    let s = wait_for(&bob, "bob private and relayed", Duration::from_secs(30), |s| {
        s["network"]["reachability"] == "private"
            && s["network"]["relayed_via"].as_array().is_some_and(|r| !r.is_empty())
            && s["network"]["advertised_addresses"].to_string().contains("p2p-circuit")
    });
    let advertised = s["network"]["advertised_addresses"].to_string();
    assert!(advertised.contains("p2p-circuit"), "bob advertises his relayed address: {advertised}");
    assert!(s["network"]["relayed_via"][0] == relay_id.as_str());
    assert_eq!(s["network"]["dht_serving"], false, "a node behind NAT does not serve the DHT");
    wait_for(&bob, "bob's record in the DHT", Duration::from_secs(20), |s| {
        s["network"]["record_published_at_ms"].is_u64()
    });

    // Alice calls: the invite goes through the relay; the media connection comes from bob's side.
    let caller = call_and_answer(&alice, &bob);
    let s = wait_for(&bob, "alice's audio", Duration::from_secs(15), |s| {
        s["call"]["audio"]["receive"]["jitter"]["received"].as_u64().unwrap_or(0) >= 50
    });
    assert_eq!(s["call"]["state"], "active");
    assert_eq!(s["call"]["path"]["kind"], "direct", "bob reached alice's public address: {}", s["call"]["path"]);
    let a = status(&alice);
    assert_eq!(a["call"]["path"]["kind"], "direct_punched", "alice sees bob's NAT mapping: {}", a["call"]["path"]);
    wait_for(&alice, "bob's audio", Duration::from_secs(15), |s| {
        s["call"]["audio"]["receive"]["jitter"]["received"].as_u64().unwrap_or(0) >= 50
    });
    alice.hail(&["hangup"]).ok();
    assert_eq!(caller.finish().status.code(), Some(0));
    drop((alice, bob, relay));
    drop(lab);
}

/// "alice", a public node that does not relay, on the lab's internet, her call endpoint on
/// `media_port` (0: any).
fn public_caller(lab: &Lab, dir: &Path, bootstrap: &str, media_port: u16) -> TestDaemon {
    let (listen, media) = (format!("/ip4/{PUBLIC_IP}/tcp/4002"), format!("{PUBLIC_IP}:{media_port}"));
    daemon(&lab.public, &dir.join("alice"), &["--listen", &listen, "--media-listen", &media, "--bootstrap", bootstrap, "--relay", "off"])
}

/// A public node (bootstrap, DHT server, relay, reflector) in the lab's internet.
fn public_node(lab: &Lab, dir: &Path) -> (TestDaemon, String) {
    let relay = daemon(
        &lab.public,
        &dir.join("relay"),
        &["--listen", &format!("/ip4/{PUBLIC_IP}/tcp/4001"), "--media-listen", &format!("{PUBLIC_IP}:5001"), "--relay", "on", "--dht-mode", "server"],
    );
    let id = status(&relay)["peer_id"].as_str().unwrap().to_owned();
    wait_for(&relay, "the relay serving", Duration::from_secs(10), |s| s["network"]["relay_serving"] == true);
    (relay, format!("/ip4/{PUBLIC_IP}/tcp/4001/p2p/{id}"))
}

/// A node at home `n` of the lab, behind its router, ready: private, relayed, with a reflexive
/// address and its record in the DHT.
fn home_node(lab: &Lab, n: usize, home: &Path, bootstrap: &str) -> TestDaemon {
    let d = daemon(
        &lab.homes[n].host,
        home,
        &["--listen", "/ip4/0.0.0.0/tcp/0", "--media-listen", "0.0.0.0:0", "--bootstrap", bootstrap],
    );
    wait_for(&d, "private, relayed, reflexive, published", Duration::from_secs(30), |s| {
        s["network"]["reachability"] == "private"
            && s["network"]["relayed_via"].as_array().is_some_and(|r| !r.is_empty())
            && s["network"]["advertised_addresses"].to_string().contains("p2p-circuit")
            && s["calls_reflexive"].is_string()
            && s["network"]["record_published_at_ms"].is_u64()
    });
    d
}

/// Two homes behind routers of kinds `nat_a` and `nat_b`, the lab's public node, and a ready node
/// in each home ("alice" in the first, "bob" in the second). Fields drop in order: daemons before
/// the namespaces they run in.
struct TwoHomes {
    alice: TestDaemon,
    bob: TestDaemon,
    relay: TestDaemon,
    h1: usize,
    h2: usize,
    lab: Lab,
    _dir: tempfile::TempDir,
}

fn two_homes(nat_a: Nat, nat_b: Nat) -> TwoHomes {
    let mut lab = Lab::new();
    let (h1, h2) = (lab.add_home(nat_a), lab.add_home(nat_b));
    let dir = tempfile::tempdir().unwrap();
    let (relay, bootstrap) = public_node(&lab, dir.path());
    let alice = home_node(&lab, h1, &dir.path().join("alice"), &bootstrap);
    let bob = home_node(&lab, h2, &dir.path().join("bob"), &bootstrap);
    TwoHomes { alice, bob, relay, h1, h2, lab, _dir: dir }
}

/// `alice` calls `bob` (a following `hail call`), who answers once it rings.
fn call_and_answer(alice: &TestDaemon, bob: &TestDaemon) -> Background {
    let caller = Background::start(&alice.home, &["call", "bob"]);
    wait_for(bob, "ringing", Duration::from_secs(20), |s| s["call"]["state"] == "ringing" && s["call"]["end_reason"].is_null());
    bob.hail(&["answer"]).ok();
    caller
}

/// Waits for audio to flow both ways (50 frames each): alice's status, then bob's.
fn audio_both_ways(alice: &TestDaemon, bob: &TestDaemon) -> (Value, Value) {
    let flowing = |s: &Value| s["call"]["audio"]["receive"]["jitter"]["received"].as_u64().unwrap_or(0) >= 50;
    let b = wait_for(bob, "alice's audio", Duration::from_secs(30), flowing);
    let a = wait_for(alice, "bob's audio", Duration::from_secs(15), flowing);
    (a, b)
}

/// `calls` calls in a row from home 1 (`nat_a`) to home 2 (`nat_b`) through the lab's public node;
/// returns the paths each side reports once audio flows both ways, per call.
fn calls_between_homes(nat_a: Nat, nat_b: Nat, calls: usize) -> Vec<(String, String)> {
    let TwoHomes { relay, alice, bob, lab: _lab, h1: _, h2: _, _dir } = two_homes(nat_a, nat_b);
    befriend(&alice, "alice", &bob, "bob");
    let mut paths = Vec::new();
    for n in 0..calls {
        let started = Instant::now();
        let caller = call_and_answer(&alice, &bob);
        let (a, b) = audio_both_ways(&alice, &bob);
        let kinds = (a["call"]["path"]["kind"].as_str().unwrap().to_owned(), b["call"]["path"]["kind"].as_str().unwrap().to_owned());
        eprintln!("{nat_a:?}/{nat_b:?} call {n}: audio both ways after {} ms; paths {kinds:?}", started.elapsed().as_millis());
        alice.hail(&["hangup"]).ok();
        assert_eq!(caller.finish().status.code(), Some(0));
        wait_for(&bob, "the call over", Duration::from_secs(10), |s| s["call"]["end_reason"].is_object());
        paths.push(kinds);
    }
    let r = status(&relay)["network"]["media_relay"].clone();
    eprintln!("media relay: {r}");
    if paths.iter().any(|(a, _)| a == "relayed") {
        assert_eq!(r["allocations"], 0, "every allocation was released at hang-up: {r}");
    }
    paths
}

#[test]
fn two_nodes_behind_symmetric_nats_talk_through_the_media_relay() {
    // Three calls in a row: more than the relay's two allocations per peer, so each call's
    // allocation must be released when it ends.
    for (a, b) in calls_between_homes(Nat::Symmetric, Nat::Symmetric, 3) {
        assert_eq!((a.as_str(), b.as_str()), ("relayed", "relayed"));
    }
}

#[test]
fn a_cone_and_a_symmetric_nat_connect_directly_or_through_the_relay() {
    let paths = calls_between_homes(Nat::Cone, Nat::Symmetric, 1);
    let (a, b) = &paths[0];
    assert!(["direct_punched", "direct", "relayed"].contains(&a.as_str()), "{a}");
    assert_eq!(a == "relayed", b == "relayed", "both ends agree: {a} / {b}");
}

#[test]
fn two_nodes_behind_cone_nats_punch_a_direct_path() {
    // (Every field bound: an unbound one would be dropped here, and its daemon or namespace with it.)
    let TwoHomes { lab, h1, h2: _, alice, bob, relay: _relay, _dir } = two_homes(Nat::Cone, Nat::Cone);
    // The reflexive address is the router's public address, with the host's own port (cone).
    let s = status(&alice);
    let reflexive = s["calls_reflexive"].as_str().unwrap();
    let local_port = s["calls_address"].as_str().unwrap().rsplit(':').next().unwrap().to_owned();
    assert_eq!(reflexive, format!("{}:{local_port}", lab.homes[h1].wan_ip), "{s}");
    befriend(&alice, "alice", &bob, "bob");

    let started = Instant::now();
    let caller = call_and_answer(&alice, &bob);
    let s = wait_for(&bob, "alice's audio", Duration::from_secs(20), |s| {
        s["call"]["audio"]["receive"]["jitter"]["received"].as_u64().unwrap_or(0) >= 50
    });
    eprintln!("cone/cone: audio flowing {} ms after the call; path {}", started.elapsed().as_millis(), s["call"]["path"]);
    assert_eq!(s["call"]["path"]["kind"], "direct_punched", "{}", s["call"]["path"]);
    assert_eq!(s["call"]["path"]["remote"].as_str().unwrap().split(':').next().unwrap(), lab.homes[h1].wan_ip);
    let a = wait_for(&alice, "bob's audio", Duration::from_secs(15), |s| {
        s["call"]["audio"]["receive"]["jitter"]["received"].as_u64().unwrap_or(0) >= 50
    });
    assert_eq!(a["call"]["path"]["kind"], "direct_punched", "{}", a["call"]["path"]);
    assert!(bob.hail(&["status"]).ok().contains("direct punched"), "the human status names the path");
    alice.hail(&["hangup"]).ok();
    assert_eq!(caller.finish().status.code(), Some(0));
}

#[test]
fn two_nodes_on_the_same_lan_find_each_other_by_mdns_and_talk_directly() {
    let mut lab = Lab::new();
    let home = lab.add_home(Nat::Cone);
    let other = lab.add_host(home);
    let dir = tempfile::tempdir().unwrap();
    // No bootstrap, no DHT: mDNS alone.
    let lan = ["--listen", "/ip4/0.0.0.0/tcp/0", "--media-listen", "0.0.0.0:0"];
    let alice = daemon_mdns(&lab.homes[home].host, &dir.path().join("alice"), &lan);
    let bob = daemon_mdns(&lab.homes[home].others[other].0, &dir.path().join("bob"), &lan);
    befriend(&alice, "alice", &bob, "bob");
    wait_for(&alice, "bob seen on the LAN", Duration::from_secs(20), |s| s["network"]["visible_peers"].as_u64().unwrap_or(0) >= 1);
    let caller = call_and_answer(&alice, &bob);
    let s = wait_for(&bob, "alice's audio", Duration::from_secs(15), |s| {
        s["call"]["audio"]["receive"]["jitter"]["received"].as_u64().unwrap_or(0) >= 50
    });
    assert_eq!(s["call"]["path"]["kind"], "direct_lan", "{}", s["call"]["path"]);
    assert_eq!(s["call"]["path"]["remote"].as_str().unwrap().split(':').next().unwrap(), lab.homes[home].host_ip);
    alice.hail(&["hangup"]).ok();
    assert_eq!(caller.finish().status.code(), Some(0));
}

#[test]
fn a_call_survives_a_five_second_outage() {
    // (Every field bound: an unbound one would be dropped here, and its daemon or namespace with it.)
    let TwoHomes { lab, h1, h2, alice, bob, relay: _relay, _dir } = two_homes(Nat::Cone, Nat::Cone);
    befriend(&alice, "alice", &bob, "bob");
    let caller = call_and_answer(&alice, &bob);
    let heard = |s: &Value| s["call"]["audio"]["receive"]["jitter"]["received"].as_u64().unwrap_or(0);
    wait_for(&bob, "audio", Duration::from_secs(20), |s| heard(s) >= 50);
    // Both homes lose the internet for five seconds.
    for h in [h1, h2] {
        natlab::run_in(&lab.homes[h].router, "iptables", &["-I", "FORWARD", "1", "-j", "DROP"]);
    }
    std::thread::sleep(Duration::from_secs(5));
    let during = heard(&status(&bob));
    for h in [h1, h2] {
        natlab::run_in(&lab.homes[h].router, "iptables", &["-D", "FORWARD", "1"]);
    }
    let s = wait_for(&bob, "audio again after the outage", Duration::from_secs(10), |s| heard(s) >= during + 100);
    assert_eq!(s["call"]["state"], "active", "the call stayed up");
    assert_eq!(status(&alice)["call"]["state"], "active");
    alice.hail(&["hangup"]).ok();
    assert_eq!(caller.finish().status.code(), Some(0));
}

#[test]
fn a_punched_call_holds_up_with_five_percent_loss_on_both_home_links() {
    // (Every field bound: an unbound one would be dropped here, and its daemon or namespace with it.)
    let TwoHomes { lab, h1, h2, alice, bob, relay: _relay, _dir } = two_homes(Nat::Cone, Nat::Cone);
    befriend(&alice, "alice", &bob, "bob");
    lab.impair(h1, 0.05);
    lab.impair(h2, 0.05);
    let caller = call_and_answer(&alice, &bob);
    let heard = |s: &Value| s["call"]["audio"]["receive"]["jitter"]["received"].as_u64().unwrap_or(0);
    let s = wait_for(&bob, "four seconds of audio", Duration::from_secs(20), |s| heard(s) >= 200);
    assert_eq!(s["call"]["path"]["kind"], "direct_punched", "{}", s["call"]["path"]);
    // The loss is real (the receiver reports it) and redundancy covers it.
    let sent = wait_for(&alice, "loss reported", Duration::from_secs(10), |s| {
        s["call"]["audio"]["send"]["peer_loss_permille"].as_u64().unwrap_or(0) > 0
    });
    assert!(sent["call"]["audio"]["send"]["redundancy"].as_u64().unwrap() >= 1, "{}", sent["call"]["audio"]["send"]);
    let j = &s["call"]["audio"]["receive"]["jitter"];
    assert!(j["lost"].as_u64().unwrap() * 100 <= j["received"].as_u64().unwrap() * 3, "redundancy and FEC recover most: {j}");
    alice.hail(&["hangup"]).ok();
    assert_eq!(caller.finish().status.code(), Some(0));
}

#[test]
fn the_first_call_placed_as_soon_as_both_homes_are_relayed_gets_through() {
    // What a new user does: start two homes, wait until both say they are private and relayed,
    // call at once. Nothing waits for the records to reach the DHT: the callee publishes as soon as
    // its relayed address exists, and the caller keeps looking while it would ring.
    let mut lab = Lab::new();
    let (h1, h2) = (lab.add_home(Nat::Cone), lab.add_home(Nat::Cone));
    let dir = tempfile::tempdir().unwrap();
    let (relay, bootstrap) = public_node(&lab, dir.path());
    let flags = ["--listen", "/ip4/0.0.0.0/tcp/0", "--media-listen", "0.0.0.0:0", "--bootstrap", &bootstrap];
    let alice = daemon(&lab.homes[h1].host, &dir.path().join("alice"), &flags);
    let bob = daemon(&lab.homes[h2].host, &dir.path().join("bob"), &flags);
    befriend(&alice, "alice", &bob, "bob");
    let relayed = |s: &Value| {
        s["network"]["reachability"] == "private" && s["network"]["relayed_via"].as_array().is_some_and(|r| !r.is_empty())
    };
    wait_for(&alice, "alice private and relayed", Duration::from_secs(30), relayed);
    wait_for(&bob, "bob private and relayed", Duration::from_secs(30), relayed);
    let caller = call_and_answer(&alice, &bob);
    let flowing = |s: &Value| s["call"]["audio"]["receive"]["jitter"]["received"].as_u64().unwrap_or(0) >= 50;
    wait_for(&bob, "alice's audio", Duration::from_secs(30), flowing);
    // Bob's status says his record is out and findable.
    let s = status(&bob);
    assert!(s["network"]["record_published_at_ms"].is_u64(), "{}", s["network"]);
    assert_eq!(s["network"]["record_findable"], true, "{}", s["network"]);
    alice.hail(&["hangup"]).ok();
    assert_eq!(caller.finish().status.code(), Some(0));
    drop((alice, bob, relay));
    drop(lab);
}

/// A relay on a carrier-grade NAT network (100.64/10: an ISP's NAT, a company network, a VPN), with
/// only that address: the "internet" of this lab is 100.64.0.0/24.
const CGNAT_NET: &str = "100.64.0";

/// The relay of a carrier-grade NAT lab, with `flags` after the common ones.
fn cgnat_relay(lab: &Lab, dir: &Path, name: &str, port: u16, flags: &[&str]) -> TestDaemon {
    let ip = lab.public_ip();
    let listen = format!("/ip4/{ip}/tcp/{port}");
    let mut all = vec!["--listen", &listen, "--relay", "on", "--dht-mode", "server"];
    all.extend_from_slice(flags);
    daemon(&lab.public, &dir.join(name), &all)
}

#[test]
fn a_relay_with_only_a_carrier_grade_nat_address_serves_with_relay_on_and_an_external_address() {
    let mut lab = Lab::with_internet(CGNAT_NET);
    let (h1, h2) = (lab.add_home(Nat::Symmetric), lab.add_home(Nat::Symmetric));
    let dir = tempfile::tempdir().unwrap();
    let ip = lab.public_ip();
    let external = format!("/ip4/{ip}/tcp/4001");
    let media = format!("{ip}:5001");
    let relay = cgnat_relay(&lab, dir.path(), "relay", 4001, &["--external-address", &external, "--media-listen", &media]);
    let s = wait_for(&relay, "the relay serving", Duration::from_secs(10), |s| s["network"]["relay_serving"] == true);
    assert!(s["network"]["relay_not_serving"].is_null(), "{}", s["network"]);
    assert_eq!(s["network"]["advertised_addresses"][0], external.as_str(), "the announced address first: {}", s["network"]);
    let id = s["peer_id"].as_str().unwrap().to_owned();
    let bootstrap = format!("{external}/p2p/{id}");
    // Two homes behind symmetric NATs on that network: reachable through the relay, and their call
    // goes through its media relay.
    let alice = home_node(&lab, h1, &dir.path().join("alice"), &bootstrap);
    let bob = home_node(&lab, h2, &dir.path().join("bob"), &bootstrap);
    assert_eq!(status(&alice)["network"]["relayed_via"][0], id.as_str());
    befriend(&alice, "alice", &bob, "bob");
    let caller = call_and_answer(&alice, &bob);
    let (a, b) = audio_both_ways(&alice, &bob);
    assert_eq!((a["call"]["path"]["kind"].as_str(), b["call"]["path"]["kind"].as_str()), (Some("relayed"), Some("relayed")));
    let r = status(&relay)["network"]["media_relay"].clone();
    assert!(r["allocated"].as_u64().unwrap_or(0) >= 1 && r["forwarded"].as_u64().unwrap_or(0) > 0, "{r}");
    alice.hail(&["hangup"]).ok();
    assert_eq!(caller.finish().status.code(), Some(0));
    drop((alice, bob, relay));
    drop(lab);
}

#[test]
fn relay_on_says_why_it_does_not_serve_when_it_cannot() {
    let lab = Lab::with_internet(CGNAT_NET);
    let dir = tempfile::tempdir().unwrap();
    let ip = lab.public_ip();
    // Only a carrier-grade NAT address and nothing announced: no circuit relay, and it says so.
    let media = format!("{ip}:5001");
    let unannounced = cgnat_relay(&lab, dir.path(), "unannounced", 4001, &["--media-listen", &media]);
    let s = wait_for(&unannounced, "listening", Duration::from_secs(10), |s| {
        s["network"]["listen_addresses"].as_array().is_some_and(|l| !l.is_empty())
    });
    assert_eq!(s["network"]["relay_serving"], false, "{}", s["network"]);
    let why = s["network"]["relay_not_serving"].as_str().unwrap_or_default();
    assert!(why.contains("--external-address") && why.contains(&ip), "{why}");
    assert!(unannounced.hail(&["status"]).ok().contains("on, not serving"), "the human status says it too");
    assert!(unannounced.log_text().contains("relay on, but not serving"), "and the log");
    // Announced, but the call endpoint on 0.0.0.0: connections yes, media no, and it says so.
    let external = format!("/ip4/{ip}/tcp/4002");
    let no_media =
        cgnat_relay(&lab, dir.path(), "no-media", 4002, &["--external-address", &external, "--media-listen", "0.0.0.0:0"]);
    let s = wait_for(&no_media, "a reason", Duration::from_secs(10), |s| {
        s["network"]["relay_not_serving"].as_str().is_some_and(|r| r.contains("not media"))
    });
    assert_eq!(s["network"]["relay_serving"], false, "{}", s["network"]);
    assert!(s["network"]["relay_not_serving"].as_str().unwrap().contains("--media-listen"), "{}", s["network"]);
    drop((unannounced, no_media));
    drop(lab);
}

#[test]
fn a_callee_behind_nat_brings_the_media_relay_when_the_caller_has_none() {
    // Alice is public (so she allocates no relay) but her firewall drops unsolicited UDP to her
    // call endpoint; Bob is behind a symmetric NAT. No direct path opens either way: only a relay
    // allocation that Bob makes and puts in his reply carries the call.
    let mut lab = Lab::new();
    let home = lab.add_home(Nat::Symmetric);
    let dir = tempfile::tempdir().unwrap();
    let (relay, bootstrap) = public_node(&lab, dir.path());
    natlab::run_in(&lab.public, "iptables", &["-A", "INPUT", "-p", "udp", "--dport", "5002", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"]);
    let alice = public_caller(&lab, dir.path(), &bootstrap, 5002);
    let bob = home_node(&lab, home, &dir.path().join("bob"), &bootstrap);
    wait_for(&alice, "alice public", Duration::from_secs(30), |s| s["network"]["reachability"] == "public");
    befriend(&alice, "alice", &bob, "bob");
    let caller = call_and_answer(&alice, &bob);
    let (a, b) = audio_both_ways(&alice, &bob);
    assert_eq!((a["call"]["path"]["kind"].as_str(), b["call"]["path"]["kind"].as_str()), (Some("relayed"), Some("relayed")));
    let r = status(&relay)["network"]["media_relay"].clone();
    assert_eq!(r["allocated"], 1, "one allocation, bob's: {r}");
    alice.hail(&["hangup"]).ok();
    assert_eq!(caller.finish().status.code(), Some(0));
    wait_for(&relay, "bob released his allocation", Duration::from_secs(10), |s| s["network"]["media_relay"]["allocations"] == 0);
    drop((alice, bob, relay));
    drop(lab);
}

/// Issue 14, item 6: the lab's links get delay, jitter and burst loss (NFQUEUE in userspace; the
/// kernel has no netem): 25 ± 5 ms and Gilbert-Elliott loss of 5 % in bursts of 3 on each home's
/// internet link, each way. The cone/cone call still punches a direct path, and the receiver
/// measures what the links do and recovers most of it.
#[test]
fn a_punched_call_holds_up_through_delay_jitter_and_burst_loss_on_both_home_links() {
    let TwoHomes { lab, h1, h2, alice, bob, relay: _relay, _dir } = two_homes(Nat::Cone, Nat::Cone);
    befriend(&alice, "alice", &bob, "bob");
    let link = Impairment {
        delay: Duration::from_millis(25),
        jitter: Duration::from_millis(5),
        ..Impairment::bursty(0.05, 3.0)
    };
    let (i1, i2) = (lab.impair_link(h1, link, 1), lab.impair_link(h2, link, 3));
    let caller = call_and_answer(&alice, &bob);
    let heard = |s: &Value| s["call"]["audio"]["receive"]["jitter"]["received"].as_u64().unwrap_or(0);
    let s = wait_for(&bob, "ten seconds of audio", Duration::from_secs(40), |s| heard(s) >= 500);
    assert_eq!(s["call"]["path"]["kind"], "direct_punched", "{}", s["call"]["path"]);
    let audio = &s["call"]["audio"];
    // The delay is real: two links, 25 ms each, both ways.
    assert!(audio["rtt_ms"].as_f64().unwrap() >= 90.0, "rtt {}", audio["rtt_ms"]);
    // So is the loss, and it comes in bursts, as the receiver measures it.
    let (up1, down1) = i1.stats();
    let (up2, down2) = i2.stats();
    eprintln!("links: home 1 out {up1:?} in {down1:?}; home 2 out {up2:?} in {down2:?}; audio {audio}");
    for l in [up1, down1, up2, down2] {
        assert!(l.lost > 0 && l.delivered > l.lost * 5, "{l:?}");
    }
    assert!(audio["receive"]["bursts"]["bursts"].as_u64().unwrap_or(0) > 0, "{}", audio["receive"]["bursts"]);
    // About 10 % of datagrams are lost on the way (two links); copies spaced for the bursts and FEC
    // bring what the listener misses far below that.
    let j = &audio["receive"]["jitter"];
    let (lost, received) = (j["lost"].as_u64().unwrap(), j["received"].as_u64().unwrap());
    assert!(lost * 100 <= received * 3, "redundancy and FEC recover most: {j}");
    alice.hail(&["hangup"]).ok();
    assert_eq!(caller.finish().status.code(), Some(0));
}

/// Issue 14, item 6, the carrier-grade NAT row: alice's home router sits behind her ISP's NAT
/// (two layers, 100.64/10 between them), bob is behind a plain cone NAT. Both layers map
/// endpoint-independently, so the call still punches a direct path, to the carrier's address.
#[test]
fn a_node_behind_carrier_grade_nat_punches_a_direct_path() {
    let TwoHomes { lab, h1, h2: _, alice, bob, relay: _relay, _dir } = two_homes(Nat::CarrierCone, Nat::Cone);
    assert!(lab.homes[h1].carrier.is_some());
    // Seen from the internet, alice is the carrier's address.
    let reflexive = status(&alice)["calls_reflexive"].as_str().unwrap().to_owned();
    assert_eq!(reflexive.split(':').next().unwrap(), lab.homes[h1].wan_ip, "{reflexive}");
    befriend(&alice, "alice", &bob, "bob");
    let caller = call_and_answer(&alice, &bob);
    let (a, b) = audio_both_ways(&alice, &bob);
    for s in [&a, &b] {
        assert_eq!(s["call"]["path"]["kind"], "direct_punched", "{}", s["call"]["path"]);
    }
    assert_eq!(b["call"]["path"]["remote"].as_str().unwrap().split(':').next().unwrap(), lab.homes[h1].wan_ip);
    alice.hail(&["hangup"]).ok();
    assert_eq!(caller.finish().status.code(), Some(0));
}

/// Issue 14, item 6, the hairpin row: two nodes behind the same NAT, mDNS off, so all they know
/// of each other is what the DHT says (the public mapping, the relay, their own addresses). The
/// call connects, whatever path it takes (Linux's NAT does not hairpin: the public mapping alone
/// would not reach).
#[test]
fn two_nodes_behind_the_same_nat_without_mdns_still_connect() {
    let mut lab = Lab::new();
    let home = lab.add_home(Nat::Cone);
    let other = lab.add_host(home);
    let dir = tempfile::tempdir().unwrap();
    let (_relay, bootstrap) = public_node(&lab, dir.path());
    let alice = home_node(&lab, home, &dir.path().join("alice"), &bootstrap);
    let bob = daemon(
        &lab.homes[home].others[other].0,
        &dir.path().join("bob"),
        &["--listen", "/ip4/0.0.0.0/tcp/0", "--media-listen", "0.0.0.0:0", "--bootstrap", &bootstrap],
    );
    wait_for(&bob, "bob ready", Duration::from_secs(30), |s| s["network"]["record_published_at_ms"].is_u64());
    befriend(&alice, "alice", &bob, "bob");
    let caller = call_and_answer(&alice, &bob);
    let (_, b) = audio_both_ways(&alice, &bob);
    eprintln!("same NAT, no mDNS: path {}", b["call"]["path"]);
    alice.hail(&["hangup"]).ok();
    assert_eq!(caller.finish().status.code(), Some(0));
    drop((alice, bob));
}

/// Issue 13: members behind symmetric NATs join a group call through the media relay, as 1:1
/// calls do. Three homes (a cone NAT, two symmetric NATs) and the lab's public node; alice (cone)
/// calls bob and carol (symmetric). No direct path can open between bob and carol, so the mesh
/// leg between them goes through the relay; every member hears both others, and the group settles
/// on one set of emoji.
#[test]
fn a_group_call_with_members_behind_symmetric_nats_goes_through_the_media_relay() {
    let mut lab = Lab::new();
    let homes = [lab.add_home(Nat::Cone), lab.add_home(Nat::Symmetric), lab.add_home(Nat::Symmetric)];
    let dir = tempfile::tempdir().unwrap();
    let (relay, bootstrap) = public_node(&lab, dir.path());
    let names = ["alice", "bob", "carol"];
    let nodes: Vec<TestDaemon> =
        names.iter().zip(homes).map(|(n, h)| home_node(&lab, h, &dir.path().join(n), &bootstrap)).collect();
    for i in 0..nodes.len() {
        for j in i + 1..nodes.len() {
            befriend(&nodes[i], names[i], &nodes[j], names[j]);
        }
    }
    let peers: Vec<String> = nodes.iter().map(group_daemons::peer_id).collect();
    nodes[0].hail(&["call", "bob", "carol", "--detach"]).ok();
    for invitee in &nodes[1..] {
        wait_for(invitee, "the group invitation ringing", Duration::from_secs(30), |s| {
            s["call"]["state"] == "ringing" && s["call"]["group"].is_object() && s["call"]["end_reason"].is_null()
        });
        invitee.hail(&["answer"]).ok();
    }
    let all: Vec<&TestDaemon> = nodes.iter().collect();
    let (emoji, _) = group_daemons::all_settled(&all, &peers);
    eprintln!("group emoji: {emoji}");
    // Every member takes audio from both others.
    for (i, d) in nodes.iter().enumerate() {
        wait_for(d, "audio from both other members", Duration::from_secs(30), |s| {
            s["group"]["audio"]["participants"].as_array().is_some_and(|ps| {
                ps.len() == 2 && ps.iter().all(|p| p["jitter"]["received"].as_u64().unwrap_or(0) >= 50)
            })
        });
        eprintln!("{} hears both others", names[i]);
    }
    // The symmetric pair's leg is relayed, as each of them sees it; every leg has a path.
    let path_to = |from: usize, to: usize| {
        let s = status(&nodes[from]);
        let p = s["group"]["participants"].as_array().unwrap().iter().find(|p| p["peer_id"] == peers[to].as_str()).cloned();
        p.map(|p| p["path"]["kind"].clone()).unwrap_or(Value::Null)
    };
    assert_eq!(path_to(1, 2), "relayed", "bob's leg to carol");
    assert_eq!(path_to(2, 1), "relayed", "carol's leg to bob");
    for from in 0..3 {
        for to in (0..3).filter(|&t| t != from) {
            let kind = path_to(from, to);
            assert!(kind.is_string(), "{} shows a path to {}: {kind}", names[from], names[to]);
        }
    }
    let r = status(&relay)["network"]["media_relay"].clone();
    assert!(r["allocations"].as_u64().unwrap_or(0) >= 1, "the relay carries the symmetric pair's leg: {r}");
    // Everyone leaves; the relay releases what the group held.
    nodes[0].hail(&["leave"]).ok();
    nodes[1].hail(&["leave"]).ok();
    // carol, alone now, may have seen the call end already; her `leave` is then refused.
    let _ = nodes[2].hail(&["leave"]);
    wait_for(&relay, "every allocation released", Duration::from_secs(15), |s| s["network"]["media_relay"]["allocations"] == 0);
}
