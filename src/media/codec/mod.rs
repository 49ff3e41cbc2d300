//! Codecs: Opus for audio (video encoders and the dav1d decoder join later).

pub mod av1;
pub mod opus;
