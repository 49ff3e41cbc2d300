//! The call's network path: a quinn endpoint on its own UDP port ([`endpoint`]) and the secure
//! channel on it ([`channel`]): candidate racing, the Noise handshake over the first stream, and the
//! control stream; [`accept`] bounds what incoming connections may cost; [`candidate`] is the text
//! form of the addresses invites carry.

pub mod accept;
pub mod candidate;
pub mod channel;
pub mod congestion;
pub mod endpoint;
pub mod reflect;
