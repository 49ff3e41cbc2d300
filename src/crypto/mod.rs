//! The call's cryptography, all sans-IO:
//!
//! - [`handshake`]: `Noise_XX_25519_ChaChaPoly_BLAKE2s` with the identity binding and the SAS
//!   commitment (`protocols/handshake-v1.md`);
//! - [`sas`]: the four emoji both sides compare, and the long safety number of a contact
//!   (`protocols/sas-v1.md`);
//! - [`frame`]: per-frame media encryption (ChaCha20-Poly1305, explicit counters, a replay window).

pub mod frame;
pub mod handshake;
pub mod sas;
