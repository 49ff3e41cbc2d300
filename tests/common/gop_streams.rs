//! A call's video on GOP streams, as the real IO layer puts it there (`write_streams` and
//! `read_stream` in `src/media/driver/streams.rs`), for the simulator's parties: each GOP on a
//! unidirectional stream of its own below the control stream, the previous GOP's stream reset when
//! a new one starts; the reader reassembles records with the daemon's own [`RecordReader`], says
//! when part of a record arrived (at most every [`PROGRESS_GAP`]) and drops what it held of a
//! stream that was reset.
//!
//! The party paces what it writes with the daemon's own `PacedQueue` (`media::video::pacer`) and
//! hands the writer one piece at a time: a GOP's first piece opens its stream, the others append.
//!
//! Not modelled: the writer's bounded queue (`OUT_QUEUE`: the writer drains it into the paced
//! queue at once), the reader's stream limit (`MAX_STREAMS`: a sender that resets
//! its old streams never reaches it) and the decode queue (records are decoded as they arrive).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hail::media::stats::MAX_BUFFERED;
use hail::media::video::record_reader::{Record, RecordBudget, RecordReader};
use hail::media::video::wire;

use super::quic_model::{Payload, StreamEvent};

/// QUIC stream priority of video (the control stream has 0).
pub const VIDEO_PRIORITY: i32 = -1;
/// The least time between two signs of life from one stream that has delivered part of a record.
pub const PROGRESS_GAP: Duration = Duration::from_millis(50);

/// Puts records on their GOP's stream.
#[derive(Debug, Default)]
pub struct GopWriter {
    /// The GOP being written, and its stream.
    current: Option<(u32, u64)>,
    next_stream: u64,
}

impl GopWriter {
    /// A writer that has opened no stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sealed record of `gop` (`new_gop`: it opens the GOP): what to hand the connection.
    pub fn write(&mut self, gop: u32, new_gop: bool, record: Vec<u8>) -> Vec<Payload> {
        let mut out = Vec::new();
        if new_gop || self.current.is_none_or(|(g, _)| g != gop) {
            if let Some((_, id)) = self.current.take() {
                out.push(Payload::ResetStream { id });
            }
            if !new_gop {
                // This GOP's stream is gone: wait for the next keyframe.
                return out;
            }
            let id = self.next_stream;
            self.next_stream += 1;
            out.push(Payload::Stream { id, priority: VIDEO_PRIORITY, bytes: wire::stream_header(gop).to_vec() });
            self.current = Some((gop, id));
        }
        let (_, id) = self.current.expect("opened above");
        out.push(Payload::Stream { id, priority: VIDEO_PRIORITY, bytes: record });
        out
    }

    /// The backlog of `gop` was dropped: its stream is reset (if it is the one open), and its
    /// later records wait for a new GOP.
    pub fn reset(&mut self, gop: u32) -> Option<Payload> {
        let (_, id) = self.current.take_if(|(g, _)| *g == gop)?;
        Some(Payload::ResetStream { id })
    }
}

/// What the reader hands the video receiver.
#[derive(Debug)]
pub enum VideoIn {
    /// A whole record of `gop`.
    Record {
        /// The GOP its stream carries.
        gop: u32,
        /// The record.
        record: Record,
    },
    /// Part of a record of `gop` arrived.
    Progress {
        /// The GOP its stream carries.
        gop: u32,
    },
}

/// One stream being read.
#[derive(Debug)]
struct Reading {
    reader: RecordReader,
    progress_told: Option<Instant>,
}

/// Reads the peer's GOP streams.
#[derive(Debug)]
pub struct GopReader {
    streams: BTreeMap<u64, Reading>,
    budget: Arc<RecordBudget>,
    /// Streams the sender reset while this reader held part of a record from them.
    pub partial_records_dropped: u64,
    /// Streams reset.
    pub resets: u64,
}

impl Default for GopReader {
    fn default() -> Self {
        GopReader {
            streams: BTreeMap::new(),
            budget: RecordBudget::new(MAX_BUFFERED),
            partial_records_dropped: 0,
            resets: 0,
        }
    }
}

impl GopReader {
    /// A reader that has seen no stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// What happened on stream `id` at `now`: what the receiver is told.
    pub fn handle(&mut self, now: Instant, id: u64, event: StreamEvent) -> Vec<VideoIn> {
        let bytes = match event {
            StreamEvent::Reset => {
                if let Some(r) = self.streams.remove(&id) {
                    self.resets += 1;
                    if r.reader.finish().is_err() {
                        self.partial_records_dropped += 1;
                    }
                }
                return Vec::new();
            }
            StreamEvent::Data(bytes) => bytes,
        };
        let budget = &self.budget;
        let reading =
            self.streams.entry(id).or_insert_with(|| Reading { reader: RecordReader::new(budget.clone()), progress_told: None });
        let records = match reading.reader.push(&bytes) {
            Ok(records) => records,
            Err(_) => {
                // Bad bytes or over the budget: the stream is stopped.
                self.streams.remove(&id);
                return Vec::new();
            }
        };
        let Some(gop) = reading.reader.gop() else { return Vec::new() };
        if records.is_empty() {
            if reading.progress_told.is_none_or(|t| now.saturating_duration_since(t) >= PROGRESS_GAP) {
                reading.progress_told = Some(now);
                return vec![VideoIn::Progress { gop }];
            }
            return Vec::new();
        }
        records.into_iter().map(|record| VideoIn::Record { gop, record }).collect()
    }
}
