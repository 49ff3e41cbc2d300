//! A group call's video at one member, sans-IO: what [`super::GroupCallMedia`]'s task does with
//! pictures, and when.
//!
//! The 1:1 call's machinery, shared: one [`VideoSender`] encodes our pictures **once** (its GOPs,
//! keyframes, CPU adaptation) and seals each frame **once**, through the [`GroupFrameCrypto`] port
//! under our sender key ([`GroupRecordSeal`]); the one record goes on every member's stream of
//! that GOP ([`VideoOutput::Send`]). Each member's records are opened through the port (a frame
//! that is not under that member's own sender index is refused) and go to a [`VideoReceiver`] of
//! its own, which says what to decode, when to show it, and when to ask that member for a
//! keyframe ([`VideoOutput::RequestKeyframe`]).
//!
//! - A member added (a newcomer, or a member whose link came back) makes the next frame a keyframe:
//!   its stream can only start with a GOP.
//! - A new epoch's first frame is a keyframe ([`GroupRecordSeal`] refuses to seal anything else
//!   under a new key): a receiver that could not open the last frames of the old one decodes again.
//! - One capture and encode at a time, as in a 1:1 call.
//! - Two temporal layers: each record goes to a member only while that member's link keeps up
//!   for its layer ([`super::thinning`]; the base layer always goes).
//! - Through a forwarder ([`Route`]): our records go to the forwarder alone, and the forwarder's
//!   link may deliver any member's (opened through the port, which checks that the forwarder
//!   delivers them). At the forwarder, each other member's records are checked
//!   ([`ForwardFilter`]: its own sender index, no duplicate) and forwarded byte for byte onto a
//!   stream per receiver and origin ([`VideoOutput::Forward`]), thinned per receiver like our own.
//!
//! The session holds no clock, socket or thread: `now` is handed in, and the driver runs the codecs.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};

use super::GroupFrameCrypto;
use super::forward::ForwardFilter;
use super::session::Route;
use super::thinning::{LayerGate, ThinningStats};
use crate::crypto::sender_key::{GroupFrameHeader, GroupMedia, KeyId, SenderIndex};
use crate::media::codec::av1::VideoCodecError;
use crate::media::video::Frame;
use crate::media::video::cpu_adaptation::VideoFormat;
use crate::media::video::encoder::{EncodeJob, Encoded};
use crate::media::video::pattern::Stamp;
use crate::media::video::receiver::{DecodeJob, Rendered, VideoReceiveStats, VideoReceiver};
use crate::media::video::sender::{Outgoing, RecordSeal, SenderConfig, VideoSendStats, VideoSender};
use crate::media::video::wire::{VideoFrame, VideoWireError};

/// The first byte of a group call's video stream (`protocols/group-media-v1.md`, "Video").
pub const KIND_GROUP_VIDEO: u8 = 0x20;
/// The size a member sends in a group call unless configured smaller.
pub const GROUP_VIDEO_FORMAT: VideoFormat = VideoFormat { width: 320, height: 180, fps: 30 };
/// What a member's encoder aims at in a group call (one stream for every member; the mesh has no
/// per-receiver rate yet).
pub const GROUP_VIDEO_BITRATE: u32 = 300_000;
/// How often the per-second figures are taken.
pub const VIDEO_WINDOW: Duration = Duration::from_secs(1);

/// Seals our frames through the group's port: `gop (4) || media-v1 video frame`, media byte
/// video layer 0, and the record's length prefix. Refuses (the sender then starts a new GOP)
/// when the port does, and the first frame under a new epoch's key unless it is a keyframe.
pub struct GroupRecordSeal {
    crypto: Arc<dyn GroupFrameCrypto>,
    epoch: Option<u64>,
    /// Our sender index, as our last sealed frame carried it.
    own: Option<SenderIndex>,
}

impl GroupRecordSeal {
    /// Seals through `crypto`.
    pub fn new(crypto: Arc<dyn GroupFrameCrypto>) -> Self {
        GroupRecordSeal { crypto, epoch: None, own: None }
    }
}

impl RecordSeal for GroupRecordSeal {
    fn seal_record(&mut self, gop: u32, frame: &VideoFrame, layer: u8) -> Option<Vec<u8>> {
        let plaintext = group_video_plaintext(gop, frame);
        let sealed = self.crypto.seal(GroupMedia::Video { temporal_layer: layer }, &plaintext).ok()?;
        let (header, _) = GroupFrameHeader::parse(&sealed).ok()?;
        let epoch = header.key_id.epoch();
        if self.epoch.is_some_and(|e| e != epoch) && !frame.keyframe() {
            // A new key: start its epoch with a keyframe (this frame's counter is spent, harmlessly).
            self.epoch = Some(epoch);
            return None;
        }
        self.epoch = Some(epoch);
        self.own = Some(header.key_id.sender());
        let mut record = Vec::with_capacity(4 + sealed.len());
        record.extend_from_slice(&(sealed.len() as u32).to_be_bytes());
        record.extend_from_slice(&sealed);
        Some(record)
    }
}

/// A group video frame's plaintext: the GOP it belongs to, then media-v1's video frame.
pub fn group_video_plaintext(gop: u32, frame: &VideoFrame) -> Vec<u8> {
    [&gop.to_be_bytes()[..], &frame.encode()].concat()
}

/// Parses a group video frame's plaintext: its GOP and frame.
pub fn parse_group_video_plaintext(bytes: &[u8]) -> Result<(u32, VideoFrame), VideoWireError> {
    if bytes.len() < 4 {
        return Err(VideoWireError::Truncated);
    }
    let gop = u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes"));
    Ok((gop, VideoFrame::decode(&bytes[4..])?))
}

/// What the video half asks its driver to do.
#[derive(Debug)]
pub enum VideoOutput {
    /// Take a picture of `format` from the source (a drawing source burns `stamp` in) and hand it
    /// in ([`GroupVideoSession::captured`]).
    Capture {
        /// The size wanted.
        format: VideoFormat,
        /// What the test pattern shows.
        stamp: Stamp,
        /// Now, µs since the Unix epoch.
        capture_us: u64,
    },
    /// Encode it and hand the result in ([`GroupVideoSession::encoded`]).
    Encode(EncodeJob),
    /// Our video is off: the encoder may go.
    ReleaseEncoder,
    /// Put this sealed record on the streams of its GOP to `to` (one ciphertext for all; a member
    /// whose link does not keep up is left out of enhancement records; through a forwarder, the
    /// forwarder alone).
    Send {
        /// The members whose links carry it.
        to: Vec<PeerId>,
        /// The record.
        record: Outgoing,
    },
    /// (At the forwarder) put another member's record, unchanged, on `to`'s stream of `origin`'s
    /// GOP (a stream per receiver and origin; `record.new_gop` opens the next one).
    Forward {
        /// The receiver.
        to: PeerId,
        /// The sender index of the member whose record it is.
        origin: u8,
        /// The record, length prefix included (its `frame` is 0: the forwarder cannot read it).
        record: Outgoing,
    },
    /// Our forwarder's link, `from`, delivered this frame under another member's sender index
    /// and it opened: to be judged by that member's lists (the audio session's
    /// [`super::session::GroupAudioSession::relayed`]), as relayed audio is.
    Relayed {
        /// The forwarder whose link delivered it.
        from: PeerId,
        /// Its key id.
        key_id: KeyId,
        /// Its counter.
        counter: u64,
        /// The sealed frame, every byte (its digest is what the lists sign).
        frame: Vec<u8>,
    },
    /// Decode `member`'s frame and hand the pictures in ([`GroupVideoSession::decoded`]).
    Decode {
        /// Whose.
        member: PeerId,
        /// What.
        job: DecodeJob,
    },
    /// Show `member`'s picture (its own sink).
    Show {
        /// Whose.
        member: PeerId,
        /// The picture.
        picture: Rendered,
    },
    /// Ask `member` for a keyframe (on its leg).
    RequestKeyframe {
        /// Whom.
        member: PeerId,
    },
}

/// One other member's video, as we receive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipantVideoStats {
    /// Who.
    #[serde(with = "crate::identity::peer_id_text")]
    pub member: PeerId,
    /// Its sender index.
    pub sender: u8,
    /// It says its video is on.
    pub on: bool,
    /// Records that came on its streams.
    pub records: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Records refused: not opened by the port, not its own sender index, not video, malformed.
    pub refused: u64,
    /// Pictures shown over the last second, per second.
    pub fps: u32,
    /// Bits received over the last second, per second, in thousands.
    pub kbps: u64,
    /// The receiver's counters (frames received, decoded, rendered, keyframes, requests, freezes).
    pub receive: VideoReceiveStats,
    /// Records it could not be sent (its link did not keep up, or failed).
    pub send_dropped: u64,
    /// Which layers its link is sent (ours, and at the forwarder the ones forwarded to it).
    #[serde(default)]
    pub thinning: ThinningStats,
}

/// The video part of a group call's status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupVideoStats {
    /// Our video is on.
    pub sending: bool,
    /// The source in use.
    pub input: String,
    /// The sink in use (a directory: a Y4M per participant, named by its PeerId).
    pub output: String,
    /// Why the source failed (nothing is sent then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_error: Option<String>,
    /// Why a sink failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_error: Option<String>,
    /// Records sent over the last second, per second.
    pub send_fps: u32,
    /// Bits sealed over the last second (each record once), per second, in thousands.
    pub send_kbps: u64,
    /// The sender's counters.
    pub send: VideoSendStats,
    /// Every other member, by PeerId.
    pub participants: Vec<ParticipantVideoStats>,
    /// (Forwarding) other members' records forwarded on (once per receiver).
    #[serde(default)]
    pub forwarded_records: u64,
    /// Their bytes.
    #[serde(default)]
    pub forwarded_bytes: u64,
    /// (Forwarding) records not forwarded: another member's sender index, a duplicate, not video.
    #[serde(default)]
    pub forward_refused: u64,
}

/// One member's video at the session.
#[derive(Debug)]
struct Member {
    sender: SenderIndex,
    /// Whether its link keeps up with the enhancement layer.
    gate: LayerGate,
    receiver: VideoReceiver,
    stats: ParticipantVideoStats,
    shown: u32,
    bytes_in_window: u64,
}

/// The sans-IO video of a group call at one member.
pub struct GroupVideoSession {
    crypto: Arc<dyn GroupFrameCrypto>,
    sender: VideoSender<GroupRecordSeal>,
    sending: bool,
    source_failed: bool,
    next_frame: Instant,
    in_flight: bool,
    frame_due: bool,
    members: BTreeMap<PeerId, Member>,
    /// What each member last said of its video, member or not yet (the node may hear it on the
    /// member's leg before the member's media is added).
    said_on: BTreeMap<PeerId, bool>,
    next_window: Instant,
    sent_in_window: u32,
    bytes_at_window: u64,
    send_fps: u32,
    send_kbps: u64,
    outputs: VecDeque<VideoOutput>,
    route: Route,
    /// A forwarder caught forging (the audio's authenticators): while it is ours, our records go
    /// to every member directly and we take none of its relaying.
    distrusted: Option<PeerId>,
    forward: ForwardFilter,
    /// (At the forwarder) the GOP last forwarded to each receiver from each origin.
    forwarded_gops: BTreeMap<(PeerId, u8), u32>,
    forwarded_records: u64,
    forwarded_bytes: u64,
    forward_refused: u64,
}

impl std::fmt::Debug for GroupVideoSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupVideoSession")
            .field("sending", &self.sending)
            .field("members", &self.members.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl GroupVideoSession {
    /// A session sealing and opening through `crypto`, encoding as `config` says (at most
    /// [`GROUP_VIDEO_FORMAT`]), sending from `now` when `sending`.
    pub fn new(crypto: Arc<dyn GroupFrameCrypto>, config: SenderConfig, sending: bool, now: Instant) -> Self {
        let max = config.max_format;
        let config = SenderConfig {
            max_format: VideoFormat {
                width: max.width.min(GROUP_VIDEO_FORMAT.width),
                height: max.height.min(GROUP_VIDEO_FORMAT.height),
                fps: max.fps.min(GROUP_VIDEO_FORMAT.fps),
            },
            ..config
        };
        let mut sender = VideoSender::with_sealer(GroupRecordSeal::new(crypto.clone()), config);
        sender.set_target_bitrate(GROUP_VIDEO_BITRATE);
        GroupVideoSession {
            crypto,
            sender,
            sending,
            source_failed: false,
            next_frame: now,
            in_flight: false,
            frame_due: false,
            members: BTreeMap::new(),
            said_on: BTreeMap::new(),
            next_window: now + VIDEO_WINDOW,
            sent_in_window: 0,
            bytes_at_window: 0,
            send_fps: 0,
            send_kbps: 0,
            outputs: VecDeque::new(),
            route: Route::Mesh,
            distrusted: None,
            forward: ForwardFilter::default(),
            forwarded_gops: BTreeMap::new(),
            forwarded_records: 0,
            forwarded_bytes: 0,
            forward_refused: 0,
        }
    }

    fn capturing(&self) -> bool {
        self.sending && !self.source_failed && !self.members.is_empty()
    }

    /// `member` is in the call under `sender`: its video is received from now on, and our next
    /// frame is a keyframe (its stream starts with one). Again with another index: afresh.
    pub fn add_member(&mut self, member: PeerId, sender: SenderIndex, now: Instant) {
        let was = self.capturing();
        if self.members.get(&member).is_none_or(|m| m.sender != sender) {
            let stats = ParticipantVideoStats {
                member,
                sender: sender.0,
                on: false,
                records: 0,
                bytes: 0,
                refused: 0,
                fps: 0,
                kbps: 0,
                receive: VideoReceiveStats::default(),
                send_dropped: 0,
                thinning: ThinningStats::default(),
            };
            let on = self.said_on.get(&member).copied().unwrap_or(false);
            let mut m = Member {
                sender,
                gate: LayerGate::new(),
                receiver: VideoReceiver::for_opened_frames(),
                stats,
                shown: 0,
                bytes_in_window: 0,
            };
            m.stats.on = on;
            m.receiver.set_remote_sending(on, now);
            self.members.insert(member, m);
        }
        self.sender.restart_gop();
        // (At the forwarder) its link is new: what we forward to it starts on new streams.
        self.forwarded_gops.retain(|(to, _), _| *to != member);
        if !was && self.capturing() {
            self.next_frame = now;
        }
    }

    /// `member` left: nothing more of it is taken. Its sender index, if it was a member (at the
    /// forwarder, the streams of its records to the others end with it).
    pub fn remove_member(&mut self, member: &PeerId) -> Option<SenderIndex> {
        let m = self.members.remove(member)?;
        self.forwarded_gops.retain(|(to, origin), _| to != member && *origin != m.sender.0);
        Some(m.sender)
    }

    /// How our records flow from now on (the group's topology, as for audio). A change starts a
    /// new GOP: a receiver's stream of ours now comes on another link.
    pub fn set_route(&mut self, route: Route) {
        if route != self.route {
            self.route = route;
            self.sender.restart_gop();
            self.forwarded_gops.clear();
        }
    }

    /// Our forwarder `forwarder` was caught forging (`protocols/group-media-v1.md`, "Frame
    /// authenticators"): while it is ours, our records go to every member directly (a new GOP:
    /// each stream now comes on another link) and we take none of its relaying.
    pub fn distrust(&mut self, forwarder: PeerId) {
        if self.distrusted != Some(forwarder) {
            self.distrusted = Some(forwarder);
            if self.route == Route::Via(forwarder) {
                self.sender.restart_gop();
            }
        }
    }

    /// The route, but a mesh while its forwarder is distrusted.
    fn effective_route(&self) -> Route {
        match self.route {
            Route::Via(f) if self.distrusted == Some(f) => Route::Mesh,
            route => route,
        }
    }

    /// `member`'s link's smoothed RTT at `now` (its queueing delay decides its layers).
    pub fn link_rtt(&mut self, member: &PeerId, rtt: Duration, now: Instant) {
        if let Some(m) = self.members.get_mut(member) {
            m.gate.on_rtt(now, rtt);
        }
    }

    /// Who our record of `layer` goes to: the forwarder alone through one, else every member;
    /// an enhancement record only to those whose link keeps up.
    fn recipients(&mut self, layer: u8) -> Vec<PeerId> {
        let via = match self.effective_route() {
            Route::Via(f) if self.members.contains_key(&f) => Some(f),
            _ => None,
        };
        self.members
            .iter_mut()
            .filter(|(p, _)| via.is_none_or(|f| f == **p))
            .filter_map(|(p, m)| m.gate.admit(layer).then_some(*p))
            .collect()
    }

    /// Our video on or off (off releases the encoder; on captures at once, with a keyframe).
    pub fn set_sending(&mut self, on: bool, now: Instant) {
        let was = self.capturing();
        if !on && self.sending {
            self.sender.pause();
            self.outputs.push_back(VideoOutput::ReleaseEncoder);
            self.send_fps = 0;
        }
        self.sending = on;
        if !was && self.capturing() {
            self.next_frame = now;
        }
    }

    /// Whether our video is on.
    pub fn sending(&self) -> bool {
        self.sending
    }

    /// `member` says its video is on or off (off is a pause, not a stall: no keyframe requests).
    pub fn set_remote_sending(&mut self, member: &PeerId, on: bool, now: Instant) {
        if self.said_on.len() < 64 || self.said_on.contains_key(member) {
            self.said_on.insert(*member, on);
        }
        if let Some(m) = self.members.get_mut(member) {
            m.stats.on = on;
            m.receiver.set_remote_sending(on, now);
            if !on {
                m.stats.fps = 0;
            }
        }
    }

    /// A member asked us for a keyframe (one for everyone, unless one went out very recently).
    pub fn keyframe_requested(&mut self, now: Instant) {
        self.sender.on_keyframe_request(now);
    }

    /// The source cannot give pictures: nothing more is asked of it.
    pub fn source_failed(&mut self) {
        self.source_failed = true;
        self.in_flight = false;
        self.frame_due = false;
    }

    /// The source has a rate of its own.
    pub fn source_rate(&mut self, rate: crate::media::video::clock::FrameRate) {
        self.sender.set_source_rate(rate);
    }

    /// The picture [`VideoOutput::Capture`] asked for (`None`: none this time).
    pub fn captured(&mut self, now: Instant, picture: Option<Frame>, capture_us: u64) {
        match picture {
            Some(picture) if self.capturing() => {
                self.outputs.push_back(VideoOutput::Encode(self.sender.begin(now, picture, capture_us)));
            }
            _ => self.in_flight = false,
        }
    }

    /// [`VideoOutput::Encode`]'s job, encoded at `now` (`wall_us` on the wall clock): its records
    /// go out, and a frame that came due meanwhile is captured.
    pub fn encoded(&mut self, now: Instant, wall_us: u64, job: &EncodeJob, result: Result<Encoded, VideoCodecError>) {
        self.in_flight = false;
        if !self.sending {
            // Turned off while it was encoded: nothing more of ours goes out.
            return;
        }
        if let Err(e) = &result {
            tracing::warn!(error = %e, "group video encoding failed; starting a new encoder");
        }
        for record in self.sender.finish(now, job, result) {
            self.sent_in_window += 1;
            let to = self.recipients(record.layer);
            self.outputs.push_back(VideoOutput::Send { to, record });
        }
        if std::mem::take(&mut self.frame_due) && self.capturing() {
            self.capture(wall_us);
        }
    }

    fn capture(&mut self, wall_us: u64) {
        self.in_flight = true;
        let stamp = Stamp { counter: self.sender.stats().frames as u32, capture_ms: (wall_us / 1000) as u32 };
        self.outputs.push_back(VideoOutput::Capture { format: self.sender.format(), stamp, capture_us: wall_us });
    }

    /// A record of ours of `layer` could not be queued for `member` (its link does not keep up,
    /// or failed): its enhancement layer stops; a base record lost leaves its stream waiting for
    /// the next GOP, and we are asked for one as a receiver would (an enhancement record lost
    /// leaves no gap).
    pub fn record_dropped(&mut self, member: &PeerId, layer: u8, now: Instant) {
        if let Some(m) = self.members.get_mut(member) {
            m.stats.send_dropped += 1;
            m.gate.on_dropped(now);
        }
        if layer == 0 {
            self.sender.on_keyframe_request(now);
        }
    }

    /// (At the forwarder) a record forwarded to `member` did not fit in its link's queue: its
    /// enhancement layer stops (a base record lost makes it ask the origin for a keyframe).
    pub fn forward_dropped(&mut self, member: &PeerId, now: Instant) {
        if let Some(m) = self.members.get_mut(member) {
            m.stats.send_dropped += 1;
            m.gate.on_dropped(now);
        }
    }

    /// (At the forwarder) forwards `body`, which came on `from`'s stream of `gop`, to every other
    /// member, unless it is not `from`'s own video or a duplicate.
    fn forward_record(&mut self, from: &PeerId, link_sender: SenderIndex, gop: u32, body: &[u8]) {
        let layer = match self.forward.check(link_sender, body) {
            Ok(header) => match header.media {
                GroupMedia::Video { temporal_layer } => temporal_layer,
                _ => {
                    self.forward_refused += 1;
                    return;
                }
            },
            Err(e) => {
                self.forward_refused += 1;
                tracing::debug!(%from, error = %e, "group video record not forwarded");
                return;
            }
        };
        let origin = link_sender.0;
        let mut record = Vec::with_capacity(4 + body.len());
        record.extend_from_slice(&(body.len() as u32).to_be_bytes());
        record.extend_from_slice(body);
        for (to, m) in self.members.iter_mut().filter(|(p, _)| *p != from) {
            if !m.gate.admit(layer) {
                continue;
            }
            let new_gop = self.forwarded_gops.insert((*to, origin), gop) != Some(gop);
            self.forwarded_records += 1;
            self.forwarded_bytes += record.len() as u64;
            let record = Outgoing { gop, new_gop, record: record.clone(), frame: 0, layer, bitrate: 0 };
            self.outputs.push_back(VideoOutput::Forward { to: *to, origin, record });
        }
    }

    /// A record's body from `from`'s stream of `gop`, arriving at `now`: opened, and decoded if it
    /// can be. Refused (counted against `from`) unless the port opens it, it is video, under
    /// `from`'s own sender index (or, when `from` is our forwarder, another member's) and its
    /// plaintext names the stream's GOP. At the forwarder it is forwarded first, whatever its
    /// opening.
    pub fn record(&mut self, from: &PeerId, gop: u32, body: &[u8], now: Instant, wall_us: u64) {
        let Some(link_sender) = self.members.get(from).map(|m| m.sender) else { return };
        if self.route == Route::Forwarder {
            self.forward_record(from, link_sender, gop, body);
        }
        let via_forwarder = self.effective_route() == Route::Via(*from);
        let opened = self.crypto.open(from, body);
        // Whose frame it is: the link's member's own, or through the forwarder another's.
        let origin = match &opened {
            Ok(o) if o.header.key_id.sender() == link_sender => Some(*from),
            Ok(o) if via_forwarder => {
                let sender = o.header.key_id.sender();
                self.members.iter().find(|(_, m)| m.sender == sender).map(|(p, _)| *p)
            }
            _ => None,
        };
        if let Ok(o) = &opened
            && o.header.key_id.sender() != link_sender
            && origin.is_some()
        {
            self.outputs.push_back(VideoOutput::Relayed {
                from: *from,
                key_id: o.header.key_id,
                counter: o.header.counter,
                frame: body.to_vec(),
            });
        }
        let Some(origin) = origin else {
            let m = self.members.get_mut(from).expect("looked up above");
            m.stats.records += 1;
            m.stats.bytes += body.len() as u64;
            m.stats.refused += 1;
            if let Err(e) = opened {
                tracing::debug!(%from, error = %e, "group video record refused");
            }
            return;
        };
        let m = self.members.get_mut(&origin).expect("found above");
        m.stats.records += 1;
        m.stats.bytes += body.len() as u64;
        m.bytes_in_window += body.len() as u64 + 4;
        let opened = opened.expect("an origin is found for opened frames only");
        let layer = match opened.header.media {
            GroupMedia::Video { temporal_layer } => temporal_layer,
            _ => {
                m.stats.refused += 1;
                return;
            }
        };
        let frame = match parse_group_video_plaintext(&opened.payload) {
            Ok((in_gop, frame)) if in_gop == gop => frame,
            _ => {
                m.stats.refused += 1;
                return;
            }
        };
        if let Some(job) = m.receiver.accept_layered_frame(now, wall_us, gop, frame, layer) {
            self.outputs.push_back(VideoOutput::Decode { member: origin, job });
        }
    }

    /// Part of a record arrived on `from`'s stream of `gop`: slow, not stalled. From our
    /// forwarder's link the stream's origin is not known until a record is whole: every member's
    /// video counts as slow, not stalled (fewer keyframe requests, never a reset stream's loop).
    pub fn progress(&mut self, from: &PeerId, gop: u32, now: Instant) {
        if self.effective_route() == Route::Via(*from) {
            for m in self.members.values_mut() {
                m.receiver.on_progress(now, gop);
            }
        } else if let Some(m) = self.members.get_mut(from) {
            m.receiver.on_progress(now, gop);
        }
    }

    /// [`VideoOutput::Decode`]'s job for `member`, decoded at `now`.
    pub fn decoded(
        &mut self,
        member: &PeerId,
        now: Instant,
        job: &DecodeJob,
        result: Result<Vec<Frame>, VideoCodecError>,
    ) {
        if let Some(m) = self.members.get_mut(member) {
            if let Err(e) = &result {
                tracing::debug!(%member, error = %e, "a group video frame did not decode");
            }
            m.receiver.on_decoded(now, job, result);
        }
    }

    /// Runs what is due by `now` (`wall_us` on the wall clock): the frame tick, each member's
    /// pictures and keyframe requests, the per-second figures.
    pub fn handle_timeout(&mut self, now: Instant, wall_us: u64) {
        if self.capturing() && self.next_frame <= now {
            if self.in_flight {
                self.frame_due = true;
            } else {
                self.capture(wall_us);
            }
            let interval = self.sender.format().interval();
            self.next_frame = (self.next_frame + interval).max(now);
            if self.next_frame == now {
                self.next_frame = now + interval;
            }
        }
        for (peer, m) in &mut self.members {
            while let Some(picture) = m.receiver.poll_render(now, wall_us, None) {
                m.shown += 1;
                self.outputs.push_back(VideoOutput::Show { member: *peer, picture });
            }
            if m.receiver.poll_keyframe_request(now) {
                self.outputs.push_back(VideoOutput::RequestKeyframe { member: *peer });
            }
        }
        if self.next_window <= now {
            let seconds = (now - self.next_window + VIDEO_WINDOW).as_secs_f64().max(1e-3);
            let per_second = |n: u64| (n as f64 / seconds).round() as u64;
            let bytes = self.sender.stats().bytes;
            self.send_fps = if self.capturing() { per_second(u64::from(self.sent_in_window)) as u32 } else { 0 };
            self.send_kbps = per_second(bytes.saturating_sub(self.bytes_at_window) * 8) / 1000;
            self.bytes_at_window = bytes;
            self.sent_in_window = 0;
            for m in self.members.values_mut() {
                m.stats.fps = per_second(u64::from(std::mem::take(&mut m.shown))) as u32;
                m.stats.kbps = per_second(std::mem::take(&mut m.bytes_in_window) * 8) / 1000;
            }
            self.next_window = now + VIDEO_WINDOW;
        }
    }

    /// The next thing the driver must do, or when to call [`GroupVideoSession::handle_timeout`]
    /// next (`None`: nothing until an input; the driver's audio ticks come anyway).
    pub fn poll_output(&mut self) -> Option<VideoOutput> {
        self.outputs.pop_front()
    }

    /// When [`GroupVideoSession::handle_timeout`] is due next, `last` being the latest `now` it
    /// was given with `wall_us`.
    pub fn poll_timeout(&self, last: Instant, wall_us: u64) -> Instant {
        let frame = self.capturing().then_some(self.next_frame);
        let show = self
            .members
            .values()
            .filter_map(|m| m.receiver.next_due_us(None))
            .map(|due| last + Duration::from_micros(due.saturating_sub(wall_us)))
            .min();
        [frame, show, Some(self.next_window)].into_iter().flatten().min().unwrap_or(self.next_window)
    }

    /// The counters (the driver adds its source, sink and their errors).
    pub fn stats(&self) -> GroupVideoStats {
        GroupVideoStats {
            sending: self.sending,
            send_fps: self.send_fps,
            send_kbps: self.send_kbps,
            send: self.sender.stats(),
            participants: self
                .members
                .values()
                .map(|m| ParticipantVideoStats {
                    receive: m.receiver.stats(),
                    thinning: m.gate.stats(),
                    ..m.stats.clone()
                })
                .collect(),
            forwarded_records: self.forwarded_records,
            forwarded_bytes: self.forwarded_bytes,
            forward_refused: self.forward_refused,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::crypto::sender_key::{KeyId, OpenedFrame};
    use crate::media::codec::fake::FakeVideoEncoder;
    use crate::media::group_call::FrameCryptoError;
    use crate::media::video::encoder::EncodeWorker;
    use crate::media::video::pattern;

    /// "Seals" in the clear (a header, the payload, 16 zero bytes) as sender `sender` in the epoch
    /// the test sets: what the session does with frames, not the cipher.
    struct ClearFrames {
        sender: u8,
        epoch: AtomicU64,
        counter: AtomicU64,
    }

    impl ClearFrames {
        fn new(sender: u8) -> Arc<Self> {
            Arc::new(ClearFrames { sender, epoch: AtomicU64::new(1), counter: AtomicU64::new(0) })
        }

        fn frame(sender: u8, epoch: u64, media: GroupMedia, counter: u64, payload: &[u8]) -> Vec<u8> {
            let header = GroupFrameHeader { media, key_id: KeyId::new(epoch, SenderIndex(sender)).unwrap(), counter };
            [&header.encode()[..], payload, &[0; 16]].concat()
        }
    }

    impl GroupFrameCrypto for ClearFrames {
        fn seal(&self, media: GroupMedia, payload: &[u8]) -> Result<Vec<u8>, FrameCryptoError> {
            let counter = self.counter.fetch_add(1, Ordering::Relaxed);
            Ok(Self::frame(self.sender, self.epoch.load(Ordering::Relaxed), media, counter, payload))
        }

        fn open(&self, _from: &PeerId, frame: &[u8]) -> Result<OpenedFrame, FrameCryptoError> {
            let (header, len) = GroupFrameHeader::parse(frame).map_err(|e| FrameCryptoError(e.to_string()))?;
            Ok(OpenedFrame { header, payload: frame[len..frame.len() - 16].to_vec() })
        }
    }

    fn member(n: u8) -> PeerId {
        crate::identity::Identity::from_seed([n; 32]).peer_id()
    }

    fn config() -> SenderConfig {
        SenderConfig { max_format: GROUP_VIDEO_FORMAT, ..Default::default() }
    }

    /// What one frame tick at `at` makes: the capture carried out (the pattern), the job encoded by
    /// `worker`, the records sent. Returns the job and the records.
    fn tick(s: &mut GroupVideoSession, worker: &mut EncodeWorker, at: Instant) -> (Option<EncodeJob>, Vec<Outgoing>) {
        s.handle_timeout(at, 1_000);
        let mut job = None;
        let mut sent = Vec::new();
        while let Some(o) = s.poll_output() {
            match o {
                VideoOutput::Capture { format, stamp, capture_us } => {
                    s.captured(at, pattern::draw(format.width, format.height, stamp), capture_us)
                }
                VideoOutput::Encode(j) => {
                    let result = worker.encode(&j);
                    s.encoded(at, 1_000, &j, result);
                    job = Some(j);
                }
                VideoOutput::Send { record, .. } => sent.push(record),
                _ => {}
            }
        }
        (job, sent)
    }

    #[test]
    fn each_frame_is_encoded_and_sealed_once_for_all_and_a_newcomer_or_a_new_epoch_gets_a_keyframe() {
        let t0 = Instant::now();
        let crypto = ClearFrames::new(0);
        let mut s = GroupVideoSession::new(crypto.clone(), SenderConfig::default(), true, t0);
        let mut worker = EncodeWorker::with_opener(FakeVideoEncoder::open);
        assert_eq!(tick(&mut s, &mut worker, t0), (None, vec![]), "nobody to send to: nothing captured");
        s.add_member(member(1), SenderIndex(1), t0);
        s.add_member(member(2), SenderIndex(2), t0);
        let frame = GROUP_VIDEO_FORMAT.interval();
        let mut keyframes = Vec::new();
        for n in 1..6u32 {
            let (job, sent) = tick(&mut s, &mut worker, t0 + frame * n);
            let job = job.expect("one encode per frame tick");
            assert_eq!((job.format.width, job.format.height), (320, 180), "a group sends 320x180 at most");
            assert_eq!(sent.len(), 1, "one sealed record per frame, for every member");
            keyframes.push(job.keyframe);
            let (header, len) = GroupFrameHeader::parse(&sent[0].record[4..]).unwrap();
            assert_eq!(header.media, GroupMedia::Video { temporal_layer: 0 });
            let (gop, frame) =
                parse_group_video_plaintext(&sent[0].record[4 + len..sent[0].record.len() - 16]).unwrap();
            assert_eq!((gop, frame.frame, sent[0].new_gop), (sent[0].gop, n - 1, n == 1));
        }
        assert_eq!(keyframes, [true, false, false, false, false]);
        // A newcomer: its stream starts with the next GOP.
        s.add_member(member(3), SenderIndex(3), t0);
        let (job, sent) = tick(&mut s, &mut worker, t0 + frame * 6);
        assert!(job.unwrap().keyframe && sent[0].new_gop);
        tick(&mut s, &mut worker, t0 + frame * 7);
        // A new epoch: its first delta frame is not sealed; the next frame is a keyframe under the
        // new key.
        crypto.epoch.store(2, Ordering::Relaxed);
        let (job, sent) = tick(&mut s, &mut worker, t0 + frame * 8);
        assert!(!job.unwrap().keyframe && sent.is_empty());
        let (job, sent) = tick(&mut s, &mut worker, t0 + frame * 9);
        assert!(job.unwrap().keyframe && sent[0].new_gop);
        assert_eq!(GroupFrameHeader::parse(&sent[0].record[4..]).unwrap().0.key_id.epoch(), 2);
        let stats = s.stats();
        assert_eq!((stats.send.frames, stats.send.keyframes, stats.send.unsealed), (8, 3, 1));
        // Off: the encoder goes, nothing is captured, and a job still in flight sends nothing.
        s.handle_timeout(t0 + frame * 10, 1_000);
        let capture = s.poll_output();
        assert!(matches!(capture, Some(VideoOutput::Capture { .. })), "{capture:?}");
        s.captured(t0 + frame * 10, pattern::draw(320, 180, Stamp { counter: 1, capture_ms: 1 }), 1_000);
        let Some(VideoOutput::Encode(job)) = s.poll_output() else { panic!("an encode") };
        s.set_sending(false, t0 + frame * 10);
        let result = worker.encode(&job);
        s.encoded(t0 + frame * 10, 1_000, &job, result);
        assert!(matches!(s.poll_output(), Some(VideoOutput::ReleaseEncoder)));
        assert!(s.poll_output().is_none(), "nothing sent after video off");
        assert_eq!(tick(&mut s, &mut worker, t0 + frame * 11), (None, vec![]));
    }

    /// Member 1's frame `n` of `gop` under `sender`, as a record body (after the prefix).
    fn body(sender: u8, gop: u32, stream_gop: u32, n: u32, keyframe: bool) -> (u32, Vec<u8>) {
        let frame = VideoFrame {
            frame: n,
            capture_us: 1_000,
            flags: if keyframe { crate::media::video::wire::FLAG_KEYFRAME } else { 0 },
            width: 320,
            height: 180,
            av1: vec![1, 2, 3],
        };
        let plaintext = group_video_plaintext(gop, &frame);
        (stream_gop, ClearFrames::frame(sender, 1, GroupMedia::Video { temporal_layer: 0 }, u64::from(n), &plaintext))
    }

    #[test]
    fn frames_not_the_members_own_are_refused_and_a_gap_asks_that_member_for_a_keyframe() {
        let t0 = Instant::now();
        let mut s = GroupVideoSession::new(ClearFrames::new(0), config(), false, t0);
        s.add_member(member(1), SenderIndex(1), t0);
        s.add_member(member(2), SenderIndex(2), t0);
        s.set_remote_sending(&member(1), true, t0);
        let decode = |s: &mut GroupVideoSession| {
            let mut jobs = Vec::new();
            while let Some(o) = s.poll_output() {
                if let VideoOutput::Decode { member, job } = o {
                    jobs.push((member, job.frame));
                }
            }
            jobs
        };
        // Member 2's frame delivered by member 1, a frame moved to another GOP's stream, audio,
        // and garbage: refused against member 1, nothing decoded.
        let (gop, other) = body(2, 0, 0, 0, true);
        s.record(&member(1), gop, &other, t0, 1_000);
        let (gop, moved) = body(1, 0, 1, 0, true);
        s.record(&member(1), gop, &moved, t0, 1_000);
        let audio = ClearFrames::frame(1, 1, GroupMedia::Audio, 0, &[0; 30]);
        s.record(&member(1), 0, &audio, t0, 1_000);
        s.record(&member(1), 0, &[0x20, 1], t0, 1_000);
        assert_eq!(decode(&mut s), []);
        // Its own keyframe and the frame after it decode; a gap leaves the next undecodable and a
        // keyframe request goes to member 1 only.
        for (n, keyframe) in [(0, true), (1, false), (3, false)] {
            let (gop, b) = body(1, 0, 0, n, keyframe);
            s.record(&member(1), gop, &b, t0, 1_000);
        }
        assert_eq!(decode(&mut s), [(member(1), 0), (member(1), 1)]);
        s.handle_timeout(t0 + Duration::from_millis(10), 11_000);
        let mut requests = Vec::new();
        while let Some(o) = s.poll_output() {
            if let VideoOutput::RequestKeyframe { member } = o {
                requests.push(member);
            }
        }
        assert_eq!(requests, [member(1)]);
        let stats = s.stats();
        let p1 = stats.participants.iter().find(|p| p.member == member(1)).unwrap();
        assert_eq!((p1.records, p1.refused, p1.on), (7, 4, true));
        assert_eq!((p1.receive.frames_received, p1.receive.undecodable, p1.receive.keyframe_requests), (3, 1, 1));
        // Member 2 said nothing of its video: no stall is asked about, and it shows off.
        let p2 = stats.participants.iter().find(|p| p.member == member(2)).unwrap();
        assert_eq!((p2.on, p2.receive.keyframe_requests), (false, 0));
    }

    /// Every record `receiver` asks to decode, decoded with the fake decoder at `at`; the members
    /// it asks keyframes of.
    fn decode_all(
        s: &mut GroupVideoSession,
        decoder: &mut crate::media::codec::fake::FakeVideoDecoder,
        at: Instant,
    ) -> (Vec<u32>, Vec<PeerId>) {
        s.handle_timeout(at, 1_000);
        let (mut decoded, mut requests) = (Vec::new(), Vec::new());
        while let Some(o) = s.poll_output() {
            match o {
                VideoOutput::Decode { member, job } => {
                    let result = decoder.decode(&job.av1);
                    decoded.push(pattern::read(&result.as_ref().unwrap()[0]).unwrap().counter);
                    s.decoded(&member, at, &job, result);
                }
                VideoOutput::RequestKeyframe { member } => requests.push(member),
                _ => {}
            }
        }
        (decoded, requests)
    }

    #[test]
    fn a_receiver_given_the_base_layer_alone_decodes_every_base_frame_and_asks_for_no_keyframe() {
        use crate::media::codec::fake::FakeVideoDecoder;
        let t0 = Instant::now();
        let mut sender = GroupVideoSession::new(ClearFrames::new(1), config(), true, t0);
        sender.add_member(member(0), SenderIndex(0), t0);
        sender.add_member(member(2), SenderIndex(2), t0);
        let mut worker = EncodeWorker::with_opener(FakeVideoEncoder::open_two_layers);
        // Member 0 gets every record, member 2 the base layer only (its forwarder thinned it).
        let mut full = GroupVideoSession::new(ClearFrames::new(0), config(), false, t0);
        let mut thin = GroupVideoSession::new(ClearFrames::new(2), config(), false, t0);
        for s in [&mut full, &mut thin] {
            s.add_member(member(1), SenderIndex(1), t0);
            s.set_remote_sending(&member(1), true, t0);
        }
        let (mut full_dec, mut thin_dec) = (FakeVideoDecoder::new(), FakeVideoDecoder::new());
        let (mut full_seen, mut thin_seen, mut layers) = (Vec::new(), Vec::new(), Vec::new());
        let frame = GROUP_VIDEO_FORMAT.interval();
        for n in 0..20u32 {
            let at = t0 + frame * n;
            let (_, sent) = tick(&mut sender, &mut worker, at);
            for r in sent {
                let (header, _) = GroupFrameHeader::parse(&r.record[4..]).unwrap();
                assert_eq!(header.media, GroupMedia::Video { temporal_layer: r.layer }, "sealed on its layer");
                layers.push(r.layer);
                full.record(&member(1), r.gop, &r.record[4..], at, 1_000);
                if r.layer == 0 {
                    thin.record(&member(1), r.gop, &r.record[4..], at, 1_000);
                }
            }
            let (d, requests) = decode_all(&mut full, &mut full_dec, at);
            assert!(requests.is_empty(), "frame {n}: {requests:?}");
            full_seen.extend(d);
            let (d, requests) = decode_all(&mut thin, &mut thin_dec, at);
            assert!(requests.is_empty(), "frame {n}: the missing enhancement frames are no gap");
            thin_seen.extend(d);
        }
        assert_eq!(layers, (0..20).map(|n| (n % 2) as u8).collect::<Vec<_>>());
        assert_eq!(full_seen, (0..20).collect::<Vec<_>>(), "everything decodes");
        assert_eq!(thin_seen, (0..20).step_by(2).collect::<Vec<_>>(), "every base frame decodes");
        let thin_stats = thin.stats().participants[0].receive.clone();
        assert_eq!((thin_stats.undecodable, thin_stats.keyframe_requests), (0, 0));
        // A base frame lost is a gap: member 2 asks for a keyframe, the enhancement frame that
        // follows is skipped (not decoded from a missing base).
        let at = t0 + frame * 20;
        let (_, sent) = tick(&mut sender, &mut worker, at);
        assert_eq!(sent[0].layer, 0);
        let at = t0 + frame * 21;
        let (_, sent) = tick(&mut sender, &mut worker, at);
        assert_eq!(sent[0].layer, 1);
        thin.record(&member(1), sent[0].gop, &sent[0].record[4..], at, 1_000);
        let at = t0 + frame * 22;
        let (_, sent) = tick(&mut sender, &mut worker, at);
        thin.record(&member(1), sent[0].gop, &sent[0].record[4..], at, 1_000);
        let (d, requests) = decode_all(&mut thin, &mut thin_dec, at + Duration::from_millis(400));
        assert_eq!((d, requests), (vec![], vec![member(1)]));
        let receive = thin.stats().participants[0].receive.clone();
        assert_eq!((receive.undecodable, receive.enhancement_skipped), (1, 1));
    }

    /// A record output: to whom, its origin (`None`: our own), its layer, whether it opens a
    /// GOP, its bytes.
    type Routed = (Vec<PeerId>, Option<u8>, u8, bool, Vec<u8>);

    /// The outputs of `s` that carry records.
    fn routed(s: &mut GroupVideoSession) -> Vec<Routed> {
        let mut out = Vec::new();
        while let Some(o) = s.poll_output() {
            match o {
                VideoOutput::Send { to, record } => out.push((to, None, record.layer, record.new_gop, record.record)),
                VideoOutput::Forward { to, origin, record } => {
                    out.push((vec![to], Some(origin), record.layer, record.new_gop, record.record))
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn a_slow_receiver_gets_the_base_layer_only_and_everything_again_once_its_link_is_calm() {
        let t0 = Instant::now();
        let frame = GROUP_VIDEO_FORMAT.interval();
        // Member 1 sends through forwarder 0 to members 2 and 3; member 3's link is slow.
        let mut sender = GroupVideoSession::new(ClearFrames::new(1), config(), true, t0);
        let mut forwarder = GroupVideoSession::new(ClearFrames::new(0), config(), false, t0);
        let mut receiver = GroupVideoSession::new(ClearFrames::new(3), config(), false, t0);
        for (p, i) in [(0, 0), (2, 2), (3, 3)] {
            sender.add_member(member(p), SenderIndex(i), t0);
        }
        for (p, i) in [(1, 1), (2, 2), (3, 3)] {
            forwarder.add_member(member(p), SenderIndex(i), t0);
        }
        for (p, i) in [(0, 0), (1, 1), (2, 2)] {
            receiver.add_member(member(p), SenderIndex(i), t0);
        }
        receiver.set_remote_sending(&member(1), true, t0);
        sender.set_route(Route::Via(member(0)));
        forwarder.set_route(Route::Forwarder);
        receiver.set_route(Route::Via(member(0)));
        assert_eq!(sender.recipients(0), [member(0)], "through a forwarder: to the forwarder alone");
        let mut worker = EncodeWorker::with_opener(FakeVideoEncoder::open_two_layers);
        let mut decoder = crate::media::codec::fake::FakeVideoDecoder::new();
        let rtt = Duration::from_millis(40);
        // Per receiver: the layers forwarded to it over each second.
        let mut layers_to = |secs: std::ops::Range<u32>, slow: bool, shown: &mut Vec<u32>| {
            let mut got: BTreeMap<PeerId, Vec<u8>> = BTreeMap::new();
            for n in secs.start * 30..secs.end * 30 {
                let at = t0 + frame * n;
                forwarder.link_rtt(&member(2), rtt, at);
                forwarder.link_rtt(&member(3), if slow { rtt * 5 } else { rtt }, at);
                let (_, sent) = tick(&mut sender, &mut worker, at);
                assert_eq!(sent.len(), 1);
                let layer = sent[0].layer;
                // Our own record: to the forwarder alone.
                forwarder.record(&member(1), sent[0].gop, &sent[0].record[4..], at, 1_000);
                for (to, origin, fwd_layer, new_gop, bytes) in routed(&mut forwarder) {
                    assert_eq!((origin, fwd_layer), (Some(1), layer));
                    assert_eq!(bytes, sent[0].record, "forwarded byte for byte");
                    assert_eq!(new_gop, n == 0, "a stream per receiver and origin, opened at the keyframe");
                    got.entry(to[0]).or_default().push(fwd_layer);
                    if to[0] == member(3) {
                        receiver.record(&member(0), sent[0].gop, &bytes[4..], at, 1_000);
                    }
                }
                let (d, requests) = decode_all(&mut receiver, &mut decoder, at);
                assert!(requests.is_empty(), "frame {n}: no keyframe asked for a thinned stream");
                shown.extend(d);
            }
            got
        };
        let mut shown = Vec::new();
        let got = layers_to(0..1, false, &mut shown);
        assert_eq!(got[&member(2)].len(), 30);
        assert_eq!(got[&member(3)].len(), 30, "both fast: both get everything");
        let got = layers_to(1..3, true, &mut shown);
        assert_eq!(got[&member(2)].len(), 60, "the fast one still gets everything");
        assert!(got[&member(3)].iter().all(|l| *l == 0), "the slow one the base layer only");
        assert_eq!(got[&member(3)].len(), 30);
        // Calm again: everything after the 2 s hold.
        let got = layers_to(3..5, false, &mut shown);
        assert_eq!(got[&member(3)].len(), 30, "base only during the hold");
        let got = layers_to(5..6, false, &mut shown);
        assert_eq!(got[&member(3)].len(), 30, "everything again");
        assert!(got[&member(3)].contains(&1));
        // Member 3 decoded member 1's base frames all along and its enhancement frames when sent.
        assert_eq!(shown.len(), 30 + 30 + 30 + 30);
        let stats = forwarder.stats();
        let slow = stats.participants.iter().find(|p| p.member == member(3)).unwrap();
        assert_eq!((slow.thinning.layers, slow.thinning.thinnings, slow.thinning.enhancement_thinned), (2, 1, 60));
        assert_eq!(stats.forwarded_records, 180 + 120);
        let from1 = receiver.stats().participants.into_iter().find(|p| p.member == member(1)).unwrap();
        assert_eq!((from1.records, from1.refused, from1.receive.undecodable), (120, 0, 0));
    }

    #[test]
    fn the_forwarder_forwards_only_a_members_own_new_video_and_a_mesh_sender_thins_per_link() {
        let t0 = Instant::now();
        let mut f = GroupVideoSession::new(ClearFrames::new(0), config(), false, t0);
        f.add_member(member(1), SenderIndex(1), t0);
        f.add_member(member(2), SenderIndex(2), t0);
        f.set_route(Route::Forwarder);
        let (gop, own) = body(1, 0, 0, 0, true);
        f.record(&member(1), gop, &own, t0, 1_000);
        let out = routed(&mut f);
        assert_eq!((out.len(), &out[0].0, out[0].3), (1, &vec![member(2)], true), "to member 2, on a new stream");
        let (gop, next) = body(1, 0, 0, 1, false);
        f.record(&member(1), gop, &next, t0, 1_000);
        assert!(!routed(&mut f)[0].3, "the same GOP: the same stream");
        // Member 2's link comes back: what goes to it starts on a new stream.
        f.add_member(member(2), SenderIndex(2), t0);
        let (gop, next) = body(1, 0, 0, 2, false);
        f.record(&member(1), gop, &next, t0, 1_000);
        assert!(routed(&mut f)[0].3, "a new link: a new stream");
        f.record(&member(1), gop, &own, t0, 1_000);
        let (gop, other) = body(2, 0, 0, 0, true);
        f.record(&member(1), gop, &other, t0, 1_000);
        let audio = ClearFrames::frame(1, 1, GroupMedia::Audio, 9, &[0; 30]);
        f.record(&member(1), 0, &audio, t0, 1_000);
        assert!(routed(&mut f).is_empty(), "a duplicate, another's index, audio on a video stream");
        assert_eq!(f.stats().forward_refused, 3);
        // A mesh sender: member 2's link queues 150 ms, member 1's does not.
        let mut s = GroupVideoSession::new(ClearFrames::new(0), config(), true, t0);
        s.add_member(member(1), SenderIndex(1), t0);
        s.add_member(member(2), SenderIndex(2), t0);
        s.link_rtt(&member(1), Duration::from_millis(20), t0);
        s.link_rtt(&member(2), Duration::from_millis(20), t0);
        s.link_rtt(&member(2), Duration::from_millis(170), t0);
        let mut worker = EncodeWorker::with_opener(FakeVideoEncoder::open_two_layers);
        let frame = GROUP_VIDEO_FORMAT.interval();
        let mut to_by_layer = Vec::new();
        for n in 0..4u32 {
            s.handle_timeout(t0 + frame * n, 1_000);
            while let Some(o) = s.poll_output() {
                match o {
                    VideoOutput::Capture { format, stamp, capture_us } => {
                        s.captured(t0, pattern::draw(format.width, format.height, stamp), capture_us)
                    }
                    VideoOutput::Encode(j) => {
                        let result = worker.encode(&j);
                        s.encoded(t0 + frame * n, 1_000, &j, result);
                    }
                    VideoOutput::Send { to, record } => to_by_layer.push((record.layer, to)),
                    _ => {}
                }
            }
        }
        let both = vec![member(1), member(2)].into_iter().collect::<std::collections::BTreeSet<_>>();
        for (layer, to) in &to_by_layer {
            let to: std::collections::BTreeSet<_> = to.iter().copied().collect();
            if *layer == 0 {
                assert_eq!(to, both, "the base layer goes to everyone");
            } else {
                assert_eq!(to, [member(1)].into_iter().collect(), "the enhancement layer to the fast link only");
            }
        }
        assert_eq!(to_by_layer.len(), 4);
    }

    #[test]
    fn a_distrusted_forwarder_is_bypassed_and_its_relaying_refused() {
        let t0 = Instant::now();
        let mut s = GroupVideoSession::new(ClearFrames::new(1), config(), false, t0);
        s.add_member(member(0), SenderIndex(0), t0);
        s.add_member(member(2), SenderIndex(2), t0);
        s.set_route(Route::Via(member(0)));
        assert_eq!(s.recipients(0), [member(0)]);
        // Member 2's record relayed by the forwarder: taken while it is trusted.
        let (gop, relayed) = body(2, 0, 0, 0, true);
        s.record(&member(0), gop, &relayed, t0, 1_000);
        s.distrust(member(0));
        assert_eq!(s.recipients(0), [member(0), member(2)], "to every member directly");
        let (gop, relayed) = body(2, 0, 0, 1, false);
        s.record(&member(0), gop, &relayed, t0, 1_000);
        let stats = s.stats();
        let by = |m: PeerId| stats.participants.iter().find(|p| p.member == m).unwrap().clone();
        assert_eq!((by(member(2)).records, by(member(0)).refused), (1, 1), "its relaying refused once distrusted");
    }

    #[test]
    fn a_members_video_state_told_before_it_is_added_holds() {
        let t0 = Instant::now();
        let mut s = GroupVideoSession::new(ClearFrames::new(0), config(), false, t0);
        s.set_remote_sending(&member(1), true, t0);
        s.add_member(member(1), SenderIndex(1), t0);
        assert!(s.stats().participants[0].on);
    }
}
