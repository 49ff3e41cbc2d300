//! Frame authenticators (`protocols/group-media-v1.md`, "Frame authenticators"): a group member
//! whose frames go through a forwarder signs, with its identity key, the digests of the frames it
//! sealed, so that a frame the forwarder seals under its sender index (the forwarder holds that
//! key, as every member does) is detected by the receivers.
//!
//! - [`frame_digest`]: SHA-256 of the whole sealed frame, truncated to 16 bytes (not the Poly1305
//!   tag: whoever holds the key can make another ciphertext with the same tag).
//! - [`FrameList`]: which frames (KID, counters) and their digests; the list accounts for every
//!   counter from `from` to its last one.
//! - [`FrameAuthenticator`]: a list and the Ed25519 signature over the domain-separated input
//!   ([`FrameList::signed_input`]); [`FrameAuthenticator::verify`] against a member's PeerId (its
//!   public key is in it).
//!
//! All of it sans-IO and deterministic (Ed25519 signatures are).

use libp2p_identity::{Keypair, PeerId, PublicKey};
use sha2::{Digest, Sha256};

use super::sender_key::KeyId;

/// The label in front of every signed input: nothing else the identity key signs starts with it.
pub const SIGNING_LABEL: &[u8] = b"hail group frame authenticator v1";
/// At most this many frames in one list.
pub const MAX_FRAMES: usize = 32;
/// Bytes of a frame digest.
pub const DIGEST_LEN: usize = 16;
/// Bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// The farthest a listed counter may be from the list's `from`.
pub const MAX_OFFSET: u64 = u16::MAX as u64;

/// A sealed frame's digest: SHA-256 of every byte of it, truncated to 16 bytes.
pub type FrameDigest = [u8; DIGEST_LEN];

/// The digest of a sealed group frame (media byte, SFrame header, ciphertext and tag).
pub fn frame_digest(frame: &[u8]) -> FrameDigest {
    let full = Sha256::digest(frame);
    let mut digest = [0; DIGEST_LEN];
    digest.copy_from_slice(&full[..DIGEST_LEN]);
    digest
}

/// Why a list or an authenticator was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameAuthError {
    /// Shorter than its fields, or bytes after them.
    #[error("frame authenticator of the wrong length")]
    Length,
    /// No frame, or more than [`MAX_FRAMES`].
    #[error("frame authenticator lists {0} frames (1 to 32)")]
    Count(usize),
    /// Counters not strictly ascending, below `from`, too far from it, or past 2^64 − 1.
    #[error("frame authenticator counters out of order or range")]
    Counters,
    /// The signer's PeerId carries no Ed25519 key.
    #[error("the signer's PeerId carries no Ed25519 key")]
    NoPublicKey,
    /// The signature does not verify.
    #[error("frame authenticator signature does not verify")]
    BadSignature,
    /// The identity key would not sign.
    #[error("could not sign: {0}")]
    Signing(&'static str),
}

/// Frames of one sender under one key, by counter, with their digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameList {
    /// The key they were sealed under (its sender index is the signer's).
    pub key_id: KeyId,
    /// The first counter the list accounts for.
    pub from: u64,
    /// The listed frames: counter and digest, counters strictly ascending, none below `from`.
    pub frames: Vec<(u64, FrameDigest)>,
}

impl FrameList {
    /// The last counter the list accounts for (its last frame's).
    pub fn last(&self) -> u64 {
        self.frames.last().map_or(self.from, |(ctr, _)| *ctr)
    }

    /// Whether the list accounts for `counter` under `key_id`.
    pub fn covers(&self, key_id: KeyId, counter: u64) -> bool {
        key_id == self.key_id && (self.from..=self.last()).contains(&counter) && !self.frames.is_empty()
    }

    /// The digest listed for `counter` (`None`: not listed).
    pub fn digest_of(&self, counter: u64) -> Option<&FrameDigest> {
        self.frames.binary_search_by_key(&counter, |(c, _)| *c).ok().map(|i| &self.frames[i].1)
    }

    fn check(&self) -> Result<(), FrameAuthError> {
        if self.frames.is_empty() || self.frames.len() > MAX_FRAMES {
            return Err(FrameAuthError::Count(self.frames.len()));
        }
        let mut previous: Option<u64> = None;
        for (ctr, _) in &self.frames {
            let in_range = *ctr >= self.from && ctr - self.from <= MAX_OFFSET;
            if !in_range || previous.is_some_and(|p| p >= *ctr) {
                return Err(FrameAuthError::Counters);
            }
            previous = Some(*ctr);
        }
        Ok(())
    }

    /// `kid (8) || from (8) || n (1) || n × (offset (2) || digest (16))`.
    pub fn encode(&self) -> Result<Vec<u8>, FrameAuthError> {
        self.check()?;
        let mut out = Vec::with_capacity(17 + self.frames.len() * (2 + DIGEST_LEN));
        out.extend_from_slice(&self.key_id.kid().to_be_bytes());
        out.extend_from_slice(&self.from.to_be_bytes());
        out.push(self.frames.len() as u8);
        for (ctr, digest) in &self.frames {
            out.extend_from_slice(&((ctr - self.from) as u16).to_be_bytes());
            out.extend_from_slice(digest);
        }
        Ok(out)
    }

    /// Reads a list from the front of `bytes`; returns it and its length.
    pub fn decode(bytes: &[u8]) -> Result<(FrameList, usize), FrameAuthError> {
        let fixed = bytes.get(..17).ok_or(FrameAuthError::Length)?;
        let kid = u64::from_be_bytes(fixed[..8].try_into().expect("8 bytes"));
        let from = u64::from_be_bytes(fixed[8..16].try_into().expect("8 bytes"));
        let n = usize::from(fixed[16]);
        if n == 0 || n > MAX_FRAMES {
            return Err(FrameAuthError::Count(n));
        }
        let len = 17 + n * (2 + DIGEST_LEN);
        let entries = bytes.get(17..len).ok_or(FrameAuthError::Length)?;
        let mut frames = Vec::with_capacity(n);
        for entry in entries.chunks_exact(2 + DIGEST_LEN) {
            let offset = u64::from(u16::from_be_bytes([entry[0], entry[1]]));
            let ctr = from.checked_add(offset).ok_or(FrameAuthError::Counters)?;
            frames.push((ctr, entry[2..].try_into().expect("16 bytes")));
        }
        let list = FrameList { key_id: KeyId::from_kid(kid), from, frames };
        list.check()?;
        Ok((list, len))
    }

    /// What is signed: the label, the call id, and the encoded list.
    pub fn signed_input(&self, call_id: &[u8; 16]) -> Result<Vec<u8>, FrameAuthError> {
        Ok([SIGNING_LABEL, &call_id[..], &self.encode()?].concat())
    }
}

/// A list signed by its sender's identity key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameAuthenticator {
    /// What it vouches for.
    pub list: FrameList,
    /// Ed25519 over [`FrameList::signed_input`].
    pub signature: [u8; SIGNATURE_LEN],
}

impl FrameAuthenticator {
    /// Signs `list` in call `call_id` with `identity` (an Ed25519 key).
    pub fn sign(list: FrameList, call_id: &[u8; 16], identity: &Keypair) -> Result<Self, FrameAuthError> {
        let input = list.signed_input(call_id)?;
        let signature = identity.sign(&input).map_err(|_| FrameAuthError::Signing("the identity key refused"))?;
        let signature = signature.try_into().map_err(|_| FrameAuthError::Signing("not an Ed25519 key"))?;
        Ok(FrameAuthenticator { list, signature })
    }

    /// The plaintext of an authenticator frame: `list || signature (64)`.
    pub fn encode(&self) -> Result<Vec<u8>, FrameAuthError> {
        let mut out = self.list.encode()?;
        out.extend_from_slice(&self.signature);
        Ok(out)
    }

    /// Reads an authenticator frame's plaintext (the signature is not checked here).
    pub fn decode(plaintext: &[u8]) -> Result<Self, FrameAuthError> {
        let (list, len) = FrameList::decode(plaintext)?;
        let signature = plaintext[len..].try_into().map_err(|_| FrameAuthError::Length)?;
        Ok(FrameAuthenticator { list, signature })
    }

    /// Whether `signer` (its PeerId carries its Ed25519 public key) signed this in call `call_id`.
    pub fn verify(&self, call_id: &[u8; 16], signer: &PeerId) -> Result<(), FrameAuthError> {
        let public = public_key_of(signer).ok_or(FrameAuthError::NoPublicKey)?;
        if public.verify(&self.list.signed_input(call_id)?, &self.signature) {
            Ok(())
        } else {
            Err(FrameAuthError::BadSignature)
        }
    }
}

/// The Ed25519 public key a PeerId carries (an identity multihash of the protobuf key).
pub fn public_key_of(peer: &PeerId) -> Option<PublicKey> {
    let multihash = peer.as_ref();
    if multihash.code() != 0 {
        return None;
    }
    let public = PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    public.clone().try_into_ed25519().ok()?;
    Some(public)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::sender_key::SenderIndex;

    fn identity(seed: u8) -> Keypair {
        Keypair::ed25519_from_bytes([seed; 32]).unwrap()
    }

    fn list() -> FrameList {
        FrameList {
            key_id: KeyId::new(7, SenderIndex(1)).unwrap(),
            from: 10,
            frames: vec![(10, frame_digest(b"a")), (11, frame_digest(b"b")), (13, frame_digest(b"c"))],
        }
    }

    #[test]
    fn a_signed_list_round_trips_and_verifies_only_for_its_signer_and_call() {
        let me = identity(1);
        let auth = FrameAuthenticator::sign(list(), &[9; 16], &me).unwrap();
        let bytes = auth.encode().unwrap();
        assert_eq!(bytes.len(), 17 + 3 * 18 + 64);
        let back = FrameAuthenticator::decode(&bytes).unwrap();
        assert_eq!(back, auth);
        assert_eq!(back.verify(&[9; 16], &me.public().to_peer_id()), Ok(()));
        assert_eq!(back.verify(&[8; 16], &me.public().to_peer_id()), Err(FrameAuthError::BadSignature));
        assert_eq!(back.verify(&[9; 16], &identity(2).public().to_peer_id()), Err(FrameAuthError::BadSignature));
        let mut tampered = back.clone();
        tampered.list.frames[1].1[0] ^= 1;
        assert_eq!(tampered.verify(&[9; 16], &me.public().to_peer_id()), Err(FrameAuthError::BadSignature));
        assert!(back.list.covers(back.list.key_id, 12) && !back.list.covers(back.list.key_id, 14));
        assert_eq!(back.list.digest_of(12), None);
        assert_eq!(back.list.digest_of(13), Some(&frame_digest(b"c")));
    }

    #[test]
    fn bad_lists_are_refused_on_both_sides() {
        let mut l = list();
        l.frames.swap(0, 1);
        assert_eq!(l.encode(), Err(FrameAuthError::Counters));
        let mut l = list();
        l.frames.clear();
        assert_eq!(l.encode(), Err(FrameAuthError::Count(0)));
        let mut l = list();
        l.frames[2].0 = l.from + MAX_OFFSET + 1;
        assert_eq!(l.encode(), Err(FrameAuthError::Counters));
        let bytes = FrameAuthenticator::sign(list(), &[0; 16], &identity(1)).unwrap().encode().unwrap();
        for cut in 0..bytes.len() {
            assert!(FrameAuthenticator::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(FrameAuthenticator::decode(&[&bytes[..], &[0]].concat()), Err(FrameAuthError::Length));
        let mut zero = bytes.clone();
        zero[16] = 0;
        assert_eq!(FrameAuthenticator::decode(&zero), Err(FrameAuthError::Count(0)));
        let mut repeated = bytes.clone();
        repeated[17 + 18..17 + 18 + 2].copy_from_slice(&[0, 0]);
        assert_eq!(FrameAuthenticator::decode(&repeated), Err(FrameAuthError::Counters));
        let mut overflow = bytes;
        overflow[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(FrameAuthenticator::decode(&overflow), Err(FrameAuthError::Counters));
    }

    /// What a batch of eight audio frames costs (printed with `--nocapture`; the numbers in
    /// docs/performance.md): the plaintext and the sealed frame at an epoch below 256.
    #[test]
    fn a_batch_of_eight_costs_225_bytes_of_plaintext() {
        let frames = (0..8).map(|c| (c, frame_digest(&[c as u8]))).collect();
        let list = FrameList { key_id: KeyId::new(7, SenderIndex(1)).unwrap(), from: 0, frames };
        let plaintext = FrameAuthenticator::sign(list, &[0; 16], &identity(1)).unwrap().encode().unwrap();
        assert_eq!(plaintext.len(), 225);
        // A 5-byte clear header (media, config, 2 KID bytes, 1 CTR byte) and the 16-byte tag.
        let frame = 5 + plaintext.len() + 16;
        let kbps = frame as f64 * 8.0 / 0.160 / 1000.0;
        println!(
            "frame authenticator: {} B plaintext, {frame} B sealed, {kbps:.1} kbit/s every 160 ms",
            plaintext.len()
        );
    }
}
