//! Per-frame media encryption: ChaCha20-Poly1305 under per-direction, per-stream keys derived from
//! the Noise handshake, with an explicit 64-bit counter nonce carried in each frame and a replay
//! window at the receiver (`protocols/handshake-v1.md`, "Frame keys").

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// How far behind the newest counter a frame may arrive and still be accepted.
pub const REPLAY_WINDOW: u64 = 1024;

/// Which media stream a key is for; each has its own keys, so counters never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// Opus frames.
    Audio,
    /// AV1 temporal units.
    Video,
    /// Receiver reports.
    Report,
}

impl MediaKind {
    fn label(self) -> &'static [u8] {
        match self {
            MediaKind::Audio => b"audio",
            MediaKind::Video => b"video",
            MediaKind::Report => b"report",
        }
    }
}

/// The two raw directional keys a handshake produced, bound to its transcript.
#[derive(Clone)]
pub struct FrameKeys {
    /// Key material for what we send.
    send: Zeroizing<[u8; 32]>,
    /// Key material for what we receive.
    recv: Zeroizing<[u8; 32]>,
    transcript: Vec<u8>,
}

impl std::fmt::Debug for FrameKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameKeys(..)")
    }
}

impl FrameKeys {
    /// From the Noise split (`initiator→responder`, `responder→initiator`), our role, and the final
    /// handshake hash.
    pub fn new(i2r: [u8; 32], r2i: [u8; 32], initiator: bool, handshake_hash: &[u8]) -> Self {
        let (send, recv) = if initiator { (i2r, r2i) } else { (r2i, i2r) };
        FrameKeys { send: Zeroizing::new(send), recv: Zeroizing::new(recv), transcript: handshake_hash.to_vec() }
    }

    fn derive(&self, material: &[u8; 32], kind: MediaKind) -> ChaCha20Poly1305 {
        let hk = Hkdf::<Sha256>::new(Some(&self.transcript), material);
        let mut key = Zeroizing::new([0u8; 32]);
        hk.expand(&[b"hail frame key v1 ".as_slice(), kind.label()].concat(), &mut key[..])
            .expect("32 bytes is a valid HKDF length");
        ChaCha20Poly1305::new(Key::from_slice(&key[..]))
    }

    /// The sealer for our `kind` frames.
    pub fn sealer(&self, kind: MediaKind) -> FrameSealer {
        FrameSealer { cipher: self.derive(&self.send, kind), next: 0 }
    }

    /// The opener for the peer's `kind` frames.
    pub fn opener(&self, kind: MediaKind) -> FrameOpener {
        FrameOpener { cipher: self.derive(&self.recv, kind), window: ReplayWindow::default() }
    }
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    *Nonce::from_slice(&n)
}

/// Seals outgoing frames with consecutive counters.
pub struct FrameSealer {
    cipher: ChaCha20Poly1305,
    next: u64,
}

impl std::fmt::Debug for FrameSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameSealer").field("next", &self.next).finish()
    }
}

impl FrameSealer {
    /// The counter the next [`FrameSealer::seal`] will use (to put it in the header it authenticates).
    pub fn next_counter(&self) -> u64 {
        self.next
    }

    /// Seals `plaintext` (authenticating `aad`, e.g. the frame header). Returns the counter to send
    /// with the frame, and the ciphertext with its 16-byte tag.
    pub fn seal(&mut self, aad: &[u8], plaintext: &[u8]) -> (u64, Vec<u8>) {
        let counter = self.next;
        self.next += 1;
        let sealed = self
            .cipher
            .encrypt(&nonce(counter), Payload { msg: plaintext, aad })
            .expect("ChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        (counter, sealed)
    }
}

/// Why a frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// That counter was already accepted.
    #[error("replayed frame")]
    Replay,
    /// The counter is older than the replay window (or is 2^64 − 1, which no sender reaches and
    /// the window cannot hold).
    #[error("frame too old for the replay window")]
    TooOld,
    /// The tag does not verify: tampered, or not sealed with this key.
    #[error("frame failed authentication")]
    Auth,
}

/// Opens incoming frames and refuses replays.
pub struct FrameOpener {
    cipher: ChaCha20Poly1305,
    window: ReplayWindow,
}

impl std::fmt::Debug for FrameOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameOpener").field("window", &self.window).finish()
    }
}

impl FrameOpener {
    /// Checks the counter against the window, then the tag; only a frame that authenticates moves
    /// the window (so forged frames cannot push genuine ones out).
    pub fn open(&mut self, counter: u64, aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, FrameError> {
        self.window.check(counter)?;
        let plain =
            self.cipher.decrypt(&nonce(counter), Payload { msg: ciphertext, aad }).map_err(|_| FrameError::Auth)?;
        self.window.accept(counter);
        Ok(plain)
    }
}

/// A sliding window of accepted counters (RFC 6479 style, 1024 wide).
#[derive(Debug, Default, Clone)]
pub struct ReplayWindow {
    /// One past the highest accepted counter (0: nothing accepted yet).
    top: u64,
    bits: [u64; (REPLAY_WINDOW / 64) as usize],
}

impl ReplayWindow {
    /// Whether `counter` may be accepted.
    pub fn check(&self, counter: u64) -> Result<(), FrameError> {
        if counter == u64::MAX {
            // "One past the highest accepted" would overflow; a sender starts at 0 and never gets here.
            return Err(FrameError::TooOld);
        }
        if counter >= self.top {
            return Ok(());
        }
        if self.top - counter > REPLAY_WINDOW {
            return Err(FrameError::TooOld);
        }
        if self.bit(counter) { Err(FrameError::Replay) } else { Ok(()) }
    }

    /// Records `counter` as accepted (call after [`ReplayWindow::check`] and authentication).
    pub fn accept(&mut self, counter: u64) {
        if counter >= self.top {
            // Clear the bits the window slides over.
            let advance = counter + 1 - self.top;
            if advance >= REPLAY_WINDOW {
                self.bits = Default::default();
            } else {
                for c in self.top..=counter {
                    self.set(c, false);
                }
            }
            self.top = counter + 1;
        }
        self.set(counter, true);
    }

    fn bit(&self, counter: u64) -> bool {
        let i = (counter % REPLAY_WINDOW) as usize;
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, counter: u64, on: bool) {
        let i = (counter % REPLAY_WINDOW) as usize;
        if on {
            self.bits[i / 64] |= 1 << (i % 64);
        } else {
            self.bits[i / 64] &= !(1 << (i % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (FrameKeys, FrameKeys) {
        let (i2r, r2i) = ([1u8; 32], [2u8; 32]);
        (FrameKeys::new(i2r, r2i, true, b"transcript"), FrameKeys::new(i2r, r2i, false, b"transcript"))
    }

    #[test]
    fn a_frame_round_trips_and_a_replay_is_refused() {
        let (alice, bob) = pair();
        let mut seal = alice.sealer(MediaKind::Audio);
        let mut open = bob.opener(MediaKind::Audio);
        let (c, sealed) = seal.seal(b"hdr", b"hello");
        assert_eq!(open.open(c, b"hdr", &sealed).unwrap(), b"hello");
        assert_eq!(open.open(c, b"hdr", &sealed), Err(FrameError::Replay));
    }

    #[test]
    fn reordering_inside_the_window_is_fine_outside_it_is_not() {
        let (alice, bob) = pair();
        let mut seal = alice.sealer(MediaKind::Video);
        let mut open = bob.opener(MediaKind::Video);
        let frames: Vec<_> = (0..2000).map(|i| seal.seal(b"", &[i as u8])).collect();
        let (c5, f5) = &frames[5];
        let (c1500, f1500) = &frames[1500];
        let (c1000, f1000) = &frames[1000];
        assert!(open.open(*c1500, b"", f1500).is_ok());
        assert!(open.open(*c1000, b"", f1000).is_ok(), "500 behind: inside the window");
        assert_eq!(open.open(*c5, b"", f5), Err(FrameError::TooOld));
        assert_eq!(open.open(*c1000, b"", f1000), Err(FrameError::Replay));
    }

    #[test]
    fn tampering_and_wrong_keys_fail_authentication_without_moving_the_window() {
        let (alice, bob) = pair();
        let mut seal = alice.sealer(MediaKind::Audio);
        let mut open = bob.opener(MediaKind::Audio);
        let (c, mut sealed) = seal.seal(b"hdr", b"voice");
        sealed[0] ^= 1;
        assert_eq!(open.open(c, b"hdr", &sealed), Err(FrameError::Auth));
        sealed[0] ^= 1;
        assert_eq!(open.open(c, b"other header", &sealed), Err(FrameError::Auth));
        assert_eq!(open.open(c + 100, b"hdr", &sealed), Err(FrameError::Auth), "counter is bound by the nonce");
        // Audio keys do not open video, and our own sealer's frames do not open as the peer's.
        let mut video = bob.opener(MediaKind::Video);
        assert_eq!(video.open(c, b"hdr", &sealed), Err(FrameError::Auth));
        let mut mine = alice.opener(MediaKind::Audio);
        assert_eq!(mine.open(c, b"hdr", &sealed), Err(FrameError::Auth));
        // The genuine frame still opens: the forgeries did not advance the window.
        assert_eq!(open.open(c, b"hdr", &sealed).unwrap(), b"voice");
    }
}
