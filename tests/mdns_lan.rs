//! mDNS on a LAN, inside network namespaces this test builds (needs root; CI runs as root). No
//! multicast ever touches the machine's real interfaces.
//!
//! Segment 1 joins namespaces A and B; segment 2 joins C and D. Daemons run in A, B and C.

mod common;
#[path = "common/netns.rs"]
mod netns;

use std::time::{Duration, Instant};

use common::TestDaemon;
use netns::{Netns, link, require_root, sweep_stale};

fn peer_id(d: &TestDaemon) -> String {
    d.hail(&["--json", "id"]).json()["ok"]["peer_id"].as_str().unwrap().to_owned()
}

/// The PeerIds `d` lists in `hail peers`, with their sources.
fn visible(d: &TestDaemon) -> Vec<(String, Vec<String>)> {
    let list = d.hail(&["--json", "peers"]).json();
    list["ok"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let sources = p["sources"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
            (p["peer_id"].as_str().unwrap().to_owned(), sources)
        })
        .collect()
}

#[test]
fn two_daemons_on_a_lan_find_each_other_and_another_segment_stays_apart() {
    require_root();
    sweep_stale();
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c, d) = (Netns::new("a"), Netns::new("b"), Netns::new("c"), Netns::new("d"));
    link(&a, "hva", "10.231.1.1", &b, "hvb", "10.231.1.2");
    link(&c, "hvc", "10.231.2.1", &d, "hvd", "10.231.2.2");

    let lan = ["--listen", "/ip4/0.0.0.0/tcp/0"];
    let start = |ns: &Netns, name: &str| {
        TestDaemon::try_start_cmd(&dir.path().join(name), &ns.exec(), &lan)
            .unwrap_or_else(|log| panic!("daemon in {} did not start: {log}", ns.name))
    };
    let node_c = start(&c, "c");
    let node_a = start(&a, "a");
    let node_b = start(&b, "b");
    let started = Instant::now();
    let (id_a, id_b, id_c) = (peer_id(&node_a), peer_id(&node_b), peer_id(&node_c));

    // A and B see each other: B (the newcomer) through mDNS, A through B's hello connection.
    let deadline = started + Duration::from_secs(2);
    let (mut a_sees_b, mut b_sees_a) = (false, false);
    while Instant::now() < deadline && !(a_sees_b && b_sees_a) {
        a_sees_b = visible(&node_a).iter().any(|(p, _)| *p == id_b);
        b_sees_a = visible(&node_b).iter().any(|(p, s)| *p == id_a && s.contains(&"mdns".to_owned()));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(b_sees_a, "B did not see A through mDNS within 2 s: {:?}", visible(&node_b));
    assert!(a_sees_b, "A did not see B within 2 s: {:?}", visible(&node_a));

    // Each finds the other by PeerId at once, from what the LAN told it.
    let found = node_a.hail(&["--json", "find", &id_b]).json();
    assert_eq!(found["ok"]["peer_id"], id_b.as_str(), "{found}");
    assert!(found["ok"]["addresses"].to_string().contains("10.231.1.2"), "{found}");
    let found = node_b.hail(&["--json", "find", &id_a]).json();
    assert_eq!(found["ok"]["via"], "mdns", "{found}");

    // C, on the other segment, sees neither and is seen by neither, even after a while.
    std::thread::sleep(Duration::from_secs(2));
    assert!(visible(&node_c).is_empty(), "C saw peers across segments: {:?}", visible(&node_c));
    for node in [&node_a, &node_b] {
        assert!(visible(node).iter().all(|(p, _)| *p != id_c));
    }
    let lost = node_c.hail(&["find", &id_a]);
    assert!(lost.fails_with(1).contains("not on this LAN"), "{}", lost.stderr);
}
