//! The call's video on the link: each GOP on a stream of its own, below the control stream and the
//! datagrams in priority, the previous GOP's stream reset when a new one starts (its unsent backlog
//! is dropped), each record given to QUIC a packet's worth at a time at the pacer's rate
//! (`media::video::pacer`); and the peer's streams read as their bytes arrive, within the call's
//! budget.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};

use crate::media_link::{InStream, LinkError, MediaLink, OutStream};
use crate::media::session::Input;
use crate::media::video::record_reader::{Record, RecordBudget, RecordError, RecordReader};
use crate::media::video::pacer::{Next, PacedQueue, Queued};
use crate::media::video::sender::Outgoing;
use crate::media::video::wire;

/// Incoming video streams of a 1:1 call read at once (a sender resets old ones; more is abuse).
pub(crate) const MAX_STREAMS: usize = 4;
/// The most bytes taken from a stream at once.
const READ_CHUNK: usize = 64 * 1024;
/// Time for a stream's header to arrive.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The least time between two signs of life from one stream that has delivered part of a record.
const PROGRESS_GAP: Duration = Duration::from_millis(50);
/// Stream priority of video (the control stream has 0; datagrams go before any stream).
const VIDEO_PRIORITY: i32 = -1;

/// What the readers hand the media task.
#[derive(Debug)]
pub(super) enum Incoming {
    /// A whole record of the stream of `gop` (its bytes count against the budget until dropped).
    Record { gop: u32, record: Record },
    /// Part of a record arrived on the stream of `gop`.
    Progress { gop: u32 },
}

/// Puts each GOP on its own stream of `kind` (`wire::KIND_VIDEO` for a call, the group's kind
/// in a group call) and resets the previous one when a new GOP starts; the records go to QUIC a
/// piece at a time at the pacer's pace ([`PacedQueue`]), and a new GOP drops what was left of
/// the old one. A stream whose header or a piece cannot be written, or whose backlog overflowed,
/// is told (`failed`), and the GOP's later records wait for the next keyframe; when no stream can
/// be opened at all the connection is gone, and the writer ends.
pub(crate) async fn write_gop_streams(
    link: Arc<dyn MediaLink>,
    mut records: mpsc::Receiver<Outgoing>,
    kind: u8,
    failed: impl Fn(),
) {
    let mut stream: Option<(u32, Box<dyn OutStream>)> = None;
    let mut queue = PacedQueue::new();
    let mut open = true;
    loop {
        let wait = match queue.poll(tokio::time::Instant::now().into_std()) {
            Next::Piece(piece) => {
                if piece.opens_gop {
                    if let Some((_, mut old)) = stream.take() {
                        old.reset();
                    }
                    let Ok(mut s) = link.open_stream(VIDEO_PRIORITY).await else { return };
                    if s.write_all(&wire::stream_header_of(kind, piece.gop)).await.is_err() {
                        queue.drop_gop(piece.gop);
                        failed();
                        continue;
                    }
                    stream = Some((piece.gop, s));
                }
                let Some((_, s)) = stream.as_mut().filter(|(gop, _)| *gop == piece.gop) else {
                    // The stream of this GOP failed earlier: wait for the next keyframe.
                    queue.drop_gop(piece.gop);
                    continue;
                };
                if let Err(e) = s.write_all(&piece.bytes).await {
                    tracing::debug!(error = %e, "video stream write failed; a new GOP follows");
                    stream = None;
                    queue.drop_gop(piece.gop);
                    failed();
                }
                continue;
            }
            Next::Wait(at) => Some(at),
            Next::Empty if open => None,
            Next::Empty => break,
        };
        tokio::select! {
            r = records.recv(), if open => match r {
                Some(r) => {
                    let gop = r.gop;
                    if queue.push(r) == Queued::Overflow {
                        tracing::debug!(gop, "video backlog over its limit; a new GOP follows");
                        if let Some((_, mut old)) = stream.take_if(|(g, _)| *g == gop) {
                            old.reset();
                        }
                        failed();
                    }
                }
                None => open = false,
            },
            _ = tokio::time::sleep_until(wait.unwrap_or_else(std::time::Instant::now).into()), if wait.is_some() => {}
        }
    }
    if let Some((_, mut s)) = stream {
        s.finish();
    }
}

/// A call's video: [`write_gop_streams`], a failed stream told to the session
/// ([`Input::VideoStreamFailed`]).
pub(super) async fn write_streams(
    link: Arc<dyn MediaLink>,
    records: mpsc::Receiver<Outgoing>,
    failures: mpsc::UnboundedSender<Input>,
) {
    write_gop_streams(link, records, wire::KIND_VIDEO, || {
        let _ = failures.send(Input::VideoStreamFailed);
    })
    .await
}

/// Accepts `link`'s incoming streams until it ends, each handed to `read` on a task of its own,
/// at most `max` at once ([`MAX_STREAMS`] in a 1:1 call): a stream beyond them is stopped at once
/// (a sender resets its old GOP's stream when it starts a new one, so more is abuse). A 1:1 call's
/// and a group call's video both read their peers' streams through it.
pub(crate) async fn accept_streams<F, Fut>(link: Arc<dyn MediaLink>, max: usize, read: F)
where
    F: Fn(Box<dyn InStream>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max));
    while let Ok(mut recv) = link.accept_stream().await {
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            recv.stop();
            continue;
        };
        let reading = read(recv);
        tokio::spawn(async move {
            let _permit = permit;
            reading.await;
        });
    }
}

/// Accepts the peer's video streams, each read by its own task, all within the call's `budget`.
pub(super) async fn read_streams(link: Arc<dyn MediaLink>, to_session: mpsc::Sender<Incoming>, budget: Arc<RecordBudget>) {
    accept_streams(link, MAX_STREAMS, move |mut recv| {
        let (to_session, budget) = (to_session.clone(), budget.clone());
        async move {
            if let Err(e) = read_stream(recv.as_mut(), &to_session, budget).await {
                tracing::debug!(error = %e, "video stream ended");
                recv.stop();
            }
        }
    })
    .await
}

/// Why the reading of a video stream stopped early.
#[derive(Debug, thiserror::Error)]
enum StreamReadError {
    /// The stream's header did not arrive within [`HEADER_TIMEOUT`].
    #[error("no stream header in time")]
    NoHeader,
    /// The peer reset the stream, or the connection ended.
    #[error(transparent)]
    Read(#[from] LinkError),
    /// The bytes are not a stream of records, or are over the call's budget.
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// Reads one stream's records as their bytes arrive (never allocating on the strength of a length
/// prefix: [`RecordReader`]) and hands them to the media task. A full queue drops the record: the
/// gap it leaves makes the receiver ask for a keyframe.
async fn read_stream(
    recv: &mut dyn InStream,
    to_session: &mpsc::Sender<Incoming>,
    budget: Arc<RecordBudget>,
) -> Result<(), StreamReadError> {
    let mut reader = RecordReader::new(budget);
    let header_due = tokio::time::Instant::now() + HEADER_TIMEOUT;
    let mut progress_told: Option<Instant> = None;
    loop {
        let chunk = if reader.gop().is_none() {
            tokio::time::timeout_at(header_due, recv.read_chunk(READ_CHUNK))
                .await
                .map_err(|_| StreamReadError::NoHeader)?
        } else {
            recv.read_chunk(READ_CHUNK).await
        };
        let Some(chunk) = chunk? else {
            return Ok(reader.finish()?);
        };
        let records = reader.push(&chunk)?;
        let Some(gop) = reader.gop() else { continue };
        if records.is_empty() {
            // Part of a record: tell the session the stream is alive (slow is not stalled), at most
            // every PROGRESS_GAP; a full queue means it has records to look at anyway.
            let now = Instant::now();
            if progress_told.is_none_or(|t| now.saturating_duration_since(t) >= PROGRESS_GAP) {
                progress_told = Some(now);
                let _ = to_session.try_send(Incoming::Progress { gop });
            }
            continue;
        }
        for record in records {
            match to_session.try_send(Incoming::Record { gop, record }) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::Bytes;
    use futures::future::BoxFuture;

    use super::*;
    use crate::media::video::pacer::{PIECE, QUEUE_LIMIT};
    use crate::media_link::PathSample;

    /// Each write: when, and how many bytes.
    type Writes = Arc<Mutex<Vec<(Instant, usize)>>>;

    /// A link whose streams note their writes.
    struct NotingLink(Writes);

    struct NotingStream(Writes);

    impl OutStream for NotingStream {
        fn write_all<'a>(&'a mut self, bytes: &'a [u8]) -> BoxFuture<'a, Result<(), LinkError>> {
            self.0.lock().unwrap().push((Instant::now(), bytes.len()));
            Box::pin(async { Ok(()) })
        }
        fn reset(&mut self) {}
        fn finish(&mut self) {}
    }

    impl MediaLink for NotingLink {
        fn send_datagram(&self, _: Bytes) -> Result<(), LinkError> {
            Err(LinkError::Datagram("not in this test".into()))
        }
        fn read_datagram(&self) -> BoxFuture<'_, Result<Bytes, LinkError>> {
            Box::pin(async { Err(LinkError::Closed("not in this test".into())) })
        }
        fn open_stream(&self, _: i32) -> BoxFuture<'_, Result<Box<dyn OutStream>, LinkError>> {
            let writes = self.0.clone();
            Box::pin(async move { Ok(Box::new(NotingStream(writes)) as Box<dyn OutStream>) })
        }
        fn accept_stream(&self) -> BoxFuture<'_, Result<Box<dyn InStream>, LinkError>> {
            Box::pin(async { Err(LinkError::Closed("not in this test".into())) })
        }
        fn path(&self) -> PathSample {
            PathSample { rtt: Duration::ZERO, cwnd: 0, sent_bytes: 0, lost_bytes: 0, acked_bytes: None }
        }
        fn is_closed(&self) -> bool {
            false
        }
    }

    /// The writes of `records` through [`write_gop_streams`], the stream header's first.
    async fn written(records: Vec<Outgoing>) -> Vec<(Instant, usize)> {
        let writes = Writes::default();
        let (tx, rx) = mpsc::channel(records.len());
        for r in records {
            tx.try_send(r).unwrap();
        }
        drop(tx);
        write_gop_streams(Arc::new(NotingLink(writes.clone())), rx, wire::KIND_VIDEO, || {}).await;
        let w = writes.lock().unwrap().clone();
        w
    }

    fn record(len: usize, bitrate: u32) -> Outgoing {
        Outgoing { gop: 0, new_gop: true, record: vec![7; len], frame: 0, layer: 0, bitrate }
    }

    #[tokio::test]
    async fn a_record_goes_to_quic_in_pieces_at_the_pacers_pace() {
        // Five pieces at the lowest pacing rate would take 4 × 88 ms; a backlog drains at no less
        // than its size per QUEUE_LIMIT, so piece k waits QUEUE_LIMIT / (pieces left): the fifth
        // leaves (1/5 + 1/4 + 1/3 + 1/2) × 100 ms = 128 ms after the first, or later if the
        // writer woke late. A lower bound holds however slow the machine (a sleep never ends
        // early); without the pacer all five go at once.
        let start = Instant::now();
        let writes = written(vec![record(5 * PIECE, 30_000)]).await;
        let pieces = &writes[1..];
        assert_eq!(pieces.iter().map(|w| w.1).collect::<Vec<_>>(), vec![PIECE; 5]);
        let (last, least) = (pieces[4].0 - start, QUEUE_LIMIT);
        assert!(last >= least, "the last piece left {last:?} after the start, want ≥ {least:?}");
        assert!(pieces.windows(2).all(|w| w[1].0 > w[0].0), "one after the other");
    }

    #[tokio::test]
    async fn each_record_is_cut_into_pieces_after_its_stream_header() {
        let writes = written(vec![record(3 * PIECE + 10, 0), record(900, 30_000)]).await;
        let sizes: Vec<usize> = writes.iter().map(|w| w.1).collect();
        let header = wire::stream_header_of(wire::KIND_VIDEO, 0).len();
        // Each record opens a GOP (new_gop), so each has its header first.
        assert_eq!(sizes, vec![header, PIECE, PIECE, PIECE, 10, header, 900]);
    }
}
