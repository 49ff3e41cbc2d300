//! The video half of a [`MediaSession`](super::MediaSession), sans-IO: when to capture a picture,
//! what to encode, which records go out on which GOP stream, what to decode and when to show it,
//! and when to ask the peer for a keyframe. It owns the [`VideoSender`] and the [`VideoReceiver`];
//! the codecs, the source and the sink belong to the IO layer, which the session's outputs drive.
//!
//! One frame is captured at a time: while a capture or its encode is under way, a frame tick that
//! comes due is remembered and served as soon as the encode is back (as a sequential capture and
//! encode loop would), never queued.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{MediaControl, Now, Output};
use crate::media::codec::av1::VideoCodecError;
use crate::media::video::Frame;
use crate::media::video::encoder::{EncodeJob, Encoded};
use crate::media::video::pattern::Stamp;
use crate::media::video::receiver::{DecodeJob, VideoReceiveStats, VideoReceiver};
use crate::media::video::sender::{START_BITRATE, SenderConfig, VideoSendStats, VideoSender};
use crate::crypto::frame::FrameKeys;

/// The video's counters over the session's last report interval, and its switches: what the
/// session itself knows for `hail status` (the IO layer adds its source, sink and buffers).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VideoCounters {
    /// We send video (the user's switch).
    pub sending: bool,
    /// The peer says it sends video.
    pub remote_sending: bool,
    /// Video is on but the path has no room for it now (below the controller's minimum).
    pub paused_for_bandwidth: bool,
    /// The peer's video is on but paused for bandwidth (it said so): no pictures are expected.
    #[serde(default)]
    pub remote_paused_for_bandwidth: bool,
    /// The source failed: nothing is sent.
    pub source_failed: bool,
    /// Records sent over the last interval, per second.
    pub send_fps: u32,
    /// Pictures shown over the last interval, per second.
    pub receive_fps: u32,
    /// Bits of records sent over the last interval, per second.
    pub send_bitrate: u64,
    /// Bits of records received over the last interval, per second.
    pub receive_bitrate: u64,
    /// Records the path could not take in time (a new GOP was started instead).
    pub send_dropped: u64,
    /// The sender's counters.
    pub send: VideoSendStats,
    /// The receiver's counters.
    pub receive: VideoReceiveStats,
}

/// The counters of the report interval under way.
#[derive(Debug, Default)]
struct Window {
    frames_sent: u32,
    bytes_sent_at_start: u64,
    frames_shown: u32,
    bytes_received: u64,
}

/// The session's video.
#[derive(Debug)]
pub(super) struct VideoHalf {
    sender: VideoSender,
    receiver: VideoReceiver,
    /// The share of the path the rate loop gives video, bps (0: paused for bandwidth).
    budget: u32,
    next_frame: Instant,
    /// A capture or its encode is under way.
    in_flight: bool,
    /// A frame tick came due while one was in flight.
    frame_due: bool,
    window: Window,
    counters: VideoCounters,
    /// What the peer was last told of a pause for bandwidth ([`MediaControl::BandwidthPause`]).
    told_paused: bool,
}

impl VideoHalf {
    pub(super) fn new(keys: &FrameKeys, config: SenderConfig, now: Instant) -> Self {
        VideoHalf {
            sender: VideoSender::new(keys, config),
            receiver: VideoReceiver::with_external_decoder(keys),
            budget: START_BITRATE,
            next_frame: now,
            in_flight: false,
            frame_due: false,
            window: Window::default(),
            counters: VideoCounters::default(),
            told_paused: false,
        }
    }

    /// Pictures are wanted now: our video is on, the path has room, the source works.
    fn capturing(&self) -> bool {
        self.counters.sending && self.budget > 0 && !self.counters.source_failed
    }

    /// Our video on or off. Off drops the encoder; on captures at once.
    pub(super) fn set_sending(&mut self, on: bool, now: Instant, out: &mut VecDeque<Output>) {
        let was = self.capturing();
        if !on {
            self.sender.pause();
            out.push_back(Output::ReleaseEncoder);
            self.counters.send_fps = 0;
        }
        self.counters.sending = on;
        if !was && self.capturing() {
            self.next_frame = now;
        }
        self.tell_pause(out);
    }

    /// Tells the peer when our video, on, pauses for bandwidth or sends again: whenever that
    /// differs from what it was last told. While our video is off nothing is said (`media_state`
    /// tells the peer to expect nothing); switched on, it hears the state if it changed meanwhile.
    fn tell_pause(&mut self, out: &mut VecDeque<Output>) {
        let paused = self.budget == 0;
        if self.counters.sending && paused != self.told_paused {
            self.told_paused = paused;
            out.push_back(Output::SendControl(MediaControl::BandwidthPause(paused)));
        }
    }

    /// The peer's video on or off (a pause is not a stall).
    pub(super) fn set_remote_sending(&mut self, on: bool, now: Instant) {
        self.counters.remote_sending = on;
        self.expect_pictures(now);
    }

    /// The peer's video is paused for bandwidth, or sends again: while paused, no pictures are
    /// expected (no keyframe requests, no freezes counted), as when its video is off.
    pub(super) fn set_remote_paused(&mut self, paused: bool, now: Instant) {
        self.counters.remote_paused_for_bandwidth = paused;
        self.expect_pictures(now);
    }

    /// Tells the receiver whether pictures should come: the peer's video is on and not paused.
    fn expect_pictures(&mut self, now: Instant) {
        let expected = self.counters.remote_sending && !self.counters.remote_paused_for_bandwidth;
        self.receiver.set_remote_sending(expected, now);
    }

    /// The rate loop's share for video: 0 pauses (and drops the encoder), more sets the target.
    pub(super) fn set_budget(&mut self, bps: u32, now: Instant, out: &mut VecDeque<Output>) {
        let was = self.capturing();
        if bps == 0 && self.budget > 0 {
            self.sender.pause();
            out.push_back(Output::ReleaseEncoder);
        }
        self.budget = bps;
        if bps > 0 {
            self.sender.set_target_bitrate(bps);
        }
        self.counters.paused_for_bandwidth = bps == 0;
        if !was && self.capturing() {
            self.next_frame = now;
        }
        self.tell_pause(out);
    }

    /// The source cannot give pictures: nothing more is asked of it.
    pub(super) fn source_failed(&mut self) {
        self.counters.source_failed = true;
        self.in_flight = false;
        self.frame_due = false;
    }

    /// The source has a rate of its own: frame ticks no faster than that.
    pub(super) fn source_rate(&mut self, rate: crate::media::video::clock::FrameRate) {
        self.sender.set_source_rate(rate);
    }

    /// The peer asked for a keyframe.
    pub(super) fn keyframe_requested(&mut self, now: Instant) {
        self.sender.on_keyframe_request(now);
    }

    /// A record could not be queued for its stream (the path does not keep up): the GOP's tail is
    /// dropped and a new one starts.
    pub(super) fn record_dropped(&mut self) {
        self.sender.restart_gop();
        self.counters.send_dropped += 1;
        self.window.frames_sent = self.window.frames_sent.saturating_sub(1);
    }

    /// A GOP stream failed (not opened, or a write refused): a new GOP starts.
    pub(super) fn stream_failed(&mut self) {
        self.sender.restart_gop();
    }

    /// The picture [`Output::CaptureVideo`] asked for (`None`: the source had none this time).
    pub(super) fn captured(&mut self, now: Instant, picture: Option<Frame>, capture_us: u64, out: &mut VecDeque<Output>) {
        match picture {
            Some(picture) if self.capturing() => {
                out.push_back(Output::EncodeVideo(self.sender.begin(now, picture, capture_us)));
            }
            _ => self.in_flight = false,
        }
    }

    /// [`Output::EncodeVideo`]'s job, encoded: its records go out, and a frame that came due
    /// meanwhile is captured now.
    pub(super) fn encoded(
        &mut self,
        now: Now,
        job: &EncodeJob,
        result: Result<Encoded, VideoCodecError>,
        out: &mut VecDeque<Output>,
    ) {
        self.in_flight = false;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "video encoding failed; starting a new encoder");
        }
        for record in self.sender.finish(now.at, job, result) {
            self.window.frames_sent += 1;
            out.push_back(Output::SendRecord(record));
        }
        if std::mem::take(&mut self.frame_due) && self.capturing() {
            self.capture(now, out);
        }
    }

    fn capture(&mut self, now: Now, out: &mut VecDeque<Output>) {
        self.in_flight = true;
        let stamp = Stamp { counter: self.sender.stats().frames as u32, capture_ms: (now.wall_us / 1000) as u32 };
        out.push_back(Output::CaptureVideo { format: self.sender.format(), stamp, capture_us: now.wall_us });
    }

    /// A record's body from the stream of `gop`, arriving now: what to decode, if anything.
    pub(super) fn record(&mut self, now: Now, gop: u32, body: &[u8], out: &mut VecDeque<Output>) {
        self.window.bytes_received += body.len() as u64 + 4;
        match self.receiver.accept_record(now.at, now.wall_us, gop, body) {
            Ok(Some(job)) => out.push_back(Output::DecodeVideo(job)),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "dropped a video record"),
        }
    }

    /// Part of a record arrived on the stream of `gop`: the peer's video is slow, not stalled.
    pub(super) fn progress(&mut self, now: Instant, gop: u32) {
        self.receiver.on_progress(now, gop);
    }

    /// [`Output::DecodeVideo`]'s job, decoded: the pictures wait for their turn. Returns how old
    /// the decoded pictures are (lip sync's input), if any were.
    pub(super) fn decoded(
        &mut self,
        now: Instant,
        job: &DecodeJob,
        result: Result<Vec<Frame>, VideoCodecError>,
    ) -> Option<i64> {
        if let Err(e) = &result {
            tracing::debug!(error = %e, "a video frame did not decode");
        }
        self.receiver.on_decoded(now, job, result);
        self.receiver.decoded_age_us()
    }

    /// Shows what is due at `now`, given the age of the audio playing (lip sync).
    pub(super) fn render(&mut self, now: Now, audio_age_us: Option<i64>, out: &mut VecDeque<Output>) {
        while let Some(shown) = self.receiver.poll_render(now.at, now.wall_us, audio_age_us) {
            self.window.frames_shown += 1;
            out.push_back(Output::ShowVideo(shown));
        }
    }

    /// The frame tick and the keyframe request, when due.
    pub(super) fn handle_timeout(&mut self, now: Now, out: &mut VecDeque<Output>) {
        if self.capturing() && self.next_frame <= now.at {
            if self.in_flight {
                self.frame_due = true;
            } else {
                self.capture(now, out);
            }
            self.next_frame = (self.next_frame + self.sender.format().interval()).max(now.at);
            if self.next_frame == now.at {
                // Late by more than a frame: this tick's capture is the catch-up; the next is a
                // whole interval on.
                self.next_frame = now.at + self.sender.format().interval();
            }
        }
        if self.receiver.poll_keyframe_request(now.at) {
            out.push_back(Output::SendControl(MediaControl::KeyframeRequest));
            }
    }

    /// Closes the report interval of length `interval`: the per-second counters.
    pub(super) fn close_window(&mut self, interval: Duration) {
        let per_second = |n: u64| (n as f64 / interval.as_secs_f64().max(1e-3)).round() as u64;
        let bytes = self.sender.stats().bytes;
        let sent = bytes.saturating_sub(self.window.bytes_sent_at_start);
        self.counters.send_fps = if self.capturing() { per_second(u64::from(self.window.frames_sent)) as u32 } else { 0 };
        self.counters.send_bitrate = per_second(sent * 8);
        self.counters.receive_fps = per_second(u64::from(self.window.frames_shown)) as u32;
        self.counters.receive_bitrate = per_second(self.window.bytes_received * 8);
        self.window = Window { bytes_sent_at_start: bytes, ..Window::default() };
    }

    /// When the next frame tick or picture is due (`None`: nothing until an input).
    pub(super) fn poll_timeout(&self, last: Now, audio_age_us: Option<i64>) -> Option<Instant> {
        let frame = self.capturing().then_some(self.next_frame);
        let show = self.receiver.next_due_us(audio_age_us).map(|due| {
            last.at + Duration::from_micros(due.saturating_sub(last.wall_us))
        });
        [frame, show].into_iter().flatten().min()
    }

    /// The counters.
    pub(super) fn counters(&self) -> VideoCounters {
        VideoCounters { send: self.sender.stats(), receive: self.receiver.stats(), ..self.counters.clone() }
    }
}
