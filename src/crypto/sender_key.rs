//! Per-sender media keys for group calls (`protocols/group-media-v1.md`), SFrame-style (RFC 9605):
//! each member seals each frame once, under its own key for the current epoch, and every other
//! member opens it with that sender's key. Sans-IO, no clock, no randomness of its own.
//!
//! ```text
//! group frame = media (1) || SFrame header (config byte, KID, CTR; RFC 9605 §4.3) || ciphertext || tag (16)
//! KID         = epoch << 8 | sender index
//! key, salt   = RFC 9605 §4.4.2 from the sender's random base key, suite 0xF001
//!               (ChaCha20-Poly1305, HKDF-SHA256, Nk 32, Nn 12, Nt 16)
//! nonce       = salt XOR CTR;  aad = SFrame header || media
//! ```
//!
//! - [`SenderKey`] seals our own frames for one epoch.
//! - [`SenderKeyRing`] holds the other members' keys by (sender, epoch), opens their frames, keeps a
//!   replay window per key, and forgets a member's or an epoch's keys when told.
//! - [`GroupFrameHeader`] is all a forwarder reads: the clear header says which sender, epoch,
//!   counter and media (kind and temporal layer) a frame is, without any key.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

use super::frame::{FrameError, ReplayWindow};

/// The SFrame cipher suite hail uses: ChaCha20-Poly1305 with HKDF-SHA256, from RFC 9605's private
/// use range (RFC 9605 registers only AES suites; hail seals all media with ChaCha20-Poly1305).
pub const CIPHER_SUITE: u16 = 0xF001;
/// The largest epoch a key id can carry (the KID is 64 bits; 8 of them are the sender index).
pub const MAX_EPOCH: u64 = (1 << 56) - 1;
/// Epochs a ring keeps per sender: the current one and the one before (frames still in flight
/// during a rekey).
pub const EPOCHS_PER_SENDER: usize = 2;
/// The authentication tag's length.
pub const TAG_LEN: usize = 16;

const KEY_LABEL: &[u8] = b"SFrame 1.0 Secret key ";
const SALT_LABEL: &[u8] = b"SFrame 1.0 Secret salt ";
const MEDIA_AUDIO: u8 = 0x10;
const MEDIA_VIDEO: u8 = 0x20;
const MEDIA_REPORT: u8 = 0x30;
const MEDIA_AUTHENTICATOR: u8 = 0x40;

/// A member's index in the group call: the low 8 bits of every key id it seals under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SenderIndex(pub u8);

/// Which sender's key, for which epoch: the SFrame KID `epoch << 8 | sender`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId {
    sender: SenderIndex,
    epoch: u64,
}

impl KeyId {
    /// The key of `sender` in `epoch`; `None` if the epoch is past [`MAX_EPOCH`].
    pub fn new(epoch: u64, sender: SenderIndex) -> Option<KeyId> {
        (epoch <= MAX_EPOCH).then_some(KeyId { sender, epoch })
    }

    /// Reads a KID; every 64-bit value is some sender's key id for some epoch.
    pub fn from_kid(kid: u64) -> KeyId {
        KeyId { sender: SenderIndex(kid as u8), epoch: kid >> 8 }
    }

    /// The KID on the wire.
    pub fn kid(self) -> u64 {
        self.epoch << 8 | self.sender.0 as u64
    }

    /// The sender.
    pub fn sender(self) -> SenderIndex {
        self.sender
    }

    /// The epoch.
    pub fn epoch(self) -> u64 {
        self.epoch
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sender {}, epoch {}", self.sender.0, self.epoch)
    }
}

/// What a frame carries, in the clear (and authenticated) so that a forwarder can route audio
/// before video and drop a receiver's enhancement layers without a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupMedia {
    /// An audio frame (`0x10`).
    Audio,
    /// A video temporal unit of temporal layer 0 (base) to 15 (`0x20 | layer`).
    Video {
        /// The AV1 temporal layer: 0 is the base every receiver needs.
        temporal_layer: u8,
    },
    /// A receiver report to the member whose audio it is about (`0x30`): media, not a frame of
    /// media, but sealed like one so that only members read it and it is the reporter's word.
    Report,
    /// A frame authenticator (`0x40`): a sender's signed digests of its frames, so that a
    /// forwarder's forgery under its sender index is detected (`crate::crypto::frame_auth`).
    Authenticator,
}

impl GroupMedia {
    /// The byte on the wire. (A temporal layer above 15 is written as 15.)
    pub fn to_byte(self) -> u8 {
        match self {
            GroupMedia::Audio => MEDIA_AUDIO,
            GroupMedia::Video { temporal_layer } => MEDIA_VIDEO | temporal_layer.min(15),
            GroupMedia::Report => MEDIA_REPORT,
            GroupMedia::Authenticator => MEDIA_AUTHENTICATOR,
        }
    }

    /// Reads the byte on the wire.
    pub fn from_byte(byte: u8) -> Result<GroupMedia, GroupFrameError> {
        match byte {
            MEDIA_AUDIO => Ok(GroupMedia::Audio),
            MEDIA_REPORT => Ok(GroupMedia::Report),
            MEDIA_AUTHENTICATOR => Ok(GroupMedia::Authenticator),
            b if b & 0xf0 == MEDIA_VIDEO => Ok(GroupMedia::Video { temporal_layer: b & 0x0f }),
            b => Err(GroupFrameError::UnknownMedia(b)),
        }
    }
}

/// Why a group frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GroupFrameError {
    /// Shorter than its header and a tag.
    #[error("group frame cut short")]
    Truncated,
    /// The SFrame header is not in its shortest form (RFC 9605 §4.3), so it is not what a sender
    /// writes.
    #[error("group frame header not in its shortest form")]
    NonMinimalHeader,
    /// The media byte is none that hail writes.
    #[error("unknown group media byte {0:#04x}")]
    UnknownMedia(u8),
    /// No key for this sender and epoch: forged, or of a member who left, or of an epoch retired
    /// (or not yet received).
    #[error("no key for {0}")]
    UnknownKey(KeyId),
    /// A replay, a counter too old for the window, or a tag that does not verify.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// The clear part of a group frame: the media byte and the SFrame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupFrameHeader {
    /// Audio, or video of a temporal layer.
    pub media: GroupMedia,
    /// Whose key, which epoch.
    pub key_id: KeyId,
    /// The sender's frame counter under that key.
    pub counter: u64,
}

/// The bytes a value takes after the config byte: none below 8, else its shortest big-endian form.
fn extension_len(value: u64) -> usize {
    if value < 8 { 0 } else { 8 - value.leading_zeros() as usize / 8 }
}

fn nibble(value: u64) -> u8 {
    match extension_len(value) {
        0 => value as u8,
        len => 0x08 | (len - 1) as u8,
    }
}

/// Reads a KID or CTR field given its nibble; returns the value and the rest.
fn read_field(nibble: u8, rest: &[u8]) -> Result<(u64, &[u8]), GroupFrameError> {
    if nibble & 0x08 == 0 {
        return Ok((nibble as u64, rest));
    }
    let len = (nibble & 0x07) as usize + 1;
    let bytes = rest.get(..len).ok_or(GroupFrameError::Truncated)?;
    let value = bytes.iter().fold(0u64, |acc, b| acc << 8 | *b as u64);
    if extension_len(value) != len {
        return Err(GroupFrameError::NonMinimalHeader);
    }
    Ok((value, &rest[len..]))
}

impl GroupFrameHeader {
    /// Encodes the SFrame header alone (RFC 9605 §4.3, shortest form).
    pub fn sframe_header(kid: u64, counter: u64) -> Vec<u8> {
        let mut out = vec![nibble(kid) << 4 | nibble(counter)];
        for value in [kid, counter] {
            let len = extension_len(value);
            out.extend_from_slice(&value.to_be_bytes()[8 - len..]);
        }
        out
    }

    /// Decodes an SFrame header alone; returns the KID, the counter and the header's length.
    pub fn parse_sframe_header(bytes: &[u8]) -> Result<(u64, u64, usize), GroupFrameError> {
        let (&config, rest) = bytes.split_first().ok_or(GroupFrameError::Truncated)?;
        let (kid, rest) = read_field(config >> 4, rest)?;
        let (counter, rest) = read_field(config & 0x0f, rest)?;
        Ok((kid, counter, bytes.len() - rest.len()))
    }

    /// The clear bytes that start the frame: media byte, then the SFrame header.
    pub fn encode(&self) -> Vec<u8> {
        [&[self.media.to_byte()][..], &Self::sframe_header(self.key_id.kid(), self.counter)].concat()
    }

    /// Reads a group frame's clear header (all a forwarder needs); returns it and its length. A
    /// frame without room for the tag after the header is refused as truncated.
    pub fn parse(frame: &[u8]) -> Result<(GroupFrameHeader, usize), GroupFrameError> {
        let (&media, rest) = frame.split_first().ok_or(GroupFrameError::Truncated)?;
        let media = GroupMedia::from_byte(media)?;
        let (kid, counter, len) = Self::parse_sframe_header(rest)?;
        if rest.len() - len < TAG_LEN {
            return Err(GroupFrameError::Truncated);
        }
        Ok((GroupFrameHeader { media, key_id: KeyId::from_kid(kid), counter }, 1 + len))
    }
}

/// The additional data of a frame whose clear header is `clear` (media byte || SFrame header):
/// RFC 9605's `header || metadata`, with the media byte as the metadata.
fn aad(clear: &[u8]) -> Vec<u8> {
    [&clear[1..], &clear[..1]].concat()
}

/// A sender's random base key for one epoch: 32 bytes it chooses afresh for every epoch and sends
/// to every member of that epoch over the pairwise Noise channels.
#[derive(Clone)]
pub struct SenderBaseKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SenderBaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SenderBaseKey(..)")
    }
}

impl SenderBaseKey {
    /// A key received from its sender (or fixed, in test vectors).
    pub fn from_bytes(bytes: [u8; 32]) -> SenderBaseKey {
        SenderBaseKey(Zeroizing::new(bytes))
    }

    /// A fresh key from `rng` (the driver's: the core has no randomness of its own).
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> SenderBaseKey {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut bytes[..]);
        SenderBaseKey(bytes)
    }

    /// The bytes, to send to a member over its Noise channel.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn fingerprint(&self) -> [u8; 32] {
        Sha256::digest(&self.0[..]).into()
    }
}

/// RFC 9605 §4.4.2: `sframe_key` and `sframe_salt` from a base key, a KID and a cipher suite, with
/// HKDF-SHA256 (the key's length is the suite's Nk).
fn sframe_key_and_salt(base_key: &[u8], kid: u64, suite: u16, key: &mut [u8], salt: &mut [u8; 12]) {
    let hk = Hkdf::<Sha256>::new(None, base_key);
    let label = |prefix: &[u8]| [prefix, &kid.to_be_bytes(), &suite.to_be_bytes()].concat();
    hk.expand(&label(KEY_LABEL), key).expect("Nk is a valid HKDF-SHA256 length");
    hk.expand(&label(SALT_LABEL), salt).expect("12 bytes is a valid HKDF-SHA256 length");
}

/// The AEAD and salt of one (sender, epoch).
struct FrameCipher {
    aead: ChaCha20Poly1305,
    salt: [u8; 12],
}

impl FrameCipher {
    fn new(key_id: KeyId, base_key: &SenderBaseKey) -> FrameCipher {
        let mut key = Zeroizing::new([0u8; 32]);
        let mut salt = [0u8; 12];
        sframe_key_and_salt(&base_key.0[..], key_id.kid(), CIPHER_SUITE, &mut key[..], &mut salt);
        FrameCipher { aead: ChaCha20Poly1305::new(Key::from_slice(&key[..])), salt }
    }

    /// `salt XOR CTR`, the counter big-endian in the nonce's last 8 bytes.
    fn nonce(&self, counter: u64) -> Nonce {
        let mut n = self.salt;
        for (n, c) in n[4..].iter_mut().zip(counter.to_be_bytes()) {
            *n ^= c;
        }
        *Nonce::from_slice(&n)
    }
}

/// Seals our own frames for one epoch, with consecutive counters from 0.
pub struct SenderKey {
    key_id: KeyId,
    cipher: FrameCipher,
    next: u64,
}

impl std::fmt::Debug for SenderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderKey").field("key_id", &self.key_id).field("next", &self.next).finish()
    }
}

impl SenderKey {
    /// Our key `key_id` from the base key we chose for that epoch (and sent to every member).
    pub fn new(key_id: KeyId, base_key: &SenderBaseKey) -> SenderKey {
        SenderKey { key_id, cipher: FrameCipher::new(key_id, base_key), next: 0 }
    }

    /// Whose key, which epoch.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The counter the next frame gets.
    pub fn next_counter(&self) -> u64 {
        self.next
    }

    /// Seals one frame, once for every receiver: returns the whole group frame.
    pub fn seal(&mut self, media: GroupMedia, plaintext: &[u8]) -> Vec<u8> {
        let header = GroupFrameHeader { media, key_id: self.key_id, counter: self.next };
        self.next += 1;
        let mut frame = header.encode();
        let sealed = self
            .cipher
            .aead
            .encrypt(&self.cipher.nonce(header.counter), Payload { msg: plaintext, aad: &aad(&frame) })
            .expect("ChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        frame.extend_from_slice(&sealed);
        frame
    }
}

/// An opened group frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedFrame {
    /// Its clear header (authenticated: whose frame it is, and what it carries).
    pub header: GroupFrameHeader,
    /// The plaintext.
    pub payload: Vec<u8>,
}

/// Why a key was not installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    /// The epoch was retired, or the ring already holds two newer epochs of this sender.
    #[error("the key for {0} is of an epoch already retired")]
    StaleEpoch(KeyId),
    /// The ring holds another key under this id: a sender never changes its key within an epoch.
    #[error("a different key for {0} is already installed")]
    Conflict(KeyId),
}

struct ReceiverKey {
    cipher: FrameCipher,
    window: ReplayWindow,
    fingerprint: [u8; 32],
}

/// The other members' keys, by (sender, epoch): opens their frames.
///
/// Keys come in over the pairwise Noise channels: the driver installs a key only from the member
/// that owns its sender index (so the index in a frame's header is as good as that member's
/// word), tells the ring when a member leaves ([`SenderKeyRing::remove_sender`]) and when an
/// epoch is over ([`SenderKeyRing::retire_epochs_before`]). Bounded: at most
/// [`EPOCHS_PER_SENDER`] epochs for each of the 256 sender indices.
#[derive(Default)]
pub struct SenderKeyRing {
    keys: BTreeMap<KeyId, ReceiverKey>,
    /// Epochs below this are retired: their keys are gone and are not installed again.
    floor: u64,
}

impl std::fmt::Debug for SenderKeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderKeyRing").field("keys", &self.keys.keys().collect::<Vec<_>>()).finish()
    }
}

impl SenderKeyRing {
    /// An empty ring.
    pub fn new() -> SenderKeyRing {
        SenderKeyRing::default()
    }

    /// Installs `key_id`'s key. Installing the same key again is harmless; a newer epoch of a
    /// sender that already has [`EPOCHS_PER_SENDER`] drops its oldest.
    pub fn install(&mut self, key_id: KeyId, base_key: &SenderBaseKey) -> Result<(), KeyRingError> {
        if key_id.epoch < self.floor {
            return Err(KeyRingError::StaleEpoch(key_id));
        }
        let fingerprint = base_key.fingerprint();
        if let Some(held) = self.keys.get(&key_id) {
            return if held.fingerprint == fingerprint { Ok(()) } else { Err(KeyRingError::Conflict(key_id)) };
        }
        let held: Vec<KeyId> = self.keys.keys().filter(|k| k.sender == key_id.sender).copied().collect();
        if held.len() >= EPOCHS_PER_SENDER && held.iter().all(|k| k.epoch > key_id.epoch) {
            return Err(KeyRingError::StaleEpoch(key_id));
        }
        let cipher = FrameCipher::new(key_id, base_key);
        self.keys.insert(key_id, ReceiverKey { cipher, window: ReplayWindow::default(), fingerprint });
        // Ordered by (sender, epoch): the sender's oldest come first.
        for old in held.iter().take((held.len() + 1).saturating_sub(EPOCHS_PER_SENDER)) {
            self.keys.remove(old);
        }
        Ok(())
    }

    /// Whether the ring holds `key_id`'s key.
    pub fn holds(&self, key_id: KeyId) -> bool {
        self.keys.contains_key(&key_id)
    }

    /// Forgets every key of `sender` (it left the call): its frames are refused from now on.
    pub fn remove_sender(&mut self, sender: SenderIndex) {
        self.keys.retain(|k, _| k.sender != sender);
    }

    /// Forgets every key of the epochs before `epoch`, and refuses to install them again.
    pub fn retire_epochs_before(&mut self, epoch: u64) {
        self.floor = self.floor.max(epoch);
        let floor = self.floor;
        self.keys.retain(|k, _| k.epoch >= floor);
    }

    /// Opens a group frame: finds its sender's key for its epoch, checks the counter against that
    /// key's replay window, then the tag. Only a frame that authenticates moves the window.
    pub fn open(&mut self, frame: &[u8]) -> Result<OpenedFrame, GroupFrameError> {
        let (header, len) = GroupFrameHeader::parse(frame)?;
        let key = self.keys.get_mut(&header.key_id).ok_or(GroupFrameError::UnknownKey(header.key_id))?;
        key.window.check(header.counter)?;
        let payload = key
            .cipher
            .aead
            .decrypt(&key.cipher.nonce(header.counter), Payload { msg: &frame[len..], aad: &aad(&frame[..len]) })
            .map_err(|_| FrameError::Auth)?;
        key.window.accept(header.counter);
        Ok(OpenedFrame { header, payload })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        data_encoding::HEXLOWER.decode(s.as_bytes()).unwrap()
    }

    fn id(epoch: u64, sender: u8) -> KeyId {
        KeyId::new(epoch, SenderIndex(sender)).unwrap()
    }

    fn base(b: u8) -> SenderBaseKey {
        SenderBaseKey::from_bytes([b; 32])
    }

    /// RFC 9605 Appendix C.4 (`AES_128_GCM_SHA256_128`: HKDF-SHA256, Nk 16): the key schedule is
    /// the RFC's, only the suite differs.
    #[test]
    fn the_key_schedule_is_rfc_9605s() {
        let mut key = [0u8; 16];
        let mut salt = [0u8; 12];
        sframe_key_and_salt(&hex("000102030405060708090a0b0c0d0e0f"), 0x123, 0x0004, &mut key, &mut salt);
        assert_eq!(key.to_vec(), hex("d34f547f4ca4f9a7447006fe7fcbf768"));
        assert_eq!(salt.to_vec(), hex("75234edefe07819026751816"));
        // And the nonce of CTR 0x4567.
        let cipher = FrameCipher { aead: ChaCha20Poly1305::new(&[0; 32].into()), salt };
        assert_eq!(cipher.nonce(0x4567).to_vec(), hex("75234edefe07819026755d71"));
    }

    #[test]
    fn key_ids_carry_sender_and_epoch() {
        let k = id(0x0102, 7);
        assert_eq!(k.kid(), 0x010207);
        assert_eq!(KeyId::from_kid(0x010207), k);
        assert_eq!(KeyId::from_kid(u64::MAX), id(MAX_EPOCH, 255));
        assert_eq!(KeyId::new(MAX_EPOCH + 1, SenderIndex(0)), None);
        assert_eq!(k.to_string(), "sender 7, epoch 258");
    }

    #[test]
    fn media_bytes_round_trip_and_unknown_ones_are_refused() {
        for m in [
            GroupMedia::Audio,
            GroupMedia::Video { temporal_layer: 0 },
            GroupMedia::Video { temporal_layer: 15 },
            GroupMedia::Report,
            GroupMedia::Authenticator,
        ] {
            assert_eq!(GroupMedia::from_byte(m.to_byte()), Ok(m));
        }
        assert_eq!(GroupMedia::Authenticator.to_byte(), 0x40);
        for b in [0x00, 0x01, 0x03, 0x11, 0x31, 0x41, 0x50, 0xff] {
            assert_eq!(GroupMedia::from_byte(b), Err(GroupFrameError::UnknownMedia(b)));
        }
    }

    #[test]
    fn headers_are_read_only_in_their_shortest_form() {
        assert_eq!(GroupFrameHeader::parse_sframe_header(&hex("9901234567")), Ok((0x123, 0x4567, 5)));
        // KID 5 written in an extension byte; CTR 0x12 in two bytes.
        assert_eq!(GroupFrameHeader::parse_sframe_header(&hex("8005")), Err(GroupFrameError::NonMinimalHeader));
        assert_eq!(GroupFrameHeader::parse_sframe_header(&hex("090012")), Err(GroupFrameError::NonMinimalHeader));
        assert_eq!(GroupFrameHeader::parse_sframe_header(&hex("99012345")), Err(GroupFrameError::Truncated));
        assert_eq!(GroupFrameHeader::parse_sframe_header(&[]), Err(GroupFrameError::Truncated));
        // A whole frame needs room for the tag.
        assert_eq!(GroupFrameHeader::parse(&[0x10, 0x00]), Err(GroupFrameError::Truncated));
        assert!(GroupFrameHeader::parse(&[&[0x10, 0x00][..], &[0; 16]].concat()).is_ok());
    }

    #[test]
    fn a_frame_round_trips_once() {
        let mut sender = SenderKey::new(id(3, 1), &base(1));
        let mut ring = SenderKeyRing::new();
        ring.install(id(3, 1), &base(1)).unwrap();
        let frame = sender.seal(GroupMedia::Video { temporal_layer: 2 }, b"unit");
        let opened = ring.open(&frame).unwrap();
        assert_eq!(opened.payload, b"unit");
        assert_eq!(opened.header, GroupFrameHeader::parse(&frame).unwrap().0);
        assert_eq!(opened.header.media, GroupMedia::Video { temporal_layer: 2 });
        assert_eq!(ring.open(&frame), Err(GroupFrameError::Frame(FrameError::Replay)));
    }

    #[test]
    fn each_sender_has_its_own_replay_window() {
        let mut a = SenderKey::new(id(1, 1), &base(1));
        let mut b = SenderKey::new(id(1, 2), &base(2));
        let mut ring = SenderKeyRing::new();
        ring.install(id(1, 1), &base(1)).unwrap();
        ring.install(id(1, 2), &base(2)).unwrap();
        let frames: Vec<_> = (0..1100).map(|_| a.seal(GroupMedia::Audio, b"a")).collect();
        let from_b = b.seal(GroupMedia::Audio, b"b");
        assert!(ring.open(&frames[1099]).is_ok());
        assert_eq!(ring.open(&frames[10]), Err(GroupFrameError::Frame(FrameError::TooOld)));
        assert!(ring.open(&from_b).is_ok(), "B's counter 0 is B's own, not A's");
        assert!(ring.open(&frames[500]).is_ok(), "inside A's window");
    }

    #[test]
    fn a_forged_key_id_is_refused() {
        let mut ring = SenderKeyRing::new();
        ring.install(id(1, 1), &base(1)).unwrap();
        // Sealed with a key nobody installed, under a KID nobody holds.
        let mut forger = SenderKey::new(id(1, 9), &base(9));
        assert_eq!(ring.open(&forger.seal(GroupMedia::Audio, b"x")), Err(GroupFrameError::UnknownKey(id(1, 9))));
        // Sealed with a made-up key under a KID the ring holds.
        let mut forger = SenderKey::new(id(1, 1), &base(9));
        assert_eq!(ring.open(&forger.seal(GroupMedia::Audio, b"x")), Err(GroupFrameError::Frame(FrameError::Auth)));
    }

    /// Member 2 takes member 1's frame and relabels it as its own (or as member 3's): the KID is
    /// bound into the key, the nonce and the AAD, so it fails under any other sender's key.
    #[test]
    fn a_frame_relabelled_as_another_senders_is_refused() {
        let mut ring = SenderKeyRing::new();
        for s in 1..=3 {
            ring.install(id(1, s), &base(s)).unwrap();
        }
        let mut one = SenderKey::new(id(1, 1), &base(1));
        let frame = one.seal(GroupMedia::Audio, b"member one speaking");
        for other in [2u8, 3] {
            let mut relabelled = frame.clone();
            // KID 0x101 is the first extension byte pair: 0x01 (epoch), 0x0s (sender).
            assert_eq!(&relabelled[1..4], &[0x90, 0x01, 0x01]);
            relabelled[3] = other;
            assert_eq!(ring.open(&relabelled), Err(GroupFrameError::Frame(FrameError::Auth)));
        }
        // Nor as audio → video, nor another epoch.
        let mut as_video = frame.clone();
        as_video[0] = 0x20;
        assert_eq!(ring.open(&as_video), Err(GroupFrameError::Frame(FrameError::Auth)));
        assert_eq!(ring.open(&frame).unwrap().payload, b"member one speaking", "the window did not move");
    }

    #[test]
    fn tampering_fails_authentication_without_moving_the_window() {
        let mut ring = SenderKeyRing::new();
        ring.install(id(0, 4), &base(4)).unwrap();
        let mut sender = SenderKey::new(id(0, 4), &base(4));
        let frame = sender.seal(GroupMedia::Audio, b"voice");
        for i in 0..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 0x01;
            assert!(ring.open(&bad).is_err(), "byte {i}");
        }
        assert!(ring.open(&frame).is_ok());
    }

    /// After a leave, the others install the new epoch's keys (which the one who left never gets)
    /// and drop his: he opens nothing new, and they open nothing more of his.
    #[test]
    fn after_a_rekey_a_departed_member_opens_nothing_new() {
        let mut departed = SenderKeyRing::new();
        let mut stays = SenderKeyRing::new();
        for s in [1, 2] {
            departed.install(id(1, s), &base(s)).unwrap();
        }
        stays.install(id(1, 1), &base(1)).unwrap();
        stays.install(id(1, 3), &base(3)).unwrap();
        let mut old = SenderKey::new(id(1, 1), &base(1));
        let mut new = SenderKey::new(id(2, 1), &base(0x21));
        stays.install(id(2, 1), &base(0x21)).unwrap();
        stays.remove_sender(SenderIndex(3));
        let new_frame = new.seal(GroupMedia::Audio, b"after");
        assert_eq!(departed.open(&new_frame), Err(GroupFrameError::UnknownKey(id(2, 1))));
        assert!(stays.open(&new_frame).is_ok());
        // Frames of the old epoch still in flight open until the epoch is retired.
        let in_flight = old.seal(GroupMedia::Audio, b"before");
        assert!(departed.open(&in_flight).is_ok());
        let late = old.seal(GroupMedia::Audio, b"late");
        stays.retire_epochs_before(2);
        assert_eq!(stays.open(&late), Err(GroupFrameError::UnknownKey(id(1, 1))));
        let mut three = SenderKey::new(id(1, 3), &base(3));
        assert_eq!(stays.open(&three.seal(GroupMedia::Audio, b"x")), Err(GroupFrameError::UnknownKey(id(1, 3))));
        assert_eq!(stays.install(id(1, 1), &base(1)), Err(KeyRingError::StaleEpoch(id(1, 1))), "stays retired");
    }

    /// While the old epoch is kept for frames in flight, the one who left is already refused: he
    /// still holds his old key and could go on sending under it.
    #[test]
    fn a_member_who_left_is_refused_at_once_while_the_others_old_frames_still_open() {
        let mut ring = SenderKeyRing::new();
        ring.install(id(1, 1), &base(1)).unwrap();
        ring.install(id(1, 2), &base(2)).unwrap();
        let (mut stays, mut leaves) = (SenderKey::new(id(1, 1), &base(1)), SenderKey::new(id(1, 2), &base(2)));
        ring.remove_sender(SenderIndex(2));
        assert_eq!(ring.open(&leaves.seal(GroupMedia::Audio, b"x")), Err(GroupFrameError::UnknownKey(id(1, 2))));
        assert!(ring.open(&stays.seal(GroupMedia::Audio, b"y")).is_ok());
    }

    #[test]
    fn a_newcomer_opens_nothing_from_before_it_joined() {
        let mut newcomer = SenderKeyRing::new();
        newcomer.install(id(2, 1), &base(0x21)).unwrap();
        let mut before = SenderKey::new(id(1, 1), &base(1));
        assert_eq!(newcomer.open(&before.seal(GroupMedia::Audio, b"x")), Err(GroupFrameError::UnknownKey(id(1, 1))));
        // Even with the old KID relabelled to the new epoch it is the old key's ciphertext.
        let mut relabelled = before.seal(GroupMedia::Audio, b"x");
        relabelled[2] = 0x02;
        assert_eq!(newcomer.open(&relabelled), Err(GroupFrameError::Frame(FrameError::Auth)));
    }

    #[test]
    fn the_ring_keeps_two_epochs_per_sender_and_refuses_changed_keys() {
        let mut ring = SenderKeyRing::new();
        ring.install(id(1, 1), &base(1)).unwrap();
        ring.install(id(1, 1), &base(1)).unwrap();
        assert_eq!(ring.install(id(1, 1), &base(2)), Err(KeyRingError::Conflict(id(1, 1))));
        ring.install(id(2, 1), &base(2)).unwrap();
        ring.install(id(3, 1), &base(3)).unwrap();
        assert!(!ring.holds(id(1, 1)) && ring.holds(id(2, 1)) && ring.holds(id(3, 1)));
        assert_eq!(ring.install(id(1, 1), &base(1)), Err(KeyRingError::StaleEpoch(id(1, 1))));
        ring.install(id(1, 2), &base(1)).unwrap();
        assert!(ring.holds(id(1, 2)), "another sender's epochs are its own");
        for e in 0..10 {
            ring.install(id(100 + e, 7), &base(e as u8)).unwrap();
        }
        assert_eq!(ring.keys.keys().filter(|k| k.sender == SenderIndex(7)).count(), EPOCHS_PER_SENDER);
    }

    #[test]
    fn garbage_never_panics() {
        let mut ring = SenderKeyRing::new();
        ring.install(id(0, 0), &base(0)).unwrap();
        for junk in [&b""[..], &[0x10], &[0x10, 0xff], &[0x20; 17], &[0x10, 0x88, 0, 0, 0, 0, 0, 0, 0, 0], &[0xff; 40]]
        {
            assert!(ring.open(junk).is_err());
        }
    }
}
