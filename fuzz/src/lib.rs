//! What the fuzz targets share: fixed identities and handshake parameters (so every run is
//! deterministic), a cursor over the fuzzer's bytes, and scratch files for the readers that take a
//! path.

use std::path::PathBuf;
use std::sync::LazyLock;

use hail::crypto::handshake::{HandshakeParams, NOISE_PARAMS, prologue};
use hail::identity::Identity;
use sha2::{Digest, Sha256};

/// The caller of the fixed handshake (seed 01..01, as in `protocols/vectors/handshake-v1.json`).
pub static ALICE: LazyLock<Identity> = LazyLock::new(|| Identity::from_seed([1; 32]));
/// The callee of the fixed handshake (seed 02..02).
pub static BOB: LazyLock<Identity> = LazyLock::new(|| Identity::from_seed([2; 32]));
/// The call id of the fixed handshake.
pub const CALL_ID: [u8; 16] = [0x44; 16];
/// The TLS exporter of the fixed handshake.
pub const EXPORTER: [u8; 32] = [0x55; 32];
/// The initiator's fixed ephemeral secret.
pub const INITIATOR_EPHEMERAL: [u8; 32] = [0x11; 32];
/// The responder's fixed ephemeral secret.
pub const RESPONDER_EPHEMERAL: [u8; 32] = [0x22; 32];
/// The initiator's fixed SAS nonce.
pub const NONCE: [u8; 32] = [0x33; 32];

/// Handshake parameters for `id`, expecting `expected`, with a fixed ephemeral key.
pub fn params(id: &Identity, expected: &Identity, ephemeral: [u8; 32]) -> HandshakeParams {
    HandshakeParams {
        static_secret: id.noise_static_secret(),
        binding: id.noise_binding(),
        call_id: CALL_ID,
        tls_exporter: EXPORTER,
        expected_peer: Some(expected.peer_id()),
        fixed_ephemeral: Some(ephemeral),
    }
}

/// A bare Noise state with the call's prologue, for playing the other side with payloads the
/// fuzzer chooses (so the payload decoders are reached behind valid encryption).
pub fn raw_noise(id: &Identity, ephemeral: [u8; 32], initiator: bool) -> snow::HandshakeState {
    let secret = id.noise_static_secret();
    let prologue = prologue(&CALL_ID, &EXPORTER);
    let builder = snow::Builder::new(NOISE_PARAMS.parse().expect("a valid Noise protocol name"))
        .local_private_key(&secret[..])
        .expect("a 32-byte key")
        .prologue(&prologue)
        .expect("a prologue")
        .fixed_ephemeral_key_for_testing_only(&ephemeral);
    if initiator { builder.build_initiator() } else { builder.build_responder() }.expect("a Noise state")
}

/// The identity binding as the handshake encodes it (`protocols/handshake-v1.md`).
pub fn encode_binding(id: &Identity) -> Vec<u8> {
    let b = id.noise_binding();
    let mut out = Vec::new();
    for part in [&b.identity_public, &b.signature] {
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// A contact card around `payload`, with the right checksum (`protocols/card-v1.md`), so the
/// fuzzer reaches the field decoder behind the checksum.
pub fn card_text(payload: &[u8]) -> String {
    let checksum = Sha256::new().chain_update(b"hail1").chain_update(payload).finalize();
    let mut bytes = payload.to_vec();
    bytes.extend_from_slice(&checksum[..4]);
    let mut spec = data_encoding::Specification::new();
    spec.symbols.push_str("abcdefghijklmnopqrstuvwxyz234567");
    format!("hail1{}", spec.encoding().expect("base32").encode(&bytes))
}

/// A cursor over the fuzzer's bytes; reads past the end give zeros / empty slices.
#[derive(Debug)]
pub struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
    /// One byte.
    pub fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }
    /// Two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        let mut b = [0u8; 2];
        let t = self.take(2);
        b[..t.len()].copy_from_slice(t);
        u16::from_be_bytes(b)
    }
    /// Eight bytes, big-endian.
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let t = self.take(8);
        b[..t.len()].copy_from_slice(t);
        u64::from_be_bytes(b)
    }
    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(usize::MAX)
    }
}

/// A file of this process's own, for the readers that open a path: in `$HAIL_FUZZ_SCRATCH` (which
/// `scripts/fuzz.sh` makes in memory, and removes) or else the temporary directory.
pub fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
        let base = std::env::var_os("HAIL_FUZZ_SCRATCH").map_or_else(std::env::temp_dir, PathBuf::from);
        let dir = base.join(format!("hail-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    });
    let path = DIR.join(name);
    std::fs::write(&path, bytes).expect("a scratch file");
    path
}
