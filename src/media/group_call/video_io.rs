//! The IO of a group call's video, for [`super::GroupCallMedia`]'s task: the heavy work on
//! threads of its own (one **encode thread** with the source and the encoder, as a 1:1 call's;
//! one **decode thread per member** with its dav1d decoder and its sink, so each sender's
//! pictures land in a file of their own), and the streams on each member's link: our GOPs out
//! (one stream per GOP, the previous one reset when a new one starts, below the datagrams that
//! carry the audio), its GOPs in, read within the call's record budget.
//!
//! Everything comes back to the task as a [`VideoEvent`].

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;
use tokio::sync::mpsc;

use super::video::KIND_GROUP_VIDEO;
use crate::media::codec::av1::{Dav1dDecoder, VideoCodecError};
use crate::media::video::Frame;
use crate::media::video::clock::FrameRate;
use crate::media::video::cpu_adaptation::VideoFormat;
use crate::media::video::encoder::{EncodeJob, EncodeWorker, Encoded};
use crate::media::video::pattern::Stamp;
use crate::media::video::receiver::{DecodeJob, Rendered};
use crate::media::video::record_reader::{Record, RecordBudget, RecordReader};
use crate::media::video::sender::Outgoing;
use crate::media::video::source::{
    CaptureRequest, VideoSink, VideoSinkSpec, VideoSource, VideoSourceSpec, open_source,
};
use crate::media::view::{PictureRole, ViewFeed, ViewPicture};
use crate::media_link::{InStream, MediaLink};

/// Decode jobs waiting for a member's thread; beyond, a job fails at once (a keyframe request
/// follows) rather than queueing.
const DECODE_QUEUE: usize = 32;
/// Records waiting for a member's stream writer; beyond, the member's link does not keep up.
pub(super) const OUT_QUEUE: usize = 8;
/// The most bytes taken from a stream at once.
const READ_CHUNK: usize = 64 * 1024;
/// Time for a stream's header to arrive.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The least time between two signs of life of one stream with part of a record.
const PROGRESS_GAP: Duration = Duration::from_millis(50);
/// Incoming video streams read at once on one member's link: a forwarder's link carries a GOP
/// stream of every other member's (up to seven) besides its own, each reset when the next opens;
/// twice that leaves room for streams being reset.
const MAX_STREAMS: usize = 16;
/// Bytes of video records held for a whole group call, across every member's streams.
pub(super) const RECORD_BUDGET: usize = 16 * 1024 * 1024;

/// What the video's threads and stream tasks hand the media task.
#[derive(Debug)]
pub(super) enum VideoEvent {
    /// The picture asked for (`None`: none this time).
    Captured { picture: Option<Frame>, capture_us: u64 },
    /// The source has a rate of its own.
    SourceRate(FrameRate),
    /// The source failed.
    SourceFailed(String),
    /// An encode job's result.
    Encoded { job: EncodeJob, result: Result<Encoded, VideoCodecError> },
    /// A member's decode job's result.
    Decoded { member: PeerId, job: DecodeJob, result: Result<Vec<Frame>, VideoCodecError> },
    /// A member's sink failed.
    SinkFailed(String),
    /// A whole record from `member`'s stream of `gop` (`generation`: of the link it came on).
    Record { member: PeerId, generation: u64, gop: u32, record: Record },
    /// Part of a record arrived on `member`'s stream of `gop`.
    Progress { member: PeerId, generation: u64, gop: u32 },
}

/// What the encode thread is asked.
#[derive(Debug)]
pub(super) enum EncodeTask {
    Capture { format: VideoFormat, stamp: Stamp, capture_us: u64 },
    Encode(EncodeJob),
    Release,
}

/// Starts the encode thread: it opens `source` at the first capture.
/// Our pictures as captured go to `view`'s viewers (the self-view), while any watch.
pub(super) fn start_encoder(
    source: VideoSourceSpec,
    worker: EncodeWorker,
    events: mpsc::UnboundedSender<VideoEvent>,
    view: ViewFeed,
) -> std::io::Result<std_mpsc::Sender<EncodeTask>> {
    let (tasks, rx) = std_mpsc::channel();
    std::thread::Builder::new()
        .name("hail-group-encode".into())
        .spawn(move || encode_thread(worker, source, rx, events, view))?;
    Ok(tasks)
}

fn encode_thread(
    mut worker: EncodeWorker,
    spec: VideoSourceSpec,
    tasks: std_mpsc::Receiver<EncodeTask>,
    events: mpsc::UnboundedSender<VideoEvent>,
    view: ViewFeed,
) {
    let mut source: Option<Box<dyn VideoSource>> = None;
    let mut failed = false;
    let mut shown = 0u32;
    while let Ok(task) = tasks.recv() {
        let event = match task {
            EncodeTask::Release => {
                worker.release();
                continue;
            }
            EncodeTask::Encode(job) => {
                let result = worker.encode(&job);
                VideoEvent::Encoded { job, result }
            }
            EncodeTask::Capture { .. } if failed => continue,
            EncodeTask::Capture { format, stamp, capture_us } => {
                let opened = match source.as_mut() {
                    Some(s) => Ok(s),
                    None => open_source(&spec, format).map(|s| {
                        if let Some(rate) = s.frame_rate() {
                            let _ = events.send(VideoEvent::SourceRate(rate));
                        }
                        source.insert(s)
                    }),
                };
                let request = CaptureRequest { format, stamp, now_us: capture_us };
                match opened.and_then(|s| s.next_picture(&request)) {
                    Ok(Some(c)) => {
                        view.publish_captured(&c.picture, c.capture_us, &mut shown);
                        VideoEvent::Captured { picture: Some(c.picture), capture_us: c.capture_us }
                    }
                    Ok(None) => VideoEvent::Captured { picture: None, capture_us },
                    Err(e) => {
                        tracing::warn!(error = %e, "the video source failed: this group call sends no video");
                        failed = true;
                        VideoEvent::SourceFailed(e.to_string())
                    }
                }
            }
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

/// What a member's decode thread is asked.
#[derive(Debug)]
enum DecodeTask {
    Decode(DecodeJob),
    Show(Rendered),
}

/// A member's decode thread, as the task holds it. Dropping it ends the thread (its file is
/// completed).
#[derive(Debug)]
pub(super) struct MemberDecoder {
    member: PeerId,
    tasks: std_mpsc::SyncSender<DecodeTask>,
    events: mpsc::UnboundedSender<VideoEvent>,
}

impl MemberDecoder {
    /// Starts `member`'s decode thread, its pictures to `sink` (the group's sink spec made
    /// `member`'s own) and to `view`'s viewers.
    pub(super) fn start(
        member: PeerId,
        sink: &VideoSinkSpec,
        events: mpsc::UnboundedSender<VideoEvent>,
        view: ViewFeed,
    ) -> Result<Self, VideoCodecError> {
        let decoder = Dav1dDecoder::new(1)?;
        let spec = sink.for_participant(&member.to_base58());
        let (tasks, rx) = std_mpsc::sync_channel(DECODE_QUEUE);
        let to_task = events.clone();
        std::thread::Builder::new()
            .name("hail-group-decode".into())
            .spawn(move || decode_thread(member, decoder, spec, rx, to_task, view))
            .map_err(|e| VideoCodecError::Decoder(e.to_string()))?;
        Ok(MemberDecoder { member, tasks, events })
    }

    /// Decodes `job`; when the thread is too far behind, the job fails at once.
    pub(super) fn decode(&self, job: DecodeJob) {
        match self.tasks.try_send(DecodeTask::Decode(job)) {
            Ok(()) => {}
            Err(std_mpsc::TrySendError::Full(DecodeTask::Decode(job))) => {
                let result = Err(VideoCodecError::Decoder("the decoder is behind; frame dropped".into()));
                let _ = self.events.send(VideoEvent::Decoded { member: self.member, job, result });
            }
            Err(_) => {}
        }
    }

    /// Shows a picture (dropped when the thread is too far behind).
    pub(super) fn show(&self, picture: Rendered) {
        let _ = self.tasks.try_send(DecodeTask::Show(picture));
    }
}

fn decode_thread(
    member: PeerId,
    mut decoder: Dav1dDecoder,
    spec: VideoSinkSpec,
    tasks: std_mpsc::Receiver<DecodeTask>,
    events: mpsc::UnboundedSender<VideoEvent>,
    view: ViewFeed,
) {
    if let VideoSinkSpec::File(path) = &spec
        && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        let _ = events.send(VideoEvent::SinkFailed(format!("{}: {e}", dir.display())));
    }
    let mut sink = VideoSink::open(&spec);
    let mut sink_failed = false;
    while let Ok(task) = tasks.recv() {
        match task {
            DecodeTask::Decode(job) => {
                let result = decoder.decode(&job.av1);
                if events.send(VideoEvent::Decoded { member, job, result }).is_err() {
                    break;
                }
            }
            DecodeTask::Show(shown) => {
                if !sink_failed && let Err(e) = sink.write(&shown) {
                    tracing::warn!(%member, error = %e, "a group video sink failed; its pictures are dropped");
                    let _ = events.send(VideoEvent::SinkFailed(e.to_string()));
                    sink_failed = true;
                }
                // The viewers get the picture itself (moved, not copied), when there are any.
                view.publish(ViewPicture {
                    role: PictureRole::Member,
                    frame: shown.picture,
                    frame_number: shown.frame,
                    capture_us: shown.capture_us,
                    member: Some(member),
                });
            }
        }
    }
    if let Err(e) = sink.finish() {
        tracing::warn!(%member, error = %e, "a group video file could not be completed");
    }
}

/// Puts each of our GOPs on a stream of its own on one member's link, as a call's video does
/// (`driver::streams::write_gop_streams`, paced the same way); a failed stream or a backlog over
/// the pacer's limit needs nothing told: its GOP's records wait for the next keyframe, which the
/// member asks for when records stop coming.
pub(super) async fn write_streams(link: Arc<dyn MediaLink>, records: mpsc::Receiver<Outgoing>) {
    crate::media::driver::streams::write_gop_streams(link, records, KIND_GROUP_VIDEO, || ()).await
}

/// Accepts `member`'s video streams on its link, each read by a task of its own.
pub(super) async fn read_streams(
    member: PeerId,
    generation: u64,
    link: Arc<dyn MediaLink>,
    to_task: mpsc::Sender<VideoEvent>,
    budget: Arc<RecordBudget>,
) {
    crate::media::driver::streams::accept_streams(link, MAX_STREAMS, move |mut recv| {
        let (to_task, budget) = (to_task.clone(), budget.clone());
        async move {
            if let Err(e) = read_stream(member, generation, recv.as_mut(), &to_task, budget).await {
                tracing::debug!(%member, error = %e, "group video stream ended");
                recv.stop();
            }
        }
    })
    .await
}

/// Reads one stream's records as their bytes arrive; a full queue drops a record (the gap it
/// leaves makes the receiver ask for a keyframe).
async fn read_stream(
    member: PeerId,
    generation: u64,
    recv: &mut dyn InStream,
    to_task: &mpsc::Sender<VideoEvent>,
    budget: Arc<RecordBudget>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut reader = RecordReader::of_kind(KIND_GROUP_VIDEO, budget);
    let header_due = tokio::time::Instant::now() + HEADER_TIMEOUT;
    let mut progress_told: Option<Instant> = None;
    loop {
        let chunk = if reader.gop().is_none() {
            tokio::time::timeout_at(header_due, recv.read_chunk(READ_CHUNK))
                .await
                .map_err(|_| "no stream header in time")??
        } else {
            recv.read_chunk(READ_CHUNK).await?
        };
        let Some(chunk) = chunk else {
            return Ok(reader.finish()?);
        };
        let records = reader.push(&chunk)?;
        let Some(gop) = reader.gop() else { continue };
        if records.is_empty() {
            let now = Instant::now();
            if progress_told.is_none_or(|t| now.saturating_duration_since(t) >= PROGRESS_GAP) {
                progress_told = Some(now);
                let _ = to_task.try_send(VideoEvent::Progress { member, generation, gop });
            }
            continue;
        }
        for record in records {
            match to_task.try_send(VideoEvent::Record { member, generation, gop, record }) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
            }
        }
    }
}
