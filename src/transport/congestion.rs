//! Congestion control for calls: QUIC's Cubic, with a floor under the window.
//!
//! QUIC congestion-controls datagrams too. On a lossy path (20 % loss) Cubic shrinks its window to
//! two packets, which at a 200 ms RTT lets ten packets a second through: audio, which needs fifty,
//! then queues for hundreds of milliseconds behind it. A call must not back off below what its
//! audio needs (loss there is not congestion the call causes), so the window never drops under
//! [`MIN_WINDOW`]. Above the floor Cubic works as usual; the media's own bitrate controller (video)
//! keeps the call within the path's capacity.
//!
//! It also counts the bytes acknowledged over the connection ([`acked_bytes`]): quinn's stats say
//! what was sent and what was declared lost, but losses are declared up to an RTT after the
//! packets left, so "sent − lost" over a short window mixes two windows; what the peer
//! acknowledged is what the path carried.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use quinn::congestion::{Controller, ControllerFactory, ControllerMetrics, CubicConfig};

/// The lowest congestion window: 48 KB, several times what audio keeps in flight even at a 1 s RTT.
pub const MIN_WINDOW: u64 = 48 * 1024;

/// Cubic with a floor.
pub struct MediaFloor {
    inner: Box<dyn Controller>,
    /// Bytes of ack-eliciting packets acknowledged so far.
    acked: u64,
}

/// The bytes `conn`'s peer has acknowledged so far (ack-eliciting packets; cumulative), when the
/// connection runs [`MediaFloor`] (every connection hail's endpoint makes does).
pub fn acked_bytes(conn: &quinn::Connection) -> Option<u64> {
    conn.congestion_state().into_any().downcast::<MediaFloor>().ok().map(|c| c.acked)
}

impl Controller for MediaFloor {
    fn on_sent(&mut self, now: Instant, bytes: u64, last_packet_number: u64) {
        self.inner.on_sent(now, bytes, last_packet_number)
    }
    fn on_ack(&mut self, now: Instant, sent: Instant, bytes: u64, app_limited: bool, rtt: &quinn_proto::RttEstimator) {
        self.acked += bytes;
        self.inner.on_ack(now, sent, bytes, app_limited, rtt)
    }
    fn on_end_acks(&mut self, now: Instant, in_flight: u64, app_limited: bool, largest_packet_num_acked: Option<u64>) {
        self.inner.on_end_acks(now, in_flight, app_limited, largest_packet_num_acked)
    }
    fn on_congestion_event(&mut self, now: Instant, sent: Instant, is_persistent_congestion: bool, lost_bytes: u64) {
        self.inner.on_congestion_event(now, sent, is_persistent_congestion, lost_bytes)
    }
    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.inner.on_mtu_update(new_mtu)
    }
    fn window(&self) -> u64 {
        self.inner.window().max(MIN_WINDOW)
    }
    fn metrics(&self) -> ControllerMetrics {
        let mut m = self.inner.metrics();
        m.congestion_window = self.window();
        m
    }
    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(MediaFloor { inner: self.inner.clone_box(), acked: self.acked })
    }
    fn initial_window(&self) -> u64 {
        self.inner.initial_window().max(MIN_WINDOW)
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Builds [`MediaFloor`] controllers for quinn.
#[derive(Debug, Default)]
pub struct MediaFloorConfig {
    cubic: Arc<CubicConfig>,
}

impl ControllerFactory for MediaFloorConfig {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        Box::new(MediaFloor { inner: self.cubic.clone().build(now, current_mtu), acked: 0 })
    }
}
