//! The node's phone line: one call at a time, driven by the node loop.
//!
//! The [`CallSession`] (sans-IO) decides; this file moves bytes for it: invites over the libp2p swarm,
//! the secure channel through a [`PeerLink`] per remote peer (the call names its link by the
//! peer), user actions from `Node`, and the call history in the store. Tasks and link drivers talk
//! back to the loop through one bounded channel of [`PhoneEvent`]s.
//!
//! This file holds the live call, the phone, and the loop that drives the session (its events and
//! outputs); each other concern is an `impl NodeLoop` block or a value of its own file:
//! `settings` (what every call starts with), `commands` (what the user asks), `admission` (who may
//! ring), `path` (invite, media relay, the call's link), `view` (what the user sees of a
//! call, and what its history record says) and `group` (a group call: its member and its legs).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime};

use libp2p::PeerId;
use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{NodeError, NodeEvent, Reply, unix_ms};
use crate::call::rate_limit::{Caller, InviteLimiter, RefusedLog};
use crate::call::session::ActionError;
use crate::call::signal::{self, ControlMessage, GroupLeg, Invite, InviteReply};
use crate::call::{CallEvent, CallId, CallSession, CallState, EndReason, Input, Output, Role, Timeouts, UserAction};
use crate::crypto::frame::FrameKeys;
use crate::crypto::handshake::{Established, HandshakeParams};
use crate::discovery::{FindError, FoundPeer, InviteEvent, RelayRequestError};
use crate::identity::Identity;
use crate::ip_scope::IpScope;
use crate::media::audio_processing::AudioProcessingMode;
use crate::media::io::{SinkSpec, SourceSpec};
use crate::media::config::{AudioConfig, VideoConfig};
use crate::media::driver::{CallMedia, MediaConfig};
use crate::media::session::MediaControl;
use crate::media::stats::{AudioStats, VideoStats};
use crate::media::video::source::{VideoSinkSpec, VideoSourceSpec};
use crate::media::view::ViewFeed;
use crate::name::Name;
use crate::store::{CallDirection, CallOutcome, CallRecord, Contact, GroupCallPeer, Verification};
use crate::transport::channel::{self, CallStream, ChannelError};
use crate::transport::link::{LinkEvent, LinkInbox, LinkSetup, PeerLink, SetupFeed};
use crate::transport::{accept, endpoint};

/// How long a stopping node waits for its links to finish gracefully (a link's own close takes at
/// most 2 s: ours finishes, the peer finishes); `systemctl stop` waits far longer.
const STOP_GRACE: Duration = Duration::from_secs(3);

mod admission;
mod commands;
mod group;
mod path;
mod settings;
mod view;

use self::admission::invite_json;
use self::path::Links;
pub use self::group::{GroupInfo, ParticipantInfo};
use self::group::{GroupCall, HeldMesh};
pub use self::settings::{CallSettings, MediaOverride, UnknownCallers, UnknownCallersError};
pub use self::view::{CallInfo, CallPath, GroupRing, SasEmoji};
use self::view::{id_matches, sas_matches};

/// 1:1 calls at once: one (a second caller hears "busy"). A group call's legs live in the same map,
/// keyed by their own call ids, beside no 1:1 call ([`Phone::in_call`]).
pub(in crate::node) const MAX_CALLS: usize = 1;

/// Capacity of the tasks → loop channel.
pub(super) const PHONE_EVENTS: usize = 64;

/// What tasks tell the node loop.
#[derive(Debug)]
pub(super) enum PhoneEvent {
    /// A QUIC connection arrived with a call stream.
    Inbound { call_id: CallId, stream: CallStream },
    /// The lookup before an invite finished.
    Found { call_id: CallId, result: Result<FoundPeer, FindError> },
    /// The link set up for a call reported something.
    Link { call_id: CallId, event: LinkEvent },
    /// A reflect request finished: our call endpoint's public address, as a reflector saw it.
    Reflexive { result: Result<SocketAddr, ChannelError> },
    /// A media relay answered an allocation (we call) or a join (we are called).
    Relay {
        call_id: CallId,
        relay: PeerId,
        allocate: bool,
        result: Result<crate::relay::RelayResponse, RelayRequestError>,
    },
    /// The group call's audio heard something (speaking, the dominant speaker, a link failed).
    GroupAudio { call_id: CallId, event: crate::media::group_call::GroupAudioEvent },
}

/// The live call and everything moving bytes for it.
pub(super) struct LiveCall {
    session: CallSession,
    contact: Option<Contact>,
    started_wall_ms: u64,
    invite_request: Option<OutboundRequestId>,
    /// The reply owed to the `call` command, once the call rings (or fails).
    pending_reply: Option<Reply<CallInfo>>,
    /// Streams and relay addresses that arrive before the call's link connects (the callee may
    /// dial before our invite reply is processed) wait here; the link takes it over.
    inbox: Option<LinkInbox>,
    remote_muted: bool,
    /// The media frame keys, once the link is up.
    frame_keys: Option<FrameKeys>,
    audio_config: AudioConfig,
    video_config: VideoConfig,
    /// The call's media, once the call is active and its link up.
    media: Option<CallMedia>,
    remote_video: bool,
    /// The candidates the peer advertised.
    remote_candidates: Vec<String>,
    /// Our side of a media relay allocation for this call, once granted (dialed late).
    relay_mine: Option<SocketAddr>,
    /// The relay holding an allocation we made for this call (freed when the call ends).
    relay_owned: Option<PeerId>,
    /// Called behind NAT by a caller without a relay: the ringing reply, held until our media
    /// relay has answered the allocation it will carry.
    pending_invite_reply: Option<(ResponseChannel<serde_json::Value>, InviteReply)>,
    muted: bool,
    /// Where the call's pictures go for the viewers.
    view: ViewFeed,
    /// This call is a leg of a group call (its invite's `group`).
    group: Option<GroupLeg>,
    /// The link's handshake hash, once up (a group leg's member pairing binds to it).
    handshake_hash: Option<[u8; 32]>,
    /// A group invitation: the group and who else is in it, for the ring.
    group_ring: Option<view::GroupRing>,
    /// A mesh leg taken while joining from a peer the invitation did not name: hung up at this
    /// time unless a commit names the peer by then.
    probation: Option<Instant>,
    /// A group leg whose peer a commit has named a member while this leg lived: its end is that
    /// member's leaving, not a failed invitation.
    joined_group: bool,
}

impl LiveCall {
    fn new(
        session: CallSession,
        contact: Option<Contact>,
        audio_config: AudioConfig,
        video_config: VideoConfig,
        view: ViewFeed,
    ) -> Self {
        let remote_video = session.video();
        LiveCall {
            view,
            session,
            contact,
            started_wall_ms: unix_ms(SystemTime::now()),
            invite_request: None,
            pending_reply: None,
            inbox: Some(LinkInbox::default()),
            remote_muted: false,
            frame_keys: None,
            audio_config,
            video_config,
            media: None,
            remote_video,
            remote_candidates: Vec::new(),
            relay_mine: None,
            relay_owned: None,
            pending_invite_reply: None,
            muted: false,
            group: None,
            handshake_hash: None,
            group_ring: None,
            probation: None,
            joined_group: false,
        }
    }

    /// Starts the media once the call is active and its link up (idempotent): audio, and video
    /// (it receives always; it sends when our video is on).
    fn start_media(&mut self, link: Option<&PeerLink>) {
        if self.session.state() != CallState::Active || self.media.is_some() {
            return;
        }
        let (Some(keys), Some(link)) = (&self.frame_keys, link) else { return };
        let Some(media_link) = link.media() else { return };
        let link_control = link.control_sender();
        // What the media asks of the peer goes out on the link's control stream; the forwarder
        // ends when the media drops its sender or the link is gone.
        let (control, mut requests) = mpsc::channel::<MediaControl>(8);
        tokio::spawn(async move {
            while let Some(request) = requests.recv().await {
                let message = match request {
                    MediaControl::KeyframeRequest => ControlMessage::KeyframeRequest,
                    MediaControl::BandwidthPause(paused) => ControlMessage::BandwidthPause { paused },
                };
                if link_control.send(message.body()).await.is_err() {
                    break;
                }
            }
        });
        let config = MediaConfig {
            audio: self.audio_config.clone(),
            video: self.video_config.clone(),
            muted: self.muted,
            video_on: self.session.video(),
            remote_video_on: self.remote_video,
            view: self.view.clone(),
        };
        match CallMedia::start(media_link, keys, config, control) {
            Ok(media) => self.media = Some(media),
            Err(e) => tracing::warn!(error = %e, "the call's media could not start"),
        }
    }

    fn stop_media(&mut self) {
        if let Some(media) = self.media.take() {
            drop(media.stop());
        }
    }
}

/// The phone: the QUIC endpoint, the settings, the live call, the last one.
pub(super) struct Phone {
    pub endpoint: quinn::Endpoint,
    pub settings: CallSettings,
    pub identity: Identity,
    /// The calls, by id: one at a time for now ([`MAX_CALLS`]); group calls will hold more.
    pub calls: HashMap<CallId, LiveCall>,
    /// The link to each remote peer; the live call names its own by its peer.
    links: Links,
    pub last: Option<CallInfo>,
    /// Where every call's pictures go for the viewers.
    pub view: ViewFeed,
    pub limiter: InviteLimiter,
    /// Which refused invites make history records.
    pub refused_log: RefusedLog,
    pub events: mpsc::Sender<PhoneEvent>,
    accept_task: Option<JoinHandle<()>>,
    /// Our call endpoint's address as a public reflector saw it (behind NAT), for candidates.
    pub reflexive: Option<SocketAddr>,
    reflecting: bool,
    /// The group call we are in (its legs are in `calls`).
    group: Option<GroupCall>,
    /// The last group call, as it ended.
    last_group: Option<GroupInfo>,
    /// Mesh legs waiting for a commit that names their caller.
    held_mesh: Vec<HeldMesh>,
}

impl std::fmt::Debug for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phone").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Phone {
    /// A phone on `endpoint`; its accept loop starts with [`Phone::start`].
    pub fn new(
        endpoint: quinn::Endpoint,
        settings: CallSettings,
        identity: Identity,
        events: mpsc::Sender<PhoneEvent>,
        view: ViewFeed,
    ) -> Self {
        Phone {
            view,
            limiter: InviteLimiter::new(settings.invite_limits),
            refused_log: RefusedLog::default(),
            endpoint,
            settings,
            identity,
            calls: HashMap::new(),
            links: HashMap::new(),
            last: None,
            events,
            accept_task: None,
            reflexive: None,
            reflecting: false,
            group: None,
            last_group: None,
            held_mesh: Vec::new(),
        }
    }

    /// Asks the reflector at `address` (a public peer's call endpoint) for our reflexive address,
    /// unless a request is already out.
    pub fn learn_reflexive(&mut self, peer: libp2p::PeerId, address: SocketAddr) {
        if self.reflecting {
            return;
        }
        self.reflecting = true;
        let (endpoint, events) = (self.endpoint.clone(), self.events.clone());
        tracing::debug!(%peer, %address, "asking for our reflexive address");
        tokio::spawn(async move {
            let result = crate::transport::reflect::reflect(&endpoint, address).await;
            let _ = events.send(PhoneEvent::Reflexive { result }).await;
        });
    }

    /// Starts accepting QUIC connections under the accept budget (`transport::accept`): each must
    /// name a call in its stream header within [`accept::ACCEPT_TIMEOUT`] of its first packet.
    pub fn start(&mut self) {
        let (endpoint, events) = (self.endpoint.clone(), self.events.clone());
        let wrap: fn(CallId, CallStream) -> PhoneEvent = |call_id, stream| PhoneEvent::Inbound { call_id, stream };
        self.accept_task =
            Some(tokio::spawn(accept::accept_calls(endpoint, accept::AcceptLimits::default(), events, wrap)));
    }

    /// Closes everything (node shutdown). Links that are up finish what they were sending first (a
    /// hung-up call's last control message reaches the peer), for at most [`STOP_GRACE`]; then the
    /// endpoint closes whatever is left and tells those peers so.
    pub async fn stop(&mut self) {
        // A link still setting up stops at once; one that is up finishes what it was sending.
        for (_, link) in self.links.drain() {
            link.close();
        }
        if let Some(t) = self.accept_task.take() {
            t.abort();
        }
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        while self.endpoint.open_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.endpoint.close(channel::CLOSE_DONE.into(), b"node stopping");
        // The close frames go out before the socket does.
        let _ = tokio::time::timeout(Duration::from_millis(200), self.endpoint.wait_idle()).await;
    }

    /// The candidates to advertise.
    pub fn candidates(&self, host_ips: &[std::net::IpAddr]) -> Vec<String> {
        if let Some(list) = &self.settings.advertise {
            return list.iter().map(ToString::to_string).collect();
        }
        let mut list = match self.endpoint.local_addr() {
            Ok(local) => endpoint::candidates(local, host_ips),
            Err(_) => Vec::new(),
        };
        if let Some(reflexive) = self.reflexive {
            let r = reflexive.to_string();
            if !list.contains(&r) {
                // Host candidates first (a shared LAN is the best path), then the NAT's mapping.
                list.push(r);
            }
        }
        list
    }

    /// Whether no other call can start now (a group call's legs count as one call).
    pub(in crate::node) fn in_call(&self) -> bool {
        self.calls.len() >= MAX_CALLS || self.group.is_some()
    }

    /// Whether we are in a group call.
    pub(in crate::node) fn in_group(&self) -> bool {
        self.group.is_some()
    }

    /// The call the user's call commands act on: the 1:1 call, or a group invitation ringing
    /// here (before its group starts).
    pub(in crate::node) fn primary(&self) -> Option<CallId> {
        let one = self.calls.iter().find(|(_, c)| c.group.is_none());
        let ringing = || {
            self.calls.iter().find(|(_, c)| {
                self.group.is_none()
                    && c.session.role() == Role::Callee
                    && c.group.as_ref().is_some_and(|g| g.kind == signal::GroupLegKind::Join)
            })
        };
        one.or_else(ringing).map(|(id, _)| *id)
    }

    /// Our address as a public peer saw it is no longer known (the network changed).
    pub(in crate::node) fn forget_reflexive(&mut self) {
        self.reflexive = None;
    }

    /// The timer of the live calls (and the group call's).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.calls.values().filter_map(|c| c.session.poll_timeout()).chain(self.group_timeout()).min()
    }

    /// The live call's info, or the last call's.
    pub fn info(&self) -> Option<CallInfo> {
        let primary = self.primary().and_then(|id| self.calls.get(&id));
        primary.map(|c| c.info(c.link(&self.links))).or_else(|| self.last.clone())
    }
}

/// The node loop's call handling. Every method runs on the loop; none blocks.
impl<S: crate::store::Store> super::NodeLoop<S> {
    /// Something from a call task.
    pub(super) fn on_phone_event(&mut self, event: PhoneEvent) {
        let now = Instant::now();
        match event {
            PhoneEvent::Relay { call_id, relay, allocate, result } => {
                let Some(call) = self.phone.calls.get_mut(&call_id) else { return };
                let granted = match result {
                    Ok(crate::relay::RelayResponse::Ok { mine, theirs, .. }) => {
                        match (mine.parse::<SocketAddr>(), theirs.parse::<SocketAddr>()) {
                            (Ok(mine), Ok(theirs)) => Some((mine, theirs)),
                            _ => None,
                        }
                    }
                    Ok(crate::relay::RelayResponse::Err { reason }) => {
                        tracing::info!(%relay, %reason, "the media relay refused");
                        None
                    }
                    Err(e) => {
                        tracing::info!(%relay, error = %e, "no media relay");
                        None
                    }
                };
                if let Some((mine, _)) = granted {
                    call.relay_mine = Some(mine);
                    if allocate {
                        call.relay_owned = Some(relay);
                    }
                    if let Some(feed) = call.setup_feed(&self.phone.links) {
                        feed.offer_relay(mine);
                    }
                }
                let relay_candidate = granted.map(|(_, theirs)| crate::transport::candidate::format_relay(&relay, theirs));
                if let Some((channel, mut reply)) = call.pending_invite_reply.take() {
                    // We are called: the held reply goes out now, with the caller's side if granted.
                    if let (InviteReply::Ringing { candidates, .. }, Some(c)) = (&mut reply, relay_candidate) {
                        candidates.truncate(signal::MAX_CANDIDATES - 1);
                        candidates.push(c);
                    }
                    self.discovery.reply_invite(channel, admission::reply_json(reply));
                } else if allocate && call.session.state() == CallState::Dialing {
                    self.send_invite(call_id, relay_candidate.into_iter().collect());
                }
            }
            PhoneEvent::Reflexive { result } => {
                self.phone.reflecting = false;
                match result {
                    Ok(address) => {
                        if self.phone.reflexive != Some(address) {
                            tracing::info!(%address, "our call endpoint's public address (reflexive)");
                        }
                        self.phone.reflexive = Some(address);
                    }
                    Err(e) => tracing::info!(error = %e, "no reflexive address"),
                }
            }
            PhoneEvent::Inbound { call_id, stream } => self.phone.offer_stream(call_id, stream),
            PhoneEvent::Found { call_id, result } => {
                let candidates = self.phone.candidates(&self.discovery.host_ips());
                let Some(call) = self.phone.calls.get_mut(&call_id) else { return };
                if call.session.state() != CallState::Dialing {
                    return;
                }
                if result.is_ok() {
                    call.session.peer_found(now);
                }
                match result {
                    Ok(_) if candidates.is_empty() => {
                        call.session.handle(Input::InviteFailed("this node has no network path for calls".into()), now);
                        self.drive_call();
                    }
                    Ok(_) => {
                        // Behind NAT: a media relay allocation first, in case no direct path opens.
                        let peer = call.session.peer();
                        match self.discovery.media_relay_peer().filter(|_| self.discovery.behind_nat()) {
                            Some(relay) => {
                                let request = crate::relay::RelayRequest::Allocate { call_id, peer: peer.to_string() };
                                self.ask_relay(call_id, relay, request, true);
                            }
                            None => self.send_invite(call_id, Vec::new()),
                        }
                    }
                    Err(e) => {
                        let who = call
                            .contact
                            .as_ref()
                            .map(|c| c.name.to_string())
                            .unwrap_or_else(|| call.session.peer().to_base58());
                        call.session.handle(Input::InviteFailed(format!("{who} {e}")), now);
                        self.drive_call();
                    }
                }
            }
            PhoneEvent::Link { call_id, event } => self.on_link_event(call_id, event, now),
            PhoneEvent::GroupAudio { call_id, event } => self.on_group_audio(call_id, event),
        }
    }

    /// Call timers.
    pub(super) fn on_call_timeout(&mut self, now: Instant) {
        for call in self.phone.calls.values_mut() {
            if call.session.poll_timeout().is_some_and(|t| t <= now) {
                call.session.handle_timeout(now);
            }
        }
        self.on_group_timeout(now);
        self.drive_call();
    }

    /// Drains every session's outputs (and the group call's) and acts on them, until none has
    /// more; then ends the calls that are over.
    fn drive_call(&mut self) {
        loop {
            let mut any = self.drive_group();
            let ids: Vec<CallId> = self.phone.calls.keys().copied().collect();
            for id in ids {
                any |= self.drive_session(id);
            }
            any |= self.end_calls();
            if !any {
                break;
            }
        }
    }

    /// Drains one session's outputs; whether there were any.
    fn drive_session(&mut self, id: CallId) -> bool {
        let mut any = false;
        loop {
            let Some(call) = self.phone.calls.get_mut(&id) else { return any };
            let Some(output) = call.session.poll_output() else { break };
            any = true;
            match output {
                Output::OpenChannel { remote_candidates } => self.open_channel(id, remote_candidates),
                Output::Send(msg) => {
                    if let Some(link) = call.link(&self.phone.links) {
                        if link.send_control(msg.body()).is_err() {
                            tracing::warn!("control channel congested; a message was dropped");
                        }
                    }
                }
                Output::CloseChannel => {
                    call.stop_media();
                    call.inbox = None;
                    if let Some(link) = call.take_link(&mut self.phone.links) {
                        // Graceful: the driver finishes on its own within a few seconds.
                        link.close();
                    }
                }
                Output::Event(event) => self.on_call_event(id, event),
            }
        }
        any
    }

    /// Removes the calls that ended; whether there were any.
    fn end_calls(&mut self) -> bool {
        let ended: Vec<CallId> =
            self.phone.calls.iter().filter(|(_, c)| c.session.state() == CallState::Ended).map(|(id, _)| *id).collect();
        for id in &ended {
            let call = self.phone.calls.remove(id).expect("found above");
            if let Some(link) = call.take_link(&mut self.phone.links) {
                link.close();
            }
            if let Some(relay) = call.relay_owned {
                // Free the relay's ports now rather than after its idle timeout.
                let (tx, _) = oneshot::channel();
                let request = crate::relay::RelayRequest::Release { call_id: call.session.id() };
                self.discovery.relay_request(relay, request, tx);
            }
            if call.group.is_some() {
                // A group leg: the group call's history is not kept yet.
                self.on_leg_ended(&call);
                continue;
            }
            if let Err(e) = self.db.record_call(&call.record()) {
                tracing::warn!(error = %e, "cannot record the call in the history");
            }
            self.phone.last = Some(call.info(None));
        }
        !ended.is_empty()
    }

    fn on_call_event(&mut self, id: CallId, event: CallEvent) {
        let primary = self.phone.primary() == Some(id);
        let Some(call) = self.phone.calls.get_mut(&id) else { return };
        if call.group.is_some() {
            match event {
                CallEvent::State(CallState::Active) => self.on_leg_up(id),
                CallEvent::RemoteMedia { muted, video } => self.on_leg_media(id, muted, video),
                _ => {}
            }
            if !primary {
                // A leg is not a call of its own: only a group invitation ringing here is shown.
                return;
            }
            let Some(call) = self.phone.calls.get_mut(&id) else { return };
            let info = call.info(call.link(&self.phone.links));
            let event = match event {
                CallEvent::State(_) => NodeEvent::CallState { call: info },
                CallEvent::Ended(_) => NodeEvent::CallEnded { call: info },
                _ => return,
            };
            return self.emit(event);
        }
        let ringing_or_ended = matches!(event, CallEvent::State(CallState::Ringing) | CallEvent::Ended(_));
        if let CallEvent::RemoteMedia { muted, video } = event {
            call.remote_muted = muted;
            call.remote_video = video;
            if let Some(media) = &call.media {
                media.set_remote_video(video);
            }
        }
        if let CallEvent::State(CallState::Active) = event {
            // Each side states its media at the start, so neither has to guess the other's.
            let (muted, video) = (call.muted, call.session.video());
            let _ = call.session.user(UserAction::Media { muted, video }, Instant::now());
            call.start_media(call.link(&self.phone.links));
        }
        // The `call` command is answered once the call rings or fails.
        if ringing_or_ended && call.session.role() == Role::Caller {
            if let Some(reply) = call.pending_reply.take() {
                let info = call.info(call.link(&self.phone.links));
                let result = match &info.end_reason {
                    Some(reason) => Err(NodeError::CallEnded(reason.clone())),
                    None => Ok(info),
                };
                let _ = reply.send(result);
            }
        }
        let info = call.info(call.link(&self.phone.links));
        let event = match event {
            CallEvent::State(_) => NodeEvent::CallState { call: info },
            CallEvent::SasReady(_) => NodeEvent::CallSas { call: info },
            CallEvent::RemoteMedia { .. } => NodeEvent::CallMedia { call: info },
            CallEvent::Ended(_) => NodeEvent::CallEnded { call: info },
        };
        self.emit(event);
    }
}
