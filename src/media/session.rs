//! A call's media, sans-IO: [`MediaSession`] owns the audio sender and receiver, lip sync and the
//! receiver reports, and decides everything on a clock it is handed. The IO layer (the audio task
//! of `media::pipeline`, or the simulator in `tests/common/sim.rs`) feeds it inputs with [`Now`],
//! drains [`Output`]s until [`Output::Timeout`], does what they say (capture, encode, decode and
//! play, send), and feeds back the results. Nothing here reads a clock, spawns, locks or touches a
//! codec or a socket (str0m's `Rtc` and quinn-proto are the models).
//!
//! Today the session carries the call's audio; the video still runs in `media::video_pipeline`,
//! told about the audio through [`Output::PeerReport`] and [`MediaSession::audio_age_us`] and
//! telling lip sync the age of its pictures through [`Input::VideoAge`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::audio::{AudioEncodeJob, AudioReceiver, AudioSender, ReceiveStats, Received, SendStats};
use super::codec::opus::{CodecError, Pcm};
use super::jitter::{FRAME, Playout};
use super::lip_sync::LipSync;
use crate::crypto::frame::FrameKeys;

/// How often a receiver report goes to the peer (and lip sync is revised).
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
    /// The path's round-trip time, for the receiver reports.
    PathRtt(Duration),
    /// The age of the call's decoded pictures (`wall − capture`, µs) at `wall_us`: lip sync holds
    /// audio back when pictures are ready later than sound.
    VideoAge {
        /// When it was measured.
        wall_us: u64,
        /// The age.
        age_us: i64,
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
    /// Decode this (`media::audio::decode_playout`) and play the 20 ms it gives, now.
    DecodeAudio(Playout),
    /// Send this datagram to the peer.
    Transmit(Vec<u8>),
    /// The peer reported how our audio arrives (loss before recovery, per mille): the video's
    /// bitrate controller wants it too.
    PeerReport {
        /// The loss.
        loss_permille: u16,
    },
    /// Nothing more until this time, or until an input.
    Timeout(Instant),
}

/// The session.
#[derive(Debug)]
pub struct MediaSession {
    sender: AudioSender,
    receiver: AudioReceiver,
    lip_sync: LipSync,
    rtt: Duration,
    next_send: Instant,
    next_play: Instant,
    next_report: Instant,
    outputs: VecDeque<Output>,
}

impl MediaSession {
    /// A call's media with the call's frame keys, sending at `bitrate` bps, starting at `now`
    /// (the first frame is captured at once, the first playout half a frame later).
    pub fn new(keys: &FrameKeys, bitrate: i32, muted: bool, now: Now) -> Self {
        let mut sender = AudioSender::new(keys, bitrate);
        sender.set_muted(muted);
        MediaSession {
            sender,
            receiver: AudioReceiver::new(keys),
            lip_sync: LipSync::new(),
            rtt: Duration::ZERO,
            next_send: now.at,
            next_play: now.at + PLAY_OFFSET,
            next_report: now.at + REPORT_INTERVAL,
            outputs: VecDeque::new(),
        }
    }

    /// Takes an input.
    pub fn handle_input(&mut self, now: Now, input: Input) {
        match input {
            Input::Datagram(bytes) => match self.receiver.on_datagram(&bytes, now.at) {
                Ok(Received::Report(report)) => {
                    self.outputs.push_back(Output::PeerReport { loss_permille: report.loss_permille });
                    self.sender.on_peer_report(report);
                }
                Ok(Received::Audio) => {}
                Err(e) => tracing::debug!(error = %e, "dropped a media datagram"),
            },
            Input::CapturedAudio { pcm: Some(pcm), capture_us } => {
                self.outputs.push_back(Output::EncodeAudio(self.sender.begin(&pcm, capture_us)));
            }
            Input::CapturedAudio { pcm: None, .. } => {}
            Input::EncodedAudio { job, opus } => match opus {
                Ok(opus) => self.outputs.push_back(Output::Transmit(self.sender.finish(&job, opus))),
                Err(e) => tracing::warn!(error = %e, "audio encoding failed"),
            },
            Input::SetMuted(muted) => self.sender.set_muted(muted),
            Input::PathRtt(rtt) => self.rtt = rtt,
            Input::VideoAge { wall_us, age_us } => self.lip_sync.handle_video_decoded(wall_us, age_us),
        }
    }

    /// Runs every tick due by `now` (a clock that fell behind catches up with all of them at once,
    /// as a stalled audio task does).
    pub fn handle_timeout(&mut self, now: Now) {
        while self.next_send <= now.at {
            // The capture time of a late tick is its own, not now.
            let late = now.at.saturating_duration_since(self.next_send).as_micros() as u64;
            self.outputs.push_back(Output::CaptureAudio { capture_us: now.wall_us.saturating_sub(late) });
            self.next_send += FRAME;
        }
        while self.next_play <= now.at {
            let playout = self.receiver.playout(now.at, now.wall_us);
            if let Some(age) = self.receiver.playout_age_us() {
                self.lip_sync.handle_audio_played(age);
            }
            self.outputs.push_back(Output::DecodeAudio(playout));
            self.next_play += FRAME;
        }
        while self.next_report <= now.at {
            // Lip sync, once a second: when the peer's pictures are ready later than its sound
            // plays, the jitter buffer holds the sound that much longer.
            let delay = self.lip_sync.sync_delay(now.wall_us, self.receiver.target_delay());
            self.receiver.set_sync_delay(delay);
            let rtt_ms = self.rtt.as_millis().min(u128::from(u16::MAX)) as u16;
            let report = self.receiver.report(rtt_ms);
            self.outputs.push_back(Output::Transmit(self.sender.report(&report)));
            self.next_report += REPORT_INTERVAL;
        }
    }

    /// The next thing to do; [`Output::Timeout`] when there is nothing until then.
    pub fn poll_output(&mut self) -> Output {
        self.outputs.pop_front().unwrap_or_else(|| Output::Timeout(self.poll_timeout()))
    }

    /// When [`MediaSession::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_send.min(self.next_play).min(self.next_report)
    }

    /// How old the audio playing now is (`wall − capture`, µs), once a frame has played.
    pub fn audio_age_us(&self) -> Option<i64> {
        self.receiver.playout_age_us()
    }

    /// The sender's counters.
    pub fn send_stats(&self) -> SendStats {
        self.sender.stats()
    }

    /// The receiver's counters.
    pub fn receive_stats(&self) -> ReceiveStats {
        self.receiver.stats()
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
                    let _ = decode_playout(dec, &p);
                }
                Output::Transmit(d) => sent.push(d),
                Output::PeerReport { .. } => {}
                Output::Timeout(_) => return (sent, played),
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
        // the final step's edge, 1.99 s, so one).
        assert_eq!(a_sent, 100 + 1, "frames and reports sent");
        assert!(b_played >= 95, "b played {b_played} of 100 frames");
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
        let mut playouts = 0;
        loop {
            match s.poll_output() {
                Output::CaptureAudio { capture_us } => captures.push(capture_us - WALL),
                Output::DecodeAudio(_) => playouts += 1,
                Output::Timeout(t) => {
                    assert_eq!(t, t0 + Duration::from_millis(110), "the next tick is the next play tick");
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(captures, [0, 20_000, 40_000, 60_000, 80_000, 100_000]);
        assert_eq!(playouts, 5);
        // Muted: what is encoded is silence, and the datagram says so.
        s.handle_input(
            now(t0, Duration::from_millis(100)),
            Input::CapturedAudio { pcm: Some([500; 960]), capture_us: 1 },
        );
        let Output::EncodeAudio(job) = s.poll_output() else { panic!("an encode job") };
        assert!(job.muted && job.pcm.iter().all(|x| *x == 0));
    }
}
