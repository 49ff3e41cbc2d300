//! The IO layer of a call's audio: one tokio task per call that owns the source, the sink, the
//! sans-IO sender and receiver, and the QUIC connection's datagrams.
//!
//! Every 20 ms it takes a frame from the source and sends it; every 20 ms (offset by 10 ms) it plays
//! one frame from the jitter buffer into the sink; every second it sends a receiver report.
//! Datagrams are handled as they arrive. A source or sink that cannot be opened does not stop the
//! call: that direction is simply off, and the reason shows in the stats.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::audio::{AudioReceiver, AudioSender, ReceiveStats, Received, SendStats};
use super::codec::opus::DEFAULT_BITRATE;
use super::io::{AudioSink, AudioSource, NullSink, SinkSpec, SourceSpec, open_sink, open_source};
use super::feedback::MediaFeedback;
use super::lip_sync::LipSync;
use crate::crypto::frame::FrameKeys;

/// How often receiver reports go out.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);

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
        let sender = AudioSender::new(keys, config.bitrate)?;
        let receiver = AudioReceiver::new(keys)?;
        let stats = Arc::new(Mutex::new(AudioStats {
            input: config.input.to_string(),
            output: config.output.to_string(),
            muted,
            ..Default::default()
        }));
        let (mute_tx, mute_rx) = mpsc::channel(8);
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(run(conn, sender, receiver, config, muted, stats.clone(), mute_rx, stop_rx, feedback));
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

fn wall_us() -> u64 {
    crate::wall_clock::now_us()
}

#[allow(clippy::too_many_arguments)]
async fn run(
    conn: quinn::Connection,
    mut sender: AudioSender,
    mut receiver: AudioReceiver,
    config: AudioConfig,
    muted: bool,
    stats: Arc<Mutex<AudioStats>>,
    mut mute: mpsc::Receiver<bool>,
    mut stop: oneshot::Receiver<()>,
    feedback: Arc<MediaFeedback>,
) {
    sender.set_muted(muted);
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

    let start = tokio::time::Instant::now();
    let mut send_tick = tokio::time::interval_at(start, super::jitter::FRAME);
    let mut play_tick = tokio::time::interval_at(start + Duration::from_millis(10), super::jitter::FRAME);
    let mut report_tick = tokio::time::interval_at(start + REPORT_INTERVAL, REPORT_INTERVAL);
    for t in [&mut send_tick, &mut play_tick, &mut report_tick] {
        t.set_missed_tick_behavior(MissedTickBehavior::Burst);
    }
    let (mut last_sent, mut last_received) = (0u64, 0u64);
    let mut lip_sync = LipSync::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(m) = mute.recv() => {
                sender.set_muted(m);
                stats.lock().unwrap_or_else(|p| p.into_inner()).muted = m;
            }
            _ = send_tick.tick() => {
                let Some(src) = source.as_mut() else { continue };
                let pcm = src.next_frame();
                match sender.frame(&pcm, wall_us()) {
                    Ok(datagram) => {
                        if let Err(e) = conn.send_datagram(Bytes::from(datagram)) {
                            tracing::debug!(error = %e, "audio datagram not sent");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "audio encoding failed"),
                }
            }
            _ = play_tick.tick() => {
                let pcm = receiver.pull(Instant::now(), wall_us());
                sink.write_frame(&pcm);
                if let Some(age) = receiver.playout_age_us() {
                    lip_sync.handle_audio_played(age);
                    feedback.set_audio_age_us(age);
                }
            }
            _ = report_tick.tick() => {
                // Lip sync, once a second: when the peer's pictures are ready later than its sound
                // plays, the jitter buffer holds the sound that much longer.
                if let Some((at, age)) = feedback.last_video_age() {
                    lip_sync.handle_video_decoded(at, age);
                }
                receiver.set_sync_delay(lip_sync.sync_delay(wall_us(), receiver.target_delay()));
                let rtt = conn.rtt();
                let report = receiver.report(rtt.as_millis().min(u16::MAX as u128) as u16);
                let _ = conn.send_datagram(Bytes::from(sender.report(&report)));
                let (send, receive) = (sender.stats(), receiver.stats());
                let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
                s.send_bitrate = (send.bytes - last_sent) * 8;
                s.receive_bitrate = (receive.bytes - last_received) * 8;
                (last_sent, last_received) = (send.bytes, receive.bytes);
                s.send = send;
                s.receive = receive;
                s.rtt_ms = rtt.as_secs_f64() * 1000.0;
            }
            datagram = conn.read_datagram() => match datagram {
                Ok(d) => match receiver.on_datagram(&d, Instant::now()) {
                    Ok(Received::Report(r)) => {
                        feedback.on_peer_report(r.loss_permille);
                        sender.on_peer_report(r);
                    }
                    Ok(Received::Audio) => {}
                    Err(e) => tracing::debug!(error = %e, "dropped a media datagram"),
                },
                Err(_) => break,
            },
        }
    }
    sink.finish();
    let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
    s.send = sender.stats();
    s.receive = receiver.stats();
}
