//! The daemon actor.
//!
//! [`Node`] is a cheap, cloneable handle: each method sends one request over a bounded channel and
//! awaits its reply on a oneshot. [`NodeLoop`] owns everything with state (identity, database, and in
//! later layers the swarm, the QUIC endpoint and live calls) and handles requests one at a time, so no
//! state is shared and nothing needs a lock. [`Node::new`] returns both; the caller decides where the
//! loop runs (`tokio::spawn(node_loop.run())`); `Node::new` spawns nothing (what the running loop
//! spawns, and when it ends: docs/architecture.md, "The run-loop contract").

mod calls;
mod daemon;
mod event_loop;

use std::path::PathBuf;

use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};

pub use calls::{
    CallInfo, CallPath, CallSettings, GroupInfo, GroupRing, MediaOverride, ParticipantInfo, SasEmoji, UnknownCallers,
    UnknownCallersError,
};
pub use daemon::{Daemon, DaemonError, DaemonOptions, DaemonSettings, run_daemon};
pub use event_loop::NodeLoop;

use crate::discovery::{BootstrapPeer, ConfigError, Discovery, FindError, FoundPeer, NetworkStatus, VisiblePeer};
use crate::identity::{Card, CardError, Identity, PeerIdError, parse_peer_id};
use crate::name::{Name, NameError};
use crate::media::video::source::VideoSourceSpec;
use crate::store::{Contact, Database, Store, StoreError};

/// How many requests may wait for the loop before senders wait too.
const REQUEST_QUEUE: usize = 64;
/// How many events a slow subscriber may fall behind before it is told it missed some.
const EVENT_QUEUE: usize = 256;

/// A handle to a running node. Clone it freely.
#[derive(Debug, Clone)]
pub struct Node {
    requests: mpsc::Sender<Request>,
    events: broadcast::Sender<NodeEvent>,
    /// The daemon's video source, checked (with a call's own) before a call is set up.
    video_input: VideoSourceSpec,
    view: crate::media::view::ViewFeed,
}

/// What the node tells its subscribers. Also the `event` lines of the control protocol.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event")]
pub enum NodeEvent {
    /// A contact was added.
    #[serde(rename = "contact.added")]
    ContactAdded {
        /// The new contact.
        contact: Contact,
    },
    /// A contact changed (blocked, unblocked, verified, seen).
    #[serde(rename = "contact.changed")]
    ContactChanged {
        /// The contact as it is now.
        contact: Contact,
    },
    /// A contact was renamed.
    #[serde(rename = "contact.renamed")]
    ContactRenamed {
        /// The name it had.
        old_name: Name,
        /// The contact as it is now.
        contact: Contact,
    },
    /// A contact was removed.
    #[serde(rename = "contact.removed")]
    ContactRemoved {
        /// The contact as it was.
        contact: Contact,
    },
    /// A call rings here.
    #[serde(rename = "call.incoming")]
    CallIncoming {
        /// The call.
        call: CallInfo,
    },
    /// A call changed state.
    #[serde(rename = "call.state")]
    CallState {
        /// The call.
        call: CallInfo,
    },
    /// The four emoji are ready to compare.
    #[serde(rename = "call.sas")]
    CallSas {
        /// The call, with its `sas`.
        call: CallInfo,
    },
    /// The peer muted or unmuted, or switched video.
    #[serde(rename = "call.media")]
    CallMedia {
        /// The call.
        call: CallInfo,
    },
    /// A call ended.
    #[serde(rename = "call.ended")]
    CallEnded {
        /// The call, with its `end_reason`.
        call: CallInfo,
    },
    /// Someone joined our group call (a commit let them in).
    #[serde(rename = "group.joined")]
    GroupJoined {
        /// The group call as it is now.
        group: GroupInfo,
        /// Who joined.
        #[serde(with = "crate::store::contact::peer_id_text")]
        peer_id: PeerId,
        /// Our contact name for them.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<Name>,
    },
    /// Someone left our group call, or was removed.
    #[serde(rename = "group.left")]
    GroupLeft {
        /// The group call as it is now.
        group: GroupInfo,
        /// Who left; `reason`: `left` (it said so), `removed` (silent too long, or gone without a
        /// word).
        #[serde(flatten)]
        who: GroupPeerChange,
    },
    /// The group's four emoji for the current epoch are ready (the same for every member).
    #[serde(rename = "group.emoji")]
    GroupEmoji {
        /// The group call, with its `emoji`.
        group: GroupInfo,
    },
    /// Two members' reports of their pairwise handshake differ: someone may be in the middle of
    /// that pair (protocols/group-sas-v1.md). The round goes on; the emoji that follow differ
    /// between members, so reading them aloud shows it too.
    #[serde(rename = "group.disputed")]
    GroupDisputed {
        /// The group call as it is now.
        group: GroupInfo,
        /// The pair, in member order (PeerIds as text).
        peer_ids: [String; 2],
        /// Who saw the two reports differ: this node, or the member whose emoji reveal said so.
        seen_by: String,
    },
    /// A frame (or a frame authenticator) under a member's sender index is a forgery: that
    /// member's signed list of its frames contradicts it (protocols/group-media-v1.md, "Frame
    /// authenticators"). It may already have been played: this is detection. When the member
    /// that delivered it is our forwarder, we stop trusting it (`distrusted`): our frames go to
    /// every member directly and we take none of its relaying.
    #[serde(rename = "group.forged")]
    GroupForged {
        /// The group call as it is now (its audio's `distrusted_forwarder`).
        group: GroupInfo,
        /// Whose sender index the forgery claimed (a PeerId), or null: no member has it any more.
        peer_id: Option<String>,
        /// Our contact name for them.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<Name>,
        /// The member whose link delivered it (a PeerId): the forwarder, as a rule.
        delivered_by: String,
        /// The forged frame's counter; null for an authenticator whose signature failed.
        counter: Option<u64>,
        /// `digest` (the list has another digest for it), `unlisted` (the list says no frame had
        /// its counter) or `authenticator` (a list whose signature or encoding failed).
        reason: String,
        /// We stopped trusting the forwarder now.
        distrusted: bool,
    },
    /// An invitation into our group call ended before its invitee joined.
    #[serde(rename = "group.invite_failed")]
    GroupInviteFailed {
        /// The group call as it is now.
        group: GroupInfo,
        /// Who was invited; `reason`, for people: "the call was declined", "no answer", "bob's
        /// hail does not take group calls …".
        #[serde(flatten)]
        who: GroupPeerChange,
    },
    /// A member started or stopped speaking (only on a change).
    #[serde(rename = "group.speaking")]
    GroupSpeaking {
        /// The group call as it is now.
        group: GroupInfo,
        /// Who.
        #[serde(with = "crate::store::contact::peer_id_text")]
        peer_id: PeerId,
        /// Our contact name for them.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<Name>,
        /// Whether they speak now.
        speaking: bool,
    },
    /// The dominant speaker changed (only on a change).
    #[serde(rename = "group.dominant")]
    GroupDominant {
        /// The group call as it is now (its `dominant`).
        group: GroupInfo,
        /// Who it is now (a PeerId), or null: nobody.
        peer_id: Option<String>,
        /// Our contact name for them.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<Name>,
    },
    /// A member muted or unmuted its microphone (it said so on its leg to us).
    #[serde(rename = "group.muted")]
    GroupMuted {
        /// The group call as it is now.
        group: GroupInfo,
        /// Who.
        #[serde(with = "crate::store::contact::peer_id_text")]
        peer_id: PeerId,
        /// Our contact name for them.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<Name>,
        /// Whether it is muted now.
        muted: bool,
    },
    /// A member turned its video on or off (it said so on its leg to us).
    #[serde(rename = "group.video")]
    GroupVideo {
        /// The group call as it is now.
        group: GroupInfo,
        /// Who.
        #[serde(with = "crate::store::contact::peer_id_text")]
        peer_id: PeerId,
        /// Our contact name for them.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<Name>,
        /// Whether its video is on now.
        on: bool,
    },
    /// We are out of the group call (we left, or were removed or not admitted).
    #[serde(rename = "group.ended")]
    GroupEnded {
        /// The group call, with its `end_reason`.
        group: GroupInfo,
    },
    /// The node's display name changed.
    #[serde(rename = "identity.changed")]
    IdentityChanged {
        /// The node's identity as it is now.
        identity: IdentityInfo,
    },
}

/// Who a `group.left` or `group.invite_failed` event is about, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupPeerChange {
    /// The peer.
    #[serde(with = "crate::store::contact::peer_id_text")]
    pub peer_id: PeerId,
    /// Our contact name for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
    /// Why.
    pub reason: String,
}

/// Who this node is: the answer to `hail id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityInfo {
    /// The node's PeerId.
    #[serde(with = "crate::store::contact::peer_id_text")]
    pub peer_id: PeerId,
    /// The name it gives itself in its card.
    pub name: Name,
    /// Its contact card.
    pub card: String,
    /// Addresses it can be reached at (empty until networking starts).
    pub addresses: Vec<String>,
}

/// The daemon's state: the answer to `hail status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// The node's PeerId.
    #[serde(with = "crate::store::contact::peer_id_text")]
    pub peer_id: PeerId,
    /// The daemon's version.
    pub version: String,
    /// The node's home folder.
    pub home: PathBuf,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// How many contacts are in the book.
    pub contacts: usize,
    /// How many of them are blocked.
    pub blocked: usize,
    /// The libp2p side: addresses, peers, DHT.
    pub network: NetworkStatus,
    /// The live call, or the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<CallInfo>,
    /// The group call we are in, or the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupInfo>,
    /// The UDP address of the call endpoint (QUIC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_address: Option<String>,
    /// The call endpoint's address as a public reflector saw it (behind NAT): a candidate peers
    /// can punch towards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_reflexive: Option<String>,
}

/// A contact's safety number: the answer to `hail contacts verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyNumber {
    /// The contact.
    pub name: Name,
    /// Their PeerId.
    #[serde(with = "crate::store::contact::peer_id_text")]
    pub peer_id: PeerId,
    /// 60 digits in groups of five, the same on both sides.
    pub safety_number: String,
    /// The contact's verification state (after `confirm`, if given).
    pub verification: crate::store::Verification,
}

/// A successful `find`: who, where, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindOutcome {
    /// The contact's name, if the peer is a contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Name>,
    /// The lookup's result.
    #[serde(flatten)]
    pub found: FoundPeer,
}

/// Why a node request failed. Each maps to a stable control-protocol error code.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A name broke the naming rules.
    #[error("invalid name: {0}")]
    InvalidName(#[from] NameError),
    /// The contact text was neither a valid card nor a valid PeerId.
    #[error("{0}")]
    InvalidContact(String),
    /// You tried to add yourself.
    #[error("that is this node's own PeerId; you cannot add yourself as a contact")]
    SelfContact,
    /// The database refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `find` was given neither a contact name nor a PeerId.
    #[error("'{0}' is neither a contact nor a PeerId (see `hail contacts list`)")]
    UnknownPeer(String),
    /// A lookup failed.
    #[error("{who} {error}")]
    Find {
        /// The contact name or PeerId that was looked up.
        who: String,
        /// Why it failed.
        error: FindError,
    },
    /// A network address given at run time is invalid.
    #[error(transparent)]
    InvalidAddress(#[from] ConfigError),
    /// A call is already in progress.
    #[error("already in a call: hang it up first (hail hangup)")]
    InCall,
    /// There is no call to act on.
    #[error("there is no call")]
    NoCall,
    /// The call cannot do that now.
    #[error("{0}")]
    CallAction(&'static str),
    /// `sas confirm` was given emoji that are not the call's.
    #[error("{0}")]
    SasMismatch(String),
    /// `sas confirm` named a call that is not the current one.
    #[error("{0}")]
    CallChanged(String),
    /// The call ended before it rang.
    #[error("{}", .0.describe())]
    CallEnded(crate::call::EndReason),
    /// The call's video source cannot be had (no camera, or not the one named).
    #[error("{0}")]
    VideoInput(String),
    /// The node is shutting down.
    #[error("the daemon is shutting down")]
    Stopped,
}

/// What `contacts add` was given: a card, or a bare PeerId.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactRef {
    /// A contact card (checksummed, with a display name and addresses).
    Card(Card),
    /// A bare PeerId (no checksum; validated as far as possible).
    PeerId(PeerId),
}

impl ContactRef {
    /// Reads a card (`hail1…`) or a PeerId (`12D3KooW…`).
    pub fn parse(text: &str) -> Result<Self, NodeError> {
        let trimmed = text.trim();
        if trimmed.to_ascii_lowercase().starts_with(crate::identity::card::PREFIX) {
            return Card::parse(trimmed)
                .map(ContactRef::Card)
                .map_err(|e: CardError| NodeError::InvalidContact(format!("invalid contact card: {e}")));
        }
        parse_peer_id(trimmed).map(ContactRef::PeerId).map_err(|e: PeerIdError| {
            NodeError::InvalidContact(format!("expected a contact card (hail1…) or a PeerId (12D3KooW…): {e}"))
        })
    }
}

/// What a call command acted on: the 1:1 call (or a group invitation ringing here), or the
/// group call (`hangup`: we left it, as it has no host; `mute`: our microphone in it).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CallOrGroup {
    /// The 1:1 call (or a group invitation ringing here).
    Call(Box<CallInfo>),
    /// The group call.
    Group(Box<GroupInfo>),
}

/// What `hangup` ended: the call, or (in a group call, which has no host) our part in it.
pub type Hangup = CallOrGroup;

type Reply<T> = oneshot::Sender<Result<T, NodeError>>;

/// One request to the loop, with the channel its answer goes back on.
#[derive(Debug)]
enum Request {
    Identity { set_name: Option<Name>, reply: Reply<IdentityInfo> },
    Status { reply: Reply<StatusInfo> },
    ListContacts { reply: Reply<Vec<Contact>> },
    AddContact { name: Name, target: ContactRef, reply: Reply<Contact> },
    RenameContact { name: Name, new_name: Name, reply: Reply<Contact> },
    SetBlocked { name: Name, blocked: bool, reply: Reply<Contact> },
    RemoveContact { name: Name, reply: Reply<Contact> },
    Peers { reply: Reply<Vec<VisiblePeer>> },
    Find { who: String, reply: Reply<FindOutcome> },
    Bootstrap { peers: Vec<BootstrapPeer>, reply: Reply<NetworkStatus> },
    Call { who: String, video: bool, audio: MediaOverride, reply: Reply<CallInfo> },
    Answer { audio: MediaOverride, reply: Reply<CallInfo> },
    Mute { muted: bool, reply: Reply<CallOrGroup> },
    Video { on: bool, reply: Reply<CallOrGroup> },
    CallAction { action: crate::call::UserAction, reply: Reply<CallInfo> },
    GroupCall { who: Vec<String>, video: bool, audio: MediaOverride, reply: Reply<GroupInfo> },
    GroupAdd { who: String, reply: Reply<GroupInfo> },
    GroupLeave { reply: Reply<GroupInfo> },
    Hangup { reply: Reply<Hangup> },
    SasConfirm { call_id: String, emoji: String, reply: Reply<Contact> },
    Verify { name: Name, confirm: bool, reply: Reply<SafetyNumber> },
    History { limit: usize, reply: Reply<Vec<crate::store::CallRecord>> },
    Shutdown { reply: oneshot::Sender<()> },
}

/// What a node is started with.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's key.
    pub identity: Identity,
    /// Its home folder (reported by `status`).
    pub home: PathBuf,
    /// How calls behave.
    pub calls: CallSettings,
}

impl Node {
    /// A node over `db` and `discovery`: the handle, and the loop that must be run for the handle
    /// to answer.
    pub fn new<S: Store>(
        config: NodeConfig,
        db: Database<S>,
        discovery: Discovery,
        endpoint: quinn::Endpoint,
    ) -> (Node, NodeLoop<S>) {
        let (requests, rx) = mpsc::channel(REQUEST_QUEUE);
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        let view = crate::media::view::ViewFeed::default();
        let node =
            Node { requests, events: events.clone(), video_input: config.calls.video.input.clone(), view: view.clone() };
        (node, NodeLoop::new(config, db, discovery, endpoint, rx, events, view))
    }

    /// A call's video source (its own, or the daemon's) must be there before the call is set
    /// up: a camera that does not exist fails the call now, with the reason, rather than leaving
    /// it without video. Checked off the loop (opening a camera to query it can take a moment).
    async fn check_video_input(&self, media: &MediaOverride) -> Result<(), NodeError> {
        let spec = media.video_input.clone().unwrap_or_else(|| self.video_input.clone());
        if !matches!(spec, VideoSourceSpec::Camera(_)) {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || crate::media::video::source::check_source(&spec))
            .await
            .map_err(|_| NodeError::Stopped)?
            .map_err(|e| NodeError::VideoInput(e.to_string()))
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(make(tx)).await.map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    /// Who this node is. With `set_name`, first changes the display name its card carries.
    pub async fn identity(&self, set_name: Option<&str>) -> Result<IdentityInfo, NodeError> {
        let set_name = set_name.map(Name::parse).transpose()?;
        self.ask(|reply| Request::Identity { set_name, reply }).await
    }

    /// The daemon's state.
    pub async fn status(&self) -> Result<StatusInfo, NodeError> {
        self.ask(|reply| Request::Status { reply }).await
    }

    /// Every contact, by name.
    pub async fn contacts(&self) -> Result<Vec<Contact>, NodeError> {
        self.ask(|reply| Request::ListContacts { reply }).await
    }

    /// Adds `contact` (a card or a PeerId) as `name`.
    pub async fn add_contact(&self, name: &str, contact: &str) -> Result<Contact, NodeError> {
        let name = Name::parse(name)?;
        let target = ContactRef::parse(contact)?;
        self.ask(|reply| Request::AddContact { name, target, reply }).await
    }

    /// Renames a contact.
    pub async fn rename_contact(&self, name: &str, new_name: &str) -> Result<Contact, NodeError> {
        let (name, new_name) = (Name::parse(name)?, Name::parse(new_name)?);
        self.ask(|reply| Request::RenameContact { name, new_name, reply }).await
    }

    /// Blocks or unblocks a contact.
    pub async fn set_blocked(&self, name: &str, blocked: bool) -> Result<Contact, NodeError> {
        let name = Name::parse(name)?;
        self.ask(|reply| Request::SetBlocked { name, blocked, reply }).await
    }

    /// Removes a contact.
    pub async fn remove_contact(&self, name: &str) -> Result<Contact, NodeError> {
        let name = Name::parse(name)?;
        self.ask(|reply| Request::RemoveContact { name, reply }).await
    }

    /// Who is visible on the LAN and in the DHT.
    pub async fn peers(&self) -> Result<Vec<VisiblePeer>, NodeError> {
        self.ask(|reply| Request::Peers { reply }).await
    }

    /// Finds a contact (by name) or any peer (by PeerId): mDNS and known addresses first, then the
    /// DHT; answers within [`FIND_TIMEOUT`](crate::discovery::network::FIND_TIMEOUT).
    pub async fn find(&self, who: &str) -> Result<FindOutcome, NodeError> {
        let who = who.to_owned();
        self.ask(|reply| Request::Find { who, reply }).await
    }

    /// Adds bootstrap peers at run time (`…/p2p/<PeerId>` addresses, or `ipfs`).
    pub async fn bootstrap(&self, addresses: &[String]) -> Result<NetworkStatus, NodeError> {
        let mut peers = Vec::new();
        for a in addresses {
            if a.trim() == "ipfs" {
                peers.extend(
                    crate::discovery::config::IPFS_BOOTSTRAP.iter().filter_map(|p| BootstrapPeer::parse(p).ok()),
                );
            } else {
                peers.push(BootstrapPeer::parse(a)?);
            }
        }
        self.ask(|reply| Request::Bootstrap { peers, reply }).await
    }

    /// Calls a contact (by name) or a PeerId. Answers once it rings (or with why it could not).
    pub async fn call(&self, who: &str, video: bool) -> Result<CallInfo, NodeError> {
        self.call_with(who, video, MediaOverride::default()).await
    }

    /// Calls with this call's own audio source and sink.
    pub async fn call_with(&self, who: &str, video: bool, audio: MediaOverride) -> Result<CallInfo, NodeError> {
        if video {
            // A voice call needs no camera, whatever the daemon's default source is.
            self.check_video_input(&audio).await?;
        }
        let who = who.to_owned();
        self.ask(|reply| Request::Call { who, video, audio, reply }).await
    }

    /// Answers the ringing call.
    pub async fn answer(&self) -> Result<CallInfo, NodeError> {
        self.answer_with(MediaOverride::default()).await
    }

    /// Answers with this call's own audio source and sink.
    pub async fn answer_with(&self, audio: MediaOverride) -> Result<CallInfo, NodeError> {
        // Only a video call sends our video back: answering a voice call needs no camera.
        let video_call = self.status().await?.call.is_some_and(|c| c.video || c.remote_video);
        if video_call {
            self.check_video_input(&audio).await?;
        }
        self.ask(|reply| Request::Answer { audio, reply }).await
    }

    /// Turns our video on or off; the peer (in a group call, every member) is told.
    pub async fn set_video(&self, on: bool) -> Result<CallOrGroup, NodeError> {
        self.ask(|reply| Request::Video { on, reply }).await
    }

    /// Mutes or unmutes the microphone; the peer (in a group call, every member) is told.
    pub async fn set_muted(&self, muted: bool) -> Result<CallOrGroup, NodeError> {
        self.ask(|reply| Request::Mute { muted, reply }).await
    }

    /// Declines the ringing call.
    pub async fn reject(&self) -> Result<CallInfo, NodeError> {
        self.call_action(crate::call::UserAction::Reject).await
    }

    /// Hangs up (or cancels) the call.
    pub async fn hangup(&self) -> Result<CallInfo, NodeError> {
        self.call_action(crate::call::UserAction::Hangup).await
    }

    /// Hangs up the call; in a group call, leaves it (the call goes on for the others).
    pub async fn hangup_or_leave(&self) -> Result<Hangup, NodeError> {
        self.ask(|reply| Request::Hangup { reply }).await
    }

    /// Starts a group call with these contacts (names or PeerIds): we are its founder, each is
    /// invited (it rings there). Answers at once with the group as it starts.
    pub async fn group_call(&self, who: &[String]) -> Result<GroupInfo, NodeError> {
        self.group_call_with(who, MediaOverride::default()).await
    }

    /// Starts a group call with this call's own audio source and sink (the sink gets the mix
    /// of the others).
    pub async fn group_call_with(&self, who: &[String], audio: MediaOverride) -> Result<GroupInfo, NodeError> {
        self.group_call_with_video(who, false, audio).await
    }

    /// Starts a group call with our video on or off (each invitee joins with its own on when
    /// ours is) and this call's own sources and sinks (`video_output`: a directory, a Y4M per
    /// participant).
    pub async fn group_call_with_video(
        &self,
        who: &[String],
        video: bool,
        audio: MediaOverride,
    ) -> Result<GroupInfo, NodeError> {
        if video {
            self.check_video_input(&audio).await?;
        }
        let who = who.to_vec();
        self.ask(|reply| Request::GroupCall { who, video, audio, reply }).await
    }

    /// Invites another contact into our group call.
    pub async fn group_add(&self, who: &str) -> Result<GroupInfo, NodeError> {
        let who = who.to_owned();
        self.ask(|reply| Request::GroupAdd { who, reply }).await
    }

    /// Leaves our group call; it goes on for the others.
    pub async fn group_leave(&self) -> Result<GroupInfo, NodeError> {
        self.ask(|reply| Request::GroupLeave { reply }).await
    }

    async fn call_action(&self, action: crate::call::UserAction) -> Result<CallInfo, NodeError> {
        self.ask(|reply| Request::CallAction { action, reply }).await
    }

    /// Records that the four emoji matched: the contact becomes SAS-verified.
    pub async fn confirm_sas(&self, call_id: &str, emoji: &str) -> Result<Contact, NodeError> {
        let (call_id, emoji) = (call_id.to_owned(), emoji.to_owned());
        self.ask(|reply| Request::SasConfirm { call_id, emoji, reply }).await
    }

    /// A contact's safety number; with `confirm`, marks the contact verified.
    pub async fn verify_contact(&self, name: &str, confirm: bool) -> Result<SafetyNumber, NodeError> {
        let name = Name::parse(name)?;
        self.ask(|reply| Request::Verify { name, confirm, reply }).await
    }

    /// The last `limit` calls, newest first.
    pub async fn history(&self, limit: usize) -> Result<Vec<crate::store::CallRecord>, NodeError> {
        self.ask(|reply| Request::History { limit, reply }).await
    }

    /// A viewer of the live call's pictures (the peer's as shown, ours as captured), from now on;
    /// with `group`, a group call's members' pictures too.
    pub fn view(&self, group: bool) -> crate::media::view::Viewer {
        if group { self.view.watch_group() } else { self.view.watch() }
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// Asks the loop to finish: it completes the request in hand, flushes, and returns.
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self.requests.send(Request::Shutdown { reply }).await.is_ok() {
            let _ = done.await;
        }
    }
}

pub(crate) use crate::wall_clock::unix_ms;
