//! An impairing UDP relay on loopback (this kernel has no netem): every datagram a client sends to
//! the relay's port goes to `target` from a socket of its own (one per client, like a NAT), and the
//! answers come back the same way. Both directions pass a seeded impairment (`netem.rs`): delay
//! with jitter, random and bursty (Gilbert-Elliott) loss, duplication, and a rate limit. Jitter
//! reorders packets naturally.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;

#[path = "netem.rs"]
mod netem;
pub use netem::Impairment;
use netem::Netem;

/// Counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct RelayStats {
    pub forwarded: u64,
    pub dropped: u64,
    pub duplicated: u64,
}

/// A running relay.
pub struct Relay {
    pub addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    impairment: Arc<Mutex<Impairment>>,
    pub stats: Arc<Mutex<RelayStats>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Starts a relay on 127.0.0.1 (a random port); set its target with [`Relay::set_target`].
    pub async fn start(impairment: Impairment, seed: u64) -> Relay {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = socket.local_addr().unwrap();
        let target = Arc::new(Mutex::new(None));
        let stats = Arc::new(Mutex::new(RelayStats::default()));
        let shared = Arc::new(Mutex::new(impairment));
        let (t, s, i) = (target.clone(), stats.clone(), shared.clone());
        let task = tokio::spawn(async move { run(socket, t, s, i, seed).await });
        Relay { addr, target, impairment: shared, stats, task }
    }

    /// Changes what the link does, from the next packet on (e.g. a burst of total loss).
    pub fn set_impairment(&self, impairment: Impairment) {
        *self.impairment.lock().unwrap() = impairment;
    }

    /// Where packets go.
    pub fn set_target(&self, target: SocketAddr) {
        *self.target.lock().unwrap() = Some(target);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    socket: Arc<UdpSocket>,
    target: Arc<Mutex<Option<SocketAddr>>>,
    stats: Arc<Mutex<RelayStats>>,
    imp: Arc<Mutex<Impairment>>,
    seed: u64,
) {
    let link = |seed| Arc::new(Mutex::new(Netem::new(seed)));
    let towards_target = link(seed);
    let towards_client = link(seed ^ 0x5eed);
    let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, client)) = socket.recv_from(&mut buf).await else { return };
        let Some(to) = *target.lock().unwrap() else { continue };
        let upstream = match upstreams.get(&client) {
            Some(u) => u.clone(),
            None => {
                if upstreams.len() >= 64 {
                    continue;
                }
                let up = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
                upstreams.insert(client, up.clone());
                // Answers from the target go back to this client, impaired too.
                let (back, listen, link, stats, imp) =
                    (socket.clone(), up.clone(), towards_client.clone(), stats.clone(), imp.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok((n, _)) = listen.recv_from(&mut buf).await {
                        forward(&back, client, &buf[..n], &link, &imp, &stats);
                    }
                });
                up
            }
        };
        forward(&upstream, to, &buf[..n], &towards_target, &imp, &stats);
    }
}

fn forward(
    out: &Arc<UdpSocket>,
    to: SocketAddr,
    packet: &[u8],
    link: &Arc<Mutex<Netem>>,
    imp: &Arc<Mutex<Impairment>>,
    stats: &Arc<Mutex<RelayStats>>,
) {
    let imp = *imp.lock().unwrap();
    let now = std::time::Instant::now();
    let delays: Vec<Duration> =
        link.lock().unwrap().send(&imp, now, packet.len()).into_iter().map(|at| at.saturating_duration_since(now)).collect();
    {
        let mut s = stats.lock().unwrap();
        match delays.len() {
            0 => s.dropped += 1,
            1 => s.forwarded += 1,
            _ => {
                s.forwarded += 1;
                s.duplicated += 1;
            }
        }
    }
    for d in delays {
        let (out, packet) = (out.clone(), packet.to_vec());
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            let _ = out.send_to(&packet, to).await;
        });
    }
}
