//! Discovery through the `hail` binary: bad settings, unreachable peers, lookups that fail, all with
//! clear errors and a daemon that keeps running.

mod common;

use std::time::{Duration, Instant};

use common::{TestDaemon, hail, peer_id, temp_home};

#[test]
fn unusable_network_settings_stop_the_daemon_with_the_culprit_named() {
    let (_dir, home) = temp_home();
    let cases: &[(&[&str], &str)] = &[
        (&["--no-mdns", "--bootstrap", "not-an-address"], "invalid address \"not-an-address\""),
        (&["--no-mdns", "--bootstrap", "/ip4/127.0.0.1/tcp/4001"], "/p2p/<PeerId>"),
        (&["--no-mdns", "--listen", "/ip4/127.0.0.1/udp/0/bogus"], "invalid address"),
        (&["--no-mdns", "--dht-protocol", "kad"], "must start with '/'"),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["daemon"];
        args.extend_from_slice(flags);
        let out = hail(&home, &args);
        let reason = out.fails_with(4);
        assert!(reason.contains(expected), "{flags:?}: {reason}");
    }
    let out = hail(&home, &["daemon", "--dht-mode", "sideways"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    std::fs::write(home.join("config.toml"), "[network]\nbootstrap = [\"garbage\"]\n").unwrap();
    let reason = hail(&home, &["daemon", "--no-mdns"]).fails_with(4).to_owned();
    assert!(reason.contains("garbage") && reason.contains("config.toml"), "{reason}");
    std::fs::write(home.join("config.toml"), "[network]\nmdsn = false\n").unwrap();
    let reason = hail(&home, &["daemon", "--no-mdns"]).fails_with(4).to_owned();
    assert!(reason.contains("mdsn") && reason.contains("config.toml"), "{reason}");

    // A valid file is used, and a flag still overrides it.
    std::fs::write(home.join("config.toml"), "[network]\nmdns = false\ndht_mode = \"client\"\n").unwrap();
    let daemon = TestDaemon::start_with(&home, &["--dht-mode", "server"]);
    let status = daemon.hail(&["--json", "status"]).json();
    assert_eq!(status["ok"]["network"]["dht_mode"], "server");
    assert_eq!(status["ok"]["network"]["mdns"], false);
}

#[test]
fn an_unreachable_bootstrap_peer_is_reported_and_the_daemon_carries_on() {
    let (_dir, home) = temp_home();
    // A port nobody listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ghost = peer_id(9);
    let address = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{ghost}");
    let daemon = TestDaemon::start_with(&home, &["--bootstrap", &address]);

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = daemon.hail(&["--json", "status"]).json();
        let state = status["ok"]["network"]["bootstrap"][0]["state"].as_str().unwrap().to_owned();
        if state.starts_with("unreachable") {
            break;
        }
        assert!(Instant::now() < deadline, "bootstrap state stuck at {state:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = daemon.hail(&["status"]).ok().to_owned();
    assert!(text.contains("unreachable"), "{text}");

    // Looking for anyone now fails within the bound, with a reason.
    let started = Instant::now();
    let out = daemon.hail(&["--json", "find", &peer_id(8)]);
    let reason = out.fails_with(1).to_owned();
    assert_eq!(out.json()["err"]["code"], "peer_not_found");
    assert!(reason.contains(&peer_id(8)) && reason.contains("not found"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(15));
    daemon.hail(&["status"]).ok();
}

#[test]
fn bad_lookups_and_bad_bootstrap_addresses_at_run_time_get_specific_errors() {
    let (_dir, home) = temp_home();
    let daemon = TestDaemon::start(&home);
    let own = daemon.hail(&["--json", "id"]).json()["ok"]["peer_id"].as_str().unwrap().to_owned();

    let cases: &[(&[&str], &str, &str)] = &[
        (&["bootstrap", "garbage"], "invalid_address", "invalid address \"garbage\""),
        (&["bootstrap", "/ip4/127.0.0.1/tcp/1"], "invalid_address", "/p2p/<PeerId>"),
        (&["find", "nobody"], "not_found", "neither a contact nor a PeerId"),
        (&["find", &own], "self_contact", "this node itself"),
        (&["find", &peer_id(7)], "peer_not_found", "knows no DHT peers to ask"),
    ];
    for (args, code, text) in cases {
        daemon.refuses(args, code, text);
    }
    daemon.hail(&["status"]).ok();
}

#[test]
fn a_contact_added_from_a_card_is_found_at_the_card_address_without_any_dht() {
    let (_dir, home_a) = temp_home();
    let (_dir2, home_b) = temp_home();
    let a = TestDaemon::start(&home_a);
    let b = TestDaemon::start(&home_b);
    let card = b.hail(&["--json", "id"]).json()["ok"]["card"].as_str().unwrap().to_owned();
    a.hail(&["contacts", "add", "bob", &card]).ok();

    let found = a.hail(&["--json", "find", "bob"]).json();
    assert_eq!(found["ok"]["contact"], "bob", "{found}");
    assert_eq!(found["ok"]["via"], "contact_hint", "{found}");
    let peers = a.hail(&["peers"]).ok().to_owned();
    assert!(peers.contains("bob") && peers.contains("contact_hint"), "{peers}");
}
