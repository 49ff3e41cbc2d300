//! The sending half of a call's video, sans-IO: it decides and the encoder works. For each
//! captured picture [`VideoSender::begin`] says what to encode (an [`EncodeJob`]: the format, the
//! target bitrate, whether to force a keyframe or open a new encoder); an
//! [`EncodeWorker`] carries it out wherever the driver runs it; and
//! [`VideoSender::finish`] takes the units back and seals them into records, each tagged with its
//! GOP. It starts a new GOP on every keyframe (the IO layer opens a new QUIC stream for it and
//! resets the previous one), follows the bitrate the controller sets, and steps the format down and
//! up with the CPU adaptation.
//!
//! The caller passes `now`, and the worker how long the encode took (what the CPU adaptation is
//! about): nothing here reads the clock. [`VideoSender::send`] does all three steps inline with an
//! encoder of its own, for callers that need no worker thread.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Frame;
use super::clock::FrameRate;
use super::cpu_adaptation::{Adaptation, CpuAdaptation, VideoFormat};
use super::encoder::{EncodeJob, EncodeWorker, Encoded};
use super::wire::{self, FLAG_KEYFRAME, VideoFrame};
use crate::crypto::frame::{FrameKeys, FrameSealer, MediaKind};
use crate::media::codec::av1::{EncoderKind, VideoCodecError};

/// A keyframe request that comes sooner than this after the last keyframe is ignored: that
/// keyframe is probably still on its way. On a slow link the wait is longer: twice the time the
/// last keyframe takes to send at the target bitrate (a new GOP resets the stream, so answering
/// every request would cut each keyframe off before it arrives, and no picture would ever show).
pub const KEYFRAME_MIN_GAP: Duration = Duration::from_millis(250);
/// The bitrate a new sender aims at until the controller says otherwise.
pub const START_BITRATE: u32 = 500_000;

/// How the sender encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderConfig {
    /// The encoder.
    pub encoder: EncoderKind,
    /// Encoder threads.
    pub threads: usize,
    /// The best format to send (the top of the CPU ladder).
    pub max_format: VideoFormat,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig { encoder: EncoderKind::default(), threads: 2, max_format: super::cpu_adaptation::LADDER[0] }
    }
}

/// One sealed record to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The GOP (and so the stream) it belongs to.
    pub gop: u32,
    /// It opens a new GOP: open a new stream, reset the previous one.
    pub new_gop: bool,
    /// The record, length prefix included.
    pub record: Vec<u8>,
    /// The frame number.
    pub frame: u32,
    /// Its AV1 temporal layer (0, the base, unless the encoder has layers): a forwarder or a
    /// sender may leave a slow receiver's enhancement records out (`media::group_call::thinning`).
    pub layer: u8,
    /// The bitrate its encoder aimed at, bps, which the IO layer paces it at
    /// ([`super::pacer`]); 0 when not known here (a record a group call's forwarder passes on
    /// goes unpaced).
    pub bitrate: u32,
}

/// The sender's counters, for `hail status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VideoSendStats {
    /// The encoder in use.
    pub encoder: String,
    /// The picture size sent now.
    pub width: usize,
    /// The picture size sent now.
    pub height: usize,
    /// The frame rate aimed at now.
    pub target_fps: u32,
    /// Frames encoded and sent.
    pub frames: u64,
    /// Keyframes among them.
    pub keyframes: u64,
    /// Keyframe requests from the peer (honoured or not).
    pub keyframe_requests: u64,
    /// Bytes of records sent.
    pub bytes: u64,
    /// The target bitrate now, bps.
    pub target_bitrate: u32,
    /// The encoder's share of the frame interval (CPU adaptation input), last window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encode_usage: Option<f64>,
    /// Format changes made for the CPU.
    pub cpu_adaptations: u64,
    /// Frames encoded but not sealed (a group call's keys not there yet): each makes the next
    /// frame a keyframe.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unsealed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How a sender's frames become records: a 1:1 call seals them with the call's video key
/// ([`FrameSealer`], `protocols/media-v1.md`); a group call through its sender key
/// (`media::group_call`, `protocols/group-media-v1.md`).
pub trait RecordSeal: Send {
    /// The record for `frame`, of `gop`, on temporal layer `layer`, length prefix included;
    /// `None`: it cannot be sealed now (it is dropped, and the next frame starts a new GOP).
    fn seal_record(&mut self, gop: u32, frame: &VideoFrame, layer: u8) -> Option<Vec<u8>>;
}

impl RecordSeal for FrameSealer {
    /// A 1:1 call's encoder has one layer: `layer` is always 0.
    fn seal_record(&mut self, gop: u32, frame: &VideoFrame, _layer: u8) -> Option<Vec<u8>> {
        Some(wire::seal(self, gop, frame))
    }
}

/// The sender, sealing its records with `S` (a 1:1 call's [`FrameSealer`] unless said otherwise).
pub struct VideoSender<S = FrameSealer> {
    config: SenderConfig,
    sealer: S,
    /// The encoder in use can take the next picture (else the next job opens a new one).
    encoder_open: bool,
    /// The encoder [`VideoSender::send`] runs jobs on; a driver with a worker of its own never
    /// opens it.
    inline_worker: EncodeWorker,
    cpu: CpuAdaptation,
    target: u32,
    gop: u32,
    next_frame: u32,
    keyframe_wanted: bool,
    last_keyframe: Option<Instant>,
    last_keyframe_bytes: usize,
    /// Pictures given to the encoder and not yet out of it: (input number, capture time). An
    /// encoder that holds frames back (rav1e) returns units for earlier pictures, which must carry
    /// their own capture time (lip sync, latency).
    in_flight: std::collections::VecDeque<(u64, u64)>,
    next_input: u64,
    stats: VideoSendStats,
}

impl<S> std::fmt::Debug for VideoSender<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoSender").field("config", &self.config).field("gop", &self.gop).finish_non_exhaustive()
    }
}

impl VideoSender {
    /// A sender sealing with the call's video key.
    pub fn new(keys: &FrameKeys, config: SenderConfig) -> Self {
        Self::with_sealer(keys.sealer(MediaKind::Video), config)
    }
}

impl<S: RecordSeal> VideoSender<S> {
    /// A sender whose records `sealer` seals.
    pub fn with_sealer(sealer: S, config: SenderConfig) -> Self {
        let cpu = CpuAdaptation::capped(config.max_format);
        let f = cpu.format();
        VideoSender {
            config,
            sealer,
            encoder_open: false,
            inline_worker: EncodeWorker::new(config.encoder, config.threads),
            cpu,
            target: START_BITRATE,
            gop: 0,
            next_frame: 0,
            keyframe_wanted: true,
            last_keyframe: None,
            last_keyframe_bytes: 0,
            in_flight: std::collections::VecDeque::new(),
            next_input: 0,
            stats: VideoSendStats {
                encoder: config.encoder.to_string(),
                width: f.width,
                height: f.height,
                target_fps: f.fps,
                target_bitrate: START_BITRATE,
                ..Default::default()
            },
        }
    }

    /// The sealer.
    pub fn sealer(&self) -> &S {
        &self.sealer
    }

    /// The format the source should deliver now: the CPU ladder's rung, at no more than the
    /// source's own rate.
    pub fn format(&self) -> VideoFormat {
        self.cpu.format()
    }

    /// The source has a rate of its own (a 25 fps file): frames are asked for and encoded at no
    /// more than that. Call it before the first picture (the encoder's rate is set when it opens).
    pub fn set_source_rate(&mut self, rate: FrameRate) {
        self.cpu.limit_fps(rate.ceil_fps());
        self.stats.target_fps = self.format().fps;
    }

    /// The counters.
    pub fn stats(&self) -> VideoSendStats {
        let mut s = self.stats.clone();
        s.encode_usage = self.cpu.usage();
        s
    }

    /// Follows the bitrate controller (from the next job on).
    pub fn set_target_bitrate(&mut self, bps: u32) {
        self.target = bps;
        self.stats.target_bitrate = bps;
    }

    /// The peer cannot decode: the next frame is a keyframe, unless one went out very recently.
    pub fn on_keyframe_request(&mut self, now: Instant) {
        self.stats.keyframe_requests += 1;
        let sending = Duration::from_secs_f64(self.last_keyframe_bytes as f64 * 8.0 / f64::from(self.target.max(1)));
        let gap = KEYFRAME_MIN_GAP.max(sending * 2);
        let recent = self.last_keyframe.is_some_and(|k| now.saturating_duration_since(k) < gap);
        if !recent {
            self.keyframe_wanted = true;
        }
    }

    /// Starts a new GOP with the next frame (the IO layer dropped a backlog).
    pub fn restart_gop(&mut self) {
        self.keyframe_wanted = true;
    }

    /// Video off: the next job opens a new encoder and starts with a keyframe. The encoder of
    /// [`VideoSender::send`] is dropped now (its memory and threads go); a driver with its own
    /// worker releases that worker's ([`EncodeWorker::release`]).
    pub fn pause(&mut self) {
        self.encoder_open = false;
        self.inline_worker.release();
        self.keyframe_wanted = true;
    }

    /// A picture captured at `capture_us` is ready at `now`: what to encode. Hand the job to an
    /// [`EncodeWorker`] and its result to [`VideoSender::finish`]; jobs are finished in the order
    /// they were begun.
    pub fn begin(&mut self, _now: Instant, picture: Frame, capture_us: u64) -> EncodeJob {
        let restart = !self.encoder_open;
        let job = EncodeJob {
            picture,
            capture_us,
            format: self.format(),
            bitrate: self.target,
            keyframe: self.keyframe_wanted || restart,
            restart,
        };
        self.keyframe_wanted = false;
        self.encoder_open = true;
        job
    }

    /// The worker finished `job` at `now`: seals what the encoder gave back. After a failure the
    /// next job opens a new encoder and starts with a keyframe.
    pub fn finish(&mut self, now: Instant, job: &EncodeJob, result: Result<Encoded, VideoCodecError>) -> Vec<Outgoing> {
        let encoded = match result {
            Ok(encoded) => encoded,
            Err(_) => {
                self.encoder_open = false;
                self.keyframe_wanted = true;
                return Vec::new();
            }
        };
        if encoded.restarted {
            // A new stream numbers its input from 0; what the old one held back is gone.
            self.in_flight.clear();
            self.next_input = 0;
        }
        let format = job.format;
        self.in_flight.push_back((self.next_input, job.capture_us));
        self.next_input += 1;
        while self.in_flight.len() > 64 {
            self.in_flight.pop_front();
        }

        let mut out = Vec::with_capacity(encoded.units.len());
        for unit in encoded.units {
            let new_gop = unit.keyframe || self.stats.frames == 0;
            if new_gop {
                if self.stats.frames > 0 {
                    self.gop = self.gop.wrapping_add(1);
                }
                self.last_keyframe = Some(now);
                self.stats.keyframes += 1;
            }
            while self.in_flight.front().is_some_and(|(n, _)| *n < unit.number) {
                self.in_flight.pop_front();
            }
            let captured = match self.in_flight.front() {
                Some(&(n, at)) if n == unit.number => {
                    self.in_flight.pop_front();
                    at
                }
                _ => job.capture_us,
            };
            // Base frames are numbered one after the other; an enhancement frame carries the
            // number of the base frame before it, the one it is predicted from
            // (`protocols/group-media-v1.md`, "Temporal layers"): so a gap in the numbers is a base
            // frame missing, and a receiver given the base layer alone sees none.
            let layer = if unit.keyframe { 0 } else { unit.temporal_layer };
            let number = if layer == 0 { self.next_frame } else { self.next_frame.wrapping_sub(1) };
            let frame = VideoFrame {
                frame: number,
                capture_us: captured,
                flags: if unit.keyframe { FLAG_KEYFRAME } else { 0 },
                width: format.width as u16,
                height: format.height as u16,
                av1: unit.data,
            };
            // Numbered even when not sealed: the gap tells a receiver that what follows in this
            // GOP cannot be decoded.
            if layer == 0 {
                self.next_frame = self.next_frame.wrapping_add(1);
            }
            let Some(record) = self.sealer.seal_record(self.gop, &frame, layer) else {
                self.stats.unsealed += 1;
                self.keyframe_wanted = true;
                continue;
            };
            if new_gop {
                self.last_keyframe_bytes = record.len();
            }
            self.stats.frames += 1;
            self.stats.bytes += record.len() as u64;
            out.push(Outgoing { gop: self.gop, new_gop, record, frame: frame.frame, layer, bitrate: job.bitrate });
        }

        if let Some(step) = self.cpu.on_frame_encoded(now, encoded.took) {
            let (Adaptation::Down(f) | Adaptation::Up(f)) = step;
            tracing::info!(?step, "video format changed for the CPU");
            self.stats.cpu_adaptations += 1;
            self.stats.width = f.width;
            self.stats.height = f.height;
            self.stats.target_fps = f.fps;
            if (f.width, f.height) != (format.width, format.height) {
                // A new size needs a new encoder, which starts with a keyframe.
                self.encoder_open = false;
            }
        }
        out
    }

    /// Encodes one picture (at [`VideoSender::format`]'s size; others are rescaled) captured at
    /// `capture_us` and seals what the encoder gives back: [`VideoSender::begin`], the sender's own
    /// [`EncodeWorker`], then [`VideoSender::finish`].
    pub fn send(&mut self, now: Instant, picture: &Frame, capture_us: u64) -> Result<Vec<Outgoing>, VideoCodecError> {
        let job = self.begin(now, picture.clone(), capture_us);
        let result = self.inline_worker.encode(&job);
        let failure = result.as_ref().err().cloned();
        let out = self.finish(now, &job, result);
        failure.map_or(Ok(out), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::av1::EncodedFrame;
    use crate::media::codec::fake::FakeVideoEncoder;
    use crate::media::video::pattern::{self, Stamp};

    fn keys() -> FrameKeys {
        FrameKeys::new([1; 32], [2; 32], true, b"h")
    }

    fn small() -> SenderConfig {
        SenderConfig { max_format: VideoFormat { width: 320, height: 180, fps: 30 }, ..Default::default() }
    }

    /// Begins a job for picture `n` at `at` and has the fake encoder carry it out in `took`.
    fn step(s: &mut VideoSender, w: &mut EncodeWorker, at: Instant, n: u32, took: Duration) -> (EncodeJob, Vec<Outgoing>) {
        let pic = pattern::draw(320, 180, Stamp { counter: n, capture_ms: n }).unwrap();
        let job = s.begin(at, pic, u64::from(n));
        let result = w.encode(&job).map(|e| Encoded { took, ..e });
        let out = s.finish(at, &job, result);
        (job, out)
    }

    fn fake_worker() -> EncodeWorker {
        EncodeWorker::with_opener(FakeVideoEncoder::open)
    }

    const QUICK: Duration = Duration::from_millis(5);

    #[test]
    fn without_a_codec_a_keyframe_request_makes_the_next_job_force_a_keyframe() {
        let (mut s, mut w) = (VideoSender::new(&keys(), small()), fake_worker());
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let (job, out) = step(&mut s, &mut w, at(0), 0, QUICK);
        assert!(job.restart && job.keyframe, "the first job opens an encoder");
        assert_eq!((out[0].gop, out[0].new_gop), (0, true));
        let (job, out) = step(&mut s, &mut w, at(33), 1, QUICK);
        assert!(!job.restart && !job.keyframe && !out[0].new_gop);
        s.on_keyframe_request(at(40));
        assert!(!step(&mut s, &mut w, at(66), 2, QUICK).0.keyframe, "too soon after the last keyframe");
        s.on_keyframe_request(at(400));
        let (job, out) = step(&mut s, &mut w, at(433), 3, QUICK);
        assert!(job.keyframe && !job.restart, "a keyframe from the same encoder");
        assert_eq!((out[0].gop, out[0].new_gop, out[0].frame), (1, true, 3));
        s.set_target_bitrate(123_000);
        assert_eq!(step(&mut s, &mut w, at(466), 4, QUICK).0.bitrate, 123_000, "the job carries the target");
    }

    #[test]
    fn an_encoder_too_slow_for_the_cpu_makes_the_next_job_open_a_smaller_one() {
        let (mut s, mut w) = (VideoSender::new(&keys(), SenderConfig::default()), fake_worker());
        let t0 = Instant::now();
        let mut n = 0;
        // Each 640x360 picture takes 40 ms of a 33 ms interval.
        let job = loop {
            let (job, _) = step(&mut s, &mut w, t0 + Duration::from_millis(33 * u64::from(n)), n, Duration::from_millis(40));
            n += 1;
            if (job.format.width, job.format.height) != (640, 360) || n > 100 {
                break job;
            }
        };
        assert_eq!((job.format.width, job.format.height), (480, 270), "stepped down within a second");
        assert!(job.restart && job.keyframe, "a new size: a new encoder and a keyframe");
        assert_eq!((s.stats().cpu_adaptations, s.format().width), (1, 480));
    }

    #[test]
    fn a_failed_encode_makes_the_next_job_start_afresh_and_frame_numbers_continue() {
        let (mut s, mut w) = (VideoSender::new(&keys(), small()), fake_worker());
        let t0 = Instant::now();
        step(&mut s, &mut w, t0, 0, QUICK);
        let job = s.begin(t0 + Duration::from_millis(33), Frame::black(320, 180).unwrap(), 1);
        assert!(!job.keyframe);
        let failed = Err(VideoCodecError::Encoder("the encoder broke".into()));
        assert!(s.finish(t0 + Duration::from_millis(33), &job, failed).is_empty());
        let (job, out) = step(&mut s, &mut w, t0 + Duration::from_millis(66), 2, QUICK);
        assert!(job.restart && job.keyframe);
        assert_eq!((out[0].new_gop, out[0].frame), (true, 1));
    }

    #[test]
    fn units_held_back_keep_their_capture_time_and_a_restart_forgets_what_was_held() {
        let mut s = VideoSender::new(&keys(), small());
        let mut opener = FrameKeys::new([1; 32], [2; 32], false, b"h").opener(MediaKind::Video);
        let t0 = Instant::now();
        let unit = |number, keyframe| EncodedFrame { data: vec![number as u8], keyframe, number, temporal_layer: 0 };
        let mut finish = |s: &mut VideoSender, capture_us: u64, units: Vec<EncodedFrame>, restarted: bool| {
            let job = s.begin(t0, Frame::black(320, 180).unwrap(), capture_us);
            let out = s.finish(t0, &job, Ok(Encoded { units, restarted, took: QUICK }));
            out.iter().map(|o| wire::open(&mut opener, o.gop, &o.record[4..]).unwrap().capture_us).collect::<Vec<_>>()
        };
        // An encoder one picture behind: each job returns the unit of the one before.
        assert_eq!(finish(&mut s, 100, vec![], true), Vec::<u64>::new());
        assert_eq!(finish(&mut s, 200, vec![unit(0, true)], false), [100]);
        assert_eq!(finish(&mut s, 300, vec![unit(1, false)], false), [200]);
        // It restarts (a new bitrate): picture 300 is gone, the new stream's unit 0 is picture 400.
        assert_eq!(finish(&mut s, 400, vec![unit(0, true)], true), [400]);
    }

    #[test]
    fn the_first_frame_opens_a_gop_and_keyframe_requests_open_the_next() {
        let mut s = VideoSender::new(&keys(), small());
        let t0 = Instant::now();
        let pic = |n: u32| pattern::draw(320, 180, Stamp { counter: n, capture_ms: n }).unwrap();
        let first = s.send(t0, &pic(0), 1).unwrap();
        assert_eq!(first.len(), 1);
        assert!(first[0].new_gop && first[0].gop == 0);
        let second = s.send(t0 + Duration::from_millis(33), &pic(1), 2).unwrap();
        assert!(!second[0].new_gop && second[0].gop == 0, "a delta frame stays in its GOP");
        // Too soon after the first keyframe: ignored.
        s.on_keyframe_request(t0 + Duration::from_millis(40));
        assert!(!s.send(t0 + Duration::from_millis(66), &pic(2), 3).unwrap()[0].new_gop);
        s.on_keyframe_request(t0 + Duration::from_millis(400));
        let k = s.send(t0 + Duration::from_millis(433), &pic(3), 4).unwrap();
        assert!(k[0].new_gop && k[0].gop == 1, "{k:?}");
        assert_eq!((s.stats().keyframes, s.stats().keyframe_requests, s.stats().frames), (2, 2, 4));
        // Pictures of another size are scaled to the format.
        let big = pattern::draw(640, 360, Stamp { counter: 4, capture_ms: 4 }).unwrap();
        assert_eq!(s.send(t0 + Duration::from_millis(466), &big, 5).unwrap().len(), 1);
    }

    #[test]
    fn units_an_encoder_held_back_carry_their_own_capture_time() {
        // rav1e returns each unit a frame or two after its picture went in.
        let config = SenderConfig { encoder: EncoderKind::Rav1e, threads: 1, ..small() };
        let mut s = VideoSender::new(&keys(), config);
        let mut opener = FrameKeys::new([1; 32], [2; 32], false, b"h").opener(MediaKind::Video);
        let t0 = Instant::now();
        let mut captures = Vec::new();
        let mut lagged = false;
        for n in 0..8u32 {
            let pic = pattern::draw(320, 180, Stamp { counter: n, capture_ms: n }).unwrap();
            let out = s.send(t0 + Duration::from_millis(33 * u64::from(n)), &pic, 1000 * (u64::from(n) + 1)).unwrap();
            lagged |= out.is_empty();
            for o in out {
                captures.push(wire::open(&mut opener, o.gop, &o.record[4..]).unwrap().capture_us);
            }
        }
        assert!(lagged, "rav1e held something back (else this test tests nothing)");
        let expected: Vec<u64> = (1..=captures.len() as u64).map(|k| 1000 * k).collect();
        assert_eq!(captures, expected);
        // A new target restarts rav1e (what it held back is gone): the times stay right.
        s.set_target_bitrate(200_000);
        let mut after = Vec::new();
        for n in 8..16u32 {
            let pic = pattern::draw(320, 180, Stamp { counter: n, capture_ms: n }).unwrap();
            for o in s.send(t0 + Duration::from_millis(33 * u64::from(n)), &pic, 1000 * (u64::from(n) + 1)).unwrap() {
                assert!(!o.new_gop || after.is_empty(), "one new GOP, at the restart");
                after.push(wire::open(&mut opener, o.gop, &o.record[4..]).unwrap().capture_us);
            }
        }
        let expected: Vec<u64> = (9..9 + after.len() as u64).map(|k| 1000 * k).collect();
        assert_eq!(after, expected);
    }

    #[test]
    fn on_a_slow_link_requests_wait_until_the_last_keyframe_could_have_arrived() {
        // 20 kbps at 10 fps: the encoder caps a keyframe at three frames' worth of the bitrate
        // (aom::MAX_INTRA_BITRATE_PERCENT), so at 30 fps it would leave in ~100 ms, within
        // KEYFRAME_MIN_GAP, and the rule for slow links would not be what decides. It must take
        // longer than that gap, so that a sender holding requests for the fixed gap alone fails.
        let ten_fps = SenderConfig { max_format: VideoFormat { width: 320, height: 180, fps: 10 }, ..Default::default() };
        let mut s = VideoSender::new(&keys(), ten_fps);
        s.set_target_bitrate(20_000);
        let t0 = Instant::now();
        let pic = |n: u32| pattern::draw(320, 180, Stamp { counter: n, capture_ms: n }).unwrap();
        let k = s.send(t0, &pic(0), 0).unwrap();
        let bits = k[0].record.len() as f64 * 8.0;
        let sending = Duration::from_secs_f64(bits / 20_000.0);
        assert!(sending > KEYFRAME_MIN_GAP, "a keyframe takes longer than the fixed gap at 20 kbps ({sending:?})");
        // A request before twice that time is not answered; one after it is.
        s.on_keyframe_request(t0 + sending);
        assert!(!s.send(t0 + sending, &pic(1), 1).unwrap()[0].new_gop);
        s.on_keyframe_request(t0 + sending * 2 + Duration::from_millis(1));
        assert!(s.send(t0 + sending * 2 + Duration::from_millis(2), &pic(2), 2).unwrap()[0].new_gop);
    }

    #[test]
    fn a_pause_restarts_with_a_keyframe_and_the_frame_numbers_continue() {
        let mut s = VideoSender::new(&keys(), small());
        let t0 = Instant::now();
        let pic = pattern::draw(320, 180, Stamp { counter: 0, capture_ms: 0 }).unwrap();
        s.send(t0, &pic, 0).unwrap();
        s.pause();
        let after = s.send(t0 + Duration::from_millis(50), &pic, 0).unwrap();
        assert!(after[0].new_gop);
        assert_eq!(after[0].frame, 1);
        s.set_target_bitrate(200_000);
        assert_eq!(s.stats().target_bitrate, 200_000);
    }
}
