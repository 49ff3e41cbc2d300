//! The video's heavy work, on threads of its own, never on the async runtime: the **encode
//! thread** owns the source and the encoder, the **decode thread** the decoder and the sink. Each
//! does what the session asked ([`Output::CaptureVideo`], [`Output::EncodeVideo`],
//! [`Output::DecodeVideo`], [`Output::ShowVideo`]) and sends the result back to the media task as
//! the session's [`Input`]. A source or sink that fails is written down in the stats and the call
//! goes on without it.
//!
//! [`Output::CaptureVideo`]: crate::media::session::Output::CaptureVideo
//! [`Output::EncodeVideo`]: crate::media::session::Output::EncodeVideo
//! [`Output::DecodeVideo`]: crate::media::session::Output::DecodeVideo
//! [`Output::ShowVideo`]: crate::media::session::Output::ShowVideo

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::lock;
use crate::media::MediaStartError;
use crate::media::codec::av1::{Dav1dDecoder, EncoderKind, VideoCodecError};
use crate::media::session::Input;
use crate::media::stats::VideoStats;
use crate::media::video::cpu_adaptation::VideoFormat;
use crate::media::video::encoder::{EncodeJob, EncodeWorker};
use crate::media::video::pattern::Stamp;
use crate::media::video::receiver::{DecodeJob, Rendered};
use crate::media::view::{PictureRole, ViewFeed, ViewPicture};
use crate::media::video::source::{
    CaptureRequest, VideoSink, VideoSinkSpec, VideoSource, VideoSourceSpec, open_source,
};

/// Jobs waiting for the decode thread; when it is this far behind, a job is failed at once (the
/// receiver then asks for a keyframe) rather than queued.
const DECODE_QUEUE: usize = 64;

/// What the encode thread is asked.
#[derive(Debug)]
pub(super) enum EncodeTask {
    Capture { format: VideoFormat, stamp: Stamp, capture_us: u64 },
    Encode(EncodeJob),
    Release,
}

/// What the decode thread is asked.
#[derive(Debug)]
pub(super) enum DecodeTask {
    Decode(DecodeJob),
    Show(Rendered),
}

/// The two threads, as the media task holds them. Dropping this stops both (the sink is completed).
#[derive(Debug)]
pub(super) struct VideoWorkers {
    encode: std_mpsc::Sender<EncodeTask>,
    decode: std_mpsc::SyncSender<DecodeTask>,
    results: mpsc::UnboundedSender<Input>,
}

impl VideoWorkers {
    /// Starts both threads; results go to `results`.
    pub(super) fn start(
        source: VideoSourceSpec,
        sink: VideoSinkSpec,
        encoder: EncoderKind,
        threads: usize,
        results: mpsc::UnboundedSender<Input>,
        stats: Arc<Mutex<VideoStats>>,
        view: ViewFeed,
    ) -> Result<Self, MediaStartError> {
        let decoder = Dav1dDecoder::new(1)?;
        let (encode, encode_rx) = std_mpsc::channel();
        let (decode, decode_rx) = std_mpsc::sync_channel(DECODE_QUEUE);
        let worker = EncodeWorker::new(encoder, threads);
        let (r, s, v) = (results.clone(), stats.clone(), view.clone());
        std::thread::Builder::new()
            .name("hail-video-encode".into())
            .spawn(move || encode_thread(worker, source, encode_rx, r, s, v))
            .map_err(|e| MediaStartError::Thread("encoder", e))?;
        let r = results.clone();
        std::thread::Builder::new()
            .name("hail-video-decode".into())
            .spawn(move || decode_thread(decoder, sink, decode_rx, r, stats, view))
            .map_err(|e| MediaStartError::Thread("decoder", e))?;
        Ok(VideoWorkers { encode, decode, results })
    }

    pub(super) fn encode(&self, task: EncodeTask) {
        let _ = self.encode.send(task);
    }

    /// Decodes `job`; when the thread is too far behind, the job fails at once.
    pub(super) fn decode(&self, job: DecodeJob) {
        match self.decode.try_send(DecodeTask::Decode(job)) {
            Ok(()) => {}
            Err(std_mpsc::TrySendError::Full(DecodeTask::Decode(job))) => {
                let result = Err(VideoCodecError::Decoder("the decoder is behind; frame dropped".into()));
                let _ = self.results.send(Input::DecodedVideo { job, result });
            }
            Err(_) => {}
        }
    }

    /// Shows a picture (dropped when the thread is too far behind).
    pub(super) fn show(&self, picture: Rendered) {
        let _ = self.decode.try_send(DecodeTask::Show(picture));
    }
}

fn encode_thread(
    mut worker: EncodeWorker,
    input: VideoSourceSpec,
    tasks: std_mpsc::Receiver<EncodeTask>,
    results: mpsc::UnboundedSender<Input>,
    stats: Arc<Mutex<VideoStats>>,
    view: ViewFeed,
) {
    let mut frame_number = 0u32;
    let mut source: Option<Box<dyn VideoSource>> = None;
    while let Ok(task) = tasks.recv() {
        let result = match task {
            EncodeTask::Release => {
                worker.release();
                continue;
            }
            EncodeTask::Encode(job) => {
                let result = worker.encode(&job);
                Input::EncodedVideo { job, result }
            }
            EncodeTask::Capture { format, stamp, capture_us } => {
                let opened = match source.as_mut() {
                    Some(s) => Ok(s),
                    None => open_source(&input, format).map(|s| {
                        if let Some(rate) = s.frame_rate() {
                            let _ = results.send(Input::VideoSourceRate(rate));
                        }
                        source.insert(s)
                    }),
                };
                let request = CaptureRequest { format, stamp, now_us: capture_us };
                match opened.and_then(|s| s.next_picture(&request)) {
                    Ok(Some(c)) => {
                        view.publish_captured(&c.picture, c.capture_us, &mut frame_number);
                        Input::CapturedVideo { picture: Some(c.picture), capture_us: c.capture_us }
                    }
                    Ok(None) => Input::CapturedVideo { picture: None, capture_us },
                    Err(e) => {
                        tracing::warn!(error = %e, "the video source failed: this call sends no video");
                        lock(&stats).input_error = Some(e.to_string());
                        Input::VideoSourceFailed
                    }
                }
            }
        };
        if results.send(result).is_err() {
            return;
        }
    }
}

fn decode_thread(
    mut decoder: Dav1dDecoder,
    output: VideoSinkSpec,
    tasks: std_mpsc::Receiver<DecodeTask>,
    results: mpsc::UnboundedSender<Input>,
    stats: Arc<Mutex<VideoStats>>,
    view: ViewFeed,
) {
    let mut sink = VideoSink::open(&output);
    let mut sink_failed = false;
    while let Ok(task) = tasks.recv() {
        match task {
            DecodeTask::Decode(job) => {
                let result = decoder.decode(&job.av1);
                if results.send(Input::DecodedVideo { job, result }).is_err() {
                    break;
                }
            }
            DecodeTask::Show(shown) => {
                if !sink_failed {
                    if let Err(e) = sink.write(&shown) {
                        tracing::warn!(error = %e, "the video sink failed; pictures are dropped");
                        lock(&stats).output_error = Some(e.to_string());
                        sink_failed = true;
                    } else {
                        let written = crate::wall_clock::now_us() as f64 - shown.capture_us as f64;
                        lock(&stats).written_glass_to_glass_ms = Some(written / 1000.0);
                    }
                }
                // The viewers get the picture itself (moved, not copied), when there are any.
                view.publish(ViewPicture {
                    role: PictureRole::Remote,
                    frame: shown.picture,
                    frame_number: shown.frame,
                    capture_us: shown.capture_us,
                    member: None,
                });
            }
        }
    }
    if let Err(e) = sink.finish() {
        tracing::warn!(error = %e, "the video file could not be completed");
    }
}
