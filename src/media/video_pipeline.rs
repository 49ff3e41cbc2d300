//! The IO layer of a call's video. The codecs do real work, so they run on threads of their own,
//! never on the async runtime:
//!
//! - the **encode thread** owns the source and the [`VideoSender`]: every frame interval it takes a
//!   picture, encodes and seals it, and hands the records to the async side;
//! - the **stream writer** (a task) puts each GOP on a new QUIC unidirectional stream, below the
//!   control stream in priority (audio datagrams always go first in quinn), and resets the previous
//!   GOP's stream when a new one starts, so its unsent backlog is dropped;
//! - the **stream readers** (a task per incoming stream) read records and hand them to
//! - the **decode thread**, which owns the [`VideoReceiver`] and the sink: it decodes, shows each
//!   picture when the audio captured with it plays, and sends keyframe requests over the control
//!   stream;
//! - the **rate task** feeds the [`RateLoop`] (the bitrate controller's loop) with quinn's path
//!   stats and the peer's receiver reports, and gives the encoder the share it decides.
//!
//! When the call's video is off the encode thread drops its encoder (no CPU, no memory) and waits.

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use super::bitrate::RateLimits;
use super::codec::av1::EncoderKind;
use super::feedback::MediaFeedback;
use super::rate::{PathSample, RateLoop};
use super::video::cpu_adaptation::{LADDER, VideoFormat};
use super::video::pattern::Stamp;
use super::video::receiver::{VideoReceiveStats, VideoReceiver};
use super::video::record_reader::{Record, RecordBudget, RecordReader};
use super::video::sender::{Outgoing, SenderConfig, VideoSendStats, VideoSender};
use super::video::source::{VideoSink, VideoSinkSpec, VideoSource, VideoSourceSpec, open_source};
use super::video::wire;
use crate::wall_clock::now_us as wall_us;
use crate::crypto::frame::FrameKeys;

/// What the video asks of the peer, over the call's control stream (the node carries it there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaControl {
    /// We cannot decode: send a keyframe.
    KeyframeRequest,
}

pub use super::rate::AUDIO_NEED;
/// Encoded records waiting for the stream writer; more means the path does not keep up.
const OUT_QUEUE: usize = 8;
/// Records waiting for the decode thread.
const IN_QUEUE: usize = 64;
/// Incoming video streams read at once (a sender resets old ones; more is abuse).
const MAX_STREAMS: usize = 4;
/// Bytes of video records a call holds at most: records being read on all its streams, and
/// records waiting for the decoder. A stream that would pass it is stopped.
pub const MAX_BUFFERED: usize = 4 * wire::MAX_RECORD;
/// The most bytes taken from a stream at once.
const READ_CHUNK: usize = 64 * 1024;
/// Time for a stream's header to arrive.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The least time between two signs of life from one stream that has delivered part of a record.
const PROGRESS_GAP: Duration = Duration::from_millis(50);
/// QUIC stream priority of video (the control stream has 0).
const VIDEO_PRIORITY: i32 = -1;

/// Where a call's video comes from and goes to, and how it is encoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoConfig {
    /// The source.
    pub input: VideoSourceSpec,
    /// The sink.
    pub output: VideoSinkSpec,
    /// The encoder.
    pub encoder: EncoderKind,
    /// The best format to send.
    pub max_width: usize,
    /// The best format to send.
    pub max_height: usize,
    /// The best frame rate to send.
    pub max_fps: u32,
    /// Encoder threads.
    pub threads: usize,
}

impl Default for VideoConfig {
    fn default() -> Self {
        let top = LADDER[0];
        VideoConfig {
            input: VideoSourceSpec::Pattern,
            output: VideoSinkSpec::Null,
            encoder: EncoderKind::default(),
            max_width: top.width,
            max_height: top.height,
            max_fps: top.fps,
            // Encoder threads: the cores there are (tiles let two work on one frame), at most 4.
            threads: std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
        }
    }
}

impl VideoConfig {
    fn max_format(&self) -> VideoFormat {
        VideoFormat { width: self.max_width, height: self.max_height, fps: self.max_fps }
    }
}

/// The video part of `hail status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VideoStats {
    /// We send video (the user's switch).
    pub sending: bool,
    /// The peer says it sends video; false shows as "video paused".
    pub remote_sending: bool,
    /// The source.
    pub input: String,
    /// The sink.
    pub output: String,
    /// Why the source failed (nothing is sent then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_error: Option<String>,
    /// Why the sink failed (pictures are dropped then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_error: Option<String>,
    /// Video is on but the path has no room for it now (below the controller's minimum).
    pub paused_for_bandwidth: bool,
    /// The controller's estimate of the path, bps.
    pub estimate_bps: u32,
    /// Sending.
    pub send: VideoSendStats,
    /// Receiving.
    pub receive: VideoReceiveStats,
    /// Frames sent over the last second.
    pub send_fps: u32,
    /// Frames shown over the last second.
    pub receive_fps: u32,
    /// Bits sent over the last second.
    pub send_bitrate: u64,
    /// Bits received over the last second.
    pub receive_bitrate: u64,
    /// Records the path could not take in time (a new GOP was started instead).
    pub send_dropped: u64,
    /// Bytes of the peer's video records held now (being read, or waiting for the decoder), at
    /// most [`MAX_BUFFERED`].
    #[serde(default)]
    pub receive_buffered_bytes: u64,
}

enum EncodeCommand {
    Sending(bool),
    Bitrate(u32),
    Keyframe,
    Stop,
}

enum DecodeInput {
    Record { gop: u32, record: Record, at: Instant, wall_us: u64 },
    /// Bytes arrived on the stream of `gop`, but no whole record yet (a keyframe on a narrow link).
    Progress { gop: u32, at: Instant },
    RemoteSending(bool),
    Stop,
}

/// A running video pipeline. Dropping it stops everything.
#[derive(Debug)]
pub struct VideoPipeline {
    stats: Arc<Mutex<VideoStats>>,
    encode: std_mpsc::Sender<EncodeCommand>,
    decode: std_mpsc::SyncSender<DecodeInput>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for EncodeCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncodeCommand")
    }
}
impl std::fmt::Debug for DecodeInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DecodeInput")
    }
}


fn lock(stats: &Mutex<VideoStats>) -> std::sync::MutexGuard<'_, VideoStats> {
    stats.lock().unwrap_or_else(|p| p.into_inner())
}

impl VideoPipeline {
    /// Starts the call's video on `conn`: receiving always, sending when `sending`.
    pub fn start(
        conn: quinn::Connection,
        keys: &FrameKeys,
        config: VideoConfig,
        sending: bool,
        remote_sending: bool,
        feedback: Arc<MediaFeedback>,
        control: mpsc::Sender<MediaControl>,
    ) -> Result<Self, super::MediaStartError> {
        let sender = VideoSender::new(
            keys,
            SenderConfig { encoder: config.encoder, threads: config.threads.max(1), max_format: config.max_format() },
        );
        let mut receiver = VideoReceiver::new(keys, 1)?;
        receiver.set_remote_sending(remote_sending, Instant::now());
        let stats = Arc::new(Mutex::new(VideoStats {
            sending,
            remote_sending,
            input: config.input.to_string(),
            output: config.output.to_string(),
            send: sender.stats(),
            ..Default::default()
        }));

        let (out_tx, out_rx) = mpsc::channel::<Outgoing>(OUT_QUEUE);
        let (enc_tx, enc_rx) = std_mpsc::channel();
        let (dec_tx, dec_rx) = std_mpsc::sync_channel(IN_QUEUE);

        let (s, input) = (stats.clone(), config.input.clone());
        std::thread::Builder::new()
            .name("hail-video-encode".into())
            .spawn(move || encode_thread(sender, input, sending, enc_rx, out_tx, s))
            .map_err(|e| super::MediaStartError::Thread("encoder", e))?;
        let budget = RecordBudget::new(MAX_BUFFERED);
        let (s, output, fb, b) = (stats.clone(), config.output.clone(), feedback.clone(), budget.clone());
        std::thread::Builder::new()
            .name("hail-video-decode".into())
            .spawn(move || decode_thread(receiver, output, dec_rx, control, fb, s, b))
            .map_err(|e| super::MediaStartError::Thread("decoder", e))?;

        let tasks = vec![
            tokio::spawn(write_streams(conn.clone(), out_rx, enc_tx.clone())),
            tokio::spawn(read_streams(conn.clone(), dec_tx.clone(), budget)),
            tokio::spawn(control_rate(conn, feedback, enc_tx.clone(), stats.clone())),
        ];
        Ok(VideoPipeline { stats, encode: enc_tx, decode: dec_tx, tasks })
    }

    /// The current counters.
    pub fn stats(&self) -> VideoStats {
        lock(&self.stats).clone()
    }

    /// Our video on or off.
    pub fn set_sending(&self, on: bool) {
        lock(&self.stats).sending = on;
        let _ = self.encode.send(EncodeCommand::Sending(on));
    }

    /// The peer's video on or off.
    pub fn set_remote_sending(&self, on: bool) {
        lock(&self.stats).remote_sending = on;
        let _ = self.decode.try_send(DecodeInput::RemoteSending(on));
    }

    /// The peer asked for a keyframe.
    pub fn on_keyframe_request(&self) {
        let _ = self.encode.send(EncodeCommand::Keyframe);
    }

    /// Stops: the sink is completed by the decode thread.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for VideoPipeline {
    fn drop(&mut self) {
        let _ = self.encode.send(EncodeCommand::Stop);
        // The decode queue may be full: the stop must still get through.
        let decode = self.decode.clone();
        std::thread::spawn(move || {
            let _ = decode.send(DecodeInput::Stop);
        });
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn encode_thread(
    mut sender: VideoSender,
    input: VideoSourceSpec,
    mut sending: bool,
    commands: std_mpsc::Receiver<EncodeCommand>,
    out: mpsc::Sender<Outgoing>,
    stats: Arc<Mutex<VideoStats>>,
) {
    let mut source: Option<Box<dyn VideoSource>> = None;
    let mut source_failed = false;
    let mut video_budget = super::video::sender::START_BITRATE;
    let mut next = Instant::now();
    let (mut window_start, mut window_frames, mut window_bytes) = (Instant::now(), 0u32, 0u64);
    let mut last_bytes = 0u64;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        match commands.recv_timeout(wait) {
            Ok(EncodeCommand::Stop) | Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            Ok(EncodeCommand::Sending(on)) => {
                if !on {
                    sender.pause();
                }
                sending = on;
                continue;
            }
            Ok(EncodeCommand::Bitrate(bps)) => {
                if bps == 0 && video_budget > 0 {
                    sender.pause();
                }
                video_budget = bps;
                if bps > 0 {
                    sender.set_target_bitrate(bps);
                }
                lock(&stats).paused_for_bandwidth = bps == 0;
                continue;
            }
            Ok(EncodeCommand::Keyframe) => {
                sender.on_keyframe_request(Instant::now());
                continue;
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        if now.saturating_duration_since(window_start) >= Duration::from_secs(1) {
            let mut s = lock(&stats);
            s.send_fps = window_frames;
            s.send_bitrate = window_bytes * 8;
            (window_start, window_frames, window_bytes) = (now, 0, 0);
        }
        if !sending || video_budget == 0 || source_failed {
            // Idle: look again in a moment (commands wake the thread sooner).
            next = now + Duration::from_millis(100);
            if !sending || video_budget == 0 {
                lock(&stats).send_fps = 0;
            }
            continue;
        }
        let format = sender.format();
        next = (next + format.interval()).max(now);
        if source.is_none() {
            match open_source(&input) {
                Ok(s) => source = Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "no video source: this call sends no video");
                    lock(&stats).input_error = Some(e.to_string());
                    source_failed = true;
                    continue;
                }
            }
        }
        let capture_us = wall_us();
        let stamp = Stamp { counter: sender.stats().frames as u32, capture_ms: (capture_us / 1000) as u32 };
        let picture = match source.as_mut().expect("opened above").next_picture(format, stamp) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "the video source failed");
                lock(&stats).input_error = Some(e.to_string());
                source_failed = true;
                continue;
            }
        };
        match sender.send(now, &picture, capture_us) {
            Ok(records) => {
                for r in records {
                    match out.try_send(r) {
                        Ok(()) => window_frames += 1,
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            // The path does not keep up: drop this GOP's tail, start afresh.
                            sender.restart_gop();
                            lock(&stats).send_dropped += 1;
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "video encoding failed; starting a new encoder");
                sender.pause();
            }
        }
        let st = sender.stats();
        window_bytes += st.bytes - last_bytes;
        last_bytes = st.bytes;
        lock(&stats).send = st;
    }
}

/// Puts each GOP on its own stream; resets the previous one when a new GOP starts.
async fn write_streams(conn: quinn::Connection, mut records: mpsc::Receiver<Outgoing>, encoder: std_mpsc::Sender<EncodeCommand>) {
    let mut stream: Option<(u32, quinn::SendStream)> = None;
    while let Some(r) = records.recv().await {
        if r.new_gop || stream.as_ref().is_none_or(|(gop, _)| *gop != r.gop) {
            if let Some((_, mut old)) = stream.take() {
                let _ = old.reset(0u32.into());
            }
            if !r.new_gop {
                // The stream of this GOP failed earlier: wait for the next keyframe.
                continue;
            }
            let mut s = match conn.open_uni().await {
                Ok(s) => s,
                Err(_) => return,
            };
            let _ = s.set_priority(VIDEO_PRIORITY);
            if s.write_all(&wire::stream_header(r.gop)).await.is_err() {
                let _ = encoder.send(EncodeCommand::Keyframe);
                continue;
            }
            stream = Some((r.gop, s));
        }
        let Some((_, s)) = stream.as_mut() else { continue };
        if let Err(e) = s.write_all(&r.record).await {
            tracing::debug!(error = %e, "video stream write failed; a new GOP follows");
            stream = None;
            let _ = encoder.send(EncodeCommand::Keyframe);
        }
    }
    if let Some((_, mut s)) = stream {
        let _ = s.finish();
    }
}

/// Accepts the peer's video streams, each read by its own task, all within the call's `budget`.
async fn read_streams(conn: quinn::Connection, decode: std_mpsc::SyncSender<DecodeInput>, budget: Arc<RecordBudget>) {
    let slots = Arc::new(Semaphore::new(MAX_STREAMS));
    while let Ok(mut recv) = conn.accept_uni().await {
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let _ = recv.stop(0u32.into());
            continue;
        };
        let (decode, budget) = (decode.clone(), budget.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = read_stream(&mut recv, &decode, budget).await {
                tracing::debug!(error = %e, "video stream ended");
                let _ = recv.stop(0u32.into());
            }
        });
    }
}

/// Why the reading of a video stream stopped early.
#[derive(Debug, thiserror::Error)]
enum StreamReadError {
    /// The stream's header did not arrive within [`HEADER_TIMEOUT`].
    #[error("no stream header in time")]
    NoHeader,
    /// QUIC: the peer reset the stream, or the connection ended.
    #[error(transparent)]
    Read(#[from] quinn::ReadError),
    /// The bytes are not a stream of records, or are over the call's budget.
    #[error(transparent)]
    Record(#[from] super::video::record_reader::RecordError),
}

/// Reads one stream's records as their bytes arrive (never allocating on the strength of a length
/// prefix: [`RecordReader`]) and hands them to the decoder.
async fn read_stream(
    recv: &mut quinn::RecvStream,
    decode: &std_mpsc::SyncSender<DecodeInput>,
    budget: Arc<RecordBudget>,
) -> Result<(), StreamReadError> {
    let mut reader = RecordReader::new(budget);
    let header_due = tokio::time::Instant::now() + HEADER_TIMEOUT;
    let mut progress_told: Option<Instant> = None;
    loop {
        let chunk = if reader.gop().is_none() {
            tokio::time::timeout_at(header_due, recv.read_chunk(READ_CHUNK, true))
                .await
                .map_err(|_| StreamReadError::NoHeader)?
        } else {
            recv.read_chunk(READ_CHUNK, true).await
        };
        let Some(chunk) = chunk? else {
            return Ok(reader.finish()?);
        };
        let records = reader.push(&chunk.bytes)?;
        let Some(gop) = reader.gop() else { continue };
        if records.is_empty() {
            // Part of a record: tell the decoder the stream is alive (slow is not stalled), at most
            // every PROGRESS_GAP; a full queue means it has records to look at anyway.
            let now = Instant::now();
            if progress_told.is_none_or(|t| now.saturating_duration_since(t) >= PROGRESS_GAP) {
                progress_told = Some(now);
                let _ = decode.try_send(DecodeInput::Progress { gop, at: now });
            }
            continue;
        }
        for record in records {
            let input = DecodeInput::Record { gop, record, at: Instant::now(), wall_us: wall_us() };
            match decode.try_send(input) {
                Ok(()) => {}
                // The decoder is behind; the gap this leaves makes it ask for a keyframe.
                Err(std_mpsc::TrySendError::Full(_)) => {}
                Err(std_mpsc::TrySendError::Disconnected(_)) => return Ok(()),
            }
        }
    }
}

fn decode_thread(
    mut receiver: VideoReceiver,
    output: VideoSinkSpec,
    inputs: std_mpsc::Receiver<DecodeInput>,
    control: mpsc::Sender<MediaControl>,
    feedback: Arc<MediaFeedback>,
    stats: Arc<Mutex<VideoStats>>,
    budget: Arc<RecordBudget>,
) {
    let mut sink = VideoSink::open(&output);
    let mut sink_failed = false;
    let (mut window_start, mut window_frames, mut window_bytes) = (Instant::now(), 0u32, 0u64);
    loop {
        let audio_age = feedback.audio_age_us();
        let wait = match receiver.next_due_us(audio_age) {
            Some(due) => Duration::from_micros(due.saturating_sub(wall_us())).min(Duration::from_millis(20)),
            None => Duration::from_millis(20),
        };
        match inputs.recv_timeout(wait) {
            Ok(DecodeInput::Stop) | Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            Ok(DecodeInput::RemoteSending(on)) => receiver.set_remote_sending(on, Instant::now()),
            Ok(DecodeInput::Progress { gop, at }) => receiver.on_progress(at, gop),
            Ok(DecodeInput::Record { gop, record, at, wall_us }) => {
                window_bytes += record.body().len() as u64 + 4;
                if let Err(e) = receiver.on_record(at, wall_us, gop, record.body()) {
                    tracing::debug!(error = %e, "dropped a video record");
                }
                if let Some(age) = receiver.decoded_age_us() {
                    feedback.set_video_age_us(wall_us, age);
                }
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        while let Some(shown) = receiver.poll_render(now, wall_us(), feedback.audio_age_us()) {
            window_frames += 1;
            if sink_failed {
                continue;
            }
            if let Err(e) = sink.write(&shown.picture, 30) {
                tracing::warn!(error = %e, "the video sink failed; pictures are dropped");
                lock(&stats).output_error = Some(e.to_string());
                sink_failed = true;
            }
        }
        if receiver.poll_keyframe_request(now) {
            let _ = control.try_send(MediaControl::KeyframeRequest);
        }
        let mut s = lock(&stats);
        s.receive = receiver.stats();
        s.receive_buffered_bytes = budget.held() as u64;
        if now.saturating_duration_since(window_start) >= Duration::from_secs(1) {
            s.receive_fps = window_frames;
            s.receive_bitrate = window_bytes * 8;
            (window_start, window_frames, window_bytes) = (now, 0, 0);
        }
    }
    if let Err(e) = sink.finish() {
        tracing::warn!(error = %e, "the video file could not be completed");
    }
}

/// The rate task: reads quinn's path stats when the [`RateLoop`] is due, hands it those and the
/// peer's reports, and gives the encoder the video share it decides.
async fn control_rate(
    conn: quinn::Connection,
    feedback: Arc<MediaFeedback>,
    encoder: std_mpsc::Sender<EncodeCommand>,
    stats: Arc<Mutex<VideoStats>>,
) {
    let mut rate = RateLoop::new(RateLimits::default(), Instant::now());
    loop {
        tokio::time::sleep_until(rate.poll_timeout().into()).await;
        if conn.close_reason().is_some() {
            return;
        }
        if let Some(loss) = feedback.take_peer_report() {
            rate.handle_report(loss);
        }
        let quic = conn.stats();
        let path = PathSample {
            rtt: quic.path.rtt,
            cwnd: quic.path.cwnd,
            sent_bytes: quic.udp_tx.bytes,
            lost_bytes: quic.path.lost_bytes,
        };
        if let Some(video) = rate.handle_tick(Instant::now(), path)
            && encoder.send(EncodeCommand::Bitrate(video)).is_err()
        {
            return;
        }
        lock(&stats).estimate_bps = rate.estimate();
    }
}
