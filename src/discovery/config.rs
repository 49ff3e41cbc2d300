//! Network settings, checked: listen addresses, bootstrap peers, mDNS, the DHT protocol id and mode,
//! and the limits on libp2p connections.

use std::str::FromStr;

use libp2p::{Multiaddr, PeerId, StreamProtocol, multiaddr::Protocol};
use serde::{Deserialize, Serialize};

/// The DHT protocol id hail uses unless told otherwise. A separate DHT from IPFS's by default:
/// records and peers of hail nodes only.
pub const DEFAULT_DHT_PROTOCOL: &str = "/hail/kad/1.0.0";
/// The public IPFS (Amino) DHT's protocol id, used with the `ipfs` bootstrap preset.
pub const IPFS_DHT_PROTOCOL: &str = "/ipfs/kad/1.0.0";

/// The public IPFS/Amino bootstrap peers (`--bootstrap ipfs`). Never used unless asked for.
pub const IPFS_BOOTSTRAP: &[&str] = &[
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt",
    "/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
];

/// Kademlia mode: whether this node answers DHT queries for others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DhtMode {
    /// Server when AutoNAT finds the node publicly reachable, client when it finds it behind NAT
    /// (the default).
    Auto,
    /// Always answer queries and store records: for publicly reachable nodes.
    Server,
    /// Only ask: for nodes behind NAT that others cannot dial.
    Client,
}

impl FromStr for DhtMode {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(DhtMode::Auto),
            "server" => Ok(DhtMode::Server),
            "client" => Ok(DhtMode::Client),
            other => Err(ConfigError::DhtMode(other.to_owned())),
        }
    }
}

/// Whether this node relays libp2p connections for nodes behind NAT (circuit relay v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelayMode {
    /// Relay once AutoNAT finds this node publicly reachable (the default).
    Auto,
    /// Relay now: this node is publicly reachable (its global listen addresses are announced as
    /// external at once).
    On,
    /// Never relay.
    Off,
}

impl FromStr for RelayMode {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(RelayMode::Auto),
            "on" => Ok(RelayMode::On),
            "off" => Ok(RelayMode::Off),
            other => Err(ConfigError::Relay(other.to_owned())),
        }
    }
}

/// Reads announced addresses (`--external-address`): multiaddrs with an IP or DNS name, without
/// `/p2p/` (that is the node's own PeerId) and not relayed (`/p2p-circuit`) or unspecified.
pub fn parse_external_addresses(texts: &[String]) -> Result<Vec<Multiaddr>, ConfigError> {
    let mut addresses = Vec::new();
    for text in texts {
        let bad = |reason: &str| ConfigError::Address { text: text.clone(), reason: reason.into() };
        let address: Multiaddr = text.trim().parse().map_err(|e| bad(&format!("{e}")))?;
        let mut protocols = address.iter();
        match protocols.next() {
            Some(Protocol::Ip4(ip)) if ip.is_unspecified() => {
                return Err(bad("an external address names where peers reach the node, not 0.0.0.0"));
            }
            Some(Protocol::Ip6(ip)) if ip.is_unspecified() => {
                return Err(bad("an external address names where peers reach the node, not ::"));
            }
            Some(Protocol::Ip4(_) | Protocol::Ip6(_) | Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_)) => {}
            _ => return Err(bad("an external address starts with /ip4/, /ip6/ or /dns/ (e.g. /ip4/100.64.0.1/tcp/4001)")),
        }
        if !protocols.any(|p| matches!(p, Protocol::Tcp(_))) {
            return Err(bad("an external address needs a /tcp/ port (libp2p listens on TCP)"));
        }
        if address.iter().any(|p| matches!(p, Protocol::P2p(_) | Protocol::P2pCircuit)) {
            return Err(bad("an external address is the node's own: no /p2p/ or /p2p-circuit"));
        }
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    Ok(addresses)
}

/// A bootstrap peer: where to reach it and who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapPeer {
    /// Its PeerId (the `/p2p/` part).
    pub peer_id: PeerId,
    /// Its address, without the `/p2p/` part.
    pub address: Multiaddr,
}

impl BootstrapPeer {
    /// Reads `…/p2p/<PeerId>`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut address: Multiaddr =
            text.trim().parse().map_err(|e| ConfigError::Address { text: text.to_owned(), reason: format!("{e}") })?;
        match address.pop() {
            Some(Protocol::P2p(peer_id)) if !address.is_empty() => Ok(BootstrapPeer { peer_id, address }),
            _ => Err(ConfigError::Address {
                text: text.to_owned(),
                reason: "a bootstrap address must name its peer: …/p2p/<PeerId>".into(),
            }),
        }
    }
}

/// Checked network settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Where to listen for libp2p connections.
    pub listen: Vec<Multiaddr>,
    /// Who to ask first.
    pub bootstrap: Vec<BootstrapPeer>,
    /// mDNS on the LAN.
    pub mdns: bool,
    /// The Kademlia protocol id.
    pub dht_protocol: StreamProtocol,
    /// Kademlia mode.
    pub dht_mode: DhtMode,
    /// Whether to relay for others.
    pub relay: RelayMode,
    /// Where peers reach the node, as the user announced it (`--external-address`): announced in
    /// place of the listen addresses, and confirmed as external at once (so a relay serves on any
    /// network).
    pub external_addresses: Vec<Multiaddr>,
    /// How many libp2p connections, and from where, the node accepts.
    pub limits: ConnectionLimits,
}

/// Limits on libp2p connections: a flood of connections (from one address or many, finished or
/// left half-open) must not take the slots or the memory that contacts need to reach the node.
/// Connections over a limit are refused (a refused inbound connection never reaches identify,
/// Kademlia or invites); connections already up are never closed by them.
///
/// The defaults suit a home calling node: a few contacts, a DHT routing table (Kademlia keeps ~20
/// peers per bucket, and a lookup touches a few dozen), perhaps a relay for a few peers behind NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Established connections at once, both directions (default 256).
    pub max_established: u32,
    /// Established connections that others opened (default 128): inbound ones alone can never
    /// fill the node, so its own lookups and calls always have room.
    pub max_established_incoming: u32,
    /// Established connections with one peer (default 4: a direct one, a relayed one, and the
    /// transient doubles of simultaneous dials and hole punching).
    pub max_established_per_peer: u32,
    /// Inbound connections, in the handshake or established, from one IPv4 address or one IPv6
    /// /64 (default 8: a household behind one NAT has several devices).
    pub max_incoming_per_ip: u32,
    /// Inbound connections still in their handshake (default 32).
    pub max_pending_incoming: u32,
    /// Dials in progress (default 64).
    pub max_pending_outgoing: u32,
    /// No new inbound connection while the process's resident memory is at or above this many
    /// bytes (default 1 GiB; `None`: no cap). Read from `/proc/self/statm` at most once a second;
    /// where that file does not exist the cap does not apply.
    pub max_memory_bytes: Option<u64>,
    /// Whether loopback connections count against `max_incoming_per_ip` (default false: they come
    /// from this host, which can do anything to the node anyway, and a host running several nodes
    /// connects them over loopback). They always count against the other limits.
    pub limit_loopback: bool,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_established: 256,
            max_established_incoming: 128,
            max_established_per_peer: 4,
            max_incoming_per_ip: 8,
            max_pending_incoming: 32,
            max_pending_outgoing: 64,
            max_memory_bytes: Some(1 << 30),
            limit_loopback: false,
        }
    }
}

/// A setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not a multiaddr, or a bootstrap address without `/p2p/`.
    #[error("invalid address {text:?}: {reason}")]
    Address {
        /// The text given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A DHT protocol id must start with `/`.
    #[error("invalid DHT protocol id {0:?}: it must start with '/' (e.g. {DEFAULT_DHT_PROTOCOL})")]
    Protocol(String),
    /// Not `auto`, `server` or `client`.
    #[error("invalid DHT mode {0:?}: expected auto, server or client")]
    DhtMode(String),
    /// Not `auto`, `on` or `off`.
    #[error("invalid relay mode {0:?}: expected auto, on or off")]
    Relay(String),
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig::from_text(None, None, None, None, None).expect("the defaults are valid")
    }
}

impl NetworkConfig {
    /// Checks settings given as text; `None` takes the default.
    pub fn from_text(
        listen: Option<&[String]>,
        bootstrap: Option<&[String]>,
        mdns: Option<bool>,
        dht_protocol: Option<&str>,
        dht_mode: Option<DhtMode>,
    ) -> Result<Self, ConfigError> {
        let default_listen = ["/ip4/0.0.0.0/tcp/0".to_owned(), "/ip6/::/tcp/0".to_owned()];
        let listen = listen
            .unwrap_or(&default_listen)
            .iter()
            .map(|t| t.parse().map_err(|e| ConfigError::Address { text: t.clone(), reason: format!("{e}") }))
            .collect::<Result<Vec<Multiaddr>, _>>()?;
        let mut uses_ipfs = false;
        let mut peers = Vec::new();
        for entry in bootstrap.unwrap_or(&[]) {
            if entry.trim() == "ipfs" {
                uses_ipfs = true;
                peers.extend(IPFS_BOOTSTRAP.iter().map(|a| BootstrapPeer::parse(a).expect("preset is valid")));
            } else {
                peers.push(BootstrapPeer::parse(entry)?);
            }
        }
        let protocol_text = dht_protocol.unwrap_or(if uses_ipfs { IPFS_DHT_PROTOCOL } else { DEFAULT_DHT_PROTOCOL });
        let dht_protocol = StreamProtocol::try_from_owned(protocol_text.to_owned())
            .map_err(|_| ConfigError::Protocol(protocol_text.to_owned()))?;
        Ok(NetworkConfig {
            listen,
            bootstrap: peers,
            mdns: mdns.unwrap_or(true),
            dht_protocol,
            dht_mode: dht_mode.unwrap_or(DhtMode::Auto),
            relay: RelayMode::Auto,
            external_addresses: Vec::new(),
            limits: ConnectionLimits::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_addresses_are_checked() {
        let ok = |t: &str| parse_external_addresses(&[t.to_owned()]);
        assert_eq!(ok("/ip4/100.64.0.1/tcp/4001").unwrap()[0].to_string(), "/ip4/100.64.0.1/tcp/4001");
        assert!(ok("/dns4/relay.example/tcp/4001").is_ok());
        for bad in ["/ip4/0.0.0.0/tcp/1", "/ip4/10.0.0.1", "/ip4/10.0.0.1/tcp/1/p2p-circuit", "/tcp/1", "nonsense", "/ip6/::/tcp/1"] {
            assert!(ok(bad).is_err(), "{bad}");
        }
        let twice = parse_external_addresses(&["/ip4/10.0.0.1/tcp/1".into(), "/ip4/10.0.0.1/tcp/1".into()]).unwrap();
        assert_eq!(twice.len(), 1);
    }

    #[test]
    fn defaults_dial_nobody() {
        let c = NetworkConfig::default();
        assert!(c.bootstrap.is_empty(), "the default bootstrap list is empty");
        assert!(c.mdns);
        assert_eq!(c.dht_protocol.as_ref(), DEFAULT_DHT_PROTOCOL);
        assert_eq!(c.dht_mode, DhtMode::Auto);
    }

    #[test]
    fn the_ipfs_preset_expands_and_switches_the_protocol() {
        let c = NetworkConfig::from_text(None, Some(&["ipfs".into()]), None, None, None).unwrap();
        assert_eq!(c.bootstrap.len(), IPFS_BOOTSTRAP.len());
        assert_eq!(c.dht_protocol.as_ref(), IPFS_DHT_PROTOCOL);
        let c = NetworkConfig::from_text(None, Some(&["ipfs".into()]), None, Some("/mine/kad"), None).unwrap();
        assert_eq!(c.dht_protocol.as_ref(), "/mine/kad", "an explicit protocol wins");
    }

    #[test]
    fn the_default_limits_leave_room_for_the_nodes_own_connections_and_read_partially() {
        let l = ConnectionLimits::default();
        assert!(l.max_established_incoming < l.max_established, "inbound alone cannot fill the node");
        assert!(l.max_incoming_per_ip < l.max_pending_incoming, "one address cannot hold every handshake");
        assert!(l.max_memory_bytes.is_some() && !l.limit_loopback);
        assert_eq!(NetworkConfig::default().limits, l);
        let l: ConnectionLimits = serde_json::from_str(r#"{"max_incoming_per_ip":3}"#).unwrap();
        assert_eq!((l.max_incoming_per_ip, l.max_established), (3, 256), "the rest keeps its default");
        let e = serde_json::from_str::<ConnectionLimits>(r#"{"max_connections":3}"#).unwrap_err();
        assert!(e.to_string().contains("max_connections"), "{e}");
    }

    #[test]
    fn bad_settings_name_the_culprit() {
        let e = NetworkConfig::from_text(None, Some(&["/ip4/1.2.3.4/tcp/1".into()]), None, None, None).unwrap_err();
        assert!(e.to_string().contains("/p2p/<PeerId>"), "{e}");
        let e = NetworkConfig::from_text(None, Some(&["not an address".into()]), None, None, None).unwrap_err();
        assert!(e.to_string().contains("not an address"), "{e}");
        let e = NetworkConfig::from_text(Some(&["/ip4/1.2.3.4/tcpx/1".into()]), None, None, None, None).unwrap_err();
        assert!(matches!(e, ConfigError::Address { .. }));
        let e = NetworkConfig::from_text(None, None, None, Some("kad"), None).unwrap_err();
        assert_eq!(e, ConfigError::Protocol("kad".into()));
        assert!("sideways".parse::<DhtMode>().is_err());
    }
}
