//! A contact: a PeerId you call by a name you chose.

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use serde::{Deserialize, Serialize};

use crate::name::Name;

/// How sure you are that the contact's key is really theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Nothing checked yet: the key is trusted on first use.
    #[default]
    Unverified,
    /// The long safety number was compared out of band and confirmed.
    SafetyNumber,
    /// The four emoji matched during a call and were confirmed.
    Sas,
}

/// One entry of the address book. This is also its stored (schema v1) and wire (control v1) form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Your name for them: unique in the address book.
    pub name: Name,
    /// Who they are.
    #[serde(with = "peer_id_text")]
    pub peer_id: PeerId,
    /// The name they gave themselves in their card, if you added them from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<Name>,
    /// When they were added, in milliseconds since the Unix epoch.
    pub added_at_ms: u64,
    /// How their key was verified.
    #[serde(default)]
    pub verification: Verification,
    /// Blocked contacts are refused without ringing.
    #[serde(default)]
    pub blocked: bool,
    /// Where they were last reachable (hints for finding them again).
    #[serde(default, with = "multiaddrs_text")]
    pub last_seen_addresses: Vec<Multiaddr>,
    /// When they were last seen, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at_ms: Option<u64>,
}

impl Contact {
    /// A new, unverified, unblocked contact.
    pub fn new(name: Name, peer_id: PeerId, added_at_ms: u64) -> Self {
        Contact {
            name,
            peer_id,
            display_name: None,
            added_at_ms,
            verification: Verification::Unverified,
            blocked: false,
            last_seen_addresses: Vec::new(),
            last_seen_at_ms: None,
        }
    }

    /// The contact as added from their card: the name they gave themselves, where they listen.
    pub fn with_card(self, display_name: Name, addresses: Vec<Multiaddr>) -> Self {
        Contact { display_name: Some(display_name), last_seen_addresses: addresses, ..self }
    }

    /// The contact under another name (the address book's key: [`crate::store::Database`] renames).
    pub fn renamed(self, name: Name) -> Self {
        Contact { name, ..self }
    }

    /// Seen at `at_ms` (ms since the Unix epoch), at `addresses` when any are known (an empty list
    /// keeps the last ones).
    pub fn seen(&mut self, addresses: Vec<Multiaddr>, at_ms: u64) {
        if !addresses.is_empty() {
            self.last_seen_addresses = addresses;
        }
        self.last_seen_at_ms = Some(at_ms);
    }

    /// Blocks or unblocks them.
    pub fn set_blocked(&mut self, blocked: bool) {
        self.blocked = blocked;
    }

    /// Their key was verified this way.
    pub fn verify(&mut self, how: Verification) {
        self.verification = how;
    }
}

/// PeerIds as their base58 text.
pub(crate) use crate::identity::peer_id_text;

/// Multiaddrs as their text form.
pub(crate) mod multiaddrs_text {
    use multiaddr::Multiaddr;
    use serde::{Deserialize, Deserializer, Serializer, de::Error, ser::SerializeSeq};

    pub fn serialize<S: Serializer>(addrs: &[Multiaddr], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(addrs.len()))?;
        for a in addrs {
            seq.serialize_element(&a.to_string())?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Multiaddr>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts.iter().map(|t| t.parse().map_err(|_| D::Error::custom("invalid multiaddr"))).collect()
    }
}
