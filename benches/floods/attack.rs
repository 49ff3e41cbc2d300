//! The attackers of the flood bench, and the media relay node they flood. Everything here sends to
//! 127.0.0.1 only, at a bounded rate, until a deadline.
//!
//! - [`invites`]: throw-away libp2p identities sending `/hail/invite/1` requests;
//! - [`initials`]: fresh QUIC client Initials (real ClientHellos with the hail ALPN, one new
//!   connection id each) from a pool of UDP sockets that never answer;
//! - [`connections`]: throw-away identities each holding one libp2p connection (TCP, noise, yamux);
//! - [`relay_requests`]: throw-away identities asking a media relay for allocations;
//! - [`RelayNode`]: the media relay service ([`hail::relay::MediaRelay`]) behind a libp2p swarm, as a
//!   daemon serves it (a daemon on loopback does not: its call address is not public).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use hail::call::CallId;
use hail::call::signal::{Invite, InviteReply};
use hail::discovery::behaviour::INVITE_PROTOCOL;
use hail::relay::{MEDIA_RELAY_PROTOCOL, MediaRelay, RelayLimits, RelayRequest, RelayResponse};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder, noise, tcp, yamux};
use serde_json::{Value, json};
use tokio::time::Instant;

type InviteBehaviour = request_response::json::Behaviour<Invite, InviteReply>;
type RelayBehaviour = request_response::json::Behaviour<RelayRequest, RelayResponse>;

/// Counters an attack fills in; read as JSON.
#[derive(Default)]
pub struct Counters(Mutex<BTreeMap<String, u64>>);

impl Counters {
    pub fn add(&self, key: &str, n: u64) {
        *self.0.lock().unwrap().entry(key.to_owned()).or_default() += n;
    }

    pub fn json(&self) -> Value {
        json!(self.0.lock().unwrap().clone())
    }
}

/// A throw-away identity's swarm: TCP, noise, yamux, and one request-response protocol.
fn swarm<B: libp2p::swarm::NetworkBehaviour>(behaviour: impl FnOnce() -> B) -> Swarm<B> {
    SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .expect("the TCP transport builds")
        .with_behaviour(|_| behaviour())
        .expect("the behaviour builds")
        // Held open by us until the deadline: only the victim may close a connection.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build()
}

fn invite_swarm() -> Swarm<InviteBehaviour> {
    swarm(|| {
        request_response::json::Behaviour::new(
            [(StreamProtocol::new(INVITE_PROTOCOL), ProtocolSupport::Outbound)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(5)),
        )
    })
}

fn relay_swarm(support: ProtocolSupport) -> Swarm<RelayBehaviour> {
    swarm(|| {
        request_response::json::Behaviour::new(
            [(StreamProtocol::new(MEDIA_RELAY_PROTOCOL), support)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(5)),
        )
    })
}

/// An invite for a fresh call, with one candidate on 127.0.0.1 (the discard port). Built from its
/// JSON (`protocols/signaling-v1.md`) so that fields added later with defaults do not break the bench.
fn invite() -> Invite {
    let call_id = serde_json::to_value(CallId(rand::random())).expect("a call id serializes");
    serde_json::from_value(json!({"version": hail::call::signal::VERSION, "call_id": call_id,
        "candidates": ["127.0.0.1:9"], "video": false}))
    .expect("an invite from its JSON")
}

/// An allocation request for a fresh call with `peer`, from its JSON (`protocols/media-relay-v1.md`).
fn allocate(peer: PeerId) -> RelayRequest {
    let call_id = serde_json::to_value(CallId(rand::random())).expect("a call id serializes");
    serde_json::from_value(json!({"op": "allocate", "call_id": call_id, "peer": peer.to_string()}))
        .expect("an allocation request from its JSON")
}

/// The wire tag of a message (`reply`, `op`): what kind of answer came, whatever variants exist.
fn tag(message: &impl serde::Serialize, field: &str) -> String {
    serde_json::to_value(message)
        .ok()
        .and_then(|v| v[field].as_str().map(str::to_owned))
        .unwrap_or_else(|| "other".into())
}

fn dial(target: PeerId, addr: &Multiaddr) -> DialOpts {
    DialOpts::peer_id(target).addresses(vec![addr.clone()]).build()
}

/// Counts what a swarm reports about its connection to the victim.
fn count_connection<E>(event: &SwarmEvent<E>, c: &Counters) {
    match event {
        SwarmEvent::ConnectionEstablished { .. } => c.add("connections_established", 1),
        SwarmEvent::ConnectionClosed { .. } => c.add("connections_closed_by_victim_or_error", 1),
        SwarmEvent::OutgoingConnectionError { .. } => c.add("dial_errors", 1),
        _ => {}
    }
}

/// `peers` throw-away identities, each sending `per_peer_rate` invites per second to `target`
/// until `until`. Each invite has a fresh call id and one candidate on 127.0.0.1 (the discard
/// port: the victim never gets a usable call out of it).
pub async fn invites(
    target: PeerId,
    addr: Multiaddr,
    peers: usize,
    per_peer_rate: f64,
    until: Instant,
    c: Arc<Counters>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..peers {
        let (addr, c) = (addr.clone(), c.clone());
        tasks.spawn(async move {
            let mut swarm = invite_swarm();
            let mut dialing = swarm.dial(dial(target, &addr)).is_ok();
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_peer_rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut connected = false;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    _ = tick.tick() => {
                        if !connected && !dialing {
                            // Closed by the victim (or never open): knock again.
                            dialing = swarm.dial(dial(target, &addr)).is_ok();
                        }
                        swarm.behaviour_mut().send_request(&target, invite());
                        c.add("invites_sent", 1);
                    }
                    event = swarm.select_next_some() => {
                        count_connection(&event, &c);
                        match event {
                            SwarmEvent::ConnectionEstablished { .. } => (connected, dialing) = (true, false),
                            SwarmEvent::OutgoingConnectionError { .. } => dialing = false,
                            SwarmEvent::ConnectionClosed { num_established: 0, .. } => connected = false,
                            SwarmEvent::Behaviour(request_response::Event::Message {
                                message: request_response::Message::Response { response, .. }, ..
                            }) => c.add(&format!("replies_{}", tag(&response, "reply")), 1),
                            SwarmEvent::Behaviour(request_response::Event::OutboundFailure { .. }) => {
                                c.add("invites_failed", 1)
                            }
                            _ => {}
                        }
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// `count` throw-away identities, each opening one libp2p connection to `target` (as fast as the
/// victim takes them) and holding it until `until`. `open` ends as the number still open then.
pub async fn connections(target: PeerId, addr: Multiaddr, count: usize, until: Instant, c: Arc<Counters>) {
    let open = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let (addr, c, open, peak) = (addr.clone(), c.clone(), open.clone(), peak.clone());
        tasks.spawn(async move {
            let mut swarm = invite_swarm();
            let _ = swarm.dial(dial(target, &addr));
            c.add("dials", 1);
            let mut mine = false;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    event = swarm.select_next_some() => {
                        count_connection(&event, &c);
                        match event {
                            SwarmEvent::ConnectionEstablished { .. } if !mine => {
                                mine = true;
                                let now = open.fetch_add(1, Ordering::Relaxed) + 1;
                                peak.fetch_max(now, Ordering::Relaxed);
                            }
                            SwarmEvent::ConnectionClosed { num_established: 0, .. } if mine => {
                                mine = false;
                                open.fetch_sub(1, Ordering::Relaxed);
                            }
                            _ => {}
                        }
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    c.add("open_at_end", open.load(Ordering::Relaxed));
    c.add("open_peak", peak.load(Ordering::Relaxed));
}

/// Fresh QUIC client Initials to `target` at `rate` per second until `until`, each from one of
/// `sockets` UDP sockets on 127.0.0.1 that never read an answer (so no handshake completes). Every
/// Initial is a real one (a ClientHello with the hail ALPN) with its own destination connection
/// id: copies of one packet would all belong to one connection at the server.
/// Blocking: run it on its own thread.
pub fn initials(target: SocketAddr, rate: f64, sockets: usize, until: std::time::Instant, c: &Counters) {
    let pool: Vec<UdpSocket> = (0..sockets)
        .filter_map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").ok()?;
            s.set_nonblocking(true).ok()?;
            Some(s)
        })
        .collect();
    assert!(!pool.is_empty(), "no UDP socket could be bound on 127.0.0.1");
    let config = client_config();
    let mut endpoint = new_endpoint();
    let mut made = 0u64;
    let mut buf = Vec::with_capacity(1500);
    let start = std::time::Instant::now();
    let mut sent = 0u64;
    while std::time::Instant::now() < until {
        // Send what is due by now (10 ms batches), then sleep to the next batch.
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            if made % 256 == 255 {
                endpoint = new_endpoint(); // forget the connections we abandoned
            }
            made += 1;
            buf.clear();
            let now = std::time::Instant::now();
            let packet = endpoint
                .connect(now, config.clone(), target, "hail")
                .ok()
                .and_then(|(_, mut conn)| conn.poll_transmit(now, 1, &mut buf).map(|t| t.size));
            match packet {
                Some(size) => {
                    let socket = &pool[(sent as usize) % pool.len()];
                    match socket.send_to(&buf[..size], target) {
                        Ok(_) => c.add("initials_sent", 1),
                        Err(_) => c.add("send_errors", 1),
                    }
                }
                None => c.add("initials_not_built", 1),
            }
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    c.add("source_ports", pool.len() as u64);
}

fn new_endpoint() -> quinn_proto::Endpoint {
    quinn_proto::Endpoint::new(Arc::new(quinn_proto::EndpointConfig::default()), None, false, None)
}

fn client_config() -> quinn_proto::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3 with ring")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    crypto.alpn_protocols = vec![hail::transport::endpoint::ALPN.to_vec()];
    let quic = quinn_proto::crypto::rustls::QuicClientConfig::try_from(crypto).expect("a QUIC TLS config");
    quinn_proto::ClientConfig::new(Arc::new(quic))
}

/// `peers` throw-away identities asking `relay` for allocations (`Allocate` for a fresh call id and
/// a random peer), `per_peer_rate` each per second, until `until`. Refusal reasons are counted.
pub async fn relay_requests(
    relay: PeerId,
    addr: Multiaddr,
    peers: usize,
    per_peer_rate: f64,
    until: Instant,
    c: Arc<Counters>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..peers {
        let (addr, c) = (addr.clone(), c.clone());
        tasks.spawn(async move {
            let mut swarm = relay_swarm(ProtocolSupport::Outbound);
            let _ = swarm.dial(dial(relay, &addr));
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_peer_rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    _ = tick.tick() => {
                        let request = allocate(PeerId::random());
                        swarm.behaviour_mut().send_request(&relay, request);
                        c.add("requests_sent", 1);
                    }
                    event = swarm.select_next_some() => {
                        count_connection(&event, &c);
                        match event {
                            SwarmEvent::Behaviour(request_response::Event::Message {
                                message: request_response::Message::Response { response, .. }, ..
                            }) => match response {
                                RelayResponse::Ok { .. } => c.add("granted", 1),
                                RelayResponse::Err { reason } => c.add(&format!("refused: {reason}"), 1),
                            },
                            SwarmEvent::Behaviour(request_response::Event::OutboundFailure { .. }) => c.add("requests_failed", 1),
                            SwarmEvent::ConnectionClosed { num_established: 0, .. } => {
                                let _ = swarm.dial(dial(relay, &addr));
                            }
                            _ => {}
                        }
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// One legitimate allocation request from a fresh identity (for `peer`): `Ok(())` if granted, else
/// the refusal or failure.
pub async fn one_allocation(relay: PeerId, addr: Multiaddr, peer: PeerId) -> Result<(), String> {
    let mut swarm = relay_swarm(ProtocolSupport::Outbound);
    swarm.dial(dial(relay, &addr)).map_err(|e| e.to_string())?;
    swarm.behaviour_mut().send_request(&relay, allocate(peer));
    let answer = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. },
                    ..
                }) => {
                    return match response {
                        RelayResponse::Ok { .. } => Ok(()),
                        RelayResponse::Err { reason } => Err(format!("refused: {reason}")),
                    };
                }
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure { error, .. }) => {
                    return Err(format!("no answer: {error}"));
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), answer).await.unwrap_or_else(|_| Err("no answer in 10 s".into()))
}

/// The media relay service behind a libp2p swarm on 127.0.0.1, answering `/hail/media-relay/1` as a
/// daemon does (the requester's IP is its connection's remote address). Runs on its own runtime
/// thread, like a separate node; stopped when dropped.
pub struct RelayNode {
    pub peer_id: PeerId,
    pub addr: Multiaddr,
    relay: Arc<Mutex<MediaRelay>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RelayNode {
    pub fn start() -> RelayNode {
        let relay = Arc::new(Mutex::new(MediaRelay::new(IpAddr::from([127, 0, 0, 1]), RelayLimits::default())));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shared = relay.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            rt.block_on(async move {
                let mut swarm = relay_swarm(ProtocolSupport::Full);
                swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap()).expect("listen on loopback");
                let mut peer_ips: HashMap<PeerId, IpAddr> = HashMap::new();
                let mut ready = Some(ready_tx);
                loop {
                    let event = tokio::select! {
                        _ = &mut stop_rx => return,
                        event = swarm.select_next_some() => event,
                    };
                    match event {
                        SwarmEvent::NewListenAddr { address, .. } => {
                            if let Some(tx) = ready.take() {
                                let _ = tx.send((*swarm.local_peer_id(), address));
                            }
                        }
                        SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                            if let Some(ip) = endpoint.get_remote_address().iter().find_map(|p| match p {
                                Protocol::Ip4(ip) => Some(IpAddr::from(ip)),
                                Protocol::Ip6(ip) => Some(IpAddr::from(ip)),
                                _ => None,
                            }) {
                                peer_ips.insert(peer_id, ip);
                            }
                        }
                        SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                            peer_ips.remove(&peer_id);
                        }
                        SwarmEvent::Behaviour(request_response::Event::Message {
                            peer,
                            message: request_response::Message::Request { request, channel, .. },
                            ..
                        }) => {
                            let response = shared.lock().unwrap().handle(peer, peer_ips.get(&peer).copied(), request);
                            let _ = swarm.behaviour_mut().send_response(channel, response);
                        }
                        _ => {}
                    }
                }
            });
        });
        let (peer_id, addr) = ready_rx.recv_timeout(Duration::from_secs(10)).expect("the relay node listens");
        RelayNode { peer_id, addr, relay, stop: Some(stop_tx), thread: Some(thread) }
    }

    /// The service's counters.
    pub fn stats(&self) -> Value {
        // `stats` sweeps expired allocations, which aborts tokio tasks: a runtime context is not
        // needed for that.
        serde_json::to_value(self.relay.lock().unwrap().stats()).unwrap_or(Value::Null)
    }
}

impl Drop for RelayNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
