//! A call's audio and video over one connection, for the simulator. [`MediaParty`] drives the
//! daemon's own `MediaSession` (audio and video senders and receivers, the rate loop, lip sync, the
//! keyframe policy) the way the media task of `src/media/driver` drives it: real Opus with a tone
//! for a microphone; the fake AV1 codec for the video (`media::codec::fake`: the test pattern's
//! stamp travels in the unit, so what is shown can be checked); records on GOP streams
//! ([`GopWriter`], [`GopReader`]), paced as the daemon paces them (its `PacedQueue`); keyframe requests on the control stream; the path's stats handed
//! in before each timeout. Codec jobs are done at once (the encode and decode threads take no
//! virtual time); an encoder that holds pictures back is [`MediaParty::with_encoder_lag`].
//!
//! It needs QUIC links ([`super::Sim::over_quic`]): video goes on streams, and the rate loop ticks
//! on the path's stats.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hail::call::signal::ControlMessage;
use hail::media::audio::decode_playout;
use hail::media::codec::av1::{EncodedFrame, VideoCodecError, VideoEncoder};
use hail::media::codec::fake::{FakeVideoDecoder, FakeVideoEncoder};
use hail::media::codec::opus::{OpusDecoder, OpusEncoder};
use hail::media::io::{AudioSource, ToneSource};
use hail::media::jitter::Playout;
use hail::media::rate::PathSample;
use hail::media::session::{Input, MediaControl, MediaSession, Now, Output};
use hail::media::video::Frame;
use hail::media::video::cpu_adaptation::VideoFormat;
use hail::media::video::encoder::{EncodeWorker, Encoded};
use hail::media::video::pacer::{Next, PacedQueue, Queued};
use hail::media::video::pattern;
use hail::media::video::sender::SenderConfig;

use super::gop_streams::{GopReader, GopWriter, VideoIn};
use super::{Party, Payload, StreamEvent, Transmit, WALL_EPOCH_US, call_keys, virtual_wall_us};

/// The video's message on the control stream: the receiver asks for a keyframe.
const KEYFRAME_REQUEST: u8 = 0x11;
/// What each picture's encoding took, as the CPU adaptation hears it: a quick encoder, the same on
/// every run (the fake encoder's real time is the machine's, and would make runs differ).
const ENCODE_TOOK: Duration = Duration::from_millis(5);
/// The picture sent: 320x180 at 30 fps.
const FORMAT: VideoFormat = VideoFormat { width: 320, height: 180, fps: 30 };

/// A picture shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shown {
    /// When.
    pub at: Instant,
    /// The pattern's frame counter, read back from the picture.
    pub counter: u32,
    /// How much later it was shown than the audio captured with it (the receiver's `av_sync_ms`).
    pub av_sync_ms: Option<f64>,
    /// Capture to show, ms (the stamp burned into the picture against the virtual wall clock).
    pub glass_to_glass_ms: Option<f64>,
}

/// A call's audio and video to party `peer` (see the module docs).
pub struct MediaParty {
    peer: usize,
    session: MediaSession,
    source: ToneSource,
    opus: (OpusEncoder, OpusDecoder),
    worker: EncodeWorker,
    decoder: FakeVideoDecoder,
    queue: PacedQueue,
    /// When the queue's next piece may go (it waits for the pacer).
    paced_at: Option<Instant>,
    /// Records go through the pacer (as the daemon sends them); off, each goes whole at once.
    paced: bool,
    writer: GopWriter,
    reader: GopReader,
    epoch: Instant,
    outbox: VecDeque<Payload>,
    /// Per playout tick: whether a frame was heard (decoded, or recovered with FEC).
    pub played: Vec<bool>,
    /// Every picture shown.
    pub shown: Vec<Shown>,
}

impl MediaParty {
    /// A party talking to party `peer` with audio and video (320x180, 30 fps) both ways, from
    /// `caller`'s side, from `start`.
    pub fn new(peer: usize, caller: bool, start: Instant) -> Self {
        let keys = call_keys(caller);
        let now = Now { at: start, wall_us: WALL_EPOCH_US };
        let mut session = MediaSession::new(&keys, 32_000, false, now)
            .with_video(SenderConfig { max_format: FORMAT, ..Default::default() });
        session.handle_input(now, Input::SetVideo(true));
        session.handle_input(now, Input::RemoteVideo(true));
        MediaParty {
            peer,
            session,
            source: ToneSource::new(if caller { 440.0 } else { 660.0 }),
            opus: (OpusEncoder::new(32_000).expect("Opus takes 32 kbps"), OpusDecoder::new().expect("Opus decoder")),
            worker: EncodeWorker::with_opener(FakeVideoEncoder::open),
            decoder: FakeVideoDecoder::new(),
            queue: PacedQueue::new(),
            paced_at: None,
            paced: true,
            writer: GopWriter::new(),
            reader: GopReader::new(),
            epoch: start,
            outbox: VecDeque::new(),
            played: Vec::new(),
            shown: Vec::new(),
        }
    }

    /// The encoder holds each picture back `frames` pictures before its unit comes out (as rav1e's
    /// lookahead does): pictures are that much older than their sound when they arrive.
    pub fn with_encoder_lag(mut self, frames: usize) -> Self {
        self.worker = EncodeWorker::with_opener(move |format, bitrate| {
            let held = HoldingBack { inner: FakeVideoEncoder::new(format, bitrate), held: VecDeque::new(), lag: frames };
            Ok(Box::new(held) as Box<dyn VideoEncoder>)
        });
        self
    }

    /// Records go to the link whole and at once, as before the daemon paced them: the anchor the
    /// pacer is measured against.
    pub fn unpaced(mut self) -> Self {
        self.paced = false;
        self
    }

    /// The session, for its counters.
    pub fn session(&self) -> &MediaSession {
        &self.session
    }

    /// The peer's streams that were reset, and those among them that held part of a record.
    pub fn streams_reset(&self) -> (u64, u64) {
        (self.reader.resets, self.reader.partial_records_dropped)
    }

    /// Pictures shown in `[from, to)`.
    pub fn shown_between(&self, from: Instant, to: Instant) -> usize {
        self.shown.iter().filter(|s| s.at >= from && s.at < to).count()
    }

    /// What this party got of its peer's call over `[from, to)`: pictures shown per second, the
    /// share of audio frames lost or concealed (against the jitter buffer's counts `audio_before`,
    /// taken at `from`: received, lost + concealed), and the 95th percentile of glass-to-glass
    /// latency (ms; infinite when no picture was shown).
    pub fn shown_and_heard(&self, from: Instant, to: Instant, audio_before: (u64, u64)) -> (f64, f64, f64) {
        let j = self.session().receive_stats().jitter;
        let (received, lost) = (j.received - audio_before.0, j.lost + j.concealed - audio_before.1);
        let mut g2g: Vec<f64> =
            self.shown.iter().filter(|s| s.at >= from && s.at < to).filter_map(|s| s.glass_to_glass_ms).collect();
        g2g.sort_by(f64::total_cmp);
        let p95 = g2g.get((g2g.len() * 95 / 100).min(g2g.len().saturating_sub(1))).copied().unwrap_or(f64::INFINITY);
        let fps = self.shown_between(from, to) as f64 / (to - from).as_secs_f64();
        (fps, lost as f64 / received.max(1) as f64, p95)
    }

    fn now(&self, at: Instant) -> Now {
        Now { at, wall_us: virtual_wall_us(self.epoch, at) }
    }

    /// Does what the session asks, then hands the link the pieces the pacer lets go now.
    fn drain(&mut self, at: Instant) {
        self.drain_session(at);
        self.paced_at = loop {
            match self.queue.poll(at) {
                Next::Piece(p) => self.outbox.extend(self.writer.write(p.gop, p.opens_gop, p.bytes)),
                Next::Wait(when) => break Some(when),
                Next::Empty => break None,
            }
        };
    }

    /// Does what the session asks, as the media task does, until it waits for its timeout.
    fn drain_session(&mut self, at: Instant) {
        let now = self.now(at);
        loop {
            let input = match self.session.poll_output() {
                Output::Timeout(_) => return,
                Output::CaptureAudio { capture_us } => Input::CapturedAudio { pcm: Some(self.source.next_frame()), capture_us },
                Output::EncodeAudio(job) => {
                    let opus = job.encode_with(&mut self.opus.0);
                    Input::EncodedAudio { job, opus }
                }
                Output::DecodeAudio(playout) => {
                    self.played.push(matches!(playout, Playout::Frame { .. } | Playout::Fec { .. }));
                    Input::DecodedAudio(decode_playout(&mut self.opus.1, &playout))
                }
                Output::PlayAudio(_) => continue,
                Output::Transmit(datagram) => {
                    self.outbox.push_back(Payload::Datagram(datagram));
                    continue;
                }
                Output::CaptureVideo { format, stamp, capture_us } => {
                    Input::CapturedVideo { picture: pattern::draw(format.width, format.height, stamp), capture_us }
                }
                Output::EncodeVideo(job) => {
                    let result = self.worker.encode(&job).map(|e| Encoded { took: ENCODE_TOOK, ..e });
                    Input::EncodedVideo { job, result }
                }
                Output::ReleaseEncoder => {
                    self.worker.release();
                    continue;
                }
                Output::SendRecord(record) if !self.paced => {
                    self.outbox.extend(self.writer.write(record.gop, record.new_gop, record.record));
                    continue;
                }
                Output::SendRecord(record) => {
                    let gop = record.gop;
                    if self.queue.push(record) != Queued::Overflow {
                        continue;
                    }
                    self.outbox.extend(self.writer.reset(gop));
                    Input::VideoStreamFailed
                }
                Output::DecodeVideo(job) => {
                    let result = self.decoder.decode(&job.av1);
                    Input::DecodedVideo { job, result }
                }
                Output::ShowVideo(picture) => {
                    let receive = self.session.video_counters().receive;
                    self.shown.push(Shown {
                        at,
                        counter: pattern::read(&picture.picture).map_or(u32::MAX, |s| s.counter),
                        av_sync_ms: receive.av_sync_ms,
                        glass_to_glass_ms: receive.glass_to_glass_ms,
                    });
                    continue;
                }
                Output::SendControl(MediaControl::KeyframeRequest) => {
                    self.outbox.push_back(Payload::Message(vec![KEYFRAME_REQUEST]));
                    continue;
                }
                Output::SendControl(MediaControl::BandwidthPause(paused)) => {
                    // As the node sends it: the signalling message on the control stream.
                    self.outbox.push_back(Payload::Message(ControlMessage::BandwidthPause { paused }.body()));
                    continue;
                }
            };
            self.session.handle_input(now, input);
        }
    }
}

impl Party for MediaParty {
    fn handle_datagram(&mut self, now: Instant, _from: usize, bytes: Vec<u8>) {
        self.session.handle_input(self.now(now), Input::Datagram(bytes));
        self.drain(now);
    }

    fn handle_message(&mut self, now: Instant, _from: usize, bytes: Vec<u8>) {
        if bytes == [KEYFRAME_REQUEST] {
            self.session.handle_input(self.now(now), Input::KeyframeRequest);
            self.drain(now);
        } else if let Ok(ControlMessage::BandwidthPause { paused }) = ControlMessage::decode(&bytes) {
            self.session.handle_input(self.now(now), Input::RemoteBandwidthPause(paused));
            self.drain(now);
        }
    }

    fn handle_stream(&mut self, now: Instant, _from: usize, stream: u64, event: StreamEvent) {
        for incoming in self.reader.handle(now, stream, event) {
            let input = match incoming {
                VideoIn::Record { gop, record } => Input::VideoRecord { gop, body: record.into_body() },
                VideoIn::Progress { gop } => Input::VideoProgress { gop },
            };
            self.session.handle_input(self.now(now), input);
        }
        self.drain(now);
    }

    fn handle_path(&mut self, now: Instant, _to: usize, path: PathSample) {
        self.session.handle_input(self.now(now), Input::Path(path));
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.session.handle_timeout(self.now(now));
        self.drain(now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        let payload = self.outbox.pop_front()?;
        Some(Transmit { to: self.peer, payload })
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let session = self.session.poll_timeout();
        Some(self.paced_at.map_or(session, |p| p.min(session)))
    }
}

/// The fake encoder, holding each unit back until `lag` pictures more went in (rav1e's lookahead).
struct HoldingBack {
    inner: FakeVideoEncoder,
    held: VecDeque<EncodedFrame>,
    lag: usize,
}

impl VideoEncoder for HoldingBack {
    fn name(&self) -> &'static str {
        "fake, holding back"
    }

    fn size(&self) -> (usize, usize) {
        self.inner.size()
    }

    fn encode(&mut self, frame: &Frame, keyframe: bool) -> Result<Vec<EncodedFrame>, VideoCodecError> {
        self.held.extend(self.inner.encode(frame, keyframe)?);
        let ready = self.held.len().saturating_sub(self.lag);
        Ok(self.held.drain(..ready).collect())
    }

    fn flush(&mut self) -> Result<Vec<EncodedFrame>, VideoCodecError> {
        Ok(self.held.drain(..).collect())
    }

    fn bitrate(&self) -> u32 {
        self.inner.bitrate()
    }

    fn set_bitrate(&mut self, bitrate: u32) -> Result<bool, VideoCodecError> {
        self.inner.set_bitrate(bitrate)
    }
}
