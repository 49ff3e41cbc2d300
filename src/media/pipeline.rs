//! The IO layer of a call's audio: one tokio task per call, a thin driver of the call's sans-IO
//! [`MediaSession`]. It owns what does IO or real work (the source, the sink, the Opus encoder and
//! decoder, the QUIC connection's datagrams), does what the session asks (capture, encode, decode
//! and play, send), and sleeps until the session's next timeout or the next datagram. When the
//! session ticks (every 20 ms a frame, every 20 ms offset by 10 ms a playout, every second a
//! receiver report) is the session's business. A source or sink that cannot be opened does not stop
//! the call: that direction is simply off, and the reason shows in the stats.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::audio::{ReceiveStats, SendStats, decode_playout};
use super::codec::opus::{DEFAULT_BITRATE, OpusDecoder, OpusEncoder};
use super::feedback::MediaFeedback;
use super::io::{AudioSink, AudioSource, NullSink, SinkSpec, SourceSpec, open_sink, open_source};
use super::session::{Input, MediaSession, Now, Output};
use crate::wall_clock::now_us as wall_us;
use crate::crypto::frame::FrameKeys;

/// How often receiver reports go out.
pub use super::session::REPORT_INTERVAL;

/// Where a call's audio comes from and goes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioConfig {
    /// The source.
    pub input: SourceSpec,
    /// The sink.
    pub output: SinkSpec,
    /// The Opus bitrate, bps.
    pub bitrate: i32,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig { input: SourceSpec::DefaultDevice, output: SinkSpec::DefaultDevice, bitrate: DEFAULT_BITRATE }
    }
}

/// The audio part of `hail status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioStats {
    /// The source in use.
    pub input: String,
    /// The sink in use.
    pub output: String,
    /// Why the source could not be opened (nothing is sent then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_error: Option<String>,
    /// Why the sink could not be opened (audio is received and discarded then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_error: Option<String>,
    /// Our microphone is muted.
    pub muted: bool,
    /// Sending.
    pub send: SendStats,
    /// Receiving.
    pub receive: ReceiveStats,
    /// Bitrate sent over the last second, bps.
    pub send_bitrate: u64,
    /// Bitrate received over the last second, bps.
    pub receive_bitrate: u64,
    /// The QUIC path's round-trip time, ms.
    pub rtt_ms: f64,
}

/// A running audio pipeline. Dropping it stops the task.
#[derive(Debug)]
pub struct AudioPipeline {
    stats: Arc<Mutex<AudioStats>>,
    mute: mpsc::Sender<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl AudioPipeline {
    /// Starts the call's audio on `conn`.
    pub fn start(
        conn: quinn::Connection,
        keys: &FrameKeys,
        config: AudioConfig,
        muted: bool,
        feedback: Arc<MediaFeedback>,
    ) -> Result<Self, super::MediaStartError> {
        let codecs = (OpusEncoder::new(config.bitrate)?, OpusDecoder::new()?);
        let session = MediaSession::new(keys, config.bitrate, muted, now());
        let stats = Arc::new(Mutex::new(AudioStats {
            input: config.input.to_string(),
            output: config.output.to_string(),
            muted,
            ..Default::default()
        }));
        let (mute_tx, mute_rx) = mpsc::channel(8);
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(run(conn, session, codecs, config, stats.clone(), mute_rx, stop_rx, feedback));
        Ok(AudioPipeline { stats, mute: mute_tx, stop: Some(stop_tx), task: Some(task) })
    }

    /// The current counters.
    pub fn stats(&self) -> AudioStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Mutes or unmutes the microphone.
    pub fn set_muted(&self, muted: bool) {
        let _ = self.mute.try_send(muted);
    }

    /// Stops: the sink is finished (a WAV file completed) before the task ends.
    pub fn stop(mut self) -> Option<JoinHandle<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take()
    }
}

impl Drop for AudioPipeline {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}


fn now() -> Now {
    Now { at: Instant::now(), wall_us: wall_us() }
}

/// The audio task: a thin driver of the call's [`MediaSession`]. It owns the devices, the codecs
/// and the connection, runs what the session asks for, and sleeps until its next timeout or input.
#[allow(clippy::too_many_arguments)]
async fn run(
    conn: quinn::Connection,
    mut session: MediaSession,
    (mut encoder, mut decoder): (OpusEncoder, OpusDecoder),
    config: AudioConfig,
    stats: Arc<Mutex<AudioStats>>,
    mut mute: mpsc::Receiver<bool>,
    mut stop: oneshot::Receiver<()>,
    feedback: Arc<MediaFeedback>,
) {
    // Opening a device can block for a moment: do it off the async threads.
    let (input, output) = (config.input.clone(), config.output.clone());
    let opened = tokio::task::spawn_blocking(move || (open_source(&input), open_sink(&output))).await;
    let (mut source, mut sink): (Option<Box<dyn AudioSource>>, Box<dyn AudioSink>) = match opened {
        Ok((src, snk)) => {
            let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
            let source = match src {
                Ok(src) => Some(src),
                Err(e) => {
                    tracing::warn!(error = %e, "no microphone: this call sends no audio");
                    s.input_error = Some(e.to_string());
                    None
                }
            };
            let sink: Box<dyn AudioSink> = match snk {
                Ok(snk) => snk,
                Err(e) => {
                    tracing::warn!(error = %e, "no speaker: received audio is discarded");
                    s.output_error = Some(e.to_string());
                    Box::new(NullSink)
                }
            };
            (source, sink)
        }
        Err(_) => (None, Box::new(NullSink)),
    };

    let (mut last_sent, mut last_received, mut window) = (0u64, 0u64, Instant::now());
    let mut last_video_age = None;
    loop {
        // Do what the session asks until it has nothing before its next timeout.
        let wake = loop {
            match session.poll_output() {
                Output::CaptureAudio { capture_us } => {
                    let pcm = source.as_mut().map(|s| s.next_frame());
                    session.handle_input(now(), Input::CapturedAudio { pcm, capture_us });
                }
                Output::EncodeAudio(job) => {
                    let opus = job.encode_with(&mut encoder);
                    session.handle_input(now(), Input::EncodedAudio { job, opus });
                }
                Output::DecodeAudio(playout) => {
                    sink.write_frame(&decode_playout(&mut decoder, &playout));
                    if let Some(age) = session.audio_age_us() {
                        feedback.set_audio_age_us(age);
                    }
                }
                Output::Transmit(datagram) => {
                    if let Err(e) = conn.send_datagram(Bytes::from(datagram)) {
                        tracing::debug!(error = %e, "media datagram not sent");
                    }
                }
                Output::PeerReport { loss_permille } => feedback.on_peer_report(loss_permille),
                Output::Timeout(at) => break at,
            }
        };
        tokio::select! {
            _ = &mut stop => break,
            Some(m) = mute.recv() => {
                session.handle_input(now(), Input::SetMuted(m));
                stats.lock().unwrap_or_else(|p| p.into_inner()).muted = m;
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let n = now();
                // What the video decoder last said about its pictures' age (lip sync), and the
                // path's RTT for the reports.
                let video_age = feedback.last_video_age();
                if video_age != last_video_age {
                    if let Some((wall_us, age_us)) = video_age {
                        session.handle_input(n, Input::VideoAge { wall_us, age_us });
                    }
                    last_video_age = video_age;
                }
                session.handle_input(n, Input::PathRtt(conn.rtt()));
                session.handle_timeout(n);
            }
            datagram = conn.read_datagram() => match datagram {
                Ok(d) => session.handle_input(now(), Input::Datagram(d.to_vec())),
                Err(_) => break,
            },
        }
        if window.elapsed() >= REPORT_INTERVAL {
            let (send, receive) = (session.send_stats(), session.receive_stats());
            let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
            s.send_bitrate = (send.bytes - last_sent) * 8;
            s.receive_bitrate = (receive.bytes - last_received) * 8;
            (last_sent, last_received) = (send.bytes, receive.bytes);
            s.send = send;
            s.receive = receive;
            s.rtt_ms = conn.rtt().as_secs_f64() * 1000.0;
            window = Instant::now();
        }
    }
    sink.finish();
    let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
    s.send = session.send_stats();
    s.receive = session.receive_stats();
}
