//! What libp2p's `connection_limits` behaviour does not cover, in a behaviour of the same shape
//! ([`ConnectionGuard`]): inbound connections per source address (an IPv4 address or an IPv6 /64),
//! a memory cap, and refusing inbound connections before their handshake once the node holds all
//! the inbound connections it accepts (`connection_limits` only refuses them after the Noise
//! handshake, which a flood makes the node pay for every time).
//!
//! The memory cap reads the process's resident set from `/proc/self/statm` (at most once a second)
//! rather than through libp2p's `memory-connection-limits`: that crate pulls `sysinfo` (a whole
//! system inventory, with a thread pool by default) to learn one number that one small file gives.
//! Only inbound connections are refused over the cap: the node's own dials serve its own lookups
//! and calls, are bounded elsewhere, and refusing them would keep the user from calling.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::swarm::behaviour::{ConnectionClosed, ConnectionEstablished, ListenFailure};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
    dummy,
};
use libp2p::{Multiaddr, PeerId};

use super::config::ConnectionLimits;
use super::peer_ips::direct_ip;

/// How long a reading of the resident memory is trusted.
pub const MEMORY_CHECK_INTERVAL: Duration = Duration::from_secs(1);

pub use crate::ip_scope::SourceNetwork;

/// Why the guard refused a connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Too many inbound connections from one address.
    #[error("{limit} inbound connections from {network} already")]
    PerAddress {
        /// Where from.
        network: SourceNetwork,
        /// The limit.
        limit: u32,
    },
    /// The node holds all the inbound connections it accepts.
    #[error("{limit} inbound connections established already")]
    InboundFull {
        /// The limit.
        limit: u32,
    },
    /// The process uses too much memory to take more connections.
    #[error("resident memory {resident} bytes is over the cap of {cap} bytes")]
    Memory {
        /// What it uses.
        resident: u64,
        /// The cap.
        cap: u64,
    },
}

/// The resident set size in bytes, from the text of `/proc/self/statm` (pages) and the page size.
pub fn parse_statm(text: &str, page_size: u64) -> Option<u64> {
    let resident_pages: u64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
    resident_pages.checked_mul(page_size)
}

/// This process's resident memory in bytes, where the system tells (Linux); `None` elsewhere.
pub fn resident_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    // SAFETY: sysconf only reads a system constant; it has no preconditions.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    parse_statm(&text, u64::try_from(page_size).ok().filter(|p| *p > 0)?)
}

/// The memory cap, with its last reading.
#[derive(Debug)]
struct MemoryCap {
    cap: Option<u64>,
    last: Option<(Instant, Option<u64>)>,
}

impl MemoryCap {
    /// The resident size and the cap, when the one is at or over the other.
    fn exceeded(&mut self, now: Instant) -> Option<(u64, u64)> {
        let cap = self.cap?;
        let resident = match self.last {
            Some((at, reading)) if now.saturating_duration_since(at) < MEMORY_CHECK_INTERVAL => reading,
            _ => {
                let reading = resident_bytes();
                self.last = Some((now, reading));
                reading
            }
        };
        resident.filter(|r| *r >= cap).map(|r| (r, cap))
    }
}

/// The behaviour enforcing the per-address limit, the early inbound refusal and the memory cap.
/// Put it before every other behaviour, so it sees each connection first.
#[derive(Debug)]
pub struct ConnectionGuard {
    limits: ConnectionLimits,
    memory: MemoryCap,
    /// Inbound connections (in the handshake or established) that count against the per-address
    /// limit, and where they come from.
    inbound: HashMap<ConnectionId, SourceNetwork>,
    /// Established inbound connections.
    established_inbound: HashSet<ConnectionId>,
}

impl ConnectionGuard {
    /// A guard for `limits`.
    pub fn new(limits: ConnectionLimits) -> Self {
        ConnectionGuard {
            limits,
            memory: MemoryCap { cap: limits.max_memory_bytes, last: None },
            inbound: HashMap::new(),
            established_inbound: HashSet::new(),
        }
    }

    /// How many inbound connections from `network` it counts now.
    pub fn inbound_from(&self, network: SourceNetwork) -> usize {
        self.inbound.values().filter(|n| **n == network).count()
    }

    /// Where a connection from `remote` counts, if it counts against the per-address limit.
    fn network_of(&self, remote: &Multiaddr) -> Option<SourceNetwork> {
        let ip = direct_ip(remote)?;
        if ip.is_loopback() && !self.limits.limit_loopback {
            return None;
        }
        Some(SourceNetwork::of(ip))
    }

    /// Decides on an inbound connection from `remote` still in its handshake, at `now`.
    pub fn admit_inbound(&mut self, connection: ConnectionId, remote: &Multiaddr, now: Instant) -> Result<(), Refused> {
        let full = self.limits.max_established_incoming;
        if self.established_inbound.len() >= full as usize {
            return Err(Refused::InboundFull { limit: full });
        }
        let network = self.network_of(remote);
        if let Some(network) = network {
            let limit = self.limits.max_incoming_per_ip;
            if self.inbound_from(network) >= limit as usize {
                return Err(Refused::PerAddress { network, limit });
            }
        }
        if let Some((resident, cap)) = self.memory.exceeded(now) {
            return Err(Refused::Memory { resident, cap });
        }
        if let Some(network) = network {
            self.inbound.insert(connection, network);
        }
        Ok(())
    }

    /// The connection is gone (failed in its handshake, refused by another behaviour, or closed).
    pub fn forget(&mut self, connection: ConnectionId) {
        self.inbound.remove(&connection);
        self.established_inbound.remove(&connection);
    }
}

impl NetworkBehaviour for ConnectionGuard {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.admit_inbound(connection_id, remote, Instant::now()).map_err(|refused| {
            tracing::debug!(%remote, %refused, "refused an inbound connection");
            ConnectionDenied::new(refused)
        })
    }

    fn handle_established_inbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                connection_id,
                endpoint: ConnectedPoint::Listener { .. },
                ..
            }) => {
                self.established_inbound.insert(connection_id);
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. })
            | FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => self.forget(connection_id),
            _ => {}
        }
    }

    fn on_connection_handler_event(&mut self, _peer: PeerId, _connection: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, _cx: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// libp2p's `connection_limits` behaviour set to `limits` (totals, per peer, in the handshake).
pub fn connection_limits(limits: &ConnectionLimits) -> libp2p::connection_limits::Behaviour {
    libp2p::connection_limits::Behaviour::new(
        libp2p::connection_limits::ConnectionLimits::default()
            .with_max_established(Some(limits.max_established))
            .with_max_established_incoming(Some(limits.max_established_incoming))
            .with_max_established_per_peer(Some(limits.max_established_per_peer))
            .with_max_pending_incoming(Some(limits.max_pending_incoming))
            .with_max_pending_outgoing(Some(limits.max_pending_outgoing)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(ip: &str) -> Multiaddr {
        format!("/{}/{ip}/tcp/50000", if ip.contains(':') { "ip6" } else { "ip4" }).parse().unwrap()
    }

    fn guard(limits: ConnectionLimits) -> ConnectionGuard {
        ConnectionGuard::new(ConnectionLimits { max_memory_bytes: None, ..limits })
    }

    #[test]
    fn one_address_gets_its_share_and_others_still_get_in() {
        let mut g = guard(ConnectionLimits { max_incoming_per_ip: 3, ..Default::default() });
        let now = Instant::now();
        let ids: Vec<ConnectionId> = (0..3).map(|_| ConnectionId::new_unchecked(rand::random())).collect();
        for id in &ids {
            g.admit_inbound(*id, &from("203.0.113.5"), now).unwrap();
        }
        let refused = g.admit_inbound(ConnectionId::new_unchecked(7), &from("203.0.113.5"), now).unwrap_err();
        assert!(matches!(refused, Refused::PerAddress { limit: 3, .. }), "{refused}");
        g.admit_inbound(ConnectionId::new_unchecked(8), &from("203.0.113.6"), now).expect("another address");
        // One of the three goes (a failed handshake or a closed connection): room for one more.
        g.forget(ids[0]);
        g.admit_inbound(ConnectionId::new_unchecked(9), &from("203.0.113.5"), now).unwrap();
    }

    #[test]
    fn ipv6_counts_by_slash_64_and_mapped_ipv4_as_ipv4() {
        let mut g = guard(ConnectionLimits { max_incoming_per_ip: 2, ..Default::default() });
        let now = Instant::now();
        g.admit_inbound(ConnectionId::new_unchecked(1), &from("2001:db8:1:2::1"), now).unwrap();
        g.admit_inbound(ConnectionId::new_unchecked(2), &from("2001:db8:1:2:ffff::9"), now).unwrap();
        assert!(g.admit_inbound(ConnectionId::new_unchecked(3), &from("2001:db8:1:2::77"), now).is_err());
        g.admit_inbound(ConnectionId::new_unchecked(4), &from("2001:db8:1:3::1"), now).expect("another /64");
        g.admit_inbound(ConnectionId::new_unchecked(5), &from("198.51.100.1"), now).unwrap();
        g.admit_inbound(ConnectionId::new_unchecked(6), &from("::ffff:198.51.100.1"), now).unwrap();
        assert!(g.admit_inbound(ConnectionId::new_unchecked(7), &from("198.51.100.1"), now).is_err());
        assert_eq!(SourceNetwork::of("2001:db8:1:2::1".parse().unwrap()).to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn loopback_and_relayed_connections_count_only_when_told() {
        let limits = ConnectionLimits { max_incoming_per_ip: 1, ..Default::default() };
        let now = Instant::now();
        let mut g = guard(limits);
        for i in 0..5 {
            g.admit_inbound(ConnectionId::new_unchecked(i), &from("127.0.0.1"), now).unwrap();
        }
        let circuit: Multiaddr =
            format!("/ip4/203.0.113.1/tcp/4001/p2p/{}/p2p-circuit", PeerId::random()).parse().unwrap();
        for i in 5..10 {
            g.admit_inbound(ConnectionId::new_unchecked(i), &circuit, now).unwrap();
        }
        let mut g = guard(ConnectionLimits { limit_loopback: true, ..limits });
        g.admit_inbound(ConnectionId::new_unchecked(1), &from("127.0.0.1"), now).unwrap();
        assert!(g.admit_inbound(ConnectionId::new_unchecked(2), &from("127.0.0.1"), now).is_err());
    }

    #[test]
    fn a_full_node_refuses_inbound_connections_before_their_handshake() {
        let mut g = guard(ConnectionLimits { max_established_incoming: 1, ..Default::default() });
        g.established_inbound.insert(ConnectionId::new_unchecked(1));
        let refused = g.admit_inbound(ConnectionId::new_unchecked(2), &from("203.0.113.9"), Instant::now());
        assert_eq!(refused, Err(Refused::InboundFull { limit: 1 }));
    }

    #[test]
    fn the_memory_cap_refuses_when_over_and_statm_is_read_right() {
        assert_eq!(parse_statm("12345 678 90 1 0 400 0\n", 4096), Some(678 * 4096));
        assert_eq!(parse_statm("", 4096), None);
        assert_eq!(parse_statm("1 x", 4096), None);
        assert_eq!(parse_statm("1 18446744073709551615", 4096), None, "no overflow");
        let resident = resident_bytes().expect("Linux has /proc/self/statm");
        assert!(resident > 0);
        let mut g = ConnectionGuard::new(ConnectionLimits { max_memory_bytes: Some(1), ..Default::default() });
        let refused = g.admit_inbound(ConnectionId::new_unchecked(1), &from("203.0.113.9"), Instant::now());
        assert!(matches!(refused, Err(Refused::Memory { cap: 1, .. })), "{refused:?}");
        let mut g = ConnectionGuard::new(ConnectionLimits { max_memory_bytes: Some(u64::MAX), ..Default::default() });
        g.admit_inbound(ConnectionId::new_unchecked(1), &from("203.0.113.9"), Instant::now()).unwrap();
    }
}
