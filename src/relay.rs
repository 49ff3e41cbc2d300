//! The media relay (TURN-like), run by public hail nodes for calls whose two ends cannot reach each
//! other directly (both behind NATs, at least one symmetric). `protocols/media-relay-v1.md`.
//!
//! An allocation belongs to one call and two PeerIds: the allocating peer (A) and the peer it names
//! (B). It is a pair of UDP ports on the relay: A's side accepts packets only from A's IP address
//! (as the relay sees A's libp2p connection), B's side only from B's IP once B has *joined* over its
//! own libp2p connection (authenticated as B's PeerId). The first packet on each side locks that
//! side to its sender's address (IP and port): packets from any other address, even another port
//! of the same IP, are refused and never move where the relay sends. From then on packets are
//! forwarded across, untouched: QUIC ends at A and B and every media frame is sealed end to end, so
//! the relay sees ciphertext only.
//!
//! Limits: a per-allocation rate (token bucket over both directions; over it, packets are dropped),
//! an idle timeout and a maximum lifetime, a cap on allocations per peer, per source IP and in
//! total, and a rate limit on allocation requests (whose bookkeeping is itself bounded and pruned).
//! Everything refused is counted.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::call_id::CallId;
use crate::ip_scope::SourceNetwork;
use crate::discovery::lru::LruMap;

/// How often the request-rate bookkeeping drops every requester with no recent request.
pub const REQUEST_PRUNE_INTERVAL: Duration = Duration::from_secs(10);
/// The window of the request rate limit.
const REQUEST_WINDOW: Duration = Duration::from_secs(60);

/// The libp2p protocol id of allocation requests.
pub const MEDIA_RELAY_PROTOCOL: &str = "/hail/media-relay/1";
/// Largest request or response, bytes.
pub const MAX_MESSAGE_BYTES: u64 = 2048;

/// The relay's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayLimits {
    /// Allocations at once, in total.
    pub max_allocations: usize,
    /// Allocations at once, per allocating peer.
    pub max_per_peer: usize,
    /// Allocations at once, per source IP (an IPv6 /64 counting as one) of the allocating peers
    /// (PeerIds cost nothing to make; addresses do).
    pub max_per_ip: usize,
    /// Peers whose recent requests are remembered for the request rate limit; past it the least
    /// recently active one is forgotten.
    pub max_requesters: usize,
    /// Allocation requests per peer per minute.
    pub requests_per_minute: u32,
    /// Bytes per second per allocation, both directions together.
    pub bytes_per_second: u64,
    /// Closed after this long without a packet.
    pub idle: Duration,
    /// Closed after this long in any case.
    pub lifetime: Duration,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            max_allocations: 32,
            max_per_peer: 2,
            max_per_ip: 4,
            max_requesters: 4096,
            requests_per_minute: 10,
            // Both directions of a video call at the controller's ceiling (1.5 Mbps video + audio
            // each way), with headroom.
            bytes_per_second: 500_000,
            idle: Duration::from_secs(30),
            lifetime: Duration::from_secs(4 * 3600),
        }
    }
}

/// A request over `/hail/media-relay/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum RelayRequest {
    /// Make an allocation for `call_id` between the requester and `peer`.
    Allocate {
        /// The call.
        call_id: CallId,
        /// The other end (a PeerId).
        peer: String,
    },
    /// Join the allocation the other end made for `call_id` and us.
    Join {
        /// The call.
        call_id: CallId,
    },
    /// The call is over: free the allocation (only its owner may).
    Release {
        /// The call.
        call_id: CallId,
    },
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelayResponse {
    /// Granted.
    Ok {
        /// Where the requester sends (and receives) its packets.
        mine: String,
        /// Where the other end sends (and receives) its packets.
        theirs: String,
        /// Seconds until the allocation ends at the latest.
        lifetime_secs: u64,
    },
    /// Refused, and why.
    Err {
        /// For people.
        reason: String,
    },
}

/// Counters, for `hail status` on the relay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayStats {
    /// Allocations alive now.
    pub allocations: usize,
    /// Allocations made since start.
    pub allocated: u64,
    /// Requests refused (limits, unknown calls, wrong peers).
    pub requests_refused: u64,
    /// Packets forwarded.
    pub forwarded: u64,
    /// Packets from addresses without permission.
    pub refused_packets: u64,
    /// Packets over the rate limit.
    pub over_rate: u64,
}

#[derive(Default)]
struct Counters {
    forwarded: AtomicU64,
    refused: AtomicU64,
    over_rate: AtomicU64,
}

struct Allocation {
    owner: PeerId,
    /// Where the owner's requests (and packets) come from.
    owner_network: SourceNetwork,
    peer: PeerId,
    side_a: SocketAddr,
    side_b: SocketAddr,
    /// B's permitted IP, once joined.
    join: Option<tokio::sync::watch::Sender<Option<IpAddr>>>,
    task: JoinHandle<()>,
    expires: Instant,
}

/// The relay service: the allocations and their forwarding tasks.
pub struct MediaRelay {
    ip: IpAddr,
    limits: RelayLimits,
    allocations: HashMap<CallId, Allocation>,
    /// Each recent requester's requests in the last minute.
    requests: LruMap<PeerId, Vec<Instant>>,
    last_prune: Option<Instant>,
    counters: Arc<Counters>,
    allocated: u64,
    refused: u64,
}

impl std::fmt::Debug for MediaRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaRelay").field("ip", &self.ip).field("allocations", &self.allocations.len()).finish()
    }
}

impl MediaRelay {
    /// A relay whose allocations bind UDP ports on `ip` (its public call address's IP).
    pub fn new(ip: IpAddr, limits: RelayLimits) -> Self {
        MediaRelay {
            ip,
            limits,
            allocations: HashMap::new(),
            requests: LruMap::new(limits.max_requesters),
            last_prune: None,
            counters: Arc::default(),
            allocated: 0,
            refused: 0,
        }
    }

    /// The counters.
    pub fn stats(&mut self) -> RelayStats {
        self.sweep();
        RelayStats {
            allocations: self.allocations.len(),
            allocated: self.allocated,
            requests_refused: self.refused,
            forwarded: self.counters.forwarded.load(Ordering::Relaxed),
            refused_packets: self.counters.refused.load(Ordering::Relaxed),
            over_rate: self.counters.over_rate.load(Ordering::Relaxed),
        }
    }

    /// Peers the request rate limit remembers now.
    pub fn tracked_requesters(&self) -> usize {
        self.requests.len()
    }

    fn sweep(&mut self) {
        self.sweep_at(Instant::now());
    }

    fn sweep_at(&mut self, now: Instant) {
        self.allocations.retain(|_, a| {
            let alive = !a.task.is_finished() && a.expires > now;
            if !alive {
                a.task.abort();
            }
            alive
        });
    }

    fn refuse(&mut self, reason: impl Into<String>) -> RelayResponse {
        self.refused += 1;
        RelayResponse::Err { reason: reason.into() }
    }

    /// Handles a request from `from` (authenticated by libp2p), whose packets come from `from_ip`
    /// (the address of its libp2p connection as the relay sees it).
    /// Must run inside a tokio runtime (the forwarding tasks are spawned on it).
    pub fn handle(&mut self, from: PeerId, from_ip: Option<IpAddr>, request: RelayRequest) -> RelayResponse {
        self.handle_at(from, from_ip, request, Instant::now())
    }

    /// Counts a request by `from` at `now`; false when it is over the rate limit.
    fn count_request(&mut self, from: PeerId, now: Instant) -> bool {
        let fresh = |t: &Instant| now.saturating_duration_since(*t) < REQUEST_WINDOW;
        // Every requester, not only the one asking now: a peer that stopped asking is forgotten.
        if self.last_prune.is_none_or(|at| now.saturating_duration_since(at) >= REQUEST_PRUNE_INTERVAL) {
            self.last_prune = Some(now);
            self.requests.retain(|_, times| {
                times.retain(fresh);
                !times.is_empty()
            });
        }
        let mut times = self.requests.remove(&from).unwrap_or_default();
        times.retain(fresh);
        let allowed = times.len() < self.limits.requests_per_minute as usize;
        if allowed {
            times.push(now);
        }
        // Reinserted as the most recently active; a full table forgets the least recently active.
        self.requests.insert(from, times);
        allowed
    }

    /// [`MediaRelay::handle`] at time `now`.
    pub fn handle_at(
        &mut self,
        from: PeerId,
        from_ip: Option<IpAddr>,
        request: RelayRequest,
        now: Instant,
    ) -> RelayResponse {
        self.sweep_at(now);
        // A release only frees what its owner holds (a map lookup): counting it made every call
        // cost two requests, and a node calling five peers in a minute found its sixth
        // allocation refused (the NAT bench's start-to-callable row failed every fifth call).
        // A join that will be taken (an allocation that names the requester, not joined yet) is
        // free too: there is at most one per allocation, and allocations are counted against
        // their owner. Counting it made a caller that had placed ten calls in a minute unable to
        // join the allocation its callee made for it (the same row lost its fourteenth call). A
        // join that will be refused counts, so probing for calls is rate-limited as before.
        let counted = match &request {
            RelayRequest::Release { .. } => false,
            RelayRequest::Join { call_id } => {
                from_ip.is_none()
                    || !self.allocations.get(call_id).is_some_and(|a| a.peer == from && a.join.is_some())
            }
            RelayRequest::Allocate { .. } => true,
        };
        if counted && !self.count_request(from, now) {
            return self.refuse("too many relay requests; try again in a minute");
        }
        let Some(from_ip) = from_ip else {
            return self.refuse("only over a direct connection (the relay must see where packets will come from)");
        };
        match request {
            RelayRequest::Allocate { call_id, peer } => {
                let Ok(peer) = peer.parse::<PeerId>() else { return self.refuse("not a PeerId") };
                if self.allocations.contains_key(&call_id) {
                    return self.refuse("that call already has an allocation");
                }
                if self.allocations.len() >= self.limits.max_allocations {
                    return self.refuse("the relay is full");
                }
                if self.allocations.values().filter(|a| a.owner == from).count() >= self.limits.max_per_peer {
                    return self.refuse("too many allocations for one peer");
                }
                let network = SourceNetwork::of(from_ip);
                if self.allocations.values().filter(|a| a.owner_network == network).count() >= self.limits.max_per_ip {
                    return self.refuse("too many allocations from one address");
                }
                let (a, b) = match (bind(self.ip), bind(self.ip)) {
                    (Ok(a), Ok(b)) => (a, b),
                    _ => return self.refuse("the relay cannot open ports"),
                };
                let (side_a, side_b) = match (a.local_addr(), b.local_addr()) {
                    (Ok(x), Ok(y)) => (x, y),
                    _ => return self.refuse("the relay cannot open ports"),
                };
                let (join_tx, join_rx) = tokio::sync::watch::channel(None);
                let task = tokio::spawn(forward(a, b, from_ip, join_rx, self.limits, self.counters.clone()));
                self.allocated += 1;
                tracing::info!(%call_id, owner = %from, %peer, %side_a, %side_b, "media relay allocation");
                self.allocations.insert(
                    call_id,
                    Allocation {
                        owner: from,
                        owner_network: network,
                        peer,
                        side_a,
                        side_b,
                        join: Some(join_tx),
                        task,
                        expires: now + self.limits.lifetime,
                    },
                );
                RelayResponse::Ok {
                    mine: side_a.to_string(),
                    theirs: side_b.to_string(),
                    lifetime_secs: self.limits.lifetime.as_secs(),
                }
            }
            RelayRequest::Release { call_id } => {
                if self.allocations.get(&call_id).is_none_or(|a| a.owner != from) {
                    return self.refuse("no allocation of yours for that call");
                }
                if let Some(a) = self.allocations.remove(&call_id) {
                    a.task.abort();
                }
                RelayResponse::Ok { mine: String::new(), theirs: String::new(), lifetime_secs: 0 }
            }
            RelayRequest::Join { call_id } => {
                let Some(alloc) = self.allocations.get_mut(&call_id) else {
                    return self.refuse("no allocation for that call");
                };
                if alloc.peer != from {
                    return self.refuse("that allocation is not for you");
                }
                let Some(join) = alloc.join.take() else { return self.refuse("already joined") };
                let _ = join.send(Some(from_ip));
                let (mine, theirs) = (alloc.side_b, alloc.side_a);
                let lifetime_secs = alloc.expires.saturating_duration_since(now).as_secs();
                RelayResponse::Ok { mine: mine.to_string(), theirs: theirs.to_string(), lifetime_secs }
            }
        }
    }
}

impl Drop for MediaRelay {
    fn drop(&mut self) {
        for a in self.allocations.values() {
            a.task.abort();
        }
    }
}

fn bind(ip: IpAddr) -> std::io::Result<UdpSocket> {
    let s = std::net::UdpSocket::bind((ip, 0))?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

/// Moves packets between the two sides of one allocation until it idles out or its lifetime ends.
async fn forward(
    a: UdpSocket,
    b: UdpSocket,
    a_ip: IpAddr,
    mut b_ip: tokio::sync::watch::Receiver<Option<IpAddr>>,
    limits: RelayLimits,
    counters: Arc<Counters>,
) {
    let end = tokio::time::Instant::now() + limits.lifetime;
    let (mut a_addr, mut b_addr): (Option<SocketAddr>, Option<SocketAddr>) = (None, None);
    let mut permit_b: Option<IpAddr> = None;
    let burst = limits.bytes_per_second as f64 / 4.0;
    let (mut tokens, mut last) = (burst, tokio::time::Instant::now());
    let (mut buf_a, mut buf_b) = (vec![0u8; 65536], vec![0u8; 65536]);
    // Only accepted packets keep an allocation alive: spraying its ports does not.
    let mut active = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => return,
            _ = tokio::time::sleep_until(active + limits.idle) => return,
            changed = b_ip.changed() => {
                if changed.is_err() {
                    // The allocation was dropped before anyone joined.
                    if permit_b.is_none() { return; }
                } else {
                    permit_b = *b_ip.borrow();
                }
            }
            got = a.recv_from(&mut buf_a) => {
                let Ok((n, from)) = got else { return };
                if !permitted(&mut a_addr, Some(a_ip), from) {
                    counters.refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                active = tokio::time::Instant::now();
                if let Some(to) = b_addr {
                    if spend(&mut tokens, &mut last, burst, limits.bytes_per_second, n) {
                        let _ = b.send_to(&buf_a[..n], to).await;
                        counters.forwarded.fetch_add(1, Ordering::Relaxed);
                    } else {
                        counters.over_rate.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            got = b.recv_from(&mut buf_b) => {
                let Ok((n, from)) = got else { return };
                if !permitted(&mut b_addr, permit_b, from) {
                    counters.refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                active = tokio::time::Instant::now();
                if let Some(to) = a_addr {
                    if spend(&mut tokens, &mut last, burst, limits.bytes_per_second, n) {
                        let _ = a.send_to(&buf_b[..n], to).await;
                        counters.forwarded.fetch_add(1, Ordering::Relaxed);
                    } else {
                        counters.over_rate.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// Whether a packet from `from` may use a side whose peer has IP `permit` (none yet: nobody may)
/// and whose address is `locked`. The first permitted packet locks the side to its sender's
/// address; from then on only that exact address (IP and port) is accepted.
fn permitted(locked: &mut Option<SocketAddr>, permit: Option<IpAddr>, from: SocketAddr) -> bool {
    match *locked {
        Some(address) => address == from,
        None if permit == Some(from.ip()) => {
            *locked = Some(from);
            true
        }
        None => false,
    }
}

/// The token bucket: refills at `rate` bytes per second up to `burst`; spends `n` if it can.
fn spend(tokens: &mut f64, last: &mut tokio::time::Instant, burst: f64, rate: u64, n: usize) -> bool {
    let now = tokio::time::Instant::now();
    *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate as f64).min(burst);
    *last = now;
    if *tokens >= n as f64 {
        *tokens -= n as f64;
        true
    } else {
        false
    }
}

pub use crate::transport::candidate::{format_relay as format_candidate, parse_relay as parse_candidate};
