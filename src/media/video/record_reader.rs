//! Reassembles a video stream's records from the chunks QUIC delivers, sans-IO, with memory
//! bounded by what has arrived and by a budget per call.
//!
//! A record's length prefix comes off the wire before its bytes, from a peer that may lie. The
//! reader never allocates on the strength of it: the buffer of the record being read grows as its
//! bytes arrive (doubling, but never past the announced length), so its capacity is at most twice
//! what arrived, plus [`MIN_GROWTH`]. Every byte of capacity counts against a [`RecordBudget`]
//! shared by all the streams of a call, and stays counted while the finished [`Record`] waits for
//! the decoder; a stream that would go over the budget fails ([`RecordError::OverBudget`]) and is
//! stopped, the rest of the call goes on.
//!
//! ```text
//! bytes ──push──▶ header (5) ─▶ prefix (4) ─▶ body (len, grown as it arrives) ─▶ Record
//!                                  ▲                                            │
//!                                  └────────────────────────────────────────────┘
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::wire::{self, STREAM_HEADER_LEN, VideoWireError};

/// The least a record buffer grows by (small records take one allocation).
pub const MIN_GROWTH: usize = 4096;

/// Bytes of video records held for one call, across its streams: records being read and records
/// waiting for the decoder. Shared by the stream readers of a call (`Arc`).
#[derive(Debug)]
pub struct RecordBudget {
    held: AtomicUsize,
    cap: usize,
}

impl RecordBudget {
    /// A budget of `cap` bytes.
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(RecordBudget { held: AtomicUsize::new(0), cap })
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// The cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Takes `bytes` more, unless that would pass the cap.
    fn take(&self, bytes: usize) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|total| *total <= self.cap)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.held.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Bytes counted against a budget until dropped.
#[derive(Debug)]
struct Held {
    budget: Arc<RecordBudget>,
    bytes: usize,
}

impl Held {
    fn new(budget: &Arc<RecordBudget>) -> Self {
        Held { budget: budget.clone(), bytes: 0 }
    }

    /// Counts `total` bytes in all (more than now).
    fn grow_to(&mut self, total: usize) -> bool {
        let more = total.saturating_sub(self.bytes);
        if !self.budget.take(more) {
            return false;
        }
        self.bytes += more;
        true
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

/// A complete record's body (what follows its length prefix). Its bytes stay counted against the
/// call's budget until it is dropped.
#[derive(Debug)]
pub struct Record {
    body: Vec<u8>,
    _held: Held,
}

impl Record {
    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body, taken out: its bytes no longer count against the budget.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

/// Why a stream's bytes were refused; the stream is then stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A bad header or length prefix.
    #[error(transparent)]
    Wire(#[from] VideoWireError),
    /// The call's records already hold the whole budget.
    #[error("the call's video records hold {cap} bytes already; this stream is dropped")]
    OverBudget {
        /// The budget.
        cap: usize,
    },
    /// The stream ended inside its header or a record.
    #[error("the video stream ended inside a record")]
    EndedEarly,
}

#[derive(Debug)]
enum State {
    Header { bytes: [u8; STREAM_HEADER_LEN], have: usize },
    Prefix { bytes: [u8; 4], have: usize },
    Body { len: usize, body: Vec<u8>, held: Held },
}

/// One stream's reader.
#[derive(Debug)]
pub struct RecordReader {
    budget: Arc<RecordBudget>,
    /// The first byte its stream header must have.
    kind: u8,
    gop: Option<u32>,
    state: State,
}

impl RecordReader {
    /// A reader for a new stream, holding its bytes against `budget`.
    pub fn new(budget: Arc<RecordBudget>) -> Self {
        Self::of_kind(wire::KIND_VIDEO, budget)
    }

    /// A reader for a new stream whose header starts with `kind` (a group call's video).
    pub fn of_kind(kind: u8, budget: Arc<RecordBudget>) -> Self {
        RecordReader { budget, kind, gop: None, state: State::Header { bytes: [0; STREAM_HEADER_LEN], have: 0 } }
    }

    /// The stream's GOP, once its header has arrived.
    pub fn gop(&self) -> Option<u32> {
        self.gop
    }

    /// The capacity of the record buffer now (0 between records).
    pub fn buffer_capacity(&self) -> usize {
        match &self.state {
            State::Body { body, .. } => body.capacity(),
            _ => 0,
        }
    }

    /// Feeds the next bytes of the stream; returns the records they complete, in order.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<Vec<Record>, RecordError> {
        let mut records = Vec::new();
        while !bytes.is_empty() {
            match &mut self.state {
                State::Header { bytes: header, have } => {
                    let n = fill(&mut header[*have..], &mut bytes);
                    *have += n;
                    if *have == STREAM_HEADER_LEN {
                        self.gop = Some(wire::parse_stream_header_of(self.kind, header)?);
                        self.state = State::Prefix { bytes: [0; 4], have: 0 };
                    }
                }
                State::Prefix { bytes: prefix, have } => {
                    let n = fill(&mut prefix[*have..], &mut bytes);
                    *have += n;
                    if *have == 4 {
                        let len = wire::record_len(*prefix)?;
                        self.state = State::Body { len, body: Vec::new(), held: Held::new(&self.budget) };
                    }
                }
                State::Body { len, body, held } => {
                    let n = (*len - body.len()).min(bytes.len());
                    let needed = body.len() + n;
                    if needed > body.capacity() {
                        let grown = (body.capacity() * 2).max(needed).max(MIN_GROWTH).min(*len);
                        if !held.grow_to(grown) {
                            return Err(RecordError::OverBudget { cap: self.budget.cap() });
                        }
                        body.reserve_exact(grown - body.len());
                    }
                    body.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if body.len() == *len {
                        let state = std::mem::replace(&mut self.state, State::Prefix { bytes: [0; 4], have: 0 });
                        if let State::Body { body, held, .. } = state {
                            records.push(Record { body, _held: held });
                        }
                    }
                }
            }
        }
        Ok(records)
    }

    /// The stream ended: fine between records, an error inside one.
    pub fn finish(&self) -> Result<(), RecordError> {
        match &self.state {
            State::Prefix { have: 0, .. } => Ok(()),
            _ => Err(RecordError::EndedEarly),
        }
    }
}

/// Copies from the front of `from` into `to`, as much as fits; returns how much.
fn fill(to: &mut [u8], from: &mut &[u8]) -> usize {
    let n = to.len().min(from.len());
    to[..n].copy_from_slice(&from[..n]);
    *from = &from[n..];
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::video::wire::MAX_RECORD;

    fn stream(gop: u32, records: &[&[u8]]) -> Vec<u8> {
        let mut out = wire::stream_header(gop).to_vec();
        for r in records {
            out.extend_from_slice(&(r.len() as u32).to_be_bytes());
            out.extend_from_slice(r);
        }
        out
    }

    #[test]
    fn records_come_out_whole_however_the_bytes_are_cut() {
        let (a, b) = (vec![1u8; 30], vec![2u8; 5000]);
        let bytes = stream(7, &[&a, &b]);
        for chunk in [1, 3, 4, 5, 9, 1000, bytes.len()] {
            let budget = RecordBudget::new(1 << 20);
            let mut reader = RecordReader::new(budget.clone());
            let mut out = Vec::new();
            for piece in bytes.chunks(chunk) {
                out.extend(reader.push(piece).unwrap());
            }
            assert_eq!(reader.gop(), Some(7));
            assert_eq!(out.iter().map(|r| r.body().to_vec()).collect::<Vec<_>>(), [a.clone(), b.clone()], "{chunk}");
            assert!(reader.finish().is_ok());
            assert!(budget.held() >= a.len() + b.len(), "the records stay counted while held");
            drop(out);
            assert_eq!(budget.held(), 0, "and are given back when dropped");
        }
    }

    #[test]
    fn a_hostile_length_allocates_only_what_arrived() {
        let budget = RecordBudget::new(8 * MAX_RECORD);
        for announced in [MAX_RECORD, MAX_RECORD - 1] {
            let mut reader = RecordReader::new(budget.clone());
            let mut bytes = wire::stream_header(0).to_vec();
            bytes.extend_from_slice(&(announced as u32).to_be_bytes());
            bytes.extend_from_slice(&[0xaa; 100]);
            assert!(reader.push(&bytes).unwrap().is_empty());
            assert!(reader.buffer_capacity() <= MIN_GROWTH, "{}", reader.buffer_capacity());
            // Byte by byte up to 100 kB: the buffer stays within twice what arrived.
            let mut arrived = 100;
            for piece in [[0x55u8; 1000]; 100] {
                reader.push(&piece).unwrap();
                arrived += piece.len();
                assert!(reader.buffer_capacity() <= (2 * arrived).max(MIN_GROWTH), "{arrived}");
                assert_eq!(budget.held(), reader.buffer_capacity());
            }
            assert_eq!(reader.finish(), Err(RecordError::EndedEarly));
            drop(reader);
            assert_eq!(budget.held(), 0);
        }
        // 4 GiB announced: refused before a byte of it is buffered.
        let mut reader = RecordReader::new(budget.clone());
        let mut bytes = wire::stream_header(0).to_vec();
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(reader.push(&bytes).unwrap_err(), RecordError::Wire(VideoWireError::TooLarge(u32::MAX as usize)));
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn the_budget_is_shared_by_the_streams_of_a_call() {
        let budget = RecordBudget::new(3 * MIN_GROWTH);
        let big = vec![9u8; 2 * MIN_GROWTH];
        let mut first = RecordReader::new(budget.clone());
        let held = first.push(&stream(1, &[&big])).unwrap();
        assert_eq!(held.len(), 1);
        // A second stream's record does not fit beside the first one, still held for the decoder.
        let mut second = RecordReader::new(budget.clone());
        assert_eq!(second.push(&stream(2, &[&big])).unwrap_err(), RecordError::OverBudget { cap: 3 * MIN_GROWTH });
        drop(second);
        // Once the decoder is done with it, there is room again.
        drop(held);
        let mut third = RecordReader::new(budget.clone());
        assert_eq!(third.push(&stream(3, &[&big])).unwrap().len(), 1);
    }

    #[test]
    fn bad_headers_and_lengths_are_refused() {
        let budget = RecordBudget::new(1 << 20);
        assert_eq!(
            RecordReader::new(budget.clone()).push(b"\x07hello").unwrap_err(),
            RecordError::Wire(VideoWireError::NotVideo(7))
        );
        let mut short = wire::stream_header(0).to_vec();
        short.extend_from_slice(&3u32.to_be_bytes());
        assert_eq!(
            RecordReader::new(budget.clone()).push(&short).unwrap_err(),
            RecordError::Wire(VideoWireError::Truncated)
        );
        let mut reader = RecordReader::new(budget);
        reader.push(&wire::stream_header(0)[..3]).unwrap();
        assert_eq!(reader.finish(), Err(RecordError::EndedEarly), "ended inside the header");
    }
}
