//! A Kademlia network of real daemons on loopback (mDNS off), bootstrapped through one node.

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::time::{Duration, Instant};

use hail::control::{ClientError, Command, ErrorCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_network_of_twenty_every_node_finds_every_other_and_a_departed_node_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = cluster::network(dir.path(), 20).await;

    // Every node looks up every other node by PeerId (380 lookups, one task per node).
    let ids: Vec<(String, String)> =
        members.iter().map(|m| (m.peer_id.clone(), m.address.rsplit_once("/p2p/").unwrap().0.to_owned())).collect();
    let mut tasks = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let mut client = m.client().await;
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for (j, (peer, address)) in ids.iter().enumerate() {
                if i == j {
                    continue;
                }
                match client.request(&Command::PeersFind { peer: peer.clone() }).await {
                    Ok(found) => {
                        assert_eq!(found["peer_id"], peer.as_str());
                        let addrs = found["addresses"].to_string();
                        if !addrs.contains(address) {
                            failures.push(format!("{i}->{j}: found at {addrs}, listens at {address}"));
                        }
                    }
                    Err(e) => failures.push(format!("{i}->{j}: {e}")),
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        failures.extend(t.await.unwrap());
    }
    assert!(failures.is_empty(), "{} of 380 lookups failed: {failures:#?}", failures.len());

    // A node leaves; the others report it not found, with the reason, within the bound.
    let gone = members.pop().unwrap();
    let gone_id = gone.peer_id.clone();
    gone.daemon.stop().await;
    for m in &members[..3] {
        // First each asker notices the closed connection (if it had one).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let peers = m.ask(Command::PeersList).await.unwrap();
            let still =
                peers.as_array().unwrap().iter().any(|p| p["peer_id"] == gone_id.as_str() && p["connected"] == true);
            if !still {
                break;
            }
            assert!(Instant::now() < deadline, "a closed connection was never noticed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let started = Instant::now();
        let result = m.ask(Command::PeersFind { peer: gone_id.clone() }).await;
        let waited = started.elapsed();
        match result {
            Err(ClientError::Remote(e)) => {
                assert_eq!(e.code, ErrorCode::PeerNotFound, "{e:?}");
                assert!(e.message.contains("not found in the DHT (asked"), "{}", e.message);
            }
            other => panic!("a departed node was reported as {other:?}"),
        }
        // The lookup's own bound is 10 s; this only checks that nothing hangs past it.
        assert!(waited < Duration::from_secs(15), "took {waited:?}");
    }
    for m in members {
        m.daemon.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_learn_a_contacts_address_and_remember_it() {
    let dir = tempfile::tempdir().unwrap();
    let members = cluster::network(dir.path(), 4).await;
    let (me, friend) = (&members[1], &members[3]);
    me.ask(Command::ContactsAdd { name: "friend".into(), contact: friend.peer_id.clone() }).await.unwrap();
    let found = me.ask(Command::PeersFind { peer: "friend".into() }).await.unwrap();
    assert_eq!(found["contact"], "friend");
    let listen = friend.address.rsplit_once("/p2p/").unwrap().0;
    // The contact's last seen addresses now hold where it was found (persisted in sled).
    let contacts = me.ask(Command::ContactsList).await.unwrap();
    assert!(contacts[0]["last_seen_addresses"].to_string().contains(listen), "{contacts}");
    assert!(contacts[0]["last_seen_at_ms"].as_u64().is_some());
    for m in members {
        m.daemon.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_in_client_mode_is_found_through_its_signed_record() {
    let _ = tracing_subscriber::fmt().with_env_filter("hail=debug,libp2p_kad=debug").with_test_writer().try_init();
    let dir = tempfile::tempdir().unwrap();
    let servers = cluster::network(dir.path(), 4).await;
    let bootstrap = vec![servers[0].address.clone()];
    // X is behind NAT: a DHT client, absent from every routing table. It publishes a record.
    let x = cluster::start(dir.path(), "x", "client", &bootstrap).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while x.status().await["network"]["record_published_at_ms"].as_u64().is_none() {
        assert!(Instant::now() < deadline, "X's record never reached the DHT");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Y arrives later; X is in no routing table (it is a DHT client). X may still happen to reach
    // a newcomer by itself (its own DHT queries); then that newcomer cannot show the record path,
    // and another takes its place (at most eight; X reaches a newcomer by itself often enough that three in a row happened once in ~50 runs).
    let mut found = None;
    let mut newcomers = Vec::new();
    for attempt in 0..8 {
        let y = cluster::start(dir.path(), &format!("y{attempt}"), "server", &bootstrap).await;
        cluster::wait_for_routing(&y, 1).await;
        let peers = y.ask(Command::PeersList).await.unwrap();
        let reached = peers.as_array().unwrap().iter().any(|p| p["peer_id"] == x.peer_id.as_str() && p["connected"] == true);
        if !reached {
            let answer = y.ask(Command::PeersFind { peer: x.peer_id.clone() }).await.expect("found through the record");
            // Answered from a connection X made between the check and the lookup (nobody asked):
            // the same case as above.
            if !(answer["via"] == "connected" && answer["asked"] == 0) {
                found = Some(answer);
            }
        }
        newcomers.push(y);
        if found.is_some() {
            break;
        }
    }
    let found = found.expect("eight newcomers in a row were reached by X before they looked");
    assert_eq!(found["via"], "dht", "not connected before the lookup: found through the record: {found}");
    let x_listen = x.address.rsplit_once("/p2p/").unwrap().0;
    assert!(found["addresses"].to_string().contains(x_listen), "{found}");
    for m in servers.into_iter().chain([x]).chain(newcomers) {
        m.daemon.stop().await;
    }
}
