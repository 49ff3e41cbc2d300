//! The audio stream of a call, both directions, sans-IO: frames of PCM in, sealed datagrams out;
//! datagrams in, PCM out per playout tick; receiver reports both ways.
//!
//! The halves decide and Opus works. [`AudioSender::begin`] says what to encode (an
//! [`AudioEncodeJob`]: the PCM, silence when muted, and the bitrate and expected loss the peer's
//! reports call for); [`AudioSender::finish`] takes the Opus bytes back and builds the datagram with
//! its redundant copies. [`AudioReceiver::playout`] says what to play each tick (a frame to decode,
//! the in-band FEC of the next frame, concealment, or silence), and [`decode_playout`] does it.
//!
//! Loss is answered three ways: Opus in-band FEC (each frame carries a low-rate copy of the one
//! before), redundant copies of older frames, as many as the peer's reported loss asks for and
//! spaced beyond its reported bursts (`media::redundancy`), and a jitter buffer that, while loss
//! lasts, holds enough audio for the farthest copy to arrive in time.
//! The codecs belong to whoever drives the halves: `media::session::MediaSession` asks its driver
//! (the media task of `media::driver`, or the simulator) to run them.

use std::collections::VecDeque;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::burst::BurstStats;
use super::codec::opus::{AudioDecoder, CodecError, FRAME_SAMPLES, MAX_BITRATE, MIN_BITRATE, OpusEncoder, Pcm};
use super::jitter::{CAPACITY, JitterBuffer, JitterStats, Playout};
use super::loss_meter::LossMeter;
use super::packet::{
    self, AudioPacket, FLAG_MUTED, FLAG_REPORT_EXTENSIONS, KIND_AUDIO, KIND_REPORT, PacketError, ReceiverReport,
};
use super::redundancy::{LossResponse, MAX_COPIES, MAX_DISTANCE};
use super::time_stretch::{Stretch, StretchStats, Stretcher};
use crate::crypto::frame::{FrameError, FrameKeys, FrameOpener, FrameSealer, MediaKind};

/// What to encode for the next frame, as the sender decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioEncodeJob {
    /// The PCM (silence when muted).
    pub pcm: Pcm,
    /// When it was captured, µs since the Unix epoch.
    pub capture_us: u64,
    /// The microphone was muted (the datagram says so).
    pub muted: bool,
    /// The bitrate to encode at, bps (the encoder clamps it to 16–64 kbps).
    pub bitrate: i32,
    /// The loss the encoder should size its in-band FEC for, percent.
    pub expected_loss_percent: i32,
}

impl AudioEncodeJob {
    /// Encodes the frame with `encoder`, set up as the job asks (a setting libopus refuses leaves
    /// the one before).
    pub fn encode_with(&self, encoder: &mut OpusEncoder) -> Result<Vec<u8>, CodecError> {
        let _ = encoder.set_expected_loss(self.expected_loss_percent);
        let _ = encoder.set_bitrate(self.bitrate);
        encoder.encode(&self.pcm)
    }
}

/// What each audio packet carries besides its newest frame: the sequence numbers, and the earlier
/// frames sent again as redundant copies (as far back as the distances say, nearest first). The
/// 1:1 [`AudioSender`] and a group call's sender (`media::group_call`) build their packets with it.
#[derive(Debug, Clone)]
pub struct AudioFramer {
    seq: u32,
    /// The last [`MAX_DISTANCE`] frames, newest first.
    history: VecDeque<(u32, Vec<u8>)>,
    /// How far back the copies reach, frames, nearest first.
    distances: Vec<u32>,
}

impl Default for AudioFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl AudioFramer {
    /// Sequence numbers from 0, the copies a call starts with before any report says how the link
    /// loses ([`LossResponse::new`]: spaced for bursts).
    pub fn new() -> Self {
        AudioFramer { seq: 0, history: VecDeque::new(), distances: LossResponse::new().distances() }
    }

    /// How far back the copies reach, frames, nearest first (each at most [`MAX_DISTANCE`]).
    pub fn distances(&self) -> &[u32] {
        &self.distances
    }

    /// From the next packet on, copies this far back (frames, nearest first; each at most
    /// [`MAX_DISTANCE`], at most [`MAX_COPIES`]: the rest are dropped).
    pub fn set_distances(&mut self, distances: Vec<u32>) {
        self.distances = distances.into_iter().filter(|d| (1..=MAX_DISTANCE).contains(d)).take(MAX_COPIES).collect();
    }

    /// `job` was encoded into `opus`: the packet, with the copies of earlier frames still in the
    /// history (none before the first frame), the muted flag as the job says and `flags` besides.
    pub fn packet(&mut self, job: &AudioEncodeJob, opus: Vec<u8>, flags: u8) -> AudioPacket {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let mut frames = vec![(seq, opus.clone())];
        for d in &self.distances {
            let wanted = seq.wrapping_sub(*d);
            if let Some(copy) = self.history.iter().find(|(s, _)| *s == wanted) {
                frames.push(copy.clone());
            }
        }
        self.history.push_front((seq, opus));
        self.history.truncate(MAX_DISTANCE as usize);
        let flags = flags | if job.muted { FLAG_MUTED } else { 0 };
        AudioPacket { seq, capture_us: job.capture_us, flags, frames }
    }
}

/// The sending half.
#[derive(Debug)]
pub struct AudioSender {
    /// What the encoder is asked for: the bitrate, and the loss to expect (percent).
    bitrate: i32,
    expected_loss_percent: i32,
    sealer: FrameSealer,
    report_sealer: FrameSealer,
    /// Sequence numbers and the redundant copies each packet carries.
    framer: AudioFramer,
    /// What the peer's reports ask for: copies, their spacing, FEC, the boost.
    response: LossResponse,
    muted: bool,
    stats: SendStats,
    peer_report: Option<ReceiverReport>,
    /// The configured bitrate; clean links get a boost above it.
    base_bitrate: i32,
}

/// Extra bitrate on a link that has been clean for [`CLEAN_REPORTS_FOR_BOOST`] reports: measured
/// here, Opus 32 kbps scores PESQ-WB 3.97 on speech and 48 kbps 4.16 (64 kbps 3.91: fullband
/// CELT, which the wide-band metric does not reward).
pub const CLEAN_LINK_BOOST: i32 = 16_000;
/// Consecutive calm reports (loss under 15 %, jitter under 30 ms) before the boost.
pub const CLEAN_REPORTS_FOR_BOOST: u32 = 2;

/// What the sending half counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SendStats {
    /// Datagrams sent.
    pub packets: u64,
    /// Bytes sent (datagram payloads).
    pub bytes: u64,
    /// The encoder's bitrate, bps.
    pub bitrate: i32,
    /// Older frames carried with each new one.
    pub redundancy: usize,
    /// How far back they are, frames, nearest first (0: no copy in that place).
    #[serde(default)]
    pub copy_distances: [u8; MAX_COPIES],
    /// The mean of the peer's recent bursts of loss, datagrams (0: none reported).
    #[serde(default)]
    pub peer_burst_mean: f64,
    /// The 90th percentile of the peer's recent bursts, datagrams.
    #[serde(default)]
    pub peer_burst_p90: u16,
    /// Loss the peer reports (before recovery), per mille.
    pub peer_loss_permille: u16,
    /// Jitter the peer measures, ms.
    pub peer_jitter_ms: f64,
    /// RTT, ms (from the peer's report).
    pub rtt_ms: u16,
}

impl AudioSender {
    /// A sender with the call's keys, aiming at `bitrate`. Its caller encodes: each frame is
    /// [`AudioSender::begin`], the caller's Opus encoder ([`AudioEncodeJob::encode_with`]), then
    /// [`AudioSender::finish`].
    pub fn new(keys: &FrameKeys, bitrate: i32) -> Self {
        AudioSender {
            bitrate,
            expected_loss_percent: 0,
            sealer: keys.sealer(MediaKind::Audio),
            report_sealer: keys.sealer(MediaKind::Report),
            framer: AudioFramer::new(),
            // Copies spaced for bursts until the first report says how the link loses: the
            // first second of a call is as lossy as the rest.
            response: LossResponse::new(),
            muted: false,
            stats: SendStats {
                bitrate,
                redundancy: LossResponse::new().distances().len(),
                copy_distances: copy_slots(&LossResponse::new().distances()),
                ..Default::default()
            },
            peer_report: None,
            base_bitrate: bitrate,
        }
    }

    /// Mutes or unmutes: muted frames carry silence and the muted flag.
    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// Whether muted.
    pub fn muted(&self) -> bool {
        self.muted
    }

    /// The counters.
    pub fn stats(&self) -> SendStats {
        self.stats
    }

    /// The next 20 ms frame (captured at `capture_us`, µs since the Unix epoch): what to encode.
    /// Hand the Opus bytes to [`AudioSender::finish`].
    pub fn begin(&self, pcm: &Pcm, capture_us: u64) -> AudioEncodeJob {
        AudioEncodeJob {
            pcm: if self.muted { [0; FRAME_SAMPLES] } else { *pcm },
            capture_us,
            muted: self.muted,
            bitrate: self.bitrate,
            expected_loss_percent: self.expected_loss_percent,
        }
    }

    /// `job` was encoded into `opus`: the sealed datagram, carrying the earlier frames the
    /// redundancy asks for (those still in the history: none before the first frame).
    pub fn finish(&mut self, job: &AudioEncodeJob, opus: Vec<u8>) -> Vec<u8> {
        // We parse report extensions: the peer may send them.
        let plain = self.framer.packet(job, opus, FLAG_REPORT_EXTENSIONS).encode();
        let datagram = packet::seal(KIND_AUDIO, &mut self.sealer, &plain);
        self.stats.packets += 1;
        self.stats.bytes += datagram.len() as u64;
        datagram
    }

    /// Seals a receiver report about the peer's audio (sent on our report key).
    pub fn report(&mut self, report: &ReceiverReport) -> Vec<u8> {
        packet::seal(KIND_REPORT, &mut self.report_sealer, &report.encode())
    }

    /// The peer told us how our audio arrives: adapt redundancy and the encoder's expected loss.
    /// Redundancy goes up at once and comes down one step after
    /// [`STEP_DOWN_AFTER`](super::redundancy::STEP_DOWN_AFTER) reports in a row asked for less;
    /// the copies are spaced for the bursts the peer reports (none reported: the nearest frames).
    pub fn on_peer_report(&mut self, report: ReceiverReport) {
        self.response.on_report(&report);
        self.framer.distances = self.response.distances();
        self.stats.copy_distances = copy_slots(&self.framer.distances);
        if let Some(b) = &report.bursts {
            self.stats.peer_burst_mean = f64::from(b.recent_mean_centi) / 100.0;
            self.stats.peer_burst_p90 = b.recent_p90;
        }
        self.expected_loss_percent = self.response.expected_loss_percent();
        let bitrate = if self.response.calm() { self.base_bitrate + CLEAN_LINK_BOOST } else { self.base_bitrate };
        self.bitrate = bitrate;
        self.stats.bitrate = bitrate.clamp(MIN_BITRATE, MAX_BITRATE);
        self.stats.redundancy = self.framer.distances.len();
        self.stats.peer_loss_permille = report.loss_permille;
        self.stats.peer_jitter_ms = report.jitter_us as f64 / 1000.0;
        self.stats.rtt_ms = report.rtt_ms;
        self.peer_report = Some(report);
    }
}

/// Copy distances as `SendStats::copy_distances` shows them (0: no copy in that place).
fn copy_slots(distances: &[u32]) -> [u8; MAX_COPIES] {
    let mut slots = [0; MAX_COPIES];
    for (slot, d) in slots.iter_mut().zip(distances) {
        *slot = *d as u8;
    }
    slots
}

/// What the receiving half counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ReceiveStats {
    /// Datagrams received (before checks).
    pub packets: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Datagrams refused as replays (or too old for the window).
    pub replayed: u64,
    /// Datagrams refused because they did not authenticate (tampered or forged).
    pub tampered: u64,
    /// Datagrams that authenticated but did not parse.
    pub malformed: u64,
    /// The jitter buffer.
    pub jitter: JitterStats,
    /// The peer's microphone is muted.
    pub remote_muted: bool,
    /// Bursts of loss on the way in (runs of lost primaries).
    #[serde(default)]
    pub bursts: BurstStats,
    /// Time-stretching: how much playout took out and put in to move the delay.
    #[serde(default)]
    pub stretch: StretchStats,
    /// The last frame's mouth-to-ear delay (capture at the peer to playout here), ms, when both
    /// clocks agree (same machine or NTP).
    pub latency_ms: Option<f64>,
}

/// The receiving half.
#[derive(Debug)]
pub struct AudioReceiver {
    opener: FrameOpener,
    report_opener: FrameOpener,
    jitter: JitterBuffer,
    captures: VecDeque<(u32, u64)>,
    playout_age_us: Option<i64>,
    stats: ReceiveStats,
    /// The peer's loss, its bursts and how far its copies reach.
    loss: LossMeter,
    /// The peer's audio says it parses report extensions.
    peer_reads_extensions: bool,
    /// How each playout handed out and not yet decoded is to be played.
    decoding: VecDeque<Stretch>,
    /// Decoded audio, stretched, waiting for its tick.
    stretcher: Stretcher,
}

/// What [`AudioReceiver::on_datagram`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Audio went into the jitter buffer.
    Audio,
    /// The peer's report about our audio.
    Report(ReceiverReport),
}

impl AudioReceiver {
    /// A receiver with the call's keys. Its caller decodes: each playout tick takes
    /// [`AudioReceiver::next_frame`]; while there is none, [`AudioReceiver::playout`], then
    /// [`decode_playout`] with the caller's decoder, then [`AudioReceiver::decoded`].
    pub fn new(keys: &FrameKeys) -> Self {
        // The peer starts ready for bursts (copies 3 and 6 frames back): hold for them.
        let mut jitter = JitterBuffer::new();
        let loss = LossMeter::ready_for_bursts(&mut jitter);
        AudioReceiver {
            opener: keys.opener(MediaKind::Audio),
            report_opener: keys.opener(MediaKind::Report),
            jitter,
            captures: VecDeque::new(),
            playout_age_us: None,
            stats: ReceiveStats::default(),
            loss,
            peer_reads_extensions: false,
            decoding: VecDeque::new(),
            stretcher: Stretcher::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> ReceiveStats {
        let jitter = self.jitter.stats();
        ReceiveStats {
            jitter,
            bursts: self.loss.bursts(),
            stretch: self.stretcher.stats(jitter.stretched),
            ..self.stats
        }
    }

    /// A datagram arrived at `now`.
    pub fn on_datagram(&mut self, datagram: &[u8], now: Instant) -> Result<Received, PacketError> {
        self.stats.packets += 1;
        self.stats.bytes += datagram.len() as u64;
        let result = match packet::kind(datagram)? {
            KIND_AUDIO => {
                packet::open(&mut self.opener, datagram).and_then(|plain| AudioPacket::decode(&plain)).map(|p| {
                    self.accept(p, now);
                    Received::Audio
                })
            }
            _ => packet::open(&mut self.report_opener, datagram)
                .and_then(|plain| ReceiverReport::decode(&plain))
                .map(Received::Report),
        };
        match &result {
            Err(PacketError::Frame(FrameError::Replay | FrameError::TooOld)) => self.stats.replayed += 1,
            Err(PacketError::Frame(FrameError::Auth)) => self.stats.tampered += 1,
            Err(_) => self.stats.malformed += 1,
            Ok(_) => {}
        }
        result
    }

    fn accept(&mut self, p: AudioPacket, now: Instant) {
        self.stats.remote_muted = p.flags & FLAG_MUTED != 0;
        self.peer_reads_extensions = p.flags & FLAG_REPORT_EXTENSIONS != 0;
        self.loss.on_packet(&p, &mut self.jitter);
        self.captures.push_back((p.seq, p.capture_us));
        if self.captures.len() > 64 {
            self.captures.pop_front();
        }
        let mut frames = p.frames.into_iter();
        if let Some((seq, data)) = frames.next() {
            self.jitter.insert(seq, data, now);
        }
        for (seq, data) in frames {
            self.jitter.insert_redundant(seq, data);
        }
    }

    /// Lip sync: hold the audio at least this much (see [`JitterBuffer::set_sync_delay`]).
    pub fn set_sync_delay(&mut self, delay: std::time::Duration) {
        self.jitter.set_sync_delay(delay);
    }

    /// The jitter buffer's target delay now (jitter and lip sync together).
    pub fn target_delay(&self) -> std::time::Duration {
        self.jitter.target()
    }

    /// How long ago (wall clock now − the sender's capture time) the last frame played from the
    /// network was captured; video waits for this much to stay in step. Signed: the clocks differ.
    pub fn playout_age_us(&self) -> Option<i64> {
        self.playout_age_us
    }

    /// The next 20 ms to play, if what was decoded covers them; else call
    /// [`AudioReceiver::playout`] for the next frame to decode.
    pub fn next_frame(&mut self) -> Option<Pcm> {
        self.stretcher.next_frame()
    }

    /// Playouts handed out whose decoded audio has not come back yet.
    pub fn decoding(&self) -> usize {
        self.decoding.len()
    }

    /// The samples of the oldest playout handed out, decoded: they join what waits to be played,
    /// stretched as the jitter buffer asked.
    pub fn decoded(&mut self, pcm: &Pcm) {
        let stretch = self.decoding.pop_front().unwrap_or_default();
        self.stretcher.push(pcm, stretch);
    }

    /// The playout clock needs audio at `now` (`wall_us`: the same instant, µs since the Unix
    /// epoch) and [`AudioReceiver::next_frame`] had none: the next frame to decode (or conceal).
    /// Hand it to the decoder in order, and its samples back to [`AudioReceiver::decoded`].
    pub fn playout(&mut self, now: Instant, wall_us: u64) -> Playout {
        let playout = self.jitter.pop(now);
        self.decoding.push_back(match &playout {
            Playout::Frame { stretch, .. } => *stretch,
            _ => Stretch::None,
        });
        // A caller that never hands the samples back (a test that only looks at the playouts)
        // must not grow this without bound.
        if self.decoding.len() > CAPACITY {
            self.decoding.pop_front();
        }
        if let Playout::Frame { seq, .. } = &playout
            && let Some((_, captured)) = self.captures.iter().find(|(s, _)| s == seq)
        {
            self.stats.latency_ms = Some(wall_us.saturating_sub(*captured) as f64 / 1000.0);
            self.playout_age_us = Some(super::capture_age_us(wall_us, *captured));
        }
        playout
    }

    /// A report about the peer's audio as we receive it. The loss is the network's, over the last
    /// interval, before redundancy and FEC: datagrams expected (by the highest sequence number) that
    /// did not arrive. Residual loss after recovery would fall to zero as soon as redundancy works,
    /// and redundancy would then switch off again.
    pub fn report(&mut self, rtt_ms: u16) -> ReceiverReport {
        // Bursts only to a peer that parses extensions: an older parser refuses the whole report.
        self.loss.report(&mut self.jitter, rtt_ms, self.peer_reads_extensions)
    }
}

/// Plays one tick's [`Playout`] with `decoder`: decodes the frame, recovers a lost one from the
/// next frame's in-band FEC, conceals, or gives silence.
pub fn decode_playout(decoder: &mut impl AudioDecoder, playout: &Playout) -> Pcm {
    match playout {
        Playout::Silence => [0; FRAME_SAMPLES],
        Playout::Frame { data, .. } => decoder.decode(data),
        Playout::Fec { next, .. } => decoder.decode_fec(next),
        Playout::Conceal => decoder.conceal(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::jitter::FRAME;
    use std::time::Duration;

    use crate::media::codec::fake::{FakeOpusDecoder, FakeOpusEncoder};
    use crate::media::codec::opus::{DEFAULT_BITRATE, OpusDecoder};
    use crate::media::packet::BurstReport;

    fn keys() -> (FrameKeys, FrameKeys) {
        (FrameKeys::new([1; 32], [2; 32], true, b"h"), FrameKeys::new([1; 32], [2; 32], false, b"h"))
    }

    /// A real Opus encoder and decoder, as the media task holds them.
    fn opus() -> (OpusEncoder, OpusDecoder) {
        (OpusEncoder::new(DEFAULT_BITRATE).unwrap(), OpusDecoder::new().unwrap())
    }

    /// The next frame, encoded and sealed as the media task and the session do it.
    fn frame(tx: &mut AudioSender, encoder: &mut OpusEncoder, pcm: &Pcm) -> Vec<u8> {
        let job = tx.begin(pcm, 0);
        let opus = job.encode_with(encoder).unwrap();
        tx.finish(&job, opus)
    }

    /// The playout tick at `now`, decoded.
    fn pull(rx: &mut AudioReceiver, decoder: &mut OpusDecoder, now: Instant, wall_us: u64) -> Pcm {
        let playout = rx.playout(now, wall_us);
        decode_playout(decoder, &playout)
    }

    fn tone(frame: u32) -> Pcm {
        let mut pcm = [0i16; FRAME_SAMPLES];
        for (i, s) in pcm.iter_mut().enumerate() {
            let t = (frame as usize * FRAME_SAMPLES + i) as f64 / 48_000.0;
            *s = ((t * 440.0 * std::f64::consts::TAU).sin() * 8000.0) as i16;
        }
        pcm
    }

    #[test]
    fn without_a_codec_a_lost_frame_is_recovered_from_the_next_ones_fec_or_else_concealed() {
        let (a, b) = keys();
        let mut tx = AudioSender::new(&a, DEFAULT_BITRATE);
        let mut rx = AudioReceiver::new(&b);
        let (mut encoder, mut decoder) = (FakeOpusEncoder::new(), FakeOpusDecoder::new());
        // A clean link: no redundant copies, so a lost datagram is a lost frame.
        tx.on_peer_report(ReceiverReport::default());
        assert_eq!(tx.stats().redundancy, 0);
        let t0 = Instant::now();
        let mut decisions = Vec::new();
        for i in 0..30u32 {
            let job = tx.begin(&tone(i), 0);
            let datagram = tx.finish(&job, encoder.encode(&job.pcm));
            // Frame 5 is lost alone; 10 and 11 together.
            if ![5, 10, 11].contains(&i) {
                rx.on_datagram(&datagram, t0 + Duration::from_millis(20 * u64::from(i))).unwrap();
            }
            let playout = rx.playout(t0 + Duration::from_millis(20 * u64::from(i) + 10), 0);
            let pcm = decode_playout(&mut decoder, &playout);
            if let Playout::Fec { seq, .. } = &playout {
                assert_eq!(pcm[20], tone(*seq)[20], "the FEC copy of frame {seq}");
            }
            decisions.push(playout);
        }
        let losses: Vec<String> = decisions
            .iter()
            .filter_map(|p| match p {
                Playout::Fec { seq, .. } => Some(format!("fec {seq}")),
                Playout::Conceal => Some("conceal".into()),
                _ => None,
            })
            .collect();
        // 5 comes back from 6. The receiver holds the reach of the copies a call starts with
        // (145 ms), so 12 is here before 10 is due: 10 is concealed (11, which would carry its
        // FEC, is lost too) and 11 comes back from 12. (Without that hold playout would wait a
        // tick for 10 and the wait would stand in for it: the jitter buffer's merge test.)
        assert_eq!(losses, ["fec 5", "conceal", "fec 11"]);
        let jitter = rx.stats().jitter;
        assert_eq!((jitter.lost, jitter.fec_recovered, jitter.concealed, jitter.merged), (3, 2, 1, 0));
    }

    #[test]
    fn the_peers_reports_and_the_mute_switch_set_what_the_next_encode_job_asks_for() {
        let (a, _) = keys();
        let mut tx = AudioSender::new(&a, DEFAULT_BITRATE);
        let job = tx.begin(&tone(0), 7);
        assert_eq!((job.bitrate, job.expected_loss_percent, job.muted, job.capture_us), (DEFAULT_BITRATE, 0, false, 7));
        assert_eq!(job.pcm, tone(0));
        // 3 % loss, calm: FEC sized for it, and after two calm reports the clean-link boost.
        let calm = ReceiverReport { loss_permille: 30, ..Default::default() };
        tx.on_peer_report(calm);
        assert_eq!(tx.begin(&tone(1), 0).bitrate, DEFAULT_BITRATE);
        tx.on_peer_report(calm);
        let job = tx.begin(&tone(1), 0);
        assert_eq!((job.bitrate, job.expected_loss_percent), (DEFAULT_BITRATE + CLEAN_LINK_BOOST, 3));
        assert_eq!(tx.stats().bitrate, DEFAULT_BITRATE + CLEAN_LINK_BOOST);
        tx.set_muted(true);
        let job = tx.begin(&tone(2), 0);
        assert!(job.muted && job.pcm == [0; FRAME_SAMPLES], "muted: silence is encoded");
    }

    #[test]
    fn audio_flows_and_replayed_or_tampered_datagrams_are_counted_and_dropped() {
        let (a, b) = keys();
        let mut tx = AudioSender::new(&a, DEFAULT_BITRATE);
        let mut rx = AudioReceiver::new(&b);
        let (mut enc, mut dec) = opus();
        let t0 = Instant::now();
        let mut energy = 0.0;
        for i in 0..100u32 {
            let d = frame(&mut tx, &mut enc, &tone(i));
            rx.on_datagram(&d, t0 + Duration::from_millis(20 * i as u64)).unwrap();
            if i == 50 {
                assert!(rx.on_datagram(&d, t0).is_err(), "replay");
                // A forged counter (ahead of the window) with the old ciphertext: fails the tag.
                let mut t = d.clone();
                t[8] ^= 0x40;
                assert!(rx.on_datagram(&t, t0).is_err(), "tamper");
            }
            let pcm = pull(&mut rx, &mut dec, t0 + Duration::from_millis(20 * i as u64 + 10), 0);
            energy += pcm.iter().map(|s| (*s as f64).powi(2)).sum::<f64>();
        }
        let s = rx.stats();
        assert_eq!((s.replayed, s.tampered), (1, 1));
        assert!(energy > 1e9, "the tone came through");
        assert_eq!(s.jitter.lost, 0);
    }

    #[test]
    fn reported_loss_turns_on_redundancy_which_fills_the_gaps() {
        let (a, b) = keys();
        let mut tx = AudioSender::new(&a, DEFAULT_BITRATE);
        let mut rx = AudioReceiver::new(&b);
        let (mut enc, mut dec) = opus();
        tx.on_peer_report(ReceiverReport { loss_permille: 150, ..Default::default() });
        assert_eq!(tx.stats().redundancy, 3);
        let t0 = Instant::now();
        for i in 0..100u32 {
            let d = frame(&mut tx, &mut enc, &tone(i));
            // Lose every third datagram.
            if i % 3 != 1 {
                rx.on_datagram(&d, t0 + Duration::from_millis(20 * i as u64)).unwrap();
            }
            pull(&mut rx, &mut dec, t0 + Duration::from_millis(20 * i as u64 + 10), 0);
        }
        let s = rx.stats().jitter;
        assert!(s.lost <= 1, "redundant copies replaced the lost datagrams: {s:?}");
        let report = rx.report(10);
        assert_eq!(report.received as u64, s.received);
        // The muted flag reaches the other side.
        tx.set_muted(true);
        let d = frame(&mut tx, &mut enc, &tone(100));
        rx.on_datagram(&d, t0 + Duration::from_secs(3)).unwrap();
        assert!(rx.stats().remote_muted);
    }

    /// The next frame through the fake codec, sealed; and the distances of the frames it carries,
    /// as the receiver reads them.
    fn next_datagram(tx: &mut AudioSender, encoder: &mut FakeOpusEncoder, i: u32) -> Vec<u8> {
        let job = tx.begin(&tone(i), 0);
        tx.finish(&job, encoder.encode(&job.pcm))
    }

    fn distances_in(opener: &mut FrameOpener, datagram: &[u8]) -> Vec<u32> {
        let p = AudioPacket::decode(&packet::open(opener, datagram).unwrap()).unwrap();
        assert_ne!(p.flags & FLAG_REPORT_EXTENSIONS, 0, "we say we parse report extensions");
        p.frames.iter().map(|(seq, _)| p.seq - seq).collect()
    }

    fn bursts_of(mean: f64) -> Option<BurstReport> {
        Some(BurstReport { recent_mean_centi: (mean * 100.0) as u16, ..Default::default() })
    }

    #[test]
    fn copies_are_spaced_beyond_the_bursts_the_peer_reports_and_an_older_peer_gets_the_nearest_frames() {
        let (a, b) = keys();
        let mut tx = AudioSender::new(&a, DEFAULT_BITRATE);
        let mut opener = b.opener(MediaKind::Audio);
        let mut encoder = FakeOpusEncoder::new();
        // 5 % loss from a peer that reports no bursts (one from before the extension): one copy,
        // of the previous frame.
        tx.on_peer_report(ReceiverReport { loss_permille: 50, ..Default::default() });
        let mut last = Vec::new();
        for i in 0..10 {
            last = distances_in(&mut opener, &next_datagram(&mut tx, &mut encoder, i));
        }
        assert_eq!(last, [0, 1]);
        // The same loss in bursts of 3: a copy more, both beyond a typical burst.
        tx.on_peer_report(ReceiverReport { loss_permille: 50, bursts: bursts_of(3.0), ..Default::default() });
        assert_eq!(distances_in(&mut opener, &next_datagram(&mut tx, &mut encoder, 10)), [0, 3, 6]);
        let s = tx.stats();
        assert_eq!((s.redundancy, s.copy_distances, s.peer_burst_mean), (2, [3, 6, 0], 3.0));
        // The first frames of a call carry what exists: nothing older than frame 0.
        let mut fresh = AudioSender::new(&a, DEFAULT_BITRATE);
        fresh.on_peer_report(ReceiverReport { loss_permille: 200, bursts: bursts_of(3.0), ..Default::default() });
        let mut opener = b.opener(MediaKind::Audio);
        let carried: Vec<Vec<u32>> =
            (0..5).map(|i| distances_in(&mut opener, &next_datagram(&mut fresh, &mut encoder, i))).collect();
        assert_eq!(carried, [vec![0], vec![0], vec![0, 2], vec![0, 2], vec![0, 2, 4]]);
    }

    #[test]
    fn reports_carry_burst_statistics_only_to_a_peer_that_parses_them() {
        let (a, b) = keys();
        let mut rx = AudioReceiver::new(&b);
        let mut sealer = a.sealer(MediaKind::Audio);
        let t0 = Instant::now();
        let mut send = |rx: &mut AudioReceiver, seq: u32, flags: u8| {
            let p = AudioPacket { seq, capture_us: 0, flags, frames: vec![(seq, vec![seq as u8])] };
            rx.on_datagram(&packet::seal(KIND_AUDIO, &mut sealer, &p.encode()), t0 + FRAME * seq).unwrap();
        };
        // An older peer: its datagrams lack the flag. A burst of 3 is measured, not reported.
        for seq in (0..40).filter(|s| !(10..13).contains(s)) {
            send(&mut rx, seq, 0);
        }
        assert_eq!(rx.report(10).bursts, None);
        assert_eq!((rx.stats().bursts.bursts, rx.stats().bursts.longest), (1, 3));
        // A peer that parses extensions: the burst of 2 in this interval, and the recent mean.
        for seq in (40..80).filter(|s| !(50..52).contains(s)) {
            send(&mut rx, seq, FLAG_REPORT_EXTENSIONS);
        }
        let bursts = rx.report(10).bursts.expect("reported");
        assert_eq!(bursts, BurstReport { bursts: 1, mean_centi: 200, max: 2, recent_mean_centi: 250, recent_p90: 3 });
    }

    #[test]
    fn under_bursts_the_buffer_holds_what_the_copies_need_and_comes_down_when_loss_stops() {
        let (a, b) = keys();
        let mut tx = AudioSender::new(&a, DEFAULT_BITRATE);
        let mut rx = AudioReceiver::new(&b);
        let mut encoder = FakeOpusEncoder::new();
        let t0 = Instant::now();
        let transit = Duration::from_millis(30);
        let mut in_flight = VecDeque::new();
        let mut conceal_while_lossy = 0;
        let mut recovery_ms = Vec::new();
        let mut decoder = FakeOpusDecoder::default();
        for i in 0..1500u32 {
            // 15 s of bursts of 3 every 25 datagrams (12 % loss), then 15 s clean, in words: a
            // 400 ms pause every 2 s.
            let pause = i >= 750 && i % 100 >= 80;
            let job = tx.begin(&if pause { [0; FRAME_SAMPLES] } else { tone(i) }, 0);
            let datagram = tx.finish(&job, encoder.encode(&job.pcm));
            if i >= 750 || !(10..13).contains(&(i % 25)) {
                in_flight.push_back((t0 + FRAME * i + transit, datagram));
            }
            let tick = t0 + FRAME * i + Duration::from_millis(10);
            while in_flight.front().is_some_and(|(at, _)| *at <= tick) {
                let (at, d) = in_flight.pop_front().unwrap();
                if let Ok(Received::Report(r)) = rx.on_datagram(&d, at) {
                    tx.on_peer_report(r);
                }
            }
            // One tick played as the session plays it: frames decoded until 20 ms are there.
            while rx.next_frame().is_none() {
                let playout = rx.playout(tick, 0);
                if (250..750).contains(&i) && playout == Playout::Conceal {
                    conceal_while_lossy += 1;
                }
                rx.decoded(&decode_playout(&mut decoder, &playout));
            }
            if i % 50 == 49 {
                // Once a second each way: the receiver reports (straight back to the sender).
                let report = rx.report(10);
                tx.on_peer_report(report);
                recovery_ms.push(rx.stats().jitter.recovery_delay_ms);
            }
        }
        // With copies 3 and 6 frames back and the buffer holding 120 ms for them, a burst of three
        // costs nothing once the delay has grown.
        assert_eq!(tx.stats().peer_burst_mean, 3.0, "the peer measured the bursts");
        assert_eq!(recovery_ms[10], 105.0, "120 ms less the margin the jitter's target has: {recovery_ms:?}");
        assert_eq!(conceal_while_lossy, 0, "{:?}", rx.stats());
        // Loss stopped at 15 s: within 5 s of memory and a frame a second, the delay is back,
        // given back in the pauses (no frame of the tone was played shorter).
        let s = rx.stats().jitter;
        assert_eq!(s.recovery_delay_ms, 0.0, "{recovery_ms:?}");
        assert_eq!(s.target_ms, 20.0, "{s:?}");
        assert!(s.buffered_ms <= 60.0, "{s:?}");
        assert_eq!(s.accelerations, 0, "{s:?}");
        assert!(rx.stats().stretch.accelerated_ms >= 100.0, "{:?}", rx.stats().stretch);
        assert_eq!(tx.stats().redundancy, 0, "and no copies are sent");
    }

    #[test]
    fn status_json_from_before_the_burst_fields_still_parses() {
        // `hail status --json` of a daemon from before the burst statistics
        // (protocols/control-v1.md as it was).
        let send: SendStats = serde_json::from_str(
            r#"{"packets":150,"bytes":6080,"bitrate":32000,"redundancy":1,"peer_loss_permille":0,"peer_jitter_ms":0.4,"rtt_ms":3}"#,
        )
        .unwrap();
        assert_eq!((send.copy_distances, send.peer_burst_mean, send.peer_burst_p90), ([0; MAX_COPIES], 0.0, 0));
        let receive: ReceiveStats = serde_json::from_str(
            r#"{"packets":151,"bytes":6040,"replayed":0,"tampered":0,"malformed":0,"remote_muted":false,"latency_ms":29.0,
                "jitter":{"received":150,"duplicates":0,"late":0,"concealed":0,"fec_recovered":0,"dropped":0,"lost":0,
                          "jitter_ms":0.5,"target_ms":20.0,"buffered_ms":20.0}}"#,
        )
        .unwrap();
        assert_eq!(
            (receive.bursts, receive.jitter.recovery_delay_ms, receive.jitter.late_copies),
            (BurstStats::default(), 0.0, 0)
        );
    }

    #[test]
    fn extreme_capture_times_and_sequence_numbers_from_the_peer_do_not_overflow() {
        let (a, b) = keys();
        let opus = OpusEncoder::new(DEFAULT_BITRATE).unwrap().encode(&tone(0)).unwrap();
        let t0 = Instant::now();
        let frame = crate::media::jitter::FRAME;
        for (capture_us, wall_us) in [(0, u64::MAX), (u64::MAX, 0), (1 << 63, 0), (0, 1 << 63), (u64::MAX, u64::MAX)] {
            let mut sealer = a.sealer(MediaKind::Audio);
            let mut rx = AudioReceiver::new(&b);
            let mut dec = OpusDecoder::new().unwrap();
            for (i, seq) in [u32::MAX - 1, u32::MAX].into_iter().enumerate() {
                let p = AudioPacket { seq, capture_us, flags: 0, frames: vec![(seq, opus.clone())] };
                let d = packet::seal(KIND_AUDIO, &mut sealer, &p.encode());
                rx.on_datagram(&d, t0 + frame * i as u32).unwrap();
            }
            for k in 0..6 {
                pull(&mut rx, &mut dec, t0 + Duration::from_millis(100) + frame * k, wall_us);
            }
            let age = rx.playout_age_us().expect("a frame played");
            let exact = i128::from(wall_us) - i128::from(capture_us);
            assert_eq!(
                i128::from(age),
                exact.clamp(-i128::from(i64::MAX), i128::from(i64::MAX)),
                "{capture_us} {wall_us}"
            );
            assert_eq!(rx.report(10).highest_seq, u32::MAX);
        }
    }
}
