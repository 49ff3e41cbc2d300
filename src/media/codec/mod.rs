//! Codecs: Opus for audio; AV1 for video (rav1e or libaom to encode, dav1d to decode); and
//! [`fake`] stand-ins for both, for tests and the simulator.

#[cfg(feature = "libaom")]
pub mod aom;
pub mod av1;
pub mod fake;
pub mod opus;
pub mod temporal;
