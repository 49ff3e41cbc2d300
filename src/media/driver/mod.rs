//! The IO layer of a call's media: one tokio task per call, a thin driver of the call's sans-IO
//! [`MediaSession`]. It owns what does IO (the audio source and sink, the link's datagrams and
//! streams) and the Opus codec, hands the video's heavy work to two threads (`workers`) and its
//! streams to tasks (`streams`), does what the session asks, feeds back the results, and sleeps
//! until the session's next timeout or the next input. What happens when is the session's
//! business. A source or sink that cannot be opened does not stop the call: that direction is
//! simply off, and the reason shows in the stats.

pub(crate) mod streams;
mod workers;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::MediaStartError;
use super::audio::decode_playout;
use super::audio_processing::{CallAudioProcessing, EchoStats};
use super::codec::opus::{OpusDecoder, OpusEncoder, Pcm};
use super::config::{AudioConfig, VideoConfig};
use super::io::{AudioSink, AudioSource, NullSink, open_sink, open_source};
use super::session::{Input, MediaControl, MediaSession, Now, Output, REPORT_INTERVAL};
use super::stats::{AudioStats, MAX_BUFFERED, VideoStats};
use super::video::record_reader::RecordBudget;
use super::view::ViewFeed;
use crate::crypto::frame::FrameKeys;
use crate::media_link::MediaLink;
use crate::wall_clock::now_us as wall_us;
use streams::Incoming;
use workers::{EncodeTask, VideoWorkers};

/// Encoded records waiting for the stream writer; more means the path does not keep up.
const OUT_QUEUE: usize = 8;
/// Records read from the peer's streams, waiting for the media task.
const IN_QUEUE: usize = 64;
/// How often the stats the node reads are brought up to date.
const STATS_EVERY: Duration = Duration::from_millis(100);

/// Where a call's media comes from and goes to, and how it starts.
#[derive(Debug, Clone, Default)]
pub struct MediaConfig {
    /// The audio.
    pub audio: AudioConfig,
    /// The video.
    pub video: VideoConfig,
    /// The microphone starts muted.
    pub muted: bool,
    /// Our video starts on.
    pub video_on: bool,
    /// The peer's video starts on.
    pub remote_video_on: bool,
    /// Where the pictures go for the viewers (the node's feed; a fresh one nobody watches by
    /// default).
    pub view: ViewFeed,
}

/// What the user and the node tell a running call's media.
#[derive(Debug)]
enum Command {
    Muted(bool),
    Video(bool),
    RemoteVideo(bool),
    RemoteBandwidthPause(bool),
    KeyframeRequest,
}

/// A call's running media. Dropping it stops the task (and the video threads).
#[derive(Debug)]
pub struct CallMedia {
    audio_stats: Arc<Mutex<AudioStats>>,
    video_stats: Arc<Mutex<VideoStats>>,
    commands: mpsc::UnboundedSender<Command>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    view: ViewFeed,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> Now {
    Now { at: Instant::now(), wall_us: wall_us() }
}

impl CallMedia {
    /// Starts the call's media on `link`: audio both ways, video received always and sent when on.
    /// What the media asks of the peer (keyframes) goes to `control`, for the call's control stream.
    pub fn start(
        link: Arc<dyn MediaLink>,
        keys: &FrameKeys,
        config: MediaConfig,
        control: mpsc::Sender<MediaControl>,
    ) -> Result<Self, MediaStartError> {
        let codecs = (OpusEncoder::new(config.audio.bitrate)?, OpusDecoder::new()?);
        let audio_stats = Arc::new(Mutex::new(AudioStats {
            input: config.audio.input.to_string(),
            output: config.audio.output.to_string(),
            muted: config.muted,
            processing_mode: config.audio.processing,
            ..Default::default()
        }));
        let video_stats = Arc::new(Mutex::new(VideoStats {
            sending: config.video_on,
            remote_sending: config.remote_video_on,
            input: config.video.input.to_string(),
            output: config.video.output.to_string(),
            ..Default::default()
        }));
        let (results_tx, results) = mpsc::unbounded_channel();
        // This call's handle on the node's feed: clearing it at the end silences the workers too.
        let view = config.view.for_call();
        let workers = VideoWorkers::start(
            config.video.input.clone(),
            config.video.output.clone(),
            config.video.encoder,
            config.video.threads.max(1),
            results_tx.clone(),
            video_stats.clone(),
            view.clone(),
        )?;
        let t0 = now();
        let mut session =
            MediaSession::new(keys, config.audio.bitrate, config.muted, t0).with_video(config.video.sender_config());
        session.handle_input(t0, Input::SetVideo(config.video_on));
        session.handle_input(t0, Input::RemoteVideo(config.remote_video_on));
        video_stats.lock().unwrap_or_else(|p| p.into_inner()).send = session.video_counters().send;

        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (stop_tx, stop) = oneshot::channel();
        let task = MediaTask {
            link,
            session,
            codecs,
            config,
            audio_stats: audio_stats.clone(),
            video_stats: video_stats.clone(),
            workers,
            results,
            results_tx,
            control,
        };
        let task = tokio::spawn(task.run(commands_rx, stop));
        Ok(CallMedia { audio_stats, video_stats, commands, stop: Some(stop_tx), task: Some(task), view })
    }

    /// The audio's counters.
    pub fn audio_stats(&self) -> AudioStats {
        lock(&self.audio_stats).clone()
    }

    /// The video's counters.
    pub fn video_stats(&self) -> VideoStats {
        lock(&self.video_stats).clone()
    }

    /// Mutes or unmutes the microphone.
    pub fn set_muted(&self, muted: bool) {
        lock(&self.audio_stats).muted = muted;
        let _ = self.commands.send(Command::Muted(muted));
    }

    /// Our video on or off.
    pub fn set_video(&self, on: bool) {
        lock(&self.video_stats).sending = on;
        let _ = self.commands.send(Command::Video(on));
    }

    /// The peer's video on or off.
    pub fn set_remote_video(&self, on: bool) {
        lock(&self.video_stats).remote_sending = on;
        let _ = self.commands.send(Command::RemoteVideo(on));
    }

    /// The peer paused its video for bandwidth (`true`), or sends again.
    pub fn set_remote_bandwidth_pause(&self, paused: bool) {
        let _ = self.commands.send(Command::RemoteBandwidthPause(paused));
    }

    /// The peer asked for a keyframe.
    pub fn keyframe_requested(&self) {
        let _ = self.commands.send(Command::KeyframeRequest);
    }

    /// Stops: the audio sink is finished (a WAV file completed) before the task ends; the video
    /// file is completed by its thread just after.
    pub fn stop(mut self) -> Option<JoinHandle<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.view.clear();
        self.task.take()
    }
}

impl Drop for CallMedia {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            self.view.clear();
        }
    }
}

/// Everything the media task owns.
struct MediaTask {
    link: Arc<dyn MediaLink>,
    session: MediaSession,
    codecs: (OpusEncoder, OpusDecoder),
    config: MediaConfig,
    audio_stats: Arc<Mutex<AudioStats>>,
    video_stats: Arc<Mutex<VideoStats>>,
    workers: VideoWorkers,
    results: mpsc::UnboundedReceiver<Input>,
    results_tx: mpsc::UnboundedSender<Input>,
    control: mpsc::Sender<MediaControl>,
}

/// The audio devices (or files), as opened (a group call's media opens them alike).
pub(super) struct AudioIo {
    pub(super) source: Option<Box<dyn AudioSource>>,
    pub(super) sink: Box<dyn AudioSink>,
    /// The first frame was taken from the source, given to the sink (written down in the stats).
    pub(super) started: (bool, bool),
    /// Echo cancellation, noise suppression and gain control on the microphone, when on. It runs
    /// here, on the media task: the device callbacks only move samples through their rings.
    pub(super) processing: Option<CallAudioProcessing>,
    /// Frames captured (the echo statistics are written down once a second).
    pub(super) captured: u64,
}

impl AudioIo {
    /// 20 ms from the source (`None`: there is none), through the echo canceller, noise
    /// suppression and gain control when the call processes its microphone.
    pub(super) fn capture(&mut self) -> Option<Pcm> {
        let mut pcm = self.source.as_mut().map(|s| s.next_frame());
        if let (Some(processing), Some(pcm)) = (self.processing.as_mut(), pcm.as_mut()) {
            processing.captured(pcm);
            self.captured += 1;
        }
        pcm
    }

    /// Right after a [`AudioIo::capture`]: the echo canceller's statistics, once a second.
    pub(super) fn echo_stats_due(&mut self) -> Option<EchoStats> {
        let processing = self.processing.as_mut()?;
        (self.captured > 0 && self.captured.is_multiple_of(50)).then(|| processing.echo_stats())
    }

    /// Whether this capture (`got` a frame) is the source's first.
    pub(super) fn first_capture(&mut self, got: bool) -> bool {
        let first = got && !self.started.0;
        self.started.0 |= got;
        first
    }

    /// Writes 20 ms to the sink (the echo canceller's far end too); whether it was the first.
    pub(super) fn play(&mut self, pcm: &Pcm) -> bool {
        let first = !self.started.1;
        self.started.1 = true;
        if let Some(processing) = self.processing.as_mut() {
            processing.given_to_sink(pcm);
        }
        self.sink.write_frame(pcm);
        first
    }
}

/// Opens the audio source and sink (off the async threads: a device can block for a moment); one
/// that cannot be opened is written down in `stats` and that direction is off.
pub(super) async fn open_audio(config: &AudioConfig, stats: &Mutex<AudioStats>) -> AudioIo {
    let (input, output) = (config.input.clone(), config.output.clone());
    let opened = tokio::task::spawn_blocking(move || (open_source(&input), open_sink(&output))).await;
    let Ok((source, sink)) = opened else {
        return AudioIo { source: None, sink: Box::new(NullSink), started: (false, false), processing: None, captured: 0 };
    };
    let mut s = lock(stats);
    let source = match source {
        Ok(source) => Some(source),
        Err(e) => {
            tracing::warn!(error = %e, "no microphone: this call sends no audio");
            s.input_error = Some(e.to_string());
            None
        }
    };
    let mut sink: Box<dyn AudioSink> = match sink {
        Ok(sink) => sink,
        Err(e) => {
            tracing::warn!(error = %e, "no speaker: received audio is discarded");
            s.output_error = Some(e.to_string());
            Box::new(NullSink)
        }
    };
    let processing = (source.is_some() && config.processing.applies_to(&config.input))
        .then(|| CallAudioProcessing::new(sink.played_audio()));
    s.processing = processing.is_some();
    AudioIo { source, sink, started: (false, false), processing, captured: 0 }
}

impl MediaTask {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>, mut stop: oneshot::Receiver<()>) {
        let mut audio = open_audio(&self.config.audio, &self.audio_stats).await;
        let budget = RecordBudget::new(MAX_BUFFERED);
        let (records_tx, records_rx) = mpsc::channel(OUT_QUEUE);
        let (incoming_tx, mut incoming) = mpsc::channel(IN_QUEUE);
        let tasks = [
            tokio::spawn(streams::write_streams(self.link.clone(), records_rx, self.results_tx.clone())),
            tokio::spawn(streams::read_streams(self.link.clone(), incoming_tx, budget.clone())),
        ];
        let mut stats = StatsWindow::new(Instant::now());
        loop {
            // Do what the session asks until it has nothing before its next timeout.
            let wake = loop {
                match self.session.poll_output() {
                    Output::Timeout(at) => break at,
                    output => self.carry_out(output, &mut audio, &records_tx),
                }
            };
            tokio::select! {
                _ = &mut stop => break,
                Some(command) = commands.recv() => {
                    let input = match command {
                        Command::Muted(m) => Input::SetMuted(m),
                        Command::Video(on) => Input::SetVideo(on),
                        Command::RemoteVideo(on) => Input::RemoteVideo(on),
                        Command::RemoteBandwidthPause(p) => Input::RemoteBandwidthPause(p),
                        Command::KeyframeRequest => Input::KeyframeRequest,
                    };
                    self.session.handle_input(now(), input);
                }
                Some(result) = self.results.recv() => self.session.handle_input(now(), result),
                Some(incoming) = incoming.recv() => {
                    let input = match incoming {
                        Incoming::Record { gop, record } => Input::VideoRecord { gop, body: record.into_body() },
                        Incoming::Progress { gop } => Input::VideoProgress { gop },
                    };
                    self.session.handle_input(now(), input);
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    let n = now();
                    if self.session.needs_path(n.at) {
                        self.session.handle_input(n, Input::Path(self.link.path()));
                    }
                    self.session.handle_timeout(n);
                }
                datagram = self.link.read_datagram() => match datagram {
                    Ok(d) => self.session.handle_input(now(), Input::Datagram(d.to_vec())),
                    Err(_) => break,
                },
            }
            stats.update(self.as_view(), &budget, Instant::now());
        }
        for t in &tasks {
            t.abort();
        }
        audio.sink.finish();
        stats.update(self.as_view(), &budget, Instant::now() + REPORT_INTERVAL);
    }

    /// Does what one output says.
    fn carry_out(&mut self, output: Output, audio: &mut AudioIo, records: &mpsc::Sender<super::video::sender::Outgoing>) {
        match output {
            Output::CaptureAudio { capture_us } => {
                let pcm = audio.capture();
                if let Some(echo) = audio.echo_stats_due() {
                    lock(&self.audio_stats).echo = Some(echo);
                }
                if audio.first_capture(pcm.is_some()) {
                    lock(&self.audio_stats).input_started_us = Some(capture_us);
                }
                self.session.handle_input(now(), Input::CapturedAudio { pcm, capture_us });
            }
            Output::EncodeAudio(job) => {
                let opus = job.encode_with(&mut self.codecs.0);
                self.session.handle_input(now(), Input::EncodedAudio { job, opus });
            }
            Output::DecodeAudio(playout) => {
                let pcm = decode_playout(&mut self.codecs.1, &playout);
                self.session.handle_input(now(), Input::DecodedAudio(pcm));
            }
            Output::PlayAudio(pcm) => {
                if audio.play(&pcm) {
                    lock(&self.audio_stats).output_started_us = Some(wall_us());
                }
            }
            Output::Transmit(datagram) => {
                if let Err(e) = self.link.send_datagram(Bytes::from(datagram)) {
                    tracing::debug!(error = %e, "media datagram not sent");
                }
            }
            Output::CaptureVideo { format, stamp, capture_us } => {
                self.workers.encode(EncodeTask::Capture { format, stamp, capture_us })
            }
            Output::EncodeVideo(job) => self.workers.encode(EncodeTask::Encode(job)),
            Output::ReleaseEncoder => self.workers.encode(EncodeTask::Release),
            Output::SendRecord(record) => match records.try_send(record) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => self.session.handle_input(now(), Input::RecordDropped),
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            },
            Output::DecodeVideo(job) => self.workers.decode(job),
            Output::ShowVideo(picture) => self.workers.show(picture),
            Output::SendControl(message) => {
                let _ = self.control.try_send(message);
            }
            Output::Timeout(_) => {}
        }
    }

    fn as_view(&self) -> StatsView<'_> {
        StatsView {
            session: &self.session,
            link: self.link.as_ref(),
            audio: &self.audio_stats,
            video: &self.video_stats,
        }
    }
}

/// What the stats are read from.
struct StatsView<'a> {
    session: &'a MediaSession,
    link: &'a dyn MediaLink,
    audio: &'a Mutex<AudioStats>,
    video: &'a Mutex<VideoStats>,
}

/// When the stats were last brought up to date, and the audio's per-second window.
struct StatsWindow {
    next: Instant,
    window: Instant,
    last_sent: u64,
    last_received: u64,
}

impl StatsWindow {
    fn new(now: Instant) -> Self {
        StatsWindow { next: now, window: now, last_sent: 0, last_received: 0 }
    }

    /// Brings the stats up to date, at most every [`STATS_EVERY`].
    fn update(&mut self, view: StatsView<'_>, budget: &RecordBudget, now: Instant) {
        if now < self.next {
            return;
        }
        self.next = now + STATS_EVERY;
        let (send, receive) = (view.session.send_stats(), view.session.receive_stats());
        {
            let mut a = lock(view.audio);
            if now.saturating_duration_since(self.window) >= REPORT_INTERVAL {
                a.send_bitrate = send.bytes.saturating_sub(self.last_sent) * 8;
                a.receive_bitrate = receive.bytes.saturating_sub(self.last_received) * 8;
                (self.last_sent, self.last_received, self.window) = (send.bytes, receive.bytes, now);
                a.rtt_ms = view.link.rtt().as_secs_f64() * 1000.0;
            }
            a.send = send;
            a.receive = receive;
        }
        let c = view.session.video_counters();
        let mut v = lock(view.video);
        v.sending = c.sending;
        v.remote_sending = c.remote_sending;
        v.paused_for_bandwidth = c.paused_for_bandwidth;
        v.remote_paused_for_bandwidth = c.remote_paused_for_bandwidth;
        v.estimate_bps = view.session.estimate_bps();
        v.send = c.send;
        v.receive = c.receive;
        v.send_fps = c.send_fps;
        v.receive_fps = c.receive_fps;
        v.send_bitrate = c.send_bitrate;
        v.receive_bitrate = c.receive_bitrate;
        v.send_dropped = c.send_dropped;
        v.receive_buffered_bytes = budget.held() as u64;
    }
}
