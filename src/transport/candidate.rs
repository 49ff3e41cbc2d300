//! The addresses a call may be reached at, as invites and replies carry them
//! (`protocols/signaling-v1.md`): `ip:port` for a direct path, `relay:<relay PeerId>@<ip:port>` for an
//! address on a media relay (`protocols/media-relay-v1.md`) that the receiver joins first.

use std::net::SocketAddr;

use libp2p_identity::PeerId;

/// Most candidates an invite or a reply may carry.
pub const MAX_CANDIDATES: usize = 8;

/// A relay candidate: `relay:<relay PeerId>@<ip:port>`, the address on the relay for the receiver
/// of the invite, who must join there first.
pub fn format_relay(relay: &PeerId, address: SocketAddr) -> String {
    format!("relay:{relay}@{address}")
}

/// Parses a relay candidate (`None`: not one, or malformed).
pub fn parse_relay(text: &str) -> Option<(PeerId, SocketAddr)> {
    let rest = text.strip_prefix("relay:")?;
    let (peer, address) = rest.split_once('@')?;
    Some((peer.parse().ok()?, address.parse().ok()?))
}

/// Whether a candidate names a media relay (whether or not it parses).
pub fn is_relay(text: &str) -> bool {
    text.starts_with("relay:")
}
