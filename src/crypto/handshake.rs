//! The call handshake (`protocols/handshake-v1.md`): `Noise_XX_25519_ChaChaPoly_BLAKE2s`, sans-IO.
//!
//! ```text
//! prologue = "hail call handshake v1" || version || call id (16) || QUIC TLS exporter (32)
//! -> e                     payload: version || commitment = SHA-256("hail sas commitment v1" || n)
//! <- e, ee, s, es          payload: responder's identity binding
//! -> s, se                 payload: initiator's identity binding || n
//! ```
//!
//! The initiator (the caller) commits to a random nonce `n` before it sees the responder's keys and
//! reveals it last; the responder checks it. The SAS comes from the handshake hash after message 2
//! and `n`: nothing the initiator chooses after seeing message 2 feeds it, so a man in the middle
//! cannot grind keys until the emoji match (see `protocols/sas-v1.md`).
//!
//! Each side proves its PeerId with a [`NoiseBinding`]: an Ed25519 signature by its identity key over
//! the Noise static key the handshake authenticated.

// Errors carry the two PeerIds involved; a handshake runs once per call, so their size is no cost.
#![allow(clippy::result_large_err)]

use libp2p_identity::PeerId;
use sha2::{Digest, Sha256};
use snow::{Builder, HandshakeState};
use zeroize::Zeroizing;

use super::frame::FrameKeys;
use super::sas::Sas;
use crate::identity::{BindingError, NoiseBinding};

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// The handshake version, in the prologue and in message 1.
pub const VERSION: u8 = 1;
/// The label of the QUIC TLS exporter value bound into the prologue.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-hail-call-v1";
const PROLOGUE_LABEL: &[u8] = b"hail call handshake v1";
const COMMIT_LABEL: &[u8] = b"hail sas commitment v1";
/// Largest Noise message.
pub const MAX_MESSAGE: usize = 65535;
/// Largest identity binding accepted (an Ed25519 key and signature take 36 + 64 bytes).
const MAX_BINDING_PART: usize = 1024;

/// Why a handshake failed. Messages are for the local user; nothing of them goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// A message did not decrypt or parse as Noise (tampered, truncated, or a different prologue:
    /// another call, or another QUIC connection, as a man in the middle would have).
    #[error("a handshake message was rejected (tampered with, or not from this call's connection)")]
    Noise,
    /// A payload is malformed.
    #[error("malformed handshake payload: {0}")]
    Malformed(&'static str),
    /// The peer speaks another handshake version.
    #[error("the peer speaks handshake version {0}, this hail speaks {VERSION}")]
    Version(u8),
    /// The identity binding is invalid.
    #[error("the peer's identity proof is invalid: {0}")]
    Binding(#[from] BindingError),
    /// The peer proved an identity, but not the one expected.
    #[error("the peer is {actual}, not {expected}")]
    WrongPeer {
        /// Who we meant to talk to.
        expected: PeerId,
        /// Who answered.
        actual: PeerId,
    },
    /// The initiator's revealed nonce does not match its commitment.
    #[error("the caller's SAS commitment does not match its reveal")]
    CommitmentMismatch,
}

impl From<snow::Error> for HandshakeError {
    fn from(_: snow::Error) -> Self {
        HandshakeError::Noise
    }
}

/// What one side brings to a handshake.
#[derive(Clone)]
pub struct HandshakeParams {
    /// Our Noise static secret (X25519).
    pub static_secret: Zeroizing<[u8; 32]>,
    /// Our proof that the static key is ours.
    pub binding: NoiseBinding,
    /// The call.
    pub call_id: [u8; 16],
    /// The QUIC connection's TLS exporter value (label [`EXPORTER_LABEL`], context = call id).
    pub tls_exporter: [u8; 32],
    /// Who must be on the other side; `None` accepts whoever proves an identity (pinning off).
    pub expected_peer: Option<PeerId>,
    /// A fixed ephemeral key, for test vectors only.
    pub fixed_ephemeral: Option<[u8; 32]>,
}

impl HandshakeParams {
    /// These parameters bound to the QUIC connection's TLS exporter value.
    pub fn with_tls_exporter(self, tls_exporter: [u8; 32]) -> Self {
        HandshakeParams { tls_exporter, ..self }
    }
}

impl std::fmt::Debug for HandshakeParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeParams").field("expected_peer", &self.expected_peer).finish_non_exhaustive()
    }
}

/// Which side of the handshake we are: the initiator sends message 1 (in a call, the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeRole {
    /// Sends messages 1 and 3.
    Initiator,
    /// Answers with message 2.
    Responder,
}

/// The prologue both sides must agree on.
pub fn prologue(call_id: &[u8; 16], tls_exporter: &[u8; 32]) -> Vec<u8> {
    [PROLOGUE_LABEL, &[VERSION], &call_id[..], &tls_exporter[..]].concat()
}

/// The commitment to the initiator's nonce.
pub fn commitment(nonce: &[u8; 32]) -> [u8; 32] {
    Sha256::new().chain_update(COMMIT_LABEL).chain_update(nonce).finalize().into()
}

/// A completed handshake.
#[derive(Debug, Clone)]
pub struct Established {
    /// Who is on the other side (proved by its binding).
    pub remote_peer: PeerId,
    /// The four emoji.
    pub sas: Sas,
    /// The handshake hash after message 3.
    pub handshake_hash: Vec<u8>,
    /// Keys for media frames.
    pub frame_keys: FrameKeys,
}

fn build(params: &HandshakeParams, initiator: bool) -> Result<HandshakeState, HandshakeError> {
    let prologue = prologue(&params.call_id, &params.tls_exporter);
    let mut builder = Builder::new(NOISE_PARAMS.parse().expect("a valid Noise protocol name"))
        .local_private_key(&params.static_secret[..])?
        .prologue(&prologue)?;
    if let Some(e) = &params.fixed_ephemeral {
        builder = builder.fixed_ephemeral_key_for_testing_only(e);
    }
    Ok(if initiator { builder.build_initiator()? } else { builder.build_responder()? })
}

fn encode_binding(binding: &NoiseBinding) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + binding.identity_public.len() + binding.signature.len());
    for part in [&binding.identity_public, &binding.signature] {
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// Reads a binding; returns it and what follows.
fn decode_binding(payload: &[u8]) -> Result<(NoiseBinding, &[u8]), HandshakeError> {
    let mut rest = payload;
    let mut parts = Vec::with_capacity(2);
    for _ in 0..2 {
        if rest.len() < 2 {
            return Err(HandshakeError::Malformed("identity binding cut short"));
        }
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        if len > MAX_BINDING_PART || rest.len() < 2 + len {
            return Err(HandshakeError::Malformed("identity binding length"));
        }
        parts.push(rest[2..2 + len].to_vec());
        rest = &rest[2 + len..];
    }
    let signature = parts.pop().expect("two parts");
    let identity_public = parts.pop().expect("two parts");
    Ok((NoiseBinding { identity_public, signature }, rest))
}

fn remote_static(hs: &HandshakeState) -> Result<[u8; 32], HandshakeError> {
    hs.get_remote_static()
        .and_then(|s| <[u8; 32]>::try_from(s).ok())
        .ok_or(HandshakeError::Malformed("no remote static key"))
}

fn check_peer(binding: &NoiseBinding, hs: &HandshakeState, expected: Option<PeerId>) -> Result<PeerId, HandshakeError> {
    let actual = binding.verify(&remote_static(hs)?)?;
    match expected {
        Some(expected) if expected != actual => Err(HandshakeError::WrongPeer { expected, actual }),
        _ => Ok(actual),
    }
}

fn finish(mut hs: HandshakeState, remote_peer: PeerId, sas: Sas) -> Established {
    let handshake_hash = hs.get_handshake_hash().to_vec();
    let (i2r, r2i) = hs.dangerously_get_raw_split();
    let frame_keys = FrameKeys::new(i2r, r2i, hs.is_initiator(), &handshake_hash);
    Established { remote_peer, sas, handshake_hash, frame_keys }
}

/// The caller's side.
pub struct Initiator {
    hs: HandshakeState,
    nonce: [u8; 32],
    params: HandshakeParams,
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Initiator")
    }
}

impl Initiator {
    /// Starts the handshake with the SAS nonce `nonce` (random in real calls); returns message 1.
    pub fn start(params: HandshakeParams, nonce: [u8; 32]) -> Result<(Initiator, Vec<u8>), HandshakeError> {
        let mut hs = build(&params, true)?;
        let payload = [&[VERSION][..], &commitment(&nonce)[..]].concat();
        let mut msg = vec![0u8; MAX_MESSAGE];
        let n = hs.write_message(&payload, &mut msg)?;
        msg.truncate(n);
        Ok((Initiator { hs, nonce, params }, msg))
    }

    /// Reads message 2, checks who answered, and returns message 3 and the established session.
    pub fn read_message_2(mut self, msg2: &[u8]) -> Result<(Vec<u8>, Established), HandshakeError> {
        let mut payload = vec![0u8; MAX_MESSAGE];
        let n = self.hs.read_message(msg2, &mut payload)?;
        let (binding, rest) = decode_binding(&payload[..n])?;
        if !rest.is_empty() {
            return Err(HandshakeError::Malformed("trailing bytes in message 2"));
        }
        let remote_peer = check_peer(&binding, &self.hs, self.params.expected_peer)?;
        let sas = Sas::derive(self.hs.get_handshake_hash(), &self.nonce);
        let payload3 = [encode_binding(&self.params.binding), self.nonce.to_vec()].concat();
        let mut msg3 = vec![0u8; MAX_MESSAGE];
        let n = self.hs.write_message(&payload3, &mut msg3)?;
        msg3.truncate(n);
        Ok((msg3, finish(self.hs, remote_peer, sas)))
    }
}

/// The callee's side.
pub struct Responder {
    hs: HandshakeState,
    params: HandshakeParams,
    commitment: Option<[u8; 32]>,
    hash_after_message_2: Option<Vec<u8>>,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Responder")
    }
}

impl Responder {
    /// A responder waiting for message 1.
    pub fn new(params: HandshakeParams) -> Result<Responder, HandshakeError> {
        Ok(Responder { hs: build(&params, false)?, params, commitment: None, hash_after_message_2: None })
    }

    /// Reads message 1 and returns message 2.
    pub fn read_message_1(&mut self, msg1: &[u8]) -> Result<Vec<u8>, HandshakeError> {
        if self.commitment.is_some() {
            return Err(HandshakeError::Malformed("message 1 twice"));
        }
        let mut payload = vec![0u8; MAX_MESSAGE];
        let n = self.hs.read_message(msg1, &mut payload)?;
        let payload = &payload[..n];
        match payload.first() {
            Some(&VERSION) if payload.len() == 33 => {}
            Some(&v) if v != VERSION => return Err(HandshakeError::Version(v)),
            _ => return Err(HandshakeError::Malformed("message 1 payload")),
        }
        self.commitment = Some(payload[1..].try_into().expect("32 bytes"));
        let mut msg2 = vec![0u8; MAX_MESSAGE];
        let n = self.hs.write_message(&encode_binding(&self.params.binding), &mut msg2)?;
        msg2.truncate(n);
        self.hash_after_message_2 = Some(self.hs.get_handshake_hash().to_vec());
        Ok(msg2)
    }

    /// The handshake hash after message 2 (what the SAS is derived from, with the nonce).
    pub fn hash_after_message_2(&self) -> Option<&[u8]> {
        self.hash_after_message_2.as_deref()
    }

    /// Reads message 3: checks the caller's identity and its commitment, and completes.
    pub fn read_message_3(mut self, msg3: &[u8]) -> Result<Established, HandshakeError> {
        let (Some(commit), Some(h2)) = (self.commitment, self.hash_after_message_2.take()) else {
            return Err(HandshakeError::Malformed("message 3 before message 1"));
        };
        let mut payload = vec![0u8; MAX_MESSAGE];
        let n = self.hs.read_message(msg3, &mut payload)?;
        let (binding, rest) = decode_binding(&payload[..n])?;
        let nonce: [u8; 32] = rest.try_into().map_err(|_| HandshakeError::Malformed("nonce reveal"))?;
        if commitment(&nonce) != commit {
            return Err(HandshakeError::CommitmentMismatch);
        }
        let remote_peer = check_peer(&binding, &self.hs, self.params.expected_peer)?;
        let sas = Sas::derive(&h2, &nonce);
        Ok(finish(self.hs, remote_peer, sas))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn params(id: &Identity, expected: Option<PeerId>, exporter: [u8; 32]) -> HandshakeParams {
        HandshakeParams {
            static_secret: id.noise_static_secret(),
            binding: id.noise_binding(),
            call_id: [7; 16],
            tls_exporter: exporter,
            expected_peer: expected,
            fixed_ephemeral: None,
        }
    }

    fn ids() -> (Identity, Identity) {
        (Identity::from_seed([1; 32]), Identity::from_seed([2; 32]))
    }

    #[test]
    fn both_sides_agree_on_peers_sas_and_keys() {
        let (alice, bob) = ids();
        let (i, m1) = Initiator::start(params(&alice, Some(bob.peer_id()), [3; 32]), [9; 32]).unwrap();
        let mut r = Responder::new(params(&bob, Some(alice.peer_id()), [3; 32])).unwrap();
        let m2 = r.read_message_1(&m1).unwrap();
        let (m3, a) = i.read_message_2(&m2).unwrap();
        let b = r.read_message_3(&m3).unwrap();
        assert_eq!(a.remote_peer, bob.peer_id());
        assert_eq!(b.remote_peer, alice.peer_id());
        assert_eq!(a.sas, b.sas);
        assert_eq!(a.handshake_hash, b.handshake_hash);
        let (_, sealed) = a.frame_keys.sealer(crate::crypto::frame::MediaKind::Audio).seal(b"", b"hi");
        assert_eq!(b.frame_keys.opener(crate::crypto::frame::MediaKind::Audio).open(0, b"", &sealed).unwrap(), b"hi");
    }

    #[test]
    fn a_swapped_commitment_breaks_the_transcript() {
        let (alice, bob) = ids();
        let (i, m1) = Initiator::start(params(&alice, None, [3; 32]), [9; 32]).unwrap();
        let mut r = Responder::new(params(&bob, None, [3; 32])).unwrap();
        // A man in the middle swaps in a commitment of its own (message 1 travels in clear).
        let mut forged = m1.clone();
        let n = forged.len();
        forged[n - 32..].copy_from_slice(&commitment(&[0xEE; 32]));
        let m2 = r.read_message_1(&forged).unwrap();
        assert_eq!(i.read_message_2(&m2).unwrap_err(), HandshakeError::Noise);
    }

    #[test]
    fn a_wrong_commitment_reveal_aborts() {
        let (alice, bob) = ids();
        let (cheater, m1) = Initiator::start(params(&alice, None, [3; 32]), [9; 32]).unwrap();
        let mut r = Responder::new(params(&bob, None, [3; 32])).unwrap();
        let m2 = r.read_message_1(&m1).unwrap();
        // The initiator reveals another nonce than the one it committed to.
        let mut hs = cheater.hs;
        let mut buf = vec![0u8; MAX_MESSAGE];
        hs.read_message(&m2, &mut buf).unwrap();
        let payload3 = [encode_binding(&alice.noise_binding()), vec![0x42; 32]].concat();
        let n = hs.write_message(&payload3, &mut buf).unwrap();
        assert_eq!(r.read_message_3(&buf[..n]).unwrap_err(), HandshakeError::CommitmentMismatch);
    }

    #[test]
    fn a_tampered_message_aborts() {
        let (alice, bob) = ids();
        let (i, m1) = Initiator::start(params(&alice, None, [3; 32]), [9; 32]).unwrap();
        let mut r = Responder::new(params(&bob, None, [3; 32])).unwrap();
        let mut m2 = r.read_message_1(&m1).unwrap();
        let last = m2.len() - 1;
        m2[last] ^= 0x01;
        assert_eq!(i.read_message_2(&m2).unwrap_err(), HandshakeError::Noise);

        let (i, m1) = Initiator::start(params(&alice, None, [3; 32]), [9; 32]).unwrap();
        let mut r = Responder::new(params(&bob, None, [3; 32])).unwrap();
        let m2 = r.read_message_1(&m1).unwrap();
        let (mut m3, _) = i.read_message_2(&m2).unwrap();
        m3[10] ^= 0x80;
        assert_eq!(r.read_message_3(&m3).unwrap_err(), HandshakeError::Noise);
    }

    #[test]
    fn different_connections_or_calls_do_not_mix() {
        let (alice, bob) = ids();
        let (i, m1) = Initiator::start(params(&alice, None, [3; 32]), [9; 32]).unwrap();
        // The responder sits on another QUIC connection (another exporter): a spliced MITM.
        let mut r = Responder::new(params(&bob, None, [4; 32])).unwrap();
        let m2 = r.read_message_1(&m1).unwrap();
        assert_eq!(i.read_message_2(&m2).unwrap_err(), HandshakeError::Noise);
    }

    #[test]
    fn the_wrong_peer_is_refused_by_name() {
        let (alice, bob) = ids();
        let carol = Identity::from_seed([3; 32]);
        let (i, m1) = Initiator::start(params(&alice, Some(carol.peer_id()), [3; 32]), [9; 32]).unwrap();
        let mut r = Responder::new(params(&bob, None, [3; 32])).unwrap();
        let m2 = r.read_message_1(&m1).unwrap();
        assert_eq!(
            i.read_message_2(&m2).unwrap_err(),
            HandshakeError::WrongPeer { expected: carol.peer_id(), actual: bob.peer_id() }
        );
    }

    #[test]
    fn garbage_never_panics() {
        let (_, bob) = ids();
        for junk in [&b""[..], &[0u8; 1], &[0xff; 31], &[0u8; 100], &vec![7u8; 70000]] {
            let mut r = Responder::new(params(&bob, None, [3; 32])).unwrap();
            assert!(r.read_message_1(junk).is_err());
        }
        assert!(decode_binding(&[0xff, 0xff, 1]).is_err());
        assert!(decode_binding(&[]).is_err());
    }
}
