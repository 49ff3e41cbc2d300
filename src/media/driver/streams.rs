//! The call's video on the link: each GOP on a stream of its own, below the control stream and the
//! datagrams in priority, the previous GOP's stream reset when a new one starts (its unsent backlog
//! is dropped); and the peer's streams read as their bytes arrive, within the call's budget.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};

use crate::media_link::{InStream, LinkError, MediaLink, OutStream};
use crate::media::session::Input;
use crate::media::video::record_reader::{Record, RecordBudget, RecordError, RecordReader};
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
/// in a group call); resets the previous one when a new GOP starts. A stream whose header or a
/// record cannot be written is told (`failed`), and the GOP's later records wait for the next
/// keyframe; when no stream can be opened at all the connection is gone, and the writer ends.
pub(crate) async fn write_gop_streams(
    link: Arc<dyn MediaLink>,
    mut records: mpsc::Receiver<Outgoing>,
    kind: u8,
    failed: impl Fn(),
) {
    let mut stream: Option<(u32, Box<dyn OutStream>)> = None;
    while let Some(r) = records.recv().await {
        if r.new_gop || stream.as_ref().is_none_or(|(gop, _)| *gop != r.gop) {
            if let Some((_, mut old)) = stream.take() {
                old.reset();
            }
            if !r.new_gop {
                // The stream of this GOP failed earlier: wait for the next keyframe.
                continue;
            }
            let Ok(mut s) = link.open_stream(VIDEO_PRIORITY).await else { return };
            if s.write_all(&wire::stream_header_of(kind, r.gop)).await.is_err() {
                failed();
                continue;
            }
            stream = Some((r.gop, s));
        }
        let Some((_, s)) = stream.as_mut() else { continue };
        if let Err(e) = s.write_all(&r.record).await {
            tracing::debug!(error = %e, "video stream write failed; a new GOP follows");
            stream = None;
            failed();
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
