//! The media's share of a peer link over QUIC ([`MediaLink`]): unreliable datagrams, and
//! unidirectional streams (the control stream is the one bidirectional stream, so the demux is
//! QUIC's own: datagrams and uni streams are the media's, the bi stream the call's). The path's
//! numbers are quinn's.

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use quinn::{Connection, RecvStream, SendStream};

use crate::media_link::{InStream, LinkError, MediaLink, OutStream, PathSample};

/// A QUIC connection, as the media sees it.
#[derive(Debug, Clone)]
pub struct QuicMediaPort {
    conn: Connection,
}

impl QuicMediaPort {
    /// The media's share of `conn`.
    pub fn new(conn: Connection) -> Self {
        QuicMediaPort { conn }
    }
}

fn closed(e: impl std::fmt::Display) -> LinkError {
    LinkError::Closed(e.to_string())
}

impl MediaLink for QuicMediaPort {
    fn send_datagram(&self, datagram: Bytes) -> Result<(), LinkError> {
        self.conn.send_datagram(datagram).map_err(|e| LinkError::Datagram(e.to_string()))
    }

    fn read_datagram(&self) -> BoxFuture<'_, Result<Bytes, LinkError>> {
        async move { self.conn.read_datagram().await.map_err(closed) }.boxed()
    }

    fn open_stream(&self, priority: i32) -> BoxFuture<'_, Result<Box<dyn OutStream>, LinkError>> {
        async move {
            let s = self.conn.open_uni().await.map_err(closed)?;
            let _ = s.set_priority(priority);
            Ok(Box::new(QuicOut(s)) as Box<dyn OutStream>)
        }
        .boxed()
    }

    fn accept_stream(&self) -> BoxFuture<'_, Result<Box<dyn InStream>, LinkError>> {
        async move {
            let s = self.conn.accept_uni().await.map_err(closed)?;
            Ok(Box::new(QuicIn(s)) as Box<dyn InStream>)
        }
        .boxed()
    }

    fn path(&self) -> PathSample {
        let s = self.conn.stats();
        PathSample {
            rtt: s.path.rtt,
            cwnd: s.path.cwnd,
            sent_bytes: s.udp_tx.bytes,
            lost_bytes: s.path.lost_bytes,
            acked_bytes: super::congestion::acked_bytes(&self.conn),
        }
    }

    fn rtt(&self) -> std::time::Duration {
        self.conn.rtt()
    }

    fn is_closed(&self) -> bool {
        self.conn.close_reason().is_some()
    }
}

struct QuicOut(SendStream);

impl OutStream for QuicOut {
    fn write_all<'a>(&'a mut self, bytes: &'a [u8]) -> BoxFuture<'a, Result<(), LinkError>> {
        async move { self.0.write_all(bytes).await.map_err(|e| LinkError::Stream(e.to_string())) }.boxed()
    }

    fn reset(&mut self) {
        let _ = self.0.reset(0u32.into());
    }

    fn finish(&mut self) {
        let _ = self.0.finish();
    }
}

struct QuicIn(RecvStream);

impl InStream for QuicIn {
    fn read_chunk(&mut self, max: usize) -> BoxFuture<'_, Result<Option<Bytes>, LinkError>> {
        async move {
            match self.0.read_chunk(max, true).await {
                Ok(chunk) => Ok(chunk.map(|c| c.bytes)),
                Err(e) => Err(LinkError::Stream(e.to_string())),
            }
        }
        .boxed()
    }

    fn stop(&mut self) {
        let _ = self.0.stop(0u32.into());
    }
}
