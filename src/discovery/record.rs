//! The hail peer record (`protocols/peer-record-v1.md`): a node's signed list of addresses, stored in
//! the DHT under `/hail/peer/<PeerId bytes>`, so that nodes the DHT cannot route to (Kademlia
//! clients behind NAT) can still be found by PeerId.
//!
//! The value is a standard libp2p signed peer record (a `SignedEnvelope` with the
//! `libp2p-peer-record` domain), so any libp2p implementation can check it.

use libp2p::core::{PeerRecord, SignedEnvelope};
use libp2p::identity::Keypair;
use libp2p::kad::RecordKey;
use libp2p::{Multiaddr, PeerId};

/// Every hail record key starts with this.
pub const KEY_PREFIX: &[u8] = b"/hail/peer/";
/// Largest record value accepted.
pub const MAX_RECORD_BYTES: usize = 4096;
/// Most addresses a record may carry.
pub const MAX_RECORD_ADDRESSES: usize = 32;

/// The DHT key under which `peer`'s record lives.
pub fn record_key(peer: &PeerId) -> RecordKey {
    RecordKey::new(&[KEY_PREFIX, &peer.to_bytes()[..]].concat())
}

/// A record that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRecord {
    /// Whose record it is (the signer, and the peer named in the key).
    pub peer_id: PeerId,
    /// Its sequence number: newer records have larger ones.
    pub seq: u64,
    /// Where the peer said it could be reached.
    pub addresses: Vec<Multiaddr>,
}

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The key is not in the `/hail/peer/` namespace.
    #[error("not a hail peer record key")]
    Namespace,
    /// The key's PeerId part does not parse.
    #[error("the record key does not hold a PeerId")]
    KeyPeer,
    /// The value is larger than [`MAX_RECORD_BYTES`].
    #[error("the record is too large ({0} bytes)")]
    TooLarge(usize),
    /// The value is not a signed envelope, or the signature or payload is wrong.
    #[error("the record is not a validly signed peer record")]
    Signature,
    /// A validly signed record of someone else, stored under this peer's key.
    #[error("the record is signed by another peer than its key names")]
    WrongPeer,
    /// Older than the record already stored for that peer.
    #[error("the record is older than the one already stored")]
    Stale,
    /// More than [`MAX_RECORD_ADDRESSES`] addresses.
    #[error("the record carries too many addresses ({0})")]
    TooManyAddresses(usize),
}

/// Signs a record of `addresses` for `keypair`'s peer. The sequence number is the wall-clock time
/// (libp2p's rule), so a later record replaces an earlier one.
pub fn sign_record(keypair: &Keypair, addresses: Vec<Multiaddr>) -> Vec<u8> {
    let mut addresses = addresses;
    addresses.truncate(MAX_RECORD_ADDRESSES);
    let record = PeerRecord::new_interop(keypair, addresses).expect("signing with our own key cannot fail");
    record.into_signed_envelope().into_protobuf_encoding()
}

/// Checks a record found under `key`: namespace, size, signature, signer = peer in the key.
pub fn verify_record(key: &[u8], value: &[u8]) -> Result<VerifiedRecord, RecordError> {
    let peer_bytes = key.strip_prefix(KEY_PREFIX).ok_or(RecordError::Namespace)?;
    let key_peer = PeerId::from_bytes(peer_bytes).map_err(|_| RecordError::KeyPeer)?;
    if value.len() > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge(value.len()));
    }
    let envelope = SignedEnvelope::from_protobuf_encoding(value).map_err(|_| RecordError::Signature)?;
    let record = PeerRecord::from_signed_envelope_interop(envelope).map_err(|_| RecordError::Signature)?;
    if record.peer_id() != key_peer {
        return Err(RecordError::WrongPeer);
    }
    if record.addresses().len() > MAX_RECORD_ADDRESSES {
        return Err(RecordError::TooManyAddresses(record.addresses().len()));
    }
    Ok(VerifiedRecord { peer_id: key_peer, seq: record.seq(), addresses: record.addresses().to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    #[test]
    fn a_signed_record_verifies_under_its_own_key_only() {
        let alice = Identity::from_seed([1; 32]);
        let bob = Identity::from_seed([2; 32]);
        let addrs: Vec<Multiaddr> = vec!["/ip4/127.0.0.1/tcp/4001".parse().unwrap()];
        let value = sign_record(alice.keypair(), addrs.clone());
        let ok = verify_record(record_key(&alice.peer_id()).as_ref(), &value).unwrap();
        assert_eq!(ok.peer_id, alice.peer_id());
        assert_eq!(ok.addresses, addrs);
        assert_eq!(verify_record(record_key(&bob.peer_id()).as_ref(), &value), Err(RecordError::WrongPeer));
        assert_eq!(verify_record(b"/pk/whatever", &value), Err(RecordError::Namespace));
        let mut tampered = value.clone();
        let n = tampered.len();
        tampered[n - 10] ^= 1;
        assert_eq!(verify_record(record_key(&alice.peer_id()).as_ref(), &tampered), Err(RecordError::Signature));
        assert_eq!(verify_record(record_key(&alice.peer_id()).as_ref(), b"garbage"), Err(RecordError::Signature));
        let huge = vec![0u8; MAX_RECORD_BYTES + 1];
        assert!(matches!(verify_record(record_key(&alice.peer_id()).as_ref(), &huge), Err(RecordError::TooLarge(_))));
    }
}
