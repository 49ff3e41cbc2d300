//! An impairing UDP relay on loopback (this kernel has no netem): every datagram a client sends to
//! the relay's port goes to `target` from a socket of its own (one per client, like a NAT), and the
//! answers come back the same way. Both directions pass a seeded impairment: delay with jitter,
//! random and bursty (Gilbert-Elliott) loss, duplication, and a rate limit. Jitter reorders packets
//! naturally.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;

/// What the link does to packets.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Uniform jitter added to the delay: ± this much.
    pub jitter: Duration,
    /// Chance a packet is lost (in the good state).
    pub loss: f64,
    /// Chance to enter the bad (bursty) state after a packet, and to leave it.
    pub burst_enter: f64,
    /// Chance to leave the bad state.
    pub burst_leave: f64,
    /// Chance a packet is duplicated.
    pub duplicate: f64,
    /// Bytes per second (0: unlimited); packets over the budget are dropped (a policer).
    pub rate: u64,
}

impl Impairment {
    /// A clean link.
    pub fn clean() -> Self {
        Impairment {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            burst_enter: 0.0,
            burst_leave: 1.0,
            duplicate: 0.0,
            rate: 0,
        }
    }
}

/// Counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct RelayStats {
    pub forwarded: u64,
    pub dropped: u64,
    pub duplicated: u64,
}

struct Link {
    rng: StdRng,
    bad: bool,
    budget: f64,
    last: tokio::time::Instant,
}

impl Link {
    /// How many copies of this packet to send (0: lost), and after what delays.
    fn decide(&mut self, imp: &Impairment, len: usize) -> Vec<Duration> {
        let now = tokio::time::Instant::now();
        if imp.rate > 0 {
            self.budget = (self.budget + now.duration_since(self.last).as_secs_f64() * imp.rate as f64)
                .min(imp.rate as f64 / 10.0);
            self.last = now;
            if self.budget < len as f64 {
                return vec![];
            }
            self.budget -= len as f64;
        }
        self.bad = if self.bad {
            !self.rng.gen_bool(imp.burst_leave.clamp(0.0, 1.0))
        } else {
            self.rng.gen_bool(imp.burst_enter.clamp(0.0, 1.0))
        };
        if self.bad || self.rng.gen_bool(imp.loss.clamp(0.0, 1.0)) {
            return vec![];
        }
        let copies = if self.rng.gen_bool(imp.duplicate.clamp(0.0, 1.0)) { 2 } else { 1 };
        (0..copies)
            .map(|_| {
                let j = imp.jitter.as_secs_f64();
                let offset = if j > 0.0 { self.rng.gen_range(-j..=j) } else { 0.0 };
                Duration::from_secs_f64((imp.delay.as_secs_f64() + offset).max(0.0))
            })
            .collect()
    }
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
    let rate = imp.lock().unwrap().rate;
    let link = |seed| {
        Arc::new(Mutex::new(Link {
            rng: StdRng::seed_from_u64(seed),
            bad: false,
            budget: rate as f64,
            last: tokio::time::Instant::now(),
        }))
    };
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
    link: &Arc<Mutex<Link>>,
    imp: &Arc<Mutex<Impairment>>,
    stats: &Arc<Mutex<RelayStats>>,
) {
    let imp = *imp.lock().unwrap();
    let delays = link.lock().unwrap().decide(&imp, packet.len());
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
