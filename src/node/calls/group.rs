//! The group call's control plane (issue 13): one [`GroupMember`] driven by the node loop, and
//! its pairwise *legs*: each leg is a 1:1 [`CallSession`] with a [`PeerLink`] to one member, set up
//! by the invite path with the invite's `group` part (`protocols/signaling-v1.md`, "Group legs").
//! The member's control messages ride the legs' control streams as [`ControlMessage::Group`].
//!
//! - `hail call a b c`: [`GroupMember::start`], then a *join* leg per invitee (it rings there);
//!   the invitee's member starts from the group invite that arrives on the answered leg.
//! - After each commit, members without a leg between them complete the *mesh*: the one whose
//!   PeerId sorts lower dials a *mesh* leg, the other accepts it without ringing only from a member
//!   of its roster (or of the roster it was invited into), or holds it for [`MESH_HOLD`] while a
//!   commit that may name the dialer is on its way; anyone else is refused.
//! - No host: `hail hangup` and `hail leave` leave ([`Command::Leave`]); the others go on.
//! - The media plane is not here: [`GroupMediaSeam`] is where a member's leg media and sender
//!   index are handed over, and taken back.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use libp2p_identity::Keypair;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::call::signal::{GROUP_VERSION, GroupLeg, GroupLegKind};
use crate::crypto::frame_auth::{FrameAuthenticator, FrameList};
use crate::crypto::sas::{Sas, SasTable};
use crate::crypto::sender_key::SenderIndex;
use crate::group::control::{ControlBody, GroupControl};
use crate::group::roster::Roster;
use crate::group::{Command as GroupCommand, GroupConfig, GroupEvent, GroupMember, LeaveReason, Output as GroupOutput};
use crate::crypto::sender_key::{GroupMedia, OpenedFrame};
use crate::media::group_call::{
    FrameCryptoError, GroupAudioEvent, GroupAudioStats, GroupCallMedia, GroupFrameCrypto, GroupMediaConfig, Route,
    GroupVideoStats,
};
use crate::media_link::MediaLink;
use crate::node::GroupPeerChange;

/// How long a mesh leg from a peer not (yet) in our roster waits for a commit that names it:
/// well within the invite's own timeout ([`crate::discovery::behaviour::INVITE_TIMEOUT`], 10 s),
/// so the caller hears "rejected" rather than a dropped stream.
pub(in crate::node) const MESH_HOLD: Duration = Duration::from_secs(5);
/// Most mesh invites held at once.
const MAX_HELD_MESH: usize = 8;
/// Most group messages waiting for one peer's leg.
const MAX_OUTBOX: usize = 64;

/// A group call as `hail status` shows it (`protocols/control-v1.md`, "Group calls").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// The group call's id (the legs have their own).
    pub call_id: CallId,
    /// `joining` (invited, waiting for the commit that lets us in), `in_call`, or `ended`.
    pub state: String,
    /// The current epoch (none while joining).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// Everyone in the current epoch, then those invited or on their way, sorted by PeerId.
    pub participants: Vec<ParticipantInfo>,
    /// The group's four emoji for `emoji_epoch` (table 2), once this epoch's round agreed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<Vec<SasEmoji>>,
    /// The emoji as one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji_text: Option<String>,
    /// The epoch the emoji belong to (they change with every membership change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji_epoch: Option<u64>,
    /// Why this epoch has no emoji (a mismatch: someone may be in the middle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji_failure: Option<String>,
    /// When we started or joined, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Why we are out of the call: `left`, `removed`, `not_admitted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    /// Who the others hear most now (the media plane's dominant speaker; a PeerId), or null.
    #[serde(default)]
    pub dominant: Option<String>,
    /// The group's audio (the media plane's counters: what we send, and per participant), while
    /// it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<GroupAudioStats>,
    /// The group's video (what we send, and per participant: frames received, decoded, shown,
    /// fps, kbps, keyframes), while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<GroupVideoStats>,
    /// How the media flows: `mesh` (every member sends to every other) or `forward` (one member
    /// forwards the others' sealed frames: `forwarder`).
    #[serde(default = "mesh")]
    pub topology: String,
    /// The forwarding member (a PeerId) when `topology` is `forward`; null in a mesh.
    #[serde(default)]
    pub forwarder: Option<String>,
}

fn mesh() -> String {
    "mesh".into()
}

/// One participant of a group call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// Its PeerId.
    #[serde(with = "crate::store::contact::peer_id_text")]
    pub peer_id: PeerId,
    /// Our contact name for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
    /// This node.
    pub me: bool,
    /// Its sender index in the current epoch (members only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_index: Option<u8>,
    /// `me`; `connected` (a member whose leg is up); `connecting` (a member whose leg is not up
    /// yet); `invited` (not a member yet: its leg rings or it waits for its commit).
    pub state: String,
    /// Its leg's media is handed to the media plane ([`GroupMediaSeam`]).
    pub media: bool,
    /// It muted its microphone (it said so on its leg; for `me`, we did).
    #[serde(default)]
    pub muted: bool,
    /// It is speaking now (the media plane hears it; never set for `me`).
    #[serde(default)]
    pub speaking: bool,
    /// Its video is on (it said so on its leg to us; for `me`, ours).
    #[serde(default)]
    pub video: bool,
    /// The network path of its leg to us, once the leg is up (a member behind a symmetric NAT
    /// shows `relayed`: its leg goes through a media relay, like a 1:1 call's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<CallPath>,
    /// Its uplink as it last reported it (ours as measured or set), kbit/s: what the topology is
    /// chosen from; null until reported.
    #[serde(default)]
    pub uplink_kbps: Option<u32>,
    /// It forwards the others' frames in this epoch.
    #[serde(default)]
    pub forwarder: bool,
}

/// Where the group call's media plane meets the control plane: the group's audio
/// ([`GroupCallMedia`]) seals and opens through the member ([`MemberCrypto`]); a member's leg media
/// (its [`PeerLink::media`]) and sender index are handed over once both exist, and taken back when
/// it leaves (or its leg ends).
#[derive(Default)]
pub(in crate::node) struct GroupMediaSeam {
    media: Option<Arc<GroupCallMedia>>,
    attached: BTreeMap<PeerId, SenderIndex>,
    route: Route,
}

impl GroupMediaSeam {
    /// Starts the group's audio over `member`'s keys (no member attached yet); its events go to
    /// the loop as [`PhoneEvent::GroupAudio`] for call `id`.
    fn start(
        &mut self,
        id: CallId,
        member: Arc<Mutex<GroupMember>>,
        identity: Keypair,
        config: GroupMediaConfig,
        loop_events: mpsc::Sender<PhoneEvent>,
    ) {
        let (events, mut heard) = mpsc::channel::<GroupAudioEvent>(64);
        match GroupCallMedia::start(config, Arc::new(MemberCrypto(member, identity)), events) {
            Ok(media) => {
                media.set_route(self.route);
                self.media = Some(Arc::new(media));
            }
            Err(e) => tracing::warn!(error = %e, "the group call's audio could not start"),
        }
        tokio::spawn(async move {
            while let Some(event) = heard.recv().await {
                tracing::debug!(?event, "group audio");
                if loop_events.send(PhoneEvent::GroupAudio { call_id: id, event }).await.is_err() {
                    return;
                }
            }
        });
    }

    /// How our frames flow (the group's topology now), told to the media when it changes.
    fn set_route(&mut self, route: Route) {
        if route != self.route {
            tracing::info!(?route, "group media: topology");
            self.route = route;
            if let Some(media) = &self.media {
                media.set_route(route);
            }
        }
    }

    /// Mutes or unmutes what we send.
    fn set_muted(&self, muted: bool) {
        if let Some(media) = &self.media {
            media.set_muted(muted);
        }
    }

    /// Our video on or off.
    fn set_video(&self, on: bool) {
        if let Some(media) = &self.media {
            media.set_video(on);
        }
    }

    /// `peer` said its video is on or off.
    fn set_remote_video(&self, peer: PeerId, on: bool) {
        if let Some(media) = &self.media {
            media.set_remote_video(peer, on);
        }
    }

    /// A member asked us for a keyframe.
    fn keyframe_requested(&self) {
        if let Some(media) = &self.media {
            media.keyframe_requested();
        }
    }

    /// Hands `peer`'s leg media and sender index over (a new index replaces the old), with
    /// whether its video is on (what it last said on its leg).
    fn attach(&mut self, peer: PeerId, index: SenderIndex, link: Arc<dyn MediaLink>, video: bool) {
        tracing::debug!(%peer, index = index.0, "group media: member attached");
        self.attached.insert(peer, index);
        if let Some(media) = self.media.clone() {
            // Told now, before the add (which waits for its reply): what the leg says later is
            // told after this, so the media ends with the latest.
            media.set_remote_video(peer, video);
            tokio::spawn(async move {
                if let Err(e) = media.add_member(peer, index, link).await {
                    tracing::warn!(%peer, error = %e, "group media: a member could not be added");
                }
            });
        }
    }

    /// Takes `peer`'s media back.
    fn detach(&mut self, peer: &PeerId) {
        if self.attached.remove(peer).is_some() {
            tracing::debug!(%peer, "group media: member detached");
            if let Some(media) = &self.media {
                media.remove_member(*peer);
            }
        }
    }

    /// Takes every member back and stops the audio (the sink is finished).
    fn stop(&mut self) {
        for peer in self.attached.keys().copied().collect::<Vec<_>>() {
            self.detach(&peer);
        }
        // The last handle dropped stops the task (an add still on its way holds one briefly).
        self.media = None;
    }

    fn attached(&self, peer: &PeerId) -> Option<SenderIndex> {
        self.attached.get(peer).copied()
    }

    fn stats(&self) -> Option<GroupAudioStats> {
        self.media.as_ref().map(|m| m.stats())
    }

    fn video_stats(&self) -> Option<GroupVideoStats> {
        self.media.as_ref().map(|m| m.video_stats())
    }
}

/// The media's port to the group's keys, over the loop's [`GroupMember`], and to our identity key
/// (frame authenticators are signed with it).
struct MemberCrypto(Arc<Mutex<GroupMember>>, Keypair);

impl MemberCrypto {
    fn member(&self) -> MutexGuard<'_, GroupMember> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl GroupFrameCrypto for MemberCrypto {
    fn seal(&self, media: GroupMedia, payload: &[u8]) -> Result<Vec<u8>, FrameCryptoError> {
        self.member().seal(media, payload).map_err(|e| FrameCryptoError(e.to_string()))
    }

    fn open(&self, from: &PeerId, frame: &[u8]) -> Result<OpenedFrame, FrameCryptoError> {
        self.member().open(from, frame).map_err(|e| FrameCryptoError(e.to_string()))
    }

    fn sign_frames(&self, list: FrameList) -> Result<FrameAuthenticator, FrameCryptoError> {
        let call_id = self.member().call_id();
        FrameAuthenticator::sign(list, &call_id, &self.1).map_err(|e| FrameCryptoError(e.to_string()))
    }

    fn verify_frames(&self, signer: &PeerId, authenticator: &FrameAuthenticator) -> Result<(), FrameCryptoError> {
        let call_id = self.member().call_id();
        authenticator.verify(&call_id, signer).map_err(|e| FrameCryptoError(e.to_string()))
    }
}

/// The group call this node is in.
pub(in crate::node) struct GroupCall {
    /// Shared with the media plane, which seals and opens frames through it ([`MemberCrypto`]);
    /// the loop holds the lock only for one call at a time.
    member: Arc<Mutex<GroupMember>>,
    id: CallId,
    /// The members the invite named while we join (their mesh legs are accepted at once).
    known: Vec<PeerId>,
    /// Group messages for peers whose leg is not up yet.
    outbox: HashMap<PeerId, VecDeque<Vec<u8>>>,
    emoji: Option<(u64, Sas)>,
    emoji_failure: Option<String>,
    started_wall_ms: u64,
    ended: Option<LeaveReason>,
    media: GroupMediaSeam,
    /// Our microphone is muted (`hail mute`); every leg is told.
    muted: bool,
    /// Our video is on (`--video`, `hail video on|off`); every leg is told.
    video: bool,
    /// The members the media hears speaking now, and the dominant one.
    speaking: BTreeSet<PeerId>,
    dominant: Option<PeerId>,
    /// Everyone who was a member with us at some point (for the history record), and when we
    /// got in (our first epoch).
    met: BTreeSet<PeerId>,
    admitted_wall_ms: Option<u64>,
    /// Whether we founded the call (else we were invited, by `inviter`).
    inviter: Option<PeerId>,
}

impl GroupCall {
    fn new(member: GroupMember, known: Vec<PeerId>) -> GroupCall {
        GroupCall {
            id: CallId(member.call_id()),
            member: Arc::new(Mutex::new(member)),
            known,
            outbox: HashMap::new(),
            emoji: None,
            emoji_failure: None,
            started_wall_ms: unix_ms(SystemTime::now()),
            ended: None,
            media: GroupMediaSeam::default(),
            muted: false,
            video: false,
            speaking: BTreeSet::new(),
            dominant: None,
            met: BTreeSet::new(),
            admitted_wall_ms: None,
            inviter: None,
        }
    }

    /// The member (the media may hold the lock for one seal or open).
    fn member(&self) -> MutexGuard<'_, GroupMember> {
        self.member.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current epoch's roster (none while joining or once out).
    fn roster(&self) -> Option<Roster> {
        self.member().roster().cloned()
    }

    /// What to do with a mesh leg from `peer` (the group is ours and live).
    fn mesh_admission(&self, peer: &PeerId) -> MeshAdmission {
        match self.roster() {
            Some(roster) if roster.contains(peer) => MeshAdmission::Accept,
            // A member of an epoch whose commit is on its way to us (through our other legs).
            Some(_) => MeshAdmission::Hold,
            None if self.known.contains(peer) => MeshAdmission::Accept,
            // We are joining: the commit that lets us in may come on this very leg (from a
            // sequencer the invitation did not name), so the leg is taken, on probation.
            None => MeshAdmission::Probation,
        }
    }
}

/// A mesh leg's invite from a peer not yet in our roster, held until a commit names it.
pub(in crate::node) struct HeldMesh {
    peer: PeerId,
    contact: Option<Contact>,
    invite: Invite,
    channel: ResponseChannel<serde_json::Value>,
    until: Instant,
}

/// What to do with a mesh leg's invite.
enum MeshAdmission {
    /// From a member: taken without ringing.
    Accept,
    /// From a peer a commit on its way may name: held up to [`MESH_HOLD`].
    Hold,
    /// While we join, from a peer the invitation did not name: taken, and hung up unless a
    /// commit names it within [`MESH_HOLD`].
    Probation,
    /// From anyone else: refused.
    Refuse,
}

fn leave_reason(reason: LeaveReason) -> &'static str {
    match reason {
        LeaveReason::Left => "left",
        LeaveReason::Removed => "removed",
        LeaveReason::NotAdmitted => "not_admitted",
    }
}

/// Our contact name for `peer`, as the group's status shows it.
fn participant_name(info: &GroupInfo, peer: &PeerId) -> Option<Name> {
    info.participants.iter().find(|p| p.peer_id == *peer).and_then(|p| p.name.clone())
}

fn sas_emoji(sas: &Sas) -> Vec<SasEmoji> {
    sas.emoji_in(SasTable::V2).iter().map(|e| SasEmoji { emoji: e.glyph.into(), name: e.name.into() }).collect()
}

impl LiveCall {
    /// This leg's group, if it is one of `id`'s legs.
    pub(super) fn leg_of(&self, id: CallId) -> bool {
        self.group.as_ref().is_some_and(|g| g.id == id)
    }
}

impl Phone {
    /// The group call as the user sees it (live, or the last one).
    pub(in crate::node) fn group_info(&self, contacts: &[Contact]) -> Option<GroupInfo> {
        let Some(group) = &self.group else { return self.last_group.clone() };
        let me = self.identity.peer_id();
        let name = |p: &PeerId| contacts.iter().find(|c| c.peer_id == *p).map(|c| c.name.clone());
        let leg_up = |p: &PeerId| {
            self.calls.values().any(|c| c.leg_of(group.id) && c.session.peer() == *p && c.session.state() == CallState::Active)
        };
        let leg_path = |p: &PeerId| {
            self.calls
                .values()
                .filter(|c| c.leg_of(group.id) && c.session.peer() == *p && c.session.state() == CallState::Active)
                .find_map(|c| c.path(c.link(&self.links)))
        };
        // What a member last said of its microphone on its leg to us (`media_state`).
        let muted = |p: &PeerId| {
            if *p == me {
                return group.muted;
            }
            self.calls.values().any(|c| {
                c.leg_of(group.id) && c.session.peer() == *p && c.session.state() == CallState::Active && c.remote_muted
            })
        };
        // What a member last said of its video on its leg to us.
        let video = |p: &PeerId| {
            if *p == me {
                return group.video;
            }
            self.calls.values().any(|c| {
                c.leg_of(group.id) && c.session.peer() == *p && c.session.state() == CallState::Active && c.remote_video
            })
        };
        let roster = group.roster();
        let roster = roster.as_ref();
        let (forwarder, uplinks) = {
            let member = group.member();
            (member.forwarder(Instant::now()), member.uplinks())
        };
        let mut participants: Vec<ParticipantInfo> = Vec::new();
        let mut add = |peer: PeerId, index: Option<SenderIndex>, state: &str| {
            if participants.iter().any(|p| p.peer_id == peer) {
                return;
            }
            participants.push(ParticipantInfo {
                peer_id: peer,
                name: name(&peer),
                me: peer == me,
                sender_index: index.map(|i| i.0),
                state: state.into(),
                media: group.media.attached(&peer).is_some(),
                muted: muted(&peer),
                speaking: group.speaking.contains(&peer),
                video: video(&peer),
                path: leg_path(&peer),
                uplink_kbps: uplinks.get(&peer).copied(),
                forwarder: forwarder == Some(peer),
            });
        };
        if let Some(roster) = roster {
            for entry in roster.entries() {
                let state = if entry.peer == me {
                    "me"
                } else if leg_up(&entry.peer) {
                    "connected"
                } else {
                    "connecting"
                };
                add(entry.peer, Some(entry.index), state);
            }
        } else if group.ended.is_none() {
            add(me, None, "me");
        }
        if group.ended.is_none() {
            // Our invitations still out (a leg to a member that left is not one).
            let invitation = |c: &&LiveCall| {
                c.leg_of(group.id)
                    && c.session.role() == Role::Caller
                    && c.group.as_ref().is_some_and(|g| g.kind == GroupLegKind::Join)
                    && !matches!(c.session.state(), CallState::Ending | CallState::Ended)
            };
            for call in self.calls.values().filter(invitation) {
                add(call.session.peer(), None, "invited");
            }
        }
        participants.sort_by_key(|p| p.peer_id.to_bytes());
        let emoji = group.emoji.filter(|(epoch, _)| roster.is_some_and(|r| r.epoch() == *epoch));
        Some(GroupInfo {
            call_id: group.id,
            state: match (&group.ended, roster) {
                (Some(_), _) => "ended",
                (None, Some(_)) => "in_call",
                (None, None) => "joining",
            }
            .into(),
            epoch: roster.map(|r| r.epoch()),
            participants,
            emoji: emoji.map(|(_, sas)| sas_emoji(&sas)),
            emoji_text: emoji.map(|(_, sas)| sas.text_in(SasTable::V2)),
            emoji_epoch: emoji.map(|(epoch, _)| epoch),
            emoji_failure: group.emoji_failure.clone(),
            started_at_ms: group.started_wall_ms,
            end_reason: group.ended.map(|r| leave_reason(r).to_owned()),
            dominant: group.dominant.map(|p| p.to_base58()),
            audio: group.media.stats(),
            topology: if forwarder.is_some() { "forward" } else { "mesh" }.into(),
            forwarder: forwarder.map(|p| p.to_base58()),
            video: group.media.video_stats(),
        })
    }

    /// When the group call or a held mesh invite needs the loop next.
    pub(super) fn group_timeout(&self) -> Option<Instant> {
        let member = self.group.as_ref().and_then(|g| g.member().poll_timeout());
        let held = self.held_mesh.iter().map(|h| h.until).min();
        let probation = self.calls.values().filter_map(|c| c.probation).min();
        member.into_iter().chain(held).chain(probation).min()
    }
}

/// The node loop's group call handling. Every method runs on the loop; none blocks.
impl<S: crate::store::Store> crate::node::NodeLoop<S> {
    fn group_contacts(&self) -> Vec<Contact> {
        self.db.contacts().unwrap_or_default()
    }

    fn current_group_info(&self) -> Option<GroupInfo> {
        self.phone.group_info(&self.group_contacts())
    }

    /// `hail call A B …`: starts a group call with us as its founder and invites each.
    pub(in crate::node) fn start_group(
        &mut self,
        who: Vec<String>,
        video: bool,
        audio: MediaOverride,
    ) -> Result<GroupInfo, NodeError> {
        if self.phone.in_call() {
            return Err(NodeError::InCall);
        }
        let me = self.config.identity.peer_id();
        let mut invitees: Vec<(PeerId, Option<Contact>)> = Vec::new();
        for w in &who {
            let (peer, contact) = self.resolve_who(w)?;
            if peer == me {
                return Err(NodeError::SelfContact);
            }
            if !invitees.iter().any(|(p, _)| *p == peer) {
                invitees.push((peer, contact));
            }
        }
        let config = GroupConfig { topology: self.phone.settings.group_topology, ..GroupConfig::default() };
        if invitees.len() + 1 > config.max_members {
            return Err(NodeError::CallAction("a group call has at most 8 people"));
        }
        let now = Instant::now();
        let member = GroupMember::start(CallId::random().0, me, config, StdRng::from_entropy(), now);
        let video_config = audio.apply_video(&self.phone.settings.video);
        let audio = audio.apply(&self.phone.settings.audio);
        self.begin_group(
            member,
            Vec::new(),
            GroupMediaConfig { audio, muted: false, video: video_config, video_on: video, view: Default::default() },
        );
        for (peer, contact) in invitees {
            self.invite_to_group(peer, contact, now)?;
        }
        self.drive_call();
        self.current_group_info().ok_or(NodeError::NoCall)
    }

    /// We are in a group call now (founding it, or having accepted its invitation): its media
    /// starts on `config` (the daemon's, over what `hail call`/`hail answer` gave), muted and
    /// with video as the user chose, sealing nothing until a commit lets us in.
    fn begin_group(&mut self, member: GroupMember, known: Vec<PeerId>, mut config: GroupMediaConfig) {
        config.view = self.phone.view.for_call();
        let mut group = GroupCall::new(member, known);
        group.muted = config.muted;
        group.video = config.video_on;
        let identity = self.phone.identity.keypair().clone();
        group.media.start(group.id, group.member.clone(), identity, config, self.phone.events.clone());
        self.phone.group = Some(group);
    }

    /// `hail add WHO`: invites another contact into the group call.
    pub(in crate::node) fn add_to_group(&mut self, who: String) -> Result<GroupInfo, NodeError> {
        if self.phone.group.as_ref().is_none_or(|g| g.ended.is_some()) {
            return Err(NodeError::NoCall);
        }
        let (peer, contact) = self.resolve_who(&who)?;
        if peer == self.config.identity.peer_id() {
            return Err(NodeError::SelfContact);
        }
        self.invite_to_group(peer, contact, Instant::now())?;
        self.drive_call();
        self.current_group_info().ok_or(NodeError::NoCall)
    }

    fn invite_to_group(&mut self, peer: PeerId, contact: Option<Contact>, now: Instant) -> Result<(), NodeError> {
        let Some(group) = self.phone.group.as_mut() else { return Err(NodeError::NoCall) };
        let id = group.id;
        if group.roster().is_some_and(|r| r.contains(&peer)) {
            return Err(NodeError::CallAction("already in the group call"));
        }
        if self.phone.calls.values().any(|c| c.leg_of(id) && c.session.peer() == peer) {
            return Err(NodeError::CallAction("already invited"));
        }
        group.member().command(GroupCommand::Invite(peer), now).map_err(|e| match e {
            crate::group::GroupError::Full(_) => NodeError::CallAction("the group call is full (8 people at most)"),
            crate::group::GroupError::NotInCall => NodeError::CallAction("not in the group call yet"),
            _ => NodeError::CallAction("the invitation was refused"),
        })?;
        let members = group.roster().map(|r| r.peers().map(|p| p.to_base58()).collect()).unwrap_or_default();
        let leg = GroupLeg { id, kind: GroupLegKind::Join, members, version: GROUP_VERSION };
        // The invitation asks for video when ours is on: the invitee joins with its video on.
        let video = group.video;
        self.dial(peer, contact, video, MediaOverride::default(), Some(leg), None);
        Ok(())
    }

    /// `hail leave` (and `hail hangup` in a group call): we leave, the call goes on for the others.
    pub(in crate::node) fn leave_group(&mut self) -> Result<GroupInfo, NodeError> {
        let Some(group) = self.phone.group.as_mut() else { return Err(NodeError::NoCall) };
        if group.roster().is_some() {
            let _ = group.member().command(GroupCommand::Leave, Instant::now());
        } else {
            // Still joining: nothing to tell the group; the legs hang up.
            group.ended = Some(LeaveReason::Left);
        }
        self.drive_call();
        if self.phone.group.as_ref().is_some_and(|g| g.ended.is_some()) {
            self.finish_group();
        }
        self.phone.last_group.clone().ok_or(NodeError::NoCall)
    }

    /// Drains the member's outputs: messages onto the legs (or into the outbox until a leg is
    /// up), events to the subscribers. Returns whether anything came out.
    pub(super) fn drive_group(&mut self) -> bool {
        let mut any = false;
        while let Some(output) = self.phone.group.as_mut().and_then(|g| g.member().poll_output()) {
            any = true;
            match output {
                GroupOutput::Send { to, bytes } => self.group_send(to, bytes),
                GroupOutput::Event(event) => self.on_group_event(event),
            }
        }
        if self.phone.group.as_ref().is_some_and(|g| g.ended.is_some()) {
            self.finish_group();
            return true;
        }
        if any {
            self.complete_mesh();
            self.recheck_held_mesh(Instant::now());
            self.check_probation(Instant::now());
        }
        self.sync_group_media();
        any
    }

    fn group_send(&mut self, to: PeerId, bytes: Vec<u8>) {
        let Some(group) = self.phone.group.as_mut() else { return };
        let id = group.id;
        let leg = self.phone.calls.values().find(|c| {
            c.leg_of(id) && c.session.peer() == to && c.session.state() == CallState::Active
        });
        let link = leg.and_then(|c| c.link(&self.phone.links));
        tracing::debug!(%to, leg = leg.is_some(), link = link.is_some(), "group message out");
        match link {
            Some(link) => {
                if link.send_control(ControlMessage::group(&bytes).body()).is_err() {
                    tracing::warn!(%to, "group leg congested; a group message was dropped");
                }
            }
            None => {
                let queue = group.outbox.entry(to).or_default();
                if queue.len() < MAX_OUTBOX {
                    queue.push_back(bytes);
                }
            }
        }
    }

    fn on_group_event(&mut self, event: GroupEvent) {
        let Some(group) = self.phone.group.as_mut() else { return };
        match &event {
            GroupEvent::Emoji { epoch, sas } => {
                group.emoji = Some((*epoch, *sas));
                group.emoji_failure = None;
            }
            GroupEvent::EmojiFailed { epoch, failure } => {
                tracing::warn!(epoch, %failure, "the group's emoji round failed");
                group.emoji_failure = Some(failure.to_string());
            }
            GroupEvent::EpochStarted { epoch, members } => {
                tracing::info!(epoch, members = members.len(), "group call: a new epoch");
                group.emoji_failure = None;
                let me = self.config.identity.peer_id();
                group.met.extend(members.iter().filter(|p| **p != me));
                group.admitted_wall_ms.get_or_insert_with(|| unix_ms(SystemTime::now()));
                // Our invitees still waiting learn the new members from the member itself (it
                // invites them again at each epoch that leaves them out).
                let id = group.id;
                // The legs of the members this epoch names: their end is a leave from now on.
                for call in self.phone.calls.values_mut().filter(|c| c.leg_of(id) && members.contains(&c.session.peer())) {
                    call.joined_group = true;
                }
                let now = Instant::now();
                // A pairing fed before its peer was a member was dropped at an epoch without it:
                // every live leg's pairing goes in again (the member keeps what it has).
                let paired: Vec<(PeerId, [u8; 32])> = self
                    .phone
                    .calls
                    .values()
                    .filter(|c| c.leg_of(id) && c.session.state() == CallState::Active)
                    .filter(|c| members.contains(&c.session.peer()))
                    .filter_map(|c| Some((c.session.peer(), c.handshake_hash?)))
                    .collect();
                for (peer, handshake_hash) in paired {
                    let _ = group.member().handle(crate::group::Input::Paired { peer, handshake_hash }, now);
                }
            }
            GroupEvent::Ended(reason) => group.ended = Some(*reason),
            GroupEvent::Left(peer, _) => {
                group.outbox.remove(peer);
                group.speaking.remove(peer);
            }
            GroupEvent::HandshakeDisputed { epoch, dispute, seen_by } => {
                tracing::warn!(
                    epoch, a = %dispute.0, b = %dispute.1, %seen_by,
                    "two members' handshake reports differ: someone may be in the middle of that pair"
                );
            }
            GroupEvent::TopologyChanged { topology, forwarder } => {
                tracing::info!(?topology, ?forwarder, "group call: topology");
            }
            GroupEvent::Joined(_) | GroupEvent::KeyInstalled { .. } => {}
        }
        let Some(info) = self.current_group_info() else { return };
        let node_event = match event {
            GroupEvent::Joined(peer) => NodeEvent::GroupJoined { name: participant_name(&info, &peer), peer_id: peer, group: info },
            GroupEvent::Left(peer, reason) => {
                let name = self.db.contact_by_peer(&peer).ok().flatten().map(|c| c.name);
                let who = GroupPeerChange { peer_id: peer, name, reason: leave_reason(reason).into() };
                NodeEvent::GroupLeft { who, group: info }
            }
            GroupEvent::Emoji { .. } => NodeEvent::GroupEmoji { group: info },
            GroupEvent::Ended(_) => NodeEvent::GroupEnded { group: info },
            GroupEvent::HandshakeDisputed { dispute, seen_by, .. } => NodeEvent::GroupDisputed {
                group: info,
                peer_ids: [dispute.0.to_base58(), dispute.1.to_base58()],
                seen_by: seen_by.to_base58(),
            },
            _ => return,
        };
        self.emit(node_event);
    }

    /// We are out of the group call: the legs hang up, the media is taken back, and the call's
    /// last view stays for `hail status`.
    fn finish_group(&mut self) {
        let info = self.current_group_info();
        let Some(mut group) = self.phone.group.take() else { return };
        group.media.stop();
        let now = Instant::now();
        for call in self.phone.calls.values_mut().filter(|c| c.leg_of(group.id)) {
            let _ = call.session.user(UserAction::Hangup, now);
        }
        for held in std::mem::take(&mut self.phone.held_mesh) {
            let reply = InviteReply::Rejected { reason: "not in that group call".into() };
            self.discovery.reply_invite(held.channel, admission::reply_json(reply));
        }
        self.record_group(&group, info.as_ref());
        self.phone.last_group = info;
    }

    /// The group call's `hail history` record: who was in it with us, how long we were in, and
    /// whether we started it (`outgoing`) or were invited (`incoming`, `peer_id` the inviter).
    fn record_group(&mut self, group: &GroupCall, info: Option<&GroupInfo>) {
        let me = self.config.identity.peer_id();
        // The invitees still ringing when we left are named too (their call was missed).
        let invited = info.into_iter().flat_map(|i| &i.participants).filter(|p| !p.me).map(|p| p.peer_id);
        let mut others: Vec<PeerId> = group.met.iter().copied().chain(invited).filter(|p| *p != me).collect();
        others.sort_by_key(|p| p.to_bytes());
        others.dedup();
        let first = group.inviter.or_else(|| others.first().copied());
        let Some(peer_id) = first else { return };
        let contact = |p: &PeerId| self.db.contact_by_peer(p).ok().flatten().map(|c| c.name);
        let outcome = match (group.admitted_wall_ms, group.ended) {
            (Some(_), _) => CallOutcome::Completed,
            (None, Some(LeaveReason::NotAdmitted)) => CallOutcome::Failed { reason: "the group did not let us in".into() },
            (None, _) => CallOutcome::Missed,
        };
        let record = CallRecord {
            call_id: group.id.to_string(),
            peer_id,
            contact: contact(&peer_id),
            direction: if group.inviter.is_some() { CallDirection::Incoming } else { CallDirection::Outgoing },
            video: group.video,
            started_at_ms: group.started_wall_ms,
            answered_at_ms: group.admitted_wall_ms,
            ended_at_ms: unix_ms(SystemTime::now()),
            outcome,
            group: Some(others.iter().map(|p| GroupCallPeer { peer_id: *p, contact: contact(p) }).collect()),
        };
        if let Err(e) = self.db.record_call(&record) {
            tracing::warn!(error = %e, "cannot record the group call in the history");
        }
    }

    /// `hail mute`/`unmute` in a group call: what we send is muted or not, and every member is
    /// told on its leg (`media_state`, as in a 1:1 call), so its status shows it.
    pub(in crate::node) fn set_group_muted(&mut self, muted: bool) -> Result<GroupInfo, NodeError> {
        let Some(group) = self.phone.group.as_mut().filter(|g| g.ended.is_none()) else { return Err(NodeError::NoCall) };
        group.muted = muted;
        group.media.set_muted(muted);
        self.tell_legs_media();
        self.drive_call();
        self.current_group_info().ok_or(NodeError::NoCall)
    }

    /// Every member with a leg up is told whether we are muted and our video is on
    /// (`media_state`).
    fn tell_legs_media(&mut self) {
        let Some((id, muted, video)) = self.phone.group.as_ref().map(|g| (g.id, g.muted, g.video)) else { return };
        let now = Instant::now();
        for call in self.phone.calls.values_mut().filter(|c| c.leg_of(id) && c.session.state() == CallState::Active) {
            let _ = call.session.user(UserAction::Media { muted, video }, now);
        }
    }

    /// `hail video on|off` in a group call: our video, and every member is told on its leg.
    pub(in crate::node) fn set_group_video(&mut self, on: bool) -> Result<GroupInfo, NodeError> {
        let Some(group) = self.phone.group.as_mut().filter(|g| g.ended.is_none()) else {
            return Err(NodeError::NoCall);
        };
        group.video = on;
        group.media.set_video(on);
        self.tell_legs_media();
        self.drive_call();
        self.current_group_info().ok_or(NodeError::NoCall)
    }

    /// The group's media cannot decode `member`'s video: a keyframe request on its leg.
    fn request_keyframe(&mut self, member: PeerId) {
        let Some(id) = self.phone.group.as_ref().map(|g| g.id) else { return };
        let leg = self
            .phone
            .calls
            .values()
            .find(|c| c.leg_of(id) && c.session.peer() == member && c.session.state() == CallState::Active);
        if let Some(link) = leg.and_then(|c| c.link(&self.phone.links))
            && link.send_control(ControlMessage::KeyframeRequest.body()).is_err()
        {
            tracing::debug!(%member, "group leg congested; a keyframe request was dropped");
        }
    }

    /// A member asked on its leg for a keyframe of our video.
    pub(super) fn on_leg_keyframe_request(&mut self, call_id: CallId) {
        let Some(call) = self.phone.calls.get(&call_id) else { return };
        if let Some(group) = self.phone.group.as_ref().filter(|g| call.leg_of(g.id) && g.ended.is_none()) {
            group.media.keyframe_requested();
        }
    }

    /// A member said on its leg that it muted or unmuted, or turned its video on or off:
    /// `group.muted` and `group.video` if that changed.
    pub(super) fn on_leg_media(&mut self, call_id: CallId, muted: bool, video: bool) {
        let Some(call) = self.phone.calls.get_mut(&call_id) else { return };
        let muted_changed = call.remote_muted != muted;
        let video_changed = call.remote_video != video;
        call.remote_muted = muted;
        call.remote_video = video;
        let peer = call.session.peer();
        if !muted_changed && !video_changed {
            return;
        }
        let Some(group) = self.phone.group.as_ref().filter(|g| call.leg_of(g.id)) else { return };
        if video_changed {
            group.media.set_remote_video(peer, video);
        }
        let Some(info) = self.current_group_info() else { return };
        let name = participant_name(&info, &peer);
        if muted_changed {
            self.emit(NodeEvent::GroupMuted { group: info.clone(), peer_id: peer, name: name.clone(), muted });
        }
        if video_changed {
            self.emit(NodeEvent::GroupVideo { group: info, peer_id: peer, name, on: video });
        }
    }

    /// What the group's audio heard: who speaks (`group.speaking`) and who is dominant
    /// (`group.dominant`), each only when it changes (the media reports changes only, and the
    /// loop checks again).
    pub(super) fn on_group_audio(&mut self, call_id: CallId, event: GroupAudioEvent) {
        let Some(group) = self.phone.group.as_mut().filter(|g| g.id == call_id && g.ended.is_none()) else { return };
        let node_event: Box<dyn FnOnce(GroupInfo) -> NodeEvent> = match event {
            GroupAudioEvent::Speaking { member, speaking } => {
                let changed = if speaking { group.speaking.insert(member) } else { group.speaking.remove(&member) };
                if !changed {
                    return;
                }
                Box::new(move |info| {
                    let name = participant_name(&info, &member);
                    NodeEvent::GroupSpeaking { group: info, peer_id: member, name, speaking }
                })
            }
            GroupAudioEvent::Dominant { member } => {
                if group.dominant == member {
                    return;
                }
                group.dominant = member;
                Box::new(move |info| {
                    let name = member.and_then(|m| participant_name(&info, &m));
                    NodeEvent::GroupDominant { group: info, peer_id: member.map(|m| m.to_base58()), name }
                })
            }
            GroupAudioEvent::LeftMix { member } => {
                // Silent for a second: it speaks no more (the media says so too; this is the net).
                if !group.speaking.remove(&member) {
                    return;
                }
                Box::new(move |info| {
                    let name = participant_name(&info, &member);
                    NodeEvent::GroupSpeaking { group: info, peer_id: member, name, speaking: false }
                })
            }
            GroupAudioEvent::KeyframeWanted { member } => {
                self.request_keyframe(member);
                return;
            }
            GroupAudioEvent::LinkFailed { member, error } => {
                tracing::info!(%member, %error, "group media: a member's link failed");
                return;
            }
            GroupAudioEvent::Forged { member, delivered_by, counter, why, distrusted } => {
                tracing::warn!(
                    member = ?member.map(|m| m.to_base58()),
                    %delivered_by,
                    ?counter,
                    why = why.as_str(),
                    distrusted,
                    "group call: a forged frame (its sender's signed list contradicts it)"
                );
                Box::new(move |info| {
                    let name = member.and_then(|m| participant_name(&info, &m));
                    NodeEvent::GroupForged {
                        group: info,
                        peer_id: member.map(|m| m.to_base58()),
                        name,
                        delivered_by: delivered_by.to_base58(),
                        counter,
                        reason: why.as_str().into(),
                        distrusted,
                    }
                })
            }
        };
        let Some(info) = self.current_group_info() else { return };
        self.emit(node_event(info));
    }

    /// Members without a leg between them: the one with the lower sender index (the earlier
    /// member) dials. A newcomer so never dials: every member dials it once the commit names it,
    /// and the sequencer's commit reaches it on that leg even when its invitation did not name
    /// the sequencer (two members that joined in one commit: the lower index dials).
    fn complete_mesh(&mut self) {
        let Some(group) = &self.phone.group else { return };
        let Some(roster) = group.roster().filter(|_| group.ended.is_none()) else { return };
        let me = self.config.identity.peer_id();
        let Some(mine) = roster.index_of(&me) else { return };
        let id = group.id;
        let members: Vec<String> = roster.peers().map(|p| p.to_base58()).collect();
        let to_dial: Vec<PeerId> = roster
            .entries()
            .iter()
            .filter(|e| e.index.0 > mine.0)
            .map(|e| e.peer)
            .filter(|p| !self.phone.calls.values().any(|c| c.leg_of(id) && c.session.peer() == *p))
            .collect();
        for peer in to_dial {
            let contact = self.db.contact_by_peer(&peer).ok().flatten();
            let leg = GroupLeg { id, kind: GroupLegKind::Mesh, members: members.clone(), version: GROUP_VERSION };
            tracing::info!(%peer, "group call: completing the mesh");
            self.dial(peer, contact, false, MediaOverride::default(), Some(leg), None);
        }
    }

    /// A group leg is up and answered: the member learns its handshake hash, and what waited for
    /// the leg goes out.
    pub(super) fn on_leg_up(&mut self, call_id: CallId) {
        let Some(call) = self.phone.calls.get(&call_id) else { return };
        let (peer, hash) = (call.session.peer(), call.handshake_hash);
        let Some(group) = self.phone.group.as_mut().filter(|g| call.leg_of(g.id)) else { return };
        if let Some(handshake_hash) = hash {
            let _ = group.member().handle(crate::group::Input::Paired { peer, handshake_hash }, Instant::now());
        }
        let (muted, video) = (group.muted, group.video);
        let waiting = group.outbox.remove(&peer).unwrap_or_default();
        if let Some(link) = call.link(&self.phone.links) {
            for bytes in waiting {
                if link.send_control(ControlMessage::group(&bytes).body()).is_err() {
                    tracing::warn!(%peer, "group leg congested; a group message was dropped");
                }
            }
        }
        if muted || video {
            // A member who arrives after `hail mute` or with our video on learns it (the others
            // were told then).
            if let Some(call) = self.phone.calls.get_mut(&call_id) {
                let _ = call.session.user(UserAction::Media { muted, video }, Instant::now());
            }
        }
    }

    /// A group leg ended. An invitation that ended before its invitee joined (declined, not
    /// answered, unreachable, a hail without group calls) is told to the user.
    pub(super) fn on_leg_ended(&mut self, call: &LiveCall) {
        let peer = call.session.peer();
        let Some(group) = self.phone.group.as_mut().filter(|g| call.leg_of(g.id)) else { return };
        group.outbox.remove(&peer);
        group.media.detach(&peer);
        let invitation = call.group.as_ref().is_some_and(|g| g.kind == GroupLegKind::Join) && call.session.role() == Role::Caller;
        // A member's leg ends when the member leaves (the commit may come first, so the roster
        // no longer names it): only a leg whose peer never became a member is a failed invitation.
        let member = call.joined_group || group.roster().is_some_and(|r| r.contains(&peer));
        if !invitation || member || group.ended.is_some() {
            return;
        }
        let reason = call.session.end_reason().map(EndReason::describe).unwrap_or_default();
        tracing::info!(%peer, %reason, "group call: an invitation ended before its invitee joined");
        let Some(info) = self.current_group_info() else { return };
        let name = call.contact.as_ref().map(|c| c.name.clone());
        let who = GroupPeerChange { peer_id: peer, name, reason };
        self.emit(NodeEvent::GroupInviteFailed { group: info, who });
    }

    /// A group control message arrived on leg `call_id`.
    pub(super) fn on_group_frame(&mut self, call_id: CallId, message: &ControlMessage) {
        let Some(call) = self.phone.calls.get(&call_id) else {
            tracing::debug!(%call_id, "a group message on a call that is no longer here");
            return;
        };
        tracing::debug!(peer = %call.session.peer(), "group message in");
        let peer = call.session.peer();
        let Some(leg) = call.group.clone() else {
            tracing::info!(%peer, "ignored a group message on a 1:1 call");
            return;
        };
        let Some(bytes) = message.group_bytes() else {
            tracing::info!(%peer, "ignored a group message that is not hex");
            return;
        };
        let now = Instant::now();
        match &mut self.phone.group {
            Some(group) if group.id == leg.id => {
                if let Err(e) = group.member().handle(crate::group::Input::Control { from: peer, bytes }, now) {
                    tracing::info!(%peer, error = %e, "refused a group message");
                }
            }
            Some(_) => tracing::info!(%peer, "ignored a message for another group call"),
            None => {
                let answered = call.session.state() == CallState::Active && call.session.role() == Role::Callee;
                if leg.kind != GroupLegKind::Join || !answered {
                    tracing::info!(%peer, "ignored a group message before joining");
                    return;
                }
                let hash = call.handshake_hash;
                // The answered invitation's audio and video choices (`hail answer --audio-in …`),
                // mute, and video (on when the invitation asked for it, as a 1:1 call's answer).
                let media = GroupMediaConfig {
                    audio: call.audio_config.clone(),
                    muted: call.muted,
                    video: call.video_config.clone(),
                    video_on: call.session.video(),
                    view: Default::default(),
                };
                let (muted, video) = (media.muted, media.video_on);
                let invite = match GroupControl::decode(&bytes) {
                    Ok(control) if control.call_id == leg.id.0 && matches!(control.body, ControlBody::Invite { .. }) => {
                        control
                    }
                    Ok(_) => return tracing::info!(%peer, "ignored a group message before the invitation"),
                    Err(e) => return tracing::info!(%peer, error = %e, "refused a malformed group invitation"),
                };
                let known = match &invite.body {
                    ControlBody::Invite { members, .. } => members.iter().map(|m| m.peer).collect(),
                    _ => Vec::new(),
                };
                let me = self.config.identity.peer_id();
                let config = GroupConfig { topology: self.phone.settings.group_topology, ..GroupConfig::default() };
                match GroupMember::accept_invite(me, peer, &invite, config, StdRng::from_entropy(), now) {
                    Ok(mut member) => {
                        if let Some(handshake_hash) = hash {
                            let _ = member.handle(crate::group::Input::Paired { peer, handshake_hash }, now);
                        }
                        tracing::info!(inviter = %peer, "joining a group call");
                        self.begin_group(member, known, media);
                        if let Some(group) = self.phone.group.as_mut() {
                            group.inviter = Some(peer);
                        }
                        if muted || video {
                            // Muted while it rang, or with video: the inviter's leg is up already.
                            self.tell_legs_media();
                        }
                        self.recheck_held_mesh(now);
                    }
                    Err(e) => tracing::info!(%peer, error = %e, "refused a group invitation"),
                }
            }
        }
        self.drive_call();
    }

    fn mesh_admission(&self, peer: &PeerId, leg: &GroupLeg) -> MeshAdmission {
        match &self.phone.group {
            Some(group) if group.id == leg.id && group.ended.is_none() => group.mesh_admission(peer),
            Some(_) => MeshAdmission::Refuse,
            // Answered the group's invitation, its group invite not here yet.
            None if self.phone.calls.values().any(|c| c.leg_of(leg.id) && c.session.role() == Role::Callee) => {
                MeshAdmission::Hold
            }
            None => MeshAdmission::Refuse,
        }
    }

    /// A mesh leg's invite: accepted without ringing from a member, held a while for one a commit
    /// may name, refused from anyone else.
    pub(super) fn on_mesh_invite(
        &mut self,
        peer: PeerId,
        contact: Option<Contact>,
        invite: Invite,
        channel: ResponseChannel<serde_json::Value>,
    ) {
        let Some(leg) = invite.group.clone() else { return };
        let refuse = InviteReply::Rejected { reason: "not a member of that group call".into() };
        if contact.as_ref().is_some_and(|c| c.blocked) {
            self.discovery.reply_invite(channel, admission::reply_json(refuse));
            return;
        }
        let duplicate = self.phone.calls.values().any(|c| c.leg_of(leg.id) && c.session.peer() == peer);
        match self.mesh_admission(&peer, &leg) {
            _ if duplicate => self.discovery.reply_invite(channel, admission::reply_json(InviteReply::Busy)),
            MeshAdmission::Accept => self.take_call(peer, contact, invite, channel, true),
            MeshAdmission::Probation => self.take_on_probation(peer, contact, invite, channel),
            MeshAdmission::Hold if self.phone.held_mesh.len() < MAX_HELD_MESH => {
                tracing::info!(%peer, "holding a mesh leg until a commit names its caller");
                let until = Instant::now() + MESH_HOLD;
                self.phone.held_mesh.push(HeldMesh { peer, contact, invite, channel, until });
            }
            MeshAdmission::Hold | MeshAdmission::Refuse => {
                tracing::info!(%peer, "refused a mesh leg from a peer that is not a member");
                self.discovery.reply_invite(channel, admission::reply_json(refuse));
            }
        }
    }

    /// Held mesh invites whose caller a commit now names are accepted; those past their bound,
    /// refused.
    pub(super) fn recheck_held_mesh(&mut self, now: Instant) {
        let held = std::mem::take(&mut self.phone.held_mesh);
        for h in held {
            let Some(leg) = h.invite.group.clone() else { continue };
            match self.mesh_admission(&h.peer, &leg) {
                MeshAdmission::Accept => self.take_call(h.peer, h.contact, h.invite, h.channel, true),
                MeshAdmission::Probation => self.take_on_probation(h.peer, h.contact, h.invite, h.channel),
                MeshAdmission::Hold if now < h.until => self.phone.held_mesh.push(h),
                _ => {
                    tracing::info!(peer = %h.peer, "refused a held mesh leg: no commit named its caller");
                    let reply = InviteReply::Rejected { reason: "not a member of that group call".into() };
                    self.discovery.reply_invite(h.channel, admission::reply_json(reply));
                }
            }
        }
    }

    /// Takes a mesh leg on probation: hung up unless a commit names its caller within
    /// [`MESH_HOLD`].
    fn take_on_probation(
        &mut self,
        peer: PeerId,
        contact: Option<Contact>,
        invite: Invite,
        channel: ResponseChannel<serde_json::Value>,
    ) {
        tracing::info!(%peer, "took a mesh leg on probation: a commit must name its caller");
        let call_id = invite.call_id;
        self.take_call(peer, contact, invite, channel, true);
        if let Some(call) = self.phone.calls.get_mut(&call_id) {
            call.probation = Some(Instant::now() + MESH_HOLD);
        }
    }

    /// Legs on probation whose caller a commit now names are kept; those past their bound, hung up.
    fn check_probation(&mut self, now: Instant) {
        let roster: Vec<PeerId> =
            self.phone.group.as_ref().and_then(|g| g.roster()).map(|r| r.peers().collect()).unwrap_or_default();
        for call in self.phone.calls.values_mut() {
            let Some(until) = call.probation else { continue };
            if roster.contains(&call.session.peer()) {
                call.probation = None;
            } else if now >= until {
                tracing::info!(peer = %call.session.peer(), "hung up a mesh leg: no commit named its caller");
                call.probation = None;
                let _ = call.session.user(UserAction::Hangup, now);
            }
        }
    }

    /// Group timers: the member's, and held mesh invites.
    pub(super) fn on_group_timeout(&mut self, now: Instant) {
        if let Some(group) = self.phone.group.as_mut().filter(|g| g.member().poll_timeout().is_some_and(|t| t <= now)) {
            group.member().handle_timeout(now);
        }
        self.check_probation(now);
        if self.phone.held_mesh.iter().any(|h| h.until <= now) {
            self.recheck_held_mesh(now);
        }
    }

    /// Hands each member's leg media and sender index to the media plane once both exist; takes
    /// back those of members gone or whose leg is down.
    fn sync_group_media(&mut self) {
        let Some(group) = self.phone.group.as_mut() else { return };
        let id = group.id;
        let mut want: BTreeMap<PeerId, (SenderIndex, Arc<dyn MediaLink>, bool)> = BTreeMap::new();
        if let Some(roster) = group.roster() {
            for entry in roster.entries() {
                let leg = self.phone.calls.values().find(|c| {
                    c.leg_of(id) && c.session.peer() == entry.peer && c.session.state() == CallState::Active
                });
                if let Some(leg) = leg
                    && let Some(media) = leg.link(&self.phone.links).and_then(PeerLink::media)
                {
                    want.insert(entry.peer, (entry.index, media, leg.remote_video));
                }
            }
        }
        let gone: Vec<PeerId> = group
            .media
            .attached
            .iter()
            .filter(|(p, i)| want.get(*p).is_none_or(|(j, _, _)| j != *i))
            .map(|(p, _)| *p)
            .collect();
        for peer in gone {
            group.media.detach(&peer);
        }
        // Our uplink for the topology: as set, or what the slowest of our legs' congestion
        // controllers allows now (window over RTT).
        let measured = want
            .values()
            .map(|(_, link, _)| link.path())
            .filter(|p| !p.rtt.is_zero())
            .map(|p| (p.cwnd.saturating_mul(8) as f64 / p.rtt.as_secs_f64() / 1000.0).min(f64::from(u32::MAX)) as u32)
            .min();
        let now = Instant::now();
        let route = {
            let mut member = group.member();
            member.set_uplink(self.phone.settings.group_uplink_kbps.or(measured));
            match member.forwarder(now) {
                Some(f) if f == member.me() => Route::Forwarder,
                Some(f) => Route::Via(f),
                None => Route::Mesh,
            }
        };
        for (peer, (index, media, video)) in want {
            if group.media.attached(&peer).is_none() {
                group.media.attach(peer, index, media, video);
            }
        }
        group.media.set_route(route);
    }
}
