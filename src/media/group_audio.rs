//! A group call's audio at one receiver, sans-IO: every other member's frames through a jitter
//! buffer of its own, mixed into one 20 ms frame per playout tick.
//!
//! Each sender is played as the 1:1 receiver plays its peer ([`super::audio::AudioReceiver`]): an
//! [`AudioPacket`] (the newest frame and its redundant copies) goes into the sender's
//! [`JitterBuffer`]; each tick the buffer says what to play (the frame, the next frame's in-band
//! FEC, concealment, or silence before it starts), the sender's own decoder does it, and the
//! [`Stretcher`] shortens the frames the buffer asks to accelerate. So one sender's late or lost
//! frame is concealed in that sender's stream only, and one sender's jitter sets only its own
//! delay. The senders' frames are summed and the sum goes through a [`Limiter`]: four people
//! talking at once do not clip, one alone plays bit-exactly. Each tick also measures every
//! sender's level and feeds [`ActiveSpeakers`] (speaking flags, the dominant speaker).
//!
//! A sender whose frames stop for [`SENDER_TIMEOUT`] leaves the mix: its stream (buffer, decoder)
//! is dropped, it stops speaking, and when its frames come back it starts afresh. Only senders
//! admitted ([`GroupAudioReceiver::admit`], the roster's members) are mixed; frames naming anyone
//! else are refused.
//!
//! The receiver owns the decoders (one per sender, made by the factory it is given): 20 ms of Opus
//! is quick, and the mix needs every sender's samples on the same tick.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::active_speaker::{ActiveSpeakers, SpeakerEvent, energy_dbfs, mean_square};
use super::audio::decode_playout;
use super::codec::opus::{AudioDecoder, CodecError, FRAME_SAMPLES, Pcm};
use super::jitter::{JitterBuffer, JitterStats, Playout};
use super::limiter::Limiter;
use super::loss_meter::LossMeter;
use super::packet::{AudioPacket, FLAG_GROUP_REPORTS, PacketError, ReceiverReport};
use super::time_stretch::{Stretch, Stretcher};
use crate::crypto::sender_key::SenderIndex;

/// Without a frame from a sender for this long, it leaves the mix.
pub const SENDER_TIMEOUT: Duration = Duration::from_secs(1);
/// Most senders mixed: every member of the largest group but us.
pub const MAX_SENDERS: usize = crate::crypto::group_sas::MAX_MEMBERS - 1;
/// The largest Opus frame (RFC 6716, 3.2.1); anything larger is refused before the buffer holds it.
pub const MAX_OPUS_FRAME: usize = 1275;
/// Decodes one tick may run per sender at most (a frame accelerated by the most leaves 10 ms, so
/// two always cover a tick; the rest is slack against a buffer that hands out empty frames).
const MAX_DECODES_PER_TICK: usize = 4;

/// Why a sender's frame or a new sender was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GroupAudioError {
    /// The sender is not one of the call's admitted senders.
    #[error("audio from sender {0}, who is not in the call")]
    UnknownSender(u8),
    /// Admitting one more would pass [`MAX_SENDERS`].
    #[error("more than {MAX_SENDERS} senders")]
    TooManySenders,
    /// A frame larger than Opus makes.
    #[error("an audio frame of {0} bytes (at most {MAX_OPUS_FRAME})")]
    FrameTooLarge(usize),
    /// The sender's decoder could not be made.
    #[error("audio decoder: {0}")]
    Decoder(String),
    /// The plaintext is not an audio packet.
    #[error("not an audio packet: {0}")]
    Packet(#[from] PacketError),
}

/// One sender's part of a tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SenderLevel {
    /// Who.
    pub sender: SenderIndex,
    /// This tick's 20 ms of the sender, before mixing, dBFS.
    pub frame_dbfs: f64,
    /// The sender's speech level over the last 300 ms, dBFS.
    pub speech_dbfs: f64,
    /// Whether the sender is speaking.
    pub speaking: bool,
    /// Part of this tick was concealed (a late or lost frame; FEC counts).
    pub concealed: bool,
}

/// What one playout tick gives.
#[derive(Debug, Clone)]
pub struct MixedFrame {
    /// The mix, limited.
    pub pcm: Pcm,
    /// The senders in the mix, by sender index.
    pub levels: Vec<SenderLevel>,
    /// The dominant speaker after this tick.
    pub dominant: Option<SenderIndex>,
    /// Speaking and dominant-speaker changes on this tick, and senders that left the mix.
    pub events: Vec<SpeakerEvent>,
    /// Senders that timed out on this tick.
    pub timed_out: Vec<SenderIndex>,
}

/// One sender's stream, while it sends.
struct SenderStream<D> {
    jitter: JitterBuffer,
    decoder: D,
    stretcher: Stretcher,
    last_arrival: Instant,
    muted: bool,
    /// The sender's loss and bursts, and how far its copies reach.
    loss: LossMeter,
    /// Its packets say it takes receiver reports.
    takes_reports: bool,
}

impl<D: AudioDecoder> SenderStream<D> {
    /// This tick's 20 ms: what the stretcher holds, else decode what the buffer says to play.
    fn next_frame(&mut self, now: Instant) -> (Pcm, bool) {
        let mut concealed = false;
        for _ in 0..MAX_DECODES_PER_TICK {
            if let Some(pcm) = self.stretcher.next_frame() {
                return (pcm, concealed);
            }
            let playout = self.jitter.pop(now);
            concealed |= matches!(playout, Playout::Conceal | Playout::Fec { .. });
            let stretch = match &playout {
                Playout::Frame { stretch, .. } => *stretch,
                _ => Stretch::None,
            };
            self.stretcher.push(&decode_playout(&mut self.decoder, &playout), stretch);
        }
        (self.stretcher.next_frame().unwrap_or([0; FRAME_SAMPLES]), concealed)
    }
}

/// Counters for `hail status`, per sender.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SenderStats {
    /// Who.
    pub sender: SenderIndex,
    /// Its jitter buffer's counters (default when it is not in the mix).
    pub jitter: JitterStats,
    /// Whether it is in the mix (its frames are coming).
    pub in_mix: bool,
    /// Its last packet said it is muted.
    pub muted: bool,
}

/// The group call's receiving audio.
pub struct GroupAudioReceiver<D> {
    new_decoder: Box<dyn FnMut() -> Result<D, CodecError> + Send>,
    admitted: BTreeMap<SenderIndex, Option<SenderStream<D>>>,
    limiter: Limiter,
    speakers: ActiveSpeakers,
    refused: u64,
}

impl<D> std::fmt::Debug for GroupAudioReceiver<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupAudioReceiver")
            .field("admitted", &self.admitted.keys().collect::<Vec<_>>())
            .field("mixing", &self.admitted.values().filter(|s| s.is_some()).count())
            .field("refused", &self.refused)
            .finish()
    }
}

impl<D: AudioDecoder> GroupAudioReceiver<D> {
    /// A receiver that makes each sender's decoder with `new_decoder` (`OpusDecoder::new`).
    pub fn new(new_decoder: impl FnMut() -> Result<D, CodecError> + Send + 'static) -> Self {
        GroupAudioReceiver {
            new_decoder: Box::new(new_decoder),
            admitted: BTreeMap::new(),
            limiter: Limiter::new(),
            speakers: ActiveSpeakers::new(),
            refused: 0,
        }
    }

    /// `sender` may be mixed (it joined the roster). Admitting one already admitted does nothing.
    pub fn admit(&mut self, sender: SenderIndex) -> Result<(), GroupAudioError> {
        if !self.admitted.contains_key(&sender) && self.admitted.len() >= MAX_SENDERS {
            return Err(GroupAudioError::TooManySenders);
        }
        self.admitted.entry(sender).or_insert(None);
        Ok(())
    }

    /// `sender` left the call: out of the mix at once, its frames refused from now on.
    pub fn remove(&mut self, sender: SenderIndex) {
        self.admitted.remove(&sender);
        self.speakers.remove(sender);
    }

    /// The senders admitted.
    pub fn senders(&self) -> impl Iterator<Item = SenderIndex> + '_ {
        self.admitted.keys().copied()
    }

    /// The senders in the mix now (admitted and sending).
    pub fn mixing(&self) -> impl Iterator<Item = SenderIndex> + '_ {
        self.admitted.iter().filter(|(_, s)| s.is_some()).map(|(i, _)| *i)
    }

    /// Frames and packets refused so far (unknown senders, oversized frames, garbage).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// The dominant speaker.
    pub fn dominant(&self) -> Option<SenderIndex> {
        self.speakers.dominant()
    }

    /// The limiter, for its counters.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// Per-sender counters.
    pub fn stats(&self) -> Vec<SenderStats> {
        self.admitted
            .iter()
            .map(|(sender, stream)| SenderStats {
                sender: *sender,
                jitter: stream.as_ref().map(|s| s.jitter.stats()).unwrap_or_default(),
                in_mix: stream.is_some(),
                muted: stream.as_ref().is_some_and(|s| s.muted),
            })
            .collect()
    }

    /// An opened audio frame's plaintext from `sender` (the same [`AudioPacket`] a 1:1 call
    /// carries), arrived at `now`.
    pub fn on_plaintext(&mut self, sender: SenderIndex, plaintext: &[u8], now: Instant) -> Result<(), GroupAudioError> {
        match AudioPacket::decode(plaintext) {
            Ok(packet) => self.on_packet(sender, packet, now),
            Err(e) => {
                self.refused += 1;
                Err(e.into())
            }
        }
    }

    /// `sender`'s audio packet (its newest frame first, then redundant copies), arrived at `now`.
    pub fn on_packet(&mut self, sender: SenderIndex, packet: AudioPacket, now: Instant) -> Result<(), GroupAudioError> {
        let result = self.accept(sender, packet, now);
        if result.is_err() {
            self.refused += 1;
        }
        result
    }

    fn accept(&mut self, sender: SenderIndex, packet: AudioPacket, now: Instant) -> Result<(), GroupAudioError> {
        let slot = self.admitted.get_mut(&sender).ok_or(GroupAudioError::UnknownSender(sender.0))?;
        if let Some((_, data)) = packet.frames.iter().find(|(_, data)| data.len() > MAX_OPUS_FRAME) {
            return Err(GroupAudioError::FrameTooLarge(data.len()));
        }
        let stream = match slot {
            Some(stream) => stream,
            None => slot.insert({
                // The sender starts ready for bursts (copies 3 and 6 back): hold for them.
                let mut jitter = JitterBuffer::new();
                let loss = LossMeter::ready_for_bursts(&mut jitter);
                SenderStream {
                jitter,
                decoder: (self.new_decoder)().map_err(|e| GroupAudioError::Decoder(e.to_string()))?,
                stretcher: Stretcher::default(),
                last_arrival: now,
                muted: false,
                loss,
                takes_reports: false,
            }}),
        };
        stream.last_arrival = now;
        stream.muted = packet.flags & super::packet::FLAG_MUTED != 0;
        stream.takes_reports = packet.flags & FLAG_GROUP_REPORTS != 0;
        stream.loss.on_packet(&packet, &mut stream.jitter);
        let mut frames = packet.frames.into_iter();
        if let Some((seq, data)) = frames.next() {
            stream.jitter.insert(seq, data, now);
        }
        for (seq, data) in frames {
            stream.jitter.insert_redundant(seq, data);
        }
        Ok(())
    }

    /// A receiver report about `sender`'s audio since the last one (`media::loss_meter`, with its
    /// bursts), when its frames are coming and its packets say it takes reports
    /// ([`FLAG_GROUP_REPORTS`]); `None` otherwise.
    pub fn report(&mut self, sender: SenderIndex, rtt_ms: u16) -> Option<ReceiverReport> {
        let stream = self.admitted.get_mut(&sender)?.as_mut()?;
        stream.takes_reports.then(|| stream.loss.report(&mut stream.jitter, rtt_ms, true))
    }

    /// The playout clock ticked (every 20 ms): the next 20 ms of the mix.
    pub fn tick(&mut self, now: Instant) -> MixedFrame {
        let mut timed_out = Vec::new();
        for (sender, slot) in self.admitted.iter_mut() {
            if slot.as_ref().is_some_and(|s| now.saturating_duration_since(s.last_arrival) >= SENDER_TIMEOUT) {
                *slot = None;
                self.speakers.remove(*sender);
                timed_out.push(*sender);
            }
        }
        let mut sum = [0i32; FRAME_SAMPLES];
        let mut levels = Vec::new();
        for (sender, slot) in self.admitted.iter_mut() {
            let Some(stream) = slot else { continue };
            let (pcm, concealed) = stream.next_frame(now);
            for (acc, s) in sum.iter_mut().zip(&pcm) {
                *acc += i32::from(*s);
            }
            self.speakers.on_frame(*sender, &pcm);
            levels.push(SenderLevel {
                sender: *sender,
                frame_dbfs: energy_dbfs(mean_square(&pcm)),
                speech_dbfs: 0.0,
                speaking: false,
                concealed,
            });
        }
        let events = self.speakers.decide();
        for level in &mut levels {
            level.speech_dbfs = self.speakers.level_dbfs(level.sender);
            level.speaking = self.speakers.speaking(level.sender);
        }
        MixedFrame { pcm: self.limiter.process(&sum), levels, dominant: self.speakers.dominant(), events, timed_out }
    }
}
