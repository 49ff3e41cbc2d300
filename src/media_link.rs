//! The port between the media and the transport: what a call's media needs from the link to its
//! peer, and nothing more: datagrams, streams one way each (a GOP of video per stream), and the
//! path's numbers. The transport implements it over its QUIC connection
//! (`transport::media_port`); the media's driver uses it. Neither layer names the other, and
//! media never names QUIC. The futures are boxed so the driver can hold a link as a trait object.

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;

/// The path at one moment, as the congestion controller sees it. The byte counts are cumulative
/// over the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathSample {
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Congestion window, bytes.
    pub cwnd: u64,
    /// UDP bytes sent so far.
    pub sent_bytes: u64,
    /// Bytes declared lost so far.
    pub lost_bytes: u64,
    /// Bytes the peer acknowledged so far (what the path carried), when the transport counts
    /// them. Losses are declared up to an RTT after their packets left, so over a short window
    /// `sent_bytes − lost_bytes` is not what got through; this is.
    pub acked_bytes: Option<u64>,
}

/// Why the link refused or ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The connection is gone.
    #[error("the link is closed: {0}")]
    Closed(String),
    /// The peer reset or stopped the stream.
    #[error("the stream was reset or stopped: {0}")]
    Stream(String),
    /// The datagram is too large for the path, or datagrams are off.
    #[error("datagram not sent: {0}")]
    Datagram(String),
}

/// A stream we send on.
pub trait OutStream: Send {
    /// Writes all of `bytes` (waiting for flow control).
    fn write_all<'a>(&'a mut self, bytes: &'a [u8]) -> BoxFuture<'a, Result<(), LinkError>>;
    /// Abandons the stream: what is not yet sent is dropped.
    fn reset(&mut self);
    /// Ends the stream after what was written.
    fn finish(&mut self);
}

/// A stream the peer sends on.
pub trait InStream: Send {
    /// The next bytes, at most `max` (`None`: the stream ended).
    fn read_chunk(&mut self, max: usize) -> BoxFuture<'_, Result<Option<Bytes>, LinkError>>;
    /// Tells the peer to stop sending on it.
    fn stop(&mut self);
}

/// The media's share of the link to one peer.
pub trait MediaLink: Send + Sync {
    /// Sends a datagram (before any stream's bytes).
    fn send_datagram(&self, datagram: Bytes) -> Result<(), LinkError>;
    /// The next datagram from the peer.
    fn read_datagram(&self) -> BoxFuture<'_, Result<Bytes, LinkError>>;
    /// Opens a stream to the peer, at `priority` (higher goes first; the control stream has 0).
    fn open_stream(&self, priority: i32) -> BoxFuture<'_, Result<Box<dyn OutStream>, LinkError>>;
    /// The next stream the peer opened.
    fn accept_stream(&self) -> BoxFuture<'_, Result<Box<dyn InStream>, LinkError>>;
    /// The path now: RTT, congestion window, bytes sent and lost.
    fn path(&self) -> PathSample;
    /// The smoothed round-trip time.
    fn rtt(&self) -> Duration {
        self.path().rtt
    }
    /// Whether the connection has ended.
    fn is_closed(&self) -> bool;
}
