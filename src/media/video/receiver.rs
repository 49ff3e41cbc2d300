//! The receiving half of a call's video, sans-IO: sealed records in (tagged with the GOP of the
//! stream they came on), pictures out when they are due. It decides and the decoder works:
//! [`VideoReceiver::accept_record`] opens a record and says whether to decode it (a
//! [`DecodeJob`]); the caller decodes it wherever it likes (dav1d on a thread of its own, a fake in
//! the simulator) and hands the pictures, or the error, to [`VideoReceiver::on_decoded`].
//! [`VideoReceiver::on_record`] does both inline with a dav1d decoder of its own.
//!
//! - A record of an older GOP than the one being decoded is stale and dropped.
//! - A new GOP must start with a keyframe; inside a GOP the frame numbers must follow each other
//!   (the stream is reliable, so a gap means the sender or our queue dropped something). Anything
//!   else — or a frame dav1d refuses — leaves the decoder out of step: nothing more is decoded until
//!   a keyframe, and a keyframe request goes out (at most one per [`REQUEST_GAP`]).
//! - The peer sends video but not a byte arrived for [`STALL`] (an outage, a burst of loss): a
//!   keyframe request, so that when the path is back the sender starts a fresh GOP on a new stream
//!   and resets the one holding the backlog, instead of the picture trailing behind it. Bytes of a
//!   record not yet whole count ([`VideoReceiver::on_progress`]): a keyframe crossing a narrow link
//!   is slow, and asking for another would reset the stream carrying it, again and again.
//! - A frame that arrives [`BACKLOG`] later than the quickest frames did: the picture is that far
//!   behind; a keyframe request too, once per GOP (a slow link makes a keyframe itself arrive late,
//!   and asking again for every late frame would only bring more keyframes).
//! - Pictures are held until the audio played alongside them: a picture is due when its age
//!   (`wall − capture`, in the sender's clock) reaches the audio's playout age, so audio and video
//!   leave the device in step (the offset between the two clocks cancels out).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Frame;
use super::pattern;
use super::wire::{self, VideoFrame, VideoWireError};
use crate::crypto::frame::{FrameError, FrameKeys, FrameOpener, MediaKind};
use crate::media::codec::av1::{Dav1dDecoder, VideoCodecError};

/// The least time between two keyframe requests.
pub const REQUEST_GAP: Duration = Duration::from_millis(300);
/// Arriving this much later than the quickest frames means a backlog.
pub const BACKLOG: Duration = Duration::from_millis(1000);
/// No frame for this long while the peer sends video: ask for a keyframe.
pub const STALL: Duration = Duration::from_millis(400);
/// The window over which the age of decoded pictures is taken (lip sync).
pub const AGE_WINDOW: Duration = Duration::from_secs(2);
/// Decoded pictures waiting for their turn beyond this are skipped (we are behind).
pub const MAX_QUEUE: usize = 4;

/// The receiver's counters, for `hail status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VideoReceiveStats {
    /// The size of the last picture.
    pub width: usize,
    /// The size of the last picture.
    pub height: usize,
    /// Records that opened.
    pub frames_received: u64,
    /// Pictures decoded.
    pub frames_decoded: u64,
    /// Pictures rendered.
    pub frames_rendered: u64,
    /// Pictures decoded but skipped to catch up.
    pub frames_skipped: u64,
    /// Keyframes received.
    pub keyframes: u64,
    /// Keyframe requests sent.
    pub keyframe_requests: u64,
    /// Frames dav1d refused.
    pub decode_errors: u64,
    /// Frames that could not be decoded because something before them was missing.
    pub undecodable: u64,
    /// Records of an old GOP.
    pub stale: u64,
    /// Records that failed authentication.
    pub tampered: u64,
    /// Records replayed or too old.
    pub replayed: u64,
    /// Records that were not well-formed.
    pub malformed: u64,
    /// Enhancement-layer frames left undecoded because the base frame they are predicted from
    /// was not decoded (no keyframe is asked for them: nothing later depends on them).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub enhancement_skipped: u64,
    /// Enhancement-layer frames received.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub enhancement_received: u64,
    /// Pauses in the picture (WebRTC's definition: a gap between rendered pictures of more than
    /// three times the average, and at least 150 ms more than it).
    pub freezes: u64,
    /// How long the picture stood still in those freezes, in total, ms (WebRTC's
    /// `totalFreezesDuration`: the whole gap of each freeze).
    #[serde(default)]
    pub frozen_ms: u64,
    /// The last frame number rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_frame: Option<u32>,
    /// Capture (burned into a test-pattern picture) to render, ms; needs a common clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glass_to_glass_ms: Option<f64>,
    /// How much later the last picture was shown than the audio captured with it, ms (negative:
    /// earlier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub av_sync_ms: Option<f64>,
    /// The largest |av_sync_ms| seen after the first second of pictures.
    pub av_sync_max_ms: f64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A picture to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The picture.
    pub picture: Frame,
    /// The sender's frame number.
    pub frame: u32,
    /// When it was captured (sender's clock, µs since the Unix epoch).
    pub capture_us: u64,
}

/// A record to decode: what [`VideoReceiver::accept_record`] found decodable, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeJob {
    /// The AV1 temporal unit.
    pub av1: Vec<u8>,
    /// The sender's frame number.
    pub frame: u32,
    /// When it was captured (sender's clock, µs since the Unix epoch).
    pub capture_us: u64,
    /// How old it was on arrival (`wall − capture`; the clocks differ, so signed).
    pub age_us: i64,
    /// The run of decodable frames it belongs to (a keyframe starts a run).
    run: u32,
}

/// A decoded picture waiting for its turn.
#[derive(Debug)]
struct Waiting {
    picture: Frame,
    frame: u32,
    capture_us: u64,
}

/// Why a record was refused (the receiver keeps going).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VideoReceiveError {
    /// Could not be opened or parsed.
    #[error(transparent)]
    Wire(#[from] VideoWireError),
    /// dav1d refused it.
    #[error(transparent)]
    Codec(#[from] VideoCodecError),
}

/// The receiver.
pub struct VideoReceiver {
    /// The call's video key (`None`: the caller opens the frames, [`VideoReceiver::accept_frame`]).
    opener: Option<FrameOpener>,
    /// The decoder [`VideoReceiver::on_record`] uses (opened on first use when absent).
    inline_decoder: Option<Dav1dDecoder>,
    decoder_threads: u32,
    gop: Option<u32>,
    expect: Option<u32>,
    /// The number of the last base frame sent off to decode in step: the one an enhancement
    /// frame must name to be decodable.
    last_base: Option<u32>,
    in_step: bool,
    /// The run of frames being decoded now (a keyframe starts the next one), and one whose decoding
    /// failed: its later frames depend on what failed, and are dropped if they were already sent
    /// off to decode.
    run: u32,
    failed_run: Option<u32>,
    need_keyframe: bool,
    last_request: Option<Instant>,
    last_arrival: Option<Instant>,
    last_record: Option<Instant>,
    arrival_gap: Option<Duration>,
    min_age_us: Option<i64>,
    backlog_asked: Option<u32>,
    backlog_pending: bool,
    decoded_ages: VecDeque<(Instant, i64)>,
    queue: VecDeque<Waiting>,
    last_render: Option<Instant>,
    first_render: Option<Instant>,
    avg_interval: Option<Duration>,
    remote_sending: bool,
    stats: VideoReceiveStats,
}

impl std::fmt::Debug for VideoReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoReceiver").field("gop", &self.gop).field("in_step", &self.in_step).finish_non_exhaustive()
    }
}

fn newer(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl VideoReceiver {
    /// A receiver opening with the call's video key, and decoding with dav1d on `threads` when
    /// [`VideoReceiver::on_record`] is used.
    pub fn new(keys: &FrameKeys, threads: u32) -> Result<Self, VideoCodecError> {
        let mut receiver = Self::with_external_decoder(keys);
        receiver.inline_decoder = Some(Dav1dDecoder::new(threads)?);
        receiver.decoder_threads = threads;
        Ok(receiver)
    }

    /// A receiver whose caller decodes ([`VideoReceiver::accept_record`] and
    /// [`VideoReceiver::on_decoded`]): no decoder is opened.
    pub fn with_external_decoder(keys: &FrameKeys) -> Self {
        VideoReceiver { opener: Some(keys.opener(MediaKind::Video)), ..Self::for_opened_frames() }
    }

    /// A receiver of frames its caller opened ([`VideoReceiver::accept_frame`]; a group call's
    /// frames are opened with their sender's key) and decodes.
    pub fn for_opened_frames() -> Self {
        VideoReceiver {
            opener: None,
            inline_decoder: None,
            decoder_threads: 1,
            gop: None,
            expect: None,
            last_base: None,
            in_step: false,
            run: 0,
            failed_run: None,
            need_keyframe: false,
            last_request: None,
            last_arrival: None,
            last_record: None,
            arrival_gap: None,
            min_age_us: None,
            backlog_asked: None,
            backlog_pending: false,
            decoded_ages: VecDeque::new(),
            queue: VecDeque::new(),
            last_render: None,
            first_render: None,
            avg_interval: None,
            remote_sending: false,
            stats: VideoReceiveStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> VideoReceiveStats {
        self.stats.clone()
    }

    /// Whether the peer says it sends video (a pause is not a stall).
    pub fn set_remote_sending(&mut self, sending: bool, now: Instant) {
        if sending && !self.remote_sending {
            self.last_arrival = Some(now);
            self.last_record = None;
            self.arrival_gap = None;
            self.last_render = None;
            self.avg_interval = None;
        }
        if !sending {
            // Nothing to ask a paused peer for.
            self.need_keyframe = false;
            self.backlog_pending = false;
        }
        self.remote_sending = sending;
    }

    /// A record's body (after its length prefix) from the stream of `gop`, arriving at `now`
    /// (`wall_us`: the same instant on the wall clock): opens it and decodes it with the receiver's
    /// own dav1d decoder ([`VideoReceiver::accept_record`], then [`VideoReceiver::on_decoded`]).
    pub fn on_record(&mut self, now: Instant, wall_us: u64, gop: u32, body: &[u8]) -> Result<(), VideoReceiveError> {
        let Some(job) = self.accept_record(now, wall_us, gop, body)? else { return Ok(()) };
        let decoder = match self.inline_decoder.as_mut() {
            Some(decoder) => Ok(decoder),
            None => Dav1dDecoder::new(self.decoder_threads).map(|d| self.inline_decoder.insert(d)),
        };
        let result = decoder.and_then(|d| d.decode(&job.av1));
        let failure = result.as_ref().err().cloned();
        self.on_decoded(now, &job, result);
        failure.map_or(Ok(()), |e| Err(e.into()))
    }

    /// A record's body (after its length prefix) from the stream of `gop`, arriving at `now`
    /// (`wall_us`: the same instant on the wall clock): what to decode, if anything. `None` for a
    /// record of an old GOP, or one that cannot be decoded because something before it is missing.
    /// Decode the jobs in the order they come, and hand each result to [`VideoReceiver::on_decoded`].
    pub fn accept_record(
        &mut self,
        now: Instant,
        wall_us: u64,
        gop: u32,
        body: &[u8],
    ) -> Result<Option<DecodeJob>, VideoWireError> {
        let Some(opener) = self.opener.as_mut() else {
            self.stats.malformed += 1;
            return Err(VideoWireError::Malformed("no key to open records with"));
        };
        let frame = match wire::open(opener, gop, body) {
            Ok(f) => f,
            Err(e) => {
                match &e {
                    VideoWireError::Frame(FrameError::Auth) => self.stats.tampered += 1,
                    VideoWireError::Frame(_) => self.stats.replayed += 1,
                    _ => self.stats.malformed += 1,
                }
                return Err(e);
            }
        };
        Ok(self.accept_frame(now, wall_us, gop, frame))
    }

    /// A frame of `gop`, already opened, arriving at `now` (`wall_us`: the same instant on the
    /// wall clock): what to decode, if anything ([`VideoReceiver::accept_record`] after opening).
    pub fn accept_frame(&mut self, now: Instant, wall_us: u64, gop: u32, frame: VideoFrame) -> Option<DecodeJob> {
        self.accept_layered_frame(now, wall_us, gop, frame, 0)
    }

    /// [`VideoReceiver::accept_frame`] for a frame of AV1 temporal layer `layer`
    /// (`protocols/group-media-v1.md`, "Temporal layers"): base frames (layer 0, and every
    /// keyframe) are numbered one after the other, and a gap among them leaves what follows
    /// undecodable; an enhancement frame carries the number of the base frame it is predicted
    /// from, and is decoded only when that is the last base frame decoded. Enhancement frames that
    /// never came (a forwarder thinned them out) or cannot be decoded leave no gap and ask for no
    /// keyframe: no frame depends on them.
    pub fn accept_layered_frame(
        &mut self,
        now: Instant,
        wall_us: u64,
        gop: u32,
        frame: VideoFrame,
        layer: u8,
    ) -> Option<DecodeJob> {
        self.stats.frames_received += 1;
        if let Some(last) = self.last_record {
            let gap = now.saturating_duration_since(last);
            self.arrival_gap = Some(self.arrival_gap.map_or(gap, |g| (g * 7 + gap) / 8));
        }
        self.last_record = Some(now);
        self.last_arrival = Some(now);
        let age = crate::media::capture_age_us(wall_us, frame.capture_us);
        let min = *self.min_age_us.get_or_insert(age);
        self.min_age_us = Some(min.min(age));

        if let Some(current) = self.gop {
            if newer(current, gop) {
                self.stats.stale += 1;
                return None;
            }
        }
        let new_gop = self.gop.is_none_or(|current| newer(gop, current));
        if layer > 0 && !frame.keyframe() {
            self.stats.enhancement_received += 1;
            if new_gop || !self.in_step || self.last_base != Some(frame.frame) {
                self.stats.enhancement_skipped += 1;
                return None;
            }
            return Some(DecodeJob {
                av1: frame.av1,
                frame: frame.frame,
                capture_us: frame.capture_us,
                age_us: age,
                run: self.run,
            });
        }
        if frame.keyframe() {
            self.stats.keyframes += 1;
            // Whatever failed before a keyframe, the frames after it do not depend on it.
            self.run = self.run.wrapping_add(1);
            if new_gop || !self.in_step {
                self.gop = Some(gop);
                self.in_step = true;
                self.need_keyframe = false;
            }
        } else if new_gop || self.expect != Some(frame.frame) {
            // The GOP's keyframe, or a frame before this one, is missing.
            self.gop = Some(gop);
            self.in_step = false;
        }
        if !self.in_step {
            self.stats.undecodable += 1;
            self.need_keyframe = true;
            return None;
        }
        if age.saturating_sub(min) > BACKLOG.as_micros() as i64 && self.backlog_asked != Some(gop) {
            // Far behind: keep decoding (later frames need this one), but ask for a fresh start.
            self.backlog_asked = Some(gop);
            self.backlog_pending = true;
        }
        self.expect = Some(frame.frame.wrapping_add(1));
        self.last_base = Some(frame.frame);
        Some(DecodeJob { av1: frame.av1, frame: frame.frame, capture_us: frame.capture_us, age_us: age, run: self.run })
    }

    /// `job` was decoded at `now` into `result`: the pictures wait for their turn. A decoder that
    /// failed leaves the receiver out of step until the next keyframe (and a keyframe request goes
    /// out); pictures of frames that were sent off to decode after the one that failed are dropped.
    pub fn on_decoded(&mut self, now: Instant, job: &DecodeJob, result: Result<Vec<Frame>, VideoCodecError>) {
        match result {
            Ok(_) if self.failed_run == Some(job.run) => self.stats.undecodable += 1,
            Ok(pictures) => {
                if !pictures.is_empty() {
                    self.decoded_ages.push_back((now, job.age_us));
                    while self.decoded_ages.front().is_some_and(|(t, _)| now.saturating_duration_since(*t) > AGE_WINDOW) {
                        self.decoded_ages.pop_front();
                    }
                }
                for picture in pictures {
                    self.stats.frames_decoded += 1;
                    self.queue.push_back(Waiting { picture, frame: job.frame, capture_us: job.capture_us });
                }
                while self.queue.len() > MAX_QUEUE {
                    self.queue.pop_front();
                    self.stats.frames_skipped += 1;
                }
            }
            Err(_) => {
                self.stats.decode_errors += 1;
                self.failed_run = Some(job.run);
                if job.run == self.run {
                    self.in_step = false;
                    self.need_keyframe = true;
                }
            }
        }
    }

    /// How old decoded pictures are when they are ready to show, at the least over the last
    /// [`AGE_WINDOW`] (sender's clock): the audio waits this long for lip sync when it is more than
    /// its own delay. The least, because a steady lag (an encoder holding frames back) is worth
    /// syncing to, while the late frames after a burst of loss are not: speech would stay delayed
    /// long after the picture caught up.
    pub fn decoded_age_us(&self) -> Option<i64> {
        self.decoded_ages.iter().map(|(_, a)| *a).min()
    }

    /// Bytes of a record still on its way arrived on the stream of `gop` at `now`: the peer's video
    /// is slow (a keyframe crossing a narrow link takes longer than [`STALL`]), not stalled. Asking
    /// for a keyframe then would make the sender reset the stream carrying the one on its way, and
    /// the next keyframe would meet the same fate. Progress on a stale GOP's stream counts for nothing.
    pub fn on_progress(&mut self, now: Instant, gop: u32) {
        if self.gop.is_none_or(|current| !newer(current, gop)) {
            self.last_arrival = Some(now);
        }
    }

    /// Whether to send a keyframe request now (counted when it says yes).
    pub fn poll_keyframe_request(&mut self, now: Instant) -> bool {
        // A stall is relative to the sender's cadence: a sender that manages 2 fps is slow, not stalled.
        let stall = self.arrival_gap.map_or(STALL, |g| STALL.max(g * 4));
        let stalled = self.remote_sending
            && self.last_arrival.is_some_and(|t| now.saturating_duration_since(t) >= stall);
        if !(self.need_keyframe || self.backlog_pending || stalled) {
            return false;
        }
        if self.last_request.is_some_and(|t| now.saturating_duration_since(t) < REQUEST_GAP) {
            return false;
        }
        self.last_request = Some(now);
        self.backlog_pending = false;
        self.stats.keyframe_requests += 1;
        true
    }

    /// When the next picture is due, as a wall-clock time in µs (`None`: nothing waiting).
    /// `audio_age_us` is the age of the audio playing now (`wall − capture`), if any plays.
    pub fn next_due_us(&self, audio_age_us: Option<i64>) -> Option<u64> {
        let next = self.queue.front()?;
        let age = audio_age_us.unwrap_or(0).max(0) as u64;
        Some(next.capture_us.saturating_add(age))
    }

    /// The picture to show at `wall_us`, if one is due.
    pub fn poll_render(&mut self, now: Instant, wall_us: u64, audio_age_us: Option<i64>) -> Option<Rendered> {
        let due = self.next_due_us(audio_age_us)?;
        if wall_us < due && self.queue.len() < MAX_QUEUE {
            return None;
        }
        let d = self.queue.pop_front()?;
        let age_us = crate::media::capture_age_us(wall_us, d.capture_us);
        self.stats.av_sync_ms = audio_age_us.map(|a| age_us.saturating_sub(a) as f64 / 1000.0);
        if let (Some(sync), Some(first)) = (self.stats.av_sync_ms, self.first_render) {
            if now.saturating_duration_since(first) >= Duration::from_secs(1) {
                self.stats.av_sync_max_ms = self.stats.av_sync_max_ms.max(sync.abs());
            }
        }
        self.first_render.get_or_insert(now);
        if let Some(last) = self.last_render {
            let gap = now.saturating_duration_since(last);
            if let Some(avg) = self.avg_interval {
                if self.remote_sending && gap > (avg * 3).max(avg + Duration::from_millis(150)) {
                    self.stats.freezes += 1;
                    self.stats.frozen_ms += gap.as_millis() as u64;
                }
                self.avg_interval = Some((avg * 7 + gap) / 8);
            } else {
                self.avg_interval = Some(gap);
            }
        }
        self.last_render = Some(now);
        self.stats.frames_rendered += 1;
        self.stats.last_frame = Some(d.frame);
        (self.stats.width, self.stats.height) = (d.picture.width, d.picture.height);
        if let Some(stamp) = pattern::read(&d.picture) {
            let now_ms = (wall_us / 1000) as u32;
            self.stats.glass_to_glass_ms = Some(f64::from(now_ms.wrapping_sub(stamp.capture_ms) as i32));
        }
        Some(Rendered { picture: d.picture, frame: d.frame, capture_us: d.capture_us })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::fake::{FakeVideoDecoder, FakeVideoEncoder};
    use crate::media::video::cpu_adaptation::VideoFormat;
    use crate::media::video::encoder::EncodeWorker;
    use crate::media::video::pattern::Stamp;
    use crate::media::video::sender::{Outgoing, SenderConfig, VideoSender};

    fn pair() -> (VideoSender, VideoReceiver) {
        let a = FrameKeys::new([1; 32], [2; 32], true, b"h");
        let b = FrameKeys::new([1; 32], [2; 32], false, b"h");
        let config = SenderConfig { max_format: VideoFormat { width: 320, height: 180, fps: 30 }, ..Default::default() };
        (VideoSender::new(&a, config), VideoReceiver::new(&b, 1).unwrap())
    }

    const T: u64 = 1_000_000_000_000;

    /// Sends frames `from..to`, 33 ms apart, starting at `t0`; returns the records.
    fn send(s: &mut VideoSender, t0: Instant, from: u32, to: u32) -> Vec<(u32, Outgoing)> {
        (from..to)
            .flat_map(|n| {
                let t = t0 + Duration::from_millis(33 * u64::from(n));
                let pic = pattern::draw(320, 180, Stamp { counter: n, capture_ms: n }).unwrap();
                s.send(t, &pic, T + 33_000 * u64::from(n)).unwrap().into_iter().map(move |o| (n, o))
            })
            .collect()
    }

    fn deliver(r: &mut VideoReceiver, t0: Instant, records: &[(u32, Outgoing)], late_ms: u64) {
        for (n, o) in records {
            let at = t0 + Duration::from_millis(33 * u64::from(*n) + late_ms);
            let wall = T + 33_000 * u64::from(*n) + late_ms * 1000;
            let _ = r.on_record(at, wall, o.gop, &o.record[4..]);
        }
    }

    /// Records for pictures `from..to` (33 ms apart from `t0`), encoded with the fake encoder.
    fn fake_records(s: &mut VideoSender, w: &mut EncodeWorker, t0: Instant, from: u32, to: u32) -> Vec<Outgoing> {
        let mut out = Vec::new();
        for n in from..to {
            let t = t0 + Duration::from_millis(33 * u64::from(n));
            let pic = pattern::draw(320, 180, Stamp { counter: n, capture_ms: n }).unwrap();
            let job = s.begin(t, pic, T + 33_000 * u64::from(n));
            let result = w.encode(&job);
            out.extend(s.finish(t, &job, result));
        }
        out
    }

    fn fake_pair() -> (VideoSender, EncodeWorker, VideoReceiver) {
        let (s, _) = pair();
        let b = FrameKeys::new([1; 32], [2; 32], false, b"h");
        (s, EncodeWorker::with_opener(FakeVideoEncoder::open), VideoReceiver::with_external_decoder(&b))
    }

    fn accept(r: &mut VideoReceiver, t0: Instant, o: &Outgoing) -> Option<DecodeJob> {
        r.accept_record(t0, T, o.gop, &o.record[4..]).unwrap()
    }

    #[test]
    fn without_a_codec_a_gap_in_frame_numbers_means_no_decode_job_until_a_keyframe() {
        let (mut s, mut w, mut r) = fake_pair();
        let mut decoder = FakeVideoDecoder::new();
        let t0 = Instant::now();
        let recs = fake_records(&mut s, &mut w, t0, 0, 5);
        for o in &recs[..2] {
            let job = accept(&mut r, t0, o).expect("in order: decode it");
            let pictures = decoder.decode(&job.av1);
            r.on_decoded(t0, &job, pictures);
        }
        // Frame 2 is lost: 3 and 4 are not worth decoding.
        assert_eq!(accept(&mut r, t0, &recs[3]), None);
        assert_eq!(accept(&mut r, t0, &recs[4]), None);
        assert!(r.poll_keyframe_request(t0));
        s.on_keyframe_request(t0 + Duration::from_secs(1));
        let k = fake_records(&mut s, &mut w, t0, 30, 31);
        let job = accept(&mut r, t0, &k[0]).expect("a keyframe: decodable again");
        let pictures = decoder.decode(&job.av1);
        r.on_decoded(t0, &job, pictures);
        let st = r.stats();
        assert_eq!((st.frames_decoded, st.undecodable, st.keyframes), (3, 2, 2));
        let shown: Vec<u32> = std::iter::from_fn(|| r.poll_render(t0, T + 10_000_000, None)).map(|p| p.frame).collect();
        assert_eq!(shown, [0, 1, 5]);
    }

    #[test]
    fn a_failure_reported_after_more_jobs_went_out_drops_their_pictures_until_the_next_keyframe() {
        let (mut s, mut w, mut r) = fake_pair();
        let t0 = Instant::now();
        let recs = fake_records(&mut s, &mut w, t0, 0, 3);
        let jobs: Vec<DecodeJob> = recs.iter().map(|o| accept(&mut r, t0, o).unwrap()).collect();
        // The decoder thread is behind: a keyframe arrives before it reports that frame 1 failed.
        s.on_keyframe_request(t0 + Duration::from_secs(1));
        let k = fake_records(&mut s, &mut w, t0, 30, 31);
        let key = accept(&mut r, t0, &k[0]).unwrap();
        let picture = || Ok(vec![Frame::black(320, 180).unwrap()]);
        r.on_decoded(t0, &jobs[0], picture());
        r.on_decoded(t0, &jobs[1], Err(VideoCodecError::Decoder("broken".into())));
        r.on_decoded(t0, &jobs[2], picture());
        r.on_decoded(t0, &key, picture());
        let st = r.stats();
        assert_eq!((st.frames_decoded, st.decode_errors, st.undecodable), (2, 1, 1), "frame 2 depended on 1");
        assert!(!r.poll_keyframe_request(t0), "the keyframe after the failure is decoding already");
        let delta = fake_records(&mut s, &mut w, t0, 31, 32);
        assert!(accept(&mut r, t0, &delta[0]).is_some(), "still in step after that keyframe");
        // Without a keyframe after it, a failure stops decoding and asks for one.
        r.on_decoded(t0, &key, Err(VideoCodecError::Decoder("broken".into())));
        assert!(accept(&mut r, t0, &fake_records(&mut s, &mut w, t0, 32, 33)[0]).is_none());
        assert!(r.poll_keyframe_request(t0));
    }

    #[test]
    fn a_long_gap_between_pictures_is_a_freeze_and_its_length_is_the_frozen_time() {
        let (mut s, mut w, mut r) = fake_pair();
        let t0 = Instant::now();
        r.set_remote_sending(true, t0);
        let mut decoder = FakeVideoDecoder::new();
        // Pictures 33 ms apart, then nothing for 600 ms, then 33 ms apart again.
        let shown_at = |n: u32| t0 + Duration::from_millis(33 * u64::from(n) + if n >= 10 { 567 } else { 0 });
        for (n, o) in (0..).zip(fake_records(&mut s, &mut w, t0, 0, 15)) {
            let job = accept(&mut r, shown_at(n), &o).expect("in order");
            let pictures = decoder.decode(&job.av1);
            r.on_decoded(shown_at(n), &job, pictures);
            let shown = r.poll_render(shown_at(n), T + 10_000_000, None).expect("due");
            assert_eq!(shown.frame, n);
        }
        let st = r.stats();
        assert_eq!(st.freezes, 1, "one pause of 600 ms among 33 ms steps");
        assert_eq!(st.frozen_ms, 600, "the whole gap counts");
    }

    #[test]
    fn frames_in_order_decode_and_render_when_the_audio_has_caught_up() {
        let (mut s, mut r) = pair();
        let t0 = Instant::now();
        r.set_remote_sending(true, t0);
        let recs = send(&mut s, t0, 0, 3);
        deliver(&mut r, t0, &recs[..1], 10);
        // Audio plays 60 ms after capture: the picture (10 ms old) waits.
        assert!(r.poll_render(t0, T + 10_000, Some(60_000)).is_none());
        let shown = r.poll_render(t0, T + 60_000, Some(60_000)).expect("due");
        assert_eq!(shown.frame, 0);
        assert_eq!(pattern::read(&shown.picture).map(|s| s.counter), Some(0));
        assert_eq!(r.stats().av_sync_ms, Some(0.0));
        assert_eq!(r.decoded_age_us(), Some(10_000), "decoded 10 ms after capture");
        deliver(&mut r, t0, &recs[1..], 10);
        assert_eq!(r.stats().frames_decoded, 3);
        assert!(!r.poll_keyframe_request(t0 + Duration::from_millis(100)), "nothing wrong, nothing asked");
    }

    #[test]
    fn a_missing_frame_stops_decoding_until_a_keyframe_and_asks_for_one_rate_limited() {
        let (mut s, mut r) = pair();
        let t0 = Instant::now();
        let recs = send(&mut s, t0, 0, 5);
        deliver(&mut r, t0, &recs[..2], 5);
        deliver(&mut r, t0, &recs[3..], 5); // frame 2 lost
        let st = r.stats();
        assert_eq!((st.frames_decoded, st.undecodable), (2, 2));
        let t = t0 + Duration::from_millis(200);
        assert!(r.poll_keyframe_request(t));
        assert!(!r.poll_keyframe_request(t + Duration::from_millis(100)), "rate-limited");
        assert!(r.poll_keyframe_request(t + REQUEST_GAP));
        // The sender answers with a new GOP; decoding resumes and the requests stop.
        s.on_keyframe_request(t0 + Duration::from_millis(500));
        let k = send(&mut s, t0, 15, 17);
        assert!(k[0].1.new_gop);
        deliver(&mut r, t0, &k, 5);
        assert_eq!(r.stats().frames_decoded, 4);
        assert!(!r.poll_keyframe_request(t0 + Duration::from_secs(5)));
        // The old GOP's leftovers are stale now.
        deliver(&mut r, t0, &recs[2..3], 600);
        assert_eq!(r.stats().stale, 1);
    }

    #[test]
    fn a_backlog_or_a_stall_asks_for_a_keyframe_and_tampering_is_counted() {
        let (mut s, mut r) = pair();
        let t0 = Instant::now();
        r.set_remote_sending(true, t0);
        let recs = send(&mut s, t0, 0, 4);
        deliver(&mut r, t0, &recs[..2], 5);
        assert!(!r.poll_keyframe_request(t0 + Duration::from_millis(60)));
        deliver(&mut r, t0, &recs[2..3], 5 + 1100); // over a second behind
        let t = t0 + Duration::from_millis(1200);
        assert!(r.poll_keyframe_request(t));
        assert_eq!(r.decoded_age_us(), Some(5_000), "a late frame does not make the audio wait");
        // Once per GOP: the next late frame does not ask again.
        deliver(&mut r, t0, &recs[3..4], 5 + 1100);
        assert!(!r.poll_keyframe_request(t + REQUEST_GAP));
        // Nothing for a long while (over STALL and four usual gaps) while the peer sends: asks again.
        assert!(r.poll_keyframe_request(t + Duration::from_secs(1)));
        r.set_remote_sending(false, t0);
        assert!(!r.poll_keyframe_request(t0 + Duration::from_secs(9)), "a paused peer is not stalled");
        let more = send(&mut s, t0, 4, 5);
        let mut bad = more[0].1.record.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(r.on_record(t0, T, 0, &bad[4..]).is_err());
        assert!(r.on_record(t0, T, 0, b"garbage").is_err());
        assert_eq!((r.stats().tampered, r.stats().malformed), (1, 1));
    }

    #[test]
    fn a_slow_sender_is_not_taken_for_a_stalled_one() {
        let (mut s, mut r) = pair();
        let t0 = Instant::now();
        r.set_remote_sending(true, t0);
        // Two frames a second (an encoder that cannot keep up): 500 ms between arrivals.
        for n in 0..6u32 {
            let at = t0 + Duration::from_millis(500 * u64::from(n));
            let pic = pattern::draw(320, 180, Stamp { counter: n, capture_ms: n }).unwrap();
            for o in s.send(at, &pic, T + 500_000 * u64::from(n)).unwrap() {
                r.on_record(at, T + 500_000 * u64::from(n) + 5_000, o.gop, &o.record[4..]).unwrap();
            }
            // Once the cadence is known (from the second frame), a 450 ms wait is normal.
            if n > 0 {
                assert!(!r.poll_keyframe_request(at + Duration::from_millis(450)), "frame {n}: slow, not stalled");
            }
        }
        // Silence for four of its gaps: that is a stall.
        assert!(r.poll_keyframe_request(t0 + Duration::from_millis(2500 + 2100)));
    }

    #[test]
    fn a_keyframe_still_arriving_is_slow_not_stalled() {
        let (mut s, mut r) = pair();
        let t0 = Instant::now();
        r.set_remote_sending(true, t0);
        let recs = send(&mut s, t0, 0, 3);
        deliver(&mut r, t0, &recs, 5);
        // A new GOP's keyframe crosses a narrow link: its bytes trickle in for two seconds, and no
        // record is whole until then. Each 100 ms some arrive; nobody asks for another keyframe.
        let last = t0 + Duration::from_millis(33 * 2 + 5);
        for step in 1..=20u64 {
            let at = last + Duration::from_millis(100 * step);
            r.on_progress(at, 1);
            assert!(!r.poll_keyframe_request(at + Duration::from_millis(50)), "{} ms in: still arriving", 100 * step);
        }
        // GOP 1's keyframe is whole at last, 2.1 s after the previous record.
        s.on_keyframe_request(t0 + Duration::from_secs(10));
        let k = send(&mut s, t0, 3, 4);
        assert_eq!((k[0].1.gop, k[0].1.new_gop), (1, true));
        let t = last + Duration::from_millis(2100);
        r.on_record(t, T + 33_000 * 3 + 5_000, 1, &k[0].1.record[4..]).unwrap();
        assert_eq!((r.stats().keyframes, r.stats().frames_decoded), (2, 4));
        assert!(!r.poll_keyframe_request(t + Duration::from_millis(10)));
        // Bytes on GOP 0's stream (a backlog the sender gave up on) are no sign of life: after the
        // stall time (here 1165 ms: four times the mean gap between records) a keyframe is asked for.
        for step in 1..=14u64 {
            r.on_progress(t + Duration::from_millis(100 * step), 0);
        }
        assert!(r.poll_keyframe_request(t + Duration::from_millis(1500)), "stale progress counted as life");
    }

    #[test]
    fn garbage_that_authenticates_is_a_decode_error_not_a_panic() {
        let (_, mut r) = pair();
        let a = FrameKeys::new([1; 32], [2; 32], true, b"h");
        let mut sealer = a.sealer(MediaKind::Video);
        let junk = wire::VideoFrame {
            frame: 0,
            capture_us: T,
            flags: wire::FLAG_KEYFRAME,
            width: 320,
            height: 180,
            av1: vec![0xff; 300],
        };
        let rec = wire::seal(&mut sealer, 0, &junk);
        let t0 = Instant::now();
        assert!(matches!(r.on_record(t0, T, 0, &rec[4..]), Err(VideoReceiveError::Codec(_))));
        assert_eq!(r.stats().decode_errors, 1);
        assert!(r.poll_keyframe_request(t0));
    }

    #[test]
    fn extreme_capture_and_wall_times_from_the_peer_do_not_overflow() {
        // (capture, wall) per frame: the age (wall − capture) of each is at an end of i64, or past it.
        let cases: [[(u64, u64); 3]; 3] = [
            [(0, u64::MAX), (1 << 63, 0), (u64::MAX, u64::MAX)],
            [(1 << 63, 0), (0, 1 << 63), (0, u64::MAX)],
            [(u64::MAX, 0), (0, 0), (0, u64::MAX)],
        ];
        let clamp = |wall: u64, capture: u64| {
            (i128::from(wall) - i128::from(capture)).clamp(-i128::from(i64::MAX), i128::from(i64::MAX)) as i64
        };
        for frames in cases {
            let (mut s, mut r) = pair();
            let t0 = Instant::now();
            r.set_remote_sending(true, t0);
            for (n, (capture, wall)) in frames.into_iter().enumerate() {
                let at = t0 + Duration::from_millis(33 * n as u64);
                let pic = pattern::draw(320, 180, Stamp { counter: n as u32, capture_ms: n as u32 }).unwrap();
                for o in s.send(at, &pic, capture).unwrap() {
                    r.on_record(at, wall, o.gop, &o.record[4..]).unwrap();
                }
            }
            assert_eq!(r.stats().frames_decoded, 3, "{frames:?}");
            let least = frames.iter().map(|(c, w)| clamp(*w, *c)).min();
            assert_eq!(r.decoded_age_us(), least, "{frames:?}");
            let _ = r.poll_keyframe_request(t0 + Duration::from_secs(1));
            for (wall, audio) in [(0, Some(i64::MAX)), (u64::MAX, Some(i64::MIN)), (1 << 63, None)] {
                let _ = r.next_due_us(audio);
                let _ = r.poll_render(t0 + Duration::from_secs(2), wall, audio);
            }
            assert!(r.stats().frames_rendered >= 1, "{frames:?}");
        }
    }
}
