//! The libp2p behaviour: identify, ping, mDNS (switchable), Kademlia, and what reaches nodes behind
//! NAT: AutoNAT (v1) to learn whether we are publicly reachable, a circuit relay v2 client to be
//! reachable through a public node when we are not, a relay server on public nodes (limited), and
//! DCUtR to upgrade a relayed connection to a direct one. Standard wire protocols only, so any
//! libp2p node speaking the same Kademlia protocol id interoperates.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, Swarm, SwarmBuilder, autonat, dcutr, identify, kad, mdns, noise, ping, relay, tcp, yamux,
};

use super::config::{DhtMode, NetworkConfig, RelayMode};
use super::limits::{ConnectionGuard, connection_limits};
use super::record::MAX_RECORD_BYTES;
use super::record::record_key;
use super::record_store::PeerRecordStore;
use super::reflector::{MAX_REFLECTOR_BYTES, REFLECTOR_PROTOCOL, ReflectorInfo, ReflectorQuery};

/// The invite protocol id. Discovery carries invites and their replies as JSON values; what they
/// say is the call layer's business (`protocols/signaling-v1.md`).
pub const INVITE_PROTOCOL: &str = "/hail/invite/1";

/// Identify's protocol version: hail nodes recognise each other by it.
pub const IDENTIFY_PROTOCOL: &str = "/hail/1.0.0";
/// How long an unused connection stays open.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one DHT query may run.
pub const DHT_QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stored peer record lives; nodes republish well before.
pub const RECORD_TTL: Duration = Duration::from_secs(60 * 60);
/// How long a callee may take to answer an invite (it answers at once; this covers the network).
pub const INVITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest invite or invite reply accepted, in bytes.
pub const MAX_INVITE_BYTES: u64 = 8 * 1024;
/// Most records a node stores (a full store makes room: see [`PeerRecordStore`]).
pub const MAX_STORED_RECORDS: usize = 1024;
/// A relayed connection carries signalling only (invites, identify, the DHT), never media; these
/// bound what one relayed connection may use on a relay.
pub const RELAY_CIRCUIT_BYTES: u64 = 1 << 20;
/// How long one relayed connection may last.
pub const RELAY_CIRCUIT_DURATION: Duration = Duration::from_secs(10 * 60);
/// Most relayed connections a relay carries at once.
pub const RELAY_MAX_CIRCUITS: usize = 64;
/// Most reservations (nodes reachable through it) a relay holds.
pub const RELAY_MAX_RESERVATIONS: usize = 128;

pub use derived::{Behaviour, BehaviourEvent};

mod derived {
    // The derive generates `BehaviourEvent`, one variant per field, documented by the fields.
    #![allow(missing_docs)]
    use super::*;

    /// Every protocol the node speaks on its libp2p connections. Its fields are public because the
    /// derive composes them and libp2p's idiom reaches each through `behaviour_mut().<field>`
    /// (`Discovery` and the tests that drive a hostile swarm): the one exception to "no public
    /// field written from another module".
    #[derive(NetworkBehaviour)]
    pub struct Behaviour {
        /// Per-address and memory limits, and early refusal of inbound connections (first: it
        /// sees every connection before anything else spends on it).
        pub guard: ConnectionGuard,
        /// libp2p's connection limits: totals, per peer, handshakes in progress.
        pub limits: libp2p::connection_limits::Behaviour,
        /// Who the peer is and where it listens.
        pub identify: identify::Behaviour,
        /// Liveness and RTT.
        pub ping: ping::Behaviour,
        /// LAN discovery; off when the config says so.
        pub mdns: Toggle<mdns::tokio::Behaviour>,
        /// The DHT: peer routing and peer records.
        pub kad: kad::Behaviour<PeerRecordStore>,
        /// Call invites (`/hail/invite/1`, JSON values the call layer reads).
        pub invite: request_response::json::Behaviour<serde_json::Value, serde_json::Value>,
        /// Are we publicly reachable? (AutoNAT v1; also answers others' probes.)
        pub autonat: autonat::Behaviour,
        /// Reachable through a relay when we are not directly.
        pub relay_client: relay::client::Behaviour,
        /// Relaying for others; present unless the config says off, enabled when public.
        pub relay_server: Toggle<relay::Behaviour>,
        /// Hole punching: a relayed connection upgraded to a direct one.
        pub dcutr: dcutr::Behaviour,
        /// Where a public peer's call endpoint is (`/hail/reflector/1`).
        pub reflector: request_response::json::Behaviour<ReflectorQuery, ReflectorInfo>,
        /// Media relay allocations (`/hail/media-relay/1`).
        pub media_relay: request_response::json::Behaviour<crate::relay::RelayRequest, crate::relay::RelayResponse>,
    }
}

/// Why the swarm could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The transport (TCP, DNS) could not be set up.
    #[error("cannot set up the network transport: {0}")]
    Transport(String),
    /// mDNS could not start (no multicast socket).
    #[error("cannot start mDNS: {0}; start with --no-mdns to run without LAN discovery")]
    Mdns(std::io::Error),
}

/// Builds the swarm for `keypair` with `config` (nothing is listened on or dialed yet).
pub fn build_swarm(keypair: &Keypair, config: &NetworkConfig) -> Result<Swarm<Behaviour>, BuildError> {
    let peer_id = keypair.public().to_peer_id();
    let mdns = if config.mdns {
        let mdns_config = mdns::Config { query_interval: Duration::from_secs(30), ..Default::default() };
        Some(mdns::tokio::Behaviour::new(mdns_config, peer_id).map_err(BuildError::Mdns)?)
    } else {
        None
    };

    let mut kad_config = kad::Config::new(config.dht_protocol.clone());
    kad_config
        .set_query_timeout(DHT_QUERY_TIMEOUT)
        .set_record_ttl(Some(RECORD_TTL))
        // Every inbound record is checked by the node before it is stored (`Discovery`).
        .set_record_filtering(kad::StoreInserts::FilterBoth)
        .set_periodic_bootstrap_interval(Some(Duration::from_secs(5 * 60)));
    let store = PeerRecordStore::new(peer_id, record_key(&peer_id), MAX_STORED_RECORDS, MAX_RECORD_BYTES);
    let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
    kad.set_mode(match config.dht_mode {
        DhtMode::Auto => None,
        DhtMode::Server => Some(kad::Mode::Server),
        DhtMode::Client => Some(kad::Mode::Client),
    });

    let identify = identify::Behaviour::new(
        identify::Config::new(IDENTIFY_PROTOCOL.into(), keypair.public())
            .with_agent_version(format!("hail/{}", env!("CARGO_PKG_VERSION")))
            .with_push_listen_addr_updates(true),
    );
    let codec = request_response::json::codec::Codec::default()
        .set_request_size_maximum(MAX_INVITE_BYTES)
        .set_response_size_maximum(MAX_INVITE_BYTES);
    let invite = request_response::Behaviour::with_codec(
        codec,
        [(StreamProtocol::new(INVITE_PROTOCOL), ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(INVITE_TIMEOUT),
    );
    let autonat = autonat::Behaviour::new(
        peer_id,
        autonat::Config {
            // Quicker than the defaults (15 s, 90 s): a node should know within seconds whether
            // calls can reach it.
            boot_delay: Duration::from_secs(2),
            retry_interval: Duration::from_secs(20),
            refresh_interval: Duration::from_secs(5 * 60),
            throttle_server_period: Duration::from_secs(10),
            // A relay told to serve (`--relay on`) serves its network, whatever its range: it
            // checks reachability for peers on private and carrier-grade NAT addresses too.
            only_global_ips: config.relay != RelayMode::On,
            ..Default::default()
        },
    );
    let relay_server = (config.relay != RelayMode::Off).then(|| {
        relay::Behaviour::new(
            peer_id,
            relay::Config {
                max_reservations: RELAY_MAX_RESERVATIONS,
                max_circuits: RELAY_MAX_CIRCUITS,
                max_circuit_duration: RELAY_CIRCUIT_DURATION,
                max_circuit_bytes: RELAY_CIRCUIT_BYTES,
                ..Default::default()
            },
        )
    });
    let dcutr = dcutr::Behaviour::new(peer_id);
    let reflector = request_response::Behaviour::with_codec(
        request_response::json::codec::Codec::default()
            .set_request_size_maximum(MAX_REFLECTOR_BYTES)
            .set_response_size_maximum(MAX_REFLECTOR_BYTES),
        [(StreamProtocol::new(REFLECTOR_PROTOCOL), ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(Duration::from_secs(5)),
    );
    let media_relay = request_response::Behaviour::with_codec(
        request_response::json::codec::Codec::default()
            .set_request_size_maximum(crate::relay::MAX_MESSAGE_BYTES)
            .set_response_size_maximum(crate::relay::MAX_MESSAGE_BYTES),
        [(StreamProtocol::new(crate::relay::MEDIA_RELAY_PROTOCOL), ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(Duration::from_secs(5)),
    );
    let guard = ConnectionGuard::new(config.limits);
    let limits = connection_limits(&config.limits);
    let parts = (guard, limits, identify, kad, invite, autonat, dcutr, reflector, media_relay);

    let swarm = SwarmBuilder::with_existing_identity(keypair.clone())
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| BuildError::Transport(e.to_string()))?
        .with_dns()
        .map_err(|e| BuildError::Transport(e.to_string()))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| BuildError::Transport(e.to_string()))?
        .with_behaviour(move |_, relay_client| {
            let (guard, limits, identify, kad, invite, autonat, dcutr, reflector, media_relay) = parts;
            Behaviour {
                guard,
                limits,
                identify,
                ping: ping::Behaviour::default(),
                mdns: mdns.into(),
                kad,
                invite,
                autonat,
                relay_client,
                relay_server: relay_server.into(),
                dcutr,
                reflector,
                media_relay,
            }
        })
        .map_err(|e| BuildError::Transport(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();
    Ok(swarm)
}
