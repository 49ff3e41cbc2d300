//! A group call's media plane at one member (issue 13): the sans-IO [`GroupAudioSession`] and
//! [`GroupVideoSession`] driven by one thin tokio task, [`GroupCallMedia`].
//!
//! Mesh: every 20 ms the member captures 20 ms, encodes it with Opus **once**, seals it **once**
//! through the [`GroupFrameCrypto`] port (the node implements it over its `GroupMember`, which
//! holds the keys) and sends the same ciphertext as a datagram on every other member's
//! [`MediaLink`]. What comes on a member's link is opened through the port and mixed
//! (`media::group_audio::GroupAudioReceiver`: a jitter buffer and a decoder per sender, a limiter
//! on the sum, active-speaker detection); the mix goes to the audio sink.
//!
//! Video (`video`, `video_io`): each picture encoded once and sealed once, the one record on every
//! member's stream of its GOP; each member's records opened, decoded and shown by a receiver,
//! decoder and sink of its own. The task carries out the audio's outputs before the video's on
//! every turn, the codecs' work is on threads of their own, and the video's streams go below the
//! audio's datagrams on every link: video never holds audio up.
//!
//! One link failing stops nothing else: its reader ends, the failure is written down and told, and
//! the member's stream leaves the mix when its frames stop. A removed member's link is dropped and
//! its stream leaves the mix at once.

mod authenticity;
mod forward;
mod report;
mod session;
mod thinning;
mod video;
mod video_io;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use authenticity::{Forged, Forgery, FrameAuthStats, FrameBatcher, FrameVerifier};
pub use forward::{ForwardFilter, ForwardRefusal};
pub use report::GroupReport;
pub use session::{GroupAudioSession, MemberError, Output, REPORT_INTERVAL, Route};
pub use thinning::{LayerGate, ThinningStats};
pub use video::{
    GROUP_VIDEO_BITRATE, GROUP_VIDEO_FORMAT, GroupRecordSeal, GroupVideoSession, GroupVideoStats, KIND_GROUP_VIDEO,
    ParticipantVideoStats, VideoOutput, group_video_plaintext, parse_group_video_plaintext,
};

use super::MediaStartError;
use super::codec::opus::{OpusDecoder, OpusEncoder};
use super::config::{AudioConfig, VideoConfig};
use super::driver::{lock, open_audio};
use super::jitter::JitterStats;
use super::stats::AudioStats;
use crate::crypto::frame_auth::{FrameAuthenticator, FrameList};
use crate::crypto::sender_key::{GroupMedia, OpenedFrame, SenderIndex};
use crate::media::video::encoder::EncodeWorker;
use crate::media::video::record_reader::RecordBudget;
use crate::media::video::sender::Outgoing;
use crate::media::view::ViewFeed;
use video_io::{EncodeTask, MemberDecoder, VideoEvent};
use crate::media_link::MediaLink;
use crate::wall_clock::now_us as wall_us;

/// Datagrams read from the members' links, waiting for the media task (about 300 ms of audio from
/// seven members; past it, the newest wait in the link's own queue).
const IN_QUEUE: usize = 128;
/// How often the stats [`GroupCallMedia::stats`] reads are brought up to date.
const STATS_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Why the crypto port refused to seal or open a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FrameCryptoError(pub String);

/// The port to the group's keys: the node implements it over its `group::GroupMember` (which
/// holds our sender key for the epoch and every other member's), so the media never holds a key
/// and never names the group's control plane.
pub trait GroupFrameCrypto: Send + Sync {
    /// Seals one frame of ours, once for every receiver (refused when we are not in the call).
    fn seal(&self, media: GroupMedia, payload: &[u8]) -> Result<Vec<u8>, FrameCryptoError>;
    /// Opens a frame that came on member `from`'s link: refused unless `from` is a member, the
    /// frame is under `from`'s own sender index, its key is known and it is no replay.
    fn open(&self, from: &PeerId, frame: &[u8]) -> Result<OpenedFrame, FrameCryptoError>;
    /// Signs a list of our frames with our identity key, in this call (`crypto::frame_auth`). By
    /// default a port cannot sign: no authenticator is sent, and the receivers count our frames
    /// that came through a forwarder unverified.
    fn sign_frames(&self, list: FrameList) -> Result<FrameAuthenticator, FrameCryptoError> {
        let _ = list;
        Err(FrameCryptoError("this port does not sign frames".into()))
    }
    /// Whether member `signer` signed `authenticator` in this call.
    fn verify_frames(&self, signer: &PeerId, authenticator: &FrameAuthenticator) -> Result<(), FrameCryptoError> {
        let _ = (signer, authenticator);
        Err(FrameCryptoError("this port does not verify frames".into()))
    }
}

/// Where a group call's audio and video come from and go to, and how they start.
#[derive(Debug, Clone, Default)]
pub struct GroupMediaConfig {
    /// The audio source, sink, bitrate and microphone processing (as a 1:1 call's).
    pub audio: AudioConfig,
    /// The microphone starts muted.
    pub muted: bool,
    /// The video source, sink (a directory: a Y4M per participant) and encoder; the size is at
    /// most [`GROUP_VIDEO_FORMAT`].
    pub video: VideoConfig,
    /// Our video starts on.
    pub video_on: bool,
    /// Where the viewers (`hail view`) get our pictures as captured and each member's as shown:
    /// the node's feed, for this call ([`ViewFeed::for_call`]). The default feed has no viewer and
    /// costs nothing.
    pub view: ViewFeed,
}

/// What the group call's media tells the node (for status and `hail watch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupAudioEvent {
    /// `member` started or stopped speaking.
    Speaking {
        /// Who.
        member: PeerId,
        /// Whether they speak now.
        speaking: bool,
    },
    /// The dominant speaker changed (`None`: nobody).
    Dominant {
        /// Who it is now.
        member: Option<PeerId>,
    },
    /// `member`'s frames stopped for a second: its stream left the mix (it comes back with them).
    LeftMix {
        /// Who.
        member: PeerId,
    },
    /// `member`'s video cannot be decoded: ask it for a keyframe (on its leg).
    KeyframeWanted {
        /// Whom to ask.
        member: PeerId,
    },
    /// A frame (or an authenticator) under `member`'s sender index that `delivered_by`'s link
    /// brought is a forgery (`protocols/group-media-v1.md`, "Frame authenticators"): it may
    /// already have been played. When `delivered_by` is our forwarder we stop trusting it
    /// (`distrusted`): our frames go to every member directly, and we take none of its relaying.
    Forged {
        /// Whose sender index it claimed (`None`: no member has it any more).
        member: Option<PeerId>,
        /// The member whose link delivered it.
        delivered_by: PeerId,
        /// The frame's counter (`None`: an authenticator that did not verify).
        counter: Option<u64>,
        /// Why.
        why: Forgery,
        /// We stopped trusting `delivered_by` as our forwarder, now.
        distrusted: bool,
    },
    /// `member`'s link failed or closed; the others go on.
    LinkFailed {
        /// Who.
        member: PeerId,
        /// Why.
        error: String,
    },
}

/// What we send, once for all members.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupSendStats {
    /// Frames sealed (each sent to every member).
    pub frames: u64,
    /// Bytes sealed (each frame counted once).
    pub bytes: u64,
    /// The Opus bitrate, bps.
    pub bitrate: i32,
    /// Earlier frames carried as redundant copies in each packet (for the worst receiver).
    pub redundancy: usize,
    /// How far back they are, frames, nearest first.
    #[serde(default)]
    pub copy_distances: Vec<u32>,
    /// The loss Opus sizes its in-band FEC for, percent (the worst receiver's).
    #[serde(default)]
    pub expected_loss_percent: i32,
    /// Receiver reports sent (one per member a second).
    #[serde(default)]
    pub reports: u64,
    /// Frames the port would not seal (not in the call yet or any more).
    pub seal_refused: u64,
    /// Frames Opus would not encode.
    pub encode_failures: u64,
    /// (Forwarding) other members' frames forwarded on.
    #[serde(default)]
    pub forwarded_frames: u64,
    /// Their bytes, counted once per member they went to.
    #[serde(default)]
    pub forwarded_bytes: u64,
    /// (Forwarding) frames not forwarded: another member's sender index, a duplicate, garbage.
    #[serde(default)]
    pub forward_refused: u64,
    /// (Through a forwarder) frame authenticators sent: signed lists of our frames' digests.
    #[serde(default)]
    pub authenticators: u64,
    /// Their bytes (each counted once).
    #[serde(default)]
    pub authenticator_bytes: u64,
    /// Lists the port would not sign or seal.
    #[serde(default)]
    pub sign_failures: u64,
}

/// One other member's audio, as we hear it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipantAudioStats {
    /// Who.
    #[serde(with = "crate::identity::peer_id_text")]
    pub member: PeerId,
    /// Its sender index in the call.
    pub sender: u8,
    /// Datagrams that came on its link.
    pub datagrams: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Datagrams refused: not opened by the port (a stranger's key, another member's frame, a
    /// replay, tampering), not its own sender index, not audio or a report, not an audio packet,
    /// or a report that does not parse or is about someone else.
    pub refused: u64,
    /// Its receiver reports on our audio.
    #[serde(default)]
    pub reports: u64,
    /// The loss its last report saw on our audio (before recovery), per mille.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_loss_permille: Option<u16>,
    /// Its frames that came through the forwarder: verified, forged, unverified by its signed
    /// frame authenticators (all zero when none came that way).
    #[serde(default)]
    pub authenticity: FrameAuthStats,
    /// Its jitter buffer's counters (received, lost, concealed, FEC, the delay it aims for and
    /// holds); default while it is not in the mix.
    pub jitter: JitterStats,
    /// Play ticks on which part of its 20 ms was concealed (lost or late; FEC counts).
    pub concealed_ticks: u64,
    /// Its stream is in the mix (its frames are coming).
    pub in_mix: bool,
    /// Its last packet said it is muted.
    pub muted: bool,
    /// The level of its last 20 ms in the mix, dBFS (`None`: not in the mix).
    pub level_dbfs: Option<f64>,
    /// Whether it is speaking.
    pub speaking: bool,
    /// Datagrams we sent on its link.
    pub sent_datagrams: u64,
    /// Their bytes.
    pub sent_bytes: u64,
    /// Datagrams its link would not take.
    pub send_failures: u64,
    /// Why its link failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_error: Option<String>,
}

impl ParticipantAudioStats {
    /// Nothing counted yet for `member`, sending under `sender`.
    pub fn new(member: PeerId, sender: SenderIndex) -> Self {
        ParticipantAudioStats {
            member,
            sender: sender.0,
            datagrams: 0,
            bytes: 0,
            refused: 0,
            reports: 0,
            reported_loss_permille: None,
            authenticity: FrameAuthStats::default(),
            jitter: JitterStats::default(),
            concealed_ticks: 0,
            in_mix: false,
            muted: false,
            level_dbfs: None,
            speaking: false,
            sent_datagrams: 0,
            sent_bytes: 0,
            send_failures: 0,
            link_error: None,
        }
    }
}

/// The audio part of a group call's status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupAudioStats {
    /// The source in use.
    pub input: String,
    /// The sink in use.
    pub output: String,
    /// Why the source could not be opened (nothing is sent then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_error: Option<String>,
    /// Why the sink could not be opened (the mix is discarded then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_error: Option<String>,
    /// Whether the microphone is processed (echo cancellation, noise suppression, gain control).
    pub processing: bool,
    /// Our microphone is muted.
    pub muted: bool,
    /// What we send.
    pub send: GroupSendStats,
    /// Every other member, by member order.
    pub participants: Vec<ParticipantAudioStats>,
    /// The dominant speaker.
    #[serde(default, with = "optional_peer_text")]
    pub dominant: Option<PeerId>,
    /// Mix frames the limiter turned down (more than one loud talker at once).
    pub limited_frames: u64,
    /// The forwarder we stopped trusting (it delivered a forgery): our frames go to every member
    /// directly, and we take none of its relaying. Null while we trust ours (or have none).
    #[serde(default, with = "optional_peer_text")]
    pub distrusted_forwarder: Option<PeerId>,
}

/// An optional PeerId in JSON as its base58 text or null.
mod optional_peer_text {
    use libp2p_identity::PeerId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Option<PeerId>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Some(p) => s.serialize_some(&p.to_base58()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PeerId>, D::Error> {
        Option::<String>::deserialize(d)?.map(|t| t.parse().map_err(serde::de::Error::custom)).transpose()
    }
}

/// What the node tells a running group call's media.
enum Command {
    Add(PeerId, SenderIndex, Arc<dyn MediaLink>, oneshot::Sender<Result<(), MemberError>>),
    Remove(PeerId),
    Muted(bool),
    Route(Route),
    Video(bool),
    RemoteVideo(PeerId, bool),
    KeyframeRequested,
}

/// What a member's link reader hands the task, with the generation of the link it reads (a
/// member added again gets a new link; what its old link's reader queued before it was stopped
/// must not touch the new one).
enum FromLink {
    Datagram(PeerId, u64, Bytes),
    Failed(PeerId, u64, String),
}

/// A group call's running audio. Dropping it stops the task.
#[derive(Debug)]
pub struct GroupCallMedia {
    stats: Arc<Mutex<GroupAudioStats>>,
    video_stats: Arc<Mutex<GroupVideoStats>>,
    commands: mpsc::UnboundedSender<Command>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Add(p, s, _, _) => write!(f, "Add({p}, {})", s.0),
            Command::Remove(p) => write!(f, "Remove({p})"),
            Command::Muted(m) => write!(f, "Muted({m})"),
            Command::Route(r) => write!(f, "Route({r:?})"),
            Command::Video(on) => write!(f, "Video({on})"),
            Command::RemoteVideo(p, on) => write!(f, "RemoteVideo({p}, {on})"),
            Command::KeyframeRequested => write!(f, "KeyframeRequested"),
        }
    }
}

impl GroupCallMedia {
    /// Starts a group call's audio: sealed and opened through `crypto`, with no member yet
    /// ([`GroupCallMedia::add_member`] for each). What it tells the node goes to `events` (a full
    /// channel drops the event: the stats hold the state).
    pub fn start(
        config: GroupMediaConfig,
        crypto: Arc<dyn GroupFrameCrypto>,
        events: mpsc::Sender<GroupAudioEvent>,
    ) -> Result<Self, MediaStartError> {
        let encoder = OpusEncoder::new(config.audio.bitrate)?;
        OpusDecoder::new()?;
        let session =
            GroupAudioSession::new(crypto.clone(), config.audio.bitrate, config.muted, OpusDecoder::new, Instant::now());
        let stats = Arc::new(Mutex::new(GroupAudioStats {
            input: config.audio.input.to_string(),
            output: config.audio.output.to_string(),
            ..session.stats()
        }));
        let now = Instant::now();
        // The video seals through the audio's port: one counter, one list of our frames for both.
        let video = GroupVideoSession::new(session.sealing_port(), config.video.sender_config(), config.video_on, now);
        let video_stats = Arc::new(Mutex::new(GroupVideoStats {
            input: config.video.input.to_string(),
            output: config.video.output.to_string(),
            ..video.stats()
        }));
        let (video_tx, video_results) = mpsc::unbounded_channel();
        // Two temporal layers (libaom; rav1e's are all base): a forwarder, or this member for a
        // slow receiver, can leave the enhancement layer out (`thinning`).
        let worker = EncodeWorker::layered(config.video.encoder, config.video.threads.max(1), 2);
        let video_encoder = video_io::start_encoder(config.video.input.clone(), worker, video_tx.clone(), config.view.clone())
            .map_err(|e| MediaStartError::Thread("encoder", e))?;
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (stop_tx, stop) = oneshot::channel();
        let task = GroupTask {
            session,
            encoder,
            config,
            stats: stats.clone(),
            video_stats: video_stats.clone(),
            events,
            links: BTreeMap::new(),
            next_generation: 0,
            video,
            video_encoder,
            video_tx,
            video_results,
            decoders: BTreeMap::new(),
            budget: RecordBudget::new(video_io::RECORD_BUDGET),
        };
        let task = tokio::spawn(task.run(commands_rx, stop));
        Ok(GroupCallMedia { stats, video_stats, commands, stop: Some(stop_tx), task: Some(task) })
    }

    /// `member`, sending under `sender` (the roster's index), is reached on `link`: we send it our
    /// frames and mix its. Refused when another member has that index, the mix is full, or the
    /// media has stopped.
    pub async fn add_member(
        &self,
        member: PeerId,
        sender: SenderIndex,
        link: Arc<dyn MediaLink>,
    ) -> Result<(), MemberError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Add(member, sender, link, tx)).map_err(|_| MemberError::Stopped)?;
        rx.await.unwrap_or(Err(MemberError::Stopped))
    }

    /// `member` left: its link is dropped and its stream leaves the mix.
    pub fn remove_member(&self, member: PeerId) {
        let _ = self.commands.send(Command::Remove(member));
    }

    /// Mutes or unmutes the microphone.
    pub fn set_muted(&self, muted: bool) {
        lock(&self.stats).muted = muted;
        let _ = self.commands.send(Command::Muted(muted));
    }

    /// How our frames flow from now on (the group's topology).
    pub fn set_route(&self, route: Route) {
        let _ = self.commands.send(Command::Route(route));
    }

    /// The counters, as last written down (every 100 ms).
    pub fn stats(&self) -> GroupAudioStats {
        lock(&self.stats).clone()
    }

    /// Our video on or off.
    pub fn set_video(&self, on: bool) {
        lock(&self.video_stats).sending = on;
        let _ = self.commands.send(Command::Video(on));
    }

    /// `member` said its video is on or off.
    pub fn set_remote_video(&self, member: PeerId, on: bool) {
        let _ = self.commands.send(Command::RemoteVideo(member, on));
    }

    /// A member asked us for a keyframe.
    pub fn keyframe_requested(&self) {
        let _ = self.commands.send(Command::KeyframeRequested);
    }

    /// The video's counters, as last written down (every 100 ms).
    pub fn video_stats(&self) -> GroupVideoStats {
        lock(&self.video_stats).clone()
    }

    /// Stops: the audio sink is finished (a WAV file completed) before the task ends.
    pub fn stop(mut self) -> Option<JoinHandle<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take()
    }
}

impl Drop for GroupCallMedia {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A member's link, the generation it was added under, the task reading its datagrams, and
/// those writing our video streams to it and reading its.
struct MemberLink {
    link: Arc<dyn MediaLink>,
    generation: u64,
    reader: JoinHandle<()>,
    video_out: mpsc::Sender<Outgoing>,
    video_writer: JoinHandle<()>,
    video_reader: JoinHandle<()>,
    /// (At the forwarder) a writer per origin of the records forwarded to this member: each
    /// origin's GOPs on streams of their own.
    forwarded: BTreeMap<u8, (mpsc::Sender<Outgoing>, JoinHandle<()>)>,
}

impl Drop for MemberLink {
    fn drop(&mut self) {
        self.reader.abort();
        self.video_writer.abort();
        self.video_reader.abort();
        for (_, writer) in self.forwarded.values() {
            writer.abort();
        }
    }
}

/// Everything the group call's media task owns.
struct GroupTask {
    session: GroupAudioSession<OpusDecoder>,
    encoder: OpusEncoder,
    config: GroupMediaConfig,
    stats: Arc<Mutex<GroupAudioStats>>,
    events: mpsc::Sender<GroupAudioEvent>,
    links: BTreeMap<PeerId, MemberLink>,
    /// The generation the next added link gets.
    next_generation: u64,
    video: GroupVideoSession,
    video_stats: Arc<Mutex<GroupVideoStats>>,
    video_encoder: std::sync::mpsc::Sender<EncodeTask>,
    /// Results of the video threads (the stream readers' records come on their own channel).
    video_tx: mpsc::UnboundedSender<VideoEvent>,
    video_results: mpsc::UnboundedReceiver<VideoEvent>,
    decoders: BTreeMap<PeerId, MemberDecoder>,
    budget: Arc<RecordBudget>,
}

/// Reads `member`'s datagrams until its link fails.
async fn read_link(member: PeerId, generation: u64, link: Arc<dyn MediaLink>, to_task: mpsc::Sender<FromLink>) {
    loop {
        match link.read_datagram().await {
            Ok(d) => {
                if to_task.send(FromLink::Datagram(member, generation, d)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = to_task.send(FromLink::Failed(member, generation, e.to_string())).await;
                return;
            }
        }
    }
}

impl GroupTask {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>, mut stop: oneshot::Receiver<()>) {
        let scratch = Mutex::new(AudioStats::default());
        let mut audio = open_audio(&self.config.audio, &scratch).await;
        {
            let opened = lock(&scratch);
            let mut s = lock(&self.stats);
            s.input_error = opened.input_error.clone();
            s.output_error = opened.output_error.clone();
            s.processing = opened.processing;
        }
        let (from_links_tx, mut from_links) = mpsc::channel(IN_QUEUE);
        let (records_tx, mut records) = mpsc::channel(IN_QUEUE);
        let mut next_stats = Instant::now();
        loop {
            let wake = loop {
                match self.session.poll_output() {
                    Output::Timeout(at) => break at,
                    Output::CaptureAudio { capture_us } => {
                        let pcm = audio.capture();
                        self.session.captured(pcm, capture_us);
                    }
                    Output::EncodeAudio(job) => {
                        let opus = job.encode_with(&mut self.encoder);
                        self.session.encoded(&job, opus);
                    }
                    Output::Transmit { to, frame } | Output::Forward { to, frame } => {
                        self.transmit(&to, Bytes::from(frame))
                    }
                    Output::Report { to, frame } => self.send_report(&to, Bytes::from(frame)),
                    Output::PlayAudio(pcm) => {
                        audio.play(&pcm);
                    }
                    Output::Event(event) => {
                        if let GroupAudioEvent::Forged { distrusted: true, delivered_by, .. } = &event {
                            // Our video stops going through (and being taken from) it too.
                            self.video.distrust(*delivered_by);
                        }
                        let _ = self.events.try_send(event);
                    }
                }
            };
            // Audio first: its outputs are out before the video's are looked at.
            self.drive_video();
            let wake = wake.min(self.video.poll_timeout(Instant::now(), wall_us()));
            tokio::select! {
                biased;
                _ = &mut stop => break,
                _ = tokio::time::sleep_until(wake.into()) => {
                    let (now, wall) = (Instant::now(), wall_us());
                    self.session.handle_timeout(now, wall);
                    self.video.handle_timeout(now, wall);
                }
                Some(command) = commands.recv() => self.command(command, &from_links_tx, &records_tx),
                Some(from_link) = from_links.recv() => match from_link {
                    FromLink::Datagram(member, generation, d) if self.is_current(&member, generation) => {
                        self.session.datagram(&member, &d, Instant::now())
                    }
                    FromLink::Failed(member, generation, error) if self.is_current(&member, generation) => {
                        tracing::debug!(%member, %error, "a group call member's link failed");
                        self.links.remove(&member);
                        self.session.link_failed(&member, error);
                    }
                    // From a link since replaced or removed: its reader was stopped after queueing it.
                    FromLink::Datagram(..) | FromLink::Failed(..) => {}
                },
                Some(event) = self.video_results.recv() => self.video_event(event),
                Some(event) = records.recv() => self.video_event(event),
            }
            let now = Instant::now();
            if now >= next_stats {
                next_stats = now + STATS_EVERY;
                for (member, l) in &self.links {
                    self.video.link_rtt(member, l.link.rtt(), now);
                }
                self.write_stats();
            }
        }
        self.links.clear();
        // The viewers see this call's pictures no more (a decode thread still finishing one
        // cannot put it back).
        self.config.view.clear();
        // The decode threads complete their files once their channels close.
        self.decoders.clear();
        audio.sink.finish();
        self.write_stats();
    }

    fn command(&mut self, command: Command, from_links: &mpsc::Sender<FromLink>, records: &mpsc::Sender<VideoEvent>) {
        let now = Instant::now();
        match command {
            Command::Add(member, sender, link, done) => {
                let result = self.session.add_member(member, sender);
                if result.is_ok() {
                    let generation = self.next_generation;
                    self.next_generation += 1;
                    let reader = tokio::spawn(read_link(member, generation, link.clone(), from_links.clone()));
                    let (video_out, outgoing) = mpsc::channel(video_io::OUT_QUEUE);
                    let video_writer = tokio::spawn(video_io::write_streams(link.clone(), outgoing));
                    let video_reader = tokio::spawn(video_io::read_streams(
                        member,
                        generation,
                        link.clone(),
                        records.clone(),
                        self.budget.clone(),
                    ));
                    let forwarded = BTreeMap::new();
                    let l = MemberLink { link, generation, reader, video_out, video_writer, video_reader, forwarded };
                    self.links.insert(member, l);
                    self.video.add_member(member, sender, now);
                    if !self.decoders.contains_key(&member) {
                        match MemberDecoder::start(member, &self.config.video.output, self.video_tx.clone(), self.config.view.clone()) {
                            Ok(d) => {
                                self.decoders.insert(member, d);
                            }
                            Err(e) => tracing::warn!(%member, error = %e, "no video decoder for a group call member"),
                        }
                    }
                }
                let _ = done.send(result);
            }
            Command::Remove(member) => {
                self.links.remove(&member);
                self.session.remove_member(&member);
                if let Some(origin) = self.video.remove_member(&member) {
                    // What we forwarded of it: each stream ends (its writer's queue closes), so
                    // no receiver keeps a departed member's stream open (indices are not reused).
                    for l in self.links.values_mut() {
                        l.forwarded.remove(&origin.0);
                    }
                }
                self.decoders.remove(&member);
                self.config.view.remove_member(&member);
            }
            Command::Muted(muted) => self.session.set_muted(muted),
            Command::Route(route) => {
                self.session.set_route(route);
                self.video.set_route(route);
            }
            Command::Video(on) => self.video.set_sending(on, now),
            Command::RemoteVideo(member, on) => self.video.set_remote_sending(&member, on, now),
            Command::KeyframeRequested => self.video.keyframe_requested(now),
        }
        self.write_stats();
    }

    /// Does what the video asks: the encode thread's tasks, our records on every member's
    /// stream, each member's decode thread's, keyframe requests to the node.
    fn drive_video(&mut self) {
        while let Some(output) = self.video.poll_output() {
            match output {
                VideoOutput::Capture { format, stamp, capture_us } => {
                    let _ = self.video_encoder.send(EncodeTask::Capture { format, stamp, capture_us });
                }
                VideoOutput::Encode(job) => {
                    let _ = self.video_encoder.send(EncodeTask::Encode(job));
                }
                VideoOutput::ReleaseEncoder => {
                    let _ = self.video_encoder.send(EncodeTask::Release);
                }
                VideoOutput::Send { to, record } => {
                    let mut dropped = Vec::new();
                    for (member, l) in self.links.iter().filter(|(p, _)| to.contains(p)) {
                        if l.video_out.try_send(record.clone()).is_err() {
                            dropped.push(*member);
                        }
                    }
                    for member in dropped {
                        tracing::trace!(%member, "a group video record did not fit in a member's queue");
                        self.video.record_dropped(&member, record.layer, Instant::now());
                    }
                }
                VideoOutput::Forward { to, origin, record } => {
                    let Some(l) = self.links.get_mut(&to) else { continue };
                    let (queue, _) = l.forwarded.entry(origin).or_insert_with(|| {
                        let (tx, rx) = mpsc::channel(video_io::OUT_QUEUE);
                        (tx, tokio::spawn(video_io::write_streams(l.link.clone(), rx)))
                    });
                    if queue.try_send(record).is_err() {
                        tracing::trace!(member = %to, "a forwarded group video record did not fit in a member's queue");
                        self.video.forward_dropped(&to, Instant::now());
                    }
                }
                VideoOutput::Decode { member, job } => {
                    if let Some(d) = self.decoders.get(&member) {
                        d.decode(job);
                    }
                }
                VideoOutput::Relayed { from, key_id, counter, frame } => {
                    self.session.relayed(&from, key_id, counter, &frame, Instant::now());
                }
                VideoOutput::Show { member, picture } => {
                    if let Some(d) = self.decoders.get(&member) {
                        d.show(picture);
                    }
                }
                VideoOutput::RequestKeyframe { member } => {
                    let _ = self.events.try_send(GroupAudioEvent::KeyframeWanted { member });
                }
            }
        }
    }

    fn video_event(&mut self, event: VideoEvent) {
        let (now, wall) = (Instant::now(), wall_us());
        match event {
            VideoEvent::Captured { picture, capture_us } => self.video.captured(now, picture, capture_us),
            VideoEvent::SourceRate(rate) => self.video.source_rate(rate),
            VideoEvent::SourceFailed(e) => {
                self.video.source_failed();
                lock(&self.video_stats).input_error = Some(e);
            }
            VideoEvent::Encoded { job, result } => self.video.encoded(now, wall, &job, result),
            VideoEvent::Decoded { member, job, result } => self.video.decoded(&member, now, &job, result),
            VideoEvent::SinkFailed(e) => lock(&self.video_stats).output_error = Some(e),
            VideoEvent::Record { member, generation, gop, record } if self.is_current(&member, generation) => {
                self.video.record(&member, gop, record.body(), now, wall)
            }
            VideoEvent::Progress { member, generation, gop } if self.is_current(&member, generation) => {
                self.video.progress(&member, gop, now)
            }
            VideoEvent::Record { .. } | VideoEvent::Progress { .. } => {}
        }
    }

    /// Whether `generation` is `member`'s link now.
    fn is_current(&self, member: &PeerId, generation: u64) -> bool {
        self.links.get(member).is_some_and(|l| l.generation == generation)
    }

    /// One sealed frame, on the links of `to`; a link that refuses is counted, the others still
    /// get it.
    fn transmit(&mut self, to: &[PeerId], frame: Bytes) {
        for (member, l) in self.links.iter().filter(|(p, _)| to.contains(p)) {
            match l.link.send_datagram(frame.clone()) {
                Ok(()) => self.session.sent(member, frame.len()),
                Err(e) => {
                    tracing::trace!(%member, error = %e, "group audio datagram not sent");
                    self.session.send_failed(member);
                }
            }
        }
    }

    /// A receiver report, on `to`'s link only; a link that refuses it is counted.
    fn send_report(&mut self, to: &PeerId, frame: Bytes) {
        let Some(l) = self.links.get(to) else { return };
        if let Err(e) = l.link.send_datagram(frame) {
            tracing::trace!(member = %to, error = %e, "group receiver report not sent");
            self.session.send_failed(to);
        }
    }

    fn write_stats(&self) {
        {
            let fresh = self.video.stats();
            let mut v = lock(&self.video_stats);
            *v = GroupVideoStats {
                input: std::mem::take(&mut v.input),
                output: std::mem::take(&mut v.output),
                input_error: v.input_error.take(),
                output_error: v.output_error.take(),
                ..fresh
            };
        }
        let fresh = self.session.stats();
        let mut s = lock(&self.stats);
        *s = GroupAudioStats {
            input: std::mem::take(&mut s.input),
            output: std::mem::take(&mut s.output),
            input_error: s.input_error.take(),
            output_error: s.output_error.take(),
            processing: s.processing,
            ..fresh
        };
    }
}
