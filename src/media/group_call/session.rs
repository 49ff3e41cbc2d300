//! A group call's audio at one member, sans-IO: what [`super::GroupCallMedia`]'s task does when.
//!
//! Every 20 ms the session asks for 20 ms of the microphone ([`Output::CaptureAudio`]), says how to
//! encode it ([`Output::EncodeAudio`], once, whatever the number of members), builds the same
//! [`AudioPacket`] a 1:1 call sends (with the redundant copies of [`AudioFramer`]), has it sealed
//! once through the [`GroupFrameCrypto`] port and hands the one ciphertext out for every member's
//! link ([`Output::Transmit`]). Each member's datagrams are opened through the port (a refusal is
//! counted against that member, never fatal) and go to the [`GroupAudioReceiver`] under the sender
//! index the member was added with; 10 ms after each send tick the receiver's mix is played
//! ([`Output::PlayAudio`]), and what changed in who speaks comes out as [`GroupAudioEvent`]s.
//!
//! The session holds no clock, socket or thread: `now` is handed in, and the driver runs Opus.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;

use super::{GroupAudioEvent, GroupAudioStats, GroupFrameCrypto, GroupSendStats, ParticipantAudioStats};
use crate::crypto::sender_key::{GroupMedia, SenderIndex};
use crate::media::active_speaker::SpeakerEvent;
use crate::media::audio::{AudioEncodeJob, AudioFramer};
use crate::media::codec::opus::{AudioDecoder, CodecError, FRAME_SAMPLES, Pcm};
use crate::media::group_audio::{GroupAudioError, GroupAudioReceiver};
use crate::media::jitter::FRAME;

/// How long after a send tick its play tick comes (as in a 1:1 call).
const PLAY_OFFSET: Duration = Duration::from_millis(10);

/// Why a member was not added.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    /// Another member already sends under this index.
    #[error("sender index {index} is already {holder}'s")]
    IndexTaken {
        /// The index.
        index: u8,
        /// Who has it.
        holder: PeerId,
    },
    /// The receiver refused another sender (too many).
    #[error(transparent)]
    Receiver(#[from] GroupAudioError),
    /// The call's media has stopped.
    #[error("the group call's media has stopped")]
    Stopped,
}

/// What the session asks its driver to do.
#[derive(Debug)]
pub enum Output {
    /// Take 20 ms from the audio source and hand it in ([`GroupAudioSession::captured`]).
    CaptureAudio {
        /// The capture time to stamp it with, µs since the Unix epoch.
        capture_us: u64,
    },
    /// Encode it with Opus and hand the bytes in ([`GroupAudioSession::encoded`]).
    EncodeAudio(AudioEncodeJob),
    /// Send this sealed frame to every member (one ciphertext for all).
    Transmit(Vec<u8>),
    /// Write this 20 ms of the mix to the audio sink.
    PlayAudio(Pcm),
    /// Tell the node.
    Event(GroupAudioEvent),
    /// Nothing to do until then.
    Timeout(Instant),
}

/// One member, as the media sees it.
#[derive(Debug, Clone)]
struct Member {
    sender: SenderIndex,
    stats: ParticipantAudioStats,
}

/// The sans-IO audio of a group call at one member.
pub struct GroupAudioSession<D> {
    crypto: Arc<dyn GroupFrameCrypto>,
    framer: AudioFramer,
    bitrate: i32,
    muted: bool,
    receiver: GroupAudioReceiver<D>,
    members: BTreeMap<PeerId, Member>,
    send: GroupSendStats,
    dominant: Option<PeerId>,
    next_send: Instant,
    next_play: Instant,
    outputs: VecDeque<Output>,
}

impl<D> std::fmt::Debug for GroupAudioSession<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupAudioSession")
            .field("members", &self.members.keys().collect::<Vec<_>>())
            .field("muted", &self.muted)
            .field("send", &self.send)
            .finish()
    }
}

impl<D: AudioDecoder> GroupAudioSession<D> {
    /// A session that seals and opens through `crypto`, encodes at `bitrate`, makes each member's
    /// decoder with `new_decoder`, and sends its first frame at `now`.
    pub fn new(
        crypto: Arc<dyn GroupFrameCrypto>,
        bitrate: i32,
        muted: bool,
        new_decoder: impl FnMut() -> Result<D, CodecError> + Send + 'static,
        now: Instant,
    ) -> Self {
        GroupAudioSession {
            crypto,
            framer: AudioFramer::new(),
            bitrate,
            muted,
            receiver: GroupAudioReceiver::new(new_decoder),
            members: BTreeMap::new(),
            send: GroupSendStats { bitrate, redundancy: 1, ..Default::default() },
            dominant: None,
            next_send: now,
            next_play: now + PLAY_OFFSET,
            outputs: VecDeque::new(),
        }
    }

    /// `member` is in the call and sends under `sender` (the roster's index): its frames are
    /// mixed from now on. Adding a member again with the same index does nothing; with another
    /// index it moves (its stream starts afresh). Either way a link failure written down for it
    /// is cleared: it comes with a new link.
    pub fn add_member(&mut self, member: PeerId, sender: SenderIndex) -> Result<(), MemberError> {
        if let Some((holder, _)) = self.members.iter().find(|(p, m)| m.sender == sender && **p != member) {
            return Err(MemberError::IndexTaken { index: sender.0, holder: *holder });
        }
        if let Some(old) = self.members.get_mut(&member) {
            if old.sender == sender {
                old.stats.link_error = None;
                return Ok(());
            }
            self.receiver.remove(old.sender);
        }
        self.receiver.admit(sender)?;
        let stats = ParticipantAudioStats::new(member, sender);
        self.members.insert(member, Member { sender, stats });
        Ok(())
    }

    /// `member` left: its stream leaves the mix at once and nothing more of it is taken.
    /// Whether it was a member.
    pub fn remove_member(&mut self, member: &PeerId) -> bool {
        let Some(m) = self.members.remove(member) else { return false };
        self.receiver.remove(m.sender);
        if m.stats.speaking {
            // The receiver's own event names only its index, which has no member any more.
            self.outputs.push_back(Output::Event(GroupAudioEvent::Speaking { member: *member, speaking: false }));
        }
        if self.dominant == Some(*member) {
            self.dominant = None;
        }
        true
    }

    /// The members, with their sender indices.
    pub fn members(&self) -> impl Iterator<Item = (PeerId, SenderIndex)> + '_ {
        self.members.iter().map(|(p, m)| (*p, m.sender))
    }

    /// Mutes or unmutes: muted frames carry silence and the muted flag.
    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// Whether muted.
    pub fn muted(&self) -> bool {
        self.muted
    }

    /// A datagram that came on `from`'s link at `now`: opened, and its audio given to the mix.
    /// A frame the port refuses, one of another sender than `from`'s index, anything that is not
    /// audio, and garbage are counted against `from` and dropped.
    pub fn datagram(&mut self, from: &PeerId, datagram: &[u8], now: Instant) {
        let Some(member) = self.members.get_mut(from) else { return };
        member.stats.datagrams += 1;
        member.stats.bytes += datagram.len() as u64;
        let opened = match self.crypto.open(from, datagram) {
            Ok(opened) => opened,
            Err(e) => {
                member.stats.refused += 1;
                tracing::debug!(%from, error = %e, "group frame refused");
                return;
            }
        };
        let sender = opened.header.key_id.sender();
        if sender != member.sender || opened.header.media != GroupMedia::Audio {
            member.stats.refused += 1;
            return;
        }
        if self.receiver.on_plaintext(sender, &opened.payload, now).is_err() {
            member.stats.refused += 1;
        }
    }

    /// `from`'s link failed or closed: written down in its stats (its stream leaves the mix when
    /// its frames stop, like any sender's).
    pub fn link_failed(&mut self, from: &PeerId, error: String) {
        if let Some(member) = self.members.get_mut(from) {
            member.stats.link_error = Some(error.clone());
            self.outputs.push_back(Output::Event(GroupAudioEvent::LinkFailed { member: *from, error }));
        }
    }

    /// 20 ms from the source (`None`: there is no source), captured at `capture_us`.
    pub fn captured(&mut self, pcm: Option<Pcm>, capture_us: u64) {
        let Some(pcm) = pcm else { return };
        let job = AudioEncodeJob {
            pcm: if self.muted { [0; FRAME_SAMPLES] } else { pcm },
            capture_us,
            muted: self.muted,
            bitrate: self.bitrate,
            expected_loss_percent: 0,
        };
        self.outputs.push_back(Output::EncodeAudio(job));
    }

    /// `job` was encoded into `opus`: sealed once, and handed out for every member.
    pub fn encoded(&mut self, job: &AudioEncodeJob, opus: Result<Vec<u8>, CodecError>) {
        let opus = match opus {
            Ok(opus) => opus,
            Err(e) => {
                self.send.encode_failures += 1;
                tracing::debug!(error = %e, "audio frame not encoded");
                return;
            }
        };
        let plaintext = self.framer.packet(job, opus, 0).encode();
        match self.crypto.seal(GroupMedia::Audio, &plaintext) {
            Ok(frame) => {
                self.send.frames += 1;
                self.send.bytes += frame.len() as u64;
                self.outputs.push_back(Output::Transmit(frame));
            }
            Err(e) => {
                // Not in the call (yet, or any more): nothing is sent until keys are there.
                self.send.seal_refused += 1;
                tracing::debug!(error = %e, "audio frame not sealed");
            }
        }
    }

    /// A datagram could not be sent on `to`'s link.
    pub fn send_failed(&mut self, to: &PeerId) {
        if let Some(member) = self.members.get_mut(to) {
            member.stats.send_failures += 1;
        }
    }

    /// The datagram went out on `to`'s link.
    pub fn sent(&mut self, to: &PeerId, len: usize) {
        if let Some(member) = self.members.get_mut(to) {
            member.stats.sent_datagrams += 1;
            member.stats.sent_bytes += len as u64;
        }
    }

    /// Runs every tick due by `now`, `wall_us` being the wall clock then (a clock that fell behind
    /// catches up with all of them at once).
    pub fn handle_timeout(&mut self, now: Instant, wall_us: u64) {
        while self.next_send <= now {
            let late = now.saturating_duration_since(self.next_send).as_micros() as u64;
            self.outputs.push_back(Output::CaptureAudio { capture_us: wall_us.saturating_sub(late) });
            self.next_send += FRAME;
        }
        while self.next_play <= now {
            self.play(now);
            self.next_play += FRAME;
        }
    }

    fn play(&mut self, now: Instant) {
        let mixed = self.receiver.tick(now);
        let by_index: BTreeMap<SenderIndex, PeerId> = self.members.iter().map(|(p, m)| (m.sender, *p)).collect();
        for member in self.members.values_mut() {
            let level = mixed.levels.iter().find(|l| l.sender == member.sender);
            member.stats.level_dbfs = level.map(|l| l.frame_dbfs);
            member.stats.speaking = level.is_some_and(|l| l.speaking);
            if level.is_some_and(|l| l.concealed) {
                member.stats.concealed_ticks += 1;
            }
        }
        for sender in &mixed.timed_out {
            if let Some(member) = by_index.get(sender) {
                self.outputs.push_back(Output::Event(GroupAudioEvent::LeftMix { member: *member }));
            }
        }
        for event in mixed.events {
            let event = match event {
                SpeakerEvent::Speaking(sender, speaking) => match by_index.get(&sender) {
                    Some(member) => GroupAudioEvent::Speaking { member: *member, speaking },
                    None => continue,
                },
                SpeakerEvent::Dominant(sender) => {
                    self.dominant = sender.and_then(|s| by_index.get(&s).copied());
                    GroupAudioEvent::Dominant { member: self.dominant }
                }
            };
            self.outputs.push_back(Output::Event(event));
        }
        self.outputs.push_back(Output::PlayAudio(mixed.pcm));
    }

    /// The next thing to do; [`Output::Timeout`] when there is nothing until then.
    pub fn poll_output(&mut self) -> Output {
        self.outputs.pop_front().unwrap_or(Output::Timeout(self.poll_timeout()))
    }

    /// When [`GroupAudioSession::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_send.min(self.next_play)
    }

    /// The counters: ours, and every member's (jitter buffer, level, speaking).
    pub fn stats(&self) -> GroupAudioStats {
        let receiver = self.receiver.stats();
        let participants = self
            .members
            .values()
            .map(|m| {
                let mut s = m.stats.clone();
                if let Some(r) = receiver.iter().find(|r| r.sender == m.sender) {
                    s.jitter = r.jitter;
                    s.in_mix = r.in_mix;
                    s.muted = r.muted;
                }
                s
            })
            .collect();
        GroupAudioStats {
            muted: self.muted,
            send: GroupSendStats { redundancy: self.framer.distances().len(), ..self.send },
            participants,
            dominant: self.dominant,
            limited_frames: self.receiver.limiter().limited_frames(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::sender_key::{GroupFrameHeader, KeyId, OpenedFrame};
    use crate::media::group_call::FrameCryptoError;
    use crate::media::packet::AudioPacket;

    /// Frames in the clear: `sender index || media byte || payload`; open believes the header.
    struct ClearFrames(SenderIndex);

    impl GroupFrameCrypto for ClearFrames {
        fn seal(&self, media: GroupMedia, payload: &[u8]) -> Result<Vec<u8>, FrameCryptoError> {
            Ok([&[self.0.0, media.to_byte()][..], payload].concat())
        }

        fn open(&self, _from: &PeerId, frame: &[u8]) -> Result<OpenedFrame, FrameCryptoError> {
            let [sender, media, payload @ ..] = frame else { return Err(FrameCryptoError("short".into())) };
            let media = GroupMedia::from_byte(*media).map_err(|e| FrameCryptoError(e.to_string()))?;
            let key_id = KeyId::new(0, SenderIndex(*sender)).unwrap();
            Ok(OpenedFrame { header: GroupFrameHeader { media, key_id, counter: 0 }, payload: payload.to_vec() })
        }
    }

    /// Plays every sample of a frame at the frame's first byte × 100; conceals with silence.
    struct LevelDecoder;

    impl AudioDecoder for LevelDecoder {
        fn decode(&mut self, packet: &[u8]) -> Pcm {
            [i16::from(packet.first().copied().unwrap_or(0)) * 100; FRAME_SAMPLES]
        }
        fn decode_fec(&mut self, _next: &[u8]) -> Pcm {
            [0; FRAME_SAMPLES]
        }
        fn conceal(&mut self) -> Pcm {
            [0; FRAME_SAMPLES]
        }
    }

    fn member(n: u8) -> PeerId {
        crate::identity::Identity::from_seed([n; 32]).peer_id()
    }

    fn session(now: Instant) -> GroupAudioSession<LevelDecoder> {
        GroupAudioSession::new(Arc::new(ClearFrames(SenderIndex(0))), 32_000, false, || Ok(LevelDecoder), now)
    }

    /// `sender`'s frame `seq` at `level`, as it comes on a link.
    fn frame(sender: u8, media: GroupMedia, seq: u32, level: u8) -> Vec<u8> {
        let packet = AudioPacket { seq, capture_us: 0, flags: 0, frames: vec![(seq, vec![level])] };
        [&[sender, media.to_byte()][..], &packet.encode()].concat()
    }

    fn drain(s: &mut GroupAudioSession<LevelDecoder>) -> Vec<Output> {
        let mut out = Vec::new();
        loop {
            match s.poll_output() {
                Output::Timeout(_) => return out,
                o => out.push(o),
            }
        }
    }

    #[test]
    fn each_frame_is_encoded_and_sealed_once_with_a_copy_of_the_one_before() {
        let t0 = Instant::now();
        let mut s = session(t0);
        s.add_member(member(1), SenderIndex(1)).unwrap();
        s.add_member(member(2), SenderIndex(2)).unwrap();
        let mut sealed = Vec::new();
        for n in 0..3u32 {
            s.handle_timeout(t0 + FRAME * n, 1_000 + u64::from(n));
            for o in drain(&mut s) {
                if let Output::CaptureAudio { capture_us } = o {
                    s.captured(Some([7; FRAME_SAMPLES]), capture_us);
                }
            }
            let jobs: Vec<_> = drain(&mut s)
                .into_iter()
                .filter_map(|o| match o {
                    Output::EncodeAudio(job) => Some(job),
                    _ => None,
                })
                .collect();
            assert_eq!(jobs.len(), 1, "one encode per frame, whatever the number of members");
            s.encoded(&jobs[0], Ok(vec![n as u8]));
            sealed.extend(drain(&mut s).into_iter().filter_map(|o| match o {
                Output::Transmit(f) => Some(f),
                _ => None,
            }));
        }
        assert_eq!(sealed.len(), 3, "one sealed frame per 20 ms for all members");
        s.set_muted(true);
        s.captured(Some([7; FRAME_SAMPLES]), 0);
        match drain(&mut s).as_slice() {
            [Output::EncodeAudio(job)] => assert!(job.muted && job.pcm == [0; FRAME_SAMPLES]),
            other => panic!("{other:?}"),
        }
        let last = AudioPacket::decode(&sealed[2][2..]).unwrap();
        assert_eq!(last.frames, vec![(2, vec![2]), (1, vec![1])]);
        assert_eq!(s.stats().send.frames, 3);
    }

    #[test]
    fn frames_not_its_own_or_not_audio_are_refused_against_the_member_who_delivered_them() {
        let t0 = Instant::now();
        let mut s = session(t0);
        s.add_member(member(1), SenderIndex(1)).unwrap();
        s.add_member(member(2), SenderIndex(2)).unwrap();
        s.datagram(&member(1), &frame(2, GroupMedia::Audio, 0, 1), t0);
        s.datagram(&member(1), &frame(1, GroupMedia::Video { temporal_layer: 0 }, 0, 1), t0);
        s.datagram(&member(1), &[1], t0);
        s.datagram(&member(9), &frame(9, GroupMedia::Audio, 0, 1), t0);
        s.datagram(&member(2), &frame(2, GroupMedia::Audio, 0, 1), t0);
        let stats = s.stats();
        assert_eq!(stats.participants.iter().map(|p| (p.datagrams, p.refused)).collect::<Vec<_>>(), {
            let mut want = vec![(3, 3), (1, 0)];
            if member(1).to_bytes() > member(2).to_bytes() {
                want.reverse();
            }
            want
        });
        assert_eq!(
            s.add_member(member(3), SenderIndex(2)),
            Err(MemberError::IndexTaken { index: 2, holder: member(2) })
        );
    }

    #[test]
    fn a_removed_member_leaves_the_mix_on_the_next_tick() {
        let t0 = Instant::now();
        let mut s = session(t0);
        s.add_member(member(1), SenderIndex(1)).unwrap();
        let mut played = Vec::new();
        let mut events = Vec::new();
        for n in 0..40u32 {
            let now = t0 + FRAME * n;
            if n == 30 {
                assert!(s.remove_member(&member(1)));
            }
            s.datagram(&member(1), &frame(1, GroupMedia::Audio, n, 100), now);
            s.handle_timeout(now + PLAY_OFFSET, 0);
            for o in drain(&mut s) {
                match o {
                    Output::PlayAudio(pcm) => played.push(pcm[0]),
                    Output::Event(e) => events.push((n, e)),
                    _ => {}
                }
            }
        }
        assert!(played[..30].contains(&10_000), "member 1 was heard: {played:?}");
        assert!(played[30..].iter().all(|s| *s == 0), "and not after its removal: {played:?}");
        assert!(s.stats().participants.is_empty());
        let speaking = |on| GroupAudioEvent::Speaking { member: member(1), speaking: on };
        assert!(events.iter().any(|(n, e)| *n < 30 && *e == speaking(true)), "{events:?}");
        assert!(events.iter().any(|(n, e)| *n == 30 && *e == speaking(false)), "{events:?}");
        assert!(events.iter().any(|(n, e)| *n == 30 && *e == GroupAudioEvent::Dominant { member: None }), "{events:?}");
    }
}
