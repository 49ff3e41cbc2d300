//! `/hail/reflector/1` (`protocols/reflect-v1.md`): over an existing libp2p connection, a node asks
//! a peer for the address of its call endpoint, so it can then ask that endpoint (over QUIC, from its
//! own call endpoint) which address its UDP packets come from. Only nodes with a public call
//! address answer with one.

use serde::{Deserialize, Serialize};

/// The protocol id.
pub const REFLECTOR_PROTOCOL: &str = "/hail/reflector/1";
/// Largest request or response, bytes.
pub const MAX_REFLECTOR_BYTES: u64 = 1024;

/// The question (no fields; a JSON object for room to grow).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReflectorQuery {}

/// The answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReflectorInfo {
    /// The responder's public call endpoint (`ip:port`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_address: Option<String>,
}
