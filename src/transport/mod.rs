//! The call's network path: a quinn endpoint on its own UDP port ([`endpoint`]); the secure channel
//! on it ([`channel`]): the call stream's wire, candidate racing and the Noise handshake over the
//! first stream; [`link`], one per remote peer, which runs that setup and then the control stream
//! and holds the connection; [`media_port`] is the media's share of it (datagrams and GOP
//! streams, behind `crate::media_link`); [`accept`] bounds what incoming connections may cost; [`candidate`] is
//! the text form of the addresses invites carry.

pub mod accept;
pub mod candidate;
pub mod channel;
pub mod congestion;
pub mod endpoint;
pub mod link;
pub mod media_port;
pub mod reflect;
