//! Many real daemons in this process (each with its own home, sled database, swarm and control
//! socket), driven through the control protocol. Loopback only, mDNS off.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use hail::control::{Client, Command};
use hail::home::Home;
use hail::node::{Daemon, DaemonOptions};
use serde_json::Value;

/// One in-process daemon.
pub struct Member {
    pub daemon: Daemon,
    pub peer_id: String,
    /// Its listen address with `/p2p/<PeerId>`.
    pub address: String,
}

impl Member {
    pub async fn client(&self) -> Client {
        Client::connect(self.daemon.socket_path()).await.expect("connect to in-process daemon")
    }

    pub async fn ask(&self, command: Command) -> Result<Value, hail::control::ClientError> {
        self.client().await.request(&command).await
    }

    pub async fn status(&self) -> Value {
        self.ask(Command::Status).await.expect("status")
    }
}

/// Starts a daemon in `dir/name` with `mode` (`server`, `client`, `auto`) and these bootstrap peers.
pub async fn start(dir: &Path, name: &str, mode: &str, bootstrap: &[String]) -> Member {
    let mut options = DaemonOptions::loopback("silence", "null");
    options.network.bootstrap = Some(bootstrap.to_vec());
    options.network.dht_mode = Some(mode.parse().unwrap());
    let daemon = Daemon::start(Home::new(dir.join(name)), options).await.expect("daemon starts");
    let peer_id = daemon.peer_id().to_base58();
    let mut member = Member { daemon, peer_id, address: String::new() };
    // The listen address appears once the transport reports it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = member.status().await;
        if let Some(a) = status["network"]["listen_addresses"][0].as_str() {
            member.address = format!("{a}/p2p/{}", member.peer_id);
            return member;
        }
        assert!(Instant::now() < deadline, "no listen address after 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `member` has at least `n` peers in its DHT routing table.
pub async fn wait_for_routing(member: &Member, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = member.status().await;
        if status["network"]["routing_table_peers"].as_u64().unwrap_or(0) >= n {
            return;
        }
        assert!(Instant::now() < deadline, "routing table never reached {n}: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A network of `n` server-mode nodes, all bootstrapped through the first.
pub async fn network(dir: &Path, n: usize) -> Vec<Member> {
    let first = start(dir, "n0", "server", &[]).await;
    let bootstrap = vec![first.address.clone()];
    let mut members = vec![first];
    for i in 1..n {
        members.push(start(dir, &format!("n{i}"), "server", &bootstrap).await);
    }
    for m in &members {
        wait_for_routing(m, 1).await;
    }
    members
}
