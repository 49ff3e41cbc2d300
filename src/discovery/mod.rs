//! Finding peers without a server: libp2p mDNS on the LAN, a Kademlia DHT across networks.
//!
//! - [`config`]: checked network settings (listen, bootstrap, mDNS, DHT protocol and mode, limits);
//! - [`limits`]: what bounds libp2p connections (libp2p's own limits, per address, memory);
//! - [`behaviour`]: the libp2p behaviour (identify, ping, mDNS, Kademlia, AutoNAT, relay, DCUtR)
//!   and the swarm;
//! - [`reflector`]: `/hail/reflector/1`, asking a public peer for its call endpoint;
//! - [`peer_table`]: who is visible, how and when (sans-IO, bounded);
//! - [`peer_ips`]: where connected peers' direct connections come from (bounded, LRU);
//! - [`record_store`]: the DHT record store, which makes room instead of refusing when full;
//! - [`lru`]: the bounded map both of those use;
//! - [`record`]: the signed peer record hail publishes in the DHT (`protocols/peer-record-v1.md`);
//! - [`network`]: [`Discovery`], which owns the swarm inside the node loop and answers lookups.
//!
//! A lookup asks everything at once: known addresses (mDNS, contact hints, the routing table) are
//! dialed immediately while two DHT queries run (closest peers to the PeerId, and its peer record);
//! the first connection to the peer answers it. A lookup ends "not found" when every query and dial
//! has failed, or after [`FIND_TIMEOUT`](network::FIND_TIMEOUT).

pub mod behaviour;
pub mod config;
pub mod limits;
pub mod lru;
pub mod network;
pub mod peer_ips;
pub mod peer_table;
pub mod record;
pub mod record_store;
pub mod reflector;

pub use config::{BootstrapPeer, ConfigError, ConnectionLimits, DhtMode, NetworkConfig};
pub use network::{
    Discovery, DiscoveryEvent, FindError, FindReply, FoundPeer, InviteEvent, NetworkError, NetworkStatus, RelayRequestError,
    VisiblePeer,
};
pub use peer_table::Source;
