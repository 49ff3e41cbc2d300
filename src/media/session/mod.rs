//! A call's media, sans-IO: [`MediaSession`] owns the audio sender and receiver, the video
//! sender and receiver ([`video`]), the send-rate loop, lip sync, the keyframe policy and the
//! receiver reports, and decides everything on a clock it is handed. The IO layer (the media task
//! of `media::driver`, or the simulator in `tests/common/sim.rs`) feeds it inputs with [`Now`],
//! drains [`Output`]s until [`Output::Timeout`], does what they say (capture, encode, decode, play
//! and show, send), and feeds back the results. Nothing here reads a clock, spawns, locks or
//! touches a codec or a socket (str0m's `Rtc` and quinn-proto are the models).
//!
//! What crosses between audio and video stays inside: the peer's receiver reports reach the rate
//! loop, the age of the audio playing decides when a picture is shown, and the age of decoded
//! pictures holds the audio back (lip sync).

pub mod video;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::audio::{AudioEncodeJob, AudioReceiver, AudioSender, ReceiveStats, Received, SendStats};
use super::bitrate::RateLimits;
use super::codec::av1::VideoCodecError;
use super::codec::opus::{CodecError, Pcm};
use super::jitter::{FRAME, Playout};
use super::lip_sync::LipSync;
use super::rate::{PathSample, RateLoop};
use super::video::Frame;
use super::video::clock::FrameRate;
use super::video::cpu_adaptation::VideoFormat;
use super::video::encoder::{EncodeJob, Encoded};
use super::video::pattern::Stamp;
use super::video::receiver::{DecodeJob, Rendered};
use super::video::sender::{Outgoing, SenderConfig};
use crate::crypto::frame::FrameKeys;
pub use video::VideoCounters;

/// How often a receiver report goes to the peer (and lip sync is revised, and the per-second
/// counters close).
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// Playout runs this long after each send tick (half a frame: capture and playout do not collide).
const PLAY_OFFSET: Duration = Duration::from_millis(10);

/// The time, by both clocks: the monotonic one for timers, the wall clock (µs since the Unix
/// epoch) for capture times and lip sync, which the peer's clock is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time.
    pub at: Instant,
    /// The same instant on the wall clock, µs since the Unix epoch.
    pub wall_us: u64,
}

/// What the media asks of the peer over the call's control stream (the node carries it there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaControl {
    /// We cannot decode: send a keyframe.
    KeyframeRequest,
    /// Our video is on but the path has no room for it now (`true`), or has again (`false`): the
    /// peer expects no pictures meanwhile, so it neither asks for keyframes nor counts freezes.
    BandwidthPause(bool),
}

/// What the IO layer tells the session.
#[derive(Debug)]
pub enum Input {
    /// A media datagram from the peer (audio, or a receiver report).
    Datagram(Vec<u8>),
    /// The frame [`Output::CaptureAudio`] asked for (`None`: there is no microphone; nothing is sent).
    CapturedAudio {
        /// 20 ms of PCM.
        pcm: Option<Pcm>,
        /// When it was captured, as the output said.
        capture_us: u64,
    },
    /// [`Output::EncodeAudio`]'s job, encoded (or the encoder's refusal: the frame is not sent).
    EncodedAudio {
        /// The job.
        job: AudioEncodeJob,
        /// The Opus bytes.
        opus: Result<Vec<u8>, CodecError>,
    },
    /// The microphone is muted or not.
    SetMuted(bool),
    /// The path as QUIC sees it now: its RTT goes into the receiver reports, all of it into the
    /// rate loop. Hand one in before a [`MediaSession::handle_timeout`] that
    /// [`MediaSession::needs_path`].
    Path(PathSample),
    /// Our video on or off (the user's switch).
    SetVideo(bool),
    /// The peer says its video is on or off.
    RemoteVideo(bool),
    /// The peer says its video is paused for bandwidth (`true`) or sends again (`false`).
    RemoteBandwidthPause(bool),
    /// The picture [`Output::CaptureVideo`] asked for (`None`: the source had none this time).
    CapturedVideo {
        /// The picture.
        picture: Option<Frame>,
        /// When it was captured: by the source's own clock if it has one, else as the output said.
        capture_us: u64,
    },
    /// The video source has a frame rate of its own (a file, a camera mode): frame ticks come no
    /// faster than that (sent when the source opens, before its first picture).
    VideoSourceRate(FrameRate),
    /// The video source failed: no more pictures are asked of it.
    VideoSourceFailed,
    /// [`Output::EncodeVideo`]'s job, encoded (or the encoder's error: a new encoder and a
    /// keyframe follow).
    EncodedVideo {
        /// The job.
        job: EncodeJob,
        /// What the encoder made of it.
        result: Result<Encoded, VideoCodecError>,
    },
    /// A record could not be queued for its GOP stream (the path does not keep up): the GOP's tail
    /// is dropped and a new GOP starts.
    RecordDropped,
    /// A GOP stream could not be opened or written: a new GOP starts.
    VideoStreamFailed,
    /// The peer asked for a keyframe.
    KeyframeRequest,
    /// A whole record's body (after its length prefix) arrived on the peer's stream of `gop`.
    VideoRecord {
        /// The stream's GOP.
        gop: u32,
        /// The body.
        body: Vec<u8>,
    },
    /// Part of a record arrived on the stream of `gop`: slow is not stalled.
    VideoProgress {
        /// The stream's GOP.
        gop: u32,
    },
    /// [`Output::DecodeAudio`]'s playout, decoded (in the order they were asked for).
    DecodedAudio(Pcm),
    /// [`Output::DecodeVideo`]'s job, decoded.
    DecodedVideo {
        /// The job.
        job: DecodeJob,
        /// The pictures, or the decoder's error (a keyframe request follows).
        result: Result<Vec<Frame>, VideoCodecError>,
    },
}

/// What the session asks of the IO layer, in order.
#[derive(Debug, PartialEq)]
pub enum Output {
    /// Take the next 20 ms from the microphone and hand it back as [`Input::CapturedAudio`].
    CaptureAudio {
        /// The capture time to stamp it with, µs since the Unix epoch.
        capture_us: u64,
    },
    /// Encode this and hand the bytes back as [`Input::EncodedAudio`].
    EncodeAudio(AudioEncodeJob),
    /// Decode this (`media::audio::decode_playout`) and hand the 20 ms it gives back as
    /// [`Input::DecodedAudio`], at once: playout waits for it.
    DecodeAudio(Playout),
    /// Play these 20 ms, now (decoded, and stretched when the jitter buffer moves its delay).
    PlayAudio(Pcm),
    /// Send this datagram to the peer (datagrams go before any stream).
    Transmit(Vec<u8>),
    /// Take a picture from the video source and hand it back as [`Input::CapturedVideo`].
    CaptureVideo {
        /// The size and rate to deliver (the encoder rescales others).
        format: VideoFormat,
        /// What a drawing source burns into the picture.
        stamp: Stamp,
        /// The capture time to stamp it with, µs since the Unix epoch (a source with a clock of
        /// its own answers with its own time).
        capture_us: u64,
    },
    /// Encode this and hand the result back as [`Input::EncodedVideo`].
    EncodeVideo(EncodeJob),
    /// Video is off: drop the encoder (its memory and threads); the next job opens a new one.
    ReleaseEncoder,
    /// Send this record on its GOP's stream, below the control stream and the datagrams in
    /// priority: a record that opens a new GOP opens a new stream and resets the previous one (its
    /// unsent backlog is dropped). A record that cannot be queued is [`Input::RecordDropped`].
    SendRecord(Outgoing),
    /// Decode this and hand the result back as [`Input::DecodedVideo`], in order.
    DecodeVideo(DecodeJob),
    /// Show this picture now.
    ShowVideo(Rendered),
    /// Send this to the peer over the call's control stream.
    SendControl(MediaControl),
    /// Nothing more until this time, or until an input.
    Timeout(Instant),
}

/// The session.
#[derive(Debug)]
pub struct MediaSession {
    sender: AudioSender,
    receiver: AudioReceiver,
    video: video::VideoHalf,
    keys: FrameKeys,
    lip_sync: LipSync,
    rate: RateLoop,
    /// The path as last handed in (none yet: the rate loop waits).
    path: Option<PathSample>,
    /// The last time handed in (the video's show times are wall-clock times).
    last: Now,
    next_send: Instant,
    next_play: Instant,
    /// Playout ticks that came and have not been played (waiting for a decode).
    plays_due: u32,
    next_report: Instant,
    outputs: VecDeque<Output>,
}

impl MediaSession {
    /// A call's media with the call's frame keys, sending audio at `bitrate` bps, starting at
    /// `now` (the first frame is captured at once, the first playout half a frame later). Video
    /// is off both ways until [`Input::SetVideo`] and [`Input::RemoteVideo`] say otherwise.
    pub fn new(keys: &FrameKeys, bitrate: i32, muted: bool, now: Now) -> Self {
        let mut sender = AudioSender::new(keys, bitrate);
        sender.set_muted(muted);
        MediaSession {
            sender,
            receiver: AudioReceiver::new(keys),
            video: video::VideoHalf::new(keys, SenderConfig::default(), now.at),
            keys: keys.clone(),
            lip_sync: LipSync::new(),
            rate: RateLoop::new(RateLimits::default(), now.at),
            path: None,
            last: now,
            next_send: now.at,
            next_play: now.at + PLAY_OFFSET,
            plays_due: 0,
            next_report: now.at + REPORT_INTERVAL,
            outputs: VecDeque::new(),
        }
    }

    /// The same session, encoding video with `config` (the default is the top of the CPU ladder
    /// with the default encoder). Call before the first input.
    pub fn with_video(mut self, config: SenderConfig) -> Self {
        self.video = video::VideoHalf::new(&self.keys, config, self.last.at);
        self
    }

    /// Takes an input.
    pub fn handle_input(&mut self, now: Now, input: Input) {
        self.last = now;
        let out = &mut self.outputs;
        match input {
            Input::Datagram(bytes) => match self.receiver.on_datagram(&bytes, now.at) {
                Ok(Received::Report(report)) => {
                    self.rate.handle_report(report.loss_permille);
                    self.sender.on_peer_report(report);
                }
                Ok(Received::Audio) => {}
                Err(e) => tracing::debug!(error = %e, "dropped a media datagram"),
            },
            Input::CapturedAudio { pcm: Some(pcm), capture_us } => {
                out.push_back(Output::EncodeAudio(self.sender.begin(&pcm, capture_us)));
            }
            Input::CapturedAudio { pcm: None, .. } => {}
            Input::EncodedAudio { job, opus } => match opus {
                Ok(opus) => out.push_back(Output::Transmit(self.sender.finish(&job, opus))),
                Err(e) => tracing::warn!(error = %e, "audio encoding failed"),
            },
            Input::SetMuted(muted) => self.sender.set_muted(muted),
            Input::Path(path) => self.path = Some(path),
            Input::SetVideo(on) => self.video.set_sending(on, now.at, out),
            Input::RemoteVideo(on) => self.video.set_remote_sending(on, now.at),
            Input::RemoteBandwidthPause(paused) => self.video.set_remote_paused(paused, now.at),
            Input::CapturedVideo { picture, capture_us } => self.video.captured(now.at, picture, capture_us, out),
            Input::VideoSourceFailed => self.video.source_failed(),
            Input::VideoSourceRate(rate) => self.video.source_rate(rate),
            Input::EncodedVideo { job, result } => self.video.encoded(now, &job, result, out),
            Input::RecordDropped => self.video.record_dropped(),
            Input::VideoStreamFailed => self.video.stream_failed(),
            Input::KeyframeRequest => self.video.keyframe_requested(now.at),
            Input::VideoRecord { gop, body } => self.video.record(now, gop, &body, out),
            Input::VideoProgress { gop } => self.video.progress(now.at, gop),
            Input::DecodedAudio(pcm) => {
                self.receiver.decoded(&pcm);
                self.play_audio(now);
            }
            Input::DecodedVideo { job, result } => {
                if let Some(age) = self.video.decoded(now.at, &job, result) {
                    self.lip_sync.handle_video_decoded(now.wall_us, age);
                }
                self.video.render(now, self.receiver.playout_age_us(), out);
            }
        }
    }

    /// Plays the ticks due: 20 ms each from what is decoded, asking for the next frame to decode
    /// (and waiting for it) whenever that does not cover a tick. A frame played shorter makes the
    /// next one due sooner; one played longer covers a tick more.
    fn play_audio(&mut self, now: Now) {
        while self.plays_due > 0 {
            if let Some(pcm) = self.receiver.next_frame() {
                self.outputs.push_back(Output::PlayAudio(pcm));
                self.plays_due -= 1;
                continue;
            }
            if self.receiver.decoding() > 0 {
                return;
            }
            let playout = self.receiver.playout(now.at, now.wall_us);
            if let Some(age) = self.receiver.playout_age_us() {
                self.lip_sync.handle_audio_played(age);
            }
            self.outputs.push_back(Output::DecodeAudio(playout));
        }
    }

    /// Whether the tick at `now` reads the path (the rate loop or a receiver report is due): hand
    /// [`Input::Path`] in first then, and only then (reading QUIC's stats is not free).
    pub fn needs_path(&self, now: Instant) -> bool {
        self.rate.poll_timeout() <= now || self.next_report <= now
    }

    /// Runs every tick due by `now` (a clock that fell behind catches up with all of them at once,
    /// as a stalled media task does).
    pub fn handle_timeout(&mut self, now: Now) {
        self.last = now;
        while self.next_send <= now.at {
            // The capture time of a late tick is its own, not now.
            let late = now.at.saturating_duration_since(self.next_send).as_micros() as u64;
            self.outputs.push_back(Output::CaptureAudio { capture_us: now.wall_us.saturating_sub(late) });
            self.next_send += FRAME;
        }
        while self.next_play <= now.at {
            self.plays_due += 1;
            self.next_play += FRAME;
        }
        self.play_audio(now);
        if let Some(path) = self.path
            && self.rate.poll_timeout() <= now.at
            && let Some(video) = self.rate.handle_tick(now.at, path)
        {
            self.video.set_budget(video, now.at, &mut self.outputs);
        }
        self.video.handle_timeout(now, &mut self.outputs);
        self.video.render(now, self.receiver.playout_age_us(), &mut self.outputs);
        while self.next_report <= now.at {
            // Lip sync, once a second: when the peer's pictures are ready later than its sound
            // plays, the jitter buffer holds the sound that much longer.
            let delay = self.lip_sync.sync_delay(now.wall_us, self.receiver.target_delay());
            self.receiver.set_sync_delay(delay);
            let rtt = self.path.map_or(Duration::ZERO, |p| p.rtt);
            let rtt_ms = rtt.as_millis().min(u128::from(u16::MAX)) as u16;
            let report = self.receiver.report(rtt_ms);
            self.outputs.push_back(Output::Transmit(self.sender.report(&report)));
            self.video.close_window(REPORT_INTERVAL);
            self.next_report += REPORT_INTERVAL;
        }
    }

    /// The next thing to do; [`Output::Timeout`] when there is nothing until then.
    pub fn poll_output(&mut self) -> Output {
        self.outputs.pop_front().unwrap_or_else(|| Output::Timeout(self.poll_timeout()))
    }

    /// When [`MediaSession::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        let mut at = self.next_send.min(self.next_play).min(self.next_report);
        if self.path.is_some() {
            at = at.min(self.rate.poll_timeout());
        }
        match self.video.poll_timeout(self.last, self.receiver.playout_age_us()) {
            Some(video) => at.min(video),
            None => at,
        }
    }

    /// How old the audio playing now is (`wall − capture`, µs), once a frame has played.
    pub fn audio_age_us(&self) -> Option<i64> {
        self.receiver.playout_age_us()
    }

    /// The audio sender's counters.
    pub fn send_stats(&self) -> SendStats {
        self.sender.stats()
    }

    /// The audio receiver's counters.
    pub fn receive_stats(&self) -> ReceiveStats {
        self.receiver.stats()
    }

    /// The video's counters and switches.
    pub fn video_counters(&self) -> VideoCounters {
        self.video.counters()
    }

    /// The rate loop's estimate of the path, bps (audio and video together).
    pub fn estimate_bps(&self) -> u32 {
        self.rate.estimate()
    }

    /// Whether the microphone is muted.
    pub fn muted(&self) -> bool {
        self.sender.muted()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::audio::decode_playout;
    use crate::media::codec::fake::{FakeOpusDecoder, FakeOpusEncoder};

    const WALL: u64 = 1_796_083_200_000_000;

    fn now(t0: Instant, d: Duration) -> Now {
        Now { at: t0 + d, wall_us: WALL + d.as_micros() as u64 }
    }

    /// Drains `s` like a driver with fake codecs and a constant tone: returns the datagrams sent
    /// and how many ticks played a decoded frame.
    fn drive(
        s: &mut MediaSession,
        n: Now,
        enc: &mut FakeOpusEncoder,
        dec: &mut FakeOpusDecoder,
    ) -> (Vec<Vec<u8>>, usize) {
        let (mut sent, mut played) = (Vec::new(), 0);
        loop {
            match s.poll_output() {
                Output::CaptureAudio { capture_us } => {
                    s.handle_input(n, Input::CapturedAudio { pcm: Some([1000; 960]), capture_us })
                }
                Output::EncodeAudio(job) => {
                    let opus = Ok(enc.encode(&job.pcm));
                    s.handle_input(n, Input::EncodedAudio { job, opus });
                }
                Output::DecodeAudio(p) => {
                    if matches!(p, Playout::Frame { .. }) {
                        played += 1;
                    }
                    s.handle_input(n, Input::DecodedAudio(decode_playout(dec, &p)));
                }
                Output::PlayAudio(_) => {}
                Output::Transmit(d) => sent.push(d),
                Output::Timeout(_) => return (sent, played),
                other => panic!("a session without video asked for {other:?}"),
            }
        }
    }

    #[test]
    fn two_sessions_talk_frame_for_frame_and_report_once_a_second() {
        let t0 = Instant::now();
        let (ka, kb) = (FrameKeys::new([1; 32], [2; 32], true, b"h"), FrameKeys::new([1; 32], [2; 32], false, b"h"));
        let mut a = MediaSession::new(&ka, 32_000, false, now(t0, Duration::ZERO));
        let mut b = MediaSession::new(&kb, 32_000, false, now(t0, Duration::ZERO));
        let (mut ea, mut da, mut eb, mut db) =
            (FakeOpusEncoder::new(), FakeOpusDecoder::default(), FakeOpusEncoder::new(), FakeOpusDecoder::default());
        let (mut a_sent, mut b_played) = (0, 0);
        // Two seconds, in 10 ms steps; what a sends arrives at b 10 ms later.
        let mut in_flight: Vec<Vec<u8>> = Vec::new();
        for step in 0..200u64 {
            let n = now(t0, Duration::from_millis(10 * step));
            for d in in_flight.drain(..) {
                b.handle_input(n, Input::Datagram(d));
            }
            a.handle_timeout(n);
            let (sent, _) = drive(&mut a, n, &mut ea, &mut da);
            a_sent += sent.len();
            in_flight = sent;
            b.handle_timeout(n);
            let (_, played) = drive(&mut b, n, &mut eb, &mut db);
            b_played += played;
        }
        // 100 frames (every 20 ms) and two receiver reports (at 1 s and 2 s: the last one is at
        // the final step's edge, 1.99 s, so one). b starts playing once the first frame has
        // waited out its target: 40 ms, and 105 ms for the copies a call starts with (seven
        // frames), and then plays one a tick.
        assert_eq!(a_sent, 100 + 1, "frames and reports sent");
        assert!(b_played >= 91, "b played {b_played} of 100 frames");
        assert_eq!(b.receive_stats().jitter.lost, 0);
    }

    #[test]
    fn a_late_clock_catches_up_every_tick_and_stamps_each_capture_with_its_own_time() {
        let t0 = Instant::now();
        let k = FrameKeys::new([1; 32], [2; 32], true, b"h");
        let mut s = MediaSession::new(&k, 32_000, true, now(t0, Duration::ZERO));
        // The task wakes 100 ms late: five sends, five playouts, in one go.
        s.handle_timeout(now(t0, Duration::from_millis(100)));
        let mut captures = Vec::new();
        let (mut playouts, mut played) = (0, 0);
        loop {
            match s.poll_output() {
                Output::CaptureAudio { capture_us } => captures.push(capture_us - WALL),
                Output::DecodeAudio(_) => {
                    playouts += 1;
                    s.handle_input(now(t0, Duration::from_millis(100)), Input::DecodedAudio([0; 960]));
                }
                Output::PlayAudio(_) => played += 1,
                Output::Timeout(t) => {
                    assert_eq!(t, t0 + Duration::from_millis(110), "the next tick is the next play tick");
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(captures, [0, 20_000, 40_000, 60_000, 80_000, 100_000]);
        assert_eq!((playouts, played), (5, 5), "each tick decoded and played");
        // Muted: what is encoded is silence, and the datagram says so.
        s.handle_input(
            now(t0, Duration::from_millis(100)),
            Input::CapturedAudio { pcm: Some([500; 960]), capture_us: 1 },
        );
        let Output::EncodeAudio(job) = s.poll_output() else { panic!("an encode job") };
        assert!(job.muted && job.pcm.iter().all(|x| *x == 0));
    }

    // ---- video ----

    use crate::media::codec::fake::FakeVideoDecoder;
    use crate::media::rate::PathSample;
    use crate::media::video::encoder::EncodeWorker;
    use crate::media::video::pattern;
    use crate::media::codec::fake::FakeVideoEncoder;

    /// One side's codecs and what its session asked for.
    struct Side {
        session: MediaSession,
        opus: (FakeOpusEncoder, FakeOpusDecoder),
        encoder: EncodeWorker,
        decoder: FakeVideoDecoder,
        datagrams: Vec<Vec<u8>>,
        records: Vec<Outgoing>,
        controls: Vec<MediaControl>,
        /// The pauses for bandwidth this side said ([`run_paced`] collects them).
        told: Vec<bool>,
        shown: Vec<Rendered>,
        captures: usize,
        released: usize,
    }

    fn small() -> SenderConfig {
        SenderConfig { max_format: VideoFormat { width: 320, height: 180, fps: 30 }, ..Default::default() }
    }

    fn path() -> PathSample {
        PathSample { rtt: Duration::from_millis(20), cwnd: 1_000_000, sent_bytes: 0, lost_bytes: 0, acked_bytes: None }
    }

    impl Side {
        fn new(caller: bool, video_on: bool, n: Now) -> Self {
            let keys = FrameKeys::new([1; 32], [2; 32], caller, b"h");
            let mut session = MediaSession::new(&keys, 32_000, false, n).with_video(small());
            session.handle_input(n, Input::SetVideo(video_on));
            session.handle_input(n, Input::RemoteVideo(true));
            Side {
                session,
                opus: (FakeOpusEncoder::new(), FakeOpusDecoder::default()),
                encoder: EncodeWorker::with_opener(FakeVideoEncoder::open),
                decoder: FakeVideoDecoder::new(),
                datagrams: Vec::new(),
                records: Vec::new(),
                controls: Vec::new(),
                told: Vec::new(),
                shown: Vec::new(),
                captures: 0,
                released: 0,
            }
        }

        /// A tick at `n` with `path`, then everything it asks, as a driver with instant workers.
        fn tick(&mut self, n: Now, path: PathSample) {
            self.session.handle_input(n, Input::Path(path));
            self.session.handle_timeout(n);
            self.drain(n);
        }

        fn drain(&mut self, n: Now) {
            loop {
                match self.session.poll_output() {
                    Output::CaptureAudio { capture_us } => {
                        self.session.handle_input(n, Input::CapturedAudio { pcm: Some([800; 960]), capture_us })
                    }
                    Output::EncodeAudio(job) => {
                        let opus = Ok(self.opus.0.encode(&job.pcm));
                        self.session.handle_input(n, Input::EncodedAudio { job, opus });
                    }
                    Output::DecodeAudio(p) => {
                        let pcm = decode_playout(&mut self.opus.1, &p);
                        self.session.handle_input(n, Input::DecodedAudio(pcm));
                    }
                    Output::PlayAudio(_) => {}
                    Output::Transmit(d) => self.datagrams.push(d),
                    Output::CaptureVideo { format, stamp, capture_us } => {
                        self.captures += 1;
                        let picture = pattern::draw(format.width, format.height, stamp);
                        self.session.handle_input(n, Input::CapturedVideo { picture, capture_us });
                    }
                    Output::EncodeVideo(job) => {
                        let result = self.encoder.encode(&job);
                        self.session.handle_input(n, Input::EncodedVideo { job, result });
                    }
                    Output::ReleaseEncoder => {
                        self.released += 1;
                        self.encoder.release();
                    }
                    Output::SendRecord(r) => self.records.push(r),
                    Output::DecodeVideo(job) => {
                        let result = self.decoder.decode(&job.av1);
                        self.session.handle_input(n, Input::DecodedVideo { job, result });
                    }
                    Output::ShowVideo(r) => self.shown.push(r),
                    Output::SendControl(c) => self.controls.push(c),
                    Output::Timeout(_) => return,
                }
            }
        }

        /// Hands `other`'s datagrams and records to this side (the record body after its prefix),
        /// except the records `drop` picks.
        fn receive(&mut self, n: Now, other: &mut Side, mut drop: impl FnMut(&Outgoing) -> bool) {
            for d in std::mem::take(&mut other.datagrams) {
                self.session.handle_input(n, Input::Datagram(d));
            }
            for r in std::mem::take(&mut other.records) {
                if !drop(&r) {
                    self.session.handle_input(n, Input::VideoRecord { gop: r.gop, body: r.record[4..].to_vec() });
                }
            }
            self.drain(n);
        }
    }

    /// Runs alice (sending video) and bob (receiving) for `steps` of 5 ms from `from`; what alice
    /// sends reaches bob 5 ms later, and bob's datagrams and control messages reach alice.
    fn run(alice: &mut Side, bob: &mut Side, t0: Instant, from: u64, steps: u64, mut drop: impl FnMut(&Outgoing) -> bool) {
        for step in from..from + steps {
            let n = now(t0, Duration::from_millis(5 * step));
            bob.receive(n, alice, &mut drop);
            alice.receive(n, bob, |_| false);
            for c in std::mem::take(&mut bob.controls) {
                assert_eq!(c, MediaControl::KeyframeRequest);
                alice.session.handle_input(n, Input::KeyframeRequest);
            }
            alice.tick(n, path());
            bob.tick(n, path());
        }
    }

    #[test]
    fn video_crosses_frame_for_frame_and_is_shown_in_step_with_the_audio() {
        let t0 = Instant::now();
        let (mut alice, mut bob) = (Side::new(true, true, now(t0, Duration::ZERO)), Side::new(false, false, now(t0, Duration::ZERO)));
        run(&mut alice, &mut bob, t0, 0, 600, |_| false); // 3 s
        // 30 fps for 3 s.
        assert!((89..=91).contains(&alice.captures), "{} captures", alice.captures);
        let sent = alice.session.video_counters();
        assert_eq!(sent.send.frames as usize, alice.captures);
        assert_eq!(sent.send.keyframes, 1, "one GOP on a clean path");
        assert!((29..=31).contains(&sent.send_fps), "{sent:?}");
        let got = bob.session.video_counters();
        assert_eq!(got.receive.frames_decoded, sent.send.frames, "{got:?}");
        assert!(bob.shown.len() >= 85, "bob was shown {} pictures", bob.shown.len());
        assert!(bob.shown.windows(2).all(|w| w[1].frame == w[0].frame + 1), "in order, none missing");
        assert_eq!(bob.captures, 0, "bob's video is off: nothing captured");
        // Lip sync: each picture is shown when the audio captured with it plays.
        let sync = got.receive.av_sync_ms.expect("measured");
        assert!(sync.abs() <= 25.0, "A/V gap {sync} ms");
        assert!(bob.controls.is_empty() && got.receive.keyframe_requests == 0);
    }

    #[test]
    fn a_source_with_its_own_25_fps_is_asked_25_times_a_second_and_encoded_at_25_fps() {
        let t0 = Instant::now();
        let (mut alice, mut bob) = (Side::new(true, true, now(t0, Duration::ZERO)), Side::new(false, false, now(t0, Duration::ZERO)));
        alice.session.handle_input(now(t0, Duration::ZERO), Input::VideoSourceRate(FrameRate::new(25, 1).unwrap()));
        run(&mut alice, &mut bob, t0, 0, 600, |_| false); // 3 s
        assert!((74..=76).contains(&alice.captures), "{} captures in 3 s", alice.captures);
        let sent = alice.session.video_counters();
        assert_eq!(sent.send.target_fps, 25, "{sent:?}");
        assert!((24..=26).contains(&sent.send_fps), "{sent:?}");
    }

    #[test]
    fn a_lost_record_brings_a_keyframe_request_and_a_fresh_gop() {
        let t0 = Instant::now();
        let (mut alice, mut bob) = (Side::new(true, true, now(t0, Duration::ZERO)), Side::new(false, false, now(t0, Duration::ZERO)));
        // Frame 10 never arrives.
        run(&mut alice, &mut bob, t0, 0, 400, |r| r.frame == 10);
        let got = bob.session.video_counters();
        assert!(got.receive.keyframe_requests >= 1, "{got:?}");
        let sent = alice.session.video_counters();
        assert!(sent.send.keyframe_requests >= 1 && sent.send.keyframes >= 2, "{sent:?}");
        let last = bob.shown.last().expect("pictures after the new GOP").frame;
        assert!(last > 40, "shown up to frame {last}");
        // Nothing between the gap and the keyframe that answered it was shown.
        let resumed = bob.shown.iter().map(|r| r.frame).find(|f| *f > 10).unwrap();
        assert!(resumed > 11, "frame {resumed} depends on the lost one");
    }

    #[test]
    fn video_off_or_no_room_on_the_path_stops_capture_and_drops_the_encoder() {
        let t0 = Instant::now();
        let n0 = now(t0, Duration::ZERO);
        let mut alice = Side::new(true, true, n0);
        for step in 0..100 {
            alice.tick(now(t0, Duration::from_millis(5 * step)), path());
        }
        let before = alice.captures;
        assert!(before >= 15, "{before} captures in 0.5 s");
        let n = now(t0, Duration::from_millis(500));
        alice.session.handle_input(n, Input::SetVideo(false));
        alice.drain(n);
        assert_eq!(alice.released, 1, "the encoder goes with the video");
        for step in 100..300 {
            alice.tick(now(t0, Duration::from_millis(5 * step)), path());
        }
        assert_eq!(alice.captures, before, "nothing captured while off");
        assert_eq!(alice.session.video_counters().send_fps, 0);
        // On again, on a path whose congestion window leaves no room for video.
        let n = now(t0, Duration::from_millis(1500));
        alice.session.handle_input(n, Input::SetVideo(true));
        let narrow = PathSample { rtt: Duration::from_millis(500), cwnd: 2_000, ..path() };
        for step in 300..700 {
            alice.tick(now(t0, Duration::from_millis(5 * step)), narrow);
        }
        let c = alice.session.video_counters();
        assert!(c.paused_for_bandwidth, "{c:?}");
        assert_eq!(alice.released, 2, "the pause drops the encoder too");
        let paused_at = alice.captures;
        for step in 700..900 {
            alice.tick(now(t0, Duration::from_millis(5 * step)), narrow);
        }
        assert_eq!(alice.captures, paused_at, "nothing captured while the path has no room");
        assert!(alice.session.estimate_bps() < 100_000);
    }

    /// Alice (sending video) and Bob for the 5 ms `steps`, Alice's path as `alice_path` gives it;
    /// Bob's keyframe requests reach Alice, and Alice's pause messages reach Bob only if `tell` (a
    /// peer that predates them hears nothing).
    fn run_paced(alice: &mut Side, bob: &mut Side, t0: Instant, steps: std::ops::Range<u64>, alice_path: PathSample, tell: bool) {
        for step in steps {
            let n = now(t0, Duration::from_millis(5 * step));
            bob.receive(n, alice, |_| false);
            alice.receive(n, bob, |_| false);
            for c in std::mem::take(&mut bob.controls) {
                assert_eq!(c, MediaControl::KeyframeRequest);
                alice.session.handle_input(n, Input::KeyframeRequest);
            }
            for c in std::mem::take(&mut alice.controls) {
                match c {
                    MediaControl::BandwidthPause(paused) if tell => {
                        alice.told.push(paused);
                        bob.session.handle_input(n, Input::RemoteBandwidthPause(paused));
                    }
                    MediaControl::BandwidthPause(paused) => alice.told.push(paused),
                    // Bob sends no video: Alice's requests for it go nowhere.
                    MediaControl::KeyframeRequest => {}
                }
            }
            alice.tick(n, alice_path);
            bob.tick(n, path());
        }
    }

    #[test]
    fn a_pause_for_bandwidth_is_told_and_the_peer_neither_asks_for_keyframes_nor_counts_freezes() {
        let narrow = PathSample { rtt: Duration::from_millis(500), cwnd: 2_000, ..path() };
        for tell in [true, false] {
            let t0 = Instant::now();
            let n0 = now(t0, Duration::ZERO);
            let (mut alice, mut bob) = (Side::new(true, true, n0), Side::new(false, false, n0));
            run_paced(&mut alice, &mut bob, t0, 0..200, path(), tell);
            assert!(bob.shown.len() >= 25, "pictures flow first: {}", bob.shown.len());
            assert!(alice.told.is_empty(), "nothing to tell while video flows: {:?}", alice.told);
            // The path narrows: Alice pauses her video, and says so once.
            run_paced(&mut alice, &mut bob, t0, 200..400, narrow, tell);
            assert!(alice.session.video_counters().paused_for_bandwidth);
            assert_eq!(alice.told, [true]);
            let before = bob.session.video_counters().receive;
            run_paced(&mut alice, &mut bob, t0, 400..1000, narrow, tell);
            let during = bob.session.video_counters();
            assert_eq!(during.remote_paused_for_bandwidth, tell, "{during:?}");
            assert!(during.remote_sending, "the peer's switch is still on");
            let asked = during.receive.keyframe_requests - before.keyframe_requests;
            if tell {
                assert_eq!(asked, 0, "3 s of a told pause: no keyframe requests");
                assert_eq!(during.receive.freezes, before.freezes, "and no freeze");
            } else {
                assert!(asked >= 5, "untold, the pause is a stall: {asked} requests in 3 s");
            }
            // Room again (the estimate grows back 8 % a report): pictures, and Bob hears of it.
            let shown = bob.shown.len();
            run_paced(&mut alice, &mut bob, t0, 1000..5000, path(), tell);
            assert!(!alice.session.video_counters().paused_for_bandwidth);
            assert_eq!(alice.told, [true, false]);
            assert!(!bob.session.video_counters().remote_paused_for_bandwidth);
            assert!(bob.shown.len() > shown + 30, "pictures again: {} → {}", shown, bob.shown.len());
        }
    }

    #[test]
    fn switched_on_while_the_path_has_no_room_the_video_says_it_is_paused() {
        let t0 = Instant::now();
        let n0 = now(t0, Duration::ZERO);
        let mut alice = Side::new(true, false, n0);
        let narrow = PathSample { rtt: Duration::from_millis(500), cwnd: 2_000, ..path() };
        for step in 0..600 {
            alice.tick(now(t0, Duration::from_millis(5 * step)), narrow);
        }
        assert!(alice.session.video_counters().paused_for_bandwidth);
        assert!(alice.controls.iter().all(|c| *c == MediaControl::KeyframeRequest), "video off: nothing said");
        alice.controls.clear();
        let n = now(t0, Duration::from_millis(3000));
        alice.session.handle_input(n, Input::SetVideo(true));
        alice.drain(n);
        assert_eq!(alice.controls, [MediaControl::BandwidthPause(true)]);
        assert_eq!(alice.captures, 0);
    }

    #[test]
    fn a_frame_due_while_one_is_encoding_is_captured_when_it_is_back_and_a_failed_source_is_left_alone() {
        let t0 = Instant::now();
        let n0 = now(t0, Duration::ZERO);
        let k = FrameKeys::new([1; 32], [2; 32], true, b"h");
        let mut s = MediaSession::new(&k, 32_000, true, n0).with_video(small());
        s.handle_input(n0, Input::SetVideo(true));
        s.handle_timeout(n0);
        let mut capture = None;
        while let Some(o) = Some(s.poll_output()).filter(|o| !matches!(o, Output::Timeout(_))) {
            if let Output::CaptureVideo { format, stamp, capture_us } = o {
                capture = Some((format, stamp, capture_us));
            }
        }
        let (format, stamp, capture_us) = capture.expect("the first frame is captured at once");
        let picture = pattern::draw(format.width, format.height, stamp);
        s.handle_input(n0, Input::CapturedVideo { picture, capture_us });
        let Output::EncodeVideo(job) = s.poll_output() else { panic!("an encode job") };
        // The encoder takes 100 ms: two frame ticks pass, one capture is owed.
        let late = now(t0, Duration::from_millis(100));
        s.handle_timeout(late);
        let asked = std::iter::from_fn(|| Some(s.poll_output()))
            .take_while(|o| !matches!(o, Output::Timeout(_)))
            .filter(|o| matches!(o, Output::CaptureVideo { .. }))
            .count();
        assert_eq!(asked, 0, "no second capture while one is encoding");
        let result = EncodeWorker::with_opener(FakeVideoEncoder::open).encode(&job);
        s.handle_input(late, Input::EncodedVideo { job, result });
        assert!(matches!(s.poll_output(), Output::SendRecord(r) if r.new_gop));
        assert!(matches!(s.poll_output(), Output::CaptureVideo { .. }), "the owed frame, at once");
        // The source fails: no more captures, ever.
        s.handle_input(late, Input::VideoSourceFailed);
        assert!(s.video_counters().source_failed);
        for ms in (105..2000).step_by(5) {
            s.handle_timeout(now(t0, Duration::from_millis(ms)));
            while let o = s.poll_output()
                && !matches!(o, Output::Timeout(_))
            {
                assert!(!matches!(o, Output::CaptureVideo { .. }), "asked a failed source at {ms} ms");
            }
        }
    }
}
