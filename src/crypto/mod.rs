//! The call's cryptography, all sans-IO:
//!
//! - [`handshake`]: `Noise_XX_25519_ChaChaPoly_BLAKE2s` with the identity binding and the SAS
//!   commitment (`protocols/handshake-v1.md`);
//! - [`sas`]: the four emoji both sides compare, and the long safety number of a contact
//!   (`protocols/sas-v1.md`);
//! - [`frame`]: per-frame media encryption (ChaCha20-Poly1305, explicit counters, a replay window).
//!
//! Group calls (the foundations; not yet wired into the node):
//!
//! - [`group_sas`]: the group's four emoji, a commit-then-reveal over every member's nonce bound to
//!   the membership and every pairwise handshake (`protocols/group-sas-v1.md`);
//! - [`sender_key`]: per-sender media keys, SFrame-style (RFC 9605): one key per sender and epoch,
//!   a clear header a forwarder can read, a key ring per receiver (`protocols/group-media-v1.md`);
//! - [`frame_auth`]: frame authenticators, a sender's signed digests of its frames, so that a
//!   forwarding member's forgery under its sender index is detected (group-media-v1.md).

pub mod frame;
pub mod frame_auth;
pub mod group_sas;
pub mod handshake;
pub mod sas;
pub mod sender_key;
